// The decode path's hand-written numerics against independent references: the packed small-batch matmul
// against a plain double product (every tile shape, padding, strides, the transposed packing, batch
// invariance), the packed model against the parameters it copies, and the vectorisable exp / sigmoid
// against libm.
#include "common/error.h"
#include "common/vmath.h"
#include "policy/packed.h"
#include "test.h"
#include <stdlib.h>

static unsigned long long rng = 7;
static float frand(void) { // uniform in [-1, 1)
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) / (double)(1 << 24)) * 2.0f - 1.0f;
}

// out (N,OC) at stride ldo = inp (N,IC) at stride ldi @ W^T, W given as (OC,IC) or, trans, as (IC,OC), both at
// stride ldw; checks every output against the double product and that the padding columns of out stay untouched.
static void check_shape(int N, int IC, int OC, bool trans, int pad) {
    int ldi = IC + pad, ldo = OC + pad, ldw = (trans ? OC : IC) + pad;
    long wn = (long)(trans ? IC : OC) * ldw;
    float *W = malloc(sizeof(float) * wn), *x = malloc(sizeof(float) * N * ldi), *out = malloc(sizeof(float) * N * ldo);
    float *Wp = malloc(sizeof(float) * packed_floats(OC, IC));
    for (long i = 0; i < wn; i++) W[i] = frand();
    for (long i = 0; i < (long)N * ldi; i++) x[i] = frand();
    for (long i = 0; i < (long)N * ldo; i++) out[i] = 12345.0f;
    pack_matrix(Wp, W, ldw, OC, IC, trans);
    matmul_packed_forward(out, ldo, x, ldi, Wp, N, IC, OC);
    double worst = 0;
    int untouched = 1;
    for (int n = 0; n < N; n++) {
        for (int o = 0; o < OC; o++) {
            double ref = 0, mag = 0;
            for (int i = 0; i < IC; i++) {
                double w = trans ? W[(long)i * ldw + o] : W[(long)o * ldw + i];
                ref += w * x[(long)n * ldi + i];
                mag += fabs(w * x[(long)n * ldi + i]);
            }
            double e = fabs(out[(long)n * ldo + o] - ref) / (mag + 1e-30);
            worst = e > worst ? e : worst;
        }
        for (int o = OC; o < ldo; o++) untouched &= out[(long)n * ldo + o] == 12345.0f;
    }
    EXPECT(worst < 1e-6, "N=%d IC=%d OC=%d trans=%d pad=%d: error %.3g relative to sum |w x|", N, IC, OC, trans, pad,
           worst);
    EXPECT(untouched, "N=%d IC=%d OC=%d pad=%d: wrote past OC columns", N, IC, OC, pad);
    free(W), free(x), free(out), free(Wp);
}

static void test_packed_matmul_shapes(void) {
    int Ns[] = {1, 2, 5, 6, 7, 11, 12, 13, 29, 64};
    int OCs[] = {1, 15, 16, 17, 48, 64, 65, 130, 200};
    int ICs[] = {1, 3, 64};
    for (size_t a = 0; a < sizeof Ns / sizeof *Ns; a++)
        for (size_t b = 0; b < sizeof OCs / sizeof *OCs; b++)
            for (size_t c = 0; c < sizeof ICs / sizeof *ICs; c++) check_shape(Ns[a], ICs[c], OCs[b], false, 0);
    check_shape(9, 40, 70, true, 0);
    check_shape(9, 40, 70, false, 3);
    check_shape(9, 40, 70, true, 5);
    check_shape(300, 96, 1000, false, 0); // large enough to run on all threads
}

// A row's result does not depend on the batch it is computed in (bitwise): the sums run in one order.
static void test_packed_matmul_batch_invariant(void) {
    enum { N = 37, IC = 80, OC = 150 };
    float *W = malloc(sizeof(float) * OC * IC), *x = malloc(sizeof(float) * N * IC), *Wp = malloc(sizeof(float) * packed_floats(OC, IC));
    float *all = malloc(sizeof(float) * N * OC), one[OC];
    for (int i = 0; i < OC * IC; i++) W[i] = frand();
    for (int i = 0; i < N * IC; i++) x[i] = frand();
    pack_matrix(Wp, W, IC, OC, IC, false);
    matmul_packed_forward(all, OC, x, IC, Wp, N, IC, OC);
    int same = 1;
    for (int n = 0; n < N; n++) {
        matmul_packed_forward(one, OC, x + (long)n * IC, IC, Wp, 1, IC, OC);
        same &= memcmp(one, all + (long)n * OC, sizeof one) == 0;
    }
    EXPECT(same, "a row alone differs from the same row in a batch of %d", N);
    free(W), free(x), free(Wp), free(all);
}

