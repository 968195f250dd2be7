// The code reward: program extraction, the three test forms, the verdict kinds, partial credit, the
// secret-token rule, the worker pool and its asynchronous interface.
#include "rewards/code.h"
#include "common/error.h"
#include "rewards/sandbox.h"
#include "tests/test.h"
#include <stdlib.h>

static Reward R, RP; // all-or-nothing and partial, 2 s wall

static Task task_json(const char *json) {
    Task t = {0};
    t.id = "test";
    t.meta = cJSON_Parse(json);
    return t;
}

static float score(const Reward *r, const Task *t, const char *completion, RewardDetail *d) {
    float x = 0;
    const char *c = completion;
    reward_score_batch(r, &t, &c, 1, &x, d);
    return x;
}

#define EXPECT_VERDICT(r, t, comp, want_reward, want_verdict) do { \
    RewardDetail _d; float _x = score(r, t, comp, &_d); \
    EXPECT(fabsf(_x - (want_reward)) < 1e-6f && !strcmp(_d.verdict, want_verdict), \
           "%s: reward %g verdict %s, expected %g %s", #comp, _x, _d.verdict, (double)(want_reward), want_verdict); \
    } while (0)

static void test_extract(void) {
    struct { const char *in, *out; } c[] = {
        {"def f(): return 1", "def f(): return 1"},
        {"Here:\n```python\nx = 1\n```\nand\n```python\ny = 2\n```\n", "y = 2\n"},
        {"```py\na\n```\n```bash\nls\n```\n", "a\n"},
        {"```\nplain\n```", "plain\n"},
        {"text ```python inline``` text", "text ```python inline``` text"},
        {"```python\ncut off at the end", "cut off at the end"},
        {"```python\ns = '```'\n```", "s = '```'\n"},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        char *got = code_extract(c[i].in);
        EXPECT(got && !strcmp(got, c[i].out), "case %zu: got [%s] want [%s]", i, got ? got : "(null)", c[i].out);
        free(got);
    }
}

static const char *HE =
    "{\"prompt\": \"from typing import List\\n\\ndef add_all(xs: List[int]) -> int:\\n    \\\"\\\"\\\"Sum.\\\"\\\"\\\"\\n\","
    " \"entry_point\": \"add_all\","
    " \"test\": \"def check(candidate):\\n    assert candidate([1, 2, 3]) == 6\\n    assert candidate([]) == 0\\n\"}";

static void test_humaneval_form(void) {
    Task t = task_json(HE);
    EXPECT_VERDICT(&R, &t, "    return sum(xs)\n", 1, "passed");
    EXPECT_VERDICT(&R, &t, "Sure:\n```python\ndef add_all(xs):\n    return sum(xs)\n```\n", 1, "passed");
    EXPECT_VERDICT(&R, &t, "    return None\n", 0, "failed");
    EXPECT_VERDICT(&R, &t, "    return sum(xs) + 1\n", 0, "failed");
    EXPECT_VERDICT(&R, &t, "    return sum(xs[1:])\n", 0, "failed");
    EXPECT_VERDICT(&R, &t, "    raise ValueError('no')\n", 0, "runtime_error");
    EXPECT_VERDICT(&R, &t, "    return sum(xs\n", 0, "runtime_error");
    RewardDetail d;
    score(&R, &t, "    return sum(xs)\n", &d);
    EXPECT(d.nparts == 3 && !strcmp(d.parts[0].name, "passed") && d.parts[0].value == 1 && d.parts[1].value == 1,
           "parts: %d %s %g %g", d.nparts, d.parts[0].name, d.parts[0].value, d.parts[1].value);
    EXPECT(!strcmp(d.extracted, "    return sum(xs)\n"), "extracted [%s]", d.extracted);
    cJSON_Delete(t.meta);
}

static const char *MB =
    "{\"test_setup_code\": \"import math\", \"test_list\": [\"assert sq(2) == 4\", \"assert sq(3) == 9\","
    " \"assert sq(-1) == 1\", \"assert math.isclose(sq(0.5), 0.25)\"]}";

