// SFT (rl/sft.h): a tiny model memorises a few pairs; the loss and gradient are those of the CE over the
// completion tokens alone (an independent masked reference) and accumulate across micro-batches exactly;
// JSONL pairs and chat messages parse, bad lines name file and line; run-database episodes keep their
// templated prompt; an interrupted and resumed run ends with the same bytes; bad configs name the key.
#include "tests/test.h"
#include "common/config_tree.h"
#include "common/error.h"
#include "common/fileio.h"
#include "rl/run.h"
#include "rl/sft.h"
#include "rl/store.h"
#include "rollout/rollout.h"
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/grpo_sft_XXXXXX";

static const char *path_in(char *buf, const char *name) {
    snprintf(buf, PATH_MAX, "%s/%s", dir, name);
    return buf;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

// The tiny model config, random-initialised, with the default tokenizer written into `sub`.
static int tiny_policy(Model *m, Tokenizer **tok, char *tok_src, const char *sub) {
    char out[PATH_MAX];
    return run_load_policy(m, tok, tok_src, "configs/model/tiny.json", 7, 0.02f, path_in(out, sub));
}

// Training options from the defaults and `sets`, as the demo makes them; *tree keeps the strings alive.
static int options(SftConfig *cfg, cJSON **tree, const char *const *sets, int n) {
    cJSON *d = sft_options_defaults();
    *tree = cfg_load(d, NULL, sets, n);
    cJSON_Delete(d);
    return *tree ? sft_options_read(*tree, "", cfg) : -1;
}

static const SftPair pairs4[] = {
    {.id = "a", .prompt = "What is 2+3?", .completion = "<think>\n2+3=5\n</think>\n<answer>5</answer>"},
    {.id = "b", .prompt = "What is 7+1?", .completion = "<think>\n7+1=8\n</think>\n<answer>8</answer>"},
    {.id = "c", .prompt = "What is 4+4?", .completion = "<think>\n4+4=8\n</think>\n<answer>8</answer>"},
    {.id = "d", .prompt = "Name a prime.", .completion = "<answer>7</answer>", .system = "Be brief."},
};

static void test_memorise(void) {
    Model m = {0};
    Tokenizer *tok = NULL;
    char src[PATH_MAX];
    cJSON *tree = NULL;
    SftConfig cfg;
    SftResult res;
    const char *sets[] = {"template=raw", "batch_size=4", "micro_batch=2", "max_steps=40", "optim.lr=1e-2",
                          "max_len=64"};
    EXPECT(tiny_policy(&m, &tok, src, "mem") == 0, "policy: %s", grpo_error());
    EXPECT(options(&cfg, &tree, sets, 6) == 0, "options: %s", grpo_error());
    float temp = m.temperature = 0.7f;
    EXPECT(sft_train(&cfg, &m, tok, pairs4, 4, NULL, 0, NULL, NULL, &res) == 0, "train: %s", grpo_error());
    EXPECT(res.step == 40 && res.total_steps == 40 && res.n_seqs == 4 && res.skipped == 0, "steps %ld/%ld, %d seqs",
           res.step, res.total_steps, res.n_seqs);
    EXPECT(res.first_loss > 4.0 && res.last_loss < 0.25 * res.first_loss, "loss %g -> %g", res.first_loss,
           res.last_loss);
    EXPECT(!res.checkpoint[0], "no out_dir, no checkpoint: %s", res.checkpoint);
    EXPECT(m.temperature == temp && m.aux_alpha == 0.0f, "the model's settings are restored");
    cJSON_Delete(tree);
    tokenizer_free(tok);
    model_free(&m);
}

// ||a - b|| / ||b||
static double rel_diff(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += (a[i] - b[i]) * (double)(a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : INFINITY;
}

// The encoding, the dlogp mask, the loss and the gradient against model_ce_loss on targets built here
// with -1 on every prompt position; then one step in two micro-batches against one micro-batch of both.
static void test_masking(void) {
    Model m = {0};
    Tokenizer *tok = NULL;
    char src[PATH_MAX];
    SftSeqs s;
    PackedBatch pb;
    EXPECT(tiny_policy(&m, &tok, src, "mask") == 0, "policy: %s", grpo_error());
    EXPECT(sft_encode(&s, tok, pairs4, 4, "Q: {prompt}\nA:", NULL, 64, true) == 0, "encode: %s", grpo_error());
    TokIds ref = {0};
    prompt_encode(&ref, tok, "Q: {prompt}\nA:", NULL, "What is 2+3?");
    EXPECT(s.n == 4 && s.prompt_len[0] == ref.n && !memcmp(s.prompt[0], ref.ids, sizeof(int) * ref.n), "prompt ids");
    EXPECT(s.prompt[0][0] == TOKENIZER_DEFAULT_BOS && s.completion[0][0] == 3 /* <think> */ &&
               s.completion[0][s.completion_len[0] - 1] == TOKENIZER_DEFAULT_EOS, "bos, <think> token, eos");
    static const int answer7[] = {5 /* <answer> */, 9 + '7', 6 /* </answer> */, TOKENIZER_DEFAULT_EOS};
    EXPECT(s.completion_len[3] == 4 && !memcmp(s.completion[3], answer7, sizeof answer7), "<answer>7</answer> + eos");
    tok_ids_free(&ref);

    int B = 2, ntok = s.completion_len[0] + s.completion_len[1];
    EXPECT(model_alloc_grads(&m) == 0 && model_alloc_acts(&m, B, 63) == 0 && packed_init(&pb, B, 63) == 0, "alloc");
    EXPECT(packed_fill(&pb, (const int *const *)s.prompt, s.prompt_len, (const int *const *)s.completion,
                       s.completion_len, B) == 0, "pack: %s", grpo_error());
    int T = pb.T, N = B * T;
    float *dlogp = calloc(N, sizeof(float)), *dref = calloc(N, sizeof(float));
    float *g1 = malloc(sizeof(float) * m.n_params);
    int *targets = malloc(sizeof(int) * N);
    double ce, mtp;
    model_zero_grad(&m);
    EXPECT(sft_micro_step(&m, &pb, dlogp, ntok, 0, 0.0f, &ce, &mtp) == 0, "micro step: %s", grpo_error());
    memcpy(g1, m.grads, sizeof(float) * m.n_params);
    int bad = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int Tp = s.prompt_len[b], Tc = s.completion_len[b];
            bool comp = t >= Tp - 1 && t < Tp + Tc - 1;
            targets[b * T + t] = comp ? s.completion[b][t - Tp + 1] : -1;
            bad += dlogp[b * T + t] != (comp ? -1.0f / ntok : 0.0f);
        }
    EXPECT(bad == 0, "%d positions with a dlogp other than -1/%d on completion tokens and 0 elsewhere", bad, ntok);
    model_zero_grad(&m);
    model_forward(&m, pb.inputs, targets, B, T);
    float ce_ref = model_ce_loss(&m, dref);
    model_backward(&m, dref);
    EXPECT_NEAR(ce / ntok, ce_ref, 1e-6, "completion CE");
    EXPECT(rel_diff(g1, m.grads, m.n_params) < 1e-5, "gradient vs the masked reference: relative error %g",
           rel_diff(g1, m.grads, m.n_params));
    for (int n = 0; n < N; n++) targets[n] = n % T < T - 1 ? pb.inputs[n + 1] : -1;
    model_zero_grad(&m);
    model_forward(&m, pb.inputs, targets, B, T);
    model_ce_loss(&m, dref);
    model_backward(&m, dref);
    EXPECT(rel_diff(g1, m.grads, m.n_params) > 0.1, "without the mask the gradient differs: the test sees masking");

    // Accumulation: micro-batches of 1 + 1 == one of 2, with the MTP term on.
    long mtp_targets = ntok - B;
    model_zero_grad(&m);
    EXPECT(sft_micro_step(&m, &pb, dlogp, ntok, mtp_targets, 0.3f, &ce, &mtp) == 0, "micro step");
    double ce_whole = ce, mtp_whole = mtp;
    memcpy(g1, m.grads, sizeof(float) * m.n_params);
    model_zero_grad(&m);
    double ce_parts = 0, mtp_parts = 0;
    for (int b = 0; b < B; b++) {
        packed_fill(&pb, (const int *const *)&s.prompt[b], &s.prompt_len[b], (const int *const *)&s.completion[b],
                    &s.completion_len[b], 1);
        EXPECT(sft_micro_step(&m, &pb, dlogp, ntok, mtp_targets, 0.3f, &ce, &mtp) == 0, "micro step %d", b);
        ce_parts += ce, mtp_parts += mtp;
    }
    EXPECT_NEAR(ce_parts, ce_whole, 1e-5, "CE summed over micro-batches");
    EXPECT(mtp_whole > 0, "the MTP term ran");
    EXPECT_NEAR(mtp_parts, mtp_whole, 1e-5, "MTP CE summed over micro-batches");
    EXPECT(rel_diff(g1, m.grads, m.n_params) < 1e-5, "accumulated gradient vs one micro-batch: relative error %g",
           rel_diff(g1, m.grads, m.n_params));
    free(dlogp), free(dref), free(g1), free(targets);
    packed_free(&pb);
    sft_seqs_free(&s);
    tokenizer_free(tok);
    model_free(&m);
}

static void test_too_long(void) {
    Model m = {0};
    Tokenizer *tok = NULL;
    char src[PATH_MAX];
    SftSeqs s;
    EXPECT(tiny_policy(&m, &tok, src, "long") == 0, "policy: %s", grpo_error());
    SftPair p[3] = {pairs4[0], pairs4[1], {.id = "long", .prompt = "x", .completion = ""}};
    char big[200];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = 0;
    p[2].completion = big;
    EXPECT(sft_encode(&s, tok, p, 3, "raw", NULL, 100, true) == 0 && s.n == 2 && s.skipped == 1 && s.pair[1] == 1,
           "skipped: n %d skipped %d", s.n, s.skipped);
    sft_seqs_free(&s);
    EXPECT(sft_encode(&s, tok, p, 3, "raw", NULL, 100, false) != 0 && strstr(grpo_error(), "pair 2 long") &&
               strstr(grpo_error(), "max_len 100"), "error: %s", grpo_error());
    EXPECT(sft_encode(&s, tok, &p[2], 1, "raw", NULL, 100, true) != 0 && strstr(grpo_error(), "nothing to train"),
           "all skipped: %s", grpo_error());
    tokenizer_free(tok);
    model_free(&m);
}

static void test_jsonl(void) {
    char path[PATH_MAX];
    SftData d = {0};
    path_in(path, "pairs.jsonl");
    write_text(path, "{\"prompt\": \"p1\", \"completion\": \"c1\", \"id\": \"first\"}\n"
                     "\n"
                     "{\"messages\": [{\"role\": \"system\", \"content\": \"sys\"}, {\"role\": \"user\", \"content\": "
                     "\"p2\"}, {\"role\": \"assistant\", \"content\": \"c2\"}]}\n"
                     "{\"messages\": [{\"role\": \"user\", \"content\": \"p3\"}, {\"role\": \"assistant\", "
                     "\"content\": \"c3\"}], \"extra\": 1}");
    EXPECT(sft_data_load_jsonl(&d, path, SFT_FORMAT_AUTO) == 0 && d.n == 3, "load: %s", grpo_error());
    if (d.n == 3) {
        EXPECT(!strcmp(d.pairs[0].id, "first") && !strcmp(d.pairs[0].prompt, "p1") &&
                   !strcmp(d.pairs[0].completion, "c1") && !d.pairs[0].system && !d.pairs[0].templated, "pair");
        EXPECT(!strcmp(d.pairs[1].system, "sys") && !strcmp(d.pairs[1].prompt, "p2") &&
                   !strcmp(d.pairs[1].completion, "c2") && strstr(d.pairs[1].id, "pairs.jsonl:3"), "messages");
        EXPECT(!d.pairs[2].system && !strcmp(d.pairs[2].prompt, "p3"), "messages without system");
    }
    sft_data_free(&d);
    EXPECT(sft_data_load_jsonl(&d, path, SFT_FORMAT_PAIRS) != 0 && strstr(grpo_error(), "pairs.jsonl:3: field "
           "\"prompt\": expected a string, found nothing"), "pairs only: %s", grpo_error());
    sft_data_free(&d);
    static const struct { const char *line, *err; } bad[] = {
        {"{\"prompt\": \"p\"}", "line.jsonl:2: field \"completion\": expected a string, found nothing"},
        {"{\"prompt\": 3, \"completion\": \"c\"}", "line.jsonl:2: field \"prompt\": expected a string, found a number"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\"}, "
         "{\"role\": \"user\", \"content\": \"c\"}]}", "line.jsonl:2: field \"messages[2]\": a user message after the "
         "assistant message"},
        {"{\"messages\": [{\"role\": \"tool\", \"content\": \"a\"}]}", "field \"messages[0].role\": \"tool\""},
        {"{\"messages\": [{\"role\": \"user\", \"content\": [1]}]}",
         "field \"messages[0].content\": expected a string"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}]}", "expected a user and an assistant message"},
        {"{\"messages\": {}}", "field \"messages\": expected an array, found an object"},
        {"[1, 2]", "line.jsonl:2: expected a JSON object, found an array"},
        {"{\"prompt\": ", "line.jsonl:2: not valid JSON"},
    };
    path_in(path, "line.jsonl");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "{\"prompt\": \"ok\", \"completion\": \"ok\"}\n%s\n", bad[i].line);
        write_text(path, text);
        EXPECT(sft_data_load_jsonl(&d, path, SFT_FORMAT_AUTO) != 0 && strstr(grpo_error(), bad[i].err),
               "%s: %s", bad[i].line, grpo_error());
        sft_data_free(&d);
    }
    write_text(path, "\n\n");
    EXPECT(sft_data_load_jsonl(&d, path, SFT_FORMAT_AUTO) != 0 && strstr(grpo_error(), "no pairs"), "empty: %s",
           grpo_error());
    EXPECT(sft_data_load_jsonl(&d, "/nonexistent.jsonl", SFT_FORMAT_AUTO) != 0 &&
               strstr(grpo_error(), "/nonexistent.jsonl"), "missing file: %s", grpo_error());
    SftFormat f;
    EXPECT(sft_format_parse("chat", &f) != 0 && strstr(grpo_error(), "auto, pairs or messages"), "format name");
    sft_data_free(&d);
}

