// grpo init: a random-initialised model directory (config.json, model.safetensors, tokenizer.json).
#include "cli/cli.h"
#include "common/error.h"
#include "common/fileio.h"
#include "policy/checkpoint.h"
#include "policy/tokenizer.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *usage =
    "usage: grpo init --config CONFIG.json --out DIR [--seed N] [--std S] [--tokenizer PATH] [--bf16]\n"
    "\n"
    "Writes a random-initialised model directory that grpo and Hugging Face transformers load:\n"
    "DIR/config.json, DIR/model.safetensors and DIR/tokenizer.json.\n"
    "\n"
    "  --config F     model config in Hugging Face DeepSeek-V2/V3 form (configs/model/*.json)\n"
    "  --out DIR      output directory (created; an existing model there is replaced atomically)\n"
    "  --seed N       random seed (default 1); the same seed gives the same weights on every machine\n"
    "  --std S        standard deviation of the normal initialisation of matrices (default 0.02)\n"
    "  --tokenizer P  tokenizer.json (or a model directory holding one) to copy in; default: grpo.c's small\n"
    "                 byte-level tokenizer with the R1 special tokens\n"
    "  --bf16         store the weights as BF16 (default F32)\n"
    "\n"
    "example: grpo init --config configs/model/tiny.json --out runs/tiny-init --seed 1\n";

int cmd_init(int argc, char **argv) {
    const char *config = NULL, *out = NULL, *tok = NULL;
    long seed = 1;
    double std = 0.02;
    bool bf16 = false, bad = false;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { fputs(usage, stdout); return 0; }
        if (cli_str(argc, argv, &i, "--config", &config, &bad) || cli_str(argc, argv, &i, "--out", &out, &bad) ||
            cli_str(argc, argv, &i, "--tokenizer", &tok, &bad) || cli_int(argc, argv, &i, "--seed", &seed, &bad) ||
            cli_float(argc, argv, &i, "--std", &std, &bad) || cli_flag(argv, i, "--bf16", &bf16))
            continue;
        return cli_unknown("init", argv[i], usage);
    }
    if (bad) return 2;
    if (!config || !out) {
        fprintf(stderr, "grpo init: --config and --out are required\n\n%s", usage);
        return 2;
    }
    ModelConfig cfg;
    if (config_load(&cfg, config) != 0) return cli_fail("init");
    // The default tokenizer is written first to a scratch file so that checkpoint_save copies it in like
    // a user-given one, and the directory appears complete or not at all.
    char scratch[4200] = "";
    if (!tok) {
        char parent[4096];
        snprintf(parent, sizeof parent, "%s", out);
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent) { // the scratch file sits beside DIR, so DIR's parent must exist first
            *slash = '\0';
            if (mkdir_p(parent) != 0) return cli_fail("init");
        }
        snprintf(scratch, sizeof scratch, "%s.tokenizer-%d.json", out, (int)getpid());
        if (tokenizer_write_default(scratch) != 0) return cli_fail("init");
        tok = scratch;
        if (tokenizer_default_vocab_size() > cfg.vocab_size) {
            unlink(scratch);
            ERR("%s: vocab_size %d is smaller than the default tokenizer's %d tokens (give --tokenizer)", config,
                cfg.vocab_size, tokenizer_default_vocab_size());
            return cli_fail("init");
        }
    }
    Model m;
    int rc = model_build(&m, &cfg);
    if (rc == 0) {
        model_init_random(&m, (uint64_t)seed, (float)std);
        rc = checkpoint_save(out, &m, NULL, tok, NULL, bf16);
        if (rc == 0)
            printf("wrote %s: %lld parameters (%s), seed %ld\n", out, config_param_count(&cfg), bf16 ? "bf16" : "fp32",
                   seed);
        model_free(&m);
    }
    if (scratch[0]) unlink(scratch);
    return rc == 0 ? 0 : cli_fail("init");
}
