"""WebDataset shards (write, read, stream, train) and stored prompt embeddings."""
from __future__ import annotations

import io
import itertools
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from gouache.cli.main import main
from gouache.data.imagefolder import caption_variants, load_imagefolder, read_records
from gouache.data.prompts import (
    EMBEDDINGS_FILE,
    CaptionCache,
    CaptionTable,
    dataset_captions,
    embed_dataset,
    load_prompt_embeddings,
)
from gouache.data.shards import (
    ShardStream,
    expand_shards,
    is_shard_spec,
    read_samples,
    write_shards,
)

pytestmark = pytest.mark.usefixtures("one_thread")
FIXTURE_PNG = Path(__file__).parents[1] / "fixtures" / "emoji" / "images" / "google" / "1f349.png"


class CountingEncoder(torch.nn.Module):
    """The real encoder, counting how many prompts it is asked to encode."""

    def __init__(self, real) -> None:
        super().__init__()
        self.real, self.name, self.max_length, self.dim = real, real.name, real.max_length, real.dim
        self.encoded = 0

    def forward(self, prompts):
        self.encoded += len(prompts)
        return self.real(prompts)

    def encode_many(self, prompts, **kw):
        self.encoded += len(prompts)
        return self.real.encode_many(prompts, **kw)


@pytest.fixture(scope="module")
def emoji_shards(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("emoji_shards")
    main(["data", "shard", str(Path(__file__).resolve().parents[1] / "fixtures" / "emoji"), "--out", str(out), "--shard-size", "10"])
    return out


def test_shards_round_trip_the_emoji_fixture(emoji_fixture: Path, emoji_shards: Path) -> None:
    rows = read_records(emoji_fixture, split=None)
    assert sorted(p.name for p in emoji_shards.glob("*.tar")) == [f"{k:06d}.tar" for k in range(4)]
    samples = list(read_samples(f"{emoji_shards}/{{000000..000003}}.tar"))
    assert len(samples) == len(rows) == 36
    for row, s in zip(rows, samples):
        assert s["png"] == Path(row["path"]).read_bytes()  # the image bytes as they were
        assert s["txt"] == row["text"]
        assert s["row"] == {k: v for k, v in row.items() if k != "path"}
        assert caption_variants(s["row"]) == caption_variants(row)
    with pytest.raises(Exception, match="already holds"):
        write_shards(emoji_fixture, emoji_shards, shard_size=10)


def test_shard_specs(emoji_shards: Path, emoji_fixture: Path) -> None:
    assert is_shard_spec(emoji_shards) and is_shard_spec(f"{emoji_shards}/{{000000..000003}}.tar")
    assert not is_shard_spec(emoji_fixture)
    assert expand_shards(emoji_shards) == expand_shards(f"{emoji_shards}/{{000000..000003}}.tar")
    with pytest.raises(Exception, match="missing"):
        expand_shards(f"{emoji_shards}/{{000000..000009}}.tar")


def test_stream_gives_the_imagefolder_images(emoji_fixture: Path, emoji_shards: Path) -> None:
    data = load_imagefolder(emoji_fixture, size=32, split="train", progress=False)
    want = {v[1]: img for v, img in zip(data.variants, data.images)}  # "{label}, {style} style" is unique
    stream = ShardStream(expand_shards(emoji_shards), size=32, split="train", buffer=1)
    got = list(itertools.islice(iter(stream), len(data)))  # one pass
    assert sorted(v[1] for _, v, _ in got) == sorted(want)
    for img, variants, probs in got:
        assert img.dtype == torch.uint8 and img.shape == (3, 32, 32)
        assert torch.equal(img, want[variants[1]])
        assert math.isclose(sum(probs), 1.0)


def _one_pass(stream: ShardStream) -> list[str]:
    """The file names one reader reads in its first pass over its shards."""
    slot, slots = stream._reader()
    counts = [10, 10, 10, 6]  # 36 rows in shards of 10
    n = sum(counts[slot::slots]) if len(counts) >= slots else len(range(slot, 36, slots))
    return [s["row"]["file_name"] for s in itertools.islice(stream.samples(), n)]


@pytest.mark.parametrize("world", [2, 8])  # by shard (4 shards, 2 readers), by sample (8 readers)
def test_readers_split_without_duplicates(emoji_shards: Path, world: int) -> None:
    urls = expand_shards(emoji_shards)
    parts = [_one_pass(ShardStream(urls, size=16, split=None, rank=r, world=world, seed=3))
             for r in range(world)]
    names = [n for part in parts for n in part]
    assert len(names) == len(set(names)) == 36


def test_dataloader_workers_split_a_ranks_shards(emoji_shards: Path) -> None:
    urls = expand_shards(emoji_shards)
    stream = ShardStream(urls, size=16, split=None, rank=1, world=2, seed=0, buffer=1)
    loader = DataLoader(stream, batch_size=None, num_workers=2)
    got = [v[1] for _, v, _ in itertools.islice(iter(loader), 12)]  # workers take turns
    names = [caption_variants(s["row"])[0][1] for s in read_samples(emoji_shards)]
    assert len(set(got)) == 12  # readers 2 and 3 of 4 read shards 2 (10 rows) and 3 (6 rows)
    assert set(got[::2]) < set(names[20:30]) and set(got[1::2]) == set(names[30:])


def test_embed_round_trip(emoji_fixture: Path, tmp_path: Path, text_encoder, monkeypatch) -> None:
    folder = tmp_path / "emoji"
    shutil.copytree(emoji_fixture, folder)
    monkeypatch.setattr("gouache.model.text.TextEncoder", lambda *a, **k: text_encoder)
    main(["data", "embed", str(folder)])
    captions, emb = load_prompt_embeddings(folder / EMBEDDINGS_FILE, text_encoder)
    assert captions == dataset_captions(folder) and captions[0] == ""
    assert emb.tokens.dtype == torch.float16 and emb.mask.dtype == torch.bool
    fresh = text_encoder.encode_many(captions)
    assert torch.equal(emb.mask, fresh.mask)
    assert torch.allclose(emb.tokens.float(), fresh.tokens, atol=2e-3, rtol=1e-3)
    assert torch.allclose(emb.pooled, fresh.pooled, atol=1e-6)

    data = load_imagefolder(folder, size=16, split="train", progress=False)
    counting = CountingEncoder(text_encoder)
    stored = CaptionTable.build(data, counting, folder=folder)
    assert counting.encoded == 0  # every caption came from the file
    direct = CaptionTable.build(data, text_encoder)
    assert stored.captions == direct.captions and torch.equal(stored.variant_ids, direct.variant_ids)
    ids = torch.arange(len(direct.captions))
    a, b = stored.cond(ids, torch.device("cpu")), direct.cond(ids, torch.device("cpu"))
    assert torch.equal(a["mask"], b["mask"])
    assert torch.allclose(a["tokens"], b["tokens"], atol=2e-3, rtol=1e-3)

    other = CountingEncoder(text_encoder)
    other.max_length = 16  # another token limit: the file does not apply
    assert load_prompt_embeddings(folder / EMBEDDINGS_FILE, other) is None
    CaptionTable.build(data, other, folder=folder)
    assert other.encoded == len(direct.captions)


def test_caption_cache_encodes_each_caption_once(text_encoder) -> None:
    counting = CountingEncoder(text_encoder)
    cache = CaptionCache(counting)
    ids = cache.ids(["red apple", "", "red apple", "cat face"])
    assert ids.tolist() == [2, 0, 2, 1] and counting.encoded == 3  # "" first, new ones sorted
    cache.ids(["cat face", "red apple"])
    assert counting.encoded == 3
    cond = cache.cond(ids, torch.device("cpu"))
    fresh = text_encoder(["red apple", "", "red apple", "cat face"])
    n = cond["tokens"].shape[1]
    assert n == int(fresh.mask.sum(1).max())
    assert torch.equal(cond["mask"], fresh.mask[:, :n])
    assert torch.allclose(cond["tokens"], fresh.tokens[:, :n], atol=2e-3, rtol=1e-3)


def test_train_streams_shards(shapes_dir: Path, tmp_path: Path, text_encoder) -> None:
    from gouache.model.config import ModelConfig
    from gouache.model.unet import PRESETS
    from gouache.training.config import TrainConfig
    from gouache.training.train import train

    shards = tmp_path / "shards"
    write_shards(shapes_dir, shards, shard_size=16)
    embed_dataset(shards, text_encoder)
    counting = CountingEncoder(text_encoder)
    cfg = TrainConfig(data=f"{shards}/{{000000..{len(list(shards.glob('*.tar'))) - 1:06d}}}.tar",
                      out=str(tmp_path / "run"), model=ModelConfig(unet=PRESETS["tiny"]), steps=3,
                      batch_size=4, warmup=1, sample_every=0, eval_every=0, device="cpu",
                      num_workers=1)
    result = train(cfg, progress=False, text_encoder=counting)
    assert result.step == 3 and all(math.isfinite(x) for x in result.losses)
    assert counting.encoded == 0  # prompts came from prompt_embeddings.safetensors
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-00000003" / "state.json").read_text())
    assert state["step"] == 3


def test_balance_by_needs_images_in_memory(emoji_shards: Path, tmp_path: Path, text_encoder) -> None:
    from gouache.errors import GouacheError
    from gouache.training.config import TrainConfig
    from gouache.training.train import train

    cfg = TrainConfig(data=str(emoji_shards), out=str(tmp_path / "run"), balance_by="base", device="cpu")
    with pytest.raises(GouacheError, match="balance_by needs the images in memory"):
        train(cfg, progress=False, text_encoder=text_encoder)


# --- hostile and careless input ----------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["pipe:///usr/bin/touch {marker} #", "pipe:///usr/bin/touch {marker} #{{0..1}}",
                                    "pipe:touch {marker} #", "http://127.0.0.1:9/{marker}", "file://{marker}"])