static void test_from_db(void) {
    char path[PATH_MAX], tok_src[PATH_MAX];
    Store *s = store_open(path_in(path, "episodes.db"));
    int64_t run = 0;
    EXPECT(s && store_begin_run(s, "grpo", NULL, NULL, NULL, &run) == 0, "store: %s", grpo_error());
    const char *templated = "User: What is 1+1?. Assistant:";
    EpisodeRecord eps[3] = {
        {.task_id = "t0", .group_idx = 0, .sample_idx = 0, .prompt = templated, .completion = " <answer>2</answer>",
         .reward = 1.0, .advantage = NAN, .logprob_sum = NAN},
        {.task_id = "t0", .group_idx = 0, .sample_idx = 1, .prompt = templated, .completion = " <answer>3</answer>",
         .reward = 0.0, .advantage = NAN, .logprob_sum = NAN},
        {.task_id = "t1", .group_idx = 1, .sample_idx = 0, .prompt = "User: 2+2. Assistant:",
         .completion = "<answer>4</answer>", .reward = 1.5, .advantage = NAN, .logprob_sum = NAN},
    };
    StepRecord r = store_step_init(1);
    r.metrics_json = "{}";
    EXPECT(s && store_write_step(s, run, &r, eps, 3) == 0, "write: %s", grpo_error());
    store_close(s);
    SftData d = {0};
    EXPECT(sft_data_from_db(&d, path, 0, 1.0) == 0 && d.n == 2, "read: %s (%d)", grpo_error(), d.n);
    if (d.n == 2) {
        EXPECT(d.pairs[0].templated && !strcmp(d.pairs[0].prompt, templated) &&
                   !strcmp(d.pairs[0].completion, " <answer>2</answer>") && strstr(d.pairs[0].id, "t0 (run 1 step 1"),
               "episode pair: %s", d.pairs[0].id);
        EXPECT(!strcmp(d.pairs[1].completion, "<answer>4</answer>"), "second");
        Tokenizer *tok = NULL;
        Model m = {0};
        SftSeqs q;
        EXPECT(tiny_policy(&m, &tok, tok_src, "db") == 0, "policy");
        EXPECT(sft_encode(&q, tok, d.pairs, d.n, "r1-zero", "sys", 128, true) == 0, "encode: %s", grpo_error());
        TokIds ref = {0};
        tokenizer_encode(&ref, tok, templated, strlen(templated), TOK_ENCODE_DEFAULT);
        EXPECT(q.prompt_len[0] == ref.n && !memcmp(q.prompt[0], ref.ids, sizeof(int) * ref.n),
               "the stored prompt is encoded as it is, not templated again (%d vs %d tokens)", q.prompt_len[0], ref.n);
        tok_ids_free(&ref);
        sft_seqs_free(&q);
        tokenizer_free(tok);
        model_free(&m);
    }
    sft_data_free(&d);
    EXPECT(sft_data_from_db(&d, path, 1, 1.2) == 0 && d.n == 1, "min_reward 1.2 in run 1: %d", d.n);
    sft_data_free(&d);
    EXPECT(sft_data_from_db(&d, path, 9, 0.0) != 0 && strstr(grpo_error(), "no episode of run 9"), "run 9: %s",
           grpo_error());
    EXPECT(sft_data_from_db(&d, path_in(path, "none.db"), 0, 0.0) != 0, "missing database");
}

