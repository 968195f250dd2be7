#include "cli/cli.h"
#include "rewards/reward.h"
#include "common/error.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Matches "--name" (value in the next argument) or "--name=value"; returns the value or NULL.
static const char *opt_value(int argc, char **argv, int *i, const char *name, bool *matched, bool *bad) {
    size_t n = strlen(name);
    const char *a = argv[*i];
    *matched = false;
    if (strncmp(a, name, n) != 0) return NULL;
    if (a[n] == '=') { *matched = true; return a + n + 1; }
    if (a[n] != 0) return NULL;
    *matched = true;
    if (*i + 1 >= argc) {
        fprintf(stderr, "option %s needs a value\n", name);
        *bad = true;
        return NULL;
    }
    return argv[++*i];
}

bool cli_str(int argc, char **argv, int *i, const char *name, const char **out, bool *bad) {
    bool m;
    const char *v = opt_value(argc, argv, i, name, &m, bad);
    if (v) *out = v;
    return m;
}

bool cli_int(int argc, char **argv, int *i, const char *name, long *out, bool *bad) {
    bool m;
    const char *v = opt_value(argc, argv, i, name, &m, bad);
    if (!v) return m;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end) {
        fprintf(stderr, "option %s expects an integer, got '%s'\n", name, v);
        *bad = true;
    } else *out = x;
    return true;
}

bool cli_float(int argc, char **argv, int *i, const char *name, double *out, bool *bad) {
    bool m;
    const char *v = opt_value(argc, argv, i, name, &m, bad);
    if (!v) return m;
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end) {
        fprintf(stderr, "option %s expects a number, got '%s'\n", name, v);
        *bad = true;
    } else *out = x;
    return true;
}

bool cli_flag(char **argv, int i, const char *name, bool *out) {
    if (strcmp(argv[i], name) != 0) return false;
    *out = true;
    return true;
}

bool cli_is_help(const char *arg) { return !strcmp(arg, "--help") || !strcmp(arg, "-h"); }

int cli_unknown(const char *cmd, const char *arg, const char *usage) {
    fprintf(stderr, "grpo %s: unknown option or argument '%s'\n\n%s", cmd, arg, usage);
    return 2;
}

int cli_fail(const char *cmd) {
    fprintf(stderr, "grpo %s: %s\n", cmd, grpo_error());
    return 1;
}

void cli_usage_with_rewards(FILE *f, const char *usage_fmt) {
    char names[256] = "";
    const char *const *n = reward_names();
    for (int k = 0; n[k]; k++) {
        strncat(names, k ? ", " : "", sizeof names - strlen(names) - 1);
        strncat(names, n[k], sizeof names - strlen(names) - 1);
    }
    fprintf(f, usage_fmt, names);
}
