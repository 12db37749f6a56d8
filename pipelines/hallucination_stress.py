#!/usr/bin/env python
"""Hallucination stress test: train on domains of different tumour prevalence, count invented and erased lesions.

    python pipelines/hallucination_stress.py                  # 12 runs of 4,800 steps: many hours of a 2-core CPU
    python pipelines/hallucination_stress.py --quick          # a tiny phantom, 3 steps per run (a few minutes)
    python pipelines/hallucination_stress.py --store STORE --prevalence 0.3 --out reports/my-stress

Two settings, each trained with HarmonicGAN and CycleGAN (``--seeds`` training seeds each):

(a) StegoGAN's BRATS_mismatch (Wu et al., CVPR 2024): T1 -> FLAIR (``t12flair``); the source (A = T1) training
    slices all healthy (``data.tumour_prevalence_a=0``), the target (B = FLAIR) slices ``--prevalence`` tumorous
    (0.6); tested on the healthy test slices, where every lesion in an output is invented.
(b) Cohen et al.'s (MICCAI 2018): FLAIR -> T1 (``flair2t1``); the target (B = T1) training slices all healthy
    (``data.tumour_prevalence_b=0``), the source at its natural mix (or ``--source-prevalence``); tested on the
    tumorous test slices, where lesions may be erased or reversed.

Steps (each skipped when its output is complete, so a killed run continues from its finished runs):

1. the store: ``--store``, else work/phantom-v2/store (pipelines/phantom_benchmark.py's: 44 subjects, 2 mm, 96x96,
   22/11/11) when complete, else the same phantom and store built in WORK
2. ``mri-harmonic train``     -> WORK/runs/<setting>-<method>-s<seed>: configs/phantom-cpu{,-cyclegan}.yaml with
                                ``--steps`` (4,800; epochs = epochs_decay = steps / 200 of 100 slices, samples and
                                checkpoints every steps / 8, no time budget), ``--jobs`` at a time
   each finished run is kept -> OUT/models/<run> (an inference-only export with its training clock and CPU time;
                                committed with the report, what an interrupted pipeline continues from on another
                                machine: WORK is not committed)
3. ``mri-harmonic evaluate``  -> OUT/evaluation-<setting>: the test split's healthy (a) / tumorous (b) slices
4. the rates (mri_harmonic/evaluation/hallucination.py) per seed, pooled over seeds, harmonic - cyclegan, the
   untranslated input, and the real target with two harmless degradations (calibration), example figures
5. OUT/README.md with configs, versions, timings (wall and CPU seconds of all child processes)
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
    PipelineTimings,
    compute_sentence,
    evaluation_stale,
    is_kept,
    keep_run,
    log,
    mark_evaluated,
    markdown_rows,
    minutes,
    phantom_complete,
    preset_config,
    repo_relative,
    train_command,
    train_in_parallel,
    trained_precision,
    training_costs,
    versions,
    write_json,
)
from phantom_benchmark import EMA, PRECISION, RECIPE  # noqa: E402  (the benchmark's training recipe: both test the same models)

METHODS = ("harmonic", "cyclegan")
BENCHMARK_STORE = Path("work/phantom-v2/store")
STORE_CONFIG = "configs/preprocess-phantom-benchmark.yaml"
#: --quick: a tiny phantom and a few steps of slim networks; exercises every step (tests/test_hallucination_stress.py).
QUICK = dict(subjects=8, shape="60,60,39", seeds=2,
             steps=["max_steps=3", "sample_every=0", "checkpoint_every=1000", "log_every=1",
                    "model.ngf=8", "model.ndf=8", "model.n_blocks=2"])
#: Calibration controls of mri_harmonic/evaluation/fidelity_controls.py scored like a translation.
CONTROLS = ("real", "blur1", "noise")
RATE_TITLES = {"invented_image": "slices with an invented lesion", "invented_pixel": "brain pixels invented",
               "erased": "lesions erased", "wrong_direction": "lesions reversed",
               "tumour_pixels_lost": "tumour pixels lost"}


def settings(prevalence: float, source_prevalence: float | None) -> dict[str, dict]:
    """The two settings: direction, training prevalence of A and B (None = natural), test slices, title."""
    return {
        "a": dict(direction="t12flair", prev_a=0.0, prev_b=prevalence, test="healthy",
                  title=f"(a) StegoGAN's: T1 -> FLAIR, source all healthy, target {prevalence:.0%} tumorous, "
                        "tested on healthy slices"),
        "b": dict(direction="flair2t1", prev_a=source_prevalence, prev_b=0.0, test="tumour",
                  title="(b) Cohen et al.'s: FLAIR -> T1, target all healthy, source "
                        f"{'natural' if source_prevalence is None else f'{source_prevalence:.0%} tumorous'}, "
                        "tested on tumorous slices"),
    }


def budget(steps: int) -> list[str]:
    """phantom_benchmark.LONG's schedule at ``steps``: epochs = epochs_decay = steps / 200 (100 slices each),
    samples and checkpoints every steps / 8."""
    epochs, every = max(1, steps // 200), max(1, steps // 8)
    return [f"optim.epochs={epochs}", f"optim.epochs_decay={epochs}", f"max_steps={steps}",
            f"sample_every={every}", f"checkpoint_every={every}"]


def plan_runs(setting_names, seeds: int, steps: int, quick: bool, prevalence: float,
              source_prevalence: float | None) -> dict[str, dict]:
    """``{run name: {setting, method, seed, config, overrides}}`` in training order (seed 0 of every run first)."""
    runs = {}
    all_settings = settings(prevalence, source_prevalence)
    for seed in range(seeds):
        for name in setting_names:
            st = all_settings[name]
            prev = [f"data.tumour_prevalence_{k}={st[f'prev_{k}']}" for k in ("a", "b") if st[f"prev_{k}"] is not None]
            for method in METHODS:
                runs[f"{name}-{method}-s{seed}"] = dict(
                    setting=name, method=method, seed=seed, config=preset_config("phantom-cpu", method),
                    overrides=[*(QUICK["steps"] if quick else [*budget(steps), *RECIPE, EMA, PRECISION]), "time_budget_minutes=null",
                               f"seed={seed}", *prev])
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, default=None, help="slice store to use (default: the phantom benchmark's, else built)")
    ap.add_argument("--work", type=Path, default=None, help="runs, logs, phantom (default work/hallucination-stress)")
    ap.add_argument("--out", type=Path, default=None, help="report folder (default reports/hallucination_stress)")
    ap.add_argument("--quick", action="store_true", help="tiny phantom, 3 steps per run: checks the pipeline, not the methods")
    ap.add_argument("--settings", default="a,b", help="a (StegoGAN's), b (Cohen et al.'s) or both")
    ap.add_argument("--prevalence", type=float, default=0.6, help="setting (a): tumorous share of the target's training slices")
    ap.add_argument("--source-prevalence", type=float, default=None, help="setting (b): tumorous share of the source's (default: natural)")
    ap.add_argument("--seeds", type=int, default=3, help="training seeds per method and setting")
    ap.add_argument("--steps", type=int, default=4800, help="training steps per run")
    ap.add_argument("--jobs", type=int, default=2, help="trainings side by side (each gets cores/jobs threads)")
    ap.add_argument("--subjects", type=int, default=44, help="phantom subjects when the store is built here")
    ap.add_argument("--image-min-pixels", type=int, default=None, help="invented region size that flags an image (default 13)")
    ap.add_argument("--examples", type=int, default=4, help="example slices per setting in the figures")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="TrainConfig override for every run")
    args = ap.parse_args(argv)
    names = [s.strip() for s in args.settings.split(",") if s.strip()]
    if not names or any(s not in ("a", "b") for s in names):
        raise SystemExit(f"error: --settings {args.settings!r}: use a, b or a,b")
    for flag, v in (("--prevalence", args.prevalence), ("--source-prevalence", args.source_prevalence)):
        if v is not None and not 0.0 <= v <= 1.0:
            raise SystemExit(f"error: {flag} {v}: a share of slices, in [0, 1]")
    if args.steps < 8 or args.seeds < 1:
        raise SystemExit("error: --steps must be >= 8 and --seeds >= 1")
    if args.quick:
        args.subjects, args.seeds = QUICK["subjects"], QUICK["seeds"]
    args.work = repo_relative(args.work or ROOT / "work" / ("hallucination-stress-quick" if args.quick else "hallucination-stress"))
    args.out = repo_relative(args.out or (args.work / "report" if args.quick else ROOT / "reports" / "hallucination_stress"))
    args.store = repo_relative(args.store) if args.store else None
    os.chdir(ROOT)  # paths in logs and reports are relative to the repository

    work, out = args.work, args.out
    timings = PipelineTimings(out / "timings.json")  # beside the kept runs: it continues with them
    save = timings.save

    store = args.store
    if store is None and not args.quick and (BENCHMARK_STORE / "store.json").is_file():
        store = BENCHMARK_STORE
    if store is None:
        data, store = work / "data", work / "store"
        if not phantom_complete(data, args.subjects):
            shape = ["--shape", QUICK["shape"]] if args.quick else []
            timings.step("phantom", ["phantom", data, "--subjects", args.subjects, "--seed", 0, *shape, "--no-progress"])
        if not (store / "store.json").is_file():
            timings.step("preprocess", ["preprocess", data, store, "--config", STORE_CONFIG])
    elif not (store / "store.json").is_file():
        raise SystemExit(f"error: --store {store}: no store.json; give a store written by `mri-harmonic preprocess`")

    runs = plan_runs(names, args.seeds, args.steps, args.quick, args.prevalence, args.source_prevalence)
    the_settings = settings(args.prevalence, args.source_prevalence)
    check_prevalences(store, [the_settings[n] for n in names])
    commands = {n: (work / "runs" / n, train_command(store, work / "runs" / n, r["config"], the_settings[r["setting"]]["direction"],
                                                     [*r["overrides"], *args.overrides]))
                for n, r in runs.items()}

    kept = {n: out / "models" / n for n in runs}  # finished runs, kept (committed) to continue on another machine

    def record(name: str, seconds: float) -> None:
        timings[f"train_{name}_s"] = timings.get(f"train_{name}_s", 0.0) + seconds
        keep_run(commands[name][0], kept[name])
        save()

    commands = {n: c for n, c in commands.items() if not is_kept(kept[n])}
    for name in [n for n, (d, _) in commands.items() if (d / "DONE").is_file()]:  # trained, then interrupted
        keep_run(commands.pop(name)[0], kept[name])
    train_in_parallel(commands, jobs=args.jobs, log_dir=work / "logs", on_done=record, on_tick=save)

    for name in names:
        st, run_dirs = the_settings[name], [kept[n] for n, r in runs.items() if r["setting"] == name]
        ev = out / f"evaluation-{name}"
        if evaluation_stale(run_dirs, ev / "report.md"):
            timings.step(f"evaluate_{name}", ["evaluate", *run_dirs, "--store", store, "--split", "test",
                                              "--direction", st["direction"], "--slices", st["test"], "--out", ev])
            mark_evaluated(run_dirs, ev / "report.md")

    cfg_dir = out / "configs"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(store / "config.yaml", cfg_dir / "preprocess.yaml")
    for n in runs:
        shutil.copy(kept[n] / "config.yaml", cfg_dir / f"train-{n}.yaml")
    t0 = time.perf_counter()
    results = {name: score_setting(name, the_settings[name], store, out, kept, runs, args) for name in names}
    timings["rates_and_figures_s"] = time.perf_counter() - t0
    save()
    costs = timings["training"] = training_costs(kept)
    save()
    write_json(out / "versions.json", versions())
    write_json(out / "command.json", {"argv": sys.argv[1:] if argv is None else argv, "store": str(store),
                                      "settings": {n: the_settings[n] for n in names}, "quick": args.quick,
                                      "runs": {n: {k: r[k] for k in ("config", "overrides")} for n, r in runs.items()},
                                      "overrides": args.overrides})
    from mri_harmonic.utils.io import atomic_write_text

    atomic_write_text(out / "README.md", report(results, the_settings, runs, store, timings, costs, args))
    log(f"done; report: {out / 'README.md'} (this invocation {timings.this_invocation_s() / 60:.1f} min)")
    return 0


def check_prevalences(store: Path, chosen: list[dict]) -> None:
    """Exit with the Dataset's one-line message, before any training, when the store's train split cannot give a
    setting's prevalences."""
    from mri_harmonic.data.datasets import UnpairedSliceDataset
    from mri_harmonic.errors import UserInputError

    for st in chosen:
        a, b = st["direction"].split("2")
        try:
            UnpairedSliceDataset(store, a, b, tumour_prevalence_a=st["prev_a"], tumour_prevalence_b=st["prev_b"])
        except UserInputError as exc:
            raise SystemExit(f"error: setting {st['title'][:3]} on {store}: {exc}") from None


