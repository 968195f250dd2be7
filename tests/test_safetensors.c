// Safetensors I/O: F32/BF16 round trips, exact F16/BF16 conversion tables, sharded checkpoints, and a set of
// malformed files (written here, byte by byte) that must each fail with a message naming the file or tensor
// and without reading out of bounds (run under `make asan` as well). Also the atomic writer in common/fileio.
#include "tests/test.h"
#include "common/error.h"
#include "common/fileio.h"
#include "policy/safetensors.h"
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/grpo_test_st_XXXXXX";

static const char *tpath(const char *name) {
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

// A safetensors file with the given header text (length taken as is) followed by n data bytes.
static void write_st_raw(const char *path, const char *header, const void *data, size_t n) {
    size_t h = strlen(header);
    uint8_t *buf = calloc(8 + h + n + 1, 1);
    uint64_t h64 = h;
    memcpy(buf, &h64, 8);
    memcpy(buf + 8, header, h);
    if (n) memcpy(buf + 8 + h, data, n);
    write_bytes(path, buf, 8 + h + n);
    free(buf);
}

// Opens path and expects failure with a message containing every given substring.
static void expect_open_fails(const char *path, const char *want1, const char *want2) {
    SafeTensors st;
    grpo_error_clear();
    int rc = st_open(&st, path);
    EXPECT(rc == -1, "%s should fail to open (%s)", path, want1);
    if (rc == 0) { st_close(&st); return; }
    EXPECT(strstr(grpo_error(), want1), "message lacks '%s': %s", want1, grpo_error());
    EXPECT(!want2 || strstr(grpo_error(), want2), "message lacks '%s': %s", want2, grpo_error());
    st_close(&st); // harmless after a failed open
}

static int count_dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.' || (e->d_name[1] && e->d_name[1] != '.');
    closedir(d);
    return n;
}

static void test_f16_table(void) {
    struct { uint16_t h; uint32_t f; } table[] = {
        {0x0000, 0x00000000}, {0x8000, 0x80000000}, // +-0
        {0x3c00, 0x3f800000}, {0xc000, 0xc0000000}, // 1, -2
        {0x3555, 0x3eaaa000},                       // 0.333251953125
        {0x7bff, 0x477fe000},                       // 65504, the largest finite
        {0x0400, 0x38800000},                       // 2^-14, smallest normal
        {0x0001, 0x33800000}, {0x8001, 0xb3800000}, // +-2^-24, smallest subnormal
        {0x03ff, 0x387fc000},                       // largest subnormal 1023 * 2^-24
        {0x0200, 0x38000000},                       // 2^-15
        {0x7c00, 0x7f800000}, {0xfc00, 0xff800000}, // +-inf
    };
    for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
        uint32_t got = f32_bits(st_f16_to_f32(table[i].h));
        EXPECT(got == table[i].f, "f16 %04x -> %08x, expected %08x", table[i].h, got, table[i].f);
    }
    EXPECT(isnan(st_f16_to_f32(0x7e00)) && isnan(st_f16_to_f32(0xfc01)), "f16 NaN");
    // Every finite F16 value is exactly representable: compare against ldexp for all 2^16 patterns.
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        int e = (h >> 10) & 31, m = h & 1023;
        if (e == 31) continue;
        double v = e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
        if (h & 0x8000) v = -v;
        bad += (double)st_f16_to_f32((uint16_t)h) != v;
    }
    EXPECT(bad == 0, "%d F16 values converted inexactly", bad);
}

static void test_bf16_table(void) {
    struct { uint32_t f; uint16_t b; } table[] = {
        {0x3f800000, 0x3f80}, // 1
        {0x3f808000, 0x3f80}, // tie, even below: round down
        {0x3f818000, 0x3f82}, // tie, odd below: round up
        {0x3f808001, 0x3f81}, // above half
        {0x3f807fff, 0x3f80}, // below half
        {0x7f7fffff, 0x7f80}, // largest float rounds to inf
        {0x7f800000, 0x7f80}, {0xff800000, 0xff80}, // +-inf
        {0x80000000, 0x8000}, // -0
        {0x00000001, 0x0000}, // tiny subnormal rounds to 0
    };
    for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
        uint16_t got = st_f32_to_bf16(bits_f32(table[i].f));
        EXPECT(got == table[i].b, "bf16(%08x) = %04x, expected %04x", table[i].f, got, table[i].b);
    }
    // NaN stays NaN even when only low mantissa bits are set (plain rounding would make it inf).
    EXPECT(isnan(st_bf16_to_f32(st_f32_to_bf16(bits_f32(0x7f800001)))), "NaN kept");
    EXPECT(isnan(st_bf16_to_f32(st_f32_to_bf16(bits_f32(0xffc00000)))), "-NaN kept");
    EXPECT(f32_bits(st_bf16_to_f32(0x4049)) == 0x40490000, "bf16 -> f32");
}

