// Model config parsing: the shipped configs, the config.json round trip, the HF variants (rope_parameters,
// q_lora_rank null), and one error per validation rule, each of which must name the offending key.
#include "tests/test.h"
#include "common/error.h"
#include "common/fileio.h"
#include "policy/config.h"
#include <stdlib.h>
#include <unistd.h>

// A valid base config (the tiny model) that the bad cases below edit one key at a time.
static const char *BASE =
    "{\"hidden_size\": 64, \"num_hidden_layers\": 3, \"num_attention_heads\": 4, \"vocab_size\": 512,"
    " \"intermediate_size\": 128, \"q_lora_rank\": 32, \"kv_lora_rank\": 32, \"qk_nope_head_dim\": 16,"
    " \"qk_rope_head_dim\": 8, \"v_head_dim\": 16, \"n_routed_experts\": 8, \"n_shared_experts\": 1,"
    " \"num_experts_per_tok\": 2, \"moe_intermediate_size\": 32, \"first_k_dense_replace\": 1,"
    " \"n_group\": 2, \"topk_group\": 1, \"scoring_func\": \"sigmoid\", \"topk_method\": \"noaux_tc\"}";

// Parses BASE with `key` replaced by `value` (raw JSON text), or removed when value is NULL.
static int parse_edit(ModelConfig *cfg, const char *key, const char *value) {
    cJSON *j = cJSON_Parse(BASE);
    cJSON_DeleteItemFromObjectCaseSensitive(j, key);
    if (value) cJSON_AddItemToObject(j, key, cJSON_Parse(value));
    grpo_error_clear();
    int rc = config_from_json(cfg, j, "test.json");
    cJSON_Delete(j);
    return rc;
}

static int same_config(const ModelConfig *a, const ModelConfig *b) { return memcmp(a, b, sizeof *a) == 0; }

static void test_shipped_tiny_small(void) {
    ModelConfig c;
    EXPECT(config_load(&c, "configs/model/tiny.json") == 0, "%s", grpo_error());
    EXPECT(c.hidden_size == 64 && c.num_hidden_layers == 3 && c.num_attention_heads == 4, "tiny dims");
    EXPECT(c.q_lora_rank == 32 && c.kv_lora_rank == 32 && c.qk_nope_head_dim == 16 && c.qk_rope_head_dim == 8 &&
           c.v_head_dim == 16, "tiny MLA dims");
    EXPECT(c.n_routed_experts == 8 && c.n_group == 2 && c.topk_group == 1 && c.num_experts_per_tok == 2 &&
           c.n_shared_experts == 1 && c.moe_intermediate_size == 32 && c.first_k_dense_replace == 1, "tiny MoE");
    EXPECT(c.scoring_func == SCORE_SIGMOID && c.topk_method == TOPK_NOAUX_TC && c.has_score_bias &&
           c.norm_topk_prob && c.routed_scaling_factor == 2.5f, "tiny router");
    EXPECT(c.yarn.enabled && c.yarn.factor == 4 && c.yarn.original_max_position_embeddings == 128 &&
           c.yarn.mscale == 1 && c.yarn.mscale_all_dim == 1 && c.max_position_embeddings == 512, "tiny yarn");
    EXPECT(c.num_nextn_predict_layers == 1 && !c.tie_word_embeddings && c.vocab_size == 512, "tiny misc");
    EXPECT(!config_is_moe_layer(&c, 0) && config_is_moe_layer(&c, 1) && config_is_moe_layer(&c, 3), "moe layers");

    EXPECT(config_load(&c, "configs/model/small.json") == 0, "%s", grpo_error());
    EXPECT(c.vocab_size == 8192 && c.max_position_embeddings == 2048 && c.n_routed_experts > 0 &&
           c.topk_method == TOPK_NOAUX_TC, "small");
}

