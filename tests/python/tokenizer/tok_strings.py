"""Seeded generator of random and adversarial strings for the tokenizer differential test: random
Unicode (BMP and astral), whitespace runs, emoji and ZWJ sequences, CJK, right-to-left text, control
characters, combining marks, code, and special-token look-alikes."""
import random
import unicodedata

WORDS = ("the quick brown fox jumps over lazy dog INVOICE total due Receipt Qty Coffee Bagel hello world "
         "don't I'll we've they're it's can't naïve café résumé Straße Ångström").split()
CODE = ["def f(x):\n    return x**2\n", "for (int i = 0; i < n; ++i) { a[i] += b[i]; }",
        "if x != None and y >= 3:\n\tpass", "#include <stdio.h>\nint main(){printf(\"hi\\n\");}",
        "SELECT * FROM t WHERE id = 42;", "<div class=\"a\">&nbsp;</div>", "{'a': [1, 2.5e-3, None]}",
        "x = y // 2 % 3 ** 4", "    indented\n        more\n", "λx.x → ∀y∃z", "0x1F600 0b1010 1_000_000"]
LOOKALIKES = ["<s>", "</s>", "<unk>", "<s", "</s", "</s >", "< s>", "<s >", "<<s>>", "<s></s>", "s>", "</ s>",
              "<0x41>", "<0x0A>", "<0xZZ>", "[INST]", "[/INST]", "<|im_start|>", "<|im_end|>", "<|endoftext|>",
              "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜begin", "▁of▁", "<｜place▁holder▁no▁0｜>",
              "<|", "|>", "▁", "▁▁", "Ġ", "Ċ", "<tool>", "</tool>", "<think>", "</think>"]
WHITESPACE = [" ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u2000", "\u2003", "\u200a", "\u3000",
              "\u2028", "\u2029", "\u202f", "\u205f", "\u1680", "\u0085", "\x0b", "\x0c", "\u180e", "\u200b",
              "\ufeff", " \n ", "\n\n\n", "\t\t", "    \n"]
EMOJI = ["🦙", "👍", "👍🏽", "👩‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "🇫🇷", "🧑🏻‍💻", "😀😃😄", "✈︎", "1️⃣", "🫠", "🪿"]
CJK = ["日本語のテキスト", "中文字符测试", "镇", "한국어 텍스트", "ｶﾀｶﾅ", "㐀㐁", "𠀀𠀁", "〇一二三", "。、「」"]
RTL = ["مرحبا بالعالم", "שלום עולם", "\u202eRTL override\u202c", "\u200fmark\u200e", "اَلْعَرَبِيَّةُ"]
OTHER = ["Ꙋ", "ǅ", "ﬁ", "Å", "Å", "é", "é", "ᾈ", "ß", "İ", "ı", "ǰ", "𝔘𝔫𝔦", "①②", "²³", "٣٤", "߀",
         "\u0301\u0301", "a\u0300\u0301\u0302", "ก่", "नमस्ते", "ཀྵ", "\x00", "\x01\x02", "\x7f", "\x1b[31m",
         "\ud7ff", "\ue000", "\uffff", "\U0010ffff", "\U000e0041", "'s", "'S", "'ll", "'LL", "'ſ", "’s"]

BMP_RANGES = [(0x20, 0x7E), (0x00, 0x1F), (0xA0, 0x24F), (0x370, 0x52F), (0x590, 0x6FF), (0x900, 0x97F),
              (0xE00, 0xE7F), (0x1100, 0x11FF), (0x2000, 0x206F), (0x2100, 0x2BFF), (0x3000, 0x30FF),
              (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xF900, 0xFFFD)]


def random_char(rng):
    r = rng.random()
    if r < 0.55:
        lo, hi = rng.choice(BMP_RANGES)
        return chr(rng.randint(lo, hi))
    if r < 0.8:
        cp = rng.randint(0x20, 0xFFFD)
        while 0xD800 <= cp <= 0xDFFF:
            cp = rng.randint(0x20, 0xFFFD)
        return chr(cp)
    if r < 0.9:
        return chr(rng.randint(0x1F300, 0x1FAFF))
    return chr(rng.randint(0x10000, 0x10FFFF))


def fragment(rng):
    k = rng.random()
    if k < 0.15:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6)))
    if k < 0.25:
        return "".join(random_char(rng) for _ in range(rng.randint(1, 12)))
    if k < 0.35:
        return rng.choice(LOOKALIKES)
    if k < 0.47:
        return "".join(rng.choice(WHITESPACE) for _ in range(rng.randint(1, 4)))
    if k < 0.55:
        return "".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 3)))
    if k < 0.63:
        return rng.choice(CJK)
    if k < 0.7:
        return rng.choice(RTL)
    if k < 0.8:
        return rng.choice(OTHER)
    if k < 0.88:
        return rng.choice(CODE)
    if k < 0.94:
        return str(rng.randint(0, 10 ** rng.randint(1, 12))) + rng.choice(["", ".", ",", "%", "$", "€"])
    return rng.choice(["!", "?", "...", "--", "—", "\"", "'", "``", "(", ")", "[", "]", "{", "}", "#", "@", "\\"])


def _assigned(s):
    # note: Hugging Face's regex engine (Oniguruma) has newer Unicode tables than Debian's PCRE2 10.42
    # (Unicode 14); characters assigned after Unicode 14 can fall in different regex classes, so random
    # strings keep only characters that this Python's Unicode database (14.0 on Python 3.11) assigns.
    return all(unicodedata.category(c) != "Cn" for c in s)


def make_strings(n, seed):
    rng = random.Random(seed)
    out = ["", " ", "  ", "\n", "a", " a", "a ", "<s>", "</s>", "<s> </s>", " <s>", "<s> ", "hello<s>world",
           "<0x41>", "▁", "▁hello", "Ġhello"]
    while len(out) < n:
        s = "".join(fragment(rng) for _ in range(rng.randint(1, 8)))
        if _assigned(s):
            out.append(s)
    return out[:n]
