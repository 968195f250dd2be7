// grpo generate: G sampled completions per prompt of a JSONL file through the rollout engine, one JSON line
// per completion, with throughput on stderr.
#include "cli/cli.h"
#include "common/error.h"
#include "datasets/dataset.h"
#include "policy/checkpoint.h"
#include "rollout/rollout.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *USAGE =
    "usage: grpo generate --model DIR --prompts FILE.jsonl [-n G] [--max-new-tokens N] [--temperature T]\n"
    "                     [--top-p P] [--top-k K] [--min-p P] [--stop S]... [--seed S] [--template NAME]\n"
    "                     [--system TEXT] [--max-batch B] [--token-budget TOKENS] [--out FILE.jsonl]\n"
    "\n"
    "Samples G completions for every prompt (lines with `prompt`, `question` or `problem`; GSM8K, MATH,\n"
    "HumanEval and MBPP files work as they are). Each output line: {\"prompt_idx\", \"sample_idx\", \"task_id\",\n"
    "\"completion\", \"ids\", \"finish_reason\" (stop | length), \"n_tokens\", \"logprob_sum\"}.\n"
    "  --model DIR          model directory (config.json, model.safetensors, tokenizer.json)\n"
    "  --prompts FILE       JSONL (plain or .gz)\n"
    "  -n G                 completions per prompt (default 1)\n"
    "  --max-new-tokens N   default 256\n"
    "  --temperature T      default 1; 0 = greedy\n"
    "  --top-p P, --top-k K, --min-p P   truncation (defaults off: 1, 0, 0), applied in that order\n"
    "  --stop S             stop string (repeatable, up to 8); the text keeps it. The tokenizer's eos\n"
    "                       always stops\n"
    "  --seed S             default 1; the same seed gives the same completions at any batch size\n"
    "  --template NAME      r1-zero | deepseek-chat | raw, or a template string with {prompt} (default raw)\n"
    "  --system TEXT        the {system} part of the template\n"
    "  --max-batch B        sequences decoding at once (default 64)\n"
    "  --token-budget N     latent-cache capacity in tokens (default: room for max-batch sequences)\n"
    "  --out FILE           output file (default stdout)\n"
    "\n"
    "example: grpo generate --model runs/tiny-init --prompts prompts.jsonl -n 4 --max-new-tokens 64\n";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int write_completion(FILE *f, const Completion *c, const Task *t) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return ERR("out of memory");
    cJSON_AddNumberToObject(o, "prompt_idx", c->prompt_idx);
    cJSON_AddNumberToObject(o, "sample_idx", c->sample_idx);
    cJSON_AddStringToObject(o, "task_id", t->id ? t->id : "");
    cJSON_AddStringToObject(o, "completion", c->text);
    cJSON_AddItemToObject(o, "ids", cJSON_CreateIntArray(c->ids, c->n));
    cJSON_AddStringToObject(o, "finish_reason", finish_reason_name(c->finish));
    cJSON_AddNumberToObject(o, "n_tokens", c->n);
    cJSON_AddNumberToObject(o, "logprob_sum", c->logprob_sum);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) return ERR("out of memory");
    int ok = fprintf(f, "%s\n", s) > 0;
    free(s);
    return ok ? 0 : ERR("writing the output failed");
}