def test_shard_urls_never_run_commands(scheme: str, tmp_path: Path, capsys) -> None:
    from gouache.errors import GouacheError

    marker = tmp_path / "ran"
    spec = scheme.format(marker=marker) + ".tar"
    for read in (expand_shards, lambda s: list(read_samples(s)),
                 lambda s: next(iter(ShardStream([s], size=16, split=None)))):
        with pytest.raises(GouacheError, match="local .tar files"):
            read(spec)
        assert not marker.exists()
    with pytest.raises(SystemExit) as e:  # a recipe's or --data's value, as train meets it
        main(["train", "--data", spec, "--out", str(tmp_path / "run"), "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and spec.split(":")[0] + ":" in err[0], err
    assert not marker.exists()  # the shell command never ran


def _corrupt_copy(src: Path, dst: Path) -> list[str]:
    """The emoji fixture with one truncated PNG and one that is not an image at all."""
    shutil.copytree(src, dst)
    rows = [json.loads(line) for line in (dst / "metadata.jsonl").read_text().splitlines()]
    cut, junk = dst / rows[3]["file_name"], dst / rows[20]["file_name"]
    cut.write_bytes(cut.read_bytes()[:200])
    junk.write_bytes(b"this is not a picture")
    return [rows[3]["file_name"], rows[20]["file_name"]]


def test_sharding_skips_unreadable_images_and_says_so(emoji_fixture: Path, tmp_path: Path, capsys) -> None:
    from gouache.images import load_rgb

    bad = _corrupt_copy(emoji_fixture, tmp_path / "emoji")
    main(["data", "shard", str(tmp_path / "emoji"), "--out", str(tmp_path / "shards"), "--shard-size", "10"])
    out = capsys.readouterr()
    said = [line for line in (out.out + out.err).splitlines() if "skipped" in line]
    assert len(said) == 1 and "2 unreadable images" in said[0] and bad[0] in said[0], said
    samples = list(read_samples(tmp_path / "shards"))
    assert len(samples) == 34 and len(list((tmp_path / "shards").glob("*.tar"))) == 4
    for s in samples:
        load_rgb(io.BytesIO(s["png"]), 16)  # every packed image decodes


def test_a_broken_image_in_a_shard_is_named_by_shard_and_key(tmp_path: Path) -> None:
    """Shards from elsewhere (or an older gouache) may hold a broken image: the error says where."""
    import webdataset

    from gouache.errors import GouacheError

    shard = tmp_path / "000000.tar"
    with webdataset.TarWriter(str(shard), encoder=False) as sink:
        sink.write({"__key__": "good", "png": (FIXTURE_PNG).read_bytes(), "txt": b"a"})
        sink.write({"__key__": "broken42", "png": b"\x89PNG not really", "txt": b"b"})
    with pytest.raises(GouacheError) as e:
        list(itertools.islice(iter(ShardStream([str(shard)], size=16, split=None, buffer=1)), 2))
    assert str(shard) in str(e.value) and "broken42" in str(e.value) and "BytesIO" not in str(e.value)


def test_a_truncated_shard_is_named(emoji_shards: Path, tmp_path: Path) -> None:
    from gouache.errors import GouacheError

    shard = tmp_path / "000000.tar"
    shard.write_bytes((emoji_shards / "000000.tar").read_bytes()[:3000])
    with pytest.raises(GouacheError, match=f"cannot read shard {shard}"):
        list(read_samples(shard))
