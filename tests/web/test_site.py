"""What the site writer takes from a tokenizer.json, and what it refuses."""
from __future__ import annotations

import json

import pytest

from gouache.errors import GouacheError
from gouache.model.text import default_text_model
from gouache.web.site import write_vocab


def test_the_vocabulary_is_written_one_token_a_line_in_id_order(tmp_path):
    settings = write_vocab(default_text_model() / "tokenizer.json", tmp_path / "vocab.txt")
    lines = (tmp_path / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert len(lines) == 30522 and lines[101] == "[CLS]" and lines[102] == "[SEP]"
    assert lines == (default_text_model() / "vocab.txt").read_text(encoding="utf-8").split("\n")[:len(lines)]
    assert settings == {"unk": "[UNK]", "prefix": "##", "max_word_chars": 100,
                        "special": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]}


def test_a_cased_tokenizer_is_refused(tmp_path):
    spec = json.loads((default_text_model() / "tokenizer.json").read_text(encoding="utf-8"))
    spec["normalizer"]["lowercase"] = False
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(GouacheError, match="uncased BERT"):
        write_vocab(tmp_path / "tokenizer.json", tmp_path / "vocab.txt")
