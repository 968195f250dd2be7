// The reward registry, RewardSet (weighted sums with separate parts), and the format and countdown
// rewards, including their bad inputs.
#include "common/error.h"
#include "rewards/countdown.h"
#include "rewards/reward.h"
#include "tests/test.h"
#include <stdlib.h>
#include <time.h>

static float score(const Reward *r, const Task *t, const char *completion, RewardDetail *d) {
    return r->score(r, t, completion, d);
}

static void test_registry(void) {
    const char *const *names = reward_names();
    int found = 0;
    for (int k = 0; names[k]; k++)
        found += !strcmp(names[k], "math") + !strcmp(names[k], "format") + !strcmp(names[k], "countdown");
    EXPECT(found == 3, "math, format and countdown are registered");
    Reward r;
    EXPECT(reward_create(&r, "nope", NULL) == -1 && strstr(grpo_error(), "nope") && strstr(grpo_error(), "math"),
           "unknown names are errors listing the known ones: %s", grpo_error());
    cJSON *o = cJSON_Parse("{\"name\": \"format\"}");
    EXPECT(reward_create(&r, "math", o) == -1 && strstr(grpo_error(), "name"), "a mismatched name: %s", grpo_error());
    cJSON_Delete(o);
    o = cJSON_Parse("[1]");
    EXPECT(reward_create(&r, "math", o) == -1, "options must be an object");
    cJSON_Delete(o);
    o = cJSON_Parse("{\"name\": \"math\", \"weight\": 2, \"colour\": 1}");
    EXPECT(reward_create(&r, "math", o) == -1 && strstr(grpo_error(), "colour"), "unknown key: %s", grpo_error());
    cJSON_Delete(o);
}

static void test_reward_set(void) {
    cJSON *list = cJSON_Parse("[{\"name\": \"math\", \"weight\": 1}, {\"name\": \"format\", \"weight\": 0.5}]");
    RewardSet s;
    EXPECT(reward_set_create(&s, list) == 0, "%s", grpo_error());
    cJSON_Delete(list);
    Task t = {.answer = "4"};
    const Task *tasks[3] = {&t, &t, &t};
    const char *comps[3] = {"<think>2+2</think><answer>4</answer>", "<answer>4</answer>", "<think>x</think><answer>5</answer>"};
    float total[3], parts[2 * 3];
    RewardDetail d[3];
    EXPECT(reward_set_score_batch(&s, tasks, comps, 3, total, parts, d) == 0, "%s", grpo_error());
    EXPECT_NEAR(total[0], 1.5, 1e-6, "math + 0.5 format");
    EXPECT_NEAR(total[1], 1.0, 1e-6, "math only");
    EXPECT_NEAR(total[2], 0.5, 1e-6, "format only");
    EXPECT(parts[0] == 1 && parts[3] == 1 && parts[1] == 1 && parts[4] == 0, "components (k, i) unweighted");
    EXPECT(d[0].nparts == 2 && !strcmp(d[0].parts[0].name, "math") && !strcmp(d[0].parts[1].name, "format"),
           "one part per component, by name");
    EXPECT(!strcmp(d[2].verdict, "wrong") && !strcmp(d[2].extracted, "5"), "verdict from the first component");
    EXPECT(reward_set_score_batch(&s, tasks, comps, 3, total, NULL, NULL) == 0, "without parts or details");
    reward_set_destroy(&s);

    static const char *const bad[] = {"{}", "[]", "[{\"weight\": 1}]", "[{\"name\": \"math\", \"weight\": \"1\"}]",
                                      "[{\"name\": \"math\"}, {\"name\": \"nope\"}]",
                                      "[{\"name\": \"format\", \"pattern\": \"(\"}]"};
    static const char *const want[] = {"array", "entries", "rewards[0]", "rewards[0]", "rewards[1]", "pattern"};
    for (int i = 0; i < 6; i++) {
        list = cJSON_Parse(bad[i]);
        EXPECT(reward_set_create(&s, list) == -1 && strstr(grpo_error(), want[i]), "%s: [%s] should name %s", bad[i],
               grpo_error(), want[i]);
        cJSON_Delete(list);
    }
}

