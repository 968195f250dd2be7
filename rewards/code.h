// The `code` reward: runs the program in a completion against the task's tests in the sandbox
// (rewards/sandbox.h), on a pool of workers (one sandbox slot each).
//
// Program: the last fenced ```python (or ```py, or untagged) block of the completion, else the whole
// completion. Tests, read from Task.meta:
//   HumanEval  prompt, test (defines check(candidate)), entry_point: one test, check(entry_point). The
//              prompt runs first (it may define helpers the test uses); a program without
//              `def entry_point` is taken as the body that continues the prompt.
//   MBPP       test_setup_code (optional, run after the program), test_list: one test per assert line.
//   stdin/out  inputs, outputs (lists of strings): one run per case, stdout compared token by token.
// A function test passes only when the in-sandbox harness writes the run's secret token after it, on a
// descriptor the program does not own; the exit status never counts. Stdin/stdout cases are compared by
// the caller, outside the sandbox.
// Reward: 1 when every test passes, else 0; with "partial": true, the fraction of tests passed.
// RewardDetail.verdict: passed, failed, timeout, memory, runtime_error, output_limit or sandbox_error;
// parts: passed (tests passed), total (tests), seconds (wall time in the sandbox).
//
// Options (JSON config entry): partial (false), timeout_s (10; per stdin case), cpu_s (10), memory_mb
// (1024), nproc (32), output_kb (1024), workers (0 = one per core), site (false: python -S, the
// standard library only), allow_weak_isolation (false).
//
// Thread safety: score and score_batch may be called from several threads at once (e.g. while the
// rollout engine generates the next batch); they share the pool.
#pragma once
#include "rewards/reward.h"
#include <stddef.h>

int reward_code_create(Reward *out, const cJSON *options);

// The sandbox of a created code reward (its layers, leftover checks); worker k uses slot k.
struct Sandbox *reward_code_sandbox(const Reward *r);

// Copies the program of `completion` (rules above) into a new string (NULL and grpo_error() on failure).
char *code_extract(const char *completion);
