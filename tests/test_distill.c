// Distillation (rl/distill.h): the rejection filter on hand-made traces (correctness, format, length,
// dedupe, quota, shortest vs random); the chat JSONL export read back by `grpo sft`'s loader byte for
// byte; the tokenizer check failing before any sampling; the logit term vanishing against the student
// itself; bad configs; and a tiny end-to-end run (a teacher taught a few prompts by SFT, a smaller student)
// whose run.db holds every trace, the evals and the SFT steps, and which `sft --from-db` can read.
#include "tests/test.h"
#include "tests/db_query.h"
#include "common/config_tree.h"
#include "common/error.h"
#include "common/fileio.h"
#include "datasets/dataset.h"
#include "policy/checkpoint.h"
#include "rl/distill.h"
#include "rl/run.h"
#include "rl/sft.h"
#include "rl/store.h"
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/grpo_distill_XXXXXX";

static const char *path_in(char *buf, const char *name) {
    snprintf(buf, PATH_MAX, "%s/%s", dir, name);
    return buf;
}

// ------------------------------------------------------------------------------------------------
// The filter

static AcceptOptions accept_defaults(void) {
    return (AcceptOptions){.filter = true, .min_reward = NAN, .dedupe = true, .select = SELECT_SHORTEST, .seed = 1};
}

// Prompt 0: samples 2 and 3 are the same short text; 4 malformed, 5 truncated, 6 long, 1 wrong.
static const Trace hand[] = {
    {.prompt = 0, .sample = 0, .text = "A", .n_tokens = 10, .reward = 1, .correct = true, .well_formed = true},
    {.prompt = 0, .sample = 1, .text = "W", .n_tokens = 3, .reward = 0.5f, .correct = false, .well_formed = true},
    {.prompt = 0, .sample = 2, .text = "B", .n_tokens = 5, .reward = 1, .correct = true, .well_formed = true},
    {.prompt = 0, .sample = 3, .text = "B", .n_tokens = 5, .reward = 1, .correct = true, .well_formed = true},
    {.prompt = 0, .sample = 4, .text = "M", .n_tokens = 4, .reward = 1, .correct = true, .well_formed = false},
    {.prompt = 0, .sample = 5, .text = "T", .n_tokens = 64, .reward = 1, .correct = true, .well_formed = true,
     .truncated = true},
    {.prompt = 0, .sample = 6, .text = "L", .n_tokens = 50, .reward = 1, .correct = true, .well_formed = true},
    {.prompt = 0, .sample = 7, .text = "C", .n_tokens = 7, .reward = 1, .correct = true, .well_formed = true},
    {.prompt = 1, .sample = 0, .text = "X", .n_tokens = 8, .reward = 1, .correct = true, .well_formed = true},
    {.prompt = 1, .sample = 1, .text = "Y", .n_tokens = 3, .reward = 1, .correct = true, .well_formed = true},
    {.prompt = 2, .sample = 0, .text = "Z", .n_tokens = 3, .reward = 0, .correct = false, .well_formed = true},
};
enum { NHAND = sizeof hand / sizeof hand[0] };

static void expect_fates(const char *what, const TraceFate *got, const TraceFate *want) {
    for (int i = 0; i < NHAND; i++)
        EXPECT(got[i] == want[i], "%s: trace %d (prompt %d sample %d) is %s, expected %s", what, i, hand[i].prompt,
               hand[i].sample, trace_fate_name(got[i]), trace_fate_name(want[i]));
}

#define A_ TRACE_ACCEPTED
#define W_ TRACE_WRONG
#define M_ TRACE_MALFORMED
#define T_ TRACE_TRUNCATED
#define L_ TRACE_TOO_LONG
#define D_ TRACE_DUPLICATE
#define O_ TRACE_OVER_LIMIT

