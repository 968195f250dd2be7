// The GRPO math against numbers worked out by hand (the comments show the arithmetic): each advantage
// mode, zero-variance groups, the loss, its gradient and every metric for each aggregation, KL
// estimator and importance level, the clamps, and DAPO's shaping. tests/test_grpo_fd.c checks the
// gradient against finite differences.
#include "common/error.h"
#include "rl/grpo.h"
#include "tests/test.h"

#define TOL 2e-6

static void expect_all_near(const float *got, const double *want, int n, const char *what) {
    for (int i = 0; i < n; i++) {
        char label[96];
        snprintf(label, sizeof label, "%s[%d]", what, i);
        EXPECT_NEAR(got[i], want[i], TOL, label);
    }
}

// Three groups of four: {1,0,0,0} (mean 1/4, Bessel std 1/2), {2,2,2,2} (no signal), {3,1,0,0} (mean 1,
// std sqrt 2). Over all twelve rewards: mean 13/12, std sqrt((27 - 169/12) / 11) = 1.08362467.
static const float REWARDS[12] = {1, 0, 0, 0, 2, 2, 2, 2, 3, 1, 0, 0};

static void check_advantages(GrpoAdvMode mode, const double want[12], const char *what) {
    float adv[12];
    EXPECT(grpo_advantages(adv, REWARDS, 3, 4, mode, GRPO_ADV_EPS) == 1, "%s: one zero-variance group", what);
    expect_all_near(adv, want, 12, what);
    for (int i = 4; i < 8; i++) EXPECT(adv[i] == 0.0f, "%s: the flat group is exactly 0", what);
}

static void test_advantages(void) {
    // 0.75 / (0.5 + 1e-4), -0.25 / 0.5001; 2 / (sqrt 2 + 1e-4), 0, -1 / (sqrt 2 + 1e-4)
    const double group[12] = {1.49970006, -0.49990002, -0.49990002, -0.49990002, 0, 0, 0, 0,
                              1.41411357, 0, -0.70705678, -0.70705678};
    check_advantages(GRPO_ADV_GROUP, group, "group");
    const double none[12] = {0.75, -0.25, -0.25, -0.25, 0, 0, 0, 0, 2, 0, -1, -1};
    check_advantages(GRPO_ADV_NONE, none, "none");
    // (r - group mean) / (1.08362467 + 1e-4)
    const double batch[12] = {0.69205770, -0.23068590, -0.23068590, -0.23068590, 0, 0, 0, 0,
                              1.84548719, 0, -0.92274360, -0.92274360};
    check_advantages(GRPO_ADV_BATCH, batch, "batch");
    // 1 - 0, 0 - 1/3; 3 - 1/3, 1 - 3/3, 0 - 4/3
    const double rloo[12] = {1, -1.0 / 3, -1.0 / 3, -1.0 / 3, 0, 0, 0, 0, 8.0 / 3, 0, -4.0 / 3, -4.0 / 3};
    check_advantages(GRPO_ADV_RLOO, rloo, "rloo");
    float adv[12];
    EXPECT(grpo_advantages(adv, REWARDS, 3, 4, GRPO_ADV_GROUP, 0.5f) == 1, "eps 0.5");
    EXPECT_NEAR(adv[0], 0.75, TOL, "0.75 / (0.5 + 0.5)");
}

static void test_zero_variance(void) {
    const float r[6] = {0.5f, 0.5f, 1, 0, 0.1f, 0.1f};
    float adv[6];
    for (int mode = GRPO_ADV_GROUP; mode <= GRPO_ADV_RLOO; mode++) {
        EXPECT(grpo_advantages(adv, r, 3, 2, (GrpoAdvMode)mode, GRPO_ADV_EPS) == 2, "mode %d: two flat groups", mode);
        EXPECT(adv[0] == 0 && adv[1] == 0 && adv[4] == 0 && adv[5] == 0, "mode %d: flat groups are exactly 0", mode);
        EXPECT(adv[2] > 0 && adv[3] < 0, "mode %d: the informative group keeps its sign", mode);
    }
    EXPECT(grpo_advantages(adv, r, 6, 1, GRPO_ADV_GROUP, GRPO_ADV_EPS) == 6, "G = 1: every group is flat");
    for (int i = 0; i < 6; i++) EXPECT(adv[i] == 0, "G = 1 gives 0");
    uint8_t keep[3];
    EXPECT(grpo_groups_with_signal(keep, r, 3, 2) == 1 && !keep[0] && keep[1] && !keep[2], "only group 1 kept");
}

