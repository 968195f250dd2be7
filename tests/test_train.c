// The GRPO trainer end to end on the tiny model (configs/grpo/tiny.json): the reward rises; every step and
// episode lands in run.db; kill -9 at random moments and --resume give the uninterrupted run's weights
// and database; bad configs fail before any work.
#include "common/config_tree.h"
#include "common/error.h"
#include "common/fileio.h"
#include "rl/store.h"
#include "rl/trainer.h"
#include "tests/db_query.h"
#include "tests/test.h"
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/grpo_train_XXXXXX";

static cJSON *config(const char *const *sets, int n) {
    cJSON *c = train_config_load("configs/grpo/tiny.json", sets, n);
    EXPECT(c != NULL, "config: %s", grpo_error());
    return c;
}

static void test_reward_rises(void) {
    const char *sets[] = {"quiet=true"};
    cJSON *c = config(sets, 1);
    char out[256];
    snprintf(out, sizeof out, "%s/rise", dir);
    TrainResult r;
    EXPECT(train_run(c, out, false, &r) == 0, "%s", grpo_error());
    EXPECT(r.steps_done == 30, "steps %d", r.steps_done);
    EXPECT(r.reward_last > r.reward_first + 0.3, "reward %.3f -> %.3f: expected a clear rise", r.reward_first,
           r.reward_last);
    char db[300];
    snprintf(db, sizeof db, "%s/run.db", out);
    sqlite3 *h;
    EXPECT(sqlite3_open(db, &h) == SQLITE_OK, "open");
    EXPECT(sql_int(h, "SELECT count(*) FROM steps") == 30, "30 step rows");
    EXPECT(sql_int(h, "SELECT count(*) FROM episodes") == 30 * 32, "every episode stored");
    EXPECT(sql_int(h, "SELECT count(*) FROM episodes WHERE prompt LIKE 'What is %' AND completion_tokens > 0 AND "
                      "reward_parts_json LIKE '{\"math\":%,\"format\":%}' AND finish_reason IN ('stop','length')") ==
               30 * 32, "episode fields");
    // advantages of a group sum to 0 (group mode)
    EXPECT(sql_int(h, "SELECT count(*) FROM (SELECT abs(sum(advantage)) s FROM episodes GROUP BY step, group_idx) "
                      "WHERE s > 1e-4") == 0, "group advantages sum to zero");
    EXPECT(sql_int(h, "SELECT count(*) FROM steps WHERE json_extract(metrics_json, '$.\"reward/format/mean\"') "
                      "IS NOT NULL AND json_extract(metrics_json, '$.\"time/rollout\"') > 0") == 30, "metrics_json");
    sqlite3_close(h);
    char ck[300];
    snprintf(ck, sizeof ck, "%s/step-000030/model.safetensors", out);
    EXPECT(path_exists(ck), "final checkpoint %s", ck);
    snprintf(ck, sizeof ck, "%s/step-000010", out);
    EXPECT(!path_exists(ck), "old checkpoints rotated (keep 2)");
    // Again into the same directory without --resume: refused.
    EXPECT(train_run(c, out, false, &r) != 0 && strstr(grpo_error(), "--resume"), "%s", grpo_error());
    cJSON_Delete(c);
}

// Runs ./grpo train in dir/name, killed with SIGKILL after `ms` milliseconds (0: left to finish).
// Returns the exit status, -9 when killed.
static int run_grpo(const char *name, const char *extra, int ms) {
    char cmd[2048], cwd[1024];
    if (!getcwd(cwd, sizeof cwd)) return -1;
    snprintf(cmd, sizeof cmd,
             "exec %s/grpo train %s/configs/grpo/tiny.json --out %s/%s --set quiet=true --set steps=8 "
             "--set save_every=2 --set grpo.beta=0.04 --set grpo.sync_ref_every=3 --set grpo.mu=2 "
             "--set grpo.minibatches=2 --set grpo.micro_batch=7 %s 2>/dev/null",
             cwd, cwd, dir, name, extra);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    if (ms > 0) {
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) ? -WTERMSIG(st) : WEXITSTATUS(st);
}

