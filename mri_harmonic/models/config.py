"""Configuration of the networks (:class:`ModelConfig`) and of the training objective (:class:`LossConfig`,
:class:`SmoothnessConfig`).

The trainer nests them as ``model:`` and ``loss:`` (``loss.smoothness:``) in its YAML files, so validation errors
name the keys with those prefixes (e.g. ``loss.smoothness.sigma``).

Network defaults are those of the CycleGAN reference implementation (Zhu et al., ICCV 2017;
junyanz/pytorch-CycleGAN-and-pix2pix ``options/base_options.py``: ResNet-9 generator, 70x70 PatchGAN, instance
norm, N(0, 0.02) init). Loss weights follow the same reference (``lambda_A = lambda_B = 10``,
``lambda_identity = 0.5``, LSGAN). The HarmonicGAN smoothness defaults (``patch_size``, ``bins``, ``sigma``,
``lambda_smooth``) come from the measurement in ``pipelines/smoothness_defaults.py``; its report
(``reports/smoothness_defaults/README.md``) explains the choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from mri_harmonic.config import require

#: VGG-16 ``features`` indices of the ReLU after each conv (torchvision layout), by the usual ``reluB_L`` name.
VGG16_RELU_INDEX: dict[str, int] = {
    "relu1_1": 1, "relu1_2": 3,
    "relu2_1": 6, "relu2_2": 8,
    "relu3_1": 11, "relu3_2": 13, "relu3_3": 15,
    "relu4_1": 18, "relu4_2": 20, "relu4_3": 22,
    "relu5_1": 25, "relu5_2": 27, "relu5_3": 29,
}


@dataclass
class ModelConfig:
    """Generators (ResNet) and discriminators (PatchGAN), as in the CycleGAN reference."""

    in_channels: int = 1
    """Channels of domain-A images (1 for one MRI modality)."""
    out_channels: int = 1
    """Channels of domain-B images."""
    ngf: int = 64
    """Filters of the generator's first conv layer."""
    ndf: int = 64
    """Filters of the discriminator's first conv layer."""
    n_blocks: int = 9
    """ResNet blocks in the generator (9 = the reference's ``resnet_9blocks``)."""
    n_downsampling: int = 2
    """Stride-2 convolutions (and as many x2 upsamplings, see ``upsample``); image sides must be divisible by
    ``2**n_downsampling``."""
    upsample: Literal["transpose", "nearest", "bilinear"] = "transpose"
    """How the generator upsamples: ``transpose`` = stride-2 transposed convs (the reference); ``nearest`` /
    ``bilinear`` = resize then 3x3 conv ("resize-convolution", Odena, Dumoulin, Olah, Distill 2016), which cannot
    produce the checkerboard pattern that transposed convs with kernel 3 / stride 2 print early in training."""
    keep_background: bool = False
    """ResNet generator: pixels whose input is exact background (intensity 0, -1 in network units: outside the
    brain of a skull-stripped, masked slice) are output as background, so the network need not learn to draw it.
    Inside the brain this also holds the input's darkest voxels, those its intensity normalisation clipped to exactly
    0 (~0.5 % of brain pixels at a 0.5th-percentile clip; CSF, dark in both FLAIR and T1), at 0. Off = the
    reference. Measured on the phantom (reports/benchmarks/recipe_v2.md): it stops the models drawing the brain's
    outline dark (whole-slice Flair -> T1 SSIM 0.717 against 0.698) but they then draw FLAIR-bright lesions dark in
    T1 (tumour MAE 75-79 against 46-50; 3 of 3 seeds), so no shipped config turns it on."""
    d_layers: int = 3
    """Stride-2 layers of the PatchGAN; 3 gives the 70x70 receptive field."""
    norm: Literal["instance", "batch", "none"] = "instance"
    """Normalisation layer in both networks."""
    use_dropout: bool = False
    """Dropout(0.5) inside the ResNet blocks."""
    init_type: Literal["normal", "xavier", "kaiming", "orthogonal"] = "normal"
    """Weight initialisation of conv layers (reference ``init_weights``)."""
    init_gain: float = 0.02
    """Std of ``normal`` / gain of ``xavier`` and ``orthogonal``."""

    def __post_init__(self) -> None:
        for name in ("in_channels", "out_channels", "ngf", "ndf"):
            require(getattr(self, name) >= 1, f"model.{name}", f"must be >= 1, got {getattr(self, name)}")
        require(self.n_blocks >= 0, "model.n_blocks", f"must be >= 0, got {self.n_blocks}")
        require(0 <= self.n_downsampling <= 6, "model.n_downsampling", f"must be in 0..6, got {self.n_downsampling}")
        require(1 <= self.d_layers <= 6, "model.d_layers", f"must be in 1..6 (3 = 70x70 PatchGAN), got {self.d_layers}")
        require(self.init_gain > 0, "model.init_gain", f"must be > 0, got {self.init_gain}")
        require(self.upsample in ("transpose", "nearest", "bilinear"), "model.upsample",
                f"must be one of 'transpose', 'nearest', 'bilinear', got {self.upsample!r}")
        require(self.norm in ("instance", "batch", "none"), "model.norm",
                f"must be one of 'instance', 'batch', 'none', got {self.norm!r}")
        require(self.init_type in ("normal", "xavier", "kaiming", "orthogonal"), "model.init_type",
                f"must be one of 'normal', 'xavier', 'kaiming', 'orthogonal', got {self.init_type!r}")


