// Final-answer extraction: one linear pass per extractor, so a 1 MB completion or 10,000 unclosed braces
// cost no more than a read of the text.
#define _GNU_SOURCE
#define PCRE2_CODE_UNIT_WIDTH 8
#include "rewards/math.h"
#include <ctype.h>
#include <pcre2.h>
#include <pthread.h>
#include <string.h>

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Trims spaces (and a sentence-ending period) from [*s, *s + *l); returns 1 when something is left.
static int trim(const char *t, size_t *s, size_t *l) {
    while (*l && is_space(t[*s])) (*s)++, (*l)--;
    while (*l && is_space(t[*s + *l - 1])) (*l)--;
    if (*l > 1 && t[*s + *l - 1] == '.') (*l)--;
    while (*l && is_space(t[*s + *l - 1])) (*l)--;
    return *l > 0;
}

// The last occurrence of pat in t[0..n): a backward scan, linear in n for the short patterns used here.
static const char *rfind(const char *t, size_t n, const char *pat, size_t *pos) {
    size_t m = strlen(pat);
    for (size_t e = n; e >= m;) {
        const char *c = memrchr(t, pat[0], e - m + 1);
        if (!c) return NULL;
        if (!memcmp(c, pat, m)) {
            *pos = (size_t)(c - t);
            return c;
        }
        e = (size_t)(c - t) + m - 1;
    }
    return NULL;
}

static int starts(const char *t, size_t n, size_t i, const char *w) {
    size_t m = strlen(w);
    return i + m <= n && !memcmp(t + i, w, m);
}

// The last \boxed{...} / \fbox{...} whose braces balance. Escaped braces \{ \} do not count. Boxes nested
// deeper than the pending stack are skipped, never the pass bound.
static int ex_boxed(const char *t, size_t n, size_t *s, size_t *l) {
    if (!memmem(t, n, "\\boxed", 6) && !memmem(t, n, "\\fbox", 5)) return 0;
    enum { MAXPEND = 64 };
    size_t pstart[MAXPEND], pdepth[MAXPEND], depth = 0;
    int np = 0, found = 0;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (c == '\\') {
            size_t j = i + 1;
            if (starts(t, n, j, "boxed")) j += 5;
            else if (starts(t, n, j, "fbox")) j += 4;
            else {
                if (j < n && (t[j] == '{' || t[j] == '}' || t[j] == '\\')) i++;
                continue;
            }
            size_t name_end = j;
            while (j < n && t[j] == ' ') j++;
            if (j < n && t[j] == '{') {
                if (np < MAXPEND) pstart[np] = j + 1, pdepth[np++] = depth;
                depth++;
                i = j;
            } else if (j < n && (isdigit((unsigned char)t[j]) || (j > name_end && isalnum((unsigned char)t[j])))) {
                // "\boxed 5": the argument is the next token
                size_t e = j;
                while (e < n && !is_space(t[e]) && t[e] != '$' && t[e] != '\\') e++;
                *s = j, *l = e - j, found = 1;
                i = e - 1;
            }
        } else if (c == '{') depth++;
        else if (c == '}' && depth > 0) {
            depth--;
            if (np > 0 && pdepth[np - 1] == depth) {
                np--;
                *s = pstart[np], *l = i - pstart[np], found = 1;
            }
        }
    }
    return found && trim(t, s, l);
}

// Phrases matched with PCRE2 (case-insensitive, JIT, bounded by a match limit).
static pcre2_code *re_final, *re_answer_is;
static pthread_once_t re_once = PTHREAD_ONCE_INIT;
static pcre2_match_context *re_mctx;

static pcre2_code *compile(const char *pat) {
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_CASELESS, &err, &off, NULL);
    if (re) pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    return re;
}

static void re_init(void) {
    re_final = compile("\\bfinal\\s+answer\\b(?:\\s*\\**\\s*:|\\s+is\\b)[\\s*:]*");
    re_answer_is = compile("\\banswer\\s+is\\b[\\s*:]*");
    re_mctx = pcre2_match_context_create(NULL);
    if (re_mctx) pcre2_set_match_limit(re_mctx, 100000), pcre2_set_depth_limit(re_mctx, 1000);
}

// "18 eggs", "$18 because ...": a plain number followed by a word of two or more letters is the number;
// returns the length to keep of t[0..n).
static size_t number_then_words(const char *t, size_t n) {
    size_t i = 0;
    if (i < n && t[i] == '$') i++;
    if (i < n && t[i] == '-') i++;
    size_t digits = i;
    while (i < n && (isdigit((unsigned char)t[i]) || ((t[i] == ',' || t[i] == '.') && i + 1 < n &&
                                                      isdigit((unsigned char)t[i + 1]))))
        i++;
    if (i == digits || i + 2 >= n || t[i] != ' ' || !isalpha((unsigned char)t[i + 1]) ||
        !isalpha((unsigned char)t[i + 2]))
        return n;
    return i;
}

