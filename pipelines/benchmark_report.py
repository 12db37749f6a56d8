"""README.md of the phantom benchmark v2 (pipelines/phantom_benchmark.py), written from its two evaluations.

Reads OUT/val (the floor check) and OUT/test (every table) as `mri-harmonic evaluate` wrote them, recomputes the paired
comparison against CycleGAN on every region with :func:`mri_harmonic.evaluation.compare.compare_runs`, and puts the
tumour-fidelity rates on the same footing (mri_harmonic/evaluation/hallucination.py: per test subject and training seed).
Regenerate without retraining: ``python pipelines/benchmark_report.py [OUT] [STORE]``.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    ROOT,
    compute_sentence,
    markdown_rows,
    minutes,
    read_json,
    trained_precision,
    training_costs,
)

from mri_harmonic.evaluation.compare import (  # noqa: E402
    HIGHER_IS_BETTER,
    INTERVAL_SENTENCE,
    MIN_SEEDS,
    MIN_SUBJECTS,
    compare_runs,
)
from mri_harmonic.evaluation.tables import paper_results  # noqa: E402
from mri_harmonic.utils.io import atomic_write_csv, atomic_write_text  # noqa: E402

DIRS = {"flair2t1": "Flair → T1", "t12flair": "T1 → Flair"}
REGIONS = ("slice", "brain", "tumour")
BASELINE = "cyclegan"
INPUT = "input-as-output"
#: paper row of each of our methods (Table 1 names)
PAPER = {"cyclegan": "CycleGAN", "discogan": "DiscoGAN", "distancegan": "DistanceGAN", "unit": "UNIT",
         "harmonic": "HarmonicGAN-Histogram"}


def label(group: str) -> str:
    """Display name of an evaluation group: the group's first run name without its seed suffix."""
    return re.sub(r"-s\d+$", "", str(group))


def _read(folder: Path, name: str) -> pd.DataFrame:
    df = pd.read_csv(folder / name)
    if "group" in df.columns:
        df["group"] = df["group"].map(label)
    return df


def floor_check(val: Path) -> tuple[pd.DataFrame, list[str]]:
    """Per run: whole-slice MAE and SSIM on the validation split beside the untranslated input, both directions."""
    s = _read(val, "summary.csv")
    s = s[(s["region"] == "slice") & (s["scale"] == "0-255") & s["metric"].isin(["MAE", "SSIM"])]
    rows = []
    for run in [r for r in dict.fromkeys(s["run"]) if r != INPUT]:
        row, clears = {"run": run}, True
        for d in DIRS:
            for m in ("MAE", "SSIM"):
                v = float(s[(s["run"] == run) & (s["direction"] == d) & (s["metric"] == m)]["mean"].iloc[0])
                f = float(s[(s["run"] == INPUT) & (s["direction"] == d) & (s["metric"] == m)]["mean"].iloc[0])
                row[f"{d} {m}"] = v
                row[f"{d} {m} input"] = f
                if d == "flair2t1":
                    clears &= (v > f) if HIGHER_IS_BETTER[m] else (v < f)
        row["clears the floor (Flair → T1 MAE and SSIM)"] = "yes" if clears else "**no**"
        rows.append(row)
    df = pd.DataFrame(rows)
    header = ["run"] + [f"{d} {m}" for d in DIRS for m in ("MAE", "SSIM")] + ["clears the floor (Flair → T1 MAE and SSIM)"]
    shown = df.copy()
    for d in DIRS:
        for m in ("MAE", "SSIM"):
            fmt = "{:.3f} ({:.3f})" if m == "SSIM" else "{:.2f} ({:.2f})"
            shown[f"{d} {m}"] = [fmt.format(a, b) for a, b in zip(df[f"{d} {m}"], df[f"{d} {m} input"])]
    lines = markdown_rows(shown, header)
    lines[0] = lines[0].replace("flair2t1", "Flair → T1").replace("t12flair", "T1 → Flair")
    return df, lines


