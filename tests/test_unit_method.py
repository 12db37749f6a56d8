"""UNIT (mri_harmonic/methods/unit.py): shared layers, the KL term and both objectives against hand computations
from the method's own networks, and a 2-process DDP run in which the shared layers train in step."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from mri_harmonic.errors import UserInputError
from mri_harmonic.methods import build_method
from mri_harmonic.methods.unit import MultiScaleDiscriminator, kl_loss
from mri_harmonic.models.config import LossConfig, ModelConfig

SMALL = {"dim": 4, "dis_dim": 4, "n_res": 2, "n_shared": 1, "dis_n_layer": 3, "dis_scales": 2}
WEIGHTS = {"gan_w": 1.5, "recon_x_w": 7.0, "recon_kl_w": 0.3, "recon_x_cyc_w": 5.0, "recon_kl_cyc_w": 0.2}


def unit(gan_mode: str = "lsgan", **options):
    m = build_method(ModelConfig(), LossConfig(method="unit", gan_mode=gan_mode, options={**SMALL, **options}))
    m.prepare_training(torch.device("cpu"))
    return m


def batch(seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 1, 32, 32, generator=g) * 2 - 1, torch.rand(2, 1, 32, 32, generator=g) * 2 - 1


def test_shapes_and_translation_through_the_latent_mean():
    m = unit()
    g = m.nets["G"]
    a, b = batch()
    mu = g.encode(a, "A")
    assert mu.shape == (2, 4 * 4, 8, 8)  # dim * 2**n_downsample channels at 1/4 resolution
    out = g(a, b)
    for k in ("rec_a", "rec_b", "fake_a", "fake_b", "cyc_a", "cyc_b"):
        assert out[k].shape == a.shape and out[k].abs().max() <= 1
    state = torch.get_rng_state()
    with torch.no_grad():
        y = m.translator("A")(a)
        assert torch.equal(y, g.dec["B"](g.dec_shared(g.enc_shared(g.enc["A"](a)))))  # G_B(E_A(x)), no noise
        assert torch.equal(m.translator("B")(b), g.dec["A"](g.dec_shared(g.enc_shared(g.enc["B"](b)))))
    assert torch.equal(torch.get_rng_state(), state)  # inference draws no noise
    assert [tuple(o.shape) for o in m.nets["D_A"](a)] == [(2, 1, 4, 4), (2, 1, 2, 2)]  # 2 scales, 3 stride-2 convs


def test_shared_layers_are_one_set_of_parameters_that_both_domains_train():
    m = unit(n_res=3, n_shared=2)
    g = m.nets["G"]
    params = dict(g.named_parameters())
    assert len({id(p) for p in params.values()}) == len(params)  # each tensor once: one optimiser entry each
    shared = [n for n in params if n.startswith(("enc_shared.", "dec_shared."))]
    assert len(shared) == 2 * 2 * 2 * 2  # 2 blocks x (encoder, decoder) x 2 convs x (weight, bias)
    a, b = batch()

    def grads(loss):
        g.zero_grad(set_to_none=True)
        loss.backward()
        return {n: p.grad.clone() for n, p in params.items() if p.grad is not None}

    from_a = grads(g.decode(g.encode(a, "A"), "A").square().mean())
    from_b = grads(g.decode(g.encode(b, "B"), "B").square().mean())
    # domain A's path reaches A's own layers and the shared ones, never B's; and the other way round
    assert set(from_a) == {n for n in params if not n.startswith(("enc.B.", "dec.B."))}
    assert set(from_b) == {n for n in params if not n.startswith(("enc.A.", "dec.A."))}
    both = grads(g.decode(g.encode(a, "A"), "A").square().mean() + g.decode(g.encode(b, "B"), "B").square().mean())
    for n in shared:  # the shared tensor accumulates both domains' gradients
        if n.endswith("weight"):  # (a conv bias before instance norm gets ~0 gradient)
            assert from_a[n].abs().sum() > 0 and from_b[n].abs().sum() > 0
        torch.testing.assert_close(both[n], from_a[n] + from_b[n])
    # cross-domain translation goes through the same shared tensors
    assert set(grads(g.decode(g.encode(a, "A"), "B").sum())) >= set(shared)


def test_kl_term_is_the_gaussian_kl_up_to_its_constant_factor():
    mu = torch.tensor([[[[0.5, -1.0], [2.0, 0.0]]]])
    assert float(kl_loss(mu)) == pytest.approx((0.25 + 1.0 + 4.0 + 0.0) / 4)
    mu = torch.randn(3, 5, 4, 4, generator=torch.Generator().manual_seed(0))
    normal = torch.distributions.Normal
    kl = torch.distributions.kl_divergence(normal(mu, torch.ones_like(mu)), normal(torch.zeros_like(mu), 1.0))
    torch.testing.assert_close(kl_loss(mu), 2 * kl.mean())


def _multi_scale(d, x):
    """The discriminator's outputs recomputed scale by scale from its own sub-networks."""
    outs = []
    for i, net in enumerate(d.nets):
        if i:
            x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
        outs.append(net(x))
    return outs


