"""``mri-harmonic phantom``: write the built-in MR-physics phantom data set (see :mod:`mri_harmonic.data.phantom`)."""

from __future__ import annotations

from pathlib import Path

import typer

from mri_harmonic.errors import UserInputError


def parse_shape(text: str) -> tuple[int, int, int]:
    """``"240,240,155"`` -> ``(240, 240, 155)``; a one-line error naming ``--shape`` otherwise."""
    parts = [p.strip() for p in str(text).replace("x", ",").split(",")]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 8:
        raise UserInputError(
            f"--shape {text!r} is invalid; give three integers >= 8 separated by commas, e.g. 240,240,155"
        )
    return shape  # type: ignore[return-value]


def register(app: typer.Typer) -> None:
    @app.command("phantom")
    def phantom(
        out: Path = typer.Argument(..., metavar="OUT", help="Output folder (created; a partly written one is resumed)."),
        subjects: int = typer.Option(4, "--subjects", "-n", help="Number of subjects (>= 1)."),
        seed: int = typer.Option(0, "--seed", help="Random seed; subject i draws from the seed sequence (seed, i)."),
        shape: str = typer.Option("240,240,155", "--shape", help="Grid X,Y,Z; smaller grids use larger voxels."),
        layout: str = typer.Option("brats2021", "--layout", help="brats2021, brats2023 or msd."),
        workers: int = typer.Option(None, "--workers", help="Parallel processes (default min(4, CPU count))."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    ) -> None:
        """Simulate BraTS-like FLAIR/T1/T1ce/T2 + labels by MR physics on the MNI152 anatomy."""
        from mri_harmonic.data.phantom import generate_phantom

        paths = generate_phantom(out, subjects=subjects, seed=seed, shape=parse_shape(shape), layout=layout,
                                 workers=workers, progress=progress)
        typer.echo(f"wrote {len(paths)} subjects ({layout}) to {out}")
