"""The weights fingerprint: one meaning for a student's teacher and an adapter's base, and the
records written before it still read."""
import json
from pathlib import Path

import pytest

from gouache.errors import GouacheError
from gouache.model.lora import add_adapter
from gouache.store.adapters import AdapterInfo, apply_adapters, save_adapter
from gouache.store.checkpoint import default_model_dir, export_model, load_network
from gouache.store.files import file_sha256
from gouache.store.fingerprint import fingerprint_matches, weights_fingerprint
from gouache.store.student import STUDENT_DIR, read_student_info


def test_a_run_and_its_float16_export_share_the_fingerprint_not_the_bytes(tiny_model_dir, tmp_path):
    exported = export_model(tiny_model_dir, tmp_path / "model")
    assert weights_fingerprint(exported) == weights_fingerprint(tiny_model_dir)
    assert file_sha256(exported / "ema.safetensors") != file_sha256(tiny_model_dir / "ema.safetensors")
    assert fingerprint_matches(weights_fingerprint(tiny_model_dir), exported)


def test_the_shipped_student_records_its_teachers_fingerprint():
    model = default_model_dir()
    info = read_student_info(model / STUDENT_DIR)
    assert info.teacher_sha256 == weights_fingerprint(model)


def _adapter(model: Path, folder: Path, base_sha256: str) -> Path:
    net, _ = load_network(model)
    add_adapter(net, "a", rank=2, alpha=2.0, convs=True)
    info = AdapterInfo(rank=2, alpha=2.0, convs=True, base_model=model.name, base_sha256=base_sha256)
    folder.mkdir(parents=True, exist_ok=True)
    return save_adapter(net, "a", info, folder / "adapter.safetensors")


def test_an_adapter_recording_its_bases_file_sha256_still_loads(tiny_model_dir, tmp_path):
    """Adapter files written before the one fingerprint recorded the bytes' sha256."""
    old = _adapter(tiny_model_dir, tmp_path / "old", file_sha256(tiny_model_dir / "ema.safetensors"))
    assert json.loads(old.with_suffix(".json").read_text())["base_sha256"] != weights_fingerprint(tiny_model_dir)
    net, _ = load_network(tiny_model_dir)
    assert apply_adapters(net, tiny_model_dir, [old]) == ["lora0"]


def test_an_adapter_for_other_weights_is_refused(tiny_model_dir, tmp_path):
    other = _adapter(tiny_model_dir, tmp_path / "other", "0" * 64)
    net, _ = load_network(tiny_model_dir)
    with pytest.raises(GouacheError, match="was made for base model"):
        apply_adapters(net, tiny_model_dir, [other])
