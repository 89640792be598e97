"""onnxruntime-web, the runtime the page runs its networks with: fetched once from the npm
registry (``npm pack``, which checks the package's checksum) into a cache, never committed.

Its files in a site, under ``ort/``:

    ort.wasm.min.js, ort-wasm-simd-threaded.{mjs,wasm}                   WebAssembly, every browser
    ort.jspi.min.js, ort-wasm-simd-threaded.jspi.{mjs,wasm}              WebGPU, where the browser has it

The WebGPU build is the one for browsers with JavaScript Promise Integration (16.8 MB; the
asyncify build for the others weighs 26.8 MB and would take a download past 60 MB); a browser
with WebGPU but without JSPI runs the WebAssembly build.

``GOUACHE_ORT_WEB`` may name a folder that already holds these files (an unpacked package's
``dist/``), for machines without npm.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from gouache.errors import GouacheError

__all__ = ["ORT_WEB_VERSION", "ORT_WEB_INTEGRITY", "WASM_FILES", "WEBGPU_FILES", "runtime_dir", "ORT_WEB_ENV"]

ORT_WEB_VERSION = "1.30.0"  # MIT licence (LICENSES/THIRD_PARTY.md)
ORT_WEB_INTEGRITY = ("sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZClzcV7svNc4rKY3jL02Vb7QmRMDs1SigqR4CXAfKYQ==")
WASM_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
WEBGPU_FILES = ("ort.jspi.min.js", "ort-wasm-simd-threaded.jspi.mjs", "ort-wasm-simd-threaded.jspi.wasm")
ORT_WEB_ENV = "GOUACHE_ORT_WEB"


def _cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gouache" / f"onnxruntime-web-{ORT_WEB_VERSION}"


def runtime_dir() -> Path:
    """A folder holding ``WASM_FILES`` and ``WEBGPU_FILES``: ``GOUACHE_ORT_WEB``, or the cache,
    filled from the npm registry the first time."""
    given = os.environ.get(ORT_WEB_ENV)
    folder = Path(given) if given else _cache()
    if all((folder / f).is_file() for f in WASM_FILES + WEBGPU_FILES):
        return folder
    if given:
        raise GouacheError(f"{ORT_WEB_ENV}={given} lacks the onnxruntime-web {ORT_WEB_VERSION} files "
                           f"({', '.join(WASM_FILES + WEBGPU_FILES)})")
    _fetch(folder)
    return folder


def _fetch(folder: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise GouacheError(f"the page needs onnxruntime-web {ORT_WEB_VERSION}: install npm (Node.js) so that "
                           f"gouache can fetch it once, or set {ORT_WEB_ENV} to a folder with its dist/ files")
    with tempfile.TemporaryDirectory() as tmp:
        spec = f"onnxruntime-web@{ORT_WEB_VERSION}"
        run = subprocess.run([npm, "pack", spec, "--json", "--silent"], cwd=tmp, capture_output=True, text=True)
        packed = list(Path(tmp).glob("onnxruntime-web-*.tgz"))
        if run.returncode or not packed:
            raise GouacheError(f"npm pack {spec} failed: {(run.stderr or run.stdout).strip().splitlines()[-1:]}")
        if ORT_WEB_INTEGRITY not in run.stdout:
            raise GouacheError(f"npm pack {spec}: not the package gouache was tested with (checksum differs)")
        part = folder.with_name(folder.name + ".part")
        shutil.rmtree(part, ignore_errors=True)
        part.mkdir(parents=True)
        with tarfile.open(packed[0]) as tar:
            for name in WASM_FILES + WEBGPU_FILES:
                src = tar.extractfile(f"package/dist/{name}")
                (part / name).write_bytes(src.read())
        shutil.rmtree(folder, ignore_errors=True)
        part.rename(folder)
