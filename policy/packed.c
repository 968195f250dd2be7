#include "policy/packed.h"
#include "common/error.h"
#include <limits.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

enum { MR = 6, RG = 12 }; // rows per register tile; rows per work item (two tiles)

// 16 floats: one AVX-512 register (two AVX2 ones where the target has no AVX-512); aligned(4) lets it load from
// any float address.
typedef float vec16 __attribute__((vector_size(64), aligned(4)));

static int round16(int n) { return (n + 15) / 16 * 16; }

size_t packed_floats(int OC, int IC) { return (size_t)round16(OC) * IC; }

void pack_matrix(float *dst, const float *W, int ld, int OC, int IC, bool trans) {
#pragma omp parallel for schedule(static) if ((long)OC * IC > (1L << 18))
    for (int o0 = 0; o0 < OC; o0 += PACK_NB) {
        int w = round16(OC - o0) < PACK_NB ? round16(OC - o0) : PACK_NB;
        float *d = dst + (size_t)o0 * IC;
        for (int i = 0; i < IC; i++)
            for (int j = 0; j < w; j++) {
                int o = o0 + j;
                d[(size_t)i * w + j] = o >= OC ? 0.0f : trans ? W[(size_t)i * ld + o] : W[(size_t)o * ld + i];
            }
    }
}

// out rows 0..mr-1, columns 0..ncols-1 (ncols <= 16*nv) of X @ B for K steps: mr x nv accumulators in registers,
// one row of B (nv vectors) and mr broadcast elements of X per step; X(i,k) = x[i*xs_i + k*xs_k], row k of B at
// b + k*ldb. Inlined with constant mr and nv, so that the loops unroll away. While it runs it prefetches one
// row in pre_T of the pre_w-wide rows at pre (its rows k = pre_k - 1 mod pre_T).
static inline __attribute__((always_inline)) void tile(float *restrict out, int ldo, const float *restrict x, int xs_i,
                                                       int xs_k, const float *restrict b, int ldb, int K, int mr, int nv,
                                                       int ncols, bool accumulate, const float *pre, int pre_w,
                                                       int pre_k, int pre_T) {
    vec16 acc[MR][PACK_NB / 16];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < PACK_NB / 16; j++) {
            acc[i][j] = (vec16){0};
            if (accumulate && i < mr && j < nv)
                for (int k = 0; k < 16 && 16 * j + k < ncols; k++) acc[i][j][k] = out[(size_t)i * ldo + 16 * j + k];
        }
    for (int c = 0; c < K; c++) {
        const float *w = b + (size_t)c * ldb;
        if (--pre_k < 0) {
            pre_k = pre_T - 1;
            for (int j = 0; j < pre_w; j += 16) __builtin_prefetch(pre + (size_t)c * pre_w + j, 0, 2);
        }
        vec16 wv[PACK_NB / 16];
#pragma GCC unroll 4
        for (int j = 0; j < PACK_NB / 16; j++)
            if (j < nv) wv[j] = *(const vec16 *)(w + 16 * j);
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++)
            if (i < mr) {
                float xi = x[(size_t)i * xs_i + (size_t)c * xs_k];
#pragma GCC unroll 4
                for (int j = 0; j < PACK_NB / 16; j++)
                    if (j < nv) acc[i][j] += xi * wv[j];
            }
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
        if (i < mr)
#pragma GCC unroll 4
            for (int j = 0; j < PACK_NB / 16; j++)
                if (j < nv) {
                    float *o = out + (size_t)i * ldo + 16 * j;
                    if (16 * (j + 1) <= ncols) *(vec16 *)o = acc[i][j];
                    else
                        for (int k = 0; k < ncols - 16 * j; k++) o[k] = acc[i][j][k];
                }
}

