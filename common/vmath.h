// exp for the hot loops (softmax, sampling, SiLU), written so that a loop of it vectorises: libm's expf does
// not, and floorf and float-to-int conversions not without -fno-trapping-math.
// A classic guard: tests/double_model.h defines it to put libm's double functions in their place.
#ifndef GRPO_VMATH_H
#define GRPO_VMATH_H
#include <math.h>
#include <stdint.h>

// exp(x) for x <= 0: n = round(x / ln 2) by the 1.5 * 2^23 trick, which also leaves n in the low bits of t;
// 2^n * p(x - n ln 2) with Cephes' expf polynomial. Relative error < 1e-7 (tests/test_packed.c); x < -87 gives exp(-87).
static inline float exp_neg(float x) {
    x = x < -87.0f ? -87.0f : x;
    float t = x * 1.44269504088896341f + 12582912.0f, n = t - 12582912.0f;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { float f; int32_t i; } a = {.f = t}, b;
    b.i = (a.i - 0x4B400000 + 127) << 23;
    return p * b.f;
}

// The logistic function 1 / (1 + exp(-x)) for any x, through exp_neg(-|x|).
static inline float sigmoid_fast(float x) {
    float e = exp_neg(-fabsf(x)), r = 1.0f / (1.0f + e);
    return x < 0 ? e * r : r; // both sides computed: a select, not a branch, so that it vectorises
}
#endif
