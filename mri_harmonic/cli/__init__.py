"""The ``mri-harmonic`` command line: a thin Typer layer that parses arguments and calls library functions.

Each stage registers its commands from its own module (``phantom``, ``data``, ``train``, ``evaluate``); heavy
imports (torch, MONAI) happen inside the commands so that ``--help`` is instant. A
:class:`~mri_harmonic.errors.UserInputError` is printed as one line, ``error: ...``, with exit status 2. Library
messages name Python parameters in backticks (```out_dir```, ```resume=True```); :func:`cli_message` turns those
of :data:`FLAGS` into the flags a CLI user types, so flag names live here only.
"""

from __future__ import annotations

import importlib
import re
import sys

import typer

from mri_harmonic.errors import UserInputError

#: library parameter -> the CLI flag that sets it (the same name in every command that has it)
FLAGS = {
    "allow_world_size_change": "--allow-world-size-change",
    "batch_size": "--batch-size",
    "checkpoint": "--checkpoint",
    "config": "--config",
    "device": "--device",
    "direction": "--direction",
    "directions": "--direction",
    "layout": "--layout",
    "out_dir": "--out",
    "overrides": "--set",
    "overwrite": "--overwrite",
    "reader_study": "--reader-study",
    "resume": "--resume",
    "scale": "--scale",
    "seed": "--seed",
    "shape": "--shape",
    "slices": "--slices",
    "store_config": "--store-config",
    "strict": "--strict",
    "subjects": "--subjects",
    "workers": "--workers",
}
_PARAMETER = re.compile(r"(?<!`)`([a-z_][a-z0-9_]*)(=True)?`(?!`)")


def cli_message(message: str) -> str:
    """A library message as a CLI user reads it: each backticked parameter of :data:`FLAGS` (```out_dir```, or
    ```resume=True``` for a switch) becomes its flag (``--out``, ``--resume``); other text is left as it is."""
    return _PARAMETER.sub(lambda m: FLAGS.get(m.group(1), m.group(0)), message)


app = typer.Typer(
    name="mri-harmonic",
    help="HarmonicGAN FLAIR <-> T1 translation for brain MRI: phantom, preprocess, train, evaluate, translate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: flags without a '<bool>' type column
    context_settings={"help_option_names": ["-h", "--help"]},
)

_COMMAND_MODULES = ("phantom", "data", "train", "evaluate", "reader_study")
for _name in _COMMAND_MODULES:
    importlib.import_module(f"mri_harmonic.cli.{_name}").register(app)


@app.command("version")
def version() -> None:
    """Print the package version."""
    from mri_harmonic import __version__

    typer.echo(__version__)


def _print_version(value: bool) -> None:
    if value:
        from mri_harmonic import __version__

        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", "-V", is_eager=True, callback=_print_version,
                                 help="Print the package version and exit."),
) -> None:
    """HarmonicGAN FLAIR <-> T1 translation for brain MRI."""


def main(argv: list[str] | None = None) -> int:
    """Console entry point (also ``python -m mri_harmonic.cli``, which ``torchrun -m`` uses).

    Usage errors are handled by Typer (exit 2); :class:`UserInputError` becomes one ``error:`` line (exit 2).
    """
    try:
        app(args=argv, prog_name="mri-harmonic")
    except UserInputError as exc:
        typer.echo(f"error: {cli_message(str(exc))}", err=True)
        return 2
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


def run() -> None:
    sys.exit(main())
