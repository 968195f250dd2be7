// Logit distillation's heads (policy/layers.h topk_logprob_forward, topk_kl_forward / _backward) against
// direct computations and central finite differences in double, and the whole model's CE + KL objective
// through Model.head_extra, as rl/distill.c attaches it, against finite differences along random
// directions of every parameter tensor. The sources are compiled here retyped to double
// (tests/double_model.h), so eps can be 1e-5.
#include "test.h"
#include "double_model.h"
#include "policy/config.c"
#include "policy/layers.c"
#include "policy/model.c"

#include "model_batch.h"

static double dotd(const float *a, const float *b, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

// log softmax(inv_temp * h W^T) of one row, in full: out (V).
static void row_logsoftmax(double *out, const float *h, const float *W, int C, int V, float inv_temp) {
    double mx = -1e300, s = 0;
    for (int j = 0; j < V; j++) out[j] = inv_temp * dotd(h, W + (long)j * C, C), mx = out[j] > mx ? out[j] : mx;
    for (int j = 0; j < V; j++) s += exp(out[j] - mx);
    for (int j = 0; j < V; j++) out[j] -= mx + log(s);
}

enum { N = 7, C = 5, V = 11, K = 4, CHUNK = 3 };

static void test_topk_logprob(void) {
    float *h = malloc(sizeof(float) * N * C), *W = malloc(sizeof(float) * V * C), lp[N * K], scr[CHUNK * V];
    float mask[N] = {1, 1, 0, 1, 1, 1, 1};
    int ids[N * K];
    for (int i = 0; i < N * C; i++) h[i] = frand();
    for (int i = 0; i < V * C; i++) W[i] = frand();
    W[2 * C + 0] = W[7 * C + 0], W[2 * C + 1] = W[7 * C + 1], W[2 * C + 2] = W[7 * C + 2]; // a tie: ids 2 and 7
    W[2 * C + 3] = W[7 * C + 3], W[2 * C + 4] = W[7 * C + 4];
    for (int pass = 0; pass < 2; pass++) {
        float inv_temp = pass ? 1.0f / 1.7f : 1.0f;
        topk_logprob_forward(ids, lp, scr, h, W, mask, N, C, V, K, CHUNK, inv_temp);
        for (int n = 0; n < N; n++) {
            if (!mask[n]) {
                for (int k = 0; k < K; k++) EXPECT(ids[n * K + k] == -1 && lp[n * K + k] == 0, "masked row %d", n);
                continue;
            }
            double ref[V];
            int order[V];
            row_logsoftmax(ref, h + n * C, W, C, V, inv_temp);
            for (int j = 0; j < V; j++) order[j] = j;
            for (int i = 1; i < V; i++) // stable insertion sort: descending, ties by id
                for (int j = i; j > 0 && ref[order[j - 1]] < ref[order[j]]; j--) {
                    int t = order[j]; order[j] = order[j - 1]; order[j - 1] = t;
                }
            for (int k = 0; k < K; k++) {
                EXPECT(ids[n * K + k] == order[k], "row %d rank %d: id %d, expected %d", n, k, ids[n * K + k],
                       order[k]);
                EXPECT_NEAR(lp[n * K + k], ref[order[k]], 1e-12, "top-k log-prob");
            }
        }
    }
    free(h), free(W);
}

// The head's objective J = sum_n R[n] * kl[n] at fixed teacher candidates.
typedef struct {
    float *h, *W, *R, *kl, *lse, *p, *tlogp, *scr;
    int *ids;
    float inv_temp;
} KlCtx;

static double kl_J(KlCtx *c) {
    topk_kl_forward(c->kl, c->lse, c->p, c->scr, c->h, c->W, c->ids, c->tlogp, N, C, V, K, CHUNK, c->inv_temp);
    return dotd(c->kl, c->R, N);
}

// Directional derivative of J along a random u over x (n entries) against g . u, and single entries.
static void check_dir(const char *what, float *x, const float *g, long n, KlCtx *c) {
    const double eps = 1e-5;
    float *keep = malloc(sizeof(float) * n), *u = malloc(sizeof(float) * n);
    double gu = 0;
    for (long i = 0; i < n; i++) keep[i] = x[i], u[i] = frand(), gu += (double)g[i] * u[i];
    for (long i = 0; i < n; i++) x[i] = keep[i] + eps * u[i];
    double jp = kl_J(c);
    for (long i = 0; i < n; i++) x[i] = keep[i] - eps * u[i];
    double jm = kl_J(c), fd = (jp - jm) / (2 * eps);
    memcpy(x, keep, sizeof(float) * n);
    EXPECT(fabs(fd - gu) <= 1e-7 * (fabs(fd) + fabs(gu)) + 1e-10, "%s along a random direction: finite difference "
           "%.10g vs backward %.10g", what, fd, gu);
    for (long i = 0; i < n; i += 3) {
        x[i] = keep[i] + eps;
        jp = kl_J(c);
        x[i] = keep[i] - eps;
        jm = kl_J(c);
        x[i] = keep[i];
        fd = (jp - jm) / (2 * eps);
        EXPECT(fabs(fd - g[i]) <= 1e-6 * (fabs(fd) + fabs(g[i])) + 1e-9, "%s[%ld]: finite difference %.9g vs "
               "backward %.9g", what, i, fd, (double)g[i]);
    }
    kl_J(c); // leave lse and p at the unperturbed point
    free(keep), free(u);
}

static void check_kl(float inv_temp) {
    KlCtx c = {.inv_temp = inv_temp};
    c.h = malloc(sizeof(float) * N * C), c.W = malloc(sizeof(float) * V * C), c.R = malloc(sizeof(float) * N);
    c.kl = calloc(N, sizeof(float)), c.lse = calloc(N, sizeof(float)), c.p = calloc(N * K, sizeof(float));
    c.tlogp = malloc(sizeof(float) * N * K), c.scr = calloc(CHUNK * V, sizeof(float));
    c.ids = malloc(sizeof(int) * N * K);
    for (int i = 0; i < N * C; i++) c.h[i] = frand();
    for (int i = 0; i < V * C; i++) c.W[i] = frand();
    for (int i = 0; i < N; i++) c.R[i] = frand();
    // distinct teacher candidates per row with unnormalised log-probs; row 4 is not scored
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) c.ids[n * K + k] = (3 * n + 5 * k + 1) % V, c.tlogp[n * K + k] = 2 * frand() - 3;
    for (int k = 0; k < K; k++) c.ids[4 * K + k] = -1;
    kl_J(&c);
    for (int n = 0; n < N; n++) { // against the definition, with p renormalised over the K
        if (n == 4) { EXPECT(c.kl[n] == 0 && c.lse[n] == 0, "unscored row"); continue; }
        double q[V], z = 0, kl = 0;
        row_logsoftmax(q, c.h + n * C, c.W, C, V, inv_temp);
        for (int k = 0; k < K; k++) z += exp(c.tlogp[n * K + k]);
        for (int k = 0; k < K; k++) {
            double lp = c.tlogp[n * K + k] - log(z);
            kl += exp(lp) * (lp - q[c.ids[n * K + k]]);
        }
        EXPECT_NEAR(c.kl[n], kl, 1e-12, "KL");
        EXPECT(c.kl[n] > 0, "KL %g > 0", c.kl[n]);
    }
    float *dh = calloc(N * C, sizeof(float)), *dW = calloc(V * C, sizeof(float));
    topk_kl_backward(dh, dW, c.scr, c.R, c.h, c.W, c.lse, c.ids, c.p, N, C, V, K, CHUNK, inv_temp);
    for (int i = 0; i < C; i++) EXPECT(dh[4 * C + i] == 0, "no gradient from an unscored row");
    check_dir("topk_kl dh", c.h, dh, N * C, &c);
    check_dir("topk_kl dW", c.W, dW, V * C, &c);
    // backward adds into its outputs
    float *dh2 = malloc(sizeof(float) * N * C);
    memcpy(dh2, dh, sizeof(float) * N * C);
    topk_kl_backward(dh2, dW, c.scr, c.R, c.h, c.W, c.lse, c.ids, c.p, N, C, V, K, CHUNK, inv_temp);
    EXPECT_NEAR(dh2[1], 2 * dh[1], 1e-12, "accumulates");
    free(c.h), free(c.W), free(c.R), free(c.kl), free(c.lse), free(c.p), free(c.tlogp), free(c.scr), free(c.ids);
    free(dh), free(dW), free(dh2);
}

