#define _GNU_SOURCE // memmem
#include "rollout/rollout.h"
#include "common/error.h"
#include "policy/layers.h"
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { PREFILL_TOKENS = 2048 }; // positions per prefill forward, about (see rollout_create)

RolloutConfig rollout_defaults(void) {
    RolloutConfig c = {.group_size = 8, .max_new_tokens = 256, .sampler = sampler_defaults(), .max_batch = 64,
                       .page_tokens = 64};
    c.token_budget = rollout_full_budget(&c, 512);
    return c;
}

long rollout_full_budget(const RolloutConfig *c, int max_prompt) {
    int P = c->page_tokens, G = c->group_size;
    long groups = c->max_batch / G > 0 ? c->max_batch / G : 1;
    // a sample's pages: its copy of the prompt's partial last page (at most P - 1 rows) and its new tokens
    long pages = (max_prompt + P - 1) / P + (long)G * ((P - 1 + c->max_new_tokens + P - 1) / P);
    return groups * pages * P;
}

const char *finish_reason_name(FinishReason f) { return f == FINISH_STOP ? "stop" : "length"; }

void completion_free(Completion *c) {
    free(c->ids);
    free(c->logprobs);
    free(c->text);
    free(c->routes);
    memset(c, 0, sizeof *c);
}

int prompt_encode_text(TokIds *out, TokText *text, Tokenizer *tok, const char *tmpl, const char *system,
                       const char *prompt) {
    size_t start = text->n;
    TRY(tokenizer_apply_template(text, tmpl, system, prompt));
    return tokenizer_encode(out, tok, text->s + start, text->n - start, TOK_ENCODE_DEFAULT);
}

int prompt_encode(TokIds *out, Tokenizer *tok, const char *tmpl, const char *system, const char *prompt) {
    TokText text = {0};
    int rc = prompt_encode_text(out, &text, tok, tmpl, system, prompt);
    tok_text_free(&text);
    return rc;
}

// A sequence slot of the live batch.
typedef struct {
    bool live;
    int group;             // index of its group in the call's group table
    int len;               // tokens in the cache (positions 0..len-1)
    int next;              // the token to feed at position len
    int n_pages;
    int *pages;            // (pages_per_seq) page table, a row of RolloutEngine.tables
    uint64_t stream;       // random stream of (prompt, sample)
    TokStream ts;
    TokText text;
    Completion *out;
} Seq;

typedef struct {
    int left;              // samples still decoding
    int prompt_pages;      // ceil(Tp / P): reserved until the last sample finishes
    int sample_pages;      // reserved by each sample until it finishes
} Group;