// The loss fixture: two sequences. Sequence 0 = tokens 0..3 (token 0 is prompt, mask 0), A = 1;
// sequence 1 = tokens 4..5, A = -0.5. Ratios r = exp(logp - old) of the five active tokens are
// 1.1, 1.5, 0.9 | 0.5, 1.3, and d = ref - logp is 0, ln 2, -0.2 | -ln 2, 0.1. With eps 0.2:
//   t1: A=1,  r=1.1 inside            -> l = -1.1,            dl/dlogp = -A r = -1.1
//   t2: A=1,  r=1.5 > 1.2, binds high -> l = -1.2,            0
//   t3: A=1,  r=0.9 (min is r A)      -> l = -0.9,            -0.9
//   t4: A=-.5,r=0.5 < 0.8, binds low  -> l = -(0.8 * -0.5) = 0.4, 0
//   t5: A=-.5,r=1.3 (min is r A)      -> l = 0.65,            -A r = 0.65
// k3 = e^d - d - 1: 0, 0.30685282, 0.01873075, 0.19314718, 0.00517092; dk3/dlogp = 1 - e^d:
// 0, -1, 0.18126925, 0.5, -0.10517092.
static const int OFFSETS[3] = {0, 4, 6};
static const float MASK[6] = {0, 1, 1, 1, 1, 1};
static const float ADV[2] = {1.0f, -0.5f};
static float OLD[6] = {-0.3f, -1.0f, -2.0f, -0.7f, -0.5f, -1.5f};
static float LOGP[6], REF[6];

static void make_fixture(void) {
    const float ratio[6] = {1, 1.1f, 1.5f, 0.9f, 0.5f, 1.3f};
    const float d[6] = {0, 0, logf(2), -0.2f, -logf(2), 0.1f};
    for (int t = 0; t < 6; t++) {
        LOGP[t] = OLD[t] + logf(ratio[t]);
        REF[t] = LOGP[t] + d[t];
    }
}

static GrpoBatch fixture(void) {
    return (GrpoBatch){.S = 2, .offsets = OFFSETS, .logp = LOGP, .old_logp = OLD, .ref_logp = REF, .mask = MASK,
                       .adv = ADV};
}

static GrpoLossOpts opts(GrpoAgg agg, GrpoKl kl, float beta) {
    GrpoLossOpts o = grpo_loss_defaults();
    o.agg = agg;
    o.kl = kl;
    o.beta = beta;
    o.max_len = 4;
    return o;
}

// Runs the loss on the fixture and checks loss, dlogp (tokens 0..5) and the KL metric.
static void check_loss(const char *what, const GrpoBatch *b, const GrpoLossOpts *o, double loss,
                       const double dlogp[6], double kl) {
    GrpoLossStats st;
    float g[6];
    if (grpo_loss(&st, g, b, o) != 0) {
        EXPECT(0, "%s: %s", what, grpo_error());
        return;
    }
    char label[96];
    snprintf(label, sizeof label, "%s loss", what);
    EXPECT_NEAR(st.loss, loss, TOL, label);
    snprintf(label, sizeof label, "%s dlogp", what);
    expect_all_near(g, dlogp, 6, label);
    snprintf(label, sizeof label, "%s kl", what);
    EXPECT_NEAR(st.kl, kl, TOL, label);
}

