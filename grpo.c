// grpo: the command-line entry point. Dispatches to the sub-commands in cli/ and is the only place
// that turns their results into an exit status.
#include "cli/cli.h"
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    CliCommand run;
    const char *summary;
} Command;

static const Command commands[] = {
    {"init", cmd_init, "write a random-initialised model directory from a model config"},
    {"tokenize", cmd_tokenize, "text -> token ids (or back with --decode) with a tokenizer.json"},
    {"score", cmd_score, "score completions (JSONL) with a reward: math, format, countdown, code"},
    {"generate", cmd_generate, "sample G completions per prompt (JSONL) from a model: the rollout engine"},
    {"eval", cmd_eval, "evaluate a model on a data set (JSONL): pass@1, pass@k, maj@k, mean reward; run.db"},
    {"train", cmd_train, "GRPO training from a run config: rollouts, rewards, updates, run.db, checkpoints"},
    {"demo", cmd_demo, "the embedded default: SFT cold start then GRPO on a tiny MoE/MLA model, on CPU, in minutes"},
    {"sft", cmd_sft, "supervised fine-tuning on (prompt, completion) pairs: completion-only loss, checkpoints"},
    {"distill", cmd_distill, "teacher traces -> reward filter -> student SFT (optional logit KD), held-out before/after"},
    {"report", cmd_report, "a run database -> one self-contained HTML report (curves, evals, episodes)"},
};
#define NCOMMANDS (int)(sizeof commands / sizeof commands[0])

static void usage(FILE *f) {
    fprintf(f, "grpo.c: GRPO post-training for DeepSeek-V3-architecture models\n\n"
               "usage: grpo <command> [options]   (grpo <command> --help for each)\n\ncommands:\n");
    for (int i = 0; i < NCOMMANDS; i++) fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2 || cli_is_help(argv[1]) || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (int i = 0; i < NCOMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "grpo: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
