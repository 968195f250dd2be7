// Run configs: defaults, a user file merged over them, --set overrides, free-form values, and the typed
// getters; every error must name the source, the full key path and (for types) expected and found.
#include "common/config_tree.h"
#include "common/error.h"
#include "common/fileio.h"
#include "tests/test.h"
#include <stdlib.h>
#include <unistd.h>

static const char *DEFAULTS =
    "{\"model\": null, \"out\": \"runs/x\", \"seed\": 1,"
    " \"rollout\": {\"group_size\": 8, \"temperature\": 1.0, \"stop\": [], \"sampling\": {\"top_p\": 1.0}},"
    " \"rewards\": [{\"name\": \"math\", \"weight\": 1}],"
    " \"dataset\": {\"path\": \"\", \"shuffle\": true, \"options\": {}}}";

static char tmpdir[64];

static const char *put_file(const char *name, const char *text) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    write_file_atomic(path, text, strlen(text));
    return path;
}

// cfg_load with a file holding `user` (NULL: no file) and the given sets; NULL on error.
static cJSON *load(const cJSON *def, const char *user, const char *const *sets, int nsets) {
    grpo_error_clear();
    return cfg_load(def, user ? put_file("run.json", user) : NULL, sets, nsets);
}

static int has(const char *needle) { return strstr(grpo_error(), needle) != NULL; }

static void test_merge(void) {
    cJSON *def = cJSON_Parse(DEFAULTS);
    cJSON *t = load(def, "{\"model\": \"/ckpt\", \"rollout\": {\"group_size\": 4, \"sampling\": {\"top_p\": 0.9}},"
                         " \"rewards\": [{\"name\": \"countdown\", \"score\": 2}, {\"name\": \"format\"}],"
                         " \"dataset\": {\"options\": {\"anything\": [1, {\"x\": null}]}}}", NULL, 0);
    EXPECT(t, "%s", grpo_error());
    int g = 0;
    double tp = 0, temp = 0;
    const char *model = NULL, *name = NULL, *out = NULL;
    bool shuffle = false;
    EXPECT(cfg_int(t, "rollout.group_size", &g) == 0 && g == 4, "group_size %d", g);
    EXPECT(cfg_float(t, "rollout.sampling.top_p", &tp) == 0 && tp == 0.9, "nested merge: top_p %g", tp);
    EXPECT(cfg_float(t, "rollout.temperature", &temp) == 0 && temp == 1.0, "untouched default kept");
    EXPECT(cfg_str(t, "model", &model) == 0 && !strcmp(model, "/ckpt"), "null default takes a string");
    EXPECT(cfg_str(t, "out", &out) == 0 && !strcmp(out, "runs/x"), "default string");
    EXPECT(cfg_bool(t, "dataset.shuffle", &shuffle) == 0 && shuffle, "default bool");
    EXPECT(cfg_str(t, "rewards.1.name", &name) == 0 && !strcmp(name, "format"), "array replaced whole, indexed");
    EXPECT(cJSON_GetArraySize(cfg_get(t, "rewards")) == 2 && cfg_get(t, "dataset.options.anything.1.x"),
           "free-form contents kept");
    cJSON_Delete(t);

    static const struct { const char *user, *want[3]; } bad[] = {
        {"{\"rollout\": {\"grup_size\": 4}}", {"run.json", "\"rollout.grup_size\"", "group_size"}},
        {"{\"modle\": \"/x\"}", {"run.json", "unknown key \"modle\"", "the top level has"}},
        {"{\"rollout\": {\"sampling\": {\"top_k\": 5}}}", {"\"rollout.sampling.top_k\"", "top_p", "run.json"}},
        {"{\"rollout\": {\"group_size\": \"8\"}}", {"rollout.group_size", "expected a number", "got a string"}},
        {"{\"dataset\": {\"shuffle\": 1}}", {"dataset.shuffle", "expected a boolean", "got a number"}},
        {"{\"rollout\": 3}", {"\"rollout\"", "expected an object", "got a number"}},
        {"{\"rewards\": {\"name\": \"math\"}}", {"\"rewards\"", "expected an array", "got an object"}},
        {"{\"dataset\": {\"options\": [1]}}", {"dataset.options", "expected an object", "got an array"}},
        {"{\"out\": null}", {"\"out\"", "expected a string", "got null"}},
        {"[1]", {"run.json", "top level", "got an array"}},
        {"{\"seed\": 1,\n \"out\": }", {"run.json:2:", "not valid JSON", "run.json"}},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        t = load(def, bad[k].user, NULL, 0);
        EXPECT(!t && has(bad[k].want[0]) && has(bad[k].want[1]) && has(bad[k].want[2]), "bad file %zu: %s", k,
               grpo_error());
        cJSON_Delete(t);
    }
    char missing[300];
    snprintf(missing, sizeof missing, "%s/none.json", tmpdir);
    EXPECT(!cfg_load(def, missing, NULL, 0) && has("none.json"), "missing file: %s", grpo_error());
    cJSON_Delete(def);
}

