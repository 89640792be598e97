"""The page's WordPiece tokenizer (gouache/web/static/tokenizer.js, run with node) gives the
Python prompt encoder's token ids, prompt for prompt."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from gouache.model.bert import BertTokenizer
from gouache.model.text import default_text_model

STATIC = Path(__file__).resolve().parents[2] / "gouache" / "web" / "static"
NODE = shutil.which("node")

THINGS = ["red apple", "green apple", "cat face", "watermelon", "rocket", "smiling face with heart eyes",
          "grinning face", "pile of poo", "sun behind cloud", "birthday cake", "hot pepper", "blue heart",
          "t-rex", "woman's hat", "man's shoe", "flag: france", "keycap: 1", "1st place medal",
          "a b c", "thumbs up: medium skin tone", "Ω symbol", "yin yang"]
ODD = [
    "Red APPLE", "RED APPLE!!!", "Crème brûlée", "café au lait", "naïve façade", "Ångström über Zürich",
    "piñata, jalapeño & açaí", "ÉCOLE FRANÇAISE", "ﬁre ﬂower", "Straße", "İstanbul", "ΣΊΣΥΦΟΣ", "Ελληνικά",
    "привет мир", "日本語のテキスト", "中文 字符", "한국어 텍스트", "東京タワー", "ไทย", "עברית", "العربية",
    "🍎", "red 🍎 apple", "🍎🍌🍇", "👍🏽 thumbs", "🏳️‍🌈 flag", "👨‍👩‍👧 family", "🫠 melting", "🥑 avocado",
    "❤️ heart", "★ star ☆", "½ cake", "x² + y²", "3.14159", "2024-01-01", "100%", "$5.00 coffee", "#hashtag",
    "@mention", "e-mail@example.com", "C++ code", "a/b\\c", "(parenthesised) [bracketed] {braced}",
    "quote \"double\" 'single'", "«guillemets»", "„German“ quotes", "em—dash – en", "ellipsis…",
    "tab\tseparated", "new\nline", "carriage\r\nreturn", "  spaces  around  ", "\u00a0no-break space",
    "zero\u200bwidth", "soft\u00adhyphen", "bom\ufeffinside", "nul\x00char", "replacement\ufffdchar",
    "control\x07bell", "a [MASK] apple", "[CLS] red [SEP]", "[unk] lower", "##suffix", "un##affable",
    "unaffable", "antidisestablishmentarianism", "supercalifragilisticexpialidocious",
    "a" * 99, "b" * 100, "c" * 101, "123456789012345678901234567890", "0", "007", "1,000,000",
    "hello…world", "ok👌ok", "mixed CASE MiXeD", "ALL CAPS SHOUTING", "x", "?", "!!!", "...", "-",
    "emoji 🐱‍👤 ninja", "🇯🇵 japan", "♀️♂️", "©®™", "°C", "µ micro", "℃", "Ⅻ", "①②③", "ｆｕｌｌｗｉｄｔｈ",
    "ﾊﾝｶｸ", "الْعَرَبِيَّة", "देवनागरी", "Tiếng Việt", "ĳ ligature", "æsir øl", "Þórr", "Œuvre",
]


def prompts() -> list[str]:
    out = list(THINGS) + list(ODD)
    for thing in THINGS:
        out += [thing.upper(), thing.title(), f"a {thing}, painted", f"{thing}!", f"{thing} #{len(thing)}"]
    words = " ".join(THINGS).split()
    out += [" ".join(words[: 40 + k]) for k in range(0, 160, 40)]  # past 32 and past 128 tokens
    out += ["🍎 " * 150, "crème " * 140, "!" * 300, "的" * 200]
    return out


def js_ids(texts: list[str], max_length: int) -> list[list[int]]:
    script = """
const fs = require("fs");
const { WordPieceTokenizer } = require(process.argv[1]);
const [vocab, maxLength] = [fs.readFileSync(process.argv[2], "utf8"), Number(process.argv[3])];
const tok = WordPieceTokenizer.fromText(vocab, { maxLength });
const texts = JSON.parse(fs.readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(texts.map((t) => tok.encode(t))));
"""
    vocab = default_text_model() / "vocab.txt"
    run = subprocess.run([NODE, "-e", script, str(STATIC / "tokenizer.js"), str(vocab), str(max_length)],
                         input=json.dumps(texts), capture_output=True, text=True, check=True)
    return json.loads(run.stdout)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
@pytest.mark.parametrize("max_length", [32, 128])
def test_the_page_tokenizes_as_python(max_length):
    texts = prompts()
    assert len(texts) >= 200
    python = BertTokenizer(default_text_model() / "tokenizer.json", max_length=max_length)
    want = [python([t])[0][0].tolist() for t in texts]
    got = js_ids(texts, max_length)
    wrong = [(t, g, w) for t, g, w in zip(texts, got, want) if g != w]
    assert not wrong, f"{len(wrong)} of {len(texts)} differ, e.g. {wrong[:3]}"
    assert max(len(w) for w in want) == max_length  # some were truncated
