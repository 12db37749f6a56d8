"""Networks, patch features and losses of CycleGAN / HarmonicGAN / DistanceGAN.

- :mod:`~mri_harmonic.models.config`: :class:`ModelConfig`, :class:`LossConfig`, :class:`SmoothnessConfig`.
- :mod:`~mri_harmonic.models.networks`: ResNet generator, PatchGAN discriminator, ``build_*`` factories.
- :mod:`~mri_harmonic.models.features`: patch extraction, soft histograms, VGG-16 patch features.
- :mod:`~mri_harmonic.models.losses`: GAN, smoothness, distance the losses the methods assemble.
"""

from mri_harmonic.models.config import LossConfig, ModelConfig, SmoothnessConfig
from mri_harmonic.models.features import (
    HistogramPatchFeatures,
    SoftHistogram,
    VGGPatchFeatures,
    build_patch_features,
    extract_patches,
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
from mri_harmonic.models.networks import NLayerDiscriminator, ResnetGenerator, build_discriminator, build_generator

__all__ = [
    "ModelConfig", "LossConfig", "SmoothnessConfig",
    "ResnetGenerator", "NLayerDiscriminator", "build_generator", "build_discriminator",
    "extract_patches", "SoftHistogram", "HistogramPatchFeatures", "VGGPatchFeatures", "build_patch_features",
    "GANLoss", "pairwise_l1", "graph_weights", "SmoothnessLoss", "DistanceLoss", "estimate_distance_stats",
    "l1_loss", "discriminator_loss",
]
