// The policy: DeepSeek-V3 architecture (MLA + DeepSeekMoE, optional MTP) on CPU in fp32.
// Parameters, gradients and activations are each one allocation carved into named tensors whose names
// are Hugging Face's, so checkpoints move between grpo.c and transformers unchanged.
// Legend: see policy/config.h (N = B*T tokens, C, H, Dq, Dv, R, Lq, E, K, V; F = FFN width).
#pragma once
#include "policy/config.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    float *in_norm;    // (C) input_layernorm
    float *q_proj;     // (H*Dq, C) when q_lora_rank == 0
    float *q_a;        // (Lq, C)
    float *q_a_norm;   // (Lq)
    float *q_b;        // (H*Dq, Lq)
    float *kv_a;       // (R+Dr, C) kv_a_proj_with_mqa
    float *kv_a_norm;  // (R)
    float *kv_b;       // (H*(Dn+Dv), R)
    float *o_proj;     // (C, H*Dv)
    float *post_norm;  // (C) post_attention_layernorm
    float *gate, *up;  // (F, C) dense FFN (F = I) or the shared experts (F = Im * n_shared)
    float *down;       // (C, F)
    float *router;     // (E, C) mlp.gate.weight
    float *score_bias; // (E) e_score_correction_bias: chooses experts, never weighs them; not trained
    float *e_gate, *e_up; // (E, Im, C)
    float *e_down;     // (E, C, Im)
    float *enorm, *hnorm; // (C) MTP block only
    float *eh_proj;    // (C, 2C) MTP block only
    float *head_norm;  // (C) MTP block only (shared_head.norm)
} LayerParams;

typedef struct {
    char name[96];     // Hugging Face tensor name
    size_t offset;     // into Model.params / Model.grads
    size_t size;
    int ndim;
    int64_t shape[3];
    bool trainable;    // false for e_score_correction_bias
    bool decay;        // AdamW weight decay applies (matrices, not norms)
} ParamInfo;

typedef struct {
    float *x_in;       // (N,C) block input (residual stream)
    float *ln1;        // (N,C)
    float *rstd1;      // (N)
    float *qa, *qan;   // (N,Lq) query compression and its norm
    float *rstdq;      // (N)
    float *q;          // (N,H*Dq) after RoPE
    float *kva;        // (N,R+Dr) [c_kv, k_pe]; k_pe after RoPE
    float *cn;         // (N,R) normalised c_kv
    float *rstdkv;     // (N)
    float *kvb;        // (N,H*(Dn+Dv)) [k_nope, v] per head
    float *k;          // (N,H*Dq) expanded keys [k_nope, k_pe]
    float *att;        // (B,H,T,T) attention probabilities
    float *y;          // (N,H*Dv) attention output before o_proj
    float *x_mid;      // (N,C) residual after attention
    float *ln2;        // (N,C)
    float *rstd2;      // (N)
    float *fg, *fu, *fh; // (N,F) dense / shared-expert FFN
    float *scores;     // (N,E) router scores
    int *topk_idx;     // (N,K)
    float *topk_w;     // (N,K)
    int *slot;         // (N*K) position of (n,k) in expert-sorted order
    int *slot_tok;     // (N*K) token of each sorted position
    int *expert_off;   // (E+1) start of each expert's rows in sorted order
    float *xs;         // (N*K,C) expert inputs, sorted by expert
    float *eg, *eu, *eh; // (N*K,Im)
    float *ey;         // (N*K,C) expert outputs before weighting
} LayerActs;

