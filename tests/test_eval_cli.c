// `grpo eval` end to end: ./grpo init a tiny model, evaluate it on GSM8K-style lines with the math reward:
// the table, JSON, the samples file, the evals rows of a new run and of an existing one, and clear errors.
#include "tests/cli_run.h"
#include "tests/db_query.h"
#include "tests/test.h"
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/grpo_eval_XXXXXX";


static char out[1 << 16];

static void test_eval_cli(void) {
    char cwd[4096], cmd[8192], v[512];
    EXPECT(getcwd(cwd, sizeof cwd) != NULL, "cwd");
    snprintf(cmd, sizeof cmd, "init --config %s/configs/model/tiny.json --out m --seed 2 --std 0.3", cwd);
    EXPECT(cli_run(dir, cmd, true, out, sizeof out) == 0, "init: %s", out);
    cli_write(dir, "gsm8k_mini.jsonl",
                 "{\"question\": \"Tom has 3 apples and buys 2 more. How many apples?\", \"answer\": \"3+2=5\\n#### 5\"}\n"
                 "{\"question\": \"A box holds 12 eggs. How many eggs in 3 boxes?\", \"answer\": \"#### 36\"}\n"
                 "{\"question\": \"What is 1,000 + 250?\", \"answer\": \"#### 1,250\"}\n");
    const char *common = "eval --model m --dataset gsm8k_mini.jsonl --reward math -k 4 --max-new-tokens 16 --seed 3";

    snprintf(cmd, sizeof cmd, "%s --db run.db --out samples.jsonl", common);
    EXPECT(cli_run(dir, cmd, false, out, sizeof out) == 0, "eval: %s", out);
    EXPECT(strstr(out, "gsm8k_mini: 3 tasks x 4 samples, reward math"), "table header: %s", out);
    static const char *const metrics[] = {"pass@1", "pass@2", "pass@4", "maj@4", "mean_reward", "answered",
                                          "mean_tokens", "truncated"};
    for (int i = 0; i < 8; i++) EXPECT(strstr(out, metrics[i]), "%s in the table: %s", metrics[i], out);
    db_text(dir, "run.db", "SELECT count(*) FROM evals WHERE run_id = 1 AND step = 0 AND dataset = 'gsm8k_mini' AND n = 3",
          v, sizeof v);
    EXPECT(!strcmp(v, "8"), "8 evals rows: %s", v);
    db_text(dir, "run.db", "SELECT group_concat(metric, ',') FROM (SELECT metric FROM evals ORDER BY metric)", v, sizeof v);
    EXPECT(!strcmp(v, "answered,maj@4,mean_reward,mean_tokens,pass@1,pass@2,pass@4,truncated"), "metrics: %s", v);
    db_text(dir, "run.db", "SELECT kind || ' ' || model || ' ' || json_extract(config_json, '$.k') || ' ' || "
                    "json_extract(config_json, '$.rewards[0].name') FROM runs WHERE id = 1", v, sizeof v);
    EXPECT(!strcmp(v, "eval m 4 math"), "the run row: %s", v);
    db_text(dir, "run.db", "SELECT value FROM evals WHERE metric = 'mean_tokens'", v, sizeof v);
    EXPECT(atof(v) >= 1 && atof(v) <= 16, "mean_tokens %s", v);
    db_text(dir, "run.db", "SELECT count(*) FROM evals WHERE metric LIKE 'pass@%' AND value BETWEEN 0 AND 1", v, sizeof v);
    EXPECT(!strcmp(v, "3"), "pass@ values in [0, 1]: %s", v);

    static char samples[1 << 15];
    cli_read(dir, "samples.jsonl", samples, sizeof samples);
    EXPECT(count_lines(samples) == 12, "12 sample lines: %s", samples);
    EXPECT(strstr(samples, "{\"task_id\":\"gsm8k_mini/3\",\"sample_idx\":3,\"completion\":"), "fields: %s", samples);
    EXPECT(strstr(samples, "\"verdict\":\"") && strstr(samples, "\"parts\":{\"math\":"), "verdict and parts");

    // JSON, under the existing run at step 50, with the same samples (same seed) and so the same values
    snprintf(cmd, sizeof cmd, "%s --db run.db --run-id 1 --step 50 --json --name heldout --max-batch 4 --token-budget 640 --quiet", common);
    EXPECT(cli_run(dir, cmd, true, out, sizeof out) == 0, "eval --json: %s", out);
    EXPECT(!strncmp(out, "{\"dataset\":\"heldout\",\"tasks\":3,\"k\":4,\"metrics\":{\"pass@1\":", 57) &&
               strstr(out, "\"run_id\":1,\"step\":50}") && count_lines(out) == 1, "json (nothing on stderr): %s", out);
    db_text(dir, "run.db", "SELECT count(*) FROM runs", v, sizeof v);
    EXPECT(!strcmp(v, "1"), "no new run: %s", v);
    db_text(dir, "run.db", "SELECT count(*) FROM evals e JOIN evals f ON e.metric = f.metric AND e.value = f.value "
                    "WHERE e.step = 0 AND f.step = 50 AND f.dataset = 'heldout'", v, sizeof v);
    EXPECT(!strcmp(v, "8"), "the same values at step 50: %s", v);

    // the reward's options from a file; --limit
    cli_write(dir, "math.json", "{\"name\": \"math\", \"rel_tol\": 0.001}");
    EXPECT(cli_run(dir, "eval --model m --dataset gsm8k_mini.jsonl --config math.json --limit 1 --max-new-tokens 4", false,
               out, sizeof out) == 0 && strstr(out, "gsm8k_mini: 1 tasks x 1 samples, reward math.json") &&
               strstr(out, "maj@1"), "--config, --limit 1: %s", out);
    cli_write(dir, "bad.json", "{\"name\": \"math\", \"tolerance\": 0.001}");
    EXPECT(cli_run(dir, "eval --model m --dataset gsm8k_mini.jsonl --config bad.json", true, out, sizeof out) == 1 &&
               strstr(out, "bad.json") && strstr(out, "unknown option \"tolerance\""), "bad option: %s", out);

    EXPECT(cli_run(dir, "eval --model m --dataset gsm8k_mini.jsonl --reward math --db run.db --run-id 7", true, out,
               sizeof out) == 1 && strstr(out, "run 7 is not in the database"), "unknown run: %s", out);
    cli_write(dir, "noanswer.jsonl", "{\"prompt\": \"Say hi.\"}\n");
    EXPECT(cli_run(dir, "eval --model m --dataset noanswer.jsonl --reward math", true, out, sizeof out) == 1 &&
               strstr(out, "task noanswer/1") && strstr(out, "answer"), "a task without an answer: %s", out);
    EXPECT(cli_run(dir, "eval --model m --dataset gsm8k_mini.jsonl", true, out, sizeof out) == 2 &&
               strstr(out, "give --reward or --config"), "no reward: %s", out);
    EXPECT(cli_run(dir, "eval --model m --dataset gsm8k_mini.jsonl --reward maths", true, out, sizeof out) == 1 &&
               strstr(out, "unknown reward 'maths'"), "unknown reward: %s", out);
    EXPECT(cli_run(dir, "eval --model m --dataset gsm8k_mini.jsonl --reward math -k 0", true, out, sizeof out) == 2,
           "k 0: %s", out);
    EXPECT(cli_run(dir, "eval --model m --dataset gsm8k_mini.jsonl --reward math -k 8 --max-batch 4", true, out,
               sizeof out) == 2 && strstr(out, "--max-batch must be at least K"), "batch below k: %s", out);
    EXPECT(cli_run(dir, "eval --model m --dataset gsm8k_mini.jsonl --reward math --max-new-tokens 600", true, out,
               sizeof out) == 1 && strstr(out, "max_position_embeddings 512"), "too long: %s", out);
    EXPECT(cli_run(dir, "eval --help", false, out, sizeof out) == 0 && strstr(out, "usage: grpo eval"), "help");
}

int main(void) {
    if (!mkdtemp(dir)) return 1;
    RUN_TEST(test_eval_cli);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    return test_summary();
}
