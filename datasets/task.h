// A task: one prompt with what is needed to reward a completion of it.
#pragma once
#include <cJSON.h>

typedef struct {
    char *id;      // stable identifier ("gsm8k_test/17": file stem and line; "HumanEval/0": the record's own)
    char *prompt;  // the problem text, before any prompt template
    char *answer;  // gold answer text for math-style tasks, NULL otherwise
    cJSON *meta;   // the source record's fields (tests, entry_point, nums, target, ...), owned by the task
} Task;

// Frees the task's fields (not the struct) and zeroes it; a zeroed task is fine.
void task_free(Task *t);
// Deep copy into *dst. Returns 0, or -1 (dst zeroed) when out of memory.
int task_clone(Task *dst, const Task *src);
// 1 when id, prompt, answer and meta are equal (NULL equals NULL only), else 0.
int task_equal(const Task *a, const Task *b);
