// Evaluation: the pass@k estimator and the majority vote against hand-computed values; eval_run_source on
// scripted completions (always right: 100%; a hand-made mix: every metric by hand; chunks; errors); and
// eval_run end to end on a tiny random model through the rollout engine, its rows in a run database.
#include "common/error.h"
#include "datasets/dataset.h"
#include "rl/eval.h"
#include "test.h"
#include <stdlib.h>
#include <unistd.h>

static void test_pass_at_k(void) {
    EXPECT_NEAR(eval_pass_at_k(5, 2, 1), 0.4, 1e-12, "n5 c2 k1: 1 - 3/5");
    EXPECT_NEAR(eval_pass_at_k(5, 2, 2), 0.7, 1e-12, "n5 c2 k2: 1 - C(3,2)/C(5,2) = 1 - 3/10");
    EXPECT_NEAR(eval_pass_at_k(5, 2, 3), 0.9, 1e-12, "n5 c2 k3: 1 - C(3,3)/C(5,3) = 1 - 1/10");
    EXPECT_NEAR(eval_pass_at_k(5, 2, 4), 1.0, 1e-12, "n5 c2 k4: n - c < k");
    EXPECT_NEAR(eval_pass_at_k(5, 0, 1), 0.0, 1e-12, "c = 0");
    EXPECT_NEAR(eval_pass_at_k(5, 0, 5), 0.0, 1e-12, "c = 0, k = n");
    EXPECT_NEAR(eval_pass_at_k(5, 5, 1), 1.0, 1e-12, "c = n");
    EXPECT_NEAR(eval_pass_at_k(10, 3, 4), 1.0 - 35.0 / 210.0, 1e-12, "n10 c3 k4: 1 - C(7,4)/C(10,4)");
    EXPECT_NEAR(eval_pass_at_k(1, 1, 1), 1.0, 1e-12, "one sample, correct");
    EXPECT_NEAR(eval_pass_at_k(1, 0, 1), 0.0, 1e-12, "one sample, wrong");
    // large n: the product form stays finite where C(n, k) would overflow a double
    double p = eval_pass_at_k(2000, 1, 1000);
    EXPECT_NEAR(p, 0.5, 1e-9, "n2000 c1 k1000: k/n");
}

static void test_majority(void) {
    int scratch[8];
    const char *a[] = {"3", "4", "4", "", "3"}; // 3 and 4 twice each: 3 came first
    EXPECT(eval_majority(a, 5, scratch) == 0, "tie goes to the first answer: %d", eval_majority(a, 5, scratch));
    const char *b[] = {"", "6", "5", "6", "5", "5"};
    EXPECT(eval_majority(b, 6, scratch) == 2, "5 wins three to two: %d", eval_majority(b, 6, scratch));
    const char *c[] = {"", "", NULL};
    EXPECT(eval_majority(c, 3, scratch) == -1, "nobody answered");
    const char *d[] = {"x+1", "1+x", "x+1 "}; // exact strings: three different answers, the first wins
    EXPECT(eval_majority(d, 3, scratch) == 0, "exact strings: %d", eval_majority(d, 3, scratch));
    const char *e[] = {"b", "a", "a"};
    EXPECT(eval_majority(e, 3, scratch) == 1, "a wins two to one: %d", eval_majority(e, 3, scratch));
    EXPECT(eval_verdict_correct("correct") && eval_verdict_correct("passed") && eval_verdict_correct("match"),
           "correct verdicts");
    EXPECT(!eval_verdict_correct("wrong") && !eval_verdict_correct("no_answer") && !eval_verdict_correct("failed") &&
               !eval_verdict_correct(""), "wrong verdicts");
}

// Tasks "What is a+b?" with gold answers; the scripts answer in <answer> tags (the math reward reads them).
static Task make_task(const char *id, const char *prompt, const char *answer) {
    Task t = {strdup(id), strdup(prompt), strdup(answer), cJSON_CreateObject()};
    cJSON_AddStringToObject(t.meta, "answer", answer);
    return t;
}

