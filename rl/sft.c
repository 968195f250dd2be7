// Supervised fine-tuning: pairs from JSONL, synthetic traces or a run database, completion-only
// cross-entropy with gradient accumulation, checkpoints with the sampler's cursor, the run database.
#include "rl/sft.h"
#include "common/config_tree.h"
#include "common/error.h"
#include "common/fileio.h"
#include "datasets/dataset.h"
#include "policy/checkpoint.h"
#include "rollout/rollout.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------------
// Pairs

static void pair_free(SftPair *p) {
    free((char *)p->id);
    free((char *)p->system);
    free((char *)p->prompt);
    free((char *)p->completion);
}

// NULL stays NULL; false when out of memory.
static bool dup_opt(const char **dst, const char *src) {
    *dst = src ? strdup(src) : NULL;
    return !src || *dst;
}

int sft_data_add(SftData *d, const SftPair *p) {
    CHECK(p->prompt && p->completion, "%s: a pair needs a prompt and a completion", p->id ? p->id : "pair");
    if (d->n == d->cap) {
        int cap = d->cap ? 2 * d->cap : 64;
        SftPair *grown = realloc(d->pairs, sizeof *grown * (size_t)cap);
        if (!grown) return ERR("out of memory growing the pair list to %d", cap);
        d->pairs = grown, d->cap = cap;
    }
    SftPair *q = &d->pairs[d->n];
    *q = (SftPair){.templated = p->templated};
    if (!dup_opt(&q->id, p->id) || !dup_opt(&q->system, p->system) || !dup_opt(&q->prompt, p->prompt) ||
        !dup_opt(&q->completion, p->completion)) {
        pair_free(q);
        return ERR("out of memory copying pair %d", d->n);
    }
    d->n++;
    return 0;
}

void sft_data_free(SftData *d) {
    for (int i = 0; i < d->n; i++) pair_free(&d->pairs[i]);
    free(d->pairs);
    memset(d, 0, sizeof *d);
}

int sft_format_parse(const char *name, SftFormat *out) {
    static const char *const names[] = {"auto", "pairs", "messages"};
    for (int f = 0; f < 3; f++)
        if (name && !strcmp(name, names[f])) {
            *out = (SftFormat)f;
            return 0;
        }
    return ERR("unknown SFT data format \"%s\" (expected auto, pairs or messages)", name ? name : "(null)");
}

// null counts as absent.
static const cJSON *field(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNull(v) ? NULL : v;
}

#define FORMS "records are {\"prompt\", \"completion\"} or {\"messages\": [...]}"

static int parse_pair(SftPair *p, const cJSON *rec, const char *path, long line) {
    const cJSON *pr = field(rec, "prompt"), *co = field(rec, "completion"), *sy = field(rec, "system");
    CHECK(cJSON_IsString(pr), "%s:%ld: field \"prompt\": expected a string, found %s (" FORMS ")", path, line,
          cfg_type_name(pr));
    CHECK(cJSON_IsString(co), "%s:%ld: field \"completion\": expected a string, found %s (" FORMS ")", path, line,
          cfg_type_name(co));
    CHECK(!sy || cJSON_IsString(sy), "%s:%ld: field \"system\": expected a string, found %s", path, line,
          cfg_type_name(sy));
    p->prompt = pr->valuestring;
    p->completion = co->valuestring;
    p->system = sy ? sy->valuestring : NULL;
    return 0;
}

// One turn: an optional system message, the user's, the assistant's, in that order.
static int parse_messages(SftPair *p, const cJSON *rec, const char *path, long line) {
    static const char *const roles[] = {"system", "user", "assistant"};
    const cJSON *msgs = field(rec, "messages"), *msg;
    const char *text[3] = {NULL, NULL, NULL};
    int next = 0, i = 0;
    CHECK(cJSON_IsArray(msgs), "%s:%ld: field \"messages\": expected an array, found %s (" FORMS ")", path, line,
          cfg_type_name(msgs));
    cJSON_ArrayForEach(msg, msgs) {
        const cJSON *role = field(msg, "role"), *content = field(msg, "content");
        CHECK(cJSON_IsObject(msg), "%s:%ld: field \"messages[%d]\": expected an object, found %s", path, line, i,
              cfg_type_name(msg));
        CHECK(cJSON_IsString(role), "%s:%ld: field \"messages[%d].role\": expected a string, found %s", path, line,
              i, cfg_type_name(role));
        int r = 0;
        while (r < 3 && strcmp(role->valuestring, roles[r])) r++;
        CHECK(r < 3, "%s:%ld: field \"messages[%d].role\": \"%s\": expected system, user or assistant", path, line,
              i, role->valuestring);
        CHECK(cJSON_IsString(content), "%s:%ld: field \"messages[%d].content\": expected a string, found %s", path,
              line, i, cfg_type_name(content));
        CHECK(r >= next, "%s:%ld: field \"messages[%d]\": a %s message after the %s message: only one turn "
              "([system,] user, assistant) is supported", path, line, i, roles[r], roles[next - 1]);
        text[r] = content->valuestring;
        next = r + 1;
        i++;
    }
    CHECK(text[1] && text[2], "%s:%ld: field \"messages\": expected a user and an assistant message", path, line);
    p->system = text[0];
    p->prompt = text[1];
    p->completion = text[2];
    return 0;
}

