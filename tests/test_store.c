// The run database: schema and pragmas, a step with its episodes round-tripping, all-or-nothing steps,
// truncation for resume, reopening, version and file checks, the episode reader, and a writer killed
// with SIGKILL at random moments leaving only whole, contiguous steps.
#include "common/error.h"
#include "rl/store.h"
#include "tests/test.h"
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[64];

static const char *db_path(const char *name) {
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

static void remove_db(const char *path) {
    static const char *const suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s%s", path, suffix[i]);
        unlink(p);
    }
}

// First column of the first row as an integer (-1 when the query fails or has no row).
static int64_t q_int(Store *s, const char *sql) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL) != SQLITE_OK) return -1;
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return v;
}

static double q_real(Store *s, const char *sql) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL) != SQLITE_OK) return NAN;
    double v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_double(st, 0) : NAN;
    sqlite3_finalize(st);
    return v;
}

static const char *q_text(Store *s, const char *sql) {
    static char buf[512];
    sqlite3_stmt *st;
    buf[0] = 0;
    if (sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL) != SQLITE_OK) return buf;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(buf, sizeof buf, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return buf;
}

static const char METRICS[] = "{\"reward/mean\": 0.5, \"reward/math/mean\": 0.5, \"time/rollout\": 1.5}";

// n episodes of `step`: group i / 2, sample i % 2, reward i / 4.
static void make_episodes(EpisodeRecord *eps, int n, int64_t step) {
    for (int i = 0; i < n; i++)
        eps[i] = (EpisodeRecord){.task_id = "gsm8k/train/7", .group_idx = i / 2, .sample_idx = i % 2,
                                 .prompt = "What is 2+2?", .completion = step % 2 ? "<answer>4</answer>" : "5",
                                 .completion_tokens = 5 + i, .reward = i / 4.0,
                                 .reward_parts_json = "{\"math\": 1, \"format\": 0}", .advantage = i - 1.5,
                                 .finish_reason = "stop", .logprob_sum = -3.25, .verdict = "correct"};
}

static int write_steps(Store *s, int64_t run, int64_t from, int64_t to, int n_eps) {
    EpisodeRecord eps[16];
    for (int64_t k = from; k <= to; k++) {
        StepRecord r = store_step_init(k);
        r.metrics_json = METRICS;
        r.loss = 0.1 * k;
        make_episodes(eps, n_eps, k);
        if (store_write_step(s, run, &r, eps, n_eps) != 0) return -1;
    }
    return 0;
}

static void test_schema(void) {
    const char *path = db_path("schema.db");
    Store *s = store_open(path);
    if (!s) { EXPECT(0, "%s", grpo_error()); return; }
    static const char *const tables[] = {"meta", "runs", "steps", "episodes", "evals"};
    for (int i = 0; i < 5; i++) {
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '%s'", tables[i]);
        EXPECT(q_int(s, sql) == 1, "table %s exists", tables[i]);
    }
    EXPECT(!strcmp(q_text(s, "SELECT value FROM meta WHERE key = 'schema_version'"), "1"), "schema_version 1");
    EXPECT(!strcmp(q_text(s, "PRAGMA journal_mode"), "wal"), "WAL mode");
    EXPECT(q_int(s, "PRAGMA synchronous") == 2, "synchronous=FULL");
    EXPECT(!strcmp(q_text(s, "PRAGMA integrity_check"), "ok"), "integrity_check");
    // the columns other tools query by name
    EXPECT(q_int(s, "SELECT count(*) FROM pragma_table_info('steps')") == 20, "20 step columns");
    EXPECT(q_int(s, "SELECT count(*) FROM pragma_table_info('episodes')") == 14, "14 episode columns");
    EXPECT(q_int(s, "SELECT count(*) FROM pragma_table_info('steps') WHERE name IN ('zero_std_groups', "
                    "'rollout_tok_s', 'train_tok_s', 'truncated_frac', 'metrics_json')") == 5,
           "step column names");
    store_close(s);
    s = store_open(path);
    EXPECT(s != NULL, "opening again: %s", grpo_error());
    store_close(s);
}

