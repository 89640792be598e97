"""One choice of device for training, sampling, evaluation and every rank."""
import pytest
import torch

from gouache.device import pick_device
from gouache.errors import GouacheError


def test_auto_and_cpu():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("name", ["bogus", "mps", "", "cuda:x"])
def test_unknown_devices_are_refused_by_name(name):
    with pytest.raises(GouacheError, match="device"):
        pick_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(GouacheError, match="no CUDA GPU"):
        pick_device("cuda")
