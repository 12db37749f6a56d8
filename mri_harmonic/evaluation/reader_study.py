"""Blinded reader studies: write the sheets readers fill in, and score their answers.

This reproduces the user study of HarmonicGAN (Zhang, Pfister & Li, "Harmonic Unpaired Image-to-Image Translation",
ICLR 2019, Sec. 5 and Table 3): for each case a reader sees the input slice and the outputs of several models, picks
the output they prefer and rates every output on a 1-5 Likert scale. The paper reports, for BRATS Flair -> T1,
Prefer % CycleGAN 5 / DistanceGAN 0 / HarmonicGAN 95 and mean (std) Likert 1.68 (0.99) / 1.62 (0.95) /
4.00 (0.88) (:data:`PAPER_TABLE3`).

Files of a study folder (:func:`write_reader_study`)::

    sheet.html            self-contained page (images inlined as base64 PNG data URIs, no network): readers
                          open it from file://, answer, and press "Save answers (CSV)"; answers survive a reload
                          (browser localStorage). Prints as a paper form (CSS @media print).
    answers_template.csv  the same answers as a spreadsheet: one row per case x slot
    key.csv               case_id, slot, run, method: the ONLY file that says which output is which. Keep it away
                          from the readers.
    README.md             how to run the study and score it

Blinding: the outputs of a case are shown in slots ``A``, ``B``, ``C``, ... in an order drawn at random per case
from ``seed``; the sheet and the template never contain a run label or a method name (checked when writing).

Answer CSV (one row per case x slot; what the sheet's save button writes; :data:`ANSWER_COLUMNS`)::

    reader, case_id, slot, likert (1-5), preferred (1 for the reader's preferred slot of the case, else 0), comment

:func:`score_reader_study` unblinds the answers with the key and returns Table 3's figures per method and per run;
:func:`write_scores` writes them as CSV and Markdown beside the paper's figures.

**Realism study** (one run; :func:`write_realism_study`): with a single output there is nothing to prefer, so each
case shows ONE image without its input, either the real target slice or the run's translation of it (balanced,
drawn from ``seed``; cases in a seeded random order), and the reader answers "real" or "synthetic": a visual Turing
test. Its answer CSV (:data:`REALISM_ANSWER_COLUMNS`) is ``reader, case_id, answer (real | synthetic), comment``;
its ``key.csv`` (:data:`REALISM_KEY_COLUMNS`) adds ``shown`` (real | synthetic). :func:`score_reader_study` scores
it (:func:`score_realism_study`: the share of synthetic images taken for real, and of real ones, each with a
Wilson 95% interval); ``mri-harmonic reader-study score`` takes either kind of study.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from mri_harmonic.directions import DIRECTIONS as _DIRECTIONS
from mri_harmonic.errors import UserInputError
from mri_harmonic.utils.io import atomic_write_csv, atomic_write_text, ensure_writable_dir

ANSWER_COLUMNS = ["reader", "case_id", "slot", "likert", "preferred", "comment"]
"""Columns of an answer CSV, in order (``comment`` may be omitted)."""

KEY_COLUMNS = ["case_id", "slot", "run", "method"]
"""Columns of ``key.csv``."""

SCORE_COLUMNS = ["level", "name", "method", "n_cases", "n_readers", "n_ratings", "PreferPct", "MeanLikert",
                 "StdLikert"]
"""Columns of the frame :func:`score_reader_study` returns (``level`` is ``"method"`` or ``"run"``)."""

LIKERT_RANGE = (1, 5)
"""The Likert scale of the paper's user study (Zhang et al. 2019, Table 3): 1 (worst) to 5 (best)."""

SLOT_NAMES = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")

REALISM_ANSWER_COLUMNS = ["reader", "case_id", "answer", "comment"]
"""Columns of a realism study's answer CSV (``comment`` may be omitted)."""

REALISM_KEY_COLUMNS = ["case_id", "shown", "run", "method"]
"""Columns of a realism study's ``key.csv``: ``shown`` is ``real`` or ``synthetic``."""

REALISM_ANSWERS = ("real", "synthetic")

REALISM_SCORE_COLUMNS = ["level", "name", "method", "shown", "n_images", "n_readers", "n_judgements", "judged_real",
                         "PctJudgedReal", "CILow", "CIHigh"]
"""Columns of the frame :func:`score_realism_study` returns (``level`` is ``"run"`` or ``"reader"``; the interval
is Wilson's 95% score interval of ``PctJudgedReal``, in percent)."""

DEFAULT_REALISM_TITLE = "MRI realism reader study"

def known_methods() -> tuple[str, ...]:
    """Method names of this package (the registry's); they must never appear on a sheet (any other method name is
    checked too)."""
    from mri_harmonic.methods import method_names

    return method_names()

PAPER_TABLE3 = pd.DataFrame(
    {
        "method": ["cyclegan", "distancegan", "harmonic"],
        "paper_name": ["CycleGAN", "DistanceGAN", "HarmonicGAN"],
        "PreferPct": [5.0, 0.0, 95.0],
        "MeanLikert": [1.68, 1.62, 4.00],
        "StdLikert": [0.99, 0.95, 0.88],
    }
)
"""Table 3 of Zhang, Pfister & Li (ICLR 2019): user study on BRATS Flair -> T1, their readers and data (not ours)."""

DEFAULT_TITLE = "MRI translation reader study"

_MODALITY_NAMES = {"flair": "FLAIR", "t1": "T1", "t1ce": "T1ce", "t2": "T2"}
_TOKEN = re.compile(r"@@([A-Z_]+)@@")


