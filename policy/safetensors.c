#define _GNU_SOURCE // qsort_r
#include "safetensors.h"
#include "common/error.h"
#include "common/fileio.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

// Tensor data and the header length are little-endian on disk and are used in place.
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

static const struct { const char *name; size_t size; } dtypes[ST_NUM_DTYPES] = {
    [ST_F32] = {"F32", 4},   [ST_BF16] = {"BF16", 2}, [ST_F16] = {"F16", 2},  [ST_F64] = {"F64", 8},
    [ST_I64] = {"I64", 8},   [ST_I32] = {"I32", 4},   [ST_I16] = {"I16", 2},  [ST_I8] = {"I8", 1},
    [ST_U64] = {"U64", 8},   [ST_U32] = {"U32", 4},   [ST_U16] = {"U16", 2},  [ST_U8] = {"U8", 1},
    [ST_BOOL] = {"BOOL", 1}, [ST_F8_E4M3] = {"F8_E4M3", 1}, [ST_F8_E5M2] = {"F8_E5M2", 1},
};

const char *st_dtype_name(StDtype dtype) {
    return (unsigned)dtype < ST_NUM_DTYPES ? dtypes[dtype].name : "?";
}
size_t st_dtype_size(StDtype dtype) { return (unsigned)dtype < ST_NUM_DTYPES ? dtypes[dtype].size : 0; }

float st_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0x1f) {
        u = sign | 0x7f800000u | (man << 13); // inf, or NaN keeping its payload
    } else if (exp == 0) {
        // zero or subnormal: man * 2^-24 is exact in fp32
        float f = (float)man * 0x1p-24f;
        memcpy(&u, &f, 4);
        u |= sign;
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t st_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    // Rounding could carry a NaN's payload into the exponent and make it inf; force a quiet NaN instead.
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

// ---------------------------------------------------------------------------------------------------------
// Reader

static void format_shape(char *out, size_t cap, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < cap) snprintf(out + n, cap - n, "]");
}

// A JSON number that is an exact non-negative integer below 2^53 (beyond that doubles lose integers).
static int json_u53(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d < 9007199254740992.0) || d != floor(d)) return -1;
    *out = (uint64_t)d;
    return 0;
}

static int map_file(StFile *sf, const char *path) {
    sf->path = strdup(path);
    CHECK(sf->path, "out of memory");
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return ERR("%s: not a regular file", path);
    }
    sf->size = (size_t)sb.st_size;
    if (sf->size > 0) {
        void *m = mmap(NULL, sf->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            return ERR("%s: mmap of %zu bytes failed: %s", path, sf->size, strerror(e));
        }
        sf->map = m;
    }
    close(fd);
    return 0;
}

static int push_tensor(SafeTensors *st, int *cap, StTensor **out) {
    if (st->ntensors == *cap) {
        int ncap = *cap ? *cap * 2 : 256;
        StTensor *t = realloc(st->tensors, (size_t)ncap * sizeof *t);
        CHECK(t, "out of memory for %d tensor records", ncap);
        st->tensors = t;
        *cap = ncap;
    }
    *out = &st->tensors[st->ntensors];
    memset(*out, 0, sizeof **out);
    return 0;
}

