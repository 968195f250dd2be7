// Distillation (`grpo distill`): a teacher samples k traces per prompt, the rewards score them, a rejection
// filter keeps the correct, well-formed, short and distinct ones (at most n per prompt), and a student is
// fine-tuned on them (rl/sft.h), optionally also matching the teacher's next-token distribution (logit
// distillation). Teacher and student are evaluated on a held-out split before and after.
//
// The run database (OUT/run.db) gets one run of kind "distill":
//   step 0   one steps row with the sampling's metrics ("distill/accepted", "reward/mean", ...) and every
//            sampled trace as an episode: group_idx = the prompt's index, sample_idx = the sample, the
//            templated prompt, the completion, reward, verdict (the first reward's), finish reason and
//            reward_parts_json = each reward's unweighted value plus "accepted": 1 or 0 and, for a rejected
//            trace, "reject": why ("wrong", "malformed", "truncated", "too_long", "duplicate", "over_limit");
//            advantage and logprob_sum are NULL
//   1..N     the student's SFT steps (rl/sft.h)
//   evals    "teacher/<set>" at step 0, "student/<set>" at step 0 (before) and at step N (after), every
//            metric of rl/eval.h
// `grpo sft --from-db OUT/run.db --min-reward R` retrains a student from these episodes without sampling
// again (every trace with reward >= R, so duplicates and over-limit traces too); the accepted set exactly
// is the --export file, or SQL on json_extract(reward_parts_json, '$.accepted') = 1.
//
// Tokenizers: the student learns the teacher's text through its own tokenizer, which would work with any
// tokenizer; but the logit term compares distributions over token ids, so it needs the very same
// vocabulary, and a student whose tokenizer differs by accident is usually a mistake. Both are therefore
// required to be identical (every id's token string, special flags, bos and eos) unless
// `same_tokenizer` is false, which logit distillation does not allow. The check runs before any sampling.
//
// Logit distillation is computed online: both models stay in memory, and for each student micro-batch
// the teacher's forward over the same tokens gives its top-k tokens and log-probabilities at every
// completion position (nothing is stored). The loss is
//   CE + weight * T^2 * mean over completion positions of KL(p_T || q_S)
// with p_T the teacher's distribution at temperature T renormalised over its top-k tokens and q_S the
// student's at temperature T over the whole vocabulary (T^2 keeps the gradient's scale as T changes,
// as in Hinton et al. 2015). It enters model_backward through Model.head_extra.
#pragma once
#include "policy/model.h"
#include "policy/tokenizer.h"
#include "rl/eval.h"
#include "rl/sft.h"
#include <cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

// ------------------------------------------------------------------------------------------------
// The rejection filter

typedef enum {
    TRACE_ACCEPTED,
    TRACE_WRONG,       // not correct: the first reward's verdict (or reward < min_reward)
    TRACE_MALFORMED,   // does not match the format pattern
    TRACE_TRUNCATED,   // cut off by max_new_tokens: it would teach stopping mid-sentence
    TRACE_TOO_LONG,    // more tokens than max_tokens
    TRACE_DUPLICATE,   // the same text as an accepted trace of the same prompt
    TRACE_OVER_LIMIT,  // the prompt already has per_prompt accepted traces
    TRACE_FATES
} TraceFate;
const char *trace_fate_name(TraceFate f); // "accepted", "wrong", "malformed", ...

// One sampled trace as the filter sees it.
typedef struct {
    int prompt;              // the prompt it answers (traces of a prompt need not be adjacent)
    int sample;              // its sample index (ties in the selection order go to the lower one)
    const char *text;
    int n_tokens;
    bool truncated;
    float reward;            // the weighted total
    bool correct;            // the first reward's verdict counts as correct (eval_verdict_correct)
    bool well_formed;        // matches the format pattern (true when there is none)
} Trace;

typedef enum { SELECT_SHORTEST, SELECT_RANDOM } TraceSelect;

typedef struct {
    bool filter;             // false: every trace is accepted (the unfiltered baseline)
    double min_reward;       // NAN: correct means the verdict; else reward >= min_reward
    int max_tokens;          // > 0: at most this many completion tokens
    bool dedupe;             // identical texts of one prompt count once
    int per_prompt;          // > 0: at most this many accepted traces per prompt
    TraceSelect select;      // which candidates fill a prompt's quota: the shortest first (ties: the
                             // lower sample), or a seeded random order per prompt
    uint64_t seed;
} AcceptOptions;

