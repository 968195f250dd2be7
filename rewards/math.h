// The `math` reward: extracts the final answer from a completion, normalises LaTeX and plain-text answers,
// and decides whether it is equivalent to the gold answer (exactly, as exact rationals, numerically with a
// relative tolerance, or structurally for tuples, sets, intervals and relations). Every step is bounded in
// time and stack depth, whatever the input.
//
// Config entry: {"name": "math", "weight": 1, "extract": ["boxed", "answer_tag", "hashes", "final_answer",
// "answer_is"], "last_number": false, "rel_tol": 1e-6}
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "rewards/reward.h"
#include <stddef.h>

// Extractors, tried in the configured order; the first that finds something wins.
typedef enum {
    MATH_EX_BOXED,         // the last balanced \boxed{...} or \fbox{...}
    MATH_EX_ANSWER_TAG,    // the last <answer>...</answer>
    MATH_EX_HASHES,        // GSM8K: the rest of the line after the last "####"
    MATH_EX_FINAL_ANSWER,  // "final answer is X" / "final answer: X" (case-insensitive, last one)
    MATH_EX_ANSWER_IS,     // "the answer is X" (last one)
    MATH_EX_LAST_NUMBER,   // the last number in the text; off unless configured
    MATH_EX_COUNT
} MathExtractor;

typedef struct {
    int order[MATH_EX_COUNT];  // MathExtractor values in priority order
    int norder;
    double rel_tol;            // numeric comparisons: |a - b| <= rel_tol * max(|a|, |b|)
} MathOptions;

// Longest answer (after extraction) that is parsed; longer ones only match byte for byte.
#define MATH_MAX_ANSWER 2048

void math_options_default(MathOptions *o);
// Reads "extract", "last_number" and "rel_tol" from a config entry (NULL = defaults). Returns 0 or -1.
int math_options_parse(MathOptions *o, const cJSON *options);

// Finds the final answer in text[0..n). Returns the extractor that found it with the answer at
// text[*start .. *start + *len), or -1 when there is none.
int math_extract(const char *text, size_t n, const MathOptions *o, size_t *start, size_t *len);
// The gold side: a gold text holding \boxed{} or "####" goes through the same extraction; otherwise it
// is the answer as it stands. Sets the range like math_extract; returns 0, or -1 when nothing is left.
int math_extract_gold(const char *gold, size_t n, size_t *start, size_t *len);

// Flags set by math_normalize about what it removed.
enum { MATH_PERCENT = 1, MATH_DEGREES = 2, MATH_CURRENCY = 4 };
// Canonical form of an answer: math delimiters, \left/\right, spacing, \text-like wrappers, degrees,
// percent, currency, thousands separators and trailing units removed; \dfrac/\tfrac -> \frac. Writes a
// NUL-terminated string of at most cap - 1 bytes and returns its length, or -1 when it does not fit.
int math_normalize(const char *in, size_t n, char *out, size_t cap, unsigned *flags);

// 1 when the extracted answers `pred` and `gold` are equivalent, else 0. opt may be NULL (defaults).
int math_equal(const char *gold, size_t ngold, const char *pred, size_t npred, const MathOptions *opt);

int reward_math_create(Reward *out, const cJSON *options);

// p/q in lowest terms with q > 0 into *op/*oq; false when q == 0 or the result overflows 64 bits.
// The exact arithmetic of the math checker and of the countdown reward.
bool rational_reduce(__int128 p, __int128 q, int64_t *op, int64_t *oq);
