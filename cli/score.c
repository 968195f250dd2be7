// grpo score: scores the completions of a JSONL file with any registered reward (or a weighted list of
// them), one JSON line out per line in, and a summary on stderr.
#include "cli/cli.h"
#include "common/error.h"
#include "common/fileio.h"
#include "rewards/reward.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *USAGE =
    "usage: grpo score (--reward NAME | --config FILE) --input FILE.jsonl [--batch N]\n"
    "\n"
    "Scores each line's `completion` and prints {\"reward\", \"extracted\", \"verdict\", \"parts\"} per line;\n"
    "a summary (count, mean reward, verdict counts and rates, lines/s) goes to stderr.\n"
    "  --reward NAME   a registered reward: %s\n"
    "  --config FILE   JSON: the reward's options ({\"name\": .., ...}), or a run config's reward list\n"
    "                  [{\"name\": .., \"weight\": .., ...}, ...] scored as a weighted sum with one part\n"
    "                  per reward\n"
    "  --input FILE    JSONL (- for stdin); each line an object with \"completion\" and what the reward\n"
    "                  reads: \"answer\" (math), \"nums\" and \"target\" (countdown), tests (code); the\n"
    "                  whole object is the task's meta, \"prompt\" its prompt\n"
    "  --batch N       completions scored per call (default 64; the code reward runs a batch in parallel)\n";

static void usage(FILE *f) { cli_usage_with_rewards(f, USAGE); }

// What scores a batch: one reward with its own parts, or a RewardSet with one part per component.
typedef struct {
    Reward one;
    RewardSet set;
    int is_set;
} Scorer;

static int scorer_check(const Scorer *s, const Task *t) {
    if (s->is_set) return reward_set_check_task(&s->set, t);
    return s->one.check_task ? s->one.check_task(&s->one, t) : 0;
}

static int scorer_run(const Scorer *s, const Task *const *tasks, const char *const *comps, int n, float *r,
                      RewardDetail *d) {
    if (s->is_set) return reward_set_score_batch(&s->set, tasks, comps, n, r, NULL, d);
    memset(d, 0, sizeof *d * (size_t)n);
    reward_score_batch(&s->one, tasks, comps, n, r, d);
    return 0;
}

static int scorer_open(Scorer *s, const char *name, const char *config) {
    memset(s, 0, sizeof *s);
    cJSON *cfg = NULL;
    if (config) {
        char *text = read_file(config, NULL);
        if (!text) return -1;
        cfg = cJSON_Parse(text);
        free(text);
        CHECK(cfg && (cJSON_IsObject(cfg) || cJSON_IsArray(cfg)),
              "%s: expected a JSON object (reward options) or array (reward list)", config);
    }
    int rc;
    if (cfg && cJSON_IsArray(cfg)) {
        rc = name ? ERR("%s holds a reward list; leave out --reward %s", config, name)
                  : reward_set_create(&s->set, cfg);
        s->is_set = 1;
    } else {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(cfg, "name");
        if (!name && cJSON_IsString(n)) name = n->valuestring;
        rc = name ? reward_create(&s->one, name, cfg) : ERR("no reward: give --reward NAME or a config with \"name\"");
    }
    if (rc != 0 && config) grpo_error_context("%s", config);
    cJSON_Delete(cfg);
    return rc;
}

static void scorer_close(Scorer *s) {
    if (s->is_set) reward_set_destroy(&s->set);
    else reward_destroy(&s->one);
}

typedef struct {
    Task *task;
    const Task **ptr;  // (n) &task[i], the form the rewards take
    char **completion;
    int n;
} Batch;

static void batch_clear(Batch *b) {
    for (int i = 0; i < b->n; i++) {
        free(b->task[i].id), free(b->task[i].prompt), free(b->task[i].answer);
        cJSON_Delete(b->task[i].meta);
        free(b->completion[i]);
    }
    b->n = 0;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

// Turns line `lineno` into the batch's next task; errors name the line and the field.
static int read_task(Batch *b, const char *line, size_t len, long lineno, const Scorer *s) {
    cJSON *o = cJSON_ParseWithLength(line, len);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return ERR("line %ld: not a JSON object", lineno);
    }
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "completion");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "answer");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "prompt");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    const char *bad = !cJSON_IsString(c)                                       ? "\"completion\" must be a string"
                      : a && !cJSON_IsNull(a) && !cJSON_IsString(a) && !cJSON_IsNumber(a)
                          ? "\"answer\" must be a string or a number"
                      : p && !cJSON_IsString(p) ? "\"prompt\" must be a string"
                                                : NULL;
    if (bad) {
        cJSON_Delete(o);
        return ERR("line %ld: field %s", lineno, bad);
    }
    Task *t = &b->task[b->n];
    char idbuf[32];
    snprintf(idbuf, sizeof idbuf, "line %ld", lineno);
    t->id = strdup(cJSON_IsString(id) ? id->valuestring : idbuf);
    t->prompt = dup_or_null(p ? p->valuestring : NULL);
    t->answer = cJSON_IsString(a) ? strdup(a->valuestring) : cJSON_IsNumber(a) ? cJSON_PrintUnformatted(a) : NULL;
    t->meta = o;
    b->completion[b->n] = strdup(c->valuestring);
    b->n++;
    if (scorer_check(s, t) == 0) return 0;
    grpo_error_context("line %ld", lineno);
    b->n--;
    free(t->id), free(t->prompt), free(t->answer), free(b->completion[b->n]);
    cJSON_Delete(t->meta);
    return -1;
}

