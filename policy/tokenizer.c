// Encode (added tokens -> normaliser -> pre-tokeniser -> BPE), decode, the streaming decoder, prompt
// templates and the project's small default tokenizer. Loading is in tokenizer_load.c.
#include "policy/tokenizer_internal.h"
#include "common/error.h"
#include "common/fileio.h"
#include <cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

void tok_ids_free(TokIds *v) { free(v->ids); memset(v, 0, sizeof *v); }
void tok_text_free(TokText *t) { free(t->s); memset(t, 0, sizeof *t); }

static int text_reserve(TokText *t, size_t extra) {
    if (t->n + extra + 1 <= t->cap) return 0;
    size_t cap = t->cap ? t->cap : 256;
    while (cap < t->n + extra + 1) cap *= 2;
    char *p = realloc(t->s, cap);
    if (!p) return ERR("out of memory growing a text buffer to %zu bytes", cap);
    t->s = p;
    t->cap = cap;
    return 0;
}

int tok_text_append(TokText *t, const char *s, size_t n) {
    TRY(text_reserve(t, n));
    if (n) memcpy(t->s + t->n, s, n);
    t->n += n;
    t->s[t->n] = 0;
    return 0;
}

// Unicode White_Space (Rust's char::is_whitespace), used by lstrip/rstrip and the Strip normaliser.
static bool is_white(int cp) {
    return (cp >= 9 && cp <= 13) || cp == ' ' || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f ||
           cp == 0x3000;
}

static bool is_alnum_cp(int cp) {
    if (cp < 0) return false;
    if (cp < 0x80) return (cp >= '0' && cp <= '9') || ((cp | 32) >= 'a' && (cp | 32) <= 'z');
    utf8proc_category_t c = utf8proc_category(cp);
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) || (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO);
}

// The code point that ends at s[end) (walking back over continuation bytes), or -1.
static int cp_before(const char *s, size_t start, size_t end, size_t *at) {
    size_t i = end;
    while (i > start && end - i < 4) {
        i--;
        if (((unsigned char)s[i] & 0xc0) != 0x80) break;
    }
    int cp;
    if (i < end && (size_t)utf8_next((const unsigned char *)s + i, end - i, &cp) == end - i) { *at = i; return cp; }
    *at = end - 1;
    return -1;
}

// pcre2_jit_match skips pcre2_match's checks (a fifth of the time on short pieces); patterns that the
// JIT could not compile go through the interpreter.
static inline int re_match(pcre2_code *re, const char *s, size_t n, size_t pos, pcre2_match_data *md) {
    int rc = pcre2_jit_match(re, (PCRE2_SPTR)s, n, pos, 0, md, NULL);
    if (rc == PCRE2_ERROR_JIT_BADOPTION) rc = pcre2_match(re, (PCRE2_SPTR)s, n, pos, 0, md, NULL);
    return rc;
}

// ---------------------------------------------------------------------------------------------------
// Normalisers.

int tok_replace_all(TokText *out, pcre2_code *re, pcre2_match_data *md, const char *s, size_t n, const char *rep) {
    size_t pos = 0, prev = 0, rl = strlen(rep);
    while (pos <= n) {
        int rc = re_match(re, s, n, pos, md);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return ERR("regex match failed (PCRE2 error %d)", rc);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] == ov[0]) {  // an empty match replaces nothing; step over one byte
            pos = ov[0] + 1;
            continue;
        }
        TRY(tok_text_append(out, s + prev, ov[0] - prev));
        TRY(tok_text_append(out, rep, rl));
        prev = pos = ov[1];
    }
    return tok_text_append(out, s + prev, n - prev);
}

// Unicode normal forms on the valid UTF-8 runs; invalid bytes pass through unchanged.
static int unicode_form(TokText *out, const char *s, size_t n, utf8proc_option_t opts) {
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        bool ascii = true;
        while (j < n) {
            int cp, l = utf8_next((const unsigned char *)s + j, n - j, &cp);
            if (cp < 0) break;
            ascii &= cp < 0x80;
            j += (size_t)l;
        }
        if (j > i && ascii) TRY(tok_text_append(out, s + i, j - i));
        else if (j > i) {
            utf8proc_uint8_t *dst = NULL;
            utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(j - i), &dst, opts);
            if (m < 0) return ERR("Unicode normalisation failed: %s", utf8proc_errmsg(m));
            int rc = tok_text_append(out, (const char *)dst, (size_t)m);
            free(dst);
            TRY(rc);
        }
        if (j < n) TRY(tok_text_append(out, s + j, 1));
        i = j + (j < n);
    }
    return 0;
}

