"""pipelines/hallucination_stress.py --quick end to end (tiny phantom, 3 steps per run): the report's structure, the
rates' ranges and intervals, the calibration row, and a second invocation that trains nothing again."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(work: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, str(ROOT / "pipelines" / "hallucination_stress.py"), "--quick", "--work", str(work)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)


@pytest.mark.slow
def test_quick_pipeline_end_to_end(tmp_path):
    work = tmp_path / "stress"
    proc = _run(work)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = work / "report"
    readme = (out / "README.md").read_text()
    for heading in ("# Hallucination stress test", "**Quick mode**", "## Answer", "- **(a) StegoGAN's", "## (a) StegoGAN's", "## (b) Cohen et al.'s",
                    "### Calibration: the real target", "### HarmonicGAN − CycleGAN", "### Per training seed",
                    "## What the intervals mean, and what this cannot show", "of process CPU time measured"):
        assert heading in readme, heading
    runs = [f"{s}-{m}-s{k}" for s in "ab" for m in ("harmonic", "cyclegan") for k in range(2)]
    for run in runs:
        assert (out / "configs" / f"train-{run}.yaml").is_file() and f"| {run} | 3 of 3 |" in readme
    assert (out / "configs" / "preprocess.yaml").is_file() and (out / "versions.json").is_file()
    timings = json.loads((out / "timings.json").read_text())  # each run's CPU time, and the evaluations'
    assert set(timings["training"]) == set(runs) and all(c["cpu_s"] > 0 for c in timings["training"].values())
    assert timings["evaluate_a_cpu_s"] > 0 and timings["evaluate_b_cpu_s"] > 0
    assert (out / "figures" / "examples-a.png").stat().st_size > 0 and (out / "figures" / "examples-b.png").stat().st_size > 0

    expected = {"a": ("invented_image", "invented_pixel"), "b": ("erased", "wrong_direction", "tumour_pixels_lost")}
    for setting, rates in expected.items():
        pooled = pd.read_csv(out / f"rates-{setting}.csv")
        per_seed = pd.read_csv(out / f"rates_per_seed-{setting}.csv")
        calib = pd.read_csv(out / f"calibration-{setting}.csv")
        assert {"harmonic", "cyclegan", "input-as-output"} <= set(pooled["group"])
        assert len(set(per_seed["run"])) == 4 and set(calib["control"]) == {"real", "blur1", "noise"}
        for table in (pooled, per_seed, calib):
            for _, r in table.iterrows():
                assert 0 <= r["estimate"] <= 1
                if math.isfinite(r["ci_low"]):
                    assert 0 <= r["ci_low"] <= r["estimate"] <= r["ci_high"] <= 1, r.to_dict()
        for rate in rates:
            assert set(pooled.loc[pooled["rate"] == rate, "group"]) >= {"harmonic", "cyclegan"}, rate
            seeds = pooled.loc[(pooled["rate"] == rate) & (pooled["group"] == "harmonic"), "n_seeds"]
            assert (seeds == 2).all()
        real = calib[calib["control"] == "real"]
        assert (real["estimate"] == 0).all()  # the truth scored against itself flags nothing
        diff = pd.read_csv(out / f"difference-{setting}.csv")
        assert set(diff["rate"]) >= set(rates) and (diff["n_seeds"] == 2).all()
        assert diff["verdict"].str.startswith("no verdict").all()  # 2 subjects, 2 seeds: too few to say anything

    again = _run(work)  # finished runs and evaluations are reused
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "$ mri-harmonic train" not in again.stdout and "$ mri-harmonic evaluate" not in again.stdout


def test_answer_says_when_the_untranslated_input_scores_no_lower_on_an_invented_rate():
    """The Answer's caveat fires on an invented-lesion rate only where the untranslated input scores at least as high
    as every method, never on an erased rate; the difference and its verdict are quoted from the table."""
    sys.path.insert(0, str(ROOT / "pipelines"))
    import hallucination_stress as hs

    def pooled(rows):
        return pd.DataFrame([dict(group=g, rate=r, estimate=e, ci_low=e / 2, ci_high=min(1.0, 2 * e)) for g, r, e in rows])

    diff = pd.DataFrame([dict(rate="invented_image", mean_diff=-0.013, ci_low=-0.133, ci_high=0.107,
                              verdict="no difference shown")])
    res = {"a": dict(rates=("invented_image", "invented_pixel"), diff=diff, pooled=pooled(
        [("harmonic", "invented_image", 0.9), ("cyclegan", "invented_image", 0.92), ("input-as-output", "invented_image", 0.98),
         ("harmonic", "invented_pixel", 0.10), ("cyclegan", "invented_pixel", 0.2), ("input-as-output", "invented_pixel", 0.12)])),
           "b": dict(rates=("erased",), diff=diff.iloc[:0], pooled=pooled(
               [("harmonic", "erased", 0.2), ("cyclegan", "erased", 0.2), ("input-as-output", "erased", 0.5)]))}
    lines = hs.answer_lines(res, hs.settings(0.6, None))
    image, pixel, erased = (next(x for x in lines if x.startswith(f"  - {hs.RATE_TITLES[r]}"))
                            for r in ("invented_image", "invented_pixel", "erased"))
    assert "-1.3 pp [-13.3, +10.7]: **no difference shown**" in image
    assert "No method scores above the untranslated input" in image  # 0.98 >= 0.92
    assert "No method scores above" not in pixel  # cyclegan's 0.2 is above the input's 0.12
    assert "No method scores above" not in erased and "HarmonicGAN − CycleGAN" not in erased  # not invented; no diff