int cmd_generate(int argc, char **argv) {
    const char *model_dir = NULL, *prompts_path = NULL, *out_path = NULL, *tmpl = "raw", *system = NULL;
    long G = 1, max_new = 256, top_k = 0, seed = 1, max_batch = 64, budget = 0;
    double temp = 1.0, top_p = 1.0, min_p = 0.0;
    bool bad = false;
    RolloutConfig rc = rollout_defaults();
    for (int i = 1; i < argc; i++) {
        const char *stop;
        if (cli_is_help(argv[i])) { fputs(USAGE, stdout); return 0; }
        if (cli_str(argc, argv, &i, "--stop", &stop, &bad)) {
            if (rc.n_stop == ROLLOUT_MAX_STOP) {
                fprintf(stderr, "grpo generate: at most %d --stop strings\n", ROLLOUT_MAX_STOP);
                return 2;
            }
            rc.stop[rc.n_stop++] = stop;
            continue;
        }
        if (cli_str(argc, argv, &i, "--model", &model_dir, &bad) ||
            cli_str(argc, argv, &i, "--prompts", &prompts_path, &bad) || cli_str(argc, argv, &i, "--out", &out_path, &bad) ||
            cli_str(argc, argv, &i, "--template", &tmpl, &bad) || cli_str(argc, argv, &i, "--system", &system, &bad) ||
            cli_int(argc, argv, &i, "-n", &G, &bad) || cli_int(argc, argv, &i, "--max-new-tokens", &max_new, &bad) ||
            cli_int(argc, argv, &i, "--top-k", &top_k, &bad) || cli_int(argc, argv, &i, "--seed", &seed, &bad) ||
            cli_int(argc, argv, &i, "--max-batch", &max_batch, &bad) ||
            cli_int(argc, argv, &i, "--token-budget", &budget, &bad) ||
            cli_float(argc, argv, &i, "--temperature", &temp, &bad) || cli_float(argc, argv, &i, "--top-p", &top_p, &bad) ||
            cli_float(argc, argv, &i, "--min-p", &min_p, &bad))
            continue;
        return cli_unknown("generate", argv[i], USAGE);
    }
    if (bad) return 2;
    if (!model_dir || !prompts_path) {
        fprintf(stderr, "grpo generate: --model and --prompts are required\n\n%s", USAGE);
        return 2;
    }
    rc.group_size = (int)G;
    rc.max_new_tokens = (int)max_new;
    rc.sampler = (SamplerParams){.temperature = (float)temp, .top_k = (int)top_k, .top_p = (float)top_p,
                                 .min_p = (float)min_p};
    rc.max_batch = (int)max_batch;

    Model m = {0};
    Tokenizer *tok = NULL;
    TaskList tasks = {0};
    RolloutEngine *e = NULL;
    Completion *out = NULL;
    int **ids = NULL, *lens = NULL, status = 1, P = 0;
    FILE *f = NULL;
    if (model_load(&m, model_dir) != 0 || !(tok = tokenizer_load(model_dir)) || tasks_load(&tasks, prompts_path, NULL) != 0)
        goto done;
    P = tasks.n;
    ids = calloc(P ? P : 1, sizeof(int *));
    lens = calloc(P ? P : 1, sizeof(int));
    if (!ids || !lens) { ERR("out of memory"); goto done; }
    int max_prompt = 1;
    for (int p = 0; p < P; p++) {
        TokIds t = {0};
        if (prompt_encode(&t, tok, tmpl, system, tasks.tasks[p].prompt) != 0) {
            grpo_error_context("%s: prompt %d", prompts_path, p);
            tok_ids_free(&t);
            goto done;
        }
        ids[p] = t.ids;
        lens[p] = t.n;
        if (t.n > max_prompt) max_prompt = t.n;
    }
    rc.token_budget = budget ? budget : rollout_full_budget(&rc, max_prompt);
    if (!(e = rollout_create(&m, tok, &rc, max_prompt))) goto done;
    out = calloc((size_t)P * rc.group_size + 1, sizeof(Completion));
    if (!out) { ERR("out of memory"); goto done; }
    double t0 = now_s();
    RolloutStats st;
    if (rollout_generate(e, (const int *const *)ids, lens, P, (uint64_t)seed, out, NULL, NULL, &st) != 0) goto done;
    double secs = now_s() - t0;
    if (!(f = out_path ? fopen(out_path, "w") : stdout)) { ERR("%s: cannot open for writing", out_path); goto done; }
    long toks = 0, stopped = 0;
    for (int i = 0; i < P * rc.group_size; i++) {
        if (write_completion(f, &out[i], &tasks.tasks[out[i].prompt_idx]) != 0) goto done;
        toks += out[i].n;
        stopped += out[i].finish == FINISH_STOP;
    }
    if (fflush(f) != 0) { ERR("%s: write failed", out_path ? out_path : "stdout"); goto done; }
    fprintf(stderr,
            "generate: %d prompts x %d = %d completions, %ld tokens (%.1f%% stopped) in %.2f s: %.0f tokens/s; "
            "prefill %ld tokens %.2f s, decode %ld tokens %.2f s, up to %d at once; cache %.1f MB\n",
            P, rc.group_size, P * rc.group_size, toks, P ? 100.0 * stopped / (P * rc.group_size) : 0.0, secs,
            toks / (secs > 0 ? secs : 1), st.prefill_tokens, st.prefill_s, st.decode_tokens, st.decode_s,
            st.max_live, rollout_cache_bytes(e) / 1e6);
    status = 0;
done:
    if (status) cli_fail("generate");
    if (f && f != stdout) fclose(f);
    if (out)
        for (int i = 0; i < P * rc.group_size; i++) completion_free(&out[i]);
    free(out);
    for (int p = 0; ids && p < P; p++) free(ids[p]);
    free(ids);
    free(lens);
    rollout_free(e);
    tasks_free(&tasks);
    if (tok) tokenizer_free(tok);
    model_free(&m);
    return status;
}
