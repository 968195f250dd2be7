#include "rollout/decode.h"
#include "common/error.h"
#include "common/vmath.h"
#include "policy/layers.h"
#include "policy/packed.h"
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
    latent_cache_reset(kc);
    return 0;
}

void latent_cache_reset(LatentCache *kc) {
    // Handing out low page ids first keeps a short rollout's pages together.
    for (int i = 0; i < kc->n_pages; i++) kc->free_pages[i] = kc->n_pages - 1 - i, kc->ref[i] = 0;
    kc->n_free = kc->n_pages;
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
enum { GROUP_LANES = 64 }; // queries (members x heads) of a share group: one register panel of gemm_small
enum { GROUP_QUERIES = GROUP_LANES + 2 * HB }; // its query block's width: the last member's Hp lanes fit

static int heads_padded(int H) { return (H + HB - 1) / HB * HB; }

// Per-thread attention scratch (DecodeScratch.att). A sequence's own rows, heads padded to Hp (a multiple of HB):
// the weighted latents (Hp, R), the softmax maximum and sum (2, Hp) and the scores of every cached row (T_max, Hp).
// A share group (GROUP_LANES queries): its transposed queries (W, GROUP_QUERIES), then the same four.
static size_t att_thread_floats(const ModelConfig *c, int T_max) {
    size_t R = c->kv_lora_rank, W = R + c->qk_rope_head_dim;
    return heads_padded(c->num_attention_heads) * (R + 2 + T_max) + W * GROUP_QUERIES + GROUP_LANES * (R + 2 + T_max);
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
    s->members = grpo_malloc(sizeof(int) * (3 * (size_t)N_max + 1), "decode scratch");
    if (!s->mem || !s->members) return -1;
    s->group_off = s->members + N_max;
    s->group_shared = s->group_off + N_max + 1;
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
    free(s->members);
    memset(s, 0, sizeof *s);
}

// 8 floats, one vector of HB heads; aligned(4) lets it load from any float address.
typedef float vec8 __attribute__((vector_size(32), aligned(4)));

// Scores of n cached rows of one page (row t at row0 + t*W) for all heads: S[t, h] = qT[:, h] . row_t, with
// row i of qT at qT + i*ldq.
// The heads are the vector lanes (no horizontal sums). Four rows share each load of the query, and even and
// odd i accumulate apart: eight independent chains, with few enough pointers to stay in registers.
static void page_scores(float *restrict S /* (n,Hp) */, const float *restrict qT /* (W,Hp), row stride ldq */, int ldq,
                        const float *restrict row0, int n, int W, int Hp) {
    int t = 0;
    for (; t + 4 <= n; t += 4)
        for (int hb = 0; hb < Hp; hb += HB) {
            const float *r0 = row0 + (size_t)t * W, *r1 = r0 + W, *r2 = r1 + W, *r3 = r2 + W;
            vec8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};
            int i = 0;
            for (; i + 2 <= W; i += 2) {
                vec8 q0 = *(const vec8 *)(qT + (size_t)i * ldq + hb), q1 = *(const vec8 *)(qT + (size_t)(i + 1) * ldq + hb);
                a0 += q0 * r0[i], a1 += q0 * r1[i], a2 += q0 * r2[i], a3 += q0 * r3[i];
                b0 += q1 * r0[i + 1], b1 += q1 * r1[i + 1], b2 += q1 * r2[i + 1], b3 += q1 * r3[i + 1];
            }
            if (i < W) {
                vec8 q0 = *(const vec8 *)(qT + (size_t)i * ldq + hb);
                a0 += q0 * r0[i], a1 += q0 * r1[i], a2 += q0 * r2[i], a3 += q0 * r3[i];
            }
            *(vec8 *)(S + (size_t)t * Hp + hb) = a0 + b0;
            *(vec8 *)(S + (size_t)(t + 1) * Hp + hb) = a1 + b1;
            *(vec8 *)(S + (size_t)(t + 2) * Hp + hb) = a2 + b2;
            *(vec8 *)(S + (size_t)(t + 3) * Hp + hb) = a3 + b3;
        }
    for (; t < n; t++) // the last rows one at a time, four chains over i
        for (int hb = 0; hb < Hp; hb += HB) {
            const float *r = row0 + (size_t)t * W;
            vec8 a[4] = {{0}};
            int i = 0;
            for (; i + 4 <= W; i += 4)
                for (int u = 0; u < 4; u++) a[u] += *(const vec8 *)(qT + (size_t)(i + u) * ldq + hb) * r[i + u];
            for (; i < W; i++) a[0] += *(const vec8 *)(qT + (size_t)i * ldq + hb) * r[i];
            *(vec8 *)(S + (size_t)t * Hp + hb) = (a[0] + a[1]) + (a[2] + a[3]);
        }
}