static int lowercase(TokText *out, const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        int cp, l = utf8_next((const unsigned char *)s + i, n - i, &cp);
        if (cp < 0x80) {  // ASCII, and invalid bytes (cp -1) copied as they are
            char c = (char)(cp >= 'A' && cp <= 'Z' ? cp + 32 : (unsigned char)s[i]);
            TRY(tok_text_append(out, &c, 1));
        } else if (cp == 0x130) {
            TRY(tok_text_append(out, "i\xcc\x87", 3));  // the one full lowercase mapping of two characters
        } else {
            utf8proc_uint8_t buf[4];
            utf8proc_ssize_t m = utf8proc_encode_char(utf8proc_tolower(cp), buf);
            TRY(tok_text_append(out, (const char *)buf, (size_t)m));
        }
        i += (size_t)l;
    }
    return 0;
}

int tok_normalize(TokText *out, TokenizerImpl *t, const char *s, size_t n) {
    TokText a = {0};
    out->n = 0;
    TRY(tok_text_append(out, s, n));
    int rc = 0;
    for (int k = 0; k < t->nnorm && !rc; k++) {
        const NormStep *st = &t->norm[k];
        a.n = 0;
        switch (st->type) {
        case NORM_NFC: rc = unicode_form(&a, out->s, out->n, UTF8PROC_STABLE | UTF8PROC_COMPOSE); break;
        case NORM_NFD: rc = unicode_form(&a, out->s, out->n, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE); break;
        case NORM_NFKC: rc = unicode_form(&a, out->s, out->n, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT); break;
        case NORM_NFKD: rc = unicode_form(&a, out->s, out->n, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT); break;
        case NORM_LOWERCASE: rc = lowercase(&a, out->s, out->n); break;
        case NORM_REPLACE: rc = tok_replace_all(&a, st->re, t->md, out->s, out->n, st->content); break;
        case NORM_PREPEND:
            if (out->n) rc = tok_text_append(&a, st->content, strlen(st->content));
            if (!rc) rc = tok_text_append(&a, out->s, out->n);
            break;
        case NORM_STRIP: {
            size_t lo = 0, hi = out->n, at;
            int cp;
            while (st->strip_left && lo < hi) {
                int l = utf8_next((const unsigned char *)out->s + lo, hi - lo, &cp);
                if (!is_white(cp)) break;
                lo += (size_t)l;
            }
            while (st->strip_right && hi > lo && is_white(cp_before(out->s, lo, hi, &at))) hi = at;
            rc = tok_text_append(&a, out->s + lo, hi - lo);
            break;
        }
        }
        TokText tmp = *out; *out = a; a = tmp;
    }
    tok_text_free(&a);
    if (!out->s) rc = rc ? rc : tok_text_append(out, "", 0);
    return rc;
}

// ---------------------------------------------------------------------------------------------------
// Added tokens: the next accepted match in s[from..n), leftmost-longest, as HF's AddedVocabulary.
// [*ms, *me) includes the whitespace that lstrip/rstrip swallow. Returns 1 if found, 0 if not.