static void test_filter_rules(void) {
    TraceFate f[NHAND];
    AcceptOptions o = accept_defaults();
    o.max_tokens = 20;
    o.per_prompt = 2;
    // prompt 0's candidates, shortest first: 2 (B, 5), 3 (B, 5: duplicate), 7 (C, 7), 0 (A, 10: over the quota)
    EXPECT(distill_filter(f, hand, NHAND, &o) == 4, "accepted count");
    expect_fates("shortest, quota 2", f, (TraceFate[]){O_, W_, A_, D_, M_, T_, L_, A_, A_, A_, W_});
    o.dedupe = false; // the duplicate now takes C's place
    EXPECT(distill_filter(f, hand, NHAND, &o) == 4, "accepted count without dedupe");
    expect_fates("no dedupe", f, (TraceFate[]){O_, W_, A_, A_, M_, T_, L_, O_, A_, A_, W_});
    o.dedupe = true, o.per_prompt = 0, o.max_tokens = 0; // no quota, no length limit (truncated still out)
    EXPECT(distill_filter(f, hand, NHAND, &o) == 6, "accepted count without limits");
    expect_fates("no limits", f, (TraceFate[]){A_, W_, A_, D_, M_, T_, A_, A_, A_, A_, W_});
    o.min_reward = 0.5; // the reward decides: sample 1 (0.5) counts, prompt 2's 0 does not
    EXPECT(distill_filter(f, hand, NHAND, &o) == 7, "accepted count by reward");
    expect_fates("min_reward", f, (TraceFate[]){A_, A_, A_, D_, M_, T_, A_, A_, A_, A_, W_});
    o.filter = false;
    EXPECT(distill_filter(f, hand, NHAND, &o) == NHAND, "no filter: every trace");
    for (int i = 0; i < NHAND; i++) EXPECT(f[i] == TRACE_ACCEPTED, "no filter: trace %d", i);
}

static void test_filter_random(void) {
    // 3 prompts x 12 distinct correct traces; a quota of 3 drawn at random
    enum { P = 3, S = 12, NT = P * S };
    Trace t[NT], shuffled[NT];
    char text[NT][8];
    for (int i = 0; i < NT; i++) {
        snprintf(text[i], sizeof text[i], "t%d", i);
        t[i] = (Trace){.prompt = i / S, .sample = i % S, .text = text[i], .n_tokens = 1 + i % 5, .reward = 1,
                       .correct = true, .well_formed = true};
    }
    AcceptOptions o = accept_defaults();
    o.per_prompt = 3;
    o.select = SELECT_RANDOM;
    TraceFate a[NT], b[NT], c[NT], sh[NT];
    EXPECT(distill_filter(a, t, NT, &o) == P * 3, "quota per prompt");
    EXPECT(distill_filter(b, t, NT, &o) == P * 3 && !memcmp(a, b, sizeof a), "the same seed, the same choice");
    int differ = 0;
    for (uint64_t seed = 2; seed < 6; seed++) {
        o.seed = seed;
        distill_filter(c, t, NT, &o);
        differ += memcmp(a, c, sizeof a) != 0;
    }
    EXPECT(differ >= 3, "other seeds choose other traces (%d of 4 differ)", differ);
    // the choice does not depend on where the traces sit in the input
    o.seed = 1;
    for (int i = 0; i < NT; i++) shuffled[i] = t[(i * 7) % NT];
    distill_filter(sh, shuffled, NT, &o);
    for (int i = 0; i < NT; i++) EXPECT(sh[i] == a[(i * 7) % NT], "input order matters at %d", i);
    // shortest: the three fewest tokens of each prompt (ties by sample)
    o.select = SELECT_SHORTEST;
    distill_filter(c, t, NT, &o);
    for (int i = 0; i < NT; i++) {
        int s = i % S;
        int rank = 0;
        for (int j = (i / S) * S; j < (i / S + 1) * S; j++)
            rank += t[j].n_tokens < t[i].n_tokens || (t[j].n_tokens == t[i].n_tokens && j % S < s);
        EXPECT((c[i] == TRACE_ACCEPTED) == (rank < 3), "shortest: trace %d rank %d is %s", i, rank,
               trace_fate_name(c[i]));
    }
}

// ------------------------------------------------------------------------------------------------
// Export and import