static void test_shipped_deepseek(void) {
    ModelConfig c;
    EXPECT(config_load(&c, "configs/model/deepseek-v2-lite.json") == 0, "%s", grpo_error());
    EXPECT(c.hidden_size == 2048 && c.num_hidden_layers == 27 && c.num_attention_heads == 16 &&
           c.vocab_size == 102400 && c.intermediate_size == 10944, "v2-lite dims");
    EXPECT(c.q_lora_rank == 0 && c.kv_lora_rank == 512 && c.qk_nope_head_dim == 128 && c.qk_rope_head_dim == 64 &&
           c.v_head_dim == 128, "v2-lite MLA");
    EXPECT(c.n_routed_experts == 64 && c.n_shared_experts == 2 && c.num_experts_per_tok == 6 &&
           c.moe_intermediate_size == 1408 && c.first_k_dense_replace == 1 && c.n_group == 1 && c.topk_group == 1,
           "v2-lite MoE");
    EXPECT(c.scoring_func == SCORE_SOFTMAX && c.topk_method == TOPK_GREEDY && !c.has_score_bias &&
           !c.norm_topk_prob && c.routed_scaling_factor == 1.0f, "v2-lite router");
    EXPECT(c.yarn.enabled && c.yarn.factor == 40 && c.yarn.original_max_position_embeddings == 4096 &&
           c.yarn.mscale == 0.707f && c.yarn.mscale_all_dim == 0.707f && c.yarn.beta_fast == 32 &&
           c.yarn.beta_slow == 1, "v2-lite yarn");
    EXPECT(c.max_position_embeddings == 163840 && c.rope_theta == 10000 && c.rms_norm_eps == 1e-6f &&
           c.num_nextn_predict_layers == 0 && c.bos_token_id == 100000 && c.eos_token_id == 100001, "v2-lite misc");

    EXPECT(config_load(&c, "configs/model/deepseek-v3.json") == 0, "%s", grpo_error());
    EXPECT(c.hidden_size == 7168 && c.num_hidden_layers == 61 && c.num_attention_heads == 128 &&
           c.vocab_size == 129280 && c.intermediate_size == 18432, "v3 dims");
    EXPECT(c.q_lora_rank == 1536 && c.kv_lora_rank == 512 && c.qk_nope_head_dim == 128 && c.qk_rope_head_dim == 64 &&
           c.v_head_dim == 128, "v3 MLA");
    EXPECT(c.n_routed_experts == 256 && c.n_shared_experts == 1 && c.num_experts_per_tok == 8 &&
           c.moe_intermediate_size == 2048 && c.first_k_dense_replace == 3 && c.n_group == 8 && c.topk_group == 4,
           "v3 MoE");
    EXPECT(c.scoring_func == SCORE_SIGMOID && c.topk_method == TOPK_NOAUX_TC && c.has_score_bias &&
           c.norm_topk_prob && c.routed_scaling_factor == 2.5f, "v3 router");
    EXPECT(c.yarn.enabled && c.yarn.factor == 40 && c.yarn.original_max_position_embeddings == 4096 &&
           c.yarn.mscale == 1 && c.yarn.mscale_all_dim == 1, "v3 yarn");
    EXPECT(c.max_position_embeddings == 163840 && c.num_nextn_predict_layers == 1 && c.bos_token_id == 0 &&
           c.eos_token_id == 1 && c.rope_theta == 10000, "v3 misc");
}

