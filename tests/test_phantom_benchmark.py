"""pipelines/phantom_benchmark.py --quick end to end: phantom -> store -> every method (two seeds of harmonic and
cyclegan, the foreground variant) -> validation and test evaluations -> README; a rerun on a machine holding only the report folder (with its kept
runs) trains and evaluates nothing."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipelines"))
import phantom_benchmark  # noqa: E402

from mri_harmonic.methods import method_names  # noqa: E402


def test_plan_has_every_method_three_seeds_of_the_question_and_the_foreground_variant():
    runs = phantom_benchmark.plan_runs(list(method_names()), 3, True, quick=False)
    assert list(runs)[:2] == ["harmonic-s0", "cyclegan-s0"]  # the demo's pretrained pair trains first
    for m in ("harmonic", "cyclegan"):
        assert {f"{m}-s{s}" for s in range(3)} <= set(runs)
    assert {f"{m}-s0" for m in method_names()} <= set(runs) and "harmonic-fg-s0" in runs
    assert all("max_steps=9600" in o and "time_budget_minutes=null" not in o for _, o in runs.values())
    assert "loss.smoothness.min_brain_fraction=0.25" in runs["harmonic-fg-s0"][1]
    assert runs["harmonic-s2"][1][-1] == "seed=2"
    order = phantom_benchmark.training_order(list(runs))
    assert order[:6] == [f"{m}-s{s}" for s in range(3) for m in ("harmonic", "cyclegan")]
    assert order[6] == "unit-s0" and sorted(order) == sorted(runs)  # the slowest single-seed run starts next


@pytest.mark.slow
def test_quick_benchmark_runs_end_to_end_and_resumes(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    assert phantom_benchmark.main(["--quick", "--work", str(work), "--out", str(out)]) == 0
    readme = (out / "README.md").read_text()
    for heading in ("## The answer: HarmonicGAN against CycleGAN", "## 1. Does every run beat the untranslated input?",
                    "## 2. Table 1 layout", "## 3. Paired comparison against CycleGAN", "## 4. Tumour fidelity by method"):
        assert heading in readme
    assert "QUICK MODE" in readme and "paper: HarmonicGAN-Histogram" in readme
    from benchmark_report import RATE_TITLES  # every tumour-fidelity rate of the stress test, per method

    assert all(f"| harmonic | Flair → T1 | {title} |" in readme for title in RATE_TITLES.values())
    room = re.search(r"Room above the floor:.*? scores Flair → T1 MAE ([\d.]+) \(([\d.]+)\)", readme)
    assert room and float(room.group(1)) < float(room.group(2))  # the paired oracle beats the input's MAE
    cmp = pd.read_csv(out / "comparison_regions.csv")
    assert set(cmp["region"]) == {"slice", "brain", "tumour"}
    h = cmp[cmp["group"] == "harmonic"]
    assert set(h["n_seeds"]) == {2} and set(h["direction"]) == {"flair2t1", "t12flair"}
    assert (h["ci_low"] <= h["mean_diff"]).all() and (h["mean_diff"] <= h["ci_high"]).all()
    assert {"harmonic-fg", "distancegan", "discogan", "unit", "input-as-output"} <= set(cmp["group"])
    assert (out / "val" / "report.md").is_file() and (out / "test" / "reader_study" / "sheet.html").is_file()
    curves = pd.read_csv(out / "val" / "curves.csv")  # every run's kept checkpoint (step 3) and the input floor
    assert len(set(curves["run"])) == 9 and set(curves.loc[curves["run"] != "input-as-output", "step"]) == {3}
    assert (out / "val" / "curves.png").stat().st_size > 0 and "### 1b. Learning curves" in readme
    assert len(list((out / "configs").glob("train-*.yaml"))) == 8
    timings = json.loads((out / "timings.json").read_text())  # CPU time: each run's own, and the other steps'
    assert len(timings["training"]) == 8 and all(c["cpu_s"] > 0 and c["cpu_from_step"] == 0 for c in timings["training"].values())
    assert timings["evaluate_test_cpu_s"] > 0 and "of process CPU time measured" in readme
    kept = sorted((out / "models").glob("*/exported.json"))  # each finished run kept in the report folder
    assert len(kept) == 8 and all(json.loads(p.read_text())["cpu_s"] > 0 for p in kept)
    report_time = (out / "test" / "report.md").stat().st_mtime
    shutil.rmtree(work)  # another machine: only the committed report folder (with its kept runs) is there
    assert phantom_benchmark.main(["--quick", "--work", str(work), "--out", str(out)]) == 0
    assert not (work / "runs").exists()  # nothing retrained
    assert (out / "test" / "report.md").stat().st_mtime == report_time  # nor re-evaluated: same weights
    timings = json.loads((out / "timings.json").read_text())
    assert len(timings["training"]) == 8 and all(c["cpu_s"] > 0 for c in timings["training"].values())


def test_compute_sentence_sums_cpu_time_and_names_runs_it_does_not_cover(tmp_path):
    """The report's CPU time: each run's own (summary.json, summed over resumptions), the other steps' *_cpu_s, and
    the runs whose CPU time was never recorded or counts from a later step are named, not silently left out."""
    from _common import compute_sentence, training_costs

    summaries = {"full": {"elapsed_s": 3600, "cpu_s": 3420, "cpu_from_step": 0, "step": 9600},
                 "late": {"elapsed_s": 1800, "cpu_s": 900, "cpu_from_step": 4800, "step": 9600},
                 "old": {"elapsed_s": 1800, "step": 9600}}
    for name, s in summaries.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(s))
    costs = training_costs({n: tmp_path / n for n in [*summaries, "missing"]})
    assert costs["old"]["cpu_s"] is None and costs["missing"]["clock_s"] is None and costs["late"]["cpu_from_step"] == 4800
    text = compute_sentence({"evaluate_test_cpu_s": 1800.0, "evaluate_test_s": 2000.0, "total_s": 7200.0}, costs)
    assert "2.00 h of training clock summed over 4 runs" in text and "1.20 h of process CPU time" in text
    assert "not recorded for old, missing" in text and "late (from step 4,800)" in text
    assert "Other steps (phantom, preprocessing, evaluation, as recorded): 0.50 h CPU" in text  # not the 0.56 h of wall


def test_evaluation_staleness_follows_the_weights_not_file_times(tmp_path):
    """A fresh clone gives every file a new time: an evaluation is stale when the weights it was computed from
    changed (or a run was added), not when a file is newer."""
    import os

    from _common import evaluation_stale, mark_evaluated

    runs = [tmp_path / "a", tmp_path / "b"]
    for i, d in enumerate(runs):
        (d / "checkpoints").mkdir(parents=True)
        (d / "checkpoints" / "latest.pt").write_bytes(bytes([i]) * 100)
    report = tmp_path / "eval" / "report.md"
    assert evaluation_stale(runs, report)  # no report
    report.parent.mkdir()
    report.write_text("r")
    assert evaluation_stale(runs, report)  # a report nobody marked
    mark_evaluated(runs, report)
    assert not evaluation_stale(runs, report)
    os.utime(runs[0] / "checkpoints" / "latest.pt", (report.stat().st_mtime + 100,) * 2)  # newer file, same weights
    assert not evaluation_stale(runs, report)
    assert evaluation_stale(runs[:1], report)  # another set of runs
    (runs[1] / "checkpoints" / "latest.pt").write_bytes(b"retrained")
    assert evaluation_stale(runs, report)
