// Every layer's backward against central finite differences of its forward, in double: the layers'
// source is compiled here retyped to double (tests/double_model.h). Objective J = sum(out * R), R fixed.
#include "test.h"
#include "double_model.h"
#include "policy/layers.c"

static unsigned long long rng = 42;
static float frand(void) { // uniform in [-1, 1)
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) / (double)(1 << 24)) * 2.0f - 1.0f;
}
static float *rand_buf(long n, float scale) {
    float *p = malloc(sizeof(float) * n);
    for (long i = 0; i < n; i++) p[i] = frand() * scale;
    return p;
}
static float *zeros(long n) { return calloc(n, sizeof(float)); }
static double dotd(const float *a, const float *b, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

// Compares the analytic gradient `g` of J(x) with central differences, two ways: along a random
// direction over the whole tensor (large signal, tight tolerance) and at single sampled entries
// (catches misplaced entries).
typedef double (*Objective)(void *ctx);
static void check_grad(const char *what, float *x, const float *g, long n, Objective J, void *ctx) {
    const double eps = 1e-5, tol = 1e-6;
    float *keep = malloc(sizeof(float) * n), *u = malloc(sizeof(float) * n);
    double gu = 0, gmax = 0;
    for (long i = 0; i < n; i++) {
        keep[i] = x[i];
        u[i] = frand();
        gu += (double)g[i] * u[i];
        gmax = fabs(g[i]) > gmax ? fabs(g[i]) : gmax;
    }
    for (long i = 0; i < n; i++) x[i] = keep[i] + eps * u[i];
    double jp = J(ctx);
    for (long i = 0; i < n; i++) x[i] = keep[i] - eps * u[i];
    double jm = J(ctx);
    memcpy(x, keep, sizeof(float) * n);
    double fd = (jp - jm) / (2.0 * eps);
    EXPECT(fabs(fd - gu) <= tol * (fabs(fd) + fabs(gu) + 1e-6), "%s along a random direction: finite difference "
           "%.7g vs backward %.7g", what, fd, gu);
    int samples = n < 24 ? (int)n : 24;
    for (int s = 0; s < samples; s++) {
        long i = n < 24 ? s : (long)((frand() * 0.5f + 0.5f) * (n - 1));
        x[i] = keep[i] + eps;
        jp = J(ctx);
        x[i] = keep[i] - eps;
        jm = J(ctx);
        x[i] = keep[i];
        fd = (jp - jm) / (2.0 * eps);
        double err = fabs(fd - g[i]) / (fabs(fd) + fabs(g[i]) + 1e-6 * gmax + 1e-12);
        EXPECT(err < 10 * tol || fabs(fd - g[i]) < 1e-9, "%s[%ld]: finite difference %.6g vs backward %.6g", what, i, fd, (double)g[i]);
    }
    J(ctx); // leave the forward's outputs at the unperturbed point
    free(keep);
    free(u);
}

// --- matmul
typedef struct { float *out, *inp, *W, *R; int N, IC, OC; } MatmulCtx;
static double matmul_J(void *p) {
    MatmulCtx *c = p;
    matmul_forward(c->out, c->inp, c->W, c->N, c->IC, c->OC);
    return dotd(c->out, c->R, (long)c->N * c->OC);
}
static void test_matmul(void) {
    MatmulCtx c = {.N = 5, .IC = 7, .OC = 3};
    c.inp = rand_buf(35, 1), c.W = rand_buf(21, 1), c.R = rand_buf(15, 1), c.out = zeros(15);
    float *dinp = zeros(35), *dW = zeros(21);
    matmul_backward(dinp, dW, c.R, c.inp, c.W, c.N, c.IC, c.OC);
    check_grad("matmul dinp", c.inp, dinp, 35, matmul_J, &c);
    check_grad("matmul dW", c.W, dW, 21, matmul_J, &c);
    // backward accumulates
    matmul_backward(dinp, dW, c.R, c.inp, c.W, c.N, c.IC, c.OC);
    float *d1 = zeros(21);
    matmul_backward(NULL, d1, c.R, c.inp, c.W, c.N, c.IC, c.OC);
    EXPECT_NEAR(dW[3], 2 * d1[3], 1e-5, "dW accumulates");
    free(c.inp), free(c.W), free(c.R), free(c.out), free(dinp), free(dW), free(d1);
}

// --- rmsnorm on a strided slice
typedef struct { float *out, *rstd, *inp, *w, *R; int N, C, stride; } NormCtx;
static double norm_J(void *p) {
    NormCtx *c = p;
    rmsnorm_forward(c->out, c->rstd, c->inp, c->w, c->N, c->C, c->stride, 1e-6f);
    return dotd(c->out, c->R, (long)c->N * c->C);
}
static void test_rmsnorm(void) {
    NormCtx c = {.N = 4, .C = 6, .stride = 9};
    c.inp = rand_buf(36, 1), c.w = rand_buf(6, 1), c.R = rand_buf(24, 1), c.out = zeros(24), c.rstd = zeros(4);
    norm_J(&c);
    float *dinp = zeros(36), *dw = zeros(6);
    rmsnorm_backward(dinp, dw, c.R, c.inp, c.w, c.rstd, c.N, c.C, c.stride);
    check_grad("rmsnorm dinp", c.inp, dinp, 36, norm_J, &c);
    check_grad("rmsnorm dw", c.w, dw, 6, norm_J, &c);
    for (int n = 0; n < 4; n++)
        for (int j = 6; j < 9; j++) EXPECT(dinp[n * 9 + j] == 0.0f, "rmsnorm wrote outside its slice");
    free(c.inp), free(c.w), free(c.R), free(c.out), free(c.rstd), free(dinp), free(dw);
}

// --- RoPE: rotation preserves norms, relative positions only, backward is the transpose
static void test_rope(void) {
    int T = 16, Dr = 8, half = 4;
    float cs[16 * 4], sn[16 * 4];
    rope_table(cs, sn, T, Dr, 10000.0f, 4.0f, 32.0f, 1.0f, 8, 1.0f);
    float q[8], k[8], q0[8], k0[8];
    for (int i = 0; i < 8; i++) q0[i] = frand(), k0[i] = frand();
    // score between positions (5, 2) equals (9, 6): only the offset matters
    double s[2];
    int pos[2][2] = {{5, 2}, {9, 6}};
    for (int r = 0; r < 2; r++) {
        float bq[16 * 8] = {0}, bk[16 * 8] = {0};
        memcpy(bq + pos[r][0] * 8, q0, sizeof q0);
        memcpy(bk + pos[r][1] * 8, k0, sizeof k0);
        rope_forward(bq, cs, sn, T, T, 1, 8, 0, 0, Dr);
        rope_forward(bk, cs, sn, T, T, 1, 8, 0, 0, Dr);
        memcpy(q, bq + pos[r][0] * 8, sizeof q);
        memcpy(k, bk + pos[r][1] * 8, sizeof k);
        s[r] = dotd(q, k, 8);
    }
    EXPECT_NEAR(s[0], s[1], 1e-5, "rope score depends on the offset only");
    // forward then backward (inverse rotation) restores the input
    float x[16 * 8], y[16 * 8];
    for (int i = 0; i < 16 * 8; i++) x[i] = y[i] = frand();
    rope_forward(y, cs, sn, T, T, 1, 8, 0, 0, Dr);
    rope_backward(y, cs, sn, T, T, 1, 8, 0, 0, Dr);
    for (int i = 0; i < 16 * 8; i++) EXPECT_NEAR(y[i], x[i], 1e-5, "rope backward inverts forward");
    // pair j rotates at inv_freq[j]: position 1, no YaRN -> angle theta^(-2j/Dr)
    rope_table(cs, sn, T, Dr, 10000.0f, 0.0f, 32.0f, 1.0f, 8, 1.0f);
    for (int j = 0; j < half; j++) EXPECT_NEAR(atan2f(sn[half + j], cs[half + j]), pow(10000.0, -2.0 * j / Dr), 1e-5,
                                               "rope frequency");
}

// --- attention
typedef struct { float *out, *att, *q, *k, *v, *R; int B, T, H, Dq, Dv, ldv, hv; } AttCtx;
static double att_J(void *p) {
    AttCtx *c = p;
    attention_forward(c->out, c->att, c->q, c->k, c->v, c->B, c->T, c->H, c->Dq, c->Dv, c->ldv, c->hv, 0.7f);
    return dotd(c->out, c->R, (long)c->B * c->T * c->H * c->Dv);
}
static void test_attention(void) {
    AttCtx c = {.B = 2, .T = 5, .H = 3, .Dq = 4, .Dv = 3};
    c.hv = 5, c.ldv = c.H * c.hv; // v rows interleaved with other data, as MLA's kv_b output is
    int N = c.B * c.T;
    c.q = rand_buf(N * c.H * c.Dq, 1), c.k = rand_buf(N * c.H * c.Dq, 1), c.v = rand_buf(N * c.ldv, 1);
    c.R = rand_buf(N * c.H * c.Dv, 1), c.out = zeros(N * c.H * c.Dv), c.att = zeros(c.B * c.H * c.T * c.T);
    att_J(&c);
    float *dq = zeros(N * c.H * c.Dq), *dk = zeros(N * c.H * c.Dq), *dv = zeros(N * c.ldv);
    float *scr = zeros(c.B * c.H * c.T * c.T);
    attention_backward(dq, dk, dv, scr, c.R, c.att, c.q, c.k, c.v, c.B, c.T, c.H, c.Dq, c.Dv, c.ldv, c.hv, 0.7f);
    check_grad("attention dq", c.q, dq, N * c.H * c.Dq, att_J, &c);
    check_grad("attention dk", c.k, dk, N * c.H * c.Dq, att_J, &c);
    check_grad("attention dv", c.v, dv, N * c.ldv, att_J, &c);
    // causality: the first position's output depends on the first key only
    float keep = c.k[(1 * c.H + 0) * c.Dq];
    float before = (att_J(&c), c.out[0]);
    c.k[(1 * c.H + 0) * c.Dq] += 1.0f;
    float after = (att_J(&c), c.out[0]);
    c.k[(1 * c.H + 0) * c.Dq] = keep;
    EXPECT(before == after, "position 0 must not see position 1");
    free(c.q), free(c.k), free(c.v), free(c.R), free(c.out), free(c.att), free(dq), free(dk), free(dv), free(scr);
}

// --- swiglu
typedef struct { float *h, *g, *u, *R; long n; } SwiCtx;
static double swi_J(void *p) {
    SwiCtx *c = p;
    swiglu_forward(c->h, c->g, c->u, c->n);
    return dotd(c->h, c->R, c->n);
}
static void test_swiglu(void) {
    SwiCtx c = {.n = 20};
    c.g = rand_buf(20, 3), c.u = rand_buf(20, 1), c.R = rand_buf(20, 1), c.h = zeros(20);
    float *dg = zeros(20), *du = zeros(20);
    swiglu_backward(dg, du, c.R, c.g, c.u, c.n);
    check_grad("swiglu dg", c.g, dg, 20, swi_J, &c);
    check_grad("swiglu du", c.u, du, 20, swi_J, &c);
    free(c.g), free(c.u), free(c.R), free(c.h), free(dg), free(du);
}

// --- router: weights of the chosen experts w.r.t. logits, for every scoring / selection variant
typedef struct { float *scores, *w, *logits, *bias, *R; int *idx; RouterSpec rs; int N; } RouterCtx;
static double router_J(void *p) {
    RouterCtx *c = p;
    router_forward(c->scores, c->idx, c->w, c->logits, c->bias, &c->rs, c->N);
    return dotd(c->w, c->R, (long)c->N * c->rs.K);
}
static void test_router(void) {
    RouterSpec variants[] = {
        {.E = 8, .K = 2, .n_group = 2, .topk_group = 1, .sigmoid = 1, .method = TOPK_NOAUX_TC, .norm_topk_prob = 1,
         .scaling = 2.5f},
        {.E = 8, .K = 3, .n_group = 4, .topk_group = 2, .sigmoid = 0, .method = TOPK_GROUP_LIMITED_GREEDY,
         .norm_topk_prob = 0, .scaling = 1.0f},
        {.E = 6, .K = 2, .n_group = 1, .topk_group = 1, .sigmoid = 0, .method = TOPK_GREEDY, .norm_topk_prob = 1,
         .scaling = 1.0f},
        {.E = 6, .K = 1, .n_group = 1, .topk_group = 1, .sigmoid = 1, .method = TOPK_GREEDY, .norm_topk_prob = 1,
         .scaling = 1.5f},
    };
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
        RouterCtx c = {.rs = variants[v], .N = 6};
        int E = c.rs.E, K = c.rs.K, N = c.N;
        c.logits = rand_buf(N * E, 2), c.bias = rand_buf(E, 0.3f), c.R = rand_buf(N * K, 1);
        c.scores = zeros(N * E), c.w = zeros(N * K), c.idx = calloc(N * K, sizeof(int));
        router_J(&c);
        int *idx0 = malloc(sizeof(int) * N * K);
        memcpy(idx0, c.idx, sizeof(int) * N * K);
        float *dl = zeros(N * E);
        router_backward(dl, c.R, c.scores, c.idx, &c.rs, N);
        check_grad("router dlogits", c.logits, dl, N * E, router_J, &c);
        router_J(&c);
        EXPECT(!memcmp(idx0, c.idx, sizeof(int) * N * K), "selection changed during the check (variant %zu)", v);
        for (int n = 0; n < N; n++) {
            float wsum = 0;
            for (int k = 0; k < K; k++) wsum += c.w[n * K + k];
            if (c.rs.norm_topk_prob && K > 1) EXPECT_NEAR(wsum, c.rs.scaling, 1e-5, "renormalised weights sum");
        }
        free(c.logits), free(c.bias), free(c.R), free(c.scores), free(c.w), free(c.idx), free(idx0), free(dl);
    }
}

