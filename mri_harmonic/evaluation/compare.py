"""Paired comparison of methods on the same slices, with an interval that covers test subjects and training seeds.

A method is a *group* of runs that differ only in their training seed (``evaluate`` groups them). For a method X
against the baseline B and one metric:

1. **Paired per slice.** ``d = metric(X) - metric(B)`` on the same slice (subject, slice index, direction), for the
   runs of X and B trained with the same seed ``s`` (the untranslated-input reference row has no seed and pairs with
   every seed of B). Slices with a non-finite value (PSNR of identical images) are left out of that metric.
2. **Aggregated per test subject.** ``D[i, s]`` = the mean of ``d`` over subject ``i``'s slices for seed ``s``:
   slices of one subject are not independent, subjects are.
3. **The interval** treats ``D`` as a two-way crossed random-effects layout, ``D[i, s] = mu + a_i + b_s + e_is``
   (subject effect ``a``, training-seed effect ``b``, interaction ``e``). The estimate is the grand mean; its
   variance ``sigma_a^2/n + sigma_b^2/k + sigma_e^2/(nk)`` is estimated without bias from the mean squares,
   ``(MS_subject + MS_seed - MS_residual) / (n k)``, floored at ``max(MS_subject, MS_seed) / (n k)`` (a variance
   sum cannot be smaller than its largest part), with Satterthwaite degrees of freedom and a t quantile.
   With k seeds it covers mu, the method's expected difference over training seeds and test subjects.
   With **one seed** only the subject part is estimable: the interval is a paired t-interval over subjects and
   covers the difference *of these trained runs*, not of the method; ``verdict`` then says so.

Coverage of the nominal 95 % interval is checked by simulation in ``tests/test_compare.py`` at 10-12 subjects and 1
and 3 seeds. A verdict (better / worse / no difference shown) is printed only with at least :data:`MIN_SUBJECTS`
test subjects and :data:`MIN_SEEDS` seeds per method; below that the tables say why instead.

``compare_runs(per_slice, baseline)`` works on the ``per_slice.csv`` table that ``mri-harmonic evaluate`` writes.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

METRICS = ("MAE", "MSE", "PSNR", "SSIM")
HIGHER_IS_BETTER = {"MAE": False, "MSE": False, "PSNR": True, "SSIM": True}
#: Fewer test subjects than this: no verdict (the subject variance is then too poorly estimated to say anything).
MIN_SUBJECTS = 5
#: Fewer training seeds per method than this: no verdict about the method (seed variation unknown or its
#: variance estimate has under 2 degrees of freedom). 3 is the smallest count whose coverage the tests check.
MIN_SEEDS = 3


def paired_interval(d: np.ndarray, level: float = 0.95) -> dict[str, float]:
    """Estimate and interval of the mean of a subjects x seeds matrix of per-subject mean differences.

    Returns ``mean``, ``ci_low``, ``ci_high``, ``se`` and ``df`` (nan interval with fewer than 2 subjects).
    See the module docstring for the model; with one column it is the paired t-interval over subjects.
    """
    d = np.asarray(d, dtype=float)
    if d.ndim == 1:
        d = d[:, None]
    n, k = d.shape
    mean = float(d.mean()) if d.size else math.nan
    if n < 2:
        return {"mean": mean, "ci_low": math.nan, "ci_high": math.nan, "se": math.nan, "df": math.nan}
    ms_subject = k * d.mean(axis=1).var(ddof=1)
    if k == 1:
        var, df = ms_subject / n, float(n - 1)
    else:
        ms_seed = n * d.mean(axis=0).var(ddof=1)
        resid = d - d.mean(axis=1, keepdims=True) - d.mean(axis=0, keepdims=True) + d.mean()
        ms_resid = float((resid**2).sum() / ((n - 1) * (k - 1)))
        parts = [(ms_subject, n - 1), (ms_seed, k - 1), (-ms_resid, (n - 1) * (k - 1))]
        total = ms_subject + ms_seed - ms_resid
        floor = max(ms_subject, ms_seed)
        if total < floor:  # the unbiased sum fell below its largest part: use that part and its df
            parts = [(ms_subject, n - 1)] if ms_subject >= ms_seed else [(ms_seed, k - 1)]
            total = floor
        var = total / (n * k)
        denom = sum(c**2 / f for c, f in parts)
        df = float(total**2 / denom) if denom > 0 else float(n - 1)
    se = math.sqrt(max(var, 0.0))
    q = stats.t.ppf(0.5 + level / 2, df) if se > 0 else 0.0
    return {"mean": mean, "ci_low": mean - q * se, "ci_high": mean + q * se, "se": se, "df": df}


def verdict(n_subjects: int, n_seeds: int, ci_low: float, ci_high: float, higher_is_better: bool) -> str:
    """``better`` / ``worse`` / ``no difference shown``, or why the counts allow no verdict."""
    if n_subjects < MIN_SUBJECTS:
        return f"no verdict: {n_subjects} test subjects (< {MIN_SUBJECTS})"
    if n_seeds < MIN_SEEDS:
        return f"no verdict: {n_seeds} seed{'s' if n_seeds != 1 else ''} (< {MIN_SEEDS}); interval covers these runs only"
    if not (np.isfinite(ci_low) and np.isfinite(ci_high)) or ci_low <= 0 <= ci_high:
        return "no difference shown"
    return "better" if (ci_low > 0) == higher_is_better else "worse"


def _seed_key(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else str(int(v))


def compare_runs(
    per_slice: pd.DataFrame,
    baseline: str,
    *,
    region: str = "slice",
    scale: str = "0-255",
    metrics: Sequence[str] = METRICS,
    group_column: str | None = None,
    level: float = 0.95,
    unpaired: str = "raise",
) -> pd.DataFrame:
    """Mean paired difference (group − baseline) per group × direction × metric, with the interval above.

    ``group_column`` names the column that pools runs (``group`` when present, else ``run``); runs of one group are
    told apart by the ``seed`` column (absent: every row is seed 0). Returns columns group, direction, metric,
    n_slices, n_subjects, n_seeds, mean_diff, ci_low, ci_high, df, improved_frac (share of paired slices on which
    the group is better), better (mean difference in the better direction) and verdict.

    A group that shares no training seed with the baseline cannot be paired: ``unpaired="raise"`` raises
    ``ValueError``, ``"skip"`` leaves it out and lists it in ``out.attrs["unpaired"]`` (``{group: its seeds}``).
    """
    if unpaired not in ("raise", "skip"):
        raise ValueError(f"unpaired must be 'raise' or 'skip', got {unpaired!r}")
    sel = per_slice[(per_slice["region"] == region) & (per_slice["scale"] == scale)].copy()
    col = group_column or ("group" if "group" in sel.columns else "run")
    sel["_seed"] = [_seed_key(v) for v in sel["seed"]] if "seed" in sel.columns else "0"
    if baseline not in set(sel[col]):
        raise ValueError(f"baseline {baseline!r} is not in the table ({col}s: {sorted(set(sel[col]))})")
    key = ["subject", "slice_index", "direction"]
    base = sel[sel[col] == baseline]
    base_seeds = sorted(set(base["_seed"]))
    rows, skipped = [], {}
    for grp in [g for g in dict.fromkeys(sel[col]) if g != baseline]:
        other = sel[sel[col] == grp]
        seeds = sorted(set(other["_seed"]))
        if seeds == ["-"]:  # a seedless row (the untranslated input) pairs with every baseline seed
            pairs = [(s, "-", s) for s in base_seeds]
        else:
            pairs = [(s, s, s) for s in seeds if s in base_seeds]
        if not pairs and unpaired == "skip":
            skipped[grp] = seeds
            continue
        if not pairs:
            raise ValueError(f"{grp!r} (seeds {seeds}) shares no training seed with the baseline {baseline!r} (seeds {base_seeds})")
        for m in metrics:
            diffs = []
            for label, s_other, s_base in pairs:
                j = other[other["_seed"] == s_other].set_index(key)[[m]].join(
                    base[base["_seed"] == s_base].set_index(key)[[m]], how="inner", rsuffix="_base")
                j = j.assign(d=j[m] - j[f"{m}_base"], seed=label).reset_index()
                diffs.append(j[np.isfinite(j["d"])])
            d_all = pd.concat(diffs)
            for direction, g in d_all.groupby("direction", sort=False):
                mat = g.groupby(["subject", "seed"])["d"].mean().unstack("seed").dropna()  # subjects seen with every seed
                if mat.empty:
                    continue
                ci = paired_interval(mat.to_numpy(), level)
                sign = 1.0 if HIGHER_IS_BETTER[m] else -1.0
                n_subj, n_seeds = mat.shape
                rows.append({
                    "group": grp, "direction": direction, "metric": m, "n_slices": int(len(g)),
                    "n_subjects": int(n_subj), "n_seeds": int(n_seeds), "mean_diff": ci["mean"],
                    "ci_low": ci["ci_low"], "ci_high": ci["ci_high"], "df": ci["df"],
                    "improved_frac": float(np.mean(sign * g["d"].to_numpy() > 0)), "better": bool(sign * ci["mean"] > 0),
                    "verdict": verdict(int(n_subj), int(n_seeds), ci["ci_low"], ci["ci_high"], HIGHER_IS_BETTER[m]),
                })
    out = pd.DataFrame(rows)
    if len(out):  # one block per group and direction, metrics in the given order
        rank = {c: {v: i for i, v in enumerate(dict.fromkeys(out[c]))} for c in ("group", "direction")}
        rank["metric"] = {m: i for i, m in enumerate(metrics)}
        out = out.sort_values(["group", "direction", "metric"], key=lambda c: c.map(rank[c.name]), kind="stable")
        out = out.reset_index(drop=True)
    out.attrs["unpaired"] = skipped
    return out


INTERVAL_SENTENCE = (
    "Each interval is a 95 % interval for the mean per-slice difference (method − {baseline}), computed from per-test-"
    "subject means: with several training seeds per method it covers the method's expected difference over seeds "
    "and subjects (two-way random effects, Satterthwaite df); with one seed it covers only these trained runs on "
    "subjects like the test subjects, so it says nothing about another training run."
)


def comparison_markdown(cmp: pd.DataFrame, baseline: str) -> str:
    """A Markdown table of :func:`compare_runs` output, with the sentence saying what the interval means."""
    head = ("| method | direction | metric | subjects × seeds | mean difference vs " + baseline + " [95 % interval] | "
            "slices improved | verdict |")
    lines = [head, "|---|---|---|---|---|---|---|"]
    for _, r in cmp.iterrows():
        digits = 3 if r["metric"] == "SSIM" else 2
        ci = ("–" if not np.isfinite(r["ci_low"]) else f"[{r['ci_low']:+.{digits}f}, {r['ci_high']:+.{digits}f}]")
        lines.append(
            f"| {r['group']} | {r['direction']} | {r['metric']} | {r['n_subjects']} × {r['n_seeds']} | "
            f"{r['mean_diff']:+.{digits}f} {ci} | {100 * r['improved_frac']:.0f} % | {r['verdict']} |"
        )
    lines += ["", f"Differences are method − {baseline} on the same slices (lower MAE/MSE and higher PSNR/SSIM are "
              f"better). " + INTERVAL_SENTENCE.format(baseline=baseline) +
              f" A verdict needs ≥ {MIN_SUBJECTS} test subjects and ≥ {MIN_SEEDS} seeds per method."]
    return "\n".join(lines)
