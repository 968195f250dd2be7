#include "policy/model.h"
#include "common/error.h"
#include "policy/layers.h"
#include "policy/packed.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------------------------------
// parameter layout: one walk over the architecture in Hugging Face order serves counting, carving the
// parameters (with the name table) and carving the gradients.

typedef struct {
    float *base;    // NULL while counting
    size_t off;     // floats so far
    ParamInfo *info; // table to fill, or NULL
    int n;
} Layout;

static float *tensor(Layout *lo, bool trainable, int ndim, int64_t d0, int64_t d1, int64_t d2, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static float *tensor(Layout *lo, bool trainable, int ndim, int64_t d0, int64_t d1, int64_t d2, const char *fmt, ...) {
    int64_t shape[3] = {d0, d1, d2};
    size_t size = 1;
    for (int i = 0; i < ndim; i++) size *= (size_t)shape[i];
    if (lo->info) {
        ParamInfo *p = &lo->info[lo->n];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->name, sizeof p->name, fmt, ap);
        va_end(ap);
        p->offset = lo->off;
        p->size = size;
        p->ndim = ndim;
        memcpy(p->shape, shape, sizeof shape);
        p->trainable = trainable;
        p->decay = trainable && ndim >= 2;
    }
    lo->n++;
    float *ptr = lo->base ? lo->base + lo->off : NULL;
    lo->off += size;
    return ptr;
}

// Carves one FFN expert bank of E experts: each expert is a separate HF tensor, the bank contiguous.
static float *expert_bank(Layout *lo, int l, int E, const char *proj, int64_t rows, int64_t cols) {
    float *first = NULL;
    for (int e = 0; e < E; e++) {
        float *p = tensor(lo, true, 2, rows, cols, 0, "model.layers.%d.mlp.experts.%d.%s.weight", l, e, proj);
        if (e == 0) first = p;
    }
    return first;
}

static void layout_model(const ModelConfig *c, Layout *lo, int n_blocks, float **embed, float **final_norm,
                         float **lm_head, LayerParams *layers) {
    int C = c->hidden_size, H = c->num_attention_heads, Dq = config_qk_head_dim(c), Dr = c->qk_rope_head_dim;
    int R = c->kv_lora_rank, Dn = c->qk_nope_head_dim, Dv = c->v_head_dim, E = c->n_routed_experts;
    *embed = tensor(lo, true, 2, c->vocab_size, C, 0, "model.embed_tokens.weight");
    for (int l = 0; l < n_blocks; l++) {
        LayerParams p = {0};
        bool mtp = l == c->num_hidden_layers;
        if (mtp) {
            p.enorm = tensor(lo, true, 1, C, 0, 0, "model.layers.%d.enorm.weight", l);
            p.hnorm = tensor(lo, true, 1, C, 0, 0, "model.layers.%d.hnorm.weight", l);
            p.eh_proj = tensor(lo, true, 2, C, 2 * C, 0, "model.layers.%d.eh_proj.weight", l);
        }
        p.in_norm = tensor(lo, true, 1, C, 0, 0, "model.layers.%d.input_layernorm.weight", l);
        if (c->q_lora_rank) {
            int Lq = c->q_lora_rank;
            p.q_a = tensor(lo, true, 2, Lq, C, 0, "model.layers.%d.self_attn.q_a_proj.weight", l);
            p.q_a_norm = tensor(lo, true, 1, Lq, 0, 0, "model.layers.%d.self_attn.q_a_layernorm.weight", l);
            p.q_b = tensor(lo, true, 2, (int64_t)H * Dq, Lq, 0, "model.layers.%d.self_attn.q_b_proj.weight", l);
        } else {
            p.q_proj = tensor(lo, true, 2, (int64_t)H * Dq, C, 0, "model.layers.%d.self_attn.q_proj.weight", l);
        }
        p.kv_a = tensor(lo, true, 2, R + Dr, C, 0, "model.layers.%d.self_attn.kv_a_proj_with_mqa.weight", l);
        p.kv_a_norm = tensor(lo, true, 1, R, 0, 0, "model.layers.%d.self_attn.kv_a_layernorm.weight", l);
        p.kv_b = tensor(lo, true, 2, (int64_t)H * (Dn + Dv), R, 0, "model.layers.%d.self_attn.kv_b_proj.weight", l);
        p.o_proj = tensor(lo, true, 2, C, (int64_t)H * Dv, 0, "model.layers.%d.self_attn.o_proj.weight", l);
        p.post_norm = tensor(lo, true, 1, C, 0, 0, "model.layers.%d.post_attention_layernorm.weight", l);
        if (config_is_moe_layer(c, l)) {
            int Im = c->moe_intermediate_size;
            p.router = tensor(lo, true, 2, E, C, 0, "model.layers.%d.mlp.gate.weight", l);
            if (c->has_score_bias)
                p.score_bias = tensor(lo, false, 1, E, 0, 0, "model.layers.%d.mlp.gate.e_score_correction_bias", l);
            p.e_gate = expert_bank(lo, l, E, "gate_proj", Im, C);
            p.e_up = expert_bank(lo, l, E, "up_proj", Im, C);
            p.e_down = expert_bank(lo, l, E, "down_proj", C, Im);
            if (c->n_shared_experts) {
                int F = Im * c->n_shared_experts;
                p.gate = tensor(lo, true, 2, F, C, 0, "model.layers.%d.mlp.shared_experts.gate_proj.weight", l);
                p.up = tensor(lo, true, 2, F, C, 0, "model.layers.%d.mlp.shared_experts.up_proj.weight", l);
                p.down = tensor(lo, true, 2, C, F, 0, "model.layers.%d.mlp.shared_experts.down_proj.weight", l);
            }
        } else {
            int F = c->intermediate_size;
            p.gate = tensor(lo, true, 2, F, C, 0, "model.layers.%d.mlp.gate_proj.weight", l);
            p.up = tensor(lo, true, 2, F, C, 0, "model.layers.%d.mlp.up_proj.weight", l);
            p.down = tensor(lo, true, 2, C, F, 0, "model.layers.%d.mlp.down_proj.weight", l);
        }
        if (mtp) p.head_norm = tensor(lo, true, 1, C, 0, 0, "model.layers.%d.shared_head.norm.weight", l);
        if (layers) layers[l] = p;
    }
    *final_norm = tensor(lo, true, 1, C, 0, 0, "model.norm.weight");
    *lm_head = c->tie_word_embeddings ? *embed : tensor(lo, true, 2, c->vocab_size, C, 0, "lm_head.weight");
}

