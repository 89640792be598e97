"""Which batch source a run draws from: the one place that builds it, for training, LoRA tuning
and distillation alike (the kinds live in ``sources.py``, ``resident.py`` and ``recolour.py``).

    images in memory (an imagefolder)   MemorySource: uniform, or balanced by a record field
      with the base's own pictures      PriorSource instead (a LoRA run's prior preservation)
      on the device                     ResidentSource around the MemorySource (asked, or "auto"
                                        on a GPU where it fits)
    streamed WebDataset shards          the StreamSource itself: the stream decides which images
    recoloured                          RecolourSource around an in-memory one, outermost
"""
from __future__ import annotations

import torch

from gouache.data.imagefolder import CaptionedImages, balanced_weights
from gouache.data.prompts import CaptionTable
from gouache.data.recolour import RecolourOptions, RecolourSource
from gouache.data.resident import ResidentSource, fits_on, resident_bytes
from gouache.data.sources import BatchSource, MemorySource, PriorSource
from gouache.errors import GouacheError
from gouache.model.text import TextEncoder

__all__ = ["batch_source"]


def batch_source(data: CaptionedImages | BatchSource, table: CaptionTable | None, device: torch.device, *,
                 balance_by: str = "", resident: str = "off", prior: int = 0,
                 recolour: RecolourOptions = RecolourOptions(),
                 encoder: TextEncoder | None = None) -> BatchSource:
    """A run's batch source. ``data``: images in memory with their caption ``table``, or a
    streamed source (``table`` None). ``balance_by``: a record field whose values come equally
    often. ``resident``: "on", "off" or "auto" (``TrainConfig.resident_data``). ``prior``: the
    last this many images are the base's own. ``encoder`` encodes the recoloured captions."""
    if not isinstance(data, CaptionedImages):  # a stream decides itself which images come
        if balance_by or prior:
            raise GouacheError(f"{'balance_by' if balance_by else 'lora_prior'} needs the images in memory "
                               "(an imagefolder), not streamed shards")
        if resident == "on":
            raise GouacheError("resident_data = \"on\" needs the images in memory (an imagefolder), "
                               "not streamed shards")
        source = data
    else:
        new = len(data) - prior
        weights = balanced_weights(data.records[:new], balance_by) if balance_by else None
        source = PriorSource(data, table, new, weights) if prior else MemorySource(data, table, weights)
        if not prior and _on_device(resident, recolour, data, table, device):  # the same draws, gathered there
            source = ResidentSource(source, device)
    if recolour.prob > 0:  # where a training image gets its caption: recoloured and recaptioned
        if encoder is None:
            raise ValueError("recolouring needs the text encoder for the new captions")
        source = RecolourSource(source, recolour, encoder)
    return source


def _on_device(resident: str, recolour: RecolourOptions, data: CaptionedImages, table: CaptionTable,
               device: torch.device) -> bool:
    """Whether the images and prompt states go to the device."""
    if resident == "on" and recolour.prob > 0:
        raise GouacheError("resident_data = \"on\" cannot recolour: recolouring works on the CPU's images")
    if resident == "off" or recolour.prob > 0:
        return False
    return resident == "on" or fits_on(device, resident_bytes(data, table))