// Decides every trace's fate: first each trace alone (wrong, malformed, truncated, too long, in that
// order), then per prompt the remaining candidates in selection order, where a text seen before is a
// duplicate and candidates past the quota are over the limit. Returns the number accepted, or -1.
int distill_filter(TraceFate *fate /* (n) */, const Trace *traces /* (n) */, int n, const AcceptOptions *o);

// ------------------------------------------------------------------------------------------------
// Tokenizers and export

// 0 when the two tokenizers are the same (vocabulary size, every id's token string and special flag, bos,
// eos); else an error naming the first difference and both sources.
int distill_check_tokenizers(const Tokenizer *teacher, const char *teacher_src, const Tokenizer *student,
                             const char *student_src);

// Writes the pairs as JSONL in the chat form other trainers read (TRL, OpenAI fine-tuning):
//   {"messages": [{"role": "system", "content": ...}?, {"role": "user", "content": prompt},
//                 {"role": "assistant", "content": completion}], "id": ...?}
// (system when the pair has one; id when it has one). Strings are written byte for byte with JSON
// escapes, so sft_data_load_jsonl reads back the same pairs. Atomic. Returns 0 or -1.
int distill_export_jsonl(const char *path, const SftPair *pairs, int n);

// ------------------------------------------------------------------------------------------------
// Logit distillation

typedef struct {
    float weight;            // of the KL term against the cross-entropy (0 = off)
    int top_k;               // teacher tokens per position
    float temperature;       // of both distributions
} LogitKd;

// The teacher side of the logit term: its model and buffers for micro-batches up to (B_max, T_max).
typedef struct {
    Model *teacher;          // borrowed; activations sized by distill_kd_init
    LogitKd opt;
    int N_max;               // B_max * T_max
    int *ids;                // (N_max, K) teacher's top-k tokens
    float *tlogp, *p;        // (N_max, K) their log-probabilities; renormalised probabilities
    float *mask, *kl, *lse, *dkl; // (N_max)
    long calls;              // micro-batches scored
    double first_kl, last_kl; // mean KL over the completion positions of the first and the latest one
    int rc;                  // -1 when a teacher forward failed inside model_backward (see grpo_error)
} DistillKd;

// Sizes the teacher's activations and the buffers; the teacher must share the student's vocabulary size.
int distill_kd_init(DistillKd *kd, Model *teacher, const Model *student, const LogitKd *opt, int B_max, int T_max);
void distill_kd_free(DistillKd *kd);
// Sets student->head_extra to the logit term: at each position where dlogp != 0, weight * T^2 * |dlogp|
// times the KL, so it is averaged like the CE term it joins. distill_kd_detach removes it.
void distill_kd_attach(DistillKd *kd, Model *student);
void distill_kd_detach(Model *student);

// ------------------------------------------------------------------------------------------------
// The command

// The config's defaults, which are also its schema (common/config_tree.h); `grpo distill --help` lists
// every key.
cJSON *distill_defaults(void);
// defaults <- the JSON file (NULL: none) <- the --set overrides, every value checked. NULL with an error.
cJSON *distill_config_load(const char *path, const char *const *sets, int nsets);

typedef struct {
    long long run_id;
    int n_prompts, n_traces, n_accepted;
    int fates[TRACE_FATES];  // traces by fate
    int prompts_covered;     // prompts with at least one accepted trace
    char heldout_name[128];  // "<set>" of the evals rows ("" when there is no held-out split)
    int n_heldout;
    EvalResult teacher, student_before, student_after; // on the held-out split (when n_heldout > 0)
    SftResult sft;
    double kd_kl_first, kd_kl_last; // mean KL of the first and the last micro-batch (NAN without logit_kd)
    double seconds;
} DistillResult;

// The whole run into out_dir (created; one that already holds a run.db is refused): checks, held-out
// evaluations, sampling, filtering, the database, export (export_path, or the config's "export"; NULL
// and "" = none), SFT of the student into out_dir/student, the final evaluation. Progress on log (NULL:
// quiet). Returns 0 or -1.
int distill_run(const cJSON *cfg, const char *out_dir, const char *export_path, FILE *log, DistillResult *res);
