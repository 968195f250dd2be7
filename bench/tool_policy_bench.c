// The C side of bench/bench_policy.py: training-step and forward throughput of the CPU policy, the
// machine's measured sgemm peak, and peak memory, as one JSON line.
// usage: tool_policy_bench --config CFG --B b --T t [--threads n] [--steps s] [--json]
#include "cli/cli.h"
#include "common/error.h"
#include "policy/adamw.h"
#include "policy/layers.h"
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Peak resident memory of this process image in MB. VmHWM starts afresh at exec, unlike ru_maxrss,
// which would include the memory of the (Python) parent that forked us.
static double peak_rss_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %lf kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb / 1024.0;
}

static double sgemm_peak_gflops(void) {
    int n = 1024;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
    for (int i = 0; i < n * n; i++) a[i] = b[i] = 0.001f * (i % 97);
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double t = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double g = 2.0 * n * n * n / (now() - t) / 1e9;
        best = g > best ? g : best;
    }
    free(a), free(b), free(c);
    return best;
}

// Matmul FLOPs of one forward per token (routed experts at K/E), plus attention per sequence.
static double forward_flops(const Model *m, int B, int T) {
    const ModelConfig *c = &m->cfg;
    double per_tok = 0;
    for (int i = 0; i < m->n_info; i++) {
        const ParamInfo *p = &m->info[i];
        if (p->ndim < 2 || !strcmp(p->name, "model.embed_tokens.weight")) continue;
        double w = strstr(p->name, ".experts.") ? (double)c->num_experts_per_tok / c->n_routed_experts : 1.0;
        per_tok += 2.0 * p->size * w;
    }
    if (c->tie_word_embeddings) per_tok += 2.0 * c->vocab_size * c->hidden_size;
    double att = 2.0 * B * c->num_attention_heads * (double)T * T * (config_qk_head_dim(c) + c->v_head_dim) * m->n_blocks;
    return per_tok * B * T + att;
}

static int run(const char *config, int B, int T, int threads, int steps, bool json) {
    omp_set_num_threads(threads);
    ModelConfig cfg;
    TRY(config_load(&cfg, config));
    Model m;
    TRY(model_build(&m, &cfg));
    model_init_random(&m, 1, 0.02f);
    TRY(model_alloc_grads(&m));
    TRY(model_alloc_acts(&m, B, T));
    m.count_load = true;
    AdamWConfig oc = adamw_defaults();
    AdamW opt;
    TRY(adamw_init(&opt, &oc, m.n_params));
    int N = B * T;
    int *in = malloc(sizeof(int) * N), *tg = malloc(sizeof(int) * N);
    float *dlogp = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) in[i] = (i * 7919) % cfg.vocab_size, tg[i] = (i * 104729 + 1) % cfg.vocab_size;
    double t_train = 0, t_fwd = 0;
    for (int s = -2; s < steps; s++) { // two warm-up steps
        double t = now();
        model_zero_grad(&m);
        TRY(model_forward(&m, in, tg, B, T));
        model_ce_loss(&m, dlogp);
        model_backward(&m, dlogp);
        adamw_step(&opt, &m);
        model_update_router_bias(&m, 1e-3f);
        if (s >= 0) t_train += now() - t;
    }
    m.count_load = false;
    for (int s = -1; s < steps; s++) {
        double t = now();
        TRY(model_forward(&m, in, tg, B, T));
        if (s >= 0) t_fwd += now() - t;
    }
    double flops = forward_flops(&m, B, T);
    double rss = peak_rss_mb();
    double peak = sgemm_peak_gflops();
    double train_tok = (double)N * steps / t_train, fwd_tok = (double)N * steps / t_fwd;
    double train_gflops = 3.0 * flops * steps / t_train / 1e9;
    if (json)
        printf("{\"train_tok_s\": %.1f, \"fwd_tok_s\": %.1f, \"peak_rss_mb\": %.1f, \"sgemm_peak_gflops\": %.2f, "
               "\"train_gflops\": %.2f, \"fwd_gflops\": %.2f, \"params\": %zu}\n",
               train_tok, fwd_tok, rss, peak, train_gflops, flops * steps / t_fwd / 1e9, m.n_params);
    else
        printf("%s B=%d T=%d threads=%d: train %.0f tok/s (%.2f GFLOP/s, %.0f%% of sgemm peak %.1f), forward %.0f tok/s, "
               "peak RSS %.1f MB\n", config, B, T, threads, train_tok, train_gflops, 100 * train_gflops / peak, peak,
               fwd_tok, rss);
    free(in), free(tg), free(dlogp);
    adamw_free(&opt);
    model_free(&m);
    return 0;
}

int main(int argc, char **argv) {
    const char *config = "configs/model/tiny.json";
    long B = 8, T = 64, threads = 2, steps = 5;
    bool json = false, bad = false;
    for (int i = 1; i < argc; i++) {
        if (cli_str(argc, argv, &i, "--config", &config, &bad) || cli_int(argc, argv, &i, "--B", &B, &bad) ||
            cli_int(argc, argv, &i, "--T", &T, &bad) || cli_int(argc, argv, &i, "--threads", &threads, &bad) ||
            cli_int(argc, argv, &i, "--steps", &steps, &bad) || cli_flag(argv, i, "--json", &json))
            continue;
        fprintf(stderr, "usage: %s --config CFG --B b --T t [--threads n] [--steps s] [--json]\n", argv[0]);
        return 2;
    }
    if (bad) return 2;
    if (run(config, (int)B, (int)T, (int)threads, (int)steps, json) != 0) {
        fprintf(stderr, "tool_policy_bench: %s\n", grpo_error());
        return 1;
    }
    return 0;
}
