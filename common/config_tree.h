// Run configs (grpo train / sft / distill) as cJSON trees: the command's defaults, the user's JSON file
// merged over them, then `--set key.path=value` overrides, every key and type checked against the
// defaults; then typed getters by path.
//
// The defaults are the schema:
//   - an object with keys: the user's object may use only those keys, each checked recursively;
//   - a number, string or boolean: the user's value must have the same JSON type (whether a number must
//     be an integer is checked by cfg_int when it is read);
//   - free-form, taken whole and checked by whoever reads it: null (any value), {} (an object with any
//     keys, e.g. a reward's options) and any array (any items, e.g. the reward list).
// Paths join keys with '.', array items by index: "rollout.group_size", "rewards.0.weight".
// Errors name the source (the file, or the --set argument), the full key path, and for a wrong type
// what was expected and what was found.
#pragma once
#include <cJSON.h>
#include <stdbool.h>
#include <stdint.h>

// "a string", "a number", "a boolean", "null", "an array", "an object"; "nothing" for NULL.
const char *cfg_type_name(const cJSON *v);
// 0 and *out when v is a number holding an integer of at most 2^53 in size (what a JSON number, a double,
// holds exactly), else -1 (no error recorded).
int cfg_exact_int(const cJSON *v, int64_t *out);

// defaults, then the JSON file at `path` (NULL: none), then each of sets[0..nsets) ("key.path=value").
// Returns a new tree (the caller deletes it), or NULL with an error.
cJSON *cfg_load(const cJSON *defaults, const char *path, const char *const *sets, int nsets);

// Merges `user` (an object) over `tree` (a copy of `defaults`, or of it merged already), checking against
// `defaults`; `source` names the user's side in errors. A free-form value is replaced whole.
// Returns 0 or -1 (tree may be partly merged).
int cfg_merge(cJSON *tree, const cJSON *defaults, const cJSON *user, const char *source);

// One override "key.path=value". The value is JSON when it parses as JSON (4, 0.5, true, null, "x",
// [1,2], {"a":1}) and a string otherwise (a bare word or path); where the default is a string, the raw text
// is taken even if it parses as something else (--set name=123). Inside free-form values any key may be
// set or added and array items replaced (index < length) or appended (index = length). Returns 0 or -1.
int cfg_set(cJSON *tree, const cJSON *defaults, const char *assignment);

// The value at `path`, or NULL with an error naming the path.
const cJSON *cfg_get(const cJSON *tree, const char *path);
// Typed reads; the error names the path, what was expected and what was found. Return 0 or -1.
int cfg_int(const cJSON *tree, const char *path, int *out);
int cfg_int64(const cJSON *tree, const char *path, int64_t *out);  // |value| <= 2^53 (exact in JSON)
int cfg_float(const cJSON *tree, const char *path, double *out);
int cfg_f32(const cJSON *tree, const char *path, float *out);    // cfg_float narrowed to float
int cfg_str(const cJSON *tree, const char *path, const char **out); // points into the tree
int cfg_bool(const cJSON *tree, const char *path, bool *out);