static void test_topk_kl(void) {
    check_kl(1.0f);
    check_kl(1.0f / 1.7f);
}

// The teacher's full distribution as its "top-V" candidates gives the exact KL, 0 against itself.
static void test_topk_kl_full(void) {
    float h[N * C], W[V * C], lp[N * V], kl[N], lse[N], p[N * V], scr[CHUNK * V];
    int ids[N * V];
    for (int i = 0; i < N * C; i++) h[i] = frand();
    for (int i = 0; i < V * C; i++) W[i] = frand();
    topk_logprob_forward(ids, lp, scr, h, W, NULL, N, C, V, V, CHUNK, 0.8f);
    topk_kl_forward(kl, lse, p, scr, h, W, ids, lp, N, C, V, V, CHUNK, 0.8f);
    for (int n = 0; n < N; n++) EXPECT(fabs(kl[n]) < 1e-12, "KL of a distribution to itself: %g", kl[n]);
}

// ----------------------------------------------------------------------------------------------------
// The model with the logit term attached through head_extra: fixed teacher candidates per position,
// weighted as rl/distill.c weights them (weight * T^2 * |dlogp|).

typedef struct {
    int *ids;                 // (B*T, KM)
    float *tlogp, *kl, *lse, *p, *dkl;
    float weight, temp;
} Hook;
enum { KM = 6 };

