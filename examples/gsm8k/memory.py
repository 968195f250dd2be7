#!/usr/bin/env python3
"""What `grpo train` holds in memory for a model config and a run's shapes, before you try it.

  python3 examples/gsm8k/memory.py MODEL_DIR_OR_CONFIG.json [--micro-batch 4] [--prompt 300] [--new 1024]
                                   [--beta 0.04] [--max-batch 128]

Counts what grpo.c allocates (policy/model.c layout_model and layout_acts, rl/trainer.c, the rollout's
latent cache), all fp32 on the CPU path:
  policy       weights 4 + gradients 4 + AdamW moments 8 = 16 bytes per parameter
  reference    4 bytes per parameter, only when grpo.beta > 0 (the frozen model of the KL term)
  activations  saved for the backward pass, sized for micro_batch sequences of prompt + new tokens; one set
               for the policy and one more for the reference when beta > 0. Attention keeps B*H*T*T
               probabilities per layer, so this term grows with the square of the sequence length
  rollout      the MLA latent cache: (kv_lora_rank + qk_rope_head_dim) floats per token per layer, for
               max_batch sequences of prompt + new tokens (rollout.token_budget's default)
Smaller terms (per-step buffers, the tokenizer, the rollout's prefill scratch) are left out.
"""
import argparse
import json
import os


def load(path):
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
    with open(path) as f:
        return json.load(f)


def is_moe(c, l):
    return (c.get("n_routed_experts") or 0) > 0 and l >= c.get("first_k_dense_replace", 0) \
        and l % c.get("moe_layer_freq", 1) == 0


def blocks(c):
    return c["num_hidden_layers"] + (1 if c.get("num_nextn_predict_layers") else 0)


def params(c):
    C, H, V = c["hidden_size"], c["num_attention_heads"], c["vocab_size"]
    Dn, Dr, Dv, R, Lq = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"], c["kv_lora_rank"], \
        c.get("q_lora_rank") or 0
    Dq, E = Dn + Dr, c.get("n_routed_experts") or 0
    n = V * C
    for l in range(blocks(c)):
        if l == c["num_hidden_layers"]:
            n += 2 * C + 2 * C * C + C  # enorm, hnorm, eh_proj, shared_head.norm
        n += C + (Lq * C + Lq + H * Dq * Lq if Lq else H * Dq * C)
        n += (R + Dr) * C + R + H * (Dn + Dv) * R + C * H * Dv + C
        if is_moe(c, l):
            Im = c["moe_intermediate_size"]
            n += E * C + 3 * E * Im * C + 3 * Im * c.get("n_shared_experts", 0) * C
            if c.get("topk_method") == "noaux_tc":
                n += E  # e_score_correction_bias
        else:
            n += 3 * c["intermediate_size"] * C
    n += C + (0 if c.get("tie_word_embeddings") else V * C)
    return n


def activations(c, B, T):
    C, H, V = c["hidden_size"], c["num_attention_heads"], c["vocab_size"]
    Dn, Dr, Dv, R, Lq = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"], c["kv_lora_rank"], \
        c.get("q_lora_rank") or 0
    Dq, E, K, Im = Dn + Dr, c.get("n_routed_experts") or 0, c.get("num_experts_per_tok") or 0, \
        c.get("moe_intermediate_size") or 0
    N, fmax, f = B * T, 0, 0
    for l in range(blocks(c)):
        F = Im * c.get("n_shared_experts", 0) if is_moe(c, l) else c["intermediate_size"]
        fmax = max(fmax, F)
        f += N * (4 * C + 3 + 2 * H * Dq + (R + Dr) + R + H * (Dn + Dv) + H * Dv + 3 * F) + B * H * T * T
        f += N * (2 * Lq + 1) if Lq else 0
        if is_moe(c, l):
            f += N * (E + 4 * K + 2 * K * C + 3 * K * Im) + E + 1
    f += N * (2 + 2 * C + 4)
    if c.get("num_nextn_predict_layers"):
        f += N * (2 + 9 * C + 6)
    f += N * (3 * C + 2 * H * Dq + H * (Dn + Dv) + (R + Dr) + R + 2 * Lq + H * Dv + 3 * fmax) + B * H * T * T
    if E:
        f += N * (2 * K * C + 3 * K * Im + K + 2 * E)
    f += min(max((4 << 20) // V, 1), N) * V  # the log-prob head's chunk of logits
    return 4 * f


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", help="a model directory or its config.json")
    ap.add_argument("--micro-batch", type=int, default=4, help="grpo.micro_batch (default 4)")
    ap.add_argument("--prompt", type=int, default=300, help="longest prompt in tokens, template included (300)")
    ap.add_argument("--new", type=int, default=1024, help="rollout.max_new_tokens (default 1024)")
    ap.add_argument("--beta", type=float, default=0.04, help="grpo.beta; > 0 adds the reference (default 0.04)")
    ap.add_argument("--max-batch", type=int, default=128, help="rollout.max_batch (default 128)")
    a = ap.parse_args()
    c = load(a.config)
    P, T = params(c), a.prompt + a.new - 1
    act = activations(c, a.micro_batch, T)
    ref = a.beta > 0
    rows = [("policy: weights + grads + AdamW (16 B/param)", 16 * P),
            ("reference weights (beta > 0: 4 B/param)", 4 * P if ref else 0),
            (f"activations: micro-batch {a.micro_batch} x {T} tokens" + (" (x2: policy + reference)" if ref else ""),
             act * (2 if ref else 1)),
            (f"rollout latent cache: {a.max_batch} x {a.prompt + a.new} tokens",
             4 * blocks(c) * (c["kv_lora_rank"] + c["qk_rope_head_dim"]) * a.max_batch * (a.prompt + a.new))]
    print(f"{a.config}: {P:,} parameters ({P / 1e9:.2f}B)")
    for name, b in rows:
        print(f"  {name:<66} {b / 2**30:10.2f} GiB")
    print(f"  {'total (fp32, as the CPU path allocates it)':<66} {sum(b for _, b in rows) / 2**30:10.2f} GiB")


if __name__ == "__main__":
    main()
