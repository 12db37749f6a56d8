"""The demo's (pipelines/quickstart.py) run-state logic and verdict lines (pretrained and live runs), on tiny real runs
of the synthetic store."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mri_harmonic.training.config import load_train_config
from mri_harmonic.training.trainer import train

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipelines"))
import quickstart  # noqa: E402

TINY = ["model.ngf=8", "model.ndf=8", "model.n_blocks=2", "loss.smoothness.patch_size=8", "device=cpu",
        "log_every=1", "sample_every=0", "checkpoint_every=1000", "tensorboard=false"]


def write_summary(run: Path, **fields) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "summary.json").write_text(json.dumps(fields))


def test_a_run_is_finished_only_when_it_says_so_or_reached_its_end(tmp_path):
    run = tmp_path / "run"
    assert quickstart.training_status(run)["finished"] is False  # never trained
    for stopped, finished in (("time_budget", False), ("signal", False), ("max_steps", True), ("completed", True)):
        write_summary(run, stopped=stopped, step=7, elapsed_s=3.0)
        assert quickstart.training_status(run)["finished"] is finished, stopped
    write_summary(run, stopped="max_steps", step=7, finished=False, planned_steps=9)  # the trainer's own field wins
    status = quickstart.training_status(run)
    assert status["finished"] is False and (status["step"], status["planned"]) == (7, 9)


def test_a_cut_run_continues_with_a_fresh_budget_and_then_finishes(synthetic_store, tmp_path):
    run, config = tmp_path / "run", tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"ngf": 8, "ndf": 8, "n_blocks": 2}, "loss": {"smoothness": {"patch_size": 8}}, "device": "cpu",
        "log_every": 1, "sample_every": 0, "tensorboard": False, "max_steps": 3, "time_budget_minutes": 0.000001}))
    cfg = load_train_config(config)
    train(synthetic_store, run, "flair2t1", cfg, progress=False)  # the budget stops it after its first step
    status = quickstart.training_status(run)
    assert (status["finished"], status["step"], status["planned"], status["stopped"]) == (False, 1, 3, "time_budget")

    sets = quickstart.resume_overrides(run, str(config), [], budget_minutes=None)
    (budget,) = [s for s in sets if s.startswith("time_budget_minutes=")]
    assert float(budget.split("=")[1]) == pytest.approx(status["elapsed_s"] / 60 + 0.000001, abs=1e-3)
    again = quickstart.resume_overrides(run, str(config), [], budget_minutes=5)
    assert float(again[-1].split("=")[1]) == pytest.approx(status["elapsed_s"] / 60 + 5, abs=1e-3)
    train(synthetic_store, run, "flair2t1", load_train_config(config, again), resume=True, progress=False)
    status = quickstart.training_status(run)
    assert status["finished"] and status["step"] == 3
    assert quickstart.resume_overrides(tmp_path / "new", str(config), ["seed=1"], None) == ["seed=1"]


def test_verdict_line_reads_the_evaluation(synthetic_store, tmp_path):
    from mri_harmonic.evaluation.evaluate import evaluate

    run = tmp_path / "run"
    train(synthetic_store, run, "flair2t1", load_train_config(None, [*TINY, "max_steps=2"]), progress=False)
    report = tmp_path / "report"
    result = evaluate([run], synthetic_store, split="val", directions="flair2t1", out_dir=report, device="cpu",
                      progress=False)
    s = result.summary
    pick = lambda r, m: float(s[(s.run == r) & (s.metric == m) & (s.region == "slice") & (s.scale == "0-255")  # noqa: E731
                                & (s.direction == "flair2t1")]["mean"].iloc[0])
    mae, mae0, ssim, ssim0 = pick("run", "MAE"), pick("input-as-output", "MAE"), pick("run", "SSIM"), pick("input-as-output", "SSIM")
    line = quickstart.verdict(report, quickstart.training_status(run))
    assert line.startswith(f"Flair->T1 on 4 validation subjects: MAE {mae:.1f} (untranslated input {mae0:.1f}), "
                           f"SSIM {ssim:.2f} ({ssim0:.2f}): ")
    expected = {(True, True): "better than the untranslated input on MAE and SSIM",
                (True, False): "better than the untranslated input on MAE only",
                (False, True): "better than the untranslated input on SSIM only",
                (False, False): "NOT better than the untranslated input"}[(mae < mae0, ssim > ssim0)]
    assert line.endswith(expected)
    cut = quickstart.verdict(report, {"finished": False, "step": 1, "planned": 9600})
    assert cut.startswith("after step 1 of 9,600 (training not finished): Flair->T1")

    # the same judgement on hand-made figures, both ways
    summary = pd.read_csv(report / "summary.csv")
    rows = (summary.region == "slice") & (summary.scale == "0-255") & (summary.direction == "flair2t1")
    for run_mae, run_ssim, tail in ((10.0, 0.9, "on MAE and SSIM"), (99.0, 0.0, "NOT better than the untranslated input")):
        summary.loc[rows & (summary.run == "run") & (summary.metric == "MAE"), "mean"] = run_mae
        summary.loc[rows & (summary.run == "run") & (summary.metric == "SSIM"), "mean"] = run_ssim
        summary.to_csv(report / "summary.csv", index=False)
        assert quickstart.verdict(report, {"finished": True}).endswith(tail)

    # several runs in one evaluation: each line names its run's figures; the live run's line says why it lags
    summary = pd.read_csv(report / "summary.csv")
    other = summary[summary.run == "run"].copy()
    other["run"], other["mean"] = "phantom-harmonic", other["mean"] * 0 + 7.0
    pd.concat([summary, other]).to_csv(report / "summary.csv", index=False)
    assert quickstart.figures(report, "phantom-harmonic")["MAE"] == 7.0
    assert quickstart.figures(report, "run")["MAE"] == 99.0
    with pytest.raises(ValueError, match="name one"):
        quickstart.figures(report)
    assert quickstart.verdict(report, None, run="phantom-harmonic").startswith(
        f"Flair->T1 on 4 validation subjects: MAE 7.0 (untranslated input {mae0:.1f}), SSIM 7.00")


def test_live_line_says_when_the_short_run_does_not_beat_the_input_yet(tmp_path, monkeypatch):
    status = {"finished": True, "step": 2400, "planned": 2400}
    for line, tail in (("…: better than the untranslated input on MAE and SSIM", ""),
                       ("…: NOT better than the untranslated input",
                        " — 2,400 steps of the pretrained models' 9,600, too short a budget to beat it on both yet")):
        monkeypatch.setattr(quickstart, "verdict", lambda *a, line=line, **k: line)
        assert quickstart.live_verdict(tmp_path, status, 9600) == line + tail
    cut = {"finished": False, "step": 423, "planned": 2400}  # a cut run names the steps it has
    assert quickstart.live_verdict(tmp_path, cut, 9600).endswith(
        " — 423 steps so far of the pretrained models' 9,600, too short a budget to beat it on both yet")


def test_without_its_pretrained_models_the_demo_says_why_in_one_line_and_goes_on(tmp_path):
    from mri_harmonic.checkpoint import latest_path

    here, gone = tmp_path / "here", tmp_path / "gone"
    latest_path(here).parent.mkdir(parents=True)
    latest_path(here).write_bytes(b"")
    assert quickstart.missing_pretrained({"harmonic": here, "cyclegan": gone}) == [str(gone)]
    assert quickstart.missing_pretrained({"harmonic": here}) == []
    line = quickstart.NO_PRETRAINED.format(missing=str(gone))
    assert "\n" not in line and "make pretrained" in line and f"({gone} missing;" in line
    cited = line.split("see ")[1].split(" in a fresh clone")[0]  # the file it points to ships with the repository
    assert (Path(quickstart.ROOT) / cited).is_file(), cited