static void test_export_roundtrip(void) {
    const SftPair pairs[] = {
        {.id = "u/1", .prompt = "Wie viel ist 3+4? Réponds en français. 中文 😀",
         .completion = "<think>\n3+4=7\n</think>\n<answer>7</answer>"},
        {.prompt = "quotes \" and \\ backslash\tand tab\r\nCRLF", .completion = "line1\nline2\n\n\x01\x1f control",
         .system = "Be brief.\nReally."},
        {.id = "empty-system", .prompt = "p", .completion = " leading and trailing spaces ", .system = ""},
        {.prompt = "\xf0\x9f\x98\x80\xe2\x80\xa8 U+2028 and invalid \xff\xfe bytes", .completion = "\xc3\xa9t\xc3\xa9"},
    };
    int n = sizeof pairs / sizeof pairs[0];
    char path[PATH_MAX];
    path_in(path, "export.jsonl");
    EXPECT(distill_export_jsonl(path, pairs, n) == 0, "export: %s", grpo_error());
    for (int form = 0; form < 2; form++) {
        SftData d = {0};
        SftFormat f = form ? SFT_FORMAT_AUTO : SFT_FORMAT_MESSAGES;
        EXPECT(sft_data_load_jsonl(&d, path, f) == 0 && d.n == n, "import: %s", grpo_error());
        for (int i = 0; i < d.n && i < n; i++) {
            const SftPair *a = &pairs[i], *b = &d.pairs[i];
            EXPECT(!strcmp(a->prompt, b->prompt), "pair %d prompt: \"%s\" vs \"%s\"", i, a->prompt, b->prompt);
            EXPECT(!strcmp(a->completion, b->completion), "pair %d completion", i);
            EXPECT((!a->system && !b->system) || (a->system && b->system && !strcmp(a->system, b->system)),
                   "pair %d system", i);
            if (a->id) EXPECT(b->id && !strcmp(a->id, b->id), "pair %d id", i);
        }
        sft_data_free(&d);
    }
    size_t len;
    char *text = read_file(path, &len);
    EXPECT(text && !strncmp(text, "{\"messages\":[{\"role\":\"user\",\"content\":\"Wie viel", 45), "chat form: %.60s",
           text ? text : "");
    int lines = 0;
    for (size_t i = 0; text && i < len; i++) lines += text[i] == '\n';
    EXPECT(lines == n, "one line per pair, newlines escaped: %d lines", lines);
    free(text);
}

// ------------------------------------------------------------------------------------------------
// Models for the runs

// A model directory with the default tokenizer (or `tok_json` when given) and random weights of `config`.
static int make_model_dir(const char *out, const char *config, float std, const char *tok_json) {
    Model m = {0};
    Tokenizer *tok = NULL;
    char src[PATH_MAX], scratch[PATH_MAX];
    snprintf(scratch, sizeof scratch, "%s.init", out);
    int rc = run_load_policy(&m, &tok, src, config, 3, std, scratch);
    if (rc == 0) rc = checkpoint_save(out, &m, NULL, tok_json ? tok_json : src, NULL, false);
    if (tok) tokenizer_free(tok);
    model_free(&m);
    return rc;
}

// The config of the runs here: synthetic one-digit sums, a smaller student, everything small.
static cJSON *config(const char *teacher, const char *const *extra, int n_extra) {
    char t[PATH_MAX + 16];
    snprintf(t, sizeof t, "teacher=%s", teacher);
    const char *sets[32] = {t, "student=configs/model/tiny-student.json",
                            "data.synthetic={\"kind\": \"arithmetic\", \"n\": 24, \"difficulty\": 1, \"seed\": 5}",
                            "data.heldout_frac=0.25", "rewards=[{\"name\": \"math\"}, {\"name\": \"format\"}]",
                            "sample.k=4", "sample.max_new_tokens=40", "sample.max_batch=32",
                            "sft.template=raw", "sft.batch_size=8", "sft.micro_batch=4", "sft.max_len=64",
                            "sft.epochs=3", "sft.optim.lr=1e-2", "sft.log_every=100", "eval.k=2"};
    int n = 16;
    for (int i = 0; i < n_extra; i++) sets[n++] = extra[i];
    cJSON *c = distill_config_load(NULL, sets, n);
    EXPECT(c != NULL, "config: %s", grpo_error());
    return c;
}

