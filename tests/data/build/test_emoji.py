"""The emoji dataset, version 2: the committed fixture, and whole builds from small npm tarballs.

The fixture was made with the real builder and the real packages::

    gouache data emoji --out tests/fixtures/emoji_svg --size 64 --test 1F44B,1F355,1F9D1-200D-1F4BB \\
        --only 1F34E,1F355,1F44B,1F44B-1F3FD,1F468-200D-1F4BB,1F469-200D-1F4BB,1F9D1-200D-1F4BB,\\
2764-FE0F,1F600,1F436,1F1EF-1F1F5,1F680,1F525,1F431
"""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections import defaultdict
from pathlib import Path

import pytest
from PIL import Image

from gouache.data.captions import caption_variants
from gouache.data.build.emoji import build_emoji_dataset, licenses_markdown
from gouache.data.build.emoji_names import NAMES_FILES, concept_of, normalize_hexcode
from gouache.data.build.emoji_styles import STYLES
from gouache.data.build import npm
from gouache.data.build.npm import integrity, tarball_name
from gouache.errors import GouacheError

KEYS = {"file_name", "text", "label", "name", "keywords", "shortcodes", "annotation", "style",
        "style_title", "group", "subgroup", "codepoints", "base", "split"}


@pytest.fixture(scope="module")
def rows(emoji_svg_fixture) -> list[dict]:
    lines = (emoji_svg_fixture / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_fixture_rows_name_their_files(rows, emoji_svg_fixture) -> None:
    assert len(rows) == 106 and {r["style"] for r in rows} == {s.key for s in STYLES}
    for r in rows:
        assert set(r) == KEYS and r["text"] == r["label"] and r["split"] in {"train", "test"}
        assert r["file_name"] == f"images/{r['style']}/{r['codepoints'].lower()}.png"
        assert r["base"] == concept_of(r["codepoints"])
        with Image.open(emoji_svg_fixture / r["file_name"]) as im:
            assert (im.size, im.mode) == ((64, 64), "RGB")
            corners = [im.getpixel(xy) for xy in ((0, 0), (63, 0), (0, 63), (63, 63))]
            assert (255, 255, 255) in corners, r["file_name"]  # on white, never on black
    pizza = next(r for r in rows if r["codepoints"] == "1F355")
    assert (pizza["label"], pizza["name"]) == ("pizza", "slice of pizza")
    assert "cheese" in pizza["keywords"] and "pizza" in pizza["shortcodes"]


def test_no_held_out_emoji_is_trained_in_any_style(rows) -> None:
    splits: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        splits[r["base"]].add(r["split"])
    assert all(len(s) == 1 for s in splits.values())
    held = {b for b, s in splits.items() if s == {"test"}}
    assert held == {"1F44B", "1F355", "1F9D1-200D-1F4BB"}
    # every variant is held out with its emoji: skin tones, and the man/woman forms
    assert {r["split"] for r in rows if r["codepoints"] in ("1F44B-1F3FD", "1F469-200D-1F4BB")} == {"test"}


def test_fixture_manifest_and_licences_agree(rows, emoji_svg_fixture) -> None:
    manifest = json.loads((emoji_svg_fixture / "manifest.json").read_text(encoding="utf-8"))
    digest = hashlib.sha256((emoji_svg_fixture / "metadata.jsonl").read_bytes()).hexdigest()
    assert manifest["metadata_sha256"] == digest and manifest["size"] == 64
    per_style = {s: sum(r["style"] == s for r in rows) for s in manifest["styles"]}
    assert {s: sum(c.values()) for s, c in manifest["counts"]["per_style"].items()} == per_style
    assert manifest["licences"] == {s.key: s.licence for s in STYLES}
    assert manifest["share_alike"] == ["openmoji"] and manifest["captions"]["captions_per_emoji"] >= 4
    text = (emoji_svg_fixture / "LICENSES.md").read_text(encoding="utf-8")
    assert text == licenses_markdown(STYLES)


# ----------------------------------------------------------------------------- whole builds

SQUARE = '<rect x="{x}" y="2" width="8" height="12" fill="#{colour}"/>'
CODES = [f"{0x1F600 + k:X}" for k in range(40)]


def _tarball(folder: Path, name: str, version: str, files: dict[str, object], monkeypatch) -> None:
    """A tarball of ``files`` (bytes, or JSON), pinned for this test as gouache pins the real ones."""
    path = folder / tarball_name(name, version)
    with tarfile.open(path, "w:gz") as tf:
        for member, content in sorted(files.items()):
            data = content if isinstance(content, bytes) else json.dumps(content).encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    monkeypatch.setitem(npm.PINNED, f"{name}@{version}", integrity(path))


def fake_registry(folder: Path, monkeypatch, *, noto_licence: str = "Apache-2.0") -> Path:
    """npm tarballs as ``npm pack`` leaves them: emojibase-data and three small Iconify sets."""
    folder.mkdir(parents=True, exist_ok=True)
    data = [{"label": f"face {k}", "hexcode": code, "tags": ["face", f"tag{k}", "smile"], "group": 0,
             "subgroup": 1} for k, code in enumerate(CODES)]
    data[0]["skins"] = [{"label": "face 0: dark skin tone", "hexcode": f"{CODES[0]}-1F3FF"}]
    _tarball(folder, "emojibase-data", "17.0.0", {
        NAMES_FILES[0]: data, NAMES_FILES[1]: {"groups": {"0": "smileys"}, "subgroups": {"1": "faces"}},
        NAMES_FILES[2]: {code: f"FACE NUMBER {k}" for k, code in enumerate(CODES)},
        NAMES_FILES[3]: {code: f"face_{k}" for k, code in enumerate(CODES)}, NAMES_FILES[4]: {}}, monkeypatch)
    for key, colour, count, licence in (("noto", "f00", 30, noto_licence), ("twemoji", "0a0", 40, "CC-BY-4.0"),
                                        ("openmoji", "00f", 40, "CC-BY-SA-4.0")):
        style = next(s for s in STYLES if s.key == key)
        codes = CODES[:count] + ([f"{CODES[0]}-1F3FF"] if key == "twemoji" else [])
        icons = {f"icon-{c.lower()}": {"body": SQUARE.format(x=2 + k % 6, colour=colour)}
                 for k, c in enumerate(codes)}
        _tarball(folder, style.package, style.version, {
            "package/icons.json": {"prefix": key, "width": 16, "height": 16, "icons": icons},
            "package/chars.json": {c.lower(): f"icon-{c.lower()}" for c in codes},
            "package/package.json": {"name": style.package, "license": licence}}, monkeypatch)
    return folder


def _build(out: Path, registry: Path, styles: list[str], **kw) -> dict:
    return build_emoji_dataset(out, size=64, styles=styles, cache_dir=registry, render_cache=registry / "render",
                               test_fraction=0.2, jobs=1, progress=False, **kw)


def test_a_build_is_stable_when_styles_are_added_and_byte_identical(tmp_path, monkeypatch) -> None:
    registry = fake_registry(tmp_path / "npm", monkeypatch)
    two = _build(tmp_path / "two", registry, ["noto", "twemoji"])
    three = _build(tmp_path / "three", registry, ["twemoji", "openmoji", "noto"])
    assert two["counts"]["per_style"]["noto"] == three["counts"]["per_style"]["noto"]
    assert sum(two["counts"]["per_style"]["twemoji"].values()) == 41 and two["emoji"] == 40
    assert 3 <= two["held_out_count"] <= 16 and two["held_out"] == three["held_out"]
    assert "openmoji" in three["summary"] and "built in" in three["summary"]
    rows = {p: [json.loads(x) for x in (tmp_path / p / "metadata.jsonl").read_text().splitlines()]
            for p in ("two", "three")}
    kept = {r["file_name"]: r for r in rows["three"]}
    for r in rows["two"]:  # the same picture, the same row, the same split
        assert kept[r["file_name"]] == r
        assert (tmp_path / "two" / r["file_name"]).read_bytes() == (tmp_path / "three" / r["file_name"]).read_bytes()
    splits = defaultdict(set)
    for r in rows["three"]:
        splits[r["base"]].add(r["split"])
    assert all(len(s) == 1 for s in splits.values())  # a skin tone follows its emoji
    with Image.open(tmp_path / "two" / "images" / "noto" / f"{CODES[0].lower()}.png") as im:
        assert im.getpixel((0, 0)) == (255, 255, 255) and im.getpixel((20, 32)) == (255, 0, 0)
    before = {p: p.read_bytes() for p in (tmp_path / "two").rglob("*") if p.is_file()}
    cached = sorted((registry / "render").rglob("*.png"))
    again = _build(tmp_path / "two", registry, ["noto", "twemoji"])  # from the render cache
    assert sorted((registry / "render").rglob("*.png")) == cached
    assert {p: p.read_bytes() for p in (tmp_path / "two").rglob("*") if p.is_file()} == before
    assert again["metadata_sha256"] == two["metadata_sha256"]


def test_default_styles_leave_the_other_styles_naming_themselves(tmp_path, monkeypatch) -> None:
    registry = fake_registry(tmp_path / "npm", monkeypatch)
    m = _build(tmp_path / "d", registry, ["noto", "openmoji"], default_styles=["noto"])
    assert m["default_styles"] == ["noto"]
    rows = [json.loads(x) for x in (tmp_path / "d" / "metadata.jsonl").read_text().splitlines()]
    for r in rows:
        captions = caption_variants(r)[0]
        if r["style"] == "noto":
            assert "style_in_caption" not in r and r["label"] in captions
        else:
            assert r["style_in_caption"] is True and all("openmoji" in c for c in captions)
    with pytest.raises(GouacheError, match="default style.*twemoji.*not among the styles built"):
        _build(tmp_path / "x", registry, ["noto"], default_styles=["twemoji"])


def test_subsets_forced_splits_and_refusals(tmp_path, monkeypatch) -> None:
    registry = fake_registry(tmp_path / "npm", monkeypatch)
    m = _build(tmp_path / "sub", registry, ["twemoji"], only=[CODES[0], f"{CODES[0]}-1f3ff", CODES[1]],
               test=[CODES[0]])
    assert m["counts"]["per_split"] == {"test": 2, "train": 1} and m["held_out"] == [CODES[0]]
    with pytest.raises(GouacheError, match="unknown style"):
        _build(tmp_path / "x", registry, ["apple"])
    with pytest.raises(GouacheError, match="size must be one of"):
        build_emoji_dataset(tmp_path / "x", size=100, cache_dir=registry)
    bad = fake_registry(tmp_path / "bad", monkeypatch, noto_licence="GPL-3.0")
    with pytest.raises(GouacheError, match="declares licence 'GPL-3.0'"):
        _build(tmp_path / "x", bad, ["noto"])
    assert normalize_hexcode(CODES[0]) == CODES[0]


def test_the_cli_builds_and_reports_mistakes_in_one_line(tmp_path, capsys, monkeypatch) -> None:
    from gouache.cli.main import main

    registry = fake_registry(tmp_path / "npm", monkeypatch)
    main(["data", "emoji", "--out", str(tmp_path / "ds"), "--size", "64", "--styles", "twemoji,noto",
          "--cache-dir", str(registry), "--jobs", "1"])
    out = capsys.readouterr().out
    assert "noto" in out and "twemoji" in out and "length in words" in out and "built in" in out
    assert (tmp_path / "ds" / "images" / "twemoji").is_dir()
    for argv, message in ((["--styles", "apple"], "unknown style(s) apple"),
                          (["--size", "100"], "size must be one of 64, 128, 256"),
                          (["--source", "png", "--styles", "noto"], "--source png has the styles")):
        with pytest.raises(SystemExit) as e:
            main(["data", "emoji", "--out", str(tmp_path / "x"), "--cache-dir", str(registry), *argv])
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
