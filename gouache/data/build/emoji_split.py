"""The held-out split of the emoji set: a seeded, stable choice of emoji, never of pictures.

Every picture of one emoji (in every style, every skin tone, and for the svg
set also its man/woman/person forms: ``emoji_names.concept_of``) shares one key,
and the split is a hash of (seed, key) alone: the same emoji are held out
whichever styles a build has, and adding a style or an emoji moves no other.
"""
from __future__ import annotations

import hashlib

from gouache.data.build.emoji_names import normalize_hexcode

__all__ = ["SHOWCASE", "split_for"]

# The README's showcase prompts (red apple, watermelon, banana, grinning face, cat face,
# rocket, pizza, sun, red heart, christmas tree, green apple, cat) always train: the
# shipped model is shown painting them, so none of them may be held out.
SHOWCASE = frozenset({"1F34E", "1F349", "1F34C", "1F600", "1F431", "1F680", "1F355", "2600",
                      "2764", "1F384", "1F34F", "1F408"})


def split_for(key: str, seed: int = 0, test_fraction: float = 0.05) -> str:
    """Return "test" or "train" for an emoji key, from a stable hash of (seed, key).

    Showcase emoji (``SHOWCASE``) are always "train".
    """
    key = normalize_hexcode(key)
    if key in SHOWCASE:
        return "train"
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"
