// Supervised fine-tuning on (prompt, completion) pairs: cross-entropy on the completion tokens only,
// averaged over all completion tokens of an optimizer step (micro-batches accumulate into it). `grpo sft`
// runs it from a config; the demo (cold start on synthetic traces) and distillation (a student on
// accepted teacher traces) call sft_train directly with pairs in memory.
//
// A pair becomes one sequence: prompt_encode(template, system, prompt) (bos included), then the
// completion encoded without the post-processor (special-token text such as <think> becomes its token)
// and the tokenizer's eos, so the model learns where to stop. Episodes from a run database already hold
// the prompt as the policy saw it (SftPair.templated): it is encoded as is, never templated twice.
//
// Data order: datasets/dataset.h's seeded sampler over the pairs; a checkpoint keeps its cursor, so
// `--resume` continues with the sequences the uninterrupted run would have seen and ends with the same
// weights, bit for bit.
#pragma once
#include "datasets/task.h"
#include "policy/adamw.h"
#include "policy/model.h"
#include "policy/tokenizer.h"
#include "rl/run.h"
#include "rl/store.h"
#include <cJSON.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    const char *id;          // where it came from ("file.jsonl:12", a task id, "run 1 step 3 group 0 sample 2"),
                             // for messages and the data fingerprint; may be NULL
    const char *system;      // {system} of the template; NULL: SftConfig.system
    const char *prompt;      // the user's text (or, when templated, the whole prompt text)
    const char *completion;  // the text to learn; eos is appended
    bool templated;          // prompt already is the text the policy saw: no template, no system
} SftPair;

// An owned list of pairs (every string copied).
typedef struct {
    SftPair *pairs;          // (n)
    int n, cap;
} SftData;

// Copies p's strings into d. Returns 0 or -1.
int sft_data_add(SftData *d, const SftPair *p);
void sft_data_free(SftData *d);

// JSONL record forms: "pairs" {"prompt", "completion"} (optional "system" and "id"), "messages"
// {"messages": [{"role": "system", "content"}?, {"role": "user", ...}, {"role": "assistant", ...}]}
// (single turn: system -> {system}, user -> prompt, assistant -> completion), "auto" either, per line.
typedef enum { SFT_FORMAT_AUTO, SFT_FORMAT_PAIRS, SFT_FORMAT_MESSAGES } SftFormat;
int sft_format_parse(const char *name, SftFormat *out); // "auto" | "pairs" | "messages"

// Appends every non-blank line of a JSONL file; a line of another shape is an error naming the file,
// the line and the field. Returns 0 or -1.
int sft_data_load_jsonl(SftData *d, const char *path, SftFormat format);
// Appends one pair per task: its prompt and its reference trace (meta "trace", as the synthetic
// generators write it); a task without a trace is an error naming it. Returns 0 or -1.
int sft_data_from_tasks(SftData *d, const Task *tasks, int n);
// Appends the episodes of a run database with reward >= min_reward, of run `run_id` (0: every run), as
// templated pairs. Returns 0 or -1; no matching episode is an error.
int sft_data_from_db(SftData *d, const char *db_path, int64_t run_id, double min_reward);
// The "data" section of a `grpo sft` config (sft_command_defaults): exactly one of "train" (a JSONL file,
// with "format"), "synthetic.kind" (synthetic tasks' traces) or "from_db" (with "min_reward", "run_id").
int sft_data_from_config(SftData *d, const cJSON *tree);

// ------------------------------------------------------------------------------------------------
// Options

typedef struct {
    const char *tmpl;        // prompt template: preset name or a string with {prompt} (policy/tokenizer.h)
    const char *system;      // {system} of pairs that bring none
    int epochs;              // passes over the pairs; the last step may be short so that each pair is
                             // seen exactly `epochs` times
    int max_steps;           // > 0: this many full steps instead, epochs ignored
    int stop_after;          // > 0: stop after this step with a checkpoint, as if interrupted; the plan
                             // (schedule, data order) stays that of the whole run, which --resume finishes
    int batch_size;          // sequences per optimizer step
    int micro_batch;         // sequences per forward/backward (gradient accumulation)
    int max_len;             // prompt + completion + eos tokens at most
    bool skip_long;          // longer pairs are skipped and counted (false: an error)
    bool shuffle;
    uint64_t seed;           // data order
    AdamWConfig optim;       // total_steps is set from the plan
    float mtp_lambda;        // MTP loss weight (0 = the MTP block is skipped)
    float router_bias_gamma; // aux-loss-free balancing step after each optimizer step (0 = off)
    int save_every;          // checkpoint every N steps (0: only the last); needs an out_dir
    int keep_checkpoints;    // newest checkpoints kept (0 = all)
    int log_every;           // a progress line and a steps row every N steps (and at the first and last)
    bool resume;             // continue from the newest checkpoint in out_dir
    const cJSON *config;     // the run config, recorded in trainer_state.json; may be NULL
    FILE *log;               // progress lines; NULL = silent
    // Early stopping (a validation check, as HF Trainer's callbacks): every check_every steps, check(ctx,
    // step, m, &stop) runs on the model being trained; stop = true ends training there with a checkpoint.
    // It may run the rollout engine on m. Returns 0 or -1 (an error ends training).
    int (*check)(void *ctx, long step, Model *m, bool *stop);
    void *check_ctx;
    int check_every;         // 0 = never
} SftConfig;