static int math_rewards(RewardSet *rs) {
    cJSON *list = cJSON_Parse("[{\"name\": \"math\"}]");
    int rc = reward_set_create(rs, list);
    cJSON_Delete(list);
    return rc;
}

// A source answering from a table: script[task][sample] is the answer ("" = no answer tag), every
// completion 10 tokens, sample 3 of each task cut off by the length limit.
typedef struct {
    const char *const (*script)[4];
    const Task *tasks;       // for the always-right script (script NULL)
    int calls, first[8], count[8];
} Script;

static int scripted(void *ctx, int first, int count, int k, Completion *out) {
    Script *s = ctx;
    if (s->calls < 8) s->first[s->calls] = first, s->count[s->calls] = count;
    s->calls++;
    for (int j = 0; j < count; j++)
        for (int g = 0; g < k; g++) {
            const char *ans = s->script ? s->script[first + j][g % 4] : s->tasks[first + j].answer;
            char text[256];
            if (ans[0]) snprintf(text, sizeof text, "<think>adding</think> <answer>%s</answer>", ans);
            else snprintf(text, sizeof text, "I do not know");
            Completion *c = &out[j * k + g];
            c->text = strdup(text);
            c->text_len = strlen(text);
            c->n = 10;
            c->finish = g == 3 ? FINISH_LENGTH : FINISH_STOP;
        }
    return 0;
}

typedef struct {
    int n, order_ok, correct;
    double reward;
} Seen;

static int count_sample(void *ctx, const EvalSample *s) {
    Seen *v = ctx;
    v->order_ok += s->task_idx * 4 + s->sample_idx == v->n; // task-major order with k = 4
    v->n++;
    v->correct += s->correct;
    v->reward += s->reward;
    return 0;
}

static void test_always_right(void) {
    Task t[3] = {make_task("a/1", "What is 2+3?", "5"), make_task("a/2", "What is 4+6?", "10"),
                 make_task("a/3", "What is 1/2 + 1/4?", "3/4")};
    RewardSet rs;
    EXPECT(math_rewards(&rs) == 0, "%s", grpo_error());
    EvalOptions opt = eval_defaults();
    opt.rollout.group_size = 4;
    Seen seen = {0};
    opt.on_sample = count_sample;
    opt.on_sample_ctx = &seen;
    Script s = {.tasks = t};
    EvalResult r;
    EXPECT(eval_run_source(&r, scripted, &s, t, 3, &rs, &opt) == 0, "%s", grpo_error());
    EXPECT(r.n_tasks == 3 && r.k == 4 && r.n_samples == 12 && r.n_correct == 12 && r.n_solved == 3, "counts");
    EXPECT(r.n_pass == 3 && r.pass_j[0] == 1 && r.pass_j[1] == 2 && r.pass_j[2] == 4, "pass@1, 2, 4");
    for (int p = 0; p < r.n_pass; p++) EXPECT_NEAR(r.pass_at[p], 1.0, 1e-12, "pass@j of an always-right model");
    EXPECT_NEAR(r.maj, 1.0, 1e-12, "maj@4");
    EXPECT_NEAR(r.mean_reward, 1.0, 1e-6, "mean reward");
    EXPECT(seen.n == 12 && seen.order_ok == 12 && seen.correct == 12, "samples seen %d in order %d", seen.n,
           seen.order_ok);
    EvalMetric m[EVAL_MAX_METRICS];
    int nm = eval_metrics(&r, m);
    const char *names[] = {"pass@1", "pass@2", "pass@4", "maj@4", "mean_reward", "answered", "mean_tokens", "truncated"};
    const double values[] = {1, 1, 1, 1, 1, 1, 10, 0.25};
    EXPECT(nm == 8, "%d metrics", nm);
    for (int i = 0; i < nm && i < 8; i++) {
        EXPECT(!strcmp(m[i].name, names[i]), "metric %d: %s, expected %s", i, m[i].name, names[i]);
        EXPECT_NEAR(m[i].value, values[i], 1e-6, names[i]);
    }
    reward_set_destroy(&rs);
    for (int i = 0; i < 3; i++) task_free(&t[i]);
}