static int load_line(SftData *d, const char *s, size_t n, SftFormat format, const char *path, long line) {
    size_t k = 0;
    while (k < n && (s[k] == ' ' || s[k] == '\t' || s[k] == '\r')) k++;
    if (k == n) return 0;
    cJSON *rec = cJSON_ParseWithLength(s, n);
    if (!rec) return ERR("%s:%ld: not valid JSON", path, line);
    int rc = 0;
    SftPair p = {0};
    if (!cJSON_IsObject(rec)) rc = ERR("%s:%ld: expected a JSON object, found %s", path, line, cfg_type_name(rec));
    else if (format == SFT_FORMAT_MESSAGES || (format == SFT_FORMAT_AUTO && field(rec, "messages")))
        rc = parse_messages(&p, rec, path, line);
    else rc = parse_pair(&p, rec, path, line);
    if (rc == 0) {
        const cJSON *id = field(rec, "id");
        char where[PATH_MAX + 32];
        snprintf(where, sizeof where, "%s:%ld", path, line);
        p.id = cJSON_IsString(id) ? id->valuestring : where;
        rc = sft_data_add(d, &p);
    }
    cJSON_Delete(rec);
    return rc;
}

int sft_data_load_jsonl(SftData *d, const char *path, SftFormat format) {
    size_t len;
    char *text = read_file(path, &len);
    if (!text) return -1;
    int before = d->n, rc = 0;
    long line = 0;
    for (char *s = text; rc == 0 && s < text + len;) {
        char *end = memchr(s, '\n', (size_t)(text + len - s));
        if (!end) end = text + len;
        rc = load_line(d, s, (size_t)(end - s), format, path, ++line);
        s = end + 1;
    }
    free(text);
    TRY(rc);
    CHECK(d->n > before, "%s: no pairs in the file", path);
    return 0;
}

int sft_data_from_tasks(SftData *d, const Task *tasks, int n) {
    for (int i = 0; i < n; i++) {
        const char *trace = task_trace(&tasks[i]);
        CHECK(trace, "task %s has no reference trace (meta \"trace\") to learn", tasks[i].id ? tasks[i].id : "?");
        TRY(sft_data_add(d, &(SftPair){.id = tasks[i].id, .prompt = tasks[i].prompt, .completion = trace}));
    }
    return 0;
}

static int add_episodes(SftData *d, EpisodeCursor *c, const char *db_path) {
    EpisodeRow r;
    int rc;
    while ((rc = store_episodes_next(c, &r)) == 1) {
        char id[512];
        snprintf(id, sizeof id, "%s (run %lld step %lld group %d sample %d)", r.task_id ? r.task_id : "episode",
                 (long long)r.run_id, (long long)r.step, r.group_idx, r.sample_idx);
        CHECK(r.prompt && r.completion, "%s: %s has no prompt or completion", db_path, id);
        TRY(sft_data_add(d, &(SftPair){.id = id, .prompt = r.prompt, .completion = r.completion, .templated = true}));
    }
    return rc;
}

int sft_data_from_db(SftData *d, const char *db_path, int64_t run_id, double min_reward) {
    Store *s = store_open_readonly(db_path);
    if (!s) return -1;
    EpisodeCursor c;
    int before = d->n, rc = store_episodes_open(&c, s, run_id, min_reward);
    if (rc == 0) {
        rc = add_episodes(d, &c, db_path);
        store_episodes_close(&c);
    }
    store_close(s);
    TRY(rc);
    if (d->n > before) return 0;
    if (run_id) return ERR("%s: no episode of run %lld has reward >= %g", db_path, (long long)run_id, min_reward);
    return ERR("%s: no episode has reward >= %g", db_path, min_reward);
}