static void hook(void *ctx, Model *m, const float *dlogp, float *dxf) {
    Hook *k = ctx;
    int n_tok = B * T, Cm = m->cfg.hidden_size, Vm = m->cfg.vocab_size; // every forward here is (B,T)
    for (int n = 0; n < n_tok; n++) k->dkl[n] = k->weight * k->temp * k->temp * fabs(dlogp[n]);
    topk_kl_forward(k->kl, k->lse, k->p, m->head_scratch, m->xf, m->lm_head, k->ids, k->tlogp, n_tok, Cm, Vm, KM,
                    m->chunk, 1.0 / k->temp);
    topk_kl_backward(dxf, m->dlm_head, m->head_scratch, k->dkl, m->xf, m->lm_head, k->lse, k->ids, k->p, n_tok, Cm,
                     Vm, KM, m->chunk, 1.0 / k->temp);
}

// CE + lambda * MTP + weight * T^2 * mean KL over the scored positions.
static double total_loss(Model *m, Hook *k, const int *in, const int *tg) {
    if (model_forward(m, in, tg, B, T) != 0) return NAN;
    topk_kl_forward(k->kl, k->lse, k->p, m->head_scratch, m->xf, m->lm_head, k->ids, k->tlogp, B * T,
                    m->cfg.hidden_size, m->cfg.vocab_size, KM, m->chunk, 1.0 / k->temp);
    double kl = 0;
    int cnt = 0;
    for (int n = 0; n < B * T; n++) kl += k->kl[n], cnt += tg[n] >= 0;
    return model_ce_loss(m, NULL) + m->mtp_lambda * m->mtp_loss + k->weight * k->temp * k->temp * kl / cnt;
}

static void routing(const Model *m, int *out) {
    int Ke = m->cfg.num_experts_per_tok, n_tok = B * T;
    for (int l = 0, o = 0; l < m->n_blocks; l++)
        if (m->acts[l].topk_idx) { memcpy(out + o, m->acts[l].topk_idx, sizeof(int) * n_tok * Ke); o += n_tok * Ke; }
}

