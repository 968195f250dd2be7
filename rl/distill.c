// Distillation: teacher traces through a rejection filter into the student's SFT set, with an optional
// online logit term; the run database, the export and the held-out evaluations.
#include "rl/distill.h"
#include "common/config_tree.h"
#include "common/error.h"
#include "common/fileio.h"
#include "datasets/dataset.h"
#include "policy/layers.h"
#include "rl/run.h"
#include "rl/store.h"
#include "rollout/sampler.h"
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

// ------------------------------------------------------------------------------------------------
// The rejection filter

const char *trace_fate_name(TraceFate f) {
    static const char *const names[TRACE_FATES] = {"accepted", "wrong", "malformed", "truncated", "too_long",
                                                   "duplicate", "over_limit"};
    return f >= 0 && f < TRACE_FATES ? names[f] : "?";
}

// A candidate's place in the selection order: by prompt, then key, then sample.
typedef struct {
    int prompt, sample, idx;
    uint64_t key;
} Candidate;

static int by_selection(const void *a, const void *b) {
    const Candidate *x = a, *y = b;
    if (x->prompt != y->prompt) return x->prompt < y->prompt ? -1 : 1;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->sample > y->sample) - (x->sample < y->sample);
}

static TraceFate alone(const Trace *t, const AcceptOptions *o) {
    bool correct = isnan(o->min_reward) ? t->correct : t->reward >= o->min_reward;
    if (!correct) return TRACE_WRONG;
    if (!t->well_formed) return TRACE_MALFORMED;
    if (t->truncated) return TRACE_TRUNCATED;
    if (o->max_tokens > 0 && t->n_tokens > o->max_tokens) return TRACE_TOO_LONG;
    return TRACE_ACCEPTED;
}

int distill_filter(TraceFate *fate, const Trace *traces, int n, const AcceptOptions *o) {
    if (!o->filter) {
        for (int i = 0; i < n; i++) fate[i] = TRACE_ACCEPTED;
        return n;
    }
    Candidate *c = grpo_malloc(sizeof *c * (size_t)(n > 0 ? n : 1), "filter candidates");
    if (!c) return -1;
    int nc = 0;
    for (int i = 0; i < n; i++) {
        const Trace *t = &traces[i];
        fate[i] = alone(t, o);
        if (fate[i] != TRACE_ACCEPTED) continue;
        // random: a key per (prompt, sample) from the seed, so the order does not depend on the other traces
        uint64_t key = o->select == SELECT_SHORTEST ? (uint64_t)t->n_tokens
                                                    : rng_stream(o->seed, (uint64_t)t->prompt, (uint64_t)t->sample);
        c[nc++] = (Candidate){t->prompt, t->sample, i, key};
    }
    qsort(c, (size_t)nc, sizeof *c, by_selection);
    int accepted = 0;
    for (int s = 0, e; s < nc; s = e) {
        int kept = 0;
        for (e = s; e < nc && c[e].prompt == c[s].prompt; e++) {
            int i = c[e].idx;
            bool dup = false;
            for (int j = s; o->dedupe && !dup && j < e; j++)
                dup = fate[c[j].idx] == TRACE_ACCEPTED && !strcmp(traces[c[j].idx].text, traces[i].text);
            if (dup) fate[i] = TRACE_DUPLICATE;
            else if (o->per_prompt > 0 && kept == o->per_prompt) fate[i] = TRACE_OVER_LIMIT;
            else kept++;
        }
        accepted += kept;
    }
    free(c);
    return accepted;
}

// ------------------------------------------------------------------------------------------------
// Tokenizers and export

int distill_check_tokenizers(const Tokenizer *teacher, const char *teacher_src, const Tokenizer *student,
                             const char *student_src) {
#define DIFFER "the teacher's tokenizer (%s) and the student's (%s) differ: "
#define HINT "; distillation needs the same tokenizer (same_tokenizer: false distils the text alone, without logit_kd)"
    int vt = tokenizer_vocab_size(teacher), vs = tokenizer_vocab_size(student);
    CHECK(vt == vs, DIFFER "%d and %d tokens" HINT, teacher_src, student_src, vt, vs);
    for (int id = 0; id < vt; id++) {
        const char *a = tokenizer_id_to_token(teacher, id), *b = tokenizer_id_to_token(student, id);
        CHECK((!a && !b) || (a && b && !strcmp(a, b)), DIFFER "id %d is \"%.40s\" in the teacher's and \"%.40s\" in "
              "the student's" HINT, teacher_src, student_src, id, a ? a : "(none)", b ? b : "(none)");
        CHECK(tokenizer_is_special(teacher, id) == tokenizer_is_special(student, id),
              DIFFER "id %d (\"%.40s\") is special in one of them only" HINT, teacher_src, student_src, id,
              a ? a : "(none)");
    }
    CHECK(tokenizer_bos_id(teacher) == tokenizer_bos_id(student) &&
              tokenizer_eos_id(teacher) == tokenizer_eos_id(student),
          DIFFER "bos %d / eos %d against bos %d / eos %d" HINT, teacher_src, student_src, tokenizer_bos_id(teacher),
          tokenizer_eos_id(teacher), tokenizer_bos_id(student), tokenizer_eos_id(student));
#undef DIFFER
#undef HINT
    return 0;
}

