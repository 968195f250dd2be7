"""Token ids of `grpo tokenize` against the JavaScript port of Hugging Face tokenizers on the real
DeepSeek-V3 and Qwen3 tokenizer.json files, on a generated corpus of a few thousand varied texts (code,
LaTeX, Chinese and Japanese, emoji and combining sequences, whitespace runs, numbers of every length,
special tokens inside text, contractions, random Unicode, empty input). Every id must be identical and
decode(encode(x)) == x. Deterministic (fixed seed). Invalid UTF-8 cannot pass through the JavaScript
side; tests/test_tokenizer.c covers it.
"""
import glob
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref", "tokenizer"))
import parity  # noqa: E402

R = random.Random(1234)

CJK = ["我们今天学习数学。", "这个问题的答案是四十二。", "机器学习和强化学习", "北京欢迎你！", "他说：“你好，世界”。",
       "これは日本語の文章です。", "カタカナとひらがなを混ぜる。", "東京タワーは３３３メートルです。", "ｶﾀｶﾅ半角",
       "한국어 문장도 있습니다.", "漢字かな交じり文、句読点。", "（括弧）【記号】「引用」『二重』"]
EMOJI = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇯🇵", "🇺🇸", "❤️", "✨", "🧑🏿‍💻", "1️⃣", "🤖", "🫠", "☕", "⚡️"]
COMBINING = ["e\u0301", "a\u0308", "n\u0303", "o\u0302\u0323", "\u1100\u1161\u11a8", "क्षि", "ü", "Å", "ﬁ",
             "Ⅻ", "㎏", "①", "ｆｕｌｌｗｉｄｔｈ", "x\u0336y\u0336", "\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
             "עִבְרִית", "ελληνικά", "Русский текст", "ǅ", "ẞ", "İstanbul", "ΣΑΣ", "ſ's", "\u212a's"]
SPACES = [" ", "  ", "\t", "\n", "\r\n", "\n\n", "\u00a0", "\u3000", "\u2003", "\u200b", " \t ", "\n \n", "    ",
          "\u0085", "\ufeff", "\u180e", "\u2028", "\x0b", "\x0c", " \u00a0 "]
