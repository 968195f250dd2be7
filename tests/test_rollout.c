// The rollout engine: absorbed-MLA decode against the model's full forward, engine completions against a
// cache-free one-sequence-at-a-time reference, sampler distributions against exact probabilities, stop
// strings and multi-byte characters across tokens, and the cache budget error.
#include "common/error.h"
#include "policy/layers.h"
#include "rollout/rollout.h"
#include "test.h"
#include <stdlib.h>
#include <unistd.h>

static unsigned long long rng = 11;
static unsigned urand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)(rng >> 33);
}

static int build(Model *m, void (*tweak)(ModelConfig *), float std) {
    ModelConfig cfg;
    TRY(config_load(&cfg, "configs/model/tiny.json"));
    if (tweak) tweak(&cfg);
    TRY(model_build(m, &cfg));
    model_init_random(m, 3, std);
    for (int i = 0; i < m->n_info; i++) // norms and the selection bias away from their neutral values
        if (m->info[i].ndim == 1)
            for (size_t j = 0; j < m->info[i].size; j++)
                m->params[m->info[i].offset + j] = 1.0f + 0.3f * ((urand() % 1000) / 1000.0f - 0.5f);
    return 0;
}

static void no_qlora_no_yarn(ModelConfig *c) {
    c->q_lora_rank = 0;
    c->yarn.enabled = false;
}
static void yarn_mscale(ModelConfig *c) { // mscale != mscale_all_dim: the softmax scale and the rotary magnitude both move
    c->yarn.factor = 8;
    c->yarn.mscale = 0.9f;
    c->yarn.mscale_all_dim = 0.7f;
}

// Logits of every position of one sequence from the expanded full forward.
static void full_logits(Model *m, float *out, const int *ids, int T) {
    model_forward_hidden(m, ids, 1, T);
    matmul_forward(out, m->xf, m->lm_head, T, m->cfg.hidden_size, m->cfg.vocab_size);
}

static double rel_err(const float *a, const float *b, int n) {
    double d = 0, s = 0;
    for (int i = 0; i < n; i++) {
        d = fmax(d, fabs(a[i] - b[i]));
        s = fmax(s, fabs(b[i]));
    }
    return d / (s + 1e-12);
}

// Prefill k tokens, then decode the rest one by one (two sequences in one batch, at different positions):
// every position's logits equal the full forward's.
static void check_absorbed(const char *name, void (*tweak)(ModelConfig *)) {
    Model m;
    EXPECT(build(&m, tweak, 0.1f) == 0, "%s: %s", name, grpo_error());
    enum { T = 24, P = 4 };
    int V = m.cfg.vocab_size, C = m.cfg.hidden_size, ids[2][T];
    for (int s = 0; s < 2; s++)
        for (int t = 0; t < T; t++) ids[s][t] = urand() % V;
    EXPECT(model_alloc_acts(&m, 2, T) == 0, "%s", grpo_error());
    float *ref = malloc(sizeof(float) * 2 * T * V), *got = malloc(sizeof(float) * 2 * T * V);
    for (int s = 0; s < 2; s++) full_logits(&m, ref + (size_t)s * T * V, ids[s], T);
    LatentCache kc;
    DecodeScratch ds;
    PackedModel pk;
    EXPECT(latent_cache_init(&kc, &m.cfg, 2 * T / P, P) == 0 && decode_scratch_init(&ds, &m.cfg, 2, T) == 0 &&
               packed_model_init(&pk, &m) == 0,
           "%s", grpo_error());
    packed_model_pack(&pk, &m);
    int pages[2][T / P], prefill[2] = {1, 7};
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < T / P; i++) pages[s][i] = latent_cache_take(&kc);
        model_forward_hidden(&m, ids[s], 1, prefill[s]);
        decode_cache_prompt(&kc, &m, pages[s], prefill[s], 0);
        for (int t = 0; t < prefill[s]; t++)
            matmul_forward(got + ((size_t)s * T + t) * V, m.xf + (size_t)t * C, m.lm_head, 1, C, V);
    }
    int *tables[2] = {pages[0], pages[1]};
    for (int step = 0;; step++) {
        int tok[2], pos[2], row[2], n = 0;
        for (int s = 0; s < 2; s++) {
            int p = prefill[s] + step;
            if (p >= T) continue;
            tok[n] = ids[s][p];
            pos[n] = p;
            row[n++] = s;
        }
        if (!n) break;
        int *tb[2] = {tables[row[0]], n > 1 ? tables[row[1]] : NULL};
        decode_step(&m, &pk, &kc, &ds, tok, pos, tb, n);
        for (int i = 0; i < n; i++)
            matmul_packed_forward(got + ((size_t)row[i] * T + pos[i]) * V, V, m.xf + (size_t)i * C, C, pk.lm_head, 1,
                                  C, V);
    }
    for (int s = 0; s < 2; s++)
        for (int t = 0; t < T; t++) {
            double e = rel_err(got + ((size_t)s * T + t) * V, ref + ((size_t)s * T + t) * V, V);
            EXPECT(e < 2e-5, "%s: sequence %d position %d: absorbed decode logits differ by %.3g (relative)", name, s,
                   t, e);
        }
    free(ref);
    free(got);
    latent_cache_free(&kc);
    decode_scratch_free(&ds);
    packed_model_free(&pk);
    model_free(&m);
}
static void test_absorbed_tiny(void) { check_absorbed("tiny (q_lora, YaRN, MoE)", NULL); }
static void test_absorbed_no_qlora(void) { check_absorbed("no query compression, no YaRN", no_qlora_no_yarn); }
static void test_absorbed_yarn_mscale(void) { check_absorbed("YaRN factor 8, mscale 0.9/0.7", yarn_mscale); }

