#!/usr/bin/env python
"""Where a run's whole-slice SSIM is won or lost: the SSIM map averaged over bands around the brain edge.

    python pipelines/benchmarks/ssim_bands.py RUN STORE [--checkpoint latest] [--split val] [--direction flair2t1]
                                              [--rings 2] [--max-slices N]

Translates the split's slices with the run (outside the brain set to 0, as the evaluator does), computes the
evaluator's SSIM map (mri_harmonic.evaluation.metrics.ssim_map) against the real target for the translation and
for the untranslated input, and prints both averaged over four bands of window centres: the brain interior (the
mask eroded by 3 px), the brain's outer 3 px, the 5 px outside the brain, and the background beyond. The bands'
shares of the map say how much each weighs in the whole-slice mean.

Then the mean intensity ([0, 1]) on each of the brain's outermost ``--rings`` pixel rings (ring 1 = mask minus the
mask eroded once) for the network's raw output (before anything is zeroed), the real target and the input, and the
raw output on the first ring outside the mask: whether a model draws the brain outline darker than the target.
``--split train`` asks the same of slices the model trained on; ``--max-slices`` takes the split's first N slices.
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


def rings(brain: np.ndarray, n: int) -> list[np.ndarray]:
    """The mask's outermost ``n`` one-pixel rings, outermost first (per slice, 4-connected erosion)."""
    out, current = [], brain
    for _ in range(n):
        inner = np.stack([ndimage.binary_erosion(m) for m in current])
        out.append(current & ~inner)
        current = inner
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("store")
    ap.add_argument("--checkpoint", default="latest")
    ap.add_argument("--split", default="val")
    ap.add_argument("--direction", default="flair2t1")
    ap.add_argument("--rings", type=int, default=2, help="outermost brain pixel rings whose mean intensity is printed")
    ap.add_argument("--max-slices", type=int, default=None, help="only the split's first N slices")
    args = ap.parse_args()
    torch.set_num_threads(1)
    src, tgt = modalities_of(args.direction)
    store = SliceStore(args.store)
    take = slice(0, args.max_slices)
    source = np.asarray(store.array(args.split, src)[take], dtype=np.float32)
    target = np.asarray(store.array(args.split, tgt)[take], dtype=np.float32)
    brain = np.asarray(store.array(args.split, "mask")[take]) > 0
    run = load_run(args.run, checkpoint=args.checkpoint)
    raw = translate_slices(run.generator_for(src), source, np.ones_like(brain), torch.device("cpu"))
    pred = raw * brain  # zero outside the brain, as the evaluator does
    maps = {"translation": ssim_maps(pred, target), "untranslated input": ssim_maps(np.where(brain, source, 0).astype(np.float32), target)}
    crop = (brain.shape[1] - maps["translation"].shape[1]) // 2  # the map covers valid window centres only
    centres = brain[:, crop:brain.shape[1] - crop, crop:brain.shape[2] - crop]
    print(f"{args.run} ({run.weights} weights, step {run.step}), {args.store} {args.split}, {args.direction}\n")
    print("| band of window centres | share of the map | SSIM translation | SSIM untranslated input |\n|---|---:|---:|---:|")
    for name, band in bands(centres).items():
        print(f"| {name} | {band.mean():.3f} | {maps['translation'][band].mean():.3f} | {maps['untranslated input'][band].mean():.3f} |")
    print(f"| whole slice (mean over slices) | 1 | {maps['translation'].mean(axis=(1, 2)).mean():.3f} | "
          f"{maps['untranslated input'].mean(axis=(1, 2)).mean():.3f} |")
    print(f"\n| mean intensity ({len(brain)} slices) | translation (raw output) | real target | untranslated input |\n"
          "|---|---:|---:|---:|")
    outside = np.stack([ndimage.binary_dilation(m) for m in brain]) & ~brain
    for i, ring in enumerate(rings(brain, args.rings), start=1):
        print(f"| brain's pixel ring {i} from the outline | {raw[ring].mean():.3f} | {target[ring].mean():.3f} | "
              f"{source[ring].mean():.3f} |")
    print(f"| first ring outside the brain | {raw[outside].mean():.3f} | {target[outside].mean():.3f} | "
          f"{source[outside].mean():.3f} |")


if __name__ == "__main__":
    main()
