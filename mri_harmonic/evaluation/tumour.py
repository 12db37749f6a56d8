"""Tumour fidelity: does the translation keep each lesion's contrast, and does it invent lesions?

Whole-image metrics can look good while a translation erases a tumour or paints one that is not there; Cohen,
Luck and Honari ("Distribution matching losses can hallucinate features in medical image translation", MICCAI
2018) show that CycleGAN-type losses do both. The measures here are **signed** and judged against the real
target's own appearance, per lesion and per slice (images on the store's [0, 1] scale, one 2-D slice at a time).

**Normal-appearing white matter (NAWM), the reference tissue.** The store holds images, brain masks and tumour
labels but no tissue maps, so NAWM is derived from the real target itself: take the brain, eroded by
``brain_erosion`` pixels (skull-strip edge), minus the labels dilated by ``label_margin`` pixels; among those
"normal" pixels take the intensities inside the band of percentiles that white matter occupies in the target
modality (:data:`WM_PERCENTILES`: T1, white matter is the brightest tissue -> upper half; FLAIR, white matter lies
between dark CSF and brighter grey matter -> the middle); the **mode** of that band's histogram (bins of
``histogram_bin``) is the white-matter intensity, and NAWM is every normal pixel within ``nawm_halfwidth`` of it.
The same NAWM pixels are the reference in the real and in the synthetic image, so a contrast compares the same
anatomy. Slices with fewer than ``min_nawm_pixels`` NAWM pixels are not scored.

**Per lesion** (a lesion = a 8-connected component of ``seg > 0`` with at least ``min_lesion_pixels`` pixels):
contrast ``C = mean(image[lesion]) - median(image[NAWM])`` in the real target (``C_real``) and in the synthetic
image (``C_syn``). The expected sign is that of ``C_real`` when the lesion is *conspicuous* (``|C_real| >=
min_lesion_contrast``), else the target modality's lesion direction (:data:`LESION_DIRECTION`: bright in FLAIR,
dark in T1). Outcomes, two-sided:

- ``wrong_direction``: ``C_syn`` has the opposite of the expected sign with ``|C_syn| >= min_lesion_contrast``
  (e.g. a FLAIR-bright lesion in a synthetic T1).
- ``erased`` (conspicuous lesions only, not wrong-direction): ``C_syn`` keeps less than ``kept_fraction`` of
  ``C_real`` in the expected direction.
- ``kept``: a conspicuous lesion neither erased nor reversed; ``not_scored``: a faint lesion not reversed.

**Invented** (per slice): inside the brain, outside the dilated labels, pixels where the synthetic image differs
from its NAWM median in the target's lesion direction by at least ``invented_contrast`` *and* exceeds, by at least
``invented_excess``, the most lesion-like value the real target has within ``tolerance_radius`` pixels (a grey dilation, so
that a slightly blurred or shifted edge invents nothing). Both images are smoothed with a Gaussian of
``smoothing_sigma`` pixels first (single-pixel noise invents nothing). Each 8-connected region of at least
``invented_min_pixels`` such pixels is an invented lesion.

A slice is *flagged* when any lesion is erased or reversed, or a lesion is invented. The thresholds live in
:class:`TumourCheckConfig`; they were calibrated on the controls of ``pipelines/fidelity_controls.py``
(``reports/fidelity_controls/``: the real target flags <= 1 % of slices, the target blurred or noisy <= 5 %,
in-painted lesions are erased >= 95 %, added lesions invented >= 95 %) and every report prints the values used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy import ndimage

from mri_harmonic.config import require

#: Sign of a typical glioma's contrast against white matter: +1 hyperintense, -1 hypointense (oedema and tumour are
#: bright in FLAIR/T2 and dark in T1; BraTS, Menze et al. IEEE TMI 2015, Fig. 1; the enhancing rim is bright in T1ce).
LESION_DIRECTION = {"flair": 1, "t2": 1, "t1": -1, "t1ce": 1}
#: Percentile band (of normal-brain intensities) holding the white-matter mode: in T1 white matter is the brightest
#: tissue, in FLAIR/T2 it lies between dark CSF and brighter grey matter.
WM_PERCENTILES = {"t1": (50.0, 99.0), "t1ce": (50.0, 99.0), "flair": (15.0, 75.0), "t2": (5.0, 60.0)}
OUTCOMES = ("kept", "erased", "wrong_direction", "not_scored")
_EIGHT = np.ones((3, 3), bool)


@dataclass(frozen=True)
class TumourCheckConfig:
    """Thresholds of the tumour-fidelity measures (intensities on the [0, 1] scale, sizes in pixels)."""

    min_lesion_pixels: int = 20
    """A label component smaller than this (in one slice) is not scored (at 2 mm, 20 px = 80 mm^2: smaller lesions
    lose most of their contrast to a 2-px blur, which the controls must not call erasure)."""
    label_margin: int = 2
    """Dilation of the labels (pixels) left out of NAWM and of the invented-lesion search (label boundary uncertainty)."""
    brain_erosion: int = 2
    """Erosion of the brain mask (pixels) before choosing NAWM (partial volume at the skull-strip edge)."""
    histogram_bin: float = 0.01
    """Bin width of the intensity histogram whose mode is the white-matter intensity."""
    nawm_halfwidth: float = 0.06
    """NAWM = normal-brain pixels within this of the white-matter mode (15/255)."""
    min_nawm_pixels: int = 20
    """Slices with fewer NAWM pixels have no reference and are not scored."""
    min_lesion_contrast: float = 0.08
    """``|C_real|`` at least this: the lesion is conspicuous (erasure scored); ``|C_syn|`` at least this in the
    wrong direction: wrong-direction lesion (20/255)."""
    kept_fraction: float = 0.25
    """A conspicuous lesion is erased when the synthetic image keeps less than this fraction of its real contrast."""
    invented_contrast: float = 0.1
    """An invented pixel differs from the synthetic NAWM by at least this in the lesion direction (26/255)."""
    invented_excess: float = 0.06
    """… and exceeds the real target's most lesion-like value nearby by at least this (15/255)."""
    invented_min_pixels: int = 10
    """An 8-connected region of at least this many invented pixels is an invented lesion."""
    tolerance_radius: int = 2
    """The real target's most lesion-like value within this radius (pixels) is what the synthetic must exceed."""
    smoothing_sigma: float = 1.0
    """Gaussian smoothing (pixels) of both images before the invented-lesion search."""

    def __post_init__(self):
        require(self.min_lesion_pixels >= 1, "min_lesion_pixels", "must be >= 1")
        require(self.label_margin >= 0, "label_margin", "must be >= 0")
        require(self.brain_erosion >= 0, "brain_erosion", "must be >= 0")
        require(0 < self.histogram_bin < 0.5, "histogram_bin", "must lie in (0, 0.5) on the [0,1] scale")
        require(0 < self.nawm_halfwidth < 0.5, "nawm_halfwidth", "must lie in (0, 0.5)")
        require(self.min_nawm_pixels >= 1, "min_nawm_pixels", "must be >= 1")
        require(0 < self.min_lesion_contrast < 1, "min_lesion_contrast", "must lie in (0, 1)")
        require(0 < self.kept_fraction < 1, "kept_fraction", "must lie in (0, 1)")
        require(0 < self.invented_contrast < 1, "invented_contrast", "must lie in (0, 1)")
        require(0 < self.invented_excess < 1, "invented_excess", "must lie in (0, 1)")
        require(self.invented_min_pixels >= 1, "invented_min_pixels", "must be >= 1")
        require(self.tolerance_radius >= 0, "tolerance_radius", "must be >= 0")
        require(self.smoothing_sigma >= 0, "smoothing_sigma", "must be >= 0")


