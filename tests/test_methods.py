"""The method registry: every method behind one interface, the existing ones unchanged, each one trainable,
resumable and loadable without the trainer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mri_harmonic.checkpoint import load_run, read_checkpoint
from mri_harmonic.errors import UserInputError
from mri_harmonic.methods import METHODS, build_method, method_names
from mri_harmonic.models.config import LossConfig, ModelConfig, SmoothnessConfig
from mri_harmonic.models.losses import SmoothnessLoss
from mri_harmonic.training.config import load_train_config
from mri_harmonic.training.trainer import train

DATA = Path(__file__).parent / "data"
TINY = ["model.ngf=8", "model.ndf=8", "model.n_blocks=2", "loss.smoothness.patch_size=8", "device=cpu",
        "log_every=1", "sample_every=0", "checkpoint_every=1000", "tensorboard=false", "amp=false"]
#: Extra settings a method needs to run on 32x32 test slices.
SMALL = {"discogan": ["loss.options.n_layers=3",  # 32 px / 2**3 = 4 px left for the discriminator's 4x4 head
                     "loss.options.curriculum_steps=3"],  # the resumed half crosses the curriculum's end
         "unit": ["loss.options.dim=8", "loss.options.dis_dim=8", "loss.options.n_res=2", "loss.options.dis_n_layer=3"]}


def tiny(method: str, *extra: str):
    return load_train_config(None, [*TINY, f"loss.method={method}", *SMALL.get(method, []), *extra])


def _batch():
    torch.manual_seed(123)
    return torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 1, 32, 32) * 2 - 1


#: The losses of the pre-registry trainer, replayed in a child process on AVX2 kernels (ATen and oneDNN): the values
#: were recorded on an AVX2 CPU, and AVX-512 kernels round differently (7th digit at step 1, up to 8e-4 relative by step
#: 3 for DistanceGAN with identity), so pinning the instruction set keeps the check exact on any x86 CPU.
REPLAY = """
import json, sys
import torch
from mri_harmonic.training.config import load_train_config
from mri_harmonic.training.trainer import build_state, train_step
from mri_harmonic.utils.device import seed_everything

torch.set_num_threads(1)
out = {}
for key, expected in json.loads(open(sys.argv[1]).read()).items():
    method, idt = key.split("-idt")
    torch.manual_seed(123)
    a, b = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 1, 32, 32) * 2 - 1
    cfg = load_train_config(None, ["model.ngf=8", "model.ndf=8", "model.n_blocks=2", "loss.smoothness.patch_size=8",
                                   "device=cpu", f"loss.method={method}", f"loss.lambda_identity={idt}",
                                   "data.batch_size=2", "pool_size=2", "amp=false"])
    seed_everything(7)
    stats = {"A": [0.3, 0.1], "B": [0.25, 0.12]} if method == "distancegan" else None
    s = build_state(cfg, torch.device("cpu"), data_statistics=stats)
    out[key] = [{k: float(v) for k, v in train_step(s, a, b).items()} for _ in expected]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def replayed_losses():
    import os

    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", REPLAY, str(DATA / "losses_before_method_registry.json")], env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("key", sorted(json.loads((DATA / "losses_before_method_registry.json").read_text())))
def test_existing_methods_give_the_losses_they_gave_before_the_registry(key, replayed_losses):
    """Values recorded with the pre-registry trainer (same seed, batch, pools): equal to the last bit, on AVX2
    kernels (:data:`REPLAY`)."""
    expected = json.loads((DATA / "losses_before_method_registry.json").read_text())[key]
    for got, step in zip(replayed_losses[key], expected, strict=True):
        assert {k: got[k] for k in step} == step


def test_cyclegan_objective_is_the_weighted_sum_of_hand_computed_terms():
    model = ModelConfig(ngf=4, ndf=4, n_blocks=1)
    m = build_method(model, LossConfig(method="cyclegan", lambda_gan=1.5, lambda_cycle=10.0, lambda_identity=0.5))
    m.prepare_training(torch.device("cpu"))
    a, b = _batch()
    out, fakes = m.generator_objective(a, b)
    n = m.nets
    with torch.no_grad():
        fb, fa = n["G_AB"](a), n["G_BA"](b)
        mse1 = lambda p: ((p - 1) ** 2).mean()  # noqa: E731
        l1 = lambda x, y: (x - y).abs().mean()  # noqa: E731
        manual = (1.5 * (mse1(n["D_B"](fb)) + mse1(n["D_A"](fa)))
                  + 10 * (l1(n["G_BA"](fb), a) + l1(n["G_AB"](fa), b))
                  + 5 * (l1(n["G_AB"](b), b) + l1(n["G_BA"](a), a)))
    torch.testing.assert_close(out["total"].detach(), manual)
    torch.testing.assert_close(fakes["B"].detach(), fb)
    assert set(out) == {"gan_ab", "gan_ba", "cycle_a", "cycle_b", "idt_a", "idt_b", "total"}
    d = m.discriminator_objective(a, b, fa, fb)
    with torch.no_grad():
        ref = 0.5 * (mse1(n["D_A"](a)) + (n["D_A"](fa) ** 2).mean()) + 0.5 * (mse1(n["D_B"](b)) + (n["D_B"](fb) ** 2).mean())
    torch.testing.assert_close(d["total"].detach(), ref)


