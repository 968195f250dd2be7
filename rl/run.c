#include "rl/run.h"
#include "common/config_tree.h"
#include "common/error.h"
#include "common/fileio.h"
#include "policy/checkpoint.h"
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double run_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int run_load_policy(Model *m, Tokenizer **tok, char *tok_src, const char *model, uint64_t init_seed, float init_std,
                    const char *out_dir) {
    *tok = NULL;
    CHECK(model && model[0], "no model: set \"model\" to a model directory or a model config .json");
    if (path_is_dir(model)) {
        TRY(model_load(m, model));
        snprintf(tok_src, PATH_MAX, "%s", model);
    } else {
        ModelConfig cfg;
        TRY(config_load(&cfg, model));
        TRY(model_build(m, &cfg));
        model_init_random(m, init_seed, init_std);
        TRY(mkdir_p(out_dir));
        snprintf(tok_src, PATH_MAX, "%s/tokenizer.json", out_dir);
        TRY(tokenizer_write_default(tok_src));
    }
    *tok = tokenizer_load(tok_src);
    if (!*tok) return -1;
    CHECK(tokenizer_vocab_size(*tok) <= m->cfg.vocab_size,
          "%s: the tokenizer has %d tokens but the model's vocab_size is %d: they do not belong together",
          tok_src, tokenizer_vocab_size(*tok), m->cfg.vocab_size);
    return 0;
}

cJSON *run_optim_defaults(float lr) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "lr", lr);
    cJSON_AddNumberToObject(o, "beta1", 0.9);
    cJSON_AddNumberToObject(o, "beta2", 0.99);
    cJSON_AddNumberToObject(o, "eps", 1e-8);
    cJSON_AddNumberToObject(o, "weight_decay", 0.0);
    cJSON_AddNumberToObject(o, "grad_clip", 1.0);
    cJSON_AddNumberToObject(o, "warmup_steps", 0);
    cJSON_AddStringToObject(o, "schedule", "constant");
    cJSON_AddNumberToObject(o, "min_lr_ratio", 0.1);
    return o;
}

int run_optim_read(const cJSON *tree, const char *path, AdamWConfig *cfg) {
    char key[128];
    double v;
    const char *sched;
    *cfg = adamw_defaults();
#define NUM(name, field) do { snprintf(key, sizeof key, "%s.%s", path, name); TRY(cfg_float(tree, key, &v)); \
                              cfg->field = (float)v; } while (0)
    NUM("lr", lr);
    NUM("beta1", beta1);
    NUM("beta2", beta2);
    NUM("eps", eps);
    NUM("weight_decay", weight_decay);
    NUM("grad_clip", grad_clip);
    NUM("min_lr_ratio", min_lr_ratio);
#undef NUM
    snprintf(key, sizeof key, "%s.warmup_steps", path);
    TRY(cfg_int(tree, key, &cfg->warmup_steps));
    snprintf(key, sizeof key, "%s.schedule", path);
    TRY(cfg_str(tree, key, &sched));
    if (!strcmp(sched, "constant")) cfg->schedule = LR_CONSTANT;
    else if (!strcmp(sched, "cosine")) cfg->schedule = LR_COSINE;
    else return ERR("%s: \"%s\": expected \"constant\" or \"cosine\"", key, sched);
    CHECK(cfg->lr >= 0 && cfg->beta1 >= 0 && cfg->beta1 < 1 && cfg->beta2 >= 0 && cfg->beta2 < 1 && cfg->eps > 0 &&
              cfg->grad_clip >= 0 && cfg->weight_decay >= 0 && cfg->warmup_steps >= 0,
          "%s: lr, weight_decay, grad_clip, warmup_steps must be >= 0, beta1/beta2 in [0,1), eps > 0", path);
    return 0;
}

void run_data_add_defaults(cJSON *data) {
    cJSON_AddStringToObject(data, "train", "");
    cJSON_AddStringToObject(data, "format", "auto");
    cJSON_AddBoolToObject(data, "skip_bad", 0);
    cJSON *syn = cJSON_AddObjectToObject(data, "synthetic");
    cJSON_AddStringToObject(syn, "kind", "");
    cJSON_AddNumberToObject(syn, "n", 1000);
    cJSON_AddNumberToObject(syn, "difficulty", 2);
    cJSON_AddStringToObject(syn, "ops", "+");
    cJSON_AddNumberToObject(syn, "seed", 1);
}

