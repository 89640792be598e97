import pytest
import torch


def test_shapes_mask_and_pooled(text_encoder):
    e = text_encoder(["red apple", "", "an emoji of a green banana, twitter style"])
    b, length, dim = e.tokens.shape
    assert (b, dim) == (3, 384)
    assert e.mask.dtype == torch.bool and e.mask.shape == (3, length)
    assert e.mask[1].sum() == 2  # "" is [CLS] [SEP]: the unconditional prompt
    assert e.mask[0].sum() == 4  # [CLS] red apple [SEP]
    assert torch.all(e.tokens[~e.mask] == 0)  # padding carries nothing
    assert torch.allclose(e.pooled.norm(dim=1), torch.ones(3), atol=1e-5)


def test_padding_does_not_change_a_prompt(text_encoder):
    alone = text_encoder(["red apple"])
    padded = text_encoder(["red apple", "a much longer prompt that forces padding of the first"])
    assert torch.allclose(alone.pooled[0], padded.pooled[0], atol=1e-5)
    n = int(alone.mask[0].sum())
    assert torch.allclose(alone.tokens[0, :n], padded.tokens[0, :n], atol=1e-4)


def test_encode_many_in_batches_is_one_call_padded_and_may_store_half(text_encoder):
    prompts = ["red apple", "a much longer prompt that forces padding of the others", "", "cat"]
    whole = text_encoder(prompts)
    many = text_encoder.encode_many(prompts, batch_size=1)  # four parts of different lengths
    assert many.tokens.shape == whole.tokens.shape and torch.equal(many.mask, whole.mask)
    assert torch.allclose(many.tokens, whole.tokens, atol=1e-4)
    assert torch.allclose(many.pooled, whole.pooled, atol=1e-5)
    half = text_encoder.encode_many(prompts, batch_size=3, token_dtype=torch.float16)
    assert half.tokens.dtype == torch.float16 and torch.equal(half.mask, whole.mask)
    assert torch.allclose(half.tokens.float(), whole.tokens, atol=1e-2)
    assert torch.all(half.tokens[~half.mask] == 0)


def test_frozen_no_gradient(text_encoder):
    assert all(not p.requires_grad for p in text_encoder.parameters())
    with torch.enable_grad():
        e = text_encoder(["cat face"])
    assert not e.tokens.requires_grad and e.tokens.grad_fn is None
    text_encoder.train()
    assert not text_encoder.training and not text_encoder.model.training


def test_truncates_to_max_length(text_encoder):
    long = " ".join(["apple"] * 100)
    assert text_encoder([long]).tokens.shape[1] == text_encoder.max_length


def test_sentence_embedding_matches_sentence_transformers(text_encoder):
    import pytest

    st = pytest.importorskip("sentence_transformers")
    from gouache.model.text import default_text_model

    ref = st.SentenceTransformer(str(default_text_model()), device="cpu", local_files_only=True)
    prompts = ["red apple", "grinning face"]
    want = torch.tensor(ref.encode(prompts))
    assert torch.allclose(text_encoder(prompts).pooled, want, atol=1e-5)


def test_unknown_model_is_a_clear_error(tmp_path):
    import pytest

    from gouache.errors import GouacheError
    from gouache.model.text import TextEncoder

    with pytest.raises(GouacheError, match="cannot load the text encoder"):
        TextEncoder(str(tmp_path / "no-such-model"))


# --- nothing from a model folder runs, and nothing reaches the network ---------------------------
# Run in a fresh interpreter: stdin closed (a prompt would hang or read EOF), HF_HUB_OFFLINE unset
# (huggingface_hub reads it once, at import), every socket connection refused and written down.

_GUARDED_CLI = """
import pathlib, socket, sys
log = pathlib.Path(sys.argv[1])
def refuse(self, address, *args, **kwargs):
    with log.open("a") as f:
        f.write(f"{address}\\n")
    raise OSError("the test allows no network")
def refuse_lookup(host, *args, **kwargs):
    return refuse(None, host)
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.getaddrinfo = refuse_lookup
from gouache.cli.main import main
main(sys.argv[2:])
"""


