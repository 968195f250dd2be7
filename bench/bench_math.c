// Completions scored per second by the math reward on one core, against a plain baseline in the same
// run: one PCRE2 (JIT) regex extracting the answer from the completion and the gold, then a string
// compare (what simple GRPO scripts do). Data: $DATA (default ../shared/data): GSM8K worked solutions
// (test + train) as completions, in three answer styles, each scored against its own answer and against
// another problem's; MATH-500 solutions against their `answer` fields.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "common/error.h"
#include "common/fileio.h"
#include "rewards/reward.h"
#include <cJSON.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    char **completion, **gold;
    int n, cap;
} Set;

static void add(Set *s, const char *completion, const char *gold) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 1024;
        s->completion = realloc(s->completion, sizeof(char *) * (size_t)s->cap);
        s->gold = realloc(s->gold, sizeof(char *) * (size_t)s->cap);
    }
    s->completion[s->n] = strdup(completion);
    s->gold[s->n++] = strdup(gold);
}

// GSM8K solutions rewritten to end with `style` (a printf format taking the final answer).
static int load_gsm8k(Set *s, const char *dir, const char *file, const char *style) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    char *text = read_file(path, NULL);
    if (!text) return -1;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "answer");
        const char *h = cJSON_IsString(a) ? strstr(a->valuestring, "####") : NULL;
        if (h) {
            const char *gold = h + 4 + strspn(h + 4, " ");
            char buf[8192];
            int body = (int)(h - a->valuestring);
            snprintf(buf, sizeof buf, "%.*s", body, a->valuestring);
            snprintf(buf + strlen(buf), sizeof buf - strlen(buf), style, gold);
            add(s, buf, gold);
        }
        cJSON_Delete(o);
    }
    free(text);
    return 0;
}

static int load_math500(Set *s, const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/math500_test.jsonl", dir);
    char *text = read_file(path, NULL);
    if (!text) return -1;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "solution");
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(o, "answer");
        if (cJSON_IsString(c) && cJSON_IsString(g)) add(s, c->valuestring, g->valuestring);
        cJSON_Delete(o);
    }
    free(text);
    return 0;
}

// The baseline: the last match of one regex's group 1 in the completion; the gold is used as written
// (after the same regex when it matches there too); compared as strings without commas.
typedef struct {
    pcre2_code *re;
    pcre2_match_data *md;
} Baseline;

static size_t last_match(Baseline *b, const char *s, size_t n, const char **out) {
    size_t off = 0, len = 0;
    *out = NULL;
    while (off <= n && pcre2_jit_match(b->re, (PCRE2_SPTR)s, n, off, 0, b->md, NULL) > 1) {
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(b->md);
        *out = s + ov[2], len = ov[3] - ov[2];
        off = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
    }
    return len;
}

static int baseline_score(Baseline *b, const char *completion, const char *gold) {
    const char *p, *g;
    size_t np = last_match(b, completion, strlen(completion), &p);
    if (!p) return 0;
    size_t ng = last_match(b, gold, strlen(gold), &g);
    if (!g) g = gold, ng = strlen(gold);
    size_t i = 0, j = 0;
    for (;;) {
        while (i < np && p[i] == ',') i++;
        while (j < ng && g[j] == ',') j++;
        if (i == np || j == ng) return i == np && j == ng;
        if (p[i++] != g[j++]) return 0;
    }
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// Scores every completion against its own gold and against the gold half the set away; repeats for
// at least `secs`. Returns completions per second and the share judged correct.
static double run_ours(const Reward *r, const Set *s, double secs, double *correct) {
    long done = 0, ok = 0;
    double t0 = now(), t;
    do {
        for (int i = 0; i < s->n; i++) {
            Task own = {.answer = s->gold[i]}, other = {.answer = s->gold[(i + s->n / 2) % s->n]};
            ok += r->score(r, &own, s->completion[i], NULL) == 1.0f;
            ok += r->score(r, &other, s->completion[i], NULL) == 1.0f;
            done += 2;
        }
    } while ((t = now() - t0) < secs);
    *correct = (double)ok / done;
    return done / t;
}

static double run_baseline(Baseline *b, const Set *s, double secs, double *correct) {
    long done = 0, ok = 0;
    double t0 = now(), t;
    do {
        for (int i = 0; i < s->n; i++) {
            ok += baseline_score(b, s->completion[i], s->gold[i]);
            ok += baseline_score(b, s->completion[i], s->gold[(i + s->n / 2) % s->n]);
            done += 2;
        }
    } while ((t = now() - t0) < secs);
    *correct = (double)ok / done;
    return done / t;
}

int main(void) {
    const char *dir = getenv("DATA") ? getenv("DATA") : "../shared/data";
    struct {
        const char *name, *style, *regex;
    } rows[] = {
        {"gsm8k ####", "#### %s", "#### (\\-?[0-9\\.\\,]+)"},
        {"gsm8k answer is", "The answer is %s.", "answer is \\$?(\\-?[0-9\\.\\,]+)"},
        {"gsm8k \\boxed", "So the answer is $\\boxed{%s}$.", "\\\\boxed\\{([^{}]*)\\}"},
        {"math500", NULL, "\\\\boxed\\{((?:[^{}]|\\{(?:[^{}]|\\{[^{}]*\\})*\\})*)\\}"},
    };
    Reward r;
    if (reward_create(&r, "math", NULL) != 0) {
        fprintf(stderr, "bench_math: %s\n", grpo_error());
        return 1;
    }
    printf("math reward, one core; each completion scored against its own answer and another one\n");
    printf("%-17s %7s %14s %8s %14s %8s %7s\n", "set", "items", "ours /s", "correct", "baseline /s", "correct",
           "ratio");
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        Set s = {0};
        int rc = rows[k].style ? load_gsm8k(&s, dir, "gsm8k_test.jsonl", rows[k].style) |
                                     load_gsm8k(&s, dir, "gsm8k_train.jsonl", rows[k].style)
                               : load_math500(&s, dir);
        if (rc != 0 || s.n == 0) {
            fprintf(stderr, "bench_math: %s (set DATA to the shared data folder)\n", grpo_error());
            return 1;
        }
        int err;
        PCRE2_SIZE off;
        Baseline b = {pcre2_compile((PCRE2_SPTR)rows[k].regex, PCRE2_ZERO_TERMINATED, 0, &err, &off, NULL), NULL};
        pcre2_jit_compile(b.re, PCRE2_JIT_COMPLETE);
        b.md = pcre2_match_data_create_from_pattern(b.re, NULL);
        double ok_ours, ok_base;
        double ours = run_ours(&r, &s, 0.5, &ok_ours);
        double base = run_baseline(&b, &s, 0.5, &ok_base);
        printf("%-17s %7d %14.0f %7.1f%% %14.0f %7.1f%% %7.2f\n", rows[k].name, s.n, ours, 100 * ok_ours, base,
               100 * ok_base, ours / base);
        pcre2_match_data_free(b.md);
        pcre2_code_free(b.re);
        for (int i = 0; i < s.n; i++) free(s.completion[i]), free(s.gold[i]);
        free(s.completion), free(s.gold);
    }
    printf("target: >= 100000 GSM8K completions/s (ours); correct = share judged correct (ideal: 50%% plus the\n"
           "share of problems whose answer equals the other one's)\n");
    reward_destroy(&r);
    return 0;
}
