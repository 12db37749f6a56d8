"""``mri-harmonic preprocess``: BraTS / MSD NIfTI folder -> slice store (see :mod:`mri_harmonic.data.preprocess`)."""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path

import typer


@contextlib.contextmanager
def stop_signals_raise():
    """SIGTERM raises :class:`~mri_harmonic.errors.Interrupted` (as Ctrl-C raises KeyboardInterrupt) while inside."""
    from mri_harmonic.errors import Interrupted

    def handler(signum, frame):
        raise Interrupted(signum)

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def interrupted_summary(store: Path) -> str:
    """What an interrupted ``preprocess`` left to resume, and how."""
    from mri_harmonic.data.preprocess import partial_dir_for

    partial = partial_dir_for(store)
    done = len(list((partial / "subjects").glob("*.json"))) if partial.is_dir() else 0
    if not done:
        return "no subject had finished, nothing was kept"
    return f"{done} finished subject(s) are kept in {partial}; run the same command again to continue from there"


def register(app: typer.Typer) -> None:
    @app.command("preprocess")
    def preprocess_cmd(
        data_dir: Path = typer.Argument(..., metavar="DATA_DIR", help="Folder of BraTS 2018-2021, BraTS 2023+ or MSD Task01 cases."),
        store: Path = typer.Argument(..., metavar="STORE", help="Slice store folder to write (an interrupted run resumes from STORE.partial)."),
        config: Path | None = typer.Option(None, "--config", "-c", help="YAML with PreprocessConfig keys, e.g. configs/preprocess-phantom.yaml."),
        set_: list[str] | None = typer.Option(None, "--set", help="Override a config key: --set spacing=[2,2,2] (repeatable)."),
        workers: int | None = typer.Option(None, "--workers", "-j", min=1, help="Parallel processes (default: CPU count, at most 8)."),
        strict: bool = typer.Option(False, "--strict", help="Stop at the first bad subject instead of skipping it."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace a store (or resume folder) built with another config."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    ) -> None:
        """Reorient, normalise and slice every subject into a slice store (train/val/test split by subject)."""
        from mri_harmonic.config import load_config
        from mri_harmonic.data.config import PreprocessConfig
        from mri_harmonic.data.preprocess import format_summary, preprocess

        cfg = load_config(PreprocessConfig, config, set_ or None)
        with stop_signals_raise():
            try:
                summary = preprocess(data_dir, store, cfg, workers=workers, strict=strict, progress=progress, overwrite=overwrite)
            except KeyboardInterrupt as exc:
                signum = getattr(exc, "signum", signal.SIGINT)
                typer.echo(f"preprocess stopped by {signal.Signals(signum).name}; {interrupted_summary(store)}", err=True)
                raise typer.Exit(128 + signum) from None
        typer.echo(format_summary(summary))