int run_data_read(const cJSON *tree, const char *path, RunData *d) {
    char key[128];
#define KEY(name) (snprintf(key, sizeof key, "%s.%s", path, name), key)
    TRY(cfg_str(tree, KEY("train"), &d->train));
    TRY(cfg_str(tree, KEY("format"), &d->format));
    TRY(cfg_bool(tree, KEY("skip_bad"), &d->skip_bad));
    TRY(cfg_str(tree, KEY("synthetic.kind"), &d->syn_kind));
    TRY(cfg_int(tree, KEY("synthetic.n"), &d->syn_n));
    TRY(cfg_int(tree, KEY("synthetic.difficulty"), &d->syn_difficulty));
    TRY(cfg_str(tree, KEY("synthetic.ops"), &d->syn_ops));
    TRY(cfg_int64(tree, KEY("synthetic.seed"), &d->syn_seed));
#undef KEY
    DatasetFormat f;
    if (dataset_format_parse(d->format, &f) != 0) return grpo_error_context("%s.format", path);
    CHECK(d->train[0] || d->syn_kind[0], "%s: set %s.train (a JSONL file) or %s.synthetic.kind (arithmetic | "
          "countdown)", path, path, path);
    CHECK(!(d->train[0] && d->syn_kind[0]), "%s: set %s.train or %s.synthetic.kind, not both", path, path, path);
    return 0;
}

int run_data_load_file(const RunData *d, const char *file, const char *who, TaskList *out) {
    LoadOptions lo = {.skip_bad = d->skip_bad};
    TRY(dataset_format_parse(d->format, &lo.format));
    TRY(tasks_load(out, file, &lo));
    if (out->skipped)
        fprintf(stderr, "%s: %s: skipped %d malformed lines (first: %s)\n", who, file, out->skipped, out->first_skip);
    return 0;
}

int run_data_load(const RunData *d, const char *who, TaskList *out) {
    if (d->train[0]) return run_data_load_file(d, d->train, who, out);
    SynthOptions so = {.n = d->syn_n, .seed = (uint64_t)d->syn_seed, .difficulty = d->syn_difficulty,
                       .ops = d->syn_ops};
    if (synth_generate(out, d->syn_kind, &so) != 0) return grpo_error_context("data.synthetic");
    return 0;
}

void run_sampling_add_defaults(cJSON *section, int max_new_tokens) {
    cJSON_AddNumberToObject(section, "max_new_tokens", max_new_tokens);
    cJSON_AddNumberToObject(section, "temperature", 1.0);
    cJSON_AddNumberToObject(section, "top_p", 1.0);
    cJSON_AddNumberToObject(section, "top_k", 0);
    cJSON_AddNumberToObject(section, "min_p", 0.0);
    cJSON_AddArrayToObject(section, "stop");
    cJSON_AddNumberToObject(section, "max_batch", 64);
    cJSON_AddNumberToObject(section, "token_budget", 0);
}

int run_sampling_read(const cJSON *tree, const char *path, RolloutConfig *r) {
    char key[128];
    int64_t budget;
#define KEY(name) (snprintf(key, sizeof key, "%s.%s", path, name), key)
    TRY(cfg_int(tree, KEY("max_new_tokens"), &r->max_new_tokens));
    TRY(cfg_f32(tree, KEY("temperature"), &r->sampler.temperature));
    TRY(cfg_f32(tree, KEY("top_p"), &r->sampler.top_p));
    TRY(cfg_int(tree, KEY("top_k"), &r->sampler.top_k));
    TRY(cfg_f32(tree, KEY("min_p"), &r->sampler.min_p));
    TRY(cfg_int(tree, KEY("max_batch"), &r->max_batch));
    TRY(cfg_int64(tree, KEY("token_budget"), &budget));
    const cJSON *stop = cfg_get(tree, KEY("stop")), *it;
#undef KEY
    if (!stop) return -1;
    r->token_budget = (long)budget;
    CHECK(cJSON_GetArraySize(stop) <= ROLLOUT_MAX_STOP, "%s.stop: at most %d stop strings", path, ROLLOUT_MAX_STOP);
    r->n_stop = 0;
    cJSON_ArrayForEach(it, stop) {
        CHECK(cJSON_IsString(it) && it->valuestring[0], "%s.stop.%d: expected a non-empty string", path, r->n_stop);
        r->stop[r->n_stop++] = it->valuestring;
    }
    CHECK(r->max_new_tokens >= 1, "%s.max_new_tokens %d: expected >= 1", path, r->max_new_tokens);
    CHECK(r->max_batch >= 1, "%s.max_batch %d: expected >= 1", path, r->max_batch);
    CHECK(r->token_budget >= 0, "%s.token_budget: expected >= 0 (0 = sized from max_batch)", path);
    if (sampler_check(&r->sampler) != 0) return grpo_error_context("%s", path);
    return 0;
}

void run_checkpoint_path(char *out, const char *out_dir, long step) {
    snprintf(out, PATH_MAX, "%s/step-%06ld", out_dir, step);
}

