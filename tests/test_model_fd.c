// The whole model's loss (CE + lambda * MTP + sequence-balance aux) against central finite differences
// in double, along a random direction of every parameter tensor and at sampled entries. The model's
// source is compiled here retyped to double (tests/double_model.h), so eps can be 1e-5.
#include "test.h"
#include "double_model.h"
#include "policy/config.c"
#include "policy/layers.c"
#include "policy/model.c"

#include "model_batch.h"


// Full objective: CE + lambda * MTP + aux, in double from the model's fp32 pieces.
static double total_loss(Model *m, const int *in, const int *tg) {
    if (model_forward(m, in, tg, B, T) != 0) return NAN;
    return (double)model_ce_loss(m, NULL) + (m->cfg.num_nextn_predict_layers ? m->mtp_lambda * m->mtp_loss : 0) +
           m->aux_loss;
}

// Routing of every MoE block, to skip finite differences that flip an expert choice.
static void routing(const Model *m, int *out) {
    int K = m->cfg.num_experts_per_tok, N = B * T;
    for (int l = 0, o = 0; l < m->n_blocks; l++)
        if (m->acts[l].topk_idx) { memcpy(out + o, m->acts[l].topk_idx, sizeof(int) * N * K); o += N * K; }
}

// Checks one config variant; `tweak` edits the tiny config.
static void check_config(const char *label, void (*tweak)(ModelConfig *)) {
    Model m;
    ModelConfig cfg;
    if (config_load(&cfg, "configs/model/tiny.json") != 0) { EXPECT(0, "%s", grpo_error()); return; }
    if (tweak) tweak(&cfg);
    if (model_build(&m, &cfg) != 0 || model_alloc_grads(&m) != 0 || model_alloc_acts(&m, B, T) != 0) {
        EXPECT(0, "%s: %s", label, grpo_error());
        return;
    }
    model_init_random(&m, 3, 0.1);
    // random norms and selection bias so that their gradients and effects are not trivially symmetric
    for (int i = 0; i < m.n_info; i++)
        if (m.info[i].ndim == 1)
            for (size_t j = 0; j < m.info[i].size; j++) m.params[m.info[i].offset + j] = 1.0 + 0.3 * frand();
    m.mtp_lambda = 0.3f;
    m.aux_alpha = 0.01f;
    int in[B * T], tg[B * T];
    make_batch(in, tg, cfg.vocab_size);
    float dlogp[B * T];
    model_forward(&m, in, tg, B, T);
    model_ce_loss(&m, dlogp);
    model_zero_grad(&m);
    model_backward(&m, dlogp);
    int nr = m.n_blocks * B * T * cfg.num_experts_per_tok;
    int *r0 = calloc(nr, sizeof(int)), *r1 = calloc(nr, sizeof(int)), *r2 = calloc(nr, sizeof(int));
    routing(&m, r0);
    int checked = 0, skipped = 0;
    const double eps = 1e-5;
    for (int i = 0; i < m.n_info; i++) {
        const ParamInfo *p = &m.info[i];
        float *w = m.params + p->offset, *g = m.grads + p->offset;
        if (!p->trainable) {
            for (size_t j = 0; j < p->size; j++) EXPECT(g[j] == 0.0f, "%s is not trained but got a gradient", p->name);
            continue;
        }
        // directional derivative along a random direction over the whole tensor
        float *keep = malloc(sizeof(float) * p->size), *u = malloc(sizeof(float) * p->size);
        double gu = 0;
        for (size_t j = 0; j < p->size; j++) keep[j] = w[j], u[j] = frand(), gu += (double)g[j] * u[j];
        for (size_t j = 0; j < p->size; j++) w[j] = keep[j] + eps * u[j];
        double jp = total_loss(&m, in, tg);
        routing(&m, r1);
        for (size_t j = 0; j < p->size; j++) w[j] = keep[j] - eps * u[j];
        double jm = total_loss(&m, in, tg);
        routing(&m, r2);
        memcpy(w, keep, sizeof(float) * p->size);
        free(keep);
        free(u);
        if (memcmp(r0, r1, sizeof(int) * nr) || memcmp(r0, r2, sizeof(int) * nr)) { skipped++; continue; }
        double fd = (jp - jm) / (2.0 * eps);
        checked++;
        EXPECT(fabs(fd - gu) <= 1e-6 * (fabs(fd) + fabs(gu)) + 1e-8, "%s: %s: finite difference %.10g vs backward "
               "%.10g", label, p->name, fd, gu);
    }
    EXPECT(skipped * 10 <= checked, "%s: too many checks skipped for routing changes: %d skipped, %d checked", label,
           skipped, checked);
    fprintf(stderr, "     %s: %d parameter tensors checked, %d skipped (routing changed)\n", label, checked, skipped);
    free(r0), free(r1), free(r2);
    model_free(&m);
}


static void no_qlora_softmax_grouped(ModelConfig *c) {
    c->q_lora_rank = 0;
    c->scoring_func = SCORE_SOFTMAX;
    c->topk_method = TOPK_GROUP_LIMITED_GREEDY;
    c->has_score_bias = false;
    c->yarn.enabled = false;
    c->tie_word_embeddings = true;
    c->num_nextn_predict_layers = 0;
}
static void greedy_unnormalised(ModelConfig *c) {
    c->topk_method = TOPK_GREEDY;
    c->has_score_bias = false;
    c->norm_topk_prob = false;
    c->n_shared_experts = 0;
    c->n_group = 1;
    c->topk_group = 1;
}
static void test_tiny_as_shipped(void) { check_config("tiny", NULL); }
static void test_tiny_variant_a(void) { check_config("q_lora null, softmax, group-limited, tied, no MTP", no_qlora_softmax_grouped); }
static void test_tiny_variant_b(void) { check_config("greedy, unnormalised, no shared experts", greedy_unnormalised); }

int main(void) {
    RUN_TEST(test_tiny_as_shipped);
    RUN_TEST(test_tiny_variant_a);
    RUN_TEST(test_tiny_variant_b);
    return test_summary();
}