def room_above_floor(store: Path) -> list[str]:
    """One paragraph: the untranslated input and the best pixelwise intensity map (a paired oracle,
    mri_harmonic.evaluation.oracle) on the validation split, both directions: how much room the floor leaves."""
    from mri_harmonic.evaluation.oracle import intensity_map_oracle

    if not (Path(store) / "store.json").is_file():
        return []
    cells = []
    for direction, rows in intensity_map_oracle(store, "val").items():
        o, i = rows["oracle"], rows["input"]
        cells.append(f"{DIRS[direction]} MAE {o['slice MAE']:.2f} ({i['slice MAE']:.2f}), "
                     f"SSIM {o['slice SSIM']:.3f} ({i['slice SSIM']:.3f})")
    return ["Room above the floor: the best map of each pixel's intensity to a target intensity, fitted on the paired "
            "training slices (an oracle: it sees ground truth no unpaired method sees, but not a pixel's "
            "neighbourhood; `mri_harmonic/evaluation/oracle.py`), scores " + "; ".join(cells) + " (the untranslated "
            "input in brackets). A run near the oracle has learned the contrast; one beyond it uses context."]


def learning_curve(val: Path) -> list[str]:
    """Section 1b: whole-slice MAE / SSIM of every kept checkpoint on the validation split (OUT/val/curves.csv of
    phantom_benchmark.validation_curves), per method (mean over its seeds) and direction, beside the input; and how
    far each method's means still moved over its last three checkpoints."""
    path = val / "curves.csv"
    if not path.is_file():
        return ["(no learning curves: `python pipelines/phantom_benchmark.py` scores each run's as it finishes)"]
    c = pd.read_csv(path)
    c = c[c["region"] == "slice"].assign(method=lambda f: f["run"].map(label))
    steps = sorted(int(s) for s in set(c.loc[c["run"] != INPUT, "step"]))
    rows, moves = [], []
    for d in DIRS:
        cd = c[c["direction"] == d]
        floor = cd[cd["run"] == INPUT]
        for method in [m for m in dict.fromkeys(cd["method"]) if m != INPUT]:
            mean = cd[cd["method"] == method].groupby("step")[["MAE", "SSIM"]].mean()
            row = {"method": method, "direction": DIRS[d], "seeds": int(cd.loc[cd["method"] == method, "run"].nunique())}
            row.update({f"{s:,}": (f"{mean.loc[s, 'MAE']:.2f} / {mean.loc[s, 'SSIM']:.3f}" if s in mean.index else "")
                        for s in steps})
            if len(floor):
                row["input"] = f"{floor['MAE'].iloc[0]:.2f} / {floor['SSIM'].iloc[0]:.3f}"
            rows.append(row)
            last = mean.loc[[s for s in steps[-3:] if s in mean.index]]
            if len(last) == 3:
                moves.append((DIRS[d], method, float(np.ptp(last["MAE"])), float(np.ptp(last["SSIM"]))))
    if not rows:
        return ["(the learning-curve table is empty)"]
    table = pd.DataFrame(rows)
    lines = ["Whole slice, 0–255, each cell MAE / SSIM of the checkpoint at that step (the run's averaged weights), mean "
             "over the method's seeds; `input`: the untranslated input. Brain region and each run's own curve: "
             "[val/curves.csv](val/curves.csv), figure [val/curves.png](val/curves.png).", "",
             *markdown_rows(table, list(table.columns))]
    if moves:
        worst_mae, worst_ssim = max(moves, key=lambda m: m[2]), max(moves, key=lambda m: m[3])
        lines += ["", f"Over each method's last three checkpoints ({steps[-3]:,}–{steps[-1]:,} steps) its mean moved by at "
                  f"most {worst_mae[2]:.2f} MAE ({worst_mae[1]}, {worst_mae[0]}) and {worst_ssim[3]:.3f} SSIM "
                  f"({worst_ssim[1]}, {worst_ssim[0]}): the range of the last three points, which mixes training "
                  "progress with checkpoint-to-checkpoint noise."]
    return lines


