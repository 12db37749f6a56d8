"""Paired comparison of runs on the same slices: is run X better than a baseline, beyond slice-to-slice noise?

Slices of one subject are not independent, so uncertainty comes from a **subject-level (cluster) bootstrap**:
resample subjects with replacement, take every slice of each drawn subject, and recompute the mean paired
difference. With few test subjects the interval is honest about how little they can show.

``compare_runs(per_slice, baseline)`` works on the ``per_slice.csv`` table that ``mri-harmonic evaluate`` writes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

METRICS = ("MAE", "MSE", "PSNR", "SSIM")
HIGHER_IS_BETTER = {"MAE": False, "MSE": False, "PSNR": True, "SSIM": True}


def compare_runs(
    per_slice: pd.DataFrame,
    baseline: str,
    *,
    region: str = "slice",
    scale: str = "0-255",
    metrics: Sequence[str] = METRICS,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean paired difference (run − baseline) per run × direction × metric, with a 95 % subject-bootstrap CI.

    Returns columns run, direction, metric, n_slices, n_subjects, mean_diff, ci_low, ci_high, improved_frac (share of
    slices on which the run is better), better (mean difference in the better direction), significant (the CI
    excludes 0). Slices with a non-finite value (PSNR of identical images) are left out of that metric.
    """
    sel = per_slice[(per_slice["region"] == region) & (per_slice["scale"] == scale)]
    if baseline not in set(sel["run"]):
        raise ValueError(f"baseline run {baseline!r} is not in the table (runs: {sorted(set(sel['run']))})")
    key = ["subject", "slice_index", "direction"]
    base = sel[sel["run"] == baseline].set_index(key)
    rng = np.random.default_rng(seed)
    rows = []
    for run in [r for r in dict.fromkeys(sel["run"]) if r != baseline]:
        other = sel[sel["run"] == run].set_index(key)
        joined = other.join(base, how="inner", rsuffix="_base")
        for direction, g in joined.groupby(level="direction", sort=False):
            subjects = g.index.get_level_values("subject")
            for m in metrics:
                d = (g[m] - g[f"{m}_base"]).to_numpy(dtype=float)
                ok = np.isfinite(d)
                d, subj = d[ok], np.asarray(subjects)[ok]
                if d.size == 0:
                    continue
                uniq, inv = np.unique(subj, return_inverse=True)
                sums = np.bincount(inv, weights=d, minlength=len(uniq))
                counts = np.bincount(inv, minlength=len(uniq))
                draws = rng.integers(0, len(uniq), size=(n_boot, len(uniq)))
                boot = sums[draws].sum(1) / counts[draws].sum(1)
                lo, hi = np.quantile(boot, [0.025, 0.975])
                sign = 1.0 if HIGHER_IS_BETTER[m] else -1.0
                rows.append({
                    "run": run, "direction": direction, "metric": m, "n_slices": int(d.size), "n_subjects": int(len(uniq)),
                    "mean_diff": float(d.mean()), "ci_low": float(lo), "ci_high": float(hi),
                    "improved_frac": float(np.mean(sign * d > 0)), "better": bool(sign * d.mean() > 0),
                    "significant": bool(lo > 0 or hi < 0),
                })
    return pd.DataFrame(rows)


def comparison_markdown(cmp: pd.DataFrame, baseline: str) -> str:
    """A Markdown table of :func:`compare_runs` output."""
    head = ("| run | direction | metric | mean difference vs " + baseline + " [95 % CI, subject bootstrap] | "
            "slices improved | better on average | CI excludes 0 |")
    lines = [head, "|---|---|---|---|---|---|---|"]
    for _, r in cmp.iterrows():
        digits = 3 if r["metric"] == "SSIM" else 2
        lines.append(
            f"| {r['run']} | {r['direction']} | {r['metric']} | {r['mean_diff']:+.{digits}f} "
            f"[{r['ci_low']:+.{digits}f}, {r['ci_high']:+.{digits}f}] | {100 * r['improved_frac']:.0f} % | "
            f"{'yes' if r['better'] else 'no'} | {'yes' if r['significant'] else 'no'} |"
        )
    n_subj = int(cmp["n_subjects"].max()) if len(cmp) else 0
    lines += ["", f"Differences are run − {baseline} on the same slices (lower MAE/MSE and higher PSNR/SSIM are better); "
              f"the interval resamples the {n_subj} test subjects with replacement (slices of a subject are not independent)."]
    return "\n".join(lines)
