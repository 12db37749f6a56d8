"""pipelines/pretrain_demo.py (``make pretrained``) on tiny finished runs: exports, provenance with the validation
figures of an independent evaluation, and a one-line refusal to export unfinished runs without training them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import make_synthetic_store

from mri_harmonic.checkpoint import load_run
from mri_harmonic.training.config import load_train_config
from mri_harmonic.training.trainer import train

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipelines"))
import pretrain_demo  # noqa: E402
import quickstart  # noqa: E402

TINY = ["model.ngf=8", "model.ndf=8", "model.n_blocks=2", "loss.smoothness.patch_size=8", "device=cpu",
        "log_every=1", "sample_every=0", "checkpoint_every=1000", "tensorboard=false", "max_steps=2"]


def test_pretrain_demo_exports_finished_runs_with_their_provenance(tmp_path):
    work, out = tmp_path / "work", tmp_path / "pretrained"
    store = make_synthetic_store(work / "store")
    (work / "data").mkdir()
    (work / "data" / "phantom.json").write_text(json.dumps({"seed": 0, "shape": [240, 240, 155], "subjects": [{}] * 12}))
    for method in ("harmonic", "cyclegan"):
        run = work / "runs" / f"{method}-s0"
        train(store, run, "flair2t1", load_train_config(None, [*TINY, f"loss.method={method}"]), progress=False)
    with pytest.raises(SystemExit, match="not finished") as err:
        pretrain_demo.main(["--no-train", "--work", str(work), "--out", str(out)])
    assert "\n" not in str(err.value) and not out.exists()

    for method in ("harmonic", "cyclegan"):
        (work / "runs" / f"{method}-s0" / "DONE").write_text("ok\n")
    assert pretrain_demo.main(["--no-train", "--work", str(work), "--out", str(out)]) == 0
    report = work / "pretrained-val"
    for method in ("harmonic", "cyclegan"):
        folder = out / f"phantom-{method}"
        run = load_run(folder)
        assert (run.method, run.step) == (method, 2)
        facts = json.loads((folder / "provenance.json").read_text())
        assert facts["training"]["step"] == 2 and facts["phantom"] == {**facts["phantom"], "seed": 0, "subjects": 12}
        assert facts["store"]["subjects"]["val"] == ["S100", "S101", "S102", "S103"]
        assert facts["plan_config_hash"] != facts["config_hash"]  # tiny runs are not what the plan trains
        assert facts["size_bytes"] == (folder / "checkpoints" / "latest.pt").stat().st_size
        for d in ("flair2t1", "t12flair"):
            assert facts["validation"]["figures"][d] == quickstart.figures(report, folder.name, d)
        f = facts["validation"]["figures"]["flair2t1"]
        md = (folder / "PROVENANCE.md").read_text()
        assert f"| flair2t1 | {f['MAE']:.2f} | {f['MAE_input']:.2f} | {f['SSIM']:.3f} |" in md
        assert "NOTE: the plan resolves to hash" in md and "Steps: 2 of 2" in md
