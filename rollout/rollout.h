// The rollout engine: G completions for each of P prompts from the current policy.
//
// Each prompt is prefilled once (the expanded forward) and its latent-cache pages are shared by the G
// samples of its group; then every live sequence decodes one token per step in one batch (absorbed MLA,
// rollout/decode.h). A sequence that stops leaves the batch and frees its pages, and waiting groups join
// as soon as the cache and the batch have room (continuous batching under a token budget): admission
// reserves a group's worst case up front, so a started sequence never runs out of cache.
//
// Reproducibility: the k-th token of sample g of prompt p is drawn with rng_uniform(rng_stream(seed, p, g), k),
// so a seed fixes the whole rollout whatever the batch composition or admission order. Log-probabilities
// agree across batch shapes to fp32 rounding only (BLAS sums in an order that depends on the matrix shape),
// so a draw landing within rounding of a cumulative-probability boundary could, very rarely, differ.
#pragma once
#include "policy/model.h"
#include "policy/tokenizer.h"
#include "rollout/decode.h"
#include "rollout/sampler.h"
#include <stdbool.h>
#include <stdint.h>

#define ROLLOUT_MAX_STOP 8

typedef struct {
    int group_size;          // G completions per prompt
    int max_new_tokens;
    SamplerParams sampler;
    const char *stop[ROLLOUT_MAX_STOP]; // stop strings, found in the decoded text (also across tokens)
    int n_stop;
    int stop_ids[ROLLOUT_MAX_STOP];     // token ids that end a completion (default: the tokenizer's eos)
    int n_stop_ids;
    int max_batch;           // sequences decoding at once
    long token_budget;       // latent-cache capacity in tokens, shared by all live sequences
    int page_tokens;         // cache page size; a group's samples share their prompt's full pages
    bool record_routes;      // keep the experts each position was routed to (router replay)
} RolloutConfig;

// Defaults: G 8, 256 new tokens, temperature 1, batch 64, pages of 64 tokens, budget rollout_full_budget for
// prompts of 512 tokens.
RolloutConfig rollout_defaults(void);

typedef enum { FINISH_STOP, FINISH_LENGTH } FinishReason;
const char *finish_reason_name(FinishReason f); // "stop" / "length"

typedef struct {
    int prompt_idx, sample_idx;
    int *ids;                // (n) sampled tokens, the stop token or the one completing a stop string included
    float *logprobs;         // (n) log-probability of each under softmax(logits / temperature)
    int n;
    char *text;              // decode(ids) without special tokens: exactly what the rewards see (ids the
                             // tokenizer lacks, from a vocabulary padded past it, add no text)
    size_t text_len;
    FinishReason finish;
    double logprob_sum;
    int16_t *routes;         // (prompt_len + n - 1, n_moe, K) experts per fed position, when recorded
    int n_route_pos;
} Completion;
void completion_free(Completion *c);

// A task's prompt as the policy sees it: the template (a preset name or a template string, see
// policy/tokenizer.h) expanded and encoded with the tokenizer's special tokens (bos). Appends to out.
int prompt_encode(TokIds *out, Tokenizer *tok, const char *tmpl, const char *system, const char *prompt);
// The same, also appending the expanded prompt text to text (what episodes record as the prompt).
int prompt_encode_text(TokIds *out, TokText *text, Tokenizer *tok, const char *tmpl, const char *system,
                       const char *prompt);

typedef struct RolloutEngine RolloutEngine;

// Sizes the cache and scratch for prompts of up to max_prompt_tokens: the batch, pages and the model's
// activations (for prefill and the FFN of a decode step) are allocated here, once.
RolloutEngine *rollout_create(Model *m, const Tokenizer *tok, const RolloutConfig *cfg, int max_prompt_tokens);
void rollout_free(RolloutEngine *e);
// The token budget at which max_batch sequences (whole groups, prompts of up to max_prompt tokens) always fit:
// the default wherever a budget is not given.
long rollout_full_budget(const RolloutConfig *c, int max_prompt);
// Cache bytes for the configured budget.
size_t rollout_cache_bytes(const RolloutEngine *e);

// Called for each completion as it finishes (to start scoring while generation goes on); may be NULL.
typedef void (*RolloutDone)(void *ctx, const Completion *c);

typedef struct {
    long prefill_tokens, decode_tokens;
    int prefill_forwards;    // model forwards that prefilled prompts (several prompts each where they fit)
    double prefill_s, decode_s, sample_s, pack_s; // pack_s: packing the weights (once per call)
    long shared_steps;       // sequence-steps whose attention over shared prompt pages ran once for their group
    int max_live;            // most sequences decoding at once
} RolloutStats;

// G completions for each of P prompts; out[p * G + g] (P * G entries, freed by the caller with
// completion_free). A prompt that cannot fit (empty, longer than max_prompt_tokens, or a group whose worst
// case exceeds the cache) is an error before any decoding, with the numbers. Returns 0 or -1.
int rollout_generate(RolloutEngine *e, const int *const *prompts, const int *prompt_lens, int P, uint64_t seed,
                     Completion *out, RolloutDone done, void *ctx, RolloutStats *stats);