static void fill(float *x, int n, uint32_t seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 8.0f;
    }
}

static void test_roundtrip_f32(void) {
    float a[3 * 5], b[7], s = 3.25f, got[16];
    fill(a, 15, 1);
    fill(b, 7, 2);
    a[0] = bits_f32(0x7fc01234); // NaN payload, -0, inf and a subnormal survive bit-exact
    a[1] = -0.0f;
    a[2] = INFINITY;
    a[3] = bits_f32(0x00000005);
    StWriteTensor ts[] = {
        {"model.layers.0.w", a, 2, {3, 5}}, {"b", b, 1, {7}}, {"scalar", &s, 0, {0}}, {"empty", NULL, 2, {0, 4}},
    };
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "step", "42");
    const char *path = tpath("f32.safetensors");
    EXPECT(st_write(path, ts, 4, ST_F32, meta) == 0, "%s", grpo_error());
    cJSON_Delete(meta);

    // Layout: header length a multiple of 8 (data aligned), compact JSON, metadata first, space padding.
    size_t len;
    char *raw = read_file(path, &len);
    uint64_t hlen;
    memcpy(&hlen, raw, 8);
    EXPECT((8 + hlen) % 8 == 0, "data offset %llu not 8-aligned", (unsigned long long)(8 + hlen));
    EXPECT(len == 8 + hlen + 4 * (15 + 7 + 1), "file size %zu", len);
    const char *want = "{\"__metadata__\":{\"format\":\"pt\",\"step\":\"42\"},\"model.layers.0.w\":"
                       "{\"dtype\":\"F32\",\"shape\":[3,5],\"data_offsets\":[0,60]},\"b\":";
    EXPECT(!strncmp(raw + 8, want, strlen(want)), "header: %.160s", raw + 8);
    EXPECT(raw[8 + hlen - 1] == ' ' || raw[8 + hlen - 1] == '}', "padding");
    free(raw);

    SafeTensors st;
    EXPECT(st_open(&st, path) == 0, "%s", grpo_error());
    EXPECT(st.ntensors == 4 && !strcmp(st.tensors[0].name, "model.layers.0.w") && !strcmp(st.tensors[3].name, "empty"),
           "order");
    EXPECT(st_metadata(&st, "format") && !strcmp(st_metadata(&st, "format"), "pt"), "format pt");
    EXPECT(st_metadata(&st, "step") && !strcmp(st_metadata(&st, "step"), "42"), "metadata");
    EXPECT(st_read_f32(&st, "model.layers.0.w", got, 2, (int64_t[]){3, 5}) == 0, "%s", grpo_error());
    EXPECT(!memcmp(got, a, sizeof a), "F32 not bit-exact");
    EXPECT(st_read_f32(&st, "b", got, 1, (int64_t[]){7}) == 0 && !memcmp(got, b, sizeof b), "b");
    EXPECT(st_read_f32(&st, "scalar", got, 0, NULL) == 0 && got[0] == 3.25f, "scalar");
    EXPECT(st_read_f32(&st, "empty", got, 2, (int64_t[]){0, 4}) == 0, "empty: %s", grpo_error());
    const StTensor *t = st_find(&st, "b");
    EXPECT(t && t->dtype == ST_F32 && t->ndim == 1 && t->shape[0] == 7 && t->nbytes == 28 &&
           ((uintptr_t)t->data % 4) == 0, "record");
    EXPECT(st_find(&st, "nope") == NULL, "find missing");

    // The loader's errors.
    EXPECT(st_read_f32(&st, "model.layers.0.w", got, 2, (int64_t[]){3, 4}) == -1 &&
           strstr(grpo_error(), "tensor 'model.layers.0.w'") && strstr(grpo_error(), "expected shape [3, 4], found [3, 5]") &&
           strstr(grpo_error(), path), "%s", grpo_error());
    EXPECT(st_read_f32(&st, "b", got, 2, (int64_t[]){7, 1}) == -1 && strstr(grpo_error(), "expected shape [7, 1], found [7]"),
           "%s", grpo_error());
    EXPECT(st_read_f32(&st, "missing.weight", got, 1, (int64_t[]){1}) == -1 &&
           strstr(grpo_error(), "tensor 'missing.weight' not found in") && strstr(grpo_error(), path), "%s", grpo_error());
    st_close(&st);
    st_close(&st); // twice is harmless
}

