"""Several processes, one training run: thin helpers over torch.distributed.

``torchrun --nproc-per-node N -m gouache train ...`` starts N processes that
each see RANK, WORLD_SIZE and LOCAL_RANK. Every rank draws the same global
batch (same generators, same seed) and keeps its own contiguous share, so the
ranks read disjoint images, DistributedDataParallel averages the gradients, and
the result equals one process with the same global batch. NCCL on CUDA, Gloo on
the CPU. With a single process every helper here is a no-op.

Only rank 0 writes (checkpoints, samples, logs); the others wait for it at a
barrier after such steps, and decisions that must be unanimous (stopping on the
time limit) go through ``any_rank``, so no rank is left waiting at a collective
that the others skip.
"""
from __future__ import annotations

import atexit
import contextlib
import os

import torch
import torch.distributed as tdist
from torch import nn

__all__ = ["init", "is_distributed", "world_size", "rank", "is_main", "data_parallel", "sync_gradients",
           "shard", "mean", "any_rank", "broadcast_float", "barrier"]


def init(device: torch.device) -> bool:
    """Join the process group that torchrun describes, once; True if this call made it.

    NCCL when the ranks train on GPUs, else Gloo, so ``--device cpu`` works on a GPU
    machine too (``device`` is this rank's, from ``device.pick_device``). The group is
    destroyed at exit.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or tdist.is_initialized():
        return False
    tdist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    atexit.register(_shutdown)
    return True


def _shutdown() -> None:
    if tdist.is_initialized():
        tdist.destroy_process_group()


def is_distributed() -> bool:
    return tdist.is_available() and tdist.is_initialized() and tdist.get_world_size() > 1


def world_size() -> int:
    return tdist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return tdist.get_rank() if is_distributed() else 0


def is_main() -> bool:
    return rank() == 0


def data_parallel(net: nn.Module, device: torch.device) -> nn.Module:
    """``net`` in DistributedDataParallel when several ranks run (it averages the gradients),
    else ``net`` itself."""
    if not is_distributed():
        return net
    return nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)


def sync_gradients(net: nn.Module, sync: bool):
    """A context in which the backward pass averages gradients over ranks only if ``sync``
    (skipped on gradient-accumulation micro-batches but the last)."""
    if sync or not isinstance(net, nn.parallel.DistributedDataParallel):
        return contextlib.nullcontext()
    return net.no_sync()


def shard(t: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous share of a global batch (dim 0)."""
    if not is_distributed():
        return t
    return t.chunk(world_size())[rank()]


def mean(t: torch.Tensor) -> torch.Tensor:
    """The average of a scalar over ranks."""
    if is_distributed():
        t = t.clone()
        tdist.all_reduce(t, op=tdist.ReduceOp.AVG if t.device.type == "cuda" else tdist.ReduceOp.SUM)
        if t.device.type != "cuda":
            t /= world_size()
    return t


def _collective_device() -> torch.device:
    """Where a small tensor must live for a collective: the rank's GPU under NCCL."""
    return torch.device("cuda", torch.cuda.current_device()) if tdist.get_backend() == "nccl" else torch.device("cpu")


def any_rank(flag: bool) -> bool:
    """True on every rank if ``flag`` is True on any rank: a decision all ranks share."""
    if not is_distributed():
        return flag
    on = _collective_device()
    t = torch.tensor([int(flag)], device=on)
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return bool(t.item())


def broadcast_float(x: float) -> float:
    """Rank 0's value of ``x`` on every rank."""
    if not is_distributed():
        return x
    on = _collective_device()
    t = torch.tensor([x], dtype=torch.float64, device=on)
    tdist.broadcast(t, src=0)
    return float(t.item())


def barrier() -> None:
    """Wait until every rank gets here (e.g. while rank 0 writes a checkpoint)."""
    if is_distributed():
        if tdist.get_backend() == "nccl":
            tdist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            tdist.barrier()