typedef struct Model {
    ModelConfig cfg;
    int n_blocks;            // L + (MTP ? 1 : 0); block L is the MTP block
    // parameters (one allocation) and their table
    float *params;
    size_t n_params;
    ParamInfo *info;
    int n_info;
    float *embed;            // (V,C)
    float *final_norm;       // (C)
    float *lm_head;          // (V,C), == embed when tied
    LayerParams *layers;     // (n_blocks)
    // gradients: same layout as params (NULL until model_alloc_grads)
    float *grads;
    float *dembed, *dfinal_norm, *dlm_head;
    LayerParams *dlayers;
    // rotary tables and the attention scale (YaRN mscale folded in)
    float *rope_cos, *rope_sin; // (max_T, Dr/2)
    int rope_T;
    float attn_scale;
    float rope_attn_factor;  // YaRN magnitude on cos/sin: mscale(factor, mscale) / mscale(factor, mscale_all_dim)
    // training-time settings, read by forward/backward
    float mtp_lambda;        // weight of the MTP loss; 0 skips the MTP block in forward and backward
    bool mtp_active;         // the last forward ran the MTP block
    float temperature;       // logp and entropy are of softmax(logits / temperature): the sampling
                             // distribution, for importance ratios against rollout log-probs (default 1)
    float aux_alpha;         // sequence-wise balance loss weight (0 = off)
    bool count_load;         // forward adds routed tokens into expert_load
    float *expert_load;      // (n_blocks, E) tokens routed per expert since model_reset_load
    // An extra loss on the head's input (distillation's logit term, rl/distill.h): when set, model_backward
    // calls it right after the log-prob head's backward with that head's dlogp; it ADDS its gradient w.r.t.
    // xf into dxf (N,C) and w.r.t. the head into dlm_head (the forward's inputs and xf are still in place).
    void (*head_extra)(void *ctx, struct Model *m, const float *dlogp /* (N) */, float *dxf /* (N,C) */);
    void *head_extra_ctx;
    // Pre-packed copies of the decoder layers' matrices (policy/packed.h), set by the rollout engine while it
    // samples: the forward's products then run on them. NULL otherwise (training always uses params).
    const struct PackedModel *packed;
    // activations for (B_max, T_max): one allocation
    int B_max, T_max, chunk;
    void *act_mem;
    size_t act_bytes;
    LayerActs *acts;         // (n_blocks)
    int B, T;                // shape of the last forward
    int *inputs, *targets;   // (N)
    float *x_final;          // (N,C) residual after the last main block (h for MTP)
    float *xf;               // (N,C) final norm output
    float *rstdf;            // (N)
    float *logp, *entropy, *lse; // (N)
    int *mtp_targets;        // (N)
    int *mtp_tokens;         // (N) the next token at each position
    float *mtp_emb;          // (N,C) its embedding
    float *mtp_en, *mtp_hn;  // (N,C) normalised next-token embedding / hidden
    float *mtp_rstd_e, *mtp_rstd_h; // (N)
    float *mtp_cat;          // (N,2C)
    float *mtp_out, *mtp_xf; // (N,C) MTP block output, after shared_head.norm
    float *mtp_rstdf;        // (N)
    float *mtp_logp, *mtp_lse; // (N)
    float mtp_loss, aux_loss;  // from the last forward (mtp: mean CE; aux: alpha-weighted, all layers)
    // backward scratch, shared by the blocks
    float *dx, *dx2, *dln;   // (N,C)
    float *dq, *dk;          // (N,H*Dq)
    float *dkvb;             // (N,H*(Dn+Dv))
    float *dkva;             // (N,R+Dr)
    float *dcn;              // (N,R)
    float *dqa, *dqan;       // (N,Lq)
    float *dy;               // (N,H*Dv)
    float *datt;             // (B,H,T,T)
    float *dfg, *dfu, *dfh;  // (N,Fmax)
    float *dxs, *dey;        // (N*K,C)
    float *deg, *deu, *deh;  // (N*K,Im)
    float *dtopk_w;          // (N,K)
    float *rlogits, *drlogits; // (N,E) router logits (forward scratch) and their gradient
    float *dmtp_cat;         // (N,2C)
    float *dlogp_mtp;        // (N)
    float *head_scratch;     // (chunk,V)
} Model;

// Builds the parameter table for `cfg` and allocates the parameters (zeroed). Returns 0 or -1.
int model_build(Model *m, const ModelConfig *cfg);
void model_free(Model *m);
// Normal(0, std) matrices, ones for norms, zeros for the selection bias, from a seeded generator.
void model_init_random(Model *m, uint64_t seed, float std);
// Loads weights from a model directory or .safetensors path (F32/BF16/F16); every tensor the config
// needs must be present with its shape. Unused tensors of real checkpoints (MTP's copies of the
// embedding/head, rotary buffers) are ignored; any other unexpected tensor is an error.
int model_load_weights(Model *m, const char *path);
int model_save_weights(const Model *m, const char *path, bool bf16); // atomic
// Loads config.json + weights from a directory.
int model_load(Model *m, const char *dir);
const ParamInfo *model_param(const Model *m, const char *name);

int model_alloc_grads(Model *m);
void model_zero_grad(Model *m);
// Sizes the activations for batches up to (B_max, T_max); reports the bytes needed before failing.
int model_alloc_acts(Model *m, int B_max, int T_max);

// Forward over (B,T) token ids: fills logp (log-probability of each target; targets < 0 -> 0) and
// entropy per token, and for MTP models mtp_logp of targets[t+1] and mtp_loss; aux_loss when
// aux_alpha > 0. inputs/targets: (B*T).
int model_forward(Model *m, const int *inputs, const int *targets, int B, int T);
// The forward's trunk alone: embedding, the main blocks and the final norm into m->xf (no head, no MTP).
// Prefill uses it; every block's kva / cn activations then hold the tokens' [c_kv, k_pe] for the cache.
int model_forward_hidden(Model *m, const int *inputs, int B, int T);
// The second half of block l over N = B*T tokens: x_out = x_mid + FFN(rmsnorm(x_mid)) with x_mid read from
// m->acts[l].x_mid (the caller writes the attention residual there) and the rest of acts[l] as scratch.
void model_ffn_forward(Model *m, int l, float *x_out /* (N,C) */, int B, int T);
// Grows the rotary tables to cover positions [0, T). Returns 0 or -1.
int model_ensure_rope(Model *m, int T);
// Backward of  sum_n dlogp[n] * logp[n]  +  mtp_lambda * mtp_loss  +  aux_loss; ADDS into grads.
void model_backward(Model *m, const float *dlogp /* (N) */);
// Mean cross-entropy over targets >= 0 from the last forward; writes its dlogp (N) if not NULL.
float model_ce_loss(const Model *m, float *dlogp);
// Full logits of the last forward's positions (tests and small-vocab decoding): (N,V).
void model_logits(const Model *m, float *out);

// Aux-loss-free balancing: bias_e += gamma * sign(mean_load - load_e) per MoE block, then clears the
// counts. A no-op without a selection bias.
void model_update_router_bias(Model *m, float gamma);
void model_reset_load(Model *m);
