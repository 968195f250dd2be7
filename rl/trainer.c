#include "rl/trainer.h"
#include "common/config_tree.h"
#include "common/error.h"
#include "common/fileio.h"
#include "datasets/dataset.h"
#include "policy/checkpoint.h"
#include "rewards/reward.h"
#include "rl/grpo.h"
#include "rl/run.h"
#include "rl/store.h"
#include "rollout/rollout.h"
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GRPO_VERSION "0.1"

cJSON *train_defaults(void) {
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "model", "");
    cJSON_AddNumberToObject(d, "init_seed", 1);
    cJSON_AddNumberToObject(d, "init_std", 0.02);
    cJSON *data = cJSON_AddObjectToObject(d, "data");
    run_data_add_defaults(data);
    cJSON_AddBoolToObject(data, "shuffle", 1);
    cJSON_AddNumberToObject(data, "heldout_frac", 0.0);
    cJSON_AddStringToObject(d, "template", "r1-zero");
    cJSON_AddStringToObject(d, "system", "");
    cJSON *rw = cJSON_AddArrayToObject(d, "rewards");
    cJSON *math = cJSON_CreateObject();
    cJSON_AddStringToObject(math, "name", "math");
    cJSON_AddItemToArray(rw, math);
    cJSON_AddNumberToObject(d, "steps", 100);
    cJSON_AddNumberToObject(d, "seed", 1);
    cJSON *ro = cJSON_AddObjectToObject(d, "rollout");
    cJSON_AddNumberToObject(ro, "prompts_per_step", 8);
    cJSON_AddNumberToObject(ro, "group_size", 8);
    run_sampling_add_defaults(ro, 128);
    cJSON *g = cJSON_AddObjectToObject(d, "grpo");
    cJSON_AddStringToObject(g, "advantage", "group");
    cJSON_AddNumberToObject(g, "adv_eps", GRPO_ADV_EPS);
    cJSON_AddNumberToObject(g, "epsilon_low", 0.2);
    cJSON_AddNumberToObject(g, "epsilon_high", 0.2);
    cJSON_AddStringToObject(g, "importance", "token");
    cJSON_AddNumberToObject(g, "beta", 0.0);
    cJSON_AddStringToObject(g, "kl", "k3");
    cJSON_AddStringToObject(g, "loss_type", "dapo");
    cJSON_AddNumberToObject(g, "mu", 1);
    cJSON_AddNumberToObject(g, "minibatches", 1);
    cJSON_AddNumberToObject(g, "micro_batch", 16);
    cJSON_AddNumberToObject(g, "sync_ref_every", 0);
    cJSON_AddBoolToObject(g, "mask_truncated", 0);
    cJSON_AddNumberToObject(g, "overlong_cache", 0);
    cJSON_AddBoolToObject(g, "dynamic_sampling", 0);
    cJSON_AddNumberToObject(g, "max_resample_rounds", 4);
    cJSON *r = cJSON_AddObjectToObject(d, "router");
    cJSON_AddNumberToObject(r, "bias_gamma", 0.001);
    cJSON_AddNumberToObject(r, "aux_alpha", 0.0);
    cJSON_AddItemToObject(d, "optim", run_optim_defaults(1e-6f));
    cJSON_AddNumberToObject(d, "save_every", 10);
    cJSON_AddNumberToObject(d, "keep_checkpoints", 2);
    cJSON_AddBoolToObject(d, "log_episodes", 1);
    cJSON_AddBoolToObject(d, "quiet", 0);
    cJSON_AddStringToObject(d, "db", "");
    cJSON_AddNumberToObject(d, "max_minutes", 0);
    return d;
}

// Everything the loop reads from the config, read and checked once.
typedef struct {
    const char *model, *tmpl, *system;
    RunData data;
    double init_std, heldout_frac;
    int64_t init_seed, seed;
    int steps;
    bool shuffle, log_episodes, quiet;
    const char *db;           // the run database ("" = OUT/run.db)
    double max_minutes;       // > 0: stop after the step that crosses this wall-clock budget
    RolloutConfig rollout;
    int P;
    GrpoAdvMode adv_mode;
    double adv_eps;
    GrpoLossOpts loss;
    int mu, minibatches, micro_batch, sync_ref_every, overlong_cache, max_resample_rounds;
    bool mask_truncated, dynamic_sampling;
    double bias_gamma, aux_alpha;
    AdamWConfig optim;
    int save_every, keep;
} TrainCfg;