typedef struct { float *scores, *w, *logits; int *idx; RouterSpec rs; int B, T; } BalCtx;
static double bal_J(void *p) {
    BalCtx *c = p;
    router_forward(c->scores, c->idx, c->w, c->logits, NULL, &c->rs, c->B * c->T);
    return seq_balance_loss(NULL, c->scores, c->idx, &c->rs, c->B, c->T, c->T - 1, 0.1f);
}
static void test_balance_loss(void) {
    for (int sig = 0; sig < 2; sig++) {
        BalCtx c = {.rs = {.E = 6, .K = 2, .n_group = 1, .topk_group = 1, .sigmoid = sig, .method = TOPK_GREEDY,
                           .norm_topk_prob = 1, .scaling = 1.0f},
                    .B = 2, .T = 4};
        int N = c.B * c.T, E = 6;
        c.logits = rand_buf(N * E, 2), c.scores = zeros(N * E), c.w = zeros(N * 2), c.idx = calloc(N * 2, sizeof(int));
        bal_J(&c);
        float *dl = zeros(N * E);
        seq_balance_loss(dl, c.scores, c.idx, &c.rs, c.B, c.T, c.T - 1, 0.1f);
        check_grad("balance loss dlogits", c.logits, dl, N * E, bal_J, &c);
        free(c.logits), free(c.scores), free(c.w), free(c.idx), free(dl);
    }
}

