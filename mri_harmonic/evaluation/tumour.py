"""Tumour fidelity: does the translation keep the lesion, and does it invent one?

Whole-image metrics can look good while a translation erases a tumour or paints one that is not there; Cohen,
Luck and Honari ("Distribution matching losses can hallucinate features in medical image translation", MICCAI
2018) show that CycleGAN-type losses do both. Per slice (images on the store's [0, 1] scale) we compute:

- ``tumour_mae``: MAE inside the tumour labels (``seg > 0``), on the 0-255 scale like Table 1;
- **lesion contrast** ``C = (mu_t - mu_n) / sigma_n``: mean intensity in the tumour minus the mean in normal
  brain (brain without tumour), in units of the *real target's* normal-tissue standard deviation ``sigma_n``.
  The same yardstick ``sigma_n`` is used for the real and the translated slice, so
  ``contrast_ratio = C_translated / C_real`` compares lesion-to-tissue differences directly (a translation that
  merely smooths normal tissue cannot inflate it). The sign says whether the lesion is brighter or darker.
- ``contrast_lost`` (slices with at least ``min_tumour_pixels`` labelled pixels whose real lesion is conspicuous,
  ``|C_real| >= min_real_contrast``): ``contrast_ratio < contrast_lost_ratio`` (default 0.5), i.e. the
  translated lesion has the wrong sign or less than half the real contrast.
- ``hallucinated``: inside the brain, away from the labels (labels dilated by ``tumour_margin`` pixels), a
  4-connected region of at least ``hallucination_min_pixels`` pixels where ``|translated - real| >
  hallucination_threshold`` (default 0.25 of the full range, 64 grey levels on 0-255). Checked on every slice;
  summaries report the flagged fraction over all slices and over the tumour-free ones (no labelled pixel;
  Cohen et al.'s setting).

Thresholds are heuristics for flagging slices worth a look, not a diagnosis; they live in
:class:`TumourCheckConfig` and every report prints the values used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy import ndimage

from mri_harmonic.config import require


@dataclass(frozen=True)
class TumourCheckConfig:
    """Thresholds of the tumour-fidelity flags (intensities on the [0, 1] scale, sizes in pixels)."""

    min_tumour_pixels: int = 10
    """Slices with fewer labelled pixels count as tumour-free for the contrast check."""
    min_real_contrast: float = 0.5
    """``|C_real|`` below this (in normal-tissue standard deviations): lesion not conspicuous, contrast not scored."""
    contrast_lost_ratio: float = 0.5
    """``C_translated / C_real`` below this flags "contrast lost" (wrong sign or < 50 % of the real contrast)."""
    hallucination_threshold: float = 0.25
    """``|translated - real|`` above this (0.25 = 64/255) marks a strongly deviating pixel."""
    hallucination_min_pixels: int = 16
    """A connected region of at least this many deviating pixels flags a "hallucinated lesion"."""
    tumour_margin: int = 3
    """Pixels of dilation around the labels left out of the hallucination search (label boundary uncertainty)."""
    sigma_floor: float = 1e-3
    """Lower bound on ``sigma_n`` so that perfectly flat tissue (phantoms) gives finite contrasts."""

    def __post_init__(self):
        require(self.min_tumour_pixels >= 1, "min_tumour_pixels", "must be >= 1")
        require(self.min_real_contrast >= 0, "min_real_contrast", "must be >= 0")
        require(0 < self.hallucination_threshold < 1, "hallucination_threshold", "must lie in (0, 1) on the [0,1] scale")
        require(self.hallucination_min_pixels >= 1, "hallucination_min_pixels", "must be >= 1")
        require(self.tumour_margin >= 0, "tumour_margin", "must be >= 0")
        require(self.sigma_floor > 0, "sigma_floor", "must be > 0")


def lesion_contrast(image: np.ndarray, tumour: np.ndarray, normal: np.ndarray, sigma_n: float) -> float:
    """``(mean(image[tumour]) - mean(image[normal])) / sigma_n``; nan when either region is empty."""
    if not tumour.any() or not normal.any():
        return math.nan
    return float((image[tumour].mean() - image[normal].mean()) / sigma_n)


def largest_deviation_region(
    pred: np.ndarray, target: np.ndarray, search: np.ndarray, threshold: float
) -> int:
    """Size in pixels of the largest 4-connected region inside ``search`` where ``|pred - target| > threshold``."""
    strong = (np.abs(pred.astype(np.float64) - target) > threshold) & search
    if not strong.any():
        return 0
    labels, n = ndimage.label(strong)
    return int(np.bincount(labels.ravel())[1:].max()) if n else 0


def tumour_fidelity(
    pred: np.ndarray, target: np.ndarray, brain: np.ndarray, seg: np.ndarray, cfg: TumourCheckConfig | None = None
) -> dict[str, Any]:
    """All tumour-fidelity measures of one slice (``(H, W)`` arrays; images on [0, 1])."""
    cfg = cfg or TumourCheckConfig()
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    brain = np.asarray(brain).astype(bool)
    tumour = np.asarray(seg) > 0
    normal = brain & ~tumour
    n_tumour = int(tumour.sum())
    has_tumour = n_tumour >= cfg.min_tumour_pixels

    sigma_n = max(float(target[normal].std()), cfg.sigma_floor) if normal.any() else math.nan
    c_real = lesion_contrast(target, tumour, normal, sigma_n) if has_tumour else math.nan
    c_pred = lesion_contrast(pred, tumour, normal, sigma_n) if has_tumour else math.nan
    scored = bool(has_tumour and np.isfinite(c_real) and abs(c_real) >= cfg.min_real_contrast)
    ratio = c_pred / c_real if scored else math.nan

    exclude = ndimage.binary_dilation(tumour, iterations=cfg.tumour_margin) if (cfg.tumour_margin and tumour.any()) else tumour
    largest = largest_deviation_region(pred, target, brain & ~exclude, cfg.hallucination_threshold)
    return {
        "n_tumour_pixels": n_tumour,
        "has_tumour": bool(has_tumour),
        "tumour_mae_255": float(np.abs(pred - target)[tumour].mean() * 255.0) if n_tumour else math.nan,
        "contrast_real": c_real,
        "contrast_translated": c_pred,
        "contrast_ratio": ratio,
        "contrast_scored": scored,
        "contrast_lost": bool(scored and ratio < cfg.contrast_lost_ratio),
        "largest_deviation_pixels": largest,
        "hallucinated": bool(largest >= cfg.hallucination_min_pixels),
    }


def tumour_fidelity_batch(
    pred: np.ndarray, target: np.ndarray, brain: np.ndarray, seg: np.ndarray, cfg: TumourCheckConfig | None = None
) -> list[dict[str, Any]]:
    """:func:`tumour_fidelity` for each slice of ``(B, H, W)`` arrays (a leading channel axis of 1 is dropped)."""
    arrays = [np.asarray(a) for a in (pred, target, brain, seg)]
    arrays = [a[:, 0] if a.ndim == 4 else a for a in arrays]
    return [tumour_fidelity(*(a[i] for a in arrays), cfg=cfg) for i in range(arrays[0].shape[0])]


def summarise_tumour(frame, by: Sequence[str] = ("run", "method", "direction")):
    """Flag rates per group: contrast lost among scored tumour slices; hallucination over all / tumour-free slices."""
    import pandas as pd

    by = [c for c in by if c in frame.columns]
    rows = []
    for key, g in frame.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        scored = g[g["contrast_scored"]]
        free = g[g["n_tumour_pixels"] == 0]  # no label at all (Cohen et al.'s "healthy" slices)
        tum = g[g["has_tumour"]]
        rows.append(
            {
                **dict(zip(by, key)),
                "n_slices": len(g),
                "n_tumour_slices": len(tum),
                "n_contrast_scored": len(scored),
                "contrast_lost_frac": float(scored["contrast_lost"].mean()) if len(scored) else math.nan,
                "contrast_ratio_median": float(scored["contrast_ratio"].median()) if len(scored) else math.nan,
                "tumour_mae_255_mean": float(tum["tumour_mae_255"].mean()) if len(tum) else math.nan,
                "hallucinated_frac": float(g["hallucinated"].mean()) if len(g) else math.nan,
                "n_tumour_free_slices": len(free),
                "hallucinated_frac_tumour_free": float(free["hallucinated"].mean()) if len(free) else math.nan,
            }
        )
    return pd.DataFrame(rows)
