"""Cached decoding for the PyTorch reference (tests/ref/deepseek_ref.py): the standard EXPANDED KV cache that
Hugging Face transformers' DeepSeek-V3 keeps (per layer k (B,H,T,Dq) = [k_nope, k_pe] and v (B,H,T,Dv), the
latent c_kv re-expanded through kv_b_proj and stored per head), with eager attention. The cache is allocated
once for T_max tokens (transformers' StaticCache; its DynamicCache concatenates each step instead), so a
decode step writes one column and reads columns 0..len-1. The MTP block is not used for decoding.

    model = deepseek_ref.load(model_dir, torch.float32)
    cache = KVCache(model, B, T_max)
    logits = forward_cached(model, prompt_ids, cache)       # (B, T, V) prefill; cache.len = T
    logits = forward_cached(model, next_ids[:, None], cache) # (B, 1, V) one decode step
    ids = greedy(model, prompts, n_new)                      # (B, n_new) greedy tokens

Same weights, same math as DeepseekV3Ref.forward; only where k/v come from differs. Run as a script it checks
that cached decoding gives the full forward's logits (float64 and float32).
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deepseek_ref as R  # noqa: E402


class KVCache:
    """Per main layer: k (B, H, T_max, Dq), v (B, H, T_max, Dv); len = tokens cached (the same for all rows)."""

    def __init__(self, model, B, T_max, dtype=None):
        cfg = model.cfg
        dt = dtype or model.model.embed_tokens.weight.dtype
        H, Dq, Dv = cfg.num_attention_heads, cfg.qk_head_dim, cfg.v_head_dim
        L = cfg.num_hidden_layers
        self.k = [torch.zeros(B, H, T_max, Dq, dtype=dt) for _ in range(L)]
        self.v = [torch.zeros(B, H, T_max, Dv, dtype=dt) for _ in range(L)]
        self.B, self.T_max, self.len = B, T_max, 0
        self.cos, self.sin = R.rope_cos_sin(cfg, T_max, dt)

    def nbytes_per_token(self):
        return sum(t[0, :, 0].numel() * t.element_size() for t in self.k + self.v)

    def repeat_interleave(self, G):
        """Each row repeated G times (a prompt's cache shared out to the G samples of its group: copies)."""
        out = KVCache.__new__(KVCache)
        out.k = [t.repeat_interleave(G, 0) for t in self.k]
        out.v = [t.repeat_interleave(G, 0) for t in self.v]
        out.B, out.T_max, out.len, out.cos, out.sin = self.B * G, self.T_max, self.len, self.cos, self.sin
        return out


def mla_cached(attn, x, cache, l):
    """DeepseekV3Attention with the expanded cache: x (B, T, C) at positions cache.len .. cache.len + T - 1."""
    B, T, _ = x.shape
    H, Dn, Dr, Dv, R_ = attn.H, attn.Dn, attn.Dr, attn.Dv, attn.R
    s = cache.len
    cos, sin = cache.cos[s:s + T], cache.sin[s:s + T]
    if attn.cfg.q_lora_rank is None:
        q = attn.q_proj(x)
    else:
        q = attn.q_b_proj(attn.q_a_layernorm(attn.q_a_proj(x)))
    q = q.view(B, T, H, Dn + Dr)
    q_nope, q_pe = q[..., :Dn], q[..., Dn:]
    kv_a = attn.kv_a_proj_with_mqa(x)
    c_kv, k_pe = kv_a[..., :R_], kv_a[..., R_:]
    kv = attn.kv_b_proj(attn.kv_a_layernorm(c_kv)).view(B, T, H, Dn + Dv)
    k_nope, v = kv[..., :Dn], kv[..., Dn:]
    q_pe = R.apply_rope_pairwise(q_pe, cos, sin)
    k_pe = R.apply_rope_pairwise(k_pe.view(B, T, 1, Dr), cos, sin)
    qf = torch.cat((q_nope, q_pe), -1).transpose(1, 2)                          # (B, H, T, Dq)
    kf = torch.cat((k_nope, k_pe.expand(B, T, H, Dr)), -1).transpose(1, 2)      # (B, H, T, Dq)
    K, V = cache.k[l], cache.v[l]
    K[:, :, s:s + T] = kf
    V[:, :, s:s + T] = v.transpose(1, 2)
    Kc, Vc = K[:, :, :s + T], V[:, :, :s + T]
    scores = torch.matmul(qf, Kc.transpose(-1, -2)) * attn.scale                # (B, H, T, s+T)
    if T > 1:
        mask = torch.ones(T, s + T, dtype=torch.bool).triu(s + 1)
        scores = scores.masked_fill(mask, float("-inf"))
    p = torch.softmax(scores.to(torch.promote_types(scores.dtype, torch.float32)), -1).to(Vc.dtype)
    out = torch.matmul(p, Vc).transpose(1, 2).reshape(B, T, H * Dv)
    return attn.o_proj(out)


def forward_cached(model, ids, cache, last_only=False):
    """ids (B, T) int64 fed at positions cache.len ...; returns logits (B, T, V) (or (B, V) of the last
    position when last_only) and advances cache.len by T."""
    cfg = model.cfg
    x = model.model.embed_tokens(ids)
    for l, layer in enumerate(model.model.layers[:cfg.num_hidden_layers]):
        x = x + mla_cached(layer.self_attn, layer.input_layernorm(x), cache, l)
        h = layer.post_attention_layernorm(x)
        x = x + (layer.mlp(h)[0] if layer.is_moe else layer.mlp(h))
    cache.len += ids.shape[1]
    if last_only:
        x = x[:, -1]
    return model.head(model.model.norm(x))


@torch.no_grad()
def greedy(model, prompts, n_new):
    """prompts (B, T) int64, all the same length -> (B, n_new) greedy tokens (argmax, lowest id on ties) and
    the logits they were chosen from (B, n_new, V)."""
    B, T = prompts.shape
    cache = KVCache(model, B, T + n_new)
    logits = forward_cached(model, prompts, cache, last_only=True)
    toks, all_logits = [], []
    for _ in range(n_new):
        all_logits.append(logits)
        nxt = torch.argmax(logits, -1)  # first maximum: lowest id on ties
        toks.append(nxt)
        logits = forward_cached(model, nxt[:, None], cache, last_only=True)
    return torch.stack(toks, 1), torch.stack(all_logits, 1)


@torch.no_grad()
def check_against_full(model, B=2, T_prompt=7, n_new=9, seed=0):
    """Max normalised difference between cached-decode logits (prefill + one token per step) and the full
    forward's logits over the same final sequence."""
    V = model.cfg.vocab_size
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(0, V, (B, T_prompt + n_new), generator=g)
    full = model(seq)["logits"]
    cache = KVCache(model, B, T_prompt + n_new)
    got = [forward_cached(model, seq[:, :T_prompt], cache)]
    for t in range(T_prompt, T_prompt + n_new):
        got.append(forward_cached(model, seq[:, t:t + 1], cache))
    got = torch.cat(got, 1)
    return float((got - full).abs().max() / full.abs().max().clamp(min=1e-12))


if __name__ == "__main__":
    import json
    torch.set_num_threads(2)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "configs", "model", "tiny.json")) as f:
        cfg = json.load(f)
    m = R.init_random(cfg, seed=0, std=0.2)
    for dt, tol in ((torch.float64, 1e-10), (torch.float32, 1e-4)):
        err = check_against_full(m.to(dt))
        print(f"cached decode vs full forward ({dt}): {err:.2e} {'ok' if err < tol else 'FAIL'}")
        assert err < tol
