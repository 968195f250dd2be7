// Evaluation: k sampled completions per task from the policy, scored by the rewards and summarised as
// pass@1, pass@k, maj@k and the mean reward. `grpo eval` runs it on a data set file; the trainer, the demo
// and distillation run it on a held-out split before and after training and store the same metrics.
//
// Correct: a sample is correct when its verdict (RewardDetail.verdict) is "correct" (math, countdown),
// "passed" (code: every test) or "match" (format). With a reward list the verdict is the first component's
// (every registered reward sets one), so list the task's own reward first and a format reward after it.
// The reward value does not decide, because rewards give partial credit (countdown's format score, the code
// reward's "partial" option); mean_reward reports it.
//
// Metrics over n tasks, each with k samples of which c are correct:
//   pass@j       mean over tasks of 1 - C(k-c, j) / C(k, j), the unbiased estimator of Chen et al. 2021
//                ("Evaluating Large Language Models Trained on Code"): the chance that j samples drawn
//                without replacement from the k hold a correct one. For j = 1, 2, 4, ... below k, and k.
//                pass@1 is the mean correctness.
//   maj@k        majority vote per task over the samples' answers (RewardDetail.extracted, the same answer
//                when the strings are equal; a sample without one does not vote). The most frequent answer
//                wins, a tie going to the answer given first; the task counts when the winner's first
//                sample is correct (math and countdown give equal answers equal verdicts). No answer at all:
//                not correct.
//   mean_reward  the (weighted total) reward over all samples
//   answered     the fraction of samples with an extracted answer
//   mean_tokens  completion length in tokens
//   truncated    the fraction of samples cut off by max_new_tokens
//
// Tasks go through the rollout engine in chunks of about EVAL_CHUNK_SAMPLES samples, each chunk scored
// (the code reward runs it in parallel on its workers) before the next is generated, so memory does not
// grow with the data set. Sample g of task i is drawn from the engine's random stream for (the chunk's
// seed, i's place in the chunk, g): for a given k the seed fixes every sample, whatever the batch size or
// token budget. The first chunk's seed is EvalOptions.seed itself, so the samples of an evaluation of one
// chunk are those `grpo generate` draws with the same seed, template and sampling.
#pragma once
#include "datasets/task.h"
#include "policy/model.h"
#include "policy/tokenizer.h"
#include "rewards/reward.h"
#include "rl/store.h"
#include "rollout/rollout.h"
#include <stdbool.h>
#include <stdint.h>

#define EVAL_CHUNK_SAMPLES 1024
#define EVAL_MAX_K (1 << 14)   // so that pass@1, 2, 4, ... k fit EVAL_MAX_PASS
#define EVAL_MAX_PASS 16
#define EVAL_MAX_METRICS (EVAL_MAX_PASS + 5)
#define EVAL_PLAIN_EVERY_S 30.0

// One scored sample, handed to EvalOptions.on_sample; the pointers are valid during the call only.
typedef struct {
    const Task *task;
    int task_idx, sample_idx;    // index into the evaluated tasks, 0..k-1
    const char *completion;
    int n_tokens;
    FinishReason finish;
    float reward;                // the weighted total
    bool correct;
    const RewardDetail *detail;  // verdict, extracted answer, the components' rewards by name
} EvalSample;
// Returns 0, or -1 (with an error) to stop the evaluation.
typedef int (*EvalSampleFn)(void *ctx, const EvalSample *s);

typedef struct {
    RolloutConfig rollout;   // group_size = k samples per task; sampler, max_new_tokens, stop strings,
                             // max_batch (>= k); token_budget 0 = room for max_batch sequences (or the
                             // samples of one chunk, if fewer) of the longest prompt
    const char *tmpl;        // prompt template: a preset name or a template string (policy/tokenizer.h)
    const char *system;      // its {system} part; may be NULL
    uint64_t seed;
    bool progress;           // on stderr: a bar on a terminal, else a line every EVAL_PLAIN_EVERY_S seconds
    const char *label;       // names the evaluation on the progress lines (the data set); may be NULL
    EvalSampleFn on_sample;  // called for every scored sample, in task and sample order; may be NULL
    void *on_sample_ctx;
} EvalOptions;

// k 1; temperature 0.6 and top-p 0.95 (DeepSeek-R1's evaluation sampling); 256 new tokens; max_batch 64;
// the "raw" template; seed 1; no progress.
EvalOptions eval_defaults(void);

typedef struct {
    int n_tasks, k;
    long n_samples, n_correct, n_answered, n_truncated, n_tokens;
    int n_solved;                    // tasks with at least one correct sample
    int n_pass;                      // entries of pass_j / pass_at
    int pass_j[EVAL_MAX_PASS];       // 1, 2, 4, ... below k, then k
    double pass_at[EVAL_MAX_PASS];   // pass@pass_j[i]
    double maj;                      // maj@k
    double mean_reward;
    double seconds;                  // wall time, generation and scoring
} EvalResult;

// The unbiased pass@k of one task with n samples of which c are correct: 1 - C(n-c, k) / C(n, k),
// computed as 1 - prod_{i=n-c+1..n} (1 - k/i) (no large binomials). 1 when n - c < k. Needs 1 <= k <= n.
double eval_pass_at_k(int n, int c, int k);
// Majority vote: the index of the first sample carrying the most frequent non-empty answer (ties: the
// answer that appears first), or -1 when no sample has one. O(n log n) with scratch of n ints.
int eval_majority(const char *const *answers /* (n) */, int n, int *scratch /* (n) */);
// Whether a verdict counts as correct (see the top of this file).
bool eval_verdict_correct(const char *verdict);

// Evaluates tasks[0..n) with k = opt->rollout.group_size samples each from the policy through the
// rollout engine (created and freed here; it sizes the model's activations when they are smaller than a
// prompt). Every task is checked against the rewards first (an error names the task). Returns 0 or -1.
int eval_run(EvalResult *res, Model *m, Tokenizer *tok, const Task *tasks, int n, const RewardSet *rewards,
             const EvalOptions *opt);

// Where completions come from: fills out[j * k + g] (text, n, finish) for the k samples of tasks
// first .. first + count - 1; the caller frees them with completion_free. Returns 0 or -1.
typedef int (*EvalSource)(void *ctx, int first, int count, int k, Completion *out /* (count * k) */);
// eval_run with another source (tests script the completions); opt->rollout gives k, the rest of it and
// the template are the source's business.
int eval_run_source(EvalResult *res, EvalSource src, void *ctx, const Task *tasks, int n, const RewardSet *rewards,
                    const EvalOptions *opt);

// The metrics by name, in the order above: "pass@1", ..., "pass@k", "maj@k", "mean_reward", "answered",
// "mean_tokens", "truncated". rate: a fraction (printed as a percentage). Returns how many.
typedef struct {
    char name[24];
    double value;
    bool rate;
} EvalMetric;
int eval_metrics(const EvalResult *r, EvalMetric *out /* (EVAL_MAX_METRICS) */);
// Writes every metric as an evals row (dataset, metric, value, n = tasks) of run_id at step, in one
// transaction. Returns 0 or -1.
int eval_store(Store *s, int64_t run_id, int64_t step, const char *dataset, const EvalResult *r);
