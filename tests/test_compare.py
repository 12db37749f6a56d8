"""Paired run comparison against a direct computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mri_harmonic.evaluation.compare import compare_runs, comparison_markdown


def _table(seed=0, shift=-1.0):
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(4):
        for z in range(5):
            base = rng.normal(10, 2)
            for run, delta in (("cyclegan", 0.0), ("harmonic", shift)):
                rows.append(dict(subject=f"S{s}", slice_index=z, run=run, method=run, direction="flair2t1", region="slice",
                                 scale="0-255", MAE=base + delta + rng.normal(0, 0.01), MSE=1.0, PSNR=np.inf if z == 0 else 20.0 - delta, SSIM=0.8))
    return pd.DataFrame(rows)


def test_mean_difference_and_direction():
    df = _table()
    cmp = compare_runs(df, "cyclegan").set_index("metric")
    h = df[df.run == "harmonic"].set_index(["subject", "slice_index"])
    c = df[df.run == "cyclegan"].set_index(["subject", "slice_index"])
    assert cmp.loc["MAE", "mean_diff"] == pytest.approx((h.MAE - c.MAE).mean())
    assert cmp.loc["MAE", "better"] and cmp.loc["MAE", "significant"] and cmp.loc["MAE", "improved_frac"] == 1.0
    assert cmp.loc["MAE", "ci_low"] <= cmp.loc["MAE", "mean_diff"] <= cmp.loc["MAE", "ci_high"]
    # PSNR = inf slices are left out; higher PSNR is better
    assert cmp.loc["PSNR", "n_slices"] == 16 and cmp.loc["PSNR", "better"]
    # identical values: no difference, not significant
    assert cmp.loc["SSIM", "mean_diff"] == 0 and not cmp.loc["SSIM", "significant"]
    assert "cyclegan" in comparison_markdown(cmp.reset_index(), "cyclegan")


def test_bootstrap_resamples_subjects_not_slices():
    # one subject much better, the others slightly worse: the subject bootstrap must not call it significant
    df = _table(shift=0.0)
    worse = (df.run == "harmonic") & (df.subject != "S0")
    df.loc[worse, "MAE"] += 0.5
    df.loc[(df.run == "harmonic") & (df.subject == "S0"), "MAE"] -= 3.0
    r = compare_runs(df, "cyclegan", metrics=["MAE"]).iloc[0]
    assert r["n_subjects"] == 4 and r["ci_low"] < 0 < r["ci_high"] and not r["significant"]


def test_unknown_baseline():
    with pytest.raises(ValueError, match="baseline run 'nope'"):
        compare_runs(_table(), "nope")
