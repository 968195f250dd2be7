"""Policy benchmark: grpo.c's CPU model against the PyTorch reference (tests/ref/deepseek_ref.py, float32),
both on 2 threads. Training step = forward + loss (incl. MTP) + backward + AdamW step; forward-only = no_grad.
Each side runs in its own subprocess, so peak RSS (wait4 rusage maxrss) is per side.

usage: python3 bench/bench_policy.py [BUILD_DIR]     (env QUICK=1: tiny only)
C side: BUILD_DIR/bench/tool_policy_bench --config CFG --B b --T t --threads 2 --json, which prints one JSON
line {"train_tok_s", "fwd_tok_s", "peak_rss_mb", "sgemm_peak_gflops", "train_gflops"}.
FLOPs per trained token ~ 6 * active matmul params (+ attention: 3 * 2*H*T*(Dq+Dv), causal counted in full);
the limit is the machine's sgemm peak on 2 threads, measured here with torch (and by the C tool, if given).
"""
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"
THREADS = 2
CASES = [("tiny", "configs/model/tiny.json", 8, 64), ("small", "configs/model/small.json", 4, 128)]


# ----------------------------------------------------------------------------------------------------------
# FLOP model


def flops_per_token(cfg, T):
    """(train FLOPs per token, forward FLOPs per token) for the main model + MTP (MTP sees T-1 of T tokens)."""
    C, H, V = cfg["hidden_size"], cfg["num_attention_heads"], cfg["vocab_size"]
    Dn, Dr, Dv, R = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"], cfg["kv_lora_rank"]
    Lq = cfg.get("q_lora_rank")
    Dq = Dn + Dr
    attn = (C * Lq + Lq * H * Dq if Lq else C * H * Dq) + C * (R + Dr) + R * H * (Dn + Dv) + H * Dv * C

    def ffn(i):
        E = cfg.get("n_routed_experts", 0)
        moe = E > 0 and i >= cfg.get("first_k_dense_replace", 0) and i % cfg.get("moe_layer_freq", 1) == 0
        if not moe:
            return 3 * C * cfg["intermediate_size"]
        Im = cfg["moe_intermediate_size"]
        return 3 * C * Im * (cfg["num_experts_per_tok"] + cfg.get("n_shared_experts", 0)) + C * E

    L = cfg["num_hidden_layers"]
    main = sum(attn + ffn(i) for i in range(L)) + C * V
    attn_tok = 2 * H * T * (Dq + Dv) * L  # per token, forward: scores + P.V
    fwd = 2 * main + attn_tok
    if cfg.get("num_nextn_predict_layers", 0):
        mtp = 2 * C * C + attn + ffn(L) + C * V
        frac = (T - 1) / T
        fwd += frac * (2 * mtp + 2 * H * (T - 1) * (Dq + Dv))
    return 3 * fwd, fwd


# ----------------------------------------------------------------------------------------------------------
# worker (subprocess): one measurement of the torch reference


def worker(cfg_path, B, T, mode):
    import torch
    torch.set_num_threads(THREADS)
    sys.path.insert(0, os.path.join(ROOT, "tests", "ref"))
    import deepseek_ref as R
    with open(cfg_path) as f:
        cfg = json.load(f)
    model = R.init_random(cfg, seed=0)  # float32
    g = torch.Generator().manual_seed(0)
    inputs = torch.randint(0, cfg["vocab_size"], (B, T), generator=g)
    targets = torch.cat([inputs[:, 1:], torch.randint(0, cfg["vocab_size"], (B, 1), generator=g)], 1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)

    def step():
        if mode == "train":
            opt.zero_grad(set_to_none=True)
            out = model(inputs, targets, mtp_lambda=0.3, aux_alpha=0.0)
            out["loss"].backward()
            opt.step()
        else:
            with torch.no_grad():
                model(inputs, targets, mtp_lambda=0.3, aux_alpha=0.0)

    step()  # warm-up
    n, t0 = 0, time.perf_counter()
    while n < 2 or time.perf_counter() - t0 < 1.5:
        step()
        n += 1
        if n >= 50:
            break
    dt = (time.perf_counter() - t0) / n
    print(json.dumps({"tok_s": B * T / dt, "step_ms": dt * 1e3, "steps": n}))


def torch_sgemm_peak():
    import torch
    torch.set_num_threads(THREADS)
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(3):
            a @ b
        best = max(best, 3 * 2 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return best


# ----------------------------------------------------------------------------------------------------------
# driver


def run_measured(cmd, env=None):
    """Runs cmd; returns (last JSON line of stdout or None, peak RSS MB of that process, stderr tail)."""
    import tempfile
    with tempfile.TemporaryFile("w+") as ef:
        p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=ef, text=True, env=env)
        out = p.stdout.read()
        p.stdout.close()
        _, status, ru = os.wait4(p.pid, 0)
        ef.seek(0)
        err = ef.read()
    p.returncode = os.waitstatus_to_exitcode(status)
    js = None
    for line in out.splitlines()[::-1]:
        line = line.strip()
        if line.startswith("{"):
            try:
                js = json.loads(line)
                break
            except ValueError:
                pass
    if p.returncode != 0:
        js = None
    return js, ru.ru_maxrss / 1024.0, (err.strip().splitlines() or [""])[-1]