static int n_blocks_of(const ModelConfig *c) { return c->num_hidden_layers + (c->num_nextn_predict_layers ? 1 : 0); }

long long config_param_count(const ModelConfig *c) {
    Layout lo = {0};
    float *a, *b, *d;
    layout_model(c, &lo, n_blocks_of(c), &a, &b, &d, NULL);
    return (long long)lo.off;
}

int model_build(Model *m, const ModelConfig *cfg) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    CHECK(cfg->n_routed_experts <= ROUTER_MAX_EXPERTS, "n_routed_experts %d: at most %d are supported",
          cfg->n_routed_experts, ROUTER_MAX_EXPERTS);
    m->n_blocks = n_blocks_of(cfg);
    Layout count = {0};
    float *a, *b, *d;
    layout_model(cfg, &count, m->n_blocks, &a, &b, &d, NULL);
    m->n_params = count.off;
    m->n_info = count.n;
    m->info = grpo_calloc((size_t)count.n, sizeof(ParamInfo), "the parameter table");
    m->layers = grpo_calloc((size_t)m->n_blocks, sizeof(LayerParams), "layer parameters");
    m->params = grpo_calloc(m->n_params, sizeof(float), "the parameters");
    if (!m->info || !m->layers || !m->params) {
        model_free(m);
        return grpo_error_context("model with %zu parameters (%.1f MB)", count.off, count.off * 4.0 / 1e6);
    }
    Layout lo = {.base = m->params, .info = m->info};
    layout_model(cfg, &lo, m->n_blocks, &m->embed, &m->final_norm, &m->lm_head, m->layers);
    m->mtp_lambda = 0.3f;
    m->temperature = 1.0f;
    m->expert_load = grpo_calloc((size_t)m->n_blocks * (cfg->n_routed_experts + 1), sizeof(float), "expert load");
    if (!m->expert_load) { model_free(m); return -1; }

    // RoPE table over the longest position the model accepts; YaRN magnitude folded into cos/sin and
    // the matching softmax scale as DeepSeek's code does.
    const YarnConfig *y = &cfg->yarn;
    float attn_factor = 1.0f, scale = 1.0f / sqrtf((float)config_qk_head_dim(cfg));
    if (y->enabled) {
        float f = y->factor;
#define YARN_MSCALE(s, mm) ((s) <= 1.0f ? 1.0f : 0.1f * (mm) * logf(s) + 1.0f)
        attn_factor = YARN_MSCALE(f, y->mscale) / YARN_MSCALE(f, y->mscale_all_dim);
        if (y->mscale_all_dim) {
            float ms = YARN_MSCALE(f, y->mscale_all_dim);
            scale *= ms * ms;
        }
#undef YARN_MSCALE
    }
    m->attn_scale = scale;
    m->rope_attn_factor = attn_factor;
    return 0;
}

int model_ensure_rope(Model *m, int T) {
    if (m->rope_T >= T) return 0;
    const ModelConfig *c = &m->cfg;
    int half = c->qk_rope_head_dim / 2;
    free(m->rope_cos);
    free(m->rope_sin);
    m->rope_cos = grpo_malloc(sizeof(float) * T * half, "rope table");
    m->rope_sin = grpo_malloc(sizeof(float) * T * half, "rope table");
    if (!m->rope_cos || !m->rope_sin) return -1;
    const YarnConfig *y = &c->yarn;
    rope_table(m->rope_cos, m->rope_sin, T, c->qk_rope_head_dim, c->rope_theta, y->enabled ? y->factor : 0.0f,
               y->beta_fast, y->beta_slow, y->original_max_position_embeddings, m->rope_attn_factor);
    m->rope_T = T;
    return 0;
}

void model_free(Model *m) {
    free(m->params);
    free(m->grads);
    free(m->info);
    free(m->layers);
    free(m->dlayers);
    free(m->rope_cos);
    free(m->rope_sin);
    free(m->expert_load);
    free(m->act_mem);
    free(m->acts);
    memset(m, 0, sizeof *m);
}

const ParamInfo *model_param(const Model *m, const char *name) {
    for (int i = 0; i < m->n_info; i++)
        if (!strcmp(m->info[i].name, name)) return &m->info[i];
    return NULL;
}

// splitmix64 + Box-Muller: portable, so a seed gives the same model everywhere.
static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void model_init_random(Model *m, uint64_t seed, float std) {
    uint64_t s = seed;
    for (int i = 0; i < m->n_info; i++) {
        const ParamInfo *p = &m->info[i];
        float *w = m->params + p->offset;
        if (!p->trainable) { memset(w, 0, p->size * sizeof(float)); continue; }
        if (p->ndim == 1) { for (size_t j = 0; j < p->size; j++) w[j] = 1.0f; continue; }
        for (size_t j = 0; j < p->size; j += 2) {
            double u1 = ((splitmix(&s) >> 11) + 1.0) / 9007199254740993.0, u2 = (splitmix(&s) >> 11) / 9007199254740992.0;
            double r = sqrt(-2.0 * log(u1));
            w[j] = (float)(std * r * cos(2 * M_PI * u2));
            if (j + 1 < p->size) w[j + 1] = (float)(std * r * sin(2 * M_PI * u2));
        }
    }
}