// A teacher that knows the config's prompts: the tiny student's shape taught their reference traces by SFT.
static char teacher_dir[PATH_MAX];
static int make_teacher(void) {
    path_in(teacher_dir, "teacher");
    Model m = {0};
    Tokenizer *tok = NULL;
    char src[PATH_MAX], scratch[PATH_MAX];
    TaskList tl;
    SynthOptions so = {.n = 24, .seed = 5, .difficulty = 1};
    SftData d = {0};
    SftConfig sc;
    SftResult res;
    const char *sets[] = {"template=raw", "batch_size=24", "micro_batch=12", "max_steps=150", "optim.lr=1e-2",
                          "max_len=64"};
    cJSON *def = sft_options_defaults(), *tree = cfg_load(def, NULL, sets, 6);
    int rc = tree && synth_arithmetic(&tl, &so) == 0 ? 0 : -1;
    if (rc == 0) rc = sft_data_from_tasks(&d, tl.tasks, tl.n);
    if (rc == 0) rc = sft_options_read(tree, "", &sc);
    if (rc == 0) rc = run_load_policy(&m, &tok, src, "configs/model/tiny-student.json", 11, 0.02f,
                                      path_in(scratch, "teacher.init"));
    if (rc == 0) rc = sft_train(&sc, &m, tok, d.pairs, d.n, NULL, 0, NULL, NULL, &res);
    if (rc == 0) rc = checkpoint_save(teacher_dir, &m, NULL, src, NULL, false);
    if (rc == 0) fprintf(stderr, "     teacher: SFT loss %.3f -> %.3f\n", res.first_loss, res.last_loss);
    tasks_free(&tl);
    sft_data_free(&d);
    cJSON_Delete(def);
    cJSON_Delete(tree);
    if (tok) tokenizer_free(tok);
    model_free(&m);
    return rc;
}

// ------------------------------------------------------------------------------------------------
// Tokenizers

static void test_tokenizer_mismatch(void) {
    char tok_a[PATH_MAX], tok_b[PATH_MAX], bad_dir[PATH_MAX], out[PATH_MAX], db[PATH_MAX];
    path_in(tok_a, "tok_a.json");
    path_in(tok_b, "tok_b.json");
    EXPECT(tokenizer_write_default(tok_a) == 0, "%s", grpo_error());
    size_t len;
    char *text = read_file(tok_a, &len);
    int renamed = 0;
    for (char *at = text; at && (at = strstr(at, "<think>")); renamed++) memcpy(at, "<thonk>", 7); // one token differs
    EXPECT(renamed >= 2, "the default tokenizer has <think> (%d)", renamed);
    EXPECT(write_file_atomic(tok_b, text, len) == 0, "%s", grpo_error());
    free(text);
    Tokenizer *a = tokenizer_load(tok_a), *b = tokenizer_load(tok_b);
    EXPECT(a && b, "load: %s", grpo_error());
    if (!a || !b) return;
    EXPECT(distill_check_tokenizers(a, "A", a, "A") == 0, "the same tokenizer: %s", grpo_error());
    EXPECT(distill_check_tokenizers(a, "A", b, "B") != 0 && strstr(grpo_error(), "<think>") &&
           strstr(grpo_error(), "<thonk>"), "names the token: %s", grpo_error());
    tokenizer_free(a);
    tokenizer_free(b);
    // as a run: refused before any sampling, so no run database
    path_in(bad_dir, "teacher-other-tokenizer");
    EXPECT(make_model_dir(bad_dir, "configs/model/tiny-student.json", 0.02f, tok_b) == 0, "%s", grpo_error());
    cJSON *c = config(bad_dir, NULL, 0);
    DistillResult r;
    path_in(out, "mismatch");
    EXPECT(c && distill_run(c, out, NULL, NULL, &r) != 0 && strstr(grpo_error(), "tokenizer") &&
           strstr(grpo_error(), "id 3"), "mismatch: %s", grpo_error());
    snprintf(db, sizeof db, "%s/run.db", out);
    EXPECT(!path_exists(db), "nothing sampled, no run.db");
    EXPECT(r.n_traces == 0, "no trace sampled");
    cJSON_Delete(c);
}