static void tile_any(float *out, int ldo, const float *x, int xs_i, int xs_k, const float *b, int ldb, int K, int mr,
                     int nv, int ncols, bool accumulate, const float *pre, int pre_w, int pre_k, int pre_T) {
#define TILE(M, V)                                                                                                \
    case M * 8 + V: tile(out, ldo, x, xs_i, xs_k, b, ldb, K, M, V, ncols, accumulate, pre, pre_w, pre_k, pre_T); break;
#define TILES(M) TILE(M, 1) TILE(M, 2) TILE(M, 3) TILE(M, 4)
    switch (mr * 8 + nv) { TILES(1) TILES(2) TILES(3) TILES(4) TILES(5) TILES(6) }
#undef TILES
#undef TILE
}

void gemm_small(float *out, int ldo, const float *x, int xs_i, int xs_k, const float *b, int ldb, int M, int K, int Nc,
                bool accumulate) {
    for (int o0 = 0; o0 < Nc; o0 += PACK_NB) {
        int ncols = Nc - o0 < PACK_NB ? Nc - o0 : PACK_NB;
        for (int r = 0; r < M; r += MR)
            tile_any(out + (size_t)r * ldo + o0, ldo, x + (size_t)r * xs_i, xs_i, xs_k, b + o0, ldb, K,
                     M - r < MR ? M - r : MR, round16(ncols) / 16, ncols, accumulate, NULL, 0, INT_MAX, INT_MAX);
    }
}

// Work item `item` of matmul_packed_forward: one panel of columns for one group of up to RG rows.
static void packed_item(float *out, int ldo, const float *inp, int ldi, const float *Wp, int N, int IC, int OC,
                        int item, int n_groups) {
    int o0 = item / n_groups * PACK_NB, r0 = item % n_groups * RG, r1 = r0 + RG < N ? r0 + RG : N;
    int ncols = OC - o0 < PACK_NB ? OC - o0 : PACK_NB, nv = round16(ncols) / 16;
    const float *panel = Wp + (size_t)o0 * IC;
    // Streaming the weights from memory while computing: the tiles of a panel pull the next panel towards
    // L2 (tile k of T the rows c = k mod T, so the reads spread over the whole panel's work), or after the
    // last panel as much of what follows the matrix (in the packed model: the matrix used next; software
    // prefetches never fault).
    int o_next = o0 + PACK_NB, pre_w = o_next < OC && OC - o_next < PACK_NB ? round16(OC - o_next) : PACK_NB;
    const float *pre = Wp + (size_t)(o_next < OC ? o_next : round16(OC)) * IC;
    int pre_T = (N + MR - 1) / MR;
    for (int r = r0; r < r1; r += MR)
        tile_any(out + (size_t)r * ldo + o0, ldo, inp + (size_t)r * ldi, ldi, 1, panel, nv * 16, IC,
                 r1 - r < MR ? r1 - r : MR, nv, ncols, false, pre, pre_w, r / MR + 1, pre_T);
}

void matmul_packed_forward(float *out, int ldo, const float *inp, int ldi, const float *Wp, int N, int IC, int OC) {
    int n_items = (OC + PACK_NB - 1) / PACK_NB * ((N + RG - 1) / RG), n_groups = (N + RG - 1) / RG;
    // A fork/join costs about as much as a million multiply-adds here; below that (and inside a parallel
    // region, such as an expert's products) no OpenMP call at all: even an inactive one costs a small
    // product's time.
    if ((double)N * IC * OC > 1e6 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
        for (int item = 0; item < n_items; item++) packed_item(out, ldo, inp, ldi, Wp, N, IC, OC, item, n_groups);
    } else {
        for (int item = 0; item < n_items; item++) packed_item(out, ldo, inp, ldi, Wp, N, IC, OC, item, n_groups);
    }
}