// Parses one tensor entry of file `fi`'s header; the data section is [data, data + data_size).
static int parse_entry(StTensor *t, const cJSON *e, const char *path, const uint8_t *data, size_t data_size) {
    const char *name = e->string;
    CHECK(cJSON_IsObject(e), "%s: tensor '%s': header entry must be an object with dtype, shape, data_offsets",
          path, name);
    for (const cJSON *k = e->child; k; k = k->next)
        CHECK(!strcmp(k->string, "dtype") || !strcmp(k->string, "shape") || !strcmp(k->string, "data_offsets"),
              "%s: tensor '%s': unknown header field '%s' (expected dtype, shape, data_offsets)", path, name,
              k->string);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    CHECK(dt && cJSON_IsString(dt), "%s: tensor '%s': missing or non-string \"dtype\"", path, name);
    int d = 0;
    while (d < ST_NUM_DTYPES && strcmp(dtypes[d].name, dt->valuestring) != 0) d++;
    CHECK(d < ST_NUM_DTYPES, "%s: tensor '%s': unknown dtype \"%.32s\"", path, name, dt->valuestring);
    t->dtype = (StDtype)d;

    CHECK(sh && cJSON_IsArray(sh), "%s: tensor '%s': missing or non-array \"shape\"", path, name);
    int ndim = cJSON_GetArraySize(sh);
    CHECK(ndim <= ST_MAX_DIMS, "%s: tensor '%s': shape has %d dimensions, at most %d supported", path, name,
          ndim, ST_MAX_DIMS);
    t->ndim = ndim;
    uint64_t numel = 1;
    int i = 0;
    for (const cJSON *v = sh->child; v; v = v->next, i++) {
        uint64_t dim;
        CHECK(json_u53(v, &dim) == 0, "%s: tensor '%s': shape[%d] is not a non-negative integer", path, name, i);
        t->shape[i] = (int64_t)dim;
        CHECK(!__builtin_mul_overflow(numel, dim, &numel), "%s: tensor '%s': shape overflows", path, name);
    }
    uint64_t nbytes;
    CHECK(!__builtin_mul_overflow(numel, (uint64_t)dtypes[d].size, &nbytes), "%s: tensor '%s': shape overflows",
          path, name);

    uint64_t begin, end;
    CHECK(off && cJSON_IsArray(off) && cJSON_GetArraySize(off) == 2 && json_u53(off->child, &begin) == 0 &&
              json_u53(off->child->next, &end) == 0,
          "%s: tensor '%s': \"data_offsets\" must be [begin, end] with non-negative integers", path, name);
    CHECK(begin <= end, "%s: tensor '%s': data_offsets [%llu, %llu] has begin after end", path, name,
          (unsigned long long)begin, (unsigned long long)end);
    CHECK(end <= data_size,
          "%s: tensor '%s': data_offsets [%llu, %llu] run past the end of the data section (%zu bytes): the file "
          "is truncated or the header is wrong", path, name, (unsigned long long)begin, (unsigned long long)end,
          data_size);
    char shp[256];
    format_shape(shp, sizeof shp, ndim, t->shape);
    CHECK(end - begin == nbytes,
          "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes but shape %s of %s needs %llu", path, name,
          (unsigned long long)begin, (unsigned long long)end, (unsigned long long)(end - begin), shp,
          dtypes[d].name, (unsigned long long)nbytes);
    t->data = data + begin;
    t->nbytes = (size_t)nbytes;
    return 0;
}

static int cmp_by_begin(const void *a, const void *b) {
    const StTensor *x = *(const StTensor *const *)a, *y = *(const StTensor *const *)b;
    const uint8_t *px = x->data, *py = y->data;
    return px < py ? -1 : px > py;
}

// Maps one .safetensors file and appends its tensors.
static int load_file(SafeTensors *st, const char *path, int *cap) {
    StFile *files = realloc(st->files, (size_t)(st->nfiles + 1) * sizeof *files);
    CHECK(files, "out of memory");
    st->files = files;
    StFile *sf = &st->files[st->nfiles];
    memset(sf, 0, sizeof *sf);
    int fi = st->nfiles++;
    TRY(map_file(sf, path));

    CHECK(sf->size >= 8, "%s: file is %zu bytes, too short for the 8-byte header length (truncated?)", path,
          sf->size);
    uint64_t hlen;
    memcpy(&hlen, sf->map, 8);
    CHECK(hlen <= sf->size - 8,
          "%s: header length %llu is beyond the file size (%zu bytes): truncated or not a safetensors file", path,
          (unsigned long long)hlen, sf->size);
    const char *hdr = (const char *)sf->map + 8;
    CHECK(hlen >= 2 && hdr[0] == '{', "%s: header is not a JSON object (it must start with '{')", path);
    const uint8_t *data = (const uint8_t *)sf->map + 8 + hlen;
    size_t data_size = sf->size - 8 - (size_t)hlen;

    cJSON *root = cJSON_ParseWithLength(hdr, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ERR("%s: header (%llu bytes) is not valid JSON object text", path, (unsigned long long)hlen);
    }
    int first = st->ntensors, rc = 0;
    for (const cJSON *e = root->child; e && rc == 0; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if (!cJSON_IsObject(e)) { rc = ERR("%s: \"__metadata__\" must be an object of strings", path); break; }
            for (const cJSON *m = e->child; m; m = m->next)
                if (!cJSON_IsString(m)) {
                    rc = ERR("%s: __metadata__ value for '%s' must be a string", path, m->string);
                    break;
                }
            if (rc == 0 && fi == 0) {
                cJSON_Delete(st->metadata);
                st->metadata = cJSON_Duplicate(e, 1);
                if (!st->metadata) rc = ERR("out of memory");
            }
            continue;
        }
        StTensor *t = NULL;
        if ((rc = push_tensor(st, cap, &t)) != 0) break;
        t->file = fi;
        if ((rc = parse_entry(t, e, path, data, data_size)) != 0) break;
        if (!(t->name = strdup(e->string))) { rc = ERR("out of memory"); break; }
        st->ntensors++;
    }
    cJSON_Delete(root);
    TRY(rc);

    // Overlapping ranges would alias two parameters; a writer bug worth reporting rather than loading.
    int n = st->ntensors - first;
    const StTensor **sorted = malloc((size_t)(n ? n : 1) * sizeof *sorted);
    CHECK(sorted, "out of memory");
    for (int i = 0; i < n; i++) sorted[i] = &st->tensors[first + i];
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_by_begin);
    const StTensor *prev = NULL;
    for (int i = 0; i < n; i++) {
        const StTensor *t = sorted[i];
        if (t->nbytes == 0) continue;
        if (prev && (const uint8_t *)t->data < (const uint8_t *)prev->data + prev->nbytes) {
            rc = ERR("%s: tensors '%s' and '%s' have overlapping data_offsets", path, prev->name, t->name);
            break;
        }
        prev = t;
    }
    free(sorted);
    return rc;
}