static char *read_all(const char *path, size_t *n) { return read_file(path, n); }

static void test_kill_and_resume(void) {
    EXPECT(run_grpo("whole", "", 0) == 0, "uninterrupted run failed");
    srand(12345);
    int kills = 0, rc = -9;
    for (int round = 0; round < 40 && rc != 0; round++) {
        rc = run_grpo("killed", round ? "--resume" : "", 30 + rand() % 400);
        kills += rc == -9;
        if (rc != 0 && rc != -9) {
            EXPECT(0, "run exited with %d", rc);
            break;
        }
    }
    if (rc != 0) rc = run_grpo("killed", "--resume", 0); // let the last one finish
    EXPECT(rc == 0, "resumed run did not finish: %d", rc);
    EXPECT(kills >= 2, "only %d kills landed: the test did not exercise resume", kills);
    char a[300], b[300];
    snprintf(a, sizeof a, "%s/whole/step-000008/model.safetensors", dir);
    snprintf(b, sizeof b, "%s/killed/step-000008/model.safetensors", dir);
    size_t na, nb;
    char *wa = read_all(a, &na), *wb = read_all(b, &nb);
    EXPECT(wa && wb && na == nb && !memcmp(wa, wb, na), "final weights differ after %d kills", kills);
    free(wa);
    free(wb);
    snprintf(a, sizeof a, "%s/whole/step-000008/optimizer.safetensors", dir);
    snprintf(b, sizeof b, "%s/killed/step-000008/optimizer.safetensors", dir);
    wa = read_all(a, &na), wb = read_all(b, &nb);
    EXPECT(wa && wb && na == nb && !memcmp(wa, wb, na), "AdamW state differs");
    free(wa);
    free(wb);
    sqlite3 *h1, *h2;
    snprintf(a, sizeof a, "%s/whole/run.db", dir);
    snprintf(b, sizeof b, "%s/killed/run.db", dir);
    EXPECT(sqlite3_open(a, &h1) == SQLITE_OK && sqlite3_open(b, &h2) == SQLITE_OK, "open");
    sqlite3_stmt *st;
    sqlite3_prepare_v2(h2, "PRAGMA integrity_check", -1, &st, NULL);
    EXPECT(sqlite3_step(st) == SQLITE_ROW && !strcmp((const char *)sqlite3_column_text(st, 0), "ok"), "integrity");
    sqlite3_finalize(st);
    EXPECT(sql_int(h2, "SELECT count(*) FROM runs") == 1, "one run across resumes");
    EXPECT(sql_int(h2, "SELECT count(*) FROM steps") == 8 && sql_int(h2, "SELECT min(step) FROM steps") == 1 &&
               sql_int(h2, "SELECT max(step) FROM steps") == 8, "steps 1..8 once each");
    EXPECT(sql_int(h2, "SELECT count(*) FROM episodes") == 8 * 32, "no duplicated or lost episodes");
    // Same numbers: rewards and advantages of every episode, and the KL of every step.
    const char *q = "SELECT group_concat(printf('%.6f,%.6f', reward, advantage)) FROM "
                    "(SELECT * FROM episodes ORDER BY step, group_idx, sample_idx)";
    sqlite3_stmt *s1, *s2;
    sqlite3_prepare_v2(h1, q, -1, &s1, NULL);
    sqlite3_prepare_v2(h2, q, -1, &s2, NULL);
    EXPECT(sqlite3_step(s1) == SQLITE_ROW && sqlite3_step(s2) == SQLITE_ROW &&
               !strcmp((const char *)sqlite3_column_text(s1, 0), (const char *)sqlite3_column_text(s2, 0)),
           "episodes differ from the uninterrupted run");
    sqlite3_finalize(s1);
    sqlite3_finalize(s2);
    EXPECT(sql_int(h2, "SELECT count(*) FROM steps WHERE step > 1 AND kl > 0") >= 6, "KL to the reference logged");
    sqlite3_close(h1);
    sqlite3_close(h2);
}

