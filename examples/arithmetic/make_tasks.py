#!/usr/bin/env python3
"""The demo's tasks without running the demo: OUT/train.jsonl and OUT/heldout.jsonl, byte for byte the files
`grpo demo --seed S` writes into its directory (same generator, same split).

  python3 examples/arithmetic/make_tasks.py --out runs/arithmetic [--seed 1]

It mirrors datasets/synth.c (synth_arithmetic: 2-digit sums, column-by-column R1 traces) and
datasets/sampler.c (splitmix64, Lemire's bounded draw, tasks_split: a task is held out when the salted
FNV-1a hash of its prompt falls below the fraction), with the demo's sizes (cli/demo.c): 8000 + 4 * 200
tasks, a held-out fraction of 800/8800 salted with the seed, the first 200 held-out tasks kept. Every
prompt on the held-out side, repeats included, is off the training side: no held-out sum is ever trained on.
Standard library only.
"""
import argparse
import json
import os

M64 = (1 << 64) - 1


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


class Rng:  # ds_rng_next / ds_rng_below
    def __init__(self, seed):
        self.s = seed & M64

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & M64
        return mix64(self.s)

    def below(self, n):
        m = self.next() * n
        if (m & M64) < n:
            threshold = ((1 << 64) - n) % n
            while (m & M64) < threshold:
                m = self.next() * n
        return m >> 64


def fnv1a(h, s):
    for c in s.encode():
        h = ((h ^ c) * 0x100000001B3) & M64
    return ((h ^ 0xFF) * 0x100000001B3) & M64


def trace(a, b, digits, result):  # addition only: "x+y+c=s cC" per column, least significant first
    lines, c = ["<think>"], 0
    for _ in range(digits):
        x, y = a % 10, b % 10
        t = x + y + c
        lines.append(f"{x}+{y}+{c}={t % 10} c{t // 10}")
        c, a, b = t // 10, a // 10, b // 10
    return "\n".join(lines) + f"\n</think>\n<answer>{result}</answer>"


def arithmetic(n, seed, digits=2):
    rng, lo, hi = Rng(seed), 10 ** (digits - 1), 10 ** digits - 1
    for i in range(n):
        rng.below(1)  # the operator, drawn from "+"
        a = lo + rng.below(hi - lo + 1)
        b = lo + rng.below(hi - lo + 1)
        yield {"id": f"arithmetic/d{digits}/s{seed}/{i}", "prompt": f"What is {a}+{b}?", "answer": str(a + b),
               "a": a, "op": "+", "b": b, "trace": trace(a, b, digits, a + b)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="directory for train.jsonl and heldout.jsonl")
    ap.add_argument("--seed", type=int, default=1, help="the demo's --seed (default 1)")
    ap.add_argument("--train", type=int, default=8000, help="training tasks before the split (default 8000)")
    ap.add_argument("--heldout", type=int, default=200, help="held-out tasks kept (default 200)")
    args = ap.parse_args()
    n = args.train + 4 * args.heldout
    frac = 4.0 * args.heldout / n
    train, heldout = [], []
    for t in arithmetic(n, args.seed):
        u = (mix64(fnv1a(0xCBF29CE484222325, t["prompt"]) ^ args.seed) >> 11) * 2.0 ** -53
        (heldout if u < frac else train).append(t)
    heldout = heldout[: args.heldout]
    os.makedirs(args.out, exist_ok=True)
    for name, tasks in (("train", train), ("heldout", heldout)):
        with open(os.path.join(args.out, name + ".jsonl"), "w") as f:
            for t in tasks:
                f.write(json.dumps(t, separators=(",", ":")) + "\n")
    print(f"{args.out}: {len(train)} training and {len(heldout)} held-out tasks, e.g. \"{train[0]['prompt']}\" "
          f"-> {train[0]['answer']}")


if __name__ == "__main__":
    main()
