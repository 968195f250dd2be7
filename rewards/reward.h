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
};

// Creates the reward registered under `name` with its options (the config entry; NULL = defaults).
// Unknown names or options are errors naming the key. Returns 0 or -1 (see grpo_error()).
int reward_create(Reward *out, const char *name, const cJSON *options);
void reward_destroy(Reward *r);
void reward_score_batch(const Reward *r, const Task *const *tasks, const char *const *completions, int n,
                        float *rewards /* (n) */, RewardDetail *details /* (n) or NULL */);
// The registered names, NULL-terminated, for --help texts.
const char *const *reward_names(void);