@dataclass
class SmoothnessConfig:
    """The HarmonicGAN patch graph (Zhang, Pfister, Li, ICLR 2019, Sec. 3.2-3.3).

    Weights ``w_ij(x) = exp(-Dist[x(i), x(j)] / sigma**2)`` with ``Dist`` the L1 distance between patch features.
    """

    features: Literal["histogram", "vgg"] = "histogram"
    """Patch features: soft intensity histogram (paper's default, Eq. 4-5) or pre-trained VGG-16 activations."""
    patch_size: int = 16
    """Side of the non-overlapping square patches (pixels); image sides must be divisible by it. 16 px = ~30 mm at
    the phantom preset's ~2 mm pixels (96 px slices, a 6x6 patch grid); use 32 for ~1 mm pixels (256 px BraTS slices): the
    measurement found the same physical size best at both resolutions."""
    bins: int = 8
    """Histogram bins, centres evenly spaced over ``value_range`` including both ends (8 beat 16 and 32 at every
    patch size in the measurement)."""
    value_range: tuple[float, float] = (-1.0, 1.0)
    """Intensity range of the histogram (the networks' [-1, 1])."""
    bin_width: float | None = None
    """Half-support of each triangular bin kernel (``psi_b(v) = max(0, 1 - |v - mu_b| / bin_width)``);
    ``None`` = the centre spacing, which makes the kernels a partition of unity (linear interpolation)."""
    normalize_histogram: bool = True
    """Divide each patch histogram by its pixel count, so L1 distances lie in [0, 2] and ``sigma`` is scale-free."""
    sigma: float = 0.7
    """Graph bandwidth in ``exp(-Dist / sigma**2)``, in units of the normalised-histogram L1 distance (which lies in
    [0, 2]); 0.7 maximised the graph's F1 for target-alike patch pairs in both directions and at both resolutions."""
    vgg_weights: str | None = None
    """File with a torchvision-format VGG-16 state dict (e.g. ``vgg16-397923af.pth``); needed for ``vgg``.
    Never downloaded."""
    vgg_layer: str = "relu3_3"
    """VGG-16 layer whose activations are the features (``relu1_1`` ... ``relu5_3``)."""
    min_brain_fraction: float = 0.0
    """Foreground patch graph: patches of ``x`` whose share of brain pixels (values above the networks' background
    -1) is below this leave the graph, and each mean runs over the pairs of the patches that remain. 0 = every
    patch (today's default; reports/foreground_graph/ measures the option)."""

    def __post_init__(self) -> None:
        p = "loss.smoothness."
        require(self.features in ("histogram", "vgg"), p + "features",
                f"must be 'histogram' or 'vgg', got {self.features!r}")
        require(self.patch_size >= 1, p + "patch_size", f"must be >= 1, got {self.patch_size}")
        require(self.bins >= 2, p + "bins", f"must be >= 2, got {self.bins}")
        lo, hi = self.value_range
        require(hi > lo, p + "value_range", f"must be [low, high] with high > low, got {list(self.value_range)}")
        require(self.bin_width is None or self.bin_width > 0, p + "bin_width",
                f"must be > 0 or null (= centre spacing), got {self.bin_width}")
        require(self.sigma > 0, p + "sigma", f"must be > 0, got {self.sigma}")
        require(0.0 <= self.min_brain_fraction <= 1.0, p + "min_brain_fraction",
                f"must lie in [0, 1], got {self.min_brain_fraction}")
        require(self.vgg_layer in VGG16_RELU_INDEX, p + "vgg_layer",
                f"must be one of {', '.join(VGG16_RELU_INDEX)}, got {self.vgg_layer!r}")
        require(self.features != "vgg" or bool(self.vgg_weights), p + "vgg_weights",
                "must name a torchvision VGG-16 state-dict file (e.g. vgg16-397923af.pth) when features is 'vgg'")