// ------------------------------------------------------------------------------------------------
// The logit term

// Against the student itself over all V tokens the KL and its gradient vanish; against another model not.
static void test_kd_self(void) {
    Model s = {0}, t = {0};
    ModelConfig cfg;
    EXPECT(config_load(&cfg, "configs/model/tiny-student.json") == 0, "%s", grpo_error());
    EXPECT(model_build(&s, &cfg) == 0 && model_build(&t, &cfg) == 0, "%s", grpo_error());
    model_init_random(&s, 1, 0.3f);
    memcpy(t.params, s.params, sizeof(float) * s.n_params);
    enum { B = 2, T = 10 };
    EXPECT(model_alloc_grads(&s) == 0 && model_alloc_acts(&s, B, T) == 0, "%s", grpo_error());
    int in[B * T], tg[B * T];
    for (int i = 0; i < B * T; i++) in[i] = 9 + (i * 37) % 256, tg[i] = i % T < 4 ? -1 : 9 + (i * 53) % 256;
    size_t np = s.n_params;
    float dlogp[B * T], *g0 = malloc(sizeof(float) * np);
    DistillKd kd;
    for (int pass = 0; pass < 3; pass++) {
        LogitKd opt = {.weight = 1.0f, .top_k = pass < 2 ? cfg.vocab_size : 5, .temperature = 1.0f};
        if (pass == 2) model_init_random(&t, 2, 0.3f); // another teacher
        EXPECT(distill_kd_init(&kd, &t, &s, &opt, B, T) == 0, "init: %s", grpo_error());
        model_zero_grad(&s);
        EXPECT(model_forward(&s, in, tg, B, T) == 0, "%s", grpo_error());
        model_ce_loss(&s, dlogp);
        if (pass > 0) distill_kd_attach(&kd, &s);
        model_backward(&s, dlogp);
        distill_kd_detach(&s);
        double diff = 0, norm = 0;
        for (size_t i = 0; i < np; i++) diff += fabs(s.grads[i] - g0[i]), norm += fabs(g0[i]);
        if (pass == 0) memcpy(g0, s.grads, sizeof(float) * np);
        if (pass == 1) {
            EXPECT(kd.calls == 1 && fabs(kd.last_kl) < 1e-5, "KL to itself %g over %ld calls", kd.last_kl, kd.calls);
            EXPECT(diff < 1e-4 * norm, "the logit term adds no gradient against itself: %g of %g", diff, norm);
        }
        if (pass == 2) {
            EXPECT(kd.last_kl > 0.1, "KL to another model %g", kd.last_kl);
            EXPECT(diff > 1e-2 * norm, "the logit term moves the gradient: %g of %g", diff, norm);
        }
        distill_kd_free(&kd);
    }
    LogitKd bad = {.weight = 1, .top_k = 0, .temperature = 1};
    EXPECT(distill_kd_init(&kd, &t, &s, &bad, B, T) != 0 && strstr(grpo_error(), "top_k"), "%s", grpo_error());
    free(g0);
    model_free(&s);
    model_free(&t);
}

// ------------------------------------------------------------------------------------------------
// Configs

