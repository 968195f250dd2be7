// Samplers: pure functions of the logits, the parameters and one random number in [0,1), as llama2.c's
// sample_topp, so a rollout is reproducible whatever order or batch its tokens are drawn in.
// Legend: V vocab.
#pragma once
#include <stdint.h>

typedef struct {
    float temperature;  // 0 = greedy (argmax, lowest id on ties)
    int top_k;          // keep the k most likely tokens; 0 = off
    float top_p;        // keep the smallest most-likely set with mass >= top_p; 1 = off
    float min_p;        // keep tokens with p >= min_p * p_max; 0 = off
} SamplerParams;

SamplerParams sampler_defaults(void); // temperature 1, no truncation
// Errors name the field when a value is out of range (temperature < 0, top_p outside (0,1], ...). 0 or -1.
int sampler_check(const SamplerParams *sp);

// Counter-based random numbers: the k-th number of a stream is a pure function of (stream, k), so no state
// travels between sequences. A stream is named by a seed and two indices (prompt, sample).
uint64_t rng_stream(uint64_t seed, uint64_t a, uint64_t b);
float rng_uniform(uint64_t stream, uint64_t k); // [0, 1), 24 random bits

// The distribution a draw is taken from: softmax(logits / temperature), then top-k, then top-p on the
// renormalised survivors, then min-p, renormalised again. Writes probs (V) (0 for removed tokens) and the
// kept ids into kept in the order draws walk them (by id when nothing is truncated, else most likely
// first, ties by id); returns how many.
// Greedy writes a one-hot distribution.
int sampler_probs(float *probs /* (V) */, int *kept /* (V) */, const float *logits /* (V) */, int V,
                  const SamplerParams *sp);
// Draws one token with the random number coin in [0,1): the first kept id whose cumulative probability
// exceeds coin. probs and kept are scratch of V each.
int sampler_sample(const float *logits /* (V) */, int V, const SamplerParams *sp, float coin, float *probs /* (V) */,
                   int *kept /* (V) */);
// log softmax(logits / t)[id] with t = temperature (1 when greedy): the log-probability the trainer
// recomputes for the importance ratio (the untruncated, temperature-scaled distribution). scratch: V floats.
float sampler_logprob(const float *logits /* (V) */, int V, float temperature, int id, float *scratch /* (V) */);
