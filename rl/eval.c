#define _GNU_SOURCE // qsort_r
#include "rl/eval.h"
#include "common/error.h"
#include "rl/run.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

EvalOptions eval_defaults(void) {
    EvalOptions o = {0};
    o.rollout = rollout_defaults();
    o.rollout.group_size = 1;
    o.rollout.max_new_tokens = 256;
    o.rollout.sampler.temperature = 0.6f;
    o.rollout.sampler.top_p = 0.95f;
    o.rollout.max_batch = 64;
    o.rollout.token_budget = 0;
    o.tmpl = "raw";
    o.seed = 1;
    return o;
}

double eval_pass_at_k(int n, int c, int k) {
    if (n - c < k) return 1.0;
    double miss = 1.0; // C(n-c, k) / C(n, k) = prod_{i=n-c+1..n} (i - k) / i
    for (int i = n - c + 1; i <= n; i++) miss *= 1.0 - (double)k / i;
    return 1.0 - miss;
}

static int by_answer(const void *a, const void *b, void *ctx) {
    const char *const *ans = ctx;
    int i = *(const int *)a, j = *(const int *)b, c = strcmp(ans[i], ans[j]);
    return c ? c : (i > j) - (i < j);
}

int eval_majority(const char *const *answers, int n, int *scratch) {
    int m = 0;
    for (int i = 0; i < n; i++)
        if (answers[i] && answers[i][0]) scratch[m++] = i;
    // equal answers become runs, each in sample order, so a run's first entry is its first sample
    qsort_r(scratch, (size_t)m, sizeof *scratch, by_answer, (void *)answers);
    int best = -1, best_count = 0;
    for (int s = 0, e; s < m; s = e) {
        for (e = s + 1; e < m && !strcmp(answers[scratch[e]], answers[scratch[s]]); e++) {}
        if (e - s > best_count || (e - s == best_count && scratch[s] < best)) best = scratch[s], best_count = e - s;
    }
    return best;
}

bool eval_verdict_correct(const char *verdict) {
    return !strcmp(verdict, "correct") || !strcmp(verdict, "passed") || !strcmp(verdict, "match");
}

// ------------------------------------------------------------------------------------------------
// Progress on stderr, in tasks: a bar redrawn in place on a terminal; in a log, a line now and then.

typedef struct {
    bool on, tty;
    const char *label;
    int total, k;
    long generated;          // samples finished, scored or not
    long scored, correct;
    double t0, last;
} Progress;

static Progress progress_start(const EvalOptions *opt, int total, int k) {
    Progress p = {.on = opt->progress, .tty = opt->progress && isatty(STDERR_FILENO), .total = total, .k = k,
                  .label = opt->label ? opt->label : "eval"};
    p.t0 = p.last = run_now();
    return p;
}

