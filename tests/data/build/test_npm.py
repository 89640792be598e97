"""npm packages: cache file names, the missing-npm message, declared licences."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from gouache.data.build import npm
from gouache.errors import GouacheError


def test_tarball_names_follow_npm_pack() -> None:
    assert npm.tarball_name("emojibase-data", "17.0.0") == "emojibase-data-17.0.0.tgz"
    assert npm.tarball_name("@iconify-json/noto", "1.2.9") == "iconify-json-noto-1.2.9.tgz"


def test_fetch_uses_cache_and_explains_missing_npm(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(npm.shutil, "which", lambda name: None)
    cached = tmp_path / "iconify-json-noto-1.2.9.tgz"
    cached.write_bytes(b"not really a tarball")
    assert npm.fetch_package("@iconify-json/noto", "1.2.9", tmp_path) == cached
    with pytest.raises(GouacheError, match="npm is needed to fetch emoji artwork"):
        npm.fetch_package("@iconify-json/twemoji", "1.2.5", tmp_path)
    with pytest.raises(GouacheError, match="not a readable npm tarball"):
        npm.read_tar_members(cached, ["package/package.json"])


def test_package_licence_reads_both_forms() -> None:
    assert npm.package_licence(json.dumps({"license": "MIT"}).encode()) == "MIT"
    assert npm.package_licence(json.dumps({"license": {"type": "Apache-2.0"}}).encode()) == "Apache-2.0"
    old = {"licenses": [{"type": "MIT"}, {"type": "CC-BY-4.0"}]}
    assert npm.package_licence(json.dumps(old).encode()) == "MIT OR CC-BY-4.0"
    assert npm.package_licence(b"{}") == ""
