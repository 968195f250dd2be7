// The `format` reward: 1 when the completion matches a PCRE2 pattern, else 0. The default pattern is
// DeepSeek-R1's layout, reasoning in <think>...</think> then the answer in <answer>...</answer>.
//
// Config entry: {"name": "format", "weight": 0.1, "pattern": "...", "score": 1, "count": 0}
// With "count": N > 0 the reward is partial, score * min(matches, N) / N over non-overlapping matches (as
// open-r1's tag-count reward gives credit per tag; also a dense reward for smoke tests of training).
// The pattern is compiled with DOTALL (so "." spans lines) and matched under PCRE2 match, depth and heap
// limits; a match that hits a limit scores 0 with verdict "limit".
#pragma once
#include "rewards/reward.h"

#define FORMAT_DEFAULT_PATTERN "^\\s*<think>.*?</think>\\s*<answer>.*?</answer>\\s*$"

int reward_format_create(Reward *out, const cJSON *options);
