"""scripts/remote_gpu.py: the packed prompt encoder encodes the dataset's captions as the full
one does, and a model split into parts for the return trip merges back bit for bit."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file


@pytest.fixture(scope="module")
def remote(scripts):
    return scripts("remote_gpu")


def test_packed_encoder_matches_the_full_one_on_the_captions(remote, emoji_fixture, text_encoder, tmp_path):
    from gouache.data.prompts import dataset_captions
    from gouache.text import TextEncoder

    remote.pack(emoji_fixture, tmp_path / "pack", extra=[])
    packed = tmp_path / "pack" / "encoder" / "model.safetensors"
    assert packed.stat().st_size < 30 * 2**20  # the fp32 original is 91 MB
    folder = remote.unpack(tmp_path / "pack", tmp_path / "site")
    small = TextEncoder(str(folder)).eval()
    captions = dataset_captions(emoji_fixture)[1:]
    with torch.no_grad():
        want, got = text_encoder(captions), small(captions)
        assert torch.equal(want.mask, got.mask)
        rel = (want.tokens - got.tokens).norm() / want.tokens.norm()
        assert rel < 3e-3  # fp16 rounding of the weights
        # words no caption uses: their rows were dropped
        full, pruned = text_encoder(["zebra on a unicycle"]).tokens, small(["zebra on a unicycle"]).tokens
        assert (full - pruned).norm() / full.norm() > 0.05


def test_shard_and_merge_round_trip(remote, tiny_model_dir, tmp_path):
    remote.shard(tiny_model_dir, tmp_path / "parts", max_mib=0.25)
    parts = sorted((tmp_path / "parts").glob("ema-*.safetensors"))
    assert len(parts) > 1 and all(p.stat().st_size <= 0.25 * 2**20 + 2**16 for p in parts)
    index = json.loads((tmp_path / "parts" / "ema.safetensors.index.json").read_text())["weight_map"]
    assert set(index.values()) == {p.name for p in parts}
    remote.merge(tmp_path / "parts", tmp_path / "merged")
    want, got = load_file(tiny_model_dir / "ema.safetensors"), load_file(tmp_path / "merged" / "ema.safetensors")
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    assert (tmp_path / "merged" / "config.json").read_text() == (tiny_model_dir / "config.json").read_text()


def test_merge_refuses_missing_parts(remote, tiny_model_dir, tmp_path):
    remote.shard(tiny_model_dir, tmp_path / "parts", max_mib=0.25)
    next((tmp_path / "parts").glob("ema-*.safetensors")).unlink()
    with pytest.raises(SystemExit, match="parts missing"):
        remote.merge(tmp_path / "parts", tmp_path / "merged")
