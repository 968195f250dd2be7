"""Independent PyTorch reference of the DeepSeek-V3 architecture (MLA + DeepSeekMoE + MTP), for testing
grpo.c's C model (the role test_gpt2's PyTorch twin plays in llm.c).

Written from the semantics of Hugging Face transformers' `modeling_deepseek_v3.py` and DeepSeek's official
`inference/model.py` / remote-code `modeling_deepseek.py`; module and tensor names follow HF, so a
state_dict key here is a checkpoint tensor name. Where the sources differ, the choice is stated in a comment.
No caching, no absorbed form: the training ("expanded") MLA only. Runs in float64 (parity) or float32 (bench).

    model = load(model_dir, dtype=torch.float64)
    out = model(inputs, targets, mtp_lambda=0.3, aux_alpha=0.0)  # dict: logits, logprobs, entropy, ...
    out["loss"].backward()

CLI (a Python twin of build/tests/tool_model_dump, for developing the harness):
    python3 tests/ref/deepseek_ref.py init --config CFG --out DIR [--seed S]
    python3 tests/ref/deepseek_ref.py dump DIR INPUT.json OUT.safetensors [--dtype float32|float64]
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

# ----------------------------------------------------------------------------------------------------------
# config

# Defaults for behavioural keys a config.json may omit (HF DeepseekV3Config defaults). Dimension keys are
# required.
_DEFAULTS = dict(q_lora_rank=None, n_shared_experts=1, n_routed_experts=0, num_experts_per_tok=1,
                 first_k_dense_replace=0, moe_layer_freq=1, routed_scaling_factor=1.0, scoring_func="sigmoid",
                 topk_method="noaux_tc", n_group=1, topk_group=1, norm_topk_prob=True, rms_norm_eps=1e-6,
                 rope_theta=10000.0, rope_scaling=None, tie_word_embeddings=False, num_nextn_predict_layers=0,
                 moe_intermediate_size=0, max_position_embeddings=4096)
_REQUIRED = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
             "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"]


class Config:
    def __init__(self, d):
        self.raw = dict(d)
        for k in _REQUIRED:
            if k not in d:
                raise ValueError(f"config: missing key {k}")
        for k, v in {**_DEFAULTS, **d}.items():
            setattr(self, k, v)
        assert self.scoring_func in ("softmax", "sigmoid"), self.scoring_func
        assert self.topk_method in ("greedy", "group_limited_greedy", "noaux_tc"), self.topk_method
        assert self.num_nextn_predict_layers in (0, 1)
        assert self.qk_rope_head_dim % 2 == 0
        if self.n_routed_experts:
            assert self.n_routed_experts % self.n_group == 0
        # rope: `rope_scaling` (older) or `rope_parameters` (newer; may carry rope_theta)
        rs = d.get("rope_parameters") or d.get("rope_scaling")
        if rs and "rope_theta" in rs:
            self.rope_theta = rs["rope_theta"]
        kind = (rs or {}).get("rope_type", (rs or {}).get("type", "default"))
        self.yarn = None
        if kind == "yarn":
            self.yarn = dict(factor=float(rs["factor"]), beta_fast=float(rs.get("beta_fast", 32)),
                             beta_slow=float(rs.get("beta_slow", 1)), mscale=float(rs.get("mscale", 1)),
                             mscale_all_dim=float(rs.get("mscale_all_dim", 0)),
                             original_max_position_embeddings=int(rs["original_max_position_embeddings"]))
        elif kind not in ("default", None):
            raise ValueError(f"config: rope type {kind} is not supported (default or yarn)")
        self.qk_head_dim = self.qk_nope_head_dim + self.qk_rope_head_dim

    def is_moe_layer(self, i):
        return self.n_routed_experts > 0 and i >= self.first_k_dense_replace and i % self.moe_layer_freq == 0


def yarn_get_mscale(scale=1.0, mscale=1.0):
    if scale <= 1:
        return 1.0
    return 0.1 * mscale * math.log(scale) + 1.0


def rope_inv_freq_and_mscale(cfg):
    """inv_freq (Dr/2,) float64 and the cos/sin multiplier. YaRN as DeepSeek's DeepseekV3YarnRotaryEmbedding."""
    dim, base = cfg.qk_rope_head_dim, float(cfg.rope_theta)
    inv_freq = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    if cfg.yarn is None:
        return inv_freq, 1.0
    y = cfg.yarn

    def corr_dim(num_rot):
        return dim * math.log(y["original_max_position_embeddings"] / (num_rot * 2 * math.pi)) / (2 * math.log(base))

    low = max(math.floor(corr_dim(y["beta_fast"])), 0)
    high = min(math.ceil(corr_dim(y["beta_slow"])), dim - 1)
    if low == high:
        high += 0.001
    ramp = np.clip((np.arange(dim // 2, dtype=np.float64) - low) / (high - low), 0, 1)
    mask = 1.0 - ramp  # 1 = keep the original (extrapolated) frequency
    freq_extra, freq_inter = inv_freq, inv_freq / y["factor"]
    inv_freq = freq_inter * (1 - mask) + freq_extra * mask
    mscale = yarn_get_mscale(y["factor"], y["mscale"]) / yarn_get_mscale(y["factor"], y["mscale_all_dim"])
    return inv_freq, mscale


def rope_cos_sin(cfg, T, dtype):
    """cos, sin: (T, Dr/2), already multiplied by the YaRN mscale. Positions 0..T-1."""
    inv_freq, mscale = rope_inv_freq_and_mscale(cfg)
    freqs = np.outer(np.arange(T, dtype=np.float64), inv_freq)
    return (torch.tensor(np.cos(freqs) * mscale, dtype=dtype), torch.tensor(np.sin(freqs) * mscale, dtype=dtype))


def apply_rope_pairwise(x, cos, sin):
    """x (..., T, heads, Dr) in the checkpoint layout: dims (2j, 2j+1) rotate together with inv_freq[j].
    Equals HF's rope_interleave=True path (de-interleave, then rotate_half) up to the same permutation of
    q and k dims, so attention scores are identical."""
    x0, x1 = x[..., 0::2], x[..., 1::2]  # (..., T, h, Dr/2)
    c, s = cos[:, None, :], sin[:, None, :]  # (T, 1, Dr/2)
    out = torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1)
    return out.flatten(-2)


# ----------------------------------------------------------------------------------------------------------
# modules


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        # HF: computed in fp32 (here: in fp32 or wider), weight applied after
        dt = x.dtype
        xf = x.to(torch.promote_types(dt, torch.float32))
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(dt)


class MLA(nn.Module):
    """DeepseekV3Attention, training form (no cache)."""

    def __init__(self, cfg):
        super().__init__()
        C, H = cfg.hidden_size, cfg.num_attention_heads
        self.cfg = cfg
        self.H, self.Dn, self.Dr, self.Dv, self.R = H, cfg.qk_nope_head_dim, cfg.qk_rope_head_dim, cfg.v_head_dim, cfg.kv_lora_rank
        Dq = self.Dn + self.Dr
        if cfg.q_lora_rank is None:
            self.q_proj = nn.Linear(C, H * Dq, bias=False)
        else:
            self.q_a_proj = nn.Linear(C, cfg.q_lora_rank, bias=False)
            self.q_a_layernorm = RMSNorm(cfg.q_lora_rank, cfg.rms_norm_eps)
            self.q_b_proj = nn.Linear(cfg.q_lora_rank, H * Dq, bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(C, self.R + self.Dr, bias=False)
        self.kv_a_layernorm = RMSNorm(self.R, cfg.rms_norm_eps)
        self.kv_b_proj = nn.Linear(self.R, H * (self.Dn + self.Dv), bias=False)
        self.o_proj = nn.Linear(H * self.Dv, C, bias=False)
        self.scale = Dq ** -0.5
        if cfg.yarn is not None and cfg.yarn["mscale_all_dim"]:
            m = yarn_get_mscale(cfg.yarn["factor"], cfg.yarn["mscale_all_dim"])
            self.scale = self.scale * m * m

    def forward(self, x, cos, sin):  # x (B, T, C)
        B, T, _ = x.shape
        H, Dn, Dr, Dv, R = self.H, self.Dn, self.Dr, self.Dv, self.R
        if self.cfg.q_lora_rank is None:
            q = self.q_proj(x)
        else:
            q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x)))
        q = q.view(B, T, H, Dn + Dr)
        q_nope, q_pe = q[..., :Dn], q[..., Dn:]
        kv_a = self.kv_a_proj_with_mqa(x)                       # (B, T, R + Dr)
        c_kv, k_pe = kv_a[..., :R], kv_a[..., R:]
        kv = self.kv_b_proj(self.kv_a_layernorm(c_kv)).view(B, T, H, Dn + Dv)
        k_nope, v = kv[..., :Dn], kv[..., Dn:]
        q_pe = apply_rope_pairwise(q_pe, cos, sin)               # (B, T, H, Dr)
        k_pe = apply_rope_pairwise(k_pe.view(B, T, 1, Dr), cos, sin)  # one head, shared by all H
        qf = torch.cat((q_nope, q_pe), -1)
        kf = torch.cat((k_nope, k_pe.expand(B, T, H, Dr)), -1)
        scores = torch.einsum("bthd,bshd->bhts", qf, kf) * self.scale  # (B, H, T, T)
        causal = torch.ones(T, T, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(causal, float("-inf"))
        p = torch.softmax(scores.to(torch.promote_types(scores.dtype, torch.float32)), -1).to(v.dtype)
        out = torch.einsum("bhts,bshd->bthd", p, v).reshape(B, T, H * Dv)
        return self.o_proj(out)


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, C, I):
        super().__init__()
        self.gate_proj = nn.Linear(C, I, bias=False)
        self.up_proj = nn.Linear(C, I, bias=False)
        self.down_proj = nn.Linear(I, C, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Gate(nn.Module):
    """Router weight (E, C); e_score_correction_bias (E) is a buffer (noaux_tc only; not trained here)."""

    def __init__(self, cfg):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cfg.n_routed_experts, cfg.hidden_size))
        if cfg.topk_method == "noaux_tc":
            self.register_buffer("e_score_correction_bias", torch.zeros(cfg.n_routed_experts))
        else:
            self.e_score_correction_bias = None


