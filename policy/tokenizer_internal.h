// The Tokenizer's insides, shared by tokenizer_load.c (tokenizer.json -> this struct) and tokenizer.c
// (encode, decode). Not part of the public interface: see tokenizer.h.
#pragma once
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>
#include "policy/tokenizer.h"

// Open-addressing table from a byte string to an id; the strings live elsewhere (key/key_len arrays).
typedef struct {
    int *slot;          // (cap,) id or -1
    uint32_t *hash;     // (cap,) low bits of the key's hash, to skip most string compares
    uint32_t cap;       // power of two
} StrMap;

// Pair of ids -> merge (rank, merged id).
typedef struct {
    uint64_t *key;      // (cap,) (a << 32 | b) + 1, 0 = empty
    int *rank, *merged; // (cap,)
    uint32_t cap;
} MergeMap;

// A trie over bytes for the added tokens (leftmost-longest matching).
typedef struct {
    int child, sibling; // node indices, -1 = none
    int token;          // index into Tokenizer.added, -1 = no token ends here
    unsigned char c;
} TrieNode;
typedef struct {
    TrieNode *nodes;
    int n, cap;
    uint8_t first[32];  // bitmap of first bytes, so the scan skips most positions with one test
} Trie;

typedef struct {
    char *content;      // as written (normalised form for "normalized": true tokens, matched after normalising)
    size_t len;
    int id;
    bool special, lstrip, rstrip, single_word, normalized;
} AddedToken;

typedef enum { NORM_NFC, NORM_NFD, NORM_NFKC, NORM_NFKD, NORM_LOWERCASE, NORM_REPLACE, NORM_PREPEND,
               NORM_STRIP } NormType;
typedef struct {
    NormType type;
    pcre2_code *re;     // Replace
    char *content;      // Replace: the replacement; Prepend: the prefix
    bool strip_left, strip_right;
} NormStep;

typedef enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS } SplitBehavior;
typedef enum { PRE_SPLIT, PRE_BYTELEVEL, PRE_DIGITS, PRE_METASPACE } PreType;
typedef enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER } PrependScheme;
typedef struct {
    PreType type;
    pcre2_code *re;     // Split; ByteLevel with use_regex (the GPT-2 pattern)
    SplitBehavior behavior;
    bool invert;
    bool add_prefix_space;          // ByteLevel
    bool individual_digits;         // Digits
    char replacement[8];            // Metaspace: the replacement character (UTF-8)
    PrependScheme prepend;          // Metaspace
    bool split;                     // Metaspace: split on the replacement, keeping it with the next word
} PreStep;

typedef struct {
    char **str;         // (V,) token strings as in tokenizer.json (NULL for unused ids)
    int *str_len;       // (V,)
    StrMap by_str;      // token string -> id (model vocab and added tokens)
    char **piece;       // (V,) bytes each token decodes to (decoder steps that act on one token)
    int *piece_len;     // (V,)
    bool *special;      // (V,)
    int V;              // one more than the largest id

    // BPE model. key/key_len: each model token in "model space", the form that BPE words take: the raw
    // bytes for byte-level tokenizers (Ġ -> 0x20 ...), else the token string.
    char **key; int *key_len;       // (V,)
    StrMap vocab;                   // model space -> id
    MergeMap merges;
    int byte_id[256];               // byte-level: the token of each single byte, -1 if absent
    int byte_fallback_id[256];      // byte_fallback: the id of "<0xXX>", -1 if absent
    bool byte_level, byte_fallback, ignore_merges, fuse_unk;
    int unk_id;

    AddedToken *added; int nadded;
    Trie trie_raw, trie_norm;       // tokens with normalized false / true

    NormStep *norm; int nnorm;
    PreStep *pre; int npre;

    int *tmpl_pre, ntmpl_pre;       // post-processor ids before the text (bos) ...
    int *tmpl_post, ntmpl_post;     // ... and after it (eos)

    int strip_lead;                 // decoder: leading spaces removed from the start of the text
    bool join_space;                // no decoder: tokens joined with a space (as HF does)
    int bos, eos, pad;

    // Encode scratch and the word cache (why the tokenizer is not thread-safe).
    pcre2_match_data *md;
    TokText arena, norm_buf;
    struct Piece { uint32_t off, len; } *pieces, *pieces2; int pieces_cap;
    struct Sym { int id, prev, next, len; } *sym; int sym_cap;
    struct HeapItem { int rank, pos, merged; } *heap; int heap_cap;
    struct {
        struct CacheEntry { uint64_t hash; uint32_t kofs, klen, iofs, ilen; } *ent;  // (cap,) klen 0 = empty
        uint32_t cap, used;
        TokText keys; TokIds ids;
    } cache;
} TokenizerImpl;

struct Tokenizer { TokenizerImpl t; };

uint64_t tok_hash(const void *p, size_t n);
static inline uint64_t merge_key(int a, int b) { return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1; }
static inline uint32_t merge_slot(uint64_t key) { return (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> 32); }
int strmap_put(StrMap *m, char **key, int *key_len, int id);
int strmap_get(const StrMap *m, char **key, int *key_len, const char *s, size_t n);
// UTF-8 decoding that never fails: an invalid byte is returned as one "character" of length 1, cp -1.
int utf8_next(const unsigned char *s, size_t n, int *cp);
// The byte-level alphabet of GPT-2: byte -> code point, and code point -> byte or -1.
int bytelevel_char(int byte);
int bytelevel_byte(int cp);
// Normalises s[0..n) with the tokenizer's normaliser into out (replacing its contents).
int tok_normalize(TokText *out, TokenizerImpl *t, const char *s, size_t n);
// Replaces every match of re in s[0..n) by rep, appending to out.
int tok_replace_all(TokText *out, pcre2_code *re, pcre2_match_data *md, const char *s, size_t n, const char *rep);
int trie_add(Trie *tr, const char *s, size_t n, int token);
void trie_free(Trie *tr);
