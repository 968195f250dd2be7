#include "rollout/decode.h"
#include "common/error.h"
#include "policy/layers.h"
#include <cblas.h>
#include <math.h>
#include <stdint.h>
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

enum { HB = 8 }; // heads per block in the attention kernels: the lanes of one 8-float vector

static int heads_padded(int H) { return (H + HB - 1) / HB * HB; }

// Per-thread attention scratch (DecodeScratch.att), heads padded to Hp (a multiple of HB): the transposed
// absorbed query (W, Hp), the running weighted latents (Hp, R), the running softmax maximum and sum (2, Hp), and
// one page's scores (min(P, T_max) rows, Hp).
static size_t att_thread_floats(const ModelConfig *c, int T_max) {
    return (size_t)heads_padded(c->num_attention_heads) * (T_max + 2 * c->kv_lora_rank + c->qk_rope_head_dim + 2);
}

int decode_scratch_init(DecodeScratch *s, const ModelConfig *c, int N_max, int T_max) {
    memset(s, 0, sizeof *s);
    int C = c->hidden_size, H = c->num_attention_heads, Dq = config_qk_head_dim(c), Dv = c->v_head_dim;
    int R = c->kv_lora_rank, W = R + c->qk_rope_head_dim, Lq = c->q_lora_rank;
    s->N_max = N_max;
    s->T_max = T_max;
    s->threads = omp_get_max_threads();
    size_t n = (size_t)N_max * (2 * C + 1 + 2 * Lq + H * Dq + W + H * W + H * R + H * Dv) +
               (size_t)s->threads * att_thread_floats(c, T_max);
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
    CARVE(qabs, (size_t)N_max * H * W);
    CARVE(olat, (size_t)N_max * H * R);
    CARVE(y, (size_t)N_max * H * Dv);
    CARVE(att, (size_t)s->threads * att_thread_floats(c, T_max));
#undef CARVE
    return 0;
}

void decode_scratch_free(DecodeScratch *s) {
    free(s->mem);
    memset(s, 0, sizeof *s);
}

// Scores of n cached rows of one page (row t at row0 + t*W) for all heads: S[t, h] = scale * qT[:, h] . row_t.
// The heads are the vector lanes (no horizontal sums); a block of TB rows shares each load of the query and
// gives TB independent accumulator chains.
enum { TB = 8 };
static void page_scores(float *restrict S /* (n,Hp) */, const float *restrict qT /* (W,Hp) */,
                        const float *restrict row0, int n, int W, int Hp, float scale) {
    int t = 0;
    for (; t + TB <= n; t += TB)
        for (int hb = 0; hb < Hp; hb += HB) {
            float a[TB][HB] = {{0}};
            for (int i = 0; i < W; i++) {
                const float *restrict q = qT + (size_t)i * Hp + hb;
                for (int u = 0; u < TB; u++) {
                    float x = row0[(size_t)(t + u) * W + i];
#pragma omp simd
                    for (int k = 0; k < HB; k++) a[u][k] += q[k] * x;
                }
            }
            for (int u = 0; u < TB; u++)
                for (int k = 0; k < HB; k++) S[(size_t)(t + u) * Hp + hb + k] = a[u][k] * scale;
        }
    for (; t < n; t++)
        for (int hb = 0; hb < Hp; hb += HB) {
            float a[HB] = {0};
            for (int i = 0; i < W; i++) {
                const float *restrict q = qT + (size_t)i * Hp + hb;
                float x = row0[(size_t)t * W + i];
#pragma omp simd
                for (int k = 0; k < HB; k++) a[k] += q[k] * x;
            }
            for (int k = 0; k < HB; k++) S[(size_t)t * Hp + hb + k] = a[k] * scale;
        }
}

// exp(x) for the softmax's x <= 0, written so that it vectorises (libm's expf does not, and floorf and float-to-int
// conversions not without -fno-trapping-math): n = round(x / ln 2) by the 1.5 * 2^23 trick, which also leaves n
// in the low bits of t; 2^n * p(x - n ln 2) with Cephes' expf polynomial. Relative error < 1e-7; x < -87 gives
// exp(-87).
static inline float exp_neg(float x) {
    x = x < -87.0f ? -87.0f : x;
    float t = x * 1.44269504088896341f + 12582912.0f, n = t - 12582912.0f;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { float f; int32_t i; } a = {.f = t}, b;
    b.i = (a.i - 0x4B400000 + 127) << 23;
    return p * b.f;
}