static void test_format(void) {
    Reward r;
    EXPECT(reward_create(&r, "format", NULL) == 0, "%s", grpo_error());
    RewardDetail d;
    EXPECT(score(&r, NULL, "<think>\nsteps\n</think>\n<answer>\n4\n</answer>", &d) == 1 && !strcmp(d.verdict, "match"),
           "R1 layout, over lines");
    EXPECT(score(&r, NULL, "<think>a</think><answer>4</answer>", NULL) == 1, "R1 layout, compact");
    EXPECT(score(&r, NULL, "<answer>4</answer>", &d) == 0 && !strcmp(d.verdict, "no_match"), "no think block");
    EXPECT(score(&r, NULL, "<think>a</think><answer>4</answer> trailing", NULL) == 0, "text after the answer");
    EXPECT(score(&r, NULL, "<think>a<answer>4</answer>", NULL) == 0, "unclosed think");
    EXPECT(score(&r, NULL, "", NULL) == 0, "empty");
    reward_destroy(&r);

    cJSON *o = cJSON_Parse("{\"pattern\": \"\\\\\\\\boxed\\\\{\", \"score\": 0.5}");
    EXPECT(reward_create(&r, "format", o) == 0, "%s", grpo_error());
    EXPECT(score(&r, NULL, "so \\boxed{4}", NULL) == 0.5f, "custom pattern and score");
    reward_destroy(&r);
    cJSON_Delete(o);

    o = cJSON_Parse("{\"pattern\": \"7|x*\", \"count\": 4}");
    EXPECT(reward_create(&r, "format", o) == 0, "%s", grpo_error());
    EXPECT(score(&r, NULL, "a7b77", &d) == 1.0f && d.parts[0].value == 1.0f, "empty matches count and move on");
    reward_destroy(&r);
    cJSON_Delete(o);
    o = cJSON_Parse("{\"pattern\": \"7\", \"count\": 4}");
    EXPECT(reward_create(&r, "format", o) == 0, "%s", grpo_error());
    EXPECT(score(&r, NULL, "a7b77", &d) == 0.75f && !strcmp(d.verdict, "match"), "three of four sevens");
    EXPECT(score(&r, NULL, "7777777", NULL) == 1.0f, "capped at count");
    EXPECT(score(&r, NULL, "none", &d) == 0.0f && !strcmp(d.verdict, "no_match"), "none");
    reward_destroy(&r);
    cJSON_Delete(o);
    o = cJSON_Parse("{\"count\": -1}");
    EXPECT(reward_create(&r, "format", o) == -1 && strstr(grpo_error(), "count"), "%s", grpo_error());
    cJSON_Delete(o);

    o = cJSON_Parse("{\"pattern\": \"(a|aa)+$\"}");
    EXPECT(reward_create(&r, "format", o) == 0, "%s", grpo_error());
    char *s = malloc(200001);
    memset(s, 'a', 200000);
    s[199999] = 'b', s[200000] = 0;
    clock_t t0 = clock();
    score(&r, NULL, s, &d);
    double dt = (double)(clock() - t0) / CLOCKS_PER_SEC;
    EXPECT(dt < 2.0 && d.verdict[0], "catastrophic backtracking is bounded: %.2f s, verdict %s", dt, d.verdict);
    free(s);
    reward_destroy(&r);
    cJSON_Delete(o);

    o = cJSON_Parse("{\"pattern\": \"(\"}");
    EXPECT(reward_create(&r, "format", o) == -1 && strstr(grpo_error(), "pattern"), "%s", grpo_error());
    cJSON_Delete(o);
    o = cJSON_Parse("{\"pattern\": 3}");
    EXPECT(reward_create(&r, "format", o) == -1 && strstr(grpo_error(), "pattern"), "%s", grpo_error());
    cJSON_Delete(o);
}

