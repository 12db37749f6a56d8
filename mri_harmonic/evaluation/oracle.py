"""How much room a store leaves above the untranslated-input floor: the best pixelwise intensity map.

:func:`intensity_map_oracle` fits, on a store's *paired* training slices, the mean target intensity for each source
intensity bin inside the brain, and scores that map on another split with the evaluator's metrics
(:func:`~mri_harmonic.evaluation.metrics.regional_metrics`; outside the brain 0, means over slices). It uses a
pixel's own intensity only, never its neighbourhood, and it is fitted with ground truth that no unpaired method
sees: a method that uses context can beat it, and one far below it has learned little more than a contrast lookup.
"""

from __future__ import annotations

import numpy as np
import torch

from mri_harmonic.data.store import SliceStore
from mri_harmonic.directions import DIRECTIONS
from mri_harmonic.evaluation.metrics import SCALES, regional_metrics


def fit_intensity_map(source: np.ndarray, target: np.ndarray, brain: np.ndarray, bins: int = 64) -> np.ndarray:
    """Mean ``target`` intensity per ``source`` intensity bin (``bins`` equal bins of [0, 1]) over ``brain``
    pixels; an empty bin maps to its centre."""
    idx = np.clip((source[brain] * bins).astype(int), 0, bins - 1)
    sums = np.bincount(idx, weights=target[brain].astype(np.float64), minlength=bins)
    counts = np.bincount(idx, minlength=bins)
    return np.where(counts > 0, sums / np.maximum(counts, 1), (np.arange(bins) + 0.5) / bins)


def apply_intensity_map(lookup: np.ndarray, source: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """``lookup`` applied to every brain pixel of ``source``; 0 outside ``brain``."""
    bins = len(lookup)
    return np.where(brain, lookup[np.clip((source * bins).astype(int), 0, bins - 1)], 0.0).astype(np.float32)


def score_slices(pred: np.ndarray, target: np.ndarray, brain: np.ndarray, batch: int = 64) -> dict[str, float]:
    """``{"slice MAE", "slice SSIM", "brain MAE", "brain SSIM"}``: means over slices (MAE on the 0-255 scale)."""
    values: dict[str, list[float]] = {}
    for i in range(0, len(pred), batch):
        p, t = (torch.from_numpy(np.ascontiguousarray(a[i:i + batch, None], dtype=np.float32)) for a in (pred, target))
        m = torch.from_numpy(np.ascontiguousarray(brain[i:i + batch, None]))
        for region, metrics in regional_metrics(p, t, {"slice": None, "brain": m}, data_range=1.0).items():
            for name in ("MAE", "SSIM"):
                values.setdefault(f"{region} {name}", []).extend(metrics[name].tolist())
    return {k: float(np.mean(v)) * (SCALES["0-255"] if k.endswith("MAE") else 1.0) for k, v in values.items()}


def intensity_map_oracle(store: SliceStore | str, split: str = "val", bins: int = 64
                         ) -> dict[str, dict[str, dict[str, float]]]:
    """``{direction: {"input": scores, "oracle": scores}}`` for every direction whose two modalities the store
    holds, on ``split`` (:func:`score_slices`), the map fitted on the ``train`` split."""
    store = store if isinstance(store, SliceStore) else SliceStore(store)
    dirs = {d: m for d, m in DIRECTIONS.items() if set(m) <= set(store.modalities)}
    mods = sorted({m for pair in dirs.values() for m in pair})

    def arrays(split_name: str):
        data = {m: np.asarray(store.array(split_name, m), dtype=np.float32) for m in mods}
        return data, np.asarray(store.array(split_name, "mask")) > 0

    train, train_brain = arrays("train")
    held, brain = arrays(split)
    out = {}
    for direction, (src, tgt) in dirs.items():
        lookup = fit_intensity_map(train[src], train[tgt], train_brain, bins)
        out[direction] = {"input": score_slices(np.where(brain, held[src], 0.0), held[tgt], brain),
                          "oracle": score_slices(apply_intensity_map(lookup, held[src], brain), held[tgt], brain)}
    return out