@dataclass
class ReaderCase:
    """One case of a reader study: an input slice and the translations of it by several runs.

    Args:
        case_id: identifier shown to readers and used in the answer files; must be unique in a study and must not
            name a run or method.
        subject: subject id the slice comes from (shown to readers).
        slice_index: axial slice index in the subject's volume (shown to readers).
        direction: ``flair2t1`` or ``t12flair`` (any other text is shown as is).
        input_image: (H, W) input slice, intensities in [0, 1], displayed as stored (row 0 at the top).
        outputs: run label -> (H, W) translated slice in [0, 1]; at most 26 outputs.
        methods: run label -> method name (``harmonic``, ``cyclegan``, ``distancegan``, ...); same keys as ``outputs``.
        target_image: (H, W) real slice of the output's modality in [0, 1]; needed by a realism study
            (:func:`write_realism_study`), which shows it or the one output.

    Raises:
        ValueError: shapes differ, an image is not 2-D or not finite, values are outside [0, 1] by more than
            rounding (networks work in [-1, 1]: convert with :func:`mri_harmonic.data.datasets.to_unit`), or
            ``outputs`` and ``methods`` have different keys.
    """

    case_id: str
    subject: str
    slice_index: int
    direction: str
    input_image: np.ndarray
    outputs: dict[str, np.ndarray]
    methods: dict[str, str]
    target_image: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.case_id = str(self.case_id).strip()
        if not self.case_id.strip() or any(c in self.case_id for c in ",\"\n\r"):
            raise ValueError(
                f"ReaderCase.case_id {self.case_id!r} must be non-empty without commas, quotes or newlines"
            )
        self.input_image = _checked_image(self.input_image, f"case {self.case_id}: input_image")
        if not self.outputs:
            raise ValueError(f"case {self.case_id}: outputs is empty; a reader study needs at least one output")
        if len(self.outputs) > len(SLOT_NAMES):
            raise ValueError(
                f"case {self.case_id}: {len(self.outputs)} outputs; at most {len(SLOT_NAMES)} fit on a sheet"
            )
        if set(self.outputs) != set(self.methods):
            raise ValueError(
                f"case {self.case_id}: outputs has runs {sorted(self.outputs)} but methods has {sorted(self.methods)}; "
                "give a method for every run"
            )
        self.outputs = {
            str(run): _checked_image(img, f"case {self.case_id}: output {run!r}") for run, img in self.outputs.items()
        }
        self.methods = {str(run): str(m) for run, m in self.methods.items()}
        for run, img in self.outputs.items():
            if img.shape != self.input_image.shape:
                raise ValueError(
                    f"case {self.case_id}: output {run!r} has shape {img.shape}, input has {self.input_image.shape}"
                )
        if self.target_image is not None:
            self.target_image = _checked_image(self.target_image, f"case {self.case_id}: target_image")
            if self.target_image.shape != self.input_image.shape:
                raise ValueError(f"case {self.case_id}: target_image has shape {self.target_image.shape}, input has "
                                 f"{self.input_image.shape}")


def write_reader_study(
    cases: Sequence[ReaderCase],
    out_dir: str | os.PathLike,
    seed: int = 0,
    title: str = DEFAULT_TITLE,
) -> dict[str, Path]:
    """Write a blinded reader study: ``sheet.html``, ``answers_template.csv``, ``key.csv`` and ``README.md``.

    Args:
        cases: the cases, shown in this order; ``case_id`` values must be unique.
        out_dir: folder to write into (created; existing study files are replaced atomically).
        seed: seeds the per-case slot order; the same cases and seed give the same sheet and key.
        title: page title; must not name a run or method.

    Returns:
        ``{"sheet": ..., "answers_template": ..., "key": ..., "readme": ...}`` paths.

    Raises:
        UserInputError: no cases, duplicate case ids, or a shown text (title, case id, subject, direction) that
            contains a run label or method name and would unblind the study; or ``out_dir`` is not writable.
    """
    cases = list(cases)
    if not cases:
        raise UserInputError("reader study has no cases; choose at least one slice (e.g. `reader_study` 20)")
    seen: set[str] = set()
    for case in cases:
        if case.case_id in seen:
            raise UserInputError(f"reader study case_id {case.case_id!r} appears twice; case ids must be unique")
        seen.add(case.case_id)
    _check_shown_text(cases, title)
    out_dir = ensure_writable_dir(out_dir, "reader-study folder")

    slot_runs = [assign_slots(case, seed, i) for i, case in enumerate(cases)]
    key = pd.DataFrame(
        [
            {"case_id": case.case_id, "slot": slot, "run": run, "method": case.methods[run]}
            for case, slots in zip(cases, slot_runs)
            for slot, run in slots.items()
        ],
        columns=KEY_COLUMNS,
    )
    template = key[["case_id", "slot"]].copy()
    template.insert(0, "reader", "")
    template["likert"] = ""
    template["preferred"] = ""
    template["comment"] = ""
    template = template[ANSWER_COLUMNS]

    sheet = render_sheet(cases, slot_runs, title=title, seed=seed)
    _assert_blinded(sheet, template, cases)

    paths = {
        "sheet": atomic_write_text(out_dir / "sheet.html", sheet),
        "answers_template": atomic_write_csv(out_dir / "answers_template.csv", template),
        "key": atomic_write_csv(out_dir / "key.csv", key),
        "readme": atomic_write_text(out_dir / "README.md", _readme(cases, title, seed)),
    }
    return paths


def assign_slots(case: ReaderCase, seed: int, index: int) -> dict[str, str]:
    """Slot letter -> run label for one case, in an order drawn from ``(seed, index)`` (reproducible per case)."""
    runs = sorted(case.outputs)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
    order = rng.permutation(len(runs))
    return {SLOT_NAMES[k]: runs[j] for k, j in enumerate(order)}


def render_sheet(cases: Sequence[ReaderCase], slot_runs: Sequence[dict[str, str]], title: str, seed: int) -> str:
    """The self-contained HTML page (template ``reader_sheet.html`` with the cases filled in)."""
    template = _sheet_template()
    blocks, study_cases, digest = [], [], hashlib.sha256(f"{title}\0{seed}".encode())
    for i, (case, slots) in enumerate(zip(cases, slot_runs)):
        input_uri = png_data_uri(case.input_image)
        slot_uris = {slot: png_data_uri(case.outputs[run]) for slot, run in slots.items()}
        digest.update(case.case_id.encode() + input_uri.encode() + "".join(slot_uris.values()).encode())
        blocks.append(_case_html(i, len(cases), case, slot_uris, input_uri))
        study_cases.append({"case_id": case.case_id, "slots": list(slots)})
    study = {"study_id": digest.hexdigest()[:16], "title": title, "mode": "preference", "cases": study_cases,
             "columns": ANSWER_COLUMNS, "likert": list(range(LIKERT_RANGE[0], LIKERT_RANGE[1] + 1))}
    return _fill_sheet(template, title, len(cases), blocks, study, _PREFERENCE_INSTRUCTIONS)


