"""The method's objective reaches the generators: for the same batch, initialisation and seed, HarmonicGAN's
gradients differ from CycleGAN's by the smoothness term (a silent fall-back to CycleGAN, e.g. detached translations
inside the losses, fails here)."""

from __future__ import annotations

import torch

from mri_harmonic.config import from_dict
from mri_harmonic.training.config import TrainConfig

TINY = {"model": {"ngf": 4, "ndf": 4, "n_blocks": 1}, "device": "cpu", "tensorboard": False,
        "loss": {"lambda_identity": 0.0, "smoothness": {"patch_size": 8}}}


def _generator_grads(method: str, **loss):
    from mri_harmonic.training.trainer import build_state, train_step
    from mri_harmonic.utils.device import seed_everything

    cfg = from_dict(TrainConfig, {**TINY, "loss": {**TINY["loss"], "method": method, **loss}})
    seed_everything(0)
    state = build_state(cfg, torch.device("cpu"))
    g = torch.Generator().manual_seed(1)
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    brain = ((yy - 15.5) ** 2 + (xx - 15.5) ** 2) < 12**2
    real_a, real_b = (torch.where(brain, torch.rand(2, 1, 32, 32, generator=g) * 1.6 - 0.8, torch.tensor(-1.0)) for _ in range(2))
    train_step(state, real_a, real_b)
    return torch.cat([p.grad.flatten() for k in ("G_AB", "G_BA") for p in state.nets[k].parameters()])


def test_smoothness_term_changes_the_generator_gradients():
    cyc = _generator_grads("cyclegan")
    harm = _generator_grads("harmonic")
    assert torch.equal(cyc, _generator_grads("cyclegan"))  # deterministic: a difference is the method's
    diff = (harm - cyc).norm() / cyc.norm()
    assert diff > 1e-3, float(diff)
    # the difference is the smoothness term: with lambda_smooth 0 HarmonicGAN is CycleGAN exactly
    torch.testing.assert_close(_generator_grads("harmonic", lambda_smooth=0.0), cyc)
    # and the foreground graph changes them again (fewer patches, other normalisation)
    fg = _generator_grads("harmonic", smoothness={"patch_size": 8, "min_brain_fraction": 0.5})
    assert (fg - harm).norm() / harm.norm() > 1e-4