// Loads `sets` over `grpo sft`'s defaults.
static cJSON *command_tree(const char *const *sets, int n) {
    cJSON *d = sft_command_defaults();
    cJSON *t = cfg_load(d, NULL, sets, n);
    cJSON_Delete(d);
    return t;
}

static int run_sft(const char *out, bool resume, const char *const *extra, int n_extra, SftResult *res) {
    const char *sets[16] = {"model=configs/model/tiny.json", "data.synthetic.kind=arithmetic", "data.synthetic.n=10",
                            "template=raw", "batch_size=4", "micro_batch=2", "max_steps=6", "save_every=2",
                            "log_every=1", "max_len=64", "mtp_lambda=0.3", "optim.schedule=cosine"};
    int n = 12;
    for (int i = 0; i < n_extra; i++) sets[n++] = extra[i];
    cJSON *t = command_tree(sets, n);
    char path[PATH_MAX];
    int rc = t ? sft_run(t, path_in(path, out), resume, NULL, res) : -1;
    cJSON_Delete(t);
    return rc;
}

static bool same_file(const char *a, const char *b) {
    size_t na, nb;
    char *x = read_file(a, &na), *y = read_file(b, &nb);
    bool same = x && y && na == nb && !memcmp(x, y, na);
    free(x), free(y);
    return same;
}