int model_alloc_grads(Model *m) {
    if (m->grads) return 0;
    m->grads = grpo_calloc(m->n_params, sizeof(float), "gradients");
    m->dlayers = grpo_calloc((size_t)m->n_blocks, sizeof(LayerParams), "layer gradients");
    if (!m->grads || !m->dlayers) return -1;
    Layout lo = {.base = m->grads};
    layout_model(&m->cfg, &lo, m->n_blocks, &m->dembed, &m->dfinal_norm, &m->dlm_head, m->dlayers);
    return 0;
}

void model_zero_grad(Model *m) {
    if (m->grads) memset(m->grads, 0, m->n_params * sizeof(float));
}

// ----------------------------------------------------------------------------------------------------
// activations

typedef struct {
    char *base;  // NULL while counting
    size_t off;
} Arena;

static void *carve(Arena *a, size_t bytes) {
    a->off = (a->off + 63) & ~(size_t)63;
    void *p = a->base ? a->base + a->off : NULL;
    a->off += bytes;
    return p;
}
#define CARVE_F(a, n) ((float *)carve(a, sizeof(float) * (size_t)(n)))
#define CARVE_I(a, n) ((int *)carve(a, sizeof(int) * (size_t)(n)))

static void layout_acts(Model *m, Arena *ar, int B, int T) {
    const ModelConfig *c = &m->cfg;
    long N = (long)B * T;
    int C = c->hidden_size, H = c->num_attention_heads, Dq = config_qk_head_dim(c), Dr = c->qk_rope_head_dim;
    int R = c->kv_lora_rank, Dn = c->qk_nope_head_dim, Dv = c->v_head_dim, Lq = c->q_lora_rank;
    int E = c->n_routed_experts, K = c->num_experts_per_tok, Im = c->moe_intermediate_size, V = c->vocab_size;
    int Fmax = 0;
    for (int l = 0; l < m->n_blocks; l++) {
        LayerActs *a = &m->acts[l];
        int F = config_ffn_width(c, l);
        Fmax = F > Fmax ? F : Fmax;
        a->x_in = CARVE_F(ar, N * C);
        a->ln1 = CARVE_F(ar, N * C);
        a->rstd1 = CARVE_F(ar, N);
        a->qa = Lq ? CARVE_F(ar, N * Lq) : NULL;
        a->qan = Lq ? CARVE_F(ar, N * Lq) : NULL;
        a->rstdq = Lq ? CARVE_F(ar, N) : NULL;
        a->q = CARVE_F(ar, N * H * Dq);
        a->kva = CARVE_F(ar, N * (R + Dr));
        a->cn = CARVE_F(ar, N * R);
        a->rstdkv = CARVE_F(ar, N);
        a->kvb = CARVE_F(ar, N * H * (Dn + Dv));
        a->k = CARVE_F(ar, N * H * Dq);
        a->att = CARVE_F(ar, (long)B * H * T * T);
        a->y = CARVE_F(ar, N * H * Dv);
        a->x_mid = CARVE_F(ar, N * C);
        a->ln2 = CARVE_F(ar, N * C);
        a->rstd2 = CARVE_F(ar, N);
        a->fg = F ? CARVE_F(ar, N * F) : NULL;
        a->fu = F ? CARVE_F(ar, N * F) : NULL;
        a->fh = F ? CARVE_F(ar, N * F) : NULL;
        if (config_is_moe_layer(c, l)) {
            a->scores = CARVE_F(ar, N * E);
            a->topk_idx = CARVE_I(ar, N * K);
            a->topk_w = CARVE_F(ar, N * K);
            a->slot = CARVE_I(ar, N * K);
            a->slot_tok = CARVE_I(ar, N * K);
            a->expert_off = CARVE_I(ar, E + 1);
            a->xs = CARVE_F(ar, N * K * C);
            a->eg = CARVE_F(ar, N * K * Im);
            a->eu = CARVE_F(ar, N * K * Im);
            a->eh = CARVE_F(ar, N * K * Im);
            a->ey = CARVE_F(ar, N * K * C);
        }
    }
    m->inputs = CARVE_I(ar, N);
    m->targets = CARVE_I(ar, N);
    m->x_final = CARVE_F(ar, N * C);
    m->xf = CARVE_F(ar, N * C);
    m->rstdf = CARVE_F(ar, N);
    m->logp = CARVE_F(ar, N);
    m->entropy = CARVE_F(ar, N);
    m->lse = CARVE_F(ar, N);
    if (c->num_nextn_predict_layers) {
        m->mtp_targets = CARVE_I(ar, N);
        m->mtp_tokens = CARVE_I(ar, N);
        m->mtp_emb = CARVE_F(ar, N * C);
        m->mtp_en = CARVE_F(ar, N * C);
        m->mtp_hn = CARVE_F(ar, N * C);
        m->mtp_rstd_e = CARVE_F(ar, N);
        m->mtp_rstd_h = CARVE_F(ar, N);
        m->mtp_cat = CARVE_F(ar, N * 2 * C);
        m->mtp_out = CARVE_F(ar, N * C);
        m->mtp_xf = CARVE_F(ar, N * C);
        m->mtp_rstdf = CARVE_F(ar, N);
        m->mtp_logp = CARVE_F(ar, N);
        m->mtp_lse = CARVE_F(ar, N);
        m->dmtp_cat = CARVE_F(ar, N * 2 * C);
        m->dlogp_mtp = CARVE_F(ar, N);
    }
    m->dx = CARVE_F(ar, N * C);
    m->dx2 = CARVE_F(ar, N * C);
    m->dln = CARVE_F(ar, N * C);
    m->dq = CARVE_F(ar, N * H * Dq);
    m->dk = CARVE_F(ar, N * H * Dq);
    m->dkvb = CARVE_F(ar, N * H * (Dn + Dv));
    m->dkva = CARVE_F(ar, N * (R + Dr));
    m->dcn = CARVE_F(ar, N * R);
    m->dqa = Lq ? CARVE_F(ar, N * Lq) : NULL;
    m->dqan = Lq ? CARVE_F(ar, N * Lq) : NULL;
    m->dy = CARVE_F(ar, N * H * Dv);
    m->datt = CARVE_F(ar, (long)B * H * T * T);
    m->dfg = CARVE_F(ar, N * Fmax);
    m->dfu = CARVE_F(ar, N * Fmax);
    m->dfh = CARVE_F(ar, N * Fmax);
    if (E) {
        m->dxs = CARVE_F(ar, N * K * C);
        m->dey = CARVE_F(ar, N * K * C);
        m->deg = CARVE_F(ar, N * K * Im);
        m->deu = CARVE_F(ar, N * K * Im);
        m->deh = CARVE_F(ar, N * K * Im);
        m->dtopk_w = CARVE_F(ar, N * K);
        m->rlogits = CARVE_F(ar, N * E);
        m->drlogits = CARVE_F(ar, N * E);
    }
    m->head_scratch = CARVE_F(ar, (long)m->chunk * V);
}

