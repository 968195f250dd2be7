// Datasets: each loader on small files of its form (plain and gzip), format detection and override,
// malformed lines (errors naming file, line and field; or skipped and counted), the JSONL writer's round
// trip, the split, the sampler (determinism, epochs, cursor resume), and the synthetic generators: same
// seed same tasks, and every reference trace correct step by step and scored 1 by its reward.
#define _GNU_SOURCE
#include "common/error.h"
#include "common/fileio.h"
#include "datasets/dataset.h"
#include "rewards/reward.h"
#include "tests/test.h"
#include <inttypes.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

static char tmpdir[64];

// Writes `text` to tmpdir/name (gzip-compressed when name ends in .gz); returns the path (static buffer).
static const char *put_file(const char *name, const char *text) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    if (strstr(name, ".gz")) {
        gzFile f = gzopen(path, "wb");
        gzputs(f, text);
        gzclose(f);
    } else {
        write_file_atomic(path, text, strlen(text));
    }
    return path;
}

static const char *meta_str(const Task *t, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(t->meta, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_formats(void) {
    TaskList l;
    const char *p = put_file("gsm8k_mini.jsonl",
                             "{\"question\": \"Q1?\", \"answer\": \"Work.\\n#### 1,234\"}\n\n"
                             "{\"question\": \"Q2?\", \"answer\": \"a #### b\\n#### 72 \"}\n");
    EXPECT(tasks_load(&l, p, NULL) == 0, "%s", grpo_error());
    EXPECT(l.n == 2 && l.format == DS_GSM8K, "gsm8k: %d tasks, format %s", l.n, dataset_format_name(l.format));
    if (l.n == 2) {
        EXPECT(!strcmp(l.tasks[0].prompt, "Q1?") && !strcmp(l.tasks[0].answer, "1,234"), "gsm8k answer [%s]",
               l.tasks[0].answer);
        EXPECT(!strcmp(l.tasks[1].answer, "72"), "the last ####, trimmed: [%s]", l.tasks[1].answer);
        EXPECT(!strcmp(l.tasks[0].id, "gsm8k_mini/1") && !strcmp(l.tasks[1].id, "gsm8k_mini/3"),
               "ids by line: %s %s", l.tasks[0].id, l.tasks[1].id);
        EXPECT(meta_str(&l.tasks[0], "answer") && strstr(meta_str(&l.tasks[0], "answer"), "Work."),
               "meta keeps the source record");
    }
    tasks_free(&l);

    p = put_file("math.jsonl.gz",
                 "{\"problem\": \"P\", \"solution\": \"so $\\\\boxed{\\\\frac{1}{2}}$.\", \"answer\": \"\\\\frac12\","
                 " \"unique_id\": \"test/algebra/1.json\"}\n"
                 "{\"problem\": \"P2\", \"solution\": \"thus \\\\boxed{7}\"}\n");
    EXPECT(tasks_load(&l, p, NULL) == 0, "%s", grpo_error());
    EXPECT(l.n == 2 && l.format == DS_MATH, "math (gzip): %d tasks, format %s", l.n, dataset_format_name(l.format));
    if (l.n == 2) {
        EXPECT(!strcmp(l.tasks[0].answer, "\\frac12") && !strcmp(l.tasks[0].id, "test/algebra/1.json"),
               "math answer field and unique_id: %s %s", l.tasks[0].answer, l.tasks[0].id);
        EXPECT(!strcmp(l.tasks[1].answer, "7") && !strcmp(l.tasks[1].id, "math/2"),
               "boxed answer from the solution: [%s] %s", l.tasks[1].answer, l.tasks[1].id);
    }
    tasks_free(&l);

    p = put_file("he.jsonl", "{\"task_id\": \"HumanEval/0\", \"prompt\": \"def f(x):\\n\", \"test\": \"def check(c): "
                             "pass\", \"entry_point\": \"f\", \"canonical_solution\": \"    return x\\n\"}\n");
    EXPECT(tasks_load(&l, p, NULL) == 0 && l.n == 1 && l.format == DS_HUMANEVAL, "humaneval: %s", grpo_error());
    if (l.n == 1)
        EXPECT(!strcmp(l.tasks[0].prompt, "def f(x):\n") && !strcmp(l.tasks[0].id, "HumanEval/0") && !l.tasks[0].answer,
               "humaneval task");
    tasks_free(&l);

    p = put_file("mbpp.jsonl", "{\"task_id\": 11, \"text\": \"Add one.\", \"code\": \"def f(x): return x+1\", "
                               "\"test_list\": [\"assert f(1) == 2\", \"assert f(2) == 3\"], "
                               "\"test_setup_code\": \"\"}\n");
    EXPECT(tasks_load(&l, p, NULL) == 0 && l.n == 1 && l.format == DS_MBPP, "mbpp: %s", grpo_error());
    if (l.n == 1)
        EXPECT(!strcmp(l.tasks[0].id, "mbpp/11") &&
               !strcmp(l.tasks[0].prompt, "Add one.\nYour code should pass these tests:\nassert f(1) == 2\n"
                                          "assert f(2) == 3\n"), "mbpp prompt shows the asserts: %s [%s]",
               l.tasks[0].id, l.tasks[0].prompt);
    tasks_free(&l);

    p = put_file("cd.jsonl", "{\"target\": 24, \"nums\": [3, 8, 1]}\n");
    EXPECT(tasks_load(&l, p, NULL) == 0 && l.n == 1 && l.format == DS_COUNTDOWN, "countdown: %s", grpo_error());
    if (l.n == 1)
        EXPECT(!strcmp(l.tasks[0].prompt, "Make 24 from 3, 8, 1 with + - * /, each number once."),
               "countdown prompt [%s]", l.tasks[0].prompt);
    tasks_free(&l);

    p = put_file("gen.jsonl", "{\"question\": \"How many?\", \"answer\": 42}\n{\"prompt\": \"Hi\", \"id\": 7}\n");
    EXPECT(tasks_load(&l, p, NULL) == 0 && l.n == 2 && l.format == DS_GENERIC, "generic: %s", grpo_error());
    if (l.n == 2) {
        EXPECT(!strcmp(l.tasks[0].answer, "42") && !strcmp(l.tasks[0].prompt, "How many?"), "numeric answer");
        EXPECT(!l.tasks[1].answer && !strcmp(l.tasks[1].id, "gen/7"), "numeric id: %s", l.tasks[1].id);
    }
    tasks_free(&l);

    // The name overrides detection: a GSM8K-shaped file read as generic keeps the worked answer.
    p = put_file("gsm8k_mini.jsonl", "{\"question\": \"Q1?\", \"answer\": \"Work.\\n#### 5\"}\n");
    LoadOptions o = {.format = DS_GENERIC};
    EXPECT(tasks_load(&l, p, &o) == 0 && l.n == 1 && !strcmp(l.tasks[0].answer, "Work.\n#### 5"),
           "format override: %s", grpo_error());
    tasks_free(&l);
    DatasetFormat f;
    EXPECT(dataset_format_parse("mbpp", &f) == 0 && f == DS_MBPP, "format names");
    EXPECT(dataset_format_parse("csv", &f) == -1 && strstr(grpo_error(), "csv"), "unknown format: %s", grpo_error());
}

// Each bad line must fail with file:line and the field; with skip_bad it is counted instead.
static void test_malformed(void) {
    static const struct { const char *line, *field; } bad[] = {
        {"{\"question\": \"Q\", \"answer\": \"no hashes here\"}", "answer"},
        {"{\"question\": 5, \"answer\": \"#### 5\"}", "question"},
        {"{\"question\": \"Q\", \"answer\": \"####   \"}", "answer"},
        {"[1, 2]", "not a JSON object"},
        {"{\"question\": \"Q\", \"answer\": \"#### 5\"", "not a JSON object"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        char text[512];
        snprintf(text, sizeof text, "{\"question\": \"Q\", \"answer\": \"#### 1\"}\n\n%s\n"
                 "{\"question\": \"Q3\", \"answer\": \"#### 3\"}\n", bad[k].line);
        const char *p = put_file("bad.jsonl", text);
        TaskList l;
        LoadOptions o = {.format = DS_GSM8K};
        EXPECT(tasks_load(&l, p, &o) == -1 && strstr(grpo_error(), "bad.jsonl:3:") &&
               strstr(grpo_error(), bad[k].field), "bad line %zu: %s", k, grpo_error());
        o.skip_bad = true;
        EXPECT(tasks_load(&l, p, &o) == 0 && l.n == 2 && l.skipped == 1 && strstr(l.first_skip, "bad.jsonl:3:"),
               "skip_bad line %zu: %d tasks, %d skipped [%s]", k, l.n, l.skipped, l.first_skip);
        tasks_free(&l);
    }
    static const struct { const char *line, *field; } other[] = {
        {"{\"task_id\": \"H/1\", \"prompt\": \"p\", \"test\": 3, \"entry_point\": \"f\"}", "\"test\""},
        {"{\"task_id\": 1, \"text\": \"t\", \"test_list\": []}", "\"test_list\""},
        {"{\"task_id\": 1, \"text\": \"t\", \"test_list\": [\"assert 1\", 2]}", "\"test_list\""},
        {"{\"nums\": [1, 2.5], \"target\": 3}", "\"nums\""},
        {"{\"nums\": [1, 2], \"target\": \"3\"}", "\"target\""},
        {"{\"problem\": \"p\", \"solution\": \"no box\"}", "\"answer\""},
        {"{\"prompt\": \"p\", \"id\": [1]}", "\"id\""},
        {"{\"prompt\": \"p\", \"answer\": {}}", "\"answer\""},
        {"{\"colour\": \"red\"}", "cannot tell the format"},
    };
    for (size_t k = 0; k < sizeof other / sizeof *other; k++) {
        const char *p = put_file("other.jsonl", other[k].line);
        TaskList l;
        EXPECT(tasks_load(&l, p, NULL) == -1 && strstr(grpo_error(), "other.jsonl:1:") &&
               strstr(grpo_error(), other[k].field), "bad record %zu: %s", k, grpo_error());
    }
    // Detection skips a malformed first line when allowed to.
    TaskList l;
    LoadOptions skip = {.format = DS_AUTO, .skip_bad = true};
    const char *p = put_file("first_bad.jsonl", "{oops\n{\"question\": \"Q\", \"answer\": \"#### 2\"}\n");
    EXPECT(tasks_load(&l, p, &skip) == 0 && l.n == 1 && l.skipped == 1 && l.format == DS_GSM8K &&
           strstr(l.first_skip, "first_bad.jsonl:1:"), "bad first line skipped: %s", l.first_skip);
    tasks_free(&l);
    char missing[300];
    snprintf(missing, sizeof missing, "%s/none.jsonl", tmpdir);
    EXPECT(tasks_load(&l, missing, NULL) == -1 && strstr(grpo_error(), "none.jsonl"), "missing file: %s", grpo_error());
    EXPECT(tasks_load(&l, put_file("empty.jsonl", "\n  \n"), NULL) == -1 && strstr(grpo_error(), "no tasks"),
           "empty file: %s", grpo_error());
}

static int lists_equal(const TaskList *a, const TaskList *b) {
    if (a->n != b->n) return 0;
    for (int i = 0; i < a->n; i++)
        if (!task_equal(&a->tasks[i], &b->tasks[i])) return 0;
    return 1;
}

static void test_write_round_trip(void) {
    for (int kind = 0; kind < 2; kind++) {
        TaskList s, back;
        SynthOptions o = {.n = 50, .seed = 7, .difficulty = 3, .ops = "+-*"};
        EXPECT(synth_generate(&s, kind ? "countdown" : "arithmetic", &o) == 0, "%s", grpo_error());
        char path[300];
        snprintf(path, sizeof path, "%s/synth%d.jsonl", tmpdir, kind);
        EXPECT(tasks_write_jsonl(path, s.tasks, s.n) == 0, "%s", grpo_error());
        EXPECT(tasks_load(&back, path, NULL) == 0, "%s", grpo_error());
        EXPECT(lists_equal(&s, &back), "kind %d: synthetic tasks read back identically", kind);
        tasks_free(&s);
        tasks_free(&back);
    }
    // A loaded record written and read again: id, prompt and answer survive (the source's answer field
    // becomes the gold answer), and a second round is the identity.
    TaskList l, a, b;
    const char *p = put_file("g.jsonl", "{\"question\": \"Q \\u00e9?\", \"answer\": \"w\\n#### 9\"}\n");
    EXPECT(tasks_load(&l, p, NULL) == 0, "%s", grpo_error());
    char p1[300], p2[300];
    snprintf(p1, sizeof p1, "%s/w1.jsonl", tmpdir);
    snprintf(p2, sizeof p2, "%s/w2.jsonl", tmpdir);
    EXPECT(tasks_write_jsonl(p1, l.tasks, l.n) == 0 && tasks_load(&a, p1, NULL) == 0, "%s", grpo_error());
    EXPECT(a.n == 1 && !strcmp(a.tasks[0].id, l.tasks[0].id) && !strcmp(a.tasks[0].prompt, "Q \xc3\xa9?") &&
           !strcmp(a.tasks[0].answer, "9") && a.format == DS_GENERIC, "written gsm8k task read back");
    EXPECT(tasks_write_jsonl(p2, a.tasks, a.n) == 0 && tasks_load(&b, p2, NULL) == 0 && lists_equal(&a, &b),
           "second round trip identical");
    tasks_free(&l), tasks_free(&a), tasks_free(&b);
}

static void test_split(void) {
    TaskList s, train, held, s2, train2, held2;
    SynthOptions o = {.n = 2000, .seed = 3, .difficulty = 3, .ops = "+-*"};
    EXPECT(synth_arithmetic(&s, &o) == 0 && synth_arithmetic(&s2, &o) == 0, "%s", grpo_error());
    int n = s.n;
    EXPECT(tasks_split(&s, 0.1, 99, &train, &held) == 0 && s.n == 0, "%s", grpo_error());
    EXPECT(train.n + held.n == n && held.n > 150 && held.n < 250, "split sizes %d + %d", train.n, held.n);
    for (int i = 0; i < held.n; i++)
        for (int j = 0; j < train.n; j++)
            if (!strcmp(held.tasks[i].prompt, train.tasks[j].prompt)) {
                EXPECT(0, "prompt %s on both sides", held.tasks[i].prompt);
                i = held.n;
                break;
            }
    // The same tasks in another order split the same way.
    for (int i = 0; i < s2.n / 2; i++) {
        Task t = s2.tasks[i];
        s2.tasks[i] = s2.tasks[s2.n - 1 - i];
        s2.tasks[s2.n - 1 - i] = t;
    }
    EXPECT(tasks_split(&s2, 0.1, 99, &train2, &held2) == 0 && held2.n == held.n, "order-independent split");
    for (int i = 0; i < held.n && held2.n == held.n; i++)
        EXPECT(task_equal(&held.tasks[i], &held2.tasks[held.n - 1 - i]), "held-out task %d", i);
    tasks_free(&train), tasks_free(&held), tasks_free(&train2), tasks_free(&held2);
    EXPECT(tasks_split(&s, 1.5, 0, &train, &held) == -1, "fraction out of range");
}

static void test_rng(void) {
    uint64_t st = 1, hist[7] = {0};
    for (int i = 0; i < 70000; i++) hist[ds_rng_below(&st, 7)]++;
    for (int k = 0; k < 7; k++) EXPECT(hist[k] > 9500 && hist[k] < 10500, "bucket %d: %" PRIu64, k, hist[k]);
    uint64_t a = 42, b = 42;
    EXPECT(ds_rng_next(&a) == ds_rng_next(&b) && a == b, "same seed, same stream");
    EXPECT(ds_rng_below(&a, 1) == 0, "n = 1");
}

// Draws `count` tasks as indices into tasks.
static void draw(Dataset *ds, int count, int P, int *idx) {
    const Task *b[16];
    for (int k = 0; k < count; k += P) {
        EXPECT(dataset_next(ds, P, b) == 0, "%s", grpo_error());
        for (int i = 0; i < P && k + i < count; i++) idx[k + i] = (int)(b[i] - ds->tasks);
    }
}

static void test_sampler(void) {
    TaskList s;
    SynthOptions o = {.n = 10, .seed = 5, .difficulty = 2};
    EXPECT(synth_arithmetic(&s, &o) == 0, "%s", grpo_error());
    Dataset d1, d2;
    int a[80], b[80];
    EXPECT(dataset_init(&d1, s.tasks, s.n, 11, true) == 0 && dataset_init(&d2, s.tasks, s.n, 11, true) == 0, "init");
    draw(&d1, 60, 4, a);
    draw(&d2, 80, 5, b);
    EXPECT(!memcmp(a, b, 60 * sizeof *a), "same seed: same sequence whatever the batch size");
    for (int e = 0; e < 6; e++) {
        int seen[10] = {0};
        for (int i = 0; i < 10; i++) seen[a[10 * e + i]]++;
        for (int i = 0; i < 10; i++) EXPECT(seen[i] == 1, "epoch %d: task %d drawn %d times", e, i, seen[i]);
    }
    EXPECT(memcmp(a, a + 10, 10 * sizeof *a) != 0 && memcmp(a + 10, a + 20, 10 * sizeof *a) != 0,
           "each epoch reshuffled");
    // The next epoch starts with the draw that needs it.
    EXPECT(d1.epoch == 5 && d1.pos == 10, "epoch %ld pos %ld after 60 draws", d1.epoch, d1.pos);
    memcpy(a, b, sizeof a);
    dataset_free(&d2);
    EXPECT(dataset_init(&d2, s.tasks, s.n, 12, true) == 0, "init");
    draw(&d2, 60, 3, b);
    EXPECT(memcmp(a, b, 60 * sizeof *a) != 0, "another seed, another sequence");
    dataset_free(&d2);
    EXPECT(dataset_init(&d2, s.tasks, s.n, 11, false) == 0, "init");
    draw(&d2, 20, 5, b);
    for (int i = 0; i < 20; i++) EXPECT(b[i] == i % 10, "no shuffle: file order");
    dataset_free(&d2);

    // Resume from cursors saved at every point (mid-epoch, at a boundary, across one), through JSON text.
    for (int cut = 0; cut <= 33; cut += 3) {
        Dataset r1, r2;
        int first[80], rest[40], again[40];
        dataset_init(&r1, s.tasks, s.n, 11, true);
        draw(&r1, cut, 3, first);
        cJSON *c = dataset_cursor_save(&r1);
        char *text = cJSON_PrintUnformatted(c);
        cJSON *c2 = cJSON_Parse(text);
        draw(&r1, 40, 4, rest);
        dataset_init(&r2, s.tasks, s.n, 11, true);
        EXPECT(dataset_cursor_restore(&r2, c2) == 0, "restore at %d: %s", cut, grpo_error());
        draw(&r2, 40, 4, again);
        EXPECT(!memcmp(rest, again, sizeof rest), "resumed at %d: same continuation", cut);
        EXPECT(!memcmp(rest, a + cut, sizeof rest), "resumed at %d: the uninterrupted sequence", cut);
        free(text);
        cJSON_Delete(c), cJSON_Delete(c2);
        dataset_free(&r1), dataset_free(&r2);
    }
    // Cursors from other data or another seed are refused.
    cJSON *c = dataset_cursor_save(&d1);
    EXPECT(dataset_init(&d2, s.tasks, s.n - 1, 11, true) == 0 && dataset_cursor_restore(&d2, c) == -1 &&
           strstr(grpo_error(), "10 tasks"), "other count: %s", grpo_error());
    dataset_free(&d2);
    dataset_init(&d2, s.tasks, s.n, 12, true);
    EXPECT(dataset_cursor_restore(&d2, c) == -1 && strstr(grpo_error(), "seed"), "other seed: %s", grpo_error());
    dataset_free(&d2);
    free(s.tasks[3].prompt);
    s.tasks[3].prompt = strdup("What is 1+1?");
    dataset_init(&d2, s.tasks, s.n, 11, true);
    EXPECT(dataset_cursor_restore(&d2, c) == -1 && strstr(grpo_error(), "fingerprint"), "other tasks: %s",
           grpo_error());
    cJSON_ReplaceItemInObject(c, "pos", cJSON_CreateNumber(11));
    dataset_free(&d2);
    dataset_init(&d2, s.tasks, s.n, 11, true);
    EXPECT(dataset_cursor_restore(&d2, c) == -1 && strstr(grpo_error(), "\"pos\""), "bad pos: %s", grpo_error());
    cJSON_Delete(c);
    dataset_free(&d1), dataset_free(&d2);
    tasks_free(&s);
}

static void test_generators_deterministic(void) {
    static const char *const kinds[] = {"arithmetic", "countdown"};
    for (int k = 0; k < 2; k++) {
        TaskList x, y, z;
        SynthOptions o = {.n = 100, .seed = 1234, .difficulty = 3, .ops = "+-*"};
        EXPECT(synth_generate(&x, kinds[k], &o) == 0 && synth_generate(&y, kinds[k], &o) == 0, "%s", grpo_error());
        EXPECT(lists_equal(&x, &y), "%s: same seed, same tasks", kinds[k]);
        o.seed = 1235;
        EXPECT(synth_generate(&z, kinds[k], &o) == 0, "%s", grpo_error());
        int same = 0;
        for (int i = 0; i < x.n; i++) same += !strcmp(x.tasks[i].prompt, z.tasks[i].prompt);
        EXPECT(same < 20, "%s: another seed gives other tasks (%d of 100 prompts equal)", kinds[k], same);
        tasks_free(&x), tasks_free(&y), tasks_free(&z);
    }
    TaskList l;
    SynthOptions bad = {.n = 1, .seed = 1, .difficulty = 13};
    EXPECT(synth_arithmetic(&l, &bad) == -1 && strstr(grpo_error(), "difficulty"), "%s", grpo_error());
    bad.difficulty = 2, bad.ops = "+/";
    EXPECT(synth_arithmetic(&l, &bad) == -1 && strstr(grpo_error(), "ops"), "%s", grpo_error());
    bad.difficulty = 7;
    EXPECT(synth_countdown(&l, &bad) == -1 && strstr(grpo_error(), "difficulty"), "%s", grpo_error());
    EXPECT(synth_generate(&l, "sudoku", &bad) == -1 && strstr(grpo_error(), "sudoku"), "%s", grpo_error());
}

// Re-derives an arithmetic trace: every column line is a true one-digit fact, carries chain, and the
// digits read from the last line up (after the final carry) are the answer. Returns 1 when all hold.
static int arithmetic_trace_ok(const Task *t) {
    const char *tr = task_trace(t), *op = meta_str(t, "op");
    char digits[32];
    int nd = 0;
    long carry = 0;
    if (!tr || !op || strncmp(tr, "<think>\n", 8)) return 0;
    const char *p = tr + 8;
    long x, y, c, s, out;
    char o1, o2, flag;
    int used;
    while (sscanf(p, "%ld%c%ld%c%ld=%ld %c%ld\n%n", &x, &o1, &y, &o2, &c, &s, &flag, &out, &used) == 8) {
        long lhs = o1 == '+' ? x + y + c : o1 == '-' ? x - y - c : x * y + c;
        long rhs = o1 == '-' ? s - 10 * out : s + 10 * out;
        if (o1 != op[0] || c != carry || lhs != rhs || s < 0 || s > 9 || nd >= 30) return 0;
        digits[nd++] = (char)('0' + s);
        carry = out;
        p += used;
    }
    char want[64];
    int n = 0;
    if (carry && op[0] != '-') n += snprintf(want, sizeof want, "%ld", carry);
    while (nd > 0) want[n++] = digits[--nd];
    want[n] = 0;
    const char *w = want;
    while (w[0] == '0' && w[1]) w++;
    char tail[128];
    snprintf(tail, sizeof tail, "</think>\n<answer>%s</answer>", w);
    return !strcmp(p, tail) && !strcmp(w, t->answer);
}

// Countdown: every step line true, each step's left operand the previous result (or a number).
static int countdown_trace_ok(const Task *t) {
    const char *tr = task_trace(t);
    if (!tr || strncmp(tr, "<think>\n", 8)) return 0;
    const char *p = tr + 8;
    long a, b, r, last = -1;
    char op;
    int used, steps = 0;
    while (sscanf(p, "%ld%c%ld=%ld\n%n", &a, &op, &b, &r, &used) == 4) {
        long want = op == '+' ? a + b : op == '-' ? a - b : op == '*' ? a * b : (b && a % b == 0 ? a / b : -1);
        if (want != r || r <= 0 || (steps && a != last)) return 0;
        last = r, steps++, p += used;
    }
    const cJSON *target = cJSON_GetObjectItemCaseSensitive(t->meta, "target");
    return steps == cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(t->meta, "nums")) - 1 &&
           last == (long)target->valuedouble && !strncmp(p, "</think>\n<answer>", 17);
}

static void test_arithmetic_traces(void) {
    Reward math;
    EXPECT(reward_create(&math, "math", NULL) == 0, "%s", grpo_error());
    static const char *const ops[] = {"+", "-", "*"};
    for (int k = 0; k < 3; k++)
        for (int d = 1; d <= 6; d++) {
            TaskList l;
            SynthOptions o = {.n = 300, .seed = (uint64_t)(100 * d + k), .difficulty = d, .ops = ops[k]};
            EXPECT(synth_arithmetic(&l, &o) == 0, "%s", grpo_error());
            int ok = 0, wrong0 = 0, steps = 0;
            size_t longest = 0, longest_prompt = 0;
            for (int i = 0; i < l.n; i++) {
                const Task *t = &l.tasks[i];
                const char *tr = task_trace(t);
                ok += math.score(&math, t, tr, NULL) == 1.0f;
                char wrong[64];
                snprintf(wrong, sizeof wrong, "<think>\n</think>\n<answer>%lld</answer>", atoll(t->answer) + 1);
                wrong0 += math.score(&math, t, wrong, NULL) == 0.0f;
                int good = arithmetic_trace_ok(t);
                if (!good && steps == i) fprintf(stderr, "  first bad trace: %s\n%s\n", t->prompt, tr);
                steps += good;
                if (strlen(tr) > longest) longest = strlen(tr);
                if (strlen(t->prompt) > longest_prompt) longest_prompt = strlen(t->prompt);
            }
            EXPECT(ok == l.n && wrong0 == l.n && steps == l.n, "op %s digits %d: %d scored 1, %d wrong ones 0, %d "
                   "traces correct of %d", ops[k], d, ok, wrong0, steps, l.n);
            if (d <= 3) EXPECT(longest < 100 && longest_prompt < 24, "op %s digits %d: trace %zu bytes, prompt %zu",
                               ops[k], d, longest, longest_prompt);
            tasks_free(&l);
        }
    TaskList l;
    SynthOptions o = {.n = 1, .seed = 0, .difficulty = 2, .ops = "+"};
    EXPECT(synth_arithmetic(&l, &o) == 0, "%s", grpo_error());
    printf("arithmetic example: %s ->\n%s\n", l.tasks[0].prompt, task_trace(&l.tasks[0]));
    tasks_free(&l);
    reward_destroy(&math);
}

static void test_countdown_traces(void) {
    Reward cd;
    cJSON *opt = cJSON_Parse("{\"format_score\": 0}");
    EXPECT(reward_create(&cd, "countdown", opt) == 0, "%s", grpo_error());
    cJSON_Delete(opt);
    for (int d = 2; d <= 6; d++) {
        TaskList l;
        SynthOptions o = {.n = 300, .seed = (uint64_t)d, .difficulty = d};
        EXPECT(synth_countdown(&l, &o) == 0, "%s", grpo_error());
        int ok = 0, wrong0 = 0, steps = 0, checked = 0;
        for (int i = 0; i < l.n; i++) {
            const Task *t = &l.tasks[i];
            ok += cd.score(&cd, t, task_trace(t), NULL) == 1.0f;
            checked += cd.check_task == NULL || cd.check_task(&cd, t) == 0;
            char wrong[128];
            snprintf(wrong, sizeof wrong, "<answer>%s+1</answer>", meta_str(t, "solution"));
            wrong0 += cd.score(&cd, t, wrong, NULL) == 0.0f;
            steps += countdown_trace_ok(t);
        }
        EXPECT(ok == l.n && wrong0 == l.n && steps == l.n && checked == l.n,
               "countdown %d numbers: %d scored 1, %d wrong ones 0, %d traces correct, %d checked, of %d", d, ok,
               wrong0, steps, checked, l.n);
        if (d == 3) printf("countdown example: %s ->\n%s\n", l.tasks[0].prompt, task_trace(&l.tasks[0]));
        tasks_free(&l);
    }
    reward_destroy(&cd);
}

static void test_task_helpers(void) {
    Task a = {strdup("x"), strdup("p"), NULL, cJSON_Parse("{\"k\": [1, 2]}")}, b;
    EXPECT(task_clone(&b, &a) == 0 && task_equal(&a, &b) && b.meta != a.meta && b.id != a.id, "clone");
    cJSON_AddNumberToObject(b.meta, "z", 1);
    EXPECT(!task_equal(&a, &b), "meta differs");
    task_free(&a);
    task_free(&b);
    EXPECT(a.id == NULL && a.meta == NULL, "task_free zeroes");
    task_free(&a);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/grpo-test-datasets-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    RUN_TEST(test_task_helpers);
    RUN_TEST(test_formats);
    RUN_TEST(test_malformed);
    RUN_TEST(test_write_round_trip);
    RUN_TEST(test_split);
    RUN_TEST(test_rng);
    RUN_TEST(test_sampler);
    RUN_TEST(test_generators_deterministic);
    RUN_TEST(test_arithmetic_traces);
    RUN_TEST(test_countdown_traces);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary();
}