static int read_cfg(TrainCfg *c, const cJSON *t) {
    memset(c, 0, sizeof *c);
    const char *s;
    TRY(cfg_str(t, "model", &c->model));
    TRY(cfg_int64(t, "init_seed", &c->init_seed));
    TRY(cfg_float(t, "init_std", &c->init_std));
    TRY(run_data_read(t, "data", &c->data));
    TRY(cfg_bool(t, "data.shuffle", &c->shuffle));
    TRY(cfg_float(t, "data.heldout_frac", &c->heldout_frac));
    TRY(cfg_str(t, "template", &c->tmpl));
    TRY(cfg_str(t, "system", &c->system));
    TRY(cfg_int(t, "steps", &c->steps));
    TRY(cfg_int64(t, "seed", &c->seed));
    RolloutConfig *r = &c->rollout;
    *r = rollout_defaults();
    TRY(cfg_int(t, "rollout.prompts_per_step", &c->P));
    TRY(cfg_int(t, "rollout.group_size", &r->group_size));
    TRY(run_sampling_read(t, "rollout", r));
    TRY(cfg_str(t, "grpo.advantage", &s));
    if (grpo_adv_mode_parse(&c->adv_mode, s) != 0) return grpo_error_context("grpo.advantage");
    TRY(cfg_float(t, "grpo.adv_eps", &c->adv_eps));
    c->loss = grpo_loss_defaults();
    TRY(cfg_f32(t, "grpo.epsilon_low", &c->loss.epsilon_low));
    TRY(cfg_f32(t, "grpo.epsilon_high", &c->loss.epsilon_high));
    TRY(cfg_str(t, "grpo.importance", &s));
    if (grpo_importance_parse(&c->loss.importance, s) != 0) return grpo_error_context("grpo.importance");
    TRY(cfg_f32(t, "grpo.beta", &c->loss.beta));
    TRY(cfg_str(t, "grpo.kl", &s));
    if (grpo_kl_parse(&c->loss.kl, s) != 0) return grpo_error_context("grpo.kl");
    TRY(cfg_str(t, "grpo.loss_type", &s));
    if (grpo_agg_parse(&c->loss.agg, s) != 0) return grpo_error_context("grpo.loss_type");
    c->loss.max_len = r->max_new_tokens;
    TRY(cfg_int(t, "grpo.mu", &c->mu));
    TRY(cfg_int(t, "grpo.minibatches", &c->minibatches));
    TRY(cfg_int(t, "grpo.micro_batch", &c->micro_batch));
    TRY(cfg_int(t, "grpo.sync_ref_every", &c->sync_ref_every));
    TRY(cfg_bool(t, "grpo.mask_truncated", &c->mask_truncated));
    TRY(cfg_int(t, "grpo.overlong_cache", &c->overlong_cache));
    TRY(cfg_bool(t, "grpo.dynamic_sampling", &c->dynamic_sampling));
    TRY(cfg_int(t, "grpo.max_resample_rounds", &c->max_resample_rounds));
    TRY(cfg_float(t, "router.bias_gamma", &c->bias_gamma));
    TRY(cfg_float(t, "router.aux_alpha", &c->aux_alpha));
    TRY(run_optim_read(t, "optim", &c->optim));
    c->optim.total_steps = c->steps * c->mu * c->minibatches;
    TRY(cfg_int(t, "save_every", &c->save_every));
    TRY(cfg_int(t, "keep_checkpoints", &c->keep));
    TRY(cfg_bool(t, "log_episodes", &c->log_episodes));
    TRY(cfg_bool(t, "quiet", &c->quiet));
    TRY(cfg_str(t, "db", &c->db));
    TRY(cfg_float(t, "max_minutes", &c->max_minutes));
    CHECK(c->max_minutes >= 0, "max_minutes %g: expected >= 0 (0 = no limit)", c->max_minutes);

    CHECK(c->model[0], "model: required (a model directory, or a model config .json to random-initialise)");
    CHECK(c->steps >= 1, "steps %d: expected >= 1", c->steps);
    CHECK(c->P >= 1, "rollout.prompts_per_step %d: expected >= 1", c->P);
    CHECK(r->group_size >= 2, "rollout.group_size %d: GRPO compares completions within a group; expected >= 2",
          r->group_size);
    CHECK(c->mu >= 1 && c->minibatches >= 1 && c->micro_batch >= 1,
          "grpo.mu %d, grpo.minibatches %d, grpo.micro_batch %d: expected >= 1", c->mu, c->minibatches,
          c->micro_batch);
    CHECK(c->minibatches <= c->P * r->group_size, "grpo.minibatches %d exceeds the %d completions of a step",
          c->minibatches, c->P * r->group_size);
    CHECK(c->adv_eps >= 0, "grpo.adv_eps %g: expected >= 0", c->adv_eps);
    CHECK(c->sync_ref_every >= 0 && c->overlong_cache >= 0 && c->overlong_cache < r->max_new_tokens,
          "grpo.sync_ref_every >= 0 and 0 <= grpo.overlong_cache < rollout.max_new_tokens expected");
    CHECK(c->max_resample_rounds >= 1, "grpo.max_resample_rounds %d: expected >= 1", c->max_resample_rounds);
    CHECK(c->heldout_frac >= 0 && c->heldout_frac < 1, "data.heldout_frac %g: expected in [0, 1)", c->heldout_frac);
    CHECK(c->save_every >= 0, "save_every %d: expected >= 0 (0 = only at the end)", c->save_every);
    CHECK(c->aux_alpha >= 0 && c->bias_gamma >= 0, "router.aux_alpha and router.bias_gamma: expected >= 0");
    return grpo_loss_opts_check(&c->loss);
}

cJSON *train_config_load(const char *path, const char *const *sets, int nsets) {
    cJSON *def = train_defaults();
    cJSON *t = cfg_load(def, path, sets, nsets);
    cJSON_Delete(def);
    if (!t) return NULL;
    TrainCfg c;
    if (read_cfg(&c, t) != 0) {
        if (path) grpo_error_context("%s", path);
        cJSON_Delete(t);
        return NULL;
    }
    return t;
}

// ------------------------------------------------------------------------------------------------------
// The trainer's state: one struct so that the step functions read as the data flow of DESIGN section 2.

