"""`mri-harmonic evaluate`: two tiny real training runs on the synthetic store, scored end to end; tumour flags on
constructed cases; bad input; the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_synthetic_store
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from mri_harmonic.errors import UserInputError
from mri_harmonic.evaluation.evaluate import evaluate, parse_directions, pick_slices, run_labels
from mri_harmonic.evaluation.tables import PAPER_LABEL, paper_table1

TINY = {"model": {"ngf": 4, "ndf": 4, "n_blocks": 1}, "max_steps": 2, "log_every": 1, "sample_every": 0,
        "checkpoint_every": 2, "device": "cpu", "tensorboard": False, "sample_slices": 1}


def train_tiny(store, out, method="harmonic", direction="flair2t1", **extra):
    from mri_harmonic.config import from_dict
    from mri_harmonic.training.config import TrainConfig
    from mri_harmonic.training.trainer import train

    cfg = from_dict(TrainConfig, {**TINY, "loss": {"method": method}, **extra})
    train(str(store), str(out), direction, cfg, progress=False)
    return out


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    store = make_synthetic_store(root / "store")
    runs = [train_tiny(store, root / "harmonic-run", "harmonic"), train_tiny(store, root / "cyclegan-run", "cyclegan", direction="t12flair")]
    result = evaluate([str(r) for r in runs], store, out_dir=root / "report", reader_study=3, batch_size=5,
                      device="cpu", samples=3, progress=False)
    return root, store, runs, result


# ---- end to end ----------------------------------------------------------------------------------------------------
def test_outputs_written(evaluated):
    root, _, _, result = evaluated
    out = root / "report"
    for name in ["per_slice.csv", "summary.csv", "table1.csv", "table1.md", "evaluation.json", "report.md", "figures/samples_flair2t1.png", "figures/samples_t12flair.png",
                 "figures/metrics_slice.png", "figures/loss_curves.png", "reader_study/sheet.html", "reader_study/key.csv"]:
        assert (out / name).is_file(), name
    per_slice = pd.read_csv(out / "per_slice.csv")
    assert list(per_slice.columns) == ["subject", "slice_index", "run", "method", "group", "seed", "direction", "region",
                                       "scale", "MAE", "MSE", "PSNR", "SSIM"]
    # 12 test slices x (2 runs + the input-as-output reference) x 2 directions x 2 scales x 3 regions (every
    # synthetic slice has a tumour)
    assert len(per_slice) == 12 * 3 * 2 * 2 * 3
    assert set(per_slice["region"]) == {"slice", "brain", "tumour"} and set(per_slice["scale"]) == {"0-255", "0-1"}
    # tumour checks: one row per slice x (2 runs + the reference) x 2 directions; lesions add up; the summary's
    # rates are the per-slice and per-lesion tables' own
    tum, les = pd.read_csv(out / "tumour_per_slice.csv"), pd.read_csv(out / "tumour_lesions.csv")
    summ = pd.read_csv(out / "tumour_summary.csv").set_index(["run", "direction"])
    assert len(tum) == 12 * 3 * 2 and tum["n_lesions"].sum() == len(les) > 0
    for (run, d), g in tum[tum["scored"]].groupby(["run", "direction"]):
        sel = les[(les.run == run) & (les.direction == d)]
        assert summ.loc[(run, d), "wrong_direction_frac"] == pytest.approx((sel.outcome == "wrong_direction").mean())
        assert summ.loc[(run, d), "flagged_slice_frac"] == pytest.approx(g["flagged"].mean())
    key = pd.read_csv(out / "reader_study" / "key.csv")
    assert key["case_id"].nunique() == 3 and set(key["method"]) == {"harmonic", "cyclegan"}


def test_per_slice_metrics_match_independent_reference(evaluated):
    """Re-translate one slice by hand and score it with scikit-image / NumPy."""
    from mri_harmonic.checkpoint import load_run
    from mri_harmonic.data.store import SliceStore

    root, store_path, runs, result = evaluated
    store = SliceStore(store_path)
    row = store.split_manifest("test").iloc[4]
    r = int(row["row"])
    flair, t1 = (np.asarray(store.array("test", m)[r], dtype=np.float32) for m in ("flair", "t1"))
    brain = np.asarray(store.array("test", "mask")[r]) > 0
    net = load_run(runs[1], device="cpu").generator_for("flair")  # the t12flair-trained run still maps flair -> t1
    with torch.no_grad():
        y = net(torch.from_numpy(flair * 2 - 1)[None, None])[0, 0].numpy()
    pred = np.clip((y + 1) / 2, 0, 1) * brain
    ps = result.per_slice
    got = ps[(ps.subject == row["subject"]) & (ps.slice_index == row["slice_index"]) & (ps.run == "cyclegan-run")
             & (ps.direction == "flair2t1") & (ps.scale == "0-255")].set_index("region")
    p255, t255 = pred.astype(np.float64) * 255, t1.astype(np.float64) * 255
    assert got.loc["slice", "MAE"] == pytest.approx(np.abs(p255 - t255).mean(), rel=1e-4)
    assert got.loc["slice", "PSNR"] == pytest.approx(peak_signal_noise_ratio(t255, p255, data_range=255), rel=1e-4)
    ref_ssim = structural_similarity(t255, p255, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert got.loc["slice", "SSIM"] == pytest.approx(ref_ssim, abs=1e-4)
    assert got.loc["brain", "MSE"] == pytest.approx(((p255 - t255)[brain] ** 2).mean(), rel=1e-4)


def test_table1_layout_and_paper_block(evaluated):
    root, _, _, result = evaluated
    t1 = pd.read_csv(root / "report" / "table1.csv")
    ours = t1[t1["source"] == "ours"]
    assert list(ours["run"]) == ["harmonic-run", "cyclegan-run", "input-as-output"]
    assert list(ours["method"]) == ["harmonic", "cyclegan", "identity"]
    for d in ("flair2t1", "t12flair"):
        for m in ("MAE", "MSE", "PSNR", "SSIM"):
            assert f"{d} {m}" in t1.columns
    # our Table 1 = the mean of the per-slice whole-slice 0-255 values
    ps = result.per_slice
    sel = ps[(ps.run == "harmonic-run") & (ps.direction == "t12flair") & (ps.region == "slice") & (ps.scale == "0-255")]
    assert ours.iloc[0]["t12flair MAE"] == pytest.approx(sel["MAE"].mean())
    paper = t1[t1["source"] == PAPER_LABEL]
    assert paper.set_index("method").loc["HarmonicGAN-Histogram", "flair2t1 MAE"] == pytest.approx(6.38)
    assert len(paper) == len(paper_table1())
    md = (root / "report" / "table1.md").read_text()
    assert PAPER_LABEL in md and md.index("### ours") < md.index(PAPER_LABEL)


def test_report_lists_inputs_and_conventions(evaluated):
    root, store, runs, result = evaluated
    report = (root / "report" / "report.md").read_text()
    meta = json.loads((root / "report" / "evaluation.json").read_text())
    for run in meta["runs"]:
        assert run["config_hash"] in report and run["same_preprocessing_as_training"]
    assert str(store) in report and "x 255" in report and "K1 0.01" in report and "PSNR = inf" in report
    assert "![samples_flair2t1](figures/samples_flair2t1.png)" in report
    assert "Cohen, Luck & Honari" in report
    # two runs: paired differences against the CycleGAN run, consistent with the per-slice table
    assert result.baseline == "cyclegan" and "## Paired comparison against cyclegan " in report
    assert "covers only these trained runs" in report  # one seed per method: the interval says what it covers
    cmp = pd.read_csv(root / "report" / "comparison.csv")
    per = pd.read_csv(root / "report" / "per_slice.csv")
    sel = per[(per.region == "slice") & (per.scale == "0-255") & (per.direction == "flair2t1")]
    diff = sel[sel.run == "harmonic-run"]["MAE"].mean() - sel[sel.run == "cyclegan-run"]["MAE"].mean()
    row = cmp[(cmp.group == "harmonic") & (cmp.direction == "flair2t1") & (cmp.metric == "MAE")].iloc[0]
    assert row["mean_diff"] == pytest.approx(diff, abs=1e-6)
    assert row["n_seeds"] == 1 and row["verdict"].startswith("no verdict")


def test_runs_of_one_method_are_pooled_over_seeds(evaluated, tmp_path):
    """Runs whose configs differ only in `seed` form one group; the comparison pairs them seed by seed and pools."""
    _, store, runs, _ = evaluated
    extra = [train_tiny(store, tmp_path / "harmonic-s1", "harmonic", seed=1),
             train_tiny(store, tmp_path / "cyclegan-s1", "cyclegan", seed=1)]
    cyc0 = train_tiny(store, tmp_path / "cyclegan-s0", "cyclegan")
    result = evaluate([str(runs[0]), str(extra[0]), str(cyc0), str(extra[1])], store, out_dir=tmp_path / "r",
                      device="cpu", samples=0, progress=False, directions="flair2t1", reference=False)
    ps = result.per_slice
    assert dict(ps.groupby("run")["group"].first()) == {"harmonic-run": "harmonic", "harmonic-s1": "harmonic",
                                                        "cyclegan-s0": "cyclegan", "cyclegan-s1": "cyclegan"}
    assert dict(ps.groupby("run")["seed"].first()) == {"harmonic-run": 0, "harmonic-s1": 1, "cyclegan-s0": 0, "cyclegan-s1": 1}
    row = result.comparison.set_index("metric").loc["MAE"]
    assert result.baseline == "cyclegan" and row["group"] == "harmonic" and row["n_seeds"] == 2 and row["n_subjects"] == 4
    sel = ps[(ps.region == "slice") & (ps.scale == "0-255")].set_index(["run", "subject", "slice_index"])["MAE"]
    per_seed = [(sel["harmonic-run"] - sel["cyclegan-s0"]).groupby(level="subject").mean(),
                (sel["harmonic-s1"] - sel["cyclegan-s1"]).groupby(level="subject").mean()]
    assert row["mean_diff"] == pytest.approx(np.mean([d.mean() for d in per_seed]))
    assert row["verdict"] == "no verdict: 4 test subjects (< 5)"
    # figures and the reader study show one run per group (its lowest seed); the metrics keep every run
    from mri_harmonic.evaluation.reader_study import KEY_COLUMNS

    shown = evaluate([str(runs[0]), str(extra[0]), str(cyc0), str(extra[1])], store, out_dir=tmp_path / "r3",
                     device="cpu", samples=2, reader_study=2, progress=False, directions="flair2t1", reference=False)
    key = pd.read_csv(tmp_path / "r3" / "reader_study" / "key.csv")
    assert list(key.columns) == KEY_COLUMNS and sorted(set(key["run"])) == ["cyclegan-s0", "harmonic-run"]
    report = (tmp_path / "r3" / "report.md").read_text()
    assert "not shown: harmonic-s1, cyclegan-s1" in report and set(shown.per_slice["run"]) == set(ps["run"])
    # the same config and seed twice cannot be pooled
    with pytest.raises(UserInputError, match="same config and the same seed"):
        evaluate([str(cyc0), str(runs[1])], store, out_dir=tmp_path / "r2", device="cpu", samples=0, progress=False,
                 directions="flair2t1", reference=False)


def test_reference_row_scores_the_input_itself(evaluated):
    """The input-as-output row is the untranslated source slice (zeroed outside the brain) against the target,
    scored with scikit-image; it is in the tables and the comparison, not in the figures or reader study."""
    from mri_harmonic.data.store import SliceStore

    root, store_path, _, result = evaluated
    store = SliceStore(store_path)
    ps = result.per_slice
    for pos in (0, 7):
        row = store.split_manifest("test").iloc[pos]
        r = int(row["row"])
        flair, t1 = (np.asarray(store.array("test", m)[r], dtype=np.float64) for m in ("flair", "t1"))
        brain = np.asarray(store.array("test", "mask")[r]) > 0
        for d, src, tgt in (("flair2t1", flair, t1), ("t12flair", t1, flair)):
            got = ps[(ps.subject == row["subject"]) & (ps.slice_index == row["slice_index"]) & (ps.run == "input-as-output")
                     & (ps.direction == d) & (ps.scale == "0-255") & (ps.region == "slice")].iloc[0]
            p255, t255 = src * brain * 255, tgt * 255
            assert got["method"] == "identity"
            assert got["MAE"] == pytest.approx(np.abs(p255 - t255).mean(), rel=1e-4)
            ref = structural_similarity(t255, p255, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
            assert got["SSIM"] == pytest.approx(ref, abs=1e-4)
    cmp = pd.read_csv(root / "report" / "comparison.csv")
    assert "input-as-output" in set(cmp["group"])
    assert "input-as-output" not in set(pd.read_csv(root / "report" / "reader_study" / "key.csv")["method"])
    assert "input-as-output" in set(result.tumour["run"])
    assert "Reference row `input-as-output`" in (root / "report" / "report.md").read_text()


def test_reference_row_can_be_left_out(evaluated, tmp_path):
    root, store, runs, _ = evaluated
    result = evaluate([str(runs[0])], store, out_dir=tmp_path / "r", device="cpu", samples=0, progress=False,
                      reference=False, directions="flair2t1")
    assert set(result.per_slice["run"]) == {"harmonic-run"} and result.comparison is None


# ---- small helpers -------------------------------------------------------------------------------------------------
def test_pick_slices_prefers_tumour_spreads_subjects_and_is_seeded():
    man = pd.DataFrame({"tumour_fraction": [0, 0, 0.1, 0, 0.2, 0, 0.3],
                        "subject": ["a", "a", "a", "b", "b", "c", "c"]})
    picked = pick_slices(man, 3, seed=0)
    assert sorted(picked) == [2, 4, 6] and pick_slices(man, 3, seed=0) == picked
    assert len(pick_slices(man, 5, seed=1)) == 5 and pick_slices(man, 0) == []
    many = pd.DataFrame({"tumour_fraction": [0.1] * 12, "subject": ["a"] * 9 + ["b", "c", "d"]})
    for seed in range(5):
        assert set(many["subject"][pick_slices(many, 4, seed=seed)]) == {"a", "b", "c", "d"}


def test_run_labels_unique():
    from pathlib import Path

    assert run_labels([Path("a/run"), Path("b/run"), Path("c/other")]) == ["a/run", "b/run", "other"]
    assert len(set(run_labels([Path("x/run"), Path("x/run")]))) == 2
    # a run given relative to here and one elsewhere with the same name: no "/run" or "run - run"
    here = Path.cwd().name
    assert run_labels([Path("run"), Path("../x/run")]) == [f"{here}/run", "x/run"]
    assert run_labels([Path(".")]) == [here] and run_labels([Path("p/q/run"), Path("r/q/run")]) == ["p/q/run", "r/q/run"]


def test_checkpoint_choice_and_single_run_reader_study(evaluated, tmp_path):
    _, store, runs, _ = evaluated
    res = evaluate(runs[:1], store, out_dir=tmp_path / "step2", device="cpu", progress=False, checkpoint="step_2")
    assert not res.per_slice.empty
    with pytest.raises(UserInputError, match="step_0000002") as exc:
        evaluate(runs[:1], store, out_dir=tmp_path / "o", device="cpu", progress=False, checkpoint="step_9")
    assert "'step_9'" in str(exc.value)
    # one run: a realism study (each case the real target or the translation), which its answers score
    from mri_harmonic.data.store import SliceStore
    from mri_harmonic.evaluation.reader_study import REALISM_KEY_COLUMNS

    evaluate(runs[:1], store, out_dir=tmp_path / "one", device="cpu", progress=False, reader_study=3, directions="flair2t1")
    key = pd.read_csv(tmp_path / "one" / "reader_study" / "key.csv")
    assert list(key.columns) == REALISM_KEY_COLUMNS and sorted(key["shown"]) == ["real", "synthetic", "synthetic"]
    assert set(key["method"]) == {"harmonic"}
    sheet = (tmp_path / "one" / "reader_study" / "sheet.html").read_text()
    assert sheet.count('<section class="case"') == 3 and '"mode": "realism"' in sheet
    test = SliceStore(store).array("test", "t1")  # the real cases show store slices of the target modality
    from test_reader_study import _realism_images

    real = [_realism_images(sheet)[c] for c in key.loc[key["shown"] == "real", "case_id"]]
    assert all(any(np.array_equal(img, np.round(np.asarray(t, np.float32) * 255).astype(np.uint8)) for t in test) for img in real)


def test_parse_directions():
    assert parse_directions("both") == ["flair2t1", "t12flair"]
    with pytest.raises(UserInputError, match="`directions`"):
        parse_directions("t2flair")


# ---- bad input -----------------------------------------------------------------------------------------------------
def test_run_without_checkpoint(evaluated, tmp_path):
    _, store, _, _ = evaluated
    empty = tmp_path / "empty-run"
    empty.mkdir()
    with pytest.raises(UserInputError, match="empty-run") as exc:
        evaluate([empty], store, out_dir=tmp_path / "out", device="cpu", progress=False)
    assert "\n" not in str(exc.value) and "checkpoint" in str(exc.value)


def test_store_without_split(evaluated, tmp_path):
    _, _, runs, _ = evaluated
    store = make_synthetic_store(tmp_path / "nosplit", splits=("train", "test"))
    with pytest.raises(UserInputError, match="split 'val'") as exc:
        evaluate(runs, store, split="val", out_dir=tmp_path / "out", device="cpu", progress=False)
    assert str(tmp_path / "nosplit") in str(exc.value)


def test_checkpoint_of_other_image_size(evaluated, tmp_path):
    _, _, runs, _ = evaluated
    store = make_synthetic_store(tmp_path / "big", size=48, subjects=2, slices=1)
    with pytest.raises(UserInputError, match="32x32") as exc:
        evaluate(runs[:1], store, out_dir=tmp_path / "out", device="cpu", progress=False)
    assert "48x48" in str(exc.value) and "harmonic-run" in str(exc.value)


def test_unwritable_out(evaluated, tmp_path):
    _, store, runs, _ = evaluated
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(UserInputError, match="cannot write to `out_dir` folder"):
        evaluate(runs, store, out_dir=blocker / "report", device="cpu", progress=False)


# ---- CLI -----------------------------------------------------------------------------------------------------------
def test_cli_evaluate(evaluated, tmp_path):
    from typer.testing import CliRunner

    from mri_harmonic.cli import app

    _, store, runs, _ = evaluated
    res = CliRunner().invoke(app, ["evaluate", str(runs[0]), "--store", str(store), "--direction", "t12flair",
                                   "--out", str(tmp_path / "cli-report"), "--batch-size", "12", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "T1 -> Flair MAE" in res.output and (tmp_path / "cli-report" / "report.md").is_file()
    t1 = pd.read_csv(tmp_path / "cli-report" / "table1.csv")
    assert "flair2t1 MAE" not in t1.columns


def test_cli_bad_input_one_line(evaluated, tmp_path, capsys):
    from mri_harmonic.cli import main

    _, store, _, _ = evaluated
    code = main(["evaluate", str(tmp_path / "missing-run"), "--store", str(store), "--out", str(tmp_path / "o" / "p")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "missing-run" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()  # a failed evaluate leaves no empty --out folder


def test_compute_evaluation_returns_the_tables_without_writing(evaluated, tmp_path, monkeypatch):
    """The computing core gives the tables evaluate() writes (same runs, store, options) and writes no file."""
    from mri_harmonic.evaluation.evaluate import compute_evaluation, write_evaluation

    root, store, runs, _ = evaluated
    before = sorted(root.rglob("*"))
    monkeypatch.chdir(tmp_path)
    result = compute_evaluation([str(r) for r in runs], store, reader_study=3, batch_size=5, device="cpu", samples=3,
                                progress=False)
    assert list(tmp_path.iterdir()) == [] and sorted(root.rglob("*")) == before
    assert result.out_dir is None and result.paths == {}
    written = pd.read_csv(root / "report" / "per_slice.csv")
    pd.testing.assert_frame_equal(result.per_slice.reset_index(drop=True), written, check_dtype=False)
    pd.testing.assert_frame_equal(result.comparison.reset_index(drop=True), pd.read_csv(root / "report" / "comparison.csv"),
                                  check_dtype=False)
    write_evaluation(result, tmp_path / "out")  # the writer alone gives the same files
    assert (tmp_path / "out" / "report.md").is_file()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "out" / "per_slice.csv"), written)
