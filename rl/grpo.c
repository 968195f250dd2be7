#include "rl/grpo.h"
#include "common/error.h"
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

GrpoLossOpts grpo_loss_defaults(void) {
    return (GrpoLossOpts){.epsilon_low = 0.2f, .epsilon_high = 0.2f, .importance = GRPO_IS_TOKEN, .beta = 0.0f,
                          .kl = GRPO_KL_K3, .agg = GRPO_AGG_DAPO, .max_len = 0, .loss_scale = 1.0f};
}

int grpo_loss_opts_check(const GrpoLossOpts *o) {
    CHECK(o->epsilon_low >= 0 && o->epsilon_low < 1, "epsilon_low is %g, expected 0 <= epsilon_low < 1",
          o->epsilon_low);
    CHECK(o->epsilon_high >= 0, "epsilon_high is %g, expected >= 0", o->epsilon_high);
    CHECK(o->beta >= 0, "beta is %g, expected >= 0", o->beta);
    CHECK(o->agg != GRPO_AGG_DR_GRPO || o->max_len > 0,
          "the dr_grpo aggregation divides by max_len, which is %d (set it to max_new_tokens)", o->max_len);
    CHECK(o->loss_scale > 0, "loss_scale is %g, expected > 0", o->loss_scale);
    return 0;
}

float grpo_accum_scale(GrpoAgg agg, int accum_steps) {
    return agg == GRPO_AGG_DAPO || accum_steps <= 1 ? 1.0f : 1.0f / (float)accum_steps;
}

// Index of `name` in `names` (n entries), or -1 with an error listing them under `what`.
static int find_name(const char *name, const char *what, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (name && !strcmp(name, names[i])) return i;
    char known[256] = "";
    for (int i = 0; i < n; i++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "", names[i]);
    return ERR("unknown %s '%s' (known: %s)", what, name ? name : "(null)", known);
}

int grpo_adv_mode_parse(GrpoAdvMode *out, const char *name) {
    static const char *const names[] = {"group", "none", "batch", "rloo"};
    int k = find_name(name, "advantage mode", names, 4);
    if (k < 0) return -1;
    *out = (GrpoAdvMode)k;
    return 0;
}

int grpo_importance_parse(GrpoImportance *out, const char *name) {
    static const char *const names[] = {"token", "sequence"};
    int k = find_name(name, "importance sampling level", names, 2);
    if (k < 0) return -1;
    *out = (GrpoImportance)k;
    return 0;
}

int grpo_kl_parse(GrpoKl *out, const char *name) {
    static const char *const names[] = {"k1", "k2", "k3"};
    int k = find_name(name, "KL estimator", names, 3);
    if (k < 0) return -1;
    *out = (GrpoKl)k;
    return 0;
}

int grpo_agg_parse(GrpoAgg *out, const char *name) {
    static const char *const names[] = {"grpo", "bnpo", "dapo", "dr_grpo"};
    int k = find_name(name, "loss aggregation", names, 4);
    if (k < 0) return -1;
    *out = (GrpoAgg)k;
    return 0;
}

static bool all_equal(const float *r /* (G) */, int G) {
    for (int i = 1; i < G; i++)
        if (r[i] != r[0]) return false;
    return true;
}

int grpo_groups_with_signal(uint8_t *keep, const float *rewards, int P, int G) {
    int kept = 0;
    for (int p = 0; p < P; p++) {
        keep[p] = !all_equal(rewards + (size_t)p * G, G);
        kept += keep[p];
    }
    return kept;
}

