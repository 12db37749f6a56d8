"""Summary tables: the long per-group summary and the paper's Table 1 layout, with the paper's figures beside ours.

Table 1 of HarmonicGAN (Zhang, Pfister, Li, ICLR 2019) lists, per method, MAE, MSE, PSNR and SSIM of BRATS
Flair -> T1 and T1 -> Flair translations on the 0-255 intensity scale over whole images. Our layout is the same:
rows = runs, columns = the four metrics for each direction (mean over slices; whole-slice region, 0-255 scale).
The paper's own numbers ship as ``paper_results.csv`` (copied from ``../shared/paper_results.csv``, table 1 rows)
and are always printed in a *separate* block labelled :data:`PAPER_LABEL`: they come from the paper's data and
preprocessing, not ours, so the two blocks are context for each other, not a like-for-like comparison.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Sequence

import pandas as pd

from mri_harmonic.directions import DIRECTIONS as _DIRECTION_TABLE
from mri_harmonic.evaluation.metrics import METRICS
from mri_harmonic.utils.io import atomic_write_csv, atomic_write_text

DIRECTIONS = tuple(_DIRECTION_TABLE)  # Table 1 column order: Flair -> T1, then T1 -> Flair
DIRECTION_TITLES = {"flair2t1": "Flair -> T1", "t12flair": "T1 -> Flair"}
PAPER_LABEL = "paper (ICLR 2019), BRATS 2015, not our data"
OURS_LABEL = "ours"
#: Table 1 is reported on the whole slice at the paper's 0-255 scale.
TABLE1_REGION, TABLE1_SCALE = "slice", "0-255"
#: Decimal places per metric in Markdown (the paper prints 2).
DECIMALS = {"MAE": 2, "MSE": 2, "PSNR": 2, "SSIM": 3}


def paper_results() -> pd.DataFrame:
    """The paper's Table 1 figures: columns table, dataset, direction, method, metric, value."""
    text = resources.files("mri_harmonic.evaluation").joinpath("paper_results.csv").read_text()
    from io import StringIO

    return pd.read_csv(StringIO(text))


def table1_columns(directions: Sequence[str] = DIRECTIONS) -> list[str]:
    return [f"{d} {m}" for d in directions for m in METRICS]


def paper_table1(directions: Sequence[str] = DIRECTIONS) -> pd.DataFrame:
    """The paper's Table 1 in our layout: one row per method, columns ``"<direction> <metric>"``."""
    df = paper_results()
    df = df[(df["table"] == 1) & df["direction"].isin(directions)]
    wide = df.pivot_table(index="method", columns=["direction", "metric"], values="value", sort=False)
    out = pd.DataFrame({f"{d} {m}": wide[(d, m)] for d in directions for m in METRICS if (d, m) in wide.columns})
    out = out.reset_index().rename(columns={"method": "run"})
    out.insert(1, "method", out["run"])
    return out