def test_harmonic_adds_the_weighted_smoothness_and_changes_the_generator_gradients():
    model = ModelConfig(ngf=4, ndf=4, n_blocks=1)
    a, b = _batch()
    grads, outs = {}, {}
    for method in ("cyclegan", "harmonic"):
        torch.manual_seed(0)
        m = build_method(model, LossConfig(method=method, lambda_smooth=3.0, lambda_identity=0.0,
                                           smoothness=SmoothnessConfig(patch_size=8)))
        m.prepare_training(torch.device("cpu"))
        out, fakes = m.generator_objective(a, b)
        out["total"].backward()
        grads[method] = torch.cat([p.grad.flatten() for p in m.nets["G_AB"].parameters()])
        outs[method] = (out, fakes, m)
    out, fakes, m = outs["harmonic"]
    with torch.no_grad():
        rec_a = m.nets["G_BA"](fakes["B"])
        smooth = SmoothnessLoss(SmoothnessConfig(patch_size=8))(a, fakes["B"], rec_a)
    torch.testing.assert_close(out["smooth_a"].detach(), smooth)
    base = outs["cyclegan"][0]["total"].detach()
    torch.testing.assert_close(out["total"].detach(), base + 3.0 * (out["smooth_a"] + out["smooth_b"]).detach())
    # same networks (same seed), so the only difference is the smoothness term's gradient
    assert not torch.allclose(grads["harmonic"], grads["cyclegan"], rtol=1e-3, atol=1e-7)


def test_distancegan_needs_statistics_and_adds_its_terms():
    m = build_method(ModelConfig(ngf=4, ndf=4, n_blocks=1), LossConfig(method="distancegan", lambda_identity=0.0))
    with pytest.raises(ValueError, match="data statistics"):
        m.prepare_training(torch.device("cpu"))
    a, b = _batch()
    stats = m.estimate_data_statistics(iter(a), iter(b))
    assert set(stats) == {"A", "B"} and stats["A"][1] > 0
    m.prepare_training(torch.device("cpu"), stats)
    out, _ = m.generator_objective(a, b)
    assert {"dist_ab", "dist_ba"} <= set(out) and "smooth_a" not in out


def test_registry_names_the_valid_methods_and_checks_options():
    with pytest.raises(UserInputError, match=r"loss\.method.*'harmonic'.*got 'pix2pix'"):
        LossConfig(method="pix2pix")
    with pytest.raises(UserInputError, match=r"loss\.options.*cyclegan"):
        LossConfig(method="cyclegan", options={"lambda_kl": 1.0})
    for name, cls in METHODS.items():
        assert cls.name == name and cls.generator_keys and cls.discriminator_keys and cls.summary


@pytest.mark.parametrize("method", method_names())
def test_every_method_trains_checkpoints_resumes_exactly_and_translates(method, synthetic_store, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    extra = ["data.max_slices_per_epoch=4", "optim.epochs=1", "optim.epochs_decay=1", "pool_size=2"]
    train(synthetic_store, straight, "flair2t1", tiny(method, *extra, "max_steps=4"), progress=False)
    train(synthetic_store, split, "flair2t1", tiny(method, *extra, "max_steps=2"), progress=False)
    train(synthetic_store, split, "flair2t1", tiny(method, *extra, "max_steps=4"), resume=True, progress=False)
    wa, wb = (read_checkpoint(p / "checkpoints" / "latest.pt") for p in (straight, split))
    assert set(wa["models"]) == set(METHODS[method].generator_keys) | set(METHODS[method].discriminator_keys)
    for net in wa["models"]:
        for k in wa["models"][net]:
            assert torch.equal(wa["models"][net][k], wb["models"][net][k]), (net, k)
    run = load_run(split)
    assert run.method == method and run.step == 4
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        y, z = run.generator_for("flair")(x), run.generator_for("t1")(x)
    assert y.shape == z.shape == x.shape and torch.isfinite(y).all() and not torch.equal(y, z)
    assert (split / "samples").is_dir()


def test_a_version_1_checkpoint_still_loads_and_resumes(synthetic_store, tmp_path):
    out = tmp_path / "run"
    cfg = tiny("distancegan", "max_steps=2")
    train(synthetic_store, out, "flair2t1", cfg, progress=False)
    path = out / "checkpoints" / "latest.pt"
    ckpt = torch.load(path, weights_only=True)
    ckpt["version"], ckpt["distance_stats"] = 1, ckpt.pop("data_statistics")
    del ckpt["store_config"]
    torch.save(ckpt, path)
    assert load_run(out).store_config is None
    train(synthetic_store, out, "flair2t1", tiny("distancegan", "max_steps=3"), resume=True, progress=False)
    assert read_checkpoint(path)["step"] == 3
    ckpt = torch.load(path, weights_only=True)
    ckpt["version"] = 99
    torch.save(ckpt, path)
    with pytest.raises(UserInputError, match="version 99"):
        load_run(out)


def test_evaluation_does_not_import_the_trainer():
    code = ("import sys, mri_harmonic.evaluation.evaluate, mri_harmonic.evaluation.translate, mri_harmonic.checkpoint;"
            "bad = sorted(m for m in sys.modules if m.startswith('mri_harmonic.training'));"
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
