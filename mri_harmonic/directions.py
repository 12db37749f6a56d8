"""The two translation directions and the modalities they connect (one table for every stage).

A direction names its source domain first: ``flair2t1`` trains/evaluates with domain A = FLAIR, B = T1.
"""

from __future__ import annotations

from mri_harmonic.errors import UserInputError

#: direction -> (source modality, target modality)
DIRECTIONS: dict[str, tuple[str, str]] = {"flair2t1": ("flair", "t1"), "t12flair": ("t1", "flair")}


def modalities_of(direction: str) -> tuple[str, str]:
    """``(source, target)`` modalities of ``direction``; a one-line error for an unknown name."""
    if direction not in DIRECTIONS:
        raise UserInputError(f"`direction` {direction!r} is not known; use one of {', '.join(DIRECTIONS)}")
    return DIRECTIONS[direction]