_PREFERENCE_INSTRUCTIONS = """    <p>Each of the {n} cases shows an input slice and its translations by several models, in a random
      order, labelled A, B, C&hellip; The letters mean nothing from one case to the next: judge every case on its
      own.</p>
    <ol>
      <li>Rate <b>every output</b> from <b>1 (poor)</b> to <b>5 (excellent)</b>: how realistic is it as an image of
        the target modality, and how faithfully does it keep the anatomy and lesions of the input?</li>
      <li>Mark the <b>one output you prefer</b> in each case.</li>
      <li>Comments are optional.</li>
    </ol>"""

_REALISM_INSTRUCTIONS = """    <p>Each of the {n} cases shows one MRI slice. Some are real scans; the others were made by a model from a scan
      of another modality. The cases are in a random order, and real and synthetic images are not paired.</p>
    <ol>
      <li>Mark each image <b>real</b> or <b>synthetic</b>, as you judge it.</li>
      <li>Comments are optional.</li>
    </ol>"""


def _fill_sheet(template: str, title: str, n: int, blocks: list[str], study: dict, instructions: str) -> str:
    values = {
        "TITLE": html.escape(title),
        "N_CASES": str(n),
        "CASES": "\n".join(blocks),
        "INSTRUCTIONS": instructions.format(n=n),
        # JSON inside <script>: escape "<" so that no text can close the script element.
        "STUDY_JSON": json.dumps(study).replace("<", "\\u003c"),
    }
    return _TOKEN.sub(lambda m: values[m.group(1)], template)


def write_realism_study(
    cases: Sequence[ReaderCase],
    out_dir: str | os.PathLike,
    seed: int = 0,
    title: str = DEFAULT_REALISM_TITLE,
) -> dict[str, Path]:
    """Write a blinded realism study of one run (a visual Turing test; see the module docstring): ``sheet.html``,
    ``answers_template.csv``, ``key.csv`` (:data:`REALISM_KEY_COLUMNS`) and ``README.md``.

    Args:
        cases: one output each (the run's translation) and its ``target_image`` (the real slice).
        out_dir, seed, title: as :func:`write_reader_study`; ``seed`` draws which cases show the real slice
            (half of them, rounded down) and the order the cases are shown in.

    Raises:
        UserInputError: as :func:`write_reader_study`, and a case with more than one output or without
            ``target_image``.
    """
    cases = list(cases)
    if not cases:
        raise UserInputError("realism study has no cases; choose at least one slice (e.g. `reader_study` 20)")
    seen: set[str] = set()
    for case in cases:
        if case.case_id in seen:
            raise UserInputError(f"reader study case_id {case.case_id!r} appears twice; case ids must be unique")
        seen.add(case.case_id)
        if len(case.outputs) != 1 or case.target_image is None:
            raise UserInputError(
                f"realism study case {case.case_id!r} has {len(case.outputs)} output(s) and "
                f"{'a' if case.target_image is not None else 'no'} target_image; give one output and the real "
                "target slice per case (several runs: use write_reader_study)"
            )
    _check_shown_text(cases, title)
    out_dir = ensure_writable_dir(out_dir, "reader-study folder")

    shown, order = realism_plan(len(cases), seed)
    rows = []
    for i in order:
        (run,) = cases[i].outputs
        rows.append({"case_id": cases[i].case_id, "shown": shown[i], "run": run, "method": cases[i].methods[run]})
    key = pd.DataFrame(rows, columns=REALISM_KEY_COLUMNS)
    template = pd.DataFrame({"reader": "", "case_id": key["case_id"], "answer": "", "comment": ""},
                            columns=REALISM_ANSWER_COLUMNS)
    images = [cases[i].target_image if shown[i] == "real" else next(iter(cases[i].outputs.values())) for i in order]
    sheet = render_realism_sheet([cases[i] for i in order], images, title=title, seed=seed)
    _assert_blinded(sheet, template, cases)
    return {
        "sheet": atomic_write_text(out_dir / "sheet.html", sheet),
        "answers_template": atomic_write_csv(out_dir / "answers_template.csv", template),
        "key": atomic_write_csv(out_dir / "key.csv", key),
        "readme": atomic_write_text(out_dir / "README.md", _realism_readme(cases, title, seed)),
    }


