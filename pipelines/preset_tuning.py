#!/usr/bin/env python
"""Can the CPU preset learn faster? Training-dynamics variants of configs/phantom-cpu.yaml at the same budget.

    python pipelines/preset_tuning.py                 # after pipelines/phantom_benchmark.py (reuses its store and runs)

Each variant changes the optimisation or architecture of configs/phantom-cpu.yaml (harmonic) and trains on the
benchmark's store with its seed and an equal budget of image pairs (batch-4 variants take a quarter of the steps)
or, for ``small_fast`` (slimmer networks), the steps that fit the preset's ~10 minutes;
``long4x`` is the preset with four times the budget, to tell a budget problem from a settings problem. All
variants and the benchmark's harmonic run (the preset as shipped) are evaluated together on the **validation**
split (the test split stays for the benchmark), with the untranslated input as the floor, and
``reports/preset_tuning/README.md`` lists whole-slice and brain-region metrics in both directions plus the sample
grids. Variants: ``--variant NAME=key=value[,key=value]`` (repeatable) replaces the defaults below.

Cost on the 2-core dev machine: ~12 min per default-budget variant with one thread each, two side by side, and
~55 min for ``long4x``; about 2 h in all (finished runs are skipped, so a killed run continues).
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
    is_better,
    markdown_rows,
    parse_variants,
    repo_relative,
    run_cli,
    train_command,
    train_in_parallel,
    training_clocks,
    versions,
    write_json,
)

from mri_harmonic.evaluation.evaluate import REFERENCE_RUN  # noqa: E402

#: Every variant: no wall-clock stop (the step count binds), sparser samples and checkpoints kept for inspection.
COMMON = ["time_budget_minutes=null", "sample_every=600", "checkpoint_every=600", "keep_checkpoints=10", "tensorboard=false"]
BATCH4 = "data.batch_size=4,optim.epochs=20,optim.epochs_decay=20,max_steps=1000,sample_every=250,checkpoint_every=250"
DEFAULT_VARIANTS = [
    "lr5e4=optim.lr=5e-4",
    "dl2=model.d_layers=2",
    "cyc5=loss.lambda_cycle=5",
    "up_nearest=model.upsample=nearest",
    "vanilla=loss.gan_mode=vanilla,model.upsample=nearest",
    f"b4lr4=optim.lr_scaling=sqrt,model.upsample=nearest,{BATCH4}",
    f"b4lr8=optim.lr_scaling=linear,model.upsample=nearest,{BATCH4}",
    "small_fast=model.ngf=8,model.n_blocks=2,model.ndf=16,max_steps=5800,optim.epochs=29,optim.epochs_decay=29,"
    "sample_every=1450,checkpoint_every=1450",
    "long4x=max_steps=9600,optim.epochs=48,optim.epochs_decay=48,sample_every=1200,checkpoint_every=1200",
]
CELLS = [(r, d, m) for r in ("slice", "brain") for d in ("flair2t1", "t12flair") for m in ("MAE", "SSIM")]
PRESET = "harmonic"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=ROOT / "work" / "phantom", help="the phantom benchmark's work folder")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "preset_tuning")
    ap.add_argument("--variant", action="append", default=None, help="NAME=key=value[,key=value]")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    args.work, args.out = repo_relative(args.work), repo_relative(args.out)
    os.chdir(ROOT)

    store = args.work / "store"
    preset = args.work / "runs" / PRESET
    if not (preset / "DONE").is_file():
        raise SystemExit(f"error: {preset} is not a finished run; run pipelines/phantom_benchmark.py first")
    variants = parse_variants(args.variant or DEFAULT_VARIANTS)

    t0 = time.perf_counter()
    runs_dir = args.work / "preset-tuning"
    commands = {
        name: (runs_dir / name, train_command(store, runs_dir / name, "configs/phantom-cpu.yaml", "flair2t1", [*COMMON, *sets]))
        for name, sets in variants.items()
    }
    timings = train_in_parallel(commands, jobs=args.jobs, log_dir=args.work / "logs")

    eval_dir = args.work / "preset-tuning-eval"
    run_cli(["evaluate", preset, *[runs_dir / n for n in variants], "--store", store, "--split", "val",
             "--direction", "both", "--out", eval_dir])

    import pandas as pd
    import yaml

    summ = pd.read_csv(eval_dir / "summary.csv")
    summ = summ[summ["scale"] == "0-255"].set_index(["run", "region", "direction", "metric"])["mean"]

    def pairs(run: str) -> int:
        cfg = yaml.safe_load((preset if run == PRESET else runs_dir / run).joinpath("config.yaml").read_text())
        return int(cfg["max_steps"]) * int(cfg["data"]["batch_size"])

    rows = []
    for run in [PRESET, *variants, REFERENCE_RUN]:
        cells = {f"{r} {d} {m}": float(summ[(run, r, d, m)]) for r, d, m in CELLS}
        if run == REFERENCE_RUN:
            change, n_pairs, better = "no translation: the input scored as output (the floor)", "-", "-"
        else:
            change = "configs/phantom-cpu.yaml as shipped (the benchmark's run)" if run == PRESET else ", ".join(variants[run])
            n_pairs = pairs(run)
            better = "-" if run == PRESET else sum(is_better(m, cells[f"{r} {d} {m}"], summ[(PRESET, r, d, m)]) for r, d, m in CELLS)
        rows.append({"run": run, "change": change, "image pairs": n_pairs, **cells, "cells better than preset": better})
    table = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "tuning.csv", index=False)
    for name in ("samples_flair2t1.png", "samples_t12flair.png"):
        shutil.copy(eval_dir / "figures" / name, args.out / name)
    for name in variants:  # the training-time sample grid of each variant's last step (val slices, both directions)
        last = sorted((runs_dir / name / "samples").glob("step_*.png"))
        if last:
            shutil.copy(last[-1], args.out / f"train-samples-{name}.png")

    header = ["run", "change", "image pairs", *[f"{r} {d} {m}" for r, d, m in CELLS], "cells better than preset"]
    lines = markdown_rows(table, header)
    text = [
        "# Can the CPU preset learn faster? Training-dynamics variants on the phantom",
        "",
        f"Written by `python pipelines/preset_tuning.py` ({time.strftime('%Y-%m-%d')}). Every run: configs/phantom-cpu.yaml "
        "(harmonic) with the change listed, the benchmark's store and seed, flair2t1. Budget: 2,400 image pairs "
        "(batch-4 runs: 1,000 steps, 4,000 pairs -- what batch 4 fits in the same ~10 min of a 2-core CPU, where it "
        "runs ~1.6x more pairs/s than batch 1); `small_fast` halves the networks' width and depth (ngf 8, 2 blocks, ndf 16), "
        "which runs ~2.4x more pairs/s, and takes the 5,800 steps that fit the same ~10 min; `long4x` has four times the preset's budget (the training settings of "
        "configs/phantom-cpu-long.yaml). **Validation split**, "
        "0-255 scale, mean over slices; `slice` = whole slice (the paper's Table 1), `brain` = the brain mask. "
        f"Full results: `{eval_dir}` (not committed; rerun to regenerate).",
        "",
        *lines,
        "",
        "Sample grids (validation slices; columns: input, each run, real target, |error|): "
        "[Flair -> T1](samples_flair2t1.png), [T1 -> Flair](samples_t12flair.png); each variant's last training "
        "sample grid: `train-samples-<run>.png`.",
        "",
        "One run per setting (one seed); the paired comparison in the evaluation report puts intervals on the "
        "differences from the validation subjects only.",
    ]
    (args.out / "README.md").write_text("\n".join(text) + "\n")
    run_seconds = training_clocks({n: runs_dir / n for n in variants})
    write_json(args.out / "timings.json", {"train_elapsed_s": run_seconds, "trained_now_s": timings,
                                           "total_s": time.perf_counter() - t0,
                                           "note": "runs trained two side by side, one CPU thread each, on 2 cores"})
    write_json(args.out / "versions.json", versions())
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