// --- log-prob head, in chunks smaller than N
typedef struct { float *logp, *ent, *lse, *scr, *h, *W, *R; int *tg; int N, C, V; float inv_temp; } HeadCtx;
static double head_J(void *p) {
    HeadCtx *c = p;
    logprob_forward(c->logp, c->ent, c->lse, c->scr, c->h, c->W, c->tg, c->N, c->C, c->V, 3, c->inv_temp);
    return dotd(c->logp, c->R, c->N);
}
// At temperature 1 and at the sampling temperature 1/0.7 (logits scaled by 0.7).
static void check_logprob(float inv_temp) {
    HeadCtx c = {.N = 7, .C = 5, .V = 11, .inv_temp = inv_temp};
    c.h = rand_buf(35, 1), c.W = rand_buf(55, 1), c.R = rand_buf(7, 1);
    c.logp = zeros(7), c.ent = zeros(7), c.lse = zeros(7), c.scr = zeros(3 * 11);
    int tg[7] = {0, 3, 10, -1, 5, 5, 2};
    c.tg = tg;
    head_J(&c);
    EXPECT(c.logp[3] == 0.0f, "ignored target gives logp 0");
    // against a direct softmax
    for (int n = 0; n < 7; n++) {
        double l[11], mx = -1e30, s = 0, e = 0;
        for (int j = 0; j < 11; j++) l[j] = inv_temp * dotd(c.h + n * 5, c.W + j * 5, 5), mx = l[j] > mx ? l[j] : mx;
        for (int j = 0; j < 11; j++) s += exp(l[j] - mx);
        for (int j = 0; j < 11; j++) { double pj = exp(l[j] - mx) / s; e -= pj * log(pj); }
        if (tg[n] >= 0) EXPECT_NEAR(c.logp[n], l[tg[n]] - mx - log(s), 1e-5, "logp");
        EXPECT_NEAR(c.ent[n], e, 1e-5, "entropy");
    }
    float *dh = zeros(35), *dW = zeros(55);
    logprob_backward(dh, dW, c.scr, c.R, c.h, c.W, c.lse, tg, 7, 5, 11, 3, c.inv_temp);
    check_grad("logprob dh", c.h, dh, 35, head_J, &c);
    check_grad("logprob dW", c.W, dW, 55, head_J, &c);
    free(c.h), free(c.W), free(c.R), free(c.logp), free(c.ent), free(c.lse), free(c.scr), free(dh), free(dW);
}
static void test_logprob(void) {
    check_logprob(1.0f);
    check_logprob(0.7f);
}

static void test_embedding(void) {
    float wte[4 * 3], out[5 * 3], d[4 * 3] = {0}, g[5 * 3];
    for (int i = 0; i < 12; i++) wte[i] = frand();
    for (int i = 0; i < 15; i++) g[i] = frand();
    int tok[5] = {2, 0, 2, 3, 2};
    embedding_forward(out, tok, wte, 5, 3);
    EXPECT(out[3] == wte[0] && out[0] == wte[6], "embedding rows");
    embedding_backward(d, g, tok, 5, 3);
    EXPECT_NEAR(d[6], g[0] + g[6] + g[12], 1e-6, "repeated token gradients add");
    EXPECT(d[3] == 0.0f, "unused row untouched");
}

int main(void) {
    RUN_TEST(test_matmul);
    RUN_TEST(test_rmsnorm);
    RUN_TEST(test_rope);
    RUN_TEST(test_attention);
    RUN_TEST(test_swiglu);
    RUN_TEST(test_router);
    RUN_TEST(test_balance_loss);
    RUN_TEST(test_logprob);
    RUN_TEST(test_embedding);
    return test_summary();
}