static void test_cache_bytes(void) {
    ModelConfig c;
    EXPECT(config_load(&c, "configs/model/tiny.json") == 0, "%s", grpo_error());
    // tiny: 3 layers x (32 + 8) floats vs 3 layers x 4 heads x (24 + 16) floats
    EXPECT(latent_cache_token_bytes(&c) == 4 * 3 * 40, "latent bytes %zu", latent_cache_token_bytes(&c));
    EXPECT(expanded_cache_token_bytes(&c) == 4 * 3 * 4 * 40, "expanded bytes %zu", expanded_cache_token_bytes(&c));
}

// grpo.c's byte-level tokenizer: every byte its own token (id 9 + byte).
static Tokenizer *default_tokenizer(void) {
    char path[] = "/tmp/grpo-rollout-tok-XXXXXX";
    close(mkstemp(path));
    Tokenizer *tok = tokenizer_write_default(path) == 0 ? tokenizer_load(path) : NULL;
    unlink(path);
    EXPECT(tok != NULL, "default tokenizer: %s", grpo_error());
    return tok;
}

// The reference: one sequence alone, no cache, the full forward over everything so far at every token.
static void reference_completion(Model *m, const Tokenizer *tok, const RolloutConfig *rc, const int *prompt,
                                 int Tp, uint64_t seed, int p, int g, int *ids, float *lps, int *n, int *finish) {
    int V = m->cfg.vocab_size, C = m->cfg.hidden_size, seq[256];
    float *logits = malloc(sizeof(float) * V), *probs = malloc(sizeof(float) * V);
    int *kept = malloc(sizeof(int) * V);
    memcpy(seq, prompt, sizeof(int) * Tp);
    uint64_t stream = rng_stream(seed, p, g);
    TokText text = {0};
    *n = 0;
    *finish = FINISH_LENGTH;
    for (int k = 0; k < rc->max_new_tokens; k++) {
        int T = Tp + k;
        model_forward_hidden(m, seq, 1, T);
        matmul_forward(logits, m->xf + (size_t)(T - 1) * C, m->lm_head, 1, C, V);
        int id = sampler_sample(logits, V, &rc->sampler, rng_uniform(stream, k), probs, kept);
        ids[k] = seq[T] = id;
        lps[k] = sampler_logprob(logits, V, rc->sampler.temperature, id, probs);
        (*n)++;
        bool stop = false;
        for (int i = 0; i < rc->n_stop_ids; i++) stop |= id == rc->stop_ids[i];
        if (id < tokenizer_vocab_size(tok)) tokenizer_decode(&text, tok, &id, 1, TOK_SKIP_SPECIAL);
        for (int i = 0; i < rc->n_stop; i++) stop |= text.s && strstr(text.s, rc->stop[i]) != NULL;
        if (stop) { *finish = FINISH_STOP; break; }
    }
    tok_text_free(&text);
    free(logits);
    free(probs);
    free(kept);
}

