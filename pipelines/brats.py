#!/usr/bin/env python
"""The paper's recipe on your own BraTS copy, at paper scale, on one GPU or several (``torchrun``).

    python pipelines/brats.py --data /data/BraTS2021_TrainingData [--gpus 4] [--methods cyclegan,distancegan,harmonic]

What it expects
- ``--data``: a BraTS 2018-2021, BraTS 2023 GLI or MSD Task01_BrainTumour folder (layout found automatically).
- A CUDA GPU (an H100 trains ResNet-9 at 256x256 in bf16; see reports/performance.md for measured pairs/s). Without
  one it stops and says so, unless ``--allow-cpu`` (then it is days per method; only useful with ``--set max_steps``).
- Time: it prints an estimate from the store size, the epochs in configs/brats-paper*.yaml and the measured
  throughput before it starts training.

Steps (each skipped when complete; training resumes from its last checkpoint):
1. ``mri-harmonic preprocess`` with configs/preprocess-brats.yaml (1 mm, 240 -> 256 padding, subject splits,
   disjoint subject halves for the two domains) -> WORK/store
2. ``mri-harmonic train`` (or ``torchrun --nproc_per_node N -m mri_harmonic.cli train``) per method -> WORK/runs/<method>
3. ``mri-harmonic evaluate`` of all runs, both directions, with a 40-case reader study -> OUT
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, log, run_cli, train_command, versions, write_json  # noqa: E402

METHOD_CONFIGS = {
    "cyclegan": "configs/brats-paper-cyclegan.yaml",
    "distancegan": "configs/brats-paper-distancegan.yaml",
    "harmonic": "configs/brats-paper.yaml",
}
ASSUMED_PAIRS_PER_S = {"cuda": 100.0, "cpu": 0.1}  # the GPU target; used only without a 256x256 measurement


def _throughput(device: str) -> float:
    """Measured harmonic pairs/s from reports/benchmarks/training.json when it was taken on this kind of device."""
    bench = ROOT / "reports" / "benchmarks" / "training.json"
    try:
        data = json.loads(bench.read_text())
        measured_on_gpu = not str(data.get("device", "cpu")).startswith("cpu")
        if measured_on_gpu == (device == "cuda") and tuple(data.get("image_size", ())) == (256, 256):
            return float(data["pairs_per_s"]["harmonic"])
    except (OSError, ValueError, TypeError, KeyError):
        pass
    return ASSUMED_PAIRS_PER_S[device]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="your BraTS folder")
    ap.add_argument("--work", type=Path, default=ROOT / "work" / "brats")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "brats")
    ap.add_argument("--methods", default="cyclegan,distancegan,harmonic")
    ap.add_argument("--gpus", type=int, default=1, help="processes per run; > 1 uses torchrun (DDP, NCCL)")
    ap.add_argument("--workers", type=int, default=None, help="preprocess workers")
    ap.add_argument("--direction", default="flair2t1")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="TrainConfig override for every run")
    ap.add_argument("--allow-cpu", action="store_true")
    ap.add_argument("--dry-run", action="store_true", help="check inputs, print the plan and the time estimate, stop")
    args = ap.parse_args(argv)

    import torch

    if not args.data.is_dir():
        raise SystemExit(f"error: --data {args.data} is not a folder; point it at your BraTS copy")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    n_gpu = torch.cuda.device_count()
    log(f"device: {torch.cuda.get_device_name(0) + f' x{n_gpu}' if device == 'cuda' else 'CPU only'}")
    if device == "cpu" and not (args.allow_cpu or args.dry_run):
        raise SystemExit("error: no CUDA GPU found; paper scale needs one (or pass --allow-cpu with --set max_steps=N)")
    if args.gpus > max(1, n_gpu) and device == "cuda":
        raise SystemExit(f"error: --gpus {args.gpus} but only {n_gpu} visible")

    from mri_harmonic.data.layouts import discover

    cases = discover(args.data)
    log(f"found {len(cases)} subjects in {args.data}")

    store = args.work / "store"
    if not (store / "store.json").is_file() and not args.dry_run:
        cmd = ["preprocess", args.data, store, "--config", "configs/preprocess-brats.yaml"]
        if args.workers:
            cmd += ["--workers", args.workers]
        run_cli(cmd)

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    from mri_harmonic.training.config import load_train_config

    cfg = load_train_config(ROOT / METHOD_CONFIGS["harmonic"], args.overrides)
    if (store / "store.json").is_file():
        n_train = json.loads((store / "store.json").read_text())["splits"]["train"]["n_slices"]
    else:
        n_train = int(len(cases) * 0.7 * 100)  # ~100 kept axial slices per BraTS subject
    epochs = cfg.optim.epochs + cfg.optim.epochs_decay
    pairs = n_train * epochs
    pps = _throughput(device) * max(1, args.gpus)
    log(f"plan: {len(methods)} runs x {epochs} epochs x {n_train} slices = {pairs:,} pairs each; "
        f"at ~{pps:.1f} pairs/s that is ~{pairs / pps / 3600:.1f} h per run")
    if args.dry_run:
        return 0

    runs = []
    for method in methods:
        run_dir = args.work / "runs" / method
        cmd = train_command(store, run_dir, METHOD_CONFIGS[method], args.direction, args.overrides)
        if not (run_dir / "DONE").is_file():
            if args.gpus > 1:
                full = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={args.gpus}", "-m", "mri_harmonic.cli", *map(str, cmd)]
                log("$ " + " ".join(full))
                if subprocess.run(full, cwd=ROOT).returncode != 0:
                    raise SystemExit(f"training {method} failed")
            else:
                run_cli(cmd)
            (run_dir / "DONE").write_text("ok\n")
        runs.append(run_dir)
    run_cli(["evaluate", *runs, "--store", store, "--split", "test", "--direction", "both", "--out", args.out, "--reader-study", 40])
    write_json(args.out / "versions.json", versions())
    return 0


if __name__ == "__main__":
    sys.exit(main())