def _check_modality(modality: str) -> None:
    if modality not in LESION_DIRECTION:
        raise ValueError(f"no lesion direction known for modality {modality!r}; known: {', '.join(LESION_DIRECTION)}")


def _disk(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius: radius + 1, -radius: radius + 1]
    return yy**2 + xx**2 <= radius**2


def normal_brain(brain: np.ndarray, seg: np.ndarray, cfg: TumourCheckConfig) -> np.ndarray:
    """Brain (eroded by ``brain_erosion``) minus the labels dilated by ``label_margin``."""
    brain = np.asarray(brain).astype(bool)
    lesion = np.asarray(seg) > 0
    if cfg.brain_erosion:
        brain = ndimage.binary_erosion(brain, iterations=cfg.brain_erosion)
    if cfg.label_margin and lesion.any():
        lesion = ndimage.binary_dilation(lesion, structure=_EIGHT, iterations=cfg.label_margin)
    return brain & ~lesion


def nawm_mask(target: np.ndarray, brain: np.ndarray, seg: np.ndarray, modality: str,
              cfg: TumourCheckConfig | None = None) -> tuple[np.ndarray, float]:
    """``(mask, mode)``: the target's normal-appearing white matter and the white-matter intensity (nan if none).

    The rule (module docstring): the histogram mode of the normal-brain intensities inside the modality's
    white-matter percentile band; NAWM = normal-brain pixels within ``nawm_halfwidth`` of it.
    """
    cfg = cfg or TumourCheckConfig()
    if modality not in WM_PERCENTILES:
        raise ValueError(f"no white-matter band known for modality {modality!r}; known: {', '.join(WM_PERCENTILES)}")
    target = np.asarray(target, dtype=np.float64)
    normal = normal_brain(brain, seg, cfg)
    vals = target[normal]
    if vals.size < cfg.min_nawm_pixels:
        return np.zeros_like(normal), math.nan
    lo, hi = np.percentile(vals, WM_PERCENTILES[modality])
    band = vals[(vals >= lo) & (vals <= hi)]
    edges = np.arange(lo, hi + cfg.histogram_bin, cfg.histogram_bin)
    if band.size == 0 or edges.size < 2:
        mode = float(np.median(band)) if band.size else float(np.median(vals))
    else:
        counts, edges = np.histogram(band, bins=edges)
        counts = ndimage.uniform_filter1d(counts.astype(float), 3, mode="nearest")  # a 3-bin running mean
        mode = float(0.5 * (edges[np.argmax(counts)] + edges[np.argmax(counts) + 1]))
    mask = normal & (np.abs(target - mode) <= cfg.nawm_halfwidth)
    if mask.sum() < cfg.min_nawm_pixels:
        return np.zeros_like(normal), math.nan
    return mask, mode


