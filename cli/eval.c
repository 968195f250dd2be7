// grpo eval: K sampled completions per task of a data set, scored by a reward, summarised as pass@1, pass@k,
// maj@k and the mean reward (rl/eval.h); a table or JSON on stdout, optionally rows of a run database.
#include "cli/cli.h"
#include "common/error.h"
#include "common/fileio.h"
#include "datasets/dataset.h"
#include "rl/eval.h"
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: grpo eval --model DIR --dataset FILE.jsonl (--reward NAME | --config FILE) [-k K] [--temperature T]\n"
    "                 [--top-p P] [--top-k K] [--min-p P] [--max-new-tokens N] [--stop S]... [--template NAME]\n"
    "                 [--system TEXT] [--seed S] [--limit N] [--max-batch B] [--token-budget N] [--name NAME]\n"
    "                 [--db FILE [--run-id ID] [--step N]] [--out FILE.jsonl] [--json] [--quiet]\n"
    "\n"
    "Samples K completions for every task of a data set, scores them and prints pass@1, pass@k for k = 2, 4,\n"
    "... and K (the unbiased estimator), maj@K (majority vote over the extracted answers), the mean reward,\n"
    "the fraction of samples with an answer, the mean length in tokens and the fraction cut off by\n"
    "--max-new-tokens. A sample is correct when the reward's verdict is correct (math, countdown), passed\n"
    "(code: every test) or match (format). Progress goes to stderr: a bar on a terminal, else a line every\n"
    "30 s.\n"
    "  --model DIR          model directory (config.json, model.safetensors, tokenizer.json)\n"
    "  --dataset FILE       JSONL (plain or .gz): GSM8K, MATH, HumanEval, MBPP, countdown or generic lines\n"
    "  --reward NAME        a registered reward: %s\n"
    "  --config FILE        JSON: the reward's options ({\"name\": .., ...}), or a reward list\n"
    "                       [{\"name\": .., \"weight\": .., ...}, ...] whose first entry's verdict decides\n"
    "  -k K                 samples per task (default 1, at most 16384)\n"
    "  --temperature T      default 0.6; 0 = greedy\n"
    "  --top-p P, --top-k K, --min-p P   truncation (defaults 0.95, off, off), applied in that order\n"
    "  --max-new-tokens N   default 256\n"
    "  --stop S             stop string (repeatable, up to 8); the tokenizer's eos always stops\n"
    "  --template NAME      r1-zero | deepseek-chat | raw, or a template string with {prompt} (default raw)\n"
    "  --system TEXT        the {system} part of the template\n"
    "  --seed S             default 1; the same seed gives the same samples at any batch size\n"
    "  --limit N            the first N tasks only\n"
    "  --max-batch B        sequences decoding at once (default 64, and at least K)\n"
    "  --token-budget N     latent-cache capacity in tokens (default: room for max-batch sequences)\n"
    "  --name NAME          the data set's name in the results (default: the file name without .gz, .jsonl)\n"
    "  --db FILE            store the metrics in this run database (evals table) as a new run of kind eval\n"
    "  --run-id ID          ... or under this existing run of the database (a training run's held-out eval)\n"
    "  --step N             the step the rows belong to (default 0)\n"
    "  --out FILE           every sample as a JSON line {\"task_id\", \"sample_idx\", \"completion\", \"reward\",\n"
    "                       \"correct\", \"verdict\", \"extracted\", \"finish_reason\", \"n_tokens\", \"parts\"}\n"
    "  --json               the results as one JSON object instead of the table\n"
    "  --quiet              nothing on stderr but errors\n"
    "\n"
    "example: grpo eval --model runs/gsm8k/step-500 --dataset gsm8k_test.jsonl --reward math -k 8 --db eval.db\n";

static void usage(FILE *f) { cli_usage_with_rewards(f, USAGE); }

