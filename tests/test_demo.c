// `grpo demo` with a reduced budget: the whole pipeline (SFT cold start, held-out eval, GRPO, eval, report)
// runs end to end, the GRPO reward rises, and demo.db holds the before/after accuracy as evals rows.
// The full-budget demo and its accuracy gain are `make demo-check`.
#include "common/fileio.h"
#include "tests/test.h"
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/grpo_demo_XXXXXX";

static double sql_real(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st;
    double v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void test_demo_smoke(void) {
    char cmd[1024], cwd[512], log[600];
    EXPECT(getcwd(cwd, sizeof cwd) != NULL, "cwd");
    // The output goes to a file: the demo prints more than a pipe buffer, and a reader that stops early
    // would kill it with SIGPIPE.
    snprintf(log, sizeof log, "%s/demo.log", dir);
    snprintf(cmd, sizeof cmd, "%s/grpo demo --out %s/demo --minutes 3 --seed 1 > %s 2>&1", cwd, dir, log);
    int st = system(cmd);
    char *out = read_file(log, NULL);
    const char *tail = out && strlen(out) > 3000 ? out + strlen(out) - 3000 : out ? out : "";
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "demo failed:\n...%s", tail);
    EXPECT(out && strstr(out, "after GRPO") && strstr(out, "report.html"), "summary missing:\n...%s", tail);
    free(out);
    char path[600];
    struct stat sb;
    snprintf(path, sizeof path, "%s/demo/report.html", dir);
    EXPECT(stat(path, &sb) == 0 && sb.st_size > 10000, "report.html");
    snprintf(path, sizeof path, "%s/demo/demo.db", dir);
    sqlite3 *db;
    EXPECT(sqlite3_open(path, &db) == SQLITE_OK, "demo.db");
    EXPECT(sql_real(db, "SELECT count(*) FROM runs WHERE kind IN ('sft', 'grpo')") == 2, "an sft and a grpo run");
    double steps = sql_real(db, "SELECT count(*) FROM steps WHERE run_id = (SELECT id FROM runs WHERE kind='grpo')");
    EXPECT(steps >= 10, "GRPO steps: %g", steps);
    EXPECT(sql_real(db, "SELECT count(*) FROM evals WHERE metric = 'accuracy' AND run_id = "
                        "(SELECT id FROM runs WHERE kind='grpo')") == 2, "before/after accuracy rows");
    // The reward of the last third of the GRPO steps against the first third.
    double first = sql_real(db, "SELECT avg(reward_mean) FROM (SELECT reward_mean FROM steps WHERE run_id = "
                                "(SELECT id FROM runs WHERE kind='grpo') ORDER BY step LIMIT (SELECT count(*)/3 FROM "
                                "steps WHERE run_id = (SELECT id FROM runs WHERE kind='grpo')))");
    double last = sql_real(db, "SELECT avg(reward_mean) FROM (SELECT reward_mean FROM steps WHERE run_id = "
                               "(SELECT id FROM runs WHERE kind='grpo') ORDER BY step DESC LIMIT (SELECT count(*)/3 "
                               "FROM steps WHERE run_id = (SELECT id FROM runs WHERE kind='grpo')))");
    EXPECT(last > first + 0.02, "GRPO reward: first third %.3f, last third %.3f: expected a rise", first, last);
    double before = sql_real(db, "SELECT value FROM evals WHERE metric = 'accuracy' ORDER BY step LIMIT 1");
    double after = sql_real(db, "SELECT value FROM evals WHERE metric = 'accuracy' ORDER BY step DESC LIMIT 1");
    EXPECT(after > before, "held-out accuracy %.3f before GRPO, %.3f after", before, after);
    sqlite3_close(db);
}

int main(void) {
    if (!mkdtemp(dir)) return 1;
    RUN_TEST(test_demo_smoke);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    return test_summary();
}
