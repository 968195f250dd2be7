// Synthetic tasks with step-by-step reference traces (dataset.h): column arithmetic and countdown.
#include "datasets/dataset.h"
#include "common/error.h"
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// A task from its generic record (which becomes its meta); the record is consumed. cJSON's add calls
// fail by adding nothing, so a record short of `nfields` items ran out of memory.
static int add_record(TaskList *out, cJSON *rec, int nfields) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id"), *p = cJSON_GetObjectItemCaseSensitive(rec, "prompt");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(rec, "answer");
    Task t = {cJSON_IsString(id) ? id->valuestring : NULL, cJSON_IsString(p) ? p->valuestring : NULL,
              cJSON_IsString(a) ? a->valuestring : NULL, rec};
    int rc = rec && cJSON_GetArraySize(rec) == nfields ? tasks_append(out, &t)
                                                        : ERR("out of memory building synthetic task %d", out->n);
    cJSON_Delete(rec);
    return rc;
}

// An appending writer into a fixed buffer; the traces are far shorter than it.
typedef struct { char s[1024]; size_t n; } Buf;

static void put(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(Buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(b->s + b->n, sizeof b->s - b->n, fmt, ap);
    va_end(ap);
    if (w > 0) b->n += (size_t)w < sizeof b->s - b->n ? (size_t)w : sizeof b->s - b->n - 1;
}

// ---------------------------------------------------------------------------------------------------
// Arithmetic

static int64_t pow10i(int d) {
    int64_t p = 1;
    while (d-- > 0) p *= 10;
    return p;
}

// Exactly d digits (d = 1: 0 to 9).
static int64_t draw_digits(uint64_t *st, int d) {
    int64_t lo = d == 1 ? 0 : pow10i(d - 1), hi = pow10i(d) - 1;
    return lo + (int64_t)ds_rng_below(st, (uint64_t)(hi - lo + 1));
}

// One line per column, least significant first: "x+y+c=s cC" / "x-y-c=s bB" / "x*y+c=s cC", where c is
// the carry or borrow in, s the digit written and C the carry or borrow out; then the answer.
static void arithmetic_trace(Buf *b, int64_t a, char op, int64_t y, int digits, int64_t result) {
    put(b, "<think>\n");
    int64_t c = 0;
    for (int k = 0; k < digits; k++, a /= 10) {
        int64_t x = a % 10, z = op == '*' ? y : y % 10;
        int64_t t = op == '+' ? x + z + c : op == '-' ? x - z - c : x * z + c;
        int64_t s = op == '-' ? (t + 10) % 10 : t % 10, next = op == '-' ? t < 0 : t / 10;
        put(b, "%" PRId64 "%c%" PRId64 "%c%" PRId64 "=%" PRId64 " %c%" PRId64 "\n", x, op, z, op == '*' ? '+' : op,
            c, s, op == '-' ? 'b' : 'c', next);
        c = next;
        if (op != '*') y /= 10;
    }
    put(b, "</think>\n<answer>%" PRId64 "</answer>", result);
}

int synth_arithmetic(TaskList *out, const SynthOptions *o) {
    memset(out, 0, sizeof *out);
    const char *ops = o->ops ? o->ops : "+";
    CHECK(o->n >= 0, "arithmetic: task count %d", o->n);
    CHECK(o->difficulty >= 1 && o->difficulty <= 12, "arithmetic: difficulty %d, expected 1 to 12 digits",
          o->difficulty);
    CHECK(ops[0] && strspn(ops, "+-*") == strlen(ops), "arithmetic: ops \"%s\", expected some of + - *", ops);
    uint64_t st = o->seed;
    for (int i = 0; i < o->n; i++) {
        char op = ops[ds_rng_below(&st, strlen(ops))];
        int64_t a = draw_digits(&st, o->difficulty);
        int64_t y = op == '*' ? 2 + (int64_t)ds_rng_below(&st, 8) : draw_digits(&st, o->difficulty);
        if (op == '-' && a < y) {
            int64_t t = a;
            a = y, y = t;
        }
        int64_t r = op == '+' ? a + y : op == '-' ? a - y : a * y;
        char id[96], prompt[96], answer[32];
        snprintf(id, sizeof id, "arithmetic/d%d/s%" PRIu64 "/%d", o->difficulty, o->seed, i);
        snprintf(prompt, sizeof prompt, "What is %" PRId64 "%c%" PRId64 "?", a, op, y);
        snprintf(answer, sizeof answer, "%" PRId64, r);
        char ops1[2] = {op, 0};
        Buf tr = {.n = 0};
        arithmetic_trace(&tr, a, op, y, o->difficulty, r);
        cJSON *rec = cJSON_CreateObject();
        cJSON_AddStringToObject(rec, "id", id);
        cJSON_AddStringToObject(rec, "prompt", prompt);
        cJSON_AddStringToObject(rec, "answer", answer);
        cJSON_AddNumberToObject(rec, "a", (double)a);
        cJSON_AddStringToObject(rec, "op", ops1);
        cJSON_AddNumberToObject(rec, "b", (double)y);
        cJSON_AddStringToObject(rec, "trace", tr.s);
        if (add_record(out, rec, 7) != 0) {
            tasks_free(out);
            return -1;
        }
    }
    out->format = DS_GENERIC;
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// Countdown

char *countdown_prompt(const int64_t *nums, int n, int64_t target) {
    Buf b = {.n = 0};
    put(&b, "Make %" PRId64 " from ", target);
    for (int i = 0; i < n; i++) put(&b, "%s%" PRId64, i ? ", " : "", nums[i]);
    put(&b, " with + - * /, each number once.");
    char *p = strdup(b.s);
    if (!p) ERR("out of memory");
    return p;
}

// Folds the numbers in a random order with random operators that keep every intermediate a positive
// integer (and products at most 1000), so the target is reachable by construction.
static int64_t countdown_solve(uint64_t *st, const int64_t *nums, int n, Buf *expr, Buf *steps) {
    int perm[6];
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)ds_rng_below(st, (uint64_t)i + 1), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    int64_t acc = nums[perm[0]];
    char top = 0;  // the outermost operator of expr
    put(expr, "%" PRId64, acc);
    for (int k = 1; k < n; k++) {
        int64_t x = nums[perm[k]];
        char cand[4];
        int nc = 0;
        cand[nc++] = '+';
        if (acc > x) cand[nc++] = '-';
        if (acc * x <= 1000) cand[nc++] = '*';
        if (x > 1 && acc % x == 0) cand[nc++] = '/';
        char op = cand[ds_rng_below(st, (uint64_t)nc)];
        int64_t r = op == '+' ? acc + x : op == '-' ? acc - x : op == '*' ? acc * x : acc / x;
        if ((op == '*' || op == '/') && (top == '+' || top == '-')) {
            memmove(expr->s + 1, expr->s, expr->n + 1);
            expr->s[0] = '(';
            expr->n++;
            put(expr, ")");
        }
        put(expr, "%c%" PRId64, op, x);
        put(steps, "%" PRId64 "%c%" PRId64 "=%" PRId64 "\n", acc, op, x, r);
        acc = r, top = op;
    }
    return acc;
}

int synth_countdown(TaskList *out, const SynthOptions *o) {
    memset(out, 0, sizeof *out);
    CHECK(o->n >= 0, "countdown: task count %d", o->n);
    CHECK(o->difficulty >= 2 && o->difficulty <= 6, "countdown: difficulty %d, expected 2 to 6 numbers",
          o->difficulty);
    uint64_t st = o->seed;
    int k = o->difficulty;
    for (int i = 0; i < o->n; i++) {
        int64_t nums[6];
        for (int j = 0; j < k; j++) nums[j] = 1 + (int64_t)ds_rng_below(&st, (uint64_t)(10 * (k - 1)));
        Buf expr = {.n = 0}, steps = {.n = 0}, trace = {.n = 0};
        int64_t target = countdown_solve(&st, nums, k, &expr, &steps);
        put(&trace, "<think>\n%s</think>\n<answer>%s</answer>", steps.s, expr.s);
        char id[96];
        snprintf(id, sizeof id, "countdown/d%d/s%" PRIu64 "/%d", k, o->seed, i);
        char *prompt = countdown_prompt(nums, k, target);
        double dn[6];
        for (int j = 0; j < k; j++) dn[j] = (double)nums[j];
        cJSON *rec = cJSON_CreateObject();
        cJSON_AddStringToObject(rec, "id", id);
        if (prompt) cJSON_AddStringToObject(rec, "prompt", prompt);
        cJSON_AddItemToObject(rec, "nums", cJSON_CreateDoubleArray(dn, k));
        cJSON_AddNumberToObject(rec, "target", (double)target);
        cJSON_AddStringToObject(rec, "solution", expr.s);
        cJSON_AddStringToObject(rec, "trace", trace.s);
        free(prompt);
        if (add_record(out, rec, 6) != 0) {
            tasks_free(out);
            return -1;
        }
    }
    out->format = DS_GENERIC;
    return 0;
}

int synth_generate(TaskList *out, const char *kind, const SynthOptions *o) {
    if (kind && !strcmp(kind, "arithmetic")) return synth_arithmetic(out, o);
    if (kind && !strcmp(kind, "countdown")) return synth_countdown(out, o);
    memset(out, 0, sizeof *out);
    return ERR("unknown synthetic task kind \"%s\" (expected arithmetic or countdown)", kind ? kind : "(null)");
}

const char *task_trace(const Task *t) {
    const cJSON *v = t->meta ? cJSON_GetObjectItemCaseSensitive(t->meta, "trace") : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
