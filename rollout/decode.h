// Decoding with the absorbed form of MLA over a paged latent cache.
//
// The cache holds, per token and main layer, only the normalised latent c_kv (R) and the rotated k_pe (Dr):
// W = R + Dr floats, against H * (Dq + Dv) for an expanded (MHA-style) cache. Attention never expands it:
// W_UK (the k_nope rows of kv_b) is folded into the query, q_lat = W_UK^T q_nope, so that
// score = q_lat . c_kv + q_pe . k_pe, one dot product of length W with the cached row; and W_UV (the v rows)
// is applied once to the attention-weighted latent. The scale is the expanded form's.
//
// Pages of P tokens let the G samples of a group share their prompt's pages (reference counts).
// Legend (policy/config.h): N sequences in a decode step, C, H, Dn, Dr, Dq, Dv, R, Lq, V; W = R + Dr.
#pragma once
#include "policy/model.h"
#include "policy/packed.h"
#include <stddef.h>

typedef struct {
    int L;                 // main layers cached (the MTP block is not used for decoding)
    int P;                 // tokens per page
    int W;                 // floats per token per layer: R + Dr
    int n_pages;
    float *mem;            // (n_pages, L, P, W) one allocation
    int *ref;              // (n_pages) holders of each page
    int *free_pages;       // (n_pages) stack of free page ids
    int n_free;
} LatentCache;

// Allocates n_pages pages of P tokens; reports the bytes when that fails. Returns 0 or -1.
int latent_cache_init(LatentCache *kc, const ModelConfig *c, int n_pages, int P);
void latent_cache_free(LatentCache *kc);
// A free page with one holder, or -1 when none is left.
int latent_cache_take(LatentCache *kc);
// One holder less; the page is free again when none is left.
void latent_cache_drop(LatentCache *kc, int page);
// Every page free.
void latent_cache_reset(LatentCache *kc);
static inline float *latent_cache_row(const LatentCache *kc, int page, int l, int slot) {
    return kc->mem + (((size_t)page * kc->L + l) * kc->P + slot) * kc->W;
}
// Bytes per cached token: ours (L * (R + Dr) floats) and an expanded cache's (L * H * (Dq + Dv) floats).
size_t latent_cache_token_bytes(const ModelConfig *c);
size_t expanded_cache_token_bytes(const ModelConfig *c);

// Per-step buffers for up to N_max sequences of up to T_max tokens: one allocation.
typedef struct {
    int N_max, T_max, threads;
    float *mem;
    float *x;              // (N,C) residual stream
    float *ln;             // (N,C)
    float *rstd;           // (N)
    float *qa, *qan;       // (N,Lq)
    float *q;              // (N,H*Dq) [q_nope, q_pe] per head
    float *kva;            // (N,W) this token's [c_kv, k_pe]
    float *qabs;           // (N,H,W) absorbed queries [W_UK^T q_nope, q_pe]
    float *olat;           // (N,H,R) attention-weighted latents
    float *y;              // (N,H*Dv)
    float *att;            // per thread: transposed queries, weighted latents, softmax state and scores, for a
                           // sequence's own rows and for a share group's (decode.c: att_thread_floats)
    int *members;          // (N) this step's sequences ordered by share group
    int *group_off;        // (N+1) each group's first entry in members
    int *group_shared;     // (N) pages its members share
    int n_groups;
} DecodeScratch;

int decode_scratch_init(DecodeScratch *s, const ModelConfig *c, int N_max, int T_max);
void decode_scratch_free(DecodeScratch *s);

// One decode step for N sequences: sequence n feeds tokens[n] at position pos[n] (its cached length),
// whose [c_kv, k_pe] rows are written to page pages[n][pos[n] / P] (the caller provides that page), and
// gets the final hidden state in m->xf rows 0..N-1 (N,C). Every product runs on pk, the packed copies of m's
// current parameters (packed_model_pack); the FFN through model_ffn_forward on m->acts (which must hold N
// tokens). Routing statistics are not counted.
void decode_step(Model *m, const PackedModel *pk, LatentCache *kc, DecodeScratch *s, const int *tokens /* (N) */,
                 const int *pos /* (N) */, int *const *pages /* (N) page tables */, int N);
// After model_forward_hidden: copies the [c_kv, k_pe] rows of every main layer of the T prompt tokens at the
// forward's rows row0.. (b * T_forward for prompt b of a batch) into the pages (ceil(T/P) of them).
void decode_cache_prompt(LatentCache *kc, const Model *m, const int *pages, int T, int row0);