int sft_data_from_config(SftData *d, const cJSON *tree) {
    const char *train, *format, *kind, *db, *ops;
    int n, difficulty;
    int64_t synth_seed, run_id;
    double min_reward;
    TRY(cfg_str(tree, "data.train", &train));
    TRY(cfg_str(tree, "data.format", &format));
    TRY(cfg_str(tree, "data.synthetic.kind", &kind));
    TRY(cfg_str(tree, "data.from_db", &db));
    int sources = !!train[0] + !!kind[0] + !!db[0];
    CHECK(sources > 0, "no training data: set data.train (a JSONL file of pairs), data.synthetic.kind (arithmetic or "
          "countdown) or data.from_db (a run database)");
    CHECK(sources == 1, "data.train, data.synthetic.kind and data.from_db are alternatives: set one of them");
    if (train[0]) {
        SftFormat f = SFT_FORMAT_AUTO;
        if (sft_format_parse(format, &f) != 0) return grpo_error_context("data.format");
        return sft_data_load_jsonl(d, train, f);
    }
    if (db[0]) {
        TRY(cfg_float(tree, "data.min_reward", &min_reward));
        TRY(cfg_int64(tree, "data.run_id", &run_id));
        CHECK(run_id >= 0, "data.run_id %lld: expected >= 0 (0 = every run)", (long long)run_id);
        return sft_data_from_db(d, db, run_id, min_reward);
    }
    TRY(cfg_int(tree, "data.synthetic.n", &n));
    TRY(cfg_int(tree, "data.synthetic.difficulty", &difficulty));
    TRY(cfg_int64(tree, "data.synthetic.seed", &synth_seed));
    TRY(cfg_str(tree, "data.synthetic.ops", &ops));
    CHECK(n >= 1, "data.synthetic.n %d: expected >= 1 tasks to make", n);
    TaskList tasks;
    SynthOptions so = {.n = n, .seed = (uint64_t)synth_seed, .difficulty = difficulty, .ops = ops};
    if (synth_generate(&tasks, kind, &so) != 0) return grpo_error_context("data.synthetic");
    int rc = sft_data_from_tasks(d, tasks.tasks, tasks.n);
    tasks_free(&tasks);
    return rc;
}

// ---------------------------------------------------------------------------------------------------
// Options

cJSON *sft_options_defaults(void) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "template", "r1-zero");
    cJSON_AddStringToObject(o, "system", "");
    cJSON_AddNumberToObject(o, "epochs", 1);
    cJSON_AddNumberToObject(o, "max_steps", 0);
    cJSON_AddNumberToObject(o, "stop_after", 0);
    cJSON_AddNumberToObject(o, "batch_size", 16);
    cJSON_AddNumberToObject(o, "micro_batch", 8);
    cJSON_AddNumberToObject(o, "max_len", 256);
    cJSON_AddBoolToObject(o, "skip_long", true);
    cJSON_AddBoolToObject(o, "shuffle", true);
    cJSON_AddNumberToObject(o, "seed", 1);
    cJSON_AddItemToObject(o, "optim", run_optim_defaults(1e-3f));
    cJSON_AddNumberToObject(o, "mtp_lambda", 0.0);
    cJSON_AddNumberToObject(o, "router_bias_gamma", 0.001);
    cJSON_AddNumberToObject(o, "save_every", 0);
    cJSON_AddNumberToObject(o, "keep_checkpoints", 2);
    cJSON_AddNumberToObject(o, "log_every", 10);
    return o;
}

cJSON *sft_command_defaults(void) {
    cJSON *o = cJSON_CreateObject(), *opts = sft_options_defaults();
    cJSON_AddStringToObject(o, "model", "");
    cJSON_AddNumberToObject(o, "init_seed", 1);
    cJSON_AddNumberToObject(o, "init_std", 0.02);
    while (opts && opts->child) {
        cJSON *it = cJSON_DetachItemViaPointer(opts, opts->child);
        cJSON_AddItemToObject(o, it->string, it);
    }
    cJSON_Delete(opts);
    cJSON *data = cJSON_AddObjectToObject(o, "data");
    cJSON_AddStringToObject(data, "train", "");
    cJSON_AddStringToObject(data, "format", "auto");
    cJSON *syn = cJSON_AddObjectToObject(data, "synthetic");
    cJSON_AddStringToObject(syn, "kind", "");
    cJSON_AddNumberToObject(syn, "n", 0);
    cJSON_AddNumberToObject(syn, "difficulty", 2);
    cJSON_AddStringToObject(syn, "ops", "+");
    cJSON_AddNumberToObject(syn, "seed", 1);
    cJSON_AddStringToObject(data, "from_db", "");
    cJSON_AddNumberToObject(data, "min_reward", 1.0);
    cJSON_AddNumberToObject(data, "run_id", 0);
    return o;
}

int sft_options_read(const cJSON *tree, const char *prefix, SftConfig *cfg) {
    char key[160];
    double v;
    int64_t seed;
    memset(cfg, 0, sizeof *cfg);
    cfg->config = tree;
#define KEY(name) (snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", name), key)
#define INT(name, field, lo) do { TRY(cfg_int(tree, KEY(name), &cfg->field)); \
        CHECK(cfg->field >= (lo), "%s %d: expected >= %d", key, cfg->field, lo); } while (0)
