#include "rollout/sampler.h"
#include "common/error.h"
#include "common/vmath.h"
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

SamplerParams sampler_defaults(void) { return (SamplerParams){.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f}; }

int sampler_check(const SamplerParams *sp) {
    CHECK(sp->temperature >= 0 && isfinite(sp->temperature), "temperature %g: expected a finite value >= 0",
          sp->temperature);
    CHECK(sp->top_k >= 0, "top_k %d: expected >= 0 (0 = off)", sp->top_k);
    CHECK(sp->top_p > 0 && sp->top_p <= 1, "top_p %g: expected a value in (0, 1] (1 = off)", sp->top_p);
    CHECK(sp->min_p >= 0 && sp->min_p < 1, "min_p %g: expected a value in [0, 1) (0 = off)", sp->min_p);
    return 0;
}

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t rng_stream(uint64_t seed, uint64_t a, uint64_t b) {
    return mix64(mix64(mix64(seed + 0x9e3779b97f4a7c15ULL) ^ (a + 0x632be59bd9b4e019ULL)) ^ (b + 0x85157af5ULL));
}

float rng_uniform(uint64_t stream, uint64_t k) {
    return (float)(mix64(stream ^ mix64(k + 0x9e3779b97f4a7c15ULL)) >> 40) * (1.0f / 16777216.0f);
}

static float max_of(const float *x, int V) {
    float mx = x[0];
#pragma omp simd reduction(max : mx)
    for (int i = 1; i < V; i++) mx = x[i] > mx ? x[i] : mx;
    return mx;
}

// probs = exp((logits - max) * inv_t), unnormalised; returns their sum.
static float exp_scaled(float *restrict probs, const float *restrict logits, int V, float mx, float inv_t) {
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < V; i++) {
        probs[i] = exp_neg((logits[i] - mx) * inv_t);
        sum += probs[i];
    }
    return sum;
}

static int argmax(const float *x, int V) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static const float *cmp_probs; // qsort has no context argument; the sort runs on one thread's data only
#pragma omp threadprivate(cmp_probs)
static int by_prob_desc(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    float pi = cmp_probs[i], pj = cmp_probs[j];
    return pi > pj ? -1 : pi < pj ? 1 : (i > j) - (i < j);
}

int sampler_probs(float *probs, int *kept, const float *logits, int V, const SamplerParams *sp) {
    if (sp->temperature == 0.0f) {
        for (int i = 0; i < V; i++) probs[i] = 0.0f;
        kept[0] = argmax(logits, V);
        probs[kept[0]] = 1.0f;
        return 1;
    }
    float inv_t = 1.0f / sp->temperature, inv_sum = 1.0f / exp_scaled(probs, logits, V, max_of(logits, V), inv_t);
#pragma omp simd
    for (int i = 0; i < V; i++) probs[i] *= inv_sum;
    int n = V;
    for (int i = 0; i < V; i++) kept[i] = i;
    bool truncating = (sp->top_k > 0 && sp->top_k < V) || sp->top_p < 1.0f || sp->min_p > 0.0f;
    if (truncating) {
        cmp_probs = probs;
        qsort(kept, V, sizeof(int), by_prob_desc);
        if (sp->top_k > 0 && sp->top_k < n) n = sp->top_k;
        double mass = 0.0;
        for (int i = 0; i < n; i++) mass += probs[kept[i]];
        if (sp->top_p < 1.0f) {
            double cum = 0.0;
            int m = 0;
            while (m < n) {
                cum += probs[kept[m++]] / mass;
                if (cum >= sp->top_p) break;
            }
            n = m;
        }
        if (sp->min_p > 0.0f) {
            float floor_p = sp->min_p * probs[kept[0]];
            int m = 1;
            while (m < n && probs[kept[m]] >= floor_p) m++;
            n = m;
        }
        mass = 0.0;
        for (int i = 0; i < n; i++) mass += probs[kept[i]];
        for (int i = 0; i < n; i++) probs[kept[i]] = (float)(probs[kept[i]] / mass);
        for (int i = n; i < V; i++) probs[kept[i]] = 0.0f;
    }
    return n;
}

int sampler_sample(const float *logits, int V, const SamplerParams *sp, float coin, float *probs, int *kept) {
    int n = sampler_probs(probs, kept, logits, V, sp);
    double cum = 0.0;
    for (int i = 0; i < n; i++) {
        cum += probs[kept[i]];
        if (coin < cum) return kept[i];
    }
    return kept[n - 1]; // rounding left the total a hair under coin
}

float sampler_logprob(const float *logits, int V, float temperature, int id, float *scratch) {
    float inv_t = temperature > 0 ? 1.0f / temperature : 1.0f, mx = max_of(logits, V);
    return (logits[id] - mx) * inv_t - logf(exp_scaled(scratch, logits, V, mx, inv_t));
}
