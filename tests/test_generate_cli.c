// `grpo generate` end to end: ./grpo init a tiny model, then sample from it: one line per completion,
// the same output at any batch size or cache budget for one seed, greedy samples equal, and clear errors.
#include "tests/cli_run.h"
#include "tests/test.h"
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/grpo_generate_XXXXXX";

static char out1[1 << 16], out2[1 << 16];

// Cuts the "logprob_sum" field out of every line into lp[]: BLAS sums in an order that depends on the
// batch shape, so log-probs agree to rounding only, while the tokens must be identical.
static int cut_logprobs(char *s, double *lp, int cap) {
    int n = 0;
    char *p;
    while ((p = strstr(s, ",\"logprob_sum\":")) && n < cap) {
        lp[n++] = atof(p + 15);
        char *end = strchr(p, '}');
        memmove(p, end, strlen(end) + 1);
        s = p + 1;
    }
    return n;
}

static void test_generate(void) {
    char cwd[4096], cmd[8192];
    EXPECT(getcwd(cwd, sizeof cwd) != NULL, "cwd");
    snprintf(cmd, sizeof cmd, "init --config %s/configs/model/tiny.json --out m --seed 2 --std 0.3", cwd);
    EXPECT(cli_run(dir, cmd, true, out1, sizeof out1) == 0, "init: %s", out1);
    cli_write(dir, "p.jsonl", "{\"prompt\": \"What is 2+3?\"}\n{\"question\": \"Name a prime.\", \"answer\": \"2\"}\n"
                              "{\"problem\": \"x\"}\n");
    const char *common = "generate --model m --prompts p.jsonl -n 4 --max-new-tokens 24 --seed 9 --top-p 0.9 "
                         "--template r1-zero --stop ab";
    snprintf(cmd, sizeof cmd, "%s --max-batch 64", common);
    EXPECT(cli_run(dir, cmd, false, out1, sizeof out1) == 0, "generate: %s", out1);
    EXPECT(count_lines(out1) == 12, "12 completions expected: %s", out1);
    EXPECT(strstr(out1, "\"prompt_idx\":2,\"sample_idx\":3,\"task_id\":\"p/3\",\"completion\":"), "fields: %s", out1);
    EXPECT(strstr(out1, "\"finish_reason\":\"length\"") || strstr(out1, "\"finish_reason\":\"stop\""), "finish");
    snprintf(cmd, sizeof cmd, "%s --max-batch 4 --token-budget 900", common);
    EXPECT(cli_run(dir, cmd, false, out2, sizeof out2) == 0, "generate (batch 4): %s", out2);
    double lp1[16], lp2[16];
    int n1 = cut_logprobs(out1, lp1, 16), n2 = cut_logprobs(out2, lp2, 16);
    EXPECT(n1 == 12 && n2 == 12, "log-prob fields: %d, %d", n1, n2);
    for (int i = 0; i < n1 && i < n2; i++) EXPECT_NEAR(lp1[i], lp2[i], 1e-5, "log-prob sum at batch 64 vs 4");
    EXPECT(!strcmp(out1, out2), "batch 64 and batch 4 (small budget) differ:\n%s\n---\n%s", out1, out2);
    EXPECT(cli_run(dir, "generate --model m --prompts p.jsonl -n 2 --max-new-tokens 8 --temperature 0", false, out1,
               sizeof out1) == 0, "greedy: %s", out1);
    char *second = strchr(out1, '\n') + 1, *a = strstr(out1, "\"completion\""), *b = strstr(second, "\"completion\"");
    EXPECT(a && b && !strncmp(a, b, strchr(b, '\n') - b), "greedy samples of one prompt differ: %s", out1);
    EXPECT(cli_run(dir, "generate --model m --prompts p.jsonl --top-p 0", true, out1, sizeof out1) == 1 &&
               strstr(out1, "top_p 0: expected a value in (0, 1]"), "bad top-p: %s", out1);
    EXPECT(cli_run(dir, "generate --model nowhere --prompts p.jsonl", true, out1, sizeof out1) == 1 &&
               strstr(out1, "nowhere"), "missing model: %s", out1);
    EXPECT(cli_run(dir, "generate --model m --prompts p.jsonl -n 2 --max-new-tokens 8 --token-budget 10", true, out1,
               sizeof out1) == 1 && strstr(out1, "raise token_budget"), "budget: %s", out1);
    EXPECT(cli_run(dir, "generate --model m --prompts p.jsonl --max-new-tokens 600", true, out1, sizeof out1) == 1 &&
               strstr(out1, "max_position_embeddings 512"), "too long: %s", out1);
}

int main(void) {
    if (!mkdtemp(dir)) return 1;
    RUN_TEST(test_generate);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    return test_summary();
}
