"""Parity: grpo.c's C model against the independent PyTorch reference (tests/ref/deepseek_ref.py), the way
llm.c's test_gpt2 checks train_gpt2.c against PyTorch.

For each config variant derived from configs/model/tiny.json:
  ./grpo init --config CFG --out DIR --seed S            (C writes config.json + model.safetensors)
  norm weights / e_score_correction_bias are perturbed here when the C init left them at 1 / 0, the
  q/kv projections scaled x4 when small (so attention is not near-uniform), and the file is rewritten with tests/ref/st.py (so the C loader also reads a file it did not write)
  build/tests/tool_model_dump DIR INPUT.json OUT.safetensors
  the reference in float64 with autograd on the same weights and inputs; compare logits, logprobs (where
  target >= 0), entropy, loss, mtp_loss, aux_loss and every trained parameter's gradient.
Error = max|c - ref| / max(1e-6, max|ref|); values < 2e-4, gradients < 1e-3; NaN/Inf and missing or
unexpected gradients fail.

Reference-only checks (no C needed): pairwise RoPE == HF de-interleave + rotate_half, routed-expert
permutation invariance, determinism, finite differences of the reference, closed-form aux loss and uniform
head, safetensors round trip (F32/BF16/F16, sharded index).

Env: PARITY_CSIDE=python runs the reference itself in float32 as the "C side" (to test this harness);
KEEP=1 keeps the temp folder; VERBOSE=1 prints every gradient's error; GRPO_BIN / DUMP_BIN override the
paths of ./grpo and build/tests/tool_model_dump.
"""
import copy
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "ref"))
import deepseek_ref as R  # noqa: E402
import st  # noqa: E402

torch.set_num_threads(2)
VAL_TOL, GRAD_TOL = 2e-4, 1e-3
VERBOSE = os.environ.get("VERBOSE") == "1"
CSIDE = os.environ.get("PARITY_CSIDE", "c")
GRPO = os.environ.get("GRPO_BIN", os.path.join(ROOT, "grpo"))
DUMP = os.environ.get("DUMP_BIN", os.path.join(ROOT, "build", "tests", "tool_model_dump"))

# Used only while configs/model/tiny.json does not exist yet; same keys.
FALLBACK_TINY = {
    "model_type": "deepseek_v3", "architectures": ["DeepseekV3ForCausalLM"],
    "vocab_size": 256, "hidden_size": 64, "intermediate_size": 128, "moe_intermediate_size": 32,
    "num_hidden_layers": 3, "num_attention_heads": 4, "q_lora_rank": 32, "kv_lora_rank": 32,
    "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16,
    "n_routed_experts": 8, "n_shared_experts": 1, "num_experts_per_tok": 2, "first_k_dense_replace": 1,
    "moe_layer_freq": 1, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid", "topk_method": "noaux_tc",
    "n_group": 4, "topk_group": 2, "norm_topk_prob": True, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
    "rope_scaling": {"type": "yarn", "factor": 4.0, "beta_fast": 32, "beta_slow": 1, "mscale": 1.0,
                     "mscale_all_dim": 1.0, "original_max_position_embeddings": 32},
    "max_position_embeddings": 128, "tie_word_embeddings": False, "num_nextn_predict_layers": 1,
    "bos_token_id": 0, "eos_token_id": 1,
}

passed = failed = 0


def result(ok, name, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"  ok    {name} {detail}")
    else:
        failed += 1
        print(f"  FAIL  {name} {detail}")


def nerr(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b))) / max(1e-6, float(np.max(np.abs(b)))) if b.size else 0.0


def base_config():
    p = os.path.join(ROOT, "configs", "model", "tiny.json")
    if os.path.exists(p):
        with open(p) as f:
            return json.load(f), "configs/model/tiny.json"
    return copy.deepcopy(FALLBACK_TINY), "built-in tiny (configs/model/tiny.json missing)"


