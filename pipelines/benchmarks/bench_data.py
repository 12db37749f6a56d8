"""Benchmark the data layer: ``preprocess`` throughput and memory, and the training Dataset's slice rate.

1. Generates ``--subjects`` full-size (240x240x155, 1 mm, BraTS 2021 layout) phantom subjects (not timed).
2. Runs :func:`mri_harmonic.data.preprocess.preprocess` on them in a fresh Python process per setting, with the
   default config (flair + t1 + seg, 256x256 at 1 mm) at ``--workers`` 1 and 2, and with all four modalities at 2
   workers. Reported: subjects/s over the per-subject work (discovery, assembly and the store write excluded, as
   ``summary["subjects_per_second"]``), end-to-end seconds, and peak resident memory of the process and of its
   worker processes (``resource.getrusage``: RUSAGE_SELF and RUSAGE_CHILDREN ``ru_maxrss``; the children figure is
   the largest single worker). Target: >= 2 subjects/s on a 2-core machine.
3. Loops ``UnpairedSliceDataset.__getitem__`` over the produced store on one core (torch threads = 1) and reports
   slices/s (each item is one A and one B slice). Target: >= 5000/s.

    .venv/bin/python pipelines/benchmarks/bench_data.py [--subjects 8] [--out reports/benchmarks]

Writes ``data.md`` and ``data.json`` in ``--out``. The default run takes about 2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHAPE = (240, 240, 155)


def _child(args: argparse.Namespace) -> None:
    """One preprocess run in this (fresh) process; prints a JSON line with the summary and memory figures."""
    import mri_harmonic.data.transforms  # noqa: F401 - import MONAI before timing, as the CLI has by then
    from mri_harmonic.config import load_config
    from mri_harmonic.data.config import PreprocessConfig
    from mri_harmonic.data.preprocess import preprocess

    cfg = load_config(PreprocessConfig, None, args.set or None)
    t0 = time.perf_counter()
    summary = preprocess(args.data, args.store, cfg, workers=args.workers[0], progress=False, overwrite=True)
    wall = time.perf_counter() - t0
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    print(json.dumps({
        "summary": summary, "wall_s": wall,
        "self_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20,
        "children_maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale / 2**20,
    }))


def run_preprocess(data: Path, store: Path, workers: int, overrides: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--child", "--data", str(data), "--store", str(store), "--workers", str(workers)]
    for o in overrides:
        cmd += ["--set", o]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"preprocess run failed:\n{proc.stderr[-3000:]}")
    out = proc.stdout
    return json.loads(out.strip().splitlines()[-1])


def dataset_rate(store: Path, seconds: float = 5.0) -> dict:
    import torch

    from mri_harmonic.data.datasets import UnpairedSliceDataset

    torch.set_num_threads(1)
    ds = UnpairedSliceDataset(store, "flair", "t1", "train")
    for i in range(min(len(ds), 200)):  # warm the page cache and memory maps
        ds[i]
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(1000):
            ds[n % len(ds)]
            n += 1
    dt = time.perf_counter() - t0
    return {"items": n, "seconds": round(dt, 3), "slices_per_s": round(n / dt, 1), "dataset_len": len(ds),
            "image_size": list(ds.store.image_size)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subjects", type=int, default=8)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks")
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--set", action="append", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return _child(args)

    from mri_harmonic.data.phantom import generate_phantom

    tmp = tempfile.TemporaryDirectory(prefix="bench_data_") if args.work is None else None
    work = Path(tmp.name) if tmp else args.work
    data = work / "phantom"
    t0 = time.perf_counter()
    generate_phantom(data, subjects=args.subjects, seed=0, shape=SHAPE, layout="brats2021", workers=max(args.workers), progress=False)
    gen_s = time.perf_counter() - t0
    print(f"generated {args.subjects} phantom subjects {SHAPE} in {gen_s:.1f} s (not timed below)")

    load_before = os.getloadavg()[0]
    runs = []
    settings = [(w, "flair+t1+seg", []) for w in args.workers]
    settings.append((max(args.workers), "flair+t1+t1ce+t2+seg", ["modalities=[flair,t1,t1ce,t2]"]))
    for workers, label, overrides in settings:
        store = work / f"store_w{workers}_{len(label)}"
        res = run_preprocess(data, store, workers, overrides)
        s = res["summary"]
        row = {"modalities": label, "workers": workers, "subjects": s["subjects_processed"],
               "subjects_per_s": s["subjects_per_second"], "end_to_end_s": round(res["wall_s"], 2),
               "end_to_end_subjects_per_s": round(s["subjects_processed"] / res["wall_s"], 3),
               "slices": sum(v["slices"] for v in s["splits"].values()),
               "peak_rss_main_mb": round(res["self_maxrss_mb"], 1),
               "peak_rss_worker_mb": round(res["children_maxrss_mb"], 1) if workers > 1 else None,
               "store": str(store)}
        runs.append(row)
        print(f"preprocess {label:22s} workers={workers}: {row['subjects_per_s']:.2f} subjects/s "
              f"(end to end {row['end_to_end_s']:.1f} s), peak RSS main {row['peak_rss_main_mb']:.0f} MB"
              + (f", worker {row['peak_rss_worker_mb']:.0f} MB" if workers > 1 else ""))
    ds = dataset_rate(Path(runs[-2]["store"]))
    print(f"UnpairedSliceDataset: {ds['slices_per_s']:.0f} items/s on one core ({ds['image_size'][0]}x{ds['image_size'][1]})")

    load = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    result = {"machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                          "load_average_1min_before_after": load},
              "shape": list(SHAPE), "subjects": args.subjects, "phantom_generation_s": round(gen_s, 1),
              "preprocess": runs, "dataset": ds, "targets": {"preprocess_subjects_per_s": 2.0, "dataset_slices_per_s": 5000}}
    for r in runs:
        r.pop("store")
    args.out.mkdir(parents=True, exist_ok=True)
    from mri_harmonic.utils.io import atomic_write_json, atomic_write_text

    atomic_write_json(args.out / "data.json", result)
    lines = [
        "# Data-layer benchmark", "",
        f"Machine: {result['machine']['platform']}, {result['machine']['cpus']} CPUs, Python {result['machine']['python']}. "
        f"{args.subjects} phantom subjects at {SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]} (1 mm, BraTS 2021 layout, .nii.gz), default "
        "PreprocessConfig (RAS, no resampling, 0.5-99.5 percentiles, 256x256, float16).",
        f"1-minute load average before / after the timed runs: {load[0]} / {load[1]} (other processes on the machine "
        "slow every figure down; rerun on an idle machine for clean numbers).", "",
        "Produced by `pipelines/benchmarks/bench_data.py`; subjects/s counts the per-subject work (load, reorient, "
        "normalise, crop, save), end-to-end adds discovery, assembly and the store write. Peak RSS: "
        "`getrusage` maxrss of the main process and of the largest worker process.", "",
        "| modalities | workers | subjects/s (target >= 2) | end to end (s) | end-to-end subjects/s | slices | peak RSS main (MB) | peak RSS worker (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(f"| {r['modalities']} | {r['workers']} | {r['subjects_per_s']:.2f} | {r['end_to_end_s']:.1f} | "
                     f"{r['end_to_end_subjects_per_s']:.2f} | {r['slices']} | {r['peak_rss_main_mb']:.0f} | "
                     + (f"{r['peak_rss_worker_mb']:.0f} |" if r["workers"] > 1 else "in process |"))
    lines += ["", f"Training Dataset (`UnpairedSliceDataset.__getitem__`, one core, {ds['image_size'][0]}x{ds['image_size'][1]} "
              f"float16 memory maps -> two float32 tensors): **{ds['slices_per_s']:.0f} items/s** (target >= 5000).", ""]
    atomic_write_text(args.out / "data.md", "\n".join(lines))
    print(f"wrote {args.out / 'data.md'} and data.json")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
