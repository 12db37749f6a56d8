"""Patch features for the HarmonicGAN graph (Zhang, Pfister, Li, ICLR 2019, Sec. 3.3).

An image is cut into non-overlapping ``p x p`` patches (the graph's nodes). Each patch is described by

- a **soft histogram** (the paper's low-level feature, Eq. 4-5): ``psi_b(v) = max(0, 1 - |v - mu_b| * w_b)``,
  ``phi(i, b) = sum_j psi_b(x_i(j))`` over the pixels ``j`` of patch ``i``; piecewise linear in the pixel values, so
  the smoothness term passes gradients to the generator through it; or
- **VGG-16 activations** (the paper's high-level feature), average-pooled onto the patch grid and scaled to unit L1
  mass per patch (so distances lie in [0, 2] as for normalised histograms and ``sigma`` keeps its meaning); weights
  are read from a torchvision-format state dict the user names (never downloaded).

Histograms, pooling and normalisation run in float32 (autocast switched off); the VGG convolutions run under the
caller's autocast (bf16 on CUDA). Both accept channels-last inputs.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mri_harmonic.errors import UserInputError
from mri_harmonic.models.config import VGG16_RELU_INDEX, SmoothnessConfig
from mri_harmonic.utils.device import no_autocast as _no_autocast

#: torchvision's VGG-16 ``features`` ("D" configuration of Simonyan & Zisserman, ICLR 2015); "M" = 2x2 max pool.
VGG16_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
#: ImageNet channel statistics used to train torchvision's VGG-16 (inputs in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def extract_patches(img: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Non-overlapping patches, row-major over the patch grid.

    Args:
        img: ``(B, C, H, W)``; ``H`` and ``W`` must be divisible by ``patch_size``.
        patch_size: side ``p`` of the square patches.

    Returns:
        ``(B, P, C*p*p)`` with ``P = (H/p)(W/p)``; patch ``i = r * (W/p) + c`` holds rows ``r*p:(r+1)*p`` and
        columns ``c*p:(c+1)*p``, its vector ordered channel, row, column.

    Raises:
        UserInputError: the sides are not divisible by ``patch_size`` (a config/data mismatch the user fixes).
    """
    if img.ndim != 4:
        raise ValueError(f"extract_patches expects (B, C, H, W), got shape {tuple(img.shape)}")
    b, c, h, w = img.shape
    p = int(patch_size)
    if p < 1 or h % p or w % p:
        raise UserInputError(f"image sides {h}x{w} are not divisible by patch_size {p}; set key "
                             "'loss.smoothness.patch_size' to a divisor of both sides or pad/crop the images")
    x = img.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // p) * (w // p), c * p * p)


class SoftHistogram(nn.Module):
    """Differentiable histogram of each patch with triangular bins (HarmonicGAN Eq. 4-5).

    Bin centres ``mu_b`` are ``bins`` evenly spaced values over ``value_range``, both ends included; each kernel has
    half-support ``bin_width`` (default: the centre spacing, so the kernels sum to 1 at every value in the range,
    i.e. linear interpolation between neighbouring bins). Values are clamped to ``value_range`` first.

    Args:
        bins: number of bins (>= 2).
        value_range: ``(low, high)``.
        bin_width: half-support of each kernel; ``None`` = centre spacing.
        normalize: divide by the pixels per patch, so each histogram sums to 1 and L1 distances lie in [0, 2].

    Shape: ``(B, P, K)`` patches -> ``(B, P, bins)`` float32.
    """

    def __init__(self, bins: int = 16, value_range: tuple[float, float] = (-1.0, 1.0),
                 bin_width: float | None = None, normalize: bool = True):
        super().__init__()
        lo, hi = float(value_range[0]), float(value_range[1])
        if bins < 2 or hi <= lo:
            raise ValueError(f"need bins >= 2 and value_range high > low, got bins={bins}, value_range={value_range}")
        self.bins, self.value_range, self.normalize = int(bins), (lo, hi), bool(normalize)
        self.bin_width = float(bin_width) if bin_width is not None else (hi - lo) / (bins - 1)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        with _no_autocast(patches):
            dtype = torch.float64 if patches.dtype == torch.float64 else torch.float32
            v = patches.to(dtype).clamp(*self.value_range)
            centres = torch.linspace(*self.value_range, self.bins, dtype=dtype, device=v.device)
            psi = (1.0 - (v.unsqueeze(-1) - centres).abs() / self.bin_width).clamp_min(0.0)
            hist = psi.sum(dim=-2)  # (B, P, bins)
            return hist / patches.shape[-1] if self.normalize else hist


class HistogramPatchFeatures(nn.Module):
    """``(B, C, H, W)`` image -> ``(B, P, bins)`` soft histograms of its ``patch_size`` patches."""

    def __init__(self, patch_size: int = 8, bins: int = 16, value_range: tuple[float, float] = (-1.0, 1.0),
                 bin_width: float | None = None, normalize: bool = True):
        super().__init__()
        self.patch_size = int(patch_size)
        self.histogram = SoftHistogram(bins, value_range, bin_width, normalize)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.histogram(extract_patches(img, self.patch_size))


