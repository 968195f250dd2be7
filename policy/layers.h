// The policy's layers on CPU, fp32: each a `*_forward` / `*_backward` pair of free functions with
// outputs first and no allocation inside. Backward functions ADD into their d* outputs.
// Legend (policy/config.h): N tokens = B*T, C hidden, H heads, Dq = Dn + Dr, Dv, R kv_lora_rank,
// E routed experts, K experts per token, V vocab.
#pragma once
#include <stdbool.h>
#include <stdint.h>

// out = inp @ W^T (llm.c's convention: W is (OC, IC) as stored in checkpoints).
void matmul_forward(float *out,        // (N,OC)
                    const float *inp,  // (N,IC)
                    const float *W,    // (OC,IC)
                    int N, int IC, int OC);
// dinp += dout @ W (skipped when dinp is NULL); dW += dout^T @ inp.
void matmul_backward(float *dinp,       // (N,IC) or NULL
                     float *dW,         // (OC,IC)
                     const float *dout, // (N,OC)
                     const float *inp,  // (N,IC)
                     const float *W,    // (OC,IC)
                     int N, int IC, int OC);

void embedding_forward(float *out,        // (N,C)
                       const int *tokens, // (N)
                       const float *wte,  // (V,C)
                       int N, int C);
void embedding_backward(float *dwte,       // (V,C)
                        const float *dout, // (N,C)
                        const int *tokens, // (N)
                        int N, int C);

// RMSNorm over rows of width C with a row stride (so a slice of a wider row can be normalised).
void rmsnorm_forward(float *out,       // (N,C) contiguous
                     float *rstd,      // (N) saved for backward
                     const float *inp, // (N, stride) first C of each row
                     const float *w,   // (C)
                     int N, int C, int stride, float eps);
void rmsnorm_backward(float *dinp,       // (N, stride) first C of each row
                      float *dw,         // (C)
                      const float *dout, // (N,C)
                      const float *inp,  // (N, stride)
                      const float *w,    // (C)
                      const float *rstd, // (N)
                      int N, int C, int stride);

// Rotary table: cos/sin per position and pair, with YaRN frequencies and its magnitude factor folded in.
void rope_table(float *cos_t, float *sin_t, // (T_max, Dr/2)
                int T_max, int Dr, float theta, float yarn_factor, float beta_fast, float beta_slow,
                int orig_max_pos, float attn_factor);
// In-place pairwise rotation of dims (off+2j, off+2j+1) of each of `nh` heads (head stride hs) in rows
// of width `stride`; token n has position n % T. Backward rotates the gradient the other way.
void rope_forward(float *x, const float *cos_t, const float *sin_t, int N, int T, int nh, int stride, int hs,
                  int off, int Dr);
void rope_backward(float *dx, const float *cos_t, const float *sin_t, int N, int T, int nh, int stride, int hs,
                   int off, int Dr);
// The same rotation with token n at position pos[n] (decode: each sequence at its own length).
void rope_forward_at(float *x, const float *cos_t, const float *sin_t, const int *pos /* (N) */, int N, int nh,
                     int stride, int hs, int off, int Dr);

// Causal multi-head attention on expanded MLA heads: q and k (N, H*Dq), v rows with stride ldv and head
// offset hv*h + voff. att keeps the softmax probabilities for backward.
void attention_forward(float *out,       // (N, H*Dv)
                       float *att,       // (B,H,T,T)
                       const float *q,   // (N, H*Dq)
                       const float *k,   // (N, H*Dq)
                       const float *v,   // (N, ldv), head h at h*hv
                       int B, int T, int H, int Dq, int Dv, int ldv, int hv, float scale);
void attention_backward(float *dq,         // (N, H*Dq)
                        float *dk,         // (N, H*Dq)
                        float *dv,         // (N, ldv) same layout as v
                        float *scratch,    // (B,H,T,T)
                        const float *dout, // (N, H*Dv)
                        const float *att,  // (B,H,T,T)
                        const float *q, const float *k, const float *v,
                        int B, int T, int H, int Dq, int Dv, int ldv, int hv, float scale);

// h = silu(g) * u
void swiglu_forward(float *h, const float *g, const float *u, long n);
void swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, long n);