static void test_countdown_check(void) {
    const int64_t n3[] = {6, 2, 6}, n4[] = {7, 2, 3, 5};
    struct { const char *eq; const int64_t *nums; int n; int64_t target; CountdownVerdict want; } c[] = {
        {"(6 - 2) * 6", n3, 3, 24, COUNTDOWN_CORRECT},
        {"6 * (6 - 2)", n3, 3, 24, COUNTDOWN_CORRECT},
        {"(6-2)*6 = 24", n3, 3, 24, COUNTDOWN_CORRECT},
        {"(6-2)*6 = 25", n3, 3, 24, COUNTDOWN_WRONG_VALUE},
        {"6 \\times (6 - 2)", n3, 3, 24, COUNTDOWN_CORRECT},
        {"6 \xc3\x97 (6 \xe2\x88\x92 2)", n3, 3, 24, COUNTDOWN_CORRECT},
        {"6 * 2 + 6", n3, 3, 24, COUNTDOWN_WRONG_VALUE},
        {"6 * 4", n3, 3, 24, COUNTDOWN_WRONG_NUMBERS},
        {"(6 - 2) * 6 * 1", n3, 3, 24, COUNTDOWN_WRONG_NUMBERS},
        {"(6 - 2) * 2", n3, 3, 8, COUNTDOWN_WRONG_NUMBERS},
        {"7 / 2 * (5 - 3)", n4, 4, 7, COUNTDOWN_CORRECT},  // exact: 7/2*2 is 7
        {"7 / 2 + 3 + 5", n4, 4, 11, COUNTDOWN_WRONG_VALUE},  // 11.5
        {"(7 / 3) * 3 + 5 - 2", (const int64_t[]){7, 3, 3, 5, 2}, 5, 10, COUNTDOWN_CORRECT},
        {"7 / (2 - 2) + 3 + 5", n4, 4, 8, COUNTDOWN_WRONG_NUMBERS},
        {"3 / (7 - 7)", (const int64_t[]){3, 7, 7}, 3, 0, COUNTDOWN_WRONG_VALUE},  // division by zero
        {"-7 + 2 * 3 * 5", n4, 4, 23, COUNTDOWN_CORRECT},
        {"7 + 2 ** 3 + 5", n4, 4, 20, COUNTDOWN_INVALID},
        {"7 + 2.0 + 3 + 5", n4, 4, 17, COUNTDOWN_INVALID},
        {"import os", n3, 3, 24, COUNTDOWN_INVALID},
        {"", n3, 3, 24, COUNTDOWN_INVALID},
        {"(6 - 2 * 6", n3, 3, 24, COUNTDOWN_INVALID},
        {"99999999999999999999 * 6 * 6", (const int64_t[]){6, 6, 0}, 3, 0, COUNTDOWN_WRONG_NUMBERS},
        {"4000000000 * 4000000000 * 4000000000", (const int64_t[]){4000000000, 4000000000, 4000000000}, 3, 0,
         COUNTDOWN_WRONG_VALUE},  // past 64 bits
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        CountdownVerdict v = countdown_check(c[i].eq, strlen(c[i].eq), c[i].nums, c[i].n, c[i].target);
        EXPECT(v == c[i].want, "[%s] target %lld: want %d, got %d", c[i].eq, (long long)c[i].target, c[i].want, v);
    }
}

static Task countdown_task(const char *json) {
    Task t = {.meta = cJSON_Parse(json)};
    return t;
}