// The training options as config_tree defaults (the schema): every SftConfig field read from a config,
// i.e. all but resume, config and log:
//   {"template": "r1-zero", "system": "", "epochs": 1, "max_steps": 0, "stop_after": 0, "batch_size": 16,
//    "micro_batch": 8, "max_len": 256, "skip_long": true, "shuffle": true, "seed": 1,
//    "optim": run_optim_defaults(1e-3), "mtp_lambda": 0, "router_bias_gamma": 0.001, "save_every": 0,
//    "keep_checkpoints": 2, "log_every": 10}
// Distillation nests them as a section; the demo reads them from these defaults and sets what it needs.
cJSON *sft_options_defaults(void);
// Reads the options at `prefix` ("" = top level, or "sft") of a tree checked against those defaults,
// with range checks naming the key. resume = false, config = tree, log = NULL. Returns 0 or -1.
int sft_options_read(const cJSON *tree, const char *prefix, SftConfig *cfg);
// `grpo sft`'s config: the options plus "model", "init_seed", "init_std" (rl/run.h run_load_policy) and
// "data": {"train": "", "format": "auto", "synthetic": {"kind": "", "n": 0, "difficulty": 2, "ops": "+",
// "seed": 1}, "from_db": "", "min_reward": 1.0, "run_id": 0}.
cJSON *sft_command_defaults(void);

// ------------------------------------------------------------------------------------------------
// Training

// Pairs as token sequences for the policy.
typedef struct {
    int n;                   // sequences (pairs kept)
    int skipped;             // pairs longer than max_len, left out
    int **prompt, **completion;          // (n) into ids
    int *prompt_len, *completion_len;    // (n); completion_len counts the eos
    int *pair;               // (n) index of each sequence's pair
    int *ids;                // every token, one allocation
} SftSeqs;

// Encodes the pairs (see the top of this file). A pair of more than max_len tokens is skipped and
// counted, or with !skip_long an error naming it; so is a prompt that encodes to nothing. A tokenizer
// without eos is an error. Returns 0 or -1.
int sft_encode(SftSeqs *s, Tokenizer *tok, const SftPair *pairs, int n, const char *tmpl, const char *system,
               int max_len, bool skip_long);
void sft_seqs_free(SftSeqs *s);

// One micro-batch of an optimizer step whose sequences hold step_tokens completion tokens in all
// (step_mtp MTP targets: completion tokens minus one per sequence): forward over pb, dlogp = -1/step_tokens
// on the completion positions (pb->mask) and 0 on prompt and padding, backward, adding into m->grads; the
// MTP term is weighted by mtp_lambda times this micro-batch's share of step_mtp, so it too is a mean over
// the step. dlogp: scratch of pb's B*T. Writes the summed CE over the micro-batch's completion tokens
// (and its MTP targets). Returns 0 or -1.
int sft_micro_step(Model *m, const PackedBatch *pb, float *dlogp, long step_tokens, long step_mtp, float mtp_lambda,
                   double *ce_sum, double *mtp_sum);

typedef struct {
    long step;               // the last step taken (the plan's last unless stop_after)
    long total_steps;        // the plan
    long start_step;         // where this call began (a resumed checkpoint's step, else 0)
    int n_seqs, skipped;     // sequences trained on; pairs skipped as too long
    double first_loss;       // mean completion CE of the first step this call took (NAN: none)
    double last_loss;        // of its last step
    long tokens;             // prompt + completion tokens this call trained on
    double seconds;
    char checkpoint[PATH_MAX]; // the last checkpoint written ("" when none)
} SftResult;

// Trains m (built, weights loaded) on the pairs and leaves the trained weights in it. m's activations
// are sized for (micro_batch, max_len - 1) (a rollout engine over m is created afterwards); mtp_lambda,
// aux_alpha (0), temperature (1) and count_load are set for training and restored on return.
// out_dir (NULL: no checkpoints, no resume) receives step-N checkpoints (weights, AdamW, tokenizer from
// tok_src, trainer_state.json {"step", "epoch", "cursor", "run_id", "total_steps", "config"}); an out_dir
// that already holds checkpoints needs cfg->resume, which loads the newest (it must be of run_id and of the
// same plan) and truncates the run's later steps in the store. store (NULL: none) gets one steps row per
// logged step of run_id (store_begin_run is the caller's: kind "sft", or "distill"). Returns 0 or -1.
int sft_train(const SftConfig *cfg, Model *m, Tokenizer *tok, const SftPair *pairs, int n, Store *store,
              int64_t run_id, const char *out_dir, const char *tok_src, SftResult *res);

// `grpo sft` as a function: the policy from the config (run_load_policy), the data (sft_data_from_config),
// out_dir/run.db (a new run of kind "sft", or with resume the latest one), then sft_train. Returns 0 or -1.
int sft_run(const cJSON *tree, const char *out_dir, bool resume, FILE *log, SftResult *res);
