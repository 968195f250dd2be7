#include "policy/checkpoint.h"
#include "common/error.h"
#include "common/fileio.h"
#include "policy/safetensors.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

// Tensors real checkpoints carry that the model derives or shares: MTP's copies of the embedding and
// head (DeepSeek-V3 stores them in layer L), rotary buffers, and a tied head.
static bool ignorable_tensor(const Model *m, const char *name) {
    char buf[128];
    int L = m->cfg.num_hidden_layers;
    snprintf(buf, sizeof buf, "model.layers.%d.embed_tokens.weight", L);
    if (!strcmp(name, buf)) return true;
    snprintf(buf, sizeof buf, "model.layers.%d.shared_head.head.weight", L);
    if (!strcmp(name, buf)) return true;
    if (strstr(name, "rotary_emb.inv_freq")) return true;
    return m->cfg.tie_word_embeddings && !strcmp(name, "lm_head.weight");
}

int model_load_weights(Model *m, const char *path) {
    SafeTensors st;
    TRY(st_open(&st, path));
    for (int i = 0; i < m->n_info; i++) {
        const ParamInfo *p = &m->info[i];
        if (st_read_f32(&st, p->name, m->params + p->offset, p->ndim, p->shape) != 0) {
            st_close(&st);
            return -1;
        }
    }
    for (int i = 0; i < st.ntensors; i++) {
        const char *name = st.tensors[i].name;
        if (!model_param(m, name) && !ignorable_tensor(m, name)) {
            int rc = ERR("%s: unexpected tensor '%s': the config (%d layers, %d experts, q_lora_rank %d, mtp %d) has no "
                         "such parameter", st.path, name, m->cfg.num_hidden_layers, m->cfg.n_routed_experts,
                         m->cfg.q_lora_rank, m->cfg.num_nextn_predict_layers);
            st_close(&st);
            return rc;
        }
    }
    st_close(&st);
    return 0;
}

// Writes one safetensors file holding nb copies of the parameter table, copy j rebased on bases[j]
// with names prefixed by prefixes[j] (the weights; or AdamW's two moments).
static int save_tables(const char *path, const Model *m, const float *const *bases, const char *const *prefixes,
                       int nb, bool bf16, const cJSON *meta) {
    int n = nb * m->n_info;
    StWriteTensor *t = grpo_calloc((size_t)n, sizeof *t, "tensor list");
    char (*names)[128] = grpo_calloc((size_t)n, sizeof *names, "tensor names");
    if (!t || !names) { free(t); free(names); return -1; }
    for (int i = 0; i < n; i++) {
        const ParamInfo *p = &m->info[i % m->n_info];
        snprintf(names[i], sizeof names[i], "%s%s", prefixes[i / m->n_info], p->name);
        t[i] = (StWriteTensor){.name = names[i], .data = bases[i / m->n_info] + p->offset, .ndim = p->ndim};
        for (int d = 0; d < p->ndim; d++) t[i].shape[d] = p->shape[d];
    }
    int rc = st_write(path, t, n, bf16 ? ST_BF16 : ST_F32, meta);
    free(t);
    free(names);
    return rc;
}

static const char *const opt_prefixes[2] = {"exp_avg.", "exp_avg_sq."};

int model_save_weights(const Model *m, const char *path, bool bf16) {
    const float *base = m->params;
    const char *prefix = "";
    return save_tables(path, m, &base, &prefix, 1, bf16, NULL);
}

int model_load(Model *m, const char *dir) {
    ModelConfig cfg;
    TRY(config_load(&cfg, dir));
    TRY(model_build(m, &cfg));
    if (model_load_weights(m, dir) != 0) {
        model_free(m);
        return -1;
    }
    return 0;
}

static int copy_file(const char *dst, const char *src) {
    size_t n;
    char *data = read_file(src, &n);
    if (!data) return -1;
    int rc = write_file_atomic(dst, data, n);
    free(data);
    return rc;
}

static int remove_tree(const char *dir) {
    // Only the files checkpoint_save writes live in a checkpoint directory.
    static const char *files[] = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                                  "optimizer.safetensors", "trainer_state.json"};
    char p[4200];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    return rmdir(dir);
}

