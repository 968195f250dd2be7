"""Token ids of `grpo tokenize` against the JavaScript port of Hugging Face tokenizers (DeepSeek-V3 and
Qwen3 tokenizer.json) on every text field of the data sets in $DATA: GSM8K train and test (question,
answer), MATH-500 (problem, solution, answer), MBPP (text, code, tests), HumanEval (prompt, solution,
test). Run by `make check-data`.
"""
import gzip
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref", "tokenizer"))
import parity  # noqa: E402

FIELDS = ["question", "answer", "problem", "solution", "text", "code", "prompt", "canonical_solution", "test", "test_list"]


def texts_from(path):
    opener = gzip.open if path.endswith(".gz") else open
    out = []
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            o = json.loads(line)
            for k in FIELDS:
                v = o.get(k)
                if isinstance(v, str):
                    out.append(v)
                elif isinstance(v, list):
                    out.append("\n".join(x for x in v if isinstance(x, str)))
    return out


if __name__ == "__main__":
    data = os.environ.get("DATA", os.path.join(parity.ROOT, "..", "shared", "data"))
    names = ["gsm8k_train.jsonl", "gsm8k_test.jsonl", "math500_test.jsonl", "mbpp.jsonl", "HumanEval.jsonl.gz"]
    texts = []
    for n in names:
        p = os.path.join(data, n)
        if os.path.exists(p):
            texts += texts_from(p)
        else:
            print("missing %s" % p)
    sys.exit(parity.main_with(texts, "data sets in %s" % data))