// Continuous batching (a batch smaller than the 4 x G sequences, a budget that makes groups wait) and group
// sharing give exactly the reference's tokens, and log-probs within fp32 noise. With pages of P tokens and
// prompts of lens[] tokens (pages of 32 and longer prompts: the samples' attention over their shared pages runs
// as one product per group, decode.c's attend_group), groups of G (<= 4) and batches of max_batch (room for
// several groups: their prompts are prefilled together, padded to the longest).
static void check_engine(const char *name, int P, const int lens[4], long budget, int G, int max_batch) {
    Model m;
    EXPECT(build(&m, NULL, 0.6f) == 0, "%s", grpo_error());
    Tokenizer *tok = default_tokenizer();
    RolloutConfig rc = rollout_defaults();
    rc.group_size = G;
    rc.max_new_tokens = 20;
    rc.max_batch = max_batch;
    rc.page_tokens = P;
    rc.token_budget = budget;
    rc.sampler.temperature = 0.9f;
    rc.sampler.top_p = 0.95f;
    rc.record_routes = true;
    // Frequent stops, so that sequences leave at different times and waiting ones join.
    int stops[] = {1, 9 + 'a', 9 + 'e', 9 + 'o', 300, 301, 302, 303};
    for (int i = 0; i < 8; i++) rc.stop_ids[rc.n_stop_ids++] = stops[i];
    rc.stop[rc.n_stop++] = "xy";
    int *prompts[4], max_prompt = 0;
    for (int p = 0; p < 4; p++) {
        max_prompt = lens[p] > max_prompt ? lens[p] : max_prompt;
        prompts[p] = malloc(sizeof(int) * lens[p]);
        for (int t = 0; t < lens[p]; t++) prompts[p][t] = urand() % 265;
    }
    RolloutEngine *e = rollout_create(&m, tok, &rc, max_prompt);
    EXPECT(e != NULL, "%s: %s", name, grpo_error());
    Completion out[16];
    RolloutStats st;
    EXPECT(model_alloc_acts(&m, 1, max_prompt + 24) == 0, "%s", grpo_error()); // the reference's full forwards
    EXPECT(rollout_generate(e, (const int *const *)prompts, lens, 4, 42, out, NULL, NULL, &st) == 0, "%s",
           grpo_error());
    int lengths_seen = 0, stopped = 0, last_n = -1;
    for (int p = 0; p < 4; p++)
        for (int g = 0; g < G; g++) {
            Completion *c = &out[p * G + g];
            int ids[24], n, fin;
            float lps[24];
            reference_completion(&m, tok, &rc, prompts[p], lens[p], 42, p, g, ids, lps, &n, &fin);
            EXPECT(c->prompt_idx == p && c->sample_idx == g, "order");
            EXPECT(c->n == n && (int)c->finish == fin, "%s: prompt %d sample %d: %d tokens (%s) vs reference %d (%s)",
                   name, p, g, c->n, finish_reason_name(c->finish), n, finish_reason_name(fin));
            for (int k = 0; k < n && k < c->n; k++) {
                EXPECT(c->ids[k] == ids[k], "%s: prompt %d sample %d token %d: %d vs reference %d", name, p, g, k,
                       c->ids[k], ids[k]);
                EXPECT_NEAR(c->logprobs[k], lps[k], 1e-4, "log-prob");
            }
            EXPECT(c->n_route_pos == lens[p] + c->n - 1, "route positions %d", c->n_route_pos);
            for (int i = 0; i < c->n_route_pos * 2 * 2; i++)
                EXPECT(c->routes[i] >= 0 && c->routes[i] < 8, "route %d = %d", i, c->routes[i]);
            lengths_seen += c->n != last_n;
            last_n = c->n;
            stopped += c->finish == FINISH_STOP;
        }
    EXPECT(lengths_seen >= 3 && stopped >= 2, "the test needs varied lengths: %d changes, %d stopped", lengths_seen,
           stopped);
    EXPECT(st.max_live <= max_batch && st.decode_tokens > 0, "max live %d", st.max_live);
    EXPECT((max_batch / G >= 2) == (st.prefill_forwards < 4), "%s: %d prefill forwards for 4 prompts", name,
           st.prefill_forwards);
    EXPECT((P >= 32) == (st.shared_steps > 0), "%s: %ld sequence steps attended in share groups", name,
           st.shared_steps);
    // The same seed again: the same completions; another seed: different ones.
    Completion again[16];
    EXPECT(rollout_generate(e, (const int *const *)prompts, lens, 4, 42, again, NULL, NULL, NULL) == 0, "%s",
           grpo_error());
    int same = 1;
    for (int i = 0; i < 4 * G; i++)
        same &= again[i].n == out[i].n && !memcmp(again[i].ids, out[i].ids, sizeof(int) * out[i].n) &&
                again[i].text_len == out[i].text_len && !memcmp(again[i].text, out[i].text, out[i].text_len);
    EXPECT(same, "a second rollout with the same seed differs");
    for (int i = 0; i < 4 * G; i++) completion_free(&again[i]);
    EXPECT(rollout_generate(e, (const int *const *)prompts, lens, 4, 43, again, NULL, NULL, NULL) == 0, "%s",
           grpo_error());
    same = 1;
    for (int i = 0; i < 4 * G; i++)
        same &= again[i].n == out[i].n && !memcmp(again[i].ids, out[i].ids, sizeof(int) * out[i].n);
    EXPECT(!same, "another seed gave the same rollout");
    for (int i = 0; i < 4 * G; i++) {
        completion_free(&out[i]);
        completion_free(&again[i]);
    }
    // A group that cannot fit the budget: an error before decoding, with the numbers.
    int big = lens[3], *bp = prompts[3];
    char want[64];
    snprintf(want, sizeof want, "token budget is %ld tokens", budget);
    rc.group_size = 5;
    rc.max_new_tokens = budget / 4;
    RolloutEngine *small = rollout_create(&m, tok, &rc, max_prompt);
    EXPECT(small && rollout_generate(small, (const int *const *)&bp, &big, 1, 1, out, NULL, NULL, NULL) != 0 &&
               strstr(grpo_error(), want),
           "budget error: %s", grpo_error());
    rollout_free(small);
    rollout_free(e);
    for (int p = 0; p < 4; p++) free(prompts[p]);
    tokenizer_free(tok);
    model_free(&m);
}