@dataclass
class LossConfig:
    """Generator objective: CycleGAN terms plus the method's extra term.

    ``total = lambda_gan (GAN_AB + GAN_BA) + lambda_cycle (cyc_A + cyc_B) + lambda_cycle lambda_identity (idt_A + idt_B)
    + [harmonic] lambda_smooth (smooth_A + smooth_B) + [distancegan] lambda_distance (dist_AB + dist_BA)``.
    """

    method: str = "harmonic"
    """A name in :data:`mri_harmonic.methods.METHODS`: ``harmonic`` = CycleGAN + smoothness (HarmonicGAN);
    ``cyclegan``; ``distancegan`` = CycleGAN + the distance constraint of Benaim & Wolf (NeurIPS 2017) in both
    directions (set ``lambda_cycle: 0`` for their pure variant); ``discogan``; ``unit``."""
    gan_mode: Literal["lsgan", "vanilla"] = "lsgan"
    """Adversarial loss: least squares (reference default) or the original cross-entropy."""
    lambda_gan: float = 1.0
    """Weight of each adversarial term."""
    lambda_cycle: float = 10.0
    """Weight of each cycle-consistency L1 term (reference ``lambda_A = lambda_B = 10``)."""
    lambda_identity: float = 0.5
    """Identity weight *relative to* ``lambda_cycle`` (reference ``lambda_identity``); 0 disables it."""
    lambda_smooth: float = 1.0
    """Weight of each smoothness term (``harmonic`` only). At 1 its gradient on a freshly initialised generator is
    about 0.3x that of the weighted cycle term (reports/smoothness_defaults/README.md); revisable by a training
    sweep."""
    lambda_distance: float = 1.0
    """Weight of each distance term (``distancegan`` only)."""
    distance_self: bool = True
    """DistanceGAN: distance between the two halves of one image (their variant for batch size 1) instead of
    between the images of a batch."""
    smoothness: SmoothnessConfig = field(default_factory=SmoothnessConfig)
    """The HarmonicGAN patch graph."""
    options: dict[str, Any] = field(default_factory=dict)
    """Settings of methods that bring their own objective (``discogan``, ``unit``), checked against that method's
    ``Options`` dataclass and resolved with every default; empty for the CycleGAN family, whose settings are the
    keys above."""

    def __post_init__(self) -> None:
        for name in ("lambda_gan", "lambda_cycle", "lambda_identity", "lambda_smooth", "lambda_distance"):
            v = getattr(self, name)
            require(v >= 0, f"loss.{name}", f"must be >= 0, got {v}")
        from mri_harmonic.methods.registry import resolve_options  # the registry imports this module

        self.options = resolve_options(self.method, self.options)
        require(self.gan_mode in ("lsgan", "vanilla"), "loss.gan_mode",
                f"must be 'lsgan' or 'vanilla', got {self.gan_mode!r}")
