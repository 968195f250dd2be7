// `grpo sft` end to end: configs/sft/tiny.json for a handful of steps writes checkpoints and run.db with a
// falling loss; JSONL pairs and --from-db reach the data; --resume of a finished run; usage and config errors.
#include "tests/cli_run.h"
#include "tests/db_query.h"
#include "tests/test.h"
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/grpo_sft_cli_XXXXXX";
static char out[1 << 16];

// Runs `grpo ARGS` from the repository root with stdout and stderr in out; returns the exit status.
static int run(const char *args) { return cli_run(".", args, true, out, sizeof out); }

static bool exists_in(const char *sub) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    return access(path, F_OK) == 0;
}

// Six steps of configs/sft/tiny.json, small enough for the test; lr 3e-3 decreases the loss at every step.
static const char *SIX_STEPS = "--set max_steps=6 --set batch_size=8 --set micro_batch=4 --set save_every=3 "
                               "--set data.synthetic.n=64 --set optim.lr=3e-3 --set optim.warmup_steps=4";

static void test_train(void) {
    char args[4096];
    snprintf(args, sizeof args, "sft configs/sft/tiny.json --out %s/a %s --set log_every=1", dir, SIX_STEPS);
    EXPECT(run(args) == 0, "sft: %s", out);
    EXPECT(strstr(out, "sft step 1/6 | epoch 0.12 | loss ") && strstr(out, "sft step 6/6 |"), "progress: %s", out);
    EXPECT(strstr(out, "sft: steps 1..6 of 6, loss "), "summary: %s", out);
    static const char *const files[] = {"a/run.db", "a/tokenizer.json", "a/step-000003/model.safetensors",
                                        "a/step-000006/config.json", "a/step-000006/model.safetensors",
                                        "a/step-000006/optimizer.safetensors", "a/step-000006/tokenizer.json",
                                        "a/step-000006/trainer_state.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) EXPECT(exists_in(files[i]), "missing %s", files[i]);
    EXPECT(db_double(dir, "a/run.db", "SELECT count(*) FROM runs WHERE kind = 'sft'") == 1, "one sft run");
    EXPECT(db_double(dir, "a/run.db", "SELECT count(*) FROM steps WHERE loss > 0 AND lr > 0 AND grad_norm > 0 AND "
                             "train_tok_s > 0 AND seconds > 0 AND "
                             "abs(json_extract(metrics_json, '$.loss') - loss) < 1e-9") == 6, "six complete steps rows");
    double first = db_double(dir, "a/run.db", "SELECT loss FROM steps WHERE step = 1");
    double last = db_double(dir, "a/run.db", "SELECT loss FROM steps WHERE step = 6");
    EXPECT(last < first - 0.3, "loss %g -> %g", first, last);

    snprintf(args, sizeof args, "sft configs/sft/tiny.json --out %s/a %s --resume", dir, SIX_STEPS);
    EXPECT(run(args) == 0 && strstr(out, "nothing to train: the run in") && strstr(out, "is at step 6 of 6"), "resume a finished run: %s", out);
    snprintf(args, sizeof args, "sft configs/sft/tiny.json --out %s/a --set max_steps=6", dir);
    EXPECT(run(args) == 1 && strstr(out, "already holds checkpoints"), "a fresh run over checkpoints: %s", out);
}

static void test_sources(void) {
    char args[4096], path[4096];
    snprintf(path, sizeof path, "%s/pairs.jsonl", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"prompt\": \"What is 1+1?\", \"completion\": \"<answer>2</answer>\"}\n"
          "{\"messages\": [{\"role\": \"user\", \"content\": \"What is 2+2?\"}, {\"role\": \"assistant\", "
          "\"content\": \"<answer>4</answer>\"}]}\n", f);
    fclose(f);
    snprintf(args, sizeof args, "sft configs/sft/tiny.json --out %s/b --set data.synthetic.kind= --set data.train=%s "
             "--set epochs=3 --set batch_size=2 --set micro_batch=1", dir, path);
    EXPECT(run(args) == 0 && strstr(out, "sft: 2 sequences") && strstr(out, "steps 1..3 of 3"), "pairs: %s", out);
    snprintf(args, sizeof args, "sft configs/sft/tiny.json --out %s/c --from-db %s/a/run.db --min-reward 0.5", dir,
             dir);
    EXPECT(run(args) == 1 && strstr(out, "a/run.db: no episode has reward >= 0.5"), "from-db: %s", out);
}

static void test_usage(void) {
    char args[4096];
    EXPECT(run("sft --help") == 0 && strstr(out, "data.from_db") && strstr(out, "micro_batch"), "help: %s", out);
    EXPECT(run("sft configs/sft/tiny.json") == 2 && strstr(out, "--out are required"), "no --out: %s", out);
    EXPECT(run("sft configs/sft/tiny.json --out x --frobnicate") == 2 && strstr(out, "--frobnicate"), "%s", out);
    snprintf(args, sizeof args, "sft configs/sft/tiny.json --out %s/d --set epoch=2", dir);
    EXPECT(run(args) == 1 && strstr(out, "epoch") && !exists_in("d"), "unknown key: %s", out);
    snprintf(args, sizeof args, "sft configs/sft/tiny.json --out %s/d --set optim.lr=fast", dir);
    EXPECT(run(args) == 1 && strstr(out, "optim.lr"), "wrong type: %s", out);
    snprintf(args, sizeof args, "sft nowhere.json --out %s/d", dir);
    EXPECT(run(args) == 1 && strstr(out, "nowhere.json"), "missing config: %s", out);
}

int main(void) {
    if (!mkdtemp(dir)) return 1;
    RUN_TEST(test_usage);
    RUN_TEST(test_train);
    RUN_TEST(test_sources);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    return test_summary();
}
