// The GRPO loss gradient against central finite differences, with rl/grpo.c compiled here retyped to
// double (tests/double_model.h), for every aggregation, KL estimator and importance level on a random
// minibatch where some tokens clip and some do not.
#include "double_model.h"
#include "rl/grpo.c"
#include "tests/test.h"

enum { S = 5, TMAX = 7 };

static uint64_t rng = 88172645463325252ull;
static double frand(void) { // xorshift64, uniform in [0, 1)
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static int offsets[S + 1];
static double logp[S * TMAX], old[S * TMAX], ref[S * TMAX], mask[S * TMAX], adv[S];

// Sequences of 1..TMAX tokens, a prompt token first (masked), one sequence fully masked; log-ratios in
// [-0.5, 0.5] so that an eps of 0.2 clips a good share of tokens on both sides.
static int make_batch(void) {
    int n = 0;
    for (int s = 0; s < S; s++) {
        offsets[s] = n;
        int len = 2 + (int)(frand() * (TMAX - 1));
        for (int t = 0; t < len; t++, n++) {
            old[n] = -0.2 - 3 * frand();
            logp[n] = old[n] + (frand() - 0.5);
            ref[n] = logp[n] + 1.5 * (frand() - 0.5);
            mask[n] = t > 0 && s != 2;
        }
        adv[s] = s % 2 ? -0.3 - frand() : 0.3 + frand();
    }
    offsets[S] = n;
    return n;
}

static double loss_at(const GrpoBatch *b, const GrpoLossOpts *o, double *scratch) {
    GrpoLossStats st;
    return grpo_loss(&st, scratch, b, o) == 0 ? st.loss : NAN;
}

static void check(const char *label, GrpoAgg agg, GrpoImportance imp, GrpoKl kl, double beta, double eps) {
    int N = make_batch();
    GrpoBatch b = {.S = S, .offsets = offsets, .logp = logp, .old_logp = old, .ref_logp = ref, .mask = mask,
                   .adv = adv, .total_tokens = 40};
    GrpoLossOpts o = grpo_loss_defaults();
    o.agg = agg;
    o.importance = imp;
    o.kl = kl;
    o.beta = beta;
    o.epsilon_low = o.epsilon_high = eps;
    o.max_len = TMAX;
    o.loss_scale = 0.5;
    double g[S * TMAX], scratch[S * TMAX];
    GrpoLossStats st;
    if (grpo_loss(&st, g, &b, &o) != 0) {
        EXPECT(0, "%s: %s", label, grpo_error());
        return;
    }
    const double h = 1e-6;
    double worst = 0;
    int nonzero = 0;
    for (int t = 0; t < N; t++) {
        double keep = logp[t];
        logp[t] = keep + h;
        double up = loss_at(&b, &o, scratch);
        logp[t] = keep - h;
        double down = loss_at(&b, &o, scratch);
        logp[t] = keep;
        double fd = (up - down) / (2 * h), err = fabs(fd - g[t]) / (1e-3 + fabs(fd));
        if (err > worst) worst = err;
        nonzero += g[t] != 0;
        EXPECT(err < 1e-6, "%s token %d: analytic %.10g vs finite difference %.10g", label, t, g[t], fd);
    }
    EXPECT(nonzero > 0, "%s: some gradient", label);
    if (eps < 0.5) EXPECT(st.n_clip_low + st.n_clip_high > 0, "%s: something clips", label);
    if (imp == GRPO_IS_TOKEN) EXPECT(st.n_clip_low + st.n_clip_high < st.n_units, "%s: something does not", label);
    fprintf(stderr, "  %-28s worst relative gap %.2e, %d/%d units clipped\n", label, worst,
            st.n_clip_low + st.n_clip_high, st.n_units);
}

static void test_token_level(void) {
    static const char *const aggs[] = {"grpo", "bnpo", "dapo", "dr_grpo"}, *const kls[] = {"k1", "k2", "k3"};
    for (int a = 0; a < 4; a++)
        for (int k = 0; k < 3; k++) {
            char label[64];
            snprintf(label, sizeof label, "token %s %s", aggs[a], kls[k]);
            check(label, (GrpoAgg)a, GRPO_IS_TOKEN, (GrpoKl)k, 0.05, 0.2);
        }
}

static void test_sequence_level(void) {
    static const char *const aggs[] = {"grpo", "bnpo", "dapo", "dr_grpo"};
    for (int a = 0; a < 4; a++) {
        char label[64];
        snprintf(label, sizeof label, "sequence %s k3", aggs[a]);
        // eps 0.05 clips some sequences (their mean log-ratio is smaller than a token's), eps 0.9 none
        check(label, (GrpoAgg)a, GRPO_IS_SEQUENCE, GRPO_KL_K3, 0.05, 0.05);
        snprintf(label, sizeof label, "sequence %s k3 unclipped", aggs[a]);
        check(label, (GrpoAgg)a, GRPO_IS_SEQUENCE, GRPO_KL_K3, 0.05, 0.9);
    }
}

int main(void) {
    RUN_TEST(test_token_level);
    RUN_TEST(test_sequence_level);
    return test_summary();
}
