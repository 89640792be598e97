"""The compiled training network: which mode each setting means, and the eager fallback."""
import pytest
import torch

from gouache.model.unet import PRESETS, UNet
from gouache.training.compiling import CompiledNet, compile_mode


@pytest.mark.parametrize("setting, device, mode", [
    ("auto", "cuda", "default"), ("auto", "cpu", None), ("off", "cuda", None),
    ("default", "cpu", "default"), ("reduce-overhead", "cuda", "reduce-overhead"),
])
def test_auto_compiles_on_cuda_only(setting, device, mode):
    assert compile_mode(setting, torch.device(device)) == mode


def test_a_compiler_that_fails_at_once_leaves_the_network_eager(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("no C compiler found\nmore detail")

    monkeypatch.setattr(torch, "compile", broken)
    net = UNet(PRESETS["tiny"])
    runner = CompiledNet(net, "default")
    assert not runner.active
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "torch.compile (mode default) failed" in err and "no C compiler" in err
    x, t = torch.randn(2, 3, 16, 16), torch.zeros(2)
    cond = dict(tokens=torch.randn(2, 4, 384), mask=torch.ones(2, 4, dtype=torch.bool), pooled=torch.randn(2, 384))
    with torch.no_grad():
        assert torch.equal(runner(x, t, **cond), net(x, t, **cond))


def test_eager_and_quiet_runners_say_nothing(capsys):
    assert not CompiledNet(UNet(PRESETS["tiny"]), None).active
    quiet = CompiledNet(UNet(PRESETS["tiny"]), "default", quiet=True)
    quiet.fall_back(RuntimeError("x"))
    assert not quiet.active and capsys.readouterr().err == ""
