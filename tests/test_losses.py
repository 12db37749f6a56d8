"""Patch features and losses against naive loop references (values and gradients), plus their properties."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from mri_harmonic.config import from_dict, load_config
from mri_harmonic.errors import UserInputError
from mri_harmonic.models.config import LossConfig, SmoothnessConfig
from mri_harmonic.models.features import (
    HistogramPatchFeatures,
    SoftHistogram,
    VGGPatchFeatures,
    build_patch_features,
    extract_patches,
    vgg16_features,
)
from mri_harmonic.models.losses import (
    DistanceLoss,
    GANLoss,
    SmoothnessLoss,
    discriminator_loss,
    estimate_distance_stats,
    graph_weights,
    l1_loss,
    pairwise_l1,
)


# ----------------------------------------------------------------------------------------------- naive references
def naive_patches(img, p):
    b, c, h, w = img.shape
    out = []
    for bi in range(b):
        rows = []
        for r in range(h // p):
            for col in range(w // p):
                rows.append(img[bi, :, r * p:(r + 1) * p, col * p:(col + 1) * p].reshape(-1))
        out.append(torch.stack(rows))
    return torch.stack(out)


def naive_histogram(patches, bins, lo=-1.0, hi=1.0, width=None, normalize=True):
    """psi_b(v) = max(0, 1 - |v - mu_b| / width), summed over a patch's pixels, one scalar at a time."""
    width = (hi - lo) / (bins - 1) if width is None else width
    centres = [lo + (hi - lo) * k / (bins - 1) for k in range(bins)]
    b, n, k = patches.shape
    out = torch.zeros(b, n, bins, dtype=patches.dtype)
    for bi, pi, bb in itertools.product(range(b), range(n), range(bins)):
        total = 0.0
        for j in range(k):
            v = min(max(patches[bi, pi, j], torch.tensor(lo, dtype=patches.dtype)), torch.tensor(hi, dtype=patches.dtype))
            total = total + torch.clamp(1 - (v - centres[bb]).abs() / width, min=0)
        out[bi, pi, bb] = total / k if normalize else total
    return out


def naive_smoothness(x, gx, fgx, p, bins, sigma):
    def feats(img):
        return naive_histogram(naive_patches(img, p), bins)

    fx, fg, ff = feats(x).detach(), feats(gx), feats(fgx)
    fg_det = fg.detach()
    b, n, _ = fx.shape
    per_sample = []
    for bi in range(b):
        s1 = 0.0
        s2 = 0.0
        for i in range(n):
            for j in range(n):
                w1 = torch.exp(-(fx[bi, i] - fx[bi, j]).abs().sum() / sigma**2)
                w2 = torch.exp(-(fg_det[bi, i] - fg_det[bi, j]).abs().sum() / sigma**2)
                s1 = s1 + w1 * (fg[bi, i] - fg[bi, j]).abs().sum()
                s2 = s2 + w2 * (ff[bi, i] - ff[bi, j]).abs().sum()
        per_sample.append((s1 + s2) / n**2)
    return torch.stack(per_sample).mean()


# ------------------------------------------------------------------------------------------------------ features
def test_extract_patches_matches_naive_and_channels_last():
    img = torch.randn(2, 3, 8, 12)
    ref = naive_patches(img, 4)
    torch.testing.assert_close(extract_patches(img, 4), ref, rtol=0, atol=0)
    torch.testing.assert_close(extract_patches(img.contiguous(memory_format=torch.channels_last), 4), ref, rtol=0, atol=0)
    assert extract_patches(img, 4).shape == (2, 6, 48)


def test_extract_patches_rejects_indivisible_sizes():
    with pytest.raises(UserInputError, match="not divisible by patch_size 5.*loss.smoothness.patch_size"):
        extract_patches(torch.zeros(1, 1, 8, 10), 5)
    with pytest.raises(UserInputError, match="patch_size 16"):
        SmoothnessLoss(SmoothnessConfig(patch_size=16))(*(torch.zeros(1, 1, 24, 32),) * 3)


