// Runs the built ./grpo from the CLI tests.
#pragma once
#include <stdbool.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

// Runs `grpo ARGS` in dir; returns the exit status with stdout in out (stderr too when err is set).
// Output past cap is read and dropped, so a long-winded command is never killed by a closed pipe.
static int cli_run(const char *dir, const char *args, bool err, char *out, size_t cap) {
    char cmd[8192], cwd[4096], sink[4096];
    if (!getcwd(cwd, sizeof cwd)) return -1;
    snprintf(cmd, sizeof cmd, "cd %s && %s/grpo %s %s", dir, cwd, args, err ? "2>&1" : "2>/dev/null");
    FILE *p = popen(cmd, "r");
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    while (fread(sink, 1, sizeof sink, p) > 0) {}
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
