#define _GNU_SOURCE
#include "rewards/code.h"
#include "common/error.h"
#include "rewards/sandbox.h"
#include <ctype.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define PYTHON "/usr/bin/python3"

// The in-sandbox harness for function tests. It takes the token from fd 4 and closes it before any
// program code runs, so the program cannot read it from there; it writes "ok I TOKEN" after test I,
// "done TOKEN" after the last, and "fail I KIND" (for the verdict only) to fd 3. Before each test it
// restores the builtins and drops trace/profile hooks the program may have installed to skip asserts.
// The `assert` statement itself cannot be patched (it raises the real AssertionError). It imports only
// built-in modules (`os` alone would add about 15% to python -S's start-up) and hands exec() strings:
// compile() builds Python's AST classes first, a millisecond more.
static const char HARNESS[] =
    "import builtins, posix, sys\n"
    "def _grpo_harness():\n"
    "    write, read, close = posix.write, posix.read, posix.close\n"
    "    settrace, setprofile = sys.settrace, sys.setprofile\n"
    "    BE, AE, ME, SE = BaseException, AssertionError, MemoryError, SystemExit\n"
    "    tok = read(4, 256)\n"
    "    close(4)\n"
    "    nunits, ntests, stop = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == '1'\n"
    "    here = sys.argv[0].rpartition('/')[0]\n"
    "    def load(name):\n"
    "        with open(here + '/' + name, encoding='utf-8', errors='replace') as f:\n"
    "            return f.read()\n"
    "    units = [load('u%d' % i) for i in range(nunits)]\n"
    "    tests = [load('t%d' % i) for i in range(ntests)]\n"
    "    pristine = dict(builtins.__dict__)\n"
    "    def report(b):\n"
    "        try:\n"
    "            write(3, b)\n"
    "        except BE:\n"
    "            pass\n"
    "    def kind(e):\n"
    "        if isinstance(e, ME): return b'memory'\n"
    "        if isinstance(e, (AE, SE)): return b'failed'\n"
    "        return b'runtime_error'\n"
    "    g = {'__name__': '__main__', '__builtins__': builtins}\n"
    "    try:\n"
    "        for u in units:\n"
    "            exec(u, g)\n"
    "    except BE as e:\n"
    "        report(b'fail -1 ' + kind(e) + b'\\n')\n"
    "        return\n"
    "    for i in range(ntests):\n"
    "        settrace(None)\n"
    "        setprofile(None)\n"
    "        builtins.__dict__.clear()\n"
    "        builtins.__dict__.update(pristine)\n"
    "        try:\n"
    "            exec(tests[i], g)\n"
    "        except BE as e:\n"
    "            report(b'fail %d ' % i + kind(e) + b'\\n')\n"
    "            if stop:\n"
    "                return\n"
    "            continue\n"
    "        report(b'ok %d ' % i + tok + b'\\n')\n"
    "    report(b'done ' + tok + b'\\n')\n"
    "_grpo_harness()\n";

// Compiles harness.py into .pyc bytes on stdout, so that the runs skip compiling it (about 5% of a short
// test's time). It runs once, in the sandbox, with the interpreter the runs use.
static const char COMPILE_HARNESS[] =
    "import importlib.util, marshal, sys\n"
    "src = open('../h/harness.py', encoding='utf-8').read()\n"
    "code = marshal.dumps(compile(src, 'harness', 'exec'))\n"
    "sys.stdout.buffer.write(importlib.util.MAGIC_NUMBER + bytes(12) + code)\n";

typedef struct Job Job;
struct Job {
    const Task *task;
    const char *completion;
    float *reward;
    RewardDetail *detail;
    CodeBatch *batch;
    Job *next;
};

struct CodeBatch {
    struct CodeState *st;
    int pending;               // jobs not yet scored (under st->mu)
    pthread_cond_t done;
    Job jobs[];                // (n)
};

typedef struct CodeState {
    bool partial, site;
    Sandbox *sb;
    char *harness_pyc;      // (harness_pyc_len) the compiled harness, NULL when compiling it failed
    size_t harness_pyc_len;
    int nworkers;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t work;
    Job *head, *tail;
    bool stop;
} CodeState;

// ---------------------------------------------------------------------------------------------------
// Program extraction