def variants(base):
    """(name, config, aux_alpha)."""
    out = [("shipped", base, 0.0)]
    v = copy.deepcopy(base)
    v.update(q_lora_rank=None, scoring_func="softmax", topk_method="group_limited_greedy",
             tie_word_embeddings=True, num_nextn_predict_layers=0)
    v.pop("rope_scaling", None)
    v.pop("rope_parameters", None)
    out.append(("nolora_softmax_glg_norope_tied_nomtp", v, 0.0))
    v = copy.deepcopy(base)
    v.update(scoring_func="softmax", topk_method="greedy", norm_topk_prob=False, n_shared_experts=0)
    out.append(("greedy_softmax_nonorm_noshared", v, 0.0))
    out.append(("shipped_aux", base, 0.1))
    v = copy.deepcopy(base)
    if v.get("num_hidden_layers", 1) >= 2:
        v.update(first_k_dense_replace=0, moe_layer_freq=2, num_experts_per_tok=1, topk_method="greedy")
    rs = v.get("rope_scaling") or v.get("rope_parameters")
    if rs:
        rs.update(mscale=0.707, mscale_all_dim=0)
    out.append(("freq2_k1_sigmoid_greedy_mscale", v, 0.05))
    return out


def make_input(cfg, seed, B=2, T=12):
    g = np.random.default_rng(seed)
    V = cfg["vocab_size"]
    inputs = g.integers(0, V, size=(B, T))
    targets = np.concatenate([inputs[:, 1:], g.integers(0, V, size=(B, 1))], 1)
    targets[0, 3] = -1
    targets[1, 0] = -1
    targets[1, T - 1] = -1
    return inputs, targets


# ----------------------------------------------------------------------------------------------------------
# reference-only checks