@pytest.mark.parametrize("bins,width,normalize", [(5, None, True), (8, 0.5, False), (2, None, True)])
def test_soft_histogram_equals_formula(bins, width, normalize):
    torch.manual_seed(1)
    patches = torch.rand(2, 3, 6, dtype=torch.float64) * 2.4 - 1.2  # includes values outside [-1, 1] (clamped)
    got = SoftHistogram(bins, (-1.0, 1.0), width, normalize)(patches)
    torch.testing.assert_close(got, naive_histogram(patches, bins, width=width, normalize=normalize))
    if width is None and normalize:
        torch.testing.assert_close(got.sum(-1), torch.ones(2, 3, dtype=torch.float64))  # partition of unity


def test_soft_histogram_gradient():
    torch.manual_seed(2)
    hist = SoftHistogram(5, (-1.0, 1.0), None, True)
    patches = (torch.rand(2, 3, 4, dtype=torch.float64) * 1.9 - 0.95).requires_grad_(True)
    assert torch.autograd.gradcheck(hist, (patches,), eps=1e-6, atol=1e-7)
    # one pixel between centres b and b+1 moves mass from bin b to bin b+1 at rate 1/(width * K)
    v = torch.tensor([[[0.1, 0.9]]], dtype=torch.float64, requires_grad=True)  # centres -1,-.5,0,.5,1; width .5
    jac = torch.autograd.functional.jacobian(lambda t: hist(t), v)[0, 0, :, 0, 0, 0]  # d hist / d v[0]
    torch.testing.assert_close(jac, torch.tensor([0, 0, -1.0, 1.0, 0], dtype=torch.float64))  # 1/(0.5*2) = 1


def test_histogram_patch_features_shape_float32_under_autocast():
    feat = HistogramPatchFeatures(patch_size=4, bins=8)
    img = torch.rand(2, 1, 8, 16) * 2 - 1
    ref = feat(img)
    assert ref.shape == (2, 8, 8) and ref.dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = feat(img.bfloat16())
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, feat(img.bfloat16().float()))


# ------------------------------------------------------------------------------------------ pairwise and weights
def test_pairwise_l1_value_and_gradient():
    torch.manual_seed(3)
    f = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    naive = torch.stack([torch.stack([torch.stack([(f[b, i] - f[b, j]).abs().sum() for j in range(5)])
                                      for i in range(5)]) for b in range(2)])
    got = pairwise_l1(f)
    torch.testing.assert_close(got, naive)
    g = torch.randn(2, 5, 5, dtype=torch.float64)
    (ga,) = torch.autograd.grad((got * g).sum(), f)
    (gb,) = torch.autograd.grad((naive * g).sum(), f)
    torch.testing.assert_close(ga, gb)


def test_graph_weights_detached_and_limits():
    f = torch.rand(1, 4, 6, requires_grad=True)
    w = graph_weights(f, 0.5)
    assert not w.requires_grad
    torch.testing.assert_close(torch.diagonal(w, dim1=1, dim2=2), torch.ones(1, 4))
    torch.testing.assert_close(w, torch.exp(-pairwise_l1(f.detach()) / 0.25))
    torch.testing.assert_close(graph_weights(f, 1e3), torch.ones(1, 4, 4), atol=1e-5, rtol=0)  # sigma -> inf: w -> 1