static void test_mbpp_form_and_partial(void) {
    Task t = task_json(MB);
    EXPECT_VERDICT(&R, &t, "def sq(x):\n    return x * x", 1, "passed");
    EXPECT_VERDICT(&R, &t, "def sq(x):\r\n\treturn x * x\r\n", 1, "passed");
    EXPECT_VERDICT(&R, &t, "def sq(x):\n    return x * x if x > 0 else 0", 0, "failed");
    EXPECT_VERDICT(&RP, &t, "def sq(x):\n    return x * x if x > 0 else 0", 0.75f, "failed");
    EXPECT_VERDICT(&RP, &t, "def sq(x):\n    return x * x", 1, "passed");
    // A test that hangs takes the rest with it: the run is killed at the deadline.
    EXPECT_VERDICT(&RP, &t, "def sq(x):\n    if x == 3:\n        while True: pass\n    return x * x", 0.25f, "timeout");
    cJSON_Delete(t.meta);
}

static void test_stdio_form(void) {
    Task t = task_json("{\"inputs\": [\"1 2\\n\", \"10 -3\\n\", \"5 5\\n\"], \"outputs\": [\"3\\n\", \"7\", \"10  \\n\\n\"]}");
    EXPECT_VERDICT(&R, &t, "```python\na, b = map(int, input().split())\nprint(a + b)\n```", 1, "passed");
    EXPECT_VERDICT(&R, &t, "import sys\na, b = map(int, sys.stdin.read().split())\nsys.stdout.write(f'  {a+b} \\n')\nsys.exit(0)", 1, "passed");
    EXPECT_VERDICT(&R, &t, "a, b = map(int, input().split())\nprint(a - b)", 0, "failed");
    EXPECT_VERDICT(&RP, &t, "a, b = map(int, input().split())\nprint(a + b if a < 10 else 0)", 2.0f / 3, "failed");
    EXPECT_VERDICT(&R, &t, "a, b = map(int, input().split())\nprint(a + b, 0)", 0, "failed");
    EXPECT_VERDICT(&R, &t, "print(int(input()) + 1)", 0, "runtime_error");
    EXPECT_VERDICT(&R, &t, "while True: pass", 0, "timeout");
    cJSON_Delete(t.meta);
    // A megabyte of input, read in full or not at all (a program that exits without reading it must not
    // break anything on this side).
    enum { WORDS = 500000 };
    char *big = malloc(2 * WORDS + 1);
    for (int i = 0; i < WORDS; i++) memcpy(big + 2 * i, "x ", 2);
    big[2 * WORDS] = 0;
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddItemToObject(meta, "inputs", cJSON_CreateStringArray((const char *const[]){big}, 1));
    cJSON_AddItemToObject(meta, "outputs", cJSON_CreateStringArray((const char *const[]){"500000"}, 1));
    t.meta = meta;
    EXPECT_VERDICT(&R, &t, "import sys\nprint(len(sys.stdin.read().split()))", 1, "passed");
    EXPECT_VERDICT(&R, &t, "print(500000)", 1, "passed");
    cJSON_Delete(meta);
    free(big);
}

static void test_verdict_kinds(void) {
    Task t = task_json("{\"test_list\": [\"assert f(1) == 2\"]}");
    EXPECT_VERDICT(&R, &t, "def f(x): return x + 1", 1, "passed");
    EXPECT_VERDICT(&R, &t, "def f(x):\n    while True: pass", 0, "timeout");
    EXPECT_VERDICT(&R, &t, "def f(x):\n    a = []\n    while True: a.append(bytearray(1 << 24))", 0, "memory");
    EXPECT_VERDICT(&R, &t, "def f(x):\n    return [][1]", 0, "runtime_error");
    EXPECT_VERDICT(&R, &t, "import sys\nwhile True: sys.stdout.write('x' * 65536)", 0, "output_limit");
    EXPECT_VERDICT(&R, &t, "import sys\nwhile True: sys.stderr.write('x' * 65536)", 0, "output_limit");
    // Exiting "successfully" before the tests earns nothing: the token was never written.
    EXPECT_VERDICT(&R, &t, "import sys\nsys.exit(0)\ndef f(x): return 0", 0, "failed");
    EXPECT_VERDICT(&R, &t, "import os\nos._exit(0)", 0, "failed");
    EXPECT_VERDICT(&R, &t, "def f(x):\n    import os; os._exit(0)", 0, "failed");
    EXPECT_VERDICT(&R, &t, "def f(x):\n    raise SystemExit(0)", 0, "failed");
    cJSON_Delete(t.meta);
}

