"""Image-similarity metrics for translated slices: MAE, MSE, PSNR and SSIM, whole-slice or inside a region.

Pure, batched torch functions (they run on the GPU when the tensors are there) plus :class:`MetricAccumulator`,
which turns batches into one row per slice x region. All functions take ``pred`` and ``target`` of shape
``(B, H, W)`` or ``(B, 1, H, W)`` on the same intensity scale and return one value per slice, shape ``(B,)``.

Conventions (documented here once, repeated in every evaluation report):

- **Scale.** ``data_range`` is the dynamic range of the scale the images are on: 1 for the store's [0, 1] units,
  255 for the paper's 0-255 scale (store value x 255, no rounding to 8 bit). MAE scales linearly, MSE
  quadratically; PSNR and SSIM do not depend on the scale when ``data_range`` follows it.
- **PSNR** ``= 10 log10(data_range^2 / MSE)``. Identical images (MSE = 0) give ``+inf``: we *report* ``inf`` for
  that slice and :func:`summarise_values` leaves non-finite values out of means/stds, counting them in ``n_inf``
  (capping at an arbitrary dB value would bias the mean by a made-up number).
- **SSIM** as Wang, Bovik, Sheikh, Simoncelli, "Image quality assessment: from error visibility to structural
  similarity", IEEE TIP 13(4), 2004: Gaussian window 11x11 with sigma 1.5, K1 = 0.01, K2 = 0.03,
  ``C1 = (K1 L)^2``, ``C2 = (K2 L)^2`` with ``L = data_range``, population (not sample) covariances. The SSIM map
  is evaluated where the whole window lies inside the image ("valid" positions, a 5-pixel border is dropped),
  and the slice SSIM is the mean of that map. This equals scikit-image's ``structural_similarity(...,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=L)`` (which crops the same border
  before averaging) and MONAI's ``SSIMMetric(spatial_dims=2, data_range=L)``.
- **Regions.** With a boolean ``mask`` MAE/MSE/PSNR use the pixels inside the mask; SSIM averages the SSIM map
  over the mask pixels at valid positions. A slice whose region is empty (or, for SSIM, has no valid position)
  gets ``nan``, which summaries leave out (``n`` counts the slices that had the region).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

#: SSIM constants of Wang et al. 2004 (Section III-C): 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03.
SSIM_WIN_SIZE = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

METRICS = ("MAE", "MSE", "PSNR", "SSIM")


def _as_batch(x: torch.Tensor, name: str) -> torch.Tensor:
    """``(B,H,W)`` or ``(B,1,H,W)`` -> ``(B,1,H,W)`` floating tensor (float64 kept, anything else -> float32)."""
    if not torch.is_tensor(x):
        x = torch.as_tensor(np.asarray(x))
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"{name} must have shape (B, H, W) or (B, 1, H, W), got {tuple(x.shape)}")
    return x if x.dtype == torch.float64 else x.float()


def _pair(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None):
    p, t = _as_batch(pred, "pred"), _as_batch(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"pred {tuple(p.shape)} and target {tuple(t.shape)} differ in shape")
    if p.dtype != t.dtype:
        p, t = p.double(), t.double()
    if mask is None:
        return p, t, None
    m = _as_batch(mask.to(torch.bool) if torch.is_tensor(mask) else torch.as_tensor(np.asarray(mask, bool)), "mask")
    if m.shape != p.shape:
        raise ValueError(f"mask {tuple(m.shape)} does not match images {tuple(p.shape)}")
    return p, t, m.to(device=p.device, dtype=p.dtype)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Per-slice mean of ``values`` (B,1,H,W), over ``mask`` when given; empty mask -> nan."""
    if mask is None:
        return values.flatten(1).mean(1)
    total = (values * mask).flatten(1).sum(1)
    count = mask.flatten(1).sum(1)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))


