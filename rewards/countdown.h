// The `countdown` reward (TinyZero's task): the equation in the last <answer>...</answer> must use each of
// the task's numbers exactly once and evaluate exactly (as a rational, so 7/2*2 is 7) to the target.
// Reward levels as in TinyZero: no answer 0, an answer that is not a correct equation `format_score`,
// a correct one `score`. The equation may end in "= target".
//
// Task: meta "nums" (array of integers) and "target" (integer).
// Config entry: {"name": "countdown", "weight": 1, "score": 1, "format_score": 0.1}
#pragma once
#include "rewards/reward.h"
#include <stdint.h>

// Verdicts, in the order they are checked.
typedef enum {
    COUNTDOWN_CORRECT,
    COUNTDOWN_NO_ANSWER,    // no <answer>...</answer>
    COUNTDOWN_INVALID,      // not an arithmetic expression of integers (+ - * / and parentheses)
    COUNTDOWN_WRONG_NUMBERS,// does not use each given number exactly once
    COUNTDOWN_WRONG_VALUE,  // divides by zero, overflows, or evaluates to something else
} CountdownVerdict;

// Checks one equation (the answer text) against nums[0..n) and target.
CountdownVerdict countdown_check(const char *eq, size_t len, const int64_t *nums, int n, int64_t target);

int reward_countdown_create(Reward *out, const cJSON *options);