static void test_loss_token_metrics(void) {
    GrpoBatch b = fixture();
    GrpoLossOpts o = opts(GRPO_AGG_GRPO, GRPO_KL_K3, 0.1f);
    GrpoLossStats st;
    float g[6];
    EXPECT(grpo_loss(&st, g, &b, &o) == 0, "%s", grpo_error());
    EXPECT(st.n_tokens == 5 && st.n_seqs == 2 && st.n_units == 5, "counts %d %d %d", st.n_tokens, st.n_seqs,
           st.n_units);
    EXPECT(st.n_clip_low == 1 && st.n_clip_high == 1, "t4 clipped low, t2 high");
    EXPECT_NEAR(st.clip_low, 0.2, TOL, "clip_low 1/5");
    EXPECT_NEAR(st.clip_high, 0.2, TOL, "clip_high 1/5");
    EXPECT_NEAR(st.clip, 0.4, TOL, "clip 2/5");
    EXPECT_NEAR(st.ratio_mean, 1.06, TOL, "(1.1 + 1.5 + 0.9 + 0.5 + 1.3) / 5");
    // the same ratios with a wider clip: nothing binds
    o.epsilon_low = 0.6f;
    o.epsilon_high = 0.6f;
    EXPECT(grpo_loss(&st, g, &b, &o) == 0 && st.n_clip_low == 0 && st.n_clip_high == 0 && st.clip == 0,
           "eps 0.6 clips nothing");
    // clip-higher: eps_high 0.55 lets t2 (r = 1.5 < 1.55) through while the low side still binds
    o.epsilon_low = 0.2f;
    o.epsilon_high = 0.55f;
    EXPECT(grpo_loss(&st, g, &b, &o) == 0 && st.n_clip_low == 1 && st.n_clip_high == 0, "eps_high 0.55");
    EXPECT_NEAR(g[2], (-1.5 - 0.1) / 6, TOL, "t2 now has gradient (-A r + 0.1 dk3) w");
}

// Per-token l = pg + 0.1 k3: -1.1, -1.16931472, -0.89812693 | 0.41931472, 0.65051709.
// Sequence sums -3.16744165 | 1.06983181.
static void test_loss_aggregations(void) {
    GrpoBatch b = fixture();
    const double kl3 = 0.10478033; // (0 + 0.30685282 + 0.01873075 + 0.19314718 + 0.00517092) / 5
    GrpoLossOpts o = opts(GRPO_AGG_GRPO, GRPO_KL_K3, 0.1f);
    // (1/2) (-3.16744165 / 3 + 1.06983181 / 2); token weights 1/6 | 1/4 times (dpg + 0.1 dk3)
    const double g_grpo[6] = {0, -1.1 / 6, -0.1 / 6, (-0.9 + 0.018126925) / 6, 0.05 / 4, (0.65 - 0.010517092) / 4};
    check_loss("grpo", &b, &o, -0.26044899, g_grpo, kl3);
    // sum / 5 tokens
    o.agg = GRPO_AGG_BNPO;
    const double g_bnpo[6] = {0, -1.1 / 5, -0.1 / 5, (-0.9 + 0.018126925) / 5, 0.05 / 5, (0.65 - 0.010517092) / 5};
    check_loss("bnpo", &b, &o, -0.41952197, g_bnpo, kl3);
    o.agg = GRPO_AGG_DAPO;
    check_loss("dapo, local count", &b, &o, -0.41952197, g_bnpo, kl3);
    // sum / 10: the accumulated step has 10 active tokens
    b.total_tokens = 10;
    const double g_dapo[6] = {0, -1.1 / 10, -0.1 / 10, (-0.9 + 0.018126925) / 10, 0.05 / 10,
                              (0.65 - 0.010517092) / 10};
    check_loss("dapo, step count", &b, &o, -0.20976098, g_dapo, kl3);
    b.total_tokens = 0;
    // sum / (2 sequences * max_len 4)
    o.agg = GRPO_AGG_DR_GRPO;
    const double g_dr[6] = {0, -1.1 / 8, -0.1 / 8, (-0.9 + 0.018126925) / 8, 0.05 / 8, (0.65 - 0.010517092) / 8};
    check_loss("dr_grpo", &b, &o, -0.26220123, g_dr, kl3);
    // loss_scale halves both
    o.loss_scale = 0.5f;
    double g_half[6];
    for (int t = 0; t < 6; t++) g_half[t] = g_dr[t] / 2;
    check_loss("dr_grpo, loss_scale 1/2", &b, &o, -0.26220123 / 2, g_half, kl3);
}

