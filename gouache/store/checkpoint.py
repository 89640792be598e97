"""Checkpoints: safetensors weights, JSON configs, written so that a crash loses nothing.

A model folder (what ``--model`` takes) holds

    config.json         the ModelConfig
    ema.safetensors     the EMA weights that sampling uses

and, in a run's checkpoints, also what resuming needs:

    model.safetensors   the raw weights
    train.safetensors   AdamW moments and the random generators' states
    state.json          step, AdamW hyper-parameters, the TrainConfig

A checkpoint is written into a temporary folder that is renamed into place only
when complete; then ``latest.txt`` in the run folder is replaced atomically. A
run killed at any moment keeps its last complete checkpoint; the temporary
folder it may leave is removed when a run starts there and after each save.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Collection, Sequence

import torch

from gouache.errors import DiskFull, GouacheError, raise_if_disk_full
from gouache.model.config import ModelConfig
from gouache.model.lora import merge
from gouache.model.noinit import no_initial_weights
from gouache.model.text import DEFAULT_TEXT_MODEL, hub_allowed
from gouache.model.unet import UNet
from gouache.store.adapters import apply_adapters
from gouache.store.files import Inputs, check_output_folder, file_sha256, replacing, write_json
from gouache.store.latest import read_latest
from gouache.store.reading import KB, MB, MissingFile, TensorSpec, read_bytes, read_json, safetensors_header
from gouache.store.tensors import check_finite, check_tensors, contiguous, read_tensors, save_tensors
from gouache.store.train_state import STATE_FILE, load_train_state, read_run_state

__all__ = ["write_model_weights", "save_run_state", "clear_partial_checkpoints", "run_step",
           "load_weights", "load_network", "load_train_state", "default_model_dir", "resolve_model_dir",
           "read_model_config", "checkpoint_record", "check_export_folder", "export_model", "average_weights",
           "check_weights", "check_model_folder", "text_model_of"]


def clear_partial_checkpoints(run: Path) -> None:
    """Remove the temporary folders of checkpoints that were never completed (a killed save)."""
    for tmp in (Path(run) / "checkpoints").glob(".tmp-step-*"):
        shutil.rmtree(tmp, ignore_errors=True)


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    sd = opt.state_dict()
    tensors = {f"state.{i}.{k}": torch.as_tensor(v) for i, s in sd["state"].items() for k, v in s.items()}
    return tensors, sd["param_groups"]


def write_model_weights(folder: Path, *, model_config: ModelConfig, net: torch.nn.Module,
                        ema: torch.nn.Module) -> None:
    """A checkpoint's model: its config, the EMA weights (what sampling loads) and the trained ones."""
    write_json(model_config.to_dict(), folder / "config.json")
    save_tensors(contiguous(ema.state_dict()), folder / "ema.safetensors")
    save_tensors(contiguous(net.state_dict()), folder / "model.safetensors")


def save_run_state(run: Path, *, step: int, weights: Callable[[Path], None], optimizer: torch.optim.Optimizer,
                   generators: dict[str, torch.Generator], train_config: dict, keep: int = 2) -> Path:
    """The atomic checkpoint: ``weights(folder)`` writes the weights, this the optimiser,
    generators and step, into a temporary folder renamed to ``run/checkpoints/step-N``."""
    run = Path(run)
    final = run / "checkpoints" / f"step-{step:08d}"
    tmp, old = (run / "checkpoints" / f".{end}-step-{step:08d}" for end in ("tmp", "old"))
    shutil.rmtree(tmp, ignore_errors=True)
    try:  # a failure (a full disk: one line) leaves the last complete checkpoint and no temporary folder
        tmp.mkdir(parents=True)
        weights(tmp)
        opt_tensors, groups = _optimizer_tensors(optimizer)
        rng = {f"rng.{name}": g.get_state() for name, g in generators.items()}
        save_tensors(contiguous(opt_tensors | rng), tmp / "train.safetensors")
        write_json({"step": step, "param_groups": groups, "train_config": train_config}, tmp / "state.json")
        if final.exists():  # this step saved before (a resume from an earlier one): set aside until replaced
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
        tmp.rename(final)
        with replacing(run / "latest.txt") as latest:
            latest.write_text(str(final.relative_to(run)) + "\n")
    except DiskFull:
        raise DiskFull(f"disk full while writing {final}; the checkpoints before it are kept") from None
    except OSError as e:
        if old.exists() and not final.exists():
            old.rename(final)
        raise_if_disk_full(e, final)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    _prune(run / "checkpoints", keep)
    clear_partial_checkpoints(run)
    return final