static int cmp_name_idx(const void *a, const void *b, void *ctx) {
    const StTensor *t = ctx;
    return strcmp(t[*(const int *)a].name, t[*(const int *)b].name);
}

static int build_index(SafeTensors *st) {
    st->by_name = malloc((size_t)(st->ntensors ? st->ntensors : 1) * sizeof(int));
    CHECK(st->by_name, "out of memory");
    for (int i = 0; i < st->ntensors; i++) st->by_name[i] = i;
    qsort_r(st->by_name, (size_t)st->ntensors, sizeof(int), cmp_name_idx, st->tensors);
    for (int i = 1; i < st->ntensors; i++) {
        const StTensor *a = &st->tensors[st->by_name[i - 1]], *b = &st->tensors[st->by_name[i]];
        CHECK(strcmp(a->name, b->name) != 0, "tensor '%s' appears twice: in %s and in %s", a->name,
              st->files[a->file].path, st->files[b->file].path);
    }
    return 0;
}

static int open_index(SafeTensors *st, const char *index_path, int *cap) {
    char *text = read_file(index_path, NULL);
    if (!text) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ERR("%s: not a JSON object", index_path);
    }
    char dir[4096];
    const char *slash = strrchr(index_path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - index_path) : 1, slash ? index_path : ".");
    int rc = 0;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) rc = ERR("%s: missing \"weight_map\" object (tensor name -> shard file)", index_path);
    // Shards open in the order they first appear, so tensors keep the checkpoint's order.
    for (const cJSON *e = wm ? wm->child : NULL; e && rc == 0; e = e->next) {
        if (!cJSON_IsString(e) || !e->valuestring[0]) {
            rc = ERR("%s: weight_map['%s'] must be a shard file name", index_path, e->string);
            break;
        }
        if (strchr(e->valuestring, '/')) {
            rc = ERR("%s: weight_map['%s'] = '%s': shards must be plain file names in %s", index_path, e->string,
                     e->valuestring, dir);
            break;
        }
        char shard[4096 + 256];
        snprintf(shard, sizeof shard, "%s/%s", dir, e->valuestring);
        int seen = 0;
        for (int f = 0; f < st->nfiles && !seen; f++) seen = !strcmp(st->files[f].path, shard);
        if (seen) continue;
        if (!path_exists(shard)) {
            rc = ERR("%s: shard %s (listed for tensor '%s') is missing", index_path, shard, e->string);
            break;
        }
        rc = load_file(st, shard, cap);
    }
    if (rc == 0) rc = build_index(st);
    for (const cJSON *e = wm ? wm->child : NULL; e && rc == 0; e = e->next) {
        const StTensor *t = st_find(st, e->string);
        char shard[4096 + 256];
        snprintf(shard, sizeof shard, "%s/%s", dir, e->valuestring);
        if (!t) rc = ERR("%s: tensor '%s' is listed in weight_map but not found in %s", index_path, e->string, shard);
        else if (strcmp(st->files[t->file].path, shard) != 0)
            rc = ERR("%s: weight_map puts tensor '%s' in %s but it is in %s", index_path, e->string, shard,
                     st->files[t->file].path);
    }
    cJSON_Delete(root);
    return rc;
}

