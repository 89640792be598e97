"""What the web page's smaller weights cost in pictures.

    python benchmarks/web_weights.py                  # 10 prompts x 3 seeds, 4 steps
    python benchmarks/web_weights.py --seeds 1 --prompts 4

Paints as the page does (the exported ONNX files run by onnxruntime, the Python tokenizer, torch's
noise from the seed: ``sampler.js`` draws the same) with the student and the prompt encoder
stored as float32, float16 or int8, and compares each picture with the PyTorch pipeline's:
mean and largest absolute difference in 0..255, and file sizes. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from gouache.images import to_uint8
from gouache.model.bert import BertTokenizer
from gouache.model.text import default_text_model
from gouache.sampling.options import SamplingOptions
from gouache.sampling.pipeline import Pipeline, default_model_dir
from gouache.sampling.rng import PerSampleNoise
from gouache.sampling.samplers import SAMPLERS
from gouache.store.checkpoint import read_model_config
from gouache.web.onnx_export import export_student, export_text_encoder

PROMPTS = ["red apple", "green apple", "cat face", "watermelon", "rocket", "smiling face with heart eyes",
           "birthday cake", "hot pepper", "blue heart", "sun behind cloud"]
CHOICES = [("float32", "float32"), ("float16", "float32"), ("float16", "int8"), ("int8", "int8")]


def paint_onnx(student: ort.InferenceSession, text: ort.InferenceSession, tokenizer: BertTokenizer,
               prompt: str, seed: int, steps: int, size: int) -> np.ndarray:
    """The page's painting, in Python: (H, W, 3) uint8."""
    ids, mask = tokenizer([prompt])
    tokens, pooled = text.run(None, {"ids": ids.numpy(), "mask": mask.numpy()})
    cond = {"tokens": tokens, "mask": mask.numpy().astype(bool), "pooled": pooled}
    sigmas = SAMPLERS["consistency"].sigmas(steps, read_model_config(default_model_dir()).schedule)
    noise = PerSampleNoise([seed])
    x = noise.randn((3, size, size)) * sigmas[0]
    for i in range(steps):
        (denoised,) = student.run(None, {"x": x.numpy(), "sigma": sigmas[i:i + 1].numpy(), **cond})
        x = torch.from_numpy(denoised)
        if sigmas[i + 1] > 0:
            x = x + sigmas[i + 1] * noise(x)
    return to_uint8(x[0]).permute(1, 2, 0).numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompts", type=int, default=len(PROMPTS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=4)
    a = p.parse_args()
    pipe = Pipeline.load(device="cpu")
    size = pipe.image_size
    jobs = [(prompt, seed) for prompt in PROMPTS[:a.prompts] for seed in range(a.seeds)]
    want = [np.asarray(pipe.generate(prompt, SamplingOptions(steps=a.steps), seed=seed, progress=False).images[0])
            for prompt, seed in jobs]
    tokenizer = BertTokenizer(default_text_model() / "tokenizer.json", max_length=pipe.config.text_max_length)
    print(f"| student | prompt encoder | MB (student + encoder) | mean abs diff /255 | worst picture's mean | max |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for student_w, text_w in CHOICES:
            s_path, t_path = Path(tmp) / f"s-{student_w}.onnx", Path(tmp) / f"t-{text_w}.onnx"
            if not s_path.exists():
                export_student(default_model_dir(), s_path, weights=student_w)
            if not t_path.exists():
                export_text_encoder(pipe.config.text_model, t_path, weights=text_w)
            student, text = ort.InferenceSession(str(s_path)), ort.InferenceSession(str(t_path))
            diffs = [np.abs(paint_onnx(student, text, tokenizer, prompt, seed, a.steps, size).astype(int) - w)
                     for (prompt, seed), w in zip(jobs, want)]
            mb = (s_path.stat().st_size + t_path.stat().st_size) / 1e6
            means = [d.mean() for d in diffs]
            print(f"| {student_w} | {text_w} | {mb:.1f} | {np.mean(means):.2f} | {max(means):.2f} | "
                  f"{max(d.max() for d in diffs)} |")


if __name__ == "__main__":
    main()
