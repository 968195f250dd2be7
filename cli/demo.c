// grpo demo: the whole idea on a laptop CPU, from nothing. A tiny MoE/MLA policy is random-initialised,
// cold-started with SFT on step-by-step arithmetic traces, measured on a held-out split, trained with GRPO
// (math reward + R1 format reward), and measured again; every episode lands in DIR/demo.db and the curves
// in DIR/report.html.
#include "cli/cli.h"
#include "common/config_tree.h"
#include "common/error.h"
#include "common/fileio.h"
#include "datasets/dataset.h"
#include "policy/checkpoint.h"
#include "rewards/reward.h"
#include "rl/eval.h"
#include "rl/report.h"
#include "rl/run.h"
#include "rl/sft.h"
#include "rl/store.h"
#include "rl/trainer.h"
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: grpo demo [--out DIR] [--minutes N] [--seed S]\n"
    "\n"
    "From nothing (no download): writes a tiny DeepSeek-V3-style model (MLA + MoE) and grpo.c's byte-level\n"
    "tokenizer, makes a synthetic arithmetic task whose reference completions reason step by step in R1's\n"
    "<think>...</think><answer>...</answer> form, cold-starts the model with SFT on a few of them, measures\n"
    "held-out accuracy, runs GRPO with the math reward plus the format reward, measures again and prints\n"
    "before and after. Writes into DIR: model/ (the initial model), sft/ and grpo/ (checkpoints),\n"
    "train.jsonl and heldout.jsonl (the tasks), demo.db (every step, episode and eval) and report.html.\n"
    "  --out DIR      output directory (default runs/demo); an existing demo there is replaced\n"
    "  --minutes N    time budget (default 10); GRPO stops early when the machine is slower than planned,\n"
    "                 and below 4 minutes every phase is scaled down (a smoke test, smaller gains)\n"
    "  --seed S       seed of the model, the tasks and the sampling (default 1)\n"
    "\n"
    "example: grpo demo --out runs/demo\n";

// Model config (Hugging Face keys): configs/model/tiny.json's shape, written by the demo itself.
static const char *MODEL_JSON =
    "{\"architectures\": [\"DeepseekV3ForCausalLM\"], \"model_type\": \"deepseek_v3\", \"vocab_size\": 512,"
    " \"hidden_size\": 64, \"intermediate_size\": 128, \"moe_intermediate_size\": 32, \"num_hidden_layers\": 3,"
    " \"num_attention_heads\": 4, \"num_key_value_heads\": 4, \"q_lora_rank\": 32, \"kv_lora_rank\": 32,"
    " \"qk_nope_head_dim\": 16, \"qk_rope_head_dim\": 8, \"v_head_dim\": 16, \"n_routed_experts\": 8,"
    " \"n_shared_experts\": 1, \"num_experts_per_tok\": 2, \"first_k_dense_replace\": 1, \"moe_layer_freq\": 1,"
    " \"routed_scaling_factor\": 2.5, \"scoring_func\": \"sigmoid\", \"topk_method\": \"noaux_tc\","
    " \"n_group\": 2, \"topk_group\": 1, \"norm_topk_prob\": true, \"rms_norm_eps\": 1e-6, \"rope_theta\": 10000,"
    " \"max_position_embeddings\": 512, \"tie_word_embeddings\": false, \"num_nextn_predict_layers\": 0,"
    " \"bos_token_id\": 0, \"eos_token_id\": 1, \"torch_dtype\": \"float32\"}";

static const char *TEMPLATE = "User: {prompt}\nAssistant: ";

// What a budget buys; tuned on the 2-core CI machine.
typedef struct {
    int train_tasks, heldout_tasks, difficulty;
    int sft_steps, sft_batch, sft_check_every, valid_tasks;
    double sft_lr, sft_target;
    int grpo_steps, prompts, group;
    double grpo_lr;
    int max_new, eval_k;
    double eval_temperature;
} Plan;

