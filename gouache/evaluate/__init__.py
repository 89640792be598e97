"""``gouache eval``: measure a checkpoint against real images (FID, KID, prompt fidelity, memorisation).

The heavy modules (torchmetrics, matplotlib, the Inception network) load only when
``evaluate`` runs, so that importing this package, or the CLI, stays cheap.
"""
from __future__ import annotations

from typing import Any

__all__ = ["evaluate", "format_report"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from gouache.evaluate import report

        return getattr(report, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