def hf_rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def hf_apply_rotary_pos_emb_interleave(q, k, cos, sin):
    """transformers' DeepseekV3 apply_rotary_pos_emb_interleave: q, k (b, h, s, d); cos, sin (b, s, d)."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    b, h, s, d = q.shape
    q = q.view(b, h, s, d // 2, 2).transpose(4, 3).reshape(b, h, s, d)
    b, h, s, d = k.shape
    k = k.view(b, h, s, d // 2, 2).transpose(4, 3).reshape(b, h, s, d)
    return (q * cos) + (hf_rotate_half(q) * sin), (k * cos) + (hf_rotate_half(k) * sin)


def check_rope(base):
    cfg = R.Config(base)
    Dr, T, H = cfg.qk_rope_head_dim, 9, 3
    inv_freq, mscale = R.rope_inv_freq_and_mscale(cfg)
    # HF rotary embedding: freqs = pos * inv_freq, emb = cat(freqs, freqs), cos/sin * attention_scaling
    pos = torch.arange(T, dtype=torch.float64)
    freqs = torch.outer(pos, torch.tensor(inv_freq))
    emb = torch.cat((freqs, freqs), -1)
    cos_hf, sin_hf = (emb.cos() * mscale)[None], (emb.sin() * mscale)[None]
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, H, T, Dr, generator=g, dtype=torch.float64)
    k = torch.randn(1, 1, T, Dr, generator=g, dtype=torch.float64)
    q_hf, k_hf = hf_apply_rotary_pos_emb_interleave(q, k, cos_hf, sin_hf)
    cos, sin = R.rope_cos_sin(cfg, T, torch.float64)
    q_me = R.apply_rope_pairwise(q.permute(0, 2, 1, 3), cos, sin).permute(0, 2, 1, 3)  # (b, h, s, d)
    k_me = R.apply_rope_pairwise(k.permute(0, 2, 1, 3), cos, sin).permute(0, 2, 1, 3)
    deint = lambda x: torch.cat((x[..., 0::2], x[..., 1::2]), -1)  # noqa: E731
    e1 = nerr(deint(q_me), q_hf)
    e2 = nerr(deint(k_me), k_hf)
    e3 = nerr(q_me @ k_me.transpose(-1, -2), q_hf @ k_hf.transpose(-1, -2))
    # the relative-position property: scores depend on positions only through (t - s)
    ok = max(e1, e2, e3) < 1e-12
    result(ok, "ref: pairwise RoPE == HF de-interleave+rotate_half",
           f"(q {e1:.1e}, k {e2:.1e}, scores {e3:.1e}; yarn={'yes' if cfg.yarn else 'no'}, mscale {mscale:.4f})")


def permuted_experts(model, seed):
    """Same model with routed experts permuted within groups and groups permuted; returns a new model."""
    cfg = model.cfg
    E, G = cfg.n_routed_experts, cfg.n_group
    g = np.random.default_rng(seed)
    m2 = copy.deepcopy(model)
    gperm = g.permutation(G)
    perm = np.concatenate([gp * (E // G) + g.permutation(E // G) for gp in gperm])  # new j <- old perm[j]
    with torch.no_grad():
        for l2, l1 in zip(m2.model.layers, model.model.layers):
            if not l1.is_moe:
                continue
            l2.mlp.gate.weight.copy_(l1.mlp.gate.weight[perm])
            if l1.mlp.gate.e_score_correction_bias is not None:
                l2.mlp.gate.e_score_correction_bias.copy_(l1.mlp.gate.e_score_correction_bias[perm])
            for j in range(E):
                l2.mlp.experts[j].load_state_dict(l1.mlp.experts[int(perm[j])].state_dict())
    return m2, perm


def check_reference(base):
    print("reference self-checks")
    check_rope(base)
    cfg = base
    inputs, targets = make_input(cfg, 1)
    x, t = torch.tensor(inputs), torch.tensor(targets)
    m = R.init_random(cfg, seed=3).double()
    # determinism
    r1 = R.run_with_grads(m, x, t, 0.3, 0.1)
    r2 = R.run_with_grads(m, x, t, 0.3, 0.1)
    same = all(np.array_equal(r1[k], r2[k]) for k in r1)
    result(same, "ref: deterministic (values and grads bit-identical over two runs)")
    # permutation of routed experts
    if cfg.get("n_routed_experts", 0):
        m2, perm = permuted_experts(m, 5)
        with torch.no_grad():
            o1, o2 = m(x, t, 0.3, 0.1), m2(x, t, 0.3, 0.1)
        e = max(nerr(o2["logits"], o1["logits"]), nerr(o2["loss"], o1["loss"]))
        moved = int((perm != np.arange(len(perm))).sum())
        result(e < 1e-12, "ref: routed-expert permutation leaves logits/loss unchanged",
               f"(err {e:.1e}, {moved} experts moved)")
    # finite differences in float64 on a few entries of several tensors (loss incl. MTP + aux)
    g = np.random.default_rng(0)
    names = [n for n, _ in m.named_parameters()]
    pick = [n for n in names if any(s in n for s in ("q_a_proj", "kv_a_proj", "kv_b_proj", "mlp.gate.weight",
                                                       "embed_tokens", "eh_proj", "lm_head", "norm"))]
    pick = list(dict.fromkeys(pick[:3] + pick[-3:] + [n for n in pick if "gate.weight" in n][:2]))
    params = dict(m.named_parameters())
    worst, eps = 0.0, 1e-6
    for n in pick:
        p = params[n]
        ga = r1["grad." + n].reshape(-1)
        for _ in range(3):
            i = int(np.argmax(np.abs(ga))) if _ == 0 else int(g.integers(0, p.numel()))
            with torch.no_grad():
                old = p.view(-1)[i].item()
                p.view(-1)[i] = old + eps
                lp = m(x, t, 0.3, 0.1)["loss"].item()
                p.view(-1)[i] = old - eps
                lm = m(x, t, 0.3, 0.1)["loss"].item()
                p.view(-1)[i] = old
            fd = (lp - lm) / (2 * eps)
            worst = max(worst, abs(fd - ga[i]) / max(1e-6, np.abs(ga).max()))
    result(worst < 1e-6, "ref: autograd == central finite differences (float64)",
           f"(normalised err {worst:.1e} over {len(pick)} tensors x 3 entries)")
    # closed forms: uniform router -> balance loss == alpha per MoE layer; zero head -> -ln V, ln V
    cu = copy.deepcopy(cfg)
    cu.update(scoring_func="softmax", topk_method="greedy", tie_word_embeddings=False)
    mu = R.init_random(cu, seed=4).double()
    with torch.no_grad():
        for l in mu.model.layers:
            if l.is_moe:
                l.mlp.gate.weight.zero_()
        mu.lm_head.weight.zero_()
        o = mu(x, t, 0.3, 0.25)
    n_moe = len(mu.moe_layers())
    V = cfg["vocab_size"]
    e_aux = abs(o["aux_loss"].item() - 0.25 * n_moe)
    valid = t >= 0
    e_lp = float((o["logprobs"][valid] + math.log(V)).abs().max())
    e_ent = float((o["entropy"] - math.log(V)).abs().max())
    result(max(e_aux, e_lp, e_ent) < 1e-9, "ref: closed forms (uniform router aux = alpha*n_moe, zero head -> ln V)",
           f"(aux {o['aux_loss'].item():.6f} vs {0.25 * n_moe}, logprob err {e_lp:.1e}, entropy err {e_ent:.1e})")
    # safetensors round trip, BF16/F16 reading, sharded index
    with tempfile.TemporaryDirectory() as d:
        a = np.random.default_rng(1).standard_normal((3, 5)).astype(np.float32)
        st.save(os.path.join(d, "a.safetensors"), {"x": a, "i": np.arange(4, dtype=np.int64)})
        back = st.load(os.path.join(d, "a.safetensors"))
        ok = np.array_equal(back["x"], a) and np.array_equal(back["i"], np.arange(4))
        # hand-written BF16 + F16 shards with an index
        bf = (a.view(np.uint32) >> 16).astype("<u2")
        hdr = {"b": {"dtype": "BF16", "shape": [3, 5], "data_offsets": [0, 30]},
               "h": {"dtype": "F16", "shape": [3, 5], "data_offsets": [30, 60]}}
        hj = json.dumps(hdr).encode()
        with open(os.path.join(d, "s1.safetensors"), "wb") as f:
            f.write(len(hj).to_bytes(8, "little") + hj + bf.tobytes() + a.astype("<f2").tobytes())
        st.save(os.path.join(d, "s2.safetensors"), {"x": a})
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"weight_map": {"b": "s1.safetensors", "h": "s1.safetensors", "x": "s2.safetensors"}}, f)
        sh = st.load_dir(d)
        ok = ok and np.array_equal(sh["b"], (bf.astype(np.uint32) << 16).view(np.float32))
        ok = ok and np.abs(sh["h"] - a).max() < 2e-3 and np.array_equal(sh["x"], a)
    result(ok, "ref: safetensors round trip (F32/I64 write+read, BF16/F16 read, sharded index)")


# ----------------------------------------------------------------------------------------------------------
# C parity


def run(cmd, what):
    t0 = time.time()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        msg = (p.stderr or p.stdout).strip().splitlines()[-6:]
        raise RuntimeError(f"{what} failed (exit {p.returncode}): {' '.join(cmd)}\n      " + "\n      ".join(msg))
    return time.time() - t0


def perturb_checkpoint(d, seed):
    """Makes norm weights / e_score_correction_bias non-trivial when the C init left them at 1 / 0."""
    ts = st.load_dir(d)
    g = np.random.default_rng(seed)
    changed = []
    for k, v in ts.items():
        # a 0.02-std init leaves attention nearly uniform, so RoPE / score bugs would barely show: sharpen it
        if k.endswith(("q_b_proj.weight", "q_proj.weight", "kv_b_proj.weight", "kv_a_proj_with_mqa.weight")) \
                and np.abs(v).max() < 0.2:
            ts[k] = v * np.float32(4)
            changed.append("attn x4")
        if k.endswith("norm.weight") and np.all(v == 1):
            ts[k] = (1 + 0.1 * g.standard_normal(v.shape)).astype(np.float32)
            changed.append("norms")
        elif k.endswith("e_score_correction_bias") and np.all(v == 0):
            ts[k] = (0.05 * g.standard_normal(v.shape)).astype(np.float32)
            changed.append("bias")
    if changed:
        idx = os.path.join(d, "model.safetensors.index.json")
        if os.path.exists(idx):
            for f in set(json.load(open(idx))["weight_map"].values()):
                os.remove(os.path.join(d, f))
            os.remove(idx)
        st.save(os.path.join(d, "model.safetensors"), ts)
    return sorted(set(changed))


def routing_margin(model):
    """Smallest gap between the K-th and (K+1)-th choice score over tokens and MoE layers of the last
    forward (a small gap means fp32 vs fp64 may legitimately pick different experts)."""
    gap = float("inf")
    for moe in model.moe_layers():
        if moe.last_routing is None:
            continue
        _, choice = moe.last_routing
        K = moe.cfg.num_experts_per_tok
        if choice.shape[1] <= K:
            continue
        top = torch.topk(choice, K + 1, dim=-1).values
        finite = torch.isfinite(top[:, K])
        if finite.any():
            gap = min(gap, float((top[:, K - 1] - top[:, K])[finite].min()))
    return gap


def check_config(name, cfg, alpha, tmp, seed):
    print(f"config {name} (aux_alpha {alpha})")
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    cfg_path = os.path.join(d, "config.in.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=1)
    mdir = os.path.join(d, "model")
    inputs, targets = make_input(cfg, seed)
    B, T = inputs.shape
    inp = dict(B=B, T=T, inputs=inputs.reshape(-1).tolist(), targets=targets.reshape(-1).tolist(),
               mtp_lambda=0.3, aux_alpha=alpha)
    inp_path, out_path = os.path.join(d, "INPUT.json"), os.path.join(d, "OUT.safetensors")
    with open(inp_path, "w") as f:
        json.dump(inp, f)
    py = [sys.executable, os.path.join(ROOT, "tests", "ref", "deepseek_ref.py")]
    try:
        if CSIDE == "python":
            run(py + ["init", "--config", cfg_path, "--out", mdir, "--seed", str(seed)], "ref init")
        else:
            run([GRPO, "init", "--config", cfg_path, "--out", mdir, "--seed", str(seed)], "grpo init")
        changed = perturb_checkpoint(mdir, seed)
        try:
            ref_model = R.load(mdir, torch.float64)
        except Exception as e:  # noqa: BLE001
            result(False, f"{name}: load C checkpoint in the reference", f"-> {e}")
            return
        if CSIDE == "python":
            dt = run(py + ["dump", mdir, inp_path, out_path], "ref dump")
        else:
            dt = run([DUMP, mdir, inp_path, out_path], "tool_model_dump")
    except Exception as e:  # noqa: BLE001
        result(False, f"{name}: C side", f"-> {e}")
        return
    c = st.load(out_path)
    ref = R.run_with_grads(ref_model, torch.tensor(inputs), torch.tensor(targets), 0.3, alpha)
    margin = routing_margin(ref_model)
    bad = []

    def cmp(key, tol, mask=None):
        if key not in ref:
            return
        if key not in c:
            bad.append(f"{key}: missing from the dump")
            print(f"    {key:10s} MISSING from the dump")
            return
        a, b = np.asarray(c[key], np.float64), ref[key]
        if a.size != b.size:
            bad.append(f"{key}: shape {list(a.shape)} vs reference {list(b.shape)}")
            print(f"    {key:10s} SHAPE {list(a.shape)} vs reference {list(b.shape)}")
            return
        a = a.reshape(b.shape)
        if mask is not None:
            a, b = a[mask], b[mask]
        if not np.all(np.isfinite(a)):
            bad.append(f"{key}: NaN/Inf")
            print(f"    {key:10s} NaN/Inf in the C values")
            return
        e = nerr(a, b)
        flag = "" if e < tol else "  <-- FAIL"
        extra = f"  (C {a.ravel()[0]:.7f} ref {b.ravel()[0]:.7f})" if b.size == 1 else ""
        print(f"    {key:10s} err {e:.2e}{extra}{flag}")
        if e >= tol:
            bad.append(f"{key}: err {e:.2e}")

    cmp("logits", VAL_TOL)
    cmp("logprobs", VAL_TOL, targets >= 0)
    cmp("entropy", VAL_TOL)
    cmp("loss", VAL_TOL)
    cmp("mtp_loss", VAL_TOL)
    cmp("aux_loss", VAL_TOL)
    if "mtp_loss" in c and "mtp_loss" not in ref:
        bad.append("mtp_loss in the dump but the config has no MTP")
    # gradients
    rg = {k for k in ref if k.startswith("grad.")}
    cg = {k for k in c if k.startswith("grad.")}
    for k in sorted(rg - cg):
        bad.append(f"{k}: missing from the dump")
    for k in sorted(cg - rg):
        bad.append(f"{k}: in the dump but not a trained parameter of the reference")
    errs = []
    for k in sorted(rg & cg):
        a, b = np.asarray(c[k], np.float64), ref[k]
        if a.size != b.size:
            bad.append(f"{k}: shape {list(a.shape)} vs {list(b.shape)}")
            continue
        a = a.reshape(b.shape)
        if not np.all(np.isfinite(a)):
            bad.append(f"{k}: NaN/Inf")
            continue
        e = nerr(a, b)
        errs.append((e, k, float(np.abs(b).max())))
        if e >= GRAD_TOL:
            bad.append(f"{k}: err {e:.2e} (max|ref| {np.abs(b).max():.2e})")
        elif VERBOSE:
            print(f"      {k} err {e:.2e}")
    errs.sort(reverse=True)
    if errs:
        e, k, _ = errs[0]
        nfail = sum(1 for x in errs if x[0] >= GRAD_TOL)
        print(f"    grads      {len(errs)} compared, worst err {e:.2e} ({k[5:]}), {nfail} over {GRAD_TOL:g}"
              f"{'  <-- FAIL' if nfail else ''}")
    # gradient failures grouped by kind (layer / expert numbers as *) to make the pattern visible
    if bad:
        kinds = {}
        for e, k, _ in errs:
            kind = re.sub(r"\.(\d+)\.", ".*.", k[5:])
            kinds.setdefault(kind, []).append((e, k[5:]))
        failing = {kd: v for kd, v in kinds.items() if any(e >= GRAD_TOL for e, _ in v)}
        other = [b for b in bad if not re.match(r"grad\..*: err ", b)]
        for line in other[:30]:
            print(f"      {line}")
        for kd, v in sorted(failing.items(), key=lambda kv: -max(e for e, _ in kv[1])):
            nf = sum(1 for e, _ in v if e >= GRAD_TOL)
            e, k = max(v)
            print(f"      grad {kd}: {nf}/{len(v)} over, worst {e:.2e} ({k})")
        if margin < 1e-5:
            print(f"      note: routing near-tie (min top-K gap {margin:.1e}): fp32 may pick other experts")
    extra = f"dump {dt:.2f}s, routing gap {margin:.1e}" + (f", perturbed {'+'.join(changed)}" if changed else "")
    result(not bad, f"{name}", f"({extra})")


def main():
    t0 = time.time()
    base, where = base_config()
    print(f"base config: {where}; C side: {'python reference (fp32) [PARITY_CSIDE=python]' if CSIDE == 'python' else './grpo + build/tests/tool_model_dump'}")
    check_reference(base)
    missing = [p for p in (GRPO, DUMP) if CSIDE != "python" and not os.path.exists(p)]
    if missing:
        result(False, "C side", f"-> missing {', '.join(os.path.relpath(p, ROOT) for p in missing)} "
                                f"(build: make grpo {os.path.relpath(DUMP, ROOT)})")
    else:
        tmp = tempfile.mkdtemp(prefix="parity_")
        try:
            for i, (name, cfg, alpha) in enumerate(variants(base)):
                check_config(name, cfg, alpha, tmp, 100 + i)
        finally:
            if os.environ.get("KEEP") == "1":
                print(f"kept {tmp}")
            else:
                shutil.rmtree(tmp, ignore_errors=True)
    print(f"({time.time() - t0:.1f}s)")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