def lesion_components(seg: np.ndarray, min_pixels: int) -> list[np.ndarray]:
    """Boolean masks of the 8-connected components of ``seg > 0`` with at least ``min_pixels`` pixels."""
    labels, n = ndimage.label(np.asarray(seg) > 0, structure=_EIGHT)
    if n == 0:
        return []
    sizes = np.bincount(labels.ravel())
    return [labels == i for i in range(1, n + 1) if sizes[i] >= min_pixels]


def lesion_outcome(c_real: float, c_syn: float, direction: int, cfg: TumourCheckConfig) -> str:
    """``kept`` / ``erased`` / ``wrong_direction`` / ``not_scored`` for one lesion (contrasts against NAWM)."""
    conspicuous = abs(c_real) >= cfg.min_lesion_contrast
    expected = (1 if c_real > 0 else -1) if conspicuous else direction
    if expected * c_syn <= -cfg.min_lesion_contrast:
        return "wrong_direction"
    if not conspicuous:
        return "not_scored"
    return "erased" if expected * c_syn < cfg.kept_fraction * abs(c_real) else "kept"


def invented_regions(pred: np.ndarray, target: np.ndarray, brain: np.ndarray, seg: np.ndarray, nawm: np.ndarray,
                     modality: str, cfg: TumourCheckConfig | None = None) -> list[np.ndarray]:
    """Masks of the invented lesions of one slice (module docstring); ``nawm`` from :func:`nawm_mask`."""
    cfg = cfg or TumourCheckConfig()
    _check_modality(modality)
    if not nawm.any():
        return []
    d = LESION_DIRECTION[modality]
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    # white-matter levels from the unsmoothed images (smoothing drags a thin NAWM towards its neighbours)
    ref_pred, ref_target = np.median(pred[nawm]), np.median(target[nawm])
    if cfg.smoothing_sigma > 0:
        pred = ndimage.gaussian_filter(pred, cfg.smoothing_sigma)
        target = ndimage.gaussian_filter(target, cfg.smoothing_sigma)
    syn = d * (pred - ref_pred)  # lesion-like contrast of the synthetic image, per pixel
    real = d * (target - ref_target)
    if cfg.tolerance_radius:
        real = ndimage.grey_dilation(real, footprint=_disk(cfg.tolerance_radius))
    search = normal_brain(brain, seg, TumourCheckConfig(label_margin=cfg.label_margin, brain_erosion=0))
    hit = search & (syn >= cfg.invented_contrast) & (syn - real >= cfg.invented_excess)
    return lesion_components(hit, cfg.invented_min_pixels)


