// GRPO math: group-relative advantages, the clipped policy-gradient loss with its gradient per token,
// and DAPO's reward shaping. Pure functions over flat arrays; nothing here allocates.
// Legend: P prompts (groups) of G samples each; S sequences in a minibatch; N tokens in the flat
// minibatch layout, where sequence s owns tokens [offsets[s], offsets[s+1]) (for the policy's (B,T)
// grid, offsets[s] = s*T).
#pragma once
#include <stdint.h>

// Added to the group std before dividing, as TRL does: a group whose rewards differ by less than this
// gets advantages shrunk towards 0 instead of blown up.
#define GRPO_ADV_EPS 1e-4f

typedef enum {
    GRPO_ADV_GROUP, // (r - group mean) / (group std + eps), Bessel-corrected std (DeepSeekMath, TRL "group")
    GRPO_ADV_NONE,  // r - group mean, no std (Dr. GRPO, TRL "none")
    GRPO_ADV_BATCH, // (r - group mean) / (std of all P*G rewards + eps) (TRL "batch")
    GRPO_ADV_RLOO,  // r - mean of the group's other G-1 rewards (leave-one-out baseline)
} GrpoAdvMode;

typedef enum { GRPO_IS_TOKEN, GRPO_IS_SEQUENCE } GrpoImportance;

// Per-token KL(new || ref) estimators with d = ref_logp - new_logp (Schulman's k1, k2, k3):
// k1 = -d, k2 = d^2 / 2, k3 = exp(d) - d - 1 (DeepSeekMath and TRL use k3: unbiased and >= 0).
typedef enum { GRPO_KL_K1, GRPO_KL_K2, GRPO_KL_K3 } GrpoKl;

// How per-token losses become the minibatch loss (TRL's loss_type), m_t the mask, n_s = sum of m_t over s:
//   grpo:    (1/S) sum_s (1/n_s) sum_t m_t l_t   (every sequence weighs the same, also fully masked ones
//            in the 1/S, as in TRL: a masked truncated completion still counts as a sample)
//   bnpo:    sum m_t l_t / (active tokens of this minibatch)
//   dapo:    sum m_t l_t / GrpoBatch.total_tokens (active tokens of every minibatch of the optimizer
//            step, TRL's num_items_in_batch), so accumulated minibatches add up to a token mean over the
//            whole step; total_tokens 0 falls back to this minibatch's count (then dapo == bnpo)
//   dr_grpo: sum m_t l_t / (S * max_len) with max_len a constant (max_new_tokens): no length bias
typedef enum { GRPO_AGG_GRPO, GRPO_AGG_BNPO, GRPO_AGG_DAPO, GRPO_AGG_DR_GRPO } GrpoAgg;

typedef struct {
    float epsilon_low;      // ratio clipped below at 1 - epsilon_low
    float epsilon_high;     // and above at 1 + epsilon_high (DAPO's clip-higher: 0.28 with 0.2 low)
    GrpoImportance importance; // token (GRPO) or sequence (GSPO)
    float beta;             // KL weight; 0 needs no reference log-probs
    GrpoKl kl;
    GrpoAgg agg;
    int max_len;            // dr_grpo's normaliser (the run's max_new_tokens); unused by the others
    // Multiplies loss and gradient. With k accumulated minibatches per optimizer step pass 1/k for grpo,
    // bnpo and dr_grpo (each minibatch is normalised on its own) and 1 for dapo, whose total_tokens
    // already spans the step; grpo_accum_scale says which.
    float loss_scale;
} GrpoLossOpts;

// One minibatch as the loss sees it.
typedef struct {
    int S;                  // sequences
    const int *offsets;     // (S+1) non-decreasing token offsets; N = offsets[S]
    const float *logp;      // (N) log-prob of each token under the policy being trained
    const float *old_logp;  // (N) under the policy that sampled it; NULL = on-policy (ratio 1, gradient kept)
    const float *ref_logp;  // (N) under the frozen reference; NULL allowed only when beta == 0
    const float *mask;      // (N) 1 = a completion token that counts; 0 = prompt, padding, masked sequence
    const float *adv;       // (S) advantage of each sequence
    int total_tokens;       // dapo's normaliser (see GrpoAgg); 0 = this minibatch's active tokens
} GrpoBatch;

