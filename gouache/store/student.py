"""A model folder's few-step student: where it lives and what it was distilled from.

    MODEL/config.json, ema.safetensors      the diffusion model (the teacher)
    MODEL/student/config.json               the student: the same network shape,
    MODEL/student/ema.safetensors           its own weights,
    MODEL/student/student.json              and how it was made (``StudentInfo``)

A distillation run's checkpoints (``gouache distill``) hold the student in the same
three files; ``gouache export TEACHER --student RUN --out MODEL`` puts the two together,
refusing a student distilled from other weights.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from gouache.checks import at_least, between, check_fields, non_blank
from gouache.errors import GouacheError
from gouache.store.checkpoint import check_model_folder, export_model, load_network, resolve_model_dir
from gouache.store.files import write_json
from gouache.store.fingerprint import weights_fingerprint
from gouache.store.reading import read_record

__all__ = ["StudentInfo", "STUDENT_DIR", "INFO_FILE", "read_student_info", "load_student", "check_student",
           "copy_student", "refuse_bare_student", "student_folder"]

STUDENT_DIR = "student"
INFO_FILE = "student.json"


@dataclass(frozen=True)
class StudentInfo:
    """How a student was distilled; ``guidance`` is the scale folded into it."""

    guidance: float
    teacher: str  # the teacher folder's name
    teacher_sha256: str  # the teacher's ``weights_fingerprint`` (``fingerprint.py``)
    method: str = "consistency distillation"
    solver: str = "heun"
    intervals: int = 40
    step: int = 0

    def __post_init__(self) -> None:
        check_fields(self, {"guidance": (between(0, 50), "from 0 to 50"), "teacher_sha256": (non_blank, "a checksum"),
                            "intervals": (at_least(2), "2 or more"), "step": (at_least(0), "0 or more")},
                     what=INFO_FILE)


def read_student_info(folder: Path) -> StudentInfo:
    """A student's ``student.json``, each field typed and checked."""
    return read_record(Path(folder) / INFO_FILE, StudentInfo, what="student description",
                       missing="not a few-step student", kind="a student description")


def refuse_bare_student(folder: Path) -> None:
    """A distillation run's checkpoint is a student without its teacher: say how to join them."""
    if (Path(folder) / INFO_FILE).exists():
        raise GouacheError(f"{folder} is a few-step student on its own: join it to its teacher with "
                           f"gouache export TEACHER --student RUN --out MODEL, and use MODEL")


def student_folder(path: Path | str) -> Path:
    """The student weights ``path`` names: a model folder's ``student/``, a student folder, or
    a distillation run (its latest checkpoint); refused when it is none of these."""
    path = Path(path)
    folder = path / STUDENT_DIR if (path / STUDENT_DIR).is_dir() else resolve_model_dir(path)
    read_student_info(folder)  # a student, not a diffusion model
    return folder


def load_student(model: Path) -> tuple[torch.nn.Module, StudentInfo] | None:
    """The student network of a model folder, with its info; None if it has none."""
    folder = Path(model) / STUDENT_DIR
    if not folder.is_dir():
        return None
    info = read_student_info(folder)
    return load_network(folder)[0], info


def check_student(teacher: Path | str, run: Path | str) -> tuple[Path, StudentInfo]:
    """The checkpoint folder and info of the student in ``run``; refused unless it was
    distilled from the weights in ``teacher`` (a model or run folder)."""
    src = resolve_model_dir(run)
    info = read_student_info(src)
    check_model_folder(src)  # its config and weights, before the teacher's export writes anything
    theirs = weights_fingerprint(resolve_model_dir(teacher))
    if info.teacher_sha256 != theirs:
        raise GouacheError(f"--student {run} was distilled from {info.teacher} ({info.teacher_sha256[:12]}), "
                           f"not from these weights ({theirs[:12]}): export its own teacher")
    return src, info


def copy_student(model: Path, src: Path, info: StudentInfo, *, dtype: torch.dtype = torch.float16) -> Path:
    """Write the student checkpoint ``src`` (``check_student``'s answer) into ``model/student``,
    which must not hold one yet (``gouache export`` writes a new model folder)."""
    dst = Path(model) / STUDENT_DIR
    export_model(src, dst, dtype=dtype)
    write_json(asdict(info), dst / INFO_FILE)
    return dst