def realism_plan(n: int, seed: int) -> tuple[list[str], list[int]]:
    """For ``n`` cases: what each shows (``n // 2`` of them ``"real"``, the rest ``"synthetic"``, drawn from
    ``seed``) and the order they are shown in (a permutation drawn from ``seed``)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x7EA1]))
    real = set(rng.permutation(n)[: n // 2].tolist())
    return ["real" if i in real else "synthetic" for i in range(n)], [int(i) for i in rng.permutation(n)]


def render_realism_sheet(cases: Sequence[ReaderCase], images: Sequence[np.ndarray], title: str, seed: int) -> str:
    """The self-contained HTML page of a realism study: ``cases`` in display order, ``images[i]`` shown for case i."""
    blocks, study_cases, digest = [], [], hashlib.sha256(f"realism\0{title}\0{seed}".encode())
    esc = html.escape
    for i, (case, image) in enumerate(zip(cases, images)):
        uri, cid = png_data_uri(image), esc(case.case_id)
        digest.update(case.case_id.encode() + uri.encode())
        modality = _direction_label(case.direction)[1]
        radios = "".join(
            f'<label><input type="radio" name="answer-{i}" value="{v}" data-case="{i}" data-slot="A" '
            f'data-kind="answer"> {v}</label>' for v in REALISM_ANSWERS
        )
        blocks.append(
            f'<section class="case" id="case-{i}" data-case="{i}">'
            f'<h2><span class="case-no">Case {i + 1} / {len(cases)}</span> <span class="case-id">{cid}</span> '
            f'<span class="meta">{esc(modality)} image</span><span class="status" data-status="{i}"></span></h2>'
            f'<div class="panels"><figure class="panel slot" data-slot="A"><figcaption>Image</figcaption>'
            f'<img src="{uri}" alt="case {cid}, image">'
            f'<div class="verdict" role="radiogroup" aria-label="Real or synthetic">{radios}</div>'
            f'<input class="comment" type="text" placeholder="comment (optional)" data-case="{i}" data-slot="A" '
            f'data-kind="comment" aria-label="Comment on the image of case {cid}"></figure></div></section>'
        )
        study_cases.append({"case_id": case.case_id, "slots": ["A"]})
    study = {"study_id": digest.hexdigest()[:16], "title": title, "mode": "realism", "cases": study_cases,
             "columns": REALISM_ANSWER_COLUMNS}
    return _fill_sheet(_sheet_template(), title, len(cases), blocks, study, _REALISM_INSTRUCTIONS)


def _sheet_template() -> str:
    return resources.files("mri_harmonic.evaluation").joinpath("reader_sheet.html").read_text(encoding="utf-8")


def png_data_uri(image: np.ndarray) -> str:
    """A (H, W) image in [0, 1] as an 8-bit greyscale PNG ``data:`` URI (0 -> black, 1 -> white)."""
    from PIL import Image

    pixels = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def score_reader_study(answer_csvs: Iterable[str | os.PathLike], key_csv: str | os.PathLike) -> pd.DataFrame:
    """Unblind reader answers with the key and compute the paper's Table 3 figures per method and per run.

    Per method (``level == "method"``) and per run label (``level == "run"``):

    - ``n_cases``: cases in which it was rated; ``n_readers``: readers who rated it; ``n_ratings``: Likert ratings.
    - ``PreferPct``: 100 x (reader, case) judgements whose preferred output is this method/run, over the
      judgements of cases that show it (so with one output per method per case the methods sum to 100, as in
      Table 3).
    - ``MeanLikert`` / ``StdLikert``: mean and sample standard deviation (ddof=1; NaN for one rating) of all its
      Likert ratings (the paper does not state its ddof).

    Rows whose ``likert`` and ``preferred`` are both blank are unanswered and ignored (a partly filled template);
    a case a reader answered must have every slot rated and exactly one preferred slot.

    The key of a realism study (:data:`REALISM_KEY_COLUMNS`) is scored by :func:`score_realism_study` instead,
    which returns its own frame (:data:`REALISM_SCORE_COLUMNS`).

    Args:
        answer_csvs: answer files (:data:`ANSWER_COLUMNS`); one file may hold several readers.
        key_csv: the study's ``key.csv``.

    Raises:
        UserInputError: a file is missing or malformed, or an answer is invalid (unknown case or slot, Likert
            outside 1-5, preferred not 0/1, no or several preferred slots in a case, a duplicate answer, empty
            reader); the message names the file and the row (row 1 is the header).
    """
    if study_kind(key_csv) == "realism":
        return score_realism_study(answer_csvs, key_csv)
    key = _read_key(Path(key_csv))
    answers = _collect_answers(answer_csvs, lambda p: _read_answers(p, key), "likert and preferred")

    merged = answers.merge(key, on=["case_id", "slot"], how="left", validate="many_to_one")
    judgements = merged.loc[merged["preferred"] == 1, ["reader", "case_id", "run", "method"]]
    judgements = judgements.rename(columns={"run": "preferred_run", "method": "preferred_method"})
    merged = merged.merge(judgements, on=["reader", "case_id"], how="left", validate="many_to_one")

    rows = []
    for level, col, pref_col in (("method", "method", "preferred_method"), ("run", "run", "preferred_run")):
        names = _ordered(merged[col].unique(), level)
        for name in names:
            sub = merged[merged[col] == name]
            # one judgement per (reader, case) that shows this method/run
            per_judgement = sub.groupby(["reader", "case_id"])[pref_col].first() == name
            likert = sub["likert"].astype(float)
            methods = sub["method"].unique()
            rows.append({
                "level": level,
                "name": name,
                "method": name if level == "method" else ",".join(sorted(methods)),
                "n_cases": int(sub["case_id"].nunique()),
                "n_readers": int(sub["reader"].nunique()),
                "n_ratings": int(len(sub)),
                "PreferPct": 100.0 * float(per_judgement.mean()),
                "MeanLikert": float(likert.mean()),
                "StdLikert": float(likert.std(ddof=1)) if len(likert) > 1 else math.nan,
            })
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def study_kind(key_csv: str | os.PathLike) -> str:
    """``"realism"`` when ``key_csv`` is a realism study's key (it has a ``shown`` column), else ``"preference"``."""
    return "realism" if "shown" in _read_csv(Path(key_csv), "reader-study key").columns else "preference"


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval of the proportion ``k / n`` (SciPy's ``binomtest``); NaNs for ``n == 0``."""
    if n == 0:
        return math.nan, math.nan
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def score_realism_study(answer_csvs: Iterable[str | os.PathLike], key_csv: str | os.PathLike) -> pd.DataFrame:
    """Unblind a realism study's answers (:func:`write_realism_study`) and compute, for the synthetic and the real
    images apart, the share judged real.

    Rows (:data:`REALISM_SCORE_COLUMNS`): per run (``level == "run"``, all readers) and per reader
    (``level == "reader"``), one for ``shown == "synthetic"`` and one for ``shown == "real"``: ``n_images``
    (cases answered), ``n_readers``, ``n_judgements`` ((reader, case) answers), ``judged_real`` (of them, answered
    real), ``PctJudgedReal`` = 100 x judged_real / n_judgements, and Wilson's 95% interval ``CILow`` - ``CIHigh``
    (percent). The interval treats every judgement as independent; several readers judging the same images are
    not, so with few images it is too narrow.

    Rows whose ``answer`` is blank are unanswered and ignored (a partly filled template).

    Raises:
        UserInputError: a file is missing or malformed, or an answer is invalid (unknown case, an answer other
            than real / synthetic, a duplicate answer, empty reader); the message names the file and the row.
    """
    key = _read_realism_key(Path(key_csv))
    answers = _collect_answers(answer_csvs, lambda p: _read_realism_answers(p, key), "answer (real or synthetic)")
    merged = answers.merge(key, on="case_id", how="left", validate="many_to_one")
    rows = []
    for level, col in (("run", "run"), ("reader", "reader")):
        for name in sorted(merged[col].unique()):
            for shown in ("synthetic", "real"):
                sub = merged[(merged[col] == name) & (merged["shown"] == shown)]
                n, k = len(sub), int((sub["answer"] == "real").sum())
                low, high = wilson_interval(k, n)
                rows.append({
                    "level": level, "name": name, "method": ",".join(sorted(merged.loc[merged[col] == name, "method"].unique())),
                    "shown": shown, "n_images": int(sub["case_id"].nunique()), "n_readers": int(sub["reader"].nunique()),
                    "n_judgements": n, "judged_real": k, "PctJudgedReal": 100.0 * k / n if n else math.nan,
                    "CILow": 100.0 * low, "CIHigh": 100.0 * high,
                })
    return pd.DataFrame(rows, columns=REALISM_SCORE_COLUMNS)


def _read_realism_key(path: Path) -> pd.DataFrame:
    key = _read_csv(path, "reader-study key")
    missing = [c for c in REALISM_KEY_COLUMNS if c not in key.columns]
    if missing:
        raise UserInputError(
            f"reader-study key {path} lacks column(s) {', '.join(missing)}; pass the key.csv written with the sheet"
        )
    key = key[REALISM_KEY_COLUMNS].apply(lambda s: s.str.strip())
    for i, row in key.iterrows():
        empty = [c for c in REALISM_KEY_COLUMNS if not row[c]]
        if empty or row["shown"] not in REALISM_ANSWERS or key["case_id"].iloc[:i].eq(row["case_id"]).any():
            problem = f"empty {', '.join(empty)}" if empty else (
                f"shown {row['shown']!r} is not real or synthetic" if row["shown"] not in REALISM_ANSWERS
                else f"case {row['case_id']!r} appears twice")
            raise UserInputError(f"reader-study key {path}, row {i + 2}: {problem}; pass the key.csv written with the sheet")
    return key


def _read_realism_answers(path: Path, key: pd.DataFrame) -> pd.DataFrame:
    frame = _read_csv(path, "answer file")
    missing = [c for c in REALISM_ANSWER_COLUMNS[:-1] if c not in frame.columns]
    if missing:
        hint = " (this is a realism study: one answer, real or synthetic, per case)" if "likert" in frame.columns else ""
        raise UserInputError(f"answer file {path} lacks column(s) {', '.join(missing)}; expected "
                             f"{', '.join(REALISM_ANSWER_COLUMNS)}{hint}")
    if "comment" not in frame.columns:
        frame["comment"] = ""
    frame = frame[REALISM_ANSWER_COLUMNS].copy()
    for c in REALISM_ANSWER_COLUMNS[:-1]:
        frame[c] = frame[c].str.strip()
    frame["answer"] = frame["answer"].str.lower()
    frame["row"] = np.arange(len(frame)) + 2  # spreadsheet row: the header is row 1
    frame = frame[frame["answer"] != ""].copy()
    known = set(key["case_id"])
    for r in frame.itertuples():
        where = f"answer file {path}, row {r.row}"
        if not r.reader:
            raise UserInputError(f"{where}: reader is empty; write the reader's name in every answered row")
        if r.case_id not in known:
            raise UserInputError(f"{where}: case_id {r.case_id!r} is not in the key; is this the key of this study?")
        if r.answer not in REALISM_ANSWERS:
            raise UserInputError(f"{where}: answer {r.answer!r} must be real or synthetic")
    frame["file"] = str(path)
    dup = frame.duplicated(["reader", "case_id"], keep="first")
    if dup.any():
        r = frame[dup].iloc[0]
        raise UserInputError(f"answer file {path}, row {r.row}: reader {r.reader!r} answered case {r.case_id!r} twice; "
                             "keep one answer")
    return frame


def write_scores(df: pd.DataFrame, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write scores as ``reader_study_scores.csv`` and ``reader_study_scores.md``, beside the paper's Table 3.

    The CSV adds the paper's figures to the method rows in columns ``paper_brats_*`` (Zhang et al. 2019, Table 3:
    BRATS Flair -> T1, their readers -- not this data). Returns ``{"csv": ..., "markdown": ...}``.
    """
    out_dir = ensure_writable_dir(out_dir, "scores folder")
    if "PctJudgedReal" in df.columns:  # a realism study: no published counterpart to add
        return {
            "csv": atomic_write_csv(out_dir / "reader_study_scores.csv", df, float_format="%.4f"),
            "markdown": atomic_write_text(out_dir / "reader_study_scores.md", realism_markdown(df)),
        }
    table = df.copy()
    paper = PAPER_TABLE3.set_index("method")
    for col in ("PreferPct", "MeanLikert", "StdLikert"):
        table[f"paper_brats_{col}"] = [
            paper.at[name, col] if level == "method" and name in paper.index else math.nan
            for level, name in zip(table["level"], table["name"])
        ]
    return {
        "csv": atomic_write_csv(out_dir / "reader_study_scores.csv", table, float_format="%.4f"),
        "markdown": atomic_write_text(out_dir / "reader_study_scores.md", scores_markdown(df)),
    }


def scores_markdown(df: pd.DataFrame) -> str:
    """Markdown report: our study per method and per run, then the paper's Table 3, clearly labelled."""
    lines = ["# Reader study scores", "", "## This study (per method)", ""]
    lines += _md_table(df[df["level"] == "method"], name_header="Method")
    runs = df[df["level"] == "run"]
    if len(runs):
        lines += ["", "## This study (per run)", ""]
        lines += _md_table(runs, name_header="Run", with_method=True)
    lines += [
        "",
        "## Published reference -- NOT this data",
        "",
        "Zhang, Pfister & Li, *Harmonic Unpaired Image-to-Image Translation*, ICLR 2019, Table 3: user study on "
        "BRATS Flair -> T1 with the authors' readers, data and models. Shown for comparison only.",
        "",
        "| Method (paper) | Prefer % | Likert mean | Likert std |",
        "|---|---:|---:|---:|",
    ]
    for r in PAPER_TABLE3.itertuples():
        lines.append(f"| {r.paper_name} (`{r.method}`) | {r.PreferPct:.0f} | {r.MeanLikert:.2f} | {r.StdLikert:.2f} |")
    lines += [
        "",
        "Prefer %: share of (reader, case) judgements in which the output was preferred. Likert: 1 (worst) to 5 "
        "(best); std is the sample standard deviation (ddof=1).",
        "",
    ]
    return "\n".join(lines)


def realism_accuracy(df: pd.DataFrame, level: str = "run") -> dict[str, tuple[int, int]]:
    """``name -> (correct, judgements)`` of a realism score frame: synthetic images answered synthetic plus real
    ones answered real."""
    out = {}
    for name, g in df[df["level"] == level].groupby("name", sort=False):
        by = g.set_index("shown")
        correct = (by.at["synthetic", "n_judgements"] - by.at["synthetic", "judged_real"]) + by.at["real", "judged_real"]
        out[name] = (int(correct), int(by["n_judgements"].sum()))
    return out


def realism_markdown(df: pd.DataFrame) -> str:
    """Markdown report of a realism study (:func:`score_realism_study`)."""
    def pct(v: float) -> str:
        return "n/a" if math.isnan(v) else f"{v:.1f}"

    lines = ["# Reader study scores: real or synthetic?", ""]
    for level, header in (("run", "Run"), ("reader", "Reader")):
        lines += [f"## Per {level}", "", f"| {header} | Shown | Judged real % | 95% interval | Judged real | Judgements | "
                  "Images | Readers |", "|---|---|---:|---|---:|---:|---:|---:|"]
        for r in df[df["level"] == level].itertuples():
            lines.append(f"| {r.name} | {r.shown} | {pct(r.PctJudgedReal)} | {pct(r.CILow)} - {pct(r.CIHigh)} | "
                         f"{r.judged_real} | {r.n_judgements} | {r.n_images} | {r.n_readers} |")
        lines.append("")
    for name, (correct, n) in realism_accuracy(df).items():
        low, high = wilson_interval(correct, n)
        lines.append(f"Accuracy of the real / synthetic calls for run {name}: {pct(100.0 * correct / n)}% "
                     f"({correct} of {n}; 95% interval {pct(100 * low)} - {pct(100 * high)}); 50% is chance.")
    lines += [
        "",
        "Judged real %: share of (reader, image) judgements that answered real. A synthetic share near the real "
        "images' share means the readers could not tell the translations from real scans. Intervals: Wilson 95%, "
        "each judgement counted as independent (several readers of the same images are not, so with few images "
        "the intervals are too narrow).",
        "",
    ]
    return "\n".join(lines)


def format_scores(df: pd.DataFrame) -> str:
    """A plain-text table of the scores for the terminal."""
    if "PctJudgedReal" in df.columns:
        shown = df.copy()
        for col in ("PctJudgedReal", "CILow", "CIHigh"):
            shown[col] = shown[col].map(lambda v: "n/a" if math.isnan(v) else f"{v:.1f}")
        return shown.to_string(index=False)
    shown = df.copy()
    shown["PreferPct"] = shown["PreferPct"].map(lambda v: f"{v:.1f}")
    shown["MeanLikert"] = shown["MeanLikert"].map(lambda v: f"{v:.2f}")
    shown["StdLikert"] = shown["StdLikert"].map(lambda v: "n/a" if math.isnan(v) else f"{v:.2f}")
    return shown.to_string(index=False)


# ----------------------------------------------------------------------------------------------------------------
# helpers


def _checked_image(image: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"{what} has shape {arr.shape}; expected a 2-D (H, W) slice")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} has NaN or infinite values")
    tol = 1e-3  # rounding of float16 stores and of to_unit(); larger excursions mean a wrong intensity range
    if arr.size and (arr.min() < -tol or arr.max() > 1 + tol):
        raise ValueError(
            f"{what} has values in [{arr.min():.3f}, {arr.max():.3f}]; expected [0, 1] (convert network output "
            "with mri_harmonic.data.datasets.to_unit)"
        )
    return arr


