"""Metrics against independent references: scikit-image, MONAI, and naive NumPy loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.metrics import MAEMetric, MSEMetric, PSNRMetric, SSIMMetric
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from mri_harmonic.evaluation.metrics import (
    MetricAccumulator,
    gaussian_window,
    mae,
    mse,
    psnr,
    regional_metrics,
    rescale_metrics,
    ssim,
    ssim_map,
    summarise,
    summarise_values,
)
from mri_harmonic.evaluation.regions import REGIONS, normal_brain_mask, region_masks

SK_SSIM = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


def _images(seed=0, b=3, h=40, w=36, scale=1.0):
    rng = np.random.default_rng(seed)
    target = rng.random((b, h, w))
    pred = np.clip(target + rng.normal(0, 0.1, size=target.shape), 0, 1)
    return pred * scale, target * scale


@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_whole_slice_metrics_match_skimage(scale):
    pred, target = _images(scale=scale)
    p, t = torch.from_numpy(pred), torch.from_numpy(target)
    for i in range(len(pred)):
        assert mae(p, t)[i].item() == pytest.approx(np.abs(pred[i] - target[i]).mean(), rel=1e-12)
        assert mse(p, t)[i].item() == pytest.approx(mean_squared_error(target[i], pred[i]), rel=1e-12)
        assert psnr(p, t, scale)[i].item() == pytest.approx(peak_signal_noise_ratio(target[i], pred[i], data_range=scale), rel=1e-10)
        ref = structural_similarity(target[i], pred[i], data_range=scale, **SK_SSIM)
        assert ssim(p, t, scale)[i].item() == pytest.approx(ref, abs=1e-9)


def test_metrics_match_monai_float32_and_channel_dim():
    pred, target = _images(seed=1)
    p = torch.from_numpy(pred).float().unsqueeze(1)
    t = torch.from_numpy(target).float().unsqueeze(1)
    torch.testing.assert_close(mae(p, t), MAEMetric(reduction="none")(p, t).squeeze(1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(mse(p, t), MSEMetric(reduction="none")(p, t).squeeze(1), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(psnr(p, t, 1.0), PSNRMetric(1.0, reduction="none")(p, t).squeeze(1), rtol=1e-5, atol=1e-4)
    ref = SSIMMetric(spatial_dims=2, data_range=1.0, reduction="none")(p, t).squeeze(1)
    torch.testing.assert_close(ssim(p, t, 1.0), ref, rtol=1e-4, atol=1e-5)
    assert mae(p, t).dtype == torch.float32


def test_identical_images_psnr_inf_and_ssim_one():
    img = torch.rand(2, 24, 24, dtype=torch.float64)
    assert torch.isinf(psnr(img, img, 1.0)).all() and (psnr(img, img, 1.0) > 0).all()
    with np.errstate(divide="ignore"):  # skimage divides by MSE = 0 too: same convention, +inf
        assert peak_signal_noise_ratio(img[0].numpy(), img[0].numpy(), data_range=1.0) == np.inf
    torch.testing.assert_close(ssim(img, img, 1.0), torch.ones(2, dtype=torch.float64))
    assert mae(img, img).abs().max() == 0


@pytest.mark.parametrize("value_pred,value_target", [(0.0, 0.0), (0.5, 0.5), (0.2, 0.7)])
def test_constant_images_match_references(value_pred, value_target):
    p = torch.full((1, 1, 20, 20), value_pred, dtype=torch.float64)
    t = torch.full((1, 1, 20, 20), value_target, dtype=torch.float64)
    ref_ssim = structural_similarity(t[0, 0].numpy(), p[0, 0].numpy(), data_range=1.0, **SK_SSIM)
    assert ssim(p, t, 1.0).item() == pytest.approx(ref_ssim, abs=1e-12)
    monai_ssim = SSIMMetric(spatial_dims=2, data_range=1.0, reduction="none")(p, t).item()
    # MONAI filters with a float32 kernel: its variances of a constant image carry ~1e-7 rounding, which moves
    # SSIM by ~1e-4 relative to C2 = 9e-4; our float64 value equals the exact closed form (checked via skimage).
    assert ssim(p, t, 1.0).item() == pytest.approx(monai_ssim, abs=5e-4)
    assert mae(p, t).item() == pytest.approx(abs(value_pred - value_target))
    expected_psnr = math.inf if value_pred == value_target else 10 * math.log10(1 / (value_pred - value_target) ** 2)
    assert psnr(p, t, 1.0).item() == pytest.approx(expected_psnr)


def test_gaussian_window_matches_skimage_truncation():
    # skimage: truncate 3.5, sigma 1.5 -> radius int(3.5 * 1.5 + 0.5) = 5 -> 11 taps
    g = gaussian_window(11, 1.5, dtype=torch.float64)
    x = np.arange(-5, 6)
    ref = np.exp(-(x**2) / (2 * 1.5**2))
    np.testing.assert_allclose(g.numpy(), ref / ref.sum(), rtol=1e-12)


def test_regional_metrics_match_naive_loops_and_skimage_map():
    rng = np.random.default_rng(3)
    pred, target = _images(seed=2, b=2, h=32, w=32)
    masks = rng.random((2, 32, 32)) > 0.6
    p, t, m = torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(masks)
    out = regional_metrics(p, t, {"slice": None, "region": m}, data_range=1.0)
    for i in range(2):
        diffs = [pred[i, y, x] - target[i, y, x] for y in range(32) for x in range(32) if masks[i, y, x]]
        diffs = np.array(diffs)
        assert out["region"]["MAE"][i].item() == pytest.approx(np.abs(diffs).mean(), rel=1e-12)
        assert out["region"]["MSE"][i].item() == pytest.approx((diffs**2).mean(), rel=1e-12)
        assert out["region"]["PSNR"][i].item() == pytest.approx(10 * np.log10(1 / (diffs**2).mean()), rel=1e-12)
        _, smap = structural_similarity(target[i], pred[i], data_range=1.0, full=True, **SK_SSIM)
        inner, inner_mask = smap[5:-5, 5:-5], masks[i, 5:-5, 5:-5]
        assert out["region"]["SSIM"][i].item() == pytest.approx(inner[inner_mask].mean(), abs=1e-9)
        assert out["slice"]["SSIM"][i].item() == pytest.approx(inner.mean(), abs=1e-9)
    # functional forms agree with the batched one
    torch.testing.assert_close(ssim(p, t, 1.0, mask=m), out["region"]["SSIM"])
    torch.testing.assert_close(mae(p, t, mask=m), out["region"]["MAE"])


def test_ssim_map_shape_and_small_image_error():
    p = torch.rand(2, 1, 16, 20)
    assert ssim_map(p, p, 1.0).shape == (2, 1, 6, 10)
    with pytest.raises(ValueError, match="smaller than the SSIM window"):
        ssim_map(torch.rand(1, 8, 8), torch.rand(1, 8, 8), 1.0)


def test_empty_region_gives_nan():
    p = torch.rand(2, 20, 20)
    empty = torch.zeros(2, 20, 20, dtype=torch.bool)
    assert torch.isnan(mae(p, p * 0.5, mask=empty)).all()
    assert torch.isnan(ssim(p, p * 0.5, 1.0, mask=empty)).all()


def test_rescale_metrics_equals_recomputation_on_255_scale():
    pred, target = _images(seed=4)
    p, t = torch.from_numpy(pred), torch.from_numpy(target)
    unit = regional_metrics(p, t, {"slice": None})["slice"]
    direct = regional_metrics(p * 255, t * 255, {"slice": None}, data_range=255.0)["slice"]
    scaled = rescale_metrics(unit, 255.0)
    for k in scaled:
        torch.testing.assert_close(scaled[k], direct[k], rtol=1e-10, atol=1e-10)


def test_region_masks():
    brain = torch.zeros(1, 8, 8, dtype=torch.uint8)
    brain[:, 2:6, 2:6] = 1
    seg = torch.zeros(1, 8, 8, dtype=torch.int64)
    seg[:, 3, 3], seg[:, 3, 4], seg[:, 4, 4] = 1, 2, 4
    masks = region_masks(brain, seg)
    assert tuple(masks) == REGIONS and masks["slice"] is None
    assert masks["brain"].sum() == 16 and masks["tumour"].sum() == 3
    assert normal_brain_mask(brain, seg).sum() == 13
    with pytest.raises(ValueError):
        region_masks(brain, seg[:, :4])


def test_accumulator_rows_and_summary():
    pred, target = _images(seed=5, b=2, h=24, w=24)
    p, t = torch.from_numpy(pred), torch.from_numpy(target)
    tumour = torch.zeros(2, 24, 24, dtype=torch.bool)
    tumour[0, 8:14, 8:14] = True  # only slice 0 has a tumour
    acc = MetricAccumulator()
    acc.update(p, t, {"slice": None, "tumour": tumour}, keys={"subject": ["a", "b"], "run": "r"})
    acc.update(t, t, {"slice": None}, keys={"subject": ["a", "b"], "run": "perfect"})
    df = acc.frame()
    # r: 2 slices x slice + 1 x tumour, x 2 scales; perfect: 2 x slice x 2 scales
    assert len(df) == (2 + 1) * 2 + 2 * 2
    row = df[(df.run == "r") & (df.region == "slice") & (df.scale == "0-255") & (df.subject == "b")].iloc[0]
    assert row.MAE == pytest.approx(255 * np.abs(pred[1] - target[1]).mean())
    summ = summarise(df, by=("run", "region", "scale"))
    psnr_perfect = summ[(summ.run == "perfect") & (summ.metric == "PSNR") & (summ.scale == "0-1")].iloc[0]
    assert psnr_perfect.n == 2 and psnr_perfect.n_inf == 2 and math.isnan(psnr_perfect["mean"])
    mae_r = summ[(summ.run == "r") & (summ.region == "slice") & (summ.metric == "MAE") & (summ.scale == "0-1")].iloc[0]
    vals = [np.abs(pred[i] - target[i]).mean() for i in range(2)]
    assert mae_r["mean"] == pytest.approx(np.mean(vals)) and mae_r["std"] == pytest.approx(np.std(vals)) and mae_r.n == 2


def test_summarise_values_excludes_inf_and_nan():
    s = summarise_values([1.0, 3.0, math.inf, math.nan])
    assert s == {"mean": 2.0, "std": 1.0, "n": 3, "n_inf": 1}
