#!/usr/bin/env python
"""The training Dataset's item rate on two slice stores, side by side in one process.

    python pipelines/benchmarks/bench_dataset_pair.py STORE_A STORE_B [--rounds 12] [--window 0.7]

Alternates timed windows of ``UnpairedSliceDataset.__getitem__`` (one torch thread) over the two stores and prints
the median items/s of each and the median of the paired ratios B / A. Run it with another checkout on PYTHONPATH to
time that version's Dataset on the same two stores; compare ratios, not figures from different processes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from mri_harmonic.data.datasets import UnpairedSliceDataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store_a")
    ap.add_argument("store_b")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--window", type=float, default=0.7, help="seconds per store and round")
    args = ap.parse_args()
    torch.set_num_threads(1)
    stores = {"A": args.store_a, "B": args.store_b}
    ds = {k: UnpairedSliceDataset(p, "flair", "t1", "train") for k, p in stores.items()}
    for d in ds.values():
        for i in range(min(len(d), 300)):  # warm the page cache and memory maps
            d[i]
    rates: dict[str, list[float]] = {k: [] for k in ds}
    for _ in range(args.rounds):
        for k, d in ds.items():
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < args.window:
                for _ in range(200):
                    d[n % len(d)]
                    n += 1
            rates[k].append(n / (time.perf_counter() - t0))
    for k, v in rates.items():
        print(f"{k} {stores[k]}: {len(ds[k])} items, median {statistics.median(v):.0f} items/s (min {min(v):.0f}, max {max(v):.0f})")
    print(f"B / A: {statistics.median(b / a for a, b in zip(rates['A'], rates['B'])):.3f} (median of paired rounds)")


if __name__ == "__main__":
    main()
