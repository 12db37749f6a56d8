"""Hallucination rates from ground truth: invented lesions on healthy slices, erased lesions on tumorous slices.

When the two training domains differ in tumour prevalence, distribution-matching losses invent or erase lesions
(Cohen, Luck, Honari, MICCAI 2018). StegoGAN (Wu et al., CVPR 2024) scores the first with a pre-trained tumour
segmenter run on translations of healthy slices: iFPR, the share of translated images in which it finds >= 50
tumour pixels, and pFPR, the share of pixels it calls tumour. Here both settings are scored from the store's own
labels and real target images, with the per-slice and per-lesion records of :mod:`.tumour` (no segmenter, whose
own errors would enter the rate):

========================  =========================================================================================
rate                      numerator / denominator (per test subject, over its scored slices)
========================  =========================================================================================
``invented_image``        slices with an invented region of >= ``image_min_pixels`` pixels / scored slices (iFPR)
``invented_pixel``        invented pixels / brain pixels of the scored slices (pFPR)
``erased``                erased lesions / conspicuous lesions
``wrong_direction``       lesions with the wrong contrast sign / scored lesions
``tumour_pixels_lost``    pixels of erased lesions / pixels of conspicuous lesions
========================  =========================================================================================

On healthy test slices (setting a) every invented region is a false positive, and the lesion rates are undefined
(no lesions); on tumorous slices (setting b) the lesion rates measure erasure, and invented regions outside the
(dilated) labels still count. A slice is *scored* when the tumour checks find a white-matter reference in it
(:func:`.tumour.nawm_mask`).

**Intervals.** A rate is computed per test subject (a ratio of sums over the subject's slices) and per training
seed; the estimate is the mean of that subjects x seeds matrix, the 95 % interval is
:func:`.compare.paired_interval` on it (two-way random effects over subjects and seeds, a t interval over subjects
with one seed or for the seedless rows: the untranslated input, the real-target controls), clipped to [0, 1]. Subjects without a
denominator (e.g. no conspicuous lesion) are left out of that rate. The paired difference of two methods
(:func:`paired_rate_difference`) uses the same interval on per-subject differences of the runs with the same seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from mri_harmonic.config import require
from mri_harmonic.evaluation.compare import _seed_key, paired_interval, verdict

#: The rates, in report order: name -> what it counts.
RATES = {
    "invented_image": "share of translated slices with an invented region of >= N pixels (iFPR-like)",
    "invented_pixel": "share of brain pixels inside invented regions (pFPR-like)",
    "erased": "share of conspicuous lesions erased",
    "wrong_direction": "share of scored lesions with the wrong contrast sign",
    "tumour_pixels_lost": "share of conspicuous lesions' pixels in erased lesions",
}
#: The rates each setting reports: (a) healthy test slices, (b) tumorous test slices.
SETTING_RATES = {"healthy": ("invented_image", "invented_pixel"),
                 "tumour": ("erased", "wrong_direction", "tumour_pixels_lost", "invented_image")}


@dataclass(frozen=True)
class HallucinationConfig:
    """Settings of the hallucination rates (the tumour checks' own thresholds are :class:`.tumour.TumourCheckConfig`)."""

    image_min_pixels: int = 13
    """An image counts for ``invented_image`` when one of its invented regions has at least this many pixels.
    StegoGAN's iFPR uses 50 pixels at BraTS's 1 mm; 13 pixels at 2 mm cover the same 50 mm^2. Regions smaller than
    the tumour checks' ``invented_min_pixels`` (10) are never invented, whatever this is."""
    level: float = 0.95
    """Coverage of the intervals."""

    def __post_init__(self):
        require(self.image_min_pixels >= 1, "image_min_pixels", "must be >= 1")
        require(0 < self.level < 1, "level", "must lie in (0, 1)")


def subject_counts(slices: pd.DataFrame, lesions: pd.DataFrame | None, by: Sequence[str],
                   cfg: HallucinationConfig | None = None) -> pd.DataFrame:
    """Numerator and denominator of every rate per ``by`` x seed x test subject.

    ``slices`` / ``lesions``: the tumour checks' per-slice and per-lesion records (``tumour_per_slice.csv`` /
    ``tumour_lesions.csv`` of ``mri-harmonic evaluate``) with the ``by`` columns, ``subject`` and, optionally,
    ``seed`` (absent or empty: one seedless row). Columns ``<rate>_num`` and ``<rate>_den`` for each of :data:`RATES`.
    """
    cfg = cfg or HallucinationConfig()
    by = list(by)
    s = slices[slices["scored"].astype(bool)].copy()
    s["_seed"] = [_seed_key(v) for v in s["seed"]] if "seed" in s.columns else "-"
    keys = [*by, "_seed", "subject"]
    s["invented_image_num"] = (s["invented_largest_pixels"] >= cfg.image_min_pixels).astype(int)
    s["invented_image_den"] = 1
    s["invented_pixel_num"], s["invented_pixel_den"] = s["invented_pixels"], s["brain_pixels"]
    s["erased_num"], s["erased_den"] = s["n_erased"], s["n_conspicuous"]
    s["wrong_direction_num"], s["wrong_direction_den"] = s["n_wrong_direction"], s["n_lesions"]
    cols = [c for r in RATES if r != "tumour_pixels_lost" for c in (f"{r}_num", f"{r}_den")]
    out = s.groupby(keys, sort=False)[cols].sum()
    if lesions is not None and len(lesions):
        les = lesions.copy()
        les["_seed"] = [_seed_key(v) for v in les["seed"]] if "seed" in les.columns else "-"
        les = les[les["conspicuous"].astype(bool)]
        les = les.assign(tumour_pixels_lost_num=np.where(les["outcome"] == "erased", les["n_pixels"], 0),
                         tumour_pixels_lost_den=les["n_pixels"])
        lost = les.groupby(keys, sort=False)[["tumour_pixels_lost_num", "tumour_pixels_lost_den"]].sum()
        out = out.join(lost, how="left")
    for c in ("tumour_pixels_lost_num", "tumour_pixels_lost_den"):
        out[c] = out[c].fillna(0).astype(int) if c in out.columns else 0
    return out.reset_index()


def _matrix(counts: pd.DataFrame, rate: str) -> pd.DataFrame:
    """Subjects x seeds matrix of one rate (subjects lacking a denominator for some seed dropped)."""
    c = counts[counts[f"{rate}_den"] > 0]
    vals = c[f"{rate}_num"] / c[f"{rate}_den"]
    return pd.DataFrame({"subject": c["subject"], "_seed": c["_seed"], "v": vals}).pivot_table(
        index="subject", columns="_seed", values="v", aggfunc="first").dropna()


def rate_table(slices: pd.DataFrame, lesions: pd.DataFrame | None, by: Sequence[str] = ("group", "direction"),
               rates: Sequence[str] = tuple(RATES), cfg: HallucinationConfig | None = None) -> pd.DataFrame:
    """One row per ``by`` group and rate: ``estimate`` (mean over subjects x seeds), ``ci_low`` / ``ci_high`` (the
    module's interval, clipped to [0, 1]), ``n_subjects``, ``n_seeds``, ``events`` / ``units`` (the summed numerator
    and denominator) and ``pooled`` (their ratio). A rate without any denominator is left out."""
    cfg = cfg or HallucinationConfig()
    counts = subject_counts(slices, lesions, by, cfg)
    rows = []
    for key, g in counts.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        for rate in rates:
            mat = _matrix(g, rate)
            if mat.empty:
                continue
            ci = paired_interval(mat.to_numpy(), cfg.level)
            lo, hi = (ci["ci_low"], ci["ci_high"]) if np.isfinite(ci["ci_low"]) else (math.nan, math.nan)
            events, units = int(g[f"{rate}_num"].sum()), int(g[f"{rate}_den"].sum())
            rows.append({**dict(zip(by, key)), "rate": rate, "estimate": ci["mean"],
                         "ci_low": max(0.0, lo) if np.isfinite(lo) else lo, "ci_high": min(1.0, hi) if np.isfinite(hi) else hi,
                         "n_subjects": int(mat.shape[0]), "n_seeds": int(mat.shape[1]), "events": events, "units": units,
                         "pooled": events / units if units else math.nan})
    return pd.DataFrame(rows)


def paired_rate_difference(slices: pd.DataFrame, lesions: pd.DataFrame | None, group: str, baseline: str,
                           column: str = "group", rates: Sequence[str] = tuple(RATES),
                           cfg: HallucinationConfig | None = None) -> pd.DataFrame:
    """``group`` minus ``baseline`` per direction and rate, on the same test subjects and training seeds: the mean
    of the subjects x seeds matrix of per-subject rate differences, its interval (:func:`.compare.paired_interval`,
    clipped to [-1, 1], the range of a difference of two shares) and :func:`.compare.verdict` (a lower rate is
    better; judged on the unclipped interval)."""
    cfg = cfg or HallucinationConfig()
    counts = subject_counts(slices[slices[column].isin([group, baseline])], lesions if lesions is None else
                            lesions[lesions[column].isin([group, baseline])], [column, "direction"], cfg)
    rows = []
    for direction, g in counts.groupby("direction", sort=False):
        for rate in rates:
            a, b = _matrix(g[g[column] == group], rate), _matrix(g[g[column] == baseline], rate)
            seeds = [s for s in a.columns if s in b.columns]
            d = (a[seeds] - b[seeds]).dropna()
            if d.empty:
                continue
            ci = paired_interval(d.to_numpy(), cfg.level)
            n, k = d.shape
            rows.append({"group": group, "baseline": baseline, "direction": direction, "rate": rate,
                         "mean_diff": ci["mean"], "ci_low": max(-1.0, ci["ci_low"]), "ci_high": min(1.0, ci["ci_high"]),
                         "df": ci["df"],
                         "n_subjects": int(n), "n_seeds": int(k),
                         "verdict": verdict(int(n), int(k), ci["ci_low"], ci["ci_high"], higher_is_better=False)})
    return pd.DataFrame(rows)


def hallucination_masks(pred: np.ndarray, target: np.ndarray, brain: np.ndarray, seg: np.ndarray, modality: str,
                        tumour_config=None) -> dict[str, np.ndarray]:
    """Boolean ``(H, W)`` masks of one slice for figures: ``invented`` (the invented regions), ``erased`` and
    ``wrong_direction`` (lesions with that outcome), ``kept`` (the other lesions, faint ones included), as the tumour
    checks find them (:func:`.tumour.tumour_fidelity`, same components and order)."""
    from mri_harmonic.evaluation.tumour import (
        TumourCheckConfig,
        invented_regions,
        lesion_components,
        nawm_mask,
        tumour_fidelity,
    )

    cfg = tumour_config or TumourCheckConfig()
    shape = np.shape(target)
    out = {k: np.zeros(shape, bool) for k in ("invented", "erased", "wrong_direction", "kept")}
    rec, lesions = tumour_fidelity(pred, target, brain, seg, modality, cfg)
    if not rec["scored"]:
        return out
    nawm, _ = nawm_mask(target, brain, seg, modality, cfg)
    for r in invented_regions(pred, target, brain, seg, nawm, modality, cfg):
        out["invented"] |= r
    for comp, les in zip(lesion_components(seg, cfg.min_lesion_pixels), lesions):
        out[les["outcome"] if les["outcome"] in out else "kept"] |= comp
    return out