typedef struct {
    TrainCfg c;
    const cJSON *tree;
    const char *out;
    Model m, ref;
    bool has_ref;
    long ref_synced;          // the step whose policy the reference is (0: the initial model)
    Tokenizer *tok;
    char tok_src[PATH_MAX];
    AdamW opt;
    RewardSet rewards;
    TaskList tasks, heldout;
    Dataset ds;
    TokIds *prompt_ids;       // (tasks.n) encoded prompts
    TokText *prompt_text;     // (tasks.n) the prompts as the policy sees them
    int max_prompt, T_max;
    RolloutEngine *engine;
    Store *store;
    int64_t run_id;
    PackedBatch pb;
    float *old_lp, *ref_lp, *dlogp, *mask; // (micro_batch * T_max)
    // one step's completions: S = P * G of them, kept after dynamic sampling
    int S;
    Completion *comp;         // (S)
    const Task **task;        // (S / G) the tasks of the kept groups
    int *task_idx;            // (S / G)
    float *reward, *adv;      // (S)
    float *parts;             // (n_rewards, S)
    RewardDetail *detail;     // (S)
    float **ref_seq;          // (S) reference log-probs per completion token (beta > 0)
    int *order;               // (S) minibatch order
    // one micro-batch's rows, pointing into the above: (micro_batch) each
    const int **mb_prompt, **mb_comp;
    int *mb_plen, *mb_clen;
    const float **mb_old, **mb_ref;
    float *mb_adv;
    long steps_start;         // the first step this call runs (1, or the checkpoint's + 1)
    double started;           // run_now() when this call began
    char db_path[PATH_MAX];
    bool stop;                // the last step (steps reached, or max_minutes spent) is done
} Trainer;

// Loads or makes the tasks and encodes every prompt, so a prompt that does not fit fails now.
static int load_tasks(Trainer *t) {
    const TrainCfg *c = &t->c;
    TaskList all = {0};
    TRY(run_data_load(&c->data, "train", &all));
    if (c->heldout_frac > 0) TRY(tasks_split(&all, c->heldout_frac, (uint64_t)c->seed, &t->tasks, &t->heldout));
    else t->tasks = all;
    CHECK(t->tasks.n >= 1, "%s: no training tasks", c->data.train[0] ? c->data.train : "data.synthetic");
    for (int i = 0; i < t->tasks.n; i++)
        if (reward_set_check_task(&t->rewards, &t->tasks.tasks[i]) != 0)
            return grpo_error_context("task %s", t->tasks.tasks[i].id);
    t->prompt_ids = grpo_calloc(t->tasks.n, sizeof(TokIds), "prompts");
    t->prompt_text = grpo_calloc(t->tasks.n, sizeof(TokText), "prompts");
    if (!t->prompt_ids || !t->prompt_text) return -1;
    for (int i = 0; i < t->tasks.n; i++) {
        if (prompt_encode_text(&t->prompt_ids[i], &t->prompt_text[i], t->tok, c->tmpl, c->system,
                               t->tasks.tasks[i].prompt) != 0)
            return grpo_error_context("task %s", t->tasks.tasks[i].id);
        if (t->prompt_ids[i].n > t->max_prompt) t->max_prompt = t->prompt_ids[i].n;
    }
    return dataset_init(&t->ds, t->tasks.tasks, t->tasks.n, (uint64_t)c->seed, c->shuffle);
}

static int alloc_step_buffers(Trainer *t) {
    int S = t->c.P * t->c.rollout.group_size, P = t->c.P, nr = t->rewards.n;
    size_t grid = (size_t)t->c.micro_batch * t->T_max;
    t->comp = grpo_calloc(S, sizeof(Completion), "step completions");
    t->task = grpo_calloc(P, sizeof(Task *), "step tasks");
    t->task_idx = grpo_calloc(P, sizeof(int), "step tasks");
    t->reward = grpo_calloc(S, sizeof(float), "rewards");
    t->adv = grpo_calloc(S, sizeof(float), "advantages");
    t->parts = grpo_calloc((size_t)nr * S, sizeof(float), "reward parts");
    t->detail = grpo_calloc(S, sizeof(RewardDetail), "reward details");
    t->ref_seq = grpo_calloc(S, sizeof(float *), "reference log-probs");
    t->order = grpo_calloc(S, sizeof(int), "minibatch order");
    t->old_lp = grpo_calloc(grid, sizeof(float), "log-prob grid");
    t->ref_lp = grpo_calloc(grid, sizeof(float), "log-prob grid");
    t->dlogp = grpo_calloc(grid, sizeof(float), "log-prob grid");
    t->mask = grpo_calloc(grid, sizeof(float), "log-prob grid");
    int mb = t->c.micro_batch;
    t->mb_prompt = grpo_calloc(mb, sizeof(int *), "micro-batch");
    t->mb_comp = grpo_calloc(mb, sizeof(int *), "micro-batch");
    t->mb_plen = grpo_calloc(mb, sizeof(int), "micro-batch");
    t->mb_clen = grpo_calloc(mb, sizeof(int), "micro-batch");
    t->mb_old = grpo_calloc(mb, sizeof(float *), "micro-batch");
    t->mb_ref = grpo_calloc(mb, sizeof(float *), "micro-batch");
    t->mb_adv = grpo_calloc(mb, sizeof(float), "micro-batch");
    if (!t->mb_prompt || !t->mb_comp || !t->mb_plen || !t->mb_clen || !t->mb_old || !t->mb_ref || !t->mb_adv)
        return -1;
    if (!t->comp || !t->task || !t->task_idx || !t->reward || !t->adv || !t->parts || !t->detail || !t->ref_seq ||
        !t->order || !t->old_lp || !t->ref_lp || !t->dlogp || !t->mask)
        return -1;
    return packed_init(&t->pb, t->c.micro_batch, t->T_max);
}

static void free_step(Trainer *t) {
    int S = t->c.P * t->c.rollout.group_size;
    for (int i = 0; t->comp && i < S; i++) completion_free(&t->comp[i]);
    for (int i = 0; t->ref_seq && i < S; i++) {
        free(t->ref_seq[i]);
        t->ref_seq[i] = NULL;
    }
}

// ------------------------------------------------------------------------------------------------------
// One step