static void test_roundtrip_bf16(void) {
    enum { N = 5000 };
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    fill(x, N, 7);
    x[0] = NAN;
    x[1] = -INFINITY;
    x[2] = 1e-40f;
    StWriteTensor t = {"model.embed_tokens.weight", x, 2, {50, 100}};
    const char *path = tpath("bf16.safetensors");
    EXPECT(st_write(path, &t, 1, ST_BF16, NULL) == 0, "%s", grpo_error());
    SafeTensors st;
    EXPECT(st_open(&st, path) == 0, "%s", grpo_error());
    EXPECT(st.ntensors == 1 && st.tensors[0].dtype == ST_BF16 && st.tensors[0].nbytes == 2 * N, "dtype");
    EXPECT(st_read_f32(&st, "model.embed_tokens.weight", y, 2, (int64_t[]){50, 100}) == 0, "%s", grpo_error());
    EXPECT(isnan(y[0]) && y[1] == -INFINITY, "specials");
    int bad = 0;
    for (int i = 3; i < N; i++) {
        bad += fabsf(y[i] - x[i]) > fabsf(x[i]) * 0x1p-8f; // half an ulp of an 8-bit mantissa
        bad += f32_bits(y[i]) != ((uint32_t)st_f32_to_bf16(x[i]) << 16);
    }
    EXPECT(bad == 0, "%d values outside bf16 rounding", bad);
    st_close(&st);
    free(x);
    free(y);
}

static void test_f16_file(void) {
    // Written by hand: the writer does not produce F16, but HF checkpoints can.
    uint16_t d[4] = {0x3c00, 0x0001, 0x7c00, 0xc000};
    const char *path = tpath("f16.safetensors");
    write_st_raw(path, "{\"h\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]}}", d, 8);
    SafeTensors st;
    float out[4];
    EXPECT(st_open(&st, path) == 0, "%s", grpo_error());
    EXPECT(st_read_f32(&st, "h", out, 2, (int64_t[]){2, 2}) == 0, "%s", grpo_error());
    EXPECT(out[0] == 1 && out[1] == 0x1p-24f && out[2] == INFINITY && out[3] == -2, "F16 values");
    EXPECT(st_metadata(&st, "format") == NULL, "no metadata");
    st_close(&st);

    // Non-float dtypes are recognised and refused by name.
    int64_t v[2] = {1, 2};
    path = tpath("i64.safetensors");
    write_st_raw(path, "{\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", v, 16);
    EXPECT(st_open(&st, path) == 0, "%s", grpo_error());
    EXPECT(st_find(&st, "ids") && st_find(&st, "ids")->dtype == ST_I64, "I64 recognised");
    EXPECT(st_read_f32(&st, "ids", out, 1, (int64_t[]){2}) == -1 && strstr(grpo_error(), "dtype I64 cannot be read as float") &&
           strstr(grpo_error(), "'ids'"), "%s", grpo_error());
    st_close(&st);
}

static void write_shards(void) {
    mkdir(tpath("sharded"), 0755);
    float a[6] = {1, 2, 3, 4, 5, 6}, b[2] = {7, 8}, c[3] = {9, 10, 11};
    StWriteTensor s1[] = {{"a", a, 2, {2, 3}}, {"b", b, 1, {2}}}, s2[] = {{"c", c, 1, {3}}};
    EXPECT(st_write(tpath("sharded/model-00001-of-00002.safetensors"), s1, 2, ST_F32, NULL) == 0, "%s", grpo_error());
    EXPECT(st_write(tpath("sharded/model-00002-of-00002.safetensors"), s2, 1, ST_BF16, NULL) == 0, "%s", grpo_error());
}