static cJSON *message(const char *role, const char *content) {
    cJSON *m = cJSON_CreateObject();
    if (m && (!cJSON_AddStringToObject(m, "role", role) || !cJSON_AddStringToObject(m, "content", content))) {
        cJSON_Delete(m);
        return NULL;
    }
    return m;
}

// One record of the chat form, or NULL when out of memory.
static char *messages_line(const SftPair *p) {
    cJSON *rec = cJSON_CreateObject(), *msgs = cJSON_AddArrayToObject(rec, "messages");
    bool ok = msgs && (!p->system || cJSON_AddItemToArray(msgs, message("system", p->system))) &&
              cJSON_AddItemToArray(msgs, message("user", p->prompt)) &&
              cJSON_AddItemToArray(msgs, message("assistant", p->completion)) &&
              (!p->id || cJSON_AddStringToObject(rec, "id", p->id));
    char *line = ok ? cJSON_PrintUnformatted(rec) : NULL;
    cJSON_Delete(rec);
    return line;
}

int distill_export_jsonl(const char *path, const SftPair *pairs, int n) {
    AtomicFile af;
    TRY(atomic_open(&af, path));
    for (int i = 0; i < n; i++) {
        char *line = messages_line(&pairs[i]);
        if (!line) {
            atomic_abort(&af);
            return ERR("%s: out of memory writing pair %d", path, i);
        }
        fputs(line, af.f);
        fputc('\n', af.f);
        free(line);
    }
    return atomic_commit(&af);
}

// ------------------------------------------------------------------------------------------------
// Logit distillation

int distill_kd_init(DistillKd *kd, Model *teacher, const Model *student, const LogitKd *opt, int B_max, int T_max) {
    memset(kd, 0, sizeof *kd);
    int V = student->cfg.vocab_size, K = opt->top_k;
    CHECK(teacher->cfg.vocab_size == V, "logit_kd: the teacher's vocab_size %d and the student's %d differ: the "
          "logit term compares distributions over the same token ids", teacher->cfg.vocab_size, V);
    CHECK(K >= 1 && K <= V, "logit_kd.top_k %d: expected 1 to the vocabulary size %d", K, V);
    CHECK(opt->temperature > 0 && opt->weight >= 0, "logit_kd: temperature %g must be > 0 and weight %g >= 0",
          opt->temperature, opt->weight);
    TRY(model_alloc_acts(teacher, B_max, T_max));
    kd->teacher = teacher;
    kd->opt = *opt;
    kd->N_max = B_max * T_max;
    size_t NK = (size_t)kd->N_max * K, N = (size_t)kd->N_max;
    kd->ids = grpo_malloc(sizeof(int) * NK, "logit_kd top-k");
    kd->tlogp = grpo_malloc(sizeof(float) * NK, "logit_kd top-k");
    kd->p = grpo_malloc(sizeof(float) * NK, "logit_kd top-k");
    kd->mask = grpo_malloc(sizeof(float) * N, "logit_kd rows");
    kd->kl = grpo_malloc(sizeof(float) * N, "logit_kd rows");
    kd->lse = grpo_malloc(sizeof(float) * N, "logit_kd rows");
    kd->dkl = grpo_malloc(sizeof(float) * N, "logit_kd rows");
    kd->first_kl = kd->last_kl = NAN;
    if (kd->ids && kd->tlogp && kd->p && kd->mask && kd->kl && kd->lse && kd->dkl) return 0;
    distill_kd_free(kd);
    return -1;
}

void distill_kd_free(DistillKd *kd) {
    free(kd->ids), free(kd->tlogp), free(kd->p), free(kd->mask), free(kd->kl), free(kd->lse), free(kd->dkl);
    memset(kd, 0, sizeof *kd);
}

// Model.head_extra: the teacher's top-k over the student's micro-batch, then the KL head's gradient.
static void kd_head(void *ctx, Model *m, const float *dlogp, float *dxf) {
    DistillKd *kd = ctx;
    Model *t = kd->teacher;
    int N = m->B * m->T, K = kd->opt.top_k, C = m->cfg.hidden_size, V = m->cfg.vocab_size, rows = 0;
    float T = kd->opt.temperature, scale = kd->opt.weight * T * T;
    for (int n = 0; n < N; n++) {
        kd->mask[n] = dlogp[n] != 0.0f;
        kd->dkl[n] = scale * fabsf(dlogp[n]);
        rows += dlogp[n] != 0.0f;
    }
    if (!rows || kd->rc) return;
    if (model_forward_hidden(t, m->inputs, m->B, m->T) != 0) {
        kd->rc = grpo_error_context("logit_kd: the teacher's forward");
        return;
    }
    topk_logprob_forward(kd->ids, kd->tlogp, t->head_scratch, t->xf, t->lm_head, kd->mask, N, t->cfg.hidden_size, V, K,
                         t->chunk, 1.0f / T);
    topk_kl_forward(kd->kl, kd->lse, kd->p, m->head_scratch, m->xf, m->lm_head, kd->ids, kd->tlogp, N, C, V, K,
                    m->chunk, 1.0f / T);
    topk_kl_backward(dxf, m->dlm_head, m->head_scratch, kd->dkl, m->xf, m->lm_head, kd->lse, kd->ids, kd->p, N, C, V,
                     K, m->chunk, 1.0f / T);
    double sum = 0.0;
    for (int n = 0; n < N; n++) sum += kd->mask[n] * kd->kl[n];
    kd->last_kl = sum / rows;
    if (kd->calls++ == 0) kd->first_kl = kd->last_kl;
}

