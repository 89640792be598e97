"""The benchmarks' parts that can be wrong without being slow: the equal-work pairing of
gouache and diffusers networks (counted on the meta device, no arithmetic), and the
wrapper that lets gouache's samplers drive a diffusers epsilon network. The timings
themselves are for ``python benchmarks/speed.py`` and ``quality_per_minute.py``.
"""
from __future__ import annotations

import importlib.util
import json
import types
from pathlib import Path

import pytest
import torch

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


def _qpm_module():
    spec = importlib.util.spec_from_file_location("gouache_bench_qpm", SPEED.parent / "quality_per_minute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _OracleEps(torch.nn.Module):
    """The exact noise of a known clean image at integer DDPM timesteps."""

    def __init__(self, x0: torch.Tensor, alphas_cumprod: torch.Tensor) -> None:
        super().__init__()
        self.x0, self.abar = x0, alphas_cumprod

    def forward(self, xt, t, *, encoder_hidden_states, encoder_attention_mask):
        a = self.abar[t.round().long()][:, None, None, None]
        eps = (xt - a.sqrt() * self.x0) / (1 - a).sqrt()
        return types.SimpleNamespace(sample=eps)


def test_eps_denoiser_maps_ddpm_timesteps_to_sigmas_and_recovers_the_clean_image():
    pytest.importorskip("diffusers")
    qpm = _qpm_module()
    from diffusers import DDPMScheduler

    abar = DDPMScheduler().alphas_cumprod
    x0 = torch.rand(2, 3, 8, 8) * 2 - 1
    model = qpm.EpsDenoiser(_OracleEps(x0, abar), abar)
    ddpm_sigma = ((1 - abar) / abar).sqrt()
    t = torch.tensor([0, 17, 500, 999])
    sigma = ddpm_sigma[t]

    assert torch.allclose(model.timestep(sigma), t.float(), atol=1e-3)
    midway = (ddpm_sigma[t[:3]] * ddpm_sigma[t[:3] + 1]).sqrt()  # halfway in log sigma
    assert torch.allclose(model.timestep(midway), t[:3] + 0.5, atol=1e-3)
    for s in sigma[1:]:  # D(x0 + sigma n, sigma) = x0 when eps is exact
        noisy = x0 + s * torch.randn_like(x0)
        cond = dict(tokens=torch.zeros(2, 4, 384), mask=torch.ones(2, 4, dtype=torch.bool))
        assert torch.allclose(model(noisy, s, **cond), x0, atol=1e-3)


def test_the_real_loops_pace_leaves_out_the_compiling_first_row(tmp_path):
    """log.csv's images_per_second is over the whole run so far; between two rows the pace is
    what the loop does once compiled: 1,000 images in the 10 s after the first row."""
    speed = _speed_module()  # puts benchmarks/ on the path
    import gpu_table

    log = tmp_path / "log.csv"
    log.write_text("time,step,loss,lr,images_per_second,heldout_loss\n"
                   "100,100,0.5,0.001,50,\n"  # 1,000 images in 20 s (most of it compiling)
                   f"110,200,0.4,0.001,{2000 / 30},\n")  # 2,000 images in 30 s
    pace = gpu_table.steady_pace(log, batch=10)
    assert pace["steady_images_per_s"] == pytest.approx(100) and pace["whole_images_per_s"] == pytest.approx(66.67, rel=1e-3)
    assert (pace["t0"], pace["t1"], pace["last_loss"]) == (100, 110, 0.4)
    assert speed.gpu_table is gpu_table


def test_the_gpu_table_runs_on_the_cpu_at_a_tiny_size(tmp_path, emoji_fixture, capsys):
    """Every kind of row but the compiled ones (tests/test_train.py compiles) and diffusers' (the
    equal-work pair's gouache row too, which is built beside diffusers', where it is installed)."""
    import importlib.util

    speed = _speed_module()
    pair = ["pair-gouache-eager"] if importlib.util.find_spec("diffusers") else []
    recipe = tmp_path / "tiny.toml"
    recipe.write_text("steps = 1000\ncooldown = 200\nbatch_size = 4\nwarmup = 2\nlog_every = 2\n"
                      "checkpoint_every = 1000\nsample_every = 0\neval_every = 0\n[model]\npreset = \"tiny\"\n")
    out = tmp_path / "gpu.json"
    speed.main(["--device", "cpu", "--table", "gpu", "--quick", "--threads", "1", "--json", str(out),
                "--rows", ",".join(["peak", "base-1024-eager", *pair, "loop"]), "--loop-data", str(emoji_fixture),
                "--loop-config", str(recipe), "--loop-minutes", "0.1", "--loop-out", str(tmp_path / "run")])
    rows = json.loads(out.read_text())["rows"]
    assert rows["peak"]["peak_tflops"] > 0
    for name in ["base-1024-eager", *pair]:
        assert rows[name]["images_per_s"] > 0 and 0 < rows[name]["mfu"], rows[name]
    assert rows["loop"]["exit"] == 0 and rows["loop"]["compile"] == "auto", rows["loop"]
    assert (tmp_path / "run" / "log.csv").is_file() and rows["loop"]["rows"] >= 1
    table = capsys.readouterr().out
    assert "| real loop (`gouache train`, auto) | 4 |" in table and "| base-1024-eager | 2 |" in table