def score_setting(name: str, st: dict, store: Path, out: Path, kept: dict[str, Path], runs: dict, args) -> dict:
    """The rates of one setting from its evaluation's tumour tables, the calibration controls and the figures;
    CSVs in OUT. Returns the tables and the realised training mix."""
    import pandas as pd

    from mri_harmonic.data.datasets import UnpairedSliceDataset
    from mri_harmonic.data.store import SliceStore
    from mri_harmonic.evaluation.evaluate import REFERENCE_RUN, select_slices
    from mri_harmonic.evaluation.fidelity_controls import score_controls, store_slices
    from mri_harmonic.evaluation.hallucination import (
        SETTING_RATES,
        HallucinationConfig,
        paired_rate_difference,
        rate_table,
    )
    from mri_harmonic.evaluation.tumour import TumourCheckConfig
    from mri_harmonic.utils.io import atomic_write_csv

    hcfg = HallucinationConfig(**({} if args.image_min_pixels is None else {"image_min_pixels": args.image_min_pixels}))
    tcfg = TumourCheckConfig()
    ev = out / f"evaluation-{name}"
    slices = pd.read_csv(ev / "tumour_per_slice.csv")
    lesions_path = ev / "tumour_lesions.csv"
    lesions = pd.read_csv(lesions_path) if lesions_path.stat().st_size > 1 else None
    if lesions is not None and lesions.empty:
        lesions = None
    rates = SETTING_RATES[st["test"]]
    pooled = rate_table(slices, lesions, ("group", "direction"), rates, hcfg)
    per_seed = rate_table(slices[slices["run"] != REFERENCE_RUN], None if lesions is None else lesions[lesions["run"] != REFERENCE_RUN],
                          ("run", "direction"), rates, hcfg)
    diff = paired_rate_difference(slices, lesions, "harmonic", "cyclegan", rates=rates, cfg=hcfg)

    sstore = SliceStore(store)
    chosen = select_slices(sstore.split_manifest("test"), sstore.image_size, st["test"], tcfg.min_lesion_pixels)
    keys = set(zip(chosen["subject"].astype(str), chosen["slice_index"].astype(int)))
    test_slices = [s for s in store_slices(sstore, "test") if (s["subject"], s["slice_index"]) in keys]
    c_slices, c_lesions, _ = score_controls(test_slices, tcfg, seed=0, controls=CONTROLS)
    c_slices, c_lesions = c_slices[c_slices["direction"] == st["direction"]], c_lesions
    if len(c_lesions):
        c_lesions = c_lesions[c_lesions["direction"] == st["direction"]]
    calibration = rate_table(c_slices, c_lesions if len(c_lesions) else None, ("control", "direction"), rates, hcfg)

    domain_a, domain_b = st["direction"].split("2")[0], st["direction"].split("2")[1]
    ds = UnpairedSliceDataset(sstore, domain_a, domain_b, tumour_prevalence_a=st["prev_a"], tumour_prevalence_b=st["prev_b"])
    mix = {"A": domain_a, "B": domain_b, "n_A": len(ds.rows_a), "n_B": len(ds.rows_b), "share_A": ds.tumour_shares["A"],
           "share_B": ds.tumour_shares["B"], "n_test_slices": len(chosen), "n_test_subjects": int(chosen["subject"].nunique())}
    for table, fname in ((pooled, "rates"), (per_seed, "rates_per_seed"), (diff, "difference"), (calibration, "calibration")):
        atomic_write_csv(out / f"{fname}-{name}.csv", table)
    figure = example_figure(name, st, sstore, chosen, slices, kept, runs, out, args.examples, tcfg)
    return dict(pooled=pooled, per_seed=per_seed, diff=diff, calibration=calibration, mix=mix, figure=figure,
                hcfg=hcfg, rates=rates)


