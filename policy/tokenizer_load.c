// tokenizer.json (+ tokenizer_config.json) -> Tokenizer. Every malformed or unsupported field is an error
// naming the file, the JSON path and what was expected.
#include "policy/tokenizer_internal.h"
#include "common/error.h"
#include "common/fileio.h"
#include <cJSON.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------------
// Small shared pieces: hashing, maps, UTF-8, the byte-level alphabet, the trie.

uint64_t tok_hash(const void *p, size_t n) {
    // FNV-1a on 8-byte words then a final mix: fast for the short keys (words, tokens) hashed here.
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ull ^ (n * 0x9e3779b97f4a7c15ull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
        s += 8; n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
}

static int strmap_grow(StrMap *m, char **key, int *key_len);

int strmap_put(StrMap *m, char **key, int *key_len, int id) {
    if (m->cap == 0 || m->cap < 2u * (uint32_t)id + 16) TRY(strmap_grow(m, key, key_len));
    uint64_t h = tok_hash(key[id], (size_t)key_len[id]);
    for (uint32_t i = (uint32_t)h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        int o = m->slot[i];
        if (o < 0) { m->slot[i] = id; m->hash[i] = (uint32_t)(h >> 32); return 0; }
        if (key_len[o] == key_len[id] && !memcmp(key[o], key[id], (size_t)key_len[id])) return 0; // first wins
    }
}

static int strmap_grow(StrMap *m, char **key, int *key_len) {
    StrMap old = *m;
    uint32_t cap = m->cap ? m->cap : 1024;
    while (cap < 2u * (old.cap ? old.cap : 512)) cap *= 2;
    m->slot = grpo_malloc(cap * sizeof(int), "tokenizer vocab map");
    m->hash = grpo_malloc(cap * sizeof(uint32_t), "tokenizer vocab map");
    if (!m->slot || !m->hash) { free(m->slot); free(m->hash); *m = old; return -1; }
    memset(m->slot, -1, cap * sizeof(int));
    m->cap = cap;
    for (uint32_t i = 0; i < old.cap; i++)
        if (old.slot[i] >= 0) {
            uint64_t h = tok_hash(key[old.slot[i]], (size_t)key_len[old.slot[i]]);
            uint32_t j = (uint32_t)h & (cap - 1);
            while (m->slot[j] >= 0) j = (j + 1) & (cap - 1);
            m->slot[j] = old.slot[i];
            m->hash[j] = (uint32_t)(h >> 32);
        }
    free(old.slot);
    free(old.hash);
    return 0;
}

int strmap_get(const StrMap *m, char **key, int *key_len, const char *s, size_t n) {
    if (!m->cap) return -1;
    uint64_t h = tok_hash(s, n);
    uint32_t hi = (uint32_t)(h >> 32);
    for (uint32_t i = (uint32_t)h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        int o = m->slot[i];
        if (o < 0) return -1;
        if (m->hash[i] == hi && (size_t)key_len[o] == n && !memcmp(key[o], s, n)) return o;
    }
}

int utf8_next(const unsigned char *s, size_t n, int *cp) {
    unsigned c = s[0];
    if (c < 0x80) { *cp = (int)c; return 1; }
    int len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
    if (len == 0 || c > 0xf4 || (size_t)len > n) { *cp = -1; return 1; }
    unsigned v = c & (0x7f >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) { *cp = -1; return 1; }
        v = (v << 6) | (s[i] & 0x3f);
    }
    // Overlong forms, surrogates and values past U+10FFFF are invalid, as in every strict decoder.
    if ((len == 3 && v < 0x800) || (len == 4 && (v < 0x10000 || v > 0x10ffff)) || (v >= 0xd800 && v < 0xe000)) {
        *cp = -1;
        return 1;
    }
    *cp = (int)v;
    return len;
}

int tok_ids_push(TokIds *v, int id) {
    if (v->n == v->cap) {
        int cap = v->cap ? v->cap * 2 : 64;
        int *p = realloc(v->ids, (size_t)cap * sizeof(int));
        if (!p) return ERR("out of memory growing a token id list to %d ids", cap);
        v->ids = p;
        v->cap = cap;
    }
    v->ids[v->n++] = id;
    return 0;
}

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others map to 256 + k in
// byte order.
static bool bl_printable(int b) { return (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff); }
// The 68 others, in order: 0x00-0x20 (33), 0x7f-0xa0 (34), 0xad.
int bytelevel_char(int byte) {
    if (bl_printable(byte)) return byte;
    return 256 + (byte <= 0x20 ? byte : byte <= 0xa0 ? 33 + byte - 0x7f : 67);
}
int bytelevel_byte(int cp) {
    if (cp >= 0 && cp < 256) return bl_printable(cp) ? cp : -1;
    int k = cp - 256;
    return k < 0 || k > 67 ? -1 : k < 33 ? k : k < 67 ? 0x7f + k - 33 : 0xad;
}

int trie_add(Trie *tr, const char *s, size_t n, int token) {
    if (tr->n == 0) {
        tr->cap = 64;
        if (!(tr->nodes = grpo_malloc((size_t)tr->cap * sizeof(TrieNode), "added-token trie"))) return -1;
        tr->nodes[0] = (TrieNode){-1, -1, -1, 0};
        tr->n = 1;
    }
    int node = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int ch = tr->nodes[node].child;
        while (ch >= 0 && tr->nodes[ch].c != c) ch = tr->nodes[ch].sibling;
        if (ch < 0) {
            if (tr->n == tr->cap) {
                TrieNode *p = realloc(tr->nodes, (size_t)tr->cap * 2 * sizeof(TrieNode));
                if (!p) return ERR("out of memory growing the added-token trie");
                tr->nodes = p;
                tr->cap *= 2;
            }
            ch = tr->n++;
            tr->nodes[ch] = (TrieNode){-1, tr->nodes[node].child, -1, c};
            tr->nodes[node].child = ch;
        }
        node = ch;
    }
    if (n) tr->first[(unsigned char)s[0] >> 3] |= (uint8_t)(1u << (s[0] & 7));
    if (tr->nodes[node].token < 0) tr->nodes[node].token = token;
    return 0;
}

void trie_free(Trie *tr) { free(tr->nodes); memset(tr, 0, sizeof *tr); }

// ---------------------------------------------------------------------------------------------------
// JSON access with paths in the messages.

typedef struct {
    const char *file;   // "tokenizer.json" or its path, for messages
    TokenizerImpl *t;
} Load;

#define JERR(L, jp, ...) jerr_(__FILE__, __LINE__, (L)->file, jp, __VA_ARGS__)
__attribute__((format(printf, 5, 6)))
static int jerr_(const char *src, int line, const char *file, const char *jp, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return grpo_errorf(src, line, "%s: %s: %s", file, jp[0] ? jp : "(top level)", msg);
}