def test_generator_objective_equals_the_hand_computed_terms_with_the_same_noise():
    m = unit(**WEIGHTS)
    g, d_a, d_b = m.nets["G"], m.nets["D_A"], m.nets["D_B"]
    a, b = batch()
    torch.manual_seed(11)
    out, fakes = m.generator_objective(a, b)
    torch.manual_seed(11)
    with torch.no_grad():
        mu_a, mu_b = g.enc_shared(g.enc["A"](a)), g.enc_shared(g.enc["B"](b))
        z_a, z_b = mu_a + torch.randn(mu_a.shape), mu_b + torch.randn(mu_b.shape)  # drawn in this order
        rec_a, fake_b = g.dec["A"](g.dec_shared(z_a)), g.dec["B"](g.dec_shared(z_a))
        rec_b, fake_a = g.dec["B"](g.dec_shared(z_b)), g.dec["A"](g.dec_shared(z_b))
        mu_a2, mu_b2 = g.enc_shared(g.enc["B"](fake_b)), g.enc_shared(g.enc["A"](fake_a))
        cyc_a = g.dec["A"](g.dec_shared(mu_a2 + torch.randn(mu_a2.shape)))
        cyc_b = g.dec["B"](g.dec_shared(mu_b2 + torch.randn(mu_b2.shape)))
        l1 = lambda x, y: (x - y).abs().mean()  # noqa: E731
        sq = lambda mu: (mu**2).mean()  # noqa: E731
        gan = lambda d, x: sum(((o - 1) ** 2).mean() for o in _multi_scale(d, x))  # noqa: E731
        terms = {"gan_ab": gan(d_b, fake_b), "gan_ba": gan(d_a, fake_a), "recon_a": l1(rec_a, a),
                 "recon_b": l1(rec_b, b), "kl_a": sq(mu_a), "kl_b": sq(mu_b), "cycle_a": l1(cyc_a, a),
                 "cycle_b": l1(cyc_b, b), "kl_cyc_a": sq(mu_a2), "kl_cyc_b": sq(mu_b2)}
        total = (1.5 * (terms["gan_ab"] + terms["gan_ba"]) + 7 * (terms["recon_a"] + terms["recon_b"])
                 + 0.3 * (terms["kl_a"] + terms["kl_b"]) + 5 * (terms["cycle_a"] + terms["cycle_b"])
                 + 0.2 * (terms["kl_cyc_a"] + terms["kl_cyc_b"]))
    assert set(out) == {*terms, "total"}
    for k, v in terms.items():
        torch.testing.assert_close(out[k].detach(), v, msg=k)
    torch.testing.assert_close(out["total"].detach(), total)
    torch.testing.assert_close(fakes["A"].detach(), fake_a)
    torch.testing.assert_close(fakes["B"].detach(), fake_b)
    torch.manual_seed(12)  # other noise, other losses: the codes are sampled
    other = m.generator_objective(a, b)[0]["total"].detach()
    assert float(other) != pytest.approx(float(out["total"].detach()), rel=1e-6)


