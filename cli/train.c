// grpo train: GRPO from a run config (rl/trainer.h), checkpoints and OUT/run.db in the output directory.
#include "cli/cli.h"
#include "common/error.h"
#include "rl/trainer.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: grpo train CONFIG.json --out DIR [--resume] [--set key.path=value]...\n"
    "\n"
    "GRPO: each step samples rollout.prompts_per_step tasks, G = rollout.group_size completions of each,\n"
    "scores them with the rewards, and updates the policy with group-relative advantages. One line per step\n"
    "on stderr; every step and episode in DIR/run.db; checkpoints DIR/step-N (weights, AdamW, data cursor).\n"
    "  CONFIG        JSON run config (configs/grpo/*.json); every key is listed in the README\n"
    "  --out DIR     output directory\n"
    "  --resume      continue the run in DIR from its latest checkpoint, exactly as if never stopped\n"
    "  --set K=V     override one config value (repeatable), e.g. --set rollout.group_size=4\n"
    "\n"
    "example: grpo train configs/grpo/tiny.json --out runs/tiny --set steps=20\n";

int cmd_train(int argc, char **argv) {
    const char *config = NULL, *out = NULL;
    const char **sets = calloc(argc, sizeof(char *));
    int nsets = 0;
    bool resume = false, bad = false;
    if (!sets) return 1;
    for (int i = 1; i < argc; i++) {
        const char *set;
        if (cli_is_help(argv[i])) { fputs(USAGE, stdout); free(sets); return 0; }
        if (cli_str(argc, argv, &i, "--set", &set, &bad)) { sets[nsets++] = set; continue; }
        if (cli_str(argc, argv, &i, "--out", &out, &bad) || cli_flag(argv, i, "--resume", &resume)) continue;
        if (argv[i][0] != '-' && !config) { config = argv[i]; continue; }
        free(sets);
        return cli_unknown("train", argv[i], USAGE);
    }
    if (bad || !config || !out) {
        if (!bad) fprintf(stderr, "grpo train: CONFIG and --out are required\n\n%s", USAGE);
        free(sets);
        return 2;
    }
    cJSON *cfg = train_config_load(config, sets, nsets);
    free(sets);
    if (!cfg) return cli_fail("train");
    TrainResult res;
    int rc = train_run(cfg, out, resume, &res);
    cJSON_Delete(cfg);
    if (rc != 0) return cli_fail("train");
    fprintf(stderr, "train: %d steps, mean reward %.3f -> %.3f; final checkpoint %s\n", res.steps_done,
            res.reward_first, res.reward_last, res.final_checkpoint);
    return 0;
}
