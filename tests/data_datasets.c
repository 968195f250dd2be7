// `make check-data`: the loaders on the public sets in $DATA (see its README): counts, detected formats,
// unique ids, every task accepted by its reward's check_task, and the reference answers and solutions
// scored by the reward exactly as a trainer would score completions of the loaded tasks.
#define _GNU_SOURCE
#include "common/error.h"
#include "datasets/dataset.h"
#include "rewards/reward.h"
#include "tests/test.h"
#include <stdlib.h>

static const char *data_dir;

static int load(TaskList *l, const char *file, int want_n, DatasetFormat want_format) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", data_dir, file);
    if (tasks_load(l, path, NULL) != 0) {
        EXPECT(0, "%s", grpo_error());
        return -1;
    }
    EXPECT(l->n == want_n && l->format == want_format, "%s: %d tasks as %s, expected %d as %s", file, l->n,
           dataset_format_name(l->format), want_n, dataset_format_name(want_format));
    int dup = 0;
    for (int i = 1; i < l->n; i++)
        for (int j = 0; j < i && !dup; j++) dup = !strcmp(l->tasks[i].id, l->tasks[j].id);
    EXPECT(!dup, "%s: duplicate ids", file);
    return 0;
}

// Scores completion(task) for every task; returns how many scored 1 and lists up to 5 that did not.
static int score_all(const TaskList *l, const char *reward, char *(*completion)(const Task *), const char *what) {
    Reward r;
    if (reward_create(&r, reward, NULL) != 0) {
        EXPECT(0, "%s", grpo_error());
        return 0;
    }
    const Task **tp = malloc(sizeof *tp * (size_t)l->n);
    char **comp = malloc(sizeof *comp * (size_t)l->n);
    float *score = malloc(sizeof *score * (size_t)l->n);
    RewardDetail *d = malloc(sizeof *d * (size_t)l->n);
    int checked = 0, ok = 0, shown = 0;
    for (int i = 0; i < l->n; i++) {
        tp[i] = &l->tasks[i];
        comp[i] = completion(&l->tasks[i]);
        int c = !r.check_task || r.check_task(&r, tp[i]) == 0;
        if (!c && shown++ < 5) fprintf(stderr, "  %s: %s\n", l->tasks[i].id, grpo_error());
        checked += c;
    }
    reward_score_batch(&r, tp, (const char *const *)comp, l->n, score, d);
    for (int i = 0; i < l->n; i++) {
        ok += score[i] == 1.0f;
        if (score[i] != 1.0f && shown++ < 5)
            fprintf(stderr, "  %s %s: %s, extracted [%s] gold [%s]\n", what, l->tasks[i].id, d[i].verdict,
                    d[i].extracted, l->tasks[i].answer ? l->tasks[i].answer : "");
        free(comp[i]);
    }
    printf("%-34s %5d / %5d scored 1\n", what, ok, l->n);
    EXPECT(checked == l->n, "%s: %d of %d tasks accepted by the %s reward", what, checked, l->n, reward);
    free(tp), free(comp), free(score), free(d);
    reward_destroy(&r);
    return ok;
}

static char *meta_field(const Task *t, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(t->meta, key);
    return strdup(cJSON_IsString(v) ? v->valuestring : "");
}
static char *answer_tag(const Task *t) {
    char *s = NULL;
    return asprintf(&s, "<think>\n</think>\n<answer>%s</answer>", t->answer) < 0 ? NULL : s;
}
static char *boxed(const Task *t) {
    char *s = NULL;
    return asprintf(&s, "The answer is $\\boxed{%s}$.", t->answer) < 0 ? NULL : s;
}
static char *worked_answer(const Task *t) { return meta_field(t, "answer"); }
static char *solution(const Task *t) { return meta_field(t, "solution"); }
static char *canonical(const Task *t) { return meta_field(t, "canonical_solution"); }
static char *code(const Task *t) { return meta_field(t, "code"); }

static void test_gsm8k(void) {
    static const char *const files[] = {"gsm8k_test.jsonl", "gsm8k_train.jsonl"};
    static const int counts[] = {1319, 7473};
    for (int k = 0; k < 2; k++) {
        TaskList l;
        if (load(&l, files[k], counts[k], DS_GSM8K) != 0) continue;
        int n = score_all(&l, "math", answer_tag, files[k]);
        EXPECT(n == l.n, "%s: the gold answer in <answer> tags: %d of %d", files[k], n, l.n);
        n = score_all(&l, "math", worked_answer, "  its worked solution");
        EXPECT(n >= 0.99 * l.n, "%s: worked solutions: %d of %d", files[k], n, l.n);
        tasks_free(&l);
    }
}

static void test_math500(void) {
    TaskList l;
    if (load(&l, "math500_test.jsonl", 500, DS_MATH) != 0) return;
    int n = score_all(&l, "math", boxed, "math500 gold answer boxed");
    EXPECT(n == l.n, "gold answers boxed: %d of %d", n, l.n);
    n = score_all(&l, "math", solution, "  its solution");
    EXPECT(n >= 0.99 * l.n, "solutions: %d of %d", n, l.n);
    tasks_free(&l);
}

static void test_humaneval(void) {
    TaskList l;
    if (load(&l, "HumanEval.jsonl.gz", 164, DS_HUMANEVAL) != 0) return;
    EXPECT(!strcmp(l.tasks[0].id, "HumanEval/0") && strstr(l.tasks[0].prompt, "def has_close_elements"),
           "HumanEval/0: %s", l.tasks[0].id);
    int n = score_all(&l, "code", canonical, "HumanEval canonical solutions");
    EXPECT(n == l.n, "canonical solutions: %d of %d pass", n, l.n);
    tasks_free(&l);
}

static void test_mbpp(void) {
    TaskList l;
    if (load(&l, "mbpp.jsonl", 974, DS_MBPP) != 0) return;
    EXPECT(strstr(l.tasks[0].prompt, "assert min_cost("), "MBPP prompts show the tests: %s", l.tasks[0].prompt);
    int n = score_all(&l, "code", code, "MBPP reference code");
    EXPECT(n == l.n, "reference code: %d of %d pass", n, l.n);
    tasks_free(&l);
}

int main(void) {
    data_dir = getenv("DATA");
    if (!data_dir) data_dir = "../shared/data";
    RUN_TEST(test_gsm8k);
    RUN_TEST(test_math500);
    RUN_TEST(test_humaneval);
    RUN_TEST(test_mbpp);
    return test_summary();
}
