// grpo sft: supervised fine-tuning from a run config (rl/sft.h), checkpoints and DIR/run.db in the output
// directory.
#define _GNU_SOURCE
#include "cli/cli.h"
#include "common/config_tree.h"
#include "common/error.h"
#include "rl/sft.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: grpo sft CONFIG.json --out DIR [--set key.path=value]... [--resume] [--from-db RUN.db [--min-reward R]]\n"
    "\n"
    "Supervised fine-tuning on (prompt, completion) pairs: the mean cross-entropy over the completion tokens\n"
    "of each optimizer step (prompt tokens are context only). A pair is its prompt through the template (bos\n"
    "included), then its completion (text such as <think> becomes its token) and the tokenizer's eos, so the\n"
    "model learns to stop. A line per logged step on stderr; DIR/run.db gets a run of kind \"sft\" with a steps\n"
    "row per logged step (loss, lr, grad_norm, train_tok_s, seconds); checkpoints DIR/step-N (a model\n"
    "directory + optimizer.safetensors + trainer_state.json with the data cursor) every save_every steps and\n"
    "at the end.\n"
    "  CONFIG          JSON run config (configs/sft/*.json), keys below\n"
    "  --out DIR       output directory; one that holds checkpoints needs --resume\n"
    "  --set K=V       override one config value (repeatable), e.g. --set optim.lr=3e-4\n"
    "  --resume        continue DIR's run from its newest checkpoint: the same data order and, bit for bit,\n"
    "                  the same final weights as a run never stopped\n"
    "  --from-db FILE  train on the episodes of a run database instead of the config's data\n"
    "                  (--set data.from_db=FILE, with data.train and data.synthetic.kind cleared)\n"
    "  --min-reward R  --set data.min_reward=R\n"
    "\n"
    "Config keys (default):\n"
    "  model (\"\")                  model directory (config.json, *.safetensors, tokenizer.json), or a model\n"
    "                              config .json to random-initialise, with grpo.c's default tokenizer\n"
    "  init_seed (1)               seed of the random initialisation\n"
    "  init_std (0.02)             its standard deviation\n"
    "  data.train (\"\")             JSONL file, a pair per line: {\"prompt\", \"completion\"} (optional \"system\",\n"
    "                              \"id\") or {\"messages\": [{\"role\": \"system\", \"content\": ...} (optional),\n"
    "                              {\"role\": \"user\", ...}, {\"role\": \"assistant\", ...}]} (one turn)\n"
    "  data.format (auto)          auto (by each line's fields) | pairs | messages\n"
    "  data.synthetic.kind (\"\")    arithmetic | countdown: generated tasks, their reference traces as completions\n"
    "  data.synthetic.n (0)        how many tasks\n"
    "  data.synthetic.difficulty (2)  digits per operand (arithmetic) or numbers (countdown)\n"
    "  data.synthetic.ops (\"+\")    arithmetic operators to draw from, e.g. \"+-*\"\n"
    "  data.synthetic.seed (1)     generator seed\n"
    "  data.from_db (\"\")           run database: its episodes' prompts (as the policy saw them: no template\n"
    "                              again) and completions\n"
    "  data.min_reward (1.0)       from_db: episodes with reward >= this\n"
    "  data.run_id (0)             from_db: episodes of this run (0: every run)\n"
    "                              (set exactly one of data.train, data.synthetic.kind, data.from_db)\n"
    "  template (r1-zero)          r1-zero | deepseek-chat | raw, or a template string with {prompt}, {system}\n"
    "  system (\"\")                 {system} text for pairs that bring none\n"
    "  epochs (1)                  passes over the pairs (the last step may be short)\n"
    "  max_steps (0)               > 0: this many full steps instead of epochs\n"
    "  stop_after (0)              > 0: stop after this step with a checkpoint as if interrupted (--resume\n"
    "                              finishes the planned run)\n"
    "  batch_size (16)             sequences per optimizer step\n"
    "  micro_batch (8)             sequences per forward/backward (gradient accumulation: memory, not results)\n"
    "  max_len (256)               prompt + completion + eos tokens at most (<= max_position_embeddings)\n"
    "  skip_long (true)            longer pairs are left out and counted; false: they are an error\n"
    "  shuffle (true)              a new seeded permutation each epoch; false: file order\n"
    "  seed (1)                    data-order seed\n"
    "  optim.lr (1e-3)             AdamW peak learning rate\n"
    "  optim.beta1 (0.9), optim.beta2 (0.99), optim.eps (1e-8)\n"
    "  optim.weight_decay (0)      decoupled, matrices only\n"
    "  optim.grad_clip (1.0)       global gradient-norm clip (0: none)\n"
    "  optim.warmup_steps (0)      linear warmup\n"
    "  optim.schedule (constant)   constant | cosine (to min_lr_ratio * lr at the last step)\n"
    "  optim.min_lr_ratio (0.1)\n"
    "  mtp_lambda (0)              multi-token-prediction loss weight (0: the MTP block is not trained)\n"
    "  router_bias_gamma (0.001)   aux-loss-free expert balancing step after each optimizer step (0: off)\n"
    "  save_every (0)              checkpoint every N steps (0: at the end only)\n"
    "  keep_checkpoints (2)        newest checkpoints kept (0: all)\n"
    "  log_every (10)              a progress line and a run.db row every N steps, and at the first and last\n"
    "\n"
    "example: grpo sft configs/sft/tiny.json --out runs/sft-tiny --set epochs=2\n";