void distill_kd_attach(DistillKd *kd, Model *student) {
    student->head_extra = kd_head;
    student->head_extra_ctx = kd;
}

void distill_kd_detach(Model *student) {
    student->head_extra = NULL;
    student->head_extra_ctx = NULL;
}

// ------------------------------------------------------------------------------------------------
// Config

cJSON *distill_defaults(void) {
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "teacher", "");
    cJSON_AddStringToObject(d, "student", "");
    cJSON_AddNumberToObject(d, "init_seed", 1);
    cJSON_AddNumberToObject(d, "init_std", 0.02);
    cJSON_AddBoolToObject(d, "same_tokenizer", true);
    cJSON *data = cJSON_AddObjectToObject(d, "data");
    run_data_add_defaults(data);
    cJSON_AddNumberToObject(data, "max_prompts", 0);
    cJSON_AddStringToObject(data, "heldout", "");
    cJSON_AddNumberToObject(data, "heldout_frac", 0.0);
    cJSON_AddNumberToObject(data, "max_heldout", 0);
    cJSON_AddNumberToObject(data, "split_seed", 1);
    cJSON *rw = cJSON_AddArrayToObject(d, "rewards");
    cJSON *math = cJSON_CreateObject();
    cJSON_AddStringToObject(math, "name", "math");
    cJSON_AddItemToArray(rw, math);
    cJSON *s = cJSON_AddObjectToObject(d, "sample");
    cJSON_AddNumberToObject(s, "k", 4);
    run_sampling_add_defaults(s, 128);
    cJSON_AddNumberToObject(s, "seed", 1);
    cJSON_AddBoolToObject(d, "filter", true);
    cJSON *a = cJSON_AddObjectToObject(d, "accept");
    cJSON_AddNullToObject(a, "min_reward");
    cJSON_AddStringToObject(a, "format", "");
    cJSON_AddNumberToObject(a, "max_tokens", 0);
    cJSON_AddBoolToObject(a, "dedupe", true);
    cJSON_AddNumberToObject(a, "per_prompt", 0);
    cJSON_AddStringToObject(a, "select", "shortest");
    cJSON_AddNumberToObject(a, "seed", 1);
    cJSON *kd = cJSON_AddObjectToObject(d, "logit_kd");
    cJSON_AddNumberToObject(kd, "weight", 0.0);
    cJSON_AddNumberToObject(kd, "top_k", 20);
    cJSON_AddNumberToObject(kd, "temperature", 1.0);
    cJSON_AddItemToObject(d, "sft", sft_options_defaults());
    cJSON *e = cJSON_AddObjectToObject(d, "eval");
    cJSON_AddNumberToObject(e, "k", 4);
    cJSON_AddNumberToObject(e, "max_new_tokens", 0);
    cJSON_AddNumberToObject(e, "temperature", 0.6);
    cJSON_AddNumberToObject(e, "top_p", 0.95);
    cJSON_AddNumberToObject(e, "seed", 1);
    cJSON_AddStringToObject(d, "export", "");
    return d;
}

// Everything the run reads from the config, read and checked once.
typedef struct {
    const char *teacher, *student, *heldout, *export_path, *accept_format;
    RunData data;
    int64_t init_seed, split_seed;
    double init_std, heldout_frac;
    int max_prompts, max_heldout;
    bool same_tokenizer;
    EvalOptions sample, eval;   // the teacher's traces; the held-out evaluations
    AcceptOptions accept;
    LogitKd kd;
    SftConfig sft;
} DistillCfg;

static int cfg_seed(const cJSON *t, const char *path, uint64_t *out) {
    int64_t v;
    TRY(cfg_int64(t, path, &v));
    *out = (uint64_t)v;
    return 0;
}

static int read_sample(DistillCfg *c, const cJSON *t) {
    RolloutConfig *r = &c->sample.rollout;
    TRY(cfg_int(t, "sample.k", &r->group_size));
    TRY(cfg_seed(t, "sample.seed", &c->sample.seed));
    TRY(run_sampling_read(t, "sample", r));
    CHECK(r->group_size >= 1 && r->group_size <= EVAL_MAX_K, "sample.k %d: expected 1 to %d", r->group_size,
          EVAL_MAX_K);
    CHECK(r->max_batch >= r->group_size, "sample.max_batch %d: expected at least sample.k %d", r->max_batch,
          r->group_size);
    return 0;
}

