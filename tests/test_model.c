// The whole policy on the tiny config: checkpoint round trips, determinism, memorisation, the router
// balancing rule, the shipped configs' sizes, and bad inputs. (Gradients: tests/test_model_fd.c.)
#include "common/error.h"
#include "common/fileio.h"
#include "policy/checkpoint.h"
#include "policy/safetensors.h"
#include "test.h"
#include <stdlib.h>
#include <unistd.h>

#include "model_batch.h"

static char tmpdir[64];

static int build_tiny(Model *m, ModelConfig *cfg) {
    if (config_load(cfg, "configs/model/tiny.json") != 0) return -1;
    TRY(model_build(m, cfg));
    model_init_random(m, 1, 0.05f);
    // random norms and selection bias so that their gradients and effects are not trivially symmetric
    for (int i = 0; i < m->n_info; i++)
        if (m->info[i].ndim == 1)
            for (size_t j = 0; j < m->info[i].size; j++) m->params[m->info[i].offset + j] = 1.0f + 0.2f * frand();
    TRY(model_alloc_grads(m));
    return model_alloc_acts(m, B, T);
}


static void test_save_load_roundtrip(void) {
    Model a, b;
    ModelConfig cfg;
    if (build_tiny(&a, &cfg) != 0) { EXPECT(0, "%s", grpo_error()); return; }
    AdamW opt;
    AdamWConfig oc = adamw_defaults();
    oc.lr = 1e-3f;
    adamw_init(&opt, &oc, a.n_params);
    int in[B * T], tg[B * T];
    make_batch(in, tg, cfg.vocab_size);
    float dlogp[B * T];
    model_forward(&a, in, tg, B, T);
    model_ce_loss(&a, dlogp);
    model_backward(&a, dlogp);
    adamw_step(&opt, &a);
    char dir[128];
    snprintf(dir, sizeof dir, "%s/ckpt", tmpdir);
    cJSON *state = cJSON_CreateObject();
    cJSON_AddNumberToObject(state, "data_cursor", 17);
    EXPECT(checkpoint_save(dir, &a, &opt, NULL, state, false) == 0, "save: %s", grpo_error());
    // saving again over an existing checkpoint replaces it whole
    EXPECT(checkpoint_save(dir, &a, &opt, NULL, state, false) == 0, "re-save: %s", grpo_error());
    Model c;
    EXPECT(model_load(&c, dir) == 0, "model_load: %s", grpo_error());
    EXPECT(c.n_params == a.n_params && !memcmp(c.params, a.params, a.n_params * sizeof(float)),
           "weights not bit-exact after save/load");
    model_free(&c);
    model_build(&b, &cfg);
    AdamW opt2;
    adamw_init(&opt2, &oc, b.n_params);
    cJSON *st2 = NULL;
    EXPECT(checkpoint_load(dir, &b, &opt2, &st2) == 0, "checkpoint_load: %s", grpo_error());
    EXPECT(!memcmp(opt.state, opt2.state, 2 * a.n_params * sizeof(float)) && opt2.step == 1,
           "optimizer state not bit-exact");
    EXPECT(st2 && cJSON_GetObjectItem(st2, "data_cursor")->valueint == 17, "trainer state lost");
    // bf16 weights load within bf16 rounding
    char p16[160];
    snprintf(p16, sizeof p16, "%s/bf16.safetensors", tmpdir);
    EXPECT(model_save_weights(&a, p16, true) == 0, "bf16 save: %s", grpo_error());
    EXPECT(model_load_weights(&b, p16) == 0, "bf16 load: %s", grpo_error());
    double worst = 0;
    for (size_t i = 0; i < a.n_params; i++) {
        double e = fabs(a.params[i] - b.params[i]) / (fabs(a.params[i]) + 1e-30);
        worst = e > worst ? e : worst;
    }
    EXPECT(worst <= 1.0 / 256, "bf16 relative error %g", worst);
    cJSON_Delete(state);
    cJSON_Delete(st2);
    adamw_free(&opt), adamw_free(&opt2);
    model_free(&a), model_free(&b);
}

// Trains `steps` AdamW steps on fixed sequences; returns the last loss and leaves the weights in m.
static float train(Model *m, AdamW *opt, const int *in, const int *tg, int steps, float gamma) {
    float dlogp[B * T], loss = 0;
    for (int s = 0; s < steps; s++) {
        model_zero_grad(m);
        model_forward(m, in, tg, B, T);
        loss = model_ce_loss(m, dlogp);
        model_backward(m, dlogp);
        adamw_step(opt, m);
        model_update_router_bias(m, gamma);
    }
    return loss;
}