def table1(summary: pd.DataFrame, directions: Sequence[str] = DIRECTIONS) -> pd.DataFrame:
    """Our Table 1 from :func:`mri_harmonic.evaluation.metrics.summarise` output.

    Columns: run, method, then ``"<direction> <metric>"`` (mean) and ``"<direction> <metric> std"`` for every
    evaluated direction, and ``"<direction> n"`` (slices).
    """
    sel = summary[(summary["region"] == TABLE1_REGION) & (summary["scale"] == TABLE1_SCALE)]
    directions = [d for d in directions if d in set(sel["direction"])]
    rows = []
    for run, g in sel.groupby("run", sort=False):
        row = {"run": run, "method": g["method"].iloc[0]}
        for d in directions:
            gd = g[g["direction"] == d].set_index("metric")
            for m in METRICS:
                row[f"{d} {m}"] = gd.loc[m, "mean"] if m in gd.index else math.nan
                row[f"{d} {m} std"] = gd.loc[m, "std"] if m in gd.index else math.nan
            row[f"{d} n"] = int(gd["n"].max()) if len(gd) else 0
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(v, decimals: int) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{decimals}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table (no dependency on ``tabulate``)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def table1_markdown(ours: pd.DataFrame, paper: pd.DataFrame | None = None) -> str:
    """Two blocks: ours (mean ± std over slices) and, separately labelled, the paper's figures."""
    directions = [d for d in DIRECTIONS if f"{d} MAE" in ours.columns]
    header = ["run", "method", *[f"{DIRECTION_TITLES[d]} {m}" for d in directions for m in METRICS]]
    rows = []
    for _, r in ours.iterrows():
        cells = [r["run"], r["method"]]
        for d in directions:
            for m in METRICS:
                mean, std = r.get(f"{d} {m}"), r.get(f"{d} {m} std")
                cells.append(_fmt(mean, DECIMALS[m]) + ("" if std is None or pd.isna(std) else f" ± {_fmt(std, DECIMALS[m])}"))
        rows.append(cells)
    n_note = ", ".join(f"{DIRECTION_TITLES[d]}: n = {int(ours[f'{d} n'].max())} slices" for d in directions if len(ours))
    text = [
        f"### {OURS_LABEL}: whole slice, 0-255 scale, mean ± std over slices ({n_note})",
        "",
        markdown_table(header, rows),
        "",
        "PSNR means leave out slices with PSNR = inf (identical images); see summary.csv column n_inf.",
    ]
    if paper is not None and len(paper):
        p_dirs = [d for d in directions if f"{d} MAE" in paper.columns]
        p_header = ["method", *[f"{DIRECTION_TITLES[d]} {m}" for d in p_dirs for m in METRICS]]
        p_rows = [[r["method"], *[_fmt(r[f"{d} {m}"], 2) for d in p_dirs for m in METRICS]] for _, r in paper.iterrows()]
        text += [
            "",
            f"### {PAPER_LABEL}",
            "",
            "Figures as printed in the paper's Table 1 (BRATS, their preprocessing and split). "
            "Context only: not computed on our data, not a like-for-like comparison.",
            "",
            markdown_table(p_header, p_rows),
        ]
    return "\n".join(text) + "\n"


def write_table1(summary: pd.DataFrame, out_dir: str | Path, directions: Sequence[str] = DIRECTIONS) -> dict[str, Path]:
    """``table1.csv`` (column ``source``: ours / the paper label) and ``table1.md``; returns the paths."""
    out_dir = Path(out_dir)
    ours = table1(summary, directions)
    used = [d for d in directions if f"{d} MAE" in ours.columns]
    paper = paper_table1(used) if used else pd.DataFrame()
    combined = pd.concat([ours.assign(source=OURS_LABEL), paper.assign(source=PAPER_LABEL)], ignore_index=True)
    combined = combined[["source", *[c for c in combined.columns if c != "source"]]]
    paths = {
        "table1_csv": atomic_write_csv(out_dir / "table1.csv", combined),
        "table1_md": atomic_write_text(out_dir / "table1.md", "# Table 1 layout (HarmonicGAN, ICLR 2019)\n\n" + table1_markdown(ours, paper)),
    }
    return paths


def tumour_markdown(tumour_summary: pd.DataFrame) -> str:
    """The tumour-fidelity summary (:func:`~mri_harmonic.evaluation.tumour.summarise_tumour`) as a Markdown table."""
    if tumour_summary is None or not len(tumour_summary):
        return "(no slices)\n"
    header = ["run", "method", "direction", "scored slices", "lesions (conspicuous)", "erased", "wrong direction",
              "median contrast kept", "slices with an invented lesion", "(tumour-free slices)", "slices flagged",
              "tumour MAE (0-255)"]
    pct = lambda v: "–" if pd.isna(v) else f"{100 * v:.1f} %"  # noqa: E731
    rows = [
        [r["run"], r["method"], r["direction"], r["n_scored_slices"], f"{r['n_lesions']} ({r['n_conspicuous']})",
         pct(r["erased_frac"]), pct(r["wrong_direction_frac"]), _fmt(r["median_contrast_kept"], 2),
         pct(r["invented_slice_frac"]), f"{pct(r['invented_slice_frac_tumour_free'])} of {r['n_tumour_free_slices']}",
         pct(r["flagged_slice_frac"]), _fmt(r["tumour_mae_255_mean"], 2)]
        for _, r in tumour_summary.iterrows()
    ]
    return markdown_table(header, rows) + "\n"