// k1 = -d = 0, -0.69314718, 0.2 | 0.69314718, -0.1 (mean 0.02), dk1 = 1.
// k2 = d^2/2 = 0, 0.24022651, 0.02 | 0.24022651, 0.005 (mean 0.10109060), dk2 = -d.
static void test_loss_kl_estimators(void) {
    GrpoBatch b = fixture();
    GrpoLossOpts o = opts(GRPO_AGG_GRPO, GRPO_KL_K1, 0.1f);
    const double g1[6] = {0, (-1.1 + 0.1) / 6, 0.1 / 6, (-0.9 + 0.1) / 6, 0.1 / 4, (0.65 + 0.1) / 4};
    check_loss("k1", &b, &o, -0.26422377, g1, 0.02);
    o.kl = GRPO_KL_K2;
    const double g2[6] = {0, -1.1 / 6, -0.069314718 / 6, (-0.9 + 0.02) / 6, 0.069314718 / 4, (0.65 - 0.01) / 4};
    check_loss("k2", &b, &o, -0.26036556, g2, 0.10109060);
}

static void test_loss_beta_zero(void) {
    GrpoBatch b = fixture();
    GrpoLossOpts o = opts(GRPO_AGG_GRPO, GRPO_KL_K3, 0.0f);
    // (1/2) ((-1.1 - 1.2 - 0.9) / 3 + (0.4 + 0.65) / 2); the KL is still reported
    const double g[6] = {0, -1.1 / 6, 0, -0.9 / 6, 0, 0.65 / 4};
    check_loss("beta 0 with ref", &b, &o, -0.27083333, g, 0.10478033);
    b.ref_logp = NULL;
    check_loss("beta 0 without ref", &b, &o, -0.27083333, g, 0);
    o.beta = 0.1f;
    GrpoLossStats st;
    float dl[6];
    EXPECT(grpo_loss(&st, dl, &b, &o) == -1 && strstr(grpo_error(), "reference"), "beta > 0 needs ref: %s",
           grpo_error());
}

static void test_loss_on_policy(void) {
    GrpoBatch b = fixture();
    b.old_logp = NULL;
    b.ref_logp = NULL;
    GrpoLossOpts o = opts(GRPO_AGG_BNPO, GRPO_KL_K3, 0.0f);
    GrpoLossStats st;
    float g[6];
    EXPECT(grpo_loss(&st, g, &b, &o) == 0, "%s", grpo_error());
    // r = 1 everywhere: loss = -(3 * 1 + 2 * -0.5) / 5, dlogp = -A / 5
    EXPECT_NEAR(st.loss, -0.4, TOL, "on-policy loss");
    EXPECT_NEAR(g[1], -0.2, TOL, "on-policy dlogp, A = 1");
    EXPECT_NEAR(g[5], 0.1, TOL, "on-policy dlogp, A = -0.5");
    EXPECT(st.ratio_mean == 1 && st.clip == 0, "ratio 1, nothing clipped");
}

// GSPO on the fixture: s0 = (1.1 * 1.5 * 0.9)^(1/3) = 1.14088574, s1 = (0.5 * 1.3)^(1/2) = 0.80622577.
static void test_loss_sequence(void) {
    GrpoBatch b = fixture();
    GrpoLossOpts o = opts(GRPO_AGG_GRPO, GRPO_KL_K3, 0.0f);
    o.importance = GRPO_IS_SEQUENCE;
    // eps 0.2: neither binds. loss = (1/2)(-s0 * 1 - s1 * -0.5); dlogp = -A s / n_s * (1/2) per active token
    const double g[6] = {0, -0.19014762, -0.19014762, -0.19014762, 0.10077822, 0.10077822};
    check_loss("gspo grpo", &b, &o, -0.36888643, g, 0.10478033);
    GrpoLossStats st;
    float dl[6];
    EXPECT(grpo_loss(&st, dl, &b, &o) == 0 && st.n_units == 2 && st.clip == 0, "two units, none clipped");
    EXPECT_NEAR(st.ratio_mean, 0.97355576, TOL, "(s0 + s1) / 2");
    // dapo: each active token carries its sequence's term: (3 * -s0 + 2 * 0.5 s1) / 5;
    // dlogp = -A s / n_s * (n_s / 5)
    o.agg = GRPO_AGG_DAPO;
    const double gd[6] = {0, -0.22817715, -0.22817715, -0.22817715, 0.08062258, 0.08062258};
    check_loss("gspo dapo", &b, &o, -0.52328629, gd, 0.10478033);
    // eps 0.1: s0 > 1.1 with A > 0 binds high, s1 < 0.9 with A < 0 binds low: (1/2)(-1.1 + 0.45), no gradient
    o.agg = GRPO_AGG_GRPO;
    o.epsilon_low = o.epsilon_high = 0.1f;
    const double g0[6] = {0};
    check_loss("gspo clipped", &b, &o, -0.325, g0, 0.10478033);
    EXPECT(grpo_loss(&st, dl, &b, &o) == 0 && st.n_clip_low == 1 && st.n_clip_high == 1, "one each side");
    EXPECT_NEAR(st.clip_low, 0.5, TOL, "1 of 2 sequences");
    EXPECT_NEAR(st.clip, 1.0, TOL, "both sequences");
    // with beta the KL gradient stays per token: 0.1 * dk3 / 2 / n_s
    o.beta = 0.1f;
    const double gk[6] = {0, 0, -0.1 / 6, 0.018126925 / 6, 0.05 / 4, -0.010517092 / 4};
    check_loss("gspo clipped + k3", &b, &o, -0.325 + 0.1 * (0.32558357 / 6 + 0.19831810 / 4), gk, 0.10478033);
}

