"""``PreprocessConfig``: every setting of ``mri-harmonic preprocess`` (and of ``prepare_volume``), with its default.

Defaults live here only; ``configs/preprocess-*.yaml`` hold just what differs. Load with
``mri_harmonic.config.load_config(PreprocessConfig, path, overrides)``. The config hash of the resolved object keys
the slice store and its resume folder, so a store always knows what produced it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mri_harmonic.config import require

MODALITIES = ("flair", "t1", "t1ce", "t2")
SPLIT_NAMES = ("train", "val", "test")


@dataclass
class PreprocessConfig:
    """Settings of the NIfTI -> slice-store pipeline (:func:`mri_harmonic.data.preprocess.preprocess`)."""

    modalities: list[str] = field(default_factory=lambda: ["flair", "t1"])
    """Modalities to load and store (subset of flair, t1, t1ce, t2). Only these are read from disk."""

    in_plane_size: int = 256
    """Square in-plane size of every stored slice: the brain is centred and the slice cropped / zero-padded to it
    (BraTS 240x240 -> 256x256 as SynDiff, Ozbey et al. 2023). Must cover the brain, or the crop cuts it."""

    spacing: list[float] | None = None
    """Resample to this voxel size in mm (x, y, z after RAS reorientation), e.g. [2, 2, 2] for CPU presets;
    ``null`` keeps the source grid (exact round trip)."""

    percentiles: list[float] = field(default_factory=lambda: [0.5, 99.5])
    """Lower / upper percentile of a modality's brain intensities mapped to 0 / 1 (then clipped to [0, 1])."""

    min_brain_fraction: float = 0.1
    """Keep an axial slice when brain pixels cover at least this fraction of the stored (in_plane_size^2) slice."""

    split_fractions: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    """Fractions of SUBJECTS in train, val, test (sum 1). Splits are made by subject, before slicing."""

    split_seed: int = 0
    """Seed of the subject permutation that assigns splits."""

    unpaired_halves: bool = True
    """Record in store.json that training should draw domain A and domain B from disjoint subject halves."""

    seed: int = 0
    """Seed of the per-subject ``half`` assignment (balanced 0/1 within each split)."""

    dtype: Literal["float16", "float32"] = "float16"
    """Storage type of the intensity arrays (float16 halves disk and page-cache use; 11-bit mantissa)."""

    def __post_init__(self) -> None:
        require(len(self.modalities) > 0, "modalities", "must name at least one modality, e.g. [flair, t1]")
        for m in self.modalities:
            require(m in MODALITIES, "modalities", f"has unknown modality {m!r}; choose from {', '.join(MODALITIES)}")
        require(len(set(self.modalities)) == len(self.modalities), "modalities", "lists a modality twice")
        require(16 <= self.in_plane_size <= 2048, "in_plane_size", f"must be between 16 and 2048, got {self.in_plane_size}")
        if self.spacing is not None:
            require(len(self.spacing) == 3, "spacing", f"must be null or 3 numbers [sx, sy, sz] in mm, got {self.spacing}")
            require(all(0 < s <= 20 for s in self.spacing), "spacing", f"values must be in (0, 20] mm, got {self.spacing}")
        require(len(self.percentiles) == 2, "percentiles", f"must be [low, high], got {self.percentiles}")
        lo, hi = self.percentiles if len(self.percentiles) == 2 else (0, 0)
        require(0 <= lo < hi <= 100, "percentiles", f"must satisfy 0 <= low < high <= 100, got {self.percentiles}")
        require(0 <= self.min_brain_fraction < 1, "min_brain_fraction", f"must be in [0, 1), got {self.min_brain_fraction}")
        require(len(self.split_fractions) == 3, "split_fractions", f"must be 3 numbers [train, val, test], got {self.split_fractions}")
        require(all(f >= 0 for f in self.split_fractions), "split_fractions", f"must be >= 0, got {self.split_fractions}")
        require(abs(sum(self.split_fractions) - 1) < 1e-6, "split_fractions", f"must sum to 1, got {self.split_fractions}")
        require(self.split_fractions[0] > 0, "split_fractions", "needs a train fraction > 0")