class MoE(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.gate = Gate(cfg)
        self.experts = nn.ModuleList(MLP(cfg.hidden_size, cfg.moe_intermediate_size) for _ in range(cfg.n_routed_experts))
        if cfg.n_shared_experts:
            self.shared_experts = MLP(cfg.hidden_size, cfg.moe_intermediate_size * cfg.n_shared_experts)
        else:
            self.shared_experts = None
        self.last_routing = None  # (idx (N, K), choice scores (N, E)) of the last call, for diagnostics

    def scores(self, x):
        """Router logits in fp32 (or wider), then softmax / sigmoid. x (N, C) -> (N, E)."""
        dt = torch.promote_types(x.dtype, torch.float32)
        logits = x.to(dt) @ self.gate.weight.to(dt).t()
        return logits.softmax(-1) if self.cfg.scoring_func == "softmax" else logits.sigmoid()

    def select(self, s):
        """Expert indices (N, K) from detached scores s (N, E). Returns (idx, the scores used for choosing)."""
        cfg = self.cfg
        E, K, G = cfg.n_routed_experts, cfg.num_experts_per_tok, cfg.n_group
        if cfg.topk_method == "greedy":
            return torch.topk(s, K, dim=-1).indices, s
        choice = s + self.gate.e_score_correction_bias.to(s.dtype) if cfg.topk_method == "noaux_tc" else s
        grouped = choice.view(-1, G, E // G)
        if cfg.topk_method == "group_limited_greedy":
            group_scores = grouped.max(-1).values
        else:  # noaux_tc: sum of the top-2 choice values of each group
            group_scores = grouped.topk(min(2, E // G), dim=-1).values.sum(-1)
        keep = torch.topk(group_scores, cfg.topk_group, dim=-1).indices  # (N, topk_group)
        drop = torch.ones_like(group_scores, dtype=torch.bool).scatter(1, keep, False)
        # DeepSeek's official code masks dropped groups with -inf (transformers uses 0.0; same choice
        # whenever the kept groups hold at least K experts with positive scores).
        masked = grouped.masked_fill(drop[..., None], float("-inf")).view(-1, E)
        return torch.topk(masked, K, dim=-1).indices, masked

    def forward(self, x, aux_alpha=0.0):  # x (B, T, C) -> (out (B, T, C), aux scalar)
        cfg = self.cfg
        B, T, C = x.shape
        E, K = cfg.n_routed_experts, cfg.num_experts_per_tok
        xf = x.reshape(B * T, C)
        s = self.scores(xf)                                        # (N, E)
        idx, choice = self.select(s.detach())                      # selection is discrete: no gradient
        self.last_routing = (idx, choice)
        w = s.gather(1, idx)                                       # unbiased scores of the chosen experts
        if cfg.norm_topk_prob and K > 1:
            w = w / (w.sum(-1, keepdim=True) + 1e-20)
        w = (w * cfg.routed_scaling_factor).to(x.dtype)
        out = torch.zeros_like(xf)
        for e in range(E):
            tok, slot = (idx == e).nonzero(as_tuple=True)
            if tok.numel():
                out = out.index_add(0, tok, w[tok, slot, None] * self.experts[e](xf[tok]))
        if self.shared_experts is not None:
            out = out + self.shared_experts(xf)
        aux = x.new_zeros(())
        if aux_alpha:
            # sequence-wise balance loss: f constant, P differentiable
            sp = s if cfg.scoring_func == "softmax" else s / s.sum(-1, keepdim=True)
            P = sp.view(B, T, E).mean(1)                           # (B, E)
            hits = torch.zeros(B * T, E, dtype=s.dtype).scatter(1, idx, 1.0).view(B, T, E).sum(1)
            f = hits * (E / (K * T))
            aux = (aux_alpha * (f * P).sum(-1).mean()).to(x.dtype)
        return out.view(B, T, C), aux


class DecoderLayer(nn.Module):
    def __init__(self, cfg, i):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = MLA(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.is_moe = cfg.is_moe_layer(i)
        self.mlp = MoE(cfg) if self.is_moe else MLP(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, x, cos, sin, aux_alpha=0.0):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        h = self.post_attention_layernorm(x)
        if self.is_moe:
            f, aux = self.mlp(h, aux_alpha)
        else:
            f, aux = self.mlp(h), x.new_zeros(())
        return x + f, aux


class SharedHead(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)  # the head itself is the main lm_head


class MTPLayer(DecoderLayer):
    """model.layers.L: enorm, hnorm, eh_proj, a full decoder block, shared_head.norm."""

    def __init__(self, cfg, i):
        super().__init__(cfg, i)
        self.enorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.hnorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.eh_proj = nn.Linear(2 * cfg.hidden_size, cfg.hidden_size, bias=False)
        self.shared_head = SharedHead(cfg)


class Inner(nn.Module):  # "model."
    def __init__(self, cfg):
        super().__init__()
        L = cfg.num_hidden_layers
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        layers = [DecoderLayer(cfg, i) for i in range(L)]
        if cfg.num_nextn_predict_layers:
            layers.append(MTPLayer(cfg, L))
        self.layers = nn.ModuleList(layers)
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


def _token_stats(logits, targets):
    """logits (B, T, V), targets (B, T) with -1 = ignore -> logprob of target (0 where ignored), entropy,
    mean NLL over valid positions (0 when none), number of valid positions."""
    logp = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), -1)
    entropy = -(logp.exp() * logp).sum(-1)
    if targets is None:
        return None, entropy, None
    valid = targets >= 0
    lp = logp.gather(-1, targets.clamp(min=0)[..., None])[..., 0] * valid
    nll = -lp.sum() / max(int(valid.sum()), 1)
    return lp, entropy, nll


class DeepseekV3Ref(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg if isinstance(cfg, Config) else Config(cfg)
        cfg = self.cfg
        self.model = Inner(cfg)
        self.lm_head = None if cfg.tie_word_embeddings else nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)

    def head(self, x):
        w = self.model.embed_tokens.weight if self.lm_head is None else self.lm_head.weight
        return F.linear(x, w)

    def moe_layers(self):
        return [l.mlp for l in self.model.layers if l.is_moe]

    def forward(self, inputs, targets=None, mtp_lambda=0.0, aux_alpha=0.0):
        """inputs, targets: (B, T) int64 (targets -1 = ignore). Returns a dict of tensors:
        logits (B,T,V), logprobs (B,T) (0 where ignored), entropy (B,T), loss, mtp_loss (None without
        MTP), aux_loss, hidden (B,T,C: before the final norm)."""
        cfg = self.cfg
        B, T = inputs.shape
        L = cfg.num_hidden_layers
        dt = self.model.embed_tokens.weight.dtype
        cos, sin = rope_cos_sin(cfg, T, dt)
        x = self.model.embed_tokens(inputs)
        aux = x.new_zeros(())
        for layer in self.model.layers[:L]:
            x, a = layer(x, cos, sin, aux_alpha)
            aux = aux + a
        h = x
        logits = self.head(self.model.norm(h))
        logprobs, entropy, nll = _token_stats(logits, targets)
        out = dict(logits=logits, logprobs=logprobs, entropy=entropy, hidden=h, mtp_loss=None, mtp_logits=None)
        loss = nll if nll is not None else x.new_zeros(())
        if cfg.num_nextn_predict_layers and T > 1:
            mtp = self.model.layers[L]
            e = mtp.enorm(self.model.embed_tokens(inputs[:, 1:]))      # token t+1
            m = mtp.eh_proj(torch.cat((e, mtp.hnorm(h[:, :-1])), -1))  # (B, T-1, C)
            m, a = mtp(m, cos[:T - 1], sin[:T - 1], aux_alpha)
            aux = aux + a
            mtp_logits = self.head(mtp.shared_head.norm(m))
            out["mtp_logits"] = mtp_logits
            if targets is not None:
                _, _, mtp_nll = _token_stats(mtp_logits, targets[:, 1:])
                out["mtp_loss"] = mtp_nll
                loss = loss + mtp_lambda * mtp_nll
        out["aux_loss"] = aux
        out["loss"] = loss + aux
        return out


# ----------------------------------------------------------------------------------------------------------
# init / load / save


def init_random(config, seed=0, std=0.02):
    """A random model (float32): Linear/Embedding ~ N(0, std), norm weights 1 + N(0, 0.1) (not 1, so tests see
    them), e_score_correction_bias ~ N(0, 0.05)."""
    cfg = config if isinstance(config, Config) else Config(config)
    torch.manual_seed(seed)
    m = DeepseekV3Ref(cfg)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0, std)
        for name, b in m.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.normal_(0, 0.05)
    return m


def tensors(model):
    """Checkpoint tensors: parameters + e_score_correction_bias buffers, by HF name."""
    return {k: v for k, v in model.state_dict().items()}


def save(model, model_dir):
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(model.cfg.raw, f, indent=2)
    st.save(os.path.join(model_dir, "model.safetensors"),
            {k: v.detach().cpu().numpy() for k, v in tensors(model).items()})


def load(model_dir, dtype=torch.float64):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = Config(json.load(f))
    m = DeepseekV3Ref(cfg)
    ts = st.load_dir(model_dir)
    # real checkpoints carry copies the MTP block shares (embed_tokens, shared_head.head) and rotary buffers
    L = cfg.num_hidden_layers
    ignored = (f"model.layers.{L}.embed_tokens.weight", f"model.layers.{L}.shared_head.head.weight")
    ts = {k: v for k, v in ts.items() if k not in ignored and not k.endswith("rotary_emb.inv_freq")}
    want = m.state_dict()
    missing = sorted(set(want) - set(ts))
    extra = sorted(set(ts) - set(want))
    if missing or extra:
        raise ValueError(f"{model_dir}: tensors missing {missing[:8]}{'...' if len(missing) > 8 else ''}, "
                         f"unexpected {extra[:8]}{'...' if len(extra) > 8 else ''}")
    for k, v in want.items():
        if tuple(ts[k].shape) != tuple(v.shape):
            raise ValueError(f"{model_dir}: {k} has shape {list(ts[k].shape)}, config says {list(v.shape)}")
    m.load_state_dict({k: torch.from_numpy(np.asarray(ts[k], dtype=np.float32)) for k in want})
    return m.to(dtype)


# ----------------------------------------------------------------------------------------------------------
# dump: the same contract as build/tests/tool_model_dump


def read_input(path):
    with open(path) as f:
        j = json.load(f)
    B, T = j["B"], j["T"]
    inputs = torch.tensor(j["inputs"], dtype=torch.long).view(B, T)
    targets = torch.tensor(j["targets"], dtype=torch.long).view(B, T)
    return inputs, targets, float(j.get("mtp_lambda", 0.0)), float(j.get("aux_alpha", 0.0))


def run_with_grads(model, inputs, targets, mtp_lambda, aux_alpha):
    """Forward + backward; returns {name: np.float64 array} with logits, logprobs, entropy, loss, mtp_loss,
    aux_loss and grad.<param> for every trained parameter."""
    model.zero_grad(set_to_none=True)
    out = model(inputs, targets, mtp_lambda, aux_alpha)
    out["loss"].backward()
    res = {k: out[k].detach().double().numpy() for k in ("logits", "logprobs", "entropy")}
    res["loss"] = out["loss"].detach().double().numpy().reshape(1)
    res["aux_loss"] = out["aux_loss"].detach().double().numpy().reshape(1)
    if out["mtp_loss"] is not None:
        res["mtp_loss"] = out["mtp_loss"].detach().double().numpy().reshape(1)
    for name, p in model.named_parameters():
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        res["grad." + name] = g.detach().double().numpy()
    return res


def dump(model_dir, input_path, out_path, dtype=torch.float32):
    model = load(model_dir, dtype)
    res = run_with_grads(model, *read_input(input_path))
    st.save(out_path, res)


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("init")
    a.add_argument("--config", required=True)
    a.add_argument("--out", required=True)
    a.add_argument("--seed", type=int, default=0)
    d = sub.add_parser("dump")
    d.add_argument("model_dir")
    d.add_argument("input")
    d.add_argument("output")
    d.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    if args.cmd == "init":
        with open(args.config) as f:
            save(init_random(json.load(f), args.seed), args.out)
    else:
        dump(args.model_dir, args.input, args.output, getattr(torch, args.dtype))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