static int read_eval(DistillCfg *c, const cJSON *t) {
    RolloutConfig *r = &c->eval.rollout; // stop strings, batch and budget: the sampling's
    r->sampler = sampler_defaults();
    TRY(cfg_int(t, "eval.k", &r->group_size));
    TRY(cfg_int(t, "eval.max_new_tokens", &r->max_new_tokens));
    TRY(cfg_f32(t, "eval.temperature", &r->sampler.temperature));
    TRY(cfg_f32(t, "eval.top_p", &r->sampler.top_p));
    TRY(cfg_seed(t, "eval.seed", &c->eval.seed));
    CHECK(r->group_size >= 1 && r->group_size <= EVAL_MAX_K, "eval.k %d: expected 1 to %d", r->group_size, EVAL_MAX_K);
    CHECK(r->max_new_tokens >= 0, "eval.max_new_tokens %d: expected >= 0 (0 = sample.max_new_tokens)",
          r->max_new_tokens);
    if (r->max_new_tokens == 0) r->max_new_tokens = c->sample.rollout.max_new_tokens;
    if (r->max_batch < r->group_size) r->max_batch = r->group_size;
    if (sampler_check(&r->sampler) != 0) return grpo_error_context("eval");
    return 0;
}

static int read_accept(DistillCfg *c, const cJSON *t) {
    AcceptOptions *a = &c->accept;
    const char *select;
    TRY(cfg_bool(t, "filter", &a->filter));
    const cJSON *mr = cfg_get(t, "accept.min_reward");
    if (!mr) return -1;
    CHECK(cJSON_IsNull(mr) || cJSON_IsNumber(mr), "accept.min_reward: expected a number or null (null: the first "
          "reward's verdict decides), found %s", cfg_type_name(mr));
    a->min_reward = cJSON_IsNumber(mr) ? mr->valuedouble : NAN;
    TRY(cfg_str(t, "accept.format", &c->accept_format));
    TRY(cfg_int(t, "accept.max_tokens", &a->max_tokens));
    TRY(cfg_bool(t, "accept.dedupe", &a->dedupe));
    TRY(cfg_int(t, "accept.per_prompt", &a->per_prompt));
    TRY(cfg_str(t, "accept.select", &select));
    TRY(cfg_seed(t, "accept.seed", &a->seed));
    CHECK(a->max_tokens >= 0 && a->per_prompt >= 0, "accept.max_tokens and accept.per_prompt: expected >= 0 (0 = no "
          "limit)");
    if (!strcmp(select, "shortest")) a->select = SELECT_SHORTEST;
    else if (!strcmp(select, "random")) a->select = SELECT_RANDOM;
    else return ERR("accept.select \"%s\": expected \"shortest\" or \"random\"", select);
    return 0;
}

static int read_cfg(DistillCfg *c, const cJSON *t) {
    memset(c, 0, sizeof *c);
    TRY(cfg_str(t, "teacher", &c->teacher));
    TRY(cfg_str(t, "student", &c->student));
    TRY(cfg_int64(t, "init_seed", &c->init_seed));
    TRY(cfg_float(t, "init_std", &c->init_std));
    TRY(cfg_bool(t, "same_tokenizer", &c->same_tokenizer));
    TRY(run_data_read(t, "data", &c->data));
    TRY(cfg_int(t, "data.max_prompts", &c->max_prompts));
    TRY(cfg_str(t, "data.heldout", &c->heldout));
    TRY(cfg_float(t, "data.heldout_frac", &c->heldout_frac));
    TRY(cfg_int(t, "data.max_heldout", &c->max_heldout));
    TRY(cfg_int64(t, "data.split_seed", &c->split_seed));
    TRY(sft_options_read(t, "sft", &c->sft));
    c->sample = eval_defaults();
    c->sample.tmpl = c->sft.tmpl;
    c->sample.system = c->sft.system;
    c->sample.label = "teacher traces";
    TRY(read_sample(c, t));
    c->eval = c->sample;
    TRY(read_eval(c, t));
    TRY(read_accept(c, t));
    TRY(cfg_f32(t, "logit_kd.weight", &c->kd.weight));
    TRY(cfg_int(t, "logit_kd.top_k", &c->kd.top_k));
    TRY(cfg_f32(t, "logit_kd.temperature", &c->kd.temperature));
    TRY(cfg_str(t, "export", &c->export_path));

    CHECK(c->teacher[0], "teacher: required (a model directory: config.json, weights, tokenizer.json)");
    CHECK(c->student[0], "student: required (a model directory, or a model config .json to random-initialise)");
    CHECK(c->max_prompts >= 0 && c->max_heldout >= 0, "data.max_prompts and data.max_heldout: expected >= 0 (0 = all)");
    CHECK(c->heldout_frac >= 0 && c->heldout_frac < 1, "data.heldout_frac %g: expected in [0, 1)", c->heldout_frac);
    CHECK(!(c->heldout[0] && c->heldout_frac > 0), "data: set data.heldout (a JSONL file) or data.heldout_frac, not "
          "both");
    CHECK(c->kd.weight >= 0 && c->kd.temperature > 0 && c->kd.top_k >= 1, "logit_kd: weight %g >= 0, temperature %g "
          "> 0 and top_k %d >= 1 expected", c->kd.weight, c->kd.temperature, c->kd.top_k);
    CHECK(c->same_tokenizer || c->kd.weight == 0, "same_tokenizer is false but logit_kd.weight is %g: the logit term "
          "compares distributions over the same token ids", c->kd.weight);
    return 0;
}

cJSON *distill_config_load(const char *path, const char *const *sets, int nsets) {
    cJSON *def = distill_defaults();
    cJSON *t = def ? cfg_load(def, path, sets, nsets) : NULL;
    cJSON_Delete(def);
    if (!t) return NULL;
    DistillCfg c;
    RewardSet rs;
    int rc = read_cfg(&c, t);
    if (rc == 0) rc = reward_set_create(&rs, cfg_get(t, "rewards"));
    if (rc == 0) reward_set_destroy(&rs);
    if (rc != 0) {
        if (path) grpo_error_context("%s", path);
        cJSON_Delete(t);
        return NULL;
    }
    return t;
}