static void test_bad_configs(void) {
    struct { const char *set, *want; } cases[] = {
        {"nope=1", "nope"},
        {"accept.select=longest", "accept.select"},
        {"accept.min_reward=\"high\"", "number or null"},
        {"same_tokenizer=false", "same_tokenizer"}, // with logit_kd.weight=1 below
        {"sample.k=0", "sample.k"},
        {"data.heldout=x.jsonl", "not both"},       // with heldout_frac from config()
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *extra[] = {"logit_kd.weight=1", cases[i].set};
        cJSON *c = distill_config_load(NULL, (const char *const[]){"teacher=t", "student=s",
                                       "data.synthetic.kind=arithmetic", "data.heldout_frac=0.1", extra[0], extra[1]},
                                       6);
        EXPECT(!c && strstr(grpo_error(), cases[i].want), "%s: %s", cases[i].set, c ? "accepted" : grpo_error());
        cJSON_Delete(c);
    }
    cJSON *c = distill_config_load(NULL, (const char *const[]){"student=s", "data.synthetic.kind=arithmetic"}, 2);
    EXPECT(!c && strstr(grpo_error(), "teacher"), "no teacher: %s", c ? "accepted" : grpo_error());
    cJSON_Delete(c);
    c = distill_config_load("configs/distill/tiny.json", (const char *const[]){"teacher=t"}, 1);
    EXPECT(c != NULL, "configs/distill/tiny.json: %s", grpo_error());
    cJSON_Delete(c);
}

// ------------------------------------------------------------------------------------------------
// End to end