def pooled_table1(test: Path) -> tuple[pd.DataFrame, list[str]]:
    """Whole-slice Table 1 per method: the mean over its seeds of each run's mean over slices, ± the std across seeds."""
    s = _read(test, "summary.csv")
    s = s[(s["region"] == "slice") & (s["scale"] == "0-255")]
    groups = _read(test, "per_slice.csv")[["run", "group", "seed"]].drop_duplicates()
    s = s.merge(groups, on="run", how="left")
    rows = []
    for grp in dict.fromkeys(s["group"]):
        g = s[s["group"] == grp]
        row = {"method": grp, "seeds": int(g["run"].nunique()) if grp != INPUT else "-"}
        for d in DIRS:
            for m in ("MAE", "MSE", "PSNR", "SSIM"):
                v = g[(g["direction"] == d) & (g["metric"] == m)]["mean"].to_numpy()
                digits = 3 if m == "SSIM" else 2
                row[f"{DIRS[d]} {m}"] = (f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}" if len(v) > 1
                                         else f"{v.mean():.{digits}f}")
        rows.append(row)
    df = pd.DataFrame(rows)
    lines = markdown_rows(df, list(df.columns))
    paper = paper_results()
    paper = paper[paper["table"] == 1]
    prow = []
    for name in PAPER.values():
        row = {"method": f"paper: {name}"}
        for d in DIRS:
            for m in ("MAE", "MSE", "PSNR", "SSIM"):
                v = paper[(paper["method"] == name) & (paper["direction"] == d) & (paper["metric"] == m)]["value"]
                row[f"{DIRS[d]} {m}"] = f"{float(v.iloc[0]):.2f}" if len(v) else "–"
        prow.append(row)
    plines = markdown_rows(pd.DataFrame(prow), ["method"] + [c for c in df.columns if c not in ("method", "seeds")])
    return df, lines + ["", "The paper's rows (BRATS 2015, their preprocessing and split; not our data, context only):", ""] + plines


def per_seed_table(test: Path) -> list[str]:
    """Whole-slice Table 1 of every run."""
    s = _read(test, "summary.csv")
    s = s[(s["region"] == "slice") & (s["scale"] == "0-255")]
    rows = []
    for run in dict.fromkeys(s["run"]):
        row = {"run": run}
        for d in DIRS:
            for m in ("MAE", "SSIM"):
                row[f"{DIRS[d]} {m}"] = float(s[(s["run"] == run) & (s["direction"] == d) & (s["metric"] == m)]["mean"].iloc[0])
        rows.append(row)
    df = pd.DataFrame(rows)
    return markdown_rows(df, list(df.columns))


def comparisons(test: Path, out: Path) -> tuple[pd.DataFrame, list[str]]:
    """compare_runs against CycleGAN on each region; written to OUT/comparison_regions.csv."""
    per_slice = _read(test, "per_slice.csv")
    frames = []
    for region in REGIONS:
        c = compare_runs(per_slice, BASELINE, region=region, group_column="group")
        frames.append(c.assign(region=region))
    cmp = pd.concat(frames, ignore_index=True)
    atomic_write_csv(out / "comparison_regions.csv", cmp, index=False)
    lines = []
    for region in REGIONS:
        c = cmp[cmp["region"] == region]
        lines += [f"**{region}**" + (" (slices with a tumour, its pixels only)" if region == "tumour" else ""), "",
                  "| method | direction | metric | subjects × seeds | mean difference vs cyclegan [95 % interval] | slices improved | verdict |",
                  "|---|---|---|---|---|---|---|"]
        for _, r in c.iterrows():
            digits = 3 if r["metric"] == "SSIM" else 2
            ci = "–" if not np.isfinite(r["ci_low"]) else f"[{r['ci_low']:+.{digits}f}, {r['ci_high']:+.{digits}f}]"
            lines.append(f"| {r['group']} | {DIRS[r['direction']]} | {r['metric']} | {r['n_subjects']} × {r['n_seeds']} | "
                         f"{r['mean_diff']:+.{digits}f} {ci} | {100 * r['improved_frac']:.0f} % | {r['verdict']} |")
        lines.append("")
    return cmp, lines


#: Tumour-fidelity rates (mri_harmonic/evaluation/hallucination.py's definitions, as the hallucination stress test):
#: the lesion rates on every scored slice, the invented-lesion rates on the tumour-free ones. Lower is better.
LESION_RATES = ("erased", "wrong_direction", "tumour_pixels_lost")
INVENTED_RATES = ("invented_image", "invented_pixel")
RATE_TITLES = {"erased": "lesions erased", "wrong_direction": "lesions reversed",
               "tumour_pixels_lost": "tumour pixels lost", "invented_image": "tumour-free slices with an invented lesion",
               "invented_pixel": "tumour-free brain pixels invented"}


def _seeded_like(frame: pd.DataFrame | None, group: str, seeds: list) -> pd.DataFrame | None:
    """``frame`` with the seedless rows of ``group`` (the untranslated input) repeated once per baseline seed, so the
    paired difference sets the input against every CycleGAN seed (as :func:`compare_runs` does)."""
    if frame is None or not len(frame):
        return frame
    g = frame[frame["group"] == group]
    if not g["seed"].isna().all():
        return frame
    return pd.concat([frame[frame["group"] != group], *[g.assign(seed=s) for s in seeds]], ignore_index=True)


