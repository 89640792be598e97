"""Reading prompt embeddings kept beside a data folder, ``prompt_embeddings.safetensors``
(``data.prompts.save_prompt_embeddings`` writes them):

    tokens   (U, L, D) float   per-token states, L at most the encoder's token limit
    mask     (U, L) bool       True on real tokens
    pooled   (U, D) float      the sentence embeddings
    metadata: captions (a JSON list of U texts), text_model, max_length

Checked from the header before any tensor is read: the three tensors and nothing else, their
shapes against each other, the captions and the encoder's width; then every value is finite.
"""
from __future__ import annotations

from pathlib import Path

from gouache.errors import GouacheError
from gouache.model.text import PromptEmbedding
from gouache.store.reading import MissingFile, parse_json, safetensors_header
from gouache.store.tensors import check_finite, read_tensors

__all__ = ["EMBEDDINGS_FILE", "read_prompt_embeddings", "check_prompt_embeddings", "check_stored_embeddings"]

EMBEDDINGS_FILE = "prompt_embeddings.safetensors"  # in the data folder


def read_prompt_embeddings(path: Path | str, *, text_model: str | None, max_length: int | None,
                           dim: int | None = None) -> tuple[list[str], PromptEmbedding] | None:
    """The stored captions and embeddings, or None when the file is absent or made by another text
    model or token limit than ``text_model`` and ``max_length``. ``dim``: the encoder's width, if known."""
    captions = check_prompt_embeddings(path, text_model=text_model, max_length=max_length, dim=dim)
    if captions is None:
        return None
    t = check_finite(path, read_tensors(Path(path), what="prompt embeddings"))
    return captions, PromptEmbedding(t["tokens"], t["mask"].bool(), t["pooled"])


def check_stored_embeddings(folder: Path | str, encoder) -> None:
    """Refuse ``folder``'s stored prompt embeddings, if it has some for ``encoder``, when they do
    not fit it (``check_prompt_embeddings``): what a run calls before the data loads."""
    check_prompt_embeddings(Path(folder) / EMBEDDINGS_FILE, text_model=getattr(encoder, "name", None),
                            max_length=getattr(encoder, "max_length", None), dim=getattr(encoder, "dim", None))


def check_prompt_embeddings(path: Path | str, *, text_model: str | None, max_length: int | None,
                            dim: int | None = None) -> list[str] | None:
    """The stored captions, once the file's header is checked (no tensor is read); None when the
    file is absent or another encoder's."""
    path = Path(path)
    try:
        found, meta = safetensors_header(path, what="prompt embeddings")
    except MissingFile:
        return None
    if (meta.get("text_model"), meta.get("max_length")) != (str(text_model), str(max_length)):
        return None

    def bad(why: str) -> GouacheError:
        return GouacheError(f"{path}: not a prompt embeddings file ({why})")

    if set(found) != {"tokens", "mask", "pooled"}:
        raise bad(f"holds {', '.join(sorted(found)) or 'no tensors'}, not tokens, mask and pooled")
    if "captions" not in meta:
        raise bad("no captions in its metadata")
    captions = parse_json(meta["captions"], what=f"{path}: its captions", top=list)
    if not all(isinstance(c, str) for c in captions):
        raise bad("its captions are not all text")
    tokens, mask, pooled = found["tokens"], found["mask"], found["pooled"]
    u = len(captions)
    width = tokens.shape[2] if len(tokens.shape) == 3 else -1
    if len(tokens.shape) != 3 or tokens.shape[0] != u or not 1 <= tokens.shape[1] <= int(max_length or 1 << 20):
        raise bad(f"tokens are {tokens.shape}, not ({u} captions, at most {max_length} tokens, width)")
    if dim is not None and width != dim:
        raise bad(f"its states are {width} wide, the text encoder's {dim}")
    if mask.shape != tokens.shape[:2] or pooled.shape != (u, width):
        raise bad(f"mask {mask.shape} and pooled {pooled.shape} do not fit tokens {tokens.shape}")
    if not (tokens.dtype.is_floating_point and pooled.dtype.is_floating_point) or mask.dtype.itemsize != 1:
        raise bad(f"tokens {tokens.dtype}, mask {mask.dtype}, pooled {pooled.dtype}")
    return captions