def tumour_fidelity(pred: np.ndarray, target: np.ndarray, brain: np.ndarray, seg: np.ndarray, modality: str,
                    cfg: TumourCheckConfig | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Tumour fidelity of one slice: ``(slice_record, lesion_records)`` (``(H, W)`` arrays; images on [0, 1]).

    ``modality`` is the target's (``t1`` or ``flair``): it sets the white-matter band and the lesion direction.
    """
    cfg = cfg or TumourCheckConfig()
    _check_modality(modality)
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    brain = np.asarray(brain).astype(bool)
    seg = np.asarray(seg)
    labelled = seg > 0
    nawm, mode = nawm_mask(target, brain, seg, modality, cfg)
    has_ref = bool(nawm.any())
    lesions = []
    if has_ref:
        ref_real, ref_syn = np.median(target[nawm]), np.median(pred[nawm])
        for k, comp in enumerate(lesion_components(seg, cfg.min_lesion_pixels)):
            c_real, c_syn = float(target[comp].mean() - ref_real), float(pred[comp].mean() - ref_syn)
            lesions.append({"lesion": k, "n_pixels": int(comp.sum()), "contrast_real": c_real, "contrast_synthetic": c_syn,
                            "conspicuous": abs(c_real) >= cfg.min_lesion_contrast,
                            "outcome": lesion_outcome(c_real, c_syn, LESION_DIRECTION[modality], cfg)})
    invented = invented_regions(pred, target, brain, seg, nawm, modality, cfg) if has_ref else []
    count = {o: sum(r["outcome"] == o for r in lesions) for o in OUTCOMES}
    rec = {
        "n_tumour_pixels": int(labelled.sum()),
        "scored": has_ref,
        "nawm_pixels": int(nawm.sum()),
        "wm_intensity": mode,
        "tumour_mae_255": float(np.abs(pred - target)[labelled].mean() * 255.0) if labelled.any() else math.nan,
        "n_lesions": len(lesions),
        "n_conspicuous": sum(r["conspicuous"] for r in lesions),
        "n_kept": count["kept"],
        "n_erased": count["erased"],
        "n_wrong_direction": count["wrong_direction"],
        "n_invented": len(invented),
        "invented_pixels": int(sum(int(r.sum()) for r in invented)),
        "invented_largest_pixels": max((int(r.sum()) for r in invented), default=0),
        "brain_pixels": int(brain.sum()),
    }
    rec["flagged"] = bool(rec["n_erased"] or rec["n_wrong_direction"] or rec["n_invented"])
    return rec, lesions


def tumour_fidelity_batch(pred: np.ndarray, target: np.ndarray, brain: np.ndarray, seg: np.ndarray, modality: str,
                          cfg: TumourCheckConfig | None = None) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """:func:`tumour_fidelity` for each slice of ``(B, H, W)`` arrays (a leading channel axis of 1 is dropped)."""
    arrays = [np.asarray(a) for a in (pred, target, brain, seg)]
    arrays = [a[:, 0] if a.ndim == 4 else a for a in arrays]
    return [tumour_fidelity(*(a[i] for a in arrays), modality=modality, cfg=cfg) for i in range(arrays[0].shape[0])]


def summarise_tumour(slices, lesions=None, by: Sequence[str] = ("run", "method", "direction")):
    """Rates per group: lesion outcomes among lesions, invented lesions and flagged slices among scored slices.

    ``erased_frac`` is over conspicuous lesions, ``wrong_direction_frac`` over all scored lesions; invented and
    flagged rates are over scored slices, and over the tumour-free ones (no labelled pixel; Cohen et al.'s setting).
    """
    import pandas as pd

    by = [c for c in by if c in slices.columns]
    if lesions is None or not len(lesions):
        lesions = pd.DataFrame(columns=[*by, "conspicuous", "contrast_real", "contrast_synthetic", "outcome"])
    rows = []
    for key, g in slices.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        s = g[g["scored"].astype(bool)]
        free = s[s["n_tumour_pixels"] == 0]
        sel = np.ones(len(lesions), bool)
        for c, v in zip(by, key):
            sel &= (lesions[c] == v).to_numpy()
        les = lesions[sel]
        n_consp = int(s["n_conspicuous"].sum())
        consp = les[les["conspicuous"].astype(bool)]
        frac = lambda a, b: float(a) / b if b else math.nan  # noqa: E731
        rows.append({
            **dict(zip(by, key)),
            "n_slices": len(g), "n_scored_slices": len(s), "n_lesions": len(les), "n_conspicuous": n_consp,
            "erased_frac": frac(s["n_erased"].sum(), n_consp),
            "wrong_direction_frac": frac(s["n_wrong_direction"].sum(), len(les)),
            "median_contrast_kept": float((consp["contrast_synthetic"] / consp["contrast_real"]).median()) if len(consp) else math.nan,
            "invented_slice_frac": frac((s["n_invented"] > 0).sum(), len(s)),
            "invented_per_slice": frac(s["n_invented"].sum(), len(s)),
            "n_tumour_free_slices": len(free),
            "invented_slice_frac_tumour_free": frac((free["n_invented"] > 0).sum(), len(free)),
            "flagged_slice_frac": frac(s["flagged"].sum(), len(s)),
            "tumour_mae_255_mean": float(g["tumour_mae_255"].mean()) if g["tumour_mae_255"].notna().any() else math.nan,
        })
    return pd.DataFrame(rows)