// ------------------------------------------------------------------------------------------------
// The run

// One sampled trace as kept from the evaluation loop.
typedef struct {
    char *text;
    int n_tokens;
    FinishReason finish;
    float reward;
    bool correct;
    RewardDetail detail;
} Sampled;

typedef struct {
    DistillCfg c;
    const cJSON *tree;
    const char *out;
    FILE *log;
    Model teacher, student;
    Tokenizer *ttok, *stok;
    char stok_src[PATH_MAX], student_dir[PATH_MAX];
    RewardSet rewards;
    Reward format;            // accept.format's pattern (name "" when there is none)
    TaskList train, heldout;
    Store *store;
    int64_t run_id;
    int n;                    // traces: train.n prompts x k samples, trace i = prompt i / k, sample i % k
    Sampled *sampled;         // (n)
    Trace *traces;            // (n)
    TraceFate *fate;          // (n)
    SftData pairs;            // the accepted traces
    DistillKd kd;
} Distill;

#define SAY(d, ...) do { if ((d)->log) { fprintf((d)->log, __VA_ARGS__); fflush((d)->log); } } while (0)

static int load_models(Distill *d) {
    const DistillCfg *c = &d->c;
    CHECK(path_is_dir(c->teacher), "teacher %s: expected a model directory (config.json, weights, tokenizer.json)",
          c->teacher);
    TRY(model_load(&d->teacher, c->teacher));
    if (!(d->ttok = tokenizer_load(c->teacher))) return -1;
    snprintf(d->student_dir, sizeof d->student_dir, "%s/student", d->out);
    TRY(run_load_policy(&d->student, &d->stok, d->stok_src, c->student, (uint64_t)c->init_seed, (float)c->init_std,
                        d->student_dir));
    if (c->same_tokenizer) TRY(distill_check_tokenizers(d->ttok, c->teacher, d->stok, d->stok_src));
    SAY(d, "distill: teacher %s (%.2fM parameters), student %s (%.2fM)%s\n", c->teacher, d->teacher.n_params / 1e6,
        c->student, d->student.n_params / 1e6, c->same_tokenizer ? "; the same tokenizer" : "");
    return 0;
}

// The file stem of a path ("data/gsm8k_test.jsonl" -> "gsm8k_test").
static void stem(char *out, size_t cap, const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strcspn(base, ".");
    snprintf(out, cap, "%.*s", (int)n, base);
}

static void truncate_list(TaskList *l, int max) {
    while (max > 0 && l->n > max) task_free(&l->tasks[--l->n]);
}

// The training prompts and the held-out split; names the held-out set for the evals rows.
static int load_tasks(Distill *d, DistillResult *res) {
    const DistillCfg *c = &d->c;
    TaskList all = {0};
    char name[96];
    TRY(run_data_load(&c->data, "distill", &all));
    if (c->data.train[0]) stem(name, sizeof name, c->data.train);
    else snprintf(name, sizeof name, "%s", c->data.syn_kind);
    if (c->heldout_frac > 0) {
        int rc = tasks_split(&all, c->heldout_frac, (uint64_t)c->split_seed, &d->train, &d->heldout);
        tasks_free(&all);
        TRY(rc);
        snprintf(res->heldout_name, sizeof res->heldout_name, "%s-heldout", name);
    } else {
        d->train = all;
        if (c->heldout[0]) {
            TRY(run_data_load_file(&c->data, c->heldout, "distill", &d->heldout));
            stem(res->heldout_name, sizeof res->heldout_name, c->heldout);
        }
    }
    truncate_list(&d->train, c->max_prompts);
    truncate_list(&d->heldout, c->max_heldout);
    CHECK(d->train.n > 0, "no training prompts (data.heldout_frac %g left none)", c->heldout_frac);
    if (!d->heldout.n) res->heldout_name[0] = 0;
    res->n_prompts = d->train.n;
    res->n_heldout = d->heldout.n;
    SAY(d, "distill: %d prompts x %d samples from the teacher; held-out: %s\n", d->train.n,
        c->sample.rollout.group_size, d->heldout.n ? res->heldout_name : "none (no evaluation)");
    return 0;
}

// Evaluates m on the held-out split and stores every metric as "<who>/<set>" at step.
static int evaluate(Distill *d, Model *m, Tokenizer *tok, const char *who, int64_t step, const char *set,
                    EvalResult *r) {
    char dataset[192];
    snprintf(dataset, sizeof dataset, "%s/%s", who, set);
    EvalOptions o = d->c.eval;
    o.label = dataset;
    o.progress = d->log != NULL;
    TRY(eval_run(r, m, tok, d->heldout.tasks, d->heldout.n, &d->rewards, &o));
    TRY(eval_store(d->store, d->run_id, step, dataset, r));
    SAY(d, "distill: %s at step %lld: pass@1 %.1f%%, mean reward %.3f, %.0f tokens\n", dataset, (long long)step,
        100 * r->pass_at[0], r->mean_reward, r->n_samples ? (double)r->n_tokens / r->n_samples : 0.0);
    return 0;
}