static void test_set(void) {
    cJSON *def = cJSON_Parse(DEFAULTS);
    const char *sets[] = {"rollout.group_size=16", "model=/ckpt/base", "out=123", "rollout.sampling={\"top_p\": 0.5}",
                          "rewards.0.weight=0.25", "rewards.1={\"name\": \"format\"}", "dataset.options.k=[1,2]",
                          "rollout.stop=[\"</answer>\"]", "dataset.shuffle=false", "seed=7"};
    int n = sizeof sets / sizeof *sets;
    cJSON *t = load(def, "{\"rollout\": {\"group_size\": 4}}", sets, n);
    EXPECT(t, "%s", grpo_error());
    int g = 0, seed = 0;
    double w = 0, tp = 0;
    const char *s = NULL;
    bool b = true;
    EXPECT(cfg_int(t, "rollout.group_size", &g) == 0 && g == 16, "--set after the file wins: %d", g);
    EXPECT(cfg_str(t, "model", &s) == 0 && !strcmp(s, "/ckpt/base"), "bare words are strings");
    EXPECT(cfg_str(t, "out", &s) == 0 && !strcmp(s, "123"), "a string key takes the raw text: %s", s ? s : "");
    EXPECT(cfg_float(t, "rollout.sampling.top_p", &tp) == 0 && tp == 0.5, "object value merged");
    EXPECT(cfg_float(t, "rewards.0.weight", &w) == 0 && w == 0.25, "array item key");
    EXPECT(cfg_str(t, "rewards.1.name", &s) == 0 && !strcmp(s, "format"), "array append");
    EXPECT(cJSON_GetArraySize(cfg_get(t, "dataset.options.k")) == 2, "new key in a free-form object");
    EXPECT(cfg_str(t, "rollout.stop.0", &s) == 0 && !strcmp(s, "</answer>"), "array value");
    EXPECT(cfg_bool(t, "dataset.shuffle", &b) == 0 && !b, "bool");
    EXPECT(cfg_int(t, "seed", &seed) == 0 && seed == 7, "int");
    cJSON_Delete(t);

    static const struct { const char *set, *want[3]; } bad[] = {
        {"rollout.grup_size=4", {"--set rollout.grup_size=4", "unknown key \"rollout.grup_size\"", "group_size"}},
        {"rollout.group_size=many", {"rollout.group_size", "expected a number", "got a string"}},
        {"dataset.shuffle=1", {"dataset.shuffle", "expected a boolean", "got a number"}},
        {"rollout.sampling={\"top_k\": 3}", {"rollout.sampling.top_k", "unknown key", "top_p"}},
        {"rewards.5.weight=1", {"rewards.5", "does not exist", "--set"}},
        {"rewards.3={}", {"rewards.3", "1 items", "--set"}},
        {"rewards.x={}", {"rewards.x", "--set", "items"}},
        {"seed.x=1", {"\"seed\" is a number", "no key \"x\"", "--set"}},
        {"rollout.group_size", {"--set rollout.group_size", "key.path=value", "--set"}},
        {"=4", {"key.path=value", "--set", "=4"}},
        {"rollout..x=1", {"empty component", "--set", "rollout..x"}},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        t = load(def, NULL, &bad[k].set, 1);
        EXPECT(!t && has(bad[k].want[0]) && has(bad[k].want[1]) && has(bad[k].want[2]), "bad set %zu: %s", k,
               grpo_error());
        cJSON_Delete(t);
    }
    cJSON_Delete(def);
}

static void test_getters(void) {
    cJSON *t = cJSON_Parse("{\"a\": {\"i\": 3, \"f\": 2.5, \"s\": \"x\", \"b\": true, \"n\": null, \"big\": 1e10,"
                           " \"huge\": 1e300, \"l\": [10, {\"k\": 20}]}}");
    int i = 0;
    int64_t i64 = 0;
    double f = 0;
    const char *s = NULL;
    bool b = false;
    EXPECT(cfg_int(t, "a.i", &i) == 0 && i == 3, "int");
    EXPECT(cfg_float(t, "a.i", &f) == 0 && f == 3, "an int read as float");
    EXPECT(cfg_int(t, "a.l.1.k", &i) == 0 && i == 20, "through an array");
    EXPECT(cfg_int64(t, "a.big", &i64) == 0 && i64 == 10000000000LL, "int64");
    EXPECT(cfg_int(t, "a.big", &i) == -1 && has("a.big") && has("int range"), "%s", grpo_error());
    EXPECT(cfg_int(t, "a.huge", &i) == -1 && has("a.huge") && has("2^53"), "%s", grpo_error());
    EXPECT(cfg_int(t, "a.f", &i) == -1 && has("\"a.f\"") && has("expected an integer") && has("got 2.5"), "%s",
           grpo_error());
    EXPECT(cfg_int(t, "a.s", &i) == -1 && has("\"a.s\"") && has("got a string"), "%s", grpo_error());
    EXPECT(cfg_float(t, "a.b", &f) == -1 && has("\"a.b\"") && has("expected a number, got a boolean"), "%s",
           grpo_error());
    EXPECT(cfg_str(t, "a.n", &s) == -1 && has("\"a.n\"") && has("expected a string, got null"), "%s", grpo_error());
    EXPECT(cfg_bool(t, "a.s", &b) == -1 && has("expected a boolean, got a string"), "%s", grpo_error());
    EXPECT(cfg_bool(t, "a.b", &b) == 0 && b, "bool");
    EXPECT(cfg_str(t, "a.s", &s) == 0 && !strcmp(s, "x"), "str");
    EXPECT(!cfg_get(t, "a.missing") && has("\"a.missing\"") && has("not found"), "%s", grpo_error());
    EXPECT(!cfg_get(t, "a.l.2") && has("\"a.l.2\""), "%s", grpo_error());
    EXPECT(!cfg_get(t, "a.i.x") && has("\"a.i.x\""), "%s", grpo_error());
    cJSON_Delete(t);
    EXPECT(!cfg_load(NULL, NULL, NULL, 0) && has("defaults"), "no defaults: %s", grpo_error());
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/grpo-test-config-tree-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    RUN_TEST(test_merge);
    RUN_TEST(test_set);
    RUN_TEST(test_getters);
    char path[128];
    snprintf(path, sizeof path, "%s/run.json", tmpdir);
    unlink(path);
    rmdir(tmpdir);
    return test_summary();
}