int model_alloc_acts(Model *m, int B_max, int T_max) {
    CHECK(B_max > 0 && T_max > 0, "activation size: batch %d x length %d must be positive", B_max, T_max);
    CHECK(T_max <= m->cfg.max_position_embeddings, "sequence length %d exceeds max_position_embeddings %d", T_max,
          m->cfg.max_position_embeddings);
    free(m->act_mem);
    free(m->acts);
    m->acts = grpo_calloc((size_t)m->n_blocks, sizeof(LayerActs), "layer activations");
    if (!m->acts) return -1;
    // Rows of logits held at once by the log-prob head: about 16 MB of logits per chunk.
    long rows = (4L << 20) / m->cfg.vocab_size;
    long N = (long)B_max * T_max;
    m->chunk = (int)(rows < 1 ? 1 : rows > N ? N : rows);
    Arena count = {0};
    layout_acts(m, &count, B_max, T_max);
    m->act_mem = malloc(count.off);
    if (!m->act_mem)
        return ERR("out of memory for activations: batch %d x length %d needs %.1f MB (reduce the micro-batch or "
                   "the sequence length)", B_max, T_max, count.off / 1e6);
    Arena ar = {.base = m->act_mem};
    layout_acts(m, &ar, B_max, T_max);
    m->act_bytes = count.off;
    m->B_max = B_max;
    m->T_max = T_max;
    return model_ensure_rope(m, T_max);
}

// ----------------------------------------------------------------------------------------------------
// forward

static RouterSpec router_spec(const ModelConfig *c) {
    return (RouterSpec){.E = c->n_routed_experts, .K = c->num_experts_per_tok, .n_group = c->n_group,
                        .topk_group = c->topk_group, .sigmoid = c->scoring_func == SCORE_SIGMOID,
                        .method = c->topk_method, .norm_topk_prob = c->norm_topk_prob,
                        .scaling = c->routed_scaling_factor};
}

static void add_inplace(float *out, const float *x, long n) {
#pragma omp parallel for
    for (long i = 0; i < n; i++) out[i] += x[i];
}

// out (N,OC) = inp (N,IC) @ W^T, through W's packed copy Wp when there is one (decode), else OpenBLAS.
static void linear_forward(float *out, const float *inp, const float *W, const float *Wp, int N, int IC, int OC) {
    if (Wp) matmul_packed_forward(out, OC, inp, IC, Wp, N, IC, OC);
    else matmul_forward(out, inp, W, N, IC, OC);
}

// The packed copies of block l's matrices while the rollout engine has set them (never for the MTP block).
static const PackedLayer *packed_layer(const Model *m, int l) {
    return m->packed && l < m->cfg.num_hidden_layers ? &m->packed->layers[l] : NULL;
}

// out = down(silu(gate(x)) * up(x)), caching g, u, h; Pg, Pu, Pd: packed copies of the weights or NULL.
static void ffn_forward(float *out, float *g, float *u, float *h, const float *x, const float *Wg, const float *Wu,
                        const float *Wd, const float *Pg, const float *Pu, const float *Pd, int N, int C, int F) {
    linear_forward(g, x, Wg, Pg, N, C, F);
    linear_forward(u, x, Wu, Pu, N, C, F);
    swiglu_forward(h, g, u, (long)N * F);
    linear_forward(out, h, Wd, Pd, N, F, C);
}

// dx += and dW* += the FFN's backward; dg, du, dh: (N,F) scratch.
static void ffn_backward(float *dx, float *dWg, float *dWu, float *dWd, float *dg, float *du, float *dh,
                         const float *dout, const float *x, const float *g, const float *u, const float *h,
                         const float *Wg, const float *Wu, const float *Wd, int N, int C, int F) {
    size_t n = sizeof(float) * (size_t)N * F;
    memset(dh, 0, n);
    memset(dg, 0, n);
    memset(du, 0, n);
    matmul_backward(dh, dWd, dout, h, Wd, N, F, C);
    swiglu_backward(dg, du, dh, g, u, (long)N * F);
    matmul_backward(dx, dWg, dg, x, Wg, N, C, F);
    matmul_backward(dx, dWu, du, x, Wu, N, C, F);
}

// Positions of each sequence that count for block l's balance loss and load: the MTP block's last position
// predicts nothing (it has no next token) and is left out, as if the block ran on T-1 positions.
static int balance_len(const Model *m, int l, int T) { return l == m->cfg.num_hidden_layers ? T - 1 : T; }