// Router: scores from logits, expert choice (greedy / group-limited / noaux_tc with the selection bias),
// weights from the unbiased scores, optionally renormalised, times the scaling factor.
#define ROUTER_MAX_EXPERTS 1024  // per-token scratch in the router is sized by this; checked at model build
typedef struct {
    int E, K, n_group, topk_group;
    int sigmoid;         // 1 sigmoid scores, 0 softmax
    int method;          // TopkMethod (policy/config.h)
    int norm_topk_prob;
    float scaling;       // routed_scaling_factor
} RouterSpec;
void router_forward(float *scores,        // (N,E) saved for backward
                    int *topk_idx,        // (N,K)
                    float *topk_w,        // (N,K)
                    const float *logits,  // (N,E)
                    const float *bias,    // (E) selection-only bias, or NULL
                    const RouterSpec *rs, int N);
// dlogits += d(loss)/d(logits) from d(loss)/d(topk_w); the selection itself has no gradient.
void router_backward(float *dlogits,       // (N,E)
                     const float *dtopk_w, // (N,K)
                     const float *scores,  // (N,E)
                     const int *topk_idx,  // (N,K)
                     const RouterSpec *rs, int N);
// Sequence-wise balance loss (DeepSeek-V3): alpha * mean_b sum_i f_i P_i over the first Tv <= T
// positions of each sequence (the MTP block has no prediction at its last one). Returns the loss and,
// when dlogits is not NULL, adds its gradient (through P; f counts are constants).
float seq_balance_loss(float *dlogits,       // (N,E) or NULL
                       const float *scores,  // (N,E)
                       const int *topk_idx,  // (N,K)
                       const RouterSpec *rs, int B, int T, int Tv, float alpha);

// Log-probability of each target token and the entropy of each row of softmax(inv_temp * h @ W^T) (the
// distribution at the sampling temperature, 1/inv_temp), in chunks of rows so that the (N,V) logits are
// never held at once. Targets < 0 give logp = 0.
void logprob_forward(float *logp,        // (N)
                     float *entropy,     // (N) or NULL
                     float *lse,         // (N) log-sum-exp, saved for backward
                     float *scratch,     // (chunk,V)
                     const float *h,     // (N,C)
                     const float *W,     // (V,C)
                     const int *targets, // (N)
                     int N, int C, int V, int chunk, float inv_temp);
// dh += and dW += the gradient of sum_n dlogp[n] * logp[n] (the logits are recomputed chunk by chunk).
void logprob_backward(float *dh,          // (N,C)
                      float *dW,          // (V,C)
                      float *scratch,     // (chunk,V)
                      const float *dlogp, // (N)
                      const float *h, const float *W, const float *lse, const int *targets,
                      int N, int C, int V, int chunk, float inv_temp);

// Logit distillation's two heads, chunked like logprob_forward (the (N,V) logits never held at once).
// The teacher's side: the K most likely tokens of each row of softmax(inv_temp * h @ W^T), most likely
// first (ties: the lower id), with their log-probabilities; rows with mask[n] == 0 get ids -1.
void topk_logprob_forward(int *ids,          // (N,K)
                          float *logp,       // (N,K)
                          float *scratch,    // (chunk,V)
                          const float *h,    // (N,C)
                          const float *W,    // (V,C)
                          const float *mask, // (N) or NULL (every row)
                          int N, int C, int V, int K, int chunk, float inv_temp);
// The student's side: the forward KL from the teacher's distribution renormalised over its K candidates,
//   kl[n] = sum_k p_k (log p_k - log q(ids[n,k])),  p = softmax over k of tlogp[n,k],
// to q = softmax(inv_temp * h @ W^T) over all V. Rows whose ids[n,0] < 0 give 0.
void topk_kl_forward(float *kl,          // (N)
                     float *lse,         // (N) the student's log-sum-exp, saved for backward
                     float *p,           // (N,K) the renormalised teacher probabilities, saved for backward
                     float *scratch,     // (chunk,V)
                     const float *h,     // (N,C)
                     const float *W,     // (V,C)
                     const int *ids,     // (N,K)
                     const float *tlogp, // (N,K) teacher log-probabilities (any normalisation)
                     int N, int C, int V, int K, int chunk, float inv_temp);
// dh += and dW += the gradient of sum_n dkl[n] * kl[n] (the logits are recomputed chunk by chunk).
void topk_kl_backward(float *dh,         // (N,C)
                      float *dW,         // (V,C)
                      float *scratch,    // (chunk,V)
                      const float *dkl,  // (N)
                      const float *h, const float *W, const float *lse, const int *ids, const float *p,
                      int N, int C, int V, int K, int chunk, float inv_temp);