int st_open(SafeTensors *st, const char *path) {
    memset(st, 0, sizeof *st);
    CHECK(path && path[0], "st_open: empty path");
    if (path_is_dir(path)) {
        snprintf(st->path, sizeof st->path, "%s/model.safetensors.index.json", path);
        if (!path_exists(st->path)) snprintf(st->path, sizeof st->path, "%s/model.safetensors", path);
        CHECK(path_exists(st->path), "%s: no model.safetensors.index.json or model.safetensors in this directory",
              path);
    } else {
        snprintf(st->path, sizeof st->path, "%s", path);
    }
    size_t n = strlen(st->path);
    int cap = 0, rc;
    if (n >= 5 && !strcmp(st->path + n - 5, ".json")) rc = open_index(st, st->path, &cap);
    else if ((rc = load_file(st, st->path, &cap)) == 0) rc = build_index(st);
    if (rc == 0 && !st->metadata && !(st->metadata = cJSON_CreateObject())) rc = ERR("out of memory");
    if (rc != 0) {
        st_close(st);
        return -1;
    }
    return 0;
}

void st_close(SafeTensors *st) {
    for (int i = 0; i < st->ntensors; i++) free(st->tensors[i].name);
    for (int i = 0; i < st->nfiles; i++) {
        if (st->files[i].map) munmap(st->files[i].map, st->files[i].size);
        free(st->files[i].path);
    }
    free(st->tensors);
    free(st->files);
    free(st->by_name);
    cJSON_Delete(st->metadata);
    memset(st, 0, sizeof *st);
}

const StTensor *st_find(const SafeTensors *st, const char *name) {
    int lo = 0, hi = st->ntensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const StTensor *t = &st->tensors[st->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0) return t;
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

const char *st_metadata(const SafeTensors *st, const char *key) {
    const cJSON *v = st->metadata ? cJSON_GetObjectItemCaseSensitive(st->metadata, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int st_tensor_to_f32(const SafeTensors *st, const StTensor *t, float *out) {
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case ST_F32:
        if (t->nbytes) memcpy(out, p, t->nbytes);
        return 0;
    case ST_BF16:
    case ST_F16: {
        size_t n = t->nbytes / 2;
        int bf = t->dtype == ST_BF16;
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2); // the data section need not be 2-byte aligned
            out[i] = bf ? st_bf16_to_f32(h) : st_f16_to_f32(h);
        }
        return 0;
    }
    default:
        return ERR("tensor '%s' in %s: dtype %s cannot be read as float (supported: F32, BF16, F16)", t->name,
                   st->files[t->file].path, st_dtype_name(t->dtype));
    }
}

int st_read_f32(const SafeTensors *st, const char *name, float *out, int ndim, const int64_t *shape) {
    const StTensor *t = st_find(st, name);
    CHECK(t, "tensor '%s' not found in %s", name, st->path);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char want[256], got[256];
        format_shape(want, sizeof want, ndim, shape);
        format_shape(got, sizeof got, t->ndim, t->shape);
        return ERR("tensor '%s' in %s: expected shape %s, found %s", name, st->files[t->file].path, want, got);
    }
    return st_tensor_to_f32(st, t, out);
}

// ---------------------------------------------------------------------------------------------------------
// Writer

static cJSON *raw_int_array(int n, const int64_t *v) {
    char buf[ST_MAX_DIMS * 24 + 4];
    size_t k = (size_t)snprintf(buf, sizeof buf, "[");
    for (int i = 0; i < n; i++) k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%lld", i ? "," : "", (long long)v[i]);
    snprintf(buf + k, sizeof buf - k, "]");
    return cJSON_CreateRaw(buf); // cJSON would print large integers as doubles; offsets must stay exact
}