#define FLOAT(name, field) do { TRY(cfg_float(tree, KEY(name), &v)); \
        CHECK(v >= 0, "%s %g: expected >= 0", key, v); cfg->field = (float)v; } while (0)
    TRY(cfg_str(tree, KEY("template"), &cfg->tmpl));
    CHECK(tokenizer_template_preset(cfg->tmpl) || strstr(cfg->tmpl, "{prompt}"),
          "%s \"%.80s\": expected a preset (r1-zero, deepseek-chat, raw) or a template with {prompt}", key, cfg->tmpl);
    TRY(cfg_str(tree, KEY("system"), &cfg->system));
    INT("epochs", epochs, 1);
    INT("max_steps", max_steps, 0);
    INT("stop_after", stop_after, 0);
    INT("batch_size", batch_size, 1);
    INT("micro_batch", micro_batch, 1);
    CHECK(cfg->micro_batch <= cfg->batch_size, "%s %d: expected at most batch_size %d", key, cfg->micro_batch,
          cfg->batch_size);
    INT("max_len", max_len, 2);
    TRY(cfg_bool(tree, KEY("skip_long"), &cfg->skip_long));
    TRY(cfg_bool(tree, KEY("shuffle"), &cfg->shuffle));
    TRY(cfg_int64(tree, KEY("seed"), &seed));
    cfg->seed = (uint64_t)seed;
    TRY(run_optim_read(tree, KEY("optim"), &cfg->optim));
    FLOAT("mtp_lambda", mtp_lambda);
    FLOAT("router_bias_gamma", router_bias_gamma);
    INT("save_every", save_every, 0);
    INT("keep_checkpoints", keep_checkpoints, 0);
    INT("log_every", log_every, 1);
#undef FLOAT
#undef INT
#undef KEY
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// Sequences

void sft_seqs_free(SftSeqs *s) {
    free(s->prompt);
    free(s->completion);
    free(s->prompt_len);
    free(s->completion_len);
    free(s->pair);
    free(s->ids);
    memset(s, 0, sizeof *s);
}

// Appends pair p's prompt then completion + eos to all; *plen / *clen their lengths.
static int encode_pair(TokIds *all, int *plen, int *clen, Tokenizer *tok, const SftPair *p, const char *tmpl,
                       const char *system, int eos) {
    int start = all->n;
    if (p->templated) TRY(prompt_encode(all, tok, "raw", NULL, p->prompt));
    else TRY(prompt_encode(all, tok, tmpl, p->system ? p->system : system, p->prompt));
    *plen = all->n - start;
    TRY(tokenizer_encode(all, tok, p->completion, strlen(p->completion), TOK_PARSE_SPECIAL));
    TRY(tok_ids_push(all, eos));
    *clen = all->n - start - *plen;
    return 0;
}

int sft_encode(SftSeqs *s, Tokenizer *tok, const SftPair *pairs, int n, const char *tmpl, const char *system,
               int max_len, bool skip_long) {
    memset(s, 0, sizeof *s);
    int eos = tokenizer_eos_id(tok);
    CHECK(eos >= 0, "the tokenizer has no end-of-sequence token, so a completion could not be taught to end");
    CHECK(n >= 1, "no pairs to train on");
    size_t *start = grpo_malloc(sizeof(size_t) * (size_t)n, "pair offsets");
    s->prompt_len = grpo_malloc(sizeof(int) * (size_t)n, "pair lengths");
    s->completion_len = grpo_malloc(sizeof(int) * (size_t)n, "pair lengths");
    s->pair = grpo_malloc(sizeof(int) * (size_t)n, "pair index");
    TokIds all = {0};
    int rc = start && s->prompt_len && s->completion_len && s->pair ? 0 : -1;
    for (int i = 0; rc == 0 && i < n; i++) {
        const char *id = pairs[i].id ? pairs[i].id : "";
        int mark = all.n, plen, clen;
        rc = encode_pair(&all, &plen, &clen, tok, &pairs[i], tmpl, system, eos);
        if (rc != 0) {
            grpo_error_context("pair %d %s", i, id);
            break;
        }
        if (plen == 0) {
            rc = ERR("pair %d %s: the prompt encodes to no tokens", i, id);
            break;
        }
        if (plen + clen > max_len) {
            if (!skip_long)
                rc = ERR("pair %d %s: %d prompt + %d completion tokens exceed max_len %d (raise max_len, or "
                         "skip_long: true leaves such pairs out)", i, id, plen, clen - 1, max_len);
            all.n = mark;
            s->skipped++;
            continue;
        }
        start[s->n] = (size_t)mark;
        s->prompt_len[s->n] = plen;
        s->completion_len[s->n] = clen;
        s->pair[s->n++] = i;
    }
    if (rc == 0 && s->n == 0)
        rc = ERR("all %d pairs are longer than max_len %d tokens: nothing to train on", n, max_len);
    if (rc == 0) {
        s->prompt = grpo_malloc(sizeof(int *) * (size_t)s->n, "pair pointers");
        s->completion = grpo_malloc(sizeof(int *) * (size_t)s->n, "pair pointers");
        rc = s->prompt && s->completion ? 0 : -1;
    }
    s->ids = all.ids;
    for (int k = 0; rc == 0 && k < s->n; k++) {
        s->prompt[k] = s->ids + start[k];
        s->completion[k] = s->prompt[k] + s->prompt_len[k];
    }
    free(start);
    if (rc != 0) sft_seqs_free(s);
    return rc;
}

