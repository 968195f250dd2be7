// The sub-commands of ./grpo (one file each under cli/) and the small option parser they share.
// A command returns 0 on success, 1 on a failure (after printing grpo_error()), 2 on a usage error;
// only main() in grpo.c turns that into the process exit status.
#pragma once
#include <stdbool.h>
#include <stdio.h>

typedef int (*CliCommand)(int argc, char **argv); // argv[0] is the command name

int cmd_init(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_sft(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_distill(int argc, char **argv);

// Option parsing for `--name value`, `--name=value` and `--flag`. Each returns true when argv[*i]
// matched (advancing *i past a separate value); a missing value prints an error and sets *bad.
bool cli_str(int argc, char **argv, int *i, const char *name, const char **out, bool *bad);
bool cli_int(int argc, char **argv, int *i, const char *name, long *out, bool *bad);
bool cli_float(int argc, char **argv, int *i, const char *name, double *out, bool *bad);
bool cli_flag(char **argv, int i, const char *name, bool *out);
bool cli_is_help(const char *arg);
// Prints "grpo CMD: unknown option ARG" plus the usage and returns 2.
int cli_unknown(const char *cmd, const char *arg, const char *usage);
// Prints a usage text whose one %s is the list of registered rewards ("math, format, ...").
void cli_usage_with_rewards(FILE *f, const char *usage_fmt);
// Prints "grpo CMD: <grpo_error()>" and returns 1.
int cli_fail(const char *cmd);
