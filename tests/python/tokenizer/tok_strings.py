"""Seeded generator of random and adversarial strings for the tokenizer differential test: random
Unicode (BMP and astral), whitespace runs, emoji and ZWJ sequences, CJK, right-to-left text, control
characters, combining marks, code, and special-token look-alikes; for normalizer variants also
combining-mark runs, decomposed Hangul and characters that Unicode normalization changes."""
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


COMBINING = [chr(c) for c in list(range(0x300, 0x370)) + list(range(0x483, 0x488)) + list(range(0x591, 0x5C8))
             + list(range(0x64B, 0x660)) + list(range(0x93C, 0x94E)) + list(range(0x1AB0, 0x1ABF))
             + list(range(0x1DC0, 0x1E00)) + list(range(0x20D0, 0x20F1)) + list(range(0x3099, 0x309B))]
# Characters whose NFC/NFD/NFK* forms differ: singletons (Ohm, Angstrom, Kelvin signs), composition
# exclusions (Devanagari qa, Hebrew presentation forms), compatibility forms, precomposed Latin/Greek/kana.
NORM_SPECIAL = ["\u2126", "\u212b", "\u212a", "\u0958", "\ufb2c", "\u0f73", "\u0344", "\u1e9b\u0323", "\u0390",
                "\u1f80", "\u01c4", "\u2460", "\u00bd", "\uff21", "\uff76\uff9e", "\u30ac", "\u304b\u3099",
                "\u0e33", "\u2fa1d", "\u1d15e", "\u0041\u030a", "\u00c5", "\u0069\u0307", "\u0130", "\u0345",
                "\u03d3", "\u1e0b\u0323", "\u0071\u0307\u0323", "\u0627\u0653", "\u09c7\u09be",
                "\u0b47\u0b56", "\u1025\u102e", "\u1b05\u1b35", "\u110a\u11a2", "\uac00\u11a7", "\uac00\u11a8"]


def _hangul_decomposed(rng):
    """Conjoining jamo: L V (T) syllables, lone L/V/T jamo, LV syllables followed by T, old-Hangul jamo."""
    out = []
    for _ in range(rng.randint(1, 4)):
        k = rng.random()
        if k < 0.5:
            syl = chr(0xAC00 + rng.randrange(11172))
            out.append(unicodedata.normalize("NFD", syl))
        elif k < 0.7:
            out.append(chr(0xAC00 + 28 * rng.randrange(399)) + chr(rng.randint(0x11A7, 0x11C2)))
        elif k < 0.9:
            out.append("".join(chr(rng.randint(0x1100, 0x11FF)) for _ in range(rng.randint(1, 4))))
        else:
            out.append(chr(rng.randint(0x3131, 0x318E)))  # compatibility jamo (NFKC maps them)
    return "".join(out)


def normalization_fragment(rng):
    """Extra fragments for normalizer variants: combining-mark runs in random order on random bases,
    decomposed Hangul, and characters that NFC/NFD/NFKC/NFKD change."""
    k = rng.random()
    if k < 0.35:
        base = rng.choice(["a", "e", "o", "u", "A", "n", "c", "s", "\u03b1", "\u0438", " ", "", "\u0915", "1",
                           random_char(rng)])
        return base + "".join(rng.choice(COMBINING) for _ in range(rng.randint(1, 4)))
    if k < 0.65:
        return _hangul_decomposed(rng)
    if k < 0.85:
        return rng.choice(NORM_SPECIAL)
    w = rng.choice(WORDS)
    return unicodedata.normalize(rng.choice(["NFD", "NFKD"]), w)


def _assigned(s):
    # note: Hugging Face's regex engine (Oniguruma) has newer Unicode tables than Debian's PCRE2 10.42
    # (Unicode 14); characters assigned after Unicode 14 can fall in different regex classes, so random
    # strings keep only characters that this Python's Unicode database (14.0 on Python 3.11) assigns.
    return all(unicodedata.category(c) != "Cn" for c in s)


def make_strings(n, seed, extra=None, extra_p=0.0):
    """n strings; with `extra` (a fragment function), each fragment comes from it with probability extra_p
    (without it the sequence is exactly the one the other variants have always used)."""
    rng = random.Random(seed)
    out = ["", " ", "  ", "\n", "a", " a", "a ", "<s>", "</s>", "<s> </s>", " <s>", "<s> ", "hello<s>world",
           "<0x41>", "▁", "▁hello", "Ġhello"]
    while len(out) < n:
        if extra is None:
            s = "".join(fragment(rng) for _ in range(rng.randint(1, 8)))
        else:
            s = "".join(extra(rng) if rng.random() < extra_p else fragment(rng) for _ in range(rng.randint(1, 8)))
        if _assigned(s):
            out.append(s)
    return out[:n]