static const char *jtype(const cJSON *j) {
    if (!j) return "nothing";
    if (cJSON_IsNull(j)) return "null";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsArray(j)) return "an array";
    return "an object";
}

static void jpath(char *out, size_t cap, const char *jp, const char *key) {
    snprintf(out, cap, "%s%s%s", jp, jp[0] ? "." : "", key);
}

// Optional boolean: missing or null gives def.
static int jbool(Load *L, const cJSON *obj, const char *jp, const char *key, bool def, bool *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) { *out = def; return 0; }
    char p[512];
    jpath(p, sizeof p, jp, key);
    if (!cJSON_IsBool(v)) return JERR(L, p, "expected true or false, found %s", jtype(v));
    *out = cJSON_IsTrue(v);
    return 0;
}

// Optional string: missing or null gives NULL.
static int jstr(Load *L, const cJSON *obj, const char *jp, const char *key, const char **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v)) return 0;
    char p[512];
    jpath(p, sizeof p, jp, key);
    if (!cJSON_IsString(v)) return JERR(L, p, "expected a string, found %s", jtype(v));
    *out = v->valuestring;
    return 0;
}

static int jint(Load *L, const cJSON *v, const char *jp, int lo, int hi, int *out) {
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(long long)v->valuedouble || v->valuedouble < lo ||
        v->valuedouble > hi)
        return JERR(L, jp, "expected an integer in [%d, %d], found %s", lo, hi, cJSON_IsNumber(v) ? "another number" : jtype(v));
    *out = (int)v->valuedouble;
    return 0;
}

static const cJSON *jobj(Load *L, const cJSON *obj, const char *jp, const char *key, bool required) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    char p[512];
    jpath(p, sizeof p, jp, key);
    if ((!v || cJSON_IsNull(v)) && !required) return NULL;
    if (!cJSON_IsObject(v)) { JERR(L, p, "expected an object, found %s", jtype(v)); return NULL; }
    return v;
}

static const cJSON *jarr(Load *L, const cJSON *obj, const char *jp, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    char p[512];
    jpath(p, sizeof p, jp, key);
    if (!cJSON_IsArray(v)) { JERR(L, p, "expected an array, found %s", jtype(v)); return NULL; }
    return v;
}

static const char *jtypename(Load *L, const cJSON *obj, const char *jp) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(obj, "type");
    char p[512];
    jpath(p, sizeof p, jp, "type");
    if (!cJSON_IsString(ty)) { JERR(L, p, "expected a string naming the component, found %s", jtype(ty)); return NULL; }
    return ty->valuestring;
}

// PCRE2's \s also matches U+180E, which Unicode (since 6.3), Oniguruma (HF tokenizers) and JavaScript
// treat as a format character: \s and \S are rewritten to the White_Space set. \S inside a class is
// left alone (no tokenizer writes it).
// Written with \uHHHH: under PCRE2_ALT_BSUX (needed for Oniguruma's \uHHHH) \x takes two digits only.
#define WHITE_SPACE "\\t\\n\\x0b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
static char *rewrite_whitespace(const char *re) {
    size_t n = strlen(re);
    TokText out = {0};
    bool in_class = false;
    for (size_t i = 0; i < n;) {
        char c = re[i];
        int rc = 0;
        if (c == '\\' && i + 1 < n) {
            char e = re[i + 1];
            if (e == 's') rc = tok_text_append(&out, in_class ? WHITE_SPACE : "[" WHITE_SPACE "]",
                                              strlen(in_class ? WHITE_SPACE : "[" WHITE_SPACE "]"));
            else if (e == 'S' && !in_class) rc = tok_text_append(&out, "[^" WHITE_SPACE "]", strlen("[^" WHITE_SPACE "]"));
            else rc = tok_text_append(&out, re + i, 2);
            i += 2;
        } else if (c == '[' && !in_class) {
            // "[", "[^", then a "]" right there is a literal, not the end of the class.
            size_t j = i + 1;
            if (j < n && re[j] == '^') j++;
            if (j < n && re[j] == ']') j++;
            rc = tok_text_append(&out, re + i, j - i);
            in_class = true;
            i = j;
        } else if (c == '[' && in_class && i + 1 < n && re[i + 1] == ':') {
            const char *end = strstr(re + i + 2, ":]");
            size_t j = end ? (size_t)(end - re) + 2 : i + 1;
            rc = tok_text_append(&out, re + i, j - i);
            i = j;
        } else {
            if (c == ']') in_class = false;
            rc = tok_text_append(&out, re + i, 1);
            i++;
        }
        if (rc) { tok_text_free(&out); return NULL; }
    }
    if (!out.s && tok_text_append(&out, "", 0)) return NULL;
    return out.s;
}

// A String pattern as a regex: ASCII punctuation escaped (PCRE2_LITERAL refuses PCRE2_MATCH_INVALID_UTF).
static char *escape_literal(const char *s) {
    TokText out = {0};
    for (; *s; s++) {
        bool meta = (unsigned char)*s < 0x80 && !(*s >= '0' && *s <= '9') && !((*s | 32) >= 'a' && (*s | 32) <= 'z');
        if ((meta && tok_text_append(&out, "\\", 1)) || tok_text_append(&out, s, 1)) { tok_text_free(&out); return NULL; }
    }
    if (!out.s && tok_text_append(&out, "", 0)) return NULL;
    return out.s;
}

static pcre2_code *compile_regex(const char *pattern, bool literal, int *ec, PCRE2_SIZE *eo) {
    char *rewritten = literal ? escape_literal(pattern) : rewrite_whitespace(pattern);
    if (!rewritten) { *ec = PCRE2_ERROR_NOMEMORY; *eo = 0; return NULL; }
    // Oniguruma syntax (what HF exports) is PCRE2 syntax for everything tokenizers use, plus \uHHHH.
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    if (!cc) { free(rewritten); *ec = PCRE2_ERROR_NOMEMORY; *eo = 0; return NULL; }
    pcre2_set_compile_extra_options(cc, PCRE2_EXTRA_ALT_BSUX);
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_ALT_BSUX;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)rewritten, strlen(rewritten), opts, ec, eo, cc);
    pcre2_compile_context_free(cc);
    free(rewritten);
    if (re) pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);  // falls back to the interpreter where JIT is missing
    return re;
}