int grpo_advantages(float *adv, const float *rewards, int P, int G, GrpoAdvMode mode, float eps) {
    if (P <= 0 || G <= 0) return 0;
    // batch mode scales by the spread of every reward, so one group's noise level does not set its own scale
    double batch_std = 0;
    if (mode == GRPO_ADV_BATCH && P * G > 1) {
        double sum = 0, ss = 0;
        for (int i = 0; i < P * G; i++) sum += rewards[i];
        double mean = sum / (P * G);
        for (int i = 0; i < P * G; i++) ss += (rewards[i] - mean) * (rewards[i] - mean);
        batch_std = sqrt(ss / (P * G - 1));
    }
    int zero = 0;
    for (int p = 0; p < P; p++) {
        const float *r = rewards + (size_t)p * G;
        float *a = adv + (size_t)p * G;
        // exactly 0, not (r - mean) rounding to a tiny value that (std + eps) would then scale up
        if (all_equal(r, G)) {
            memset(a, 0, sizeof(float) * G);
            zero++;
            continue;
        }
        double sum = 0, ss = 0;
        for (int i = 0; i < G; i++) sum += r[i];
        double mean = sum / G;
        for (int i = 0; i < G; i++) ss += (r[i] - mean) * (r[i] - mean);
        double std = sqrt(ss / (G - 1));
        for (int i = 0; i < G; i++) {
            double d = r[i] - mean;
            switch (mode) {
            case GRPO_ADV_GROUP: a[i] = (float)(d / (std + eps)); break;
            case GRPO_ADV_NONE: a[i] = (float)d; break;
            case GRPO_ADV_BATCH: a[i] = (float)(d / (batch_std + eps)); break;
            // r_i - (sum - r_i)/(G-1) == G/(G-1) * (r_i - mean)
            case GRPO_ADV_RLOO: a[i] = (float)(r[i] - (sum - r[i]) / (G - 1)); break;
            }
        }
    }
    return zero;
}

static float clampf(float x, float lim) { return x < -lim ? -lim : x > lim ? lim : x; }

// Per-token KL estimate and its derivative by logp, for d = ref - logp.
static float kl_term(float *dkl, float d, GrpoKl kind) {
    switch (kind) {
    case GRPO_KL_K1: *dkl = 1.0f; return -d;
    case GRPO_KL_K2: *dkl = -d; return 0.5f * d * d;
    case GRPO_KL_K3: break;
    }
    float dc = clampf(d, GRPO_KL_LOG_CLAMP), e = expf(dc);
    *dkl = fabsf(d) < GRPO_KL_LOG_CLAMP ? 1.0f - e : 0.0f;
    return e - dc - 1.0f;
}

// Where the clip binds (see GrpoLossStats): -1 low, +1 high, 0 the unclipped term is the minimum.
static int clip_side(float r, float A, const GrpoLossOpts *o) {
    if (A < 0 && r < 1.0f - o->epsilon_low) return -1;
    if (A > 0 && r > 1.0f + o->epsilon_high) return 1;
    return 0;
}