static void test_round_trip(void) {
    Store *s = store_open(db_path("trip.db"));
    if (!s) { EXPECT(0, "%s", grpo_error()); return; }
    int64_t run = 0;
    EXPECT(store_begin_run(s, "grpo", "{\"lr\": 1e-6}", "ckpt/base", "0.1", &run) == 0 && run == 1, "run 1: %s",
           grpo_error());
    EXPECT(!strcmp(q_text(s, "SELECT kind || ' ' || model || ' ' || grpo_version FROM runs"), "grpo ckpt/base 0.1"),
           "run row");
    EXPECT(strlen(q_text(s, "SELECT started_at FROM runs")) == 20, "ISO 8601 UTC started_at: %s",
           q_text(s, "SELECT started_at FROM runs"));
    StepRecord r = store_step_init(1);
    r.metrics_json = METRICS;
    r.reward_mean = 0.5;
    r.zero_std_groups = 2;
    r.loss = -0.125;
    EpisodeRecord eps[3];
    make_episodes(eps, 3, 1);
    eps[1].task_id = NULL;
    eps[1].logprob_sum = NAN;
    eps[2].reward_parts_json = NULL;
    EXPECT(store_write_step(s, run, &r, eps, 3) == 0, "%s", grpo_error());
    EXPECT(q_real(s, "SELECT reward_mean FROM steps") == 0.5, "reward_mean");
    EXPECT(q_real(s, "SELECT loss FROM steps") == -0.125, "loss");
    EXPECT(q_int(s, "SELECT zero_std_groups FROM steps") == 2, "zero_std_groups");
    EXPECT(q_int(s, "SELECT reward_std IS NULL AND kl IS NULL AND lr IS NULL FROM steps") == 1, "unset metrics NULL");
    EXPECT(fabs(q_real(s, "SELECT time FROM steps") - (double)time(NULL)) < 10, "time is now");
    EXPECT(q_real(s, "SELECT metrics_json ->> '$.\"time/rollout\"' FROM steps") == 1.5, "metrics_json by name");
    EXPECT(q_int(s, "SELECT count(*) FROM episodes WHERE run_id = 1 AND step = 1") == 3, "three episodes");
    EXPECT(q_int(s, "SELECT task_id IS NULL AND logprob_sum IS NULL FROM episodes WHERE sample_idx = 1") == 1,
           "NULL task and NAN logprob stored as NULL");
    EXPECT(q_real(s, "SELECT logprob_sum FROM episodes WHERE sample_idx = 0 AND group_idx = 0") == -3.25, "logprob");
    EXPECT(q_int(s, "SELECT reward_parts_json ->> '$.math' FROM episodes WHERE group_idx = 0 AND sample_idx = 0") == 1,
           "reward parts");

    EpisodeCursor c;
    EpisodeRow row;
    EXPECT(store_episodes_open(&c, s, run, -INFINITY) == 0, "%s", grpo_error());
    int n = 0;
    while (store_episodes_next(&c, &row) == 1) {
        EXPECT(row.run_id == 1 && row.step == 1 && row.group_idx == n / 2 && row.sample_idx == n % 2, "order %d", n);
        EXPECT(row.reward == n / 4.0 && row.advantage == n - 1.5 && row.completion_tokens == 5 + n, "values %d", n);
        EXPECT(!strcmp(row.completion, "<answer>4</answer>") && !strcmp(row.prompt, "What is 2+2?") &&
                   !strcmp(row.finish_reason, "stop") && !strcmp(row.verdict, "correct"),
               "texts %d", n);
        EXPECT(n == 1 ? row.task_id == NULL : !strcmp(row.task_id, "gsm8k/train/7"), "task id %d", n);
        n++;
    }
    store_episodes_close(&c);
    EXPECT(n == 3, "three rows read, got %d", n);
    store_close(s);
}

