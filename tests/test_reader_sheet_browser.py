"""The reader sheet in a real headless browser: fill in by clicking, save the CSV, reload, score it with the key.

Needs Debian's chromium (/usr/bin/chromium) and the ``playwright`` Python package (``.ci/install-browser.sh``);
playwright drives the system chromium (never ``playwright install``). Skipped, with the reason, when either is absent.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest
from test_reader_study import expected_scores, make_cases, make_realism_cases, simulate_reader  # noqa: E402  (tests/ is on sys.path)

from mri_harmonic.evaluation.reader_study import (
    ANSWER_COLUMNS,
    REALISM_ANSWER_COLUMNS,
    score_reader_study,
    write_reader_study,
    write_realism_study,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"Debian chromium not found at {CHROMIUM}; run .ci/install-browser.sh"
    if importlib.util.find_spec("playwright") is None:
        return "python package playwright not installed; run .ci/install-browser.sh"
    return None


pytestmark = [pytest.mark.browser, pytest.mark.skipif(_missing() is not None, reason=_missing() or "")]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    pg.errors, pg.urls = [], []
    pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))
    pg.on("request", lambda req: pg.urls.append(req.url))
    yield pg
    context.close()


def _answer(page, index_of, row):
    i = index_of[row["case_id"]]
    page.click(f'input[name="likert-{i}-{row["slot"]}"][value="{row["likert"]}"]')
    if row["preferred"]:
        page.click(f'input[name="preferred-{i}"][value="{row["slot"]}"]')
    if row["comment"]:
        page.fill(f'#case-{i} input.comment[data-slot="{row["slot"]}"]', row["comment"])


def _save(page, path: Path) -> Path:
    with page.expect_download() as info:
        page.click("#save-answers")
    download = info.value
    assert download.suggested_filename == "reader_answers_Dr_Browser_MD.csv"
    download.save_as(path)
    return path


def test_fill_save_reload_and_score(page, tmp_path):
    cases = make_cases(n=4)
    paths = write_reader_study(cases, tmp_path / "study", seed=11)
    key = pd.read_csv(paths["key"])
    rows, truth = simulate_reader(key, "Dr Browser, MD", "harmonic", seed=5, fickle=0.5)
    for r in rows:
        if r["comment"]:
            r["comment"] = 'sharp, "clean" edges'
    index_of = {c.case_id: i for i, c in enumerate(cases)}
    last = cases[-1].case_id

    page.goto(paths["sheet"].as_uri())
    assert page.inner_text("#progress") == "0 / 4 answered"
    page.fill("#reader-name", "Dr Browser, MD")
    for r in rows:
        if r["case_id"] != last:
            _answer(page, index_of, r)
    # last case: ratings but no preferred slot -> incomplete, left out of the file after a confirm()
    for r in rows:
        if r["case_id"] == last:
            _answer(page, index_of, {**r, "preferred": 0, "comment": ""})
    assert page.inner_text("#progress") == "3 / 4 answered"
    assert "3 of 3 rated, no preferred yet" in page.inner_text(f"#case-{index_of[last]} .status")

    dialogs: list[str] = []

    def accept(dialog):
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    partial = _save(page, tmp_path / "partial.csv")
    assert dialogs and "3 / 4 cases are complete" in dialogs[0]
    raw = pd.read_csv(partial, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert list(raw.columns) == ANSWER_COLUMNS
    assert set(raw["reader"]) == {"Dr Browser, MD"} and last not in set(raw["case_id"])
    assert 'sharp, "clean" edges' in set(raw["comment"])
    df = score_reader_study([partial], paths["key"])
    _assert_scores(df, [t for t in truth if t[1] != last])

    # a reload keeps the answers (localStorage)
    page.reload()
    assert page.input_value("#reader-name") == "Dr Browser, MD"
    assert page.inner_text("#progress") == "3 / 4 answered"
    for r in rows:
        i = index_of[r["case_id"]]
        assert page.is_checked(f'input[name="likert-{i}-{r["slot"]}"][value="{r["likert"]}"]')
        if r["preferred"] and r["case_id"] != last:
            assert page.is_checked(f'input[name="preferred-{i}"][value="{r["slot"]}"]')
        if r["comment"] and r["case_id"] != last:
            assert page.input_value(f'#case-{i} input.comment[data-slot="{r["slot"]}"]') == r["comment"]

    # finish the last case and save again: complete file, no confirm
    for r in rows:
        if r["case_id"] == last and r["preferred"]:
            page.click(f'input[name="preferred-{index_of[last]}"][value="{r["slot"]}"]')
    assert page.inner_text("#progress") == "4 / 4 answered"
    n_dialogs = len(dialogs)
    full = _save(page, tmp_path / "full.csv")
    assert len(dialogs) == n_dialogs
    _assert_scores(score_reader_study([full], paths["key"]), truth)

    page.screenshot(path=str(tmp_path / "reader_sheet.png"), full_page=False)
    assert page.errors == []
    assert all(u.startswith(("file:", "data:", "blob:")) for u in page.urls), page.urls


def _assert_scores(df, truth):
    for level in ("method", "run"):
        got = df[df["level"] == level].set_index("name")
        for name, exp in expected_scores(truth, level).items():
            for col, value in exp.items():
                assert got.at[name, col] == pytest.approx(value), (level, name, col)


def test_save_needs_a_name_and_clear_forgets(page, tmp_path):
    cases = make_cases(n=2)
    paths = write_reader_study(cases, tmp_path / "study", seed=0)
    page.goto(paths["sheet"].as_uri())
    messages: list[str] = []

    def accept(dialog):
        messages.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.click('input[name="likert-0-A"][value="4"]')
    page.click("#save-answers")
    assert messages and "name" in messages[-1]
    assert page.evaluate("document.activeElement.id") == "reader-name"

    page.click("#clear-answers")  # confirm accepted
    assert not page.is_checked('input[name="likert-0-A"][value="4"]')
    page.reload()
    assert not page.is_checked('input[name="likert-0-A"][value="4"]')
    assert page.errors == []


def test_print_layout_hides_controls(page, tmp_path):
    paths = write_reader_study(make_cases(n=2), tmp_path / "study", seed=0)
    page.goto(paths["sheet"].as_uri())
    assert page.is_visible("#save-answers")
    page.emulate_media(media="print")
    assert not page.is_visible("#save-answers")
    assert not page.is_visible("#view-zoom")
    assert page.is_visible("#case-1 figure.slot img")
    assert page.evaluate("getComputedStyle(document.querySelector('#case-0')).breakInside") == "avoid"


def test_realism_sheet_fill_save_reload_and_score(page, tmp_path):
    """One run's realism sheet: one image per case, real or synthetic; the saved file scores as the answers say."""
    paths = write_realism_study(make_realism_cases(n=5), tmp_path / "study", seed=2)
    key = pd.read_csv(paths["key"])
    answers = dict(zip(key["case_id"], ["real", "synthetic", "real", "real", "synthetic"]))  # in display order
    page.goto(paths["sheet"].as_uri())
    assert page.inner_text("#progress") == "0 / 5 answered"
    assert page.locator("section.case img").count() == 5 and page.locator("input[data-kind=likert]").count() == 0
    page.fill("#reader-name", "Dr Browser, MD")
    for i, case_id in enumerate(key["case_id"][:4]):
        page.click(f'input[name="answer-{i}"][value="{answers[case_id]}"]')
    page.fill('#case-0 input.comment', 'too "smooth", maybe')
    assert page.inner_text("#progress") == "4 / 5 answered"
    assert page.inner_text("#case-4 .status") == "not answered yet"
    dialogs: list[str] = []

    def accept(dialog):
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    partial = _save(page, tmp_path / "partial.csv")
    assert dialogs and "4 / 5 cases are complete" in dialogs[0]
    raw = pd.read_csv(partial, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert list(raw.columns) == REALISM_ANSWER_COLUMNS
    assert dict(zip(raw["case_id"], raw["answer"])) == {c: answers[c] for c in key["case_id"][:4]}
    assert raw["comment"].iloc[0] == 'too "smooth", maybe'

    page.reload()  # answers kept; finish the last case and save the complete file
    assert page.inner_text("#progress") == "4 / 5 answered"
    assert page.is_checked(f'input[name="answer-1"][value="{answers[key["case_id"][1]]}"]')
    page.click(f'input[name="answer-4"][value="{answers[key["case_id"][4]]}"]')
    full = _save(page, tmp_path / "full.csv")
    df = score_reader_study([full], paths["key"]).set_index(["level", "shown"]).loc["run"]
    truth = key.assign(answer=key["case_id"].map(answers))
    for shown in ("synthetic", "real"):
        sub = truth[truth["shown"] == shown]
        assert df.at[shown, "judged_real"] == (sub["answer"] == "real").sum()
        assert df.at[shown, "n_judgements"] == len(sub)
    assert page.errors == []