def _secrets(cases: Sequence[ReaderCase]) -> set[str]:
    """Texts that must not be shown: method names, and run labels of 3+ characters (shorter ones, e.g. ``a`` or
    ``r1``, occur in ordinary words and reveal nothing)."""
    words = set(known_methods())
    for case in cases:
        words.update(run for run in case.outputs if len(run.strip()) >= 3)
        words.update(case.methods.values())
    return {w for w in words if w.strip()}


def _check_shown_text(cases: Sequence[ReaderCase], title: str) -> None:
    secrets = _secrets(cases)
    shown = [("title", title)]
    for case in cases:
        shown += [(f"case {case.case_id!r} case_id", case.case_id), (f"case {case.case_id!r} subject", case.subject),
                  (f"case {case.case_id!r} direction", " -> ".join(_direction_label(case.direction)))]
    for where, text in shown:
        for secret in secrets:
            if secret.lower() in str(text).lower():
                raise UserInputError(
                    f"reader study {where} {text!r} contains the run/method name {secret!r}, which would unblind "
                    "the readers; use neutral text (e.g. case ids like c001)"
                )


def _assert_blinded(sheet: str, template: pd.DataFrame, cases: Sequence[ReaderCase]) -> None:
    """Last guard: no method name in the sheet's text (images excluded) and no run or method in the template rows.

    Run labels are checked where the sheet shows user text (:func:`_check_shown_text`); the rest of the page is
    fixed markup, where a run called e.g. ``output`` occurs by coincidence and reveals nothing.
    """
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", sheet).lower()
    rows = template.to_csv(index=False, header=False).lower()
    methods = {m for case in cases for m in case.methods.values()} | set(known_methods())
    for secret in _secrets(cases):
        s = secret.lower()
        if s in rows or (secret in methods and re.search(rf"(?<![a-z0-9]){re.escape(s)}(?![a-z0-9])", text)):
            raise UserInputError(
                f"the reader sheet would show the run/method name {secret!r}; use neutral titles and case ids"
            )