static void test_step_all_or_nothing(void) {
    Store *s = store_open(db_path("atomic.db"));
    if (!s) { EXPECT(0, "%s", grpo_error()); return; }
    int64_t run;
    EXPECT(store_begin_run(s, "grpo", NULL, NULL, NULL, &run) == 0, "%s", grpo_error());
    EXPECT(write_steps(s, run, 1, 1, 4) == 0, "%s", grpo_error());
    StepRecord r = store_step_init(2);
    r.metrics_json = METRICS;
    EpisodeRecord eps[6];
    make_episodes(eps, 6, 2);
    eps[5].sample_idx = 0; // (group 2, sample 0) twice: the last insert fails
    EXPECT(store_write_step(s, run, &r, eps, 6) == -1, "duplicate episode key fails");
    EXPECT(strstr(grpo_error(), "UNIQUE") && strstr(grpo_error(), "nothing of it was stored") &&
               strstr(grpo_error(), "atomic.db") && strstr(grpo_error(), "group 2, sample 0"),
           "the error names the file, the key and the episode: %s", grpo_error());
    EXPECT(q_int(s, "SELECT count(*) FROM steps WHERE step = 2") == 0, "no step row left");
    EXPECT(q_int(s, "SELECT count(*) FROM episodes WHERE step = 2") == 0, "no episode left");
    make_episodes(eps, 6, 2);
    eps[3].reward_parts_json = "{\"math\": ";
    EXPECT(store_write_step(s, run, &r, eps, 6) == -1 && strstr(grpo_error(), "reward_parts_json"),
           "bad reward parts JSON: %s", grpo_error());
    EXPECT(q_int(s, "SELECT count(*) FROM episodes WHERE step = 2") == 0, "nothing stored");
    r.metrics_json = "[1, 2]";
    EXPECT(store_write_step(s, run, &r, eps, 6) == -1 && strstr(grpo_error(), "metrics_json"), "metrics must be an "
           "object: %s", grpo_error());
    r.metrics_json = METRICS;
    make_episodes(eps, 6, 2);
    EXPECT(store_write_step(s, run, &r, eps, 6) == 0, "the same step written correctly afterwards: %s", grpo_error());
    EXPECT(q_int(s, "SELECT count(*) FROM episodes WHERE step = 2") == 6, "six episodes");
    EXPECT(store_write_step(s, run, &r, eps, 6) == -1 && strstr(grpo_error(), "already stored"),
           "a step written twice: %s", grpo_error());
    EXPECT(q_int(s, "SELECT count(*) FROM episodes WHERE step = 2") == 6, "still six episodes");
    EXPECT(store_write_step(s, 99, &r, eps, 6) == -1 && strstr(grpo_error(), "run 99"), "unknown run: %s",
           grpo_error());
    EXPECT(store_begin_run(s, "ppo", NULL, NULL, NULL, &run) == -1 && strstr(grpo_error(), "distill"),
           "unknown kind: %s", grpo_error());
    EXPECT(store_begin_run(s, "sft", "not json", NULL, NULL, &run) == -1 && strstr(grpo_error(), "config"),
           "config must be JSON: %s", grpo_error());
    EXPECT(!strcmp(q_text(s, "PRAGMA integrity_check"), "ok"), "integrity_check");
    store_close(s);
}