static void expect_config_error(const char *set, const char *needle) {
    const char *sets[] = {set};
    cJSON *c = train_config_load("configs/grpo/tiny.json", sets, 1);
    EXPECT(!c && strstr(grpo_error(), needle), "--set %s: expected an error naming '%s', got: %s", set, needle,
           c ? "(accepted)" : grpo_error());
    cJSON_Delete(c);
}

static void test_bad_configs(void) {
    expect_config_error("rollout.grup_size=4", "rollout.grup_size");
    expect_config_error("rollout.group_size=\"four\"", "rollout.group_size");
    expect_config_error("rollout.group_size=1", "group_size 1");
    expect_config_error("grpo.loss_type=mean", "loss_type");
    expect_config_error("optim.schedule=linear", "optim.schedule");
    // Errors found when the run is set up, before the first step.
    const char *missing[] = {"data.synthetic.kind=", "data.train=/nonexistent/train.jsonl", "quiet=true"};
    cJSON *c = train_config_load("configs/grpo/tiny.json", missing, 3);
    char out[256];
    snprintf(out, sizeof out, "%s/bad1", dir);
    EXPECT(c && train_run(c, out, false, NULL) != 0 && strstr(grpo_error(), "/nonexistent/train.jsonl"),
           "missing dataset: %s", grpo_error());
    cJSON_Delete(c);
    char model[300];
    snprintf(model, sizeof model, "%s/small-vocab.json", dir);
    char *text = read_file("configs/model/tiny.json", NULL);
    char *v = strstr(text, "\"vocab_size\": 512");
    EXPECT(v != NULL, "tiny.json vocab_size");
    if (v) memcpy(v, "\"vocab_size\": 128", 17);
    write_file_atomic(model, text, strlen(text));
    free(text);
    char set_model[400];
    snprintf(set_model, sizeof set_model, "model=%s", model);
    const char *vocab[] = {set_model, "quiet=true"};
    c = train_config_load("configs/grpo/tiny.json", vocab, 2);
    snprintf(out, sizeof out, "%s/bad2", dir);
    EXPECT(c && train_run(c, out, false, NULL) != 0 && strstr(grpo_error(), "vocab_size is 128"),
           "vocab mismatch: %s", grpo_error());
    cJSON_Delete(c);
}

static void test_dynamic_sampling(void) {
    // Group size 2 on a sparse reward: many groups without signal, dropped and re-sampled.
    const char *sets[] = {"quiet=true", "steps=3", "grpo.dynamic_sampling=true", "rollout.group_size=2",
                          "rewards=[{\"name\":\"format\",\"pattern\":\"[0-9]\"}]"};
    cJSON *c = config(sets, 5);
    char out[256];
    snprintf(out, sizeof out, "%s/dyn", dir);
    EXPECT(train_run(c, out, false, NULL) == 0, "%s", grpo_error());
    char db[300];
    snprintf(db, sizeof db, "%s/run.db", out);
    sqlite3 *h;
    sqlite3_open(db, &h);
    EXPECT(sql_int(h, "SELECT sum(json_extract(metrics_json, '$.\"groups/dropped\"')) FROM steps") > 0,
           "groups without signal were dropped");
    EXPECT(sql_int(h, "SELECT count(*) FROM steps WHERE json_extract(metrics_json, '$.\"groups/rounds\"') >= 1") == 3,
           "rounds logged");
    sqlite3_close(h);
    cJSON_Delete(c);
}

int main(void) {
    if (!mkdtemp(dir)) return 1;
    RUN_TEST(test_bad_configs);
    RUN_TEST(test_reward_rises);
    RUN_TEST(test_dynamic_sampling);
    RUN_TEST(test_kill_and_resume);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    return test_summary();
}