// acc[h, :] = sum_t S[t, h] * c_kv_t over all len cached rows, in blocks of HB heads x CW columns held in
// registers while the rows stream past (page by page).
enum { CW = 16 };
static void weighted_latents(float *restrict acc /* (Hp,R) */, const float *restrict S /* (len,Hp) */,
                             const LatentCache *kc, int l, const int *pages, int len, int Hp, int R) {
    int W = kc->W, P = kc->P;
    for (int c0 = 0; c0 < R; c0 += CW)
        for (int hb = 0; hb < Hp; hb += HB) {
            float a[HB][CW] = {{0}};
            int cw = R - c0 < CW ? R - c0 : CW;
            for (int t0 = 0; t0 < len; t0 += P) {
                int n = len - t0 < P ? len - t0 : P;
                const float *row0 = latent_cache_row(kc, pages[t0 / P], l, 0) + c0;
                const float *p0 = S + (size_t)t0 * Hp + hb;
                if (cw == CW)
                    for (int t = 0; t < n; t++) {
                        const float *restrict row = row0 + (size_t)t * W, *restrict p = p0 + (size_t)t * Hp;
                        for (int k = 0; k < HB; k++)
#pragma omp simd
                            for (int j = 0; j < CW; j++) a[k][j] += p[k] * row[j];
                    }
                else // a last partial block of columns
                    for (int t = 0; t < n; t++)
                        for (int k = 0; k < HB; k++)
                            for (int j = 0; j < cw; j++) a[k][j] += p0[(size_t)t * Hp + k] * row0[(size_t)t * W + j];
            }
            for (int k = 0; k < HB; k++)
                for (int j = 0; j < cw; j++) acc[(size_t)(hb + k) * R + c0 + j] = a[k][j];
        }
}

// S (len, Hp) becomes exp(S - max) per column; mx and sum (Hp) get the maxima and the totals. Blocks of HB
// columns, so that the loops vectorise.
static void softmax_columns(float *restrict S, float *restrict mx, float *restrict sum, int len, int Hp) {
    for (int hb = 0; hb < Hp; hb += HB) {
        float m[HB], su[HB] = {0};
        for (int k = 0; k < HB; k++) m[k] = -INFINITY;
        for (int t = 0; t < len; t++) {
            const float *restrict st = S + (size_t)t * Hp + hb;
#pragma omp simd
            for (int k = 0; k < HB; k++) m[k] = st[k] > m[k] ? st[k] : m[k];
        }
        for (int t = 0; t < len; t++) {
            float *restrict st = S + (size_t)t * Hp + hb;
#pragma omp simd
            for (int k = 0; k < HB; k++) {
                st[k] = exp_neg(st[k] - m[k]);
                su[k] += st[k];
            }
        }
        for (int k = 0; k < HB; k++) mx[hb + k] = m[k], sum[hb + k] = su[k];
    }
}

// Attention of one sequence over its own cached rows (len of them, in pages[0..], with the scale folded into its
// query qT, row stride ldq), all heads at once: the scores of every row (page by page, each page's rows read into
// L1 once), one softmax, then the weighted sum of the c_kv rows. Leaves the unnormalised weighted latents in acc
// (Hp,R), and the softmax maximum and sum per head in mx and sum (Hp), for the caller to merge with a shared part.
static void attend_rows(float *acc, float *mx, float *sum, float *S /* (len,Hp) */, const float *qT, int ldq,
                        const LatentCache *kc, int l, const int *pages, int len, int Hp, int R) {
    int P = kc->P;
    for (int t0 = 0; t0 < len; t0 += P) {
        int n = len - t0 < P ? len - t0 : P;
        page_scores(S + (size_t)t0 * Hp, qT, ldq, latent_cache_row(kc, pages[t0 / P], l, 0), n, kc->W, Hp);
    }
    softmax_columns(S, mx, sum, len, Hp);
    weighted_latents(acc, S, kc, l, pages, len, Hp, R);
}

