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
    with pytest.raises(GouacheError, match="sha512 differs from the pinned one"):
        npm.fetch_package("@iconify-json/noto", "1.2.9", tmp_path)
    monkeypatch.setitem(npm.PINNED, "@iconify-json/noto@1.2.9", npm.integrity(cached))
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


def test_every_package_a_build_uses_is_pinned() -> None:
    from gouache.data.build.emoji import NAMES_PACKAGE
    from gouache.data.build.emoji_png import PACKAGES
    from gouache.data.build.emoji_styles import REFERENCE_PACKAGES, STYLES

    used = {NAMES_PACKAGE, *PACKAGES.items(), *REFERENCE_PACKAGES.items(), *((s.package, s.version) for s in STYLES)}
    assert {f"{n}@{v}" for n, v in used} == set(npm.PINNED)
    assert all(pin.startswith("sha512-") and len(pin) == 95 for pin in npm.PINNED.values())
    with pytest.raises(GouacheError, match="has no pinned checksum"):
        npm.check_tarball(Path(__file__), "left-pad", "1.3.0")


def test_a_download_that_is_not_the_pinned_tarball_is_never_cached(tmp_path: Path, monkeypatch) -> None:
    fake = tmp_path / "bin" / "npm"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho altered > emojibase-data-17.0.0.tgz\n")
    fake.chmod(0o755)
    monkeypatch.setattr(npm.shutil, "which", lambda name: str(fake))
    with pytest.raises(GouacheError, match="not the tarball of emojibase-data@17.0.0"):
        npm.fetch_package("emojibase-data", "17.0.0", tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_members_that_would_leave_the_package_are_refused(tmp_path: Path) -> None:
    import io
    import tarfile

    for name in ("package/../../evil.json", "/etc/evil.json"):
        path = tmp_path / "p.tgz"
        with tarfile.open(path, "w:gz") as tf:
            info = tarfile.TarInfo(name)
            info.size = 2
            tf.addfile(info, io.BytesIO(b"{}"))
        with pytest.raises(GouacheError, match="would leave the package folder"):
            npm.read_tar_members(path, prefix="package/")