static int next_added(const TokenizerImpl *t, const Trie *tr, const char *s, size_t n, size_t from, int flags,
                      size_t *ms, size_t *me, int *tok) {
    if (!tr->n) return 0;
    const TrieNode *nodes = tr->nodes;
    for (size_t i = from; i < n; i++) {
        unsigned char c0 = (unsigned char)s[i];
        if (!(tr->first[c0 >> 3] & (1u << (c0 & 7)))) continue;
        int node = 0, best = -1;
        size_t best_end = 0;
        for (size_t j = i; j < n; j++) {
            int ch = nodes[node].child;
            while (ch >= 0 && nodes[ch].c != (unsigned char)s[j]) ch = nodes[ch].sibling;
            if (ch < 0) break;
            node = ch;
            if (nodes[node].token >= 0) { best = nodes[node].token; best_end = j + 1; }
        }
        if (best < 0) continue;
        const AddedToken *at = &t->added[best];
        size_t start = i, end = best_end, p;
        int cp;
        // A discarded match still consumes its text, as the matcher's non-overlapping iteration does.
        bool keep = !(at->special && !(flags & TOK_PARSE_SPECIAL));
        if (keep && at->single_word) {
            bool before = i > 0 && is_alnum_cp(cp_before(s, 0, i, &p));
            utf8_next((const unsigned char *)s + end, n - end, &cp);
            keep = !before && !(end < n && is_alnum_cp(cp));
        }
        if (!keep) { i = best_end - 1; continue; }
        if (at->lstrip)
            while (start > from && is_white(cp_before(s, from, start, &p))) start = p;
        if (at->rstrip)
            while (end < n) {
                int l = utf8_next((const unsigned char *)s + end, n - end, &cp);
                if (!is_white(cp)) break;
                end += (size_t)l;
            }
        *ms = start; *me = end; *tok = best;
        return 1;
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// Pre-tokenisers: pieces are (offset, length) in t->arena; each step maps the list to a new one.

typedef struct Piece Piece;

static int pieces_reserve(TokenizerImpl *t, int n) {
    if (n <= t->pieces_cap) return 0;
    int cap = t->pieces_cap ? t->pieces_cap : 256;
    while (cap < n) cap *= 2;
    Piece *a = realloc(t->pieces, (size_t)cap * sizeof(Piece));
    if (a) t->pieces = a;
    Piece *b = a ? realloc(t->pieces2, (size_t)cap * sizeof(Piece)) : NULL;
    if (b) t->pieces2 = b;
    if (!a || !b) return ERR("out of memory growing the pre-token list to %d pieces", cap);
    t->pieces_cap = cap;
    return 0;
}

// Emits the segments of one piece according to the split behaviour (HF's SplitDelimiterBehavior).
typedef struct { uint32_t off, len; bool match; } Seg;
typedef struct { Seg *s; int n, cap; } Segs;

static int seg_push(Segs *g, uint32_t off, uint32_t len, bool match) {
    if (!len) return 0;
    if (g->n == g->cap) {
        int cap = g->cap ? g->cap * 2 : 64;
        Seg *p = realloc(g->s, (size_t)cap * sizeof(Seg));
        if (!p) return ERR("out of memory splitting text");
        g->s = p;
        g->cap = cap;
    }
    g->s[g->n++] = (Seg){off, len, match};
    return 0;
}

static int emit_segments(TokenizerImpl *t, int *nout, const Segs *g, SplitBehavior b) {
    TRY(pieces_reserve(t, *nout + g->n));
    Piece *out = t->pieces2;
    int n = *nout, start_n = *nout;
    bool prev_match = false;
    for (int i = 0; i < g->n; i++) {
        const Seg *s = &g->s[i];
        switch (b) {
        case SPLIT_REMOVED:
            if (!s->match) out[n++] = (Piece){s->off, s->len};
            break;
        case SPLIT_ISOLATED:
            out[n++] = (Piece){s->off, s->len};
            break;
        case SPLIT_MERGED_PREV:
            if (s->match && !prev_match && n > start_n) out[n - 1].len += s->len;
            else out[n++] = (Piece){s->off, s->len};
            break;
        case SPLIT_CONTIGUOUS:
            if (s->match == prev_match && n > start_n) out[n - 1].len += s->len;
            else out[n++] = (Piece){s->off, s->len};
            break;
        case SPLIT_MERGED_NEXT:
            // A match joins the segment after it (when that one is not a match itself).
            if (!s->match && prev_match && n > start_n) out[n - 1].len += s->len;
            else out[n++] = (Piece){s->off, s->len};
            break;
        }
        prev_match = s->match;
    }
    *nout = n;
    return 0;
}

static int regex_segments(TokenizerImpl *t, Segs *g, pcre2_code *re, Piece pc, bool invert) {
    const char *s = t->arena.s + pc.off;
    size_t n = pc.len, pos = 0, prev = 0;
    g->n = 0;
    while (pos < n) {
        int rc = re_match(re, s, n, pos, t->md);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return ERR("regex match failed (PCRE2 error %d)", rc);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(t->md);
        if (ov[1] == ov[0]) {
            pos = ov[0] + 1;
            while (pos < n && ((unsigned char)s[pos] & 0xc0) == 0x80) pos++;
            continue;
        }
        TRY(seg_push(g, pc.off + (uint32_t)prev, (uint32_t)(ov[0] - prev), invert));
        TRY(seg_push(g, pc.off + (uint32_t)ov[0], (uint32_t)(ov[1] - ov[0]), !invert));
        prev = pos = ov[1];
    }
    return seg_push(g, pc.off + (uint32_t)prev, (uint32_t)(n - prev), invert);
}

static int digit_segments(TokenizerImpl *t, Segs *g, Piece pc, bool individual) {
    const char *s = t->arena.s + pc.off;
    g->n = 0;
    for (uint32_t i = 0; i < pc.len;) {
        bool d = s[i] >= '0' && s[i] <= '9';
        uint32_t j = i + 1;
        if (!d || !individual)
            while (j < pc.len && (s[j] >= '0' && s[j] <= '9') == d) j++;
        TRY(seg_push(g, pc.off + i, j - i, d));
        i = j;
    }
    return 0;
}

// Appends a new piece to the arena made of `prefix` then the piece with every space replaced.
static int rewrite_piece(TokenizerImpl *t, Piece *out, Piece pc, const char *prefix, const char *space_as) {
    size_t pl = strlen(prefix), sl = space_as ? strlen(space_as) : 0;
    TRY(text_reserve(&t->arena, pl + (size_t)pc.len * (sl > 1 ? sl : 1)));
    uint32_t off = (uint32_t)t->arena.n;
    char *d = t->arena.s + t->arena.n;
    const char *s = t->arena.s + pc.off;  // after the reserve: the arena may have moved
    memcpy(d, prefix, pl);
    d += pl;
    for (uint32_t i = 0; i < pc.len; i++) {
        if (space_as && s[i] == ' ') { memcpy(d, space_as, sl); d += sl; }
        else *d++ = s[i];
    }
    t->arena.n = (size_t)(d - t->arena.s);
    t->arena.s[t->arena.n] = 0;
    *out = (Piece){off, (uint32_t)(t->arena.n - off)};
    return 0;
}

static int pretokenize(TokenizerImpl *t, int *npieces, bool first, Segs *g) {
    for (int k = 0; k < t->npre; k++) {
        const PreStep *st = &t->pre[k];
        int nout = 0;
        for (int i = 0; i < *npieces; i++) {
            Piece pc = t->pieces[i];
            if (st->type == PRE_SPLIT) {
                TRY(regex_segments(t, g, st->re, pc, st->invert));
                TRY(emit_segments(t, &nout, g, st->behavior));
            } else if (st->type == PRE_DIGITS) {
                TRY(digit_segments(t, g, pc, st->individual_digits));
                TRY(emit_segments(t, &nout, g, st->individual_digits ? SPLIT_ISOLATED : SPLIT_CONTIGUOUS));
            } else if (st->type == PRE_METASPACE) {
                size_t rl = strlen(st->replacement);
                bool starts = pc.len >= rl && !memcmp(t->arena.s + pc.off, st->replacement, rl);
                bool prepend = !starts && (st->prepend == PREPEND_ALWAYS || (st->prepend == PREPEND_FIRST && first && i == 0));
                TRY(rewrite_piece(t, &pc, pc, prepend ? st->replacement : "", st->replacement));
                if (!st->split) {
                    TRY(pieces_reserve(t, nout + 1));
                    t->pieces2[nout++] = pc;
                    continue;
                }
                // Split before each replacement character, which stays with the word after it.
                g->n = 0;
                const char *s = t->arena.s + pc.off;
                uint32_t prev = 0;
                for (uint32_t j = 0; j + rl <= pc.len;) {
                    if (!memcmp(s + j, st->replacement, rl)) {
                        TRY(seg_push(g, pc.off + prev, j - prev, false));
                        TRY(seg_push(g, pc.off + j, (uint32_t)rl, true));
                        prev = j += (uint32_t)rl;
                    } else j++;
                }
                TRY(seg_push(g, pc.off + prev, pc.len - prev, false));
                TRY(emit_segments(t, &nout, g, SPLIT_MERGED_NEXT));
            } else {  // ByteLevel
                if (st->add_prefix_space && (pc.len == 0 || t->arena.s[pc.off] != ' '))
                    TRY(rewrite_piece(t, &pc, pc, " ", NULL));
                if (st->re) {
                    TRY(regex_segments(t, g, st->re, pc, false));
                    TRY(emit_segments(t, &nout, g, SPLIT_ISOLATED));
                } else {
                    TRY(pieces_reserve(t, nout + 1));
                    t->pieces2[nout++] = pc;
                }
            }
        }
        Piece *tmp = t->pieces; t->pieces = t->pieces2; t->pieces2 = tmp;
        *npieces = nout;
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// BPE on one word (in model space), with the word cache.

static inline int merge_get(const MergeMap *m, int a, int b, int *merged) {
    uint64_t key = merge_key(a, b);
    for (uint32_t i = merge_slot(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->key[i] == key) { *merged = m->merged[i]; return m->rank[i]; }
        if (m->key[i] == 0) return -1;
    }
}

typedef struct HeapItem HeapItem;
static inline bool heap_less(HeapItem a, HeapItem b) { return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos); }

static void heap_push(HeapItem *h, int *n, HeapItem x) {
    int i = (*n)++;
    while (i > 0 && heap_less(x, h[(i - 1) / 2])) { h[i] = h[(i - 1) / 2]; i = (i - 1) / 2; }
    h[i] = x;
}

static HeapItem heap_pop(HeapItem *h, int *n) {
    HeapItem top = h[0], x = h[--*n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && heap_less(h[c + 1], h[c])) c++;
        if (!heap_less(h[c], x)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
    return top;
}

static int sym_push(TokenizerImpl *t, int *n, int id, int len) {
    if (*n == t->sym_cap) {
        int cap = t->sym_cap ? t->sym_cap * 2 : 256;
        struct Sym *s = realloc(t->sym, (size_t)cap * sizeof *s);
        if (s) t->sym = s;
        struct HeapItem *h = s ? realloc(t->heap, (size_t)cap * sizeof *h) : NULL;
        if (h) t->heap = h;
        if (!s || !h) return ERR("out of memory in BPE (%d symbols)", cap);
        t->sym_cap = cap;
    }
    t->sym[*n] = (struct Sym){id, *n - 1, -1, len};
    if (*n > 0) t->sym[*n - 1].next = *n;
    (*n)++;
    return 0;
}

// The initial symbols of a word: one per byte (byte-level) or per character (with byte_fallback / unk
// for characters missing from the vocab).
static int initial_symbols(TokenizerImpl *t, const char *w, size_t n, int *nsym) {
    *nsym = 0;
    bool prev_unk = false;
    for (size_t i = 0; i < n;) {
        int id, cp;
        int l = t->byte_level ? 1 : utf8_next((const unsigned char *)w + i, n - i, &cp);
        id = t->byte_level ? t->byte_id[(unsigned char)w[i]] : strmap_get(&t->vocab, t->key, t->key_len, w + i, (size_t)l);
        if (id >= 0) {
            TRY(sym_push(t, nsym, id, l));
            prev_unk = false;
        } else {
            bool all = t->byte_fallback;
            for (int k = 0; k < l && all; k++) all = t->byte_fallback_id[(unsigned char)w[i + k]] >= 0;
            if (all)
                for (int k = 0; k < l; k++) TRY(sym_push(t, nsym, t->byte_fallback_id[(unsigned char)w[i + k]], 1));
            else if (t->unk_id >= 0 && t->fuse_unk && prev_unk) t->sym[*nsym - 1].len += l;
            else if (t->unk_id >= 0) TRY(sym_push(t, nsym, t->unk_id, l));
            // with neither byte fallback nor unk_token the character has no id and is dropped, as in HF
            prev_unk = !all && t->unk_id >= 0;
        }
        i += (size_t)l;
    }
    return 0;
}

static int bpe_merge(TokenizerImpl *t, const char *w, size_t n, TokIds *out) {
    int nsym, nheap = 0, merged = 0;
    TRY(initial_symbols(t, w, n, &nsym));
    struct Sym *s = t->sym;
    for (int i = 0; i + 1 < nsym; i++) {
        int r = merge_get(&t->merges, s[i].id, s[i + 1].id, &merged);
        if (r >= 0) heap_push(t->heap, &nheap, (HeapItem){r, i, merged});
    }
    while (nheap) {
        HeapItem top = heap_pop(t->heap, &nheap);
        struct Sym *a = &s[top.pos];
        if (a->len == 0 || a->next < 0) continue;
        struct Sym *b = &s[a->next];
        if (merge_get(&t->merges, a->id, b->id, &merged) != top.rank || merged != top.merged) continue;
        a->id = merged;
        a->len += b->len;
        b->len = 0;
        a->next = b->next;
        if (a->next >= 0) s[a->next].prev = top.pos;
        // The heap holds at most one entry per live pair plus stale ones; each merge adds two.
        if (a->prev >= 0) {
            int r = merge_get(&t->merges, s[a->prev].id, a->id, &merged);
            if (r >= 0) heap_push(t->heap, &nheap, (HeapItem){r, a->prev, merged});
        }
        if (a->next >= 0) {
            int r = merge_get(&t->merges, a->id, s[a->next].id, &merged);
            if (r >= 0) heap_push(t->heap, &nheap, (HeapItem){r, top.pos, merged});
        }
        if (nheap + 2 > t->sym_cap) {  // keep room for the next two pushes
            struct HeapItem *h = realloc(t->heap, (size_t)t->sym_cap * 2 * sizeof *h);
            struct Sym *q = h ? realloc(t->sym, (size_t)t->sym_cap * 2 * sizeof *q) : NULL;
            if (h) t->heap = h;
            if (!q) return ERR("out of memory in BPE");
            t->sym = s = q;
            t->sym_cap *= 2;
        }
    }
    for (int i = 0; i < nsym && nsym; i = s[i].next) {
        TRY(tok_ids_push(out, s[i].id));
        if (s[i].next < 0) break;
    }
    return 0;
}

enum { CACHE_MAX_KEY = 256, CACHE_MAX_ENTRIES = 1 << 20 };

typedef struct CacheEntry CacheEntry;

static void cache_clear(TokenizerImpl *t) {
    if (t->cache.cap) memset(t->cache.ent, 0, t->cache.cap * sizeof(CacheEntry));
    t->cache.used = 0;
    t->cache.keys.n = 0;
    t->cache.ids.n = 0;
}

static int cache_grow(TokenizerImpl *t) {
    uint32_t cap = t->cache.cap ? t->cache.cap * 2 : 4096;
    CacheEntry *e = calloc(cap, sizeof *e);
    if (!e) return ERR("out of memory growing the word cache to %u entries", cap);
    for (uint32_t i = 0; i < t->cache.cap; i++) {
        if (!t->cache.ent[i].klen) continue;
        uint32_t j = (uint32_t)t->cache.ent[i].hash & (cap - 1);
        while (e[j].klen) j = (j + 1) & (cap - 1);
        e[j] = t->cache.ent[i];
    }
    free(t->cache.ent);
    t->cache.ent = e;
    t->cache.cap = cap;
    return 0;
}

static int bpe_word(TokenizerImpl *t, const char *w, size_t n, TokIds *out) {
    if (!n) return 0;
    if (t->ignore_merges) {
        int id = strmap_get(&t->vocab, t->key, t->key_len, w, n);
        if (id >= 0) return tok_ids_push(out, id);
    }
    if (n >= CACHE_MAX_KEY) return bpe_merge(t, w, n, out);
    if (!t->cache.cap) TRY(cache_grow(t));
    uint64_t h = tok_hash(w, n);
    uint32_t mask = t->cache.cap - 1, i = (uint32_t)h & mask;
    for (CacheEntry *e; (e = &t->cache.ent[i])->klen; i = (i + 1) & mask)
        if (e->hash == h && e->klen == n && !memcmp(t->cache.keys.s + e->kofs, w, n)) {
            const int *ids = t->cache.ids.ids + e->iofs;
            for (uint32_t k = 0; k < e->ilen; k++) TRY(tok_ids_push(out, ids[k]));
            return 0;
        }
    int before = out->n;
    TRY(bpe_merge(t, w, n, out));
    // Keep the cache bounded: start afresh when it is full (the words of a corpus repeat quickly).
    if (t->cache.used >= CACHE_MAX_ENTRIES) cache_clear(t);
    if (2 * (t->cache.used + 1) > t->cache.cap) {
        TRY(cache_grow(t));
        mask = t->cache.cap - 1;
    }
    for (i = (uint32_t)h & mask; t->cache.ent[i].klen; i = (i + 1) & mask) {}
    uint32_t ko = (uint32_t)t->cache.keys.n, io = (uint32_t)t->cache.ids.n;
    TRY(tok_text_append(&t->cache.keys, w, n));
    for (int k = before; k < out->n; k++) TRY(tok_ids_push(&t->cache.ids, out->ids[k]));
    t->cache.ent[i] = (CacheEntry){h, ko, (uint32_t)n, io, (uint32_t)(out->n - before)};
    t->cache.used++;
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// Encode.

// Normalised text without added tokens: pre-tokenise, then BPE each piece.
static int encode_plain(TokenizerImpl *t, TokIds *out, const char *s, size_t n, bool first, Segs *g) {
    if (!n) return 0;
    if (n > UINT32_MAX / 4) return ERR("text of %zu bytes is too long to encode at once", n);
    t->arena.n = 0;
    TRY(tok_text_append(&t->arena, s, n));
    TRY(pieces_reserve(t, 1));
    t->pieces[0] = (Piece){0, (uint32_t)n};
    int np = 1;
    TRY(pretokenize(t, &np, first, g));
    for (int i = 0; i < np; i++) TRY(bpe_word(t, t->arena.s + t->pieces[i].off, t->pieces[i].len, out));
    return 0;
}

// A gap between raw-matched added tokens: normalise, then split on the normalised added tokens.
static int encode_gap(TokenizerImpl *t, TokIds *out, const char *s, size_t n, bool first, int flags, Segs *g) {
    if (t->nnorm) {
        TRY(tok_normalize(&t->norm_buf, t, s, n));
        s = t->norm_buf.s;
        n = t->norm_buf.n;
    }
    size_t pos = 0, ms, me;
    int tok;
    while (next_added(t, &t->trie_norm, s, n, pos, flags, &ms, &me, &tok)) {
        TRY(encode_plain(t, out, s + pos, ms - pos, first && pos == 0, g));
        TRY(tok_ids_push(out, t->added[tok].id));
        pos = me;
    }
    return encode_plain(t, out, s + pos, n - pos, first && pos == 0, g);
}

int tokenizer_encode(TokIds *out, Tokenizer *tk, const char *text, size_t len, int flags) {
    TokenizerImpl *t = &tk->t;
    Segs g = {0};
    int rc = 0;
    if (flags & TOK_ADD_SPECIAL)
        for (int i = 0; i < t->ntmpl_pre && !rc; i++) rc = tok_ids_push(out, t->tmpl_pre[i]);
    size_t pos = 0, ms, me;
    int tok;
    while (!rc && next_added(t, &t->trie_raw, text, len, pos, flags, &ms, &me, &tok)) {
        if (ms > pos) rc = encode_gap(t, out, text + pos, ms - pos, pos == 0, flags, &g);
        if (!rc) rc = tok_ids_push(out, t->added[tok].id);
        pos = me;
    }
    if (!rc && len > pos) rc = encode_gap(t, out, text + pos, len - pos, pos == 0, flags, &g);
    if (flags & TOK_ADD_SPECIAL)
        for (int i = 0; i < t->ntmpl_post && !rc; i++) rc = tok_ids_push(out, t->tmpl_post[i]);
    free(g.s);
    return rc;
}

// ---------------------------------------------------------------------------------------------------
// Decode.

void tok_stream_init(TokStream *s, const Tokenizer *t, int flags) {
    memset(s, 0, sizeof *s);
    s->tok = t;
    s->flags = flags;
}

// Length of a trailing incomplete (but so far valid) UTF-8 sequence in s[0..n), 0 if none.
static int incomplete_tail(const unsigned char *s, size_t n) {
    for (int back = 1; back <= 3 && (size_t)back <= n; back++) {
        unsigned c = s[n - back];
        if ((c & 0xc0) == 0x80) continue;
        int need = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 1;
        return need > back ? back : 0;
    }
    return 0;
}

int tok_stream_push(TokText *out, TokStream *s, int id) {
    const TokenizerImpl *t = &s->tok->t;
    if (id < 0 || id >= t->V || !t->str[id])
        return ERR("decode: id %d is not a token of this tokenizer (vocabulary size %d)", id, t->V);
    if ((s->flags & TOK_SKIP_SPECIAL) && t->special[id]) return 0;
    size_t start = out->n;
    if (t->join_space && s->emitted) TRY(tok_text_append(out, " ", 1));
    TRY(tok_text_append(out, (const char *)s->held, (size_t)s->nheld));
    s->nheld = 0;
    const char *p = t->piece[id];
    size_t n = (size_t)t->piece_len[id];
    if (s->emitted == 0 || s->strip_left > 0) {
        if (s->emitted == 0) s->strip_left = t->strip_lead;
        while (s->strip_left > 0 && n && *p == ' ') { p++; n--; s->strip_left--; }
        if (n) s->strip_left = 0;
    }
    TRY(tok_text_append(out, p, n));
    s->emitted++;
    int k = incomplete_tail((const unsigned char *)out->s + start, out->n - start);
    memcpy(s->held, out->s + out->n - k, (size_t)k);
    s->nheld = k;
    out->n -= (size_t)k;
    out->s[out->n] = 0;
    return 0;
}

int tok_stream_flush(TokText *out, TokStream *s) {
    int rc = tok_text_append(out, (const char *)s->held, (size_t)s->nheld);
    s->nheld = 0;
    return rc;
}

int tokenizer_decode(TokText *out, const Tokenizer *t, const int *ids, int n, int flags) {
    TokStream s;
    tok_stream_init(&s, t, flags);
    TRY(tok_text_append(out, "", 0));
    for (int i = 0; i < n; i++) TRY(tok_stream_push(out, &s, ids[i]));
    return tok_stream_flush(out, &s);
}

// ---------------------------------------------------------------------------------------------------
// Lookups.

int tokenizer_vocab_size(const Tokenizer *t) { return t->t.V; }
int tokenizer_bos_id(const Tokenizer *t) { return t->t.bos; }
int tokenizer_eos_id(const Tokenizer *t) { return t->t.eos; }
int tokenizer_pad_id(const Tokenizer *t) { return t->t.pad; }
bool tokenizer_is_special(const Tokenizer *t, int id) { return id >= 0 && id < t->t.V && t->t.special[id]; }
const char *tokenizer_id_to_token(const Tokenizer *t, int id) { return id >= 0 && id < t->t.V ? t->t.str[id] : NULL; }
int tokenizer_token_to_id(const Tokenizer *tk, const char *token) {
    const TokenizerImpl *t = &tk->t;
    return strmap_get(&t->by_str, t->str, t->str_len, token, strlen(token));
}

// ---------------------------------------------------------------------------------------------------
// Prompt templates.

static const struct { const char *name, *tmpl; } PRESETS[] = {
    {"r1-zero",
     "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The "
     "assistant first thinks about the reasoning process in the mind and then provides the user with the answer. "
     "The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
     "respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. "
     "User: {prompt}. Assistant:"},
    {"deepseek-chat", "{system}<｜User｜>{prompt}<｜Assistant｜>"},
    {"raw", "{prompt}"},
};

const char *tokenizer_template_preset(const char *name) {
    for (size_t i = 0; i < sizeof PRESETS / sizeof PRESETS[0]; i++)
        if (!strcmp(PRESETS[i].name, name)) return PRESETS[i].tmpl;
    return NULL;
}

int tokenizer_apply_template(TokText *out, const char *tmpl, const char *system, const char *prompt) {
    const char *preset = tokenizer_template_preset(tmpl);
    if (preset) tmpl = preset;
    CHECK(strstr(tmpl, "{prompt}"), "prompt template \"%.80s\" has no {prompt} (and is not a preset: r1-zero, "
          "deepseek-chat, raw)", tmpl);
    TRY(tok_text_append(out, "", 0));
    for (const char *p = tmpl; *p;) {
        if (!strncmp(p, "{prompt}", 8)) { TRY(tok_text_append(out, prompt, strlen(prompt))); p += 8; }
        else if (!strncmp(p, "{system}", 8)) {
            if (system) TRY(tok_text_append(out, system, strlen(system)));
            p += 8;
        } else {
            size_t k = strcspn(p + 1, "{") + 1;
            TRY(tok_text_append(out, p, k));
            p += k;
        }
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// The default tokenizer.

static const char *const DEFAULT_ADDED[] = {
    "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>", "<think>", "</think>", "<answer>", "</answer>",
    "<｜User｜>", "<｜Assistant｜>",
};
enum { DEFAULT_NADDED = sizeof DEFAULT_ADDED / sizeof DEFAULT_ADDED[0] };

int tokenizer_default_vocab_size(void) { return DEFAULT_NADDED + 256; }

static cJSON *bytelevel_obj(const char *type, bool trim) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", type);
    cJSON_AddBoolToObject(o, "add_prefix_space", false);
    cJSON_AddBoolToObject(o, "trim_offsets", trim);
    cJSON_AddBoolToObject(o, "use_regex", false);
    return o;
}

int tokenizer_write_default(const char *path) {
    cJSON *root = cJSON_CreateObject(), *added = cJSON_CreateArray(), *model = cJSON_CreateObject();
    cJSON *vocab = cJSON_CreateObject(), *post = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON_AddItemToObject(root, "added_tokens", added);
    for (int i = 0; i < DEFAULT_NADDED; i++) {
        bool special = i <= TOKENIZER_DEFAULT_PAD;
        cJSON *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "id", i);
        cJSON_AddStringToObject(a, "content", DEFAULT_ADDED[i]);
        cJSON_AddBoolToObject(a, "single_word", false);
        cJSON_AddBoolToObject(a, "lstrip", false);
        cJSON_AddBoolToObject(a, "rstrip", false);
        cJSON_AddBoolToObject(a, "normalized", false);
        cJSON_AddBoolToObject(a, "special", special);
        cJSON_AddItemToArray(added, a);
        cJSON_AddNumberToObject(vocab, DEFAULT_ADDED[i], i);
    }
    cJSON_AddNullToObject(root, "normalizer");
    cJSON_AddItemToObject(root, "pre_tokenizer", bytelevel_obj("ByteLevel", true));
    // Single sequences get the bos token, as transformers does for DeepSeek-V3.
    const char *bos = DEFAULT_ADDED[TOKENIZER_DEFAULT_BOS];
    cJSON_AddStringToObject(post, "type", "TemplateProcessing");
    cJSON *single = cJSON_CreateArray(), *pair = cJSON_CreateArray(), *specials = cJSON_CreateObject();
    for (int k = 0; k < 3; k++) {
        cJSON *item = cJSON_CreateObject(), *inner = cJSON_CreateObject();
        cJSON_AddStringToObject(inner, "id", k == 0 ? bos : k == 1 ? "A" : "B");
        cJSON_AddNumberToObject(inner, "type_id", k == 2);
        cJSON_AddItemToObject(item, k == 0 ? "SpecialToken" : "Sequence", inner);
        if (k < 2) cJSON_AddItemToArray(single, cJSON_Duplicate(item, 1));
        cJSON_AddItemToArray(pair, item);
    }
    cJSON *ent = cJSON_CreateObject(), *ids = cJSON_CreateArray(), *toks = cJSON_CreateArray();
    cJSON_AddStringToObject(ent, "id", bos);
    cJSON_AddItemToArray(ids, cJSON_CreateNumber(TOKENIZER_DEFAULT_BOS));
    cJSON_AddItemToArray(toks, cJSON_CreateString(bos));
    cJSON_AddItemToObject(ent, "ids", ids);
    cJSON_AddItemToObject(ent, "tokens", toks);
    cJSON_AddItemToObject(specials, bos, ent);
    cJSON_AddItemToObject(post, "single", single);
    cJSON_AddItemToObject(post, "pair", pair);
    cJSON_AddItemToObject(post, "special_tokens", specials);
    cJSON_AddItemToObject(root, "post_processor", post);
    cJSON_AddItemToObject(root, "decoder", bytelevel_obj("ByteLevel", true));
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddNullToObject(model, "continuing_subword_prefix");
    cJSON_AddNullToObject(model, "end_of_word_suffix");
    cJSON_AddBoolToObject(model, "fuse_unk", false);
    cJSON_AddBoolToObject(model, "byte_fallback", false);
    cJSON_AddBoolToObject(model, "ignore_merges", false);
    for (int b = 0; b < 256; b++) {
        char s[4];
        utf8proc_ssize_t m = utf8proc_encode_char(bytelevel_char(b), (utf8proc_uint8_t *)s);
        s[m] = 0;
        cJSON_AddNumberToObject(vocab, s, DEFAULT_NADDED + b);
    }
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddItemToObject(model, "merges", cJSON_CreateArray());
    cJSON_AddItemToObject(root, "model", model);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return ERR("out of memory writing the default tokenizer");
    int rc = write_file_atomic(path, text, strlen(text));
    free(text);
    return rc;
}