struct RolloutEngine {
    Model *m;
    const Tokenizer *tok;
    RolloutConfig cfg;
    int max_prompt, T_max, V;
    LatentCache kc;
    DecodeScratch ds;
    PackedModel pk;        // the model's matrices packed for small products, refreshed by every rollout
    int pages_per_seq;
    int reserved;          // pages promised to admitted groups
    int n_moe, K;
    int *moe_layers;       // (n_moe)
    Seq *seqs;             // (max_batch)
    int *tables;           // (max_batch, pages_per_seq)
    int prefill_batch;     // prompts prefilled together in one forward
    int *shared;           // (prefill_batch, pages_per_seq) the prompts' pages while their groups are admitted
    int *pf_inputs;        // (prefill_batch, max_prompt) the prefill forward's padded prompts
    int *pf_prompts;       // (prefill_batch) indices of the prompts being admitted
    int *step_tok, *step_pos, *step_seq; // (max_batch)
    int **step_pages;      // (max_batch)
    float *logits;         // (max_batch, V)
    float *probs;          // (threads, V)
    int *kept;             // (threads, V)
    int *drawn;            // (max_batch)
    float *drawn_lp;       // (max_batch)
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

void rollout_free(RolloutEngine *e) {
    if (!e) return;
    latent_cache_free(&e->kc);
    decode_scratch_free(&e->ds);
    packed_model_free(&e->pk);
    if (e->seqs)
        for (int i = 0; i < e->cfg.max_batch; i++) tok_text_free(&e->seqs[i].text);
    free(e->seqs);
    free(e->moe_layers);
    free(e->tables);
    free(e->shared);
    free(e->pf_inputs);
    free(e->pf_prompts);
    free(e->step_tok);
    free(e->step_pos);
    free(e->step_seq);
    free(e->step_pages);
    free(e->logits);
    free(e->probs);
    free(e->kept);
    free(e->drawn);
    free(e->drawn_lp);
    free(e);
}

static int check_config(const RolloutConfig *c, const Model *m, const Tokenizer *tok, int max_prompt) {
    CHECK(c->group_size >= 1, "group_size %d: expected >= 1", c->group_size);
    CHECK(c->max_new_tokens >= 1, "max_new_tokens %d: expected >= 1", c->max_new_tokens);
    CHECK(c->max_batch >= 1, "max_batch %d: expected >= 1", c->max_batch);
    CHECK(c->page_tokens >= 1, "page_tokens %d: expected >= 1", c->page_tokens);
    CHECK(c->n_stop >= 0 && c->n_stop <= ROLLOUT_MAX_STOP, "%d stop strings: at most %d", c->n_stop,
          ROLLOUT_MAX_STOP);
    for (int i = 0; i < c->n_stop; i++) CHECK(c->stop[i] && c->stop[i][0], "stop string %d is empty", i);
    CHECK(c->n_stop_ids >= 0 && c->n_stop_ids <= ROLLOUT_MAX_STOP, "%d stop ids: at most %d", c->n_stop_ids,
          ROLLOUT_MAX_STOP);
    for (int i = 0; i < c->n_stop_ids; i++)
        CHECK(c->stop_ids[i] >= 0 && c->stop_ids[i] < m->cfg.vocab_size,
              "stop id %d is outside the vocabulary [0, %d)", c->stop_ids[i], m->cfg.vocab_size);
    CHECK(tokenizer_vocab_size(tok) <= m->cfg.vocab_size,
          "the tokenizer has %d tokens but the model's vocab_size is %d", tokenizer_vocab_size(tok),
          m->cfg.vocab_size);
    CHECK(max_prompt >= 1, "max_prompt_tokens %d: expected >= 1", max_prompt);
    CHECK(max_prompt + c->max_new_tokens <= m->cfg.max_position_embeddings,
          "prompt %d + max_new_tokens %d tokens exceed the model's max_position_embeddings %d", max_prompt,
          c->max_new_tokens, m->cfg.max_position_embeddings);
    return sampler_check(&c->sampler);
}

// The model's activations serve prefill (prefill_batch prompts of up to max_prompt tokens) and the FFN of a
// decode step (max_batch tokens); grown when they are smaller (the model's owner may have reallocated them).
static int ensure_acts(RolloutEngine *e) {
    Model *m = e->m;
    int B = e->cfg.max_batch, Tp = e->max_prompt;
    if (m->acts && m->T_max >= Tp && m->B_max >= e->prefill_batch && (long)m->B_max * m->T_max >= B) return 0;
    int T = m->acts && m->T_max > Tp ? m->T_max : Tp;
    int Bm = m->acts && m->B_max > e->prefill_batch ? m->B_max : e->prefill_batch;
    while ((long)Bm * T < B) Bm++;
    return model_alloc_acts(m, Bm, T);
}

RolloutEngine *rollout_create(Model *m, const Tokenizer *tok, const RolloutConfig *cfg, int max_prompt) {
    if (check_config(cfg, m, tok, max_prompt) != 0) return NULL;
    RolloutEngine *e = grpo_calloc(1, sizeof *e, "rollout engine");
    if (!e) return NULL;
    e->m = m;
    e->tok = tok;
    e->cfg = *cfg;
    if (e->cfg.n_stop_ids == 0 && tokenizer_eos_id(tok) >= 0) e->cfg.stop_ids[e->cfg.n_stop_ids++] = tokenizer_eos_id(tok);
    const ModelConfig *c = &m->cfg;
    int B = cfg->max_batch, P = cfg->page_tokens, V = c->vocab_size, threads = omp_get_max_threads();
    e->max_prompt = max_prompt;
    e->T_max = max_prompt + cfg->max_new_tokens;
    e->V = V;
    e->pages_per_seq = (e->T_max + P - 1) / P;
    long n_pages = (cfg->token_budget + P - 1) / P;
    if (n_pages < 1 || n_pages > (1L << 30)) {
        ERR("token_budget %ld: expected between 1 and 2^30 pages of %d tokens", cfg->token_budget, P);
        goto fail;
    }
    if (latent_cache_init(&e->kc, c, (int)n_pages, P) != 0 || decode_scratch_init(&e->ds, c, B, e->T_max) != 0 ||
        packed_model_init(&e->pk, m) != 0)
        goto fail;
    // Prompts are prefilled a few at a time, about PREFILL_TOKENS positions per forward (a bigger product than
    // one prompt's, and the activations stay small), at most one batch's worth of groups.
    int groups_max = B / cfg->group_size > 0 ? B / cfg->group_size : 1;
    e->prefill_batch = PREFILL_TOKENS / max_prompt < 1 ? 1 : PREFILL_TOKENS / max_prompt;
    if (e->prefill_batch > groups_max) e->prefill_batch = groups_max;
    if (ensure_acts(e) != 0) goto fail;
    if (model_ensure_rope(m, e->T_max) != 0) goto fail;
    e->K = c->num_experts_per_tok;
    e->moe_layers = grpo_calloc(c->num_hidden_layers + 1, sizeof(int), "rollout");
    if (!e->moe_layers) goto fail;
    for (int l = 0; l < c->num_hidden_layers; l++)
        if (config_is_moe_layer(c, l)) e->moe_layers[e->n_moe++] = l;
    e->seqs = grpo_calloc(B, sizeof(Seq), "rollout sequences");
    e->tables = grpo_calloc((size_t)B * e->pages_per_seq, sizeof(int), "rollout page tables");
    e->shared = grpo_calloc((size_t)e->prefill_batch * e->pages_per_seq, sizeof(int), "rollout page tables");
    e->pf_inputs = grpo_calloc((size_t)e->prefill_batch * max_prompt, sizeof(int), "rollout prefill");
    e->pf_prompts = grpo_calloc(e->prefill_batch, sizeof(int), "rollout prefill");
    e->step_tok = grpo_calloc(B, sizeof(int), "rollout");
    e->step_pos = grpo_calloc(B, sizeof(int), "rollout");
    e->step_seq = grpo_calloc(B, sizeof(int), "rollout");
    e->step_pages = grpo_calloc(B, sizeof(int *), "rollout");
    e->logits = grpo_malloc(sizeof(float) * B * V, "rollout logits");
    e->probs = grpo_malloc(sizeof(float) * threads * V, "sampler scratch");
    e->kept = grpo_malloc(sizeof(int) * threads * V, "sampler scratch");
    e->drawn = grpo_calloc(B, sizeof(int), "rollout");
    e->drawn_lp = grpo_calloc(B, sizeof(float), "rollout");
    if (!e->seqs || !e->tables || !e->shared || !e->pf_inputs || !e->pf_prompts || !e->step_tok || !e->step_pos || !e->step_seq || !e->step_pages || !e->logits ||
        !e->probs || !e->kept || !e->drawn || !e->drawn_lp)
        goto fail;
    for (int i = 0; i < B; i++) e->seqs[i].pages = e->tables + (size_t)i * e->pages_per_seq;
    return e;
fail:
    rollout_free(e);
    return NULL;
}

size_t rollout_cache_bytes(const RolloutEngine *e) {
    return (size_t)e->kc.n_pages * e->kc.P * latent_cache_token_bytes(&e->m->cfg);
}

static int group_pages(const RolloutEngine *e, int Tp, int *prompt_pages, int *sample_pages) {
    int P = e->cfg.page_tokens;
    *prompt_pages = (Tp + P - 1) / P;
    *sample_pages = (Tp % P + e->cfg.max_new_tokens + P - 1) / P;
    return *prompt_pages + e->cfg.group_size * *sample_pages;
}

// Appends a drawn token to a sequence's completion and decides whether it ends it.
static int append_token(RolloutEngine *e, Seq *s, int id, float lp, bool *finished) {
    Completion *c = s->out;
    c->ids[c->n] = id;
    c->logprobs[c->n] = lp;
    c->n++;
    c->logprob_sum += lp;
    *finished = false;
    for (int i = 0; i < e->cfg.n_stop_ids; i++)
        if (id == e->cfg.stop_ids[i]) { c->finish = FINISH_STOP; *finished = true; }
    size_t before = s->text.n;
    // Ids past the tokenizer (a checkpoint's vocabulary padded for alignment) carry no text.
    if (id < tokenizer_vocab_size(e->tok)) TRY(tok_stream_push(&s->text, &s->ts, id));
    for (int i = 0; i < e->cfg.n_stop && !*finished && s->text.n > before; i++) {
        size_t len = strlen(e->cfg.stop[i]);
        // Only a match that ends in the new bytes is new: start the search len-1 bytes before them.
        size_t from = before >= len ? before - len + 1 : 0;
        if (s->text.n - from >= len && memmem(s->text.s + from, s->text.n - from, e->cfg.stop[i], len)) {
            c->finish = FINISH_STOP;
            *finished = true;
        }
    }
    if (!*finished && c->n >= e->cfg.max_new_tokens) {
        c->finish = FINISH_LENGTH;
        *finished = true;
    }
    return 0;
}

static void record_routes(RolloutEngine *e, Completion *c, int pos, int row) {
    if (!e->cfg.record_routes) return;
    for (int j = 0; j < e->n_moe; j++) {
        const int *idx = e->m->acts[e->moe_layers[j]].topk_idx + (size_t)row * e->K;
        int16_t *dst = c->routes + ((size_t)pos * e->n_moe + j) * e->K;
        for (int k = 0; k < e->K; k++) dst[k] = (int16_t)idx[k];
    }
}

static int finish_seq(RolloutEngine *e, Seq *s, Group *groups, RolloutDone done, void *ctx) {
    Completion *c = s->out;
    TRY(tok_stream_flush(&s->text, &s->ts));
    c->text = grpo_malloc(s->text.n + 1, "completion text");
    if (!c->text) return -1;
    memcpy(c->text, s->text.s ? s->text.s : "", s->text.n);
    c->text[s->text.n] = '\0';
    c->text_len = s->text.n;
    c->n_route_pos = e->cfg.record_routes ? s->len : 0;
    for (int i = 0; i < s->n_pages; i++) latent_cache_drop(&e->kc, s->pages[i]);
    Group *g = &groups[s->group];
    e->reserved -= g->sample_pages;
    if (--g->left == 0) e->reserved -= g->prompt_pages;
    s->live = false;
    if (done) done(ctx, c);
    return 0;
}

// Prefills the k prompts e->pf_prompts[0..k-1] in one forward, right-padded to Tm, the longest (causal
// attention leaves every real position as it would be alone; the padding repeats a prompt's last token),
// caches their rows in freshly taken pages, and leaves prompt j's last-position logits in row j of e->logits.
static int prefill(RolloutEngine *e, int k, int Tm, const int *const *prompts, const int *lens, Group *groups,
                   RolloutStats *st) {
    Model *m = e->m;
    int C = m->cfg.hidden_size;
    double t0 = now_s();
    for (int j = 0; j < k; j++) {
        int p = e->pf_prompts[j], Tp = lens[p];
        Group *g = &groups[p];
        e->reserved += group_pages(e, Tp, &g->prompt_pages, &g->sample_pages);
        for (int i = 0; i < g->prompt_pages; i++) e->shared[(size_t)j * e->pages_per_seq + i] = latent_cache_take(&e->kc);
        for (int t = 0; t < Tm; t++) e->pf_inputs[(size_t)j * Tm + t] = prompts[p][t < Tp ? t : Tp - 1];
        st->prefill_tokens += Tp;
    }
    bool count_load = m->count_load; // the padding must not count as routed tokens
    m->count_load = false;
    int rc = model_forward_hidden(m, e->pf_inputs, k, Tm);
    st->prefill_forwards++;
    m->count_load = count_load;
    TRY(rc);
    for (int j = 0; j < k; j++) {
        int Tp = lens[e->pf_prompts[j]];
        decode_cache_prompt(&e->kc, m, e->shared + (size_t)j * e->pages_per_seq, Tp, j * Tm);
        matmul_packed_forward(e->logits + (size_t)j * e->V, e->V, m->xf + ((size_t)j * Tm + Tp - 1) * C, C,
                              e->pk.lm_head, 1, C, e->V);
    }
    st->prefill_s += now_s() - t0;
    return 0;
}

// Forks the G samples of prompt p, prefilled as row j of the last prefill (rows of Tm positions), into free
// slots and draws each one's first token.
static int fork_group(RolloutEngine *e, int p, int j, int Tp, int Tm, uint64_t seed, Completion *out, Group *groups,
                      RolloutDone done, void *ctx) {
    int P = e->cfg.page_tokens, G = e->cfg.group_size;
    Group *g = &groups[p];
    g->left = G;
    const int *shared = e->shared + (size_t)j * e->pages_per_seq;
    const float *logits = e->logits + (size_t)j * e->V;
    int full = Tp / P, slot = 0;
    for (int s = 0; s < G; s++) {
        while (e->seqs[slot].live) slot++;
        Seq *q = &e->seqs[slot];
        Completion *cp = &out[(size_t)p * G + s];
        memset(cp, 0, sizeof *cp);
        cp->prompt_idx = p;
        cp->sample_idx = s;
        cp->ids = grpo_malloc(sizeof(int) * e->cfg.max_new_tokens, "completion ids");
        cp->logprobs = grpo_malloc(sizeof(float) * e->cfg.max_new_tokens, "completion log-probs");
        if (!cp->ids || !cp->logprobs) return -1;
        if (e->cfg.record_routes) {
            cp->routes = grpo_malloc(sizeof(int16_t) * e->T_max * (e->n_moe ? e->n_moe : 1) * e->K, "routes");
            if (!cp->routes) return -1;
            for (int t = 0; t < Tp; t++) record_routes(e, cp, t, j * Tm + t);
        }
        q->live = true;
        q->group = p;
        q->len = Tp;
        q->out = cp;
        q->stream = rng_stream(seed, (uint64_t)p, (uint64_t)s);
        q->text.n = 0;
        tok_stream_init(&q->ts, e->tok, TOK_SKIP_SPECIAL);
        q->n_pages = g->prompt_pages;
        for (int i = 0; i < full; i++) {
            q->pages[i] = shared[i];
            e->kc.ref[shared[i]]++;
        }
        if (full < g->prompt_pages) { // the partial last page is copied: each sample writes its own tail
            int own = latent_cache_take(&e->kc);
            for (int l = 0; l < e->kc.L; l++)
                memcpy(latent_cache_row(&e->kc, own, l, 0), latent_cache_row(&e->kc, shared[full], l, 0),
                       sizeof(float) * (Tp % P) * e->kc.W);
            q->pages[full] = own;
        }
        int id = sampler_sample(logits, e->V, &e->cfg.sampler, rng_uniform(q->stream, 0), e->probs, e->kept);
        float lp = sampler_logprob(logits, e->V, e->cfg.sampler.temperature, id, e->probs);
        bool fin;
        TRY(append_token(e, q, id, lp, &fin));
        q->next = id;
        if (fin) TRY(finish_seq(e, q, groups, done, ctx));
    }
    for (int i = 0; i < g->prompt_pages; i++) latent_cache_drop(&e->kc, shared[i]);
    return 0;
}

// One token for every live sequence.
static int decode_live(RolloutEngine *e, Group *groups, RolloutDone done, void *ctx, RolloutStats *st) {
    Model *m = e->m;
    int P = e->cfg.page_tokens, N = 0, C = m->cfg.hidden_size, V = e->V;
    for (int i = 0; i < e->cfg.max_batch; i++) {
        Seq *s = &e->seqs[i];
        if (!s->live) continue;
        if (s->len % P == 0) s->pages[s->n_pages++] = latent_cache_take(&e->kc); // reserved: never -1
        e->step_seq[N] = i;
        e->step_tok[N] = s->next;
        e->step_pos[N] = s->len;
        e->step_pages[N] = s->pages;
        N++;
    }
    if (N > st->max_live) st->max_live = N;
    double t0 = now_s();
    decode_step(m, &e->pk, &e->kc, &e->ds, e->step_tok, e->step_pos, e->step_pages, N);
    matmul_packed_forward(e->logits, V, m->xf, C, e->pk.lm_head, N, C, V);
    double t1 = now_s();
    for (int g = 0; g < e->ds.n_groups; g++)
        if (e->ds.group_shared[g]) st->shared_steps += e->ds.group_off[g + 1] - e->ds.group_off[g];
    st->decode_tokens += N;
    st->decode_s += t1 - t0;
#pragma omp parallel for schedule(dynamic, 4) if (N > 4)
    for (int n = 0; n < N; n++) {
        const Seq *s = &e->seqs[e->step_seq[n]];
        int th = omp_get_thread_num();
        const float *lg = e->logits + (size_t)n * V;
        e->drawn[n] = sampler_sample(lg, V, &e->cfg.sampler, rng_uniform(s->stream, (uint64_t)s->out->n),
                                     e->probs + (size_t)th * V, e->kept + (size_t)th * V);
        e->drawn_lp[n] = sampler_logprob(lg, V, e->cfg.sampler.temperature, e->drawn[n],
                                         e->probs + (size_t)th * V);
    }
    st->sample_s += now_s() - t1;
    for (int n = 0; n < N; n++) {
        Seq *s = &e->seqs[e->step_seq[n]];
        record_routes(e, s->out, s->len, n);
        s->len++;
        bool fin;
        TRY(append_token(e, s, e->drawn[n], e->drawn_lp[n], &fin));
        s->next = e->drawn[n];
        if (fin) TRY(finish_seq(e, s, groups, done, ctx));
    }
    return 0;
}

int rollout_generate(RolloutEngine *e, const int *const *prompts, const int *prompt_lens, int P, uint64_t seed,
                     Completion *out, RolloutDone done, void *ctx, RolloutStats *stats) {
    RolloutStats local = {0};
    RolloutStats *st = stats ? stats : &local;
    memset(st, 0, sizeof *st);
    int G = e->cfg.group_size;
    CHECK(G <= e->cfg.max_batch, "group_size %d exceeds max_batch %d: a group decodes together", G, e->cfg.max_batch);
    for (int p = 0; p < P; p++) {
        int Tp = prompt_lens[p], a, b;
        CHECK(Tp >= 1, "prompt %d is empty (0 tokens)", p);
        CHECK(Tp <= e->max_prompt, "prompt %d has %d tokens; the engine was sized for at most %d", p, Tp,
              e->max_prompt);
        for (int t = 0; t < Tp; t++)
            CHECK(prompts[p][t] >= 0 && prompts[p][t] < e->V, "prompt %d token %d: id %d is outside the vocabulary "
                  "[0, %d)", p, t, prompts[p][t], e->V);
        long need = (long)group_pages(e, Tp, &a, &b) * e->cfg.page_tokens;
        CHECK(need <= (long)e->kc.n_pages * e->kc.P,
              "prompt %d (%d tokens) with %d samples of up to %d new tokens needs %ld cache tokens (%.1f MB); the "
              "token budget is %ld tokens (%.1f MB): raise token_budget or lower group_size / max_new_tokens",
              p, Tp, G, e->cfg.max_new_tokens, need, need * latent_cache_token_bytes(&e->m->cfg) / 1e6,
              (long)e->kc.n_pages * e->kc.P, rollout_cache_bytes(e) / 1e6);
    }
    TRY(ensure_acts(e));
    memset(out, 0, sizeof(Completion) * P * G);
    Group *groups = grpo_calloc(P ? P : 1, sizeof(Group), "rollout groups");
    if (!groups) return -1;
    // The parameters may have changed since the last rollout (a training step): pack them again; the
    // prefill's forward uses the packed copies too while this call runs.
    double t_pack = now_s();
    packed_model_pack(&e->pk, e->m);
    st->pack_s = now_s() - t_pack;
    const PackedModel *packed = e->m->packed;
    e->m->packed = &e->pk;
    int rc = 0, next = 0, live = 0;
    e->reserved = 0;
    for (;;) {
        // admit the waiting groups that fit, prefilling up to prefill_batch prompts at a time
        for (;;) {
            int k = 0, Tm = 0, pages = e->reserved;
            while (next + k < P && k < e->prefill_batch) {
                int a, b, need = group_pages(e, prompt_lens[next + k], &a, &b);
                if (live + G * (k + 1) > e->cfg.max_batch || pages + need > e->kc.n_pages) break;
                pages += need;
                Tm = prompt_lens[next + k] > Tm ? prompt_lens[next + k] : Tm;
                e->pf_prompts[k] = next + k;
                k++;
            }
            if (!k) break;
            if ((rc = prefill(e, k, Tm, prompts, prompt_lens, groups, st))) goto end;
            for (int j = 0; j < k; j++)
                if ((rc = fork_group(e, next + j, j, prompt_lens[next + j], Tm, seed, out, groups, done, ctx)))
                    goto end;
            next += k;
            live = 0;
            for (int i = 0; i < e->cfg.max_batch; i++) live += e->seqs[i].live;
        }
        if (!live) break;
        if ((rc = decode_live(e, groups, done, ctx, st))) goto end;
        live = 0;
        for (int i = 0; i < e->cfg.max_batch; i++) live += e->seqs[i].live;
    }
end:
    if (rc) { // leave the engine reusable: no sequence survives a failed call, so every page is free again
        for (int i = 0; i < e->cfg.max_batch; i++) e->seqs[i].live = false;
        latent_cache_reset(&e->kc);
        for (int i = 0; i < P * G; i++) completion_free(&out[i]);
    }
    e->m->packed = packed;
    free(groups);
    return rc;
}
