"""Averaged weights (``ema_decay``): the exponential average of the trained weights, kept across resumes, and what
evaluation, translate and exports translate with."""

from __future__ import annotations

import pytest
import torch
from test_methods import tiny

from mri_harmonic.checkpoint import (
    build_inference_method,
    export_inference,
    inference_weights,
    load_run,
    read_checkpoint,
)
from mri_harmonic.errors import UserInputError
from mri_harmonic.methods import METHODS, method_names
from mri_harmonic.training.config import load_train_config
from mri_harmonic.training.trainer import train

EXTRA = ["data.max_slices_per_epoch=4", "optim.epochs=1", "optim.epochs_decay=1", "pool_size=2"]


def test_averaged_weights_are_the_exponential_average_of_the_trained_ones(synthetic_store, tmp_path):
    """decay 0.5 over three steps: the average is w1 (the first update copies), then 0.5 w1 + 0.5 w2, then
    0.25 w1 + 0.25 w2 + 0.5 w3 -- computed here from the periodic checkpoints' raw weights."""
    run = tmp_path / "run"
    cfg = tiny("harmonic", *EXTRA, "max_steps=3", "ema_decay=0.5", "checkpoint_every=1", "keep_checkpoints=5")
    train(synthetic_store, run, "flair2t1", cfg, progress=False)
    raw = [read_checkpoint(run / "checkpoints" / f"step_{i:07d}.pt")["models"] for i in (1, 2, 3)]
    last = read_checkpoint(run / "checkpoints" / "latest.pt")
    for key in ("G_AB", "G_BA"):
        expected = {n: 0.25 * raw[0][key][n] + 0.25 * raw[1][key][n] + 0.5 * raw[2][key][n] for n in raw[2][key]}
        got = inference_weights(last, key)
        assert set(got) == set(expected)
        for n in expected:
            torch.testing.assert_close(got[n], expected[n], rtol=1e-5, atol=1e-7)
        assert any(not torch.equal(got[n], raw[2][key][n]) for n in expected)  # not the trained weights
    assert "D_A" not in last["models_ema"]  # only what translates is averaged

    # evaluate / translate (load_run) and an export translate with the average, not with the trained weights
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    reference = build_inference_method(last["config"])
    for key in ("G_AB", "G_BA"):
        reference.nets[key].load_state_dict({n: 0.25 * raw[0][key][n] + 0.25 * raw[1][key][n] + 0.5 * raw[2][key][n]
                                             for n in raw[2][key]})
        reference.nets[key].eval()
    trained = build_inference_method(last["config"])
    for key in ("G_AB", "G_BA"):
        trained.nets[key].load_state_dict(last["models"][key])
        trained.nets[key].eval()
    export = export_inference(run, tmp_path / "export")
    with torch.no_grad():
        want = reference.translator("A")(x)
        for loaded in (load_run(run), load_run(export)):
            assert loaded.weights == "ema"
            torch.testing.assert_close(loaded.generator_for("flair")(x), want, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(trained.translator("A")(x), want, atol=1e-6)


@pytest.mark.parametrize("method", method_names())
def test_averaged_weights_resume_exactly(method, synthetic_store, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    ema = "ema_decay=0.9"
    train(synthetic_store, straight, "flair2t1", tiny(method, *EXTRA, "max_steps=4", ema), progress=False)
    train(synthetic_store, split, "flair2t1", tiny(method, *EXTRA, "max_steps=2", ema), progress=False)
    train(synthetic_store, split, "flair2t1", tiny(method, *EXTRA, "max_steps=4", ema), resume=True, progress=False)
    wa, wb = (read_checkpoint(p / "checkpoints" / "latest.pt")["models_ema"] for p in (straight, split))
    assert set(wa) == set(METHODS[method].generator_keys) & set(wa) and wa
    for net in wa:
        for k in wa[net]:
            assert torch.equal(wa[net][k], wb[net][k]), (net, k)
    assert load_run(split).weights == "ema"


def test_without_ema_decay_runs_translate_with_their_trained_weights(synthetic_store, tmp_path):
    run = tmp_path / "run"
    train(synthetic_store, run, "flair2t1", tiny("cyclegan", *EXTRA, "max_steps=1"), progress=False)
    assert "models_ema" not in read_checkpoint(run / "checkpoints" / "latest.pt")
    assert load_run(run).weights == "raw"


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.1"])
def test_ema_decay_outside_0_1_is_a_one_line_error_naming_the_key(value):
    with pytest.raises(UserInputError, match=r"ema_decay.*between 0 and 1"):
        load_train_config(None, [f"ema_decay={value}"])
