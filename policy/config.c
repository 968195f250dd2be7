#include "config.h"
#include "common/config_tree.h"
#include "common/error.h"
#include "common/fileio.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Keys that HF DeepSeek-V2/V3 config.json files (remote code or transformers, v4 and v5) carry but the
// model does not need: accepted and ignored. Keys with a value the model depends on are checked instead.
static const char *const ignored_keys[] = {
    "architectures", "model_type", "torch_dtype", "dtype", "transformers_version", "auto_map",
    "attention_dropout", "initializer_range", "use_cache", "pretraining_tp", "ep_size", "aux_loss_alpha",
    "seq_aux", "pad_token_id", "quantization_config", "head_dim", "qk_head_dim", "num_key_value_heads",
    "_name_or_path", "output_attentions", "output_hidden_states", "return_dict", "use_return_dict",
    "is_encoder_decoder", "tie_encoder_decoder",
};
static const char *const model_keys[] = {
    "hidden_size", "intermediate_size", "moe_intermediate_size", "num_hidden_layers", "num_attention_heads",
    "vocab_size", "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim",
    "n_routed_experts", "n_shared_experts", "num_experts_per_tok", "first_k_dense_replace", "moe_layer_freq",
    "routed_scaling_factor", "scoring_func", "topk_method", "n_group", "topk_group", "norm_topk_prob",
    "rms_norm_eps", "rope_theta", "rope_scaling", "rope_parameters", "max_position_embeddings",
    "tie_word_embeddings", "num_nextn_predict_layers", "bos_token_id", "eos_token_id",
    // accepted only with the value this implementation has (checked below)
    "attention_bias", "mlp_bias", "hidden_act", "rope_interleave",
};

static int in_list(const char *key, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(key, list[i])) return 1;
    return 0;
}

// null counts as absent: HF writes None for "use the default" (e.g. n_routed_experts in dense V2 configs).
static const cJSON *item(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsNull(v) ? NULL : v;
}

// `obj` names the enclosing object in messages ("" at the top level, "rope_scaling." inside it).
static int get_int(int *out, const cJSON *j, const char *obj, const char *key, int def, int required,
                   const char *where) {
    const cJSON *v = item(j, key);
    if (!v) {
        CHECK(!required, "%s: missing required key '%s%s' (an integer)", where, obj, key);
        *out = def;
        return 0;
    }
    CHECK(cJSON_IsNumber(v), "%s: key '%s%s': expected an integer, found %s", where, obj, key, cfg_type_name(v));
    double d = v->valuedouble;
    CHECK(d == floor(d) && fabs(d) <= 2147483647.0, "%s: key '%s%s': expected an integer, found %g", where, obj,
          key, d);
    *out = (int)d;
    return 0;
}

static int get_float(float *out, const cJSON *j, const char *obj, const char *key, float def, const char *where) {
    const cJSON *v = item(j, key);
    if (!v) {
        *out = def;
        return 0;
    }
    CHECK(cJSON_IsNumber(v), "%s: key '%s%s': expected a number, found %s", where, obj, key, cfg_type_name(v));
    CHECK(isfinite((float)v->valuedouble), "%s: key '%s%s': expected a finite fp32 number, found %g", where, obj,
          key, v->valuedouble);
    *out = (float)v->valuedouble;
    return 0;
}

static int get_bool(bool *out, const cJSON *j, const char *key, bool def, const char *where) {
    const cJSON *v = item(j, key);
    if (!v) {
        *out = def;
        return 0;
    }
    CHECK(cJSON_IsBool(v), "%s: key '%s': expected true or false, found %s", where, key, cfg_type_name(v));
    *out = cJSON_IsTrue(v);
    return 0;
}

// The string value of `key`, `def` when absent, or NULL after recording an error.
static const char *get_str(const cJSON *j, const char *obj, const char *key, const char *def, const char *where) {
    const cJSON *v = item(j, key);
    if (!v) return def;
    if (!cJSON_IsString(v)) {
        ERR("%s: key '%s%s': expected a string, found %s", where, obj, key, cfg_type_name(v));
        return NULL;
    }
    return v->valuestring;
}