def example_figure(name: str, st: dict, store, chosen, slices, kept: dict[str, Path], runs: dict, out: Path, n: int,
                   tcfg) -> Path | None:
    """Input / target / each method's output / its overlay (invented red, erased yellow, reversed magenta, kept
    green) for ``n`` test slices where seed 0's runs invent (a) or lose (b) the most: each subject's worst first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    from mri_harmonic.checkpoint import load_run
    from mri_harmonic.evaluation.hallucination import hallucination_masks
    from mri_harmonic.evaluation.translate import translate_slices
    from mri_harmonic.utils.io import atomic_path

    src, tgt = st["direction"].split("2")
    seed0 = {r["method"]: kept[k] for k, r in runs.items() if r["setting"] == name and r["seed"] == 0}
    s = slices[slices["run"].isin([p.name for p in seed0.values()])].copy()
    if s.empty or n < 1:
        return None
    s["badness"] = s["invented_largest_pixels"] if st["test"] == "healthy" else s["n_erased"] + s["n_wrong_direction"]
    worst = s.groupby(["subject", "slice_index"])["badness"].max().sort_values(ascending=False, kind="stable")
    firsts = list(worst.groupby(level="subject", sort=False).head(1).index)  # the worst slice of each subject first
    picks = (firsts + [k for k in worst.index if k not in firsts])[:n]
    man = chosen.set_index(["subject", "slice_index"])
    rows = [int(man.loc[(str(sub), int(z)), "row"]) for sub, z in picks]
    arr = {m: np.asarray(store.array("test", m)[rows], dtype=np.float32) for m in (src, tgt, "mask", "seg")}
    brain = arr["mask"] > 0
    outputs = {}
    for method in METHODS:
        if method in seed0:
            loaded = load_run(seed0[method], device="cpu")
            outputs[method] = translate_slices(loaded.generator_for(src), arr[src], brain, torch.device("cpu"))
    cols = ["input " + src, "target " + tgt] + [c for m in outputs for c in (m, f"{m}: findings")]
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(2.0 * len(cols), 2.1 * len(rows)), squeeze=False)
    colours = {"invented": (1, 0, 0), "erased": (1, 0.85, 0), "wrong_direction": (1, 0, 1), "kept": (0, 0.8, 0)}
    for i, (sub, z) in enumerate(picks):
        seg = arr["seg"][i] > 0
        panels = [(arr[src][i], None), (arr[tgt][i], {"labels": seg})]
        for pred in outputs.values():
            masks = hallucination_masks(pred[i], arr[tgt][i], brain[i], arr["seg"][i], tgt, tcfg)
            panels += [(pred[i], None), (pred[i], masks)]
        for j, (img, marks) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(img, cmap="gray", vmin=0, vmax=1)
            if marks and "labels" in marks:
                ax.contour(marks["labels"], levels=[0.5], colors=["cyan"], linewidths=0.6)
            elif marks:
                rgba = np.zeros((*img.shape, 4))
                for k, c in colours.items():
                    rgba[marks[k]] = (*c, 0.55)
                ax.imshow(rgba)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(cols[j], fontsize=8)
        axes[i, 0].set_ylabel(f"{sub} z{z}", fontsize=7)
    fig.suptitle(f"{st['title']}\nred invented, yellow erased, magenta reversed, green kept; cyan: tumour labels",
                 fontsize=8)
    fig.tight_layout()
    path = out / "figures" / f"examples-{name}.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def _fmt_rate(r) -> str:
    import math

    lo, hi = r["ci_low"], r["ci_high"]
    ci = "–" if not (math.isfinite(lo) and math.isfinite(hi)) else f"[{100 * lo:.1f}, {100 * hi:.1f}]"
    return f"{100 * r['estimate']:.1f} % {ci}"


def _fmt_diff(r) -> str:
    """A paired difference row as ``+1.2 pp [-0.3, +2.7]`` (``[–]`` without an interval)."""
    import math

    lo, hi = r["ci_low"], r["ci_high"]
    ci = "[–]" if not (math.isfinite(lo) and math.isfinite(hi)) else f"[{100 * lo:+.1f}, {100 * hi:+.1f}]"
    return f"{100 * r['mean_diff']:+.1f} pp {ci}"


def _rates_markdown(table, key: str, rates) -> list[str]:
    """One row per ``key`` value, one column per rate: ``estimate % [interval]``, then subjects x seeds."""
    if table.empty:
        return ["(no rate could be computed)"]
    head = [key, *[RATE_TITLES[r] for r in rates], "subjects × seeds", "events / units (pooled)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for value, g in table.groupby(key, sort=False):
        by_rate = {r["rate"]: r for _, r in g.iterrows()}
        first = next(iter(by_rate.values()))
        cells = [_fmt_rate(by_rate[r]) if r in by_rate else "–" for r in rates]
        pooled = "; ".join(f"{by_rate[r]['events']}/{by_rate[r]['units']}" for r in rates if r in by_rate)
        lines.append(f"| {value} | " + " | ".join(cells) + f" | {first['n_subjects']} × {first['n_seeds']} | {pooled} |")
    return lines


def answer_lines(results: dict, the_settings: dict) -> list[str]:
    """One bullet per setting and rate, in words: each method's pooled rate, the untranslated input's, and
    HarmonicGAN - CycleGAN with its verdict (from the tables below; nothing is added to them)."""
    lines = []
    for name, res in results.items():
        pooled = res["pooled"].set_index(["group", "rate"])
        diff = res["diff"].set_index("rate") if not res["diff"].empty else None
        lines.append(f"- **{the_settings[name]['title']}**:")
        for rate in res["rates"]:
            cells = [f"{label} {_fmt_rate(pooled.loc[(group, rate)])}" for group, label in
                     (("harmonic", "HarmonicGAN"), ("cyclegan", "CycleGAN"), ("input-as-output", "the untranslated input"))
                     if (group, rate) in pooled.index]
            said = f"  - {RATE_TITLES[rate]}: " + ", ".join(cells)
            if diff is not None and rate in diff.index:
                said += f"; HarmonicGAN − CycleGAN {_fmt_diff(diff.loc[rate])}: **{diff.loc[rate, 'verdict']}**"
            said += "."
            methods = [pooled.loc[(g, rate), "estimate"] for g in METHODS if (g, rate) in pooled.index]
            if rate.startswith("invented") and ("input-as-output", rate) in pooled.index and methods and \
                    pooled.loc[("input-as-output", rate), "estimate"] >= max(methods):
                said += (" No method scores above the untranslated input, so this rate alone does not show lesions "
                         "added by the translation (the example figure shows what it counts).")
            lines.append(said)
    return lines or ["(no setting was scored)"]


def report(results: dict, the_settings: dict, runs: dict, store: Path, timings: dict, costs: dict, args) -> str:
    from mri_harmonic.evaluation.compare import MIN_SEEDS, MIN_SUBJECTS
    from mri_harmonic.evaluation.hallucination import RATES

    hcfg = next(iter(results.values()))["hcfg"] if results else None
    lines = ["# Hallucination stress test", ""]
    if args.quick:
        lines += ["**Quick mode**: a tiny phantom and 3 training steps per run. The figures below check the pipeline, "
                  "not the methods; nothing here is a result.", ""]
    lines += [
        "Does a translation invent lesions when the target domain's training slices hold tumours that the source's do not, "
        "and erase them in the reverse case (Cohen, Luck, Honari, MICCAI 2018; StegoGAN's BRATS_mismatch, Wu et al., "
        "CVPR 2024)? HarmonicGAN against CycleGAN, each trained with "
        f"{args.seeds} seed{'s' if args.seeds != 1 else ''} per setting on `{store}`, "
        f"{'3 steps' if args.quick else f'{args.steps:,} steps'} per run; scored from the store's labels and real "
        "target images (mri_harmonic/evaluation/hallucination.py on the tumour checks of mri_harmonic/evaluation/tumour.py), "
        "not from a segmenter.", "",
        "## Settings", "",
        "| setting | direction | training slices of A (source) | training slices of B (target) | test slices |",
        "|---|---|---|---|---|",
    ]
    for name, res in results.items():
        st, mix = the_settings[name], res["mix"]
        lines.append(f"| {st['title']} | {st['direction']} | {mix['n_A']} {mix['A']}, {100 * mix['share_A']:.0f} % tumorous | "
                     f"{mix['n_B']} {mix['B']}, {100 * mix['share_B']:.0f} % tumorous | {mix['n_test_slices']} "
                     f"{'healthy' if st['test'] == 'healthy' else 'tumorous'} slices of {mix['n_test_subjects']} subjects |")
    lines += ["", "Healthy: no tumour label in the slice; tumorous: at least 20 labelled pixels (the smallest lesion the "
              "tumour checks score). The training subsets are drawn once per run with its seed (`data.tumour_prevalence_a/_b`).",
              "", "## Answer", "", *answer_lines(results, the_settings), "",
              "Rates are means over test subjects × training seeds with 95 % intervals (what they cover: the last "
              "section); pp: percentage points. The tables below hold every figure here.", "", "## Measures", ""]
    lines += [f"- `{r}`: {d}" + (f" (N = {hcfg.image_min_pixels} pixels)" if r == "invented_image" and hcfg else "")
              for r, d in RATES.items()]
    lines += ["", "Invented regions, erased and reversed lesions are those of the tumour checks (thresholds in each "
              "evaluation's report.md). On healthy test slices every invented region is a false positive; on tumorous "
              "ones a lesion is erased when the output keeps < 25 % of its real contrast against white matter.", ""]
    for name, res in results.items():
        st = the_settings[name]
        lines += [f"## {st['title']}", "", "### Pooled over seeds", ""]
        lines += _rates_markdown(res["pooled"].rename(columns={"group": "method"}), "method", res["rates"])
        lines += ["", "`input-as-output` is the untranslated source slice scored as if it were the translation.", "",
                  "### Calibration: the real target scored as a translation", ""]
        lines += _rates_markdown(res["calibration"], "control", res["rates"])
        lines += ["", "`real`: the target itself (zero by construction: it is its own reference, so this row checks the "
                  "code, not the thresholds); `blur1`: the target blurred with a 1-pixel Gaussian; `noise`: plus Gaussian "
                  "noise of sd 0.03. A measure that fires on these fires on harmless changes.", "",
                  "### HarmonicGAN − CycleGAN (paired by test subject and seed)", ""]
        if res["diff"].empty:
            lines += ["(no paired difference: a method is missing)"]
        else:
            d = res["diff"].assign(rate=lambda t: t["rate"].map(RATE_TITLES))
            d = d.assign(**{"difference [95 % interval]": [_fmt_diff(r) for _, r in d.iterrows()]}, **{"subjects × seeds": [f"{r['n_subjects']} × {r['n_seeds']}" for _, r in d.iterrows()]})
            lines += markdown_rows(d, ["rate", "difference [95 % interval]", "subjects × seeds", "verdict"])
        lines += ["", "### Per training seed", ""]
        lines += _rates_markdown(res["per_seed"], "run", res["rates"])
        if res["figure"] is not None:
            lines += ["", f"![examples {name}]({Path(res['figure']).relative_to(args.out).as_posix()})", "",
                      "Rows: test slices where seed 0's runs invent (a) or lose (b) the most, each subject's worst first."]
        lines += ["", f"Tables: `rates-{name}.csv`, `rates_per_seed-{name}.csv`, `difference-{name}.csv`, "
                  f"`calibration-{name}.csv`; the whole evaluation: `evaluation-{name}/report.md`.", ""]
    lines += [
        "## What the intervals mean, and what this cannot show", "",
        "Each rate is computed per test subject (over that subject's slices) and per training seed; the estimate is the "
        "mean over subjects × seeds and the 95 % interval is mri_harmonic/evaluation/compare.py's two-way random-effects "
        "interval (subjects and training seeds, Satterthwaite df; a t interval over subjects for the seedless rows), "
        "clipped to [0, 1] (differences to [-1, 1]). It covers the method's expected rate over training seeds and over subjects like the test "
        "subjects of this store — not over other phantoms, other prevalences, other budgets or real patients. With "
        "one seed, or for the seedless rows, it covers only those runs. The paired difference subtracts the two methods' "
        f"rates on the same subjects and seeds; a verdict needs ≥ {MIN_SUBJECTS} test subjects and ≥ {MIN_SEEDS} seeds.",
        "",
        "What it cannot show: the phantom's tumours, tissue and noise are simulated, so the rates measure how often these "
        "networks paint or drop *phantom* lesions, not how a network behaves on patients; invented regions are judged "
        "against the real target, so a plausible lesion the target lacks counts as invented only if it is brighter (FLAIR) "
        "or darker (T1) than anything within 2 pixels in the target by the thresholds, and subtler hallucinations "
        "(texture, shape, a lesion moved by a pixel) go uncounted; rates of 0 with a [0, 0] interval mean no event in "
        "these slices, not an impossible event. Healthy slices of a subject with a tumour lie where the tumour is not, "
        "often towards the vertex or the cerebellum, whereas StegoGAN keeps BraTS's axial slices 60-100: (a) tests "
        "on other anatomy than (b). One prevalence per setting is tested; `--prevalence` sweeps it.", "",
        "## Runs, timings, versions", "",
        "Configs: `configs/` (the store's `preprocess.yaml`, each run's resolved `train-<run>.yaml`); command and "
        "overrides: `command.json`; versions: `versions.json`.", "",
        "| run | steps | precision | training clock (min) | CPU time (min) |", "|---|---|---|---|---|",
    ]
    for n in runs:
        lines.append(f"| {n} | {costs[n]['step'] or '?'} of {3 if args.quick else args.steps} | "
                     f"{trained_precision(args.out / 'models' / n)} | {minutes(costs[n]['clock_s'])} | "
                     f"{minutes(costs[n]['cpu_s'], costs[n]['cpu_from_step'])} |")
    lines += ["", compute_sentence(timings, costs) + " (`timings.json`)", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