// The minibatch's loss and what TRL logs beside it. A unit is a token (token level) or a sequence with
// at least one active token (sequence level). Clipping counts where the clip binds, i.e. removes the
// gradient: ratio < 1 - epsilon_low with A < 0 (low), ratio > 1 + epsilon_high with A > 0 (high).
typedef struct {
    float loss;             // including loss_scale: the quantity dlogp differentiates
    float kl;               // mean KL estimate over active tokens (0 without ref_logp; logged even at beta 0)
    float clip_low, clip_high, clip; // fractions of units clipped low / high / either
    float ratio_mean;       // mean importance ratio over units
    int n_tokens;           // active tokens
    int n_seqs;             // sequences with at least one active token
    int n_units;            // n_tokens (token level) or n_seqs (sequence level)
    int n_clip_low, n_clip_high;
} GrpoLossStats;

// Per-token log-ratios (new - old) are clamped to this before exp, so a stale or broken sample gives a
// finite ratio (e^20 ~ 5e8) instead of inf; clamped tokens get no gradient through the ratio.
#define GRPO_LOG_RATIO_CLAMP 20.0f
// k3's exp(ref - new) is clamped the same way, tighter: e^10 ~ 2e4 already means the policy has left
// the reference far behind, and the KL gradient should not dwarf the policy gradient.
#define GRPO_KL_LOG_CLAMP 10.0f

// TRL's current defaults: eps 0.2 both sides, token level, beta 0, k3, dapo, loss_scale 1, max_len 0.
GrpoLossOpts grpo_loss_defaults(void);
// Rejects options the loss cannot use (negative epsilons or beta, dr_grpo without max_len, ...),
// naming the field. Returns 0 or -1.
int grpo_loss_opts_check(const GrpoLossOpts *o);
// loss_scale for one of `accum_steps` minibatches accumulated into one optimizer step (see loss_scale).
float grpo_accum_scale(GrpoAgg agg, int accum_steps);

// Names as in run configs ("group" | "none" | "batch" | "rloo", "token" | "sequence", "k1" | "k2" | "k3",
// "grpo" | "bnpo" | "dapo" | "dr_grpo"). Unknown names are errors listing the known ones. 0 or -1.
int grpo_adv_mode_parse(GrpoAdvMode *out, const char *name);
int grpo_importance_parse(GrpoImportance *out, const char *name);
int grpo_kl_parse(GrpoKl *out, const char *name);
int grpo_agg_parse(GrpoAgg *out, const char *name);

// Advantages of P groups of G rewards (group p owns rewards [p*G, (p+1)*G)). A group whose rewards are
// all equal carries no signal: its advantages are exactly 0 in every mode. Returns how many such groups
// there were (G == 1 makes every group one). eps: see GRPO_ADV_EPS (used by group and batch modes).
int grpo_advantages(float *adv /* (P*G) */, const float *rewards /* (P*G) */, int P, int G, GrpoAdvMode mode,
                    float eps);
// DAPO dynamic sampling: keep[p] = 1 when group p's rewards are not all equal. Returns the number kept;
// the trainer drops the others and samples more prompts until the batch is full.
int grpo_groups_with_signal(uint8_t *keep /* (P) */, const float *rewards /* (P*G) */, int P, int G);

// The minibatch loss: per token l_t = -min(r A, clip(r, 1-eps_low, 1+eps_high) A) + beta KL_t, with
// r = exp(logp - old_logp) per token, or for GSPO r = exp(mean over the sequence's active tokens of
// logp - old_logp) shared by the sequence (its gradient spreads r A / n_s over those tokens, as in the
// GSPO paper), aggregated by o->agg and scaled by o->loss_scale. Writes dlogp (N) = d loss / d logp
// (0 on inactive tokens) for model_backward, and the stats. Returns 0, or -1 for an inconsistent batch
// (offsets, missing ref_logp with beta > 0, dr_grpo without max_len).
int grpo_loss(GrpoLossStats *stats, float *dlogp /* (N) */, const GrpoBatch *b, const GrpoLossOpts *o);

// DAPO's soft overlong punishment, added to the reward of a completion of `len` tokens: 0 up to
// max_len - cache_len, then falling linearly to -1 at max_len, -1 beyond. cache_len <= 0 gives the hard
// step (0, then -1 past max_len).
float grpo_overlong_penalty(int len, int max_len, int cache_len);
// Overlong filtering (DAPO) and TRL's mask_truncated_completions: zeroes the mask of every sequence s
// with drop[s] (e.g. finish reason "length"), so it adds nothing to the loss.
void grpo_mask_sequences(float *mask /* (N) */, const int *offsets /* (S+1) */, const uint8_t *drop /* (S) */,
                         int S);
