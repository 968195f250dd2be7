// The `math` reward: options, and the glue from a completion and its task to a verdict.
#include "rewards/math.h"
#include "common/error.h"
#include <stdlib.h>
#include <string.h>

static const char *const extractor_names[MATH_EX_COUNT] = {"boxed", "answer_tag", "hashes", "final_answer",
                                                           "answer_is", "last_number"};

void math_options_default(MathOptions *o) {
    memset(o, 0, sizeof *o);
    for (int k = 0; k < MATH_EX_LAST_NUMBER; k++) o->order[o->norder++] = k;
    o->rel_tol = 1e-6;
}

int math_options_parse(MathOptions *o, const cJSON *opt) {
    static const char *const keys[] = {"extract", "last_number", "rel_tol", NULL};
    math_options_default(o);
    TRY(reward_check_keys(opt, keys));
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(opt, "extract");
    const cJSON *ln = cJSON_GetObjectItemCaseSensitive(opt, "last_number");
    const cJSON *tol = cJSON_GetObjectItemCaseSensitive(opt, "rel_tol");
    if (ex) {
        CHECK(cJSON_IsArray(ex) && cJSON_GetArraySize(ex) >= 1, "option \"extract\": expected a non-empty array of "
              "extractor names (boxed, answer_tag, hashes, final_answer, answer_is, last_number)");
        o->norder = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, ex) {
            int k = 0;
            while (k < MATH_EX_COUNT && !(cJSON_IsString(it) && !strcmp(it->valuestring, extractor_names[k]))) k++;
            CHECK(k < MATH_EX_COUNT, "option \"extract\": unknown extractor %s%s%s (expected boxed, answer_tag, "
                  "hashes, final_answer, answer_is or last_number)", cJSON_IsString(it) ? "\"" : "",
                  cJSON_IsString(it) ? it->valuestring : "(not a string)", cJSON_IsString(it) ? "\"" : "");
            for (int j = 0; j < o->norder; j++)
                CHECK(o->order[j] != k, "option \"extract\": \"%s\" is listed twice", extractor_names[k]);
            o->order[o->norder++] = k;
        }
    }
    if (ln) {
        CHECK(cJSON_IsBool(ln), "option \"last_number\": expected true or false");
        int listed = 0;
        for (int j = 0; j < o->norder; j++) listed |= o->order[j] == MATH_EX_LAST_NUMBER;
        if (cJSON_IsTrue(ln) && !listed) o->order[o->norder++] = MATH_EX_LAST_NUMBER;
        CHECK(cJSON_IsTrue(ln) || !listed, "option \"last_number\" is false but \"extract\" lists last_number");
    }
    if (tol) {
        CHECK(cJSON_IsNumber(tol) && tol->valuedouble >= 0 && tol->valuedouble < 1,
              "option \"rel_tol\": expected a number in [0, 1)");
        o->rel_tol = tol->valuedouble;
    }
    return 0;
}

// Copies at most cap - 1 bytes, never ending inside a UTF-8 sequence.
static void copy_trunc(char *dst, size_t cap, const char *src, size_t n) {
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80) n--;
    }
    memcpy(dst, src, n);
    dst[n] = 0;
}

static void set_detail(RewardDetail *d, const char *verdict, const char *ex, size_t nex, float found, float ok) {
    if (!d) return;
    memset(d, 0, sizeof *d);
    snprintf(d->verdict, sizeof d->verdict, "%s", verdict);
    copy_trunc(d->extracted, sizeof d->extracted, ex, nex);
    d->nparts = 2;
    snprintf(d->parts[0].name, sizeof d->parts[0].name, "answered");
    d->parts[0].value = found;
    snprintf(d->parts[1].name, sizeof d->parts[1].name, "correct");
    d->parts[1].value = ok;
}

static float math_score(const Reward *self, const Task *task, const char *completion, RewardDetail *out) {
    const MathOptions *o = self->state;
    size_t ps, pl, gs, gl;
    if (!completion || math_extract(completion, strlen(completion), o, &ps, &pl) < 0) {
        set_detail(out, "no_answer", "", 0, 0, 0);
        return 0;
    }
    const char *gold = task && task->answer ? task->answer : "";
    int ok = math_extract_gold(gold, strlen(gold), &gs, &gl) == 0 &&
             math_equal(gold + gs, gl, completion + ps, pl, o);
    set_detail(out, ok ? "correct" : "wrong", completion + ps, pl, 1, (float)ok);
    return (float)ok;
}

static int math_check_task(const Reward *self, const Task *task) {
    CHECK(task->answer && task->answer[0], "field \"answer\": the math reward needs the gold answer (a string or "
          "number)");
    return 0;
}

static void math_destroy(Reward *self) { free(self->state); }

int reward_math_create(Reward *out, const cJSON *options) {
    MathOptions *o = grpo_malloc(sizeof *o, "math reward options");
    if (!o) return -1;
    if (math_options_parse(o, options) != 0) {
        free(o);
        return -1;
    }
    out->score = math_score;
    out->destroy = math_destroy;
    out->check_task = math_check_task;
    out->state = o;
    return 0;
}
