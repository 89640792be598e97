"""The CLI end to end, in-process: files written, and one-line errors with exit code 2."""
import subprocess
import sys

import pytest
from PIL import Image

from gouache.cli.main import main


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit) as e:
        main(["generate", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "(default: auto)" in out and "--trajectory" in out


def test_generate_writes_pictures_grid_and_trajectory(tiny_model_dir, tmp_path, capsys):
    main(["generate", "red apple", "--model", str(tiny_model_dir), "-n", "2", "--steps", "3",
          "--out", str(tmp_path), "--trajectory", str(tmp_path / "strip.png"), "--device", "cpu"])
    printed = capsys.readouterr().out.split()
    names = sorted(p.split("/")[-1] for p in printed)
    assert names == ["red-apple-grid.png", "red-apple-seed0.png", "red-apple-seed1.png", "strip.png"]
    assert Image.open(tmp_path / "red-apple-seed0.png").size == (16, 16)


def test_the_program_freezes_what_imports_left_and_paints(tiny_model_dir, tmp_path):
    """``run`` (the ``gouache`` program) keeps full garbage collections off torch's objects."""
    code = ("import gc, sys\nfrom gouache.cli.main import run\n"
            f"sys.argv = ['gouache', 'generate', 'red apple', '--model', {str(tiny_model_dir)!r}, "
            f"'--steps', '2', '--out', {str(tmp_path / 'a.png')!r}, '--device', 'cpu']\n"
            "run()\nprint(gc.get_freeze_count())\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) > 50_000 and (tmp_path / "a.png").is_file()


def test_out_naming_a_png_file_writes_that_file(tiny_model_dir, tmp_path, capsys):
    main(["generate", "red apple", "--model", str(tiny_model_dir), "-n", "2", "--steps", "2",
          "--out", str(tmp_path / "apple.png"), "--device", "cpu"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["apple-1.png", "apple-grid.png", "apple.png"]


def test_generate_from_a_picture_with_a_mask(tiny_model_dir, emoji_fixture, tmp_path, capsys):
    picture = next((emoji_fixture / "images" / "google").glob("*.png"))
    Image.new("L", Image.open(picture).size, 0).save(tmp_path / "mask.png")  # black: keep everything
    main(["generate", "red apple", "--model", str(tiny_model_dir), "--steps", "4", "--image", str(picture),
          "--mask", str(tmp_path / "mask.png"), "--strength", "0.5", "--out", str(tmp_path / "out.png"),
          "--trajectory", str(tmp_path / "strip.png"), "--device", "cpu"])
    from gouache.images import load_rgb

    assert Image.open(tmp_path / "out.png").tobytes() == load_rgb(picture, 16).tobytes()
    assert Image.open(tmp_path / "strip.png").width > 4 * 32


def test_noise_strip(tmp_path, emoji_fixture, capsys):
    img = next((emoji_fixture / "images" / "google").glob("*.png"))
    main(["noise", str(img), "--out", str(tmp_path / "n.png")])
    assert Image.open(tmp_path / "n.png").width > 6 * 64


@pytest.mark.parametrize("argv, message", [
    (["generate", "", "--model", "{model}"], "the prompt is empty"),
    (["generate", "x", "--model", "{tmp}/missing"], "no such model or run folder"),
    (["generate", "x", "--model", "{model}", "--steps", "0"], "steps must be a whole number from 1 to 1000"),
    (["noise", "{tmp}/nope.png"], "cannot read image"),
    (["train", "--data", "{tmp}"], "no images found"),
    (["train", "--data", "{tmp}", "--config", "{tmp}/nope.toml"], "no such config file"),
])
def test_errors_are_one_line(argv, message, tiny_model_dir, tmp_path, capsys):
    argv = [a.format(model=tiny_model_dir, tmp=tmp_path) for a in argv]
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gouache: error:") and message in err and "\n" not in err
