// The `countdown` reward: an exact rational evaluator for + - * / and parentheses, with a depth bound.
#define _GNU_SOURCE
#include "rewards/countdown.h"
#include "rewards/math.h"
#include "common/error.h"
#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_NUMS = 64, MAX_DEPTH = 100 };

typedef struct { int64_t p, q; } Rat;

typedef struct {
    const char *s;
    size_t i, n;
    int depth;
    bool bad;       // not an expression
    bool overflow;  // division by zero or a value past 64 bits
    int64_t used[MAX_NUMS];
    int nused;
} P;

static bool mk(__int128 p, __int128 q, Rat *out) { return rational_reduce(p, q, &out->p, &out->q); }

static void ws(P *x) {
    while (x->i < x->n && isspace((unsigned char)x->s[x->i])) x->i++;
}

// The operator at the cursor: '+', '-', '*', '/' (also \times, \cdot, \div, x-like UTF-8 signs), or 0.
static char op_at(P *x, size_t *len) {
    ws(x);
    static const struct { const char *text; char op; } ops[] = {
        {"+", '+'}, {"-", '-'}, {"*", '*'}, {"/", '/'}, {"\\times", '*'}, {"\\cdot", '*'}, {"\\div", '/'},
        {"\xc3\x97", '*'}, {"\xc3\xb7", '/'}, {"\xe2\x88\x92", '-'}, {"\xc2\xb7", '*'}};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        size_t m = strlen(ops[k].text);
        if (x->i + m <= x->n && !memcmp(x->s + x->i, ops[k].text, m)) return *len = m, ops[k].op;
    }
    return 0;
}

static Rat sum(P *x);

static Rat factor(P *x) {
    Rat r = {0, 1};
    if (++x->depth > MAX_DEPTH) return x->bad = true, r;
    size_t len;
    char op = op_at(x, &len);
    if (op == '-' || op == '+') {
        x->i += len;
        r = factor(x);
        if (op == '-') r.p = -r.p;
    } else if (x->i < x->n && x->s[x->i] == '(') {
        x->i++;
        r = sum(x);
        ws(x);
        if (x->i < x->n && x->s[x->i] == ')') x->i++;
        else x->bad = true;
    } else if (x->i < x->n && isdigit((unsigned char)x->s[x->i])) {
        int64_t v = 0;
        while (x->i < x->n && isdigit((unsigned char)x->s[x->i])) {
            if (v > (INT64_MAX - 9) / 10) x->overflow = true;
            else v = v * 10 + (x->s[x->i] - '0');
            x->i++;
        }
        if (x->nused < MAX_NUMS) x->used[x->nused] = v;
        x->nused++;
        r.p = v;
    } else x->bad = true;
    x->depth--;
    return r;
}

static Rat product(P *x) {
    Rat r = factor(x);
    size_t len;
    char op;
    while (!x->bad && ((op = op_at(x, &len)) == '*' || op == '/')) {
        x->i += len;
        Rat b = factor(x);
        if (!(op == '*' ? mk((__int128)r.p * b.p, (__int128)r.q * b.q, &r) : mk((__int128)r.p * b.q, (__int128)r.q * b.p, &r)))
            x->overflow = true;
    }
    return r;
}

static Rat sum(P *x) {
    Rat r = product(x);
    size_t len;
    char op;
    while (!x->bad && ((op = op_at(x, &len)) == '+' || op == '-')) {
        x->i += len;
        Rat b = product(x);
        __int128 p = (__int128)r.p * b.q + (op == '+' ? 1 : -1) * (__int128)b.p * r.q;
        if (!mk(p, (__int128)r.q * b.q, &r)) x->overflow = true;
    }
    return r;
}

static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

CountdownVerdict countdown_check(const char *eq, size_t len, const int64_t *nums, int n, int64_t target) {
    P x = {.s = eq, .n = len};
    // "expr = target": the right-hand side is the claim, not a used number
    const char *e = memchr(eq, '=', len);
    if (e) x.n = (size_t)(e - eq);
    Rat v = sum(&x);
    ws(&x);
    if (x.bad || x.i != x.n || x.nused == 0) return COUNTDOWN_INVALID;
    if (e) {
        P rhs = {.s = e + 1, .n = len - x.n - 1};
        Rat claim = sum(&rhs);
        ws(&rhs);
        if (rhs.bad || rhs.i != rhs.n) return COUNTDOWN_INVALID;
        if (rhs.overflow || claim.q != 1 || claim.p != target) return COUNTDOWN_WRONG_VALUE;
    }
    if (x.nused != n || n > MAX_NUMS) return COUNTDOWN_WRONG_NUMBERS;
    int64_t want[MAX_NUMS];
    memcpy(want, nums, sizeof *nums * (size_t)n);
    qsort(want, (size_t)n, sizeof *want, cmp64);
    qsort(x.used, (size_t)n, sizeof *x.used, cmp64);
    if (memcmp(want, x.used, sizeof *want * (size_t)n)) return COUNTDOWN_WRONG_NUMBERS;
    if (x.overflow || v.q != 1 || v.p != target) return COUNTDOWN_WRONG_VALUE;
    return COUNTDOWN_CORRECT;
}

