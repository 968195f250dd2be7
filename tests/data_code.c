// `make check-data`: every HumanEval canonical solution and MBPP reference solution in $DATA passes
// through the code reward, and two broken variants of each (the function returning None; an off-by-one
// wrapper: numbers + 1, sequences minus their last item, anything else None) fail.
#define _GNU_SOURCE
#include "common/error.h"
#include "rewards/code.h"
#include "rewards/sandbox.h"
#include "tests/test.h"
#include <stdlib.h>

static Reward R;

typedef struct { Task *t; int n; } Set;

static Set load_jsonl(const char *cmd) {
    Set s = {0};
    FILE *f = popen(cmd, "r");
    if (!f) return s;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        cJSON *j = cJSON_Parse(line);
        if (!j) continue;
        s.t = realloc(s.t, sizeof *s.t * (size_t)(s.n + 1));
        Task *t = &s.t[s.n++];
        memset(t, 0, sizeof *t);
        t->meta = j;
        const cJSON *id = cJSON_GetObjectItem(j, "task_id");
        t->id = cJSON_IsString(id) ? strdup(id->valuestring) : cJSON_PrintUnformatted(id);
    }
    free(line);
    pclose(f);
    return s;
}

static const char *str(const Task *t, const char *k) {
    const cJSON *v = cJSON_GetObjectItem(t->meta, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

// Appends to `base` a redefinition of `fn` that breaks it.
static char *broken(const char *base, const char *fn, int kind) {
    char *out = NULL;
    if (kind == 0)
        asprintf(&out, "%s\n\ndef %s(*a, **k):\n    return None\n", base, fn);
    else
        asprintf(&out, "%s\n\n_grpo_orig = %s\ndef %s(*a, **k):\n    r = _grpo_orig(*a, **k)\n"
                 "    if isinstance(r, (int, float)) and not isinstance(r, bool):\n        return r + 1\n"
                 "    if isinstance(r, (list, tuple, str)) and len(r) > 0:\n        return r[:-1]\n    return None\n",
                 base, fn, fn);
    return out;
}

// The name of the function MBPP's first assert calls that the reference code defines.
static void mbpp_function(const Task *t, char *out, size_t cap) {
    const char *code = str(t, "code");
    const char *test = cJSON_GetArrayItem(cJSON_GetObjectItem(t->meta, "test_list"), 0)->valuestring;
    out[0] = 0;
    for (const char *p = code; (p = strstr(p, "def ")) != NULL; p += 4) {
        const char *s = p + 4, *e = s;
        while (*e == '_' || (*e >= 'a' && *e <= 'z') || (*e >= 'A' && *e <= 'Z') || (*e >= '0' && *e <= '9')) e++;
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(e - s), s);
        size_t n = strlen(name);
        for (const char *m = test; e > s && (m = strstr(m, name)) != NULL; m++) {
            char b = m > test ? m[-1] : ' ';
            const char *a = m + n;
            while (*a == ' ') a++;
            if (*a != '(' || b == '_' || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9'))
                continue;
            snprintf(out, cap, "%.*s", (int)(e - s), s);
            return;
        }
    }
}

// Scores every completion; returns how many passed and lists up to 10 of the ones that did not match.
static int run(const Set *s, char **comps, const char *what, bool want_pass) {
    float *r = calloc((size_t)s->n, sizeof *r);
    RewardDetail *d = calloc((size_t)s->n, sizeof *d);
    const Task **tp = malloc(sizeof *tp * (size_t)s->n);
    for (int i = 0; i < s->n; i++) tp[i] = &s->t[i];
    reward_score_batch(&R, tp, (const char *const *)comps, s->n, r, d);
    int passed = 0, shown = 0;
    for (int i = 0; i < s->n; i++) {
        passed += r[i] == 1;
        if ((r[i] == 1) != want_pass && shown++ < 10)
            fprintf(stderr, "  %s %s: %s (%g)\n", what, s->t[i].id, d[i].verdict, r[i]);
    }
    printf("%-28s %4d / %4d passed\n", what, passed, s->n);
    free(r);
    free(d);
    free(tp);
    return passed;
}

static void free_set(Set *s, char **comps) {
    for (int i = 0; i < s->n; i++) { free(comps[i]); cJSON_Delete(s->t[i].meta); free(s->t[i].id); }
    free(s->t);
}

static void test_humaneval(void) {
    const char *data = getenv("DATA");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "gzip -dc '%s/HumanEval.jsonl.gz'", data);
    Set s = load_jsonl(cmd);
    EXPECT(s.n == 164, "HumanEval: %d problems loaded, expected 164", s.n);
    char **c = calloc((size_t)s.n, sizeof *c);
    for (int i = 0; i < s.n; i++) c[i] = strdup(str(&s.t[i], "canonical_solution"));
    int p = run(&s, c, "HumanEval canonical", true);
    EXPECT(p == s.n, "HumanEval canonical: %d of %d passed", p, s.n);
    for (int kind = 0; kind < 2; kind++) {
        for (int i = 0; i < s.n; i++) {
            // A full program (prompt + body), then the redefinition.
            char *full = NULL;
            asprintf(&full, "%s%s", str(&s.t[i], "prompt"), str(&s.t[i], "canonical_solution"));
            free(c[i]);
            c[i] = broken(full, str(&s.t[i], "entry_point"), kind);
            free(full);
        }
        p = run(&s, c, kind ? "HumanEval off-by-one" : "HumanEval return None", false);
        EXPECT(p == 0, "HumanEval broken variant %d: %d passed", kind, p);
    }
    free_set(&s, c);
    free(c);
}

static void test_mbpp(void) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cat '%s/mbpp.jsonl'", getenv("DATA"));
    Set s = load_jsonl(cmd);
    EXPECT(s.n == 974, "MBPP: %d problems loaded, expected 974", s.n);
    char **c = calloc((size_t)s.n, sizeof *c);
    for (int i = 0; i < s.n; i++) c[i] = strdup(str(&s.t[i], "code"));
    int p = run(&s, c, "MBPP reference", true);
    EXPECT(p == s.n, "MBPP reference: %d of %d passed", p, s.n);
    for (int kind = 0; kind < 2; kind++) {
        int named = 0;
        for (int i = 0; i < s.n; i++) {
            char fn[128];
            mbpp_function(&s.t[i], fn, sizeof fn);
            named += fn[0] != 0;
            free(c[i]);
            c[i] = fn[0] ? broken(str(&s.t[i], "code"), fn, kind) : strdup("raise SystemExit(0)");
        }
        EXPECT(named == s.n, "MBPP: the tested function was found in %d of %d", named, s.n);
        for (int i = 0; i < s.n && named < s.n; i++)
            if (!strcmp(c[i], "raise SystemExit(0)")) fprintf(stderr, "  MBPP %s: no tested function found\n", s.t[i].id);
        p = run(&s, c, kind ? "MBPP off-by-one" : "MBPP return None", false);
        EXPECT(p == 0, "MBPP broken variant %d: %d passed", kind, p);
    }
    free_set(&s, c);
    free(c);
}

int main(void) {
    if (!getenv("DATA")) {
        fprintf(stderr, "FAIL: set DATA to the shared data folder\n");
        printf("0 passed, 1 failed\n");
        return 1;
    }
    // MBPP 123 (amicable numbers) takes 7 s of CPU: the training default (10 s) is too tight under load.
    cJSON *o = cJSON_Parse("{\"timeout_s\": 60, \"cpu_s\": 60}");
    int rc = reward_create(&R, "code", o);
    cJSON_Delete(o);
    if (rc != 0) {
        fprintf(stderr, "FAIL: %s\n", grpo_error());
        printf("0 passed, 1 failed\n");
        return 1;
    }
    fprintf(stderr, "sandbox: %s\n", sandbox_layers(reward_code_sandbox(&R)));
    RUN_TEST(test_humaneval);
    RUN_TEST(test_mbpp);
    reward_destroy(&R);
    return test_summary();
}