static void test_truncate_and_evals(void) {
    Store *s = store_open(db_path("resume.db"));
    if (!s) { EXPECT(0, "%s", grpo_error()); return; }
    int64_t a, b, last = -1;
    EXPECT(store_begin_run(s, "grpo", NULL, NULL, NULL, &a) == 0 &&
               store_begin_run(s, "grpo", NULL, NULL, NULL, &b) == 0,
           "%s", grpo_error());
    EXPECT(store_last_step(s, a, &last) == 0 && last == 0, "no steps yet: %lld", (long long)last);
    EXPECT(write_steps(s, a, 1, 5, 2) == 0 && write_steps(s, b, 1, 5, 2) == 0, "%s", grpo_error());
    const EvalRecord ev[2] = {{"gsm8k_test", "pass@1", 0.25, 100, 0}, {"gsm8k_test", "maj@8", 0.5, -1, 0}};
    EXPECT(store_write_evals(s, a, 2, ev, 2) == 0 && store_write_evals(s, a, 4, ev, 2) == 0 &&
               store_write_evals(s, b, 4, ev, 2) == 0,
           "%s", grpo_error());
    EXPECT(q_int(s, "SELECT n IS NULL FROM evals WHERE metric = 'maj@8' LIMIT 1") == 1, "n < 0 stored as NULL");
    EXPECT(store_write_evals(s, a, 2, ev, 2) == -1 && strstr(grpo_error(), "pass@1"), "eval twice: %s", grpo_error());
    EXPECT(store_truncate_after(s, a, 3) == 0, "%s", grpo_error());
    EXPECT(store_last_step(s, a, &last) == 0 && last == 3, "run a ends at 3: %lld", (long long)last);
    EXPECT(q_int(s, "SELECT count(*) FROM episodes WHERE run_id = 1") == 6, "episodes of steps 1..3");
    EXPECT(q_int(s, "SELECT count(*) FROM evals WHERE run_id = 1") == 2, "the step 2 evals stay");
    EXPECT(store_last_step(s, b, &last) == 0 && last == 5, "run b untouched");
    EXPECT(q_int(s, "SELECT count(*) FROM episodes WHERE run_id = 2") == 10, "run b's episodes untouched");
    EXPECT(q_int(s, "SELECT count(*) FROM evals WHERE run_id = 2") == 2, "run b's evals untouched");
    EXPECT(write_steps(s, a, 4, 5, 2) == 0, "steps 4 and 5 again after truncation: %s", grpo_error());
    store_close(s);
}

static void test_reopen_and_reader(void) {
    const char *path = db_path("reopen.db");
    Store *s = store_open(path);
    if (!s) { EXPECT(0, "%s", grpo_error()); return; }
    int64_t r1, r2, r3, found = -1;
    EXPECT(store_begin_run(s, "grpo", NULL, NULL, NULL, &r1) == 0 &&
               store_begin_run(s, "sft", NULL, NULL, NULL, &r2) == 0 &&
               store_begin_run(s, "grpo", NULL, NULL, NULL, &r3) == 0,
           "%s", grpo_error());
    EXPECT(write_steps(s, r1, 1, 2, 4) == 0 && write_steps(s, r3, 1, 1, 4) == 0, "%s", grpo_error());
    store_close(s);

    s = store_open(path);
    if (!s) { EXPECT(0, "%s", grpo_error()); return; }
    EXPECT(store_find_run(s, "grpo", &found) == 0 && found == r3, "latest grpo run is %lld", (long long)found);
    EXPECT(store_find_run(s, "distill", &found) == 0 && found == 0, "no distill run");
    int64_t last;
    EXPECT(store_last_step(s, r1, &last) == 0 && last == 2, "run 1 kept its steps");
    // a reader beside the writer (WAL): rewards are 0, .25, .5, .75 per step; odd steps answer 4
    Store *rd = store_open_readonly(path);
    if (!rd) { EXPECT(0, "%s", grpo_error()); store_close(s); return; }
    EpisodeCursor c;
    EpisodeRow row;
    int n = 0, n_all = 0;
    EXPECT(store_episodes_open(&c, rd, r1, 0.5) == 0, "%s", grpo_error());
    while (store_episodes_next(&c, &row) == 1) {
        EXPECT(row.run_id == r1 && row.reward >= 0.5, "filtered row");
        n++;
    }
    store_episodes_close(&c);
    EXPECT(n == 4, "2 steps x 2 episodes with reward >= 0.5, got %d", n);
    EXPECT(store_episodes_open(&c, rd, 0, -INFINITY) == 0, "%s", grpo_error());
    while (store_episodes_next(&c, &row) == 1) n_all++;
    store_episodes_close(&c);
    EXPECT(n_all == 12, "every run: 12 episodes, got %d", n_all);
    EXPECT(store_begin_run(rd, "grpo", NULL, NULL, NULL, &found) == -1 && strstr(grpo_error(), "read-only"),
           "a reader cannot write: %s", grpo_error());
    // the writer goes on while the reader is open
    EXPECT(write_steps(s, r3, 2, 2, 4) == 0, "%s", grpo_error());
    store_close(rd);
    store_close(s);
}

