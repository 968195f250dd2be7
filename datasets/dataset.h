// Datasets: task lists loaded from JSONL files (GSM8K, MATH, HumanEval, MBPP, countdown, generic) or made
// by synthetic generators, written back to JSONL, split into train/held-out, and sampled in seeded,
// resumable epochs.
//
// Record forms (one JSON object per line; plain or gzip, detected from the bytes):
//   gsm8k      question, answer ("...#### 1,234")  -> prompt = question, answer = "1,234" (text after ####)
//   math       problem, answer or solution (with \boxed{}), unique_id -> answer = `answer`, else the boxed
//              part of the solution
//   humaneval  task_id, prompt, test, entry_point   -> prompt = the HumanEval prompt (code reward)
//   mbpp       task_id, text (or prompt), test_list, test_setup_code -> prompt = the text then the asserts
//              (they name the function the tests call)
//   countdown  nums (integers), target (integer), optional prompt -> prompt made from them if absent
//   generic    prompt (or question, or problem), optional id and answer (string or number), and whatever
//              the rewards read (nums/target, test_list, ...). tasks_write_jsonl writes this form.
// Every task's meta is the whole record, so a reward reads any field it needs. Ids: the record's own
// (`id`, `task_id`, `unique_id`; a number is prefixed with the file stem: "mbpp/11"), else
// "<file stem>/<line number>".
#pragma once
#include "datasets/task.h"
#include <cJSON.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum {
    DS_AUTO, DS_GSM8K, DS_MATH, DS_HUMANEVAL, DS_MBPP, DS_COUNTDOWN, DS_GENERIC, DS_FORMAT_COUNT
} DatasetFormat;

// "auto", "gsm8k", "math", "humaneval", "mbpp", "countdown", "generic" <-> DatasetFormat.
int dataset_format_parse(const char *name, DatasetFormat *out);
const char *dataset_format_name(DatasetFormat f);

typedef struct {
    Task *tasks;             // (n) owned
    int n;
    DatasetFormat format;    // the form the loader used (detected when asked for DS_AUTO)
    int skipped;             // malformed lines skipped (LoadOptions.skip_bad)
    char first_skip[512];    // the error of the first skipped line, "" if none
} TaskList;

typedef struct {
    DatasetFormat format;    // DS_AUTO: from the fields of the first record (order: an `id` with a `prompt`
                             // is generic, then humaneval, mbpp, countdown, gsm8k, math, generic)
    bool skip_bad;           // a malformed line is skipped and counted instead of failing the load
} LoadOptions;

// Loads every non-blank line of `path`. A malformed line fails the load with an error naming the file,
// the line number and the field, unless opt->skip_bad. opt may be NULL (auto, strict). Returns 0 or -1.
int tasks_load(TaskList *out, const char *path, const LoadOptions *opt);
void tasks_free(TaskList *l);
// Appends a deep copy of t. Returns 0 or -1.
int tasks_append(TaskList *l, const Task *t);

// Writes one generic record per task: its meta with "id", "prompt" and "answer" set from the task ("answer"
// removed when the task has none), so that tasks_load reads back tasks equal to those whose meta already
// was that record (every synthetic task). Atomic (common/fileio.h); plain JSONL. Returns 0 or -1.
int tasks_write_jsonl(const char *path, const Task *tasks, int n);

// Train/held-out split by a hash of the prompt: a task is held out when the hash, salted, falls below
// `heldout_frac`. It does not depend on file names or order, and duplicate prompts land on the same side,
// so held-out prompts never leak into training. Moves every task of `all` (left empty) into the two lists.
int tasks_split(TaskList *all, double heldout_frac, uint64_t salt, TaskList *train, TaskList *heldout);

// ------------------------------------------------------------------------------------------------
// Deterministic randomness (splitmix64): the same seed gives the same stream on every machine.

uint64_t ds_rng_next(uint64_t *state);
// Uniform in [0, n), unbiased; n >= 1.
uint64_t ds_rng_below(uint64_t *state, uint64_t n);

// ------------------------------------------------------------------------------------------------
// The sampler: epochs over a task list, each a permutation drawn from (seed, epoch) alone, so a cursor
// (epoch, position) restores exactly the sequence a run would have continued with.

typedef struct {
    const Task *tasks;       // (n) borrowed: must outlive the sampler and keep its order
    int n;
    uint64_t seed;
    bool shuffle;            // false: file order every epoch
    uint64_t fingerprint;    // hash of the tasks' ids and prompts: a cursor from other data is refused
    int *order;              // (n) this epoch's permutation of 0..n-1
    long epoch;              // passes started before the current one
    long pos;                // next index into order
} Dataset;

int dataset_init(Dataset *ds, const Task *tasks, int n, uint64_t seed, bool shuffle);
void dataset_free(Dataset *ds);
// The next P tasks; a batch crossing the end of an epoch continues in the next one. Returns 0 or -1.
int dataset_next(Dataset *ds, int P, const Task **out /* (P) */);
// {"epoch", "pos", "seed", "n", "fingerprint"}: NULL (with an error) when out of memory.
cJSON *dataset_cursor_save(const Dataset *ds);
// Continues from a saved cursor; it must come from the same tasks (n, fingerprint) and seed. Returns 0 or -1.
int dataset_cursor_restore(Dataset *ds, const cJSON *cursor);

// ------------------------------------------------------------------------------------------------
// Synthetic tasks for the demo and tests. Each task's meta is its generic record, including "trace": an
// R1-format reference completion for SFT cold start, step by step, that the task's reward scores 1.
//
// arithmetic  "What is 47+85?", answer "132" (math reward). difficulty = digits of each operand (1 to 12;
//             multiplication: a `difficulty`-digit number times one digit 2-9). Subtraction keeps a >= b.
//             The working goes column by column from the least significant digit, one line per column
//             with the carry (or borrow) in and out, so each line is a one-digit fact:
//               <think>\n7+5+0=2 c1\n4+8+1=3 c1\n</think>\n<answer>132</answer>
//             The answer is the final carry, then the line digits from the last line up.
// countdown   "Make 40 from 7, 3, 4 using + - * / once each." meta nums, target (countdown reward),
//             solution. difficulty = how many numbers (2 to 6), each in 1..10*(difficulty-1); the target
//             is a random combination of all of them, so every task is solvable. Trace: one line per
//             operation, then the expression:
//               <think>\n7+3=10\n10*4=40\n</think>\n<answer>(7+3)*4</answer>

typedef struct {
    int n;              // tasks to make
    uint64_t seed;
    int difficulty;
    const char *ops;    // arithmetic: operators to draw from, e.g. "+", "+-*" (NULL = "+")
} SynthOptions;

int synth_arithmetic(TaskList *out, const SynthOptions *o);
int synth_countdown(TaskList *out, const SynthOptions *o);
// By name ("arithmetic", "countdown"), for configs. Returns 0 or -1.
int synth_generate(TaskList *out, const char *kind, const SynthOptions *o);
// The prompt of a countdown task (shared by the loader and the generator), malloc'd; NULL when out of memory.
char *countdown_prompt(const int64_t *nums, int n, int64_t target);
// The reference trace of a task (meta "trace"), or NULL when it has none.
const char *task_trace(const Task *t);
