// `make check-data`: `grpo eval` on the first tasks of each data set in $DATA with a tiny random model (a
// context of 1024 for HumanEval's prompts): scores near 0, but the whole path runs, the loaders' fields
// reach the math reward and the code reward's sandbox, and every data set's rows land in one run database.
#include "tests/cli_run.h"
#include "tests/db_query.h"
#include "tests/test.h"
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/grpo_data_eval_XXXXXX";
static const char *data;


static char out[1 << 16], samples[1 << 20];

// How many sample lines carry each verdict; the verdicts outside `allowed` (space-separated) are failures.
static void check_verdicts(const char *file, int expect_lines, const char *allowed) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(samples, 1, sizeof samples - 1, f) : 0;
    samples[n] = 0;
    if (f) fclose(f);
    int lines = 0;
    for (char *p = samples; (p = strstr(p, "\"verdict\":\"")); lines++) {
        p += 11;
        char v[40];
        int len = (int)strcspn(p, "\"");
        snprintf(v, sizeof v, " %.*s ", len < 32 ? len : 32, p);
        char list[256];
        snprintf(list, sizeof list, " %s ", allowed);
        EXPECT(strstr(list, v), "%s: verdict%s", file, v);
    }
    EXPECT(lines == expect_lines, "%s: %d samples, expected %d", file, lines, expect_lines);
}

static void eval_one(const char *file, const char *reward, int k, int limit, const char *name, int metrics,
                     const char *allowed) {
    char cmd[4096], head[128];
    snprintf(cmd, sizeof cmd, "eval --model m --dataset %s/%s --reward %s -k %d --limit %d --max-new-tokens 16 "
             "--template r1-zero --db run.db --out %s.jsonl", data, file, reward, k, limit, name);
    EXPECT(cli_run(dir, cmd, true, out, sizeof out) == 0, "%s: %s", file, out);
    snprintf(head, sizeof head, "%s: %d tasks x %d samples, reward %s", name, limit, k, reward);
    EXPECT(strstr(out, head), "%s: the table: %s", file, out);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM evals WHERE dataset = '%s' AND n = %d", name, limit);
    EXPECT(db_double(dir, "run.db", sql) == metrics, "%s: %g evals rows, expected %d", file,
           db_double(dir, "run.db", sql), metrics);
    snprintf(cmd, sizeof cmd, "%s.jsonl", name);
    check_verdicts(cmd, limit * k, allowed);
}

static void test_data_eval(void) {
    char cmd[8192], cwd[4096];
    EXPECT(getcwd(cwd, sizeof cwd) != NULL, "cwd");
    snprintf(cmd, sizeof cmd, "sed 's/\"max_position_embeddings\": 512/\"max_position_embeddings\": 1024/' "
             "%s/configs/model/tiny.json > %s/long.json", cwd, dir);
    EXPECT(system(cmd) == 0, "config");
    EXPECT(cli_run(dir, "init --config long.json --out m --seed 2 --std 0.3", true, out, sizeof out) == 0, "init: %s", out);
    const char *math = "correct wrong no_answer", *code = "passed failed timeout memory runtime_error output_limit";
    // pass@1, pass@2, maj@2, mean_reward, answered, mean_tokens, truncated
    eval_one("gsm8k_test.jsonl", "math", 2, 5, "gsm8k_test", 7, math);
    eval_one("HumanEval.jsonl.gz", "code", 2, 5, "HumanEval", 7, code);
    // pass@1, maj@1 and the rest
    eval_one("math500_test.jsonl", "math", 1, 3, "math500_test", 6, math);
    eval_one("mbpp.jsonl", "code", 1, 3, "mbpp", 6, code);
    EXPECT(db_double(dir, "run.db", "SELECT count(*) FROM runs WHERE kind = 'eval'") == 4, "one run per data set");
}

int main(void) {
    data = getenv("DATA");
    if (!data) {
        fprintf(stderr, "DATA is not set (make check-data DATA=path/to/shared/data)\n");
        return 1;
    }
    if (!mkdtemp(dir)) return 1;
    RUN_TEST(test_data_eval);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    return test_summary();
}