// rope_scaling (transformers v4) or rope_parameters (v5, which may also hold rope_theta). `theta` is set
// only when the object has rope_theta.
static int parse_rope(YarnConfig *y, float *theta, bool *has_theta, const cJSON *r, const char *key,
                      int max_pos, const char *where) {
    char obj[64];
    snprintf(obj, sizeof obj, "%s.", key);
    CHECK(cJSON_IsObject(r), "%s: key '%s': expected an object or null, found %s", where, key, cfg_type_name(r));
    static const char *const known[] = {"type", "rope_type", "rope_theta", "factor", "beta_fast", "beta_slow",
                                        "mscale", "mscale_all_dim", "original_max_position_embeddings",
                                        "truncate"};
    for (const cJSON *k = r->child; k; k = k->next)
        CHECK(in_list(k->string, known, sizeof known / sizeof *known),
              "%s: unknown key '%s%s' (expected rope_type, rope_theta, factor, beta_fast, beta_slow, mscale, "
              "mscale_all_dim, original_max_position_embeddings)", where, obj, k->string);
    const char *type = get_str(r, obj, "rope_type", NULL, where), *alias = get_str(r, obj, "type", NULL, where);
    if ((!type && item(r, "rope_type")) || (!alias && item(r, "type"))) return -1;
    CHECK(!type || !alias || !strcmp(type, alias), "%s: keys '%stype' (\"%s\") and '%srope_type' (\"%s\") disagree",
          where, obj, alias, obj, type);
    const char *type_key = type ? "rope_type" : "type";
    if (!type) type = alias;
    CHECK(type, "%s: key '%s' needs \"rope_type\" (\"yarn\" or \"default\")", where, key);
    *has_theta = item(r, "rope_theta") != NULL;
    if (*has_theta) {
        TRY(get_float(theta, r, obj, "rope_theta", 0, where));
        CHECK(*theta > 0, "%s: key '%srope_theta': expected a positive number, found %g", where, obj, *theta);
    }
    if (!strcmp(type, "default")) {
        memset(y, 0, sizeof *y);
        return 0;
    }
    CHECK(!strcmp(type, "yarn"), "%s: key '%s%s': unknown rope type \"%s\" (supported: \"yarn\", \"default\")",
          where, obj, type_key, type);
    y->enabled = true;
    CHECK(item(r, "factor"), "%s: missing required key '%sfactor' for yarn", where, obj);
    TRY(get_float(&y->factor, r, obj, "factor", 1, where));
    TRY(get_float(&y->beta_fast, r, obj, "beta_fast", 32, where));
    TRY(get_float(&y->beta_slow, r, obj, "beta_slow", 1, where));
    TRY(get_float(&y->mscale, r, obj, "mscale", 1, where));
    TRY(get_float(&y->mscale_all_dim, r, obj, "mscale_all_dim", 0, where));
    // transformers falls back to max_position_embeddings when the original length is not given.
    TRY(get_int(&y->original_max_position_embeddings, r, obj, "original_max_position_embeddings", max_pos, 0, where));
    CHECK(y->factor >= 1, "%s: key '%sfactor': expected a number >= 1, found %g", where, obj, y->factor);
    CHECK(y->beta_fast > 0 && y->beta_slow > 0 && y->beta_fast >= y->beta_slow,
          "%s: keys '%sbeta_fast' (%g) and '%sbeta_slow' (%g): expected beta_fast >= beta_slow > 0", where, obj,
          y->beta_fast, obj, y->beta_slow);
    CHECK(y->mscale >= 0 && y->mscale_all_dim >= 0, "%s: keys '%smscale' (%g) and '%smscale_all_dim' (%g): expected "
          "non-negative numbers", where, obj, y->mscale, obj, y->mscale_all_dim);
    CHECK(y->original_max_position_embeddings > 0,
          "%s: key '%soriginal_max_position_embeddings': expected a positive integer, found %d", where, obj,
          y->original_max_position_embeddings);
    const cJSON *tr = item(r, "truncate");
    CHECK(!tr || cJSON_IsTrue(tr), "%s: key '%struncate': only true (DeepSeek's integer correction range) is "
          "supported, found %s", where, obj, cJSON_IsFalse(tr) ? "false" : cfg_type_name(tr));
    return 0;
}