static void check_model(const char *path, float temp) {
    Model m;
    ModelConfig cfg;
    if (config_load(&cfg, path) != 0 || model_build(&m, &cfg) != 0 || model_alloc_grads(&m) != 0 ||
        model_alloc_acts(&m, B, T) != 0) {
        EXPECT(0, "%s: %s", path, grpo_error());
        return;
    }
    model_init_random(&m, 5, 0.3);
    m.mtp_lambda = cfg.num_nextn_predict_layers ? 0.3 : 0;
    int in[B * T], tg[B * T], n_tok = B * T, Vm = cfg.vocab_size;
    make_batch(in, tg, Vm);
    Hook k = {.weight = 0.7, .temp = temp};
    k.ids = malloc(sizeof(int) * n_tok * KM), k.tlogp = malloc(sizeof(float) * n_tok * KM);
    k.p = malloc(sizeof(float) * n_tok * KM);
    k.kl = malloc(sizeof(float) * n_tok), k.lse = malloc(sizeof(float) * n_tok), k.dkl = malloc(sizeof(float) * n_tok);
    for (int n = 0; n < n_tok; n++)
        for (int j = 0; j < KM; j++) {
            k.ids[n * KM + j] = tg[n] < 0 ? -1 : (int)((urand() % (Vm / KM)) * KM + j); // distinct per row
            k.tlogp[n * KM + j] = 2 * frand();
        }
    float dlogp[B * T];
    model_forward(&m, in, tg, B, T);
    model_ce_loss(&m, dlogp);
    model_zero_grad(&m);
    m.head_extra = hook;
    m.head_extra_ctx = &k;
    model_backward(&m, dlogp);
    m.head_extra = NULL;
    int nr = m.n_blocks * n_tok * cfg.num_experts_per_tok;
    int *r0 = calloc(nr, sizeof(int)), *r1 = calloc(nr, sizeof(int)), *r2 = calloc(nr, sizeof(int));
    routing(&m, r0);
    int checked = 0, skipped = 0;
    const double eps = 1e-5;
    for (int i = 0; i < m.n_info; i++) {
        const ParamInfo *pi = &m.info[i];
        if (!pi->trainable) continue;
        float *w = m.params + pi->offset, *g = m.grads + pi->offset;
        float *keep = malloc(sizeof(float) * pi->size), *u = malloc(sizeof(float) * pi->size);
        double gu = 0;
        for (size_t j = 0; j < pi->size; j++) keep[j] = w[j], u[j] = frand(), gu += (double)g[j] * u[j];
        for (size_t j = 0; j < pi->size; j++) w[j] = keep[j] + eps * u[j];
        double jp = total_loss(&m, &k, in, tg);
        routing(&m, r1);
        for (size_t j = 0; j < pi->size; j++) w[j] = keep[j] - eps * u[j];
        double jm = total_loss(&m, &k, in, tg);
        routing(&m, r2);
        memcpy(w, keep, sizeof(float) * pi->size);
        free(keep), free(u);
        if (memcmp(r0, r1, sizeof(int) * nr) || memcmp(r0, r2, sizeof(int) * nr)) { skipped++; continue; }
        double fd = (jp - jm) / (2 * eps);
        checked++;
        EXPECT(fabs(fd - gu) <= 1e-6 * (fabs(fd) + fabs(gu)) + 1e-8, "%s: %s: finite difference %.10g vs backward "
               "%.10g", path, pi->name, fd, gu);
    }
    EXPECT(skipped * 10 <= checked, "%s: %d checks skipped for routing changes, %d checked", path, skipped, checked);
    fprintf(stderr, "     %s at T %g: %d parameter tensors checked, %d skipped (routing changed)\n", path, temp,
            checked, skipped);
    free(r0), free(r1), free(r2);
    free(k.ids), free(k.tlogp), free(k.p), free(k.kl), free(k.lse), free(k.dkl);
    model_free(&m);
}

static void test_model_ce_plus_kl(void) { check_model("configs/model/tiny-student.json", 2.0f); }

int main(void) {
    RUN_TEST(test_topk_logprob);
    RUN_TEST(test_topk_kl);
    RUN_TEST(test_topk_kl_full);
    RUN_TEST(test_model_ce_plus_kl);
    return test_summary();
}