static void test_engine_matches_reference(void) { check_engine("pages of 4", 4, (int[]){5, 9, 1, 12}, 100, 3, 5); }
static void test_engine_shared_pages(void) { check_engine("pages of 32", 32, (int[]){70, 40, 33, 90}, 640, 3, 5); }
static void test_engine_batched_prefill(void) {
    check_engine("prefill of 3 prompts at once", 8, (int[]){5, 17, 1, 12}, 400, 2, 6);
}

// A model rigged so that greedy decoding follows a chain of tokens: blocks zeroed (the residual passes
// through), each chain token's embedding a distinct unit vector, and the head scoring the chain's
// successor of that vector.
static void rig_chain(Model *m, const int *chain, int n) {
    memset(m->params, 0, sizeof(float) * m->n_params);
    for (int i = 0; i < m->n_info; i++)
        if (m->info[i].ndim == 1 && !strstr(m->info[i].name, "bias"))
            for (size_t j = 0; j < m->info[i].size; j++) m->params[m->info[i].offset + j] = 1.0f;
    int C = m->cfg.hidden_size;
    for (int i = 0; i < n; i++) m->embed[(size_t)chain[i] * C + i] = 1.0f;
    for (int i = 0; i + 1 < n; i++) m->lm_head[(size_t)chain[i + 1] * C + i] = 20.0f;
}