// A Split/Replace pattern: {"Regex": "..."} or {"String": "..."}.
static int jpattern(Load *L, const cJSON *obj, const char *jp, pcre2_code **out) {
    char p[512];
    jpath(p, sizeof p, jp, "pattern");
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(obj, "pattern");
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
    const cJSON *lit = cJSON_GetObjectItemCaseSensitive(pat, "String");
    const cJSON *v = re ? re : lit;
    if (!cJSON_IsObject(pat) || !cJSON_IsString(v))
        return JERR(L, p, "expected {\"Regex\": string} or {\"String\": string}, found %s", jtype(pat));
    int ec;
    PCRE2_SIZE eo;
    *out = compile_regex(v->valuestring, !re, &ec, &eo);
    if (!*out) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return JERR(L, p, "cannot compile regex at offset %zu: %s", (size_t)eo, (char *)msg);
    }
    return 0;
}

static int add_norm(Load *L, NormStep s) {
    TokenizerImpl *t = L->t;
    NormStep *p = realloc(t->norm, (size_t)(t->nnorm + 1) * sizeof *p);
    if (!p) return ERR("out of memory");
    t->norm = p;
    t->norm[t->nnorm++] = s;
    return 0;
}

static int add_pre(Load *L, PreStep s) {
    TokenizerImpl *t = L->t;
    PreStep *p = realloc(t->pre, (size_t)(t->npre + 1) * sizeof *p);
    if (!p) return ERR("out of memory");
    t->pre = p;
    t->pre[t->npre++] = s;
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// Components.

static int load_normalizer(Load *L, const cJSON *n, const char *jp) {
    if (!n || cJSON_IsNull(n)) return 0;
    if (!cJSON_IsObject(n)) return JERR(L, jp, "expected an object or null, found %s", jtype(n));
    const char *ty = jtypename(L, n, jp);
    if (!ty) return -1;
    NormStep s = {0};
    if (!strcmp(ty, "Sequence")) {
        const cJSON *arr = jarr(L, n, jp, "normalizers");
        if (!arr) return -1;
        int i = 0;
        for (const cJSON *c = arr->child; c; c = c->next, i++) {
            char p[512];
            snprintf(p, sizeof p, "%s.normalizers[%d]", jp, i);
            if (!cJSON_IsObject(c)) return JERR(L, p, "expected an object, found %s", jtype(c));
            TRY(load_normalizer(L, c, p));
        }
        return 0;
    }
    if (!strcmp(ty, "NFC")) s.type = NORM_NFC;
    else if (!strcmp(ty, "NFD")) s.type = NORM_NFD;
    else if (!strcmp(ty, "NFKC")) s.type = NORM_NFKC;
    else if (!strcmp(ty, "NFKD")) s.type = NORM_NFKD;
    else if (!strcmp(ty, "Lowercase")) s.type = NORM_LOWERCASE;
    else if (!strcmp(ty, "Strip")) {
        s.type = NORM_STRIP;
        TRY(jbool(L, n, jp, "strip_left", true, &s.strip_left));
        TRY(jbool(L, n, jp, "strip_right", true, &s.strip_right));
    } else if (!strcmp(ty, "Prepend") || !strcmp(ty, "Replace")) {
        const char *content;
        bool prepend = !strcmp(ty, "Prepend");
        TRY(jstr(L, n, jp, prepend ? "prepend" : "content", &content));
        char p[512];
        jpath(p, sizeof p, jp, prepend ? "prepend" : "content");
        if (!content) return JERR(L, p, "expected a string");
        s.type = prepend ? NORM_PREPEND : NORM_REPLACE;
        if (!prepend) TRY(jpattern(L, n, jp, &s.re));
        if (!(s.content = strdup(content))) { pcre2_code_free(s.re); return ERR("out of memory"); }
    } else {
        char p[512];
        jpath(p, sizeof p, jp, "type");
        return JERR(L, p, "unsupported normalizer \"%s\" (supported: NFC, NFD, NFKC, NFKD, Lowercase, Replace, "
                    "Prepend, Strip, Sequence)", ty);
    }
    if (add_norm(L, s)) { pcre2_code_free(s.re); free(s.content); return -1; }
    return 0;
}

static const char *GPT2_PATTERN =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static int load_pretokenizer(Load *L, const cJSON *n, const char *jp) {
    if (!n || cJSON_IsNull(n)) return 0;
    if (!cJSON_IsObject(n)) return JERR(L, jp, "expected an object or null, found %s", jtype(n));
    const char *ty = jtypename(L, n, jp);
    if (!ty) return -1;
    TokenizerImpl *t = L->t;
    if (t->byte_level) return JERR(L, jp, "a pre-tokenizer after ByteLevel is not supported (ByteLevel must come last)");
    PreStep s = {0};
    char p[512];
    if (!strcmp(ty, "Sequence")) {
        const cJSON *arr = jarr(L, n, jp, "pretokenizers");
        if (!arr) return -1;
        int i = 0;
        for (const cJSON *c = arr->child; c; c = c->next, i++) {
            snprintf(p, sizeof p, "%s.pretokenizers[%d]", jp, i);
            if (!cJSON_IsObject(c)) return JERR(L, p, "expected an object, found %s", jtype(c));
            TRY(load_pretokenizer(L, c, p));
        }
        return 0;
    }
    if (!strcmp(ty, "Split")) {
        s.type = PRE_SPLIT;
        const char *b;
        TRY(jstr(L, n, jp, "behavior", &b));
        jpath(p, sizeof p, jp, "behavior");
        if (!b) return JERR(L, p, "expected one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
        if (!strcmp(b, "Removed")) s.behavior = SPLIT_REMOVED;
        else if (!strcmp(b, "Isolated")) s.behavior = SPLIT_ISOLATED;
        else if (!strcmp(b, "MergedWithPrevious")) s.behavior = SPLIT_MERGED_PREV;
        else if (!strcmp(b, "MergedWithNext")) s.behavior = SPLIT_MERGED_NEXT;
        else if (!strcmp(b, "Contiguous")) s.behavior = SPLIT_CONTIGUOUS;
        else return JERR(L, p, "expected one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous, "
                         "found \"%s\"", b);
        TRY(jbool(L, n, jp, "invert", false, &s.invert));
        TRY(jpattern(L, n, jp, &s.re));
    } else if (!strcmp(ty, "ByteLevel")) {
        s.type = PRE_BYTELEVEL;
        bool use_regex;
        TRY(jbool(L, n, jp, "add_prefix_space", true, &s.add_prefix_space));
        TRY(jbool(L, n, jp, "use_regex", true, &use_regex));
        if (use_regex) {
            int ec;
            PCRE2_SIZE eo;
            if (!(s.re = compile_regex(GPT2_PATTERN, false, &ec, &eo))) return ERR("cannot compile the GPT-2 pattern");
        }
        t->byte_level = true;
    } else if (!strcmp(ty, "Digits")) {
        s.type = PRE_DIGITS;
        TRY(jbool(L, n, jp, "individual_digits", false, &s.individual_digits));
    } else if (!strcmp(ty, "Metaspace")) {
        s.type = PRE_METASPACE;
        const char *rep, *scheme;
        TRY(jstr(L, n, jp, "replacement", &rep));
        TRY(jstr(L, n, jp, "prepend_scheme", &scheme));
        jpath(p, sizeof p, jp, "replacement");
        int cp;
        if (!rep || !rep[0] || strlen(rep) != (size_t)utf8_next((const unsigned char *)rep, strlen(rep), &cp) || cp < 0)
            return JERR(L, p, "expected a string of one character");
        snprintf(s.replacement, sizeof s.replacement, "%s", rep);
        bool add_prefix_space;
        TRY(jbool(L, n, jp, "add_prefix_space", true, &add_prefix_space));
        TRY(jbool(L, n, jp, "split", true, &s.split));
        s.prepend = add_prefix_space ? PREPEND_ALWAYS : PREPEND_NEVER;
        if (scheme) {
            jpath(p, sizeof p, jp, "prepend_scheme");
            if (!strcmp(scheme, "always")) s.prepend = PREPEND_ALWAYS;
            else if (!strcmp(scheme, "first")) s.prepend = PREPEND_FIRST;
            else if (!strcmp(scheme, "never")) s.prepend = PREPEND_NEVER;
            else return JERR(L, p, "expected \"always\", \"first\" or \"never\", found \"%s\"", scheme);
        }
    } else {
        jpath(p, sizeof p, jp, "type");
        return JERR(L, p, "unsupported pre-tokenizer \"%s\" (supported: Split, ByteLevel, Digits, Metaspace, "
                    "Sequence)", ty);
    }
    if (add_pre(L, s)) { pcre2_code_free(s.re); return -1; }
    return 0;
}

static int push_int(int **arr, int *n, int v) {
    int *p = realloc(*arr, (size_t)(*n + 1) * sizeof(int));
    if (!p) return ERR("out of memory");
    *arr = p;
    (*arr)[(*n)++] = v;
    return 0;
}

static int load_postprocessor(Load *L, const cJSON *n, const char *jp) {
    if (!n || cJSON_IsNull(n)) return 0;
    if (!cJSON_IsObject(n)) return JERR(L, jp, "expected an object or null, found %s", jtype(n));
    const char *ty = jtypename(L, n, jp);
    if (!ty) return -1;
    TokenizerImpl *t = L->t;
    char p[512], q[600];
    if (!strcmp(ty, "ByteLevel")) return 0;   // changes offsets only, never ids
    if (!strcmp(ty, "Sequence")) {
        const cJSON *arr = jarr(L, n, jp, "processors");
        if (!arr) return -1;
        int i = 0;
        for (const cJSON *c = arr->child; c; c = c->next, i++) {
            snprintf(p, sizeof p, "%s.processors[%d]", jp, i);
            TRY(load_postprocessor(L, c, p));
        }
        return 0;
    }
    if (!strcmp(ty, "BertProcessing") || !strcmp(ty, "RobertaProcessing")) {
        const char *keys[2] = {"cls", "sep"};
        for (int k = 0; k < 2; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(n, keys[k]);
            jpath(p, sizeof p, jp, keys[k]);
            int id;
            if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 || !cJSON_IsString(v->child))
                return JERR(L, p, "expected [token, id]");
            snprintf(q, sizeof q, "%s[1]", p);
            TRY(jint(L, v->child->next, q, 0, 1 << 30, &id));
            TRY(k == 0 ? push_int(&t->tmpl_pre, &t->ntmpl_pre, id) : push_int(&t->tmpl_post, &t->ntmpl_post, id));
        }
        return 0;
    }
    if (strcmp(ty, "TemplateProcessing")) {
        jpath(p, sizeof p, jp, "type");
        return JERR(L, p, "unsupported post-processor \"%s\" (supported: TemplateProcessing, ByteLevel, "
                    "BertProcessing, RobertaProcessing, Sequence)", ty);
    }
    const cJSON *single = jarr(L, n, jp, "single");
    if (!single) return -1;
    const cJSON *specials = jobj(L, n, jp, "special_tokens", false);
    if (!specials && cJSON_GetObjectItemCaseSensitive(n, "special_tokens") &&
        !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(n, "special_tokens")))
        return -1;
    bool seen_a = false;
    int i = 0;
    for (const cJSON *it = single->child; it; it = it->next, i++) {
        snprintf(p, sizeof p, "%s.single[%d]", jp, i);
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
        const cJSON *sq = cJSON_GetObjectItemCaseSensitive(it, "Sequence");
        if (cJSON_IsObject(sq)) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(sq, "id");
            if (!cJSON_IsString(id) || strcmp(id->valuestring, "A") || seen_a)
                return JERR(L, p, "expected the sequence \"A\" once in a single-sequence template");
            seen_a = true;
            continue;
        }
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(sp, "id");
        if (!cJSON_IsObject(sp) || !cJSON_IsString(name))
            return JERR(L, p, "expected {\"SpecialToken\": {\"id\": string}} or {\"Sequence\": {\"id\": \"A\"}}");
        // The ids come from special_tokens, as in HF tokenizers.
        const cJSON *ent = specials ? cJSON_GetObjectItemCaseSensitive(specials, name->valuestring) : NULL;
        const cJSON *ids = ent ? cJSON_GetObjectItemCaseSensitive(ent, "ids") : NULL;
        snprintf(q, sizeof q, "%s.special_tokens[\"%s\"].ids", jp, name->valuestring);
        if (ent && !cJSON_IsArray(ids)) return JERR(L, q, "expected an array of ids, found %s", jtype(ids));
        if (!ent) {
            // Not in special_tokens: the name itself is looked up (the model and added tokens are loaded).
            int id = -1;
            for (int j = 0; j < t->nadded; j++)
                if (!strcmp(t->added[j].content, name->valuestring)) id = t->added[j].id;
            if (id < 0) id = strmap_get(&t->vocab, t->key, t->key_len, name->valuestring, strlen(name->valuestring));
            if (id < 0) return JERR(L, p, "special token \"%s\" is neither in special_tokens nor a known token",
                                    name->valuestring);
            TRY(push_int(seen_a ? &t->tmpl_post : &t->tmpl_pre, seen_a ? &t->ntmpl_post : &t->ntmpl_pre, id));
            continue;
        }
        int k = 0;
        for (const cJSON *x = ids->child; x; x = x->next, k++) {
            char r[700];
            int id;
            snprintf(r, sizeof r, "%s[%d]", q, k);
            TRY(jint(L, x, r, 0, 1 << 30, &id));
            TRY(push_int(seen_a ? &t->tmpl_post : &t->tmpl_pre, seen_a ? &t->ntmpl_post : &t->ntmpl_pre, id));
        }
    }
    if (!seen_a) return JERR(L, p, "the single-sequence template has no {\"Sequence\": {\"id\": \"A\"}}");
    return 0;
}

