"""DiscoGAN: the original's networks (counted by hand), its objectives recomputed term by term, its curriculum."""

from __future__ import annotations

import pytest
import torch

from mri_harmonic.errors import UserInputError
from mri_harmonic.methods import build_method
from mri_harmonic.methods.discogan import DiscoGAN, EncoderDecoder, FeatureDiscriminator
from mri_harmonic.models.config import LossConfig, ModelConfig
from mri_harmonic.training.config import load_train_config
from mri_harmonic.training.trainer import build_state, train_step

OPTIONS = {"gan_weight": 0.3, "fm_weight": 0.7, "rate_start": 0.2, "rate": 0.6, "curriculum_steps": 5, "n_layers": 3}


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _batch():
    torch.manual_seed(5)
    return torch.rand(3, 1, 32, 32) * 2 - 1, torch.rand(3, 1, 32, 32) * 2 - 1


def _method(**options) -> DiscoGAN:
    torch.manual_seed(0)
    m = build_method(ModelConfig(ngf=4, ndf=4), LossConfig(method="discogan", options={**OPTIONS, **options}))
    m.prepare_training(torch.device("cpu"))
    return m


def test_the_original_networks_have_the_original_sizes():
    # SKTBrain/DiscoGAN model.py, 3-channel 64x64 images, 64 filters, no biases: generator convs
    # 3*64*16 + 64*128*16 + 128*256*16 + 256*512*16 = 2,755,584, transposed convs back the same = 2,755,584,
    # batch norms 2*(128+256+512) + 2*(256+128+64) = 2,688 -> 5,513,856. Discriminator: the encoder convs 2,755,584,
    # its batch norms 2*(128+256+512) = 1,792, the 4x4 head 512*16 = 8,192 -> 2,765,568.
    g = EncoderDecoder(3, 3, ngf=64, n_layers=4)
    d = FeatureDiscriminator(3, ndf=64, n_layers=4)
    assert (_count(g), _count(d)) == (5_513_856, 2_765_568)
    x = torch.rand(2, 3, 64, 64)
    logits, feats = d(x)
    assert g(x).shape == x.shape and logits.shape == (2, 1, 1, 1)
    assert [tuple(f.shape) for f in feats] == [(2, 128, 16, 16), (2, 256, 8, 8), (2, 512, 4, 4)]


def test_small_one_channel_networks():
    # 1 channel, 4 filters, 3 layers (widths 4, 8, 16): generator 1*4*16 + 4*8*16 + 8*16*16 = 2,624 (encoder),
    # 16*8*16 + 8*4*16 + 4*1*16 = 2,624 (decoder), norms 2*(8+16) + 2*(8+4) = 72 -> 5,320.
    # Discriminator: 2,624 + 2*(8+16) + 16*16 = 2,928.
    m = build_method(ModelConfig(ngf=4, ndf=4), LossConfig(method="discogan", options={"n_layers": 3}))
    assert set(m.nets) == {"G_AB", "G_BA", "D_A", "D_B"}
    assert [_count(m.nets[k]) for k in ("G_AB", "G_BA", "D_A", "D_B")] == [5320, 5320, 2928, 2928]
    a, _ = _batch()
    y = m.translator("A")(a * 50)  # tanh output: in (-1, 1) whatever the input
    assert y.shape == a.shape and y.abs().max() <= 1
    logits, feats = m.nets["D_B"](a)
    assert logits.shape == (3, 1, 1, 1) and [f.shape[1:] for f in feats] == [(8, 8, 8), (16, 4, 4)]
    assert m.translator("A") is m.nets["G_AB"] and m.translator("B") is m.nets["G_BA"]
    inference = build_method(ModelConfig(), LossConfig(method="discogan"), discriminators=False)
    assert set(inference.nets) == {"G_AB", "G_BA"}


def _bce(logits, target: float):  # -[t log s(x) + (1-t) log(1 - s(x))] written out
    s = torch.sigmoid(logits.double())
    return -(target * torch.log(s) + (1 - target) * torch.log(1 - s)).mean().float()