static void chain_rollout(Model *m, const Tokenizer *tok, const char *script, const char *stop, Completion *c) {
    int chain[64], n = 0;
    for (const unsigned char *s = (const unsigned char *)script; *s; s++) chain[n++] = 9 + *s;
    rig_chain(m, chain, n);
    RolloutConfig rc = rollout_defaults();
    rc.group_size = 2;
    rc.max_new_tokens = 30;
    rc.max_batch = 2;
    rc.sampler.temperature = 0;
    if (stop) rc.stop[rc.n_stop++] = stop;
    RolloutEngine *e = rollout_create(m, tok, &rc, 4);
    const int *pr = chain;
    int one = 1;
    EXPECT(e && rollout_generate(e, &pr, &one, 1, 5, c, NULL, NULL, NULL) == 0, "%s", grpo_error());
    completion_free(&c[1]);
    rollout_free(e);
}

static void test_stop_strings_across_tokens(void) {
    Model m;
    EXPECT(build(&m, NULL, 0.1f) == 0, "%s", grpo_error());
    Tokenizer *tok = default_tokenizer();
    // Every byte is its own token: "TOP" spans three tokens, é two and € three.
    const char *script = ">\xc3\xa9\xe2\x82\xac" "STOP!z";
    Completion c[2];
    chain_rollout(&m, tok, script, "TOP", c);
    EXPECT(c[0].finish == FINISH_STOP && c[0].text_len == 9 && !memcmp(c[0].text, "\xc3\xa9\xe2\x82\xac" "STOP", 9),
           "stop across tokens: '%s' (%s, %d tokens)", c[0].text, finish_reason_name(c[0].finish), c[0].n);
    EXPECT(c[0].n == 9, "tokens up to the one completing the stop string: %d", c[0].n);
    completion_free(&c[0]);
    chain_rollout(&m, tok, script, "\xe2\x82\xac", c); // the stop string is one character split over 3 tokens
    EXPECT(c[0].finish == FINISH_STOP && c[0].n == 5 && !strcmp(c[0].text, "\xc3\xa9\xe2\x82\xac"),
           "multi-byte stop: '%s' (%d tokens)", c[0].text, c[0].n);
    completion_free(&c[0]);
    chain_rollout(&m, tok, script, NULL, c); // no stop: the chain ends ('z' scores nothing: greedy takes id 0)
    EXPECT(!strncmp(c[0].text, "\xc3\xa9\xe2\x82\xac" "STOP!z", 12), "no stop: '%s'", c[0].text);
    completion_free(&c[0]);
    tokenizer_free(tok);
    model_free(&m);
}

// Draw frequencies over many random numbers against probabilities computed here by hand.
static void check_draws(const float *logits, int V, SamplerParams sp, const double *expect, const char *what) {
    float probs[16];
    int kept[16], counts[16] = {0}, n = 200000;
    uint64_t stream = rng_stream(7, 1, 2);
    for (int k = 0; k < n; k++) counts[sampler_sample(logits, V, &sp, rng_uniform(stream, k), probs, kept)]++;
    sampler_probs(probs, kept, logits, V, &sp);
    for (int i = 0; i < V; i++) {
        EXPECT_NEAR(probs[i], expect[i], 1e-5, what);
        double f = counts[i] / (double)n, sd = sqrt(expect[i] * (1 - expect[i]) / n);
        EXPECT(fabs(f - expect[i]) <= 5 * sd + 1e-9, "%s: token %d drawn %.4f, exact %.4f", what, i, f, expect[i]);
    }
}