static int write_checkpoint_files(const char *dir, const Model *m, const AdamW *opt, const char *tokenizer_src,
                                  const cJSON *state, bool bf16) {
    char p[4200];
    snprintf(p, sizeof p, "%s/config.json", dir);
    TRY(config_save(&m->cfg, p));
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    TRY(model_save_weights(m, p, bf16));
    if (tokenizer_src) {
        char src[4200];
        snprintf(src, sizeof src, "%s/tokenizer.json", tokenizer_src);
        const char *from = path_is_dir(tokenizer_src) ? src : tokenizer_src;
        snprintf(p, sizeof p, "%s/tokenizer.json", dir);
        if (copy_file(p, from) != 0) return grpo_error_context("copying the tokenizer into %s", dir);
        if (path_is_dir(tokenizer_src)) {
            snprintf(src, sizeof src, "%s/tokenizer_config.json", tokenizer_src);
            snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
            if (path_exists(src)) TRY(copy_file(p, src));
        }
    }
    if (opt) {
        // The moments are stored fp32 whatever the weights' dtype: bf16 moments would change the run.
        cJSON *meta = cJSON_CreateObject();
        char step[32];
        snprintf(step, sizeof step, "%d", opt->step);
        cJSON_AddStringToObject(meta, "step", step);
        snprintf(p, sizeof p, "%s/optimizer.safetensors", dir);
        const float *bases[2] = {opt->m, opt->v};
        int rc = save_tables(p, m, bases, opt_prefixes, 2, false, meta);
        cJSON_Delete(meta);
        TRY(rc);
    }
    if (state) {
        char *s = cJSON_Print(state);
        snprintf(p, sizeof p, "%s/trainer_state.json", dir);
        int rc = s ? write_file_atomic(p, s, strlen(s)) : ERR("cannot serialise the trainer state");
        free(s);
        TRY(rc);
    }
    return 0;
}

int checkpoint_save(const char *dir, const Model *m, const AdamW *opt, const char *tokenizer_src, const cJSON *state,
                    bool bf16) {
    char tmp[4200], old[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp-%d", dir, (int)getpid());
    snprintf(old, sizeof old, "%s.old-%d", dir, (int)getpid());
    remove_tree(tmp);
    TRY(mkdir_p(tmp));
    if (write_checkpoint_files(tmp, m, opt, tokenizer_src, state, bf16) != 0) {
        remove_tree(tmp);
        return grpo_error_context("saving checkpoint %s", dir);
    }
    bool had_old = path_exists(dir);
    if (had_old && rename(dir, old) != 0) {
        remove_tree(tmp);
        return ERR("saving checkpoint %s: cannot move the previous one aside (%s)", dir, strerror(errno));
    }
    if (rename(tmp, dir) != 0) {
        int e = errno;
        if (had_old) rename(old, dir);
        remove_tree(tmp);
        return ERR("saving checkpoint %s: rename failed (%s)", dir, strerror(e));
    }
    if (had_old) remove_tree(old);
    return 0;
}

int checkpoint_load(const char *dir, Model *m, AdamW *opt, cJSON **state_out) {
    char p[4200];
    if (state_out) *state_out = NULL;
    TRY(model_load_weights(m, dir));
    if (opt) {
        snprintf(p, sizeof p, "%s/optimizer.safetensors", dir);
        SafeTensors st;
        if (st_open(&st, p) != 0) return grpo_error_context("resuming from %s needs the optimizer state", dir);
        char name[128];
        int rc = 0;
        for (int i = 0; i < 2 * m->n_info && rc == 0; i++) {
            const ParamInfo *pi = &m->info[i % m->n_info];
            snprintf(name, sizeof name, "%s%s", opt_prefixes[i / m->n_info], pi->name);
            rc = st_read_f32(&st, name, (i < m->n_info ? opt->m : opt->v) + pi->offset, pi->ndim, pi->shape);
        }
        const char *step = st_metadata(&st, "step");
        char *end = NULL;
        long s = step ? strtol(step, &end, 10) : -1;
        if (rc == 0 && (!step || *end || s < 0)) rc = ERR("%s: __metadata__.step must be a non-negative integer", p);
        if (rc == 0) opt->step = (int)s;
        st_close(&st);
        TRY(rc);
    }
    if (state_out) {
        snprintf(p, sizeof p, "%s/trainer_state.json", dir);
        if (path_exists(p)) {
            char *text = read_file(p, NULL);
            if (!text) return -1;
            *state_out = cJSON_Parse(text);
            free(text);
            CHECK(*state_out, "%s: not valid JSON", p);
        }
    }
    return 0;
}
