"""Reader-study sheets and scoring: blinding, reproducible slot orders, a simulated-reader round trip, bad answers;
the realism study of one run (real or synthetic?) against a hand computation."""

from __future__ import annotations

import base64
import io
import re
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mri_harmonic.cli import main
from mri_harmonic.errors import UserInputError
from mri_harmonic.evaluation.reader_study import (
    ANSWER_COLUMNS,
    KEY_COLUMNS,
    PAPER_TABLE3,
    REALISM_ANSWER_COLUMNS,
    REALISM_KEY_COLUMNS,
    REALISM_SCORE_COLUMNS,
    ReaderCase,
    score_reader_study,
    write_reader_study,
    write_realism_study,
    write_scores,
)

# Distinctive labels: none of them can occur by chance in the page's text or in base64 (underscores).
RUNS = {"run_hx_7": "harmonic", "run_cy_3": "cyclegan", "run_dg_5": "distancegan"}


def _disc(size, centre, radius, value):
    yy, xx = np.mgrid[:size, :size]
    return np.where((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius**2, value, 0.0)


def make_cases(n=6, runs=RUNS, size=24, seed=0):
    """Cases whose every image is distinct (different disc intensity per run and case)."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        c = size / 2 + rng.normal(0, 1.5, 2)
        outputs = {run: np.clip(_disc(size, c, size * 0.35, 0.2 + 0.1 * k) + 0.02 * i, 0, 1)
                   for k, run in enumerate(runs)}
        cases.append(ReaderCase(case_id=f"c{i:03d}", subject=f"BraTS_{i:05d}", slice_index=70 + i,
                                direction="flair2t1", input_image=_disc(size, c, size * 0.35, 0.9),
                                outputs=outputs, methods=dict(runs)))
    return cases


def simulate_reader(key: pd.DataFrame, reader: str, favourite: str, seed: int, fickle: float = 0.0):
    """A reader who prefers ``favourite`` (except with probability ``fickle``) and rates it higher.

    Returns (answer rows in the CSV format, truth records (reader, case, run, method, likert, preferred)).
    """
    rng = np.random.default_rng(seed)
    rows, truth = [], []
    for case_id, group in key.groupby("case_id", sort=False):
        methods = list(group["method"])
        pick = methods.index(favourite) if rng.random() >= fickle else int(rng.integers(len(methods)))
        for k, r in enumerate(group.itertuples()):
            likert = int(rng.integers(4, 6)) if r.method == favourite else int(rng.integers(1, 4))
            preferred = int(k == pick)
            rows.append({"reader": reader, "case_id": case_id, "slot": r.slot, "likert": likert,
                         "preferred": preferred, "comment": "ok, fine" if preferred else ""})
            truth.append((reader, case_id, r.run, r.method, likert, preferred))
    return rows, truth


def expected_scores(truth, attr: str):
    """Independent reference: per method (attr='method') or run (attr='run') with plain loops."""
    col = {"run": 2, "method": 3}[attr]
    names = sorted({t[col] for t in truth})
    out = {}
    for name in names:
        ratings = [t[4] for t in truth if t[col] == name]
        shown = {(t[0], t[1]) for t in truth if t[col] == name}
        won = {(t[0], t[1]) for t in truth if t[col] == name and t[5] == 1}
        out[name] = {
            "PreferPct": 100.0 * len(won) / len(shown),
            "MeanLikert": statistics.mean(ratings),
            "StdLikert": statistics.stdev(ratings),
            "n_cases": len({t[1] for t in truth if t[col] == name}),
            "n_readers": len({t[0] for t in truth if t[col] == name}),
            "n_ratings": len(ratings),
        }
    return out


@pytest.fixture
def study(tmp_path):
    cases = make_cases()
    return cases, write_reader_study(cases, tmp_path / "study", seed=3)


def _write_answers(path: Path, rows) -> Path:
    pd.DataFrame(rows, columns=ANSWER_COLUMNS).to_csv(path, index=False)
    return path


def test_files_and_columns(study):
    cases, paths = study
    assert set(paths) == {"sheet", "answers_template", "key", "readme"}
    assert all(p.is_file() for p in paths.values())
    key = pd.read_csv(paths["key"])
    assert list(key.columns) == KEY_COLUMNS
    assert len(key) == len(cases) * len(RUNS)
    template = pd.read_csv(paths["answers_template"], dtype=str, keep_default_na=False)
    assert list(template.columns) == ANSWER_COLUMNS
    assert list(zip(template["case_id"], template["slot"])) == list(zip(key["case_id"], key["slot"]))
    assert (template[["reader", "likert", "preferred", "comment"]] == "").all().all()
    assert "key.csv" in paths["readme"].read_text() and "reader-study score" in paths["readme"].read_text()


def test_sheet_and_template_never_reveal_the_key(study):
    cases, paths = study
    sheet = paths["sheet"].read_text().lower()
    template = paths["answers_template"].read_text().lower()
    key = paths["key"].read_text().lower()
    for secret in [*RUNS, *RUNS.values(), "harmonicgan", "distance", "cycle"]:
        assert secret.lower() not in sheet, secret
        assert secret.lower() not in template, secret
    for secret in [*RUNS, *RUNS.values()]:
        assert secret in key
    # no external resource: everything the page loads is inline
    assert not re.search(r"(src|href)\s*=\s*[\"'](?!data:|#)", sheet)
    assert "http://" not in sheet and "https://" not in sheet


def _slot_images(sheet: str) -> dict[tuple[str, str], np.ndarray]:
    """(case_id, slot) -> decoded PNG of each output panel; ('case_id', 'input') for the input."""
    images = {}
    for section in re.findall(r'<section class="case".*?</section>', sheet, flags=re.S):
        case_id = re.search(r'<span class="case-id">([^<]+)</span>', section).group(1)
        for slot, uri in re.findall(r'<figure class="panel (?:slot" data-slot="([A-Z])"|input")>'
                                    r'<figcaption>[^<]*</figcaption><img src="data:image/png;base64,([^"]+)"', section):
            png = Image.open(io.BytesIO(base64.b64decode(uri)))
            images[(case_id, slot or "input")] = np.asarray(png)
    return images


def test_slot_images_match_the_key(study):
    cases, paths = study
    images = _slot_images(paths["sheet"].read_text())
    key = pd.read_csv(paths["key"])
    assert len(images) == len(key) + len(cases)
    by_id = {c.case_id: c for c in cases}
    for r in key.itertuples():
        expected = np.round(np.clip(by_id[r.case_id].outputs[r.run], 0, 1) * 255).astype(np.uint8)
        np.testing.assert_array_equal(images[(r.case_id, r.slot)], expected)
    for c in cases:
        np.testing.assert_array_equal(images[(c.case_id, "input")], np.round(c.input_image * 255).astype(np.uint8))


def test_slot_order_random_per_case_and_reproducible(tmp_path):
    cases = make_cases(n=12)
    a = write_reader_study(cases, tmp_path / "a", seed=7)
    b = write_reader_study(cases, tmp_path / "b", seed=7)
    c = write_reader_study(cases, tmp_path / "c", seed=8)
    assert a["key"].read_bytes() == b["key"].read_bytes()
    assert a["sheet"].read_bytes() == b["sheet"].read_bytes()
    key_a, key_c = pd.read_csv(a["key"]), pd.read_csv(c["key"])
    orders = key_a.groupby("case_id")["run"].apply(tuple)
    assert orders.nunique() > 1, "every case got the same slot order"
    assert not key_a.equals(key_c), "another seed gave the same key"
    # each case shows each run exactly once
    assert (key_a.groupby("case_id")["run"].nunique() == len(RUNS)).all()


def test_round_trip_two_readers(study, tmp_path):
    cases, paths = study
    key = pd.read_csv(paths["key"])
    rows1, truth1 = simulate_reader(key, "Dr One", "harmonic", seed=1)
    rows2, truth2 = simulate_reader(key, "Dr Two", "harmonic", seed=2, fickle=0.5)
    files = [_write_answers(tmp_path / "one.csv", rows1), _write_answers(tmp_path / "two.csv", rows2)]
    df = score_reader_study(files, paths["key"])
    truth = truth1 + truth2

    methods = df[df["level"] == "method"].set_index("name")
    assert list(methods.index) == ["cyclegan", "distancegan", "harmonic"]  # the paper's Table 3 order
    assert methods["PreferPct"].sum() == pytest.approx(100.0)
    assert methods.at["harmonic", "PreferPct"] > 50
    for level in ("method", "run"):
        got = df[df["level"] == level].set_index("name")
        for name, exp in expected_scores(truth, level).items():
            for col, value in exp.items():
                assert got.at[name, col] == pytest.approx(value), (level, name, col)
    runs = df[df["level"] == "run"].set_index("name")
    assert dict(runs["method"]) == RUNS


def test_two_runs_of_one_method(tmp_path):
    runs = {"run_ha_1": "harmonic", "run_hb_2": "harmonic", "run_cy_3": "cyclegan"}
    paths = write_reader_study(make_cases(n=5, runs=runs), tmp_path / "study", seed=0)
    key = pd.read_csv(paths["key"])
    rows, truth = simulate_reader(key, "R", "cyclegan", seed=4, fickle=0.6)
    df = score_reader_study([_write_answers(tmp_path / "a.csv", rows)], paths["key"])
    for level in ("method", "run"):
        got = df[df["level"] == level].set_index("name")
        for name, exp in expected_scores(truth, level).items():
            assert got.at[name, "PreferPct"] == pytest.approx(exp["PreferPct"])
            assert got.at[name, "MeanLikert"] == pytest.approx(exp["MeanLikert"])
            assert got.at[name, "n_ratings"] == exp["n_ratings"]


def test_blank_template_rows_are_unanswered(study, tmp_path):
    cases, paths = study
    template = pd.read_csv(paths["answers_template"], dtype=str, keep_default_na=False)
    key = pd.read_csv(paths["key"])
    first = key["case_id"] == cases[0].case_id
    template.loc[first, "reader"] = "Paper Reader"
    template.loc[first, "likert"] = ["2", "4", "5"]
    template.loc[first, "preferred"] = ["0", "0", "1"]
    template.to_csv(tmp_path / "filled.csv", index=False)
    df = score_reader_study([tmp_path / "filled.csv"], paths["key"])
    runs = df[df["level"] == "run"].set_index("name")
    assert (runs["n_cases"] == 1).all()
    best = key[first].iloc[2]["run"]
    assert runs.at[best, "PreferPct"] == 100.0 and runs.at[best, "MeanLikert"] == 5.0
    assert np.isnan(runs.at[best, "StdLikert"])  # one rating: no sample std


def _good_rows(paths):
    key = pd.read_csv(paths["key"])
    rows, _ = simulate_reader(key, "Dr One", "harmonic", seed=1)
    return rows


@pytest.mark.parametrize(
    "mutate, row, words",
    [
        (lambda rows: rows[4].update(case_id="c999"), 6, ["c999", "not in the key"]),
        (lambda rows: rows[1].update(slot="Q"), 3, ["slot 'Q'"]),
        (lambda rows: rows[2].update(likert=6), 4, ["likert '6'", "1 to 5"]),
        (lambda rows: rows[0].update(likert="good"), 2, ["likert 'good'"]),
        (lambda rows: rows[0].update(likert=0), 2, ["likert '0'"]),
        (lambda rows: rows[3].update(preferred=""), 5, ["preferred ''"]),
        (lambda rows: rows[3].update(preferred=2), 5, ["preferred '2'"]),
        (lambda rows: rows[5].update(reader=""), 7, ["reader is empty"]),
    ],
)
def test_bad_answer_names_file_and_row(study, tmp_path, mutate, row, words):
    _, paths = study
    rows = _good_rows(paths)
    mutate(rows)
    path = _write_answers(tmp_path / "bad.csv", rows)
    with pytest.raises(UserInputError) as err:
        score_reader_study([path], paths["key"])
    msg = str(err.value)
    assert str(path) in msg and f"row {row}" in msg, msg
    for w in words:
        assert w in msg, msg
    assert "\n" not in msg


def test_preferred_count_and_missing_slot(study, tmp_path):
    _, paths = study
    rows = _good_rows(paths)
    for r in rows[:3]:
        r["preferred"] = 0  # case 1 has no preferred slot
    path = _write_answers(tmp_path / "nopref.csv", rows)
    with pytest.raises(UserInputError, match=r"nopref\.csv, rows 2, 3, 4: .*marked 0 preferred"):
        score_reader_study([path], paths["key"])

    rows = _good_rows(paths)
    rows[3]["preferred"] = rows[4]["preferred"] = rows[5]["preferred"] = 1
    path = _write_answers(tmp_path / "twopref.csv", rows)
    with pytest.raises(UserInputError, match=r"twopref\.csv, rows 5, 6, 7: .*marked 3 preferred"):
        score_reader_study([path], paths["key"])

    rows = _good_rows(paths)
    del rows[1]
    path = _write_answers(tmp_path / "missing.csv", rows)
    with pytest.raises(UserInputError, match=r"missing\.csv, rows 2, 3: .*did not rate slot\(s\) B"):
        score_reader_study([path], paths["key"])


def test_duplicates_within_and_across_files(study, tmp_path):
    _, paths = study
    rows = _good_rows(paths)
    path = _write_answers(tmp_path / "dup.csv", rows + [dict(rows[0])])
    with pytest.raises(UserInputError, match=rf"dup\.csv, row {len(rows) + 2}: .*twice"):
        score_reader_study([path], paths["key"])
    a = _write_answers(tmp_path / "a.csv", rows)
    b = _write_answers(tmp_path / "b.csv", rows[:3])
    with pytest.raises(UserInputError, match=r"b\.csv, row 2: .*also in .*a\.csv"):
        score_reader_study([a, b], paths["key"])


def test_bad_files(study, tmp_path):
    _, paths = study
    with pytest.raises(UserInputError, match="does not exist"):
        score_reader_study([tmp_path / "nope.csv"], paths["key"])
    (tmp_path / "cols.csv").write_text("reader,case,slot\nx,c000,A\n")
    with pytest.raises(UserInputError, match=r"cols\.csv lacks column\(s\) case_id, likert, preferred"):
        score_reader_study([tmp_path / "cols.csv"], paths["key"])
    (tmp_path / "key.csv").write_text("case_id,slot\nc000,A\n")
    with pytest.raises(UserInputError, match=r"key .*key\.csv lacks column\(s\) run, method"):
        score_reader_study([paths["answers_template"]], tmp_path / "key.csv")
    with pytest.raises(UserInputError, match="no answered rows"):
        score_reader_study([paths["answers_template"]], paths["key"])


def test_answers_from_excel_style_csv(study, tmp_path):
    """A BOM, padded cells and float-formatted numbers (as spreadsheets write them) are accepted."""
    _, paths = study
    rows = _good_rows(paths)
    text = pd.DataFrame(rows, columns=ANSWER_COLUMNS).assign(
        likert=lambda f: f["likert"].astype(float), preferred=lambda f: f["preferred"].astype(float)
    ).to_csv(index=False)
    (tmp_path / "excel.csv").write_text("\ufeff" + text.replace(",A,", ", A ,"), encoding="utf-8")
    df = score_reader_study([tmp_path / "excel.csv"], paths["key"])
    assert df[df["level"] == "method"]["n_ratings"].sum() == len(rows)


def test_writer_refuses_unblinding_text(tmp_path):
    cases = make_cases(n=2)
    with pytest.raises(UserInputError, match="title .*'harmonic'"):
        write_reader_study(cases, tmp_path / "s", title="HarmonicGAN vs the rest")
    cases[1].case_id = "c_run_cy_3"
    with pytest.raises(UserInputError, match="case_id .*run_cy_3"):
        write_reader_study(cases, tmp_path / "s")
    cases[1].case_id = cases[0].case_id
    with pytest.raises(UserInputError, match="appears twice"):
        write_reader_study(cases, tmp_path / "s")
    with pytest.raises(UserInputError, match="no cases"):
        write_reader_study([], tmp_path / "s")


def test_reader_case_validation():
    img = np.zeros((8, 8))
    with pytest.raises(ValueError, match=r"\[-1.000, 1.000\].*to_unit"):
        ReaderCase("c1", "s", 0, "flair2t1", img, {"r": np.linspace(-1, 1, 64).reshape(8, 8)}, {"r": "harmonic"})
    with pytest.raises(ValueError, match="shape"):
        ReaderCase("c1", "s", 0, "flair2t1", img, {"r": np.zeros((8, 9))}, {"r": "harmonic"})
    with pytest.raises(ValueError, match="methods"):
        ReaderCase("c1", "s", 0, "flair2t1", img, {"r": img}, {"q": "harmonic"})
    with pytest.raises(ValueError, match="2-D"):
        ReaderCase("c1", "s", 0, "flair2t1", np.zeros((2, 8, 8)), {"r": img}, {"r": "harmonic"})
    with pytest.raises(ValueError, match="NaN"):
        ReaderCase("c1", "s", 0, "flair2t1", img, {"r": np.full((8, 8), np.nan)}, {"r": "harmonic"})


def test_write_scores_beside_paper(study, tmp_path):
    _, paths = study
    key = pd.read_csv(paths["key"])
    rows, _ = simulate_reader(key, "Dr One", "harmonic", seed=1)
    df = score_reader_study([_write_answers(tmp_path / "a.csv", rows)], paths["key"])
    out = write_scores(df, tmp_path / "scores")
    table = pd.read_csv(out["csv"])
    meth = table[table["level"] == "method"].set_index("name")
    paper = PAPER_TABLE3.set_index("method")
    for m in paper.index:
        assert meth.at[m, "paper_brats_PreferPct"] == pytest.approx(paper.at[m, "PreferPct"])
        assert meth.at[m, "paper_brats_MeanLikert"] == pytest.approx(paper.at[m, "MeanLikert"])
        assert meth.at[m, "PreferPct"] == pytest.approx(df.set_index(["level", "name"]).at[("method", m), "PreferPct"])
    assert table[table["level"] == "run"]["paper_brats_PreferPct"].isna().all()
    md = out["markdown"].read_text()
    assert "NOT this data" in md and "BRATS" in md
    assert "| HarmonicGAN (`harmonic`) | 95 | 4.00 | 0.88 |" in md
    assert "| CycleGAN (`cyclegan`) | 5 | 1.68 | 0.99 |" in md


def test_cli_score(study, tmp_path, capsys):
    _, paths = study
    key = pd.read_csv(paths["key"])
    rows, _ = simulate_reader(key, "Dr One", "harmonic", seed=1)
    answers = _write_answers(tmp_path / "a.csv", rows)
    code = main(["reader-study", "score", str(answers), "--key", str(paths["key"]), "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "harmonic" in captured.out and "PreferPct" in captured.out
    assert (tmp_path / "out" / "reader_study_scores.csv").is_file()
    assert (tmp_path / "out" / "reader_study_scores.md").is_file()

    rows[0]["likert"] = 9
    bad = _write_answers(tmp_path / "bad.csv", rows)
    code = main(["reader-study", "score", str(bad), "--key", str(paths["key"]), "--out", str(tmp_path / "out2")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "bad.csv, row 2" in err


def test_run_labels_that_are_ordinary_words_are_allowed(tmp_path):
    """Short or everyday run labels (folder names like 'a', 'output', 'final') do not block a study."""
    runs = {"a": "harmonic", "output": "cyclegan", "final": "distancegan"}
    paths = write_reader_study(make_cases(n=3, runs=runs), tmp_path / "study", seed=0)
    key = pd.read_csv(paths["key"])
    assert set(key["run"]) == set(runs)
    sheet = paths["sheet"].read_text().lower()
    for method in runs.values():
        assert method not in sheet


# ---- realism study (one run: real or synthetic?) ------------------------------------------------------------------
ONE_RUN = {"run_hx_7": "harmonic"}


def make_realism_cases(n=7, size=24):
    """One output per case plus its real target; every image distinct (target brighter than the output)."""
    cases = make_cases(n=n, runs=ONE_RUN, size=size)
    for i, c in enumerate(cases):
        c.target_image = np.clip(c.outputs["run_hx_7"] + 0.3 + 0.01 * i, 0, 1) * (c.outputs["run_hx_7"] > 0)
    return cases


def _realism_images(sheet: str) -> dict[str, np.ndarray]:
    out = {}
    for section in re.findall(r'<section class="case".*?</section>', sheet, flags=re.S):
        case_id = re.search(r'<span class="case-id">([^<]+)</span>', section).group(1)
        (uri,) = re.findall(r'<img src="data:image/png;base64,([^"]+)"', section)
        out[case_id] = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri))))
    return out


def test_realism_study_shows_one_blinded_image_per_case(tmp_path):
    cases = make_realism_cases(n=7)
    paths = write_realism_study(cases, tmp_path / "study", seed=3)
    key = pd.read_csv(paths["key"])
    assert list(key.columns) == REALISM_KEY_COLUMNS and sorted(key["case_id"]) == [c.case_id for c in cases]
    assert (key["shown"] == "real").sum() == 3 and (key["shown"] == "synthetic").sum() == 4  # n // 2 real
    assert list(key["case_id"]) != [c.case_id for c in cases], "cases are shown in a random order"
    sheet = paths["sheet"].read_text()
    images = _realism_images(sheet)
    assert list(images) == list(key["case_id"])  # the sheet's order is the key's
    by_id = {c.case_id: c for c in cases}
    for r in key.itertuples():
        c = by_id[r.case_id]
        shown = c.target_image if r.shown == "real" else c.outputs["run_hx_7"]
        np.testing.assert_array_equal(images[r.case_id], np.round(shown * 255).astype(np.uint8))
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", sheet).lower()
    for secret in ("run_hx_7", "harmonic", "input ("):
        assert secret not in text
    template = pd.read_csv(paths["answers_template"], dtype=str, keep_default_na=False)
    assert list(template.columns) == REALISM_ANSWER_COLUMNS and list(template["case_id"]) == list(key["case_id"])
    again = write_realism_study(cases, tmp_path / "again", seed=3)
    assert again["key"].read_bytes() == paths["key"].read_bytes()
    assert not pd.read_csv(write_realism_study(cases, tmp_path / "other", seed=4)["key"]).equals(key)
    with pytest.raises(UserInputError, match="one output and the real target"):
        write_realism_study(make_cases(n=2), tmp_path / "multi")


def _wilson(k, n, z=1.959963984540054):
    """Wilson's score interval by its formula (Wilson 1927), independent of SciPy."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return 100 * (centre - half), 100 * (centre + half)


def _realism_key(tmp_path):
    key = pd.DataFrame({"case_id": ["c1", "c2", "c3", "c4", "c5"], "shown": ["synthetic", "synthetic", "synthetic", "real", "real"],
                        "run": "run_hx_7", "method": "harmonic"})
    key.to_csv(tmp_path / "key.csv", index=False)
    return tmp_path / "key.csv"


def test_realism_scores_match_a_hand_computation(tmp_path, capsys):
    key = _realism_key(tmp_path)
    # reader A: synthetic c1 real, c2 synthetic, c3 real; real c4 real, c5 synthetic
    # reader B: synthetic c1 real, c2 real, c3 left blank; real c4 real, c5 real
    a = pd.DataFrame({"reader": "A", "case_id": ["c1", "c2", "c3", "c4", "c5"],
                      "answer": ["real", "synthetic", "Real", "real", "synthetic"], "comment": ""})
    b = pd.DataFrame({"reader": "B", "case_id": ["c1", "c2", "c3", "c4", "c5"], "answer": ["real", "real", "", "real", "real"]})
    a.to_csv(tmp_path / "a.csv", index=False)
    b.to_csv(tmp_path / "b.csv", index=False)  # no comment column: allowed
    df = score_reader_study([tmp_path / "a.csv", tmp_path / "b.csv"], key)
    assert list(df.columns) == REALISM_SCORE_COLUMNS
    got = df.set_index(["level", "name", "shown"])
    expected = {  # (level, name, shown): (judged real, judgements, images, readers)
        ("run", "run_hx_7", "synthetic"): (4, 5, 3, 2), ("run", "run_hx_7", "real"): (3, 4, 2, 2),
        ("reader", "A", "synthetic"): (2, 3, 3, 1), ("reader", "A", "real"): (1, 2, 2, 1),
        ("reader", "B", "synthetic"): (2, 2, 2, 1), ("reader", "B", "real"): (2, 2, 2, 1),
    }
    assert len(df) == len(expected)
    for idx, (k, n, images, readers) in expected.items():
        row = got.loc[idx]
        assert (row.judged_real, row.n_judgements, row.n_images, row.n_readers) == (k, n, images, readers), idx
        assert row.PctJudgedReal == pytest.approx(100 * k / n)
        assert (row.CILow, row.CIHigh) == pytest.approx(_wilson(k, n), abs=1e-9), idx
        assert row.method == "harmonic"
    # the same numbers through the CLI, and its Markdown: accuracy (1 + 3 correct of 9)
    code = main(["reader-study", "score", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--key", str(key),
                 "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "PctJudgedReal" in captured.out
    csv = pd.read_csv(tmp_path / "out" / "reader_study_scores.csv")
    assert csv.loc[(csv.level == "run") & (csv.shown == "synthetic"), "PctJudgedReal"].item() == pytest.approx(80.0)
    md = (tmp_path / "out" / "reader_study_scores.md").read_text()
    low, high = _wilson(4, 9)
    assert f"44.4% (4 of 9; 95% interval {low:.1f} - {high:.1f})" in md
    assert "| run_hx_7 | synthetic | 80.0 |" in md


def test_realism_answers_are_checked(tmp_path, capsys):
    key = _realism_key(tmp_path)
    pd.DataFrame({"reader": "A", "case_id": ["c1", "c2"], "answer": ["real", "maybe"]}).to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(UserInputError, match=r"a.csv, row 3: answer 'maybe' must be real or synthetic"):
        score_reader_study([tmp_path / "a.csv"], key)
    pd.DataFrame({"reader": "A", "case_id": ["c1", "c1"], "answer": ["real", "real"]}).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(UserInputError, match="twice"):
        score_reader_study([tmp_path / "d.csv"], key)
    pd.DataFrame({"reader": "A", "case_id": ["c1"], "slot": "A", "likert": 3, "preferred": 1}).to_csv(tmp_path / "p.csv", index=False)
    code = main(["reader-study", "score", str(tmp_path / "p.csv"), "--key", str(key), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "lacks column(s) answer" in err and "realism study" in err
