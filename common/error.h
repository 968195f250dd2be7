// Errors in grpo.c: library code never exits. A failing function records a message (file:line of the
// check, then what went wrong and what was expected) and returns -1 (or NULL); the CLI prints
// grpo_error() and exits non-zero.
#pragma once
#include <stdio.h>

// Records the message for this thread and returns -1 so that `return ERR(...)` reads naturally.
int grpo_errorf(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
// Prefixes the current message with more context ("loading x.safetensors: " + old message).
int grpo_error_context(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *grpo_error(void);
void grpo_error_clear(void);

#define ERR(...) grpo_errorf(__FILE__, __LINE__, __VA_ARGS__)
// CHECK(cond, fmt, ...): on failure record the message and return -1 from the calling function.
#define CHECK(cond, ...) do { if (!(cond)) return ERR(__VA_ARGS__); } while (0)
// TRY(call): propagate an error that `call` already recorded.
#define TRY(call) do { if ((call) != 0) return -1; } while (0)

// Allocation that reports what it was for; returns NULL after recording an error.
void *grpo_malloc(size_t n, const char *what);
void *grpo_calloc(size_t n, size_t size, const char *what);