static void test_sampler_distributions(void) {
    double p[6] = {0.4, 0.25, 0.15, 0.1, 0.06, 0.04};
    float logits[6];
    for (int i = 0; i < 6; i++) logits[i] = (float)log(p[i]) + 3.0f; // a shift changes nothing
    SamplerParams sp = sampler_defaults();
    check_draws(logits, 6, sp, p, "temperature 1");
    sp.top_p = 0.7f; // 0.4 + 0.25 = 0.65 < 0.7 <= 0.8: three kept, over 0.8
    check_draws(logits, 6, sp, (double[]){0.5, 0.3125, 0.1875, 0, 0, 0}, "top-p 0.7");
    sp = sampler_defaults();
    sp.top_k = 2;
    check_draws(logits, 6, sp, (double[]){0.4 / 0.65, 0.25 / 0.65, 0, 0, 0, 0}, "top-k 2");
    sp = sampler_defaults();
    sp.min_p = 0.3f; // threshold 0.12: 0.4, 0.25, 0.15 stay
    check_draws(logits, 6, sp, (double[]){0.5, 0.3125, 0.1875, 0, 0, 0}, "min-p 0.3");
    sp.min_p = 0.5f; // threshold 0.2
    check_draws(logits, 6, sp, (double[]){0.4 / 0.65, 0.25 / 0.65, 0, 0, 0, 0}, "min-p 0.5");
    sp = sampler_defaults();
    sp.temperature = 2.0f; // p^(1/2), renormalised
    double q[6], s = 0;
    for (int i = 0; i < 6; i++) s += (q[i] = sqrt(p[i]));
    for (int i = 0; i < 6; i++) q[i] /= s;
    check_draws(logits, 6, sp, q, "temperature 2");
    sp.top_k = 3; // after temperature: the three largest of q
    sp.top_p = 0.5f;
    double q3 = q[0] + q[1] + q[2];
    // q0/q3 = 0.43 < 0.5, + q1/q3 = 0.77: two kept
    check_draws(logits, 6, sp, (double[]){q[0] / (q[0] + q[1]), q[1] / (q[0] + q[1]), 0, 0, 0, 0},
                "temperature 2, top-k 3, top-p 0.5");
    EXPECT(q[0] / q3 < 0.5 && (q[0] + q[1]) / q3 >= 0.5, "hand calculation premise");
    sp = sampler_defaults();
    sp.temperature = 0;
    float tie[4] = {1, 3, 3, 2};
    float pr[4];
    int kp[4];
    EXPECT(sampler_sample(tie, 4, &sp, 0.99f, pr, kp) == 1, "greedy: lowest id among ties");
    float scratch[6];
    EXPECT_NEAR(sampler_logprob(logits, 6, 1.0f, 2, scratch), log(0.15), 1e-6, "log-prob at temperature 1");
    EXPECT_NEAR(sampler_logprob(logits, 6, 2.0f, 2, scratch), log(q[2]), 1e-6, "log-prob at temperature 2");
    sp = sampler_defaults();
    sp.top_p = 0;
    EXPECT(sampler_check(&sp) != 0 && strstr(grpo_error(), "top_p"), "top_p 0 is refused: %s", grpo_error());
}

static void test_rng_streams(void) {
    // Independent of call order, different across streams, roughly uniform.
    uint64_t a = rng_stream(1, 0, 0), b = rng_stream(1, 0, 1), c = rng_stream(1, 1, 0);
    EXPECT(a != b && a != c && b != c, "streams collide");
    EXPECT(rng_uniform(a, 5) == rng_uniform(a, 5), "not a pure function");
    double mean = 0;
    for (int k = 0; k < 100000; k++) {
        float u = rng_uniform(b, k);
        EXPECT(u >= 0 && u < 1, "out of [0,1): %g", u);
        mean += u / 100000;
    }
    EXPECT(fabs(mean - 0.5) < 0.005, "mean %g", mean);
}

int main(void) {
    RUN_TEST(test_sampler_distributions);
    RUN_TEST(test_rng_streams);
    RUN_TEST(test_cache_bytes);
    RUN_TEST(test_absorbed_tiny);
    RUN_TEST(test_absorbed_no_qlora);
    RUN_TEST(test_absorbed_yarn_mscale);
    RUN_TEST(test_engine_matches_reference);
    RUN_TEST(test_engine_shared_pages);
    RUN_TEST(test_engine_batched_prefill);
    RUN_TEST(test_stop_strings_across_tokens);
    return test_summary();
}