// ---------------------------------------------------------------------------------------------------
// The gradient of a micro-batch

int sft_micro_step(Model *m, const PackedBatch *pb, float *dlogp, long step_tokens, long step_mtp, float mtp_lambda,
                   double *ce_sum, double *mtp_sum) {
    int B = pb->B, T = pb->T, N = B * T;
    long mtp = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t + 1 < T; t++) mtp += pb->targets[b * T + t + 1] >= 0;
    CHECK(step_tokens > 0, "an optimizer step without completion tokens");
    m->mtp_lambda = step_mtp > 0 ? mtp_lambda * (float)mtp / (float)step_mtp : 0.0f;
    TRY(model_forward(m, pb->inputs, pb->targets, B, T));
    double ce = 0.0;
    float g = -1.0f / (float)step_tokens;
    for (int n = 0; n < N; n++) {
        if (pb->mask[n] != 0.0f) ce -= m->logp[n];
        dlogp[n] = pb->mask[n] != 0.0f ? g : 0.0f;
    }
    model_backward(m, dlogp);
    *ce_sum = ce;
    *mtp_sum = m->mtp_active ? (double)m->mtp_loss * (double)mtp : 0.0;
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// Training

// Everything one sft_train call holds.
typedef struct {
    const SftConfig *cfg;
    Model *m;
    Store *store;
    int64_t run_id;
    const char *out_dir, *tok_src;
    SftSeqs seqs;
    Task *views;             // (seqs.n) the sampler's items: borrowed id and prompt of each sequence's pair
    Dataset ds;
    AdamW opt;
    PackedBatch pb;
    float *dlogp;            // (micro_batch * (max_len - 1))
    const Task **batch;      // (batch_size) this step's items
    const int **mb_prompt, **mb_comp; // (micro_batch)
    int *mb_plen, *mb_clen;  // (micro_batch)
    long total_seqs, total_steps, start_step;
} Sft;

// What one optimizer step did.
typedef struct {
    double ce, mtp;          // summed CE over completion tokens / MTP targets
    long comp_tokens, mtp_targets, tokens;
    float lr, grad_norm;
} StepOut;

// Sums over the steps since the last progress line.
typedef struct {
    double ce, mtp, t0;
    long comp_tokens, mtp_targets, tokens;
    int steps;
} Window;

static int step_size(const Sft *t, long step) {
    long left = t->total_seqs - (step - 1) * t->cfg->batch_size;
    return (int)(left < t->cfg->batch_size ? left : t->cfg->batch_size);
}

static int train_step(Sft *t, long step, StepOut *o) {
    const SftConfig *c = t->cfg;
    const SftSeqs *s = &t->seqs;
    int S = step_size(t, step);
    memset(o, 0, sizeof *o);
    TRY(dataset_next(&t->ds, S, t->batch));
    for (int i = 0; i < S; i++) {
        long k = t->batch[i] - t->views;
        o->comp_tokens += s->completion_len[k];
        o->mtp_targets += s->completion_len[k] - 1;
        o->tokens += s->prompt_len[k] + s->completion_len[k];
    }
    model_zero_grad(t->m);
    for (int b0 = 0; b0 < S; b0 += c->micro_batch) {
        int B = S - b0 < c->micro_batch ? S - b0 : c->micro_batch;
        for (int b = 0; b < B; b++) {
            long k = t->batch[b0 + b] - t->views;
            t->mb_prompt[b] = s->prompt[k], t->mb_plen[b] = s->prompt_len[k];
            t->mb_comp[b] = s->completion[k], t->mb_clen[b] = s->completion_len[k];
        }
        double ce, mtp;
        TRY(packed_fill(&t->pb, t->mb_prompt, t->mb_plen, t->mb_comp, t->mb_clen, B));
        TRY(sft_micro_step(t->m, &t->pb, t->dlogp, o->comp_tokens, o->mtp_targets, c->mtp_lambda, &ce, &mtp));
        o->ce += ce, o->mtp += mtp;
    }
    CHECK(isfinite(o->ce), "step %ld: the loss is %g (lower optim.lr?)", step, o->ce);
    o->lr = adamw_lr(&t->opt.cfg, t->opt.step);
    o->grad_norm = adamw_step(&t->opt, t->m);
    CHECK(isfinite(o->grad_norm), "step %ld: the gradient norm is %g (lower optim.lr?)", step, o->grad_norm);
    model_update_router_bias(t->m, c->router_bias_gamma);
    return 0;
}