// Routes each token to its K experts, runs the experts on tokens grouped by expert, and adds the
// weighted outputs into out (N,C).
static void moe_forward(Model *m, int l, float *out, int B, int T) {
    const ModelConfig *c = &m->cfg;
    const LayerParams *p = &m->layers[l];
    LayerActs *a = &m->acts[l];
    int N = B * T, C = c->hidden_size, E = c->n_routed_experts, K = c->num_experts_per_tok;
    int Im = c->moe_intermediate_size;
    RouterSpec rs = router_spec(c);
    const PackedModel *pm = m->packed;
    const PackedLayer *pk = packed_layer(m, l);
    linear_forward(m->rlogits, a->ln2, p->router, pk ? pk->router : NULL, N, C, E);
    router_forward(a->scores, a->topk_idx, a->topk_w, m->rlogits, p->score_bias, &rs, N);
    if (m->aux_alpha > 0)
        m->aux_loss += seq_balance_loss(NULL, a->scores, a->topk_idx, &rs, B, T, balance_len(m, l, T), m->aux_alpha);

    int *off = a->expert_off;
    memset(off, 0, sizeof(int) * (E + 1));
    for (int i = 0; i < N * K; i++) off[a->topk_idx[i] + 1]++;
    if (m->count_load) {
        int Tv = balance_len(m, l, T);
        for (int i = 0; i < N * K; i++)
            if ((i / K) % T < Tv) m->expert_load[(long)l * E + a->topk_idx[i]] += 1.0f;
    }
    for (int e = 0; e < E; e++) off[e + 1] += off[e];
    int fill[ROUTER_MAX_EXPERTS] = {0};
    for (int i = 0; i < N * K; i++) {
        int e = a->topk_idx[i], pos = off[e] + fill[e]++;
        a->slot[i] = pos;
        a->slot_tok[pos] = i / K;
    }
#pragma omp parallel for
    for (int pos = 0; pos < N * K; pos++)
        memcpy(a->xs + (long)pos * C, a->ln2 + (long)a->slot_tok[pos] * C, sizeof(float) * C);
#pragma omp parallel for schedule(dynamic)
    for (int e = 0; e < E; e++) {
        int r0 = off[e], n = off[e + 1] - r0;
        if (!n) continue;
        ffn_forward(a->ey + (long)r0 * C, a->eg + (long)r0 * Im, a->eu + (long)r0 * Im, a->eh + (long)r0 * Im,
                    a->xs + (long)r0 * C, p->e_gate + (long)e * Im * C, p->e_up + (long)e * Im * C,
                    p->e_down + (long)e * C * Im, pk ? pk->e_gate + e * pm->expert_stride : NULL,
                    pk ? pk->e_up + e * pm->expert_stride : NULL, pk ? pk->e_down + e * pm->expert_stride : NULL, n,
                    C, Im);
    }
#pragma omp parallel for
    for (int t = 0; t < N; t++) {
        float *o = out + (long)t * C;
        for (int k = 0; k < K; k++) {
            const float *y = a->ey + (long)a->slot[t * K + k] * C;
            float w = a->topk_w[t * K + k];
            for (int i = 0; i < C; i++) o[i] += w * y[i];
        }
    }
}

// One decoder block: x_out = x_mid + FFN(rmsnorm(x_mid)), x_mid = x_in + MLA(rmsnorm(x_in)).
static void block_forward(Model *m, int l, float *x_out, int B, int T) {
    const ModelConfig *c = &m->cfg;
    const LayerParams *p = &m->layers[l];
    LayerActs *a = &m->acts[l];
    int N = B * T, C = c->hidden_size, H = c->num_attention_heads, Dq = config_qk_head_dim(c);
    int Dn = c->qk_nope_head_dim, Dr = c->qk_rope_head_dim, Dv = c->v_head_dim, R = c->kv_lora_rank;
    int Lq = c->q_lora_rank;
    float eps = c->rms_norm_eps;

    const PackedLayer *pk = packed_layer(m, l);
    rmsnorm_forward(a->ln1, a->rstd1, a->x_in, p->in_norm, N, C, C, eps);
    if (Lq) {
        linear_forward(a->qa, a->ln1, p->q_a, pk ? pk->q_a : NULL, N, C, Lq);
        rmsnorm_forward(a->qan, a->rstdq, a->qa, p->q_a_norm, N, Lq, Lq, eps);
        linear_forward(a->q, a->qan, p->q_b, pk ? pk->q_b : NULL, N, Lq, H * Dq);
    } else {
        linear_forward(a->q, a->ln1, p->q_proj, pk ? pk->q_proj : NULL, N, C, H * Dq);
    }
    linear_forward(a->kva, a->ln1, p->kv_a, pk ? pk->kv_a : NULL, N, C, R + Dr);
    rmsnorm_forward(a->cn, a->rstdkv, a->kva, p->kv_a_norm, N, R, R + Dr, eps);
    matmul_forward(a->kvb, a->cn, p->kv_b, N, R, H * (Dn + Dv));
    rope_forward(a->q, m->rope_cos, m->rope_sin, N, T, H, H * Dq, Dq, Dn, Dr);
    rope_forward(a->kva, m->rope_cos, m->rope_sin, N, T, 1, R + Dr, 0, R, Dr);
#pragma omp parallel for
    for (int n = 0; n < N; n++)
        for (int h = 0; h < H; h++) {
            float *k = a->k + ((long)n * H + h) * Dq;
            memcpy(k, a->kvb + ((long)n * H + h) * (Dn + Dv), sizeof(float) * Dn);
            memcpy(k + Dn, a->kva + (long)n * (R + Dr) + R, sizeof(float) * Dr);
        }
    attention_forward(a->y, a->att, a->q, a->k, a->kvb + Dn, B, T, H, Dq, Dv, H * (Dn + Dv), Dn + Dv, m->attn_scale);
    linear_forward(a->x_mid, a->y, p->o_proj, pk ? pk->o_proj : NULL, N, H * Dv, C);
    add_inplace(a->x_mid, a->x_in, (long)N * C);

    model_ffn_forward(m, l, x_out, B, T);
}