// A program that knows the report format but not the token cannot forge a pass.
static void test_token_forgery(void) {
    Task t = task_json("{\"test_list\": [\"assert f(1) == 2\"]}");
    const char *forge[] = {
        "import os\nos.write(3, b'ok 0 ' + b'0' * 32 + b'\\ndone ' + b'0' * 32 + b'\\n')\nos._exit(0)",
        "import os\ntry:\n    t = os.read(4, 64)\nexcept OSError:\n    t = b'x'\nos.write(3, b'ok 0 ' + t + b'\\ndone ' + t + b'\\n')\nos._exit(0)",
        "import os\nos.write(3, open('/h/harness.py', 'rb').read())\nos._exit(0)",
        "import os\nos.close(3)\ndef f(x): return x + 1",
    };
    for (size_t i = 0; i < sizeof forge / sizeof *forge; i++) {
        RewardDetail d;
        float x = score(&R, &t, forge[i], &d);
        EXPECT(x == 0 && strcmp(d.verdict, "passed") != 0, "forgery %zu earned %g (%s)", i, x, d.verdict);
    }
    cJSON_Delete(t.meta);
}

// Monkey-patching what the tests rely on changes nothing.
static void test_monkey_patching(void) {
    Task t = task_json("{\"test_list\": [\"assert f(1) == 2\", \"assert abs(f(1) - 3) < 1\"]}");
    const char *cheat[] = {
        "import builtins\nclass E(Exception): pass\nbuiltins.AssertionError = E\nAssertionError = E\ndef f(x): return 0",
        "import builtins\nbuiltins.abs = lambda v: 0\ndef f(x): return 0",
        "import sys\ndef tr(fr, ev, arg):\n    if fr.f_code.co_filename.startswith('<test'):\n        return None\n    return tr\n"
        "sys.settrace(tr)\ndef f(x): return 0",
        "def check(c): pass\ndef f(x): return 0",
    };
    for (size_t i = 0; i < sizeof cheat / sizeof *cheat; i++) {
        RewardDetail d;
        float x = score(&R, &t, cheat[i], &d);
        EXPECT(x == 0 && !strcmp(d.verdict, "failed"), "cheat %zu earned %g (%s)", i, x, d.verdict);
    }
    cJSON_Delete(t.meta);
}

static void test_batch_parallel(void) {
    enum { N = 24 };
    Task t = task_json(MB);
    const Task *tasks[N];
    const char *comps[N];
    float r[N];
    RewardDetail d[N];
    for (int i = 0; i < N; i++) {
        tasks[i] = &t;
        comps[i] = i % 3 == 0 ? "def sq(x): return x * x" : i % 3 == 1 ? "def sq(x): return x" : "def sq(x):\n  while 1: pass";
    }
    reward_score_batch(&R, tasks, comps, N, r, d);
    for (int i = 0; i < N; i++) {
        const char *want = i % 3 == 0 ? "passed" : i % 3 == 1 ? "failed" : "timeout";
        EXPECT(r[i] == (i % 3 == 0) && !strcmp(d[i].verdict, want), "item %d: %g %s", i, r[i], d[i].verdict);
    }
    cJSON_Delete(t.meta);
}

// The harness runs as bytecode compiled once at creation, by the sandbox's own interpreter.
static void test_compiled_harness(void) {
    Task t = task_json("{\"test_list\": [\"assert f(1) == 2\"]}");
    EXPECT_VERDICT(&R, &t, "import os\ndef f(x): return x + 1 if 'harness.pyc' in os.listdir('/h') else 0",
                   1, "passed");
    cJSON_Delete(t.meta);
}

