#!/usr/bin/env python
"""A small, rerunnable sweep of the smoothness term's settings against the CycleGAN baseline, on the phantom.

    python pipelines/smoothness_sweep.py                 # after pipelines/phantom_benchmark.py (reuses its store and runs)

Each variant changes one setting of configs/phantom-cpu.yaml (harmonic) and trains with the benchmark's budget and
seed; all variants, the benchmark's default harmonic run and its cyclegan run are evaluated together on the test
split, and ``reports/sweep/README.md`` lists, per variant, the four metrics in both directions and on how many of
the 8 (metric, direction) cells it beats cyclegan. Variants: ``--variant NAME=key=value[,key=value]`` (repeatable);
the defaults below vary lambda_smooth (3, 10), the patch size (8) and sigma (0.35) one at a time around the
shipped defaults (lambda 1, patch 16, sigma 0.7), all four side by side.
"""

from __future__ import annotations

import argparse
import os
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
from mri_harmonic.evaluation.metrics import METRICS  # noqa: E402

DEFAULT_VARIANTS = [
    "lambda3=loss.lambda_smooth=3.0",
    "lambda10=loss.lambda_smooth=10.0",
    "patch8=loss.smoothness.patch_size=8",
    "sigma0.35=loss.smoothness.sigma=0.35",
]


def wins_against(row, base, directions) -> int:
    return sum(is_better(m, row[f"{d} {m}"], base[f"{d} {m}"]) for d in directions for m in METRICS)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=ROOT / "work" / "phantom", help="the phantom benchmark's work folder")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "sweep")
    ap.add_argument("--variant", action="append", default=None, help="NAME=key=value[,key=value]")
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="override for every variant")
    args = ap.parse_args(argv)
    args.work, args.out = repo_relative(args.work), repo_relative(args.out)
    os.chdir(ROOT)  # paths in logs and reports are relative to the repository

    store = args.work / "store"
    base_runs = {name: args.work / "runs" / name for name in ("cyclegan", "harmonic")}
    for path in base_runs.values():
        if not (path / "DONE").is_file():
            raise SystemExit(f"error: {path} is not a finished run; run pipelines/phantom_benchmark.py first")

    variants = parse_variants(args.variant or DEFAULT_VARIANTS)

    t0 = time.perf_counter()
    commands = {
        name: (args.work / "sweep" / name,
               train_command(store, args.work / "sweep" / name, "configs/phantom-cpu.yaml", "flair2t1",
                             ["time_budget_minutes=null", *sets, *args.overrides]))
        for name, sets in variants.items()
    }
    timings = train_in_parallel(commands, jobs=args.jobs, log_dir=args.work / "logs")

    eval_dir = args.work / "sweep-eval"
    runs = [base_runs["cyclegan"], base_runs["harmonic"], *[args.work / "sweep" / n for n in variants]]
    run_cli(["evaluate", *runs, "--store", store, "--split", "test", "--direction", "both", "--out", eval_dir])

    import pandas as pd

    t1 = pd.read_csv(eval_dir / "table1.csv")
    t1 = t1[t1["source"] == "ours"] if "source" in t1.columns else t1
    directions = [d for d in ("flair2t1", "t12flair") if f"{d} MAE" in t1.columns]
    base = t1[t1["run"] == "cyclegan"].iloc[0]
    rows = []
    for _, r in t1.iterrows():
        label = r["run"]
        setting = {"harmonic": "defaults (configs/phantom-cpu.yaml)", "cyclegan": "lambda_smooth = 0 (CycleGAN)",
                   REFERENCE_RUN: "no translation: the input scored as output (the floor)"}.get(label) or ", ".join(variants.get(label, []))
        rows.append({"run": label, "setting": setting,
                     **{f"{d} {m}": r[f"{d} {m}"] for d in directions for m in METRICS},
                     "cells better than cyclegan": "-" if label == "cyclegan" else f"{wins_against(r, base, directions)}/{4 * len(directions)}"})
    table = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "sweep.csv", index=False)

    header = ["run", "setting", *[f"{d} {m}" for d in directions for m in METRICS], "cells better than cyclegan"]
    lines = markdown_rows(table, header)
    text = [
        "# Smoothness-term sweep on the phantom",
        "",
        f"Written by `python pipelines/smoothness_sweep.py` ({time.strftime('%Y-%m-%d')}). Every run: configs/phantom-cpu.yaml, "
        "the same seed, store and step budget as benchmark v1 (`reports/phantom_v1/`); one setting changed per row. Test split, whole "
        "slice, 0-255 scale, mean over slices (lower MAE/MSE and higher PSNR/SSIM are better). Full per-slice and "
        f"per-region results: `{eval_dir.relative_to(ROOT) if eval_dir.is_relative_to(ROOT) else eval_dir}` (not committed; rerun to regenerate).",
        "",
        *lines,
        "",
        "One training run per setting (one seed). The paired comparison below puts a t-interval over the test "
        "subjects on each difference; with one seed it covers these runs only, so it gives no verdict on a setting.",
        "",
        "## Paired differences against cyclegan",
        "",
        (eval_dir / "report.md").read_text().split("## Paired comparison against cyclegan (whole slice, 0-255)")[-1]
        .split("## Figures")[0].strip(),
    ]
    (args.out / "README.md").write_text("\n".join(text) + "\n")
    write_json(args.out / "timings.json", {"train_elapsed_s": training_clocks({n: args.work / "sweep" / n for n in variants}),
                                           "trained_now_s": timings, "total_s": time.perf_counter() - t0})
    write_json(args.out / "versions.json", versions())
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