static void test_loss_masks(void) {
    GrpoBatch b = fixture();
    float mask[6];
    memcpy(mask, MASK, sizeof mask);
    const uint8_t drop[2] = {0, 1};
    grpo_mask_sequences(mask, OFFSETS, drop, 2);
    EXPECT(mask[3] == 1 && mask[4] == 0 && mask[5] == 0, "sequence 1 masked");
    b.mask = mask;
    b.ref_logp = NULL;
    GrpoLossOpts o = opts(GRPO_AGG_GRPO, GRPO_KL_K3, 0.0f);
    // the masked sequence still counts in grpo's 1/S: (1/2)(-3.2 / 3)
    const double g[6] = {0, -1.1 / 6, 0, -0.9 / 6, 0, 0};
    check_loss("masked truncated", &b, &o, -0.53333333, g, 0);
    GrpoLossStats st;
    float dl[6];
    EXPECT(grpo_loss(&st, dl, &b, &o) == 0 && st.n_seqs == 1 && st.n_tokens == 3, "one sequence, 3 tokens");
    // nothing active at all
    const float none[6] = {0};
    b.mask = none;
    EXPECT(grpo_loss(&st, dl, &b, &o) == 0 && st.loss == 0 && st.n_tokens == 0 && st.clip == 0 && st.kl == 0,
           "an all-masked batch is a zero loss");
}

static void test_loss_clamps(void) {
    // log-ratio 30 (clamped at 20) with A < 0: the unclipped term binds, finite, no gradient
    const int off[2] = {0, 2};
    const float logp[2] = {-1.0f, -1.0f}, old[2] = {-31.0f, -1.5f}, ref[2] = {49.0f, -1.0f}, mask[2] = {1, 1};
    const float adv[1] = {-1.0f};
    GrpoBatch b = {.S = 1, .offsets = off, .logp = logp, .old_logp = old, .ref_logp = ref, .mask = mask, .adv = adv};
    GrpoLossOpts o = opts(GRPO_AGG_BNPO, GRPO_KL_K3, 0.1f);
    GrpoLossStats st;
    float g[2];
    EXPECT(grpo_loss(&st, g, &b, &o) == 0, "%s", grpo_error());
    // token 0: r = e^20 (pg = e^20 / 2), k3 at d = 50 clamped to 10: (e^10 - 11) * 0.1 / 2, no gradient
    // token 1: r = e^0.5 = 1.64872127 > 1.2 with A < 0: pg = 1.64872127 / 2, dlogp = 1.64872127 / 2
    double want = (exp(20.0) + 0.1 * (exp(10.0) - 11) + 1.64872127) / 2;
    EXPECT(isfinite(st.loss), "finite loss");
    EXPECT_NEAR(st.loss, want, 1e-6, "clamped loss");
    EXPECT(g[0] == 0.0f, "clamped token has no gradient: %g", g[0]);
    EXPECT_NEAR(g[1], 1.64872127 / 2, TOL, "token 1 gradient");
}

