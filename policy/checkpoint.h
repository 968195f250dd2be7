// Checkpoints: a model directory (config.json, model.safetensors, tokenizer.json) that Hugging Face
// transformers and `grpo init` share, plus optimizer.safetensors (AdamW moments, step) for training.
// A checkpoint directory is written beside its final name and renamed into place, so a crash leaves
// the previous checkpoint whole.
#pragma once
#include "policy/adamw.h"
#include "policy/model.h"
#include <cJSON.h>
#include <stdbool.h>

// Writes DIR/config.json + DIR/model.safetensors (+ DIR/tokenizer.json copied from tokenizer_src when
// given, + DIR/optimizer.safetensors when opt is given, + DIR/trainer_state.json when state is given).
int checkpoint_save(const char *dir, const Model *m, const AdamW *opt, const char *tokenizer_src,
                    const cJSON *state, bool bf16);
// Loads the weights into a built model and, when opt is given, the optimizer moments and step
// (a directory without optimizer.safetensors is an error then). state_out (may be NULL) receives the
// parsed trainer_state.json or NULL when there is none.
int checkpoint_load(const char *dir, Model *m, AdamW *opt, cJSON **state_out);