def _prune(folder: Path, keep: int) -> None:
    done = sorted(p for p in folder.glob("step-*") if p.is_dir())
    for old in done[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)


def default_model_dir() -> Path:
    """The emoji model that ships inside the package."""
    return Path(__file__).resolve().parent.parent / "models" / "emoji64"


def resolve_model_dir(path: Path | str) -> Path:
    """A model folder, or a run folder (followed to its latest checkpoint)."""
    path = Path(path)
    if (path / "ema.safetensors").exists():
        return path
    latest = read_latest(path)  # a checkpoint inside the run folder, or None
    if latest is not None:
        return latest
    if not path.exists():
        raise GouacheError(f"no such model or run folder: {path}")
    raise GouacheError(f"{path} holds no checkpoint (expected ema.safetensors or latest.txt)")


def run_step(run: Path | str) -> int | None:
    """The step of a run folder's latest checkpoint (``latest.txt``); None when it has none."""
    latest = Path(run) / "latest.txt"
    if not latest.is_file():  # a stat: a pipe in its place is never opened
        return None
    try:
        text = read_bytes(latest, what="the run's", limit=KB).decode("utf-8", "replace")
    except GouacheError:  # too large to be one: a run all the same
        return 0
    digits = text.strip().rpartition("step-")[2]
    return int(digits) if digits.isascii() and digits.isdigit() else 0


def read_model_config(folder: Path) -> ModelConfig:
    """A model folder's config.json: each field typed, the network's cost bounded (``unet.check_cost``,
    before anything is built) and ``text_model`` the bundled encoder or a path inside the folder."""
    path = Path(folder) / "config.json"
    try:
        d = read_json(path, what="model config", limit=MB)
    except MissingFile:
        raise GouacheError(f"{path} is missing: a model folder needs its config.json") from None
    for key in ("unet", "schedule"):
        if key in d and not isinstance(d[key], dict):
            raise GouacheError(f"{path}: not a gouache model config ({key} must be an object)")
    try:
        config = ModelConfig.from_dict(d)
    except GouacheError as e:
        raise GouacheError(f"{path}: {e}") from None
    except (KeyError, TypeError, ValueError) as e:
        raise GouacheError(f"{path}: not a gouache model config ({type(e).__name__}: {e})") from None
    name = Path(config.text_model)
    if config.text_model != DEFAULT_TEXT_MODEL and (name.is_absolute() or ".." in name.parts
                                                     or config.text_model.startswith("~")):
        raise GouacheError(f"{path}: text_model {config.text_model!r} must be {DEFAULT_TEXT_MODEL!r} or a "
                           "folder inside the model folder")
    return config


def text_model_of(folder: Path, config: ModelConfig) -> str:
    """The prompt encoder of the model in ``folder``, as ``TextEncoder`` takes it: the bundled
    encoder, or ``config.text_model`` as a folder inside ``folder`` (never one beside it), or a
    hub name when the user allows those (``GOUACHE_ALLOW_HUB=1``)."""
    if config.text_model == DEFAULT_TEXT_MODEL:
        return config.text_model
    inside = Path(folder) / config.text_model
    if inside.is_dir():
        return str(inside)
    if hub_allowed():
        return config.text_model
    raise GouacheError(f"cannot load the text encoder {config.text_model!r}: no such folder in {folder}; gouache "
                       "reads prompt encoders from disk only (to let transformers fetch a hub name, run with "
                       "GOUACHE_ALLOW_HUB=1)")