@pytest.mark.parametrize("gan_mode", ["lsgan", "vanilla"])
def test_discriminator_objective_equals_the_hand_computed_multi_scale_loss(gan_mode):
    m = unit(gan_mode, gan_w=2.0)
    a, b = batch()
    fake_a, fake_b = batch(4)
    d = m.discriminator_objective(a, b, fake_a, fake_b)
    if gan_mode == "lsgan":
        real_term, fake_term = (lambda o: ((o - 1) ** 2).mean()), (lambda o: (o**2).mean())
    else:  # cross-entropy on logits: -log sigmoid(o) and -log(1 - sigmoid(o))
        real_term, fake_term = (lambda o: F.softplus(-o).mean()), (lambda o: F.softplus(o).mean())
    with torch.no_grad():
        ref = {k: 2.0 * (sum(real_term(o) for o in _multi_scale(m.nets[net], real))
                         + sum(fake_term(o) for o in _multi_scale(m.nets[net], fake)))
               for k, net, real, fake in (("d_a", "D_A", a, fake_a), ("d_b", "D_B", b, fake_b))}
    torch.testing.assert_close(d["d_a"].detach(), ref["d_a"])
    torch.testing.assert_close(d["d_b"].detach(), ref["d_b"])
    torch.testing.assert_close(d["total"].detach(), ref["d_a"] + ref["d_b"])
    d["total"].backward()
    assert all(p.grad is not None for k in ("D_A", "D_B") for p in m.nets[k].parameters())
    assert all(p.grad is None for p in m.nets["G"].parameters())


def test_image_size_problems_name_the_options():
    m = build_method(ModelConfig(), LossConfig(method="unit"), discriminators=False)
    assert m.image_size_problem(96, 96) is None and m.image_size_problem(256, 256) is None
    assert "loss.options.n_downsample = 4" in m.image_size_problem(94, 96)
    assert "dis_n_layer" in m.image_size_problem(32, 32)
    with pytest.raises(UserInputError, match=r"loss\.options\.n_shared"):
        LossConfig(method="unit", options={"n_res": 2, "n_shared": 3})


@pytest.mark.parametrize("n_layer,scales", [(4, 3), (3, 2), (2, 1)])
def test_smallest_side_is_where_the_discriminator_starts_to_work(n_layer, scales):
    side = MultiScaleDiscriminator.smallest_side(n_layer, scales)
    d = MultiScaleDiscriminator(1, 2, n_layer, scales)
    assert all(o.numel() for o in d(torch.zeros(1, 1, side, side)))
    with pytest.raises(RuntimeError):
        d(torch.zeros(1, 1, side - 1, side - 1))


DDP_SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    import torch, torch.distributed as dist
    from mri_harmonic.methods import unwrap
    from mri_harmonic.training.config import load_train_config
    from mri_harmonic.training.distributed import init_distributed
    from mri_harmonic.training.trainer import build_state, train_step
    from mri_harmonic.utils.device import seed_everything

    info = init_distributed("cpu")
    cfg = load_train_config(None, ["loss.method=unit", "loss.options.dim=4", "loss.options.dis_dim=4",
                                   "loss.options.n_res=2", "loss.options.dis_n_layer=3", "pool_size=0",
                                   "amp=false", "device=cpu"])
    seed_everything(cfg.seed + info.rank)  # different initial weights per rank: DDP must broadcast rank 0's
    s = build_state(cfg, torch.device("cpu"), info)
    g = unwrap(s.method.nets["G"])
    start = {n: p.detach().clone() for n, p in g.named_parameters()}
    torch.manual_seed(100 + info.rank)  # different images per rank
    for _ in range(3):
        train_step(s, torch.rand(1, 1, 32, 32) * 2 - 1, torch.rand(1, 1, 32, 32) * 2 - 1)
    flat = torch.cat([p.detach().flatten() for p in g.parameters()])
    every = [torch.empty_like(flat) for _ in range(info.world_size)]
    dist.all_gather(every, flat)
    assert all(torch.equal(every[0], x) for x in every[1:]), "generator weights differ between ranks"
    for n, p in g.named_parameters():
        if n.startswith(("enc_shared.", "dec_shared.")):
            assert not torch.equal(p, start[n]), n + " did not train"
    # one file per rank: both ranks print to one pipe, so "ok" lines can interleave ("rankrank  10  okok")
    (Path(sys.argv[1]) / f"rank{info.rank}.ok").write_text("ok")
    dist.destroy_process_group()
""")


@pytest.mark.dist
def test_two_process_gloo_ddp_trains_the_shared_layers_in_step(tmp_path):
    script = tmp_path / "ddp_unit.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.glob("rank*.ok")) == ["rank0.ok", "rank1.ok"]