def _direction_label(direction: str) -> tuple[str, str]:
    if direction in _DIRECTIONS:
        a, b = _DIRECTIONS[direction]
        return _MODALITY_NAMES[a], _MODALITY_NAMES[b]
    return direction, "output"


def _case_html(i: int, n: int, case: ReaderCase, slot_uris: dict[str, str], input_uri: str) -> str:
    esc = html.escape
    src, dst = _direction_label(case.direction)
    cid = esc(case.case_id)
    slots_html = []
    for slot, uri in slot_uris.items():
        radios = "".join(
            f'<label class="lk"><input type="radio" name="likert-{i}-{slot}" value="{v}" '
            f'data-case="{i}" data-slot="{slot}" data-kind="likert"><span>{v}</span></label>'
            for v in range(LIKERT_RANGE[0], LIKERT_RANGE[1] + 1)
        )
        slots_html.append(
            f'<figure class="panel slot" data-slot="{slot}">'
            f'<figcaption>Output {slot}</figcaption>'
            f'<img src="{uri}" alt="case {cid}, output {slot}">'
            f'<div class="likert" role="radiogroup" aria-label="Rating of output {slot}">'
            f'<span class="lk-lo">poor</span>{radios}<span class="lk-hi">excellent</span></div>'
            f'<label class="pref"><input type="radio" name="preferred-{i}" value="{slot}" data-case="{i}" '
            f'data-slot="{slot}" data-kind="preferred"> preferred</label>'
            f'<input class="comment" type="text" placeholder="comment (optional)" data-case="{i}" '
            f'data-slot="{slot}" data-kind="comment" aria-label="Comment on output {slot}">'
            f"</figure>"
        )
    return (
        f'<section class="case" id="case-{i}" data-case="{i}">'
        f'<h2><span class="case-no">Case {i + 1} / {n}</span> <span class="case-id">{cid}</span> '
        f'<span class="meta">{esc(str(case.subject))}, slice {int(case.slice_index)}, '
        f'{esc(src)} &rarr; {esc(dst)}</span>'
        f'<span class="status" data-status="{i}"></span></h2>'
        f'<div class="panels">'
        f'<figure class="panel input"><figcaption>Input ({esc(src)})</figcaption>'
        f'<img src="{input_uri}" alt="case {cid}, input"></figure>'
        + "".join(slots_html)
        + "</div></section>"
    )


