"""pipelines/phantom_benchmark.py --quick end to end: phantom -> store -> every method (two seeds of harmonic and
cyclegan, the foreground variant) -> validation and test evaluations -> README; a rerun trains nothing."""

from __future__ import annotations

import re
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


@pytest.mark.slow
def test_quick_benchmark_runs_end_to_end_and_resumes(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    assert phantom_benchmark.main(["--quick", "--work", str(work), "--out", str(out)]) == 0
    readme = (out / "README.md").read_text()
    for heading in ("## The answer: HarmonicGAN against CycleGAN", "## 1. Does every run beat the untranslated input?",
                    "## 2. Table 1 layout", "## 3. Paired comparison against CycleGAN", "## 4. Tumour fidelity by method"):
        assert heading in readme
    assert "QUICK MODE" in readme and "paper: HarmonicGAN-Histogram" in readme
    room = re.search(r"Room above the floor:.*? scores Flair → T1 MAE ([\d.]+) \(([\d.]+)\)", readme)
    assert room and float(room.group(1)) < float(room.group(2))  # the paired oracle beats the input's MAE
    cmp = pd.read_csv(out / "comparison_regions.csv")
    assert set(cmp["region"]) == {"slice", "brain", "tumour"}
    h = cmp[cmp["group"] == "harmonic"]
    assert set(h["n_seeds"]) == {2} and set(h["direction"]) == {"flair2t1", "t12flair"}
    assert (h["ci_low"] <= h["mean_diff"]).all() and (h["mean_diff"] <= h["ci_high"]).all()
    assert {"harmonic-fg", "distancegan", "discogan", "unit", "input-as-output"} <= set(cmp["group"])
    assert (out / "val" / "report.md").is_file() and (out / "test" / "reader_study" / "sheet.html").is_file()
    assert len(list((out / "configs").glob("train-*.yaml"))) == 8
    done = {p: p.stat().st_mtime for p in (work / "runs").glob("*/DONE")}
    assert len(done) == 8
    assert phantom_benchmark.main(["--quick", "--work", str(work), "--out", str(out)]) == 0  # nothing retrains
    assert {p: p.stat().st_mtime for p in (work / "runs").glob("*/DONE")} == done