// The reward list the set is built from (kept for the run's config): --config's list, or one entry from
// --reward and --config's options.
static cJSON *reward_list(const char *name, const char *config) {
    cJSON *cfg = NULL;
    if (config) {
        char *text = read_file(config, NULL);
        if (!text) return NULL;
        cfg = cJSON_Parse(text);
        free(text);
        if (!cJSON_IsObject(cfg) && !cJSON_IsArray(cfg)) {
            cJSON_Delete(cfg);
            ERR("%s: expected a JSON object (reward options) or array (reward list)", config);
            return NULL;
        }
        if (cJSON_IsArray(cfg) && name) {
            cJSON_Delete(cfg);
            ERR("%s holds a reward list; leave out --reward %s", config, name);
            return NULL;
        }
        if (cJSON_IsArray(cfg)) return cfg;
    }
    cJSON *entry = cfg ? cfg : cJSON_CreateObject(), *list = cJSON_CreateArray();
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(entry, "name");
    const char *bad = !name && !n          ? "no reward: give --reward NAME or a config with \"name\""
                      : name && n && !(cJSON_IsString(n) && !strcmp(n->valuestring, name))
                          ? "--reward and the config's \"name\" differ"
                          : NULL;
    if (!entry || !list || bad) {
        cJSON_Delete(entry);
        cJSON_Delete(list);
        ERR("%s", bad ? bad : "out of memory");
        return NULL;
    }
    if (!n) cJSON_AddStringToObject(entry, "name", name);
    cJSON_AddItemToArray(list, entry);
    return list;
}

// The data set's name: the file name without .gz and then .jsonl / .json.
static void dataset_stem(char *out, size_t cap, const char *path) {
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    snprintf(out, cap, "%s", basename(buf));
    static const char *const ext[] = {".gz", ".jsonl", ".json"};
    for (int e = 0; e < 3; e++) {
        size_t n = strlen(out), x = strlen(ext[e]);
        if (n > x && !strcmp(out + n - x, ext[e])) out[n - x] = 0;
        if (e == 1 && strlen(out) < n) break; // .jsonl removed: not also .json
    }
}

static double tidy(double v) { return round(v * 1e6) / 1e6; }

static int write_sample(void *ctx, const EvalSample *s) {
    FILE *f = ctx;
    cJSON *o = cJSON_CreateObject(), *parts = cJSON_CreateObject();
    if (!o || !parts) {
        cJSON_Delete(o), cJSON_Delete(parts);
        return ERR("out of memory");
    }
    cJSON_AddStringToObject(o, "task_id", s->task->id ? s->task->id : "");
    cJSON_AddNumberToObject(o, "sample_idx", s->sample_idx);
    cJSON_AddStringToObject(o, "completion", s->completion);
    cJSON_AddNumberToObject(o, "reward", tidy(s->reward));
    cJSON_AddBoolToObject(o, "correct", s->correct);
    cJSON_AddStringToObject(o, "verdict", s->detail->verdict);
    cJSON_AddStringToObject(o, "extracted", s->detail->extracted);
    cJSON_AddStringToObject(o, "finish_reason", finish_reason_name(s->finish));
    cJSON_AddNumberToObject(o, "n_tokens", s->n_tokens);
    for (int k = 0; k < s->detail->nparts && k < REWARD_MAX_PARTS; k++)
        cJSON_AddNumberToObject(parts, s->detail->parts[k].name, tidy(s->detail->parts[k].value));
    cJSON_AddItemToObject(o, "parts", parts);
    char *line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!line) return ERR("out of memory");
    fprintf(f, "%s\n", line);
    free(line);
    return 0;
}

static int run_exists(Store *s, int64_t id) {
    sqlite3 *db = store_db(s);
    sqlite3_stmt *st = NULL;
    sqliteCheck(sqlite3_prepare_v2(db, "SELECT 1 FROM runs WHERE id = ?", -1, &st, NULL), db, "looking up the run");
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    sqliteCheck(rc, db, "looking up the run");
    return rc == SQLITE_ROW ? 0 : ERR("run %lld is not in the database", (long long)id);
}

// The run's config_json: what was evaluated and how.
static char *run_config(const char *dataset, const char *name, const cJSON *rewards, const EvalOptions *o, long limit) {
    cJSON *c = cJSON_CreateObject();
    if (!c) return NULL;
    cJSON_AddStringToObject(c, "command", "eval");
    cJSON_AddStringToObject(c, "dataset", dataset);
    cJSON_AddStringToObject(c, "name", name);
    cJSON_AddItemToObject(c, "rewards", cJSON_Duplicate(rewards, 1));
    cJSON_AddNumberToObject(c, "k", o->rollout.group_size);
    cJSON_AddNumberToObject(c, "temperature", tidy(o->rollout.sampler.temperature));
    cJSON_AddNumberToObject(c, "top_p", tidy(o->rollout.sampler.top_p));
    cJSON_AddNumberToObject(c, "top_k", o->rollout.sampler.top_k);
    cJSON_AddNumberToObject(c, "min_p", tidy(o->rollout.sampler.min_p));
    cJSON_AddNumberToObject(c, "max_new_tokens", o->rollout.max_new_tokens);
    cJSON *stop = cJSON_AddArrayToObject(c, "stop");
    for (int i = 0; i < o->rollout.n_stop; i++) cJSON_AddItemToArray(stop, cJSON_CreateString(o->rollout.stop[i]));
    cJSON_AddStringToObject(c, "template", o->tmpl);
    if (o->system) cJSON_AddStringToObject(c, "system", o->system);
    cJSON_AddNumberToObject(c, "seed", (double)o->seed);
    if (limit > 0) cJSON_AddNumberToObject(c, "limit", limit);
    char *s = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    return s;
}

