// Runs the built ./grpo from the CLI tests, and the files they pass it and read back.
#pragma once
#include <stdbool.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

// Runs `grpo ARGS` in dir; returns the exit status with stdout in out (stderr too when err is set).
// Output past cap is read and dropped, so a long-winded command is never killed by a closed pipe.
static inline int cli_run(const char *dir, const char *args, bool err, char *out, size_t cap) {
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

// Writes text to dir/name.
static inline void cli_write(const char *dir, const char *name, const char *text) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

// Reads dir/name into buf (up to cap - 1 bytes; "" when it is missing).
static inline void cli_read(const char *dir, const char *name, char *buf, size_t cap) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = 0;
    if (f) fclose(f);
}

static inline int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}
