// The run database (SQLite, one file per run directory): runs, one row per step with every metric, every
// episode (prompt, completion, reward, advantage, ...) and evaluation results. The trainer writes it,
// `grpo report` and distillation read it.
//
// Durability: WAL journal with synchronous=FULL. A step's rows are one transaction, so a crash loses at
// most the step in flight, never part of one. NORMAL would already survive a killed process (the WAL
// frames are in the OS cache), but a power loss or kernel crash could then drop the last committed
// steps while the fsynced checkpoint of the same step survives, and a resume would leave a gap; one
// fsync per step costs milliseconds against steps of seconds.
//
// Schema (version 1; other tools read it with plain SQL):
//   meta(key TEXT PRIMARY KEY, value TEXT)   -- schema_version
//   runs(id INTEGER PRIMARY KEY, kind TEXT NOT NULL, started_at TEXT NOT NULL, config_json TEXT, model TEXT,
//        grpo_version TEXT)                  -- kind: grpo | sft | distill | eval; started_at ISO 8601 UTC
//   steps(run_id, step, time REAL NOT NULL (unix seconds), metrics_json TEXT NOT NULL, reward_mean,
//        reward_std, accuracy, kl, clip_frac, entropy, len_mean, len_max, truncated_frac,
//        zero_std_groups INTEGER, loss, lr, grad_norm, rollout_tok_s, train_tok_s, seconds,
//        PRIMARY KEY(run_id, step))
//   episodes(run_id, step, task_id, group_idx, sample_idx, prompt, completion, completion_tokens, reward,
//        reward_parts_json, advantage, finish_reason, logprob_sum, verdict,
//        PRIMARY KEY(run_id, step, group_idx, sample_idx))
//   evals(run_id, step, dataset, metric, value REAL NOT NULL, n INTEGER, time REAL,
//        PRIMARY KEY(run_id, step, dataset, metric))
// A NULL metric column means "not measured at this step".
#pragma once
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#define STORE_SCHEMA_VERSION 1

// sqliteCheck(rc, db, what): unless rc is SQLITE_OK, SQLITE_ROW or SQLITE_DONE, records file:line, what
// was being done, the database file, SQLite's message and a hint, and returns -1 from the caller.
#define sqliteCheck(rc, db, what) do { \
    int sqlite_rc_ = (rc); \
    if (sqlite_rc_ != SQLITE_OK && sqlite_rc_ != SQLITE_ROW && sqlite_rc_ != SQLITE_DONE) \
        return sqlite_fail(__FILE__, __LINE__, sqlite_rc_, (db), (what)); \
    } while (0)
int sqlite_fail(const char *file, int line, int rc, sqlite3 *db, const char *what);

typedef struct Store Store;

// One step's row. Metric fields holding NAN (and zero_std_groups < 0) are stored as NULL; start from
// store_step_init so that whatever the trainer does not set reads as NULL, not as 0.
typedef struct {
    int64_t step;              // 1-based
    double time;               // unix seconds when the step finished; <= 0 = now
    const char *metrics_json;  // a JSON object with every metric of the step by name ("reward/math/mean",
                               // "time/rollout", ...); the columns below repeat the common ones for SQL
    double reward_mean, reward_std, accuracy, kl, clip_frac, entropy, len_mean, len_max, truncated_frac;
    int64_t zero_std_groups;
    double loss, lr, grad_norm, rollout_tok_s, train_tok_s, seconds;
} StepRecord;

// One completion. NULL strings and NAN numbers are stored as NULL.
typedef struct {
    const char *task_id;
    int group_idx, sample_idx;         // group within the step, sample within the group
    const char *prompt;                // the prompt as the policy saw it (template applied)
    const char *completion;
    int completion_tokens;
    double reward;                     // the weighted total
    const char *reward_parts_json;     // each component's unweighted reward by name, a JSON object
    double advantage;
    const char *finish_reason;         // "stop" | "length" | ...
    double logprob_sum;                // sampling policy's log-prob of the completion
    const char *verdict;               // the reward's short outcome ("correct", "wrong", ...)
} EpisodeRecord;

typedef struct {
    const char *dataset, *metric;      // e.g. "gsm8k_test", "pass@1"
    double value;
    int64_t n;                         // how many tasks; < 0 stores NULL
    double time;                       // unix seconds; <= 0 = now
} EvalRecord;

// Opens or creates the database: WAL, synchronous=FULL, a busy timeout, the schema. An existing file must
// carry this schema version. Errors name the file. Returns NULL on error.
Store *store_open(const char *path);
// For readers (report, distillation): no writes, no schema creation; the version is still checked.
Store *store_open_readonly(const char *path);
void store_close(Store *s);
// The connection, for readers' own queries (not for writes: they bypass the checks here).
sqlite3 *store_db(Store *s);

// Starts a run of `kind` (grpo | sft | distill | eval); config_json (a JSON object or NULL), model and
// grpo_version are kept as given. Writes the new id to *run_id. Returns 0 or -1.
int store_begin_run(Store *s, const char *kind, const char *config_json, const char *model,
                    const char *grpo_version, int64_t *run_id);
// The latest run of `kind`, for --resume: *run_id = its id, or 0 when there is none. Returns 0 or -1.
int store_find_run(Store *s, const char *kind, int64_t *run_id);
// The highest step stored for the run, 0 when none. Returns 0 or -1.
int store_last_step(Store *s, int64_t run_id, int64_t *step);

// A StepRecord for `step` with every metric NULL and the time now.
StepRecord store_step_init(int64_t step);
// Writes the step row and its episodes in one transaction: all of them or, on any error, none. A step
// already stored is an error (a resumed run calls store_truncate_after first). Returns 0 or -1.
int store_write_step(Store *s, int64_t run_id, const StepRecord *step, const EpisodeRecord *eps /* (n_eps) */,
                     int n_eps);
// Evaluation results at `step`, in one transaction; a (dataset, metric) already stored for the step is an
// error. Returns 0 or -1.
int store_write_evals(Store *s, int64_t run_id, int64_t step, const EvalRecord *rows /* (n) */, int n);
// Deletes the run's steps, episodes and evals after `step` in one transaction: a resume from the
// checkpoint of `step` then writes the later steps again. Returns 0 or -1.
int store_truncate_after(Store *s, int64_t run_id, int64_t step);

// Episodes for SFT and distillation, in (run, step, group, sample) order. Strings stay valid until the
// next store_episodes_next or store_episodes_close; NULL columns read as NULL / NAN.
typedef struct {
    int64_t run_id, step;
    int group_idx, sample_idx;
    const char *task_id, *prompt, *completion, *finish_reason, *verdict;
    int completion_tokens;
    double reward, advantage;
} EpisodeRow;

typedef struct {
    Store *store;
    sqlite3_stmt *stmt;
} EpisodeCursor;

// Selects the episodes with reward >= min_reward (NULL rewards never match), of run `run_id` or of
// every run when it is 0. Returns 0 or -1.
int store_episodes_open(EpisodeCursor *c, Store *s, int64_t run_id, double min_reward);
// 1 with the next row in *row, 0 at the end, -1 on error.
int store_episodes_next(EpisodeCursor *c, EpisodeRow *row);
void store_episodes_close(EpisodeCursor *c);