static double epochs_done(const Sft *t) { return t->ds.epoch + (double)t->ds.pos / t->ds.n; }

// The progress line and the steps row for the window ending at `step`.
static int log_step(Sft *t, long step, const StepOut *o, const Window *w) {
    double secs = run_now() - w->t0, loss = w->ce / w->comp_tokens, tok_s = w->tokens / (secs > 0 ? secs : 1e-9);
    double mtp = w->mtp_targets && t->cfg->mtp_lambda > 0 ? w->mtp / w->mtp_targets : NAN;
    if (t->cfg->log) {
        char mtp_part[32] = "";
        if (!isnan(mtp)) snprintf(mtp_part, sizeof mtp_part, " (mtp %.4f)", mtp);
        fprintf(t->cfg->log, "sft step %ld/%ld | epoch %.2f | loss %.4f%s | lr %.2e | grad norm %.3f | %.0f tok/s | "
                "%.0f ms/step\n", step, t->total_steps, epochs_done(t), loss, mtp_part, o->lr, o->grad_norm, tok_s,
                1e3 * secs / w->steps);
    }
    if (!t->store) return 0;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "loss", loss);
    if (!isnan(mtp)) cJSON_AddNumberToObject(j, "mtp_loss", mtp);
    cJSON_AddNumberToObject(j, "lr", o->lr);
    cJSON_AddNumberToObject(j, "grad_norm", o->grad_norm);
    cJSON_AddNumberToObject(j, "train_tok_s", tok_s);
    cJSON_AddNumberToObject(j, "seconds", secs / w->steps);
    cJSON_AddNumberToObject(j, "epoch", epochs_done(t));
    cJSON_AddNumberToObject(j, "completion_tokens", (double)w->comp_tokens);
    char *json = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!json) return ERR("out of memory writing step %ld's metrics", step);
    StepRecord r = store_step_init(step);
    r.metrics_json = json;
    r.loss = loss, r.lr = o->lr, r.grad_norm = o->grad_norm, r.train_tok_s = tok_s, r.seconds = secs / w->steps;
    int rc = store_write_step(t->store, t->run_id, &r, NULL, 0);
    free(json);
    return rc;
}

static int save(Sft *t, long step, SftResult *res) {
    cJSON *st = cJSON_CreateObject(), *cursor = dataset_cursor_save(&t->ds);
    if (!st || !cursor) {
        cJSON_Delete(st);
        cJSON_Delete(cursor);
        return ERR("out of memory saving the trainer state");
    }
    cJSON_AddNumberToObject(st, "step", (double)step);
    cJSON_AddNumberToObject(st, "epoch", epochs_done(t));
    cJSON_AddItemToObject(st, "cursor", cursor);
    cJSON_AddNumberToObject(st, "run_id", (double)t->run_id);
    cJSON_AddNumberToObject(st, "total_steps", (double)t->total_steps);
    if (t->cfg->config) cJSON_AddItemToObject(st, "config", cJSON_Duplicate(t->cfg->config, true));
    int rc = run_save_checkpoint(t->out_dir, step, t->m, &t->opt, t->tok_src, st, t->cfg->keep_checkpoints);
    cJSON_Delete(st);
    if (rc == 0) run_checkpoint_path(res->checkpoint, t->out_dir, step);
    return rc;
}

// A fresh run must not write into a directory that holds another run's checkpoints.
static int check_fresh(const char *out_dir, bool resume) {
    long step;
    char path[PATH_MAX];
    if (resume || !out_dir) return 0;
    TRY(run_latest_checkpoint(out_dir, &step, path));
    CHECK(step == 0, "%s already holds checkpoints (the newest is %s): continue that run with --resume or choose "
          "another output directory", out_dir, path);
    return 0;
}

static int state_num(const cJSON *st, const char *key, const char *path, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(st, key);
    CHECK(cJSON_IsNumber(v), "%s/trainer_state.json: field \"%s\": expected a number, found %s", path, key,
          cfg_type_name(v));
    *out = v->valuedouble;
    return 0;
}