// acc[h, :] += sum_t S[t, h] * c_kv_t for the n rows of one page, in blocks of HB heads x CW columns held in
// registers while the page's rows (in L1) stream past.
enum { CW = 16 };
static void page_weighted(float *restrict acc /* (Hp,R) */, const float *restrict S /* (n,Hp) */,
                          const float *restrict row0, int n, int W, int Hp, int R) {
    for (int c0 = 0; c0 < R; c0 += CW)
        for (int hb = 0; hb < Hp; hb += HB) {
            float a[HB][CW];
            if (c0 + CW <= R) {
                for (int k = 0; k < HB; k++)
                    for (int j = 0; j < CW; j++) a[k][j] = acc[(size_t)(hb + k) * R + c0 + j];
                for (int t = 0; t < n; t++) {
                    const float *restrict row = row0 + (size_t)t * W + c0, *restrict p = S + (size_t)t * Hp + hb;
                    for (int k = 0; k < HB; k++)
#pragma omp simd
                        for (int j = 0; j < CW; j++) a[k][j] += p[k] * row[j];
                }
                for (int k = 0; k < HB; k++)
                    for (int j = 0; j < CW; j++) acc[(size_t)(hb + k) * R + c0 + j] = a[k][j];
            } else { // a last partial block of columns
                for (int t = 0; t < n; t++)
                    for (int k = 0; k < HB; k++) {
                        float w = S[(size_t)t * Hp + hb + k];
                        for (int j = c0; j < R; j++) acc[(size_t)(hb + k) * R + j] += w * row0[(size_t)t * W + j];
                    }
            }
        }
}

// The online-softmax step for one page's scores S (n, Hp): the running maximum mx grows to cover them, the
// running sum and, when the maximum grew, the weighted latents acc (Hp, R) are rescaled by exp(old - new), and
// S becomes exp(S - mx) with its sum added. Blocks of HB heads, so that the loops vectorise.
static void page_softmax(float *restrict S, float *restrict mx, float *restrict sum, float *restrict acc, int n, int Hp,
                         int R, bool rescale) {
    for (int hb = 0; hb < Hp; hb += HB) {
        float m[HB], corr[HB], su[HB];
        for (int k = 0; k < HB; k++) m[k] = mx[hb + k];
        for (int t = 0; t < n; t++) {
            const float *restrict st = S + (size_t)t * Hp + hb;
#pragma omp simd
            for (int k = 0; k < HB; k++) m[k] = st[k] > m[k] ? st[k] : m[k];
        }
        bool grew = false;
        for (int k = 0; k < HB; k++) grew |= m[k] > mx[hb + k];
#pragma omp simd
        for (int k = 0; k < HB; k++) {
            corr[k] = exp_neg(mx[hb + k] - m[k]);
            su[k] = sum[hb + k] * corr[k];
        }
        if (grew && rescale)
            for (int k = 0; k < HB; k++)
#pragma omp simd
                for (int i = 0; i < R; i++) acc[(size_t)(hb + k) * R + i] *= corr[k];
        for (int t = 0; t < n; t++) {
            float *restrict st = S + (size_t)t * Hp + hb;
#pragma omp simd
            for (int k = 0; k < HB; k++) {
                float e = exp_neg(st[k] - m[k]);
                st[k] = e;
                su[k] += e;
            }
        }
        for (int k = 0; k < HB; k++) mx[hb + k] = m[k], sum[hb + k] = su[k];
    }
}

// Attention of one sequence over its cached rows 0..len-1 for all heads at once, one page at a time (the
// page's rows are read into L1 once): scores = q_abs . rows, an online softmax (running maximum and sum,
// earlier sums rescaled when the maximum grows), then the weighted sum of the c_kv rows.
static void latent_attention(float *olat,        // (H,R)
                             float *ws,          // att_thread_floats scratch
                             const float *qabs,  // (H,W)
                             const LatentCache *kc, int l, const int *pages, int len, int H, int R, float scale) {
    int W = kc->W, P = kc->P, Hp = heads_padded(H);
    float *qT = ws, *acc = qT + (size_t)W * Hp, *mx = acc + (size_t)Hp * R, *sum = mx + Hp, *S = sum + Hp;
    for (int i = 0; i < W; i++)
        for (int h = 0; h < Hp; h++) qT[(size_t)i * Hp + h] = h < H ? qabs[(size_t)h * W + i] : 0.0f;
    memset(acc, 0, sizeof(float) * Hp * R);
    for (int h = 0; h < Hp; h++) mx[h] = -INFINITY, sum[h] = 0.0f;
    for (int t0 = 0; t0 < len; t0 += P) {
        int n = len - t0 < P ? len - t0 : P;
        const float *row0 = latent_cache_row(kc, pages[t0 / P], l, 0);
        page_scores(S, qT, row0, n, W, Hp, scale);
        page_softmax(S, mx, sum, acc, n, Hp, R, t0 > 0);
        page_weighted(acc, S, row0, n, W, Hp, R);
    }
    for (int h = 0; h < H; h++)
        for (int i = 0; i < R; i++) olat[(size_t)h * R + i] = acc[(size_t)h * R + i] / sum[h];
}