// Decoder steps that act on one token at a time transform each token's piece in place; Fuse (and the
// Metaspace rule for the first token) act on the whole text: only "strip N leading spaces" is supported.
typedef enum { DEC_BYTELEVEL, DEC_BYTEFALLBACK, DEC_REPLACE, DEC_STRIP, DEC_METASPACE } DecType;
typedef struct {
    DecType type;
    pcre2_code *re;
    char *content;       // Replace: replacement; Metaspace: the replacement character
    char strip_char;
    int start, stop;
} DecStep;

static int load_decoder(Load *L, const cJSON *n, const char *jp, DecStep **steps, int *nsteps, bool *fused) {
    if (!n || cJSON_IsNull(n)) return 0;
    if (!cJSON_IsObject(n)) return JERR(L, jp, "expected an object or null, found %s", jtype(n));
    const char *ty = jtypename(L, n, jp);
    if (!ty) return -1;
    char p[512];
    DecStep s = {0};
    if (!strcmp(ty, "Sequence")) {
        const cJSON *arr = jarr(L, n, jp, "decoders");
        if (!arr) return -1;
        int i = 0;
        for (const cJSON *c = arr->child; c; c = c->next, i++) {
            snprintf(p, sizeof p, "%s.decoders[%d]", jp, i);
            TRY(load_decoder(L, c, p, steps, nsteps, fused));
        }
        return 0;
    }
    if (!strcmp(ty, "Fuse")) { *fused = true; return 0; }
    if (!strcmp(ty, "ByteLevel")) s.type = DEC_BYTELEVEL;
    else if (!strcmp(ty, "ByteFallback")) s.type = DEC_BYTEFALLBACK;
    else if (!strcmp(ty, "Replace")) {
        s.type = DEC_REPLACE;
        const char *content;
        TRY(jstr(L, n, jp, "content", &content));
        jpath(p, sizeof p, jp, "content");
        if (!content) return JERR(L, p, "expected a string");
        TRY(jpattern(L, n, jp, &s.re));
        s.content = strdup(content);
    } else if (!strcmp(ty, "Strip")) {
        s.type = DEC_STRIP;
        const char *content;
        TRY(jstr(L, n, jp, "content", &content));
        jpath(p, sizeof p, jp, "content");
        if (!content || strlen(content) != 1) return JERR(L, p, "expected a one-byte string");
        s.strip_char = content[0];
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(n, "start"), *b = cJSON_GetObjectItemCaseSensitive(n, "stop");
        jpath(p, sizeof p, jp, "start");
        TRY(jint(L, a, p, 0, 1 << 20, &s.start));
        jpath(p, sizeof p, jp, "stop");
        TRY(jint(L, b, p, 0, 1 << 20, &s.stop));
        if (*fused) {
            if (s.stop || s.strip_char != ' ')
                return JERR(L, jp, "Strip after Fuse is supported only for leading spaces (content \" \", stop 0)");
            L->t->strip_lead += s.start;
            return 0;
        }
    } else if (!strcmp(ty, "Metaspace")) {
        s.type = DEC_METASPACE;
        const char *rep, *scheme;
        bool add_prefix_space;
        TRY(jstr(L, n, jp, "replacement", &rep));
        TRY(jstr(L, n, jp, "prepend_scheme", &scheme));
        TRY(jbool(L, n, jp, "add_prefix_space", true, &add_prefix_space));
        jpath(p, sizeof p, jp, "replacement");
        if (!rep || !rep[0]) return JERR(L, p, "expected a string of one character");
        s.content = strdup(rep);
        if (scheme ? strcmp(scheme, "never") != 0 : add_prefix_space) L->t->strip_lead += 1;
    } else {
        jpath(p, sizeof p, jp, "type");
        return JERR(L, p, "unsupported decoder \"%s\" (supported: ByteLevel, ByteFallback, Metaspace, Replace, "
                    "Strip, Fuse, Sequence)", ty);
    }
    DecStep *q = realloc(*steps, (size_t)(*nsteps + 1) * sizeof *q);
    if (q) *steps = q;
    if (!q || ((s.type == DEC_REPLACE || s.type == DEC_METASPACE) && !s.content)) {
        pcre2_code_free(s.re);
        free(s.content);
        return ERR("out of memory");
    }
    (*steps)[(*nsteps)++] = s;
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// Model, added tokens, decode pieces, tokenizer_config.json.

static int set_token(Load *L, int id, const char *s, const char *jp) {
    TokenizerImpl *t = L->t;
    if (t->str[id]) return JERR(L, jp, "id %d is used by both \"%s\" and \"%s\"", id, t->str[id], s);
    if (!(t->str[id] = strdup(s))) return ERR("out of memory");
    t->str_len[id] = (int)strlen(s);
    return 0;
}

// Model space for byte-level BPE: each character of the token stands for one byte. NULL if some
// character is outside the byte alphabet (such a token is reachable only as an added token).
static char *bytelevel_key(const char *s, int n, int *out_len) {
    char *k = malloc((size_t)n + 1);
    if (!k) return NULL;
    int m = 0;
    for (int i = 0; i < n;) {
        int cp;
        i += utf8_next((const unsigned char *)s + i, (size_t)(n - i), &cp);
        int b = bytelevel_byte(cp);
        if (b < 0) { free(k); return NULL; }
        k[m++] = (char)b;
    }
    *out_len = m;
    return k;
}

static int merge_put(MergeMap *m, int a, int b, int rank, int merged) {
    if (m->cap == 0) return ERR("merge map not sized");
    uint64_t key = merge_key(a, b);
    for (uint32_t i = merge_slot(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->key[i] == 0 || m->key[i] == key) {
            m->key[i] = key;           // a repeated pair keeps the later rank, as HF tokenizers does
            m->rank[i] = rank;
            m->merged[i] = merged;
            return 0;
        }
    }
}

static int load_merges(Load *L, const cJSON *model) {
    TokenizerImpl *t = L->t;
    const cJSON *merges = jarr(L, model, "model", "merges");
    if (!merges) return -1;
    int n = cJSON_GetArraySize(merges);
    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)n + 16) cap *= 2;
    t->merges.cap = cap;
    t->merges.key = grpo_calloc(cap, sizeof(uint64_t), "BPE merges");
    t->merges.rank = grpo_malloc(cap * sizeof(int), "BPE merges");
    t->merges.merged = grpo_malloc(cap * sizeof(int), "BPE merges");
    if (!t->merges.key || !t->merges.rank || !t->merges.merged) return -1;
    char *buf = NULL;
    size_t bufcap = 0;
    int i = 0, rc = 0;
    for (const cJSON *m = merges->child; m && !rc; m = m->next, i++) {
        char p[64];
        snprintf(p, sizeof p, "model.merges[%d]", i);
        const char *a, *b;
        size_t la, lb;
        if (cJSON_IsString(m)) {
            const char *sp = strchr(m->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' ') || sp == m->valuestring || !sp[1]) {
                rc = JERR(L, p, "expected a string \"a b\" or an array of two strings, found \"%s\"", m->valuestring);
                break;
            }
            a = m->valuestring; la = (size_t)(sp - a);
            b = sp + 1; lb = strlen(b);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                   cJSON_IsString(m->child->next)) {
            a = m->child->valuestring; la = strlen(a);
            b = m->child->next->valuestring; lb = strlen(b);
        } else {
            rc = JERR(L, p, "expected a string \"a b\" or an array of two strings, found %s", jtype(m));
            break;
        }
        if (la + lb + 1 > bufcap) {
            bufcap = 2 * (la + lb + 1);
            char *q = realloc(buf, bufcap);
            if (!q) { rc = ERR("out of memory"); break; }
            buf = q;
        }
        memcpy(buf, a, la);
        memcpy(buf + la, b, lb);
        buf[la + lb] = 0;
        int ia = strmap_get(&t->by_str, t->str, t->str_len, a, la);
        int ib = strmap_get(&t->by_str, t->str, t->str_len, b, lb);
        int im = strmap_get(&t->by_str, t->str, t->str_len, buf, la + lb);
        if (ia < 0 || ib < 0) rc = JERR(L, p, "\"%.*s\" is not in model.vocab", (int)(ia < 0 ? la : lb), ia < 0 ? a : b);
        else if (im < 0) rc = JERR(L, p, "the merged token \"%s\" is not in model.vocab", buf);
        else rc = merge_put(&t->merges, ia, ib, i, im);
    }
    free(buf);
    return rc;
}