// The rewards as JSON numbers without float noise (0.1f prints as 0.1).
static double tidy(float v) { return round((double)v * 1e6) / 1e6; }

typedef struct {
    long n;
    double sum;
    int nverdicts;
    struct { char name[32]; long count; } verdict[32];
} Summary;

static void tally(Summary *s, float r, const char *verdict) {
    s->n++, s->sum += r;
    int k = 0;
    while (k < s->nverdicts && strcmp(s->verdict[k].name, verdict)) k++;
    if (k == s->nverdicts) {
        if (k == 32) return;
        snprintf(s->verdict[k].name, sizeof s->verdict[k].name, "%s", verdict);
        s->nverdicts++;
    }
    s->verdict[k].count++;
}

static int flush(Batch *b, const Scorer *s, float *r, RewardDetail *d, Summary *sum) {
    if (b->n == 0) return 0;
    for (int i = 0; i < b->n; i++) b->ptr[i] = &b->task[i];
    TRY(scorer_run(s, b->ptr, (const char *const *)b->completion, b->n, r, d));
    for (int i = 0; i < b->n; i++) {
        cJSON *o = cJSON_CreateObject(), *parts = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "reward", tidy(r[i]));
        cJSON_AddStringToObject(o, "extracted", d[i].extracted);
        cJSON_AddStringToObject(o, "verdict", d[i].verdict);
        for (int k = 0; k < d[i].nparts && k < REWARD_MAX_PARTS; k++)
            cJSON_AddNumberToObject(parts, d[i].parts[k].name, tidy(d[i].parts[k].value));
        cJSON_AddItemToObject(o, "parts", parts);
        char *line = cJSON_PrintUnformatted(o);
        if (line) puts(line);
        free(line);
        cJSON_Delete(o);
        tally(sum, r[i], d[i].verdict[0] ? d[i].verdict : "none");
    }
    batch_clear(b);
    return 0;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int score_file(const Scorer *s, FILE *in, int bsize, Summary *sum) {
    Batch b = {grpo_calloc((size_t)bsize, sizeof(Task), "score batch"),
               grpo_calloc((size_t)bsize, sizeof(Task *), "score batch"),
               grpo_calloc((size_t)bsize, sizeof(char *), "score batch"), 0};
    float *r = grpo_calloc((size_t)bsize, sizeof(float), "score batch");
    RewardDetail *d = grpo_calloc((size_t)bsize, sizeof(RewardDetail), "score batch");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    int rc = b.task && b.ptr && b.completion && r && d ? 0 : -1;
    while (rc == 0 && (len = getline(&line, &cap, in)) >= 0) {
        lineno++;
        if (strspn(line, " \t\r\n") == (size_t)len) continue;
        rc = read_task(&b, line, (size_t)len, lineno, s);
        // the lines before a bad one are still scored and printed; flush leaves the error message alone
        if (rc != 0) flush(&b, s, r, d, sum);
        else if (b.n == bsize) rc = flush(&b, s, r, d, sum);
    }
    if (rc == 0 && ferror(in)) rc = ERR("reading the input failed after line %ld", lineno);
    if (rc == 0) rc = flush(&b, s, r, d, sum);
    batch_clear(&b);
    free(line), free(b.task), free(b.ptr), free(b.completion), free(r), free(d);
    return rc;
}

int cmd_score(int argc, char **argv) {
    const char *name = NULL, *config = NULL, *input = NULL;
    long bsize = 64;
    bool bad = false;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            usage(stdout);
            return 0;
        }
        if (cli_str(argc, argv, &i, "--reward", &name, &bad) || cli_str(argc, argv, &i, "--config", &config, &bad) ||
            cli_str(argc, argv, &i, "--input", &input, &bad) || cli_int(argc, argv, &i, "--batch", &bsize, &bad))
            continue;
        fprintf(stderr, "grpo score: unknown option or argument '%s'\n\n", argv[i]);
        usage(stderr);
        return 2;
    }
    if (bad || !input || (!name && !config) || bsize < 1 || bsize > 1 << 16) {
        if (!bad) fprintf(stderr, "grpo score: %s\n\n", !input ? "--input is required"
                                                     : bsize < 1 || bsize > 1 << 16 ? "--batch must be 1..65536"
                                                                                    : "give --reward or --config");
        usage(stderr);
        return 2;
    }
    Scorer s;
    if (scorer_open(&s, name, config) != 0) return cli_fail("score");
    FILE *in = strcmp(input, "-") ? fopen(input, "r") : stdin;
    if (!in) {
        ERR("cannot open %s for reading", input);
        scorer_close(&s);
        return cli_fail("score");
    }
    Summary sum = {0};
    double t0 = now();
    int rc = score_file(&s, in, (int)bsize, &sum);
    double dt = now() - t0;
    if (in != stdin) fclose(in);
    scorer_close(&s);
    fflush(stdout);
    if (rc != 0) return cli_fail("score");
    fprintf(stderr, "score: %ld lines, mean reward %.4f", sum.n, sum.n ? sum.sum / sum.n : 0.0);
    for (int k = 0; k < sum.nverdicts; k++)
        fprintf(stderr, "%s %s %ld (%.1f%%)", k ? "," : ";", sum.verdict[k].name, sum.verdict[k].count,
                100.0 * sum.verdict[k].count / sum.n);
    fprintf(stderr, "; %.0f lines/s\n", dt > 0 ? sum.n / dt : 0.0);
    return 0;
}