// Walks the packed tensors in one fixed order: with pm->mem NULL it only counts (n_floats), otherwise it
// points the tensors into mem and, with `copy`, packs the parameters into them.
static void layout(PackedModel *pm, const Model *m, bool copy) {
    const ModelConfig *c = &m->cfg;
    int C = c->hidden_size, H = c->num_attention_heads, Dq = config_qk_head_dim(c), Dn = c->qk_nope_head_dim;
    int Dv = c->v_head_dim, R = c->kv_lora_rank, W = R + c->qk_rope_head_dim, Lq = c->q_lora_rank;
    int E = c->n_routed_experts, Im = c->moe_intermediate_size, V = c->vocab_size;
    size_t off = 0;
    // Every tensor starts on a 64-byte line.
#define TENSOR(dst, src, ld, OC, IC, trans)                                                                       \
    do {                                                                                                          \
        float *t_ = pm->mem ? pm->mem + off : NULL;                                                               \
        if (t_ && copy) pack_matrix(t_, src, ld, OC, IC, trans);                                                  \
        if (t_) (dst) = t_;                                                                                       \
        off += (packed_floats(OC, IC) + 15) / 16 * 16;                                                            \
    } while (0)
    pm->uk_stride = (packed_floats(R, Dn) + 15) / 16 * 16;
    pm->uv_stride = (packed_floats(Dv, R) + 15) / 16 * 16;
    pm->expert_stride = 2 * ((packed_floats(Im, C) + 15) / 16 * 16) + (packed_floats(C, Im) + 15) / 16 * 16;
    for (int l = 0; l < c->num_hidden_layers; l++) {
        const LayerParams *p = &m->layers[l];
        PackedLayer *d = &pm->layers[l];
        int F = config_ffn_width(c, l);
        if (Lq) {
            TENSOR(d->q_a, p->q_a, C, Lq, C, false);
            TENSOR(d->q_b, p->q_b, Lq, H * Dq, Lq, false);
        } else {
            TENSOR(d->q_proj, p->q_proj, C, H * Dq, C, false);
        }
        TENSOR(d->kv_a, p->kv_a, C, W, C, false);
        // kv_b's rows per head: Dn rows of W_UK, then Dv rows of W_UV, each of length R.
        for (int h = 0; h < H; h++) {
            float *t = NULL;
            TENSOR(t, p->kv_b + (size_t)h * (Dn + Dv) * R, R, R, Dn, true);
            if (h == 0) d->w_uk = t;
        }
        for (int h = 0; h < H; h++) {
            float *t = NULL;
            TENSOR(t, p->kv_b + ((size_t)h * (Dn + Dv) + Dn) * R, R, Dv, R, false);
            if (h == 0) d->w_uv = t;
        }
        TENSOR(d->o_proj, p->o_proj, H * Dv, C, H * Dv, false);
        if (F) {
            TENSOR(d->gate, p->gate, C, F, C, false);
            TENSOR(d->up, p->up, C, F, C, false);
            TENSOR(d->down, p->down, F, C, F, false);
        }
        if (config_is_moe_layer(c, l)) {
            TENSOR(d->router, p->router, C, E, C, false);
            // expert by expert, in the order of use (the kernel prefetches past a matrix's end)
            for (int e = 0; e < E; e++) {
                float *g = NULL, *u = NULL, *dn = NULL;
                TENSOR(g, p->e_gate + (size_t)e * Im * C, C, Im, C, false);
                TENSOR(u, p->e_up + (size_t)e * Im * C, C, Im, C, false);
                TENSOR(dn, p->e_down + (size_t)e * C * Im, Im, C, Im, false);
                if (e == 0) d->e_gate = g, d->e_up = u, d->e_down = dn;
            }
        }
    }
    TENSOR(pm->lm_head, m->lm_head, C, V, C, false);
#undef TENSOR
    pm->n_floats = off;
}

int packed_model_init(PackedModel *pm, const Model *m) {
    memset(pm, 0, sizeof *pm);
    pm->layers = grpo_calloc(m->cfg.num_hidden_layers, sizeof(PackedLayer), "packed layers");
    if (!pm->layers) return -1;
    layout(pm, m, false);
    pm->mem = aligned_alloc(64, pm->n_floats * sizeof(float));
    if (!pm->mem) {
        packed_model_free(pm);
        return ERR("packed weights: cannot allocate %.1f MB", pm->n_floats * sizeof(float) / 1e6);
    }
    layout(pm, m, false);
    return 0;
}

void packed_model_pack(PackedModel *pm, const Model *m) { layout(pm, m, true); }

void packed_model_free(PackedModel *pm) {
    free(pm->mem);
    free(pm->layers);
    memset(pm, 0, sizeof *pm);
}
