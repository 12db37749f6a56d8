#!/usr/bin/env python
"""Does bf16 learn as well as fp32? Validation MAE at equal steps, fp32 vs bf16 autocast, two seeds each.

1. The demo's phantom and slice store (16 subjects, seed 0) in ``--work`` (reused when complete).
2. Trains ``configs/phantom-cpu.yaml`` four times: ``amp`` off / bf16 x ``seed`` 0 / 1, two at a time with one thread
   each, the time budget lifted (every run reaches ``max_steps``), a checkpoint kept every ``--every`` steps.
3. Scores every kept checkpoint on the validation split: whole-slice MAE on the 0-255 scale of Flair -> T1 and
   T1 -> Flair (outputs zeroed outside the brain and translated in fp32, as ``mri-harmonic evaluate`` does), and
   the untranslated input (the floor).
4. Writes ``curves.csv`` (run, precision, seed, step, direction, MAE) and ``README.md`` to ``--out``: the curves
   and, per direction, the bf16 - fp32 difference of the seed means beside the seed-to-seed spread.

Not a timing benchmark (run times are recorded, not compared). bf16 is forced (``amp: bf16``), so on a CPU without
native bf16 it is emulated: slower, but the same arithmetic.

    python pipelines/benchmarks/bench_precision_curves.py                   # ~4 x the preset's training time
    python pipelines/benchmarks/bench_precision_curves.py --set max_steps=40 --every 20 --work /tmp/w --out /tmp/r
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import (  # noqa: E402
    ROOT,
    phantom_complete,
    repo_relative,
    run_cli,
    train_command,
    train_in_parallel,
    training_clocks,
)

PRECISIONS = {"fp32": "off", "bf16": "bf16"}
SEEDS = (0, 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=ROOT / "work" / "precision_curves")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks" / "precision_curves")
    ap.add_argument("--config", default="configs/phantom-cpu.yaml")
    ap.add_argument("--every", type=int, default=400, help="steps between scored checkpoints")
    ap.add_argument("--subjects", type=int, default=16)
    ap.add_argument("--jobs", type=int, default=2, help="runs trained at once (CPU threads split between them)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="TrainConfig override for every run")
    args = ap.parse_args(argv)
    args.work, args.out = repo_relative(args.work), repo_relative(args.out)
    os.chdir(ROOT)
    w = args.work
    if not phantom_complete(w / "data", args.subjects):
        run_cli(["phantom", w / "data", "--subjects", args.subjects, "--seed", 0])
    if not (w / "store" / "store.json").is_file():
        run_cli(["preprocess", w / "data", w / "store", "--config", "configs/preprocess-phantom.yaml"])

    runs = {f"{p}-seed{s}": (p, s) for p in PRECISIONS for s in SEEDS}
    common = ["time_budget_minutes=null", f"checkpoint_every={args.every}", "keep_checkpoints=1000", *args.overrides]
    commands = {name: (w / name, train_command(w / "store", w / name, args.config, "flair2t1",
                                               [*common, f"amp={PRECISIONS[p]}", f"seed={s}"]))
                for name, (p, s) in runs.items()}
    train_in_parallel(commands, jobs=args.jobs, log_dir=w / "logs")


    from mri_harmonic.data.store import SliceStore
    from mri_harmonic.evaluation.curves import checkpoint_curves

    store = SliceStore(w / "store")
    # mri-harmonic evaluate's scoring of each kept checkpoint (fp32 on CPU), and the untranslated input as step 0
    scored = checkpoint_curves({name: w / name for name in runs}, store, "val")
    scored = scored[scored["region"] == "slice"]
    curves = scored.assign(precision=scored["run"].map(lambda n: runs[n][0] if n in runs else ""),
                           seed=scored["run"].map(lambda n: runs[n][1] if n in runs else ""))[
        ["run", "precision", "seed", "step", "direction", "MAE"]]
    args.out.mkdir(parents=True, exist_ok=True)
    from mri_harmonic.utils.io import atomic_write_csv, atomic_write_text

    atomic_write_csv(args.out / "curves.csv", curves)
    atomic_write_text(args.out / "README.md", report(curves, args, training_clocks({n: w / n for n in runs}), store))
    print((args.out / "README.md").read_text())
    return 0


def report(curves, args, clocks: dict, store) -> str:
    trained = curves[curves["run"] != "input-as-output"]
    floor = curves[curves["run"] == "input-as-output"].set_index("direction")["MAE"]
    n_val = store.split_manifest("val")["subject"].nunique()
    lines = ["# Does bf16 learn as well as fp32? Validation MAE at equal steps", "",
             f"Written by `python pipelines/benchmarks/bench_precision_curves.py` ({args.config}, overrides "
             f"{', '.join(f'`{o}`' for o in args.overrides) or 'none'}; a checkpoint every {args.every} steps; "
             f"seeds {', '.join(map(str, SEEDS))}). Whole-slice MAE on the 0-255 scale, validation split "
             f"({n_val} subjects), outputs zeroed outside the brain, translated in fp32. Lower is better.", ""]
    for d in sorted(trained["direction"].unique()):
        t = trained[trained["direction"] == d].pivot_table(index="step", columns="run", values="MAE")
        lines += [f"## {d} (untranslated input: {floor[d]:.2f})", "", "| step | " + " | ".join(t.columns) + " |",
                  "|---:|" + "---:|" * len(t.columns)]
        lines += [f"| {step} | " + " | ".join(f"{v:.2f}" for v in row) + " |" for step, row in t.iterrows()]
        last = trained[(trained["direction"] == d) & (trained["step"] == trained["step"].max())]
        by = last.groupby("precision")["MAE"]
        mean, spread = by.mean(), by.agg(lambda v: v.max() - v.min())
        if {"fp32", "bf16"} <= set(mean.index):
            diff, noise = mean["bf16"] - mean["fp32"], max(spread["fp32"], spread["bf16"])
            lines += ["", f"At step {last['step'].max()}: fp32 {mean['fp32']:.2f} (seeds {spread['fp32']:.2f} apart), "
                          f"bf16 {mean['bf16']:.2f} (seeds {spread['bf16']:.2f} apart); bf16 - fp32 = {diff:+.2f}, "
                          f"{'within' if abs(diff) <= noise else 'outside'} the seed-to-seed spread ({noise:.2f}). "
                          "Two seeds give a rough spread, not an interval."]
        lines.append("")
    clock = ", ".join(f"{n} {s / 60:.1f} min" for n, s in clocks.items() if s)
    lines += [f"Training time per run (two at a time, one thread each; not a speed measurement): {clock or 'n/a'}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