static int collect(void *ctx, const EvalSample *s) {
    Distill *d = ctx;
    Sampled *o = &d->sampled[(size_t)s->task_idx * d->c.sample.rollout.group_size + s->sample_idx];
    if (!(o->text = strdup(s->completion))) return ERR("out of memory keeping the teacher's traces");
    o->n_tokens = s->n_tokens;
    o->finish = s->finish;
    o->reward = s->reward;
    o->correct = s->correct;
    o->detail = *s->detail;
    return 0;
}

// Whether each trace matches accept.format (all do when there is no pattern).
static int check_format(Distill *d, bool *ok) {
    if (!d->format.name[0]) {
        for (int i = 0; i < d->n; i++) ok[i] = true;
        return 0;
    }
    int k = d->c.sample.rollout.group_size;
    const Task **tasks = grpo_malloc(sizeof *tasks * (size_t)d->n, "format check");
    const char **texts = grpo_malloc(sizeof *texts * (size_t)d->n, "format check");
    float *score = grpo_malloc(sizeof *score * (size_t)d->n, "format check");
    int rc = tasks && texts && score ? 0 : -1;
    for (int i = 0; rc == 0 && i < d->n; i++) tasks[i] = &d->train.tasks[i / k], texts[i] = d->sampled[i].text;
    if (rc == 0) reward_score_batch(&d->format, tasks, texts, d->n, score, NULL);
    for (int i = 0; rc == 0 && i < d->n; i++) ok[i] = score[i] > 0;
    free(tasks), free(texts), free(score);
    return rc;
}

// k traces of every training prompt from the teacher, scored, then through the filter.
static int sample_traces(Distill *d, EvalResult *r, DistillResult *res) {
    const DistillCfg *c = &d->c;
    int k = c->sample.rollout.group_size;
    d->n = d->train.n * k;
    d->sampled = grpo_calloc((size_t)d->n, sizeof *d->sampled, "teacher traces");
    d->traces = grpo_calloc((size_t)d->n, sizeof *d->traces, "teacher traces");
    d->fate = grpo_calloc((size_t)d->n, sizeof *d->fate, "teacher traces");
    bool *formed = grpo_calloc((size_t)d->n, sizeof *formed, "teacher traces");
    int rc = d->sampled && d->traces && d->fate && formed ? 0 : -1;
    EvalOptions o = c->sample;
    o.progress = d->log != NULL;
    o.on_sample = collect;
    o.on_sample_ctx = d;
    if (rc == 0) rc = eval_run(r, &d->teacher, d->ttok, d->train.tasks, d->train.n, &d->rewards, &o);
    if (rc == 0) rc = check_format(d, formed);
    for (int i = 0; rc == 0 && i < d->n; i++) {
        const Sampled *s = &d->sampled[i];
        d->traces[i] = (Trace){.prompt = i / k, .sample = i % k, .text = s->text, .n_tokens = s->n_tokens,
                               .truncated = s->finish == FINISH_LENGTH, .reward = s->reward, .correct = s->correct,
                               .well_formed = formed[i]};
    }
    free(formed);
    TRY(rc);
    if ((res->n_accepted = distill_filter(d->fate, d->traces, d->n, &c->accept)) < 0) return -1;
    res->n_traces = d->n;
    for (int i = 0; i < d->n; i++) res->fates[d->fate[i]]++;
    for (int p = 0; p < d->train.n; p++) {
        int any = 0;
        for (int g = 0; g < k; g++) any |= d->fate[p * k + g] == TRACE_ACCEPTED;
        res->prompts_covered += any;
    }
    SAY(d, "distill: %d traces, %ld correct (teacher pass@1 %.1f%% on the prompts), %d accepted (%.1f%%) covering "
        "%d of %d prompts%s\n", d->n, r->n_correct, 100 * r->pass_at[0], res->n_accepted,
        100.0 * res->n_accepted / d->n, res->prompts_covered, d->train.n,
        c->accept.filter ? "" : " (filter off: every trace)");
    for (int f = 1; f < TRACE_FATES; f++)
        if (res->fates[f]) SAY(d, "distill:   rejected %-10s %d\n", trace_fate_name(f), res->fates[f]);
    return 0;
}