// Pairwise RoPE of one Dr-vector at one position (the layout and tables of policy/layers.h's rope_forward).
static inline void rope_row(float *x, const float *cs, const float *sn, int Dr) {
    for (int j = 0; j < Dr / 2; j++) {
        float a = x[2 * j], b = x[2 * j + 1];
        x[2 * j] = a * cs[j] - b * sn[j];
        x[2 * j + 1] = a * sn[j] + b * cs[j];
    }
}

// A decode step's attention runs in phases over the batch, in one parallel region per layer: (A) per
// sequence, its [rmsnorm(c_kv), rope(k_pe)] row into the cache and its rotated q_pe into the absorbed
// query, and per head, W_UK absorbed into the queries of the whole batch (one product); (B) per share group,
// attention over the cached rows; (C) per head, W_UV applied (one product over the batch).

static void cache_row(const Model *m, const LayerParams *p, const LatentCache *kc, DecodeScratch *s, int l,
                      int *const *pages, const int *pos, int n) {
    const ModelConfig *c = &m->cfg;
    int H = c->num_attention_heads, Dn = c->qk_nope_head_dim, Dr = c->qk_rope_head_dim, Dq = Dn + Dr;
    int R = c->kv_lora_rank, W = R + Dr, half = Dr / 2;
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

// Attention for the G sequences members[0..G-1] whose first `shared` pages are the same pages (the samples of
// one prompt: G = 1 or shared = 0 is a sequence alone). The shared rows are scored and summed once for all
// members, as products of all G*H queries with each page's rows (gemm_small: every row is read once per group
// instead of once per sample); each member then attends over its own rows and the two softmax parts are merged
// (rescaled to their common maximum).
static void attend_group(const DecodeScratch *s, float *ws, const LatentCache *kc, int l, int *const *pages,
                         const int *pos, const int *members, int G, int shared, int H, int R, float scale) {
    int W = kc->W, P = kc->P, Hp = heads_padded(H), L = G * H, Lp = (L + 15) / 16 * 16, n_sh = shared * P;
    int Lq = (L + Hp - H + 15) / 16 * 16; // a member's block of Hp lanes starting at g*H stays inside
    float *acc = ws, *mx = acc + (size_t)Hp * R, *sum = mx + Hp, *S = sum + Hp;
    float *gq = S + (size_t)s->T_max * Hp, *gacc = gq + (size_t)W * GROUP_QUERIES, *gmx = gacc + (size_t)GROUP_LANES * R;
    float *gsum = gmx + GROUP_LANES, *gS = gsum + GROUP_LANES;
    // gq (W, Lq): lane g*H + h holds member g's query for head h, the scale folded in; zeros after lane L.
    const float *lane[GROUP_LANES];
    for (int g = 0; g < G; g++)
        for (int h = 0; h < H; h++) lane[g * H + h] = s->qabs + ((size_t)members[g] * H + h) * W;
    for (int i = 0; i < W; i++) {
        float *row = gq + (size_t)i * Lq;
        for (int k = 0; k < L; k++) row[k] = scale * lane[k][i];
        for (int k = L; k < Lq; k++) row[k] = 0.0f;
    }
    if (n_sh) {
        for (int pg = 0; pg < shared; pg++)
            gemm_small(gS + (size_t)pg * P * Lp, Lp, latent_cache_row(kc, pages[members[0]][pg], l, 0), W, 1, gq, Lq,
                       P, W, L, false);
        for (int k = 0; k < L; k++) gmx[k] = -INFINITY, gsum[k] = 0.0f;
        for (int t = 0; t < n_sh; t++)
            for (int k = 0; k < L; k++) gmx[k] = gS[(size_t)t * Lp + k] > gmx[k] ? gS[(size_t)t * Lp + k] : gmx[k];
        for (int t = 0; t < n_sh; t++)
#pragma omp simd
            for (int k = 0; k < L; k++) {
                float e = exp_neg(gS[(size_t)t * Lp + k] - gmx[k]);
                gS[(size_t)t * Lp + k] = e;
                gsum[k] += e;
            }
        // gacc (L, R) = sum over the shared rows of weight x c_kv: X = gS transposed (lanes x rows)
        for (int pg = 0; pg < shared; pg++)
            gemm_small(gacc, R, gS + (size_t)pg * P * Lp, 1, Lp, latent_cache_row(kc, pages[members[0]][pg], l, 0), W, L,
                       P, R, pg > 0);
    }
    for (int g = 0; g < G; g++) {
        int n = members[g];
        attend_rows(acc, mx, sum, S, gq + g * H, Lq, kc, l, pages[n] + shared, pos[n] + 1 - n_sh, Hp, R);
        float *olat = s->olat + (size_t)n * H * R;
        for (int h = 0; h < H; h++) {
            float a = 0.0f, b = 1.0f, total = sum[h];
            const float *sh = gacc + (size_t)(g * H + h) * R;
            if (n_sh) { // merge: both parts rescaled to the larger maximum
                float top = gmx[g * H + h] > mx[h] ? gmx[g * H + h] : mx[h];
                a = exp_neg(gmx[g * H + h] - top), b = exp_neg(mx[h] - top);
                total = a * gsum[g * H + h] + b * sum[h];
            }
            float inv = 1.0f / total;
            for (int i = 0; i < R; i++)
                olat[(size_t)h * R + i] = ((n_sh ? a * sh[i] : 0.0f) + b * acc[(size_t)h * R + i]) * inv;
        }
    }
}

// Share groups for this step: sequences with the same first page hold the same prompt; their common full
// pages (below every member's position, so none is written this step) are shared. Groups of at most
// GROUP_LANES / H members (one register panel of queries). None when H leaves room for one member only, when
// rows of c_kv cannot be read in vectors of 16 (gemm_small), or when pages are short: the shared products run
// page by page, and at 16 rows a page their fixed costs ate the gain (measured with bench/bench_rollout.py).
static void find_groups(DecodeScratch *s, const LatentCache *kc, int *const *pages, const int *pos, int N, int H,
                        int R) {
    int per = GROUP_LANES / H, P = kc->P;
    bool share = per >= 2 && (R + 15) / 16 * 16 <= kc->W && P >= 32;
    int *ord = s->members;
    for (int n = 0; n < N; n++) { // insertion sort by first page (N is a batch: small)
        int k = n;
        while (k > 0 && pages[ord[k - 1]][0] > pages[n][0]) ord[k] = ord[k - 1], k--;
        ord[k] = n;
    }
    s->n_groups = 0;
    for (int i = 0; i < N;) {
        int j = i + 1;
        while (share && j < N && j - i < per && pages[ord[j]][0] == pages[ord[i]][0]) j++;
        int shared = 0;
        if (j - i > 1) {
            int lo = pos[ord[i]];
            for (int k = i + 1; k < j; k++) lo = pos[ord[k]] < lo ? pos[ord[k]] : lo;
            for (; shared < lo / P; shared++) {
                bool same = true;
                for (int k = i + 1; k < j; k++) same &= pages[ord[k]][shared] == pages[ord[i]][shared];
                if (!same) break;
            }
        }
        s->group_off[s->n_groups] = i;
        s->group_shared[s->n_groups++] = shared;
        i = j;
    }
    s->group_off[s->n_groups] = N;
}

void decode_step(Model *m, const PackedModel *pk, LatentCache *kc, DecodeScratch *s, const int *tokens, const int *pos,
                 int *const *pages, int N) {
    const ModelConfig *c = &m->cfg;
    int C = c->hidden_size, H = c->num_attention_heads, Dq = config_qk_head_dim(c), Dv = c->v_head_dim;
    int Dn = c->qk_nope_head_dim;
    int R = c->kv_lora_rank, W = R + c->qk_rope_head_dim, Lq = c->q_lora_rank, L = c->num_hidden_layers;
    float eps = c->rms_norm_eps;
    bool count_load = m->count_load;
    float aux_alpha = m->aux_alpha;
    const PackedModel *packed = m->packed;
    m->count_load = false;
    m->aux_alpha = 0.0f;
    m->packed = pk;
    find_groups(s, kc, pages, pos, N, H, R);

    embedding_forward(s->x, tokens, m->embed, N, C);
    for (int l = 0; l < L; l++) {
        const LayerParams *p = &m->layers[l];
        const PackedLayer *pl = &pk->layers[l];
        rmsnorm_forward(s->ln, s->rstd, s->x, p->in_norm, N, C, C, eps);
        if (Lq) {
            matmul_packed_forward(s->qa, Lq, s->ln, C, pl->q_a, N, C, Lq);
            rmsnorm_forward(s->qan, s->rstd, s->qa, p->q_a_norm, N, Lq, Lq, eps);
            matmul_packed_forward(s->q, H * Dq, s->qan, Lq, pl->q_b, N, Lq, H * Dq);
        } else {
            matmul_packed_forward(s->q, H * Dq, s->ln, C, pl->q_proj, N, C, H * Dq);
        }
        matmul_packed_forward(s->kva, W, s->ln, C, pl->kv_a, N, C, W);
#pragma omp parallel if (N > 1)
        {
            float *ws = s->att + (size_t)omp_get_thread_num() * att_thread_floats(c, s->T_max);
#pragma omp for schedule(static) nowait
            for (int n = 0; n < N; n++) cache_row(m, p, kc, s, l, pages, pos, n);
            // q_lat[n,h] = q_nope[n,h] @ W_UK[h], W_UK[h] the (Dn,R) k rows of kv_b for head h (q_pe untouched)
#pragma omp for schedule(dynamic)
            for (int h = 0; h < H; h++)
                matmul_packed_forward(s->qabs + h * W, H * W, s->q + h * Dq, H * Dq, pl->w_uk + h * pk->uk_stride, N, Dn,
                                      R);
#pragma omp for schedule(dynamic)
            for (int g = 0; g < s->n_groups; g++)
                attend_group(s, ws, kc, l, pages, pos, s->members + s->group_off[g], s->group_off[g + 1] - s->group_off[g],
                             s->group_shared[g], H, R, m->attn_scale);
            // y[n,h] = W_UV[h] @ olat[n,h], W_UV[h] the (Dv,R) v rows of kv_b for head h
#pragma omp for schedule(dynamic)
            for (int h = 0; h < H; h++)
                matmul_packed_forward(s->y + h * Dv, H * Dv, s->olat + (size_t)h * R, H * R, pl->w_uv + h * pk->uv_stride,
                                      N, R, Dv);
        }
        LayerActs *a = &m->acts[l];
        matmul_packed_forward(a->x_mid, C, s->y, H * Dv, pl->o_proj, N, H * Dv, C);
        for (size_t i = 0; i < (size_t)N * C; i++) a->x_mid[i] += s->x[i];
        model_ffn_forward(m, l, s->x, N, 1);
    }
    rmsnorm_forward(m->xf, m->rstdf, s->x, m->final_norm, N, C, C, eps);
    m->count_load = count_load;
    m->aux_alpha = aux_alpha;
    m->packed = packed;
}

void decode_cache_prompt(LatentCache *kc, const Model *m, const int *pages, int T, int row0) {
    const ModelConfig *c = &m->cfg;
    int R = c->kv_lora_rank, W = kc->W, P = kc->P;
    for (int l = 0; l < kc->L; l++) {
        const LayerActs *a = &m->acts[l];
        for (int t = 0; t < T; t++) {
            float *row = latent_cache_row(kc, pages[t / P], l, t % P);
            memcpy(row, a->cn + (size_t)(row0 + t) * R, sizeof(float) * R);
            memcpy(row + R, a->kva + (size_t)(row0 + t) * W + R, sizeof(float) * (W - R));
        }
    }
}