// Pairwise RoPE of one Dr-vector at one position (the layout and tables of policy/layers.h's rope_forward).
static inline void rope_row(float *x, const float *cs, const float *sn, int Dr) {
    for (int j = 0; j < Dr / 2; j++) {
        float a = x[2 * j], b = x[2 * j + 1];
        x[2 * j] = a * cs[j] - b * sn[j];
        x[2 * j + 1] = a * sn[j] + b * cs[j];
    }
}

// Everything between the projections and o_proj for sequences n0..n1-1, so that a decode step's attention is
// one parallel loop over chunks of sequences (one fork/join per layer rather than one per head and phase; a
// BLAS call inside it runs on its thread): each sequence's [rmsnorm(c_kv), rope(k_pe)] row into the cache and
// its rotated q_pe into the absorbed query; W_UK absorbed into the queries (one matmul per head over the
// chunk); attention over the cached rows; W_UV applied (one matmul per head).
static void attend_chunk(const Model *m, const LayerParams *p, const LatentCache *kc, DecodeScratch *s, int l,
                         int *const *pages, const int *pos, int n0, int n1, float *ws /* att_thread_floats */) {
    const ModelConfig *c = &m->cfg;
    int H = c->num_attention_heads, Dn = c->qk_nope_head_dim, Dr = c->qk_rope_head_dim, Dq = Dn + Dr;
    int Dv = c->v_head_dim, R = c->kv_lora_rank, W = R + Dr, half = Dr / 2, M = n1 - n0;
    for (int n = n0; n < n1; n++) {
        const float *cs = m->rope_cos + (size_t)pos[n] * half, *sn = m->rope_sin + (size_t)pos[n] * half;
        const float *kva = s->kva + (size_t)n * W;
        float *row = latent_cache_row(kc, pages[n][pos[n] / kc->P], l, pos[n] % kc->P), ss = 0.0f;
        for (int i = 0; i < R; i++) ss += kva[i] * kva[i];
        float r = 1.0f / sqrtf(ss / R + c->rms_norm_eps);
        for (int i = 0; i < R; i++) row[i] = kva[i] * r * p->kv_a_norm[i];
        memcpy(row + R, kva + R, sizeof(float) * Dr);
        rope_row(row + R, cs, sn, Dr);
        for (int h = 0; h < H; h++) {
            float *qa = s->qabs + ((size_t)n * H + h) * W + R;
            memcpy(qa, s->q + ((size_t)n * H + h) * Dq + Dn, sizeof(float) * Dr);
            rope_row(qa, cs, sn, Dr);
        }
    }
    // q_lat[n,h] = q_nope[n,h] @ W_UK[h] with W_UK[h] the (Dn,R) k rows of kv_b for head h
    for (int h = 0; h < H; h++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, R, Dn, 1.0f, s->q + (size_t)n0 * H * Dq + h * Dq,
                    H * Dq, p->kv_b + (size_t)h * (Dn + Dv) * R, R, 0.0f, s->qabs + (size_t)n0 * H * W + h * W, H * W);
    for (int n = n0; n < n1; n++)
        latent_attention(s->olat + (size_t)n * H * R, ws, s->qabs + (size_t)n * H * W, kc, l, pages[n], pos[n] + 1, H,
                         R, m->attn_scale);
    // y[n,h] = W_UV[h] @ olat[n,h] with W_UV[h] the (Dv,R) v rows of kv_b for head h
    for (int h = 0; h < H; h++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, Dv, R, 1.0f, s->olat + (size_t)n0 * H * R + h * R,
                    H * R, p->kv_b + ((size_t)h * (Dn + Dv) + Dn) * R, R, 0.0f, s->y + (size_t)n0 * H * Dv + h * Dv,
                    H * Dv);
}

void decode_step(Model *m, LatentCache *kc, DecodeScratch *s, const int *tokens, const int *pos, int *const *pages,
                 int N) {
    const ModelConfig *c = &m->cfg;
    int C = c->hidden_size, H = c->num_attention_heads, Dq = config_qk_head_dim(c), Dv = c->v_head_dim;
    int R = c->kv_lora_rank, W = R + c->qk_rope_head_dim, Lq = c->q_lora_rank, L = c->num_hidden_layers;
    float eps = c->rms_norm_eps;
    bool count_load = m->count_load;
    float aux_alpha = m->aux_alpha;
    m->count_load = false;
    m->aux_alpha = 0.0f;
    // Chunks of up to 16 sequences, at least two per thread where N allows (dynamic: lengths differ).
    int chunk = (N + 2 * s->threads - 1) / (2 * s->threads);
    chunk = chunk < 1 ? 1 : chunk > 16 ? 16 : chunk;
    int n_chunks = (N + chunk - 1) / chunk;

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
#pragma omp parallel for schedule(dynamic) if (n_chunks > 1)
        for (int k = 0; k < n_chunks; k++)
            attend_chunk(m, p, kc, s, l, pages, pos, k * chunk, (k + 1) * chunk < N ? (k + 1) * chunk : N,
                         s->att + (size_t)omp_get_thread_num() * att_thread_floats(c, s->T_max));
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
