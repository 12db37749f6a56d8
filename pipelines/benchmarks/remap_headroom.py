#!/usr/bin/env python
"""How much room the metrics leave above the untranslated-input floor: the best pixelwise intensity map.

    python pipelines/benchmarks/remap_headroom.py STORE [--split val] [--bins 64]

Prints, for both directions, the untranslated input and mri_harmonic.evaluation.oracle's intensity-map oracle (the
mean target intensity per source-intensity bin, fitted on the store's paired training slices) with the evaluator's
metrics, as a markdown table.
"""

from __future__ import annotations

import argparse

import torch

from mri_harmonic.evaluation.oracle import intensity_map_oracle
from mri_harmonic.evaluation.tables import DIRECTION_TITLES


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store")
    ap.add_argument("--split", default="val")
    ap.add_argument("--bins", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"{args.store}, split {args.split}; intensity map fitted on the paired train slices, {args.bins} bins\n")
    print("| direction | prediction | slice MAE | slice SSIM | brain MAE | brain SSIM |\n|---|---|---:|---:|---:|---:|")
    for direction, rows in intensity_map_oracle(args.store, args.split, args.bins).items():
        for name, s in (("untranslated input", rows["input"]), ("pixelwise intensity map (oracle)", rows["oracle"])):
            print(f"| {DIRECTION_TITLES[direction]} | {name} | {s['slice MAE']:.2f} | {s['slice SSIM']:.3f} | {s['brain MAE']:.2f} "
                  f"| {s['brain SSIM']:.3f} |")


if __name__ == "__main__":
    main()