WORDS = ("the of and to in is that for it as with was on be by at this are from or have an they which "
         "not but can all there their we one has will each about how when up out them then she many some so "
         "these would other into more her two like him see time could no make than first been its who now "
         "people my made over did down only way find use may water long little very after words called just "
         "where most know Natalia clips April May Weng babysitting Betty wallet Julie pages").split()
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'LL", "'D", "’s", "'x"]
LATEX = [r"\frac{a}{b}", r"\sqrt{x^2+y^2}", r"\int_0^\infty e^{-x^2}\,dx", r"\sum_{i=1}^{n} i^2",
         r"\boxed{42}", r"\left(\frac{1}{2}\right)^{3}", r"\mathbb{R}^n", r"\alpha+\beta=\gamma",
         r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", r"x_{n+1}=x_n-\frac{f(x_n)}{f'(x_n)}", r"\$5.00", r"\%",
         r"\text{cm}^2", r"\dfrac{\pi}{4}", r"\le", r"\cdot", r"a^{b^{c}}"]


def number():
    k = R.choice(["int", "dec", "comma", "neg", "sci", "frac", "pct", "money"])
    digits = "".join(R.choice("0123456789") for _ in range(R.randint(1, 40)))
    if k == "int": return digits
    if k == "dec": return digits + "." + "".join(R.choice("0123456789") for _ in range(R.randint(1, 12)))
    if k == "comma": return "{:,}".format(int(digits))
    if k == "neg": return "-" + digits
    if k == "sci": return "%se-%d" % (digits[:3], R.randint(1, 300))
    if k == "frac": return "%d/%d" % (R.randint(1, 999), R.randint(1, 999))
    if k == "pct": return digits[:4] + "%"
    return "$" + digits[:7]


def random_unicode(n):
    blocks = [(0x20, 0x7e), (0xa0, 0x24f), (0x370, 0x3ff), (0x400, 0x4ff), (0x590, 0x6ff), (0x900, 0x97f),
              (0x3040, 0x30ff), (0x4e00, 0x9fa5), (0xac00, 0xd7a3), (0x2000, 0x206f), (0x2190, 0x22ff),
              (0x1f300, 0x1f64f), (0xff00, 0xffef), (0x1, 0x1f)]  # no U+0000: --jsonl refuses it
    out = []
    for _ in range(n):
        lo, hi = R.choice(blocks)
        out.append(chr(R.randint(lo, hi)))
    return "".join(out)


def sentence():
    parts = []
    for _ in range(R.randint(1, 25)):
        r = R.random()
        if r < 0.55: parts.append(R.choice(WORDS).capitalize() if R.random() < 0.1 else R.choice(WORDS))
        elif r < 0.65: parts.append(number())
        elif r < 0.72: parts.append(R.choice(CJK))
        elif r < 0.77: parts.append(R.choice(EMOJI))
        elif r < 0.82: parts.append(R.choice(COMBINING))
        elif r < 0.87: parts.append("$" + R.choice(LATEX) + "$")
        elif r < 0.92: parts.append(R.choice(WORDS) + R.choice(CONTRACTIONS))
        else: parts.append(R.choice(".,;:!?-()[]{}\"'…—"))
    return "".join(p + R.choice([" ", " ", " ", "", "\n", "  ", ", "]) for p in parts)


def code_chunks():
    files = sorted(glob.glob(os.path.join(parity.ROOT, "*", "*.[ch]")) + glob.glob(os.path.join(parity.ROOT, "tests", "*.py"))
                   + glob.glob(os.path.join(parity.ROOT, "tests", "ref", "*", "*.js")))
    chunks = []
    for f in files:
        try:
            text = open(f, encoding="utf-8").read()
        except (UnicodeDecodeError, OSError):
            continue
        lines = text.split("\n")
        for i in range(0, len(lines), 40):
            chunks.append("\n".join(lines[i:i + 40]))
    R.shuffle(chunks)
    return chunks[:600]


def specials_inside(added):
    out = []
    for _ in range(300):
        toks = [R.choice(added) for _ in range(R.randint(1, 4))]
        s = ""
        for t in toks:
            s += R.choice(["", " ", "\n", "x", "Hello", "数学", "  "]) + t + R.choice(["", " ", "\n", "y", "42"])
        out.append(s)
    return out


def corpus():
    texts = ["", " ", "\n", "a", "0", "Hello world", "  leading", "trailing  ", "\n\n\n", "\t\t", "...", "😀",
             "<think>", "</think>", "<answer>42</answer>", "A" * 3000, "1" * 1000, " " * 500, "ab" * 700]
    texts += [sentence() for _ in range(1500)]
    texts += [number() for _ in range(400)]
    texts += ["".join(R.choice(SPACES) + R.choice(["x", "", "1", "。", "def"]) for _ in range(R.randint(1, 20)))
              for _ in range(300)]
    texts += [random_unicode(R.randint(1, 80)) for _ in range(400)]
    texts += [" ".join("$" + R.choice(LATEX) + "$" for _ in range(R.randint(1, 6))) for _ in range(200)]
    texts += ["".join(R.choice(EMOJI + COMBINING) for _ in range(R.randint(1, 12))) for _ in range(200)]
    texts += ["".join(R.choice(CJK) for _ in range(R.randint(1, 5))) for _ in range(200)]
    texts += code_chunks()
    added = ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<think>",
             "</think>", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<tool_call>", "<｜tool▁sep｜>",
             "<｜fim▁hole｜>", "<|fim_middle|>"]
    texts += specials_inside(added)
    return texts


if __name__ == "__main__":
    sys.exit(parity.main_with(corpus(), "generated corpus"))
