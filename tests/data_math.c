// Self-consistency of the math reward on public data ($DATA, see ../shared/data/README.md):
// every GSM8K worked solution scored against its own "#### N", every MATH-500 solution against its
// `answer` field, must be correct (>= 99%); the same pairs shuffled (solution i against the answer of
// i + n/2) must almost never be: only where the two problems happen to share the answer.
#include "common/error.h"
#include "common/fileio.h"
#include "rewards/reward.h"
#include "tests/test.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
    char **completion, **gold;
    int n;
} Pairs;

static const char *data_dir;

// Reads `file` (JSONL); completion_key holds the solution, gold from gold_key or, when gold_key is NULL,
// the text after the solution's "####".
static int load(Pairs *p, const char *file, const char *completion_key, const char *gold_key) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", data_dir, file);
    char *text = read_file(path, NULL);
    if (!text) return -1;
    int cap = 0;
    for (char *s = text; *s; s++) cap += *s == '\n';
    p->completion = calloc((size_t)cap + 1, sizeof(char *));
    p->gold = calloc((size_t)cap + 1, sizeof(char *));
    p->n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, completion_key);
        const cJSON *g = gold_key ? cJSON_GetObjectItemCaseSensitive(o, gold_key) : c;
        if (!cJSON_IsString(c) || !cJSON_IsString(g)) {
            cJSON_Delete(o);
            free(text);
            return ERR("%s line %d: missing field \"%s\" or \"%s\"", file, p->n + 1, completion_key,
                       gold_key ? gold_key : completion_key);
        }
        const char *gs = g->valuestring;
        if (!gold_key) {
            const char *h = strstr(gs, "####");
            gs = h ? h + 4 : "";
            while (*gs == ' ') gs++;
        }
        p->completion[p->n] = strdup(c->valuestring);
        p->gold[p->n] = strdup(gs);
        p->n++;
        cJSON_Delete(o);
    }
    free(text);
    return 0;
}

static void free_pairs(Pairs *p) {
    for (int i = 0; i < p->n; i++) free(p->completion[i]), free(p->gold[i]);
    free(p->completion), free(p->gold);
}

// Same answer by plain comparison: equal strings once commas and spaces are gone.
static int same_answer(const char *a, const char *b) {
    for (;;) {
        while (*a == ',' || *a == ' ') a++;
        while (*b == ',' || *b == ' ') b++;
        if (*a != *b) return 0;
        if (!*a) return 1;
        a++, b++;
    }
}

static void check(const char *name, const char *file, const char *ckey, const char *gkey) {
    Pairs p;
    if (load(&p, file, ckey, gkey) != 0) {
        EXPECT(0, "%s: %s", name, grpo_error());
        return;
    }
    Reward r;
    EXPECT(reward_create(&r, "math", NULL) == 0, "%s", grpo_error());
    int ok = 0, shuffled = 0, coincide = 0, shown = 0;
    for (int i = 0; i < p.n; i++) {
        Task t = {.answer = p.gold[i]};
        RewardDetail d;
        float v = r.score(&r, &t, p.completion[i], &d);
        ok += v == 1.0f;
        if (v != 1.0f && shown++ < 10) fprintf(stderr, "  %s %d: extracted [%s] gold [%s]\n", name, i, d.extracted, p.gold[i]);
        int j = (i + p.n / 2) % p.n;
        Task u = {.answer = p.gold[j]};
        float w = r.score(&r, &u, p.completion[i], &d);
        shuffled += w == 1.0f;
        coincide += same_answer(p.gold[i], p.gold[j]);
        if (w == 1.0f && !same_answer(p.gold[i], p.gold[j]))
            fprintf(stderr, "  %s shuffled %d: [%s] matched other gold [%s]\n", name, i, d.extracted, p.gold[j]);
    }
    printf("%-12s %5d pairs: own answer %.2f%% correct; shuffled %.2f%% correct (%.2f%% share the answer)\n", name,
           p.n, 100.0 * ok / p.n, 100.0 * shuffled / p.n, 100.0 * coincide / p.n);
    EXPECT(ok >= 0.99 * p.n, "%s: %d of %d correct, below 99%%", name, ok, p.n);
    EXPECT(shuffled <= coincide + p.n / 200, "%s: %d shuffled pairs correct, only %d share the answer", name,
           shuffled, coincide);
    reward_destroy(&r);
    free_pairs(&p);
}

static void test_gsm8k_test(void) { check("gsm8k_test", "gsm8k_test.jsonl", "answer", NULL); }
static void test_gsm8k_train(void) { check("gsm8k_train", "gsm8k_train.jsonl", "answer", NULL); }
static void test_math500(void) { check("math500", "math500_test.jsonl", "solution", "answer"); }

int main(void) {
    data_dir = getenv("DATA");
    if (!data_dir) data_dir = "../shared/data";
    RUN_TEST(test_gsm8k_test);
    RUN_TEST(test_gsm8k_train);
    RUN_TEST(test_math500);
    return test_summary();
}