// The step-0 row: what the sampling gave, by name.
static char *sampling_metrics(const Distill *d, const EvalResult *r, const DistillResult *res, StepRecord *st) {
    double sum = 0, sq = 0, len = 0, acc_len = 0, truncated = 0, len_max = 0;
    for (int i = 0; i < d->n; i++) {
        const Sampled *s = &d->sampled[i];
        sum += s->reward, sq += (double)s->reward * s->reward, len += s->n_tokens;
        truncated += s->finish == FINISH_LENGTH;
        len_max = s->n_tokens > len_max ? s->n_tokens : len_max;
        if (d->fate[i] == TRACE_ACCEPTED) acc_len += s->n_tokens;
    }
    st->reward_mean = sum / d->n;
    st->reward_std = d->n > 1 ? sqrt(fmax(0.0, (sq - sum * sum / d->n) / (d->n - 1))) : 0.0;
    st->accuracy = (double)r->n_correct / d->n;
    st->len_mean = len / d->n;
    st->len_max = len_max;
    st->truncated_frac = truncated / d->n;
    st->seconds = r->seconds;
    st->rollout_tok_s = r->seconds > 0 ? len / r->seconds : NAN;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "distill/prompts", d->train.n);
    cJSON_AddNumberToObject(j, "distill/traces", d->n);
    cJSON_AddNumberToObject(j, "distill/accepted", res->n_accepted);
    cJSON_AddNumberToObject(j, "distill/accept_rate", (double)res->n_accepted / d->n);
    cJSON_AddNumberToObject(j, "distill/prompts_covered", res->prompts_covered);
    if (res->n_accepted) cJSON_AddNumberToObject(j, "distill/accepted_len_mean", acc_len / res->n_accepted);
    for (int f = 1; f < TRACE_FATES; f++) {
        char key[48];
        snprintf(key, sizeof key, "distill/rejected/%s", trace_fate_name(f));
        cJSON_AddNumberToObject(j, key, res->fates[f]);
    }
    char key[32];
    snprintf(key, sizeof key, "teacher/pass@%d", r->k);
    cJSON_AddNumberToObject(j, "teacher/pass@1", r->pass_at[0]);
    cJSON_AddNumberToObject(j, key, r->pass_at[r->n_pass - 1]);
    cJSON_AddNumberToObject(j, "reward/mean", st->reward_mean);
    cJSON_AddNumberToObject(j, "reward/std", st->reward_std);
    cJSON_AddNumberToObject(j, "accuracy", st->accuracy);
    cJSON_AddNumberToObject(j, "completion/len_mean", st->len_mean);
    cJSON_AddNumberToObject(j, "completion/len_max", st->len_max);
    cJSON_AddNumberToObject(j, "completion/truncated_frac", st->truncated_frac);
    cJSON_AddNumberToObject(j, "time/sample", r->seconds);
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!text) ERR("out of memory writing the sampling metrics");
    return text;
}

// Each reward's unweighted value, "accepted" and, for a rejected trace, "reject"; NULL when out of memory.
static char *parts_json(const RewardDetail *det, TraceFate fate) {
    cJSON *j = cJSON_CreateObject();
    for (int p = 0; p < det->nparts; p++) cJSON_AddNumberToObject(j, det->parts[p].name, det->parts[p].value);
    cJSON_AddNumberToObject(j, "accepted", fate == TRACE_ACCEPTED);
    if (fate != TRACE_ACCEPTED) cJSON_AddStringToObject(j, "reject", trace_fate_name(fate));
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return text;
}

// Every trace as an episode of step 0, with the step's row, in one transaction.
static int write_traces(Distill *d, const EvalResult *r, const DistillResult *res) {
    const DistillCfg *c = &d->c;
    int k = c->sample.rollout.group_size, P = d->train.n;
    TokText *prompt = grpo_calloc((size_t)P, sizeof *prompt, "templated prompts");
    EpisodeRecord *eps = grpo_calloc((size_t)d->n, sizeof *eps, "episodes");
    char **parts = grpo_calloc((size_t)d->n, sizeof *parts, "episodes");
    StepRecord st = store_step_init(0);
    int rc = prompt && eps && parts && (st.metrics_json = sampling_metrics(d, r, res, &st)) ? 0 : -1;
    for (int p = 0; rc == 0 && p < P; p++) { // the prompt as the teacher saw it, as GRPO episodes record it
        TokIds ids = {0};
        rc = prompt_encode_text(&ids, &prompt[p], d->ttok, c->sft.tmpl, c->sft.system, d->train.tasks[p].prompt);
        tok_ids_free(&ids);
    }
    for (int i = 0; rc == 0 && i < d->n; i++) {
        const Sampled *s = &d->sampled[i];
        if (!(parts[i] = parts_json(&s->detail, d->fate[i]))) rc = ERR("out of memory writing the episodes");
        eps[i] = (EpisodeRecord){.task_id = d->train.tasks[i / k].id, .group_idx = i / k, .sample_idx = i % k,
                                 .prompt = prompt[i / k].s, .completion = s->text,
                                 .completion_tokens = s->n_tokens, .reward = s->reward, .reward_parts_json = parts[i],
                                 .advantage = NAN, .finish_reason = finish_reason_name(s->finish), .logprob_sum = NAN,
                                 .verdict = s->detail.verdict};
    }
    if (rc == 0) rc = store_write_step(d->store, d->run_id, &st, eps, d->n);
    for (int p = 0; prompt && p < P; p++) tok_text_free(&prompt[p]);
    for (int i = 0; parts && i < d->n; i++) free(parts[i]);
    free(prompt), free(eps), free(parts), free((char *)st.metrics_json);
    return rc;
}

// The accepted traces as SFT pairs (the task's own prompt: the student's template applies).
static int accepted_pairs(Distill *d, DistillResult *res) {
    int k = d->c.sample.rollout.group_size;
    const char *system = d->c.sft.system[0] ? d->c.sft.system : NULL;
    for (int i = 0; i < d->n; i++) {
        if (d->fate[i] != TRACE_ACCEPTED) continue;
        const Task *t = &d->train.tasks[i / k];
        TRY(sft_data_add(&d->pairs, &(SftPair){.id = t->id, .system = system, .prompt = t->prompt,
                                                .completion = d->sampled[i].text}));
    }
    CHECK(d->pairs.n > 0, "no trace was accepted (%d sampled, %d wrong, %d malformed, %d truncated, %d too long): "
          "nothing to train the student on; the traces are in %s/run.db", d->n, res->fates[TRACE_WRONG],
          res->fates[TRACE_MALFORMED], res->fates[TRACE_TRUNCATED], res->fates[TRACE_TOO_LONG], d->out);
    return 0;
}