static int64_t count_steps(const char *out) {
    char path[PATH_MAX], sub[PATH_MAX];
    snprintf(sub, sizeof sub, "%s/run.db", out);
    Store *s = store_open_readonly(path_in(path, sub));
    int64_t n = -1;
    sqlite3_stmt *st;
    if (s && sqlite3_prepare_v2(store_db(s), "SELECT count(DISTINCT step) * 100 + max(step) FROM steps", -1, &st,
                                NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    if (s) store_close(s);
    return n;
}

// 6 steps (10 pairs in steps of 4: epochs cross inside steps) uninterrupted, and stopped after step 4 then
// resumed: the final weights and optimizer state are the same bytes.
static void test_resume(void) {
    SftResult a, b;
    char pa[PATH_MAX], pb[PATH_MAX];
    EXPECT(run_sft("full", false, NULL, 0, &a) == 0, "uninterrupted: %s", grpo_error());
    EXPECT(a.step == 6 && a.start_step == 0 && strstr(a.checkpoint, "full/step-000006"), "a: %ld %s", a.step,
           a.checkpoint);
    const char *stop[] = {"stop_after=4"};
    EXPECT(run_sft("split", false, stop, 1, &b) == 0 && b.step == 4, "first part: %s", grpo_error());
    EXPECT(run_sft("split", false, NULL, 0, &b) != 0 && strstr(grpo_error(), "already holds checkpoints"),
           "fresh run over checkpoints: %s", grpo_error());
    const char *replan[] = {"max_steps=7"};
    EXPECT(run_sft("split", true, replan, 1, &b) != 0 && strstr(grpo_error(), "planned for 6 steps"),
           "another plan: %s", grpo_error());
    EXPECT(run_sft("split", true, NULL, 0, &b) == 0, "resumed: %s", grpo_error());
    EXPECT(b.start_step == 4 && b.step == 6 && b.total_steps == 6, "b: %ld..%ld", b.start_step, b.step);
    EXPECT_NEAR(b.last_loss, a.last_loss, 0, "last step's loss");
    EXPECT(same_file(path_in(pa, "full/step-000006/model.safetensors"),
                     path_in(pb, "split/step-000006/model.safetensors")),
           "resumed weights differ from the uninterrupted run's");
    EXPECT(same_file(path_in(pa, "full/step-000006/optimizer.safetensors"),
                     path_in(pb, "split/step-000006/optimizer.safetensors")), "optimizer state differs");
    EXPECT(!path_exists(path_in(pb, "split/step-000002")) && path_exists(path_in(pb, "split/step-000004")),
           "keep_checkpoints 2 keeps steps 4 and 6 only");
    EXPECT(count_steps("split") == 606 && count_steps("full") == 606, "steps rows: %lld",
           (long long)count_steps("split"));
    EXPECT(run_sft("split", true, NULL, 0, &b) == 0 && b.step == 6 && b.start_step == 6 &&
               strstr(b.checkpoint, "step-000006"), "resuming a finished run: %s", grpo_error());
}

static void test_bad_config(void) {
    SftResult res;
    const char *unknown[] = {"epoch=2"};
    EXPECT(!command_tree(unknown, 1) && strstr(grpo_error(), "epoch"), "unknown key: %s", grpo_error());
    const char *type[] = {"batch_size=big"};
    EXPECT(!command_tree(type, 1) && strstr(grpo_error(), "batch_size") && strstr(grpo_error(), "a string"),
           "wrong type: %s", grpo_error());
    const char *nested[] = {"data.synthetic.size=3"};
    EXPECT(!command_tree(nested, 1) && strstr(grpo_error(), "data.synthetic.size"), "nested key: %s", grpo_error());
    static const struct { const char *set, *err; } bad[] = {
        {"micro_batch=32", "micro_batch 32: expected at most batch_size 4"},
        {"template=plain", "template \"plain\": expected a preset"},
        {"max_len=1000", "max_len 1000 exceeds the model's max_position_embeddings 512"},
        {"data.train=x.jsonl", "alternatives"},
        {"optim.schedule=linear", "optim.schedule"},
        {"log_every=0", "log_every 0: expected >= 1"},
        {"batch_size=2.5", "batch_size"},
        {"data.synthetic.kind=algebra", "unknown synthetic task kind \"algebra\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *set[] = {bad[i].set};
        EXPECT(run_sft("bad", false, set, 1, &res) != 0 && strstr(grpo_error(), bad[i].err), "%s: %s", bad[i].set,
               grpo_error());
    }
    const char *nodata[] = {"model=configs/model/tiny.json"};
    cJSON *t = command_tree(nodata, 1);
    char path[PATH_MAX];
    EXPECT(t && sft_run(t, path_in(path, "bad"), false, NULL, &res) != 0 && strstr(grpo_error(), "no training data"),
           "no data: %s", grpo_error());
    cJSON_Delete(t);
    // A model whose vocabulary is smaller than the default tokenizer's 265 tokens.
    size_t n;
    char *json = read_file("configs/model/tiny.json", &n), model[PATH_MAX], set[PATH_MAX + 8];
    cJSON *mc = cJSON_Parse(json);
    cJSON_ReplaceItemInObject(mc, "vocab_size", cJSON_CreateNumber(200));
    char *out = cJSON_Print(mc);
    write_text(path_in(model, "vocab200.json"), out);
    free(out), free(json);
    cJSON_Delete(mc);
    snprintf(set, sizeof set, "model=%s", model);
    const char *vocab[] = {set};
    EXPECT(run_sft("bad", false, vocab, 1, &res) != 0 && strstr(grpo_error(), "265 tokens") &&
               strstr(grpo_error(), "vocab_size is 200"), "vocab mismatch: %s", grpo_error());
}

int main(void) {
    if (!mkdtemp(dir)) return 1;
    RUN_TEST(test_masking);
    RUN_TEST(test_memorise);
    RUN_TEST(test_too_long);
    RUN_TEST(test_jsonl);
    RUN_TEST(test_from_db);
    RUN_TEST(test_resume);
    RUN_TEST(test_bad_config);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    return test_summary();
}