static void print_table(const char *name, const EvalResult *r, const char *reward) {
    EvalMetric met[EVAL_MAX_METRICS];
    int m = eval_metrics(r, met);
    printf("%s: %d tasks x %d samples, reward %s, %.1f s\n", name, r->n_tasks, r->k, reward, r->seconds);
    printf("  %-12s %10s\n", "metric", "value");
    for (int i = 0; i < m; i++) {
        if (met[i].rate) printf("  %-12s %9.1f%%\n", met[i].name, 100 * met[i].value);
        else printf("  %-12s %10.4g\n", met[i].name, met[i].value);
    }
}

static int print_json(const char *name, const EvalResult *r, int64_t run_id, long step) {
    EvalMetric met[EVAL_MAX_METRICS];
    int m = eval_metrics(r, met);
    cJSON *o = cJSON_CreateObject(), *metrics = cJSON_CreateObject();
    if (!o || !metrics) {
        cJSON_Delete(o), cJSON_Delete(metrics);
        return ERR("out of memory");
    }
    cJSON_AddStringToObject(o, "dataset", name);
    cJSON_AddNumberToObject(o, "tasks", r->n_tasks);
    cJSON_AddNumberToObject(o, "k", r->k);
    for (int i = 0; i < m; i++) cJSON_AddNumberToObject(metrics, met[i].name, tidy(met[i].value));
    cJSON_AddItemToObject(o, "metrics", metrics);
    cJSON_AddNumberToObject(o, "solved", r->n_solved);
    cJSON_AddNumberToObject(o, "seconds", tidy(r->seconds));
    if (run_id > 0) cJSON_AddNumberToObject(o, "run_id", (double)run_id);
    cJSON_AddNumberToObject(o, "step", step);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) return ERR("out of memory");
    puts(s);
    free(s);
    return 0;
}

