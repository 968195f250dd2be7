// Retypes the model's own source to double for the finite-difference tests: system headers are
// included first (their prototypes keep float), then `float` and the float maths/BLAS names are mapped
// to their double twins, and the test includes the policy sources it checks. The gradients are then
// compared with central differences at eps ~1e-5, far below fp32's rounding.
#pragma once
#include <cJSON.h>
#include <cblas.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/error.h"
#include "common/fileio.h"
// common/vmath.h's vectorisable float approximations: libm's double functions instead.
#define GRPO_VMATH_H
#define exp_neg exp
static inline double sigmoid_fast(double x) { return 1.0 / (1.0 + exp(-x)); }
#define float double
#define cblas_sgemm cblas_dgemm
#define expf exp
#define sqrtf sqrt
#define logf log
#define powf pow
#define cosf cos
#define floorf floor
#define ceilf ceil
#define atan2f atan2
#define fabsf fabs
#undef FLT_MAX
#define FLT_MAX DBL_MAX