int cmd_sft(int argc, char **argv) {
    const char *config = NULL, *out = NULL, *from_db = NULL, *min_reward = NULL;
    const char **sets = calloc((size_t)argc + 4, sizeof(char *));
    char *db_set = NULL, *reward_set = NULL;
    int nsets = 0, status = 2;
    bool resume = false, bad = false;
    if (!sets) return 1;
    for (int i = 1; i < argc; i++) {
        const char *set;
        if (cli_is_help(argv[i])) { fputs(USAGE, stdout); status = 0; goto done; }
        if (cli_str(argc, argv, &i, "--set", &set, &bad)) { sets[nsets++] = set; continue; }
        if (cli_str(argc, argv, &i, "--out", &out, &bad) || cli_str(argc, argv, &i, "--from-db", &from_db, &bad) ||
            cli_str(argc, argv, &i, "--min-reward", &min_reward, &bad) || cli_flag(argv, i, "--resume", &resume))
            continue;
        if (argv[i][0] != '-' && !config) { config = argv[i]; continue; }
        status = cli_unknown("sft", argv[i], USAGE);
        goto done;
    }
    if (bad) goto done;
    if (!config || !out) {
        fprintf(stderr, "grpo sft: CONFIG and --out are required\n\n%s", USAGE);
        goto done;
    }
    if (from_db) {
        if (asprintf(&db_set, "data.from_db=%s", from_db) < 0) { db_set = NULL; status = 1; goto done; }
        sets[nsets++] = "data.train=";
        sets[nsets++] = "data.synthetic.kind=";
        sets[nsets++] = db_set;
    }
    if (min_reward) {
        if (asprintf(&reward_set, "data.min_reward=%s", min_reward) < 0) { reward_set = NULL; status = 1; goto done; }
        sets[nsets++] = reward_set;
    }
    cJSON *defaults = sft_command_defaults();
    cJSON *cfg = defaults ? cfg_load(defaults, config, sets, nsets) : NULL;
    cJSON_Delete(defaults);
    SftResult res;
    if (!cfg || sft_run(cfg, out, resume, stderr, &res) != 0) {
        cJSON_Delete(cfg);
        status = cli_fail("sft");
        goto done;
    }
    cJSON_Delete(cfg);
    if (res.step == res.start_step)
        fprintf(stderr, "sft: nothing to train: the run in %s is at step %ld of %ld\n", out, res.step,
                res.total_steps);
    else
        fprintf(stderr, "sft: steps %ld..%ld of %ld, loss %.4f -> %.4f, %ld tokens in %.1f s; checkpoint %s\n",
                res.start_step + 1, res.step, res.total_steps, res.first_loss, res.last_loss, res.tokens, res.seconds,
                res.checkpoint);
    status = 0;
done:
    free(db_set);
    free(reward_set);
    free(sets);
    return status;
}