static void test_mixed(void) {
    Task t[3] = {make_task("m/1", "What is 2+3?", "5"), make_task("m/2", "What is 4+6?", "10"),
                 make_task("m/3", "What is 3+4?", "7")};
    static const char *const script[3][4] = {
        {"5", "5", "5", "5"},    // c = 4; the vote: 5, right
        {"10", "11", "11", ""},  // c = 1; the vote: 11 two to one, wrong
        {"7", "8", "7.0", "8"},  // c = 2 (7.0 is 7); the vote: 8 two to one (7 and 7.0 are different strings)
    };
    RewardSet rs;
    EXPECT(math_rewards(&rs) == 0, "%s", grpo_error());
    EvalOptions opt = eval_defaults();
    opt.rollout.group_size = 4;
    Script s = {.script = script};
    EvalResult r;
    EXPECT(eval_run_source(&r, scripted, &s, t, 3, &rs, &opt) == 0, "%s", grpo_error());
    EXPECT(r.n_correct == 7 && r.n_solved == 3 && r.n_answered == 11 && r.n_truncated == 3 && r.n_tokens == 120,
           "counts: correct %ld solved %d answered %ld truncated %ld tokens %ld", r.n_correct, r.n_solved,
           r.n_answered, r.n_truncated, r.n_tokens);
    EXPECT_NEAR(r.pass_at[0], 7.0 / 12, 1e-12, "pass@1 = mean correctness");
    // pass@2: 1, 1 - C(3,2)/C(4,2) = 1/2, 1 - C(2,2)/C(4,2) = 5/6
    EXPECT_NEAR(r.pass_at[1], (1 + 0.5 + 5.0 / 6) / 3, 1e-12, "pass@2");
    EXPECT_NEAR(r.pass_at[2], 1.0, 1e-12, "pass@4: every task has a correct sample");
    EXPECT_NEAR(r.maj, 1.0 / 3, 1e-12, "maj@4: only the first task's vote is right");
    EXPECT_NEAR(r.mean_reward, 7.0 / 12, 1e-6, "mean reward");
    EXPECT(s.calls == 1 && s.first[0] == 0 && s.count[0] == 3, "one chunk: %d calls", s.calls);

    // k = 512: chunks of EVAL_CHUNK_SAMPLES / 512 = 2 tasks; samples 4j..4j+3 repeat the row of the table
    opt.rollout.group_size = 512;
    Script s2 = {.script = script};
    EXPECT(eval_run_source(&r, scripted, &s2, t, 3, &rs, &opt) == 0, "%s", grpo_error());
    EXPECT(s2.calls == 2 && s2.first[0] == 0 && s2.count[0] == 2 && s2.first[1] == 2 && s2.count[1] == 1,
           "chunks: %d calls, (%d, %d), (%d, %d)", s2.calls, s2.first[0], s2.count[0], s2.first[1], s2.count[1]);
    EXPECT(r.n_samples == 1536 && r.n_correct == 7 * 128, "k 512: %ld samples, %ld correct", r.n_samples, r.n_correct);
    EXPECT_NEAR(r.pass_at[0], 7.0 / 12, 1e-12, "k 512: pass@1");
    EXPECT(r.n_pass == 10 && r.pass_j[9] == 512 && r.pass_j[8] == 256, "k 512: pass@1 ... 256, 512");
    // task 2 at pass@2: 1 - C(384, 2) / C(512, 2)
    double t2 = 1 - (384.0 * 383) / (512.0 * 511);
    EXPECT_NEAR(r.pass_at[1], (1 + t2 + (1 - 256.0 * 255 / (512.0 * 511))) / 3, 1e-9, "k 512: pass@2");
    EXPECT_NEAR(r.maj, 1.0 / 3, 1e-12, "k 512: maj@512");

    reward_set_destroy(&rs);
    for (int i = 0; i < 3; i++) task_free(&t[i]);
}

static int refuse(void *ctx, const EvalSample *s) { return s->task_idx == 1 ? ERR("stop at task 1") : 0; }

