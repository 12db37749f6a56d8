"""``mri-harmonic evaluate`` and ``mri-harmonic translate``: argument parsing only; the work is in
:mod:`mri_harmonic.evaluation.evaluate` and :mod:`mri_harmonic.evaluation.translate`."""

from __future__ import annotations

from pathlib import Path

import typer


def evaluate_command(
    runs: list[Path] = typer.Argument(..., metavar="RUN", help="Run folders of `mri-harmonic train` (each with checkpoints/latest.pt)."),
    store: Path = typer.Option(..., "--store", help="Slice store to evaluate on (`mri-harmonic preprocess` output)."),
    split: str = typer.Option("test", "--split", help="Store split to evaluate."),
    direction: str = typer.Option("both", "--direction", help="both, flair2t1 or t12flair."),
    out: Path = typer.Option(..., "--out", help="Report folder, e.g. reports/NAME."),
    reader_study: int = typer.Option(0, "--reader-study", help="Also write a blinded reader-study sheet of N slices (one run: real or synthetic?)."),
    batch_size: int = typer.Option(16, "--batch-size", help="Slices per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps."),
    keep_background: bool = typer.Option(False, "--keep-background", help="Score raw outputs instead of zeroing them outside the brain."),
    seed: int = typer.Option(0, "--seed", help="Seed of the slices chosen for figures and the reader study."),
    amp: bool = typer.Option(True, "--amp/--no-amp", help="bf16 autocast on CUDA (no effect on CPU)."),
    reference: bool = typer.Option(True, "--reference/--no-reference", help="Also score the untranslated input (row input-as-output): the floor to beat."),
    checkpoint: str = typer.Option("latest", "--checkpoint", help="Checkpoint of every run: latest, step_N (a periodic one) or a .pt path."),
    slices: str = typer.Option("all", "--slices", help="all, healthy (no tumour label) or tumour (slices with a scored lesion's worth of tumour pixels)."),
) -> None:
    """Translate every slice of a split with each run (both directions), score it, write tables/figures/report.md."""
    from mri_harmonic.evaluation.evaluate import evaluate
    from mri_harmonic.evaluation.tables import table1_markdown
    from mri_harmonic.utils.io import removed_on_error

    with removed_on_error(out):  # a failed evaluation leaves no empty --out folder
        result = evaluate(
            [str(r) for r in runs], store, split=split, directions=direction, out_dir=out, reader_study=reader_study,
            batch_size=batch_size, device=device, zero_background=not keep_background, seed=seed, amp=amp,
            reference=reference, checkpoint=checkpoint, slices=slices,
        )
    typer.echo(table1_markdown(result.table1))
    typer.echo(f"report: {result.paths['report']}")


def translate_command(
    run: Path = typer.Argument(..., metavar="RUN", help="Run folder of `mri-harmonic train`."),
    input_path: Path = typer.Argument(..., metavar="INPUT", help="A 3-D NIfTI of the source modality, or a data folder."),
    output_path: Path = typer.Argument(..., metavar="OUTPUT", help="Output .nii.gz (file input) or folder (folder input)."),
    direction: str | None = typer.Option(None, "--direction", help="flair2t1 or t12flair (default: the run's)."),
    store_config: Path | None = typer.Option(None, "--store-config", help="Store (or its config.yaml) whose preprocessing to apply; default: the run's training store."),
    scale: float = typer.Option(1.0, "--scale", help="Output intensity factor: 1 = normalised [0,1] units, 255 = the paper's scale."),
    batch_size: int = typer.Option(16, "--batch-size", help="Slices per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps."),
    amp: bool = typer.Option(True, "--amp/--no-amp", help="bf16 autocast on CUDA (no effect on CPU)."),
    checkpoint: str = typer.Option("latest", "--checkpoint", help="latest, step_N (a periodic checkpoint) or a .pt path."),
) -> None:
    """Translate a whole volume (or every subject of a folder) into the other modality, on the input's grid."""
    from mri_harmonic.evaluation.translate import run_translate_paths, translate

    paths = translate(run, input_path, output_path, direction=direction, store_config=store_config,
                      batch_size=batch_size, device=device, scale=scale, amp=amp, checkpoint=checkpoint)
    typer.echo(run_translate_paths(paths))


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_command)
    app.command("translate")(translate_command)
