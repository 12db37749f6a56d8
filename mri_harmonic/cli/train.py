"""``mri-harmonic train``: parse arguments, resolve the config, call :func:`mri_harmonic.training.trainer.train`.

Also runs under torchrun: ``torchrun --nproc_per_node N -m mri_harmonic.cli train STORE --out runs/NAME ...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def train_command(
    store: Path = typer.Argument(..., metavar="STORE", help="Slice store built by `mri-harmonic preprocess`."),
    direction: str = typer.Option("flair2t1", "--direction", "-d",
                                  help="flair2t1 (domain A = flair) or t12flair (A = t1); both generators train."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (e.g. runs/NAME); created if missing."),
    config: Optional[Path] = typer.Option(None, "--config", "-c",
                                          help="YAML config (configs/*.yaml); defaults in TrainConfig otherwise."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override a key: --set model.ngf=32 (repeatable)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from checkpoints/latest.pt."),
    checkpoint: str = typer.Option("latest", "--checkpoint",
                                   help="With --resume: continue from this checkpoint instead (step_N or a .pt path)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the tqdm progress bar."),
) -> None:
    """Train HarmonicGAN (or CycleGAN / DistanceGAN via loss.method) on a slice store."""
    from mri_harmonic.training.distributed import env_dist_info
    from mri_harmonic.training.trainer import domains_for, resolve_config, train

    from mri_harmonic.errors import UserInputError

    domains_for(direction)
    if checkpoint != "latest" and not resume:
        raise UserInputError(f"--checkpoint {checkpoint} chooses where a run resumes; add --resume")
    cfg = resolve_config(out, config, set_, resume, checkpoint)
    try:
        summary = train(store, out, direction, cfg, resume=resume, progress=progress, checkpoint=checkpoint)
    except KeyboardInterrupt:
        typer.echo(f"interrupted by a second Ctrl-C; {out}/checkpoints/latest.pt holds the last checkpoint "
                   "(continue with --resume)", err=True)
        raise typer.Exit(130) from None
    if env_dist_info().is_main:
        typer.echo(summary.get("message", f"{summary['stopped']} at step {summary['step']}"))
        typer.echo(f"run folder: {out}  ({summary['pairs_per_s']} pairs/s this session)")


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
