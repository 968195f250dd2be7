// The GRPO trainer (`grpo train`): the step loop of DESIGN section 2. Each step samples P tasks, rolls out
// G completions of each from the current policy, scores them with the run's rewards, turns the rewards
// into group-relative advantages, updates the policy for mu inner epochs over minibatches (clipped
// surrogate + beta * KL to a frozen reference), updates the router bias, writes the step and every
// episode to OUT/run.db in one transaction, and checkpoints every save_every steps.
//
// Resume: OUT/step-N holds the weights, AdamW state and trainer_state.json (step, data cursor, run id,
// reference identity); every random number of step s derives from (seed, s), so a resumed run repeats
// exactly what the uninterrupted one would have done. Steps the database holds past the checkpoint are
// deleted and done again.
#pragma once
#include <cJSON.h>
#include <stdbool.h>

// The run config's defaults, which are also its schema (common/config_tree.h): every key a config may
// hold, with its default value.
cJSON *train_defaults(void);
// Loads defaults <- the JSON file at path (NULL: none) <- the --set overrides, and checks every value
// (names, ranges, the dataset, the rewards) before any work. Returns the tree or NULL with an error.
cJSON *train_config_load(const char *path, const char *const *sets, int nsets);

typedef struct {
    int steps_done;            // steps this call ran
    long long run_id;          // the run's id in the database
    double reward_first, reward_last; // mean reward of the first and the last step this call ran
    char final_checkpoint[4096]; // OUT/step-N of the last step
} TrainResult;

// Runs the config's steps into out_dir (created). Without resume, out_dir must not hold a run already.
// Returns 0 or -1.
int train_run(const cJSON *cfg, const char *out_dir, bool resume, TrainResult *res);
