// The reward registry and the weighted sum of a run config's reward list.
#include "rewards/reward.h"
#include "common/error.h"
#include "rewards/code.h"
#include "rewards/countdown.h"
#include "rewards/format.h"
#include "rewards/math.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*create)(Reward *out, const cJSON *options);
} RewardEntry;

// One line per reward (`code`, the sandboxed unit-test reward, joins here). Each create fills the fields
// of *out it uses; out is zeroed first and named by reward_create.
static const RewardEntry registry[] = {
    {"math", reward_math_create},
    {"format", reward_format_create},
    {"countdown", reward_countdown_create},
    {"code", reward_code_create},
};
#define NREWARDS (int)(sizeof registry / sizeof registry[0])

const char *const *reward_names(void) {
    static const char *names[NREWARDS + 1];
    for (int i = 0; i < NREWARDS; i++) names[i] = registry[i].name;
    names[NREWARDS] = NULL;
    return names;
}

int reward_create(Reward *out, const char *name, const cJSON *options) {
    memset(out, 0, sizeof *out);
    CHECK(name, "reward: no name given");
    if (options) {
        CHECK(cJSON_IsObject(options), "reward '%s': options must be a JSON object", name);
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(options, "name");
        CHECK(!n || (cJSON_IsString(n) && !strcmp(n->valuestring, name)),
              "reward '%s': options key \"name\" must be the string \"%s\"", name, name);
    }
    for (int i = 0; i < NREWARDS; i++) {
        if (strcmp(registry[i].name, name) != 0) continue;
        if (registry[i].create(out, options) != 0) {
            grpo_error_context("reward '%s'", name);
            memset(out, 0, sizeof *out);
            return -1;
        }
        snprintf(out->name, sizeof out->name, "%s", name);
        return 0;
    }
    char known[256] = "";
    for (int i = 0; i < NREWARDS; i++) {
        strncat(known, i ? ", " : "", sizeof known - strlen(known) - 1);
        strncat(known, registry[i].name, sizeof known - strlen(known) - 1);
    }
    return ERR("unknown reward '%s' (known: %s)", name, known);
}

void reward_destroy(Reward *r) {
    if (r && r->destroy) r->destroy(r);
    if (r) memset(r, 0, sizeof *r);
}

void reward_score_batch(const Reward *r, const Task *const *tasks, const char *const *completions, int n,
                        float *rewards, RewardDetail *details) {
    if (r->score_batch) {
        r->score_batch(r, tasks, completions, n, rewards, details);
        return;
    }
    for (int i = 0; i < n; i++) rewards[i] = r->score(r, tasks[i], completions[i], details ? &details[i] : NULL);
}

int reward_check_keys(const cJSON *options, const char *const *allowed) {
    if (!options) return 0;
    for (const cJSON *it = options->child; it; it = it->next) {
        if (!strcmp(it->string, "name") || !strcmp(it->string, "weight")) continue;
        int ok = 0;
        for (int k = 0; allowed && allowed[k]; k++) ok |= !strcmp(it->string, allowed[k]);
        if (ok) continue;
        char list[256] = "";
        for (int k = 0; allowed && allowed[k]; k++) {
            strncat(list, k ? ", " : "", sizeof list - strlen(list) - 1);
            strncat(list, allowed[k], sizeof list - strlen(list) - 1);
        }
        return ERR("unknown option \"%s\" (expected one of: name, weight%s%s)", it->string, list[0] ? ", " : "",
                   list);
    }
    return 0;
}

int reward_set_create(RewardSet *s, const cJSON *list) {
    memset(s, 0, sizeof *s);
    CHECK(cJSON_IsArray(list), "rewards: expected a JSON array of {\"name\": .., \"weight\": ..} entries");
    int n = cJSON_GetArraySize(list);
    CHECK(n >= 1 && n <= REWARD_MAX_PARTS, "rewards: expected 1 to %d entries, got %d", REWARD_MAX_PARTS, n);
    for (int k = 0; k < n; k++) {
        const cJSON *e = cJSON_GetArrayItem(list, k);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(e, "weight");
        int bad = !cJSON_IsObject(e) || !cJSON_IsString(name) || (w && !cJSON_IsNumber(w));
        if (bad || reward_create(&s->comp[k], name->valuestring, e) != 0) {
            if (bad) ERR("entry must be an object with a string \"name\" and a numeric \"weight\"");
            grpo_error_context("rewards[%d]", k);
            reward_set_destroy(s);
            return -1;
        }
        s->weight[k] = w ? (float)w->valuedouble : 1.0f;
        s->n = k + 1;
    }
    return 0;
}

void reward_set_destroy(RewardSet *s) {
    for (int k = 0; k < s->n; k++) reward_destroy(&s->comp[k]);
    s->n = 0;
}

int reward_set_check_task(const RewardSet *s, const Task *task) {
    for (int k = 0; k < s->n; k++)
        if (s->comp[k].check_task && s->comp[k].check_task(&s->comp[k], task) != 0) return -1;
    return 0;
}

int reward_set_score_batch(const RewardSet *s, const Task *const *tasks, const char *const *completions, int n,
                           float *total, float *components, RewardDetail *details) {
    float *r = grpo_malloc(sizeof(float) * (size_t)n, "reward component scores");
    RewardDetail *d = details ? grpo_calloc((size_t)n, sizeof *d, "reward component details") : NULL;
    if (!r || (details && !d)) {
        free(r);
        return -1;
    }
    if (details) memset(details, 0, sizeof *details * (size_t)n);
    for (int i = 0; i < n; i++) total[i] = 0;
    for (int k = 0; k < s->n; k++) {
        if (d) memset(d, 0, sizeof *d * (size_t)n);
        reward_score_batch(&s->comp[k], tasks, completions, n, r, d);
        for (int i = 0; i < n; i++) {
            total[i] += s->weight[k] * r[i];
            if (components) components[(size_t)k * n + i] = r[i];
            if (!details) continue;
            RewardDetail *o = &details[i];
            snprintf(o->parts[k].name, sizeof o->parts[k].name, "%s", s->comp[k].name);
            o->parts[k].value = r[i];
            o->nparts = k + 1;
            if (!o->extracted[0]) memcpy(o->extracted, d[i].extracted, sizeof o->extracted);
            if (!o->verdict[0]) memcpy(o->verdict, d[i].verdict, sizeof o->verdict);
        }
    }
    free(r);
    free(d);
    return 0;
}