static void test_determinism_and_overfit(void) {
    Model a, b;
    ModelConfig cfg;
    rng = 99;
    if (build_tiny(&a, &cfg) != 0 || (rng = 99, build_tiny(&b, &cfg)) != 0) { EXPECT(0, "%s", grpo_error()); return; }
    a.count_load = b.count_load = true;
    AdamWConfig oc = adamw_defaults();
    oc.lr = 1e-2f, oc.weight_decay = 0.0f, oc.warmup_steps = 5, oc.schedule = LR_CONSTANT;
    AdamW oa, ob;
    adamw_init(&oa, &oc, a.n_params);
    adamw_init(&ob, &oc, b.n_params);
    int in[B * T], tg[B * T];
    make_batch(in, tg, cfg.vocab_size);
    tg[3] = in[4];
    float la = train(&a, &oa, in, tg, 150, 1e-3f);
    float lb = train(&b, &ob, in, tg, 150, 1e-3f);
    EXPECT(la == lb && !memcmp(a.params, b.params, a.n_params * sizeof(float)), "two seeded runs differ");
    EXPECT(la < 0.05f, "tiny model did not memorise %d sequences: loss %.4f after 150 steps", B, la);
    fprintf(stderr, "     memorisation: loss %.4f after 150 steps\n", la);
    // the aux-loss-free balancing moved the selection bias
    const ParamInfo *bias = NULL;
    for (int i = 0; i < a.n_info && !bias; i++)
        if (strstr(a.info[i].name, "e_score_correction_bias")) bias = &a.info[i];
    double moved = 0;
    for (size_t j = 0; bias && j < bias->size; j++) moved += fabs(a.params[bias->offset + j]);
    EXPECT(bias && moved > 0, "router selection bias never updated");
    adamw_free(&oa), adamw_free(&ob);
    model_free(&a), model_free(&b);
}

static void test_router_bias_rule(void) {
    Model m;
    ModelConfig cfg;
    if (build_tiny(&m, &cfg) != 0) { EXPECT(0, "%s", grpo_error()); return; }
    int E = cfg.n_routed_experts, l = cfg.first_k_dense_replace;
    float *bias = m.layers[l].score_bias;
    memset(bias, 0, sizeof(float) * E);
    for (int e = 0; e < E; e++) m.expert_load[l * E + e] = (float)e; // mean (E-1)/2
    model_update_router_bias(&m, 0.1f);
    EXPECT(bias[0] == 0.1f && bias[E - 1] == -0.1f, "underloaded experts gain, overloaded lose: %g %g", bias[0],
           bias[E - 1]);
    EXPECT(m.expert_load[l * E + 1] == 0.0f, "load counts reset after the update");
    model_free(&m);
}

static void test_param_counts(void) {
    const char *names[] = {"tiny", "small", "deepseek-v2-lite", "deepseek-v3"};
    // DeepSeek-V3's published 685B counts the MTP module's own copies of the embedding and head (2 x 0.93B),
    // which grpo.c shares with the main model: 671B + the MTP block.
    double lo[] = {1e4, 20e6, 15.5e9, 680e9}, hi[] = {1e6, 50e6, 16.0e9, 684e9};
    for (int i = 0; i < 4; i++) {
        char path[128];
        snprintf(path, sizeof path, "configs/model/%s.json", names[i]);
        ModelConfig c;
        if (config_load(&c, path) != 0) { EXPECT(0, "%s: %s", path, grpo_error()); continue; }
        double n = (double)config_param_count(&c);
        EXPECT(n >= lo[i] && n <= hi[i], "%s: %.4g parameters, expected [%.4g, %.4g]", names[i], n, lo[i], hi[i]);
        fprintf(stderr, "     %s: %.4g parameters\n", names[i], n);
    }
}