static int load_model(Load *L, const cJSON *root, const cJSON *model) {
    TokenizerImpl *t = L->t;
    const char *ty;
    TRY(jstr(L, model, "model", "type", &ty));
    if (ty ? strcmp(ty, "BPE") != 0 : !cJSON_GetObjectItemCaseSensitive(model, "merges"))
        return JERR(L, "model.type", "unsupported model \"%s\" (supported: BPE)", ty ? ty : "(no type)");
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (dropout && !cJSON_IsNull(dropout) && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0))
        return JERR(L, "model.dropout", "expected null: BPE dropout (random merges) is for training tokenizers");
    const char *keys[2] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int k = 0; k < 2; k++) {
        const char *v;
        char p[64];
        TRY(jstr(L, model, "model", keys[k], &v));
        snprintf(p, sizeof p, "model.%s", keys[k]);
        if (v && v[0]) return JERR(L, p, "expected null or \"\": word prefixes/suffixes are not supported");
    }
    const char *unk;
    TRY(jstr(L, model, "model", "unk_token", &unk));
    TRY(jbool(L, model, "model", "byte_fallback", false, &t->byte_fallback));
    TRY(jbool(L, model, "model", "ignore_merges", false, &t->ignore_merges));
    TRY(jbool(L, model, "model", "fuse_unk", false, &t->fuse_unk));
    const cJSON *vocab = jobj(L, model, "model", "vocab", true);
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!vocab) return -1;
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))
        return JERR(L, "added_tokens", "expected an array, found %s", jtype(added));

    // Size every per-id array by the largest id among the vocab and the added tokens.
    int maxid = -1;
    for (const cJSON *v = vocab->child; v; v = v->next) {
        char p[300];
        snprintf(p, sizeof p, "model.vocab[\"%.200s\"]", v->string);
        int id = 0;
        TRY(jint(L, v, p, 0, (1 << 24) - 1, &id));
        if (id > maxid) maxid = id;
    }
    int i = 0;
    for (const cJSON *a = added ? added->child : NULL; a; a = a->next, i++) {
        char p[64];
        snprintf(p, sizeof p, "added_tokens[%d].id", i);
        int id = 0;
        if (!cJSON_IsObject(a)) return JERR(L, p, "expected an object");
        TRY(jint(L, cJSON_GetObjectItemCaseSensitive(a, "id"), p, 0, (1 << 24) - 1, &id));
        if (id > maxid) maxid = id;
    }
    if (maxid < 0) return JERR(L, "model.vocab", "expected at least one token");
    int V = t->V = maxid + 1;
    t->str = grpo_calloc((size_t)V, sizeof(char *), "token strings");
    t->str_len = grpo_calloc((size_t)V, sizeof(int), "token strings");
    t->key = grpo_calloc((size_t)V, sizeof(char *), "token keys");
    t->key_len = grpo_calloc((size_t)V, sizeof(int), "token keys");
    t->special = grpo_calloc((size_t)V, sizeof(bool), "token flags");
    if (!t->str || !t->str_len || !t->key || !t->key_len || !t->special) return -1;
    for (const cJSON *v = vocab->child; v; v = v->next) {
        char p[300];
        snprintf(p, sizeof p, "model.vocab[\"%.200s\"]", v->string);
        int id = (int)v->valuedouble;
        TRY(set_token(L, id, v->string, p));
        TRY(strmap_put(&t->by_str, t->str, t->str_len, id));
        if (t->byte_level) {
            t->key[id] = bytelevel_key(t->str[id], t->str_len[id], &t->key_len[id]);
            if (!t->key[id]) continue;
        } else {
            if (!(t->key[id] = strdup(t->str[id]))) return ERR("out of memory");
            t->key_len[id] = t->str_len[id];
        }
        TRY(strmap_put(&t->vocab, t->key, t->key_len, id));
    }
    t->unk_id = -1;
    if (unk && (t->unk_id = strmap_get(&t->by_str, t->str, t->str_len, unk, strlen(unk))) < 0)
        return JERR(L, "model.unk_token", "\"%s\" is not in model.vocab", unk);
    for (int b = 0; b < 256; b++) {
        char c = (char)b, hex[8];
        t->byte_id[b] = t->byte_level ? strmap_get(&t->vocab, t->key, t->key_len, &c, 1) : -1;
        snprintf(hex, sizeof hex, "<0x%02X>", b);
        t->byte_fallback_id[b] = t->byte_fallback ? strmap_get(&t->by_str, t->str, t->str_len, hex, strlen(hex)) : -1;
    }
    return load_merges(L, model);
}