static void test_round_trip(void) {
    const char *files[] = {"configs/model/tiny.json", "configs/model/small.json", "configs/model/deepseek-v2-lite.json",
                           "configs/model/deepseek-v3.json"};
    char dir[] = "/tmp/grpo_test_config_XXXXXX";
    EXPECT(mkdtemp(dir) != NULL, "mkdtemp");
    for (int i = 0; i < 4; i++) {
        ModelConfig a, b;
        EXPECT(config_load(&a, files[i]) == 0, "%s", grpo_error());
        // In memory, then through a file in a model directory (config_load on a directory).
        cJSON *j = config_to_json(&a);
        EXPECT(j && config_from_json(&b, j, "to_json") == 0, "%s: %s", files[i], grpo_error());
        EXPECT(same_config(&a, &b), "%s: config_to_json round trip differs", files[i]);
        const cJSON *mt = cJSON_GetObjectItem(j, "model_type"), *kvh = cJSON_GetObjectItem(j, "num_key_value_heads");
        const cJSON *hd = cJSON_GetObjectItem(j, "head_dim"), *ql = cJSON_GetObjectItem(j, "q_lora_rank");
        EXPECT(cJSON_IsString(mt) && !strcmp(mt->valuestring, "deepseek_v3"), "model_type");
        EXPECT(kvh && kvh->valueint == a.num_attention_heads && hd && hd->valueint == a.qk_rope_head_dim, "HF keys");
        EXPECT(a.q_lora_rank ? ql->valueint == a.q_lora_rank : cJSON_IsNull(ql), "q_lora_rank written as null");
        cJSON_Delete(j);
        char path[256];
        snprintf(path, sizeof path, "%s/config.json", dir);
        memset(&b, 0, sizeof b);
        EXPECT(config_save(&a, path) == 0, "%s", grpo_error());
        EXPECT(config_load(&b, dir) == 0 && same_config(&a, &b), "%s: file round trip: %s", files[i], grpo_error());
        unlink(path);
    }
    rmdir(dir);

    // Disabled rope scaling is written as null and read back as disabled.
    ModelConfig a, b;
    EXPECT(parse_edit(&a, "rms_norm_eps", "1e-5") == 0, "%s", grpo_error());
    EXPECT(!a.yarn.enabled && a.rms_norm_eps == 1e-5f, "no yarn");
    cJSON *j = config_to_json(&a);
    EXPECT(cJSON_IsNull(cJSON_GetObjectItem(j, "rope_scaling")), "rope_scaling null");
    char *text = cJSON_PrintUnformatted(j);
    EXPECT(strstr(text, "\"rms_norm_eps\":1e-05") != NULL, "shortest float form: %s", text);
    free(text);
    EXPECT(config_from_json(&b, j, "x") == 0 && same_config(&a, &b), "null rope round trip");
    cJSON_Delete(j);
}

static void test_hf_variants(void) {
    ModelConfig c;
    // transformers v5: rope_parameters with rope_theta inside, also the form it writes for V2-Lite
    // (both "type" and "rope_type"), plus keys newer transformers add.
    EXPECT(parse_edit(&c, "rope_parameters", "{\"rope_type\": \"yarn\", \"type\": \"yarn\", \"rope_theta\": 50000,"
                      " \"factor\": 8, \"beta_fast\": 16, \"mscale\": 0.707, \"mscale_all_dim\": 0.707,"
                      " \"original_max_position_embeddings\": 64}") == 0, "%s", grpo_error());
    EXPECT(c.yarn.enabled && c.rope_theta == 50000 && c.yarn.factor == 8 && c.yarn.beta_fast == 16 &&
           c.yarn.beta_slow == 1 && c.yarn.mscale == 0.707f && c.yarn.original_max_position_embeddings == 64,
           "rope_parameters yarn");
    EXPECT(parse_edit(&c, "rope_parameters", "{\"rope_type\": \"default\", \"rope_theta\": 20000}") == 0, "%s",
           grpo_error());
    EXPECT(!c.yarn.enabled && c.rope_theta == 20000, "rope_parameters default");
    EXPECT(parse_edit(&c, "rope_scaling", "{\"type\": \"yarn\", \"factor\": 2}") == 0, "%s", grpo_error());
    EXPECT(c.yarn.enabled && c.yarn.factor == 2 && c.yarn.mscale == 1 && c.yarn.mscale_all_dim == 0 &&
           c.yarn.original_max_position_embeddings == 4096, "yarn defaults");
    EXPECT(parse_edit(&c, "q_lora_rank", "null") == 0 && c.q_lora_rank == 0, "q_lora_rank null: %s", grpo_error());
    EXPECT(parse_edit(&c, "dtype", "\"bfloat16\"") == 0, "dtype key: %s", grpo_error());
    EXPECT(parse_edit(&c, "pad_token_id", "null") == 0, "pad_token_id: %s", grpo_error());
    EXPECT(parse_edit(&c, "mlp_bias", "false") == 0, "mlp_bias: %s", grpo_error());
    EXPECT(parse_edit(&c, "n_routed_experts", "null") == 0 && c.n_routed_experts == 0 && !config_is_moe_layer(&c, 2),
           "dense: %s", grpo_error());
    // Defaults where HF has them.
    EXPECT(parse_edit(&c, "vocab_size", "512") == 0, "%s", grpo_error());
    EXPECT(c.moe_layer_freq == 1 && c.rms_norm_eps == 1e-6f && c.rope_theta == 10000 && c.bos_token_id == 0 &&
           c.eos_token_id == 1 && !c.tie_word_embeddings && !c.norm_topk_prob && c.routed_scaling_factor == 1.0f &&
           c.num_nextn_predict_layers == 0, "defaults");
}

