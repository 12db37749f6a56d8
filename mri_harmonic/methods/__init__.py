"""Translation methods, one object each, behind the :class:`~mri_harmonic.methods.base.Method` interface.

- :mod:`~mri_harmonic.methods.base`: the interface (networks, objectives, translators) and ``unwrap``.
- :mod:`~mri_harmonic.methods.registry`: ``METHODS`` (name -> class), ``build_method``, ``resolve_options``.
- :mod:`~mri_harmonic.methods.cyclegan`, :mod:`~mri_harmonic.methods.harmonic`,
  :mod:`~mri_harmonic.methods.distancegan`: CycleGAN and the two methods built on its networks.
- :mod:`~mri_harmonic.methods.discogan`: DiscoGAN, with its own encoder-decoder networks and objective.
- :mod:`~mri_harmonic.methods.unit`: UNIT, coupled VAE-GANs with a shared latent space and shared layers.
"""

from mri_harmonic.methods.base import Method, unwrap
from mri_harmonic.methods.registry import BASELINE, METHODS, build_method, method_class, method_names, resolve_options

__all__ = ["Method", "unwrap", "METHODS", "BASELINE", "build_method", "method_class", "method_names", "resolve_options"]
