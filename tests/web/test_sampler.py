"""The page's sampler (gouache/web/static/sampler.js, run with node) draws torch's noise from a
seed and steps through the student's noise levels as Python does."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from gouache.model.schedule import NoiseSchedule
from gouache.sampling.samplers import SAMPLERS

STATIC = Path(__file__).resolve().parents[2] / "gouache" / "web" / "static"
NODE = shutil.which("node")
SEEDS = [0, 1, 7, 12345, 2**31 - 1, 2**32 + 7]  # torch keeps a seed's low 32 bits

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


def run_js(body: str) -> object:
    script = f"const s = require(process.argv[1]);\nprocess.stdout.write(JSON.stringify((() => {{ {body} }})()));"
    out = subprocess.run([NODE, "-e", script, str(STATIC / "sampler.js")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_seed_draws_torchs_noise():
    got = run_js(f"return {json.dumps(SEEDS)}.map((seed) => {{ const g = new s.MT19937(seed); "
                 "return [Array.from(s.randn(g, 3 * 64 * 64)), Array.from(s.randn(g, 40))]; });")
    for seed, (first, second) in zip(SEEDS, got):
        g = torch.Generator().manual_seed(seed)
        assert np.abs(np.array(first) - torch.randn(3, 64, 64, generator=g).flatten().numpy()).max() < 1e-5
        assert np.abs(np.array(second) - torch.randn(40, generator=g).numpy()).max() < 1e-5  # 40: no multiple of 16


@pytest.mark.parametrize("steps", [1, 2, 3, 4])
def test_the_students_noise_levels_are_pythons(steps):
    got = run_js(f"return s.consistencySigmas({steps}, 80, 8);")
    want = SAMPLERS["consistency"].sigmas(steps, NoiseSchedule(sigma_max=80.0))
    assert got == want.tolist()
