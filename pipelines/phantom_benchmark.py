#!/usr/bin/env python
"""Reproduce the paper's BRATS comparison on the built-in phantom, end to end, with one command.

    python pipelines/phantom_benchmark.py            # (or: make benchmark)

Steps (each skipped when its output is already complete, so a killed run continues where it stopped):

1. ``mri-harmonic phantom``     -> WORK/data          (BraTS 2021 layout, MR-physics phantom on MNI anatomy)
2. ``mri-harmonic preprocess``  -> WORK/store         (configs/preprocess-phantom.yaml: 2 mm, 96x96, subject splits)
3. ``mri-harmonic train``       -> WORK/runs/<method> (cyclegan, distancegan, harmonic[, harmonic-vgg]; same budget and seed)
4. ``mri-harmonic evaluate``    -> OUT                (both directions, regions, tumour fidelity, figures, reader study)
5. OUT/README.md                                      (our Table 1 beside the paper's, timings, versions, configs)

It runs in under an hour on a 2-core CPU at the defaults; on a GPU, raise the budget with ``--set`` overrides into a
new ``--work``/``--out`` (any TrainConfig key; the schedule is in epochs of ``data.max_slices_per_epoch`` steps and
``max_steps`` only caps it), e.g. ``--set max_steps=null --set optim.epochs=200 --set optim.epochs_decay=200``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    ROOT,
    log,
    phantom_complete,
    preset_config,
    read_json,
    repo_relative,
    run_cli,
    train_command,
    train_in_parallel,
    versions,
    write_json,
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=ROOT / "work" / "phantom", help="data, store and runs (not committed)")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "phantom", help="report folder")
    ap.add_argument("--subjects", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default="cyclegan,distancegan,harmonic")
    ap.add_argument("--vgg-weights", type=Path, default=None, help="VGG-16 state dict file: adds a harmonic-vgg run")
    ap.add_argument("--jobs", type=int, default=3, help="trainings run side by side (each gets cores/jobs threads)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="TrainConfig override for every run")
    ap.add_argument("--reader-study", type=int, default=20)
    ap.add_argument("--direction", default="flair2t1", help="domain A of every run (both directions are evaluated)")
    args = ap.parse_args(argv)
    args.work, args.out = repo_relative(args.work), repo_relative(args.out)
    os.chdir(ROOT)  # paths in logs and reports are relative to the repository

    work, out = args.work, args.out
    timings = read_json(work / "timings.json", {}) or {}
    t_start = time.perf_counter()

    data = work / "data"
    if not phantom_complete(data, args.subjects):
        timings["phantom_s"] = run_cli(["phantom", data, "--subjects", args.subjects, "--seed", args.seed])
        write_json(work / "timings.json", timings)
    store = work / "store"
    if not (store / "store.json").is_file():
        timings["preprocess_s"] = run_cli(["preprocess", data, store, "--config", "configs/preprocess-phantom.yaml"])
        write_json(work / "timings.json", timings)

    runs: dict[str, tuple[str, list[str]]] = {}
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        runs[method] = (preset_config("phantom-cpu", method), [])
    if args.vgg_weights is not None:
        runs["harmonic-vgg"] = (preset_config("phantom-cpu", "harmonic"), ["loss.smoothness.features=vgg", f"loss.smoothness.vgg_weights={args.vgg_weights}"])

    # equal budgets: the step count binds, not the wall clock (runs share the cores)
    commands = {
        name: (work / "runs" / name,
               train_command(store, work / "runs" / name, cfg, args.direction, ["time_budget_minutes=null", *extra, *args.overrides]))
        for name, (cfg, extra) in runs.items()
    }

    def record(name: str, seconds: float) -> None:
        timings[f"train_{name}_s"] = seconds
        write_json(work / "timings.json", timings)

    train_in_parallel(commands, jobs=args.jobs, log_dir=work / "logs", on_done=record)

    run_dirs = [work / "runs" / name for name in runs]
    timings["evaluate_s"] = run_cli(
        ["evaluate", *run_dirs, "--store", store, "--split", "test", "--direction", "both", "--out", out,
         "--reader-study", args.reader_study]
    )
    # wall clock summed over invocations (a resumed or re-evaluated benchmark adds its own time)
    timings["total_s"] = timings.get("total_s", 0.0) + (time.perf_counter() - t_start)
    write_json(work / "timings.json", timings)

    # provenance beside the figures: resolved configs, timings, versions
    cfg_dir = out / "configs"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(store / "config.yaml", cfg_dir / "preprocess.yaml")
    for name in runs:
        shutil.copy(work / "runs" / name / "config.yaml", cfg_dir / f"train-{name}.yaml")
    write_json(out / "timings.json", timings)
    write_json(out / "versions.json", versions())
    write_json(out / "command.json", {"argv": sys.argv, "subjects": args.subjects, "seed": args.seed, "overrides": args.overrides})
    log(f"done in {(time.perf_counter() - t_start) / 60:.1f} min; report: {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