void model_ffn_forward(Model *m, int l, float *x_out, int B, int T) {
    const ModelConfig *c = &m->cfg;
    const LayerParams *p = &m->layers[l];
    LayerActs *a = &m->acts[l];
    int N = B * T, C = c->hidden_size, F = config_ffn_width(c, l);
    rmsnorm_forward(a->ln2, a->rstd2, a->x_mid, p->post_norm, N, C, C, c->rms_norm_eps);
    const PackedLayer *pk = packed_layer(m, l);
    if (F)
        ffn_forward(x_out, a->fg, a->fu, a->fh, a->ln2, p->gate, p->up, p->down, pk ? pk->gate : NULL,
                    pk ? pk->up : NULL, pk ? pk->down : NULL, N, C, F);
    else memset(x_out, 0, sizeof(float) * N * C);
    if (config_is_moe_layer(c, l)) moe_forward(m, l, x_out, B, T);
    add_inplace(x_out, a->x_mid, (long)N * C);
}

int model_forward_hidden(Model *m, const int *inputs, int B, int T) {
    const ModelConfig *c = &m->cfg;
    CHECK(m->acts, "model_forward: activations not allocated (call model_alloc_acts)");
    CHECK(B <= m->B_max && T <= m->T_max, "batch %d x length %d exceeds the allocated %d x %d", B, T, m->B_max,
          m->T_max);
    int N = B * T, C = c->hidden_size, V = c->vocab_size, L = c->num_hidden_layers;
    for (int i = 0; i < N; i++)
        CHECK(inputs[i] >= 0 && inputs[i] < V, "input token %d at position %d is outside the vocabulary [0, %d)",
              inputs[i], i, V);
    m->B = B;
    m->T = T;
    m->aux_loss = 0.0f;
    memcpy(m->inputs, inputs, sizeof(int) * N);
    embedding_forward(m->acts[0].x_in, inputs, m->embed, N, C);
    for (int l = 0; l < L; l++) block_forward(m, l, l + 1 < L ? m->acts[l + 1].x_in : m->x_final, B, T);
    rmsnorm_forward(m->xf, m->rstdf, m->x_final, m->final_norm, N, C, C, c->rms_norm_eps);
    return 0;
}

int model_forward(Model *m, const int *inputs, const int *targets, int B, int T) {
    const ModelConfig *c = &m->cfg;
    int N = B * T, C = c->hidden_size, V = c->vocab_size, L = c->num_hidden_layers;
    TRY(model_forward_hidden(m, inputs, B, T)); // checks the shape before targets are read
    for (int i = 0; i < N; i++)
        CHECK(targets[i] < V, "target token %d at position %d is outside the vocabulary [0, %d)", targets[i], i, V);
    memcpy(m->targets, targets, sizeof(int) * N);
    logprob_forward(m->logp, m->entropy, m->lse, m->head_scratch, m->xf, m->lm_head, targets, N, C, V, m->chunk,
                    1.0f / m->temperature);

    // With no weight on it (RL), the MTP block is neither run nor trained.
    m->mtp_active = c->num_nextn_predict_layers && m->mtp_lambda != 0.0f;
    m->mtp_loss = 0.0f;
    if (m->mtp_active) {
        // MTP: position t sees h_t and the embedding of token t+1 and predicts token t+2 (= targets[t+1]).
        // The last position has no next token; it is computed with its own token and never scored.
        const LayerParams *p = &m->layers[L];
        for (int n = 0; n < N; n++) {
            bool last = n % T == T - 1;
            m->mtp_tokens[n] = last ? inputs[n] : inputs[n + 1];
            m->mtp_targets[n] = last ? -1 : targets[n + 1];
        }
        embedding_forward(m->mtp_emb, m->mtp_tokens, m->embed, N, C);
        rmsnorm_forward(m->mtp_en, m->mtp_rstd_e, m->mtp_emb, p->enorm, N, C, C, c->rms_norm_eps);
        rmsnorm_forward(m->mtp_hn, m->mtp_rstd_h, m->x_final, p->hnorm, N, C, C, c->rms_norm_eps);
#pragma omp parallel for
        for (int n = 0; n < N; n++) {
            memcpy(m->mtp_cat + (long)n * 2 * C, m->mtp_en + (long)n * C, sizeof(float) * C);
            memcpy(m->mtp_cat + (long)n * 2 * C + C, m->mtp_hn + (long)n * C, sizeof(float) * C);
        }
        matmul_forward(m->acts[L].x_in, m->mtp_cat, p->eh_proj, N, 2 * C, C);
        block_forward(m, L, m->mtp_out, B, T);
        rmsnorm_forward(m->mtp_xf, m->mtp_rstdf, m->mtp_out, p->head_norm, N, C, C, c->rms_norm_eps);
        logprob_forward(m->mtp_logp, NULL, m->mtp_lse, m->head_scratch, m->mtp_xf, m->lm_head, m->mtp_targets, N, C,
                        V, m->chunk, 1.0f);
        double sum = 0.0;
        int cnt = 0;
        for (int n = 0; n < N; n++)
            if (m->mtp_targets[n] >= 0) { sum -= m->mtp_logp[n]; cnt++; }
        m->mtp_loss = cnt ? (float)(sum / cnt) : 0.0f;
    }
    return 0;
}

