"""Evaluation figures (PNG, matplotlib Agg): sample grids, metric distributions, training loss curves.

- :func:`sample_grid`: rows = slices; columns = input | each run's output | real target | ``|error|`` per run.
  Images share the grey scale [0, 1]; all error maps share one colour scale (``error_vmax``) so runs compare
  at a glance; the tumour labels (``seg > 0``) are drawn as a contour on every panel.
- :func:`metric_distributions`: box plots of each metric (columns) per direction (rows), one box per run.
- :func:`loss_curves`: every loss column of each run's ``metrics.csv`` against the training step.
- :func:`checkpoint_curve_figure`: held-out metrics of kept checkpoints against the step, the untranslated input dashed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from mri_harmonic.evaluation.metrics import METRICS
from mri_harmonic.utils.io import atomic_path

#: ``metrics.csv`` columns that are bookkeeping, not losses.
NON_LOSS_COLUMNS = {"step", "epoch", "elapsed_s", "pairs_per_s", "lr", "lr_g", "lr_d", "batch", "time"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    plt = _pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


@dataclass
class SampleRow:
    """One slice of a sample grid (all images ``(H, W)`` on [0, 1])."""

    label: str
    input_image: np.ndarray
    target: np.ndarray
    outputs: dict[str, np.ndarray]
    seg: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


def sample_grid(
    rows: Sequence[SampleRow],
    path: str | Path,
    *,
    title: str = "",
    input_name: str = "input",
    target_name: str = "real target",
    error_vmax: float | None = None,
) -> Path:
    """Write a grid: input | outputs (one per run) | real target | |error| per run, tumour contour overlaid."""
    plt = _pyplot()
    if not rows:
        raise ValueError("sample_grid needs at least one row")
    runs = list(rows[0].outputs)
    errors = [{r: np.abs(row.outputs[r].astype(np.float32) - row.target) for r in runs} for row in rows]
    vmax = error_vmax if error_vmax is not None else max(0.05, float(max(np.percentile(e, 99.5) for er in errors for e in er.values())))
    ncols = 2 + 2 * len(runs)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(1.7 * ncols + 0.8, 1.7 * len(rows) + 0.5), squeeze=False,
                             layout="constrained")
    titles = [input_name, *runs, target_name, *[f"|error| {r}" for r in runs]]
    err_im = None
    for i, row in enumerate(rows):
        panels = [row.input_image, *[row.outputs[r] for r in runs], row.target]
        for j, img in enumerate(panels):
            axes[i, j].imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        for k, r in enumerate(runs):
            err_im = axes[i, len(panels) + k].imshow(errors[i][r], cmap="magma", vmin=0, vmax=vmax, interpolation="nearest")
        for j, ax in enumerate(axes[i]):
            if row.seg is not None and np.any(row.seg > 0):
                ax.contour(row.seg > 0, levels=[0.5], colors="cyan", linewidths=0.6)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(titles[j], fontsize=7)
        axes[i, 0].set_ylabel(row.label, fontsize=6)
    if err_im is not None:
        cbar = fig.colorbar(err_im, ax=axes[:, -1].tolist(), shrink=0.8, aspect=30)
        cbar.set_label("|error| ([0,1] units; x255 for grey levels)", fontsize=7)
        cbar.ax.tick_params(labelsize=6)
    if title:
        fig.suptitle(title + "   (cyan: tumour labels)", fontsize=9)
    return _save(fig, path)


def metric_distributions(per_slice: pd.DataFrame, path: str | Path, *, region: str = "slice", scale: str = "0-255") -> Path:
    """Box plots: rows = directions, columns = MAE/MSE/PSNR/SSIM, one box per run (non-finite values left out)."""
    plt = _pyplot()
    df = per_slice[(per_slice["region"] == region) & (per_slice["scale"] == scale)]
    directions = list(dict.fromkeys(df["direction"]))
    runs = list(dict.fromkeys(df["run"]))
    fig, axes = plt.subplots(max(1, len(directions)), len(METRICS), figsize=(3.2 * len(METRICS), 2.8 * max(1, len(directions))), squeeze=False)
    for i, d in enumerate(directions):
        for j, m in enumerate(METRICS):
            ax = axes[i, j]
            data = []
            for r in runs:
                v = df[(df["direction"] == d) & (df["run"] == r)][m].to_numpy(dtype=float)
                data.append(v[np.isfinite(v)])
            ax.boxplot(data, showfliers=True, flierprops={"markersize": 2})
            ax.set_xticks(range(1, len(runs) + 1), runs, rotation=30, ha="right", fontsize=7)
            ax.set_title(f"{d} {m}", fontsize=8)
            ax.tick_params(axis="y", labelsize=7)
    fig.suptitle(f"per-slice metrics ({region}, {scale} scale)", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def loss_curves(metrics_csvs: Mapping[str, str | Path], path: str | Path, *, smooth: int = 1) -> Path | None:
    """One panel per loss term, one line per run; ``smooth`` > 1 applies a running mean. None if no data."""
    plt = _pyplot()
    frames = {}
    for label, csv in metrics_csvs.items():
        csv = Path(csv)
        if csv.is_file():
            try:
                df = pd.read_csv(csv)
            except (pd.errors.EmptyDataError, pd.errors.ParserError):
                continue
            if "step" in df.columns and len(df):
                frames[label] = df
    if not frames:
        return None
    terms = []
    for df in frames.values():
        for c in df.columns:
            if c not in NON_LOSS_COLUMNS and c not in terms and pd.api.types.is_numeric_dtype(df[c]):
                terms.append(c)
    ncols = min(4, max(1, len(terms)))
    nrows = int(np.ceil(len(terms) / ncols)) or 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 2.5 * nrows), squeeze=False)
    for k, term in enumerate(terms):
        ax = axes[k // ncols, k % ncols]
        for label, df in frames.items():
            if term in df.columns:
                y = df[term].astype(float)
                if smooth > 1:
                    y = y.rolling(smooth, min_periods=1).mean()
                ax.plot(df["step"], y, label=label, linewidth=0.9)
        ax.set_title(term, fontsize=8)
        ax.set_xlabel("step", fontsize=7)
        ax.tick_params(labelsize=6)
    for k in range(len(terms), nrows * ncols):
        axes[k // ncols, k % ncols].axis("off")
    axes[0, 0].legend(fontsize=6)
    fig.suptitle("training losses (metrics.csv)", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def checkpoint_curve_figure(curves: pd.DataFrame, path: str | Path, *, groups: Mapping[str, str] | None = None,
                            region: str = "slice", metrics: Sequence[str] = ("MAE", "SSIM"),
                            floor_run: str = "input-as-output") -> Path:
    """:func:`mri_harmonic.evaluation.curves.checkpoint_curves` as a grid: rows = ``metrics``, columns = directions;
    one thin line per run, one thick line per group (``{run: group}``, e.g. a method: the mean over its seeds), the
    untranslated input (``floor_run``) dashed."""
    plt = _pyplot()
    c = curves[curves["region"] == region]
    dirs = list(dict.fromkeys(c["direction"]))
    groups = dict(groups or {r: r for r in c["run"] if r != floor_run})
    names = list(dict.fromkeys(groups.values()))
    colours = {g: plt.get_cmap("tab10")(i % 10) for i, g in enumerate(names)}
    fig, axes = plt.subplots(len(metrics), len(dirs), figsize=(5.2 * len(dirs), 3.2 * len(metrics)), squeeze=False)
    for j, d in enumerate(dirs):
        cd = c[c["direction"] == d]
        floor = cd[cd["run"] == floor_run]
        for i, m in enumerate(metrics):
            ax = axes[i, j]
            for run, g in groups.items():
                r = cd[cd["run"] == run].sort_values("step")
                ax.plot(r["step"], r[m], color=colours[g], lw=0.7, alpha=0.45)
            for g in names:
                members = cd[cd["run"].isin([r for r, gg in groups.items() if gg == g])]
                mean = members.groupby("step")[m].mean()
                ax.plot(mean.index, mean.to_numpy(), color=colours[g], lw=2.0, marker="o", ms=3, label=g)
            if len(floor):
                ax.axhline(float(floor[m].iloc[0]), color="k", ls="--", lw=1.0, label="untranslated input")
            ax.set_title(f"{d}, {region}: {m}", fontsize=9)
            ax.set_xlabel("training step")
            ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return _save(fig, path)
