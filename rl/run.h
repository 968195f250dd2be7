// What every training command (grpo train, sft, distill) shares: the policy and tokenizer from a run
// config, AdamW settings from its "optim" section, numbered checkpoints in the output directory, and
// prompt + completion sequences packed into the policy's (B,T) grid.
#pragma once
#include "policy/adamw.h"
#include "policy/model.h"
#include "policy/tokenizer.h"
#include "datasets/dataset.h"
#include "rollout/rollout.h"
#include <cJSON.h>
#include <stdbool.h>
#include <stdint.h>

// The policy: `model` is a model directory (config.json + weights, tokenizer.json) or a model config
// .json, which is random-initialised from init_seed / init_std with grpo.c's default tokenizer. Writes
// the tokenizer that checkpoints copy to tok_src (a path, size PATH_MAX); for a random init it is written
// into out_dir. The tokenizer must fit the model's vocabulary: a mismatch is an error naming both sizes.
int run_load_policy(Model *m, Tokenizer **tok, char *tok_src, const char *model, uint64_t init_seed, float init_std,
                    const char *out_dir);

// The "optim" section every training config carries, as defaults for config_tree:
// {"lr", "beta1", "beta2", "eps", "weight_decay", "grad_clip", "warmup_steps", "schedule", "min_lr_ratio"}.
cJSON *run_optim_defaults(float lr);
// Reads the section at `path` ("optim") into cfg; total_steps is the caller's. Returns 0 or -1.
int run_optim_read(const cJSON *tree, const char *path, AdamWConfig *cfg);

// The task source of a training config's "data" section: {"train": a JSONL file, "format", "skip_bad",
// "synthetic": {"kind", "n", "difficulty", "ops", "seed"}}; exactly one of train and synthetic.kind is set.
typedef struct {
    const char *train, *format, *syn_kind, *syn_ops;
    bool skip_bad;
    int syn_n, syn_difficulty;
    int64_t syn_seed;
} RunData;
void run_data_add_defaults(cJSON *data);
// Reads the section at `path` ("data") and checks it names one source. Returns 0 or -1.
int run_data_read(const cJSON *tree, const char *path, RunData *d);
// Loads `file` with the section's format and skip_bad (a skipped line is counted on stderr, tagged `who`).
int run_data_load_file(const RunData *d, const char *file, const char *who, TaskList *out);
// The training tasks: the JSONL file or the synthetic set. Returns 0 or -1.
int run_data_load(const RunData *d, const char *who, TaskList *out);

// The sampling keys of a rollout section: {"max_new_tokens", "temperature", "top_p", "top_k", "min_p",
// "stop" (strings), "max_batch", "token_budget" (0 = sized from max_batch and the longest prompt)}.
void run_sampling_add_defaults(cJSON *section, int max_new_tokens);
// Reads them into r (other fields untouched) and checks their ranges, naming the key. Returns 0 or -1.
int run_sampling_read(const cJSON *tree, const char *path, RolloutConfig *r);

// Checkpoints live in out_dir/step-N (N zero-padded), each written whole or not at all.
void run_checkpoint_path(char *out /* PATH_MAX */, const char *out_dir, long step);
// The highest step with a checkpoint in out_dir: *step = N and path = its directory; *step = 0 when none.
int run_latest_checkpoint(const char *out_dir, long *step, char *path /* PATH_MAX */);
// Saves step-N, then removes all but the newest `keep` checkpoints (keep <= 0: keeps all). Returns 0 or -1.
int run_save_checkpoint(const char *out_dir, long step, const Model *m, const AdamW *opt, const char *tok_src,
                        const cJSON *state, int keep);

// Prompt + completion sequences on the (B,T) grid that model_forward takes: row b holds
// prompt_b ++ completion_b; inputs are the tokens, targets the next token where it is a completion token
// (else -1), mask 1 there. Completion token j of row b is scored at position Tp_b + j - 1, so logp there
// lines up with the rollout's logprobs[j]. T = the longest row minus one; padding is token 0, target -1.
typedef struct {
    int B_max, T_max;
    int B, T;
    int *inputs, *targets; // (B*T)
    float *mask;           // (B*T)
    int *offsets;          // (B+1) b*T, for GrpoBatch
} PackedBatch;
int packed_init(PackedBatch *pb, int B_max, int T_max);
void packed_free(PackedBatch *pb);
// Packs n rows. A row longer than T_max + 1 tokens or with an empty completion is an error. Returns 0 or -1.
int packed_fill(PackedBatch *pb, const int *const *prompt, const int *prompt_len, const int *const *completion,
                const int *completion_len, int n);
// Scatters per-completion values (one array per row, completion_len[b] long) onto the grid: out (B*T),
// row b's value j at position Tp_b + j - 1, 0 elsewhere.
void packed_scatter(const PackedBatch *pb, float *out, const float *const *vals, const int *prompt_len,
                    const int *completion_len);

// Seconds since an arbitrary start (monotonic clock).
double run_now(void);