// Every packed tensor of a tiny model holds the parameters it was packed from (checked through products with
// unit vectors: row i of the result is column i of the weight), and a repack follows changed parameters.
static void test_packed_model(void) {
    ModelConfig cfg;
    Model m;
    PackedModel pk;
    EXPECT(config_load(&cfg, "configs/model/tiny.json") == 0 && model_build(&m, &cfg) == 0, "%s", grpo_error());
    model_init_random(&m, 5, 0.1f);
    EXPECT(packed_model_init(&pk, &m) == 0, "%s", grpo_error());
    packed_model_pack(&pk, &m);
    int C = cfg.hidden_size, E = cfg.n_routed_experts, Im = cfg.moe_intermediate_size, R = cfg.kv_lora_rank;
    int H = cfg.num_attention_heads, Dn = cfg.qk_nope_head_dim, Dv = cfg.v_head_dim;
    int l = cfg.num_hidden_layers - 1;
    const LayerParams *p = &m.layers[l];
    const PackedLayer *d = &pk.layers[l];
    // W (OC,IC) at stride ld, or trans: (IC,OC); unpacks through out = I @ W^T and compares.
    struct { const char *name; const float *packed, *W; int OC, IC, ld; bool trans; } t[] = {
        {"q_a", d->q_a, p->q_a, cfg.q_lora_rank, C, C, false},
        {"kv_a", d->kv_a, p->kv_a, R + cfg.qk_rope_head_dim, C, C, false},
        {"o_proj", d->o_proj, p->o_proj, C, H * Dv, H * Dv, false},
        {"w_uk head 1", d->w_uk + pk.uk_stride, p->kv_b + (size_t)(Dn + Dv) * R, R, Dn, R, true},
        {"w_uv head 1", d->w_uv + pk.uv_stride, p->kv_b + ((size_t)(Dn + Dv) + Dn) * R, Dv, R, R, false},
        {"router", d->router, p->router, E, C, C, false},
        {"expert 2 gate", d->e_gate + 2 * pk.expert_stride, p->e_gate + (size_t)2 * Im * C, Im, C, C, false},
        {"expert 2 down", d->e_down + 2 * pk.expert_stride, p->e_down + (size_t)2 * C * Im, C, Im, Im, false},
        {"lm_head", pk.lm_head, m.lm_head, cfg.vocab_size, C, C, false},
    };
    for (size_t k = 0; k < sizeof t / sizeof *t; k++) {
        int OC = t[k].OC, IC = t[k].IC;
        float *eye = calloc((size_t)IC * IC, sizeof(float)), *out = malloc(sizeof(float) * IC * OC);
        for (int i = 0; i < IC; i++) eye[(size_t)i * IC + i] = 1.0f;
        matmul_packed_forward(out, OC, eye, IC, t[k].packed, IC, IC, OC);
        int same = 1;
        for (int i = 0; i < IC; i++)
            for (int o = 0; o < OC; o++)
                same &= out[(size_t)i * OC + o] == (t[k].trans ? t[k].W[(size_t)i * t[k].ld + o] : t[k].W[(size_t)o * t[k].ld + i]);
        EXPECT(same, "packed %s differs from the parameter", t[k].name);
        free(eye), free(out);
    }
    m.lm_head[3 * C + 1] += 1.0f;
    float e1[64] = {0}, *row = malloc(sizeof(float) * cfg.vocab_size);
    e1[1] = 1.0f;
    packed_model_pack(&pk, &m);
    matmul_packed_forward(row, cfg.vocab_size, e1, C, pk.lm_head, 1, C, cfg.vocab_size);
    EXPECT(C <= 64 && row[3] == m.lm_head[3 * C + 1], "repacking did not pick up a changed parameter");
    free(row);
    packed_model_free(&pk);
    model_free(&m);
}

static void test_vmath(void) {
    double worst = 0;
    for (double x = -87.0; x <= 0.0; x += 1.3e-4) {
        float xf = (float)x;
        double e = fabs(exp_neg(xf) - exp((double)xf)) / exp((double)xf);
        worst = e > worst ? e : worst;
    }
    EXPECT(worst < 1e-7, "exp_neg: relative error %.3g over [-87, 0]", worst);
    EXPECT(exp_neg(-1000.0f) > 0 && exp_neg(-1000.0f) <= 1e-37f, "exp_neg below -87: %g", exp_neg(-1000.0f));
    worst = 0;
    for (double x = -60.0; x <= 60.0; x += 1e-3) {
        float xf = (float)x;
        double ref = 1.0 / (1.0 + exp(-(double)xf));
        double e = fabs(sigmoid_fast(xf) - ref) / ref;
        worst = e > worst ? e : worst;
    }
    EXPECT(worst < 3e-7, "sigmoid_fast: relative error %.3g over [-60, 60]", worst);
}

int main(void) {
    RUN_TEST(test_packed_matmul_shapes);
    RUN_TEST(test_packed_matmul_batch_invariant);
    RUN_TEST(test_packed_model);
    RUN_TEST(test_vmath);
    return test_summary();
}
