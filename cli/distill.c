// grpo distill: teacher traces -> reward filter -> student SFT (rl/distill.h), DIR/run.db, the held-out table.
#include "cli/cli.h"
#include "common/error.h"
#include "rl/distill.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: grpo distill CONFIG.json --out DIR [--set key.path=value]... [--export FILE.jsonl]\n"
    "\n"
    "Distillation by rejection sampling: the teacher samples sample.k traces for every training prompt, the\n"
    "rewards score them, and the accepted ones (correct, well formed, short enough, distinct, at most\n"
    "accept.per_prompt per prompt) become the SFT set of the student, which may also match the teacher's\n"
    "top-k next-token distribution (logit_kd). Teacher and student are evaluated on a held-out split before\n"
    "and after training, and the table is printed at the end. Writes into DIR: run.db (a run of kind\n"
    "\"distill\": step 0 holds every sampled trace as an episode, accepted or not, with its reward and\n"
    "verdict; reward_parts_json adds \"accepted\": 1|0 and \"reject\": why; steps 1..N are the student's SFT;\n"
    "evals holds \"teacher/<set>\" and \"student/<set>\"), student/step-N (the student's checkpoints).\n"
    "A second student trains from the stored traces without sampling again:\n"
    "  grpo sft CONFIG --out DIR2 --from-db DIR/run.db --min-reward R   (every trace with reward >= R)\n"
    "or, on the accepted traces exactly, from the --export file (data.train=FILE.jsonl).\n"
    "  CONFIG             JSON config (configs/distill/*.json), keys below\n"
    "  --out DIR          output directory (one that holds a run.db already is refused)\n"
    "  --set K=V          override one config value (repeatable), e.g. --set teacher=runs/demo/grpo/step-000060\n"
    "  --export FILE      also write the accepted traces as chat JSONL (= --set export=FILE):\n"
    "                     {\"messages\": [{\"role\": \"user\", \"content\": prompt}, {\"role\": \"assistant\",\n"
    "                     \"content\": completion}], \"id\": task id}, with a system message first when\n"
    "                     sft.system is set; `grpo sft` (data.format messages) and other trainers read it\n"
    "\n"
    "config keys (default):\n"
    "  teacher (\"\")             model directory (config.json, weights, tokenizer.json); required\n"
    "  student (\"\")             model directory, or a model config .json (fewer layers, a smaller hidden\n"
    "                           size, fewer experts or dense) random-initialised with grpo.c's default\n"
    "                           tokenizer; `grpo init --tokenizer TEACHER` makes a directory with another one\n"
    "  init_seed (1), init_std (0.02)   the student's random initialisation\n"
    "  same_tokenizer (true)    the teacher's and the student's tokenizers must be identical (vocabulary, every\n"
    "                           token string, special tokens, bos, eos), checked before any sampling; false\n"
    "                           distils the text alone through the student's own tokenizer (not with logit_kd)\n"
    "  data.train (\"\")          JSONL of tasks (gsm8k, math, countdown, generic ...: see grpo eval --help)\n"
    "  data.format (auto)       its record form: auto | gsm8k | math | humaneval | mbpp | countdown | generic\n"
    "  data.skip_bad (false)    skip malformed lines instead of failing\n"
    "  data.synthetic.kind (\"\") arithmetic | countdown: generated tasks instead of data.train, with .n (1000),\n"
    "                           .difficulty (2), .ops (\"+\"), .seed (1)\n"
    "  data.max_prompts (0)     use the first N training prompts (0: all)\n"
    "  data.heldout (\"\")        JSONL of held-out tasks for the evaluations, or\n"
    "  data.heldout_frac (0)    split this fraction off the training tasks by a hash of the prompt, salted\n"
    "                           with data.split_seed (1); neither: no evaluation\n"
    "  data.max_heldout (0)     evaluate on the first N held-out tasks (0: all)\n"
    "  rewards ([{\"name\": \"math\"}])  reward list {\"name\", \"weight\", ...options} (math, format, countdown,\n"
    "                           code); the first one's verdict says whether a trace is correct\n"
    "  sample.k (4)             traces per prompt from the teacher\n"
    "  sample.max_new_tokens (128), .temperature (1.0), .top_p (1.0), .top_k (0), .min_p (0.0)   its sampling\n"
    "  sample.stop ([])         stop strings (at most 8)\n"
    "  sample.max_batch (64), .token_budget (0: sized from max_batch)   the rollout engine's batch and cache\n"
    "  sample.seed (1)          the traces' random streams\n"
    "  filter (true)            false: every sampled trace trains the student (the unfiltered baseline)\n"
    "  accept.min_reward (null) null: correct = the first reward's verdict (correct, passed, match); a number:\n"
    "                           correct = total reward >= it\n"
    "  accept.format (\"\")       a PCRE2 pattern (DOTALL) the whole trace must match, e.g.\n"
    "                           \"^<think>.*</think>\\\\s*<answer>.*</answer>$\"; \"\": no check\n"
    "  accept.max_tokens (0)    at most this many completion tokens (0: no limit); truncated traces (cut off\n"
    "                           by sample.max_new_tokens) are always rejected\n"
    "  accept.dedupe (true)     a trace with the same text as an accepted one of its prompt is rejected\n"
    "  accept.per_prompt (0)    at most this many accepted traces per prompt (0: no limit)\n"
    "  accept.select (shortest) which candidates fill a prompt's quota: shortest (fewest tokens first) |\n"
    "                           random (a seeded order, accept.seed (1))\n"
    "  logit_kd.weight (0)      > 0: the student's loss is CE + weight * T^2 * KL(p_teacher || q_student) per\n"
    "                           completion token, p over the teacher's top-k tokens (renormalised), both at\n"
    "                           temperature T; the teacher runs online beside the student (both in memory)\n"
    "  logit_kd.top_k (20), logit_kd.temperature (1.0)\n"
    "  sft.*                    the student's training, as `grpo sft` (see grpo sft --help): sft.template\n"
    "                           (r1-zero) and sft.system (\"\") are also the prompt template the teacher samples\n"
    "                           with and both are evaluated with; sft.epochs (1), .max_steps (0), .batch_size\n"
    "                           (16), .micro_batch (8), .max_len (256), .skip_long (true), .shuffle (true),\n"
    "                           .seed (1), .optim.* (lr 1e-3, ...), .mtp_lambda (0), .router_bias_gamma\n"
    "                           (0.001), .save_every (0), .keep_checkpoints (2), .log_every (10), .stop_after (0)\n"
    "  eval.k (4)               samples per held-out task (pass@1, pass@k, maj@k)\n"
    "  eval.max_new_tokens (0: sample.max_new_tokens), eval.temperature (0.6), eval.top_p (0.95), eval.seed (1);\n"
    "                           stop strings, batch and cache as sample's\n"
    "  export (\"\")              as --export\n"
    "\n"
    "example: grpo distill configs/distill/tiny.json --out runs/distill --set teacher=runs/demo/grpo/step-000060\n";

