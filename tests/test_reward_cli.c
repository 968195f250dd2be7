// `grpo score` end to end: runs ./grpo (built by `make test`) on small JSONL files and checks each output
// line, the summary, and that a bad line is an error naming the line and the field.
#include "tests/cli_run.h"
#include "tests/test.h"
#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/grpo_score_XXXXXX";

// Runs `grpo score ARGS` in dir; returns its exit status with stdout and stderr in out.
static int run(const char *args, char *out, size_t cap) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "score %s", args);
    return cli_run(dir, cmd, true, out, cap);
}

static void test_math_lines(void) {
    cli_write(dir, "m.jsonl", "{\"completion\": \"so \\\\boxed{\\\\frac{1}{2}}\", \"answer\": \"0.5\"}\n"
                     "\n"
                     "{\"completion\": \"#### 1,000\", \"answer\": 1000, \"id\": \"q2\"}\n"
                     "{\"completion\": \"\\\\boxed{[0,1)}\", \"answer\": \"(0,1)\"}\n"
                     "{\"completion\": \"no idea\", \"answer\": \"3\"}\n");
    char out[8192];
    EXPECT(run("--reward math --input m.jsonl --batch 2", out, sizeof out) == 0, "exit status: %s", out);
    EXPECT(strstr(out, "{\"reward\":1,\"extracted\":\"\\\\frac{1}{2}\",\"verdict\":\"correct\",\"parts\":"
                       "{\"answered\":1,\"correct\":1}}\n"), "line 1: %s", out);
    EXPECT(strstr(out, "\"extracted\":\"1,000\",\"verdict\":\"correct\""), "line 3 (numeric answer): %s", out);
    EXPECT(strstr(out, "{\"reward\":0,\"extracted\":\"[0,1)\",\"verdict\":\"wrong\""), "line 4: %s", out);
    EXPECT(strstr(out, "\"verdict\":\"no_answer\""), "line 5: %s", out);
    EXPECT(strstr(out, "score: 4 lines, mean reward 0.5000; correct 2 (50.0%), wrong 1 (25.0%), no_answer 1 (25.0%)"),
           "summary: %s", out);
}

static void test_reward_list(void) {
    cli_write(dir, "r.json", "[{\"name\": \"math\", \"weight\": 1}, {\"name\": \"format\", \"weight\": 0.1}]");
    cli_write(dir, "f.jsonl", "{\"completion\": \"<think>1+1</think><answer>2</answer>\", \"answer\": \"2\"}\n");
    char out[4096];
    EXPECT(run("--config r.json --input f.jsonl", out, sizeof out) == 0, "exit status: %s", out);
    EXPECT(strstr(out, "{\"reward\":1.1,\"extracted\":\"2\",\"verdict\":\"correct\",\"parts\":{\"math\":1,\"format\":1}}"),
           "weighted sum with parts: %s", out);
    cli_write(dir, "c.jsonl", "{\"completion\": \"<answer>(6-2)*6</answer>\", \"nums\": [6, 2, 6], \"target\": 24}\n");
    EXPECT(run("--reward countdown --input - < c.jsonl", out, sizeof out) == 0, "stdin: %s", out);
    EXPECT(strstr(out, "{\"reward\":1,\"extracted\":\"(6-2)*6\",\"verdict\":\"correct\""), "countdown: %s", out);
}

static void test_bad_lines(void) {
    char out[4096];
    cli_write(dir, "b1.jsonl", "{\"completion\": \"#### 1\", \"answer\": \"1\"}\n{\"completion\": 5, \"answer\": \"1\"}\n");
    EXPECT(run("--reward math --input b1.jsonl", out, sizeof out) == 1 && strstr(out, "line 2") &&
           strstr(out, "completion") && strstr(out, "\"verdict\":\"correct\""), "completion not a string: %s", out);
    cli_write(dir, "b2.jsonl", "{\"completion\": \"x\"}\n");
    EXPECT(run("--reward math --input b2.jsonl", out, sizeof out) == 1 && strstr(out, "line 1") && strstr(out, "answer"),
           "missing answer: %s", out);
    cli_write(dir, "b3.jsonl", "{\"completion\": \"x\", \"answer\": \"1\"}\nnot json\n");
    EXPECT(run("--reward math --input b3.jsonl", out, sizeof out) == 1 && strstr(out, "line 2: not a JSON object"),
           "not JSON: %s", out);
    EXPECT(run("--reward countdown --input b3.jsonl", out, sizeof out) == 1 && strstr(out, "nums"),
           "countdown without nums: %s", out);
    EXPECT(run("--reward nope --input b3.jsonl", out, sizeof out) == 1 && strstr(out, "unknown reward"), "%s", out);
    EXPECT(run("--reward math", out, sizeof out) == 2 && strstr(out, "--input"), "no input: %s", out);
    EXPECT(run("--reward math --input missing.jsonl", out, sizeof out) == 1 && strstr(out, "missing.jsonl"), "%s", out);
}

int main(void) {
    if (!mkdtemp(dir) || access("grpo", X_OK) != 0) {
        printf("test_reward_cli: needs ./grpo (run from the repository root after make)\n0 passed, 1 failed\n");
        return 1;
    }
    RUN_TEST(test_math_lines);
    RUN_TEST(test_reward_list);
    RUN_TEST(test_bad_lines);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_summary();
}