static int load_added(Load *L, const cJSON *root) {
    TokenizerImpl *t = L->t;
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    int n = cJSON_GetArraySize(added);
    if (!n) return 0;
    if (!(t->added = grpo_calloc((size_t)n, sizeof(AddedToken), "added tokens"))) return -1;
    TokText norm = {0};
    int i = 0, rc = 0;
    for (const cJSON *a = added->child; a && !rc; a = a->next, i++) {
        char jp[64];
        snprintf(jp, sizeof jp, "added_tokens[%d]", i);
        AddedToken *at = &t->added[t->nadded];
        const char *content;
        at->id = (int)cJSON_GetObjectItemCaseSensitive(a, "id")->valuedouble;
        if ((rc = jstr(L, a, jp, "content", &content))) break;
        if (!content || !content[0]) { rc = JERR(L, jp, "expected a non-empty string \"content\""); break; }
        if ((rc = jbool(L, a, jp, "special", false, &at->special)) || (rc = jbool(L, a, jp, "lstrip", false, &at->lstrip)) ||
            (rc = jbool(L, a, jp, "rstrip", false, &at->rstrip)) ||
            (rc = jbool(L, a, jp, "single_word", false, &at->single_word)) ||
            (rc = jbool(L, a, jp, "normalized", !at->special, &at->normalized)))
            break;
        t->nadded++;
        // An added token may repeat a vocab entry (same id, same string); anything else is a conflict.
        if (t->str[at->id] && strcmp(t->str[at->id], content)) {
            rc = JERR(L, jp, "id %d is \"%s\" in model.vocab but \"%s\" here", at->id, t->str[at->id], content);
            break;
        }
        if (!t->str[at->id]) {
            if ((rc = set_token(L, at->id, content, jp))) break;
            if ((rc = strmap_put(&t->by_str, t->str, t->str_len, at->id))) break;
        }
        t->special[at->id] = at->special;
        const char *form = content;
        size_t len = strlen(content);
        if (at->normalized && t->nnorm) {
            if ((rc = tok_normalize(&norm, t, content, len))) break;
            form = norm.s;
            len = norm.n;
        }
        if (!(at->content = malloc(len + 1))) { rc = ERR("out of memory"); break; }
        memcpy(at->content, form, len);
        at->content[len] = 0;
        at->len = len;
        if (len) rc = trie_add(at->normalized ? &t->trie_norm : &t->trie_raw, at->content, len, t->nadded - 1);
    }
    tok_text_free(&norm);
    return rc;
}