// The answer that follows a phrase ending at text[pos]: a $...$ / \(...\) span if one starts there,
// else the rest of the line up to the end of the sentence.
static int phrase_answer(const char *t, size_t n, size_t pos, size_t *s, size_t *l) {
    while (pos < n && (t[pos] == ' ' || t[pos] == '\t')) pos++;
    const char *close = NULL;
    size_t open = 0;
    if (starts(t, n, pos, "$$")) close = "$$", open = 2;
    else if (starts(t, n, pos, "$")) close = "$", open = 1;
    else if (starts(t, n, pos, "\\(")) close = "\\)", open = 2;
    else if (starts(t, n, pos, "\\[")) close = "\\]", open = 2;
    if (close) {
        const char *e = memmem(t + pos + open, n - pos - open, close, strlen(close));
        if (e) {
            *s = pos + open, *l = (size_t)(e - t) - pos - open;
            return trim(t, s, l);
        }
    }
    size_t e = pos;
    while (e < n && t[e] != '\n' && !(t[e] == '.' && (e + 1 == n || is_space(t[e + 1])))) e++;
    *s = pos, *l = number_then_words(t + pos, e - pos);
    return trim(t, s, l);
}

static int ex_phrase(pcre2_code *re, const char *t, size_t n, size_t *s, size_t *l) {
    if (!re || !re_mctx) return 0;
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md) return 0;
    size_t off = 0, last = (size_t)-1;
    while (off < n && pcre2_match(re, (PCRE2_SPTR)t, n, off, 0, md, re_mctx) > 0) {
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        last = ov[1];
        off = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
    }
    pcre2_match_data_free(md);
    return last != (size_t)-1 && phrase_answer(t, n, last, s, l);
}

static int ex_answer_tag(const char *t, size_t n, size_t *s, size_t *l) {
    size_t ce, os;
    if (!rfind(t, n, "</answer>", &ce) || !rfind(t, ce, "<answer>", &os)) return 0;
    size_t cs = os + 8, cl = ce - cs;
    // A sentence inside the tags ("The answer is 5.") yields what follows its phrase.
    size_t ps, pl;
    pthread_once(&re_once, re_init);
    if (ex_phrase(re_final, t + cs, cl, &ps, &pl) || ex_phrase(re_answer_is, t + cs, cl, &ps, &pl))
        cs += ps, cl = pl;
    *s = cs, *l = cl;
    return trim(t, s, l);
}

static int ex_hashes(const char *t, size_t n, size_t *s, size_t *l) {
    size_t p;
    if (!rfind(t, n, "####", &p)) return 0;
    p += 4;
    while (p < n && (t[p] == ' ' || t[p] == '\t')) p++;
    const char *nl = memchr(t + p, '\n', n - p);
    *s = p, *l = number_then_words(t + p, (nl ? (size_t)(nl - t) : n) - p);
    return trim(t, s, l);
}

static int ex_last_number(const char *t, size_t n, size_t *s, size_t *l) {
    size_t e = n;
    while (e > 0 && !isdigit((unsigned char)t[e - 1])) e--;
    if (!e) return 0;
    size_t b = e - 1;
    while (b > 0 && (isdigit((unsigned char)t[b - 1]) ||
                     ((t[b - 1] == ',' || t[b - 1] == '.') && b >= 2 && isdigit((unsigned char)t[b - 2]))))
        b--;
    if (b > 0 && t[b - 1] == '.') b--;
    if (b > 0 && t[b - 1] == '-') b--;
    *s = b, *l = e - b;
    return 1;
}

int math_extract(const char *t, size_t n, const MathOptions *o, size_t *s, size_t *l) {
    for (int k = 0; k < o->norder; k++) {
        int ok = 0;
        switch (o->order[k]) {
        case MATH_EX_BOXED: ok = ex_boxed(t, n, s, l); break;
        case MATH_EX_ANSWER_TAG: ok = ex_answer_tag(t, n, s, l); break;
        case MATH_EX_HASHES: ok = ex_hashes(t, n, s, l); break;
        case MATH_EX_FINAL_ANSWER:
            pthread_once(&re_once, re_init);
            ok = ex_phrase(re_final, t, n, s, l);
            break;
        case MATH_EX_ANSWER_IS:
            pthread_once(&re_once, re_init);
            ok = ex_phrase(re_answer_is, t, n, s, l);
            break;
        case MATH_EX_LAST_NUMBER: ok = ex_last_number(t, n, s, l); break;
        }
        if (ok) return o->order[k];
    }
    return -1;
}

int math_extract_gold(const char *g, size_t n, size_t *s, size_t *l) {
    if (ex_boxed(g, n, s, l) || ex_hashes(g, n, s, l)) return 0;
    *s = 0, *l = n;
    return trim(g, s, l) ? 0 : -1;
}