@pytest.mark.parametrize("step, rate", [(4, 0.2), (5, 0.6)])
def test_generator_objective_is_the_original_weighted_sum_of_hand_computed_terms(step, rate):
    m = _method()
    m.step = step
    a, b = _batch()
    out, fakes = m.generator_objective(a, b)
    n = m.nets
    with torch.no_grad():
        fb, fa = n["G_AB"](a), n["G_BA"](b)
        terms = {}
        for key, d, real, fake in (("ab", n["D_B"], b, fb), ("ba", n["D_A"], a, fa)):
            (logit, f_fake), (_, f_real) = d(fake), d(real)
            terms["gan_" + key] = _bce(logit, 1.0)
            terms["fm_" + key] = sum(((r.mean(0) - f.mean(0)) ** 2).mean() for r, f in zip(f_real, f_fake))
        terms["rec_a"] = ((n["G_BA"](fb) - a) ** 2).mean()
        terms["rec_b"] = ((n["G_AB"](fa) - b) ** 2).mean()
        # image_translation.py: gen_loss_A_total + gen_loss_B_total
        total = ((0.3 * terms["gan_ab"] + 0.7 * terms["fm_ab"]) * (1 - rate) + terms["rec_a"] * rate
                 + (0.3 * terms["gan_ba"] + 0.7 * terms["fm_ba"]) * (1 - rate) + terms["rec_b"] * rate)
    assert set(out) == set(terms) | {"total"}
    for k, v in terms.items():
        torch.testing.assert_close(out[k].detach(), v, msg=k)
    torch.testing.assert_close(out["total"].detach(), total)
    torch.testing.assert_close(fakes["B"].detach(), fb)
    torch.testing.assert_close(fakes["A"].detach(), fa)
    assert all(out[k] > 0 for k in terms)


def test_l1_reconstruction_option():
    m = _method(reconstruction="l1")
    a, b = _batch()
    out, _ = m.generator_objective(a, b)
    with torch.no_grad():
        ref = (m.nets["G_BA"](m.nets["G_AB"](a)) - a).abs().mean()
    torch.testing.assert_close(out["rec_a"].detach(), ref)


def test_discriminator_objective_is_half_bce_real_plus_half_bce_fake_per_domain():
    m = _method()
    a, b = _batch()
    with torch.no_grad():
        fb, fa = m.nets["G_AB"](a), m.nets["G_BA"](b)
    d = m.discriminator_objective(a, b, fa, fb)
    with torch.no_grad():
        ref = {k: 0.5 * (_bce(m.nets[net](real)[0], 1.0) + _bce(m.nets[net](fake)[0], 0.0))
               for k, net, real, fake in (("d_a", "D_A", a, fa), ("d_b", "D_B", b, fb))}
    torch.testing.assert_close(d["d_a"].detach(), ref["d_a"])
    torch.testing.assert_close(d["d_b"].detach(), ref["d_b"])
    torch.testing.assert_close(d["total"].detach(), ref["d_a"] + ref["d_b"])
    d["total"].backward()
    assert all(p.grad is not None for k in ("D_A", "D_B") for p in m.nets[k].parameters())
    assert all(p.grad is None for k in ("G_AB", "G_BA") for p in m.nets[k].parameters())


def test_the_trainer_tells_the_method_its_step():
    cfg = load_train_config(None, ["model.ngf=4", "model.ndf=4", "loss.method=discogan", "loss.options.n_layers=3",
                                   "loss.options.curriculum_steps=3", "pool_size=0", "device=cpu", "amp=false"])
    s = build_state(cfg, torch.device("cpu"))
    a, b = _batch()
    s.step = 7
    train_step(s, a, b)
    assert s.method.step == 7 and s.method.reconstruction_rate(2) == 0.01 and s.method.reconstruction_rate(3) == 0.5


def test_objectives_run_under_bf16_autocast():
    m = _method()
    a, b = _batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, fakes = m.generator_objective(a, b)
        d = m.discriminator_objective(a, b, fakes["A"].detach(), fakes["B"].detach())
    assert out["total"].dtype == d["total"].dtype == torch.float32
    assert torch.isfinite(out["total"]) and torch.isfinite(d["total"])


def test_image_size_and_options_are_checked():
    m = build_method(ModelConfig(), LossConfig(method="discogan"))
    assert m.image_size_problem(96, 96) is None and m.image_size_problem(256, 256) is None
    assert "loss.options.n_layers" in m.image_size_problem(32, 32)  # 2x2 left: too small for the 4x4 head
    assert "loss.options.n_layers" in m.image_size_problem(72, 64)  # 72 not divisible by 16
    with pytest.raises(UserInputError, match=r"loss\.options\.rate\b.*\[0, 1\]"):
        LossConfig(method="discogan", options={"rate": 1.5})
    with pytest.raises(UserInputError, match=r"loss\.options\.lambda_kl"):
        LossConfig(method="discogan", options={"lambda_kl": 1.0})
    with pytest.raises(UserInputError, match=r"loss\.options\.reconstruction"):
        LossConfig(method="discogan", options={"reconstruction": "huber"})
