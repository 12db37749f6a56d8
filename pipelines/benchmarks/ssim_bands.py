#!/usr/bin/env python
"""Where a run's whole-slice SSIM is won or lost: the SSIM map averaged over bands around the brain edge.

    python pipelines/benchmarks/ssim_bands.py RUN STORE [--checkpoint latest] [--split val] [--direction flair2t1]

Translates the split's slices with the run (outside the brain set to 0, as the evaluator does), computes the
evaluator's SSIM map (mri_harmonic.evaluation.metrics.ssim_map) against the real target for the translation and
for the untranslated input, and prints both averaged over four bands of window centres: the brain interior (the
mask eroded by 3 px), the brain's outer 3 px, the 5 px outside the brain, and the background beyond. The bands'
shares of the map say how much each weighs in the whole-slice mean.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy import ndimage

from mri_harmonic.checkpoint import load_run
from mri_harmonic.data.store import SliceStore
from mri_harmonic.directions import modalities_of
from mri_harmonic.evaluation.metrics import ssim_map
from mri_harmonic.evaluation.translate import translate_slices


def ssim_maps(pred: np.ndarray, target: np.ndarray, batch: int = 64) -> np.ndarray:
    return np.concatenate([ssim_map(torch.from_numpy(pred[i:i + batch, None]), torch.from_numpy(target[i:i + batch, None]),
                                    1.0)[:, 0].numpy() for i in range(0, len(pred), batch)])


def bands(brain: np.ndarray) -> dict[str, np.ndarray]:
    inner = np.stack([ndimage.binary_erosion(m, iterations=3) for m in brain])
    outer = np.stack([ndimage.binary_dilation(m, iterations=5) for m in brain])
    return {"brain interior": inner, "brain edge, inside (3 px)": brain & ~inner,
            "brain edge, outside (5 px)": outer & ~brain, "background beyond": ~outer}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("store")
    ap.add_argument("--checkpoint", default="latest")
    ap.add_argument("--split", default="val")
    ap.add_argument("--direction", default="flair2t1")
    args = ap.parse_args()
    torch.set_num_threads(1)
    src, tgt = modalities_of(args.direction)
    store = SliceStore(args.store)
    source = np.asarray(store.array(args.split, src), dtype=np.float32)
    target = np.asarray(store.array(args.split, tgt), dtype=np.float32)
    brain = np.asarray(store.array(args.split, "mask")) > 0
    run = load_run(args.run, checkpoint=args.checkpoint)
    pred = translate_slices(run.generator_for(src), source, brain, torch.device("cpu"))  # zero outside the brain
    maps = {"translation": ssim_maps(pred, target), "untranslated input": ssim_maps(np.where(brain, source, 0).astype(np.float32), target)}
    crop = (brain.shape[1] - maps["translation"].shape[1]) // 2  # the map covers valid window centres only
    brain = brain[:, crop:brain.shape[1] - crop, crop:brain.shape[2] - crop]
    print(f"{args.run} ({run.weights} weights, step {run.step}), {args.store} {args.split}, {args.direction}\n")
    print("| band of window centres | share of the map | SSIM translation | SSIM untranslated input |\n|---|---:|---:|---:|")
    for name, band in bands(brain).items():
        print(f"| {name} | {band.mean():.3f} | {maps['translation'][band].mean():.3f} | {maps['untranslated input'][band].mean():.3f} |")
    print(f"| whole slice (mean over slices) | 1 | {maps['translation'].mean(axis=(1, 2)).mean():.3f} | "
          f"{maps['untranslated input'].mean(axis=(1, 2)).mean():.3f} |")
    full = np.asarray(store.array(args.split, "mask")) > 0
    rim = full & ~np.stack([ndimage.binary_erosion(m) for m in full])
    print(f"\nmean intensity on the brain's outermost pixel ring: translation {pred[rim].mean():.3f}, real target "
          f"{target[rim].mean():.3f}, untranslated input {source[rim].mean():.3f}")


if __name__ == "__main__":
    main()
