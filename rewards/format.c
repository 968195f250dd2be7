// The `format` reward: a configured PCRE2 pattern, JIT-compiled once, matched with limits.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "rewards/format.h"
#include "common/error.h"
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    pcre2_code *re;
    pcre2_match_context *mctx;
    float score;
    int count;         // 0: one match scores `score`; N > 0: `score` * min(matches, N) / N
} Format;

static void set_detail(RewardDetail *d, const char *verdict, float value) {
    if (!d) return;
    memset(d, 0, sizeof *d);
    snprintf(d->verdict, sizeof d->verdict, "%s", verdict);
    d->nparts = 1;
    snprintf(d->parts[0].name, sizeof d->parts[0].name, "format");
    d->parts[0].value = value;
}

static float format_score(const Reward *self, const Task *task, const char *completion, RewardDetail *out) {
    const Format *f = self->state;
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md || !completion) {
        pcre2_match_data_free(md);
        set_detail(out, md ? "no_match" : "limit", 0);
        return 0;
    }
    size_t len = strlen(completion), at = 0;
    int matches = 0, rc;
    // Non-overlapping matches, counted up to `count` (one is enough without it).
    while ((rc = pcre2_match(f->re, (PCRE2_SPTR)completion, len, at, 0, md, f->mctx)) >= 0) {
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        matches++;
        if (matches >= (f->count ? f->count : 1)) break;
        at = ov[1] > ov[0] ? ov[1] : ov[1] + 1; // an empty match moves on by one byte
        if (at > len) break;
    }
    pcre2_match_data_free(md);
    if (matches) {
        float frac = f->count ? (float)matches / f->count : 1.0f;
        set_detail(out, "match", frac);
        return f->score * frac;
    }
    set_detail(out, rc == PCRE2_ERROR_NOMATCH ? "no_match" : "limit", 0);
    return 0;
}

static void format_destroy(Reward *self) {
    Format *f = self->state;
    if (!f) return;
    pcre2_code_free(f->re);
    pcre2_match_context_free(f->mctx);
    free(f);
}

int reward_format_create(Reward *out, const cJSON *options) {
    static const char *const keys[] = {"pattern", "score", "count", NULL};
    TRY(reward_check_keys(options, keys));
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(options, "pattern");
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(options, "score");
    const cJSON *cnt = cJSON_GetObjectItemCaseSensitive(options, "count");
    CHECK(!cnt || (cJSON_IsNumber(cnt) && cnt->valuedouble >= 0 && cnt->valuedouble <= 1e6 &&
                   cnt->valuedouble == (int)cnt->valuedouble),
          "option \"count\": expected an integer >= 0 (0 = one match is enough)");
    CHECK(!pat || cJSON_IsString(pat), "option \"pattern\": expected a string (a PCRE2 regular expression)");
    CHECK(!sc || cJSON_IsNumber(sc), "option \"score\": expected a number");
    const char *pattern = pat ? pat->valuestring : FORMAT_DEFAULT_PATTERN;
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_DOTALL, &err, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return ERR("option \"pattern\": %s at offset %zu of \"%s\"", (char *)msg, (size_t)off, pattern);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    Format *f = grpo_calloc(1, sizeof *f, "format reward");
    pcre2_match_context *mctx = pcre2_match_context_create(NULL);
    if (!f || !mctx) {
        pcre2_code_free(re);
        pcre2_match_context_free(mctx);
        free(f);
        return f ? ERR("out of memory for a PCRE2 match context") : -1;
    }
    // Bounds for pathological patterns on long completions: a few ms of backtracking at most.
    pcre2_set_match_limit(mctx, 1000000);
    pcre2_set_depth_limit(mctx, 10000);
    pcre2_set_heap_limit(mctx, 20000);
    f->re = re, f->mctx = mctx, f->score = sc ? (float)sc->valuedouble : 1.0f, f->count = cnt ? cnt->valueint : 0;
    out->score = format_score;
    out->destroy = format_destroy;
    out->state = f;
    return 0;
}