def vgg16_features() -> nn.Sequential:
    """VGG-16 ``features`` with torchvision's module indices (so its state-dict keys load unchanged)."""
    layers: list[nn.Module] = []
    c = 3
    for v in VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, int(v), 3, padding=1), nn.ReLU(inplace=False)]
            c = int(v)
    return nn.Sequential(*layers)


def load_vgg16_features(path: str | os.PathLike) -> nn.Sequential:
    """VGG-16 ``features`` with the weights in ``path`` (torchvision state dict: ``features.N.weight/bias``)."""
    path = Path(path)
    fix = ("pass a torchvision VGG-16 state dict (e.g. vgg16-397923af.pth) via loss.smoothness.vgg_weights, "
           "or use loss.smoothness.features: histogram")
    if not path.is_file():
        raise UserInputError(f"VGG-16 weights file {path} not found; {fix}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error here
        raise UserInputError(f"VGG-16 weights file {path} could not be read as a torch state dict "
                             f"({type(exc).__name__}); {fix}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    net = vgg16_features()
    if not isinstance(state, dict):
        raise UserInputError(f"VGG-16 weights file {path} does not hold a state dict; {fix}")
    feats = {k[len("features."):]: v for k, v in state.items() if isinstance(k, str) and k.startswith("features.")}
    expected = net.state_dict()
    bad = [k for k in expected if k not in feats or not isinstance(feats[k], torch.Tensor)
           or tuple(feats[k].shape) != tuple(expected[k].shape)]
    if bad or set(feats) - set(expected):
        what = f"key features.{bad[0]} missing or of the wrong shape" if bad else "unexpected extra feature keys"
        raise UserInputError(f"VGG-16 weights file {path} is not a VGG-16 state dict ({what}); {fix}")
    net.load_state_dict({k: v.float() for k, v in feats.items()})
    return net


class VGGPatchFeatures(nn.Module):
    """Frozen VGG-16 activations at ``layer``, average-pooled onto the ``patch_size`` grid.

    Grey images are repeated to 3 channels; [-1, 1] intensities are mapped to [0, 1] and normalised with the
    ImageNet statistics. The network is frozen (``requires_grad=False``, eval mode) but gradients flow to the
    input, so it can serve the smoothness term on generator outputs.

    Shape: ``(B, 1 or 3, H, W)`` -> ``(B, P, C_layer)`` float32, ``P = (H/p)(W/p)``.
    """

    def __init__(self, weights: str | os.PathLike, layer: str = "relu3_3", patch_size: int = 8):
        super().__init__()
        if layer not in VGG16_RELU_INDEX:
            raise UserInputError(f"key 'loss.smoothness.vgg_layer' must be one of {', '.join(VGG16_RELU_INDEX)}, "
                                 f"got {layer!r}")
        self.net = load_vgg16_features(weights)[: VGG16_RELU_INDEX[layer] + 1]
        self.net.eval().requires_grad_(False)
        self.patch_size = int(patch_size)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> VGGPatchFeatures:
        super().train(mode)
        self.net.eval()  # frozen: never in training mode
        return self

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        b, c, h, w = img.shape
        p = self.patch_size
        if h % p or w % p:
            raise UserInputError(f"image sides {h}x{w} are not divisible by patch_size {p}; set key "
                                 "'loss.smoothness.patch_size' to a divisor of both sides or pad/crop the images")
        x = img.expand(b, 3, h, w) if c == 1 else img
        x = ((x.float() + 1.0) * 0.5 - self.mean) / self.std
        f = self.net(x)
        with _no_autocast(f):
            f = F.adaptive_avg_pool2d(f.float(), (h // p, w // p))
            f = f.flatten(2).transpose(1, 2)  # (B, P, C), patches row-major as extract_patches
            # ReLU activations are non-negative: scale each patch's vector to unit L1 mass, like a normalised
            # histogram, so L1 distances lie in [0, 2] and the same sigma means the same thing for both features.
            return f / f.sum(dim=-1, keepdim=True).clamp_min(1e-8)


def build_patch_features(cfg: SmoothnessConfig) -> nn.Module:
    """The feature extractor ``cfg.features`` names, configured from ``cfg``."""
    if cfg.features == "histogram":
        return HistogramPatchFeatures(cfg.patch_size, cfg.bins, cfg.value_range, cfg.bin_width,
                                      cfg.normalize_histogram)
    if cfg.features == "vgg":
        if not cfg.vgg_weights:
            raise UserInputError("key 'loss.smoothness.vgg_weights' must name a VGG-16 state-dict file when "
                                 "features is 'vgg'")
        return VGGPatchFeatures(cfg.vgg_weights, cfg.vgg_layer, cfg.patch_size)
    raise UserInputError(f"key 'loss.smoothness.features' must be 'histogram' or 'vgg', got {cfg.features!r}")