static int train_student(Distill *d, DistillResult *res) {
    SftConfig sc = d->c.sft;
    sc.log = d->log;
    bool kd = d->c.kd.weight > 0;
    if (kd) {
        TRY(distill_kd_init(&d->kd, &d->teacher, &d->student, &d->c.kd, sc.micro_batch, sc.max_len - 1));
        distill_kd_attach(&d->kd, &d->student);
    }
    SAY(d, "distill: SFT of the student on %d traces%s into %s\n", d->pairs.n,
        kd ? ", with the teacher's top-k logits" : "", d->student_dir);
    int rc = sft_train(&sc, &d->student, d->stok, d->pairs.pairs, d->pairs.n, d->store, d->run_id, d->student_dir,
                       d->stok_src, &res->sft);
    distill_kd_detach(&d->student);
    if (kd) {
        if (rc == 0) rc = d->kd.rc;
        res->kd_kl_first = d->kd.first_kl;
        res->kd_kl_last = d->kd.last_kl;
        SAY(d, "distill: KL(teacher top-%d || student) at T %g: %.4f (first micro-batch) -> %.4f (last)\n",
            d->c.kd.top_k, d->c.kd.temperature, res->kd_kl_first, res->kd_kl_last);
    }
    return rc;
}

static int run(Distill *d, const char *export_path, DistillResult *res) {
    const DistillCfg *c = &d->c;
    char db[PATH_MAX + 16];
    snprintf(db, sizeof db, "%s/run.db", d->out);
    CHECK(!path_exists(db), "%s already holds a distillation run (%s): choose another output directory", d->out, db);
    TRY(mkdir_p(d->out));
    TRY(load_models(d)); // the tokenizer check: before any sampling
    TRY(reward_set_create(&d->rewards, cfg_get(d->tree, "rewards")));
    if (c->accept_format[0]) {
        cJSON *o = cJSON_CreateObject();
        int rc = o && cJSON_AddStringToObject(o, "pattern", c->accept_format) ? reward_create(&d->format, "format", o)
                                                                               : ERR("out of memory");
        cJSON_Delete(o);
        if (rc != 0) return grpo_error_context("accept.format");
    }
    TRY(load_tasks(d, res));
    if (!(d->store = store_open(db))) return -1;
    char *json = cJSON_PrintUnformatted(d->tree), model[2 * PATH_MAX + 8];
    snprintf(model, sizeof model, "%s -> %s", c->teacher, c->student);
    int rc = json ? store_begin_run(d->store, "distill", json, model, NULL, &d->run_id) : ERR("out of memory");
    free(json);
    TRY(rc);
    res->run_id = d->run_id;
    if (d->heldout.n) {
        TRY(evaluate(d, &d->teacher, d->ttok, "teacher", 0, res->heldout_name, &res->teacher));
        TRY(evaluate(d, &d->student, d->stok, "student", 0, res->heldout_name, &res->student_before));
    }
    EvalResult sampling;
    TRY(sample_traces(d, &sampling, res));
    TRY(write_traces(d, &sampling, res));
    TRY(accepted_pairs(d, res));
    const char *exp = export_path && export_path[0] ? export_path : c->export_path;
    if (exp[0]) {
        TRY(distill_export_jsonl(exp, d->pairs.pairs, d->pairs.n));
        SAY(d, "distill: %d accepted traces written to %s\n", d->pairs.n, exp);
    }
    TRY(train_student(d, res));
    if (d->heldout.n) TRY(evaluate(d, &d->student, d->stok, "student", res->sft.step, res->heldout_name,
                                   &res->student_after));
    return 0;
}

static void teardown(Distill *d) {
    for (int i = 0; d->sampled && i < d->n; i++) free(d->sampled[i].text);
    free(d->sampled), free(d->traces), free(d->fate);
    sft_data_free(&d->pairs);
    distill_kd_free(&d->kd);
    store_close(d->store);
    tasks_free(&d->train);
    tasks_free(&d->heldout);
    reward_destroy(&d->format);
    reward_set_destroy(&d->rewards);
    if (d->ttok) tokenizer_free(d->ttok);
    if (d->stok) tokenizer_free(d->stok);
    model_free(&d->teacher);
    model_free(&d->student);
}

int distill_run(const cJSON *cfg, const char *out_dir, const char *export_path, FILE *log, DistillResult *res) {
    memset(res, 0, sizeof *res);
    res->kd_kl_first = res->kd_kl_last = NAN;
    Distill *d = grpo_calloc(1, sizeof *d, "distillation");
    if (!d) return -1;
    double t0 = run_now();
    d->tree = cfg;
    d->out = out_dir;
    d->log = log;
    int rc = read_cfg(&d->c, cfg);
    if (rc == 0) rc = run(d, export_path, res);
    teardown(d);
    free(d);
    res->seconds = run_now() - t0;
    return rc;
}
