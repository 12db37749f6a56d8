#!/usr/bin/env python
"""How much room the metrics leave above the untranslated-input floor: the best pixelwise intensity map.

    python pipelines/benchmarks/remap_headroom.py STORE [--split val] [--bins 64]

Fits, on the store's *paired* training slices, the mean target intensity for each source intensity bin (inside the
brain) -- the best a translation can do that maps each pixel's intensity and ignores its neighbourhood, fitted with
ground truth no unpaired method sees -- and scores it on ``--split`` beside the untranslated input, both directions,
with the evaluator's metrics (mri_harmonic.evaluation.metrics.regional_metrics: 0-255 scale, outside the brain 0,
mean over slices). A method that uses context can do better than this map; one far below it has learned little
more than a contrast lookup. Prints a markdown table.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from mri_harmonic.data.store import SliceStore
from mri_harmonic.evaluation.metrics import regional_metrics


def fit_lookup(source: np.ndarray, target: np.ndarray, brain: np.ndarray, bins: int) -> np.ndarray:
    """Mean target intensity per source intensity bin over the brain pixels (empty bins: the bin centre)."""
    idx = np.clip((source[brain] * bins).astype(int), 0, bins - 1)
    sums = np.bincount(idx, weights=target[brain], minlength=bins)
    counts = np.bincount(idx, minlength=bins)
    centres = (np.arange(bins) + 0.5) / bins
    return np.where(counts > 0, sums / np.maximum(counts, 1), centres)


def score(pred: np.ndarray, target: np.ndarray, brain: np.ndarray) -> dict[str, float]:
    """Mean over slices of whole-slice and brain MAE / SSIM on the 0-255 scale."""
    out = {}
    for i in range(0, len(pred), 64):
        p, t = (torch.from_numpy(a[i:i + 64, None]) for a in (pred, target))
        m = torch.from_numpy(brain[i:i + 64, None])
        vals = regional_metrics(p, t, {"slice": None, "brain": m}, data_range=1.0)
        for region, metrics in vals.items():
            for name in ("MAE", "SSIM"):
                out.setdefault(f"{region} {name}", []).extend(metrics[name].tolist())
    return {k: float(np.mean(v)) * (255.0 if k.endswith("MAE") else 1.0) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store")
    ap.add_argument("--split", default="val")
    ap.add_argument("--bins", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(1)
    store = SliceStore(args.store)

    def arrays(split: str):
        data = {m: np.asarray(store.array(split, m), dtype=np.float32) for m in ("flair", "t1")}
        return data, np.asarray(store.array(split, "mask")) > 0

    train, train_brain = arrays("train")
    test, brain = arrays(args.split)
    print(f"{args.store}, split {args.split} ({len(brain)} slices); lookup fitted on {len(train_brain)} paired train slices\n")
    print("| direction | prediction | slice MAE | slice SSIM | brain MAE | brain SSIM |\n|---|---|---:|---:|---:|---:|")
    for src, tgt in (("flair", "t1"), ("t1", "flair")):
        lookup = fit_lookup(train[src], train[tgt], train_brain, args.bins)
        remapped = np.where(brain, lookup[np.clip((test[src] * args.bins).astype(int), 0, args.bins - 1)], 0.0)
        for name, pred in (("untranslated input", np.where(brain, test[src], 0.0)), ("pixelwise intensity map (oracle)", remapped)):
            s = score(pred.astype(np.float32), test[tgt], brain)
            print(f"| {src} -> {tgt} | {name} | {s['slice MAE']:.2f} | {s['slice SSIM']:.3f} | {s['brain MAE']:.2f} | {s['brain SSIM']:.3f} |")


if __name__ == "__main__":
    main()