static void write_index(const char *weight_map) {
    char buf[1024];
    snprintf(buf, sizeof buf, "{\"metadata\": {\"total_size\": 38}, \"weight_map\": %s}", weight_map);
    write_bytes(tpath("sharded/model.safetensors.index.json"), buf, strlen(buf));
}

static void test_sharded(void) {
    write_shards();
    write_index("{\"a\": \"model-00001-of-00002.safetensors\", \"c\": \"model-00002-of-00002.safetensors\","
                " \"b\": \"model-00001-of-00002.safetensors\"}");
    const char *paths[] = {tpath("sharded"), tpath("sharded/model.safetensors.index.json")};
    for (int k = 0; k < 2; k++) {
        SafeTensors st;
        float out[6];
        EXPECT(st_open(&st, paths[k]) == 0, "%s: %s", paths[k], grpo_error());
        EXPECT(st.nfiles == 2 && st.ntensors == 3, "files %d tensors %d", st.nfiles, st.ntensors);
        EXPECT(st_read_f32(&st, "a", out, 2, (int64_t[]){2, 3}) == 0 && out[5] == 6, "a: %s", grpo_error());
        EXPECT(st_read_f32(&st, "c", out, 1, (int64_t[]){3}) == 0 && out[0] == 9 && out[2] == 11, "c: %s", grpo_error());
        const StTensor *t = st_find(&st, "c");
        EXPECT(t && strstr(st.files[t->file].path, "model-00002-of-00002.safetensors"), "which file");
        EXPECT(st_read_f32(&st, "zz", out, 1, (int64_t[]){1}) == -1 && strstr(grpo_error(), "index.json"), "%s",
               grpo_error());
        st_close(&st);
    }
    // A plain directory with model.safetensors.
    mkdir(tpath("single"), 0755);
    float x = 1;
    StWriteTensor t = {"x", &x, 1, {1}};
    EXPECT(st_write(tpath("single/model.safetensors"), &t, 1, ST_F32, NULL) == 0, "%s", grpo_error());
    SafeTensors st;
    EXPECT(st_open(&st, tpath("single")) == 0 && st_find(&st, "x") && !strcmp(st.path + strlen(st.path) - 17,
           "model.safetensors"), "dir: %s", grpo_error());
    st_close(&st);
}

static void test_sharded_errors(void) {
    write_shards();
    const char *idx = tpath("sharded/model.safetensors.index.json");
    write_index("{\"a\": \"model-00001-of-00002.safetensors\", \"c\": \"model-00003-of-00003.safetensors\"}");
    expect_open_fails(idx, "model-00003-of-00003.safetensors", "'c'");
    write_index("{\"a\": \"model-00001-of-00002.safetensors\", \"zz\": \"model-00002-of-00002.safetensors\"}");
    expect_open_fails(idx, "'zz'", "model-00002-of-00002.safetensors");
    write_index("{\"a\": \"model-00002-of-00002.safetensors\", \"c\": \"model-00001-of-00002.safetensors\"}");
    expect_open_fails(idx, "'a'", "model-00001-of-00002.safetensors");
    write_index("{\"a\": 3}");
    expect_open_fails(idx, "'a'", "index.json");
    write_index("{\"a\": \"../f32.safetensors\"}");
    expect_open_fails(idx, "'a'", "plain file name");
    write_bytes(idx, "{\"metadata\": {}}", 16);
    expect_open_fails(idx, "weight_map", "index.json");
    write_bytes(idx, "{\"weight_map\": ", 15);
    expect_open_fails(idx, "index.json", NULL);
    // The same tensor in two shards.
    float z = 0;
    StWriteTensor t = {"b", &z, 1, {1}};
    EXPECT(st_write(tpath("sharded/model-00002-of-00002.safetensors"), &t, 1, ST_F32, NULL) == 0, "%s", grpo_error());
    write_index("{\"a\": \"model-00001-of-00002.safetensors\", \"b\": \"model-00002-of-00002.safetensors\"}");
    expect_open_fails(idx, "'b'", "twice");
    expect_open_fails(tpath("sharded/nonexistent.safetensors"), "nonexistent.safetensors", NULL);
    mkdir(tpath("emptydir"), 0755);
    expect_open_fails(tpath("emptydir"), "emptydir", "model.safetensors");
}

