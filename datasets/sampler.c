// Deterministic randomness, the train/held-out split, and the epoch sampler with its resumable cursor.
#include "datasets/dataset.h"
#include "common/error.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// splitmix64 (Steele, Lea, Flood 2014): one add and a bijective mix per draw, good enough for shuffles and
// generators, and any 64-bit seed (0 included) is a fine state.
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t ds_rng_next(uint64_t *state) { return mix64(*state += 0x9e3779b97f4a7c15ULL); }

// Lemire's multiply-shift with rejection of the biased low range.
uint64_t ds_rng_below(uint64_t *state, uint64_t n) {
    unsigned __int128 m = (unsigned __int128)ds_rng_next(state) * n;
    if ((uint64_t)m < n) {
        uint64_t threshold = -n % n;
        while ((uint64_t)m < threshold) m = (unsigned __int128)ds_rng_next(state) * n;
    }
    return (uint64_t)(m >> 64);
}

static uint64_t fnv1a(uint64_t h, const char *s) {
    for (; s && *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return (h ^ 0xff) * 0x100000001b3ULL;  // a terminator, so ("ab","c") and ("a","bc") differ
}

#define FNV_BASIS 0xcbf29ce484222325ULL

int tasks_split(TaskList *all, double heldout_frac, uint64_t salt, TaskList *train, TaskList *heldout) {
    memset(train, 0, sizeof *train);
    memset(heldout, 0, sizeof *heldout);
    CHECK(heldout_frac >= 0 && heldout_frac <= 1, "held-out fraction %g: expected 0 to 1", heldout_frac);
    for (int i = 0; i < all->n; i++) {
        double u = (double)(mix64(fnv1a(FNV_BASIS, all->tasks[i].prompt) ^ salt) >> 11) * 0x1p-53;
        if (tasks_append(u < heldout_frac ? heldout : train, &all->tasks[i]) != 0) {
            tasks_free(train);
            tasks_free(heldout);
            return -1;
        }
    }
    train->format = heldout->format = all->format;
    tasks_free(all);
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// The sampler

// Epoch e's order depends on (seed, e) only: a fresh Fisher-Yates shuffle of 0..n-1.
static void epoch_order(Dataset *ds) {
    for (int i = 0; i < ds->n; i++) ds->order[i] = i;
    if (!ds->shuffle) return;
    uint64_t st = mix64(ds->seed ^ mix64((uint64_t)ds->epoch + 0x632be59bd9b4e019ULL));
    for (int i = ds->n - 1; i > 0; i--) {
        int j = (int)ds_rng_below(&st, (uint64_t)i + 1), t = ds->order[i];
        ds->order[i] = ds->order[j];
        ds->order[j] = t;
    }
}

int dataset_init(Dataset *ds, const Task *tasks, int n, uint64_t seed, bool shuffle) {
    memset(ds, 0, sizeof *ds);
    CHECK(tasks && n > 0, "dataset: no tasks to sample from");
    if (!(ds->order = grpo_malloc(sizeof *ds->order * (size_t)n, "dataset order"))) return -1;
    ds->tasks = tasks, ds->n = n, ds->seed = seed, ds->shuffle = shuffle;
    ds->fingerprint = FNV_BASIS;
    for (int i = 0; i < n; i++) ds->fingerprint = fnv1a(fnv1a(ds->fingerprint, tasks[i].id), tasks[i].prompt);
    epoch_order(ds);
    return 0;
}

void dataset_free(Dataset *ds) {
    free(ds->order);
    memset(ds, 0, sizeof *ds);
}

int dataset_next(Dataset *ds, int P, const Task **out) {
    CHECK(ds->order, "dataset_next: sampler not initialised");
    CHECK(P >= 0, "dataset_next: batch size %d", P);
    for (int i = 0; i < P; i++) {
        if (ds->pos == ds->n) {
            ds->epoch++, ds->pos = 0;
            epoch_order(ds);
        }
        out[i] = &ds->tasks[ds->order[ds->pos++]];
    }
    return 0;
}

// 64-bit values as hex strings: a JSON number (a double) holds only 53 bits.
cJSON *dataset_cursor_save(const Dataset *ds) {
    char seed[24], fp[24];
    snprintf(seed, sizeof seed, "%016" PRIx64, ds->seed);
    snprintf(fp, sizeof fp, "%016" PRIx64, ds->fingerprint);
    cJSON *c = cJSON_CreateObject();
    if (!c || !cJSON_AddNumberToObject(c, "epoch", (double)ds->epoch) ||
        !cJSON_AddNumberToObject(c, "pos", (double)ds->pos) || !cJSON_AddStringToObject(c, "seed", seed) ||
        !cJSON_AddNumberToObject(c, "n", ds->n) || !cJSON_AddStringToObject(c, "fingerprint", fp) ||
        !cJSON_AddBoolToObject(c, "shuffle", ds->shuffle)) {
        cJSON_Delete(c);
        ERR("out of memory saving the dataset cursor");
        return NULL;
    }
    return c;
}

static int cursor_hex(const cJSON *c, const char *key, uint64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
    char *end = NULL;
    if (cJSON_IsString(v)) *out = strtoull(v->valuestring, &end, 16);
    CHECK(end && end != v->valuestring && !*end, "dataset cursor: field \"%s\": expected a hex string", key);
    return 0;
}

static int cursor_long(const cJSON *c, const char *key, long lo, long hi, long *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
    CHECK(cJSON_IsNumber(v) && v->valuedouble >= (double)lo && v->valuedouble <= (double)hi &&
          v->valuedouble == (double)(long)v->valuedouble,
          "dataset cursor: field \"%s\": expected an integer from %ld to %ld", key, lo, hi);
    *out = (long)v->valuedouble;
    return 0;
}

int dataset_cursor_restore(Dataset *ds, const cJSON *c) {
    uint64_t seed = 0, fp = 0;
    long epoch = 0, pos = 0, n = 0;
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(c, "shuffle");
    CHECK(cJSON_IsObject(c), "dataset cursor: expected an object");
    TRY(cursor_long(c, "n", 1, 2147483647L, &n));
    TRY(cursor_long(c, "epoch", 0, 1L << 52, &epoch));
    TRY(cursor_long(c, "pos", 0, n, &pos));
    TRY(cursor_hex(c, "seed", &seed));
    TRY(cursor_hex(c, "fingerprint", &fp));
    CHECK(cJSON_IsBool(sh), "dataset cursor: field \"shuffle\": expected a boolean");
    CHECK(n == ds->n, "dataset cursor: saved for %ld tasks, the data set has %d", n, ds->n);
    CHECK(fp == ds->fingerprint, "dataset cursor: saved for other tasks (fingerprint %016" PRIx64 ", the data set's "
          "is %016" PRIx64 "): same count, different ids or prompts", fp, ds->fingerprint);
    CHECK(seed == ds->seed && cJSON_IsTrue(sh) == ds->shuffle, "dataset cursor: saved with seed %016" PRIx64
          " shuffle %s, the sampler has seed %016" PRIx64 " shuffle %s", seed, cJSON_IsTrue(sh) ? "on" : "off",
          ds->seed, ds->shuffle ? "on" : "off");
    ds->epoch = epoch, ds->pos = pos;
    epoch_order(ds);
    return 0;
}