static void test_end_to_end(void) {
    char out[PATH_MAX], db[PATH_MAX], exp[PATH_MAX], ck[PATH_MAX + 32], sql[512];
    EXPECT(make_teacher() == 0, "teacher: %s", grpo_error());
    const char *extra[] = {"logit_kd={\"weight\": 1.0, \"top_k\": 8, \"temperature\": 1.0}", "accept.per_prompt=2"};
    cJSON *c = config(teacher_dir, extra, 2);
    DistillResult r;
    path_in(out, "e2e");
    path_in(exp, "e2e.jsonl");
    EXPECT(c && distill_run(c, out, exp, NULL, &r) == 0, "run: %s", grpo_error());
    int sum = 0;
    for (int f = 0; f < TRACE_FATES; f++) sum += r.fates[f];
    EXPECT(r.n_traces == 4 * r.n_prompts && sum == r.n_traces && r.fates[TRACE_ACCEPTED] == r.n_accepted,
           "%d traces of %d prompts, fates sum %d", r.n_traces, r.n_prompts, sum);
    EXPECT(r.n_accepted > 0 && r.n_accepted <= 2 * r.n_prompts, "%d accepted",
           r.n_accepted);
    EXPECT(r.n_heldout > 0 && !strcmp(r.heldout_name, "arithmetic-heldout"), "held-out %d %s", r.n_heldout,
           r.heldout_name);
    EXPECT(r.teacher.pass_at[0] > 0.3, "the teacher knows the sums: pass@1 %.2f", r.teacher.pass_at[0]);
    EXPECT(r.sft.step > 0 && r.sft.checkpoint[0], "student trained: %ld steps, %s", r.sft.step, r.sft.checkpoint);
    snprintf(ck, sizeof ck, "%s/model.safetensors", r.sft.checkpoint);
    EXPECT(path_exists(ck) && strstr(r.sft.checkpoint, "/e2e/student/step-"), "student checkpoint %s", ck);
    EXPECT(r.kd_kl_first > 0 && r.kd_kl_last < r.kd_kl_first, "KL to the teacher %g -> %g", r.kd_kl_first,
           r.kd_kl_last);
    fprintf(stderr, "     %d/%d traces accepted; held-out pass@1 teacher %.2f, student %.2f -> %.2f; KL %.3f -> %.3f\n",
            r.n_accepted, r.n_traces, r.teacher.pass_at[0], r.student_before.pass_at[0], r.student_after.pass_at[0],
            r.kd_kl_first, r.kd_kl_last);

    snprintf(db, sizeof db, "%s/run.db", out);
    sqlite3 *h = NULL;
    EXPECT(sqlite3_open(db, &h) == SQLITE_OK, "open %s", db);
    EXPECT(sql_int(h, "SELECT count(*) FROM runs WHERE kind = 'distill'") == 1, "one distill run");
    EXPECT(sql_int(h, "SELECT count(*) FROM episodes WHERE step = 0") == r.n_traces, "every trace stored");
    EXPECT(sql_int(h, "SELECT sum(json_extract(reward_parts_json, '$.accepted')) FROM episodes") == r.n_accepted,
           "accepted flags");
    EXPECT(sql_int(h, "SELECT count(*) FROM episodes WHERE json_extract(reward_parts_json, '$.accepted') = 0 AND "
                      "json_extract(reward_parts_json, '$.reject') IN ('wrong', 'malformed', 'truncated', 'too_long', "
                      "'duplicate', 'over_limit')") == r.n_traces - r.n_accepted, "reject reasons");
    EXPECT(sql_int(h, "SELECT count(*) FROM episodes WHERE verdict != '' AND json_extract(reward_parts_json, "
                      "'$.math') IS NOT NULL AND finish_reason IN ('stop', 'length') AND advantage IS NULL") ==
               r.n_traces, "episode fields");
    EXPECT(sql_int(h, "SELECT count(*) FROM steps WHERE step = 0 AND json_extract(metrics_json, "
                      "'$.\"distill/accepted\"') = (SELECT sum(json_extract(reward_parts_json, '$.accepted')) FROM "
                      "episodes)") == 1, "the sampling row");
    snprintf(sql, sizeof sql, "SELECT count(*) FROM steps WHERE step >= 1 AND loss IS NOT NULL AND step <= %ld",
             r.sft.step);
    EXPECT(sql_int(h, sql) >= 2, "SFT steps");
    EXPECT(sql_int(h, "SELECT count(*) FROM evals WHERE dataset = 'teacher/arithmetic-heldout' AND step = 0 AND "
                      "metric = 'pass@1'") == 1, "teacher eval");
    snprintf(sql, sizeof sql, "SELECT count(DISTINCT step) FROM evals WHERE dataset = 'student/arithmetic-heldout' "
             "AND metric = 'pass@1' AND step IN (0, %ld)", r.sft.step);
    EXPECT(sql_int(h, sql) == 2, "student evals before and after");
    long long good = sql_int(h, "SELECT count(*) FROM episodes WHERE reward >= 1.5");
    sqlite3_close(h);

    // grpo sft --from-db reads the traces back
    SftData d = {0};
    EXPECT(sft_data_from_db(&d, db, 0, 1.5) == 0 && d.n == good && d.pairs[0].templated, "from the db: %d of %lld: %s",
           d.n, good, grpo_error());
    sft_data_free(&d);
    // the export holds the accepted traces, with the tasks' own prompts
    EXPECT(sft_data_load_jsonl(&d, exp, SFT_FORMAT_MESSAGES) == 0 && d.n == r.n_accepted, "export: %d: %s", d.n,
           grpo_error());
    EXPECT(d.n > 0 && !strncmp(d.pairs[0].prompt, "What is ", 8) && strstr(d.pairs[0].completion, "<answer>"),
           "exported pair: %s -> %s", d.n ? d.pairs[0].prompt : "", d.n ? d.pairs[0].completion : "");
    sft_data_free(&d);
    // the same directory again: refused
    EXPECT(distill_run(c, out, NULL, NULL, &r) != 0 && strstr(grpo_error(), "already"), "%s", grpo_error());
    cJSON_Delete(c);

    // unfiltered: every trace trains the student
    const char *unf[] = {"filter=false", "sft.epochs=1", "data.max_heldout=2"};
    c = config(teacher_dir, unf, 3);
    path_in(out, "unfiltered");
    EXPECT(c && distill_run(c, out, NULL, NULL, &r) == 0, "unfiltered: %s", grpo_error());
    EXPECT(r.n_accepted == r.n_traces && r.n_heldout == 2 && isnan(r.kd_kl_first),
           "unfiltered: %d of %d", r.n_accepted, r.n_traces);
    cJSON_Delete(c);
}

int main(void) {
    if (!mkdtemp(dir)) return 1;
    RUN_TEST(test_filter_rules);
    RUN_TEST(test_filter_random);
    RUN_TEST(test_export_roundtrip);
    RUN_TEST(test_tokenizer_mismatch);
    RUN_TEST(test_kd_self);
    RUN_TEST(test_bad_configs);
    RUN_TEST(test_end_to_end);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (!test_failed && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_summary();
}