static void test_options(void) {
    GrpoLossOpts o = grpo_loss_defaults();
    EXPECT(grpo_loss_opts_check(&o) == 0, "defaults are valid");
    EXPECT(o.agg == GRPO_AGG_DAPO && o.kl == GRPO_KL_K3 && o.beta == 0 && o.epsilon_low == 0.2f, "TRL defaults");
    o.agg = GRPO_AGG_DR_GRPO;
    EXPECT(grpo_loss_opts_check(&o) == -1 && strstr(grpo_error(), "max_len"), "dr_grpo needs max_len");
    o = grpo_loss_defaults();
    o.epsilon_low = 1.0f;
    EXPECT(grpo_loss_opts_check(&o) == -1 && strstr(grpo_error(), "epsilon_low"), "eps_low < 1");
    o = grpo_loss_defaults();
    o.beta = -1;
    EXPECT(grpo_loss_opts_check(&o) == -1 && strstr(grpo_error(), "beta"), "beta >= 0");
    EXPECT(grpo_accum_scale(GRPO_AGG_GRPO, 4) == 0.25f && grpo_accum_scale(GRPO_AGG_DAPO, 4) == 1.0f,
           "accumulation scale");
    GrpoAgg a;
    GrpoKl k;
    GrpoImportance im;
    GrpoAdvMode m;
    EXPECT(grpo_agg_parse(&a, "dr_grpo") == 0 && a == GRPO_AGG_DR_GRPO, "dr_grpo");
    EXPECT(grpo_agg_parse(&a, "bnpo") == 0 && a == GRPO_AGG_BNPO, "bnpo");
    EXPECT(grpo_kl_parse(&k, "k2") == 0 && k == GRPO_KL_K2, "k2");
    EXPECT(grpo_importance_parse(&im, "sequence") == 0 && im == GRPO_IS_SEQUENCE, "sequence");
    EXPECT(grpo_adv_mode_parse(&m, "rloo") == 0 && m == GRPO_ADV_RLOO, "rloo");
    EXPECT(grpo_agg_parse(&a, "mean") == -1 && strstr(grpo_error(), "'mean'") && strstr(grpo_error(), "dr_grpo"),
           "unknown names list the known ones: %s", grpo_error());
    EXPECT(grpo_adv_mode_parse(&m, NULL) == -1, "NULL name");

    const int bad_off[3] = {0, 4, 2};
    GrpoBatch b = fixture();
    b.offsets = bad_off;
    GrpoLossStats st;
    float g[6];
    o = grpo_loss_defaults();
    EXPECT(grpo_loss(&st, g, &b, &o) == -1 && strstr(grpo_error(), "offsets"), "decreasing offsets: %s",
           grpo_error());
}

// DAPO: max_len 20, cache 4: 0 up to 16, then (16 - len) / 4, -1 past 20.
static void test_overlong(void) {
    EXPECT(grpo_overlong_penalty(10, 20, 4) == 0, "short");
    EXPECT(grpo_overlong_penalty(16, 20, 4) == 0, "at the start of the cache");
    EXPECT_NEAR(grpo_overlong_penalty(17, 20, 4), -0.25, TOL, "one into the cache");
    EXPECT_NEAR(grpo_overlong_penalty(19, 20, 4), -0.75, TOL, "three into the cache");
    EXPECT_NEAR(grpo_overlong_penalty(20, 20, 4), -1.0, TOL, "at max_len");
    EXPECT(grpo_overlong_penalty(21, 20, 4) == -1, "past max_len");
    EXPECT(grpo_overlong_penalty(20, 20, 0) == 0 && grpo_overlong_penalty(21, 20, 0) == -1, "no cache: a step");
}

int main(void) {
    make_fixture();
    RUN_TEST(test_advantages);
    RUN_TEST(test_zero_variance);
    RUN_TEST(test_loss_token_metrics);
    RUN_TEST(test_loss_aggregations);
    RUN_TEST(test_loss_kl_estimators);
    RUN_TEST(test_loss_beta_zero);
    RUN_TEST(test_loss_on_policy);
    RUN_TEST(test_loss_sequence);
    RUN_TEST(test_loss_masks);
    RUN_TEST(test_loss_clamps);
    RUN_TEST(test_options);
    RUN_TEST(test_overlong);
    return test_summary();
}