def _weights_header(path: Path) -> dict[str, TensorSpec]:
    try:
        return safetensors_header(path, what="weights")[0]
    except MissingFile:
        raise GouacheError(f"{path} is missing") from None


def _specs(module: torch.nn.Module) -> dict[str, TensorSpec]:
    return {k: TensorSpec(v.dtype, tuple(v.shape)) for k, v in module.state_dict().items()}


def check_model_folder(folder: Path, *, values: bool = False) -> ModelConfig:
    """A model folder's config (``read_model_config``), once its ``ema.safetensors`` header (and a
    run's ``model.safetensors``) is checked to hold that network's tensors; with ``values`` every
    value is read and must be finite, else no tensor is read."""
    config = read_model_config(folder)
    with torch.random.fork_rng(devices=[]), no_initial_weights():  # nothing drawn, memory never touched
        net = UNet(config.unet)
    for name in ("ema", "model"):
        path = Path(folder) / f"{name}.safetensors"
        if name == "ema" or path.exists():
            check_weights(net, path, values=values)
    return config


def checkpoint_record(folder: Path) -> dict:
    """What a report records of the checkpoint it measured: its folder, the sha256 of its
    ``ema.safetensors`` and, in a run, its training step."""
    ema = Path(folder) / "ema.safetensors"
    _weights_header(ema)  # a regular file (never a pipe to wait on), with a safetensors header
    record: dict = {"folder": str(folder), "ema_sha256": file_sha256(ema)}
    if (Path(folder) / STATE_FILE).exists():
        record["step"] = read_run_state(folder).step
    return record


def load_network(model: Path | str) -> tuple[UNet, ModelConfig]:
    """The EMA network of a model or run folder, with its config."""
    folder = resolve_model_dir(model)
    config = read_model_config(folder)  # its cost bounded before anything is built
    _weights_header(folder / "ema.safetensors")
    with no_initial_weights():  # every weight is read from the file next (load_weights checks)
        net = UNet(config.unet)
    load_weights(net, folder / "ema.safetensors")
    return net, config


def check_weights(module: torch.nn.Module, path: Path, *, values: bool = False) -> None:
    """Refuse the weights file ``path`` unless its header declares ``module``'s tensors (names,
    shapes, float dtypes); with ``values`` every value is read and must be finite, else nothing
    but the header is read."""
    check_tensors(Path(path), _weights_header(Path(path)), _specs(module), what="weights", any_float=True)
    if values:
        check_finite(path, read_tensors(Path(path), what="weights"))


def load_weights(module: torch.nn.Module, path: Path) -> None:
    """Load a safetensors file into ``module``: its header is checked against the module's
    tensors (``check_weights``) before any tensor is read, and every value must be finite; a
    failure names the file and the mismatch."""
    path = Path(path)
    own = module.state_dict()
    check_weights(module, path)
    sd = check_finite(path, read_tensors(path, what="weights"))
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in sd.items()})


def check_export_folder(out: Path | str, inputs: Inputs, *, what: str = "--out", overwrite: bool = False) -> Path:
    """A folder that an export writes anew (``files.replacing_folder``): new or empty, or ``overwrite``;
    never one of its ``inputs``, nor a run or a checkpoint (an export replaces no run's weights)."""
    out = check_output_folder(out, what=what, inputs=inputs, overwrite=overwrite, replace=True)
    if any((out / name).exists() for name in ("state.json", "latest.txt", "checkpoints")):
        raise GouacheError(f"{what} {out} holds a run or one of its checkpoints; name another folder")
    return out