static void test_bad_input(void) {
    Task t[2] = {make_task("e/1", "What is 2+3?", "5"), {strdup("e/2"), strdup("No answer here"), NULL, NULL}};
    RewardSet rs;
    EXPECT(math_rewards(&rs) == 0, "%s", grpo_error());
    EvalOptions opt = eval_defaults();
    opt.rollout.group_size = 4;
    Script s = {.tasks = t};
    EvalResult r;
    EXPECT(eval_run_source(&r, scripted, &s, t, 2, &rs, &opt) == -1 && strstr(grpo_error(), "task e/2") &&
               strstr(grpo_error(), "answer") && s.calls == 0, "a task the reward cannot score: %s", grpo_error());
    EXPECT(eval_run_source(&r, scripted, &s, t, 0, &rs, &opt) == -1 && strstr(grpo_error(), "no tasks"), "no tasks");
    opt.on_sample = refuse;
    EXPECT(eval_run_source(&r, scripted, &s, t, 1, &rs, &opt) == 0, "task 0 alone passes: %s", grpo_error());
    task_free(&t[1]);
    t[1] = make_task("e/2", "What is 1+1?", "2");
    EXPECT(eval_run_source(&r, scripted, &s, t, 2, &rs, &opt) == -1 && strstr(grpo_error(), "stop at task 1"),
           "on_sample's error: %s", grpo_error());
    opt.on_sample = NULL;
    opt.rollout.group_size = EVAL_MAX_K + 1;
    EXPECT(eval_run_source(&r, scripted, &s, t, 2, &rs, &opt) == -1 && strstr(grpo_error(), "k 16385"), "k too big");
    reward_set_destroy(&rs);
    for (int i = 0; i < 2; i++) task_free(&t[i]);
}

// ------------------------------------------------------------------------------------------------
// The real path: a tiny random model through the rollout engine.

static Tokenizer *default_tokenizer(void) {
    char path[] = "/tmp/grpo-eval-tok-XXXXXX";
    close(mkstemp(path));
    Tokenizer *tok = tokenizer_write_default(path) == 0 ? tokenizer_load(path) : NULL;
    unlink(path);
    EXPECT(tok != NULL, "default tokenizer: %s", grpo_error());
    return tok;
}

typedef struct {
    int n;
    char text[16][128];
    int tokens;
} Texts;

static int keep_text(void *ctx, const EvalSample *s) {
    Texts *t = ctx;
    if (t->n < 16) snprintf(t->text[t->n], sizeof t->text[0], "%s", s->completion);
    t->n++;
    t->tokens += s->n_tokens;
    return 0;
}