float model_ce_loss(const Model *m, float *dlogp) {
    int N = m->B * m->T, cnt = 0;
    double sum = 0.0;
    for (int n = 0; n < N; n++)
        if (m->targets[n] >= 0) { sum -= m->logp[n]; cnt++; }
    if (dlogp)
        for (int n = 0; n < N; n++) dlogp[n] = m->targets[n] >= 0 ? -1.0f / cnt : 0.0f;
    return cnt ? (float)(sum / cnt) : 0.0f;
}

void model_logits(const Model *m, float *out) {
    matmul_forward(out, m->xf, m->lm_head, m->B * m->T, m->cfg.hidden_size, m->cfg.vocab_size);
}

// ----------------------------------------------------------------------------------------------------
// backward

static void moe_backward(Model *m, int l, const float *dout, int B, int T) {
    const ModelConfig *c = &m->cfg;
    const LayerParams *p = &m->layers[l];
    LayerParams *g = &m->dlayers[l];
    const LayerActs *a = &m->acts[l];
    int N = B * T, C = c->hidden_size, E = c->n_routed_experts, K = c->num_experts_per_tok;
    int Im = c->moe_intermediate_size;
    const int *off = a->expert_off;
    // d weight of each (token, expert) pair and d expert output, in expert-sorted rows
#pragma omp parallel for
    for (int t = 0; t < N; t++) {
        const float *d = dout + (long)t * C;
        for (int k = 0; k < K; k++) {
            long pos = a->slot[t * K + k];
            const float *y = a->ey + pos * C;
            float *dy = m->dey + pos * C, w = a->topk_w[t * K + k], dot = 0.0f;
            for (int i = 0; i < C; i++) { dot += d[i] * y[i]; dy[i] = w * d[i]; }
            m->dtopk_w[t * K + k] = dot;
        }
    }
    size_t nk = (size_t)N * K;
    memset(m->dxs, 0, sizeof(float) * nk * C);
#pragma omp parallel for schedule(dynamic)
    for (int e = 0; e < E; e++) {
        long r0 = off[e];
        int n = off[e + 1] - off[e];
        if (!n) continue;
        ffn_backward(m->dxs + r0 * C, g->e_gate + (long)e * Im * C, g->e_up + (long)e * Im * C,
                     g->e_down + (long)e * C * Im, m->deg + r0 * Im, m->deu + r0 * Im, m->deh + r0 * Im,
                     m->dey + r0 * C, a->xs + r0 * C, a->eg + r0 * Im, a->eu + r0 * Im, a->eh + r0 * Im,
                     p->e_gate + (long)e * Im * C, p->e_up + (long)e * Im * C, p->e_down + (long)e * C * Im, n, C, Im);
    }
#pragma omp parallel for
    for (int t = 0; t < N; t++) {
        float *d = m->dln + (long)t * C;
        for (int k = 0; k < K; k++) {
            const float *dx = m->dxs + (long)a->slot[t * K + k] * C;
            for (int i = 0; i < C; i++) d[i] += dx[i];
        }
    }
    RouterSpec rs = router_spec(c);
    memset(m->drlogits, 0, sizeof(float) * N * E);
    router_backward(m->drlogits, m->dtopk_w, a->scores, a->topk_idx, &rs, N);
    if (m->aux_alpha > 0)
        seq_balance_loss(m->drlogits, a->scores, a->topk_idx, &rs, B, T, balance_len(m, l, T), m->aux_alpha);
    matmul_backward(m->dln, g->router, m->drlogits, a->ln2, p->router, N, C, E);
}

// m->dx holds d(x_out) on entry and d(x_in) on return.
static void block_backward(Model *m, int l, int B, int T) {
    const ModelConfig *c = &m->cfg;
    const LayerParams *p = &m->layers[l];
    LayerParams *g = &m->dlayers[l];
    const LayerActs *a = &m->acts[l];
    int N = B * T, C = c->hidden_size, H = c->num_attention_heads, Dq = config_qk_head_dim(c);
    int Dn = c->qk_nope_head_dim, Dr = c->qk_rope_head_dim, Dv = c->v_head_dim, R = c->kv_lora_rank;
    int Lq = c->q_lora_rank, F = config_ffn_width(c, l);
    size_t NC = sizeof(float) * (size_t)N * C;

    // FFN: the residual passes dx through; the branch adds via rmsnorm's backward.
    memset(m->dln, 0, NC);
    if (F)
        ffn_backward(m->dln, g->gate, g->up, g->down, m->dfg, m->dfu, m->dfh, m->dx, a->ln2, a->fg, a->fu, a->fh,
                     p->gate, p->up, p->down, N, C, F);
    if (config_is_moe_layer(c, l)) moe_backward(m, l, m->dx, B, T);
    rmsnorm_backward(m->dx, g->post_norm, m->dln, a->x_mid, p->post_norm, a->rstd2, N, C, C);

    // attention
    memset(m->dy, 0, sizeof(float) * N * H * Dv);
    matmul_backward(m->dy, g->o_proj, m->dx, a->y, p->o_proj, N, H * Dv, C);
    memset(m->dq, 0, sizeof(float) * N * H * Dq);
    memset(m->dk, 0, sizeof(float) * N * H * Dq);
    memset(m->dkvb, 0, sizeof(float) * N * H * (Dn + Dv));
    attention_backward(m->dq, m->dk, m->dkvb + Dn, m->datt, m->dy, a->att, a->q, a->k, a->kvb + Dn, B, T, H, Dq, Dv,
                       H * (Dn + Dv), Dn + Dv, m->attn_scale);
    memset(m->dkva, 0, sizeof(float) * N * (R + Dr));
#pragma omp parallel for
    for (int n = 0; n < N; n++)
        for (int h = 0; h < H; h++) {
            const float *dk = m->dk + ((long)n * H + h) * Dq;
            float *dkn = m->dkvb + ((long)n * H + h) * (Dn + Dv), *dpe = m->dkva + (long)n * (R + Dr) + R;
            for (int i = 0; i < Dn; i++) dkn[i] += dk[i];
            for (int i = 0; i < Dr; i++) dpe[i] += dk[Dn + i];
        }
    rope_backward(m->dkva, m->rope_cos, m->rope_sin, N, T, 1, R + Dr, 0, R, Dr);
    rope_backward(m->dq, m->rope_cos, m->rope_sin, N, T, H, H * Dq, Dq, Dn, Dr);
    memset(m->dcn, 0, sizeof(float) * N * R);
    matmul_backward(m->dcn, g->kv_b, m->dkvb, a->cn, p->kv_b, N, R, H * (Dn + Dv));
    rmsnorm_backward(m->dkva, g->kv_a_norm, m->dcn, a->kva, p->kv_a_norm, a->rstdkv, N, R, R + Dr);
    memset(m->dln, 0, NC);
    matmul_backward(m->dln, g->kv_a, m->dkva, a->ln1, p->kv_a, N, C, R + Dr);
    if (Lq) {
        memset(m->dqan, 0, sizeof(float) * N * Lq);
        memset(m->dqa, 0, sizeof(float) * N * Lq);
        matmul_backward(m->dqan, g->q_b, m->dq, a->qan, p->q_b, N, Lq, H * Dq);
        rmsnorm_backward(m->dqa, g->q_a_norm, m->dqan, a->qa, p->q_a_norm, a->rstdq, N, Lq, Lq);
        matmul_backward(m->dln, g->q_a, m->dqa, a->ln1, p->q_a, N, C, Lq);
    } else {
        matmul_backward(m->dln, g->q_proj, m->dq, a->ln1, p->q_proj, N, C, H * Dq);
    }
    rmsnorm_backward(m->dx, g->in_norm, m->dln, a->x_in, p->in_norm, a->rstd1, N, C, C);
}

