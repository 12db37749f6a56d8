"""Loss functions of CycleGAN, HarmonicGAN and DistanceGAN.

- :class:`GANLoss`: LSGAN (Mao et al., ICCV 2017; the CycleGAN reference default) or the original cross-entropy GAN.
- :class:`SmoothnessLoss`: the HarmonicGAN smoothness term (Zhang, Pfister, Li, ICLR 2019, Eq. 6-7)
  ``sum_ij w_ij(x) Dist[G(x)(i), G(x)(j)] + sum_ij w_ij(G(x)) Dist[F(G(x))(i), F(G(x))(j)]`` with
  ``w_ij(x) = exp(-Dist[x(i), x(j)] / sigma**2)`` (Eq. 3) and ``Dist`` the L1 distance between patch features.
- :class:`DistanceLoss`: the distance constraint of DistanceGAN (Benaim & Wolf, NeurIPS 2017, Eq. 3-4).
- :func:`l1_loss` / :func:`discriminator_loss`: the pieces the methods (:mod:`mri_harmonic.methods`) assemble
  their objectives from.

Everything is vectorised over patches and pairs and computed in float32 (autocast is switched off inside).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mri_harmonic.models.config import SmoothnessConfig
from mri_harmonic.models.features import build_patch_features
from mri_harmonic.utils.device import no_autocast as _no_autocast


def _f32(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype == torch.float64 else t.float()


class GANLoss(nn.Module):
    """Adversarial loss against a constant target (1 = real, 0 = fake).

    ``lsgan``: mean squared error of the raw discriminator outputs; ``vanilla``: binary cross-entropy on logits.
    """

    def __init__(self, gan_mode: str = "lsgan", real_label: float = 1.0, fake_label: float = 0.0):
        super().__init__()
        if gan_mode not in ("lsgan", "vanilla"):
            raise ValueError(f"unknown gan_mode {gan_mode!r}; expected 'lsgan' or 'vanilla'")
        self.gan_mode, self.real_label, self.fake_label = gan_mode, float(real_label), float(fake_label)

    def forward(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        with _no_autocast(prediction):
            pred = _f32(prediction)
            target = torch.full_like(pred, self.real_label if target_is_real else self.fake_label)
            if self.gan_mode == "lsgan":
                return F.mse_loss(pred, target)
            return F.binary_cross_entropy_with_logits(pred, target)


def pairwise_l1(feats: torch.Tensor) -> torch.Tensor:
    """L1 distances between all patch features: ``(B, P, F) -> (B, P, P)``, ``out[b, i, j] = |f_bi - f_bj|_1``.

    Uses :func:`torch.cdist` with ``p=1``, whose gradient is ``sign(f_i - f_j)`` (0 on the diagonal), in float32.
    """
    with _no_autocast(feats):
        f = _f32(feats)
        return torch.cdist(f, f, p=1.0)


def graph_weights(feats: torch.Tensor, sigma: float) -> torch.Tensor:
    """HarmonicGAN graph weights ``w_ij = exp(-|f_i - f_j|_1 / sigma**2)`` (Eq. 3): ``(B, P, F) -> (B, P, P)``.

    Computed without autograd and detached: the graph is a fixed target, gradients flow only through the
    distances it weights.
    """
    with torch.no_grad():
        return torch.exp(-pairwise_l1(feats.detach()) / float(sigma) ** 2)


class SmoothnessLoss(nn.Module):
    """HarmonicGAN smoothness term for one cycle ``x -> G(x) -> F(G(x))``.

    ``forward(x, gx, fgx)`` returns
    ``mean_b [ mean_ij w_ij(x) D_ij(G(x)) + mean_ij w_ij(G(x)) D_ij(F(G(x))) ]`` where ``D_ij(y)`` is the L1
    distance between the features of patches ``i`` and ``j`` of ``y`` and ``w`` comes from :func:`graph_weights`.

    Normalisation: the paper writes plain double sums; here each double sum is divided by ``P**2`` (a mean over
    ordered pairs, ``i = j`` included, which contribute 0), and the result is averaged over the batch, so the term's
    scale does not depend on the image or patch size. With normalised histograms ``D`` lies in [0, 2] and
    ``w`` in (0, 1], so each mean lies in [0, 2].

    Foreground graph (``min_brain_fraction > 0``): :meth:`patch_keep` marks the patches of ``x`` with at least that
    share of brain pixels (above the networks' background, -1); both sums then run over pairs of kept patches only
    and are divided by the number of those pairs, ``(sum_i keep_i)**2``, instead of ``P**2`` (a sample with no kept
    patch contributes 0). The same patches (the anatomy of ``x``) are kept in both sums.

    Gradients flow into ``gx`` and ``fgx`` through the patch features (the soft histogram is piecewise linear);
    the weights carry none. ``x`` only sets the weights of the first sum, ``gx`` both the weights of the second
    (detached) and the distances of the first.
    """

    #: Pixels above this are brain: the networks' background is exactly -1 (the store's 0 mapped to [-1, 1]).
    BACKGROUND_ABOVE = -1.0 + 1e-3

    def __init__(self, cfg: SmoothnessConfig | None = None):
        super().__init__()
        self.cfg = cfg or SmoothnessConfig()
        self.features = build_patch_features(self.cfg)
        self.sigma = float(self.cfg.sigma)

    def patch_keep(self, x: torch.Tensor) -> torch.Tensor | None:
        """``(B, P)`` bool: patches of ``x`` with a brain share >= ``min_brain_fraction``; None = keep every patch."""
        if self.cfg.min_brain_fraction <= 0:
            return None
        p = self.cfg.patch_size
        brain = (x.detach() > self.BACKGROUND_ABOVE).float().mean(dim=1, keepdim=True)  # any channel's share
        share = F.avg_pool2d(brain, kernel_size=p, stride=p).flatten(1)  # row-major, as extract_patches
        return share >= self.cfg.min_brain_fraction

    def weighted_distance(self, weights: torch.Tensor, feats: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """``mean_ij w_ij D_ij`` per sample over all pairs, or over pairs of kept patches: ``(B, P, P)``, ``(B, P, F)``
        [, ``(B, P)``] -> ``(B,)``."""
        if keep is None:
            return (weights * pairwise_l1(feats)).mean(dim=(1, 2))
        pair = (keep[:, :, None] & keep[:, None, :]).to(weights.dtype)
        return (pair * weights * pairwise_l1(feats)).sum(dim=(1, 2)) / pair.sum(dim=(1, 2)).clamp(min=1.0)

    def forward(self, x: torch.Tensor, gx: torch.Tensor, fgx: torch.Tensor) -> torch.Tensor:
        keep = self.patch_keep(x)
        with torch.no_grad():
            w_x = graph_weights(self.features(x.detach()), self.sigma)
        f_gx = self.features(gx)
        w_gx = graph_weights(f_gx, self.sigma)
        f_fgx = self.features(fgx)
        return (self.weighted_distance(w_x, f_gx, keep) + self.weighted_distance(w_gx, f_fgx, keep)).mean()


def _self_distance(img: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between the top and bottom halves of each image: ``(B, C, H, W) -> (B,)``.

    DistanceGAN's ``get_self_distances`` splits with ``torch.chunk(x, 2, dim=2)``, i.e. along the height.
    """
    top, bottom = torch.chunk(_f32(img), 2, dim=2)
    if top.shape != bottom.shape:  # odd height: drop the middle row
        bottom = bottom[:, :, 1:] if bottom.shape[2] > top.shape[2] else bottom
        top = top[:, :, : bottom.shape[2]]
    return (top - bottom).abs().flatten(1).mean(dim=1)


def _pair_distances(img: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between every pair ``i < j`` of a batch: ``(B, C, H, W) -> (B(B-1)/2,)``."""
    flat = _f32(img).flatten(1)
    d = torch.cdist(flat.unsqueeze(0), flat.unsqueeze(0), p=1.0)[0] / flat.shape[1]
    i, j = torch.triu_indices(flat.shape[0], flat.shape[0], offset=1, device=img.device)
    return d[i, j]


def estimate_distance_stats(images: Iterable, *, self_distance: bool = True,
                            max_items: int | None = 1000) -> tuple[float, float]:
    """Mean and (population) standard deviation of the distances :class:`DistanceLoss` compares, over a data set.

    Args:
        images: tensors or arrays ``(C, H, W)``, ``(H, W)`` or batches ``(B, C, H, W)`` in the networks' range.
        self_distance: statistics of top/bottom-half distances (True) or of all pairs of images (False).
        max_items: use at most this many images (pairs grow quadratically); ``None`` = all.

    Returns:
        ``(mu, sigma)``; ``sigma`` is floored at 1e-6 so constant data cannot divide by zero.
    """
    batch: list[torch.Tensor] = []
    n = 0
    for item in images:
        t = torch.as_tensor(np.asarray(item) if not isinstance(item, torch.Tensor) else item).detach().cpu()
        t = t.float()
        if t.ndim == 2:
            t = t[None, None]
        elif t.ndim == 3:
            t = t[None]
        batch.append(t)
        n += t.shape[0]
        if max_items is not None and n >= max_items:
            break
    if not batch:
        raise ValueError("estimate_distance_stats needs at least one image")
    x = torch.cat(batch)[: max_items if max_items is not None else None]
    if self_distance:
        d = _self_distance(x)
    else:
        if x.shape[0] < 2:
            raise ValueError("pairwise distance statistics need at least two images")
        d = _pair_distances(x)
    d = d.double()
    return float(d.mean()), max(float(d.std(unbiased=False)) if d.numel() > 1 else 0.0, 1e-6)


class DistanceLoss(nn.Module):
    """DistanceGAN's one-sided distance constraint for a mapping ``G: S -> T``.

    ``|(d(x_i, x_j) - mu_S) / sigma_S - (d(G x_i, G x_j) - mu_T) / sigma_T|`` averaged over pairs, with ``d`` the
    mean absolute pixel difference. With ``self_distance`` (their variant for batch size 1) the pair is the top
    and bottom half of one image and the loss is averaged over the batch; otherwise it is averaged over all pairs
    ``i < j`` of the batch (which then needs at least two images).

    The data statistics live in buffers (saved with the ``state_dict``); set them with :meth:`set_stats` from
    :func:`estimate_distance_stats` on each domain. Until then they are ``mu = 0, sigma = 1`` (unnormalised
    distances, their ``--unnormalized_distances`` option).
    """

    def __init__(self, self_distance: bool = True):
        super().__init__()
        self.self_distance = bool(self_distance)
        self.register_buffer("mu_source", torch.tensor(0.0))
        self.register_buffer("sigma_source", torch.tensor(1.0))
        self.register_buffer("mu_target", torch.tensor(0.0))
        self.register_buffer("sigma_target", torch.tensor(1.0))

    def set_stats(self, source: tuple[float, float], target: tuple[float, float]) -> DistanceLoss:
        """Set ``(mu, sigma)`` of the source and target domains' distances; returns ``self``."""
        for name, (mu, sd) in (("source", source), ("target", target)):
            if not sd > 0:
                raise ValueError(f"distance std of the {name} domain must be > 0, got {sd}")
            getattr(self, f"mu_{name}").fill_(float(mu))
            getattr(self, f"sigma_{name}").fill_(float(sd))
        return self

    def forward(self, x: torch.Tensor, gx: torch.Tensor) -> torch.Tensor:
        with _no_autocast(gx):
            if self.self_distance:
                dx, dg = _self_distance(x), _self_distance(gx)
            else:
                if x.shape[0] < 2:
                    raise ValueError("DistanceLoss over image pairs needs a batch of at least 2; use batch size >= 2 "
                                     "or loss.distance_self: true")
                dx, dg = _pair_distances(x), _pair_distances(gx)
            nx = (dx - self.mu_source) / self.sigma_source
            ng = (dg - self.mu_target) / self.sigma_target
            return (nx - ng).abs().mean()


def l1_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference in float32 (autocast off), as the reference's ``nn.L1Loss``."""
    with _no_autocast(a):
        return F.l1_loss(_f32(a), _f32(b))


def discriminator_loss(d: nn.Module, real: torch.Tensor, fake: torch.Tensor, gan: GANLoss) -> torch.Tensor:
    """``0.5 (GAN(d(real), real) + GAN(d(fake.detach()), fake))`` (reference ``backward_D_basic``)."""
    return 0.5 * (gan(d(real), True) + gan(d(fake.detach()), False))