typedef struct {
    double rollout_s, reward_s, ref_s, update_s, log_s, ckpt_s;
    double logprob_s;         // the policy's forward (log-probs) inside update_s
    long completion_tokens, train_tokens;
    int zero_std, dropped_groups, rounds;
    double loss, kl, clip_low, clip_high, clip, ratio, entropy, grad_norm, lr;
    int n_updates;            // loss units (tokens or sequences) over all updates
    long active_tokens;       // completion tokens the loss saw, over all updates
} StepStats;

// Rolls out groups until P of them are kept (all of them without dynamic sampling) and scores them.
static int rollout_and_score(Trainer *t, long step, StepStats *st) {
    const TrainCfg *c = &t->c;
    int G = c->rollout.group_size, P = c->P, kept = 0;
    const Task **batch = grpo_calloc(P, sizeof(Task *), "step tasks");
    const int **ids = grpo_calloc(P, sizeof(int *), "step prompts");
    int *lens = grpo_calloc(P, sizeof(int), "step prompts");
    Completion *round = grpo_calloc((size_t)P * G, sizeof(Completion), "completions");
    float *rew = grpo_calloc((size_t)P * G, sizeof(float), "rewards");
    float *parts = grpo_calloc((size_t)t->rewards.n * P * G, sizeof(float), "reward parts");
    RewardDetail *det = grpo_calloc((size_t)P * G, sizeof(RewardDetail), "reward details");
    const Task **tasks_g = grpo_calloc((size_t)P * G, sizeof(Task *), "step tasks");
    const char **texts = grpo_calloc((size_t)P * G, sizeof(char *), "texts");
    uint8_t *keep = grpo_calloc(P, 1, "kept groups");
    int rc = -1;
    if (!batch || !ids || !lens || !round || !rew || !parts || !det || !tasks_g || !texts || !keep) goto end;
    for (int r = 0; kept < P && r < (c->dynamic_sampling ? c->max_resample_rounds : 1); r++) {
        st->rounds++;
        if (dataset_next(&t->ds, P, batch) != 0) goto end;
        for (int p = 0; p < P; p++) {
            int i = (int)(batch[p] - t->tasks.tasks);
            ids[p] = t->prompt_ids[i].ids;
            lens[p] = t->prompt_ids[i].n;
        }
        double t0 = run_now();
        RolloutStats rs;
        if (rollout_generate(t->engine, ids, lens, P, rng_stream((uint64_t)t->c.seed, (uint64_t)step, (uint64_t)r),
                             round, NULL, NULL, &rs) != 0)
            goto end;
        double t1 = run_now();
        st->rollout_s += t1 - t0;
        for (int i = 0; i < P * G; i++) {
            tasks_g[i] = batch[i / G];
            texts[i] = round[i].text;
            st->completion_tokens += round[i].n;
        }
        if (reward_set_score_batch(&t->rewards, tasks_g, texts, P * G, rew, parts, det) != 0) goto end;
        for (int i = 0; c->overlong_cache > 0 && i < P * G; i++)
            rew[i] += grpo_overlong_penalty(round[i].n, c->rollout.max_new_tokens, c->overlong_cache);
        st->reward_s += run_now() - t1;
        if (c->dynamic_sampling) grpo_groups_with_signal(keep, rew, P, G);
        else memset(keep, 1, P);
        for (int p = 0; p < P; p++) {
            if (!keep[p] || kept == P) {
                st->dropped_groups += c->dynamic_sampling;
                for (int g = 0; g < G; g++) completion_free(&round[p * G + g]);
                continue;
            }
            t->task[kept] = batch[p];
            t->task_idx[kept] = (int)(batch[p] - t->tasks.tasks);
            for (int g = 0; g < G; g++) {
                int src = p * G + g, dst = kept * G + g;
                t->comp[dst] = round[src];
                t->comp[dst].prompt_idx = kept;
                memset(&round[src], 0, sizeof(Completion));
                t->reward[dst] = rew[src];
                t->detail[dst] = det[src];
                for (int k = 0; k < t->rewards.n; k++)
                    t->parts[(size_t)k * P * G + dst] = parts[(size_t)k * P * G + src];
            }
            kept++;
        }
    }
    // Dynamic sampling that ran out of rounds trains on the groups it kept, fewer than P.
    t->S = kept * G;
    rc = 0;
end:
    free(batch), free(ids), free(lens), free(round), free(rew), free(parts), free(det), free(tasks_g), free(texts),
        free(keep);
    return rc;
}

// Packs the completions order[i0..i0+n) and fills the old/ref log-prob grids and the mask.
static int pack_micro(Trainer *t, int i0, int n) {
    for (int b = 0; b < n; b++) {
        const Completion *c = &t->comp[t->order[i0 + b]];
        const TokIds *p = &t->prompt_ids[t->task_idx[c->prompt_idx]];
        t->mb_prompt[b] = p->ids;
        t->mb_plen[b] = p->n;
        t->mb_comp[b] = c->ids;
        t->mb_clen[b] = c->n;
        t->mb_old[b] = c->logprobs;
        t->mb_ref[b] = t->ref_seq[t->order[i0 + b]];
        t->mb_adv[b] = t->adv[t->order[i0 + b]];
    }
    TRY(packed_fill(&t->pb, t->mb_prompt, t->mb_plen, t->mb_comp, t->mb_clen, n));
    packed_scatter(&t->pb, t->old_lp, t->mb_old, t->mb_plen, t->mb_clen);
    if (t->has_ref) packed_scatter(&t->pb, t->ref_lp, t->mb_ref, t->mb_plen, t->mb_clen);
    memcpy(t->mask, t->pb.mask, sizeof(float) * t->pb.B * t->pb.T);
    for (int b = 0; b < n; b++)
        if (t->c.mask_truncated && t->comp[t->order[i0 + b]].finish == FINISH_LENGTH)
            memset(t->mask + (size_t)b * t->pb.T, 0, sizeof(float) * t->pb.T);
    return 0;
}

