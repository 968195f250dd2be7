// Model configuration: Hugging Face DeepSeek-V2/V3 `config.json` keys, parsed and validated.
// Dimension legend used across policy/: B batch, T time, N = B*T tokens, C hidden_size, H heads,
// Dn qk_nope_head_dim, Dr qk_rope_head_dim, Dq = Dn + Dr, Dv v_head_dim, R kv_lora_rank, Lq q_lora_rank,
// I intermediate_size, Im moe_intermediate_size, E n_routed_experts, K num_experts_per_tok, V vocab_size.
#pragma once
#include <stdbool.h>
#include <cJSON.h>

typedef enum { SCORE_SOFTMAX, SCORE_SIGMOID } ScoringFunc;
typedef enum { TOPK_GREEDY, TOPK_GROUP_LIMITED_GREEDY, TOPK_NOAUX_TC } TopkMethod;

typedef struct {
    bool enabled;            // rope_scaling / rope_parameters with type "yarn"
    float factor;
    float beta_fast, beta_slow;       // defaults 32, 1
    float mscale, mscale_all_dim;     // defaults 1, 0
    int original_max_position_embeddings;
} YarnConfig;

typedef struct {
    int hidden_size;              // C
    int intermediate_size;        // I (dense layers)
    int moe_intermediate_size;    // Im (each routed expert; shared experts use Im * n_shared_experts)
    int num_hidden_layers;        // L
    int num_attention_heads;      // H
    int vocab_size;               // V
    int q_lora_rank;              // Lq; 0 when config.json says null (no query compression)
    int kv_lora_rank;             // R
    int qk_nope_head_dim;         // Dn
    int qk_rope_head_dim;         // Dr (even)
    int v_head_dim;               // Dv
    int n_routed_experts;         // E; 0 = every layer dense
    int n_shared_experts;
    int num_experts_per_tok;      // K
    int first_k_dense_replace;
    int moe_layer_freq;
    float routed_scaling_factor;
    ScoringFunc scoring_func;
    TopkMethod topk_method;
    int n_group, topk_group;
    bool norm_topk_prob;
    float rms_norm_eps;
    float rope_theta;
    YarnConfig yarn;
    int max_position_embeddings;
    bool tie_word_embeddings;
    int num_nextn_predict_layers; // 0 or 1 (MTP depth)
    bool has_score_bias;          // e_score_correction_bias present (implied by topk_method noaux_tc)
    int bos_token_id, eos_token_id;
} ModelConfig;

// Parses and validates a config.json object; an unknown or inconsistent value is an error that names
// the key and what was expected. `where` (a file name) prefixes messages. Returns 0 or -1.
int config_from_json(ModelConfig *cfg, const cJSON *json, const char *where);
int config_load(ModelConfig *cfg, const char *path); // path: a config.json or a model directory
// Writes the HF config.json form (model_type deepseek_v3, architectures, every key above).
cJSON *config_to_json(const ModelConfig *cfg);
int config_save(const ModelConfig *cfg, const char *path); // atomic (temp file + rename)

static inline int config_qk_head_dim(const ModelConfig *c) { return c->qk_nope_head_dim + c->qk_rope_head_dim; }
// Whether decoder layer `l` (0-based; l == L is the MTP block) uses MoE instead of the dense FFN.
static inline bool config_is_moe_layer(const ModelConfig *c, int l) {
    return c->n_routed_experts > 0 && l >= c->first_k_dense_replace && l % c->moe_layer_freq == 0;
}
// Width of layer l's dense FFN, or of its shared experts together when it is an MoE layer (0: none).
static inline int config_ffn_width(const ModelConfig *c, int l) {
    return config_is_moe_layer(c, l) ? c->moe_intermediate_size * c->n_shared_experts : c->intermediate_size;
}
// Total parameter count (what `model_build` would allocate), without allocating.
long long config_param_count(const ModelConfig *c);
