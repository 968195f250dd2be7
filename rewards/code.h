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
// Thread safety: score, score_batch and the calls below may be made from several threads at once; they
// share the pool, which scores completions in the order they were submitted.
#pragma once
#include "rewards/reward.h"
#include <stdbool.h>
#include <stddef.h>

int reward_code_create(Reward *out, const cJSON *options);

// The sandbox of a created code reward (its layers, leftover checks); worker k uses slot k.
struct Sandbox *reward_code_sandbox(const Reward *r);

// Copies the program of `completion` (rules above) into a new string (NULL and grpo_error() on failure).
char *code_extract(const char *completion);

// Asynchronous scoring, so that sandbox runs overlap the caller's work (generating the next batch):
//
//     CodeBatch *b = code_reward_submit(&r, tasks, completions, n, rewards, details);
//     ... generate, train ...                  (code_reward_done(b) tells without blocking)
//     code_reward_wait(b);                     rewards[0..n) and details[0..n) are filled in
//
// The results are those reward_score_batch gives. tasks, completions, rewards and details (which may be
// NULL) must stay valid and untouched until code_reward_wait returns; every submitted batch must be
// waited for, before reward_destroy. Returns NULL (grpo_error()) when `r` is not a code reward or the
// batch cannot be allocated.
typedef struct CodeBatch CodeBatch;
CodeBatch *code_reward_submit(const Reward *r, const Task *const *tasks, const char *const *completions, int n,
                              float *rewards /* (n) */, RewardDetail *details /* (n) or NULL */);
// True once every completion of the batch is scored.
bool code_reward_done(CodeBatch *b);
// Blocks until every completion of the batch is scored, then frees the batch.
void code_reward_wait(CodeBatch *b);