def mae(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error per slice (inside ``mask`` when given). Shape ``(B,)``."""
    p, t, m = _pair(pred, target, mask)
    return _masked_mean((p - t).abs(), m)


def mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error per slice (inside ``mask`` when given). Shape ``(B,)``."""
    p, t, m = _pair(pred, target, mask)
    return _masked_mean((p - t) ** 2, m)


def psnr_from_mse(mse_values: torch.Tensor, data_range: float) -> torch.Tensor:
    """``10 log10(data_range^2 / MSE)``; MSE 0 -> ``+inf`` (see the module docstring), nan stays nan."""
    return 10.0 * torch.log10(float(data_range) ** 2 / mse_values)  # x / 0 = +inf and log10(inf) = inf


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per slice (over ``mask`` pixels when given). Shape ``(B,)``."""
    return psnr_from_mse(mse(pred, target, mask), data_range)


def gaussian_window(win_size: int = SSIM_WIN_SIZE, sigma: float = SSIM_SIGMA, dtype=torch.float32, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian of length ``win_size`` (the separable factor of the 2-D SSIM window)."""
    if win_size % 2 != 1 or win_size < 1:
        raise ValueError(f"win_size must be odd and positive, got {win_size}")
    x = torch.arange(win_size, dtype=dtype, device=device) - (win_size - 1) / 2.0
    g = torch.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


def _filter_valid(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter, 'valid' positions only: (B,1,H,W) -> (B,1,H-w+1,W-w+1)."""
    k = g.numel()
    x = F.conv2d(x, g.view(1, 1, k, 1))
    return F.conv2d(x, g.view(1, 1, 1, k))


def ssim_map(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float,
    *,
    win_size: int = SSIM_WIN_SIZE,
    sigma: float = SSIM_SIGMA,
    k1: float = SSIM_K1,
    k2: float = SSIM_K2,
) -> torch.Tensor:
    """Local SSIM (Wang et al. 2004, Eq. 13) at every valid window position: ``(B,1,H-w+1,W-w+1)``."""
    p, t, _ = _pair(pred, target, None)
    if min(p.shape[-2:]) < win_size:
        raise ValueError(f"images of size {tuple(p.shape[-2:])} are smaller than the SSIM window ({win_size})")
    g = gaussian_window(win_size, sigma, dtype=p.dtype, device=p.device)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    stacked = torch.cat([p, t, p * p, t * t, p * t], dim=0)  # one filtering pass for all five moments
    mu_p, mu_t, e_pp, e_tt, e_pt = _filter_valid(stacked, g).chunk(5, dim=0)
    var_p = e_pp - mu_p * mu_p
    var_t = e_tt - mu_t * mu_t
    cov = e_pt - mu_p * mu_t
    num = (2 * mu_p * mu_t + c1) * (2 * cov + c2)
    den = (mu_p * mu_p + mu_t * mu_t + c1) * (var_p + var_t + c2)
    return num / den


def _crop_to_valid(mask: torch.Tensor, win_size: int) -> torch.Tensor:
    pad = (win_size - 1) // 2
    return mask[..., pad : mask.shape[-2] - pad, pad : mask.shape[-1] - pad]


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float,
    mask: torch.Tensor | None = None,
    *,
    win_size: int = SSIM_WIN_SIZE,
    sigma: float = SSIM_SIGMA,
    k1: float = SSIM_K1,
    k2: float = SSIM_K2,
) -> torch.Tensor:
    """Mean SSIM per slice (over the mask pixels at valid window positions when ``mask`` is given). ``(B,)``."""
    p, t, m = _pair(pred, target, mask)
    smap = ssim_map(p, t, data_range, win_size=win_size, sigma=sigma, k1=k1, k2=k2)
    return _masked_mean(smap, None if m is None else _crop_to_valid(m, win_size))


def regional_metrics(
    pred: torch.Tensor,
    target: torch.Tensor,
    regions: Mapping[str, torch.Tensor | None],
    data_range: float = 1.0,
) -> dict[str, dict[str, torch.Tensor]]:
    """All four metrics for every region (``None`` = whole slice) with one SSIM map per batch.

    Returns ``{region: {"MAE", "MSE", "PSNR", "SSIM": (B,)}}`` on the scale of ``data_range``.
    """
    p, t, _ = _pair(pred, target, None)
    smap = ssim_map(p, t, data_range)
    abs_err, sq_err = (p - t).abs(), (p - t) ** 2
    out: dict[str, dict[str, torch.Tensor]] = {}
    for name, mask in regions.items():
        m = None if mask is None else _pair(p, t, mask)[2]
        mse_v = _masked_mean(sq_err, m)
        out[name] = {
            "MAE": _masked_mean(abs_err, m),
            "MSE": mse_v,
            "PSNR": psnr_from_mse(mse_v, data_range),
            "SSIM": _masked_mean(smap, None if m is None else _crop_to_valid(m, SSIM_WIN_SIZE)),
        }
    return out


#: The two reporting scales: name -> factor applied to the store's [0, 1] intensities (data_range = factor).
SCALES: dict[str, float] = {"0-255": 255.0, "0-1": 1.0}


def rescale_metrics(values_unit: Mapping[str, torch.Tensor], factor: float) -> dict[str, torch.Tensor]:
    """Metrics computed on [0, 1] images -> the same metrics on images multiplied by ``factor``.

    Exact algebra, no recomputation: MAE x f, MSE x f^2, PSNR and SSIM unchanged (data_range scales with f,
    so C1 and C2 scale with f^2 like the moments they are added to).
    """
    return {
        "MAE": values_unit["MAE"] * factor,
        "MSE": values_unit["MSE"] * factor**2,
        "PSNR": values_unit["PSNR"],
        "SSIM": values_unit["SSIM"],
    }


class MetricAccumulator:
    """Collects per-slice metric rows, batch by batch (MONAI-style: pure functions + an accumulator).

    >>> acc = MetricAccumulator()
    >>> acc.update(pred, target, {"slice": None, "brain": mask}, keys={"subject": subjects, "run": "r1"})  # doctest: +SKIP
    >>> frame = acc.frame()   # one row per slice x region x scale, columns keys + region, scale, MAE..SSIM  # doctest: +SKIP

    ``pred``/``target`` are on the [0, 1] scale; each row is reported at every scale of :data:`SCALES`.
    Regions that are empty in a slice give no row for that slice.
    """

    def __init__(self, scales: Mapping[str, float] | None = None):
        self.scales = dict(SCALES if scales is None else scales)
        self._rows: list[dict[str, Any]] = []

    def update(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        regions: Mapping[str, torch.Tensor | None],
        keys: Mapping[str, Any] | None = None,
    ) -> None:
        batch = _as_batch(pred, "pred").shape[0]
        per_region = regional_metrics(pred, target, regions, data_range=1.0)
        counts = {
            name: (torch.full((batch,), 1) if m is None else _as_batch(m.to(torch.float32), "mask").flatten(1).sum(1)).cpu()
            for name, m in regions.items()
        }
        columns = {k: (list(v) if isinstance(v, (list, tuple, np.ndarray, torch.Tensor)) else [v] * batch) for k, v in (keys or {}).items()}
        for name, values in per_region.items():
            for scale, factor in self.scales.items():
                scaled = {k: v.detach().double().cpu().numpy() for k, v in rescale_metrics(values, factor).items()}
                for i in range(batch):
                    if counts[name][i] <= 0:
                        continue
                    row = {k: _plain(v[i]) for k, v in columns.items()}
                    row.update(region=name, scale=scale)
                    row.update({metric: float(scaled[metric][i]) for metric in METRICS})
                    self._rows.append(row)

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


def _plain(v: Any) -> Any:
    if torch.is_tensor(v):
        return v.item()
    if isinstance(v, np.generic):
        return v.item()
    return v


def summarise_values(values: Iterable[float]) -> dict[str, float | int]:
    """mean, std (population, ddof 0), n (all non-nan values), n_inf (non-finite, left out of mean/std)."""
    arr = np.asarray(list(values), dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    finite = arr[np.isfinite(arr)]
    return {
        "mean": float(finite.mean()) if finite.size else math.nan,
        "std": float(finite.std()) if finite.size else math.nan,
        "n": int(arr.size),
        "n_inf": int(arr.size - finite.size),
    }


def summarise(frame, by: Sequence[str] = ("run", "method", "direction", "region", "scale")):
    """Long summary table: one row per group x metric with mean, std, n, n_inf (see :func:`summarise_values`)."""
    import pandas as pd

    by = [c for c in by if c in frame.columns]
    rows = []
    for key, group in frame.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        for metric in METRICS:
            rows.append({**dict(zip(by, key)), "metric": metric, **summarise_values(group[metric])})
    return pd.DataFrame(rows, columns=[*by, "metric", "mean", "std", "n", "n_inf"])
