// Rewards: every rule-based reward behind one interface, created by name from a run config entry
// {"name": ..., "weight": ..., ...options}. A RewardSet sums weighted components and keeps each part.
#pragma once
#include "datasets/task.h"
#include <cJSON.h>

#define REWARD_MAX_PARTS 8

typedef struct {
    char extracted[256];   // the answer/program extracted from the completion (truncated), "" if none
    char verdict[32];      // short machine-readable outcome: "correct", "wrong", "no_answer", "passed", "timeout", ...
    int nparts;            // named sub-scores (for logging), e.g. {"format", 1.0}
    struct { char name[32]; float value; } parts[REWARD_MAX_PARTS];
} RewardDetail;

typedef struct Reward Reward;
struct Reward {
    char name[32];
    // Scores one completion of one task; must never crash or hang on any input. `out` may be NULL.
    float (*score)(const Reward *self, const Task *task, const char *completion, RewardDetail *out);
    // Optional: scores n completions at once (the code reward runs them on its worker pool).
    // NULL means reward_score_batch calls `score` in a loop.
    void (*score_batch)(const Reward *self, const Task *const *tasks, const char *const *completions, int n,
                        float *rewards /* (n) */, RewardDetail *details /* (n) or NULL */);
    void (*destroy)(Reward *self);  // frees `state`
    void *state;                    // the reward's parsed options
    // Optional: checks that a task carries what this reward reads (math: `answer`; countdown: `nums`,
    // `target`), so a bad data line is reported with the field instead of scoring 0. Returns 0 or -1.
    int (*check_task)(const Reward *self, const Task *task);
};

// Creates the reward registered under `name` with its options (the config entry; NULL = defaults).
// Unknown names or options are errors naming the key. Returns 0 or -1 (see grpo_error()).
int reward_create(Reward *out, const char *name, const cJSON *options);
void reward_destroy(Reward *r);
void reward_score_batch(const Reward *r, const Task *const *tasks, const char *const *completions, int n,
                        float *rewards /* (n) */, RewardDetail *details /* (n) or NULL */);
// The registered names, NULL-terminated, for --help texts.
const char *const *reward_names(void);

// For reward implementations: fails naming the first key of `options` that is neither "name", "weight"
// nor in `allowed` (NULL-terminated). NULL options are fine. Returns 0 or -1.
int reward_check_keys(const cJSON *options, const char *const *allowed);

// A run config's reward list [{"name": .., "weight": .., ...options}, ...]: total = sum_k weight_k * r_k,
// and each component's unweighted reward is kept (and logged) under its name.
typedef struct {
    int n;
    Reward comp[REWARD_MAX_PARTS];
    float weight[REWARD_MAX_PARTS];
} RewardSet;

// Builds every component (weight defaults to 1). Errors name the entry index and key. Returns 0 or -1.
int reward_set_create(RewardSet *s, const cJSON *list);
void reward_set_destroy(RewardSet *s);
// Runs every component's check_task. Returns 0 or -1.
int reward_set_check_task(const RewardSet *s, const Task *task);
// Scores n completions with every component (each through reward_score_batch). details[i].parts are the
// components' unweighted rewards by name; extracted/verdict come from the first component that set them.
// Returns 0, or -1 when the scratch memory cannot be allocated.
int reward_set_score_batch(const RewardSet *s, const Task *const *tasks, const char *const *completions, int n,
                           float *total /* (n) */, float *components /* (s->n, n) or NULL */,
                           RewardDetail *details /* (n) or NULL */);