typedef struct { float score, format_score; } Countdown;

// The last occurrence of pat in t[0..n), by a backward scan (linear for these short patterns).
static const char *rfind(const char *t, size_t n, const char *pat) {
    size_t m = strlen(pat);
    for (size_t e = n; e >= m;) {
        const char *c = memrchr(t, pat[0], e - m + 1);
        if (!c) return NULL;
        if (!memcmp(c, pat, m)) return c;
        e = (size_t)(c - t) + m - 1;
    }
    return NULL;
}

static const char *const verdict_names[] = {"correct", "no_answer", "invalid", "wrong_numbers", "wrong_value"};

// The task's numbers and target; false when the task does not carry them as integers.
static bool task_numbers(const Task *task, int64_t *nums, int *n, int64_t *target) {
    const cJSON *jn = task ? cJSON_GetObjectItemCaseSensitive(task->meta, "nums") : NULL;
    const cJSON *jt = task ? cJSON_GetObjectItemCaseSensitive(task->meta, "target") : NULL;
    if (!cJSON_IsArray(jn) || !cJSON_IsNumber(jt) || jt->valuedouble != (double)(int64_t)jt->valuedouble) return false;
    int k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, jn) {
        if (k >= MAX_NUMS || !cJSON_IsNumber(it) || it->valuedouble != (double)(int64_t)it->valuedouble) return false;
        nums[k++] = (int64_t)it->valuedouble;
    }
    *n = k, *target = (int64_t)jt->valuedouble;
    return k > 0;
}

static float countdown_score(const Reward *self, const Task *task, const char *completion, RewardDetail *out) {
    const Countdown *c = self->state;
    int64_t nums[MAX_NUMS], target;
    int n;
    CountdownVerdict v = COUNTDOWN_NO_ANSWER;
    const char *ans = NULL;
    size_t alen = 0;
    if (completion) {
        // the last complete <answer>...</answer>
        const char *close = rfind(completion, strlen(completion), "</answer>");
        const char *open = close ? rfind(completion, (size_t)(close - completion), "<answer>") : NULL;
        if (open) ans = open + 8, alen = (size_t)(close - ans);
    }
    if (ans) v = task_numbers(task, nums, &n, &target) ? countdown_check(ans, alen, nums, n, target) : COUNTDOWN_INVALID;
    float r = v == COUNTDOWN_CORRECT ? c->score : v == COUNTDOWN_NO_ANSWER ? 0 : c->format_score;
    if (out) {
        memset(out, 0, sizeof *out);
        snprintf(out->verdict, sizeof out->verdict, "%s", verdict_names[v]);
        size_t m = alen < sizeof out->extracted - 1 ? alen : sizeof out->extracted - 1;
        while (m > 0 && m < alen && ((unsigned char)ans[m] & 0xC0) == 0x80) m--;
        if (ans) memcpy(out->extracted, ans, m);
        out->nparts = 2;
        snprintf(out->parts[0].name, sizeof out->parts[0].name, "format");
        out->parts[0].value = v != COUNTDOWN_NO_ANSWER;
        snprintf(out->parts[1].name, sizeof out->parts[1].name, "correct");
        out->parts[1].value = v == COUNTDOWN_CORRECT;
    }
    return r;
}

static int countdown_check_task(const Reward *self, const Task *task) {
    int64_t nums[MAX_NUMS], target;
    int n;
    CHECK(task_numbers(task, nums, &n, &target), "fields \"nums\" and \"target\": the countdown reward needs "
          "\"nums\" (an array of 1 to %d integers) and \"target\" (an integer)", MAX_NUMS);
    return 0;
}

static void countdown_destroy(Reward *self) { free(self->state); }

int reward_countdown_create(Reward *out, const cJSON *options) {
    static const char *const keys[] = {"score", "format_score", NULL};
    TRY(reward_check_keys(options, keys));
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(options, "score");
    const cJSON *fs = cJSON_GetObjectItemCaseSensitive(options, "format_score");
    CHECK(!sc || cJSON_IsNumber(sc), "option \"score\": expected a number");
    CHECK(!fs || cJSON_IsNumber(fs), "option \"format_score\": expected a number");
    Countdown *c = grpo_malloc(sizeof *c, "countdown reward");
    if (!c) return -1;
    c->score = sc ? (float)sc->valuedouble : 1.0f;
    c->format_score = fs ? (float)fs->valuedouble : 0.1f;
    out->score = countdown_score;
    out->destroy = countdown_destroy;
    out->check_task = countdown_check_task;
    out->state = c;
    return 0;
}
