"""Learning curves (mri_harmonic/evaluation/curves.py): each kept checkpoint scores what `evaluate` scores for it,
the input floor what `evaluate`'s input-as-output row scores, and an interrupted call resumes without rescoring."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import make_synthetic_store
from test_evaluate import train_tiny

from mri_harmonic.evaluation.curves import INPUT, checkpoint_curves
from mri_harmonic.evaluation.evaluate import compute_evaluation


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("curves")
    store = make_synthetic_store(root / "store")
    run = train_tiny(store, root / "h", "harmonic", max_steps=4, checkpoint_every=2, ema_decay=0.5)
    return store, run


def test_each_checkpoint_scores_as_evaluate_scores_it(trained, tmp_path):
    store, run = trained
    curves = checkpoint_curves({"h": run}, store, "val")
    assert sorted(set(curves.loc[curves["run"] == "h", "step"])) == [2, 4]
    assert set(curves["region"]) == {"slice", "brain"} and set(curves["direction"]) == {"flair2t1", "t12flair"}
    for step in (2, 4):
        ev = compute_evaluation([str(run)], store, "val", device="cpu", progress=False, checkpoint=f"step_{step}")
        s = ev.summary[ev.summary["scale"] == "0-255"]
        for label, row_run, row_step in (("h", ev.per_slice["run"].iloc[0], step), (INPUT, "input-as-output", 0)):
            for region in ("slice", "brain"):
                for d in ("flair2t1", "t12flair"):
                    want = s[(s["run"] == row_run) & (s["region"] == region) & (s["direction"] == d)].set_index("metric")["mean"]
                    got = curves[(curves["run"] == label) & (curves["step"] == row_step) & (curves["region"] == region)
                                 & (curves["direction"] == d)].iloc[0]
                    for m in ("MAE", "MSE", "PSNR", "SSIM"):
                        assert got[m] == pytest.approx(float(want[m]), rel=1e-5, abs=1e-6), (label, step, region, d, m)
    # the two checkpoints are different models: a curve that scored one checkpoint twice would fail here
    h = curves[(curves["run"] == "h") & (curves["region"] == "slice")].set_index(["direction", "step"])["MAE"]
    assert h[("flair2t1", 2)] != h[("flair2t1", 4)]


def test_resumes_from_done_rows_and_reports_each_run(trained, monkeypatch):
    store, run = trained
    first = checkpoint_curves({"h": run}, store, "val", directions="flair2t1")
    partial = first[~((first["run"] == "h") & (first["step"] == 4))]
    loaded = []
    import mri_harmonic.checkpoint as ckpt

    real = ckpt.load_run
    monkeypatch.setattr(ckpt, "load_run", lambda *a, **k: loaded.append(k["checkpoint"]) or real(*a, **k))
    saved = []
    again = checkpoint_curves({"h": run}, store, "val", directions="flair2t1", done=partial, on_run=saved.append)
    assert len(loaded) == 1 and loaded[0].endswith("step_0000004.pt")  # only the missing checkpoint is scored
    key = ["run", "step", "direction", "region"]
    pd.testing.assert_frame_equal(again.sort_values(key).reset_index(drop=True), first.sort_values(key).reset_index(drop=True))
    assert len(saved) == 1 and len(saved[0]) == len(first)