// Continues from the newest checkpoint in out_dir: weights, AdamW, the sampler's cursor; the run's later
// steps leave the store. Without a checkpoint the run starts over.
static int resume_checkpoint(Sft *t) {
    long step;
    char path[PATH_MAX];
    double st_step = 0, st_run = 0, st_total = 0;
    TRY(run_latest_checkpoint(t->out_dir, &step, path));
    if (step > 0) {
        cJSON *st = NULL;
        TRY(checkpoint_load(path, t->m, &t->opt, &st));
        int rc = st ? 0 : ERR("%s has no trainer_state.json: not a training checkpoint", path);
        if (rc == 0) rc = state_num(st, "step", path, &st_step);
        if (rc == 0) rc = state_num(st, "run_id", path, &st_run);
        if (rc == 0) rc = state_num(st, "total_steps", path, &st_total);
        if (rc == 0 && (st_step != step || t->opt.step != step))
            rc = ERR("%s: trainer_state.json says step %g and the optimizer %d", path, st_step, t->opt.step);
        if (rc == 0 && st_run != t->run_id)
            rc = ERR("%s belongs to run %g of the database, not to run %lld", path, st_run, (long long)t->run_id);
        if (rc == 0 && st_total != t->total_steps)
            rc = ERR("%s: the run was planned for %g steps, this config and data give %ld (epochs, max_steps, "
                     "batch_size, max_len or the data changed)", path, st_total, t->total_steps);
        if (rc == 0 && dataset_cursor_restore(&t->ds, cJSON_GetObjectItemCaseSensitive(st, "cursor")) != 0)
            rc = grpo_error_context("%s/trainer_state.json", path);
        cJSON_Delete(st);
        TRY(rc);
    }
    t->start_step = step;
    return t->store ? store_truncate_after(t->store, t->run_id, step) : 0;
}

static int setup(Sft *t, Tokenizer *tok, const SftPair *pairs, int n) {
    const SftConfig *c = t->cfg;
    Model *m = t->m;
    CHECK(c->max_len <= m->cfg.max_position_embeddings, "max_len %d exceeds the model's max_position_embeddings %d",
          c->max_len, m->cfg.max_position_embeddings);
    CHECK(tokenizer_vocab_size(tok) <= m->cfg.vocab_size, "the tokenizer has %d tokens but the model's vocab_size is "
          "%d: they do not belong together", tokenizer_vocab_size(tok), m->cfg.vocab_size);
    CHECK(!c->resume || t->out_dir, "resume needs the output directory of the run");
    TRY(check_fresh(t->out_dir, c->resume));
    TRY(sft_encode(&t->seqs, tok, pairs, n, c->tmpl, c->system, c->max_len, c->skip_long));
    int N = t->seqs.n, mb = c->micro_batch;
    t->total_seqs = c->max_steps ? (long)c->max_steps * c->batch_size : (long)c->epochs * N;
    t->total_steps = (t->total_seqs + c->batch_size - 1) / c->batch_size;
    t->views = grpo_calloc((size_t)N, sizeof(Task), "sampler items");
    t->batch = grpo_malloc(sizeof(Task *) * (size_t)c->batch_size, "step batch");
    t->mb_prompt = grpo_malloc(sizeof(int *) * (size_t)mb, "micro-batch");
    t->mb_comp = grpo_malloc(sizeof(int *) * (size_t)mb, "micro-batch");
    t->mb_plen = grpo_malloc(sizeof(int) * (size_t)mb, "micro-batch");
    t->mb_clen = grpo_malloc(sizeof(int) * (size_t)mb, "micro-batch");
    t->dlogp = grpo_malloc(sizeof(float) * (size_t)mb * (size_t)(c->max_len - 1), "dlogp");
    if (!t->views || !t->batch || !t->mb_prompt || !t->mb_comp || !t->mb_plen || !t->mb_clen || !t->dlogp) return -1;
    for (int k = 0; k < N; k++) {
        const SftPair *p = &pairs[t->seqs.pair[k]];
        t->views[k] = (Task){.id = (char *)p->id, .prompt = (char *)p->prompt};
    }
    TRY(dataset_init(&t->ds, t->views, N, c->seed, c->shuffle));
    AdamWConfig oc = c->optim;
    oc.total_steps = (int)t->total_steps;
    TRY(adamw_init(&t->opt, &oc, m->n_params));
    TRY(packed_init(&t->pb, mb, c->max_len - 1));
    TRY(model_alloc_grads(m));
    TRY(model_alloc_acts(m, mb, c->max_len - 1));
    return c->resume ? resume_checkpoint(t) : 0;
}

static void teardown(Sft *t) {
    sft_seqs_free(&t->seqs);
    dataset_free(&t->ds);
    adamw_free(&t->opt);
    packed_free(&t->pb);
    free(t->views);
    free(t->batch);
    free(t->mb_prompt);
    free(t->mb_comp);
    free(t->mb_plen);
    free(t->mb_clen);
    free(t->dlogp);
}

