// A task: one prompt with what is needed to reward a completion of it.
#pragma once
#include <cJSON.h>

typedef struct {
    char *id;      // stable identifier ("gsm8k/test/17", "HumanEval/0")
    char *prompt;  // the problem text, before any prompt template
    char *answer;  // gold answer text for math-style tasks, NULL otherwise
    cJSON *meta;   // the source record's fields (tests, entry_point, nums, target, ...), owned by the task
} Task;