static void fmt_duration(char *out, size_t cap, double s) {
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(out, cap, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(out, cap, "%ldm%02lds", t / 60, t % 60);
    else snprintf(out, cap, "%lds", t);
}

static void progress_show(Progress *p, bool final) {
    double t = run_now();
    if (!p->on || (!final && t - p->last < (p->tty ? 0.2 : EVAL_PLAIN_EVERY_S))) return;
    p->last = t;
    long done = p->generated / p->k;
    double dt = t - p->t0, rate = dt > 0 ? done / dt : 0;
    char when[32] = "?", acc[32] = "";
    if (final) fmt_duration(when, sizeof when, dt);
    else if (rate > 0) fmt_duration(when, sizeof when, (p->total - done) / rate);
    if (p->scored) snprintf(acc, sizeof acc, ", pass@1 %.1f%%", 100.0 * p->correct / p->scored);
    if (p->tty) {
        enum { W = 30 };
        char bar[W + 1];
        int fill = (int)(W * done / p->total);
        memset(bar, '#', (size_t)fill);
        memset(bar + fill, '.', (size_t)(W - fill));
        bar[W] = 0;
        fprintf(stderr, "\r%s [%s] %ld/%d tasks, %.2f tasks/s, %s %s%s\033[K%s", p->label, bar, done, p->total, rate,
                final ? "in" : "ETA", when, acc, final ? "\n" : "");
    } else
        fprintf(stderr, "%s: %ld/%d tasks (%.0f%%), %.2f tasks/s, %s %s%s\n", p->label, done, p->total,
                100.0 * done / p->total, rate, final ? "in" : "ETA", when, acc);
    fflush(stderr);
}

// ------------------------------------------------------------------------------------------------

static int check_tasks(const Task *tasks, int n, int k, const RewardSet *rw) {
    CHECK(n >= 1, "no tasks to evaluate");
    CHECK(k >= 1 && k <= EVAL_MAX_K, "k %d: expected 1 to %d samples per task", k, EVAL_MAX_K);
    for (int i = 0; i < n; i++) {
        if (!tasks[i].prompt) return ERR("task %s has no prompt", tasks[i].id ? tasks[i].id : "?");
        if (reward_set_check_task(rw, &tasks[i]) != 0)
            return grpo_error_context("task %s", tasks[i].id ? tasks[i].id : "?");
    }
    return 0;
}

static int chunk_tasks(int k) { return EVAL_CHUNK_SAMPLES / k > 1 ? EVAL_CHUNK_SAMPLES / k : 1; }

// The scratch of one chunk: its completions and their scores.
typedef struct {
    Completion *comp;        // (cap)
    const Task **task;       // (cap)
    const char **text;       // (cap)
    float *reward;           // (cap)
    RewardDetail *detail;    // (cap)
    const char **answer;     // (k)
    int *scratch;            // (k)
} Chunk;

static void chunk_free(Chunk *c) {
    free(c->comp), free(c->task), free(c->text), free(c->reward), free(c->detail), free(c->answer), free(c->scratch);
}

static int chunk_alloc(Chunk *c, size_t cap, int k) {
    memset(c, 0, sizeof *c);
    c->comp = grpo_calloc(cap, sizeof *c->comp, "eval completions");
    c->task = grpo_calloc(cap, sizeof *c->task, "eval tasks");
    c->text = grpo_calloc(cap, sizeof *c->text, "eval texts");
    c->reward = grpo_calloc(cap, sizeof *c->reward, "eval rewards");
    c->detail = grpo_calloc(cap, sizeof *c->detail, "eval reward details");
    c->answer = grpo_calloc((size_t)k, sizeof *c->answer, "eval answers");
    c->scratch = grpo_calloc((size_t)k, sizeof *c->scratch, "eval majority vote");
    if (c->comp && c->task && c->text && c->reward && c->detail && c->answer && c->scratch) return 0;
    chunk_free(c);
    return -1;
}

// Running sums over the scored tasks.
typedef struct {
    double pass[EVAL_MAX_PASS], maj, reward;
} Sums;

// Scores one generated chunk (tasks[first .. first + count)) into res and the sums.
static int score_chunk(EvalResult *res, Sums *sum, Chunk *c, const Task *tasks, int first, int count,
                       const RewardSet *rw, const EvalOptions *opt, Progress *pg) {
    int k = res->k, N = count * k;
    for (int i = 0; i < N; i++) {
        c->task[i] = &tasks[first + i / k];
        c->text[i] = c->comp[i].text ? c->comp[i].text : "";
    }
    TRY(reward_set_score_batch(rw, c->task, c->text, N, c->reward, NULL, c->detail));
    for (int j = 0; j < count; j++) {
        int correct = 0;
        for (int g = 0; g < k; g++) {
            int i = j * k + g;
            const Completion *cp = &c->comp[i];
            bool ok = eval_verdict_correct(c->detail[i].verdict);
            correct += ok;
            res->n_answered += c->detail[i].extracted[0] != 0;
            res->n_truncated += cp->finish == FINISH_LENGTH;
            res->n_tokens += cp->n;
            sum->reward += c->reward[i];
            c->answer[g] = c->detail[i].extracted;
            if (!opt->on_sample) continue;
            EvalSample s = {c->task[i], first + j, g, c->text[i], cp->n, cp->finish, c->reward[i], ok, &c->detail[i]};
            TRY(opt->on_sample(opt->on_sample_ctx, &s));
        }
        for (int p = 0; p < res->n_pass; p++) sum->pass[p] += eval_pass_at_k(k, correct, res->pass_j[p]);
        int w = eval_majority(c->answer, k, c->scratch);
        sum->maj += w >= 0 && eval_verdict_correct(c->detail[j * k + w].verdict);
        res->n_correct += correct;
        res->n_solved += correct > 0;
        res->n_samples += k;
        pg->correct += correct;
    }
    pg->scored += N;
    pg->generated = (long)(first + count) * k;
    progress_show(pg, false);
    return 0;
}

static int eval_loop(EvalResult *res, EvalSource src, void *ctx, const Task *tasks, int n, const RewardSet *rw,
                     const EvalOptions *opt, Progress *pg) {
    int k = opt->rollout.group_size, chunk = chunk_tasks(k);
    memset(res, 0, sizeof *res);
    res->n_tasks = n, res->k = k;
    for (int j = 1; j < k; j *= 2) res->pass_j[res->n_pass++] = j;
    res->pass_j[res->n_pass++] = k;
    Chunk c;
    TRY(chunk_alloc(&c, (size_t)(chunk < n ? chunk : n) * k, k));
    Sums sum = {0};
    double t0 = run_now();
    int rc = 0;
    for (int first = 0; rc == 0 && first < n; first += chunk) {
        int count = n - first < chunk ? n - first : chunk;
        rc = src(ctx, first, count, k, c.comp);
        if (rc == 0) rc = score_chunk(res, &sum, &c, tasks, first, count, rw, opt, pg);
        for (int i = 0; i < count * k; i++) completion_free(&c.comp[i]);
    }
    chunk_free(&c);
    TRY(rc);
    for (int p = 0; p < res->n_pass; p++) res->pass_at[p] = sum.pass[p] / n;
    res->maj = sum.maj / n;
    res->mean_reward = sum.reward / res->n_samples;
    res->seconds = run_now() - t0;
    progress_show(pg, true);
    return 0;
}

int eval_run_source(EvalResult *res, EvalSource src, void *ctx, const Task *tasks, int n, const RewardSet *rewards,
                    const EvalOptions *opt) {
    TRY(check_tasks(tasks, n, opt->rollout.group_size, rewards));
    Progress pg = progress_start(opt, n, opt->rollout.group_size);
    return eval_loop(res, src, ctx, tasks, n, rewards, opt, &pg);
}

// The rollout engine as the source, moving the progress bar as each sample finishes.
typedef struct {
    RolloutEngine *e;
    int **ids;               // (n) encoded prompts
    int *lens;               // (n)
    uint64_t seed;
    Progress *pg;
} RolloutSource;

static void sample_done(void *ctx, const Completion *c) {
    RolloutSource *s = ctx;
    s->pg->generated++;
    progress_show(s->pg, false);
}

static int rollout_source(void *ctx, int first, int count, int k, Completion *out) {
    RolloutSource *s = ctx;
    uint64_t seed = first == 0 ? s->seed : rng_stream(s->seed, (uint64_t)first, 0);
    return rollout_generate(s->e, (const int *const *)s->ids + first, s->lens + first, count, seed, out, sample_done, s,
                            NULL);
}

int eval_run(EvalResult *res, Model *m, Tokenizer *tok, const Task *tasks, int n, const RewardSet *rewards,
             const EvalOptions *opt) {
    int k = opt->rollout.group_size;
    TRY(check_tasks(tasks, n, k, rewards));
    RolloutConfig rc = opt->rollout;
    RolloutSource s = {0};
    s.ids = grpo_calloc((size_t)n, sizeof *s.ids, "eval prompts");
    s.lens = grpo_calloc((size_t)n, sizeof *s.lens, "eval prompts");
    int status = s.ids && s.lens ? 0 : -1, longest = 0;
    for (int i = 0; status == 0 && i < n; i++) {
        TokIds t = {0};
        status = prompt_encode(&t, tok, opt->tmpl, opt->system, tasks[i].prompt);
        s.ids[i] = t.ids;
        s.lens[i] = t.n;
        if (status) grpo_error_context("task %s", tasks[i].id ? tasks[i].id : "?");
        else if (t.n > s.lens[longest]) longest = i;
    }
    if (status == 0 && s.lens[longest] + rc.max_new_tokens > m->cfg.max_position_embeddings)
        status = ERR("task %s: its prompt of %d tokens + max_new_tokens %d exceed the model's "
                     "max_position_embeddings %d", tasks[longest].id ? tasks[longest].id : "?", s.lens[longest],
                     rc.max_new_tokens, m->cfg.max_position_embeddings);
    if (status == 0 && rc.token_budget <= 0) { // room for a full batch, or for all of a small run at once
        long per_chunk = (long)(chunk_tasks(k) < n ? chunk_tasks(k) : n) * k;
        RolloutConfig all = rc;
        all.max_batch = per_chunk < rc.max_batch ? (int)per_chunk : rc.max_batch;
        rc.token_budget = rollout_full_budget(&all, s.lens[longest]);
    }
    if (status == 0 && !(s.e = rollout_create(m, tok, &rc, s.lens[longest]))) status = -1;
    if (status == 0) {
        Progress pg = progress_start(opt, n, k);
        s.seed = opt->seed;
        s.pg = &pg;
        status = eval_loop(res, rollout_source, &s, tasks, n, rewards, opt, &pg);
    }
    rollout_free(s.e);
    for (int i = 0; s.ids && i < n; i++) free(s.ids[i]);
    free(s.ids);
    free(s.lens);
    return status;
}

// ------------------------------------------------------------------------------------------------

static void add_metric(EvalMetric *out, int *m, const char *name, double value, bool rate) {
    snprintf(out[*m].name, sizeof out[*m].name, "%s", name);
    out[*m].value = value;
    out[(*m)++].rate = rate;
}

int eval_metrics(const EvalResult *r, EvalMetric *out) {
    int m = 0;
    char name[24];
    for (int p = 0; p < r->n_pass; p++) {
        snprintf(name, sizeof name, "pass@%d", r->pass_j[p]);
        add_metric(out, &m, name, r->pass_at[p], true);
    }
    snprintf(name, sizeof name, "maj@%d", r->k);
    add_metric(out, &m, name, r->maj, true);
    double ns = r->n_samples > 0 ? (double)r->n_samples : 1.0;
    add_metric(out, &m, "mean_reward", r->mean_reward, false);
    add_metric(out, &m, "answered", r->n_answered / ns, true);
    add_metric(out, &m, "mean_tokens", r->n_tokens / ns, false);
    add_metric(out, &m, "truncated", r->n_truncated / ns, true);
    return m;
}

int eval_store(Store *s, int64_t run_id, int64_t step, const char *dataset, const EvalResult *r) {
    EvalMetric met[EVAL_MAX_METRICS];
    EvalRecord rows[EVAL_MAX_METRICS];
    int m = eval_metrics(r, met);
    for (int i = 0; i < m; i++) rows[i] = (EvalRecord){dataset, met[i].name, met[i].value, r->n_tasks, 0};
    return store_write_evals(s, run_id, step, rows, m);
}