def export_model(src: Path | Sequence[Path], dst: Path, *, dtype: torch.dtype = torch.float16,
                 lora: Sequence = ()) -> Path:
    """Write a checkpoint's config and EMA weights (fp16 by default) as a model folder.

    ``lora``: low-rank adapters (``FILE[:SCALE]``, see ``lora.py``) merged into the weights
    for good (one source only: an adapter fits the weights it was trained on).

    Given several checkpoints, their EMA weights are averaged uniformly: a "model
    soup" (Wortsman et al., "Model soups: averaging weights of multiple fine-tuned
    models improves accuracy without increasing inference time", 2022). That only
    makes sense for networks that share a starting point (one run continued or
    fine-tuned from another), so their fixed buffers must agree.
    """
    dst = check_output_folder(dst)
    srcs = [resolve_model_dir(s) for s in ([src] if isinstance(src, (str, Path)) else src)]
    if not srcs:
        raise GouacheError("export needs at least one run or model folder")
    config = _same_config(srcs)  # every folder's config and weights header checked
    if lora and len(srcs) > 1:
        raise GouacheError("--merge-lora merges adapters into one model: name one run or model folder")
    weights = average_weights(srcs, buffers=_buffer_names(config))
    if lora:
        weights = _merged(weights, config, srcs[0], lora)
    dst.mkdir(parents=True, exist_ok=True)
    write_json(config.to_dict(), dst / "config.json")
    save_tensors(contiguous(weights, dtype), dst / "ema.safetensors")
    return dst


def _merged(weights: dict[str, torch.Tensor], config: ModelConfig, base: Path, lora: Sequence
            ) -> dict[str, torch.Tensor]:
    """``weights`` (of the model in ``base``) with the adapters added in for good."""
    net = UNet(config.unet)
    net.load_state_dict(weights)
    apply_adapters(net, base, lora)
    return merge(net).state_dict()


def average_weights(folders: Sequence[Path], *, buffers: Collection[str] = ()) -> dict[str, torch.Tensor]:
    """The mean of the folders' EMA weights (summed in float64); ``buffers`` must be equal in all."""
    first = check_finite(folders[0], read_tensors(Path(folders[0]) / "ema.safetensors", what="weights"))
    total = {k: v.double() for k, v in first.items()}
    for folder in folders[1:]:
        sd = check_finite(folder, read_tensors(Path(folder) / "ema.safetensors", what="weights"))
        if set(sd) != set(first):
            raise GouacheError(f"{folder}: holds other tensors than {folders[0]}")
        for key in buffers:
            # compared to fp16's precision, so an exported model averages with its fp32 run
            if key in sd and not torch.allclose(sd[key].float(), first[key].float(), rtol=1e-3, atol=1e-6):
                raise GouacheError(f"{folder} and {folders[0]} differ in the fixed buffer {key}: they do "
                                   "not share a starting point, and averaging unrelated networks "
                                   "gives noise")
        for key, v in sd.items():
            total[key] += v.double()
    return {k: (v / len(folders)).float() for k, v in total.items()}


def _same_config(folders: list[Path]) -> ModelConfig:
    """The first folder's config, once the others are checked to describe the same network
    (each folder's weights header checked against its config: ``check_model_folder``)."""
    first = check_model_folder(folders[0])
    for folder in folders[1:]:
        other = check_model_folder(folder)
        # the training noise distribution (p_mean, p_std) may differ between runs; the rest may not
        same = (other.unet == first.unet and other.text_model == first.text_model
                and other.text_max_length == first.text_max_length
                and other.schedule.sigma_data == first.schedule.sigma_data)
        if not same:
            raise GouacheError(f"{folder} and {folders[0]} hold different networks or prompt encoders: "
                               "only checkpoints of one model can be averaged")
    return first


def _buffer_names(config: ModelConfig) -> set[str]:
    with torch.device("meta"):  # names only: no memory, no initialisation
        return {name for name, _ in UNet(config.unet).named_buffers()}