static void test_bad_files(void) {
    // a newer schema
    const char *path = db_path("version.db");
    Store *s = store_open(path);
    if (!s) { EXPECT(0, "%s", grpo_error()); return; }
    EXPECT(sqlite3_exec(store_db(s), "UPDATE meta SET value = '99' WHERE key = 'schema_version'", NULL, NULL, NULL) ==
               SQLITE_OK,
           "set the version");
    store_close(s);
    EXPECT(store_open(path) == NULL && strstr(grpo_error(), "version.db") && strstr(grpo_error(), "99"),
           "version mismatch names file and version: %s", grpo_error());
    EXPECT(store_open_readonly(path) == NULL && strstr(grpo_error(), "99"), "also read-only: %s", grpo_error());

    // not SQLite at all
    path = db_path("garbage.db");
    FILE *f = fopen(path, "w");
    for (int i = 0; f && i < 200; i++) fputs("this is not a database, just text. ", f);
    if (f) fclose(f);
    EXPECT(store_open(path) == NULL && strstr(grpo_error(), "garbage.db") && strstr(grpo_error(), "not a grpo.c"),
           "garbage file: %s", grpo_error());

    // SQLite, but someone else's
    path = db_path("other.db");
    sqlite3 *db;
    if (sqlite3_open(path, &db) == SQLITE_OK) {
        sqlite3_exec(db, "CREATE TABLE people(name TEXT)", NULL, NULL, NULL);
        sqlite3_close(db);
    }
    EXPECT(store_open(path) == NULL && strstr(grpo_error(), "other.db") && strstr(grpo_error(), "not a grpo.c"),
           "foreign database: %s", grpo_error());

    EXPECT(store_open("/nonexistent-dir/run.db") == NULL && strstr(grpo_error(), "/nonexistent-dir/run.db") &&
               strstr(grpo_error(), "directory"),
           "missing directory: %s", grpo_error());
    EXPECT(store_open_readonly(db_path("missing.db")) == NULL && strstr(grpo_error(), "missing.db"),
           "read-only open of a missing file: %s", grpo_error());
}

// --- the kill test: a child writes steps as fast as it can and is SIGKILLed at a random moment ---

static int kill_episodes(int64_t step) { return 3 + (int)(step % 6); }

static void writer_child(const char *path) {
    Store *s = store_open(path);
    if (!s) _exit(2);
    int64_t run, last;
    if (store_find_run(s, "grpo", &run) != 0 || (run == 0 && store_begin_run(s, "grpo", "{}", NULL, NULL, &run) != 0) ||
        store_last_step(s, run, &last) != 0)
        _exit(3);
    // long completions keep most of the child's time inside transactions, where the kills should land
    static char text[4096];
    memset(text, 'x', sizeof text - 1);
    EpisodeRecord eps[8];
    for (int64_t step = last + 1;; step++) {
        int n = kill_episodes(step);
        make_episodes(eps, n, step);
        for (int i = 0; i < n; i++) eps[i].completion = text;
        StepRecord r = store_step_init(step);
        r.metrics_json = METRICS;
        if (store_write_step(s, run, &r, eps, n) != 0) _exit(4);
    }
}