static Plan plan_for(double minutes) {
    Plan p = {.train_tasks = 8000, .heldout_tasks = 200, .difficulty = 2, .sft_steps = 1500, .sft_batch = 16,
              .sft_check_every = 25, .valid_tasks = 64, .sft_lr = 5e-3, .sft_target = 0.3, .grpo_steps = 300,
              .prompts = 8, .group = 8, .grpo_lr = 1e-4, .max_new = 48, .eval_k = 4, .eval_temperature = 1.0};
    if (minutes < 4) { // a smoke run: the same pipeline, fewer steps
        double f = minutes / 4 < 0.15 ? 0.15 : minutes / 4;
        p.grpo_steps = (int)(p.grpo_steps * f) + 1;
        p.heldout_tasks = 64;
    }
    return p;
}

// The held-out accuracy of the model in m: pass@1 over eval_k samples per task, at the sampling temperature.
static int measure(Model *m, Tokenizer *tok, const Task *tasks, int n, const RewardSet *rs, const Plan *p, int k,
                   uint64_t seed, EvalResult *res) {
    EvalOptions o = eval_defaults();
    o.rollout.group_size = k;
    o.rollout.max_new_tokens = p->max_new;
    o.rollout.sampler = sampler_defaults();
    o.rollout.sampler.temperature = (float)p->eval_temperature;
    o.rollout.max_batch = 64;
    o.tmpl = TEMPLATE;
    o.seed = seed;
    return eval_run(res, m, tok, tasks, n, rs, &o);
}

// The cold start ends once the model solves sft_target of a validation split (the first training tasks,
// never the held-out ones): enough skill that GRPO's groups carry signal, and room left for GRPO to show.
typedef struct {
    Tokenizer *tok;
    const TaskList *train;
    const RewardSet *rs;
    const Plan *p;
    uint64_t seed;
} ColdStart;

static int cold_start_check(void *ctx, long step, Model *m, bool *stop) {
    ColdStart *c = ctx;
    EvalResult r;
    TRY(measure(m, c->tok, c->train->tasks, c->p->valid_tasks, c->rs, c->p, 2, c->seed, &r));
    printf("demo: SFT step %ld: validation accuracy %.1f%%\n", step, 100 * r.pass_at[0]);
    fflush(stdout);
    *stop = r.pass_at[0] >= c->p->sft_target;
    return 0;
}

static int store_accuracy(const char *db, int64_t run_id, long step, const EvalResult *r) {
    Store *s = store_open(db);
    if (!s) return -1;
    EvalRecord acc = {.dataset = "arithmetic-heldout", .metric = "accuracy", .value = r->pass_at[0],
                      .n = r->n_tasks};
    int rc = eval_store(s, run_id, step, "arithmetic-heldout", r);
    if (rc == 0) rc = store_write_evals(s, run_id, step, &acc, 1);
    store_close(s);
    return rc;
}