int cmd_eval(int argc, char **argv) {
    const char *model_dir = NULL, *dataset = NULL, *reward = NULL, *config = NULL, *name = NULL, *db_path = NULL,
               *out_path = NULL;
    long k = 1, max_new = 256, top_k = 0, seed = 1, max_batch = 0, budget = 0, limit = 0, run_id = 0, step = 0;
    double temp = 0.6, top_p = 0.95, min_p = 0.0;
    bool bad = false, json = false, quiet = false;
    EvalOptions opt = eval_defaults();
    for (int i = 1; i < argc; i++) {
        const char *stop;
        if (cli_is_help(argv[i])) {
            usage(stdout);
            return 0;
        }
        if (cli_str(argc, argv, &i, "--stop", &stop, &bad)) {
            if (opt.rollout.n_stop == ROLLOUT_MAX_STOP) {
                fprintf(stderr, "grpo eval: at most %d --stop strings\n", ROLLOUT_MAX_STOP);
                return 2;
            }
            opt.rollout.stop[opt.rollout.n_stop++] = stop;
            continue;
        }
        if (cli_str(argc, argv, &i, "--model", &model_dir, &bad) || cli_str(argc, argv, &i, "--dataset", &dataset, &bad) ||
            cli_str(argc, argv, &i, "--reward", &reward, &bad) || cli_str(argc, argv, &i, "--config", &config, &bad) ||
            cli_str(argc, argv, &i, "--name", &name, &bad) || cli_str(argc, argv, &i, "--db", &db_path, &bad) ||
            cli_str(argc, argv, &i, "--out", &out_path, &bad) || cli_str(argc, argv, &i, "--template", &opt.tmpl, &bad) ||
            cli_str(argc, argv, &i, "--system", &opt.system, &bad) || cli_int(argc, argv, &i, "-k", &k, &bad) ||
            cli_int(argc, argv, &i, "--max-new-tokens", &max_new, &bad) || cli_int(argc, argv, &i, "--top-k", &top_k, &bad) ||
            cli_int(argc, argv, &i, "--seed", &seed, &bad) || cli_int(argc, argv, &i, "--max-batch", &max_batch, &bad) ||
            cli_int(argc, argv, &i, "--token-budget", &budget, &bad) || cli_int(argc, argv, &i, "--limit", &limit, &bad) ||
            cli_int(argc, argv, &i, "--run-id", &run_id, &bad) || cli_int(argc, argv, &i, "--step", &step, &bad) ||
            cli_float(argc, argv, &i, "--temperature", &temp, &bad) || cli_float(argc, argv, &i, "--top-p", &top_p, &bad) ||
            cli_float(argc, argv, &i, "--min-p", &min_p, &bad) || cli_flag(argv, i, "--json", &json) ||
            cli_flag(argv, i, "--quiet", &quiet))
            continue;
        fprintf(stderr, "grpo eval: unknown option or argument '%s'\n\n", argv[i]);
        usage(stderr);
        return 2;
    }
    if (bad) return 2;
    const char *usage_error = !model_dir || !dataset    ? "--model and --dataset are required"
                              : !reward && !config      ? "give --reward or --config"
                              : k < 1 || k > EVAL_MAX_K ? "-k must be 1..16384"
                              : limit < 0               ? "--limit must be >= 0"
                              : max_batch && max_batch < k ? "--max-batch must be at least K (a task's samples "
                                                             "decode together)"
                              : run_id && !db_path      ? "--run-id needs --db"
                              : run_id < 0 || step < 0  ? "--run-id and --step must be >= 0"
                                                        : NULL;
    if (usage_error) {
        fprintf(stderr, "grpo eval: %s\n\n", usage_error);
        usage(stderr);
        return 2;
    }
    opt.rollout.group_size = (int)k;
    opt.rollout.max_new_tokens = (int)max_new;
    opt.rollout.sampler = (SamplerParams){.temperature = (float)temp, .top_k = (int)top_k, .top_p = (float)top_p,
                                          .min_p = (float)min_p};
    opt.rollout.max_batch = (int)(max_batch ? max_batch : k > 64 ? k : 64);
    opt.rollout.token_budget = budget;
    opt.seed = (uint64_t)seed;
    opt.progress = !quiet;

    char stem[256];
    dataset_stem(stem, sizeof stem, dataset);
    if (!name) name = stem;
    opt.label = name;
    Model m = {0};
    Tokenizer *tok = NULL;
    TaskList tasks = {0};
    RewardSet rewards = {0};
    cJSON *list = NULL;
    Store *db = NULL;
    AtomicFile out = {0};
    char *cfg_json = NULL;
    int status = 1;
    int64_t rid = run_id;
    EvalResult res;
    if (!(list = reward_list(reward, config)) || reward_set_create(&rewards, list) != 0) {
        if (config) grpo_error_context("%s", config);
        goto done;
    }
    if (tasks_load(&tasks, dataset, NULL) != 0 || model_load(&m, model_dir) != 0 || !(tok = tokenizer_load(model_dir)))
        goto done;
    // the database and the output file are checked before the long part, not after it
    if (db_path && (!(db = store_open(db_path)) || (rid && run_exists(db, rid) != 0))) goto done;
    if (out_path) {
        if (atomic_open(&out, out_path) != 0) goto done;
        opt.on_sample = write_sample;
        opt.on_sample_ctx = out.f;
    }
    int n = limit > 0 && limit < tasks.n ? (int)limit : tasks.n;
    if (eval_run(&res, &m, tok, tasks.tasks, n, &rewards, &opt) != 0) goto done;
    if (out_path && atomic_commit(&out) != 0) goto done;
    if (db) {
        if (!rid && (!(cfg_json = run_config(dataset, name, list, &opt, limit)) ||
                     store_begin_run(db, "eval", cfg_json, model_dir, NULL, &rid) != 0))
            goto done;
        if (eval_store(db, rid, step, name, &res) != 0) goto done;
    }
    if (json) {
        if (print_json(name, &res, rid, step) != 0) goto done;
    } else
        print_table(name, &res, reward ? reward : config);
    if (db && !quiet) fprintf(stderr, "eval: %s step %ld stored as run %lld in %s\n", name, step, (long long)rid, db_path);
    status = 0;
done:
    if (status) cli_fail("eval");
    atomic_abort(&out);
    free(cfg_json);
    store_close(db);
    cJSON_Delete(list);
    reward_set_destroy(&rewards);
    tasks_free(&tasks);
    if (tok) tokenizer_free(tok);
    model_free(&m);
    return status;
}
