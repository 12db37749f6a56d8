"""What a run reports while it trains: ``metrics.csv``, ``train.log``, TensorBoard events, sample grids.

Only rank 0 writes (the trainer's ``Reporter`` uses these helpers). ``metrics.csv`` grows by whole lines (one ``write`` + flush per row, so a
reader never sees half a row); on resume it is first rewritten atomically without the rows logged after the
checkpoint, which the resumed run logs again.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from mri_harmonic.utils.io import atomic_path, atomic_write_text

LOGGER_NAME = "mri_harmonic.training"
BASE_COLUMNS = ["step", "epoch", "elapsed_s", "pairs_per_s", "lr"]


def setup_file_logger(log_file: str | os.PathLike) -> logging.Logger:
    """The ``mri_harmonic.training`` logger, writing to ``log_file`` (appending) and to nothing else."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.INFO)
    for h in list(logger.handlers):
        if getattr(h, "_mri_harmonic", False):
            logger.removeHandler(h)
            h.close()
    handler = logging.FileHandler(log_file, mode="a")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    handler._mri_harmonic = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.propagate = False
    return logger


def close_file_logger() -> None:
    logger = logging.getLogger(LOGGER_NAME)
    for h in list(logger.handlers):
        if getattr(h, "_mri_harmonic", False):
            logger.removeHandler(h)
            h.close()


class MetricsCSV:
    """``metrics.csv`` with fixed columns: step, epoch, elapsed_s, pairs_per_s, lr, then the loss terms.

    A new run (``resume_step=None``) starts the file afresh; a resumed one keeps the rows up to ``resume_step``.
    """

    def __init__(self, path: str | os.PathLike, loss_names: Sequence[str], resume_step: int | None = None):
        self.path = Path(path)
        self.columns = [*BASE_COLUMNS, *loss_names]
        if resume_step is not None and self.path.is_file():
            self._truncate_after(resume_step)
        if resume_step is None or not self.path.is_file() or self.path.stat().st_size == 0:
            atomic_write_text(self.path, ",".join(self.columns) + "\n")

    def _truncate_after(self, step: int) -> None:
        with open(self.path, newline="") as fh:
            rows = list(csv.reader(fh))
        if not rows or rows[0] != self.columns:
            atomic_write_text(self.path, ",".join(self.columns) + "\n")
            return
        kept = [rows[0]] + [r for r in rows[1:] if r and int(float(r[0])) <= step]
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(kept)
        atomic_write_text(self.path, buf.getvalue())

    def append(self, row: Mapping[str, Any]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow([_fmt(row.get(c, "")) for c in self.columns])
        with open(self.path, "a") as fh:
            fh.write(buf.getvalue())
            fh.flush()


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


class TensorBoardWriter:
    """Scalars to ``OUT/tensorboard`` when ``torch.utils.tensorboard`` imports (tensorboard installed); else no-op."""

    def __init__(self, log_dir: str | os.PathLike, enabled: bool = True):
        self.writer = None
        self.reason = "disabled (tensorboard: false)"
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.reason = "not written: the tensorboard package is not installed (pip install tensorboard)"
            return
        self.writer = SummaryWriter(log_dir=str(log_dir))
        self.reason = f"written to {log_dir}"

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def save_sample_grid(
    path: str | os.PathLike,
    rows: Sequence[Sequence[np.ndarray]],
    column_titles: Sequence[str],
    row_labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Write a grid of ``(H, W)`` images in [0, 1] (grey, fixed 0-1 window) as a PNG, atomically.

    ``rows[r][c]`` is the image at row ``r``, column ``c``; ``column_titles`` label the columns.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), len(column_titles)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.6 * n_cols, 1.6 * n_rows + (0.4 if title else 0)),
                             squeeze=False)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            ax = axes[r][c]
            ax.imshow(np.asarray(img, dtype=np.float32), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(column_titles[c], fontsize=7)
            if c == 0 and row_labels is not None:
                ax.set_ylabel(row_labels[r], fontsize=6)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return Path(path)