static int demo(const char *out, double minutes, long seed) {
    Plan p = plan_for(minutes);
    double t0 = run_now();
    char path[PATH_MAX], db[PATH_MAX], tok_src[PATH_MAX], model_cfg[PATH_MAX];
    if (path_exists(out)) { // a demo directory is rebuilt whole
        char cmd[PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/demo.db", out);
        CHECK(path_exists(path), "%s exists and is not a demo directory (no demo.db): choose another --out", out);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", out);
        CHECK(system(cmd) == 0, "could not remove the previous demo in %s", out);
    }
    TRY(mkdir_p(out));
    snprintf(model_cfg, sizeof model_cfg, "%s/model.json", out);
    TRY(write_file_atomic(model_cfg, MODEL_JSON, strlen(MODEL_JSON)));
    snprintf(db, sizeof db, "%s/demo.db", out);

    // 1. The task: multi-digit addition with column-by-column traces; a held-out split by prompt hash.
    TaskList all = {0}, train = {0}, heldout = {0};
    SynthOptions so = {.n = p.train_tasks + 4 * p.heldout_tasks, .seed = (uint64_t)seed, .difficulty = p.difficulty,
                       .ops = "+"};
    TRY(synth_arithmetic(&all, &so));
    TRY(tasks_split(&all, 4.0 * p.heldout_tasks / so.n, (uint64_t)seed, &train, &heldout));
    while (heldout.n > p.heldout_tasks) task_free(&heldout.tasks[--heldout.n]);
    snprintf(path, sizeof path, "%s/train.jsonl", out);
    TRY(tasks_write_jsonl(path, train.tasks, train.n));
    snprintf(path, sizeof path, "%s/heldout.jsonl", out);
    TRY(tasks_write_jsonl(path, heldout.tasks, heldout.n));
    printf("demo: %d training and %d held-out tasks, e.g. \"%s\" -> %s\n", train.n, heldout.n, train.tasks[0].prompt,
           train.tasks[0].answer);

    // 2. SFT cold start on the reference traces.
    Model m = {0};
    Tokenizer *tok = NULL;
    snprintf(path, sizeof path, "%s/model", out);
    TRY(run_load_policy(&m, &tok, tok_src, model_cfg, (uint64_t)seed, 0.02f, path));
    TRY(checkpoint_save(path, &m, NULL, tok_src, NULL, false));
    RewardSet rs;
    cJSON *rlist = cJSON_Parse("[{\"name\": \"math\", \"weight\": 1.0}, {\"name\": \"format\", \"weight\": 0.2}]");
    TRY(reward_set_create(&rs, rlist));
    EvalResult before, after, start;
    TRY(measure(&m, tok, heldout.tasks, heldout.n, &rs, &p, p.eval_k, (uint64_t)seed, &start));

    Store *st = store_open(db);
    if (!st) return -1;
    int64_t sft_run;
    TRY(store_begin_run(st, "sft", NULL, "demo: tiny MLA/MoE, random init", "demo", &sft_run));
    SftData pairs = {0};
    TRY(sft_data_from_tasks(&pairs, train.tasks, train.n));
    cJSON *sdef = sft_options_defaults();
    SftConfig sc;
    TRY(sft_options_read(sdef, "", &sc));
    sc.tmpl = TEMPLATE;
    sc.max_steps = p.sft_steps;
    sc.batch_size = p.sft_batch;
    sc.micro_batch = p.sft_batch;
    sc.max_len = 128;
    sc.seed = (uint64_t)seed;
    sc.optim.lr = (float)p.sft_lr;
    sc.optim.schedule = LR_COSINE;
    sc.optim.warmup_steps = 4;
    sc.log_every = p.sft_check_every;
    sc.log = stdout;
    ColdStart cs = {.tok = tok, .train = &train, .rs = &rs, .p = &p, .seed = (uint64_t)seed};
    sc.check = cold_start_check;
    sc.check_ctx = &cs;
    sc.check_every = p.sft_check_every;
    SftResult sres;
    snprintf(path, sizeof path, "%s/sft", out);
    printf("demo: SFT cold start on the reference traces (%d per step) until %.0f%% of a validation split is "
           "solved\n", p.sft_batch, 100 * p.sft_target);
    fflush(stdout);
    int rc = sft_train(&sc, &m, tok, pairs.pairs, pairs.n, st, sft_run, path, tok_src, &sres);
    cJSON_Delete(sdef);
    sft_data_free(&pairs);
    if (rc == 0) rc = eval_store(st, sft_run, 0, "arithmetic-heldout", &start);
    store_close(st);
    TRY(rc);
    TRY(measure(&m, tok, heldout.tasks, heldout.n, &rs, &p, p.eval_k, (uint64_t)seed, &before));
    printf("demo: held-out accuracy after SFT %.1f%% (random init %.1f%%)\n", 100 * before.pass_at[0],
           100 * start.pass_at[0]);

    // 3. GRPO from the SFT checkpoint, with the time that is left.
    double left = minutes - (run_now() - t0) / 60 - 0.5; // the final eval and the report
    char sets[16][PATH_MAX + 64];
    const char *setp[16];
    int ns = 0;
#define SET(...) do { snprintf(sets[ns], sizeof sets[ns], __VA_ARGS__); setp[ns] = sets[ns]; ns++; } while (0)
    SET("model=%s", sres.checkpoint);
    snprintf(path, sizeof path, "%s/train.jsonl", out);
    SET("data.train=%s", path);
    SET("template=%s", TEMPLATE);
    SET("rewards=[{\"name\": \"math\", \"weight\": 1.0}, {\"name\": \"format\", \"weight\": 0.2}]");
    SET("steps=%d", p.grpo_steps);
    SET("seed=%ld", seed);
    SET("rollout={\"prompts_per_step\": %d, \"group_size\": %d, \"max_new_tokens\": %d, \"temperature\": 1.0}",
        p.prompts, p.group, p.max_new);
    SET("grpo.micro_batch=%d", p.prompts * p.group);
    SET("optim.lr=%g", p.grpo_lr);
    SET("save_every=%d", p.grpo_steps);
    SET("db=%s", db);
    SET("max_minutes=%g", left > 0.5 ? left : 0.5);
#undef SET
    cJSON *gcfg = train_config_load(NULL, setp, ns);
    if (!gcfg) return -1;
    snprintf(path, sizeof path, "%s/grpo", out);
    printf("demo: GRPO, up to %d steps of %d prompts x %d samples (%.1f minutes left)\n", p.grpo_steps, p.prompts,
           p.group, left);
    fflush(stdout);
    TrainResult tr;
    rc = train_run(gcfg, path, false, &tr);
    cJSON_Delete(gcfg);
    TRY(rc);
    model_free(&m);
    memset(&m, 0, sizeof m);
    TRY(model_load(&m, tr.final_checkpoint));
    TRY(measure(&m, tok, heldout.tasks, heldout.n, &rs, &p, p.eval_k, (uint64_t)seed, &after));
    TRY(store_accuracy(db, tr.run_id, 0, &before));
    TRY(store_accuracy(db, tr.run_id, tr.steps_done, &after));

    // 4. The report.
    snprintf(path, sizeof path, "%s/report.html", out);
    TRY(report_write(db, path, NULL));
    double mins = (run_now() - t0) / 60;
    printf("\n  held-out accuracy (pass@1 over %d samples at temperature %.1f, %d tasks)\n"
           "    random init  %5.1f%%\n    after SFT    %5.1f%%\n    after GRPO   %5.1f%%   (%+.1f points, %d steps)\n"
           "  mean reward during GRPO %.3f -> %.3f; %.1f minutes\n  %s  (open in a browser)\n  %s  (sqlite3)\n",
           p.eval_k, p.eval_temperature, heldout.n, 100 * start.pass_at[0], 100 * before.pass_at[0],
           100 * after.pass_at[0], 100 * (after.pass_at[0] - before.pass_at[0]), tr.steps_done, tr.reward_first,
           tr.reward_last, mins, path, db);
    model_free(&m);
    tokenizer_free(tok);
    reward_set_destroy(&rs);
    cJSON_Delete(rlist);
    tasks_free(&train);
    tasks_free(&heldout);
    return 0;
}

int cmd_demo(int argc, char **argv) {
    const char *out = "runs/demo";
    double minutes = 10;
    long seed = 1;
    bool bad = false;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { fputs(USAGE, stdout); return 0; }
        if (cli_str(argc, argv, &i, "--out", &out, &bad) || cli_float(argc, argv, &i, "--minutes", &minutes, &bad) ||
            cli_int(argc, argv, &i, "--seed", &seed, &bad))
            continue;
        return cli_unknown("demo", argv[i], USAGE);
    }
    if (bad) return 2;
    if (minutes <= 0) {
        fprintf(stderr, "grpo demo: --minutes %g: expected > 0\n", minutes);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); // progress lines appear as they happen, also through a pipe
    return demo(out, minutes, seed) == 0 ? 0 : cli_fail("demo");
}
