#include "rollout/decode.h"
#include "common/error.h"
#include "policy/layers.h"
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

int latent_cache_init(LatentCache *kc, const ModelConfig *c, int n_pages, int P) {
    memset(kc, 0, sizeof *kc);
    CHECK(n_pages > 0 && P > 0, "latent cache: %d pages of %d tokens: expected both > 0", n_pages, P);
    kc->L = c->num_hidden_layers;
    kc->P = P;
    kc->W = c->kv_lora_rank + c->qk_rope_head_dim;
    kc->n_pages = n_pages;
    size_t bytes = (size_t)n_pages * kc->L * P * kc->W * sizeof(float);
    kc->mem = malloc(bytes);
    kc->ref = calloc(n_pages, sizeof(int));
    kc->free_pages = malloc(sizeof(int) * n_pages);
    if (!kc->mem || !kc->ref || !kc->free_pages) {
        latent_cache_free(kc);
        return ERR("latent cache: cannot allocate %.1f MB (%d pages x %d tokens x %zu bytes per token); lower "
                   "the token budget", bytes / 1e6, n_pages, P, latent_cache_token_bytes(c));
    }
    // Handing out low page ids first keeps a short rollout's pages together.
    for (int i = 0; i < n_pages; i++) kc->free_pages[i] = n_pages - 1 - i;
    kc->n_free = n_pages;
    return 0;
}

void latent_cache_free(LatentCache *kc) {
    free(kc->mem);
    free(kc->ref);
    free(kc->free_pages);
    memset(kc, 0, sizeof *kc);
}

int latent_cache_take(LatentCache *kc) {
    if (!kc->n_free) return -1;
    int p = kc->free_pages[--kc->n_free];
    kc->ref[p] = 1;
    return p;
}

void latent_cache_drop(LatentCache *kc, int page) {
    if (--kc->ref[page] == 0) kc->free_pages[kc->n_free++] = page;
}

size_t latent_cache_token_bytes(const ModelConfig *c) {
    return sizeof(float) * c->num_hidden_layers * (c->kv_lora_rank + c->qk_rope_head_dim);
}

size_t expanded_cache_token_bytes(const ModelConfig *c) {
    return sizeof(float) * c->num_hidden_layers * c->num_attention_heads * (config_qk_head_dim(c) + c->v_head_dim);
}

int decode_scratch_init(DecodeScratch *s, const ModelConfig *c, int N_max, int T_max) {
    memset(s, 0, sizeof *s);
    int C = c->hidden_size, H = c->num_attention_heads, Dq = config_qk_head_dim(c), Dv = c->v_head_dim;
    int R = c->kv_lora_rank, W = R + c->qk_rope_head_dim, Lq = c->q_lora_rank;
    s->N_max = N_max;
    s->T_max = T_max;
    s->threads = omp_get_max_threads();
    size_t n = (size_t)N_max * (2 * C + 1 + 2 * Lq + H * Dq + W + R + H * W + H * R + H * Dv) +
               (size_t)s->threads * H * T_max;
    s->mem = grpo_malloc(n * sizeof(float), "decode scratch");
    if (!s->mem) return -1;
    float *p = s->mem;
#define CARVE(field, count) do { s->field = p; p += (size_t)(count); } while (0)
    CARVE(x, N_max * C);
    CARVE(ln, N_max * C);
    CARVE(rstd, N_max);
    CARVE(qa, N_max * Lq);
    CARVE(qan, N_max * Lq);
    CARVE(q, N_max * H * Dq);
    CARVE(kva, N_max * W);
    CARVE(cn, N_max * R);
    CARVE(qabs, (size_t)N_max * H * W);
    CARVE(olat, (size_t)N_max * H * R);
    CARVE(y, (size_t)N_max * H * Dv);
    CARVE(att, (size_t)s->threads * H * T_max);
#undef CARVE
    return 0;
}

void decode_scratch_free(DecodeScratch *s) {
    free(s->mem);
    memset(s, 0, sizeof *s);
}

// Attention of one sequence over its cached rows 0..len-1 for all heads at once; every head reads the
// same rows, so each row is loaded once per head group.
static void latent_attention(float *olat,        // (H,R)
                             float *S,           // (H,len) scratch
                             const float *qabs,  // (H,W)
                             const LatentCache *kc, int l, const int *pages, int len, int H, int R, float scale) {
    int W = kc->W, P = kc->P;
    for (int t = 0; t < len; t++) {
        const float *row = latent_cache_row(kc, pages[t / P], l, t % P);
        for (int h = 0; h < H; h++) {
            const float *qh = qabs + (size_t)h * W;
            float d = 0.0f;
#pragma omp simd reduction(+ : d)
            for (int i = 0; i < W; i++) d += qh[i] * row[i];
            S[(size_t)h * len + t] = d * scale;
        }
    }
    for (int h = 0; h < H; h++) {
        float *sh = S + (size_t)h * len, mx = -INFINITY, sum = 0.0f;
        for (int t = 0; t < len; t++) mx = fmaxf(mx, sh[t]);
        for (int t = 0; t < len; t++) sum += (sh[t] = expf(sh[t] - mx));
        float inv = 1.0f / sum;
        for (int t = 0; t < len; t++) sh[t] *= inv;
    }
    memset(olat, 0, sizeof(float) * H * R);
    for (int t = 0; t < len; t++) {
        const float *row = latent_cache_row(kc, pages[t / P], l, t % P);
        for (int h = 0; h < H; h++) {
            float w = S[(size_t)h * len + t], *o = olat + (size_t)h * R;
#pragma omp simd
            for (int i = 0; i < R; i++) o[i] += w * row[i];
        }
    }
}