// The frozen reference's log-probs of every completion token, once per step.
static int reference_logprobs(Trainer *t) {
    int mb = t->c.micro_batch;
    for (int i = 0; i < t->S; i++) t->order[i] = i;
    for (int i0 = 0; i0 < t->S; i0 += mb) {
        int n = t->S - i0 < mb ? t->S - i0 : mb;
        for (int b = 0; b < n; b++) { // pack_micro reads ref_seq: give it zeros until they exist
            const Completion *c = &t->comp[i0 + b];
            t->ref_seq[i0 + b] = grpo_calloc(c->n, sizeof(float), "reference log-probs");
            if (!t->ref_seq[i0 + b]) return -1;
        }
        TRY(pack_micro(t, i0, n));
        TRY(model_forward(&t->ref, t->pb.inputs, t->pb.targets, t->pb.B, t->pb.T));
        for (int b = 0; b < n; b++) {
            const Completion *c = &t->comp[i0 + b];
            int Tp = t->prompt_ids[t->task_idx[c->prompt_idx]].n;
            for (int j = 0; j < c->n; j++) t->ref_seq[i0 + b][j] = t->ref.logp[(size_t)b * t->pb.T + Tp + j - 1];
        }
    }
    return 0;
}

static int update_policy(Trainer *t, long step, StepStats *st) {
    const TrainCfg *c = &t->c;
    int S = t->S, mb = c->micro_batch;
    Model *m = &t->m;
    for (int epoch = 0; epoch < c->mu; epoch++) {
        // A fresh minibatch order per (step, epoch), as TRL shuffles its buffer.
        for (int i = 0; i < S; i++) t->order[i] = i;
        uint64_t stream = rng_stream((uint64_t)c->seed ^ 0x6d696e69ULL, (uint64_t)step, (uint64_t)epoch);
        for (int i = S - 1; i > 0; i--) {
            int j = (int)(rng_uniform(stream, (uint64_t)i) * (i + 1));
            int tmp = t->order[i];
            t->order[i] = t->order[j];
            t->order[j] = tmp;
        }
        for (int k = 0; k < c->minibatches; k++) {
            int s0 = (int)((long)S * k / c->minibatches), s1 = (int)((long)S * (k + 1) / c->minibatches);
            int n_micro = (s1 - s0 + mb - 1) / mb, total = 0;
            for (int i = s0; i < s1; i++) { // dapo's normaliser: active tokens of the whole optimizer step
                const Completion *cp = &t->comp[t->order[i]];
                if (!(c->mask_truncated && cp->finish == FINISH_LENGTH)) total += cp->n;
            }
            GrpoLossOpts lo = c->loss;
            lo.loss_scale = grpo_accum_scale(lo.agg, n_micro);
            model_zero_grad(m);
            for (int i0 = s0; i0 < s1; i0 += mb) {
                int n = s1 - i0 < mb ? s1 - i0 : mb;
                TRY(pack_micro(t, i0, n));
                double f0 = run_now();
                TRY(model_forward(m, t->pb.inputs, t->pb.targets, t->pb.B, t->pb.T));
                st->logprob_s += run_now() - f0;
                GrpoBatch gb = {.S = n, .offsets = t->pb.offsets, .logp = m->logp, .old_logp = t->old_lp,
                                .ref_logp = t->has_ref ? t->ref_lp : NULL, .mask = t->mask, .adv = t->mb_adv,
                                .total_tokens = total};
                GrpoLossStats ls;
                TRY(grpo_loss(&ls, t->dlogp, &gb, &lo));
                model_backward(m, t->dlogp);
                double ent = 0;
                for (int i = 0; i < t->pb.B * t->pb.T; i++) ent += t->mask[i] * m->entropy[i];
                st->entropy += ent;
                st->loss += ls.loss;
                st->kl += ls.kl * ls.n_tokens;
                st->clip_low += ls.n_clip_low;
                st->clip_high += ls.n_clip_high;
                st->clip += ls.clip * ls.n_units;
                st->ratio += ls.ratio_mean * ls.n_units;
                st->n_updates += ls.n_units;
                st->train_tokens += (long)t->pb.B * t->pb.T;
                st->active_tokens += ls.n_tokens;
            }
            st->lr = adamw_lr(&t->opt.cfg, t->opt.step);
            st->grad_norm = adamw_step(&t->opt, m);
            model_update_router_bias(m, (float)c->bias_gamma);
        }
    }
    return 0;
}