def _readme(cases: Sequence[ReaderCase], title: str, seed: int) -> str:
    n_out = sorted({len(c.outputs) for c in cases})
    return f"""# {title}

A blinded reader study written by `mri-harmonic` (seed {seed}): {len(cases)} cases, {'/'.join(map(str, n_out))}
outputs per case, shown in a random order per case as slots A, B, C, ... Modelled on the user study of
Zhang, Pfister & Li (ICLR 2019, Table 3).

## Files

| File | For | What |
|---|---|---|
| `sheet.html` | readers | the study: open it in a browser (works offline, from a USB stick or e-mail attachment) |
| `answers_template.csv` | readers without a browser | the same questions as a spreadsheet, one row per case x slot |
| `key.csv` | **study organiser only** | which slot is which model: do NOT give it to readers |
| `README.md` | organiser | this file |

## Running the study

1. Give each reader `sheet.html` only (not `key.csv`, not this folder).
2. The reader opens it in a current browser (Chrome, Edge, Firefox, Safari), types their name, and for every
   case rates each output from 1 (poor) to 5 (excellent) and marks the one output they prefer. Answers are kept in
   the browser (localStorage), so closing and reopening the page keeps them; "Clear my answers" forgets them.
3. The reader presses **Save answers (CSV)** and sends the downloaded `reader_answers_<name>.csv` back.
   Only complete cases (every output rated and one preferred) are written.
4. Paper form: print `sheet.html` (the printout hides the buttons); transcribe the answers into
   `answers_template.csv` (columns `reader, case_id, slot, likert, preferred, comment`; `preferred` is 1 for the
   preferred slot of the case and 0 for the others).

## Scoring

```bash
mri-harmonic reader-study score reader_answers_*.csv --key key.csv --out scores/
```

writes `scores/reader_study_scores.csv` and `.md` (Prefer %, mean and std Likert per method and per run, as in the
paper's Table 3, beside the paper's own figures, which come from the BRATS data and are not comparable 1:1).
"""


def _realism_readme(cases: Sequence[ReaderCase], title: str, seed: int) -> str:
    n_real = realism_plan(len(cases), seed)[0].count("real")
    return f"""# {title}

A blinded realism study (a visual Turing test) written by `mri-harmonic` (seed {seed}): {len(cases)} cases, each
showing ONE slice without its input: the real target slice ({n_real} cases) or one run's translation of it
({len(cases) - n_real} cases), in a random order. Readers mark each image real or synthetic.

## Files

| File | For | What |
|---|---|---|
| `sheet.html` | readers | the study: open it in a browser (works offline, from a USB stick or e-mail attachment) |
| `answers_template.csv` | readers without a browser | the same questions as a spreadsheet, one row per case |
| `key.csv` | **study organiser only** | which image is real: do NOT give it to readers |
| `README.md` | organiser | this file |

## Running the study

1. Give each reader `sheet.html` only (not `key.csv`, not this folder).
2. The reader opens it in a current browser, types their name, and marks every image real or synthetic. Answers
   are kept in the browser (localStorage); "Clear my answers" forgets them.
3. The reader presses **Save answers (CSV)** and sends the downloaded `reader_answers_<name>.csv` back.
4. Paper form: print `sheet.html`; transcribe the answers into `answers_template.csv` (columns
   `reader, case_id, answer, comment`; `answer` is `real` or `synthetic`).

## Scoring

```bash
mri-harmonic reader-study score reader_answers_*.csv --key key.csv --out scores/
```

writes `scores/reader_study_scores.csv` and `.md`: the share of synthetic images taken for real (and of real images
taken for real, the readers' own baseline), with Wilson 95% intervals, over all readers and per reader, and the
readers' accuracy. A synthetic share judged real close to the real images' share means readers could not tell them
apart.
"""


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise UserInputError(f"{what} {path} does not exist; check the path")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserInputError(f"{what} {path} is not a readable CSV ({msg}); save it as comma-separated UTF-8") from None
    frame.columns = [str(c).strip().lstrip("\ufeff").lower() for c in frame.columns]
    return frame


def _read_key(path: Path) -> pd.DataFrame:
    key = _read_csv(path, "reader-study key")
    missing = [c for c in KEY_COLUMNS if c not in key.columns]
    if missing:
        raise UserInputError(
            f"reader-study key {path} lacks column(s) {', '.join(missing)}; pass the key.csv written with the sheet"
        )
    key = key[KEY_COLUMNS].apply(lambda s: s.str.strip())
    for i, row in key.iterrows():
        empty = [c for c in KEY_COLUMNS if not row[c]]
        if empty:
            raise UserInputError(f"reader-study key {path}, row {i + 2}: empty {', '.join(empty)}")
    dup = key.duplicated(["case_id", "slot"], keep=False)
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise UserInputError(f"reader-study key {path}, row {i + 2}: case {key.at[i, 'case_id']!r} slot "
                             f"{key.at[i, 'slot']!r} appears twice; pass the key.csv written with the sheet")
    return key