static int build_pieces(Load *L, const DecStep *steps, int nsteps, bool has_decoder) {
    TokenizerImpl *t = L->t;
    t->join_space = !has_decoder;
    t->piece = grpo_calloc((size_t)t->V, sizeof(char *), "decode pieces");
    t->piece_len = grpo_calloc((size_t)t->V, sizeof(int), "decode pieces");
    if (!t->piece || !t->piece_len) return -1;
    bool *is_added = grpo_calloc((size_t)t->V, sizeof(bool), "decode pieces");
    if (!is_added) return -1;
    for (int i = 0; i < t->nadded; i++) is_added[t->added[i].id] = true;
    TokText a = {0}, b = {0};
    int rc = 0;
    for (int id = 0; id < t->V && !rc; id++) {
        if (!t->str[id]) continue;
        a.n = 0;
        if ((rc = tok_text_append(&a, t->str[id], (size_t)t->str_len[id]))) break;
        // Added tokens decode to their text as written, so that decode(encode(x)) == x holds for them too.
        for (int k = 0; k < nsteps && !is_added[id] && !rc; k++) {
            const DecStep *s = &steps[k];
            if (s->type == DEC_BYTELEVEL) {
                int kl;
                char *bytes = bytelevel_key(a.s, (int)a.n, &kl);
                if (bytes) { a.n = 0; rc = tok_text_append(&a, bytes, (size_t)kl); free(bytes); }
            } else if (s->type == DEC_BYTEFALLBACK) {
                unsigned x;
                char tail;
                if (a.n == 6 && sscanf(a.s, "<0x%2X%c", &x, &tail) == 2 && tail == '>') {
                    char c = (char)x;
                    a.n = 0;
                    rc = tok_text_append(&a, &c, 1);
                }
            } else if (s->type == DEC_REPLACE || s->type == DEC_METASPACE) {
                b.n = 0;
                if (s->type == DEC_REPLACE) rc = tok_replace_all(&b, s->re, t->md, a.s, a.n, s->content);
                else {
                    size_t rl = strlen(s->content);
                    for (size_t i = 0; i < a.n && !rc;) {
                        if (i + rl <= a.n && !memcmp(a.s + i, s->content, rl)) { rc = tok_text_append(&b, " ", 1); i += rl; }
                        else { rc = tok_text_append(&b, a.s + i, 1); i++; }
                    }
                }
                TokText tmp = a; a = b; b = tmp;
            } else if (s->type == DEC_STRIP) {
                size_t lo = 0, hi = a.n;
                for (int j = 0; j < s->start && lo < hi && a.s[lo] == s->strip_char; j++) lo++;
                for (int j = 0; j < s->stop && hi > lo && a.s[hi - 1] == s->strip_char; j++) hi--;
                memmove(a.s, a.s + lo, hi - lo);
                a.n = hi - lo;
            }
        }
        if (rc) break;
        if (!(t->piece[id] = malloc(a.n + 1))) { rc = ERR("out of memory"); break; }
        memcpy(t->piece[id], a.s ? a.s : "", a.n);
        t->piece[id][a.n] = 0;
        t->piece_len[id] = (int)a.n;
    }
    tok_text_free(&a);
    tok_text_free(&b);
    free(is_added);
    return rc;
}

// bos_token and friends are a string or {"content": string, ...}; null or missing gives -1.
static int config_token(Load *L, const cJSON *cfg, const char *key, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v || cJSON_IsNull(v)) return 0;
    const cJSON *c = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "content") : v;
    if (!cJSON_IsString(c)) return JERR(L, key, "expected a string or an object with a string \"content\"");
    TokenizerImpl *t = L->t;
    *out = strmap_get(&t->by_str, t->str, t->str_len, c->valuestring, strlen(c->valuestring));
    if (*out < 0) return JERR(L, key, "\"%s\" is not a token of tokenizer.json", c->valuestring);
    return 0;
}

static int well_known(TokenizerImpl *t, const char *const *names) {
    for (; *names; names++) {
        int id = strmap_get(&t->by_str, t->str, t->str_len, *names, strlen(*names));
        if (id >= 0) return id;
    }
    return -1;
}