static void test_countdown_reward(void) {
    Reward r;
    EXPECT(reward_create(&r, "countdown", NULL) == 0, "%s", grpo_error());
    Task t = countdown_task("{\"nums\": [6, 2, 6], \"target\": 24}");
    RewardDetail d;
    EXPECT(score(&r, &t, "<think>..</think><answer>(6-2)*6</answer>", &d) == 1 && !strcmp(d.verdict, "correct"),
           "correct: score");
    EXPECT(fabsf(score(&r, &t, "<answer>6+2+6</answer>", &d) - 0.1f) < 1e-6 && !strcmp(d.verdict, "wrong_value"),
           "wrong value: format score");
    EXPECT(score(&r, &t, "(6-2)*6", &d) == 0 && !strcmp(d.verdict, "no_answer"), "no tags: 0");
    EXPECT(score(&r, &t, "<answer>1</answer> <answer>(6-2)*6</answer>", NULL) == 1, "the last answer counts");
    EXPECT(r.check_task(&r, &t) == 0, "a countdown task passes its check");
    Task bad = countdown_task("{\"nums\": [6, 2.5], \"target\": 24}");
    EXPECT(r.check_task(&r, &bad) == -1 && strstr(grpo_error(), "nums"), "non-integer nums: %s", grpo_error());
    EXPECT(score(&r, &bad, "<answer>6</answer>", &d) == 0.1f || !strcmp(d.verdict, "invalid"), "bad task scores low");
    cJSON_Delete(bad.meta);
    reward_destroy(&r);

    cJSON *o = cJSON_Parse("{\"score\": 2, \"format_score\": 0}");
    EXPECT(reward_create(&r, "countdown", o) == 0, "%s", grpo_error());
    EXPECT(score(&r, &t, "<answer>(6-2)*6</answer>", NULL) == 2, "configured score");
    EXPECT(score(&r, &t, "<answer>6+2+6</answer>", NULL) == 0, "configured format score");
    reward_destroy(&r);
    cJSON_Delete(o);

    // bad inputs: deep nesting, 1 MB equations, many tags; each bounded in time
    EXPECT(reward_create(&r, "countdown", NULL) == 0, "%s", grpo_error());
    size_t n = 1 << 20;
    char *s = malloc(n + 32);
    strcpy(s, "<answer>");
    memset(s + 8, '(', n);
    strcpy(s + 8 + n, "6</answer>");
    clock_t t0 = clock();
    score(&r, &t, s, &d);
    EXPECT(!strcmp(d.verdict, "invalid"), "1 MB of parentheses: %s", d.verdict);
    for (size_t k = 8; k + 2 < n; k += 2) s[k] = '1', s[k + 1] = '+';
    score(&r, &t, s, &d);
    EXPECT(d.verdict[0], "a 1 MB sum");
    for (size_t k = 0; k + 9 < n; k += 9) memcpy(s + k, "<answer>x", 9);
    score(&r, &t, s, &d);
    EXPECT(d.verdict[0], "100,000 answer tags");
    EXPECT((double)(clock() - t0) / CLOCKS_PER_SEC < 2.0, "bad inputs take %.2f s",
           (double)(clock() - t0) / CLOCKS_PER_SEC);
    free(s);
    reward_destroy(&r);
    cJSON_Delete(t.meta);
}

// The batch entry point gives what scoring one by one gives.
static void test_batch_matches_single(void) {
    Reward r;
    EXPECT(reward_create(&r, "math", NULL) == 0, "%s", grpo_error());
    Task t[3] = {{.answer = "1/2"}, {.answer = "3"}, {.answer = "(0,1)"}};
    const Task *tp[3] = {&t[0], &t[1], &t[2]};
    const char *c[3] = {"\\boxed{0.5}", "#### 4", "\\boxed{[0,1)}"};
    float v[3];
    RewardDetail d[3];
    reward_score_batch(&r, tp, c, 3, v, d);
    for (int i = 0; i < 3; i++) EXPECT(v[i] == score(&r, &t[i], c[i], NULL), "item %d", i);
    EXPECT(v[0] == 1 && v[1] == 0 && v[2] == 0, "values");
    reward_destroy(&r);
}

int main(void) {
    RUN_TEST(test_registry);
    RUN_TEST(test_reward_set);
    RUN_TEST(test_format);
    RUN_TEST(test_countdown_check);
    RUN_TEST(test_countdown_reward);
    RUN_TEST(test_batch_matches_single);
    return test_summary();
}