static long query_long(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st = NULL;
    long v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static double query_double(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st = NULL;
    double v = NAN;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void test_tiny_model(void) {
    ModelConfig cfg;
    Model m = {0};
    EXPECT(config_load(&cfg, "configs/model/tiny.json") == 0 && model_build(&m, &cfg) == 0, "%s", grpo_error());
    model_init_random(&m, 5, 0.3f);
    Tokenizer *tok = default_tokenizer();
    TaskList tl = {0};
    SynthOptions so = {.n = 3, .seed = 4, .difficulty = 2, .ops = "+"};
    EXPECT(synth_arithmetic(&tl, &so) == 0 && tl.n == 3, "synthetic tasks: %s", grpo_error());
    RewardSet rs;
    EXPECT(math_rewards(&rs) == 0, "%s", grpo_error());
    if (!tok || tl.n != 3 || rs.n != 1) return;

    EvalOptions opt = eval_defaults();
    opt.rollout.group_size = 4;
    opt.rollout.max_new_tokens = 12;
    opt.tmpl = "r1-zero";
    opt.seed = 7;
    opt.label = "arith";
    Texts a = {0}, b = {0};
    opt.on_sample = keep_text;
    opt.on_sample_ctx = &a;
    EvalResult r;
    EXPECT(eval_run(&r, &m, tok, tl.tasks, tl.n, &rs, &opt) == 0, "eval: %s", grpo_error());
    EXPECT(r.n_tasks == 3 && r.k == 4 && r.n_samples == 12 && a.n == 12, "counts: %ld samples, %d seen",
           r.n_samples, a.n);
    EXPECT(r.n_tokens == a.tokens && r.n_tokens >= 12 && r.n_tokens <= 12 * 12, "tokens %ld", r.n_tokens);
    for (int p = 0; p < r.n_pass; p++) EXPECT(r.pass_at[p] >= 0 && r.pass_at[p] <= 1, "pass@%d in [0, 1]", r.pass_j[p]);
    for (int p = 1; p < r.n_pass; p++) EXPECT(r.pass_at[p] >= r.pass_at[p - 1], "pass@k grows with k");

    // the same samples at another batch size and budget
    opt.rollout.max_batch = 4;
    opt.rollout.token_budget = 4 * 256; // one group of 4 at a time (pages of 64: a group needs 896)
    opt.on_sample_ctx = &b;
    EvalResult r2;
    EXPECT(eval_run(&r2, &m, tok, tl.tasks, tl.n, &rs, &opt) == 0, "eval at batch 4: %s", grpo_error());
    EXPECT(b.n == 12 && !memcmp(a.text, b.text, sizeof a.text) && r2.n_tokens == r.n_tokens,
           "batch 64 and batch 4 give different samples");

    opt.rollout.max_new_tokens = 600;
    EXPECT(eval_run(&r2, &m, tok, tl.tasks, tl.n, &rs, &opt) == -1 && strstr(grpo_error(), "task arithmetic/") &&
               strstr(grpo_error(), "max_position_embeddings 512"), "too long: %s", grpo_error());

    // the rows of a run database
    char db_path[] = "/tmp/grpo-eval-db-XXXXXX";
    close(mkstemp(db_path));
    unlink(db_path);
    Store *st = store_open(db_path);
    int64_t run = 0;
    EXPECT(st && store_begin_run(st, "eval", "{}", "tiny", NULL, &run) == 0, "store: %s", grpo_error());
    EXPECT(eval_store(st, run, 0, "arith", &r) == 0, "eval_store: %s", grpo_error());
    EXPECT(eval_store(st, run, 100, "arith", &r) == 0, "a later step: %s", grpo_error());
    EXPECT(eval_store(st, run, 100, "arith", &r) == -1, "the same step twice is an error");
    sqlite3 *db = st ? store_db(st) : NULL;
    EXPECT(query_long(db, "SELECT count(*) FROM evals WHERE step = 0 AND dataset = 'arith' AND n = 3") == 8,
           "8 rows at step 0, n = 3 tasks");
    EXPECT(query_long(db, "SELECT count(*) FROM evals WHERE step = 0 AND metric IN ('pass@1', 'pass@2', 'pass@4', "
                          "'maj@4', 'mean_reward', 'answered', 'mean_tokens', 'truncated')") == 8, "metric names");
    EXPECT_NEAR(query_double(db, "SELECT value FROM evals WHERE step = 0 AND metric = 'pass@1'"), r.pass_at[0], 1e-12,
                "pass@1 row");
    EXPECT_NEAR(query_double(db, "SELECT value FROM evals WHERE step = 100 AND metric = 'mean_tokens'"),
                (double)r.n_tokens / r.n_samples, 1e-12, "mean_tokens row");
    EXPECT(query_long(db, "SELECT count(*) FROM runs WHERE kind = 'eval'") == 1, "the eval run");
    store_close(st);
    char wal[64];
    unlink(db_path);
    snprintf(wal, sizeof wal, "%s-wal", db_path);
    unlink(wal);
    snprintf(wal, sizeof wal, "%s-shm", db_path);
    unlink(wal);

    reward_set_destroy(&rs);
    tasks_free(&tl);
    tokenizer_free(tok);
    model_free(&m);
}

int main(void) {
    RUN_TEST(test_pass_at_k);
    RUN_TEST(test_majority);
    RUN_TEST(test_always_right);
    RUN_TEST(test_mixed);
    RUN_TEST(test_bad_input);
    RUN_TEST(test_tiny_model);
    return test_summary();
}