static int load_config(Load *L, const cJSON *cfg) {
    TokenizerImpl *t = L->t;
    static const char *const EOS[] = {"<｜end▁of▁sentence｜>", "<|im_end|>", "<|endoftext|>", "</s>", "<eos>",
                                      "<|end_of_text|>", NULL};
    static const char *const PAD[] = {"<｜▁pad▁｜>", "<pad>", "<|endoftext|>", "<|finetune_right_pad_id|>", NULL};
    t->bos = t->ntmpl_pre ? t->tmpl_pre[0] : -1;
    t->eos = well_known(t, EOS);
    t->pad = well_known(t, PAD);
    if (!cfg) return 0;
    if (!cJSON_IsObject(cfg)) return JERR(L, "", "expected an object");
    TRY(config_token(L, cfg, "bos_token", &t->bos));
    TRY(config_token(L, cfg, "eos_token", &t->eos));
    TRY(config_token(L, cfg, "pad_token", &t->pad));
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
    const cJSON *ae = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
    if (ab && !cJSON_IsBool(ab)) return JERR(L, "add_bos_token", "expected true or false");
    if (ae && !cJSON_IsBool(ae)) return JERR(L, "add_eos_token", "expected true or false");
    if (!ab && !ae) return 0;
    // transformers' rule for Llama-style tokenizers (DeepSeek-V3 among them): these flags replace the
    // post-processor of tokenizer.json.
    t->ntmpl_pre = t->ntmpl_post = 0;
    if (cJSON_IsTrue(ab)) {
        if (t->bos < 0) return JERR(L, "add_bos_token", "true, but there is no bos_token");
        TRY(push_int(&t->tmpl_pre, &t->ntmpl_pre, t->bos));
    }
    if (cJSON_IsTrue(ae)) {
        if (t->eos < 0) return JERR(L, "add_eos_token", "true, but there is no eos_token");
        TRY(push_int(&t->tmpl_post, &t->ntmpl_post, t->eos));
    }
    return 0;
}

void tokenizer_free(Tokenizer *tk) {
    if (!tk) return;
    TokenizerImpl *t = &tk->t;
    for (int i = 0; i < t->V; i++) {
        free(t->str[i]);
        if (t->key && t->key[i] != NULL) free(t->key[i]);
        if (t->piece) free(t->piece[i]);
    }
    free(t->str); free(t->str_len); free(t->key); free(t->key_len); free(t->piece); free(t->piece_len);
    free(t->special);
    free(t->by_str.slot); free(t->by_str.hash); free(t->vocab.slot); free(t->vocab.hash);
    free(t->merges.key); free(t->merges.rank); free(t->merges.merged);
    for (int i = 0; i < t->nadded; i++) free(t->added[i].content);
    free(t->added);
    trie_free(&t->trie_raw);
    trie_free(&t->trie_norm);
    for (int i = 0; i < t->nnorm; i++) { pcre2_code_free(t->norm[i].re); free(t->norm[i].content); }
    free(t->norm);
    for (int i = 0; i < t->npre; i++) pcre2_code_free(t->pre[i].re);
    free(t->pre);
    free(t->tmpl_pre); free(t->tmpl_post);
    pcre2_match_data_free(t->md);
    tok_text_free(&t->arena); tok_text_free(&t->norm_buf);
    free(t->pieces); free(t->pieces2); free(t->sym); free(t->heap);
    free(t->cache.ent);
    tok_text_free(&t->cache.keys);
    tok_ids_free(&t->cache.ids);
    free(tk);
}

static int load_all(Load *L, const cJSON *root, const cJSON *cfg, Load *Lcfg) {
    TokenizerImpl *t = L->t;
    if (!cJSON_IsObject(root)) return JERR(L, "", "expected a JSON object");
    if (!(t->md = pcre2_match_data_create(32, NULL))) return ERR("out of memory");
    TRY(load_normalizer(L, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), "normalizer"));
    TRY(load_pretokenizer(L, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), "pre_tokenizer"));
    const cJSON *model = jobj(L, root, "", "model", true);
    if (!model) return -1;
    TRY(load_model(L, root, model));
    TRY(load_added(L, root));
    TRY(load_postprocessor(L, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), "post_processor"));
    DecStep *steps = NULL;
    int nsteps = 0, rc;
    bool fused = false;
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    rc = load_decoder(L, dec, "decoder", &steps, &nsteps, &fused);
    if (!rc) rc = build_pieces(L, steps, nsteps, dec && !cJSON_IsNull(dec));
    for (int i = 0; i < nsteps; i++) { pcre2_code_free(steps[i].re); free(steps[i].content); }
    free(steps);
    TRY(rc);
    return load_config(Lcfg, cfg);
}

static Tokenizer *load_named(const char *json, const char *config_json, const char *name, const char *cfgname) {
    Tokenizer *tk = grpo_calloc(1, sizeof *tk, "tokenizer");
    if (!tk) return NULL;
    Load L = {name, &tk->t}, Lcfg = {cfgname, &tk->t};
    cJSON *root = cJSON_ParseWithOpts(json, NULL, 0), *cfg = NULL;
    int rc = 0;
    if (!root) rc = ERR("%s: not valid JSON (near byte %zu)", name, (size_t)(cJSON_GetErrorPtr() - json));
    else if (config_json && !(cfg = cJSON_Parse(config_json))) rc = ERR("%s: not valid JSON", cfgname);
    if (!rc) rc = load_all(&L, root, cfg, &Lcfg);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    if (rc) { tokenizer_free(tk); return NULL; }
    return tk;
}

Tokenizer *tokenizer_load_json(const char *json, const char *config_json, const char *name) {
    char cfgname[600];
    snprintf(cfgname, sizeof cfgname, "%s (tokenizer_config)", name);
    return load_named(json, config_json, name, cfgname);
}

Tokenizer *tokenizer_load(const char *path) {
    char file[4096], cfg[4096];
    if (path_is_dir(path)) snprintf(file, sizeof file, "%s/tokenizer.json", path);
    else snprintf(file, sizeof file, "%s", path);
    const char *slash = strrchr(file, '/');
    snprintf(cfg, sizeof cfg, "%.*stokenizer_config.json", slash ? (int)(slash - file + 1) : 0, file);
    char *json = read_file(file, NULL), *cjson = NULL;
    if (!json) return NULL;
    if (path_exists(cfg) && !(cjson = read_file(cfg, NULL))) { free(json); return NULL; }
    // Messages name the files as given, so that `model.merges[12]` can be found in them.
    Tokenizer *t = load_named(json, cjson, file, cfg);
    free(json);
    free(cjson);
    return t;
}