static double mean_std(const float *x, int n, double *std) {
    double m = 0, v = 0;
    for (int i = 0; i < n; i++) m += x[i];
    m /= n > 0 ? n : 1;
    for (int i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
    *std = n > 1 ? sqrt(v / (n - 1)) : 0.0;
    return m;
}

// Correct when the first reward says so: a checker's verdict ("correct", "passed"); NAN when the first
// reward is not a checker (format only, say).
static double step_accuracy(const Trainer *t) {
    const char *first = t->rewards.comp[0].name;
    if (strcmp(first, "math") && strcmp(first, "code") && strcmp(first, "countdown")) return NAN;
    int ok = 0;
    for (int i = 0; i < t->S; i++)
        ok += !strcmp(t->detail[i].verdict, "correct") || !strcmp(t->detail[i].verdict, "passed");
    return t->S ? (double)ok / t->S : NAN;
}

// The step's row, every episode, in one transaction; then the line on stderr.
static int log_step(Trainer *t, long step, StepStats *st, double step_start, TrainResult *res) {
    const TrainCfg *c = &t->c;
    int S = t->S, G = c->rollout.group_size;
    double rstd, rmean = mean_std(t->reward, S, &rstd);
    long len_sum = 0, len_max = 0, trunc = 0;
    for (int i = 0; i < S; i++) {
        len_sum += t->comp[i].n;
        if (t->comp[i].n > len_max) len_max = t->comp[i].n;
        trunc += t->comp[i].finish == FINISH_LENGTH;
    }
    double seconds = run_now() - step_start;
    StepRecord r = store_step_init(step);
    r.reward_mean = rmean;
    r.reward_std = rstd;
    r.accuracy = step_accuracy(t);
    r.kl = t->has_ref && st->active_tokens ? st->kl / st->active_tokens : NAN; // no reference: not measured
    r.clip_frac = st->n_updates ? st->clip / st->n_updates : NAN;
    r.entropy = st->active_tokens ? st->entropy / st->active_tokens : NAN;
    r.len_mean = S ? (double)len_sum / S : 0;
    r.len_max = (double)len_max;
    r.truncated_frac = S ? (double)trunc / S : 0;
    r.zero_std_groups = st->zero_std;
    r.loss = st->loss / (c->mu * c->minibatches);
    r.lr = st->lr;
    r.grad_norm = st->grad_norm;
    r.rollout_tok_s = st->rollout_s > 0 ? st->completion_tokens / st->rollout_s : NAN;
    r.train_tok_s = st->update_s > 0 ? st->train_tokens / st->update_s : NAN;
    r.seconds = seconds;

    cJSON *mj = cJSON_CreateObject();
#define PUT(name, value) do { if (!isnan((double)(value))) cJSON_AddNumberToObject(mj, name, value); } while (0)
    PUT("reward/mean", r.reward_mean);
    PUT("reward/std", r.reward_std);
    for (int k = 0; k < t->rewards.n; k++) {
        char key[64];
        double sd, mu = mean_std(t->parts + (size_t)k * c->P * G, S, &sd);
        snprintf(key, sizeof key, "reward/%s/mean", t->rewards.comp[k].name);
        PUT(key, mu);
        snprintf(key, sizeof key, "reward/%s/std", t->rewards.comp[k].name);
        PUT(key, sd);
    }
    PUT("accuracy", r.accuracy);
    PUT("kl", r.kl);
    PUT("clip/low", st->n_updates ? st->clip_low / st->n_updates : NAN);
    PUT("clip/high", st->n_updates ? st->clip_high / st->n_updates : NAN);
    PUT("clip/frac", r.clip_frac);
    PUT("ratio/mean", st->n_updates ? st->ratio / st->n_updates : NAN);
    PUT("entropy", r.entropy);
    PUT("completion/len_mean", r.len_mean);
    PUT("completion/len_max", r.len_max);
    PUT("completion/truncated_frac", r.truncated_frac);
    PUT("groups/zero_std", st->zero_std);
    PUT("groups/dropped", st->dropped_groups);
    PUT("groups/rounds", st->rounds);
    PUT("loss", r.loss);
    PUT("lr", r.lr);
    PUT("grad_norm", r.grad_norm);
    PUT("tok_s/rollout", r.rollout_tok_s);
    PUT("tok_s/train", r.train_tok_s);
    PUT("time/rollout", st->rollout_s);
    PUT("time/reward", st->reward_s);
    PUT("time/reference", st->ref_s);
    PUT("time/policy_logprobs", st->logprob_s);
    PUT("time/update", st->update_s - st->logprob_s);
    PUT("time/log", st->log_s);
    PUT("time/checkpoint", st->ckpt_s);
    PUT("time/step", seconds);
#undef PUT
    char *mtext = cJSON_PrintUnformatted(mj);
    cJSON_Delete(mj);
    if (!mtext) return ERR("out of memory");
    r.metrics_json = mtext;

    EpisodeRecord *eps = c->log_episodes ? grpo_calloc(S ? S : 1, sizeof *eps, "episodes") : NULL;
    char **parts_json = c->log_episodes ? grpo_calloc(S ? S : 1, sizeof(char *), "episodes") : NULL;
    int rc = (c->log_episodes && (!eps || !parts_json)) ? -1 : 0;
    for (int i = 0; rc == 0 && c->log_episodes && i < S; i++) {
        const Completion *cp = &t->comp[i];
        cJSON *pj = cJSON_CreateObject();
        for (int k = 0; k < t->rewards.n; k++)
            cJSON_AddNumberToObject(pj, t->rewards.comp[k].name, t->parts[(size_t)k * c->P * G + i]);
        parts_json[i] = cJSON_PrintUnformatted(pj);
        cJSON_Delete(pj);
        eps[i] = (EpisodeRecord){.task_id = t->task[cp->prompt_idx]->id, .group_idx = cp->prompt_idx,
                                 .sample_idx = cp->sample_idx, .prompt = t->prompt_text[t->task_idx[cp->prompt_idx]].s,
                                 .completion = cp->text, .completion_tokens = cp->n, .reward = t->reward[i],
                                 .reward_parts_json = parts_json[i], .advantage = t->adv[i],
                                 .finish_reason = finish_reason_name(cp->finish), .logprob_sum = cp->logprob_sum,
                                 .verdict = t->detail[i].verdict};
    }
    if (rc == 0) rc = store_write_step(t->store, t->run_id, &r, eps, c->log_episodes ? S : 0);
    for (int i = 0; parts_json && i < S; i++) free(parts_json[i]);
    free(parts_json);
    free(eps);
    free(mtext);
    TRY(rc);
    if (!c->quiet) {
        char acc[32] = "";
        if (!isnan(r.accuracy)) snprintf(acc, sizeof acc, " | acc %5.1f%%", 100 * r.accuracy);
        fprintf(stderr,
                "step %4ld/%d | reward %.3f ± %.3f%s | kl %.4f | clip %.1f%% | ent %.2f | len %.0f/%ld | trunc %.0f%% "
                "| zero-std %d/%d | rollout %.0f tok/s | train %.0f tok/s | %.1f s\n",
                step, c->steps, r.reward_mean, r.reward_std, acc, isnan(r.kl) ? 0.0 : r.kl,
                100 * (isnan(r.clip_frac) ? 0.0 : r.clip_frac), isnan(r.entropy) ? 0.0 : r.entropy, r.len_mean,
                len_max, 100 * r.truncated_frac, st->zero_std, S / G, isnan(r.rollout_tok_s) ? 0.0 : r.rollout_tok_s,
                isnan(r.train_tok_s) ? 0.0 : r.train_tok_s, seconds);
    }
    if (res) {
        if (res->steps_done == 0) res->reward_first = rmean;
        res->reward_last = rmean;
        res->steps_done++;
    }
    return 0;
}

static cJSON *trainer_state(const Trainer *t, long step) {
    cJSON *s = cJSON_CreateObject();
    cJSON_AddNumberToObject(s, "step", step);
    cJSON_AddNumberToObject(s, "run_id", (double)t->run_id);
    cJSON_AddItemToObject(s, "data_cursor", dataset_cursor_save(&t->ds));
    cJSON *ref = cJSON_AddObjectToObject(s, "reference");
    cJSON_AddStringToObject(ref, "model", t->c.model);
    cJSON_AddNumberToObject(ref, "synced_step", t->ref_synced);
    cJSON_AddItemToObject(s, "config", cJSON_Duplicate(t->tree, 1));
    return s;
}

static void ref_path(char *out, const char *dir, long step) { snprintf(out, PATH_MAX, "%s/reference-step-%06ld.safetensors", dir, step); }

static int save(Trainer *t, long step, StepStats *st) {
    double t0 = run_now();
    cJSON *state = trainer_state(t, step);
    int rc = run_save_checkpoint(t->out, step, &t->m, &t->opt, t->tok_src, state, t->c.keep);
    cJSON_Delete(state);
    if (st) st->ckpt_s += run_now() - t0;
    return rc;
}

// Builds everything before the first step; on resume restores the latest checkpoint's state.
static int setup(Trainer *t, bool resume) {
    const TrainCfg *c = &t->c;
    char ckpt[PATH_MAX], db[PATH_MAX];
    long ckpt_step = 0;
    TRY(mkdir_p(t->out));
    TRY(run_latest_checkpoint(t->out, &ckpt_step, ckpt));
    if (c->db[0]) snprintf(db, sizeof db, "%s", c->db);
    else snprintf(db, sizeof db, "%s/run.db", t->out);
    snprintf(t->db_path, sizeof t->db_path, "%s", db);
    CHECK(resume || !ckpt_step, "%s already holds a run (checkpoints): continue it with --resume or choose "
          "another --out", t->out);
    TRY(reward_set_create(&t->rewards, cfg_get(t->tree, "rewards")));
    TRY(run_load_policy(&t->m, &t->tok, t->tok_src, c->model, (uint64_t)c->init_seed, (float)c->init_std, t->out));
    TRY(load_tasks(t));
    t->T_max = t->max_prompt + c->rollout.max_new_tokens - 1;
    CHECK(t->T_max + 1 <= t->m.cfg.max_position_embeddings,
          "the longest prompt (%d tokens) + rollout.max_new_tokens %d exceed the model's max_position_embeddings %d",
          t->max_prompt, c->rollout.max_new_tokens, t->m.cfg.max_position_embeddings);
    t->m.temperature = c->rollout.sampler.temperature > 0 ? c->rollout.sampler.temperature : 1.0f;
    t->m.mtp_lambda = 0.0f;
    t->m.aux_alpha = (float)c->aux_alpha;
    TRY(model_alloc_grads(&t->m));
    TRY(model_alloc_acts(&t->m, c->micro_batch, t->T_max));
    TRY(adamw_init(&t->opt, &c->optim, t->m.n_params));
    t->has_ref = c->loss.beta > 0;
    if (t->has_ref) {
        TRY(model_build(&t->ref, &t->m.cfg));
        memcpy(t->ref.params, t->m.params, sizeof(float) * t->m.n_params); // before any checkpoint is loaded
        t->ref.temperature = t->m.temperature;
        t->ref.mtp_lambda = 0.0f;
        TRY(model_alloc_acts(&t->ref, c->micro_batch, t->T_max));
    }
    cJSON *state = NULL;
    if (ckpt_step) {
        TRY(checkpoint_load(ckpt, &t->m, &t->opt, &state));
        const cJSON *cur = cJSON_GetObjectItemCaseSensitive(state, "data_cursor");
        const cJSON *rid = cJSON_GetObjectItemCaseSensitive(state, "run_id");
        const cJSON *ref = cJSON_GetObjectItemCaseSensitive(state, "reference");
        const cJSON *sync = cJSON_GetObjectItemCaseSensitive(ref, "synced_step");
        const cJSON *model = cJSON_GetObjectItemCaseSensitive(ref, "model");
        int rc = (!cJSON_IsNumber(rid) || !cur || !cJSON_IsNumber(sync) || !cJSON_IsString(model))
                     ? ERR("%s/trainer_state.json: expected run_id, data_cursor and reference", ckpt)
                 : strcmp(model->valuestring, c->model)
                     ? ERR("%s: the run's reference model is %s but the config names %s", ckpt, model->valuestring,
                           c->model)
                     : dataset_cursor_restore(&t->ds, cur);
        if (rc == 0) {
            t->run_id = (int64_t)rid->valuedouble;
            t->ref_synced = (long)sync->valuedouble;
            if (t->has_ref && t->ref_synced > 0) {
                char rp[PATH_MAX];
                ref_path(rp, t->out, t->ref_synced);
                rc = model_load_weights(&t->ref, rp);
            }
        }
        cJSON_Delete(state);
        if (rc) return grpo_error_context("resuming from %s", ckpt);
    }
    if (!(t->store = store_open(db))) return -1;
    // A database may hold other runs (the demo's SFT run); a GRPO run in it is this directory's.
    int64_t found = 0;
    TRY(store_find_run(t->store, "grpo", &found));
    CHECK(resume || !found, "%s already holds a GRPO run: continue it with --resume or choose another --out", db);
    if (resume && !ckpt_step && found) t->run_id = found; // killed before its first checkpoint
    if (t->run_id) {
        TRY(store_truncate_after(t->store, t->run_id, ckpt_step));
    } else {
        char *cj = cJSON_PrintUnformatted(t->tree);
        int rc = store_begin_run(t->store, "grpo", cj, c->model, GRPO_VERSION, &t->run_id);
        free(cj);
        TRY(rc);
    }
    RolloutConfig rc = c->rollout;
    if (rc.token_budget == 0) rc.token_budget = rollout_full_budget(&rc, t->max_prompt);
    if (!(t->engine = rollout_create(&t->m, t->tok, &rc, t->max_prompt))) return -1;
    TRY(alloc_step_buffers(t));
    t->steps_start = ckpt_step + 1;
    return 0;
}

static void teardown(Trainer *t) {
    free_step(t);
    rollout_free(t->engine);
    store_close(t->store);
    packed_free(&t->pb);
    free(t->comp), free(t->task), free(t->task_idx), free(t->reward), free(t->adv), free(t->parts), free(t->detail);
    free(t->ref_seq), free(t->order), free(t->old_lp), free(t->ref_lp), free(t->dlogp), free(t->mask);
    free(t->mb_prompt), free(t->mb_comp), free(t->mb_plen), free(t->mb_clen), free(t->mb_old), free(t->mb_ref);
    free(t->mb_adv);
    for (int i = 0; t->prompt_ids && i < t->tasks.n; i++) {
        tok_ids_free(&t->prompt_ids[i]);
        tok_text_free(&t->prompt_text[i]);
    }
    free(t->prompt_ids), free(t->prompt_text);
    dataset_free(&t->ds);
    tasks_free(&t->tasks);
    tasks_free(&t->heldout);
    adamw_free(&t->opt);
    model_free(&t->m);
    if (t->has_ref) model_free(&t->ref);
    reward_set_destroy(&t->rewards);
    if (t->tok) tokenizer_free(t->tok);
}

static int run_step(Trainer *t, long step, TrainResult *res) {
    const TrainCfg *c = &t->c;
    StepStats st = {0};
    double start = run_now();
    free_step(t);
    TRY(rollout_and_score(t, step, &st));
    st.zero_std = grpo_advantages(t->adv, t->reward, t->S / c->rollout.group_size, c->rollout.group_size,
                                  c->adv_mode, (float)c->adv_eps);
    double t0 = run_now();
    if (t->has_ref) TRY(reference_logprobs(t));
    double t1 = run_now();
    st.ref_s = t1 - t0;
    t->m.count_load = true;
    TRY(update_policy(t, step, &st));
    t->m.count_load = false;
    st.update_s = run_now() - t1;
    if (c->sync_ref_every > 0 && t->has_ref && step % c->sync_ref_every == 0) {
        // Iterative GRPO: the reference becomes the current policy; its weights go to disk before any
        // checkpoint names them.
        char rp[PATH_MAX];
        ref_path(rp, t->out, step);
        memcpy(t->ref.params, t->m.params, sizeof(float) * t->m.n_params);
        TRY(model_save_weights(&t->ref, rp, false));
        t->ref_synced = step;
    }
    double t2 = run_now();
    TRY(log_step(t, step, &st, start, res));
    st.log_s = run_now() - t2;
    bool last = step == c->steps || (c->max_minutes > 0 && run_now() - t->started > 60 * c->max_minutes);
    if ((c->save_every > 0 && step % c->save_every == 0) || last) {
        TRY(save(t, step, &st));
        if (res) run_checkpoint_path(res->final_checkpoint, t->out, step);
    }
    t->stop = last;
    return 0;
}

int train_run(const cJSON *cfg, const char *out_dir, bool resume, TrainResult *res) {
    Trainer *t = grpo_calloc(1, sizeof *t, "trainer");
    if (!t) return -1;
    if (res) memset(res, 0, sizeof *res);
    t->tree = cfg;
    t->out = out_dir;
    int rc = read_cfg(&t->c, cfg);
    if (rc == 0) rc = setup(t, resume);
    if (rc == 0 && !t->c.quiet)
        fprintf(stderr, "train: %d tasks, %d prompts x %d samples per step, steps %ld..%d, %s, run %lld in %s\n",
                t->tasks.n, t->c.P, t->c.rollout.group_size, t->steps_start, t->c.steps, t->c.model,
                (long long)t->run_id, t->db_path);
    t->started = run_now();
    for (long s = t->steps_start; rc == 0 && !t->stop && s <= t->c.steps; s++) rc = run_step(t, s, res);
    if (rc == 0 && res) res->run_id = t->run_id;
    teardown(t);
    free(t);
    return rc;
}