# ------------------------------------------------------------------------------------------------ smoothness loss
def test_smoothness_equals_naive_double_loop_value_and_gradient():
    torch.manual_seed(4)
    cfg = SmoothnessConfig(patch_size=4, bins=4, sigma=0.7)
    loss = SmoothnessLoss(cfg)
    x = (torch.rand(2, 1, 8, 8, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    gx = (torch.rand(2, 1, 8, 8, dtype=torch.float64) * 1.9 - 0.95).requires_grad_(True)
    fgx = (torch.rand(2, 1, 8, 8, dtype=torch.float64) * 1.9 - 0.95).requires_grad_(True)
    got = loss(x, gx, fgx)
    ref = naive_smoothness(x, gx, fgx, 4, 4, 0.7)
    torch.testing.assert_close(got, ref)
    g_got = torch.autograd.grad(got, (gx, fgx), retain_graph=True)
    g_ref = torch.autograd.grad(ref, (gx, fgx))
    for a, b in zip(g_got, g_ref):
        torch.testing.assert_close(a, b)
        assert a.abs().sum() > 0
    got.backward()
    assert x.grad is None  # the graph of the input carries no gradient


def naive_foreground_smoothness(x, gx, fgx, p, bins, sigma, min_fraction):
    """Both double sums over pairs of patches of ``x`` with a brain share >= ``min_fraction``, divided by the number
    of those pairs (brain = pixels above -1)."""
    def feats(img):
        return naive_histogram(naive_patches(img, p), bins)

    fx, fg, ff = feats(x).detach(), feats(gx), feats(fgx)
    fg_det = fg.detach()
    share = (naive_patches(x.detach(), p) > -1 + 1e-3).double().mean(-1)
    b, n, _ = fx.shape
    per_sample = []
    for bi in range(b):
        kept = [i for i in range(n) if share[bi, i] >= min_fraction]
        s = torch.zeros((), dtype=x.dtype)
        for i in kept:
            for j in kept:
                s = s + torch.exp(-(fx[bi, i] - fx[bi, j]).abs().sum() / sigma**2) * (fg[bi, i] - fg[bi, j]).abs().sum()
                s = s + torch.exp(-(fg_det[bi, i] - fg_det[bi, j]).abs().sum() / sigma**2) * (ff[bi, i] - ff[bi, j]).abs().sum()
        per_sample.append(s / max(len(kept), 1) ** 2)
    return torch.stack(per_sample).mean()


def _brain_disc(b=2, size=16, radius=5.5, seed=0):
    """Images with background exactly -1 outside a disc of brain (random values inside)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    brain = ((yy - 7.5) ** 2 + (xx - 7.5) ** 2) < radius**2
    img = torch.rand(b, 1, size, size, generator=g, dtype=torch.float64) * 1.8 - 0.9
    return torch.where(brain, img, torch.full_like(img, -1.0)), brain


def test_foreground_graph_equals_naive_loop_and_spares_background():
    x, brain = _brain_disc()
    gx = (torch.rand(2, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 1.9 - 0.95).requires_grad_(True)
    fgx = (torch.rand(2, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 1.9 - 0.95).requires_grad_(True)
    loss = SmoothnessLoss(SmoothnessConfig(patch_size=4, bins=4, sigma=0.7, min_brain_fraction=0.5))
    keep = loss.patch_keep(x)
    assert 0 < int(keep[0].sum()) < 16  # some patches leave the graph
    got = loss(x, gx, fgx)
    ref = naive_foreground_smoothness(x, gx, fgx, 4, 4, 0.7, 0.5)
    torch.testing.assert_close(got, ref)
    g_got = torch.autograd.grad(got, (gx, fgx))
    g_ref = torch.autograd.grad(ref, (gx, fgx))
    for a, b in zip(g_got, g_ref):
        torch.testing.assert_close(a, b)
    # pixels of patches that left the graph get no gradient; those of kept patches do
    dropped = ~keep[0].reshape(4, 4).repeat_interleave(4, 0).repeat_interleave(4, 1)
    assert g_got[0][0, 0][dropped].abs().max() == 0 and g_got[0][0, 0][~dropped].abs().sum() > 0
    # threshold 0 keeps every patch: today's term exactly
    full = SmoothnessLoss(SmoothnessConfig(patch_size=4, bins=4, sigma=0.7))
    torch.testing.assert_close(SmoothnessLoss(SmoothnessConfig(patch_size=4, bins=4, sigma=0.7, min_brain_fraction=0.0))(x, gx, fgx),
                               full(x, gx, fgx))
    # all patches brain: any threshold gives today's term
    xb = torch.rand(2, 1, 16, 16, dtype=torch.float64) * 1.8 - 0.9
    torch.testing.assert_close(loss(xb, gx, fgx), full(xb, gx, fgx))
    # no brain at all: the term is 0, not nan
    assert loss(torch.full_like(x, -1.0), gx, fgx).item() == 0


def _two_region_image(n=16, seed=0):
    rng = np.random.default_rng(seed)
    img = np.full((n, n), -0.6)
    img[:, n // 2:] = 0.5
    img += rng.normal(0, 0.05, img.shape)
    return torch.tensor(img, dtype=torch.float32)[None, None]


def test_smoothness_prefers_translations_that_keep_alike_patches_alike():
    loss = SmoothnessLoss(SmoothnessConfig(patch_size=4, bins=8, sigma=0.5))
    x = _two_region_image()
    good = -x  # a monotone intensity map: alike input patches stay alike
    patches = extract_patches(good, 4)  # scramble the patch positions: same patches, broken correspondence
    perm = torch.tensor([0, 2, 5, 7, 8, 10, 13, 15, 1, 3, 4, 6, 9, 11, 12, 14])
    scrambled = patches[:, perm].reshape(1, 4, 4, 1, 4, 4).permute(0, 3, 1, 4, 2, 5).reshape(1, 1, 16, 16)
    torch.testing.assert_close(torch.sort(extract_patches(scrambled, 4), 1)[0], torch.sort(patches, 1)[0])
    zero = torch.zeros_like(x)
    assert loss(x, good, zero) < 0.5 * loss(x, scrambled, zero)


def test_smoothness_zero_for_constant_outputs_and_sigma_limit():
    x = _two_region_image()
    const = torch.full_like(x, 0.3)
    assert float(SmoothnessLoss(SmoothnessConfig(patch_size=4))(x, const, const)) == 0.0
    # sigma -> inf: every weight is 1, the loss is the plain mean pairwise distance of outputs
    y = -x
    big = SmoothnessLoss(SmoothnessConfig(patch_size=4, bins=8, sigma=1e4))(x, y, const)
    feats = HistogramPatchFeatures(4, 8)(y)
    torch.testing.assert_close(big, pairwise_l1(feats).mean(), rtol=1e-5, atol=1e-6)


def test_smoothness_autocast_and_channels_last_match_float32():
    torch.manual_seed(5)
    loss = SmoothnessLoss(SmoothnessConfig(patch_size=4, bins=8))
    x, gx, fgx = (torch.rand(2, 1, 16, 16) * 2 - 1 for _ in range(3))
    ref = loss(x, gx, fgx)
    cl = [t.contiguous(memory_format=torch.channels_last) for t in (x, gx, fgx)]
    torch.testing.assert_close(loss(*cl), ref)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = loss(x, gx, fgx)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref)


# ------------------------------------------------------------------------------------------------- VGG features
def test_vgg_features_load_random_state_dict(tmp_path):
    torch.manual_seed(6)
    state = {f"features.{k}": v for k, v in vgg16_features().state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # torchvision files also hold the classifier: ignored
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    feat = build_patch_features(SmoothnessConfig(features="vgg", vgg_weights=str(path), patch_size=8))
    assert isinstance(feat, VGGPatchFeatures)
    img = (torch.rand(2, 1, 32, 32) * 2 - 1).requires_grad_(True)
    out = feat(img)
    assert out.shape == (2, 16, 256)  # relu3_3 has 256 channels; (32/8)^2 patches
    assert all(not p.requires_grad for p in feat.parameters())
    # non-negative, unit L1 mass per patch: distances lie in [0, 2] like normalised histograms
    assert (out >= 0).all()
    torch.testing.assert_close(out.sum(-1), torch.ones(2, 16))
    assert pairwise_l1(out.detach()).max() <= 2.0 + 1e-5
    (out ** 2).sum().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0
    # the loaded weights are the file's
    torch.testing.assert_close(feat.net[0].weight, state["features.0.weight"])
    # usable inside the smoothness loss
    loss = SmoothnessLoss(SmoothnessConfig(features="vgg", vgg_weights=str(path), patch_size=8))
    assert torch.isfinite(loss(img.detach(), img.detach(), img.detach()))


def test_vgg_missing_or_wrong_file_is_user_error(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(UserInputError, match="nope.pth"):
        VGGPatchFeatures(missing)
    wrong = tmp_path / "other.pth"
    torch.save({"features.0.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(UserInputError, match="other.pth.*not a VGG-16"):
        VGGPatchFeatures(wrong)
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    with pytest.raises(UserInputError, match="junk.pth"):
        VGGPatchFeatures(junk)


# --------------------------------------------------------------------------------------------------- distance loss
def test_distance_loss_pairs_matches_naive():
    torch.manual_seed(7)
    x, gx = torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8)
    loss = DistanceLoss(self_distance=False).set_stats((0.3, 0.1), (0.4, 0.2))
    terms = []
    for i in range(4):
        for j in range(i + 1, 4):
            dx = float((x[i] - x[j]).abs().mean())
            dg = float((gx[i] - gx[j]).abs().mean())
            terms.append(abs((dx - 0.3) / 0.1 - (dg - 0.4) / 0.2))
    assert float(loss(x, gx)) == pytest.approx(np.mean(terms), rel=1e-5)
    with pytest.raises(ValueError, match="at least 2"):
        loss(x[:1], gx[:1])


def test_distance_loss_self_matches_naive_and_stats_in_state_dict():
    torch.manual_seed(8)
    x, gx = torch.rand(3, 1, 8, 6), torch.rand(3, 1, 8, 6)
    loss = DistanceLoss(self_distance=True).set_stats((0.2, 0.05), (0.3, 0.1))
    terms = []
    for b in range(3):
        dx = float((x[b, :, :4] - x[b, :, 4:]).abs().mean())
        dg = float((gx[b, :, :4] - gx[b, :, 4:]).abs().mean())
        terms.append(abs((dx - 0.2) / 0.05 - (dg - 0.3) / 0.1))
    assert float(loss(x, gx)) == pytest.approx(np.mean(terms), rel=1e-5)
    other = DistanceLoss()
    other.load_state_dict(loss.state_dict())
    assert float(other(x, gx)) == pytest.approx(float(loss(x, gx)))


def test_estimate_distance_stats_matches_numpy():
    rng = np.random.default_rng(9)
    imgs = [rng.random((1, 8, 8)).astype(np.float32) for _ in range(5)]
    d_self = [np.abs(im[:, :4] - im[:, 4:]).mean() for im in imgs]
    mu, sd = estimate_distance_stats(imgs, self_distance=True)
    assert mu == pytest.approx(np.mean(d_self), rel=1e-5) and sd == pytest.approx(np.std(d_self), rel=1e-4)
    d_pair = [np.abs(imgs[i] - imgs[j]).mean() for i in range(5) for j in range(i + 1, 5)]
    mu, sd = estimate_distance_stats(iter(imgs), self_distance=False)
    assert mu == pytest.approx(np.mean(d_pair), rel=1e-5) and sd == pytest.approx(np.std(d_pair), rel=1e-4)


# ------------------------------------------------------------------------------------ discriminator objective
def test_discriminator_loss_detaches_fake():
    d = torch.nn.Conv2d(1, 1, 3)
    real = torch.rand(2, 1, 8, 8)
    fake = torch.rand(2, 1, 8, 8, requires_grad=True)
    loss = discriminator_loss(d, real, fake, GANLoss())
    ref = 0.5 * (((d(real) - 1) ** 2).mean() + (d(fake) ** 2).mean())
    torch.testing.assert_close(loss, ref)
    loss.backward()
    assert fake.grad is None and d.weight.grad is not None


def _terms(method: str, t: dict, smooth=None, dist_ab=None, dist_ba=None) -> dict:
    """The named terms a method assembles from these loss functions (mri_harmonic.methods)."""
    gan = GANLoss()
    out = {"gan_ab": gan(t["pred_fake_b"], True), "gan_ba": gan(t["pred_fake_a"], True),
           "cycle_a": l1_loss(t["rec_a"], t["real_a"]), "cycle_b": l1_loss(t["rec_b"], t["real_b"]),
           "idt_a": l1_loss(t["idt_a"], t["real_b"]), "idt_b": l1_loss(t["idt_b"], t["real_a"])}
    if method == "harmonic":
        out["smooth_a"] = smooth(t["real_a"], t["fake_b"], t["rec_a"])
        out["smooth_b"] = smooth(t["real_b"], t["fake_a"], t["rec_b"])
    else:
        out["dist_ab"], out["dist_ba"] = dist_ab(t["real_a"], t["fake_b"]), dist_ba(t["real_b"], t["fake_a"])
    weights = {"cycle_a": 10.0, "cycle_b": 10.0, "idt_a": 5.0, "idt_b": 5.0}  # LossConfig's defaults
    out["total"] = sum(weights.get(k, 1.0) * v for k, v in out.items())
    return out


@pytest.mark.parametrize("method", ["harmonic", "distancegan"])
def test_every_loss_term_stays_float32_under_cpu_bf16_autocast(method):
    """Under CPU autocast the networks hand bf16 tensors to the objective; every term must still be computed in
    float32: the same values and gradients as without autocast on the same (bf16-rounded) tensors upcast."""
    g = torch.Generator().manual_seed(11)
    t = {k: (torch.rand(2, 1, 16, 16, generator=g) * 2 - 1).bfloat16()
         for k in ("real_a", "real_b", "fake_b", "rec_a", "fake_a", "rec_b", "idt_a", "idt_b")}
    t["pred_fake_b"] = torch.randn(2, 1, 6, 6, generator=g).bfloat16()
    t["pred_fake_a"] = torch.randn(2, 1, 6, 6, generator=g).bfloat16()
    t["real_a"], t["real_b"] = t["real_a"].float(), t["real_b"].float()  # data is float32, network outputs bf16
    kw = ({"smooth": SmoothnessLoss(SmoothnessConfig(patch_size=4))} if method == "harmonic" else
          {"dist_ab": DistanceLoss().set_stats((0.5, 0.1), (0.4, 0.1)), "dist_ba": DistanceLoss().set_stats((0.4, 0.1), (0.5, 0.1))})

    def run(cast: bool):
        leaves = {k: (v.float() if not cast else v).detach().requires_grad_(True) for k, v in t.items()}
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cast):
            out = _terms(method, leaves, **kw)
            d = discriminator_loss(lambda x: x[:, :, :6, :6], leaves["real_b"], leaves["fake_b"], GANLoss())
        (out["total"] + d).backward()
        return {**out, "d": d}, {k: v.grad for k, v in leaves.items() if v.grad is not None}

    (got, got_grad), (ref, ref_grad) = run(True), run(False)
    assert set(got) == set(ref) and ("smooth_a" in got) == (method == "harmonic")
    for name in ref:
        assert got[name].dtype == torch.float32, name
        torch.testing.assert_close(got[name], ref[name], rtol=1e-6, atol=1e-7, msg=name)
    for name in ref_grad:
        assert got_grad[name].dtype == t[name].dtype, name
        # a bf16 tensor's gradient is summed over its uses in bf16 (8-bit mantissa): rounding, not bf16 maths inside
        tol = dict(rtol=2 ** -7, atol=1e-6) if t[name].dtype == torch.bfloat16 else dict(rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(got_grad[name].float(), ref_grad[name], **tol, msg=name)


# -------------------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize("data,key", [
    ({"smoothness": {"patch_size": 0}}, "loss.smoothness.patch_size"),
    ({"smoothness": {"sigma": 0}}, "loss.smoothness.sigma"),
    ({"smoothness": {"bins": 1}}, "loss.smoothness.bins"),
    ({"smoothness": {"vgg_layer": "relu9_9"}}, "loss.smoothness.vgg_layer"),
    ({"smoothness": {"features": "vgg"}}, "loss.smoothness.vgg_weights"),
    ({"lambda_smooth": -1}, "loss.lambda_smooth"),
    ({"smoothness": {"min_brain_fraction": 1.5}}, "loss.smoothness.min_brain_fraction"),
])
def test_loss_config_validation_names_key(data, key):
    with pytest.raises(UserInputError, match=key.replace(".", r"\.")):
        from_dict(LossConfig, data, source="run.yaml")


def test_loss_config_unknown_method(tmp_path):
    with pytest.raises(UserInputError, match="method"):
        load_config(LossConfig, overrides=["method=pix2pix"])
    with pytest.raises(UserInputError, match=r"loss\.method"):
        LossConfig(method="pix2pix")
    path = tmp_path / "loss.yaml"
    path.write_text("smoothness:\n  sigma: -1\n")
    with pytest.raises(UserInputError, match=r"loss\.yaml.*loss\.smoothness\.sigma"):
        load_config(LossConfig, path)