static void test_errors_name_key(void) {
    struct { const char *key, *value, *expect; } cases[] = {
        {"hidden_size", NULL, "hidden_size"},
        {"num_hidden_layers", NULL, "num_hidden_layers"},
        {"num_attention_heads", NULL, "num_attention_heads"},
        {"vocab_size", NULL, "vocab_size"},
        {"kv_lora_rank", NULL, "kv_lora_rank"},
        {"qk_nope_head_dim", NULL, "qk_nope_head_dim"},
        {"qk_rope_head_dim", NULL, "qk_rope_head_dim"},
        {"v_head_dim", NULL, "v_head_dim"},
        {"intermediate_size", NULL, "intermediate_size"},
        {"q_lora_rank", NULL, "q_lora_rank"},
        {"hidden_size", "\"64\"", "hidden_size"},
        {"hidden_size", "64.5", "hidden_size"},
        {"hidden_size", "0", "hidden_size"},
        {"num_attention_heads", "-4", "num_attention_heads"},
        {"vocab_size", "[512]", "vocab_size"},
        {"q_lora_rank", "-1", "q_lora_rank"},
        {"qk_rope_head_dim", "7", "qk_rope_head_dim"},
        {"n_group", "3", "n_group"},
        {"n_group", "0", "n_group"},
        {"topk_group", "3", "topk_group"},
        {"num_experts_per_tok", "9", "num_experts_per_tok"},
        {"num_experts_per_tok", "5", "num_experts_per_tok"}, // > 8/2 * 1 under noaux_tc
        {"num_experts_per_tok", "0", "num_experts_per_tok"},
        {"num_experts_per_tok", NULL, "num_experts_per_tok"},
        {"moe_intermediate_size", NULL, "moe_intermediate_size"},
        {"n_routed_experts", "-1", "n_routed_experts"},
        {"scoring_func", "\"relu\"", "scoring_func"},
        {"scoring_func", "1", "scoring_func"},
        {"topk_method", "\"gready\"", "topk_method"},
        {"norm_topk_prob", "1", "norm_topk_prob"},
        {"tie_word_embeddings", "\"false\"", "tie_word_embeddings"},
        {"num_nextn_predict_layers", "2", "only 0 or 1"},
        {"rms_norm_eps", "0", "rms_norm_eps"},
        {"rope_theta", "-1", "rope_theta"},
        {"routed_scaling_factor", "0", "routed_scaling_factor"},
        {"moe_layer_freq", "0", "moe_layer_freq"},
        {"max_position_embeddings", "0", "max_position_embeddings"},
        {"eos_token_id", "512", "eos_token_id"},
        {"bos_token_id", "-1", "bos_token_id"},
        {"attention_bias", "true", "attention_bias"},
        {"hidden_act", "\"gelu\"", "hidden_act"},
        {"rope_interleave", "false", "rope_interleave"},
        {"some_new_key", "1", "some_new_key"},
        {"rope_scaling", "{\"type\": \"linear\", \"factor\": 2}", "rope_scaling.type"},
        {"rope_scaling", "{\"rope_type\": \"dynamic\", \"factor\": 2}", "rope_scaling.rope_type"},
        {"rope_scaling", "{\"type\": \"yarn\"}", "rope_scaling.factor"},
        {"rope_scaling", "{\"type\": \"yarn\", \"factor\": \"40\"}", "rope_scaling.factor"},
        {"rope_scaling", "{\"type\": \"yarn\", \"factor\": 4, \"foo\": 1}", "rope_scaling.foo"},
        {"rope_scaling", "{\"factor\": 4}", "rope_scaling"},
        {"rope_scaling", "[1]", "rope_scaling"},
        {"rope_scaling", "{\"type\": \"yarn\", \"rope_type\": \"default\", \"factor\": 4}", "rope_scaling.rope_type"},
        {"rope_parameters", "{\"rope_type\": \"yarn\", \"factor\": 0.5}", "rope_parameters.factor"},
        {"rope_parameters", "{\"rope_type\": \"default\", \"rope_theta\": 0}", "rope_parameters.rope_theta"},
        {"rope_parameters", "{\"rope_type\": \"yarn\", \"factor\": 4, \"original_max_position_embeddings\": 0}",
         "original_max_position_embeddings"},
    };
    int n = (int)(sizeof cases / sizeof *cases);
    for (int i = 0; i < n; i++) {
        ModelConfig c;
        int rc = parse_edit(&c, cases[i].key, cases[i].value);
        EXPECT(rc == -1, "case %d (%s = %s) should fail", i, cases[i].key, cases[i].value ? cases[i].value : "missing");
        EXPECT(rc == 0 || strstr(grpo_error(), cases[i].expect), "case %d (%s = %s): message lacks '%s': %s", i,
               cases[i].key, cases[i].value ? cases[i].value : "missing", cases[i].expect, grpo_error());
        EXPECT(rc == 0 || strstr(grpo_error(), "test.json"), "case %d: message lacks the file: %s", i, grpo_error());
    }
    // Inconsistent top-level rope_theta and rope_parameters; duplicate key; not an object.
    cJSON *j = cJSON_Parse(BASE);
    cJSON_AddNumberToObject(j, "rope_theta", 10000);
    cJSON_AddItemToObject(j, "rope_parameters", cJSON_Parse("{\"rope_type\": \"default\", \"rope_theta\": 5}"));
    ModelConfig c;
    EXPECT(config_from_json(&c, j, "x.json") == -1 && strstr(grpo_error(), "rope_theta"), "%s", grpo_error());
    cJSON_Delete(j);
    j = cJSON_Parse("{\"hidden_size\": 64, \"hidden_size\": 32}");
    EXPECT(config_from_json(&c, j, "x.json") == -1 && strstr(grpo_error(), "twice"), "%s", grpo_error());
    cJSON_Delete(j);
    j = cJSON_Parse("[1, 2]");
    EXPECT(config_from_json(&c, j, "x.json") == -1 && strstr(grpo_error(), "object"), "%s", grpo_error());
    cJSON_Delete(j);
    EXPECT(config_load(&c, "/nonexistent/config.json") == -1 && strstr(grpo_error(), "/nonexistent/config.json"),
           "%s", grpo_error());
    char path[] = "/tmp/grpo_test_config_XXXXXX";
    int fd = mkstemp(path);
    EXPECT(fd >= 0 && write(fd, "{\"hidden_size\": ", 16) == 16, "write");
    close(fd);
    EXPECT(config_load(&c, path) == -1 && strstr(grpo_error(), path) && strstr(grpo_error(), "JSON"), "%s",
           grpo_error());
    unlink(path);
}

int main(void) {
    RUN_TEST(test_shipped_tiny_small);
    RUN_TEST(test_shipped_deepseek);
    RUN_TEST(test_round_trip);
    RUN_TEST(test_hf_variants);
    RUN_TEST(test_errors_name_key);
    return test_summary();
}
