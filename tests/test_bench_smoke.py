"""The benchmark's equal-work pairing: gouache and diffusers networks of the same size.

Only the counting runs (on the meta device, no arithmetic): the timings themselves
are for ``python benchmarks/speed.py``.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SPEED = Path(__file__).resolve().parents[1] / "benchmarks" / "speed.py"


def _speed_module():
    spec = importlib.util.spec_from_file_location("gouache_bench_speed", SPEED)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("pair", ["small", "reference"])
def test_equal_work_pairs_match_within_ten_percent(pair):
    pytest.importorskip("diffusers")
    speed = _speed_module()

    work = speed.equal_work(pair, sizes=(64,))

    assert work["ratio_params"] == pytest.approx(1.0, abs=0.10), work
    assert work["ratio_flops_64"] == pytest.approx(1.0, abs=0.10), work
