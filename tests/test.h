// A minimal test framework: EXPECT records a failure with file:line and goes on; each test binary ends
// with `N passed, N failed` (tests/run.sh sums the lines of all binaries).
#pragma once
#include <math.h>
#include <stdio.h>
#include <string.h>

static int test_passed, test_failed, test_cur_failed;
static const char *test_cur_name;

#define EXPECT(cond, ...) do { \
    if (!(cond)) { \
        test_cur_failed++; \
        fprintf(stderr, "  FAIL %s (%s:%d): ", test_cur_name, __FILE__, __LINE__); \
        fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); \
    } } while (0)

// Relative/absolute closeness for floating point comparisons.
#define EXPECT_NEAR(a, b, tol, what) do { double _a = (a), _b = (b); \
    EXPECT(fabs(_a - _b) <= (tol) * (1.0 + fabs(_b)) && !isnan(_a), "%s: %.9g vs %.9g", what, _a, _b); } while (0)

#define RUN_TEST(fn) do { \
    test_cur_name = #fn; test_cur_failed = 0; fn(); \
    if (test_cur_failed) { test_failed++; fprintf(stderr, "FAIL %s\n", #fn); } \
    else { test_passed++; fprintf(stderr, "ok   %s\n", #fn); } } while (0)

static inline int test_summary(void) {
    printf("%d passed, %d failed\n", test_passed, test_failed);
    return test_failed ? 1 : 0;
}