def tumour_rates(test: Path) -> tuple[pd.DataFrame, list[str]]:
    """Per method and direction: each rate (estimate over test subjects x seeds, with its interval) and its paired
    difference from CycleGAN (:func:`paired_rate_difference`: per test subject and seed, the same subjects x seeds
    interval as section 3)."""
    from mri_harmonic.evaluation.hallucination import paired_rate_difference, rate_table

    slices = _read(test, "tumour_per_slice.csv")
    path = test / "tumour_lesions.csv"
    lesions = _read(test, "tumour_lesions.csv") if path.is_file() and path.stat().st_size > 1 else None
    free = slices[slices["n_tumour_pixels"] == 0]
    parts = ((slices, lesions, LESION_RATES), (free, None, INVENTED_RATES))
    rates = pd.concat([rate_table(s, les, ("group", "direction"), r) for s, les, r in parts], ignore_index=True)
    base_seeds = sorted({int(v) for v in slices.loc[slices["group"] == BASELINE, "seed"].dropna()})
    diffs = []
    for grp in [g for g in dict.fromkeys(slices["group"]) if g != BASELINE]:
        for s, les, r in parts:
            diffs.append(paired_rate_difference(_seeded_like(s, grp, base_seeds), _seeded_like(les, grp, base_seeds),
                                                grp, BASELINE, rates=r))
    diff = pd.concat(diffs, ignore_index=True) if diffs else pd.DataFrame(columns=["group", "direction", "rate"])
    df = rates.rename(columns={"group": "method"}).merge(
        diff.rename(columns={"group": "method", "mean_diff": "diff", "n_subjects": "pairs_subjects", "n_seeds": "pairs"})
        [["method", "direction", "rate", "diff", "ci_low", "ci_high", "pairs_subjects", "pairs", "verdict"]],
        on=["method", "direction", "rate"], how="left", suffixes=("", "_diff"))
    order = {r: i for i, r in enumerate((*LESION_RATES, *INVENTED_RATES))}
    df = df.sort_values(["direction", "rate"], key=lambda c: c.map(order) if c.name == "rate" else c, kind="stable")
    lines = ["| method | direction | rate | estimate [95 % interval] | subjects × seeds | difference vs cyclegan [95 % interval] | verdict |",
             "|---|---|---|---|---|---|---|"]
    for _, r in df.iterrows():
        est = f"{100 * r['estimate']:.1f} %" + ("" if not np.isfinite(r["ci_low"]) else f" [{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]")
        if not np.isfinite(r.get("diff", np.nan)):
            d, v = "–", "–"
        else:
            ci = "–" if not np.isfinite(r["ci_low_diff"]) else f"[{100 * r['ci_low_diff']:+.1f}, {100 * r['ci_high_diff']:+.1f}]"
            d, v = f"{100 * r['diff']:+.1f} pp {ci}", r["verdict"]
        lines.append(f"| {r['method']} | {DIRS[r['direction']]} | {RATE_TITLES[r['rate']]} | {est} | "
                     f"{int(r['n_subjects'])} × {int(r['n_seeds'])} | {d} | {v} |")
    return df, lines


def answer(cmp: pd.DataFrame, tum: pd.DataFrame) -> list[str]:
    """The harmonic-vs-cyclegan answer in words, counted from the verdicts."""
    h = cmp[cmp["group"] == "harmonic"]
    if h.empty:
        return ["No `harmonic` group was evaluated."]
    counts = h["verdict"].value_counts().to_dict()
    seeds, subjects = int(h["n_seeds"].min()), int(h["n_subjects"].min())
    lines = [f"HarmonicGAN (histogram features, {seeds} training seeds) against CycleGAN ({seeds} seeds) on {subjects} "
             f"test subjects, {len(h)} cells (2 directions × 3 regions × 4 metrics): "
             + ", ".join(f"**{v}** {n}" for v, n in sorted(counts.items(), key=lambda kv: -kv[1])) + "."]
    for d in DIRS:
        for region in REGIONS:
            c = h[(h["direction"] == d) & (h["region"] == region)]
            if c.empty:
                continue
            cells = []
            for _, r in c.iterrows():
                digits = 3 if r["metric"] == "SSIM" else 2
                ci = "–" if not np.isfinite(r["ci_low"]) else f"[{r['ci_low']:+.{digits}f}, {r['ci_high']:+.{digits}f}]"
                cells.append(f"{r['metric']} {r['mean_diff']:+.{digits}f} {ci}")
            lines.append(f"- {DIRS[d]}, {region}: " + "; ".join(cells))
    th = tum[(tum["method"] == "harmonic") & tum["diff"].notna()] if "diff" in tum else tum.iloc[0:0]
    if len(th):
        lines.append("- Tumour fidelity (percentage points, harmonic − cyclegan; lower is better): " + "; ".join(
            f"{DIRS[r['direction']]} {RATE_TITLES[r['rate']]} {100 * r['diff']:+.1f} [{100 * r['ci_low_diff']:+.1f}, "
            f"{100 * r['ci_high_diff']:+.1f}] ({r['verdict']})" for _, r in th.iterrows()))
    return lines