static void test_malformed(void) {
    // A valid file to truncate: every proper prefix must be rejected.
    float a[16];
    fill(a, 16, 3);
    StWriteTensor ts[] = {{"w1", a, 2, {2, 4}}, {"w2", a + 8, 1, {8}}};
    const char *good = tpath("good.safetensors"), *bad = tpath("bad.safetensors");
    EXPECT(st_write(good, ts, 2, ST_F32, NULL) == 0, "%s", grpo_error());
    size_t len;
    char *raw = read_file(good, &len);
    uint64_t hlen;
    memcpy(&hlen, raw, 8);
    size_t cuts[] = {0, 1, 7, 8, 9, 8 + hlen / 2, 8 + hlen - 1, 8 + hlen, 8 + hlen + 1, 8 + hlen + 32, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        write_bytes(bad, raw, cuts[i]);
        expect_open_fails(bad, "bad.safetensors", NULL);
    }
    // Past the header the message names the tensor whose data is cut off.
    write_bytes(bad, raw, len - 1);
    expect_open_fails(bad, "'w2'", "truncated");
    write_bytes(bad, raw, 8 + hlen + 16);
    expect_open_fails(bad, "'w1'", "truncated");

    // Header length corrupted: larger than the file, and absurdly large (no overflow in the check).
    uint64_t huge[2] = {len, UINT64_MAX - 4};
    for (int i = 0; i < 2; i++) {
        memcpy(raw, &huge[i], 8);
        write_bytes(bad, raw, len);
        expect_open_fails(bad, "bad.safetensors", "header length");
    }
    free(raw);

    float d[4] = {0};
    struct { const char *header; const char *want1, *want2; } cases[] = {
        {"[1, 2]", "not a JSON object", NULL},
        {"\"string\"", "not a JSON object", NULL},
        {"{\"w\": {\"dtype\": \"F32\"", "JSON", NULL},
        {"{\"w\": 3}", "'w'", "object"},
        {"{\"w\":{\"dtype\":\"F42\",\"shape\":[4],\"data_offsets\":[0,16]}}", "'w'", "unknown dtype \"F42\""},
        {"{\"w\":{\"shape\":[4],\"data_offsets\":[0,16]}}", "'w'", "dtype"},
        {"{\"w\":{\"dtype\":32,\"shape\":[4],\"data_offsets\":[0,16]}}", "'w'", "dtype"},
        {"{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,16]}}", "'w'", "shape"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,16]}}", "'w'", "shape"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", "'w'", "shape[0]"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,16]}}", "'w'", "shape[0]"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[\"4\"],\"data_offsets\":[0,16]}}", "'w'", "shape[0]"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", "'w'", "dimensions"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,16]}}", "'w'",
         "overflows"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4]}}", "'w'", "data_offsets"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0]}}", "'w'", "data_offsets"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16,32]}}", "'w'", "data_offsets"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[-16,0]}}", "'w'", "data_offsets"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,0]}}", "'w'", "begin after end"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", "'w'", "past the end"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,1e300]}}", "'w'", "data_offsets"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", "'w'", "needs 12"},
        {"{\"w\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,16]}}", "'w'", "needs 8"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16],\"extra\":1}}", "'w'", "extra"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", "'a'", "overlapping"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", "'a'", "twice"},
        {"{\"__metadata__\":[1]}", "__metadata__", NULL},
        {"{\"__metadata__\":{\"step\":3}}", "'step'", "string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_st_raw(bad, cases[i].header, d, sizeof d);
        expect_open_fails(bad, "bad.safetensors", NULL);
        expect_open_fails(bad, cases[i].want1, cases[i].want2);
    }
    // Zero-size tensors may share an offset; a file with only metadata is valid.
    write_st_raw(bad, "{\"__metadata__\":{\"format\":\"pt\"},\"e1\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
                      "\"e2\":{\"dtype\":\"BOOL\",\"shape\":[0,3],\"data_offsets\":[0,0]}}", d, 0);
    SafeTensors st;
    EXPECT(st_open(&st, bad) == 0 && st.ntensors == 2, "empty tensors: %s", grpo_error());
    st_close(&st);
    // An unaligned data section (header length not a multiple of 8, as other writers may produce).
    float v[2] = {1.5f, -2.0f}, out[2];
    write_st_raw(bad, "{\"v\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", v, 8);
    EXPECT(st_open(&st, bad) == 0 && st_read_f32(&st, "v", out, 1, (int64_t[]){2}) == 0 && out[0] == 1.5f &&
           out[1] == -2.0f, "unaligned: %s", grpo_error());
    st_close(&st);
}