static bool python_tag(const char *tag, size_t n) {
    static const char *const ok[] = {"", "python", "py", "python3", "Python", "Python3"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (strlen(ok[i]) == n && strncmp(tag, ok[i], n) == 0) return true;
    return false;
}

char *code_extract(const char *completion) {
    const char *best = NULL;
    size_t best_len = 0;
    const char *p = completion;
    // Fences open at the start of a line; a block left open (a generation cut short) runs to the end.
    while ((p = strstr(p, "```")) != NULL) {
        bool line_start = p == completion || p[-1] == '\n';
        const char *tag = p + 3, *eol = strchr(tag, '\n');
        if (!line_start || !eol) { p += 3; continue; }
        size_t tn = (size_t)(eol - tag);
        while (tn && isspace((unsigned char)tag[tn - 1])) tn--;
        const char *body = eol + 1, *end = body;
        for (;;) {
            end = strstr(end, "```");
            if (!end || end == body || end[-1] == '\n') break;
            end += 3;
        }
        if (python_tag(tag, tn)) {
            best = body;
            best_len = end ? (size_t)(end - body) : strlen(body);
        }
        if (!end) break;
        p = end + 3;
    }
    if (!best) { best = completion; best_len = strlen(completion); }
    char *out = grpo_malloc(best_len + 1, "extracted program");
    if (!out) return NULL;
    memcpy(out, best, best_len);
    out[best_len] = 0;
    return out;
}

// ---------------------------------------------------------------------------------------------------
// Scoring one completion (on a worker, in sandbox slot `slot`)

static const char *meta_str(const Task *t, const char *key) {
    const cJSON *v = t->meta ? cJSON_GetObjectItemCaseSensitive(t->meta, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const cJSON *meta_list(const Task *t, const char *key) {
    const cJSON *v = t->meta ? cJSON_GetObjectItemCaseSensitive(t->meta, key) : NULL;
    return cJSON_IsArray(v) ? v : NULL;
}

typedef struct { int passed, total; const char *verdict; double seconds; } Outcome;

// A run that ended without passing: the most specific reason, from the sandbox then the harness.
static const char *failure_kind(const SandboxResult *r, const char *reported) {
    if (r->output_limit) return "output_limit";
    if (r->oom) return "memory";
    if (r->timed_out || r->signal == SIGXCPU) return "timeout";
    if (reported) return reported;
    if (strstr(r->err, "MemoryError")) return "memory";
    if (r->exit_code != 0 || r->signal) return "runtime_error";
    return "failed";
}

static bool token_at(const char *s, const char *tok, size_t tn) {
    return strncmp(s, tok, tn) == 0 && (s[tn] == '\n' || s[tn] == 0);
}

static void make_token(char *out /* 33 */) {
    unsigned char b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        // Unreachable in practice (getrandom blocks until seeded); a fixed token would be guessable.
        for (size_t i = 0; i < sizeof b; i++) b[i] = (unsigned char)(rand() ^ (int)i);
    }
    for (int i = 0; i < 16; i++) sprintf(out + 2 * i, "%02x", b[i]);
}

static int run_function_tests(CodeState *st, int slot, const char **units, int nunits, const char **tests,
                              int ntests, Outcome *o) {
    char tok[33];
    make_token(tok);
    SandboxFile files[1 + 8 + 64];
    char names[8 + 64][8];
    int nf = 0;
    files[nf++] = st->harness_pyc ? (SandboxFile){"harness.pyc", st->harness_pyc, st->harness_pyc_len}
                                  : (SandboxFile){"harness.py", HARNESS, sizeof HARNESS - 1};
    for (int i = 0; i < nunits; i++) {
        snprintf(names[nf - 1], sizeof names[0], "u%d", i);
        files[nf] = (SandboxFile){names[nf - 1], units[i], strlen(units[i])};
        nf++;
    }
    for (int i = 0; i < ntests; i++) {
        snprintf(names[nf - 1], sizeof names[0], "t%d", i);
        files[nf] = (SandboxFile){names[nf - 1], tests[i], strlen(tests[i])};
        nf++;
    }
    char a_units[12], a_tests[12];
    snprintf(a_units, sizeof a_units, "%d", nunits);
    snprintf(a_tests, sizeof a_tests, "%d", ntests);
    const char *harness = st->harness_pyc ? "../h/harness.pyc" : "../h/harness.py";
    const char *argv[] = {PYTHON, "-I", st->site ? "-B" : "-S", harness, a_units, a_tests,
                          st->partial ? "0" : "1", NULL};
    SandboxJob job = {.argv = argv, .files = files, .nfiles = nf, .secret = tok};
    SandboxResult r;
    TRY(sandbox_run(st->sb, slot, &job, &r));
    // Count the tests vouched for by the token; every other line is the program's word only.
    bool ok[64] = {0}, done = false;
    const char *reported = NULL;
    for (char *line = r.report; line && *line;) {
        char *nl = strchr(line, '\n');
        int i;
        char kind[24];
        if (strncmp(line, "ok ", 3) == 0) {
            char *sp;
            i = (int)strtol(line + 3, &sp, 10);
            if (*sp == ' ' && i >= 0 && i < ntests && token_at(sp + 1, tok, 32)) ok[i] = true;
        } else if (strncmp(line, "done ", 5) == 0) {
            done |= token_at(line + 5, tok, 32);
        } else if (!reported && sscanf(line, "fail %d %23s", &i, kind) == 2) {
            reported = !strcmp(kind, "memory") ? "memory" : !strcmp(kind, "failed") ? "failed" : "runtime_error";
        }
        line = nl ? nl + 1 : NULL;
    }
    o->total = ntests;
    o->passed = 0;
    for (int i = 0; i < ntests; i++) o->passed += ok[i];
    o->verdict = done && o->passed == ntests ? "passed" : failure_kind(&r, reported);
    o->seconds = r.wall_s;
    sandbox_result_free(&r);
    return 0;
}

// Token-by-token comparison of program output and expected output (any whitespace separates tokens).
static bool same_tokens(const char *a, const char *b) {
    for (;;) {
        while (isspace((unsigned char)*a)) a++;
        while (isspace((unsigned char)*b)) b++;
        if (!*a || !*b) return !*a && !*b;
        while (*a && *b && !isspace((unsigned char)*a) && *a == *b) a++, b++;
        bool ea = !*a || isspace((unsigned char)*a), eb = !*b || isspace((unsigned char)*b);
        if (!ea || !eb) return false;
    }
}

static int run_stdio_tests(CodeState *st, int slot, const char *program, const cJSON *inputs,
                           const cJSON *outputs, Outcome *o) {
    SandboxFile file = {"main.py", program, strlen(program)};
    const char *argv[] = {PYTHON, "-I", st->site ? "-B" : "-S", "../h/main.py", NULL};
    o->total = cJSON_GetArraySize(inputs);
    o->passed = 0;
    o->seconds = 0;
    o->verdict = NULL;
    for (int i = 0; i < o->total; i++) {
        const cJSON *in = cJSON_GetArrayItem(inputs, i), *want = cJSON_GetArrayItem(outputs, i);
        SandboxJob job = {.argv = argv, .files = &file, .nfiles = 1, .stdin_data = in->valuestring,
                          .stdin_len = strlen(in->valuestring)};
        SandboxResult r;
        TRY(sandbox_run(st->sb, slot, &job, &r));
        o->seconds += r.wall_s;
        bool pass = !r.timed_out && !r.output_limit && r.exit_code == 0 && same_tokens(r.out, want->valuestring);
        if (pass) o->passed++;
        else if (!o->verdict) o->verdict = failure_kind(&r, NULL);
        sandbox_result_free(&r);
        if (!pass && !st->partial) break;
    }
    if (!o->verdict) o->verdict = "passed";
    return 0;
}

static char *concat(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    char *s = grpo_malloc(na + nb + 2, "program text");
    if (!s) return NULL;
    memcpy(s, a, na);
    s[na] = '\n';
    memcpy(s + na + 1, b, nb + 1);
    return s;
}

// Does `program` define `def NAME(` at the start of a line (at any indentation)?
static bool defines(const char *program, const char *name) {
    size_t n = strlen(name);
    for (const char *p = program; (p = strstr(p, "def ")) != NULL; p += 4) {
        const char *q = p;
        while (q > program && (q[-1] == ' ' || q[-1] == '\t')) q--;
        if (q != program && q[-1] != '\n') continue;
        const char *s = p + 4;
        while (*s == ' ') s++;
        if (strncmp(s, name, n) == 0 && (s[n] == '(' || s[n] == ' ')) return true;
    }
    return false;
}

#define MAX_TESTS 64

static int check_code_task(const Reward *self, const Task *t) {
    const cJSON *tl = meta_list(t, "test_list"), *in = meta_list(t, "inputs"), *out = meta_list(t, "outputs");
    if (meta_str(t, "test") && meta_str(t, "entry_point")) {
        CHECK(meta_str(t, "prompt") || t->prompt, "code task %s: HumanEval form needs \"prompt\"",
              t->id ? t->id : "?");
        return 0;
    }
    if (tl) {
        int n = cJSON_GetArraySize(tl);
        CHECK(n >= 1 && n <= MAX_TESTS, "code task %s: \"test_list\" needs 1 to %d asserts, has %d",
              t->id ? t->id : "?", MAX_TESTS, n);
        for (int i = 0; i < n; i++)
            CHECK(cJSON_IsString(cJSON_GetArrayItem(tl, i)), "code task %s: test_list[%d] is not a string",
                  t->id ? t->id : "?", i);
        return 0;
    }
    if (in || out) {
        CHECK(in && out && cJSON_GetArraySize(in) == cJSON_GetArraySize(out) && cJSON_GetArraySize(in) > 0,
              "code task %s: \"inputs\" and \"outputs\" must be non-empty lists of the same length",
              t->id ? t->id : "?");
        for (int i = 0; i < cJSON_GetArraySize(in); i++)
            CHECK(cJSON_IsString(cJSON_GetArrayItem(in, i)) && cJSON_IsString(cJSON_GetArrayItem(out, i)),
                  "code task %s: inputs[%d]/outputs[%d] must be strings", t->id ? t->id : "?", i, i);
        return 0;
    }
    return ERR("code task %s has no tests: expected \"test\" + \"entry_point\" (HumanEval), \"test_list\" "
               "(MBPP) or \"inputs\" + \"outputs\" (stdin/stdout)", t->id ? t->id : "?");
}

static void score_one(CodeState *st, int slot, const Task *t, const char *completion, float *reward,
                      RewardDetail *d) {
    Outcome o = {0, 0, "sandbox_error", 0};
    char *prog = NULL, *joined = NULL;
    int rc = -1;
    if (check_code_task(NULL, t) == 0 && (prog = code_extract(completion)) != NULL) {
        const cJSON *tl = meta_list(t, "test_list");
        const char *test = meta_str(t, "test"), *entry = meta_str(t, "entry_point");
        if (test && entry) {
            const char *prompt = meta_str(t, "prompt") ? meta_str(t, "prompt") : t->prompt;
            char call[300];
            snprintf(call, sizeof call, "\ncheck(%s)\n", entry);
            char *full_test = concat(test, call);
            if (defines(prog, entry)) {
                const char *units[] = {prompt, prog};
                if (full_test) rc = run_function_tests(st, slot, units, 2, (const char **)&full_test, 1, &o);
            } else if ((joined = concat(prompt, prog)) != NULL && full_test) {
                const char *units[] = {joined};
                rc = run_function_tests(st, slot, units, 1, (const char **)&full_test, 1, &o);
            }
            free(full_test);
        } else if (tl) {
            // The setup may use what the program defines (MBPP's tree tasks build their Node objects).
            const char *setup = meta_str(t, "test_setup_code");
            const char *units[] = {prog, setup ? setup : ""};
            const char *tests[MAX_TESTS];
            int n = cJSON_GetArraySize(tl);
            for (int i = 0; i < n; i++) tests[i] = cJSON_GetArrayItem(tl, i)->valuestring;
            rc = run_function_tests(st, slot, units, 2, tests, n, &o);
        } else {
            rc = run_stdio_tests(st, slot, prog, meta_list(t, "inputs"), meta_list(t, "outputs"), &o);
        }
    }
    if (rc != 0) {
        // The sandbox (or the task) failed, not the program: reported, never rewarded.
        o = (Outcome){0, o.total, "sandbox_error", o.seconds};
        fprintf(stderr, "code reward: %s: %s\n", t->id ? t->id : "task", grpo_error());
    }
    *reward = o.total == 0 ? 0.0f
              : st->partial ? (float)o.passed / (float)o.total
                            : (strcmp(o.verdict, "passed") == 0 ? 1.0f : 0.0f);
    if (d) {
        memset(d, 0, sizeof *d);
        snprintf(d->extracted, sizeof d->extracted, "%s", prog ? prog : "");
        snprintf(d->verdict, sizeof d->verdict, "%s", o.verdict);
        const char *names[] = {"passed", "total", "seconds"};
        float vals[] = {(float)o.passed, (float)o.total, (float)o.seconds};
        for (int i = 0; i < 3; i++) {
            snprintf(d->parts[i].name, sizeof d->parts[i].name, "%s", names[i]);
            d->parts[i].value = vals[i];
        }
        d->nparts = 3;
    }
    free(prog);
    free(joined);
}

// ---------------------------------------------------------------------------------------------------
// The pool: worker k owns sandbox slot k and takes jobs from one queue, in submission order.

static void code_destroy(Reward *self);

typedef struct { CodeState *st; int slot; } WorkerArg;

static void *worker_main(void *p) {
    WorkerArg wa = *(WorkerArg *)p;
    free(p);
    CodeState *st = wa.st;
    pthread_mutex_lock(&st->mu);
    for (;;) {
        while (!st->head && !st->stop) pthread_cond_wait(&st->work, &st->mu);
        if (st->stop) break;
        Job *j = st->head;
        st->head = j->next;
        if (!st->head) st->tail = NULL;
        pthread_mutex_unlock(&st->mu);
        score_one(st, wa.slot, j->task, j->completion, j->reward, j->detail);
        pthread_mutex_lock(&st->mu);
        if (--j->batch->pending == 0) pthread_cond_broadcast(&j->batch->done);
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

CodeBatch *code_reward_submit(const Reward *r, const Task *const *tasks, const char *const *completions, int n,
                              float *rewards, RewardDetail *details) {
    if (r->destroy != code_destroy) {
        ERR("code_reward_submit: reward \"%s\" is not a code reward", r->name);
        return NULL;
    }
    CodeState *st = r->state;
    if (n < 0) n = 0;
    CodeBatch *b = grpo_calloc(1, sizeof *b + (size_t)n * sizeof(Job), "code reward batch");
    if (!b) return NULL;
    b->st = st;
    b->pending = n;
    pthread_cond_init(&b->done, NULL);
    for (int i = 0; i < n; i++)
        b->jobs[i] = (Job){tasks[i], completions[i], &rewards[i], details ? &details[i] : NULL, b,
                           i + 1 < n ? &b->jobs[i + 1] : NULL};
    if (n == 0) return b;
    pthread_mutex_lock(&st->mu);
    if (st->tail) st->tail->next = &b->jobs[0];
    else st->head = &b->jobs[0];
    st->tail = &b->jobs[n - 1];
    pthread_cond_broadcast(&st->work);
    pthread_mutex_unlock(&st->mu);
    return b;
}

bool code_reward_done(CodeBatch *b) {
    pthread_mutex_lock(&b->st->mu);
    bool done = b->pending == 0;
    pthread_mutex_unlock(&b->st->mu);
    return done;
}

void code_reward_wait(CodeBatch *b) {
    pthread_mutex_lock(&b->st->mu);
    while (b->pending > 0) pthread_cond_wait(&b->done, &b->st->mu);
    pthread_mutex_unlock(&b->st->mu);
    pthread_cond_destroy(&b->done);
    free(b);
}

static void code_score_batch(const Reward *self, const Task *const *tasks, const char *const *completions, int n,
                             float *rewards, RewardDetail *details) {
    CodeBatch *b = code_reward_submit(self, tasks, completions, n, rewards, details);
    if (b) {
        code_reward_wait(b);
        return;
    }
    // Out of memory: nothing can run, and nothing may be rewarded.
    for (int i = 0; i < n; i++) {
        rewards[i] = 0;
        if (details) { memset(&details[i], 0, sizeof details[i]); snprintf(details[i].verdict, 32, "sandbox_error"); }
    }
}

static float code_score(const Reward *self, const Task *task, const char *completion, RewardDetail *out) {
    float r = 0;
    code_score_batch(self, &task, &completion, 1, &r, out);
    return r;
}

static void code_destroy(Reward *self) {
    CodeState *st = self->state;
    if (!st) return;
    pthread_mutex_lock(&st->mu);
    st->stop = true;
    pthread_cond_broadcast(&st->work);
    pthread_mutex_unlock(&st->mu);
    for (int i = 0; i < st->nworkers; i++) pthread_join(st->threads[i], NULL);
    free(st->threads);
    sandbox_destroy(st->sb);
    free(st->harness_pyc);
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->work);
    free(st);
    self->state = NULL;
}

Sandbox *reward_code_sandbox(const Reward *r) {
    const CodeState *st = r->state;
    return st->sb;
}

// A failure leaves the runs on the harness source: slower, the same results.
static void compile_harness(CodeState *st) {
    SandboxFile src = {"harness.py", HARNESS, sizeof HARNESS - 1};
    const char *argv[] = {PYTHON, "-I", "-S", "-c", COMPILE_HARNESS, NULL};
    SandboxJob job = {.argv = argv, .files = &src, .nfiles = 1};
    SandboxResult r;
    if (sandbox_run(st->sb, 0, &job, &r) != 0) return;
    if (r.exit_code == 0 && !r.output_limit && r.out_len > 16) {
        st->harness_pyc = r.out;
        st->harness_pyc_len = r.out_len;
        r.out = NULL;
    }
    sandbox_result_free(&r);
}

static int opt_num(const cJSON *options, const char *key, double lo, double hi, double *v) {
    const cJSON *o = options ? cJSON_GetObjectItemCaseSensitive(options, key) : NULL;
    if (!o) return 0;
    CHECK(cJSON_IsNumber(o) && o->valuedouble >= lo && o->valuedouble <= hi, "option \"%s\" must be a number in "
          "[%g, %g]", key, lo, hi);
    *v = o->valuedouble;
    return 0;
}

static int opt_bool(const cJSON *options, const char *key, bool *v) {
    const cJSON *o = options ? cJSON_GetObjectItemCaseSensitive(options, key) : NULL;
    if (!o) return 0;
    CHECK(cJSON_IsBool(o), "option \"%s\" must be true or false", key);
    *v = cJSON_IsTrue(o);
    return 0;
}

int reward_code_create(Reward *out, const cJSON *options) {
    static const char *const keys[] = {"partial", "timeout_s", "cpu_s", "memory_mb", "nproc", "output_kb",
                                       "workers", "site", "allow_weak_isolation", NULL};
    TRY(reward_check_keys(options, keys));
    SandboxLimits lim = sandbox_default_limits();
    double timeout = lim.timeout_s, cpu = lim.cpu_s, mem = (double)lim.memory_mb, nproc = lim.nproc;
    double outkb = (double)lim.output_kb, workers = 0;
    bool partial = false, site = false, weak = false;
    TRY(opt_bool(options, "partial", &partial));
    TRY(opt_bool(options, "site", &site));
    TRY(opt_bool(options, "allow_weak_isolation", &weak));
    TRY(opt_num(options, "timeout_s", 0.1, 3600, &timeout));
    TRY(opt_num(options, "cpu_s", 1, 3600, &cpu));
    TRY(opt_num(options, "memory_mb", 64, 1 << 20, &mem));
    TRY(opt_num(options, "nproc", 1, 4096, &nproc));
    TRY(opt_num(options, "output_kb", 1, 1 << 20, &outkb));
    TRY(opt_num(options, "workers", 0, 1024, &workers));
    if (workers == 0) workers = (double)sysconf(_SC_NPROCESSORS_ONLN);
    if (workers < 1) workers = 1;
    lim.timeout_s = timeout;
    lim.cpu_s = (int)cpu;
    lim.memory_mb = (long)mem;
    lim.nproc = (int)nproc;
    lim.output_kb = (long)outkb;
    lim.allow_weak = weak;
    lim.slots = (int)workers;
    CodeState *st = grpo_calloc(1, sizeof *st, "code reward");
    if (!st) return -1;
    st->partial = partial;
    st->site = site;
    st->sb = sandbox_create(&lim);
    st->threads = grpo_calloc((size_t)lim.slots, sizeof *st->threads, "code reward workers");
    if (!st->sb || !st->threads) {
        sandbox_destroy(st->sb);
        free(st->threads);
        free(st);
        return -1;
    }
    compile_harness(st);
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->work, NULL);
    out->state = st;
    out->score = code_score;
    out->score_batch = code_score_batch;
    out->destroy = code_destroy;
    out->check_task = check_code_task;
    for (int i = 0; i < lim.slots; i++) {
        WorkerArg *wa = malloc(sizeof *wa);
        if (wa) *wa = (WorkerArg){st, i};
        if (!wa || pthread_create(&st->threads[i], NULL, worker_main, wa) != 0) {
            free(wa);
            code_destroy(out);
            return ERR("starting code reward worker %d failed", i);
        }
        st->nworkers = i + 1;
    }
    return 0;
}
