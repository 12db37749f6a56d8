#!/usr/bin/env python
"""Phantom benchmark v2: the paper's BRATS comparison on the built-in phantom, with seeds and enough test subjects.

    python pipelines/phantom_benchmark.py            # (or: make benchmark) ~6 h of a 2-core CPU
    python pipelines/phantom_benchmark.py --quick    # the same pipeline on a tiny phantom, a few steps (~3 min)

Steps (each skipped when its output is already complete, so a killed run continues from its finished runs):

1. ``mri-harmonic phantom``     -> WORK/data   44 subjects (BraTS 2021 layout, MR-physics phantom on MNI anatomy)
2. ``mri-harmonic preprocess``  -> WORK/store  configs/preprocess-phantom-benchmark.yaml: 2 mm, 96x96, 22/11/11
                                               subjects (train/val/test), so that >= 10 subjects are tested
3. ``mri-harmonic train``       -> WORK/runs/<run>: every registered method on the long CPU budget (9,600 steps, the
                                  budget of configs/phantom-cpu-long.yaml); harmonic and cyclegan with 3 training
                                  seeds, the others with 1; harmonic with the foreground patch graph as well
   As each run finishes:
   learning curves              -> OUT/val/curves.csv, curves.png: every periodic checkpoint (each 1,200 steps) of the
                                   run scored on the validation split: has the budget stopped paying?
   kept run                     -> OUT/models/<run>: an inference-only export of its averaged weights (~2.7 MB) with
                                   its training clock and CPU time. Committed with the report, the kept runs are what
                                   a pipeline interrupted on one machine continues from on another (WORK is not
                                   committed; phantom and store are regenerated, identically, from their seeds)
4. ``mri-harmonic evaluate`` of the kept runs (skipped where OUT/<split>/evaluated.json names their current weights)
                                -> OUT/val     the validation split: does every run clear the untranslated input?
                                -> OUT/test    the test split, both directions, regions, tumour fidelity, seeds
                                               pooled into subject x seed intervals, figures, reader study
5. OUT/README.md                               the floor check, pooled and per-seed results, timings (wall and CPU),
                                               versions, resolved configs

Runs train ``--jobs`` at a time (default 2, one thread each: on a 2-core CPU two one-thread runs side by side train
~1.35x more pairs per second than one two-thread run). Every run has the same step budget whatever the wall clock.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    ROOT,
    PipelineTimings,
    evaluation_stale,
    is_kept,
    keep_run,
    log,
    mark_evaluated,
    phantom_complete,
    preset_config,
    repo_relative,
    train_command,
    train_in_parallel,
    training_costs,
    usable_cores,
    versions,
    write_json,
)

#: The recipe measured in reports/benchmarks/recipe_v2.md: the ResNet-generator methods (the reference's Adam lr
#: 2e-4 in their presets) train at lr 5e-4 and upsample by nearest-neighbour + 3x3 conv instead of transposed convs;
#: DiscoGAN and UNIT keep their papers' networks and learning rates. Every method translates with the exponential
#: average of its weights (EMA, a window of ~2,000 steps), since single checkpoints swing by ~1 MAE.
RECIPE = ["optim.lr=5e-4", "model.upsample=nearest"]
EMA = "ema_decay=0.9995"
#: Every run trains in float32 whatever the machine: `amp: auto` means bf16 autocast on a CPU with native bf16 and
#: fp32 elsewhere, so a pipeline resumed on another machine would mix precisions between its runs. The seeds of
#: harmonic / cyclegan kept before this pin carry `amp: auto` and trained on a CPU without native bf16 (fp32).
PRECISION = "amp=off"
#: The long CPU budget (configs/phantom-cpu-long.yaml's schedule) applied to every method's phantom-cpu preset.
LONG = ["optim.epochs=48", "optim.epochs_decay=48", "max_steps=9600", "sample_every=1200", "checkpoint_every=1200",
        "keep_checkpoints=8", EMA, PRECISION]  # all eight checkpoints: the validation learning curve
#: Per-method adjustments that keep a preset's intent at the long budget (DiscoGAN's curriculum: a third of the run).
METHOD_LONG = {"harmonic": RECIPE, "cyclegan": RECIPE, "distancegan": RECIPE,
               "discogan": ["loss.options.curriculum_steps=3200"]}
#: The foreground patch graph variant: patches with < 25 % brain leave the graph; sigma 1.0, the best value at that
#: threshold in reports/foreground_graph/.
FOREGROUND = ["loss.smoothness.min_brain_fraction=0.25", "loss.smoothness.sigma=1.0"]
PREPROCESS = "configs/preprocess-phantom-benchmark.yaml"
#: --quick: a tiny phantom and a few steps of slim networks; exercises every step of the pipeline (tests run it).
QUICK = dict(subjects=8, shape="60,60,39", preprocess="configs/preprocess-phantom-quick.yaml", steps=["max_steps=3", "sample_every=0", "checkpoint_every=3", "log_every=1",
                                                  "model.ngf=8", "model.ndf=8", "model.n_blocks=2",
                                                  "loss.options.curriculum_steps=1"], seeds=2, reader_study=4)
#: Seeds of harmonic and cyclegan (the question); the other methods train with the first seed.
SEEDS = 3
KEY_METHODS = ("harmonic", "cyclegan")


def plan_runs(methods: list[str], seeds: int, foreground: bool, quick: bool,
              vgg_weights: Path | None = None) -> dict[str, tuple[str, list[str]]]:
    """``{run name: (preset, overrides)}`` in training order: harmonic and cyclegan seed 0 first (the demo's
    pretrained pair), then the other seeds, the foreground variant, the other methods, and HarmonicGAN with VGG-16
    features when ``vgg_weights`` (a state dict the user supplies) is given."""
    runs: dict[str, tuple[str, list[str]]] = {}

    def add(name: str, method: str, seed: int, extra: list[str] = ()) -> None:
        if not quick:
            opts = [*LONG, *METHOD_LONG.get(method, [])]
        elif method == "unit":  # UNIT's widths are loss.options, not model.*
            opts = [o for o in QUICK["steps"] if not o.startswith(("model.", "loss.options."))]
            opts += ["loss.options.dim=8", "loss.options.dis_dim=8"]
        else:  # loss.options keys belong to one method
            opts = [o for o in QUICK["steps"] if not o.startswith("loss.options.") or method == "discogan"]
        runs[name] = (preset_config("phantom-cpu", method), [*opts, f"seed={seed}", *extra])

    for seed in range(seeds):
        for method in KEY_METHODS:
            if method in methods:
                add(f"{method}-s{seed}", method, seed)
    if foreground and "harmonic" in methods:
        add("harmonic-fg-s0", "harmonic", 0, FOREGROUND)
    for method in methods:
        if method not in KEY_METHODS:
            add(f"{method}-s0", method, 0)
    if vgg_weights is not None and "harmonic" in methods:
        add("harmonic-vgg-s0", "harmonic", 0, ["loss.smoothness.features=vgg", f"loss.smoothness.vgg_weights={vgg_weights}"])
    return runs


#: Runs that cost most per step on CPU (UNIT: ~1.7x a ResNet method's step, reports/benchmarks/training.md).
SLOW = ("unit",)


def training_order(names: list[str]) -> list[str]:
    """``names`` (plan order) reordered for two workers: the seeds of the question first (the demo's pretrained pair
    leads), then the slowest single-seed run, so that it does not start last and leave the other worker idle for most
    of an hour; the rest keep their plan order."""
    def rank(name: str) -> int:
        method = re.sub(r"-s\d+$", "", name)
        return 0 if method in KEY_METHODS else 1 if method in SLOW else 2
    return sorted(names, key=rank)


def validation_curves(out: Path, runs: dict[str, Path], store: Path, threads: int | None = None):
    """Add ``runs``' learning curves (:func:`mri_harmonic.evaluation.curves.checkpoint_curves`: every periodic
    checkpoint scored on the validation split) to OUT/val/curves.csv, and redraw OUT/val/curves.png over every run in
    the CSV. Called as each run finishes, while its periodic checkpoints exist (a kept run keeps only its last
    weights); the CSV is saved after each run and resumed from."""
    import pandas as pd
    import torch

    from mri_harmonic.evaluation.curves import INPUT, checkpoint_curves
    from mri_harmonic.evaluation.figures import checkpoint_curve_figure
    from mri_harmonic.utils.io import atomic_write_csv

    csv = out / "val" / "curves.csv"
    done = pd.read_csv(csv) if csv.is_file() else None
    log(f"learning curves of {', '.join(runs)} on the validation split -> {csv}")
    if threads:
        torch.set_num_threads(threads)
    curves = checkpoint_curves(runs, store, "val", done=done, on_run=lambda f: atomic_write_csv(csv, f, index=False))
    atomic_write_csv(csv, curves, index=False)
    groups = {n: re.sub(r"-s\d+$", "", n) for n in curves["run"].unique() if n != INPUT}
    checkpoint_curve_figure(curves, out / "val" / "curves.png", groups=groups)
    return curves


def main(argv: list[str] | None = None) -> int:
    from mri_harmonic.methods import method_names

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=None, help="data, store and runs (default work/phantom-v2; not committed)")
    ap.add_argument("--out", type=Path, default=None, help="report folder (default reports/phantom)")
    ap.add_argument("--quick", action="store_true", help="tiny phantom, 3 steps per run: checks the pipeline, not the methods")
    ap.add_argument("--subjects", type=int, default=44)
    ap.add_argument("--seed", type=int, default=0, help="phantom seed")
    ap.add_argument("--seeds", type=int, default=SEEDS, help="training seeds of harmonic and cyclegan")
    ap.add_argument("--methods", default=",".join(method_names()))
    ap.add_argument("--no-foreground", dest="foreground", action="store_false", help="skip the harmonic foreground-graph run")
    ap.add_argument("--vgg-weights", type=Path, default=None, help="VGG-16 state dict file: adds a harmonic-vgg run")
    ap.add_argument("--jobs", type=int, default=2, help="trainings run side by side (each gets cores/jobs threads)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="TrainConfig override for every run")
    ap.add_argument("--reader-study", type=int, default=40)
    ap.add_argument("--direction", default="flair2t1", help="domain A of every run (both directions are evaluated)")
    args = ap.parse_args(argv)
    if args.quick:
        args.subjects, args.seeds, args.reader_study = QUICK["subjects"], QUICK["seeds"], QUICK["reader_study"]
    args.work = repo_relative(args.work or ROOT / "work" / ("phantom-v2-quick" if args.quick else "phantom-v2"))
    args.out = repo_relative(args.out or (args.work / "report" if args.quick else ROOT / "reports" / "phantom"))
    os.chdir(ROOT)  # paths in logs and reports are relative to the repository

    work, out = args.work, args.out
    timings = PipelineTimings(out / "timings.json")  # beside the kept runs: it continues with them
    save = timings.save

    data, store = work / "data", work / "store"
    if not phantom_complete(data, args.subjects):
        shape = ["--shape", QUICK["shape"]] if args.quick else []
        timings.step("phantom", ["phantom", data, "--subjects", args.subjects, "--seed", args.seed, *shape, "--no-progress"])
    if not (store / "store.json").is_file():
        timings.step("preprocess", ["preprocess", data, store, "--config", QUICK["preprocess"] if args.quick else PREPROCESS])

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    runs = plan_runs(methods, args.seeds, args.foreground, args.quick, args.vgg_weights)
    commands = {
        name: (work / "runs" / name,
               train_command(store, work / "runs" / name, cfg, args.direction, ["time_budget_minutes=null", *extra, *args.overrides]))
        for name, (cfg, extra) in runs.items()
    }

    models = out / "models"  # each finished run, kept (committed) so that the pipeline continues on another machine
    kept = {n: models / n for n in runs}
    threads = max(1, usable_cores() // max(1, args.jobs))

    def keep(name: str) -> None:
        cpu0, t0 = time.process_time(), time.perf_counter()
        validation_curves(out, {name: commands[name][0]}, store, threads)
        timings["curves_s"] = timings.get("curves_s", 0.0) + time.perf_counter() - t0
        timings["curves_cpu_s"] = timings.get("curves_cpu_s", 0.0) + time.process_time() - cpu0
        keep_run(commands[name][0], kept[name])
        save()

    def record(name: str, seconds: float) -> None:
        timings[f"train_{name}_s"] = timings.get(f"train_{name}_s", 0.0) + seconds
        keep(name)

    commands = {n: c for n, c in commands.items() if not is_kept(kept[n])}
    for name in [n for n, (d, _) in commands.items() if (d / "DONE").is_file()]:  # trained, then interrupted
        keep(name)
        del commands[name]
    commands = {n: commands[n] for n in training_order(list(commands))}
    train_in_parallel(commands, jobs=args.jobs, log_dir=work / "logs", on_done=record, on_tick=save)

    run_dirs = list(kept.values())
    for split, extra in (("val", ["--reader-study", 0]), ("test", ["--reader-study", args.reader_study])):
        if evaluation_stale(run_dirs, out / split / "report.md"):
            timings.step(f"evaluate_{split}", ["evaluate", *run_dirs, "--store", store, "--split", split,
                                               "--direction", "both", "--out", out / split, *extra])
            mark_evaluated(run_dirs, out / split / "report.md")

    cfg_dir = out / "configs"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(store / "config.yaml", cfg_dir / "preprocess.yaml")
    for name in runs:
        shutil.copy(kept[name] / "config.yaml", cfg_dir / f"train-{name}.yaml")
    timings["training"] = training_costs(kept)
    save()
    write_json(out / "versions.json", versions())
    write_json(out / "command.json", {"argv": sys.argv[1:] if argv is None else argv, "subjects": args.subjects,
                                      "phantom_seed": args.seed, "runs": {n: {"config": c, "overrides": o} for n, (c, o) in runs.items()},
                                      "overrides": args.overrides, "quick": args.quick})
    from benchmark_report import write_report

    write_report(out, work / "store", runs, timings, quick=args.quick)
    log(f"done; report: {out / 'README.md'} (this invocation {timings.this_invocation_s() / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