static void test_writer_errors(void) {
    float x[2] = {1, 2};
    const char *path = tpath("w.safetensors");
    StWriteTensor dup[] = {{"a", x, 1, {2}}, {"a", x, 1, {2}}};
    EXPECT(st_write(path, dup, 2, ST_F32, NULL) == -1 && strstr(grpo_error(), "'a'"), "%s", grpo_error());
    StWriteTensor neg = {"n", x, 1, {-2}};
    EXPECT(st_write(path, &neg, 1, ST_F32, NULL) == -1 && strstr(grpo_error(), "'n'"), "%s", grpo_error());
    StWriteTensor nodata = {"nd", NULL, 1, {2}};
    EXPECT(st_write(path, &nodata, 1, ST_F32, NULL) == -1 && strstr(grpo_error(), "'nd'"), "%s", grpo_error());
    EXPECT(st_write(path, dup, 1, ST_F16, NULL) == -1 && strstr(grpo_error(), "F16"), "%s", grpo_error());
    cJSON *meta = cJSON_Parse("{\"step\": 3}");
    EXPECT(st_write(path, dup, 1, ST_F32, meta) == -1 && strstr(grpo_error(), "'step'"), "%s", grpo_error());
    cJSON_Delete(meta);
    EXPECT(!path_exists(path), "no file after failed writes");
    EXPECT(st_write(tpath("no/such/dir/x.safetensors"), dup, 1, ST_F32, NULL) == -1 &&
           strstr(grpo_error(), "no/such/dir/x.safetensors"), "%s", grpo_error());
}

static void test_fileio(void) {
    const char *p = tpath("fio/a/b/c");
    EXPECT(mkdir_p(p) == 0 && path_is_dir(p), "mkdir_p: %s", grpo_error());
    EXPECT(mkdir_p(p) == 0, "mkdir_p existing");
    const char *f = tpath("fio/a/file.txt");
    EXPECT(write_file_atomic(f, "hello", 5) == 0, "%s", grpo_error());
    EXPECT(write_file_atomic(f, "world!", 6) == 0, "%s", grpo_error());
    size_t n;
    char *s = read_file(f, &n);
    EXPECT(s && n == 6 && !strcmp(s, "world!"), "read back");
    free(s);
    EXPECT(mkdir_p(f) == -1 && strstr(grpo_error(), "file.txt"), "mkdir_p over a file: %s", grpo_error());
    EXPECT(read_file(tpath("fio/missing"), NULL) == NULL && strstr(grpo_error(), "fio/missing"), "%s", grpo_error());
    // A failing commit (rename over a non-empty directory) leaves no temporary file behind.
    int before = count_dir_entries(tpath("fio/a"));
    EXPECT(write_file_atomic(tpath("fio/a/b"), "x", 1) == -1 && strstr(grpo_error(), "fio/a/b"), "%s", grpo_error());
    EXPECT(count_dir_entries(tpath("fio/a")) == before, "temporary file left behind");
    EXPECT(path_is_dir(tpath("fio/a/b/c")), "old target untouched");
    // Abort discards; the old file stays.
    AtomicFile af;
    EXPECT(atomic_open(&af, f) == 0, "%s", grpo_error());
    fputs("partial", af.f);
    atomic_abort(&af);
    atomic_abort(&af);
    s = read_file(f, NULL);
    EXPECT(s && !strcmp(s, "world!"), "abort kept the old file");
    free(s);
    EXPECT(count_dir_entries(tpath("fio/a")) == before, "abort left a temporary file");
    struct stat sb;
    EXPECT(stat(f, &sb) == 0 && (sb.st_mode & 0777) == 0644, "mode %o", sb.st_mode & 0777);
}

int main(void) {
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    RUN_TEST(test_f16_table);
    RUN_TEST(test_bf16_table);
    RUN_TEST(test_roundtrip_f32);
    RUN_TEST(test_roundtrip_bf16);
    RUN_TEST(test_f16_file);
    RUN_TEST(test_sharded);
    RUN_TEST(test_sharded_errors);
    RUN_TEST(test_malformed);
    RUN_TEST(test_writer_errors);
    RUN_TEST(test_fileio);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary();
}