void model_backward(Model *m, const float *dlogp) {
    const ModelConfig *c = &m->cfg;
    int B = m->B, T = m->T, N = B * T, C = c->hidden_size, V = c->vocab_size, L = c->num_hidden_layers;
    size_t NC = sizeof(float) * (size_t)N * C;
    memset(m->dx, 0, NC);
    if (m->mtp_active) {
        const LayerParams *p = &m->layers[L];
        LayerParams *g = &m->dlayers[L];
        int cnt = 0;
        for (int n = 0; n < N; n++) cnt += m->mtp_targets[n] >= 0;
        for (int n = 0; n < N; n++) m->dlogp_mtp[n] = m->mtp_targets[n] >= 0 ? -m->mtp_lambda / cnt : 0.0f;
        memset(m->dx2, 0, NC);
        if (cnt && m->mtp_lambda != 0.0f)
            logprob_backward(m->dx2, m->dlm_head, m->head_scratch, m->dlogp_mtp, m->mtp_xf, m->lm_head, m->mtp_lse,
                             m->mtp_targets, N, C, V, m->chunk, 1.0f);
        rmsnorm_backward(m->dx, g->head_norm, m->dx2, m->mtp_out, p->head_norm, m->mtp_rstdf, N, C, C);
        block_backward(m, L, B, T);
        memset(m->dmtp_cat, 0, NC * 2);
        matmul_backward(m->dmtp_cat, g->eh_proj, m->dx, m->mtp_cat, p->eh_proj, N, 2 * C, C);
        // split d[cat] into its embedding half (-> enorm -> embedding) and hidden half (-> hnorm -> h)
        for (int n = 0; n < N; n++) memcpy(m->dln + (long)n * C, m->dmtp_cat + (long)n * 2 * C, sizeof(float) * C);
        memset(m->dx2, 0, NC);
        rmsnorm_backward(m->dx2, g->enorm, m->dln, m->mtp_emb, p->enorm, m->mtp_rstd_e, N, C, C);
        embedding_backward(m->dembed, m->dx2, m->mtp_tokens, N, C);
        for (int n = 0; n < N; n++)
            memcpy(m->dln + (long)n * C, m->dmtp_cat + (long)n * 2 * C + C, sizeof(float) * C);
        memset(m->dx, 0, NC);
        rmsnorm_backward(m->dx, g->hnorm, m->dln, m->x_final, p->hnorm, m->mtp_rstd_h, N, C, C);
    }
    memset(m->dx2, 0, NC);
    logprob_backward(m->dx2, m->dlm_head, m->head_scratch, dlogp, m->xf, m->lm_head, m->lse, m->targets, N, C, V,
                     m->chunk, 1.0f / m->temperature);
    if (m->head_extra) m->head_extra(m->head_extra_ctx, m, dlogp, m->dx2);
    rmsnorm_backward(m->dx, m->dfinal_norm, m->dx2, m->x_final, m->final_norm, m->rstdf, N, C, C);
    for (int l = L - 1; l >= 0; l--) block_backward(m, l, B, T);
    embedding_backward(m->dembed, m->dx, m->inputs, N, C);
}

// ----------------------------------------------------------------------------------------------------
// router balancing

void model_reset_load(Model *m) {
    memset(m->expert_load, 0, sizeof(float) * m->n_blocks * (m->cfg.n_routed_experts + 1));
}

void model_update_router_bias(Model *m, float gamma) {
    int E = m->cfg.n_routed_experts;
    for (int l = 0; l < m->n_blocks && gamma != 0.0f; l++) {
        float *bias = m->layers[l].score_bias, *load = m->expert_load + (long)l * E;
        if (!bias) continue;
        double mean = 0.0;
        for (int e = 0; e < E; e++) mean += load[e];
        mean /= E;
        for (int e = 0; e < E; e++) bias[e] += gamma * (float)((mean > load[e]) - (mean < load[e]));
    }
    model_reset_load(m);
}
