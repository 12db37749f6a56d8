"""Controls that calibrate the tumour-fidelity measures of :mod:`.tumour`: images whose answer is known.

Each control turns the real target slice into a stand-in "synthetic" image and scores it with
:func:`~mri_harmonic.evaluation.tumour.tumour_fidelity` against the real target:

==================  ================================================================================  ==============
control             stand-in synthetic image                                                          should flag
==================  ================================================================================  ==============
``real``            the real target itself                                                            <= 1 % slices
``blur1/blur2``     the target blurred with a Gaussian of sigma 1 / 2 px (then zeroed outside brain)  <= 5 % slices
``noise``           the target plus Gaussian noise of sd ``NOISE_SD`` inside the brain                <= 5 % slices
``inpainted``       every lesion replaced by white-matter pixels drawn from around it                 erased >= 95 %
``added``           one synthetic lesion (a disc of ``ADDED_RADIUS`` px) added in white matter        invented >= 95 %
``input``           the untranslated source image (what doing nothing scores), by direction           (reported)
==================  ================================================================================  ==============

:func:`score_controls` runs them all on a store split; ``pipelines/fidelity_controls.py`` writes the report.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from mri_harmonic.evaluation.tumour import (
    LESION_DIRECTION,
    TumourCheckConfig,
    invented_regions,
    nawm_mask,
    normal_brain,
    summarise_tumour,
    tumour_fidelity,
)

CONTROLS = ("real", "blur1", "blur2", "noise", "inpainted", "added", "input")
NOISE_SD = 0.03
"""Noise control: sd of the added Gaussian noise on the [0, 1] scale (~8/255; the phantom store's own white-matter sd is ~0.03)."""
ADDED_RADIUS = 3
"""Added-lesion control: disc radius in pixels (29 px, 6 mm at 2 mm spacing)."""
ADDED_CONTRAST = 0.2
"""Added-lesion control: contrast over white matter in the target's lesion direction (51/255; the phantom's real
lesions reach 0.2-0.5 in FLAIR)."""
ADDED_IN_WM = 0.9
"""Added-lesion control: the disc and a 1-px rim lie in NAWM for at least this share of their pixels."""
INPAINT_RING = 6
"""In-painting draws white-matter pixels from within this many pixels around the lesion (else from the whole slice)."""


def blurred(target: np.ndarray, brain: np.ndarray, sigma: float) -> np.ndarray:
    """``target`` smoothed by a Gaussian of ``sigma`` pixels, zeroed outside ``brain``."""
    return ndimage.gaussian_filter(np.asarray(target, float), sigma) * np.asarray(brain, bool)


def noisy(target: np.ndarray, brain: np.ndarray, sd: float, rng: np.random.Generator) -> np.ndarray:
    """``target`` plus Gaussian noise of ``sd`` inside ``brain``, clipped to [0, 1]."""
    brain = np.asarray(brain, bool)
    return np.clip(np.asarray(target, float) + rng.normal(0, sd, target.shape) * brain, 0, 1) * brain


def inpainted(target: np.ndarray, brain: np.ndarray, seg: np.ndarray, modality: str, cfg: TumourCheckConfig,
              rng: np.random.Generator) -> np.ndarray | None:
    """Every labelled pixel (all components, dilated by 1 px) replaced by NAWM pixels drawn from around it.

    None when the slice has no NAWM. The white-matter pixels keep their own noise, so the in-painted region has
    white matter's mean and texture.
    """
    nawm, _ = nawm_mask(target, brain, seg, modality, cfg)
    if not nawm.any():
        return None
    out = np.asarray(target, float).copy()
    labels, n = ndimage.label(np.asarray(seg) > 0, structure=np.ones((3, 3), bool))
    for i in range(1, n + 1):
        comp = ndimage.binary_dilation(labels == i) & np.asarray(brain, bool)
        ring = ndimage.binary_dilation(comp, iterations=INPAINT_RING) & nawm
        pool = target[ring] if ring.sum() >= 10 else target[nawm]
        out[comp] = rng.choice(pool, size=int(comp.sum()))
    return out


def with_added_lesion(target: np.ndarray, brain: np.ndarray, seg: np.ndarray, modality: str, cfg: TumourCheckConfig,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    """``(image, disc)``: a disc of ``ADDED_RADIUS`` px whose mean lies ``ADDED_CONTRAST`` from white matter in the
    lesion direction, placed (seeded) in white matter (``ADDED_IN_WM`` of the disc and its rim), inside normal brain away from the labels; the disc's
    pixels keep the target's texture. None when it fits nowhere or the slice has no NAWM."""
    nawm, wm = nawm_mask(target, brain, seg, modality, cfg)
    if not nawm.any():
        return None
    room = ndimage.binary_erosion(normal_brain(brain, seg, cfg), iterations=ADDED_RADIUS + cfg.label_margin + 1)
    r = ADDED_RADIUS + 1  # the disc and a 1-px rim lie (almost) wholly in white matter
    yy, xx = np.mgrid[-r: r + 1, -r: r + 1]
    footprint = (yy**2 + xx**2 <= r**2).astype(float)
    in_wm = ndimage.convolve(nawm.astype(float), footprint / footprint.sum(), mode="constant")
    centres = np.argwhere(room & nawm & (in_wm >= ADDED_IN_WM))
    if not len(centres):
        return None
    cy, cx = centres[rng.integers(len(centres))]
    yy, xx = np.mgrid[: target.shape[0], : target.shape[1]]
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= ADDED_RADIUS**2
    out = np.asarray(target, float).copy()
    ref = float(np.median(target[nawm]))
    out[disc] = np.clip(target[disc] - target[disc].mean() + ref + LESION_DIRECTION[modality] * ADDED_CONTRAST, 0, 1)
    return out, disc


def score_controls(slices: list[dict[str, Any]], cfg: TumourCheckConfig | None = None, seed: int = 0,
                   controls=CONTROLS) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Score each control on each slice and direction.

    ``slices``: dicts with ``subject``, ``slice_index``, ``brain``, ``seg`` and one ``(H, W)`` image per modality
    (keys ``flair``, ``t1``; [0, 1] scale). Returns ``(per_slice, lesions, added)``: the per-slice records (columns
    ``control``, ``direction``, … as :func:`tumour_fidelity`), the per-lesion records, and per added lesion whether
    an invented region overlaps it (``detected``).
    """
    from mri_harmonic.directions import DIRECTIONS

    cfg = cfg or TumourCheckConfig()
    rng = np.random.default_rng(seed)
    rows, lesion_rows, added_rows = [], [], []
    for sl in slices:
        keys = {"subject": sl["subject"], "slice_index": int(sl["slice_index"])}
        brain, seg = np.asarray(sl["brain"], bool), np.asarray(sl["seg"])
        for direction, (src, tgt) in DIRECTIONS.items():
            target = np.asarray(sl[tgt], float)
            for control in controls:
                disc = None
                if control == "real":
                    pred = target
                elif control.startswith("blur"):
                    pred = blurred(target, brain, float(control[4:]))
                elif control == "noise":
                    pred = noisy(target, brain, NOISE_SD, rng)
                elif control == "inpainted":
                    if not (seg > 0).any():
                        continue
                    pred = inpainted(target, brain, seg, tgt, cfg, rng)
                elif control == "added":
                    made = with_added_lesion(target, brain, seg, tgt, cfg, rng)
                    pred, disc = made if made is not None else (None, None)
                elif control == "input":
                    pred = np.asarray(sl[src], float) * brain
                else:
                    raise ValueError(f"unknown control {control!r}; known: {', '.join(CONTROLS)}")
                if pred is None:
                    continue
                rec, lesions = tumour_fidelity(pred, target, brain, seg, tgt, cfg)
                tag = {**keys, "control": control, "direction": direction}
                rows.append({**tag, **rec})
                lesion_rows += [{**tag, **les} for les in lesions]
                if disc is not None:
                    nawm, _ = nawm_mask(target, brain, seg, tgt, cfg)
                    found = invented_regions(pred, target, brain, seg, nawm, tgt, cfg)
                    added_rows.append({**tag, "detected": any((r & disc).any() for r in found)})
    return pd.DataFrame(rows), pd.DataFrame(lesion_rows), pd.DataFrame(added_rows)


def control_rates(per_slice: pd.DataFrame, lesions: pd.DataFrame, added: pd.DataFrame) -> pd.DataFrame:
    """One row per control x direction: the rates the calibration targets are stated in."""
    summ = summarise_tumour(per_slice, lesions, by=("control", "direction"))
    order = {c: i for i, c in enumerate(CONTROLS)}
    summ = summ.sort_values(["direction", "control"], key=lambda c: c.map(order) if c.name == "control" else c,
                            kind="stable").reset_index(drop=True)
    if len(added):
        det = added.groupby(["control", "direction"])["detected"].agg(["mean", "size"]).reset_index()
        det = det.rename(columns={"mean": "added_detected_frac", "size": "n_added"})
        summ = summ.merge(det, on=["control", "direction"], how="left")
    return summ


def store_slices(store, split: str = "test") -> list[dict[str, Any]]:
    """The slices of ``split`` of a :class:`~mri_harmonic.data.store.SliceStore` as :func:`score_controls` input."""
    man = store.split_manifest(split).reset_index(drop=True)
    arr = {name: store.array(split, name) for name in ("flair", "t1", "mask", "seg")}
    rows = man["row"].to_numpy() if "row" in man.columns else np.arange(len(man))
    return [{"subject": str(man.loc[i, "subject"]), "slice_index": int(man.loc[i, "slice_index"]),
             "brain": arr["mask"][r].astype(bool), "seg": arr["seg"][r], "flair": arr["flair"][r].astype(np.float64),
             "t1": arr["t1"][r].astype(np.float64)} for i, r in enumerate(rows)]