static int train_loop(Sft *t, SftResult *res) {
    const SftConfig *c = t->cfg;
    long last = c->stop_after && c->stop_after < t->total_steps ? c->stop_after : t->total_steps;
    Window w = {.t0 = run_now()};
    double t0 = w.t0;
    for (long step = t->start_step + 1; step <= last; step++) {
        StepOut o;
        TRY(train_step(t, step, &o));
        double loss = o.ce / o.comp_tokens;
        if (isnan(res->first_loss)) res->first_loss = loss;
        res->last_loss = loss;
        res->step = step;
        res->tokens += o.tokens;
        w.ce += o.ce, w.mtp += o.mtp, w.steps++;
        w.comp_tokens += o.comp_tokens, w.mtp_targets += o.mtp_targets, w.tokens += o.tokens;
        bool stop = false;
        if (c->check && c->check_every > 0 && step % c->check_every == 0 && step != last)
            TRY(c->check(c->check_ctx, step, t->m, &stop));
        if (step % c->log_every == 0 || step == t->start_step + 1 || step == last || stop) {
            TRY(log_step(t, step, &o, &w));
            w = (Window){.t0 = run_now()};
        }
        if (t->out_dir && ((c->save_every && step % c->save_every == 0) || step == last || stop))
            TRY(save(t, step, res));
        if (stop) break;
    }
    res->seconds = run_now() - t0;
    return 0;
}

int sft_train(const SftConfig *cfg, Model *m, Tokenizer *tok, const SftPair *pairs, int n, Store *store,
              int64_t run_id, const char *out_dir, const char *tok_src, SftResult *res) {
    memset(res, 0, sizeof *res);
    res->first_loss = res->last_loss = NAN;
    float mtp_lambda = m->mtp_lambda, aux_alpha = m->aux_alpha, temperature = m->temperature;
    bool count_load = m->count_load;
    m->aux_alpha = 0.0f;
    m->temperature = 1.0f;
    m->count_load = cfg->router_bias_gamma > 0;
    model_reset_load(m);
    Sft t = {.cfg = cfg, .m = m, .store = store, .run_id = run_id, .out_dir = out_dir, .tok_src = tok_src};
    int rc = setup(&t, tok, pairs, n);
    res->start_step = res->step = t.start_step;
    res->total_steps = t.total_steps;
    res->n_seqs = t.seqs.n;
    res->skipped = t.seqs.skipped;
    if (rc == 0 && t.start_step > 0) run_checkpoint_path(res->checkpoint, out_dir, t.start_step);
    if (rc == 0 && cfg->log)
        fprintf(cfg->log, "sft: %d sequences (%d pairs longer than max_len %d skipped), %d per step in micro-batches "
                "of %d, steps %ld..%ld of %ld%s%s\n", t.seqs.n, t.seqs.skipped, cfg->max_len, cfg->batch_size,
                cfg->micro_batch, t.start_step + 1, cfg->stop_after && cfg->stop_after < t.total_steps ?
                (long)cfg->stop_after : t.total_steps, t.total_steps, out_dir ? ", checkpoints in " : "",
                out_dir ? out_dir : "");
    if (rc == 0) rc = train_loop(&t, res);
    teardown(&t);
    m->mtp_lambda = mtp_lambda, m->aux_alpha = aux_alpha, m->temperature = temperature, m->count_load = count_load;
    return rc;
}

int sft_run(const cJSON *tree, const char *out_dir, bool resume, FILE *log, SftResult *res) {
    SftConfig cfg;
    const char *model;
    int64_t init_seed;
    double init_std;
    TRY(sft_options_read(tree, "", &cfg));
    cfg.resume = resume;
    cfg.log = log;
    TRY(cfg_str(tree, "model", &model));
    TRY(cfg_int64(tree, "init_seed", &init_seed));
    TRY(cfg_float(tree, "init_std", &init_std));
    CHECK(out_dir && out_dir[0], "no output directory");
    TRY(check_fresh(out_dir, resume)); // before store_begin_run, which would leave an empty run behind
    SftData data = {0};
    Model m = {0};
    Tokenizer *tok = NULL;
    Store *store = NULL;
    char tok_src[PATH_MAX], db[PATH_MAX + 8];
    int64_t run_id = 0;
    int rc = sft_data_from_config(&data, tree);
    if (rc == 0) rc = mkdir_p(out_dir);
    if (rc == 0) rc = run_load_policy(&m, &tok, tok_src, model, (uint64_t)init_seed, (float)init_std, out_dir);
    snprintf(db, sizeof db, "%s/run.db", out_dir);
    if (rc == 0 && !(store = store_open(db))) rc = -1;
    if (rc == 0 && resume) rc = store_find_run(store, "sft", &run_id);
    if (rc == 0 && !run_id) {
        char *json = cJSON_PrintUnformatted(tree);
        rc = json ? store_begin_run(store, "sft", json, model, NULL, &run_id) : ERR("out of memory");
        free(json);
    }
    if (rc == 0) rc = sft_train(&cfg, &m, tok, data.pairs, data.n, store, run_id, out_dir, tok_src, res);
    if (store) store_close(store);
    if (tok) tokenizer_free(tok);
    model_free(&m);
    sft_data_free(&data);
    return rc;
}