static void test_adamw(void) {
    AdamWConfig c = adamw_defaults();
    c.lr = 1.0f, c.warmup_steps = 10, c.total_steps = 110, c.min_lr_ratio = 0.1f, c.schedule = LR_COSINE;
    EXPECT_NEAR(adamw_lr(&c, 0), 0.1, 1e-6, "warmup step 0");
    EXPECT_NEAR(adamw_lr(&c, 9), 1.0, 1e-6, "end of warmup");
    EXPECT_NEAR(adamw_lr(&c, 60), 0.55, 1e-5, "cosine midpoint");
    EXPECT_NEAR(adamw_lr(&c, 110), 0.1, 1e-6, "cosine end");
    EXPECT_NEAR(adamw_lr(&c, 500), 0.1, 1e-6, "after the end");
    c.schedule = LR_CONSTANT;
    EXPECT_NEAR(adamw_lr(&c, 60), 1.0, 1e-6, "constant");
    // one step by hand: a norm weight (no decay) and a matrix entry (decay), with clipping
    Model m;
    ModelConfig cfg;
    if (build_tiny(&m, &cfg) != 0) { EXPECT(0, "%s", grpo_error()); return; }
    model_zero_grad(&m);
    const ParamInfo *norm = model_param(&m, "model.norm.weight"), *mat = model_param(&m, "lm_head.weight");
    const ParamInfo *bias = NULL;
    for (int i = 0; i < m.n_info && !bias; i++)
        if (!m.info[i].trainable) bias = &m.info[i];
    m.grads[norm->offset] = 3.0f;
    m.grads[mat->offset] = 4.0f; // global norm 5
    if (bias) m.grads[bias->offset] = 100.0f; // not trained: neither counted nor applied
    float w0 = m.params[norm->offset], w1 = m.params[mat->offset], w2 = m.params[mat->offset + 1], b0 = bias ? m.params[bias->offset] : 0;
    AdamWConfig oc = adamw_defaults();
    oc.lr = 0.01f, oc.weight_decay = 0.1f, oc.grad_clip = 1.0f, oc.beta1 = 0.9f, oc.beta2 = 0.99f, oc.eps = 1e-8f;
    AdamW opt;
    adamw_init(&opt, &oc, m.n_params);
    float norm_before = adamw_step(&opt, &m);
    EXPECT_NEAR(norm_before, 5.0, 1e-6, "reported gradient norm");
    // after clipping g = 0.6, 0.8; first step: mhat = g, vhat = g^2 -> update = lr * sign(g)
    EXPECT_NEAR(m.params[norm->offset], w0 - 0.01 * (0.6 / (0.6 + 1e-8)), 1e-6, "norm weight update (no decay)");
    EXPECT_NEAR(m.params[mat->offset], w1 - 0.01 * (0.8 / (0.8 + 1e-8) + 0.1 * w1), 1e-6, "matrix update with decay");
    EXPECT(!bias || m.params[bias->offset] == b0, "the selection bias is not an AdamW parameter");
    EXPECT_NEAR(m.params[mat->offset + 1], w2 * (1.0 - 0.01 * 0.1), 1e-6, "a zero-gradient entry only decays");
    adamw_free(&opt);
    model_free(&m);
}

static void test_bad_inputs(void) {
    Model m;
    ModelConfig cfg;
    if (build_tiny(&m, &cfg) != 0) { EXPECT(0, "%s", grpo_error()); return; }
    int in[B * T] = {0}, tg[B * T] = {0};
    in[5] = cfg.vocab_size;
    EXPECT(model_forward(&m, in, tg, B, T) != 0 && strstr(grpo_error(), "position 5"), "token out of range: %s",
           grpo_error());
    in[5] = 0;
    EXPECT(model_forward(&m, in, tg, B + 1, T) != 0 && strstr(grpo_error(), "exceeds"), "batch too big: %s",
           grpo_error());
    EXPECT(model_alloc_acts(&m, 1, cfg.max_position_embeddings + 1) != 0 &&
               strstr(grpo_error(), "max_position_embeddings"), "too long: %s", grpo_error());
    // weights of another shape: the error names the tensor and both shapes
    char path[160];
    snprintf(path, sizeof path, "%s/w.safetensors", tmpdir);
    model_save_weights(&m, path, false);
    ModelConfig c2 = cfg;
    c2.hidden_size = cfg.hidden_size * 2;
    Model m2;
    model_build(&m2, &c2);
    EXPECT(model_load_weights(&m2, path) != 0 && strstr(grpo_error(), "model.embed_tokens.weight") &&
               strstr(grpo_error(), "expected shape"), "shape mismatch: %s", grpo_error());
    model_free(&m2);
    // fewer layers in the config than in the file: unexpected tensors are named
    c2 = cfg;
    c2.num_hidden_layers = cfg.num_hidden_layers - 1;
    c2.num_nextn_predict_layers = 0;
    model_build(&m2, &c2);
    EXPECT(model_load_weights(&m2, path) != 0 && strstr(grpo_error(), "unexpected tensor"), "extra tensor: %s",
           grpo_error());
    model_free(&m2);
    // more layers than the file has: the missing tensor is named
    c2 = cfg;
    c2.num_hidden_layers = cfg.num_hidden_layers + 1;
    model_build(&m2, &c2);
    EXPECT(model_load_weights(&m2, path) != 0 && strstr(grpo_error(), "not found"), "missing tensor: %s", grpo_error());
    model_free(&m2);
    // a truncated file
    size_t n;
    char *data = read_file(path, &n);
    write_file_atomic(path, data, n / 2);
    free(data);
    EXPECT(model_load_weights(&m, path) != 0, "truncated file accepted");
    // a directory without weights
    EXPECT(model_load(&m2, tmpdir) != 0, "empty model directory accepted");
    model_free(&m);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/grpo-test-model-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    RUN_TEST(test_save_load_roundtrip);
    RUN_TEST(test_determinism_and_overfit);
    RUN_TEST(test_router_bias_rule);
    RUN_TEST(test_param_counts);
    RUN_TEST(test_adamw);
    RUN_TEST(test_bad_inputs);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary();
}