def fmt(x, unit=""):
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    return f"{x:,.0f}{unit}" if abs(x) >= 100 else f"{x:.2f}{unit}" if abs(x) >= 1 else f"{x:.3f}{unit}"


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    tool = os.path.join(ROOT, build, "bench", "tool_policy_bench")
    cases = CASES[:1] if os.environ.get("QUICK") == "1" else CASES
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), OPENBLAS_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS))
    # torch is never imported in this process: a child's maxrss starts at its parent's RSS at fork
    pk = run_measured([PY, __file__, "--peak"], env)[0]
    peak = pk["gflops"] if pk else 0.0
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cpus, {THREADS} threads used, load average {load:.1f}"
          f"{' (busy: timings are noisy)' if load > 1.5 * THREADS else ''}; "
          f"torch sgemm peak (2048^3, fp32): {peak:.1f} GFLOP/s", flush=True)
    have_c = os.path.exists(tool)
    if not have_c:
        print(f"C side missing: {os.path.relpath(tool, ROOT)} not built (make {os.path.relpath(tool, ROOT)}); torch side only", flush=True)
    rows = []
    for name, cfg_rel, B, T in cases:
        cfg_path = os.path.join(ROOT, cfg_rel)
        if not os.path.exists(cfg_path):
            print(f"{name}: {cfg_rel} missing, skipped")
            continue
        with open(cfg_path) as f:
            cfg = json.load(f)
        f_train, f_fwd = flops_per_token(cfg, T)
        tt, rss_t, t_err = run_measured([PY, __file__, "--worker", cfg_path, str(B), str(T), "train"], env)
        tf, _, f_err = run_measured([PY, __file__, "--worker", cfg_path, str(B), str(T), "fwd"], env)
        if tt is None or tf is None:
            print(f"{name}: torch worker failed: {t_err or f_err}")
        c, rss_c, c_err = (None, None, "")
        if have_c:
            c, rss_c, c_err = run_measured([tool, "--config", cfg_path, "--B", str(B), "--T", str(T),
                                            "--threads", str(THREADS), "--json"], env)
            if c is None:
                print(f"{name}: tool_policy_bench failed: {c_err}")
        label = f"{name} B={B} T={T}"
        ct = c.get("train_tok_s") if c else None
        cf = c.get("fwd_tok_s") if c else None
        pt = tt["tok_s"] if tt else None
        pf = tf["tok_s"] if tf else None
        c_rss = rss_c if c else None  # kernel maxrss of the process, as for PyTorch (C's own figure below)
        c_peak = c.get("sgemm_peak_gflops") if c else None
        lim = max(peak, c_peak or 0)

        def ratio(a, b):
            return a / b if a and b else None

        def frac(tok_s, fl):
            return f"{100 * tok_s * fl / 1e9 / lim:.1f}%" if tok_s else "-"

        rows.append((label, "train tok/s", ct, pt, ratio(ct, pt), frac(ct, f_train), frac(pt, f_train)))
        rows.append((label, "fwd tok/s", cf, pf, ratio(cf, pf), frac(cf, f_fwd), frac(pf, f_fwd)))
        rows.append((label, "train GFLOP/s", ct and ct * f_train / 1e9, pt and pt * f_train / 1e9,
                     ratio(ct, pt), "", ""))
        if c and c.get("train_gflops") is not None:
            rows.append((label, "train GFLOP/s (C's count)", c["train_gflops"], None, None, "", ""))
        rows.append((label, "peak RSS MB (train)", c_rss, rss_t, ratio(c_rss, rss_t), "", ""))
        if c and c.get("peak_rss_mb") is not None:
            rows.append((label, "peak RSS MB (C's own figure)", c["peak_rss_mb"], None, None, "", ""))
        print(f"{label}: {f_train / 1e6:.1f} MFLOP/token trained, {f_fwd / 1e6:.1f} forward")
    hdr = ("config", "metric", "grpo.c", "PyTorch", "ratio", "grpo.c %peak", "PyTorch %peak")
    w = [max(len(hdr[i]), *(len(fmt(r[i])) for r in rows)) if rows else len(hdr[i]) for i in range(len(hdr))]
    print("  ".join(h.ljust(w[i]) for i, h in enumerate(hdr)))
    for r in rows:
        print("  ".join(fmt(v).ljust(w[i]) for i, v in enumerate(r)))
    print(f"peak = max(torch sgemm {peak:.1f}, C tool's sgemm) GFLOP/s; ratio = grpo.c / PyTorch "
          f"(tok/s: higher is better for grpo.c; RSS: lower is)")
    if not have_c:
        print("grpo.c: missing (build/bench/tool_policy_bench)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    elif len(sys.argv) > 1 and sys.argv[1] == "--peak":
        print(json.dumps({"gflops": torch_sgemm_peak()}))
    else:
        main()