void decode_step(Model *m, LatentCache *kc, DecodeScratch *s, const int *tokens, const int *pos, int *const *pages,
                 int N) {
    const ModelConfig *c = &m->cfg;
    int C = c->hidden_size, H = c->num_attention_heads, Dn = c->qk_nope_head_dim, Dr = c->qk_rope_head_dim;
    int Dq = Dn + Dr, Dv = c->v_head_dim, R = c->kv_lora_rank, W = R + Dr, Lq = c->q_lora_rank;
    int L = c->num_hidden_layers, P = kc->P;
    float eps = c->rms_norm_eps;
    bool count_load = m->count_load;
    float aux_alpha = m->aux_alpha;
    m->count_load = false;
    m->aux_alpha = 0.0f;

    embedding_forward(s->x, tokens, m->embed, N, C);
    for (int l = 0; l < L; l++) {
        const LayerParams *p = &m->layers[l];
        rmsnorm_forward(s->ln, s->rstd, s->x, p->in_norm, N, C, C, eps);
        if (Lq) {
            matmul_forward(s->qa, s->ln, p->q_a, N, C, Lq);
            rmsnorm_forward(s->qan, s->rstd, s->qa, p->q_a_norm, N, Lq, Lq, eps);
            matmul_forward(s->q, s->qan, p->q_b, N, Lq, H * Dq);
        } else {
            matmul_forward(s->q, s->ln, p->q_proj, N, C, H * Dq);
        }
        matmul_forward(s->kva, s->ln, p->kv_a, N, C, W);
        rmsnorm_forward(s->cn, s->rstd, s->kva, p->kv_a_norm, N, R, W, eps);
        rope_forward_at(s->q, m->rope_cos, m->rope_sin, pos, N, H, H * Dq, Dq, Dn, Dr);
        rope_forward_at(s->kva, m->rope_cos, m->rope_sin, pos, N, 1, W, 0, R, Dr);
        for (int n = 0; n < N; n++) {
            float *row = latent_cache_row(kc, pages[n][pos[n] / P], l, pos[n] % P);
            memcpy(row, s->cn + (size_t)n * R, sizeof(float) * R);
            memcpy(row + R, s->kva + (size_t)n * W + R, sizeof(float) * Dr);
        }
        // Absorb W_UK: q_lat[n,h] = q_nope[n,h] @ W_UK[h] with W_UK[h] the (Dn,R) k rows of kv_b for head h.
        for (int h = 0; h < H; h++) {
            const float *wuk = p->kv_b + (size_t)h * (Dn + Dv) * R;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, R, Dn, 1.0f, s->q + (size_t)h * Dq, H * Dq,
                        wuk, R, 0.0f, s->qabs + (size_t)h * W, H * W);
        }
#pragma omp parallel for
        for (int n = 0; n < N; n++)
            for (int h = 0; h < H; h++)
                memcpy(s->qabs + ((size_t)n * H + h) * W + R, s->q + ((size_t)n * H + h) * Dq + Dn, sizeof(float) * Dr);
#pragma omp parallel for schedule(dynamic)
        for (int n = 0; n < N; n++)
            latent_attention(s->olat + (size_t)n * H * R, s->att + (size_t)omp_get_thread_num() * H * s->T_max,
                             s->qabs + (size_t)n * H * W, kc, l, pages[n], pos[n] + 1, H, R, m->attn_scale);
        // Apply W_UV: y[n,h] = W_UV[h] @ olat[n,h] with W_UV[h] the (Dv,R) v rows of kv_b for head h.
        for (int h = 0; h < H; h++) {
            const float *wuv = p->kv_b + ((size_t)h * (Dn + Dv) + Dn) * R;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, Dv, R, 1.0f, s->olat + (size_t)h * R, H * R,
                        wuv, R, 0.0f, s->y + (size_t)h * Dv, H * Dv);
        }
        LayerActs *a = &m->acts[l];
        matmul_forward(a->x_mid, s->y, p->o_proj, N, H * Dv, C);
        for (size_t i = 0; i < (size_t)N * C; i++) a->x_mid[i] += s->x[i];
        model_ffn_forward(m, l, s->x, N, 1);
    }
    rmsnorm_forward(m->xf, m->rstdf, s->x, m->final_norm, N, C, C, eps);
    m->count_load = count_load;
    m->aux_alpha = aux_alpha;
}

void decode_cache_prompt(LatentCache *kc, const Model *m, const int *pages, int T) {
    const ModelConfig *c = &m->cfg;
    int R = c->kv_lora_rank, W = kc->W, P = kc->P;
    for (int l = 0; l < kc->L; l++) {
        const LayerActs *a = &m->acts[l];
        for (int t = 0; t < T; t++) {
            float *row = latent_cache_row(kc, pages[t / P], l, t % P);
            memcpy(row, a->cn + (size_t)t * R, sizeof(float) * R);
            memcpy(row + R, a->kva + (size_t)t * W + R, sizeof(float) * (W - R));
        }
    }
}
