"""``mri-harmonic reader-study``: score the answers of a blinded reader study.

Sheets are written by ``mri-harmonic evaluate --reader-study N``; this sub-app unblinds and scores the answer CSVs
readers send back (:func:`mri_harmonic.evaluation.reader_study.score_reader_study`).
"""

from __future__ import annotations

from pathlib import Path

import typer

reader_study_app = typer.Typer(
    name="reader-study",
    help="Blinded reader studies (the paper's Table 3, or real-or-synthetic for one run): score the answers readers saved from sheet.html.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@reader_study_app.command("score")
def score(
    answers: list[Path] = typer.Argument(
        ..., metavar="ANSWERS",
        help="Answer CSVs saved from sheet.html (reader_answers_NAME.csv) or a filled answers_template.csv."
    ),
    key: Path = typer.Option(..., "--key", help="The study's key.csv (written next to sheet.html)."),
    out: Path = typer.Option(..., "--out", help="Folder for reader_study_scores.csv and reader_study_scores.md."),
) -> None:
    """Unblind answers with the key; write Prefer %, mean and std Likert per method and run (a realism study: the
    share judged real of synthetic and of real images, with 95% intervals); print the table."""
    from mri_harmonic.evaluation.reader_study import format_scores, score_reader_study, write_scores

    df = score_reader_study(answers, key)
    paths = write_scores(df, out)
    typer.echo(format_scores(df))
    typer.echo(f"wrote {paths['csv']} and {paths['markdown']}")


def register(app: typer.Typer) -> None:
    """Add the ``reader-study`` command group to the main app."""
    app.add_typer(reader_study_app, name="reader-study")