int grpo_loss(GrpoLossStats *stats, float *dlogp, const GrpoBatch *b, const GrpoLossOpts *o) {
    TRY(grpo_loss_opts_check(o));
    CHECK(b->S >= 0 && b->offsets && b->offsets[0] >= 0, "bad minibatch: %d sequences, offsets[0] %d", b->S,
          b->offsets ? b->offsets[0] : -1);
    CHECK(b->ref_logp || o->beta == 0, "beta is %g but no reference log-probs were given", o->beta);
    int n_tokens = 0;
    for (int s = 0; s < b->S; s++) {
        CHECK(b->offsets[s + 1] >= b->offsets[s], "offsets decrease at sequence %d (%d -> %d)", s, b->offsets[s],
              b->offsets[s + 1]);
        for (int t = b->offsets[s]; t < b->offsets[s + 1]; t++) n_tokens += b->mask[t] != 0;
    }
    memset(dlogp, 0, sizeof(float) * b->offsets[b->S]);
    const float *old = b->old_logp ? b->old_logp : b->logp;
    int dapo_norm = b->total_tokens > 0 ? b->total_tokens : n_tokens;
    double loss = 0, kl_sum = 0, ratio_sum = 0;
    int n_seqs = 0, n_low = 0, n_high = 0;
    for (int s = 0; s < b->S; s++) {
        int t0 = b->offsets[s], t1 = b->offsets[s + 1], n_s = 0;
        for (int t = t0; t < t1; t++) n_s += b->mask[t] != 0;
        if (n_s == 0) continue;
        n_seqs++;
        // weight of each of this sequence's tokens in the aggregate
        double w = 0;
        switch (o->agg) {
        case GRPO_AGG_GRPO: w = 1.0 / ((double)b->S * n_s); break;
        case GRPO_AGG_BNPO: w = 1.0 / n_tokens; break;
        case GRPO_AGG_DAPO: w = 1.0 / dapo_norm; break;
        case GRPO_AGG_DR_GRPO: w = 1.0 / ((double)b->S * o->max_len); break;
        }
        w *= o->loss_scale;
        float A = b->adv[s];
        if (o->importance == GRPO_IS_SEQUENCE) {
            double lr = 0;
            for (int t = t0; t < t1; t++)
                if (b->mask[t] != 0) lr += clampf(b->logp[t] - old[t], GRPO_LOG_RATIO_CLAMP);
            float r = expf((float)(lr / n_s));
            int side = clip_side(r, A, o);
            float rc = side < 0 ? 1.0f - o->epsilon_low : side > 0 ? 1.0f + o->epsilon_high : r;
            // each token carries the sequence's term, so the sequence weighs w * n_s
            loss -= w * n_s * rc * A;
            // d r / d logp_t = r / n_s, times the sequence weight w * n_s
            float g = side ? 0.0f : (float)(-w * A * r);
            for (int t = t0; t < t1; t++)
                if (b->mask[t] != 0 && fabsf(b->logp[t] - old[t]) < GRPO_LOG_RATIO_CLAMP) dlogp[t] = g;
            ratio_sum += r;
            n_low += side < 0;
            n_high += side > 0;
        } else {
            for (int t = t0; t < t1; t++) {
                if (b->mask[t] == 0) continue;
                float x = b->logp[t] - old[t], r = expf(clampf(x, GRPO_LOG_RATIO_CLAMP));
                int side = clip_side(r, A, o);
                float rc = side < 0 ? 1.0f - o->epsilon_low : side > 0 ? 1.0f + o->epsilon_high : r;
                loss -= w * rc * A;
                if (!side && fabsf(x) < GRPO_LOG_RATIO_CLAMP) dlogp[t] = (float)(-w * A * r);
                ratio_sum += r;
                n_low += side < 0;
                n_high += side > 0;
            }
        }
        if (!b->ref_logp) continue;
        for (int t = t0; t < t1; t++) {
            if (b->mask[t] == 0) continue;
            float dkl, kl = kl_term(&dkl, b->ref_logp[t] - b->logp[t], o->kl);
            kl_sum += kl;
            loss += w * o->beta * kl;
            dlogp[t] += (float)(w * o->beta * dkl);
        }
    }
    int units = o->importance == GRPO_IS_SEQUENCE ? n_seqs : n_tokens;
    double inv = units ? 1.0 / units : 0.0;
    *stats = (GrpoLossStats){.loss = (float)loss,
                             .kl = n_tokens && b->ref_logp ? (float)(kl_sum / n_tokens) : 0.0f,
                             .clip_low = (float)(n_low * inv),
                             .clip_high = (float)(n_high * inv),
                             .clip = (float)((n_low + n_high) * inv),
                             .ratio_mean = (float)(ratio_sum * inv),
                             .n_tokens = n_tokens,
                             .n_seqs = n_seqs,
                             .n_units = units,
                             .n_clip_low = n_low,
                             .n_clip_high = n_high};
    return 0;
}

float grpo_overlong_penalty(int len, int max_len, int cache_len) {
    int c = cache_len > 0 ? cache_len : 0;
    if (len <= max_len - c) return 0.0f;
    if (len <= max_len) return (float)((max_len - c) - len) / (float)c;
    return -1.0f;
}

void grpo_mask_sequences(float *mask, const int *offsets, const uint8_t *drop, int S) {
    for (int s = 0; s < S; s++)
        if (drop[s])
            for (int t = offsets[s]; t < offsets[s + 1]; t++) mask[t] = 0.0f;
}
