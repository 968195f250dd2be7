"""Rollout benchmark: decode throughput of grpo.c's rollout engine (absorbed MLA over the paged latent cache)
against (a) our own model recomputing every sequence without a cache and (b) the PyTorch reference
(tests/ref/deepseek_ref.py, float32) decoding with a standard expanded KV cache (tests/ref/deepseek_decode_ref.py:
per layer k (B,H,T,Dq), v (B,H,T,Dv), preallocated, eager attention). All on 2 threads, same shapes, same
random weights (tool_rollout_bench --save; std 0.02), temperature 1, a fixed number of new tokens. PyTorch runs
with OMP_WAIT_POLICY=PASSIVE, its fastest setting on this machine (see main()).

usage: python3 bench/bench_rollout.py [BUILD_DIR]
  env QUICK=1: tiny only; FULL=1: no PyTorch rows skipped; BENCH_THREADS=n: threads per side (default 2);
  BENCH_BATCHES=64,256: only those batch sizes; TORCH_OMP_WAIT_POLICY (default PASSIVE: see main()).

Shapes: B sequences decoding at once = B/G prompts of P tokens x G samples (G = min(B, 8), GRPO's default
group size; one extra row per config has G = 1, i.e. B distinct prompts). Ours prefills each prompt once and
shares its cache pages among the G samples (the engine's design); PyTorch prefills each prompt once too (in
chunks of at most 16 prompts) and copies its cache rows G times. There is no stop id (ours: a tokenizer
without eos; the tool checks that every completion has exactly NEW tokens).

Figures: decode tok/s = tokens fed by decode steps / time of those steps, forward + lm_head, sampling
excluded (ours: RolloutStats.decode_tokens / decode_s); e2e tok/s = generated tokens / time of the whole
generation (prefill, decode, sampling; ours: the wall time of rollout_generate; PyTorch: prefill + first draw
+ decode steps + their draws). The machine is shared, so each side repeats its timed part up to REPS times
while under BUDGET_S seconds and keeps the fastest (ours: whole rollout_generate calls after a warm-up call;
PyTorch: the decode steps after one prefill). Where a row says "est", the PyTorch decode was measured over 8
steps at the start and 8 at the end of the NEW (cache length moved on in between; a decode step's time is
linear in the cache length, so their mean is the mean step time), and (a) is always an estimate: see
tool_rollout_bench.c (the prompt forward, two decode steps, the middle and the final length, Simpson's rule;
run at batch min(B, 4), the per-token rate of a whole-prefix forward taken as batch-independent).
Before timing: PyTorch's cached decode must give its full forward's logits (assert), and its greedy tokens
must equal ours from the same weights (assert; an exact near-tie in fp32 is reported, not failed).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"
THREADS = int(os.environ.get("BENCH_THREADS", "2"))  # 2 = the machine; 1 = a compute-only view
NEW = 64
BATCHES = [int(b) for b in os.environ.get("BENCH_BATCHES", "1,16,64,256").split(",")]
PROMPTS = [128, 512]
TARGET = 5.0  # ours / PyTorch decode tok/s at batch 64
CONFIGS = [("tiny", "configs/model/tiny.json"), ("small", "configs/model/small.json")]
SKIP_TORCH = {("small", 256, 512)}  # the slowest PyTorch combination (FULL=1 runs it)
NOCACHE_BATCH = 4
REPS, BUDGET_S = 3, 6.0  # timed runs per measurement (the fastest kept) while under BUDGET_S seconds


def group_size(B):
    return min(B, 8)


# ----------------------------------------------------------------------------------------------------------
# FLOP model of one decoded token at cache length T (matmuls and attention; routed experts at K of E)


def decode_flops(cfg, T, absorbed):
    C, H, V = cfg["hidden_size"], cfg["num_attention_heads"], cfg["vocab_size"]
    Dn, Dr, Dv, R = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"], cfg["kv_lora_rank"]
    Lq, Dq, W = cfg.get("q_lora_rank"), Dn + Dr, R + Dr
    q = C * Lq + Lq * H * Dq if Lq else C * H * Dq
    if absorbed:  # W_UK folded into the query, W_UV after the latent-weighted sum; scores over W, sum over R
        attn = q + C * W + H * Dn * R + H * R * Dv + H * Dv * C + H * T * (W + R)
    else:  # kv_b expands the new token's latent; scores over Dq, sum over Dv
        attn = q + C * W + R * H * (Dn + Dv) + H * Dv * C + H * T * (Dq + Dv)

    def ffn(i):
        E = cfg.get("n_routed_experts", 0)
        if not (E > 0 and i >= cfg.get("first_k_dense_replace", 0) and i % cfg.get("moe_layer_freq", 1) == 0):
            return 3 * C * cfg["intermediate_size"]
        K = cfg["num_experts_per_tok"] + cfg.get("n_shared_experts", 0)
        return 3 * C * cfg["moe_intermediate_size"] * K + C * E

    return 2 * (sum(attn + ffn(i) for i in range(cfg["num_hidden_layers"])) + C * V)


# ----------------------------------------------------------------------------------------------------------
# PyTorch workers (subprocesses)


def torch_setup():
    import torch
    torch.set_num_threads(THREADS)
    sys.path.insert(0, os.path.join(ROOT, "tests", "ref"))
    import deepseek_ref as R
    import deepseek_decode_ref as D
    return torch, R, D


def worker_check(model_dir, greedy_json):
    """Cached decode == full forward (assert), then greedy tokens == ours."""
    torch, R, D = torch_setup()
    model = R.load(model_dir, torch.float32)
    with torch.no_grad():
        err = D.check_against_full(model, B=2, T_prompt=16, n_new=8)
    assert err < 1e-4, f"PyTorch cached decode differs from its full forward: {err:.2e}"
    with open(greedy_json) as f:
        g = json.load(f)
    prompts = torch.tensor(g["prompts"], dtype=torch.long)
    ours = torch.tensor(g["tokens"], dtype=torch.long)
    ref, logits = D.greedy(model, prompts, ours.shape[1])
    same = int((ref == ours).all(1).sum())
    ties = []
    for b in range(ours.shape[0]):
        bad = (ref[b] != ours[b]).nonzero()
        if len(bad):
            t = int(bad[0])
            lg = logits[b, t]
            gap = float(lg[ref[b, t]] - lg[ours[b, t]])
            rel = gap / float(lg.abs().max())
            assert rel < 1e-5, (f"greedy tokens differ: row {b} step {t}: PyTorch {int(ref[b, t])}, ours "
                                f"{int(ours[b, t])}, logit gap {gap:.3e} (not a near-tie)")
            ties.append(f"row {b} step {t}: near-tie, relative logit gap {rel:.1e}")
    print(json.dumps({"cache_vs_full": err, "rows": ours.shape[0], "steps": ours.shape[1], "rows_equal": same,
                      "ties": ties, "expanded_token_bytes": D.KVCache(model, 1, 1).nbytes_per_token()}))


def worker_decode(model_dir, B, G, P, n_new, capped):
    torch, R, D = torch_setup()
    model = R.load(model_dir, torch.float32)
    V = model.cfg.vocab_size
    NP = B // G
    gen = torch.Generator().manual_seed(0)
    prompts = torch.randint(0, V, (NP, P), generator=gen)

    def sample(logits):
        return torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)[:, 0]

    with torch.inference_mode():
        c = D.KVCache(model, 1, 24)  # warm-up
        D.forward_cached(model, prompts[:1, :16], c, last_only=True)
        D.forward_cached(model, prompts[:1, :1], c, last_only=True)
        t0 = time.perf_counter()
        cache = D.KVCache(model, NP, P + n_new)
        first = []
        for i in range(0, NP, 16):  # prefill, at most 16 prompts at once
            sub = D.KVCache.__new__(D.KVCache)
            sub.k, sub.v = [t[i:i + 16] for t in cache.k], [t[i:i + 16] for t in cache.v]
            sub.len, sub.cos, sub.sin = 0, cache.cos, cache.sin
            first.append(D.forward_cached(model, prompts[i:i + 16], sub, last_only=True))
        cache.len = P
        logits = torch.cat(first)
        if G > 1:
            cache = cache.repeat_interleave(G)
            logits = logits.repeat_interleave(G, 0)
        t_prefill = time.perf_counter() - t0
        ts = time.perf_counter()
        nxt0 = sample(logits)
        t_sample0 = time.perf_counter() - ts
        steps = list(range(1, n_new))
        if capped:  # 8 steps at the start and 8 at the end of the NEW
            steps = steps[:8] + steps[-8:]
        best_dec = best_smp = float("inf")
        reps = spent = 0
        while reps == 0 or (reps < REPS and spent < BUDGET_S):  # the decode steps again, the fastest kept
            nxt, t_dec, t_smp = nxt0, 0.0, 0.0
            for k in steps:
                cache.len = P + k - 1  # the fed token's position (a jump only where steps were left out)
                t1 = time.perf_counter()
                logits = D.forward_cached(model, nxt[:, None], cache, last_only=True)
                t2 = time.perf_counter()
                nxt = sample(logits)
                t_dec += t2 - t1
                t_smp += time.perf_counter() - t2
            best_dec, best_smp = min(best_dec, t_dec), min(best_smp, t_smp)
            spent += t_dec + t_smp
            reps += 1
        scale = (n_new - 1) / len(steps)
        wall = t_prefill + t_sample0 + (best_dec + best_smp) * scale
    t_dec = best_dec
    print(json.dumps({"decode_tok_s": B * len(steps) / t_dec, "e2e_tok_s": B * n_new / wall, "prefill_s": t_prefill,
                      "decode_s_measured": t_dec, "steps_measured": len(steps), "capped": capped, "reps": reps}))


# ----------------------------------------------------------------------------------------------------------
# driver


def run_json(cmd, env, timeout=900):
    """Runs cmd; returns (last JSON line of stdout or None, stderr tail)."""
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s"
    js = None
    for line in p.stdout.splitlines()[::-1]:
        if line.strip().startswith("{"):
            try:
                js = json.loads(line)
                break
            except ValueError:
                pass
    err = (p.stderr.strip().splitlines() or [""])[-1]
    return (js if p.returncode == 0 else None), err


def fmt(x):
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if isinstance(x, int):
        return str(x)
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    tool = os.path.join(ROOT, build, "bench", "tool_rollout_bench")
    if not os.path.exists(tool):
        print(f"{os.path.relpath(tool, ROOT)} not built (make bench); skipped")
        return 0
    configs = CONFIGS[:1] if os.environ.get("QUICK") == "1" else CONFIGS
    full = os.environ.get("FULL") == "1"
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), OPENBLAS_NUM_THREADS=str(THREADS),
               MKL_NUM_THREADS=str(THREADS))
    # PyTorch's own best setting here: Debian's torch runs OpenBLAS's pthread build beside its OpenMP pool, and
    # with the default (active) wait policy the idle OpenMP workers spin on the cores OpenBLAS's threads need
    # (3-5x slower decode at batch 64). Ours (one OpenMP runtime, OpenBLAS's OpenMP build) is faster with the
    # default, so it keeps it.
    tenv = dict(env, OMP_WAIT_POLICY=os.environ.get("TORCH_OMP_WAIT_POLICY", "PASSIVE"))
    pk, _ = run_json([PY, __file__, "--peak"], tenv)
    peak = pk["gflops"] if pk else None
    loads = [os.getloadavg()[0]]
    print(f"machine: {os.cpu_count()} cpus, {THREADS} threads used, load average {loads[0]:.1f} at start; "
          f"torch sgemm peak (2048^3 fp32): {fmt(peak)} GFLOP/s; {NEW} new tokens per sequence, temperature 1; "
          f"PyTorch with OMP_WAIT_POLICY={tenv['OMP_WAIT_POLICY']}", flush=True)
    tmp = tempfile.mkdtemp(prefix="grpo-bench-rollout-")
    rows, notes, target = [], [], []
    t_start = time.time()
    try:
        for name, cfg_rel in configs:
            with open(os.path.join(ROOT, cfg_rel)) as f:
                cfg = json.load(f)
            cfg_path = os.path.join(tmp, f"{name}.json")
            need = max(PROMPTS) + NEW
            if cfg.get("max_position_embeddings", 0) < need:  # a bound only: YaRN scales by its own original length
                notes.append(f"{name}: max_position_embeddings raised from {cfg['max_position_embeddings']} to {need} "
                             f"for P={max(PROMPTS)} + {NEW} new tokens (no effect on the math: a bound only)")
                cfg["max_position_embeddings"] = need
            with open(cfg_path, "w") as f:
                json.dump(cfg, f)
            mdir = os.path.join(tmp, name)
            base = [tool, "--threads", str(THREADS), "--config", cfg_path]
            js, err = run_json(base + ["--save", mdir], env)
            if not os.path.exists(os.path.join(mdir, "model.safetensors")):
                print(f"{name}: saving the model failed: {err}")
                continue
            # checks: PyTorch cached == full, greedy tokens equal ours
            gpath = os.path.join(tmp, f"{name}-greedy.json")
            g, err = run_json(base + ["--mode", "greedy", "--B", "4", "--P", "32", "--new", "16"], env)
            if g is None:
                print(f"{name}: greedy run failed: {err}")
                return 1
            with open(gpath, "w") as f:
                json.dump(g, f)
            chk, err = run_json([PY, __file__, "--check", mdir, gpath], tenv)
            if chk is None:
                print(f"{name}: CHECK FAILED: {err}")
                return 1
            print(f"{name}: PyTorch cached decode vs its full forward: max rel err {chk['cache_vs_full']:.1e} "
                  f"(< 1e-4); "
                  f"greedy, {chk['rows']} prompts x {chk['steps']} tokens: {chk['rows_equal']}/{chk['rows']} rows "
                  f"identical to ours{'; ' + '; '.join(chk['ties']) if chk['ties'] else ''}", flush=True)
            shapes = [(B, group_size(B), P) for P in PROMPTS for B in BATCHES]
            shapes += [(64, 1, PROMPTS[0])] if 64 in BATCHES else []
            nocache = {}
            for B, G, P in shapes:
                ours, err = run_json(base + ["--mode", "engine", "--B", str(B), "--G", str(G), "--P", str(P),
                                             "--new", str(NEW), "--reps", str(REPS), "--budget", str(BUDGET_S)], env)
                if ours is None:
                    print(f"{name} B={B} P={P}: engine failed: {err}")
                nb = min(B, NOCACHE_BATCH)
                if (nb, P) not in nocache:
                    nocache[(nb, P)], err = run_json(base + ["--mode", "nocache", "--B", str(nb), "--Bc", str(nb),
                                                             "--P", str(P), "--new", str(NEW)], env)
                    if nocache[(nb, P)] is None:
                        print(f"{name} P={P}: no-cache run failed: {err}")
                nc = nocache[(nb, P)]
                pt, note = None, ""
                if (name, B, P) in SKIP_TORCH and not full:
                    note = "PyTorch skipped (slow; FULL=1)"
                else:
                    capped = B >= 64
                    pt, err = run_json([PY, __file__, "--decode", mdir, str(B), str(G), str(P), str(NEW),
                                        "1" if capped else "0"], tenv)
                    if pt is None:
                        note = f"PyTorch failed: {err}"
                    elif capped:
                        note = "PyTorch est (16 of 63 steps)"
                loads.append(os.getloadavg()[0])
                od, pd = (ours or {}).get("decode_tok_s"), (pt or {}).get("decode_tok_s")
                oe, pe = (ours or {}).get("e2e_tok_s"), (pt or {}).get("e2e_tok_s")
                ncd = (nc or {}).get("decode_tok_s")
                Tm = P + NEW / 2

                def pct(tok_s, absorbed):
                    if not (tok_s and peak):
                        return "-"
                    return f"{100 * tok_s * decode_flops(cfg, Tm, absorbed) / 1e9 / peak:.1f}%"

                ratio = od / pd if od and pd else None
                rows.append((name, B, G, P, od, oe, ncd, pd, pe, ratio, oe / pe if oe and pe else None,
                             od / ncd if od and ncd else None, pct(od, True), pct(pd, False), note))
                if B == 64 and ratio is not None:
                    # the most ours could reach: every FLOP of the absorbed decode at the sgemm peak
                    ceil = peak and f", ceiling {peak * 1e9 / decode_flops(cfg, Tm, True) / pd:.1f}x at the sgemm peak"
                    target.append(f"{name} P={P} G={G}: {ratio:.1f}x {'ok' if ratio >= TARGET else 'BELOW'}{ceil or ''}")
                o = ours or {}
                print(f"  {name} B={B} G={G} P={P}: ours {fmt(od)} / {fmt(oe)} tok/s (prefill "
                      f"{fmt(o.get('prefill_s'))} s, decode {fmt(o.get('decode_s'))} s, sample "
                      f"{fmt(o.get('sample_s'))} s, best of {o.get('reps')}), "
                      f"no-cache {fmt(ncd)}, PyTorch {fmt(pd)} / {fmt(pe)} (best of {(pt or {}).get('reps')}); "
                      f"load {loads[-1]:.1f}", flush=True)
            lat = ours["latent_token_bytes"] if ours else None
            exp = ours["expanded_token_bytes"] if ours else None
            assert exp is None or exp == chk["expanded_token_bytes"], (exp, chk["expanded_token_bytes"])
            notes.append(f"{name}: cache bytes per token: ours {lat} (L*(R+Dr) fp32), expanded {exp} (L*H*(Dq+Dv) "
                         f"fp32, = PyTorch's KVCache) : {exp / lat:.1f}x smaller" if lat else f"{name}: -")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    hdr = ("config", "B", "G", "P", "ours dec tok/s", "ours e2e tok/s", "(a) no-cache dec tok/s (est)",
           "(b) PyTorch dec tok/s", "PyTorch e2e tok/s", "dec ours/PyT", "e2e ours/PyT", "ours/(a)", "ours %peak",
           "PyT %peak", "note")
    w = [max(len(hdr[i]), *(len(fmt(r[i])) for r in rows)) if rows else len(hdr[i]) for i in range(len(hdr))]
    print("  ".join(h.ljust(w[i]) for i, h in enumerate(hdr)))
    for r in rows:
        print("  ".join(fmt(v).ljust(w[i]) for i, v in enumerate(r)))
    for n in notes:
        print(n)
    print(f"B sequences decode at once: B/G prompts x G samples; {NEW} new tokens; dec = decode steps only "
          f"(forward + lm_head), e2e = whole generation incl. prefill and sampling; (a) = model_forward_hidden over "
          f"the whole prefix every step, measured at batch min(B,{NOCACHE_BATCH}) (Simpson estimate); "
          f"%peak = FLOPs of a decoded token at cache length P+{NEW // 2} (absorbed form for ours, expanded for "
          f"PyTorch) x tok/s / sgemm peak")
    print(f"target: ours >= {TARGET:.0f}x PyTorch decode tok/s at batch 64: " + ("; ".join(target) or "not measured"))
    print(f"load average during the run: {min(loads):.1f} .. {max(loads):.1f} (2 cores; above 2 other work shares "
          f"the machine and timings are noisy); {time.time() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--check":
        worker_check(sys.argv[2], sys.argv[3])
    elif len(sys.argv) > 1 and sys.argv[1] == "--decode":
        worker_decode(sys.argv[2], *(int(x) for x in sys.argv[3:8]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--peak":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import bench_policy
        bench_policy.THREADS = THREADS
        print(json.dumps({"gflops": bench_policy.torch_sgemm_peak()}))
    else:
        sys.exit(main())
