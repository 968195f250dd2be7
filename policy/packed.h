// Small-batch matrix products against weights packed once: the decode path's matmuls.
//
// A decode step multiplies a few rows (the live sequences, or the ~16 tokens routed to one expert) by every
// weight matrix. OpenBLAS has no way to keep a packed operand: each call repacks the weight into its panel
// format, which at 16-64 rows costs as much as the product itself (a fifth of a small-model decode step went
// to sgemm_incopy). The weights do not change while a rollout samples, so the engine packs them once per
// rollout_generate (one pass over the weights) and the kernel below reads the panels straight into registers.
//
// Packed layout of W (OC,IC): the output channels in panels of up to PACK_NB (64) columns, the last one
// zero-padded to a multiple of 16; panel k holds its IC rows of columns contiguously (IC, width), so a tile of
// rows streams one panel from L2 while its accumulators stay in registers. Each output is summed over IC in
// order with one fused multiply-add per term, whatever N or the tiling: the same row gives the same result in
// any batch.
#pragma once
#include "policy/model.h"
#include <stdbool.h>
#include <stddef.h>

enum { PACK_NB = 64 };

// Floats taken by a packed (OC,IC) matrix.
size_t packed_floats(int OC, int IC);
// dst (packed_floats(OC,IC)) = W, where W is (OC,IC) with row stride ld, or with `trans` its transpose
// stored as (IC,OC) with row stride ld (a (K,N) operand used as out = inp @ W).
void pack_matrix(float *dst, const float *W, int ld, int OC, int IC, bool trans);
// out (N,OC; row stride ldo) = inp (N,IC; row stride ldi) @ W^T for W packed by pack_matrix. Threads split
// column panels and row groups when the product is large enough to pay for them (inside a parallel region
// it runs on the calling thread).
void matmul_packed_forward(float *out, int ldo, const float *inp, int ldi, const float *Wp, int N, int IC, int OC);

// The same register-tiled kernel on operands in place, for products whose second operand is not a weight
// (attention over cached rows): out (M,Nc; row stride ldo) = X (M,K) @ B (K,Nc), or += with accumulate, where
// X(i,k) = x[i*xs_i + k*xs_k] and row k of B starts at b + k*ldb. B's rows are read in vectors of 16 floats:
// round16(Nc) floats of each must be readable (the extra ones are not used). Runs on the calling thread.
void gemm_small(float *out, int ldo, const float *x, int xs_i, int xs_k, const float *b, int ldb, int M, int K, int Nc,
                bool accumulate);

// Packed copies of the matrices a decode step multiplies by, for the model's L decoder layers (not the MTP
// block) and its head. One allocation carved into these tensors, laid out in the order a step uses them
// (matmul_packed_forward prefetches past a matrix's end); packed_model_pack refreshes them from the
// parameters (the rollout engine does so at the start of every rollout, so they never go stale).
typedef struct {
    float *q_a, *q_b, *q_proj; // (Lq,C), (H*Dq,Lq) / (H*Dq,C): whichever the config has
    float *kv_a;               // (R+Dr,C)
    float *w_uk;               // (H) x (R,Dn): q_nope -> latent query, W_UK^T per head (absorbed form)
    float *w_uv;               // (H) x (Dv,R): weighted latent -> value output per head
    float *o_proj;             // (C,H*Dv)
    float *gate, *up;          // (F,C) dense FFN or shared experts
    float *down;               // (C,F)
    float *router;             // (E,C)
    float *e_gate, *e_up;      // (Im,C) of expert 0; expert e's at + e * expert_stride
    float *e_down;             // (C,Im) likewise
} PackedLayer;

typedef struct PackedModel {
    float *mem;
    size_t n_floats;
    PackedLayer *layers;  // (L)
    float *lm_head;       // (V,C)
    size_t uk_stride, uv_stride; // floats between consecutive heads' matrices
    size_t expert_stride;        // floats between consecutive experts' (gate, up and down lie together)
} PackedModel;

int packed_model_init(PackedModel *pm, const Model *m); // allocates; returns 0 or -1
void packed_model_pack(PackedModel *pm, const Model *m); // copies the current parameters in
void packed_model_free(PackedModel *pm);