static char *build_header(const StWriteTensor *tensors, int n, StDtype dtype, const cJSON *metadata,
                          const char *path) {
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(root, "__metadata__");
    if (!meta) goto oom;
    if (!cJSON_AddStringToObject(meta, "format", "pt")) goto oom;
    for (const cJSON *m = metadata ? metadata->child : NULL; m; m = m->next) {
        if (!cJSON_IsString(m)) {
            ERR("%s: metadata value for '%s' must be a string", path, m->string);
            goto fail;
        }
        if (!strcmp(m->string, "format")) cJSON_DeleteItemFromObjectCaseSensitive(meta, "format");
        if (!cJSON_AddStringToObject(meta, m->string, m->valuestring)) goto oom;
    }
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const StWriteTensor *t = &tensors[i];
        if (!t->name || !t->name[0] || !strcmp(t->name, "__metadata__")) {
            ERR("%s: tensor %d has an empty or reserved name", path, i);
            goto fail;
        }
        if (cJSON_GetObjectItemCaseSensitive(root, t->name)) {
            ERR("%s: tensor '%s' given twice", path, t->name);
            goto fail;
        }
        if (t->ndim < 0 || t->ndim > ST_MAX_DIMS) {
            ERR("%s: tensor '%s': ndim %d, expected 0..%d", path, t->name, t->ndim, ST_MAX_DIMS);
            goto fail;
        }
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0 || __builtin_mul_overflow(numel, (uint64_t)t->shape[d], &numel)) {
                ERR("%s: tensor '%s': bad shape[%d] = %lld", path, t->name, d, (long long)t->shape[d]);
                goto fail;
            }
        }
        if (numel && !t->data) {
            ERR("%s: tensor '%s' has no data", path, t->name);
            goto fail;
        }
        int64_t off[2] = {(int64_t)offset, (int64_t)(offset + numel * st_dtype_size(dtype))};
        offset = (uint64_t)off[1];
        cJSON *e = cJSON_AddObjectToObject(root, t->name);
        if (!e || !cJSON_AddStringToObject(e, "dtype", st_dtype_name(dtype))) goto oom;
        cJSON *sh = raw_int_array(t->ndim, t->shape), *of = raw_int_array(2, off);
        if (!sh || !of) { cJSON_Delete(sh); cJSON_Delete(of); goto oom; }
        cJSON_AddItemToObject(e, "shape", sh);
        cJSON_AddItemToObject(e, "data_offsets", of);
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!s) ERR("out of memory printing the header of %s", path);
    return s;
oom:
    ERR("out of memory building the header of %s", path);
fail:
    cJSON_Delete(root);
    return NULL;
}

int st_write(const char *path, const StWriteTensor *tensors, int n, StDtype dtype, const cJSON *metadata) {
    CHECK(dtype == ST_F32 || dtype == ST_BF16, "%s: can write F32 or BF16, not %s", path, st_dtype_name(dtype));
    CHECK(n >= 0, "%s: negative tensor count %d", path, n);
    CHECK(!metadata || cJSON_IsObject(metadata), "%s: metadata must be a JSON object of strings", path);
    char *hdr = build_header(tensors, n, dtype, metadata, path);
    if (!hdr) return -1;
    size_t hlen = strlen(hdr);
    size_t padded = (hlen + 8 + 7) / 8 * 8 - 8; // data starts at 8 + padded, a multiple of 8

    AtomicFile af;
    if (atomic_open(&af, path) != 0) { free(hdr); return -1; }
    uint64_t len64 = padded;
    fwrite(&len64, 8, 1, af.f);
    fwrite(hdr, 1, hlen, af.f);
    for (size_t i = hlen; i < padded; i++) fputc(' ', af.f);
    free(hdr);
    uint16_t buf[4096];
    for (int i = 0; i < n && !ferror(af.f); i++) {
        const StWriteTensor *t = &tensors[i];
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= (size_t)t->shape[d];
        if (dtype == ST_F32) {
            if (numel) fwrite(t->data, sizeof(float), numel, af.f);
            continue;
        }
        for (size_t j = 0; j < numel; j += 4096) {
            size_t m = numel - j < 4096 ? numel - j : 4096;
            for (size_t k = 0; k < m; k++) buf[k] = st_f32_to_bf16(t->data[j + k]);
            fwrite(buf, 2, m, af.f);
        }
    }
    return atomic_commit(&af); // reports any failed fwrite above via ferror
}