def write_report(out: Path, store_dir: Path, runs: dict, timings: dict, *, quick: bool = False) -> Path:
    """OUT/README.md from OUT/val, OUT/test and the kept runs in OUT/models (``store_dir``: the benchmark's store)."""
    out, store_dir = Path(out), Path(store_dir)
    val, test = out / "val", out / "test"
    store = read_json(store_dir / "store.json", {}) or {}
    splits = store.get("splits", {})
    floor_df, floor_lines = floor_check(val)
    _, t1_lines = pooled_table1(test)
    cmp, cmp_lines = comparisons(test, out)
    tum, tum_lines = tumour_rates(test)
    costs = training_costs({n: out / "models" / n for n in runs})
    cmd = read_json(out / "command.json", {}) or {}
    steps = {n: c["step"] for n, c in costs.items()}
    from phantom_benchmark import LONG, PREPROCESS, QUICK

    common = set(QUICK["steps"] if quick else LONG)
    run_rows = pd.DataFrame([{"run": n, "config": c, "overrides": " ".join(x for x in o if x not in common), "steps": steps[n],
                              "precision": trained_precision(out / "models" / n),
                              "training clock (min)": minutes(costs[n]["clock_s"]),
                              "CPU time (min)": minutes(costs[n]["cpu_s"], costs[n]["cpu_from_step"])}
                             for n, (c, o) in runs.items()])
    n_clear = int((floor_df["clears the floor (Flair → T1 MAE and SSIM)"] == "yes").sum())
    title = "Phantom benchmark v2" + (" — QUICK MODE (3 steps per run: checks the pipeline, says nothing about methods)" if quick else "")
    lines = [
        f"# {title}", "",
        f"Written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `python pipelines/phantom_benchmark.py "
        f"{' '.join(cmd.get('argv', []))}` (resumable: each finished run is kept) on "
        f"{read_json(out / 'versions.json', {}).get('device', 'this machine')}. " + compute_sentence(timings, costs), "",
        "## The answer: HarmonicGAN against CycleGAN", "",
        *answer(cmp, tum), "",
        f"A verdict needs ≥ {MIN_SUBJECTS} test subjects and ≥ {MIN_SEEDS} training seeds per method; methods trained with "
        "one seed get no verdict (their interval covers those trained runs only). " + INTERVAL_SENTENCE.format(baseline="cyclegan"), "",
        "## Setup", "",
        f"- Data: the built-in phantom (MR-physics on MNI152 anatomy), {cmd.get('subjects', '?')} subjects, phantom seed "
        f"{cmd.get('phantom_seed', '?')}, preprocessed with {QUICK['preprocess'] if quick else PREPROCESS}: "
        + ", ".join(f"{k} {v.get('n_subjects')} subjects / {v.get('n_slices')} slices" for k, v in splits.items())
        + ". A and B come from disjoint subject halves (unpaired).",
        "- Every run: the method's phantom-cpu preset with "
        + (f"`{' '.join(sorted(common))}` (quick mode)" if quick else "the long CPU budget (9,600 steps of 100-slice "
           "epochs, constant then linearly decayed learning rate, as configs/phantom-cpu-long.yaml)")
        + ", trained Flair → T1 (A = FLAIR), plus the overrides below; both directions are evaluated (G and F). "
        "Resolved configs: configs/.", "",
        *markdown_rows(run_rows, list(run_rows.columns)), "",
        *([] if not run_rows["precision"].str.contains("amp: auto").any() else [
            "Precision: every run trained in float32. The pipeline pins `amp=off` (phantom_benchmark.PRECISION); the runs "
            "shown as `not recorded (amp: auto)` were trained before that pin and before checkpoints recorded their "
            "precision, on a CPU without native bf16 (AVX2 only), where `auto` means fp32: their pace, ~2.5 steps/s on one "
            "thread, is fp32's there, and bf16 would have been emulated at ~1/9 of fp32's speed "
            "(reports/benchmarks/precision.md).", ""]),
        "## 1. Does every run beat the untranslated input? (validation split)", "",
        f"Whole slice, 0–255; each cell: the run (the untranslated input). {n_clear} of {len(floor_df)} runs clear the floor "
        "on both Flair → T1 MAE and SSIM. Full report: [val/report.md](val/report.md).", "",
        *floor_lines, "",
        *room_above_floor(store_dir), "",
        "### 1b. Learning curves (validation split)", "",
        *learning_curve(val), "",
        "## 2. Table 1 layout (test split, whole slice, 0–255)", "",
        "Per method: mean over its training seeds of each run's mean over test slices, ± the standard deviation across "
        "seeds (a single value: one seed).", "",
        *t1_lines, "",
        "Per run (per seed):", "", *per_seed_table(test), "",
        "## 3. Paired comparison against CycleGAN, every region (test split, 0–255)", "",
        *cmp_lines,
        "Table: comparison_regions.csv. " + INTERVAL_SENTENCE.format(baseline="cyclegan"), "",
        "## 4. Tumour fidelity by method (test split)", "",
        "The tumour checks of mri_harmonic/evaluation/tumour.py (definitions and calibration: [test/report.md](test/report.md), "
        "reports/fidelity_controls/), as rates of mri_harmonic/evaluation/hallucination.py (the stress test's): lesions "
        "erased (< 25 % of their real contrast against white matter kept) or reversed over the scored lesions, the "
        "pixels of erased lesions over those of conspicuous ones, and, on tumour-free slices only, slices with an "
        "invented lesion-like region of ≥ 13 pixels and the share of brain pixels invented. Each rate is computed per "
        "test subject and training seed; estimate and interval as in section 3 (a t interval over subjects for the "
        "seedless input). The difference from CycleGAN is seed-matched (the untranslated input against every "
        "CycleGAN seed). Lower is better for every rate.", "",
        *tum_lines, "",
        "## 5. Figures and reader study", "",
        "- Test samples: [Flair → T1](test/figures/samples_flair2t1.png), [T1 → Flair](test/figures/samples_t12flair.png); "
        "metrics by region: [slice](test/figures/metrics_slice.png), [brain](test/figures/metrics_brain.png); training "
        "curves: [loss_curves.png](test/figures/loss_curves.png).",
        "- Sample grids and the reader-study sheet show one run per method, its seed 0 (the metrics use every run): "
        "[test/reader_study/](test/reader_study/) (open sheet.html; blinded, slots shuffled per case; score answers "
        "with `mri-harmonic reader-study score`).", "",
        "## What this benchmark can and cannot show", "",
        "- It is a phantom: MR-physics contrast on one template anatomy with synthetic deformations and tumours. It tells "
        "methods apart on a translation whose truth is known exactly; it cannot say how they rank on real scans, where "
        "anatomy, scanners and artefacts vary (pipelines/brats.py runs the same comparison on BraTS).",
        "- Networks are the CPU presets' slim ones (ngf 16, 4 residual blocks) at 9,600 steps, not the paper's (ngf 64, "
        "9 blocks, 200 epochs); absolute figures are not comparable to the paper's Table 1, only the ranking question is.",
        "- Intervals resample test subjects and training seeds; they do not cover other phantom draws or other budgets.",
        "",
        "Files: val/ and test/ (full evaluation reports), comparison_regions.csv, configs/, timings.json, versions.json, command.json.",
    ]
    path = out / "README.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


if __name__ == "__main__":
    o = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "reports" / "phantom"
    w = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "work" / "phantom-v2" / "store"
    c = read_json(o / "command.json", {}) or {}
    print(write_report(o, w, {n: (v["config"], v["overrides"]) for n, v in c.get("runs", {}).items()},
                       read_json(o / "timings.json", {}) or {}, quick=bool(c.get("quick"))))