static void test_kill(void) {
    const char *path = db_path("kill.db");
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    srand(seed);
    int64_t prev = 0;
    for (int round = 0; round < 8; round++) {
        pid_t pid = fork();
        if (pid == 0) writer_child(path);
        if (pid < 0) { EXPECT(0, "fork failed"); return; }
        usleep(20000 + rand() % 150000);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        EXPECT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
               "round %d (seed %u): the writer died by itself (exit %d)", round, seed,
               WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        Store *s = store_open(path);
        if (!s) { EXPECT(0, "round %d: %s", round, grpo_error()); return; }
        EXPECT(!strcmp(q_text(s, "PRAGMA integrity_check"), "ok"), "round %d: integrity_check", round);
        int64_t n = q_int(s, "SELECT count(*) FROM steps"), max = q_int(s, "SELECT coalesce(max(step), 0) FROM steps");
        EXPECT(n == max && (n == 0 || q_int(s, "SELECT min(step) FROM steps") == 1),
               "round %d: steps contiguous from 1 (%lld rows, last %lld)", round, (long long)n, (long long)max);
        EXPECT(q_int(s, "SELECT count(*) FROM steps s WHERE (SELECT count(*) FROM episodes e WHERE e.run_id = s.run_id "
                        "AND e.step = s.step) != 3 + s.step % 6") == 0,
               "round %d: every step has all its episodes", round);
        EXPECT(q_int(s, "SELECT count(*) FROM episodes e WHERE NOT EXISTS (SELECT 1 FROM steps s WHERE "
                        "s.run_id = e.run_id AND s.step = e.step)") == 0,
               "round %d: no episode without its step", round);
        EXPECT(q_int(s, "SELECT count(*) FROM runs") <= 1, "round %d: one run, resumed", round);
        EXPECT(max >= prev, "round %d: nothing committed was lost (%lld < %lld)", round, (long long)max,
               (long long)prev);
        prev = max;
        store_close(s);
    }
    EXPECT(prev > 8, "the writer made progress: %lld steps", (long long)prev);
    fprintf(stderr, "  %lld steps over 8 kills (seed %u)\n", (long long)prev, seed);
}

// One kill known to land inside a transaction: a step of 200000 episodes (far more than SQLite's page
// cache, so its pages spill into the WAL before the commit) is killed 20 ms after it starts.
static void test_kill_in_transaction(void) {
    const char *path = db_path("kill.db");
    int fd[2];
    if (pipe(fd) != 0) { EXPECT(0, "pipe"); return; }
    enum { N = 200000 };
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        Store *s = store_open(path);
        int64_t run, last;
        EpisodeRecord *eps = calloc(N, sizeof *eps);
        if (!s || !eps || store_find_run(s, "grpo", &run) != 0 || store_last_step(s, run, &last) != 0) _exit(2);
        for (int i = 0; i < N; i++)
            eps[i] = (EpisodeRecord){.group_idx = i, .prompt = "p", .completion = "a completion", .reward = 1};
        StepRecord r = store_step_init(last + 1);
        r.metrics_json = METRICS;
        if (write(fd[1], "b", 1) != 1 || store_write_step(s, run, &r, eps, N) != 0) _exit(3);
        if (write(fd[1], "c", 1) != 1) _exit(4);
        pause();
        _exit(0);
    }
    close(fd[1]);
    char ch = 0;
    EXPECT(read(fd[0], &ch, 1) == 1 && ch == 'b', "the writer started its step");
    usleep(20000);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    bool committed = read(fd[0], &ch, 1) == 1 && ch == 'c';
    close(fd[0]);
    Store *s = store_open(path);
    if (!s) { EXPECT(0, "%s", grpo_error()); return; }
    EXPECT(!strcmp(q_text(s, "PRAGMA integrity_check"), "ok"), "integrity_check");
    int64_t big = q_int(s, "SELECT count(*) FROM (SELECT step FROM episodes GROUP BY step HAVING count(*) > 8)");
    EXPECT(!committed, "the kill came after the commit: make the step bigger");
    EXPECT(big == 0, "the killed step left %lld partial steps", (long long)big);
    EXPECT(q_int(s, "SELECT count(*) FROM steps") == q_int(s, "SELECT max(step) FROM steps"), "steps contiguous");
    store_close(s);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/test_store_XXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    RUN_TEST(test_schema);
    RUN_TEST(test_round_trip);
    RUN_TEST(test_step_all_or_nothing);
    RUN_TEST(test_truncate_and_evals);
    RUN_TEST(test_reopen_and_reader);
    RUN_TEST(test_bad_files);
    RUN_TEST(test_kill);
    RUN_TEST(test_kill_in_transaction);
    static const char *const dbs[] = {"schema.db", "trip.db", "atomic.db", "resume.db", "reopen.db",
                                      "version.db", "garbage.db", "other.db", "kill.db"};
    for (int i = 0; i < 9; i++) remove_db(db_path(dbs[i]));
    rmdir(dir);
    return test_summary();
}