static void row(const char *who, const EvalResult *r) {
    EvalMetric m[EVAL_MAX_METRICS];
    int n = eval_metrics(r, m);
    printf("  %-16s", who);
    for (int i = 0; i < n; i++) {
        if (m[i].rate) printf(" %11.1f%%", 100 * m[i].value);
        else printf(" %12.3f", m[i].value);
    }
    putchar('\n');
}

static void table(const DistillResult *r) {
    printf("\ndistill: %d prompts, %d traces, %d accepted (%d prompts covered); student trained %ld steps\n",
           r->n_prompts, r->n_traces, r->n_accepted, r->prompts_covered, r->sft.step);
    if (!r->n_heldout) {
        printf("  (no held-out split: set data.heldout or data.heldout_frac for the before/after table)\n");
        return;
    }
    EvalMetric m[EVAL_MAX_METRICS];
    int n = eval_metrics(&r->teacher, m);
    printf("  held-out %s: %d tasks, %d samples each\n  %-16s", r->heldout_name, r->n_heldout, r->teacher.k, "");
    for (int i = 0; i < n; i++) printf(" %12s", m[i].name);
    putchar('\n');
    row("teacher", &r->teacher);
    row("student before", &r->student_before);
    row("student after", &r->student_after);
    if (!isnan(r->kd_kl_first))
        printf("  KL(teacher || student) over the top-k: %.4f -> %.4f\n", r->kd_kl_first, r->kd_kl_last);
    printf("  run %lld in its run.db; student checkpoint %s; %.1f minutes\n", r->run_id, r->sft.checkpoint,
           r->seconds / 60);
}

int cmd_distill(int argc, char **argv) {
    const char *config = NULL, *out = NULL, *export_path = NULL;
    const char **sets = calloc((size_t)argc, sizeof(char *));
    int nsets = 0;
    bool bad = false;
    if (!sets) return 1;
    for (int i = 1; i < argc; i++) {
        const char *set;
        if (cli_is_help(argv[i])) { fputs(USAGE, stdout); free(sets); return 0; }
        if (cli_str(argc, argv, &i, "--set", &set, &bad)) { sets[nsets++] = set; continue; }
        if (cli_str(argc, argv, &i, "--out", &out, &bad) || cli_str(argc, argv, &i, "--export", &export_path, &bad))
            continue;
        if (argv[i][0] != '-' && !config) { config = argv[i]; continue; }
        free(sets);
        return cli_unknown("distill", argv[i], USAGE);
    }
    if (bad || !config || !out) {
        if (!bad) fprintf(stderr, "grpo distill: CONFIG and --out are required\n\n%s", USAGE);
        free(sets);
        return 2;
    }
    cJSON *cfg = distill_config_load(config, sets, nsets);
    free(sets);
    if (!cfg) return cli_fail("distill");
    DistillResult res;
    int rc = distill_run(cfg, out, export_path, stderr, &res);
    cJSON_Delete(cfg);
    if (rc != 0) return cli_fail("distill");
    table(&res);
    return 0;
}
