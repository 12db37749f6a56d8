"""Inference-only exports (checkpoint.export_inference): smaller, translate exactly as the run, refuse to resume."""

from __future__ import annotations

import json

import pytest
import torch

from mri_harmonic.checkpoint import export_inference, latest_path, load_run, read_checkpoint
from mri_harmonic.errors import UserInputError
from mri_harmonic.training.config import load_train_config
from mri_harmonic.training.trainer import train

TINY = ["model.ngf=8", "model.ndf=8", "model.n_blocks=2", "loss.smoothness.patch_size=8", "device=cpu",
        "log_every=1", "sample_every=0", "checkpoint_every=1000", "tensorboard=false", "max_steps=2"]


@pytest.mark.parametrize("method", ["harmonic", "unit"])
def test_an_export_translates_exactly_as_its_run_and_is_smaller(method, synthetic_store, tmp_path):
    run, out = tmp_path / "run", tmp_path / "export"
    sets = TINY if method == "harmonic" else [s for s in TINY if not s.startswith(("model.", "loss."))] + [
        "loss.method=unit", "loss.options.dim=8", "loss.options.dis_dim=8", "loss.options.n_res=2",
        "loss.options.dis_n_layer=3"]
    train(synthetic_store, run, "flair2t1", load_train_config(None, sets), progress=False)
    export_inference(run, out, provenance={"note": "test"})

    full, slim = read_checkpoint(latest_path(run)), read_checkpoint(latest_path(out))
    assert latest_path(out).stat().st_size < latest_path(run).stat().st_size
    # only the translators' networks; no training state
    expected_nets = {"harmonic": {"G_AB", "G_BA"}, "unit": {"G"}}[method]
    assert set(slim["models"]) == expected_nets and set(full["models"]) > expected_nets
    assert not {"optimizers", "schedulers", "pools", "rng", "rank_states"} & set(slim)
    for key in expected_nets:
        for name, tensor in full["models"][key].items():
            assert torch.equal(slim["models"][key][name], tensor)
    assert slim["provenance"] == {"note": "test"} and slim["inference_only"] is True
    assert (slim["step"], slim["config"], slim["store_config"]) == (full["step"], full["config"], full["store_config"])
    assert json.loads((out / "exported.json").read_text())["exported_from"]["run"] == str(run)

    a, b = load_run(run), load_run(out)
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    for d in "AB":
        with torch.no_grad():
            assert torch.equal(a.generators[d](x), b.generators[d](x))
    assert (b.step, b.method, b.store_config, b.store_model_spacing) == (a.step, a.method, a.store_config,
                                                                         a.store_model_spacing)


def test_an_export_cannot_be_resumed_and_does_not_overwrite_a_run(synthetic_store, tmp_path):
    run, out = tmp_path / "run", tmp_path / "export"
    cfg = load_train_config(None, TINY)
    train(synthetic_store, run, "flair2t1", cfg, progress=False)
    export_inference(run, out)
    with pytest.raises(UserInputError, match=r"inference-only export .* cannot be trained further") as err:
        train(synthetic_store, out, "flair2t1", load_train_config(None, [*TINY, "max_steps=4"]), resume=True,
              progress=False)
    assert "\n" not in str(err.value) and str(run) in str(err.value)
    with pytest.raises(UserInputError, match="not an inference-only export"):
        export_inference(run, run)  # exporting onto the run itself would replace it
    assert read_checkpoint(latest_path(run)).get("optimizers")
    export_inference(run, out)  # an export is replaced by a new export