// Checkpoint steps in out_dir, ascending; a partial directory (the temp name checkpoint_save renames
// from) never matches "step-N" exactly.
static int list_checkpoints(const char *out_dir, long **steps, int *n) {
    *steps = NULL;
    *n = 0;
    DIR *d = opendir(out_dir);
    if (!d) return 0;
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        if (strncmp(e->d_name, "step-", 5)) continue;
        long s = strtol(e->d_name + 5, &end, 10);
        if (*end || end == e->d_name + 5 || s < 0) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            long *grown = realloc(*steps, sizeof(long) * cap);
            if (!grown) { closedir(d); free(*steps); return ERR("out of memory listing %s", out_dir); }
            *steps = grown;
        }
        (*steps)[(*n)++] = s;
    }
    closedir(d);
    for (int i = 1; i < *n; i++) // insertion sort: a handful of entries
        for (int j = i; j > 0 && (*steps)[j - 1] > (*steps)[j]; j--) {
            long t = (*steps)[j];
            (*steps)[j] = (*steps)[j - 1];
            (*steps)[j - 1] = t;
        }
    return 0;
}

int run_latest_checkpoint(const char *out_dir, long *step, char *path) {
    long *steps;
    int n;
    TRY(list_checkpoints(out_dir, &steps, &n));
    *step = n ? steps[n - 1] : 0;
    if (n) run_checkpoint_path(path, out_dir, *step);
    free(steps);
    return 0;
}

int run_save_checkpoint(const char *out_dir, long step, const Model *m, const AdamW *opt, const char *tok_src,
                        const cJSON *state, int keep) {
    char path[PATH_MAX];
    run_checkpoint_path(path, out_dir, step);
    TRY(checkpoint_save(path, m, opt, tok_src, state, false));
    long *steps;
    int n;
    TRY(list_checkpoints(out_dir, &steps, &n));
    for (int i = 0; keep > 0 && i < n - keep; i++) { // older ones go only once the new one is in place
        char old[PATH_MAX], cmd[PATH_MAX + 16];
        run_checkpoint_path(old, out_dir, steps[i]);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", old);
        if (system(cmd) != 0) fprintf(stderr, "warning: could not remove the old checkpoint %s\n", old);
    }
    free(steps);
    return 0;
}

int packed_init(PackedBatch *pb, int B_max, int T_max) {
    memset(pb, 0, sizeof *pb);
    pb->B_max = B_max;
    pb->T_max = T_max;
    size_t n = (size_t)B_max * T_max;
    pb->inputs = grpo_malloc(sizeof(int) * n, "packed batch");
    pb->targets = grpo_malloc(sizeof(int) * n, "packed batch");
    pb->mask = grpo_malloc(sizeof(float) * n, "packed batch");
    pb->offsets = grpo_malloc(sizeof(int) * (B_max + 1), "packed batch");
    if (!pb->inputs || !pb->targets || !pb->mask || !pb->offsets) {
        packed_free(pb);
        return -1;
    }
    return 0;
}

void packed_free(PackedBatch *pb) {
    free(pb->inputs);
    free(pb->targets);
    free(pb->mask);
    free(pb->offsets);
    memset(pb, 0, sizeof *pb);
}

int packed_fill(PackedBatch *pb, const int *const *prompt, const int *prompt_len, const int *const *completion,
                const int *completion_len, int n) {
    CHECK(n >= 1 && n <= pb->B_max, "%d sequences: the batch holds 1 to %d", n, pb->B_max);
    int T = 1;
    for (int b = 0; b < n; b++) {
        int len = prompt_len[b] + completion_len[b] - 1;
        CHECK(prompt_len[b] >= 1 && completion_len[b] >= 1, "sequence %d: prompt %d and completion %d tokens, "
              "both must be >= 1", b, prompt_len[b], completion_len[b]);
        CHECK(len <= pb->T_max, "sequence %d: %d + %d tokens exceed the sized length %d + 1", b, prompt_len[b],
              completion_len[b], pb->T_max);
        if (len > T) T = len;
    }
    pb->B = n;
    pb->T = T;
    for (int b = 0; b <= n; b++) pb->offsets[b] = b * T;
    for (int b = 0; b < n; b++) {
        int Tp = prompt_len[b], Tc = completion_len[b];
        int *in = pb->inputs + (size_t)b * T, *tg = pb->targets + (size_t)b * T;
        float *mk = pb->mask + (size_t)b * T;
        for (int t = 0; t < T; t++) {
            int tok = t < Tp ? prompt[b][t] : t < Tp + Tc ? completion[b][t - Tp] : 0;
            int next = t + 1 < Tp ? -1 : t + 1 < Tp + Tc ? completion[b][t + 1 - Tp] : -1;
            in[t] = tok;
            tg[t] = next;
            mk[t] = next >= 0 ? 1.0f : 0.0f;
        }
    }
    return 0;
}

void packed_scatter(const PackedBatch *pb, float *out, const float *const *vals, const int *prompt_len,
                    const int *completion_len) {
    memset(out, 0, sizeof(float) * pb->B * pb->T);
    for (int b = 0; b < pb->B; b++)
        for (int j = 0; j < completion_len[b]; j++) out[(size_t)b * pb->T + prompt_len[b] + j - 1] = vals[b][j];
}