// Batches submitted while the caller keeps computing complete with the results of the synchronous path,
// whatever order they are waited for in.
static void test_async(void) {
    enum { N = 12 };
    Task t = task_json(MB);
    const Task *tasks[N];
    const char *comps[N];
    for (int i = 0; i < N; i++) {
        tasks[i] = &t;
        comps[i] = i % 4 == 0 ? "def sq(x): return x * x" : i % 4 == 1 ? "def sq(x): return x"
                 : i % 4 == 2 ? "import time\ntime.sleep(0.3)\ndef sq(x): return x * x" : "def sq(x): raise ValueError";
    }
    float want[N], got[2][N];
    RewardDetail dwant[N], dgot[2][N];
    reward_score_batch(&R, tasks, comps, N, want, dwant);
    CodeBatch *b[2];
    for (int k = 0; k < 2; k++) b[k] = code_reward_submit(&R, tasks, comps, N, got[k], dgot[k]);
    EXPECT(b[0] && b[1], "submit: %s", grpo_error());
    double work = 0;
    long rounds = 0;
    while (b[1] && !code_reward_done(b[1])) {
        for (int k = 1; k < 100000; k++) work += sqrt((double)k);
        rounds++;
    }
    EXPECT(rounds > 0 && work > 0, "the batches were scored before the caller did any work");
    for (int k = 1; k >= 0; k--) {
        if (!b[k]) continue;
        code_reward_wait(b[k]);
        for (int i = 0; i < N; i++)
            EXPECT(got[k][i] == want[i] && !strcmp(dgot[k][i].verdict, dwant[i].verdict) &&
                   dgot[k][i].parts[0].value == dwant[i].parts[0].value,
                   "batch %d item %d: %g %s, synchronously %g %s", k, i, got[k][i], dgot[k][i].verdict, want[i],
                   dwant[i].verdict);
    }
    CodeBatch *empty = code_reward_submit(&R, tasks, comps, 0, got[0], NULL);
    EXPECT(empty && code_reward_done(empty), "an empty batch is not done at once");
    if (empty) code_reward_wait(empty);
    Reward m;
    EXPECT(reward_create(&m, "math", NULL) == 0, "%s", grpo_error());
    EXPECT(!code_reward_submit(&m, tasks, comps, 1, got[0], NULL) && strstr(grpo_error(), "not a code reward"),
           "submitting to a math reward: %s", grpo_error());
    reward_destroy(&m);
    cJSON_Delete(t.meta);
}

static void test_task_and_option_errors(void) {
    Task t = task_json("{\"question\": \"no tests\"}");
    EXPECT(R.check_task(&R, &t) != 0 && strstr(grpo_error(), "no tests"), "no-test task: %s", grpo_error());
    EXPECT_VERDICT(&R, &t, "x = 1", 0, "sandbox_error");
    cJSON_Delete(t.meta);
    t = task_json("{\"inputs\": [\"1\"], \"outputs\": []}");
    EXPECT(R.check_task(&R, &t) != 0, "mismatched inputs/outputs accepted");
    cJSON_Delete(t.meta);
    Reward bad;
    cJSON *o = cJSON_Parse("{\"name\": \"code\", \"timeout\": 3}");
    EXPECT(reward_create(&bad, "code", o) != 0 && strstr(grpo_error(), "timeout"), "unknown key: %s", grpo_error());
    cJSON_Delete(o);
    o = cJSON_Parse("{\"memory_mb\": \"lots\"}");
    EXPECT(reward_create(&bad, "code", o) != 0 && strstr(grpo_error(), "memory_mb"), "bad value: %s", grpo_error());
    cJSON_Delete(o);
}

int main(void) {
    cJSON *o = cJSON_Parse("{\"timeout_s\": 2, \"cpu_s\": 2, \"memory_mb\": 512, \"output_kb\": 256}");
    cJSON *op = cJSON_Parse("{\"timeout_s\": 2, \"cpu_s\": 2, \"partial\": true}");
    if (reward_create(&R, "code", o) != 0 || reward_create(&RP, "code", op) != 0) {
        fprintf(stderr, "FAIL creating the code reward: %s\n", grpo_error());
        printf("0 passed, 1 failed\n");
        return 1;
    }
    fprintf(stderr, "sandbox: %s\n", sandbox_layers(reward_code_sandbox(&R)));
    RUN_TEST(test_extract);
    RUN_TEST(test_humaneval_form);
    RUN_TEST(test_mbpp_form_and_partial);
    RUN_TEST(test_stdio_form);
    RUN_TEST(test_verdict_kinds);
    RUN_TEST(test_token_forgery);
    RUN_TEST(test_monkey_patching);
    RUN_TEST(test_batch_parallel);
    RUN_TEST(test_compiled_harness);
    RUN_TEST(test_async);
    RUN_TEST(test_task_and_option_errors);
    reward_destroy(&R);
    reward_destroy(&RP);
    cJSON_Delete(o);
    cJSON_Delete(op);
    return test_summary();
}
