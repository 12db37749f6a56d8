"""``mri-harmonic train``: parse arguments, resolve the config, call :func:`mri_harmonic.training.trainer.train`.

Also runs under torchrun: ``torchrun --nproc_per_node N -m mri_harmonic.cli train STORE --out runs/NAME ...``.

Exit status: 0 when the run is finished (``max_steps`` or the end of the schedule reached), :data:`EXIT_TIME_BUDGET`
(3) when the time budget stopped it, 128 + the signal's number when a signal did (130 Ctrl-C, 143 SIGTERM), 2 for
bad input. Every process of a torchrun job exits with the same status.
"""

from __future__ import annotations

from pathlib import Path

import typer

#: Exit status of a run stopped by its time budget (``time_budget_minutes``): not finished, resumable.
EXIT_TIME_BUDGET = 3


def train_command(
    store: Path = typer.Argument(..., metavar="STORE", help="Slice store built by `mri-harmonic preprocess`."),
    direction: str = typer.Option("flair2t1", "--direction", "-d",
                                  help="flair2t1 (domain A = flair) or t12flair (A = t1); both generators train."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (e.g. runs/NAME); created if missing."),
    config: Path | None = typer.Option(None, "--config", "-c",
                                          help="YAML config (configs/*.yaml); defaults in TrainConfig otherwise."),
    set_: list[str] | None = typer.Option(None, "--set", help="Override a key: --set model.ngf=32 (repeatable)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from checkpoints/latest.pt."),
    allow_world_size_change: bool = typer.Option(
        False, "--allow-world-size-change",
        help="With --resume: accept another number of processes than the checkpoint's (changes the global batch, "
             "the epoch length and the image pools; the run says what changes)."),
    checkpoint: str = typer.Option("latest", "--checkpoint",
                                   help="With --resume: continue from this checkpoint instead (step_N or a .pt path)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the tqdm progress bar."),
) -> None:
    """Train HarmonicGAN (or another registered method via loss.method: cyclegan, distancegan, discogan, unit) on a slice store.

    SIGINT/SIGTERM finish the current step, write a checkpoint and stop; a second Ctrl-C stops at once.

    Exit status: 0 finished (max_steps or the end of the schedule reached); 3 stopped by the time budget
    (time_budget_minutes; continue with --resume and a larger budget); 128 + signal when stopped by a signal
    (130 Ctrl-C, 143 SIGTERM; continue with --resume); 2 bad input.
    """
    from mri_harmonic.errors import UserInputError
    from mri_harmonic.training.distributed import env_dist_info
    from mri_harmonic.training.trainer import domains_for, resolve_config, train

    domains_for(direction)
    if checkpoint != "latest" and not resume:
        raise UserInputError(f"--checkpoint {checkpoint} chooses where a run resumes; add --resume")
    cfg = resolve_config(out, config, set_, resume, checkpoint)
    try:
        summary = train(store, out, direction, cfg, resume=resume, progress=progress, checkpoint=checkpoint,
                        allow_world_size_change=allow_world_size_change)
    except KeyboardInterrupt:
        typer.echo(f"interrupted by a second Ctrl-C; {_saved(out)}", err=True)
        raise typer.Exit(130) from None
    if env_dist_info().is_main:
        from mri_harmonic.cli import cli_message

        typer.echo(cli_message(summary["message"]))
        typer.echo(f"run folder: {out}  ({summary['pairs_per_s']} pairs/s this session)")
    raise typer.Exit(exit_status(summary))


def exit_status(summary: dict) -> int:
    """0 finished, :data:`EXIT_TIME_BUDGET` for the time budget, 128 + signal number for a signal."""
    import signal

    if summary["finished"]:
        return 0
    if summary["stopped"] == "signal":
        return 128 + int(signal.Signals[summary["signal"]])
    return EXIT_TIME_BUDGET


def _saved(out: Path) -> str:
    """What the run folder holds after an interruption, without claiming a checkpoint that does not exist."""
    from mri_harmonic.checkpoint import latest_path, read_checkpoint

    latest = latest_path(out)
    if not latest.is_file():
        return f"no checkpoint was written to {out}; run the same command (without --resume) to start again"
    step = read_checkpoint(latest)["step"]
    return f"{latest} holds the last checkpoint (step {step}); continue with the same command plus --resume"


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
