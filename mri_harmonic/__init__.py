"""mri-harmonic: HarmonicGAN FLAIR <-> T1 translation for brain MRI.

Stages, in run order (each a sub-package usable from Python without the CLI):

- :mod:`mri_harmonic.data`        phantom data set, BraTS layout discovery, preprocessing into a slice store, Datasets
- :mod:`mri_harmonic.models`      generators, discriminators, patch features, losses (incl. the HarmonicGAN smoothness term)
- :mod:`mri_harmonic.training`    the trainer, checkpoints, distributed set-up
- :mod:`mri_harmonic.evaluation`  metrics, tumour fidelity, figures, reader studies, volume translation
- :mod:`mri_harmonic.cli`         the thin ``mri-harmonic`` command line
"""

__version__ = "0.1.0"