def _run_guarded(argv: list[str], tmp_path, **env: str):
    import os
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items()
             if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "GOUACHE_ALLOW_HUB")}
    clean.update(HF_HOME=str(tmp_path / "hf-home"), **env)  # an empty cache: nothing found locally
    net = tmp_path / "connections.log"
    done = subprocess.run([sys.executable, "-c", _GUARDED_CLI, str(net), *map(str, argv)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, env=clean, timeout=180)
    return done, net


def _custom_code_encoder(tmp_path):
    """A transformers folder whose auto_map points at its own module, which leaves a marker when run."""
    import json

    folder, marker = tmp_path / "custom-encoder", tmp_path / "custom-code-ran"
    folder.mkdir()
    (folder / "custom.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizer\n"
        "class CustomConfig(PretrainedConfig):\n    model_type = 'custom-encoder'\n"
        "class CustomModel(PreTrainedModel):\n    config_class = CustomConfig\n"
        "class CustomTokenizer(PreTrainedTokenizer):\n    pass\n")
    auto = {"AutoConfig": "custom.CustomConfig", "AutoModel": "custom.CustomModel",
            "AutoTokenizer": ["custom.CustomTokenizer", None]}
    (folder / "config.json").write_text(json.dumps({"model_type": "custom-encoder", "auto_map": auto,
                                                    "architectures": ["CustomModel"], "hidden_size": 384}))
    tokenizer = {"tokenizer_class": "CustomTokenizer", "auto_map": {"AutoTokenizer": auto["AutoTokenizer"]}}
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer))
    return folder, marker


def _model_with_encoder(tiny_model_dir, tmp_path, text_model: str):
    import json
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "text_model": text_model}))
    return model


def _assert_refused(done, net, name: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("gouache: error:") and name in lines[0], lines
    assert "[y/N]" not in done.stdout + done.stderr  # transformers' "run the custom code?" prompt
    assert not net.exists(), net.read_text()


@pytest.mark.parametrize("command", ["generate", "serve", "train"])
def test_a_folder_with_custom_code_is_refused(command, tiny_model_dir, emoji_fixture, tmp_path):
    import shutil

    folder, marker = _custom_code_encoder(tmp_path)
    model = _model_with_encoder(tiny_model_dir, tmp_path, folder.name)  # named inside the model folder
    encoder = model / folder.name
    shutil.move(folder, encoder)
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(f'steps = 1\n[model]\npreset = "tiny"\ntext_model = "{encoder}"\n')
    argv = {"generate": ["generate", "x", "--model", model, "--out", tmp_path / "out", "--device", "cpu"],
            "serve": ["serve", "--model", model, "--port", "0", "--device", "cpu"],
            "train": ["train", "--config", recipe, "--data", emoji_fixture, "--out", tmp_path / "run",
                      "--device", "cpu"]}[command]
    done, net = _run_guarded(argv, tmp_path)
    _assert_refused(done, net, str(encoder))
    assert "code" in done.stderr
    assert not marker.exists()  # the folder's Python never ran


def test_a_hub_name_is_refused_unless_the_user_opts_in(tiny_model_dir, tmp_path):
    name = "someone/some-encoder"
    model = _model_with_encoder(tiny_model_dir, tmp_path, name)
    argv = ["generate", "x", "--model", model, "--out", tmp_path / "out", "--device", "cpu"]
    done, net = _run_guarded(argv, tmp_path)
    _assert_refused(done, net, name)
    assert "GOUACHE_ALLOW_HUB=1" in done.stderr  # says how to opt in


def test_the_hub_opt_in_lets_a_name_through_to_transformers(monkeypatch):
    from gouache.errors import GouacheError
    from gouache.model.text import TextEncoder

    name = "someone/some-encoder"  # HF_HUB_OFFLINE=1 here (conftest): transformers looks in its cache
    with pytest.raises(GouacheError, match="GOUACHE_ALLOW_HUB=1"):
        TextEncoder(name)
    monkeypatch.setenv("GOUACHE_ALLOW_HUB", "1")
    with pytest.raises(GouacheError, match="cannot load the text encoder 'someone/some-encoder'") as e:
        TextEncoder(name)
    assert "GOUACHE_ALLOW_HUB" not in str(e.value)  # refused by transformers, not by gouache


def test_transformers_itself_is_told_never_to_run_a_folders_code(tmp_path):
    """The loader behind the folder check (what a hub name allowed by the user goes through)."""
    import subprocess
    import sys

    encoder, marker = _custom_code_encoder(tmp_path)
    code = "import sys; from gouache.model.text import _load_transformers; _load_transformers(sys.argv[1], 32)"
    done = subprocess.run([sys.executable, "-c", code, str(encoder)], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode != 0 and "trust_remote_code" in done.stderr
    assert "[y/N]" not in done.stdout + done.stderr
    assert not marker.exists()
