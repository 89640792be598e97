"""The plain-PyTorch BERT must give what transformers' BertModel gives, token for token."""
import json
import shutil

import pytest
import torch

from gouache.model.bert import BertEncoder, BertTokenizer, is_plain_bert
from gouache.model.text import default_text_model

PROMPTS = ["red apple", "", "an emoji of a green banana, twitter style", "CAT face!! 😀"]


@pytest.fixture(scope="module")
def folder():
    return default_text_model()


def test_bundled_minilm_takes_the_fast_path(folder):
    assert is_plain_bert(folder)


def test_tokens_match_transformers(folder):
    transformers = pytest.importorskip("transformers")
    ref = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    want = ref(PROMPTS, padding=True, truncation=True, max_length=8, return_tensors="pt")
    ids, mask = BertTokenizer(folder / "tokenizer.json", max_length=8)(PROMPTS)
    assert torch.equal(ids, want["input_ids"]) and torch.equal(mask, want["attention_mask"])


def test_states_match_transformers(folder):
    transformers = pytest.importorskip("transformers")
    ref = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    ids, mask = BertTokenizer(folder / "tokenizer.json", max_length=32)(PROMPTS)
    with torch.no_grad():
        want = ref(input_ids=ids, attention_mask=mask).last_hidden_state
        got = BertEncoder.from_folder(folder)(ids, mask)
    real = mask.bool()  # padded positions are masked out downstream; compare real tokens
    assert (got - want)[real].abs().max() < 1e-4


def test_other_architectures_go_through_transformers(folder, tmp_path):
    pytest.importorskip("transformers")
    from gouache.model.text import TextEncoder

    other = tmp_path / "relative-bert"
    shutil.copytree(folder, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["position_embedding_type"] = "relative_key"  # not what bert.py implements
    (other / "config.json").write_text(json.dumps(cfg))
    assert not is_plain_bert(other)
    enc = TextEncoder(str(other))
    assert type(enc.model).__name__ == "_HFEncoder" and enc.dim == 384
    e = enc(["red apple", ""])
    assert e.tokens.shape[:2] == e.mask.shape and int(e.mask[1].sum()) == 2


def test_loading_leaves_the_global_random_state_alone(folder):
    state = torch.random.get_rng_state()
    BertEncoder.from_folder(folder)
    assert torch.equal(torch.random.get_rng_state(), state)