#define POSITIVE(field)                                                                                        \
    CHECK(c->field > 0, "%s: key '" #field "': expected a positive integer, found %d", where, c->field)

int config_from_json(ModelConfig *cfg, const cJSON *json, const char *where) {
    if (!where) where = "config";
    CHECK(cJSON_IsObject(json), "%s: expected a JSON object, found %s", where, cfg_type_name(json));
    ModelConfig cc;
    ModelConfig *c = &cc;
    memset(c, 0, sizeof *c);
    for (const cJSON *k = json->child; k; k = k->next) {
        CHECK(in_list(k->string, model_keys, sizeof model_keys / sizeof *model_keys) ||
                  in_list(k->string, ignored_keys, sizeof ignored_keys / sizeof *ignored_keys),
              "%s: unknown key '%s' (not a DeepSeek-V2/V3 config.json key this toolkit knows)", where, k->string);
        for (const cJSON *p = json->child; p != k; p = p->next)
            CHECK(strcmp(p->string, k->string) != 0, "%s: key '%s' appears twice", where, k->string);
    }

    TRY(get_int(&c->hidden_size, json, "", "hidden_size", 0, 1, where));
    TRY(get_int(&c->num_hidden_layers, json, "", "num_hidden_layers", 0, 1, where));
    TRY(get_int(&c->num_attention_heads, json, "", "num_attention_heads", 0, 1, where));
    TRY(get_int(&c->vocab_size, json, "", "vocab_size", 0, 1, where));
    TRY(get_int(&c->intermediate_size, json, "", "intermediate_size", 0, 1, where));
    TRY(get_int(&c->kv_lora_rank, json, "", "kv_lora_rank", 0, 1, where));
    TRY(get_int(&c->qk_nope_head_dim, json, "", "qk_nope_head_dim", 0, 1, where));
    TRY(get_int(&c->qk_rope_head_dim, json, "", "qk_rope_head_dim", 0, 1, where));
    TRY(get_int(&c->v_head_dim, json, "", "v_head_dim", 0, 1, where));
    // Required although transformers has a default (1536): a silently large query rank is worse than asking.
    CHECK(cJSON_GetObjectItemCaseSensitive(json, "q_lora_rank"),
          "%s: missing required key 'q_lora_rank' (an integer, or null for no query compression)", where);
    TRY(get_int(&c->q_lora_rank, json, "", "q_lora_rank", 0, 0, where));
    TRY(get_int(&c->n_routed_experts, json, "", "n_routed_experts", 0, 0, where));
    TRY(get_int(&c->moe_intermediate_size, json, "", "moe_intermediate_size", 0, 0, where));
    TRY(get_int(&c->n_shared_experts, json, "", "n_shared_experts", 0, 0, where));
    TRY(get_int(&c->num_experts_per_tok, json, "", "num_experts_per_tok", 0, 0, where));
    TRY(get_int(&c->first_k_dense_replace, json, "", "first_k_dense_replace", 0, 0, where));
    TRY(get_int(&c->moe_layer_freq, json, "", "moe_layer_freq", 1, 0, where));
    TRY(get_int(&c->n_group, json, "", "n_group", 1, 0, where));
    TRY(get_int(&c->topk_group, json, "", "topk_group", 1, 0, where));
    TRY(get_int(&c->max_position_embeddings, json, "", "max_position_embeddings", 4096, 0, where));
    TRY(get_int(&c->num_nextn_predict_layers, json, "", "num_nextn_predict_layers", 0, 0, where));
    TRY(get_int(&c->bos_token_id, json, "", "bos_token_id", 0, 0, where));
    TRY(get_int(&c->eos_token_id, json, "", "eos_token_id", 1, 0, where));
    TRY(get_float(&c->routed_scaling_factor, json, "", "routed_scaling_factor", 1.0f, where));
    TRY(get_float(&c->rms_norm_eps, json, "", "rms_norm_eps", 1e-6f, where));
    TRY(get_float(&c->rope_theta, json, "", "rope_theta", 10000.0f, where));
    TRY(get_bool(&c->norm_topk_prob, json, "norm_topk_prob", false, where));
    TRY(get_bool(&c->tie_word_embeddings, json, "tie_word_embeddings", false, where));

    const char *s = get_str(json, "", "scoring_func", "softmax", where);
    if (!s) return -1;
    if (!strcmp(s, "softmax")) c->scoring_func = SCORE_SOFTMAX;
    else if (!strcmp(s, "sigmoid")) c->scoring_func = SCORE_SIGMOID;
    else return ERR("%s: key 'scoring_func': expected \"softmax\" or \"sigmoid\", found \"%s\"", where, s);
    if (!(s = get_str(json, "", "topk_method", "greedy", where))) return -1;
    if (!strcmp(s, "greedy")) c->topk_method = TOPK_GREEDY;
    else if (!strcmp(s, "group_limited_greedy")) c->topk_method = TOPK_GROUP_LIMITED_GREEDY;
    else if (!strcmp(s, "noaux_tc")) c->topk_method = TOPK_NOAUX_TC;
    else return ERR("%s: key 'topk_method': expected \"greedy\", \"group_limited_greedy\" or \"noaux_tc\", found "
                    "\"%s\"", where, s);
    c->has_score_bias = c->topk_method == TOPK_NOAUX_TC;

    // Keys accepted only with the value this implementation computes.
    bool b = false;
    TRY(get_bool(&b, json, "attention_bias", false, where));
    CHECK(!b, "%s: key 'attention_bias': only false is supported (MLA projections have no bias)", where);
    TRY(get_bool(&b, json, "mlp_bias", false, where));
    CHECK(!b, "%s: key 'mlp_bias': only false is supported (SwiGLU projections have no bias)", where);
    TRY(get_bool(&b, json, "rope_interleave", true, where));
    CHECK(b, "%s: key 'rope_interleave': only true is supported (RoPE on pairs (2j, 2j+1) as in DeepSeek "
          "checkpoints)", where);
    if (!(s = get_str(json, "", "hidden_act", "silu", where))) return -1;
    CHECK(!strcmp(s, "silu"), "%s: key 'hidden_act': only \"silu\" is supported, found \"%s\"", where, s);

    const cJSON *rs = item(json, "rope_scaling"), *rp = item(json, "rope_parameters");
    float theta = c->rope_theta;
    bool has_theta = false;
    if (rs) TRY(parse_rope(&c->yarn, &theta, &has_theta, rs, "rope_scaling", c->max_position_embeddings, where));
    // transformers v5 moves rope_scaling into rope_parameters; when both are written the latter is current.
    if (rp) TRY(parse_rope(&c->yarn, &theta, &has_theta, rp, "rope_parameters", c->max_position_embeddings, where));
    if (has_theta) {
        CHECK(!item(json, "rope_theta") || theta == c->rope_theta,
              "%s: key 'rope_theta' is %g at the top level but %g inside rope_parameters", where, c->rope_theta,
              theta);
        c->rope_theta = theta;
    }

    POSITIVE(hidden_size);
    POSITIVE(num_hidden_layers);
    POSITIVE(num_attention_heads);
    POSITIVE(vocab_size);
    POSITIVE(intermediate_size);
    POSITIVE(kv_lora_rank);
    POSITIVE(qk_nope_head_dim);
    POSITIVE(qk_rope_head_dim);
    POSITIVE(v_head_dim);
    POSITIVE(max_position_embeddings);
    CHECK(c->qk_rope_head_dim % 2 == 0, "%s: key 'qk_rope_head_dim': expected an even number (RoPE rotates pairs), "
          "found %d", where, c->qk_rope_head_dim);
    CHECK(c->q_lora_rank >= 0, "%s: key 'q_lora_rank': expected a positive integer or null, found %d", where,
          c->q_lora_rank);
    CHECK(c->rms_norm_eps > 0, "%s: key 'rms_norm_eps': expected a positive number, found %g", where, c->rms_norm_eps);
    CHECK(c->rope_theta > 0, "%s: key 'rope_theta': expected a positive number, found %g", where, c->rope_theta);
    CHECK(c->num_nextn_predict_layers == 0 || c->num_nextn_predict_layers == 1,
          "%s: key 'num_nextn_predict_layers': only 0 or 1 supported, found %d", where, c->num_nextn_predict_layers);
    CHECK(c->bos_token_id >= 0 && c->bos_token_id < c->vocab_size,
          "%s: key 'bos_token_id': expected a token id in [0, vocab_size %d), found %d", where, c->vocab_size,
          c->bos_token_id);
    CHECK(c->eos_token_id >= 0 && c->eos_token_id < c->vocab_size,
          "%s: key 'eos_token_id': expected a token id in [0, vocab_size %d), found %d", where, c->vocab_size,
          c->eos_token_id);
    CHECK(c->n_routed_experts >= 0, "%s: key 'n_routed_experts': expected a non-negative integer (0 = dense), "
          "found %d", where, c->n_routed_experts);
    CHECK(c->first_k_dense_replace >= 0, "%s: key 'first_k_dense_replace': expected a non-negative integer, found %d",
          where, c->first_k_dense_replace);
    POSITIVE(moe_layer_freq);
    POSITIVE(n_group);
    POSITIVE(topk_group);
    if (c->n_routed_experts > 0) {
        int E = c->n_routed_experts, K = c->num_experts_per_tok;
        CHECK(item(json, "moe_intermediate_size"), "%s: missing key 'moe_intermediate_size' (needed because "
              "n_routed_experts is %d)", where, E);
        POSITIVE(moe_intermediate_size);
        CHECK(item(json, "num_experts_per_tok"), "%s: missing key 'num_experts_per_tok' (needed because "
              "n_routed_experts is %d)", where, E);
        CHECK(K >= 1 && K <= E, "%s: key 'num_experts_per_tok': expected 1..n_routed_experts (%d), found %d",
              where, E, K);
        CHECK(c->n_shared_experts >= 0, "%s: key 'n_shared_experts': expected a non-negative integer, found %d",
              where, c->n_shared_experts);
        CHECK(c->routed_scaling_factor > 0, "%s: key 'routed_scaling_factor': expected a positive number, found %g",
              where, c->routed_scaling_factor);
        CHECK(E % c->n_group == 0, "%s: key 'n_group': n_routed_experts (%d) must be divisible by n_group (%d)",
              where, E, c->n_group);
        CHECK(c->topk_group <= c->n_group, "%s: key 'topk_group': expected at most n_group (%d), found %d", where,
              c->n_group, c->topk_group);
        if (c->topk_method != TOPK_GREEDY) {
            int avail = E / c->n_group * c->topk_group;
            CHECK(K <= avail, "%s: key 'num_experts_per_tok': %d experts per token but topk_method %s only offers "
                  "%d (n_routed_experts/n_group * topk_group = %d/%d * %d)", where, K,
                  c->topk_method == TOPK_NOAUX_TC ? "noaux_tc" : "group_limited_greedy", avail, E, c->n_group,
                  c->topk_group);
        }
        // noaux_tc scores a group by the sum of its two best experts.
        CHECK(c->topk_method != TOPK_NOAUX_TC || E / c->n_group >= 2, "%s: key 'n_group': topk_method noaux_tc "
              "needs at least 2 experts per group, found %d/%d", where, E, c->n_group);
    }
    *cfg = cc;
    return 0;
}

int config_load(ModelConfig *cfg, const char *path) {
    char file[4096 + 16];
    snprintf(file, sizeof file, path_is_dir(path) ? "%s/config.json" : "%s", path);
    size_t n;
    char *text = read_file(file, &n);
    if (!text) return -1;
    const char *end = NULL;
    cJSON *json = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    if (!json) {
        int rc = ERR("%s: invalid JSON at byte %ld", file, end ? (long)(end - text) : -1L);
        free(text);
        return rc;
    }
    free(text);
    int rc = config_from_json(cfg, json, file);
    cJSON_Delete(json);
    return rc;
}

// The shortest decimal that reads back as the same float, so 1e-6f is written "1e-06", not 9.99999997e-07.
static double shortest(float f) {
    char buf[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        if ((float)strtod(buf, NULL) == f) break;
    }
    return strtod(buf, NULL);
}

cJSON *config_to_json(const ModelConfig *c) {
    cJSON *j = cJSON_CreateObject(), *arch = cJSON_AddArrayToObject(j, "architectures");
    if (!arch) {
        cJSON_Delete(j);
        ERR("out of memory building config.json");
        return NULL;
    }
    cJSON_AddItemToArray(arch, cJSON_CreateString("DeepseekV3ForCausalLM"));
    cJSON_AddStringToObject(j, "model_type", "deepseek_v3");
    cJSON_AddBoolToObject(j, "attention_bias", 0);
    cJSON_AddNumberToObject(j, "attention_dropout", 0.0);
    cJSON_AddNumberToObject(j, "bos_token_id", c->bos_token_id);
    cJSON_AddNumberToObject(j, "eos_token_id", c->eos_token_id);
    // transformers' DeepseekV3 builds an MoE block for every layer from first_k_dense_replace on (it has no
    // "no experts" mode), so a dense model is written as all layers dense.
    cJSON_AddNumberToObject(j, "first_k_dense_replace",
                            c->n_routed_experts > 0 ? c->first_k_dense_replace : c->num_hidden_layers);
    cJSON_AddNumberToObject(j, "head_dim", c->qk_rope_head_dim); // what transformers derives for RoPE
    cJSON_AddStringToObject(j, "hidden_act", "silu");
    cJSON_AddNumberToObject(j, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(j, "initializer_range", 0.02);
    cJSON_AddNumberToObject(j, "intermediate_size", c->intermediate_size);
    cJSON_AddNumberToObject(j, "kv_lora_rank", c->kv_lora_rank);
    cJSON_AddNumberToObject(j, "max_position_embeddings", c->max_position_embeddings);
    cJSON_AddNumberToObject(j, "moe_intermediate_size", c->moe_intermediate_size);
    cJSON_AddNumberToObject(j, "moe_layer_freq", c->moe_layer_freq);
    cJSON_AddNumberToObject(j, "n_group", c->n_group);
    cJSON_AddNumberToObject(j, "n_routed_experts", c->n_routed_experts);
    cJSON_AddNumberToObject(j, "n_shared_experts", c->n_shared_experts);
    cJSON_AddBoolToObject(j, "norm_topk_prob", c->norm_topk_prob);
    cJSON_AddNumberToObject(j, "num_attention_heads", c->num_attention_heads);
    cJSON_AddNumberToObject(j, "num_experts_per_tok", c->num_experts_per_tok);
    cJSON_AddNumberToObject(j, "num_hidden_layers", c->num_hidden_layers);
    cJSON_AddNumberToObject(j, "num_key_value_heads", c->num_attention_heads);
    cJSON_AddNumberToObject(j, "num_nextn_predict_layers", c->num_nextn_predict_layers);
    if (c->q_lora_rank > 0) cJSON_AddNumberToObject(j, "q_lora_rank", c->q_lora_rank);
    else cJSON_AddNullToObject(j, "q_lora_rank");
    cJSON_AddNumberToObject(j, "qk_nope_head_dim", c->qk_nope_head_dim);
    cJSON_AddNumberToObject(j, "qk_rope_head_dim", c->qk_rope_head_dim);
    cJSON_AddNumberToObject(j, "rms_norm_eps", shortest(c->rms_norm_eps));
    cJSON_AddBoolToObject(j, "rope_interleave", 1);
    if (c->yarn.enabled) {
        cJSON *r = cJSON_AddObjectToObject(j, "rope_scaling");
        cJSON_AddNumberToObject(r, "beta_fast", shortest(c->yarn.beta_fast));
        cJSON_AddNumberToObject(r, "beta_slow", shortest(c->yarn.beta_slow));
        cJSON_AddNumberToObject(r, "factor", shortest(c->yarn.factor));
        cJSON_AddNumberToObject(r, "mscale", shortest(c->yarn.mscale));
        cJSON_AddNumberToObject(r, "mscale_all_dim", shortest(c->yarn.mscale_all_dim));
        cJSON_AddNumberToObject(r, "original_max_position_embeddings", c->yarn.original_max_position_embeddings);
        cJSON_AddStringToObject(r, "rope_type", "yarn");
        cJSON_AddStringToObject(r, "type", "yarn");
    } else {
        cJSON_AddNullToObject(j, "rope_scaling");
    }
    cJSON_AddNumberToObject(j, "rope_theta", shortest(c->rope_theta));
    cJSON_AddNumberToObject(j, "routed_scaling_factor", shortest(c->routed_scaling_factor));
    cJSON_AddStringToObject(j, "scoring_func", c->scoring_func == SCORE_SIGMOID ? "sigmoid" : "softmax");
    cJSON_AddBoolToObject(j, "tie_word_embeddings", c->tie_word_embeddings);
    cJSON_AddNumberToObject(j, "topk_group", c->topk_group);
    cJSON_AddStringToObject(j, "topk_method", c->topk_method == TOPK_NOAUX_TC ? "noaux_tc"
                                              : c->topk_method == TOPK_GROUP_LIMITED_GREEDY ? "group_limited_greedy"
                                                                                          : "greedy");
    cJSON_AddStringToObject(j, "torch_dtype", "float32");
    cJSON_AddBoolToObject(j, "use_cache", 1);
    cJSON_AddNumberToObject(j, "v_head_dim", c->v_head_dim);
    if (!cJSON_AddNumberToObject(j, "vocab_size", c->vocab_size)) {
        cJSON_Delete(j);
        ERR("out of memory building config.json");
        return NULL;
    }
    return j;
}

int config_save(const ModelConfig *cfg, const char *path) {
    cJSON *j = config_to_json(cfg);
    if (!j) return -1;
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    CHECK(text, "out of memory printing config for %s", path);
    size_t n = strlen(text);
    char *withnl = realloc(text, n + 2);
    if (!withnl) {
        free(text);
        return ERR("out of memory printing config for %s", path);
    }
    withnl[n] = '\n';
    int rc = write_file_atomic(path, withnl, n + 1);
    free(withnl);
    return rc;
}