def _parse_int(text: str, allowed: tuple[int, ...]) -> int | None:
    try:
        value = float(text)
    except ValueError:
        return None
    if not value.is_integer() or int(value) not in allowed:
        return None
    return int(value)


def _read_answers(path: Path, key: pd.DataFrame) -> pd.DataFrame:
    frame = _read_csv(path, "answer file")
    missing = [c for c in ANSWER_COLUMNS[:-1] if c not in frame.columns]
    if missing:
        raise UserInputError(
            f"answer file {path} lacks column(s) {', '.join(missing)}; expected {', '.join(ANSWER_COLUMNS)}"
        )
    if "comment" not in frame.columns:
        frame["comment"] = ""
    frame = frame[ANSWER_COLUMNS].copy()
    for c in ANSWER_COLUMNS[:-1]:
        frame[c] = frame[c].str.strip()
    frame["row"] = np.arange(len(frame)) + 2  # spreadsheet row: the header is row 1
    frame = frame[(frame["likert"] != "") | (frame["preferred"] != "")].copy()

    slots_of = key.groupby("case_id")["slot"].apply(set).to_dict()
    likert_values = tuple(range(LIKERT_RANGE[0], LIKERT_RANGE[1] + 1))
    likert, preferred = [], []
    for r in frame.itertuples():
        where = f"answer file {path}, row {r.row}"
        if not r.reader:
            raise UserInputError(f"{where}: reader is empty; write the reader's name in every answered row")
        if r.case_id not in slots_of:
            raise UserInputError(f"{where}: case_id {r.case_id!r} is not in the key; is this the key of this study?")
        if r.slot not in slots_of[r.case_id]:
            raise UserInputError(f"{where}: case {r.case_id!r} has no slot {r.slot!r}; its slots are "
                                 f"{', '.join(sorted(slots_of[r.case_id]))}")
        lk = _parse_int(r.likert, likert_values)
        if lk is None:
            raise UserInputError(f"{where}: likert {r.likert!r} is not an integer from {LIKERT_RANGE[0]} to "
                                 f"{LIKERT_RANGE[1]}; rate every output 1 (poor) to 5 (excellent)")
        pf = _parse_int(r.preferred, (0, 1))
        if pf is None:
            raise UserInputError(f"{where}: preferred {r.preferred!r} must be 1 (the preferred output of the case) "
                                 "or 0; mark exactly one preferred slot per case")
        likert.append(lk)
        preferred.append(pf)
    frame["likert"] = np.asarray(likert, dtype=np.int64)
    frame["preferred"] = np.asarray(preferred, dtype=np.int64)
    frame["file"] = str(path)

    dup = frame.duplicated(["reader", "case_id", "slot"], keep="first")
    if dup.any():
        r = frame[dup].iloc[0]
        raise UserInputError(f"answer file {path}, row {r.row}: reader {r.reader!r} answered case {r.case_id!r} slot "
                             f"{r.slot!r} twice; keep one answer")
    for (reader, case_id), group in frame.groupby(["reader", "case_id"], sort=False):
        rows = ", ".join(str(v) for v in group["row"])
        absent = slots_of[case_id] - set(group["slot"])
        if absent:
            raise UserInputError(f"answer file {path}, rows {rows}: reader {reader!r} did not rate slot(s) "
                                 f"{', '.join(sorted(absent))} of case {case_id!r}; rate every output of an "
                                 "answered case")
        n_pref = int(group["preferred"].sum())
        if n_pref != 1:
            raise UserInputError(f"answer file {path}, rows {rows}: reader {reader!r} marked {n_pref} preferred slots "
                                 f"in case {case_id!r}; mark exactly one (preferred = 1, others 0)")
    return frame


def _collect_answers(answer_csvs: Sequence[str | os.PathLike], read, fields: str) -> pd.DataFrame:
    """Every answer file read with ``read(path)``, checked for answers given twice across files, concatenated; a
    one-line error when no file is given or none holds an answered row (``fields``: what the reader fills in)."""
    answer_csvs = [Path(p) for p in answer_csvs]
    if not answer_csvs:
        raise UserInputError("no answer files given; pass one or more answer CSVs saved from sheet.html")
    frames = [read(p) for p in answer_csvs]
    _check_no_cross_file_duplicates(frames)
    answers = pd.concat(frames, ignore_index=True)
    if answers.empty:
        raise UserInputError(
            f"no answered rows in {', '.join(str(p) for p in answer_csvs)}; fill in {fields}, "
            "or save the answers from sheet.html"
        )
    return answers


def _check_no_cross_file_duplicates(frames: list[pd.DataFrame]) -> None:
    """A reader's answer to a case must come from one file only."""
    seen: dict[tuple[str, str], str] = {}
    for frame in frames:
        for (reader, case_id), group in frame.groupby(["reader", "case_id"], sort=False):
            path = group["file"].iloc[0]
            if (reader, case_id) in seen:
                raise UserInputError(
                    f"answer file {path}, row {int(group['row'].iloc[0])}: reader {reader!r} answered case "
                    f"{case_id!r} also in {seen[(reader, case_id)]}; pass each reader's answers once"
                )
            seen[(reader, case_id)] = path


def _ordered(names: Iterable[str], level: str) -> list[str]:
    """Paper's order (CycleGAN, DistanceGAN, HarmonicGAN) first for methods, then the rest alphabetically."""
    names = sorted(set(names))
    if level != "method":
        return names
    head = [m for m in PAPER_TABLE3["method"] if m in names]
    return head + [m for m in names if m not in head]


def _md_table(df: pd.DataFrame, name_header: str, with_method: bool = False) -> list[str]:
    head = f"| {name_header} |" + (" Method |" if with_method else "") + \
        " Prefer % | Likert mean | Likert std | Cases | Readers | Ratings |"
    sep = "|---|" + ("---|" if with_method else "") + "---:|---:|---:|---:|---:|---:|"
    lines = [head, sep]
    for r in df.itertuples():
        std = "n/a" if math.isnan(r.StdLikert) else f"{r.StdLikert:.2f}"
        lines.append(
            f"| {r.name} |" + (f" {r.method} |" if with_method else "")
            + f" {r.PreferPct:.1f} | {r.MeanLikert:.2f} | {std} | {r.n_cases} | {r.n_readers} | {r.n_ratings} |"
        )
    return lines
