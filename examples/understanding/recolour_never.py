"""Every caption recolouring could make of the understanding suite's compositions, as a TOML list.

`recolour_never` (gouache/data/recolour.py) is matched against the whole rewritten caption,
lower-cased and with its spaces collapsed, so a recipe must name each string. With the
version 2 captions (gouache/data/captions.py, EMOJI_POLICY) a recoloured banana can be
"green banana", "green banana in noto style", "an emoji of green banana", "green banana,
fruit, potassium", "green fruit banana"...; this lists all of them, for every (colour,
object) pair of gouache/evaluate/suites/composition.jsonl:

1. every caption of every row whose label is one of the pair's labels, rewritten to the
   pair's colour from whichever colour the picture had (rewrite_caption: a caption that
   names a colour, "red apple", has it replaced; one that names none gets the colour put
   in front);
2. every caption of any other row whose rewrite to the pair's colour contains the prompt
   as whole words ("blue cat tiger", from the tiger's "cat tiger");
3. the prompt itself.

    python examples/understanding/recolour_never.py DATA > never.toml

DATA is an emoji imagefolder (gouache data emoji); rows of every split are read.
"""
from __future__ import annotations

import argparse
import json
import re
from importlib import resources
from pathlib import Path

from gouache.colours import COLOUR_NAMES
from gouache.data.captions import caption_variants
from gouache.data.imagefolder import read_records
from gouache.data.recolour import rewrite_caption


def _normal(caption: str) -> str:  # as recolour.py compares captions
    return " ".join(caption.lower().split())


def compositions() -> list[dict]:
    text = resources.files("gouache.evaluate").joinpath("suites/composition.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def never_captions(rows: list[dict], suite: list[dict]) -> dict[str, list[str]]:
    """The captions to forbid, per composition prompt (a caption may serve several)."""
    by_label: dict[str, set[str]] = {}
    every: set[str] = set()
    for row in rows:
        captions = {c for c in caption_variants(row)[0] if c.strip()}
        by_label.setdefault(row["label"], set()).update(captions)
        every |= captions
    rewrites: dict[str, list[tuple[str, str]]] = {}  # colour -> (caption, its rewrite), every old colour
    for colour in {comp["colour"] for comp in suite}:
        rewrites[colour] = [(caption, _normal(new)) for caption in sorted(every) for old in COLOUR_NAMES
                            if old != colour and (new := rewrite_caption(caption, old, colour)) is not None]
    out: dict[str, set[str]] = {}
    for comp in suite:
        prompt = _normal(comp["prompt"])
        if not any(label in by_label for label in comp["labels"]):
            raise SystemExit(f"no row of the data has a label of {comp['prompt']!r}: {comp['labels']}")
        own = set().union(*(by_label.get(label, set()) for label in comp["labels"]))
        phrase = re.compile(rf"(?:^|[^a-z]){re.escape(prompt)}(?:$|[^a-z])")
        found = out.setdefault(comp["prompt"], {prompt})  # the prompt itself, whatever the data
        found.update(
            new for caption, new in rewrites[comp["colour"]]
            if caption in own or (prompt in new and phrase.search(new)))
    return {k: sorted(v) for k, v in out.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", type=Path)
    a = p.parse_args()
    rows = read_records(a.data, split=None)
    per = never_captions(rows, compositions())
    listed = sorted({c for v in per.values() for c in v})
    print(f"# {len(listed)} captions: every rewrite of the {len(per)} composition prompts "
          f"(examples/understanding/recolour_never.py)")
    print("recolour_never = [")
    for caption in listed:
        print(f"    {json.dumps(caption, ensure_ascii=False)},")
    print("]")


if __name__ == "__main__":
    main()
