"""Training: the CycleGAN / HarmonicGAN / DistanceGAN loop, checkpoints and distributed set-up.

- :mod:`~mri_harmonic.training.config`: :class:`TrainConfig` and :func:`load_train_config` (YAML with ``extends``).
- :mod:`~mri_harmonic.training.trainer`: :func:`train` (the loop) and :func:`train_step`.
- :mod:`~mri_harmonic.checkpoint`: the checkpoint dict, :func:`load_run` for evaluation.
- :mod:`~mri_harmonic.training.image_pool`: the discriminators' image buffer.
- :mod:`~mri_harmonic.training.distributed`: torchrun / DDP helpers and the resumable sampler.
- :mod:`~mri_harmonic.training.logging`: metrics CSV, TensorBoard, sample grids.

Import :func:`train` from :mod:`mri_harmonic.training.trainer` (this package stays light to import).
"""

from mri_harmonic.checkpoint import LoadedRun, load_run
from mri_harmonic.training.config import TrainConfig, load_train_config

__all__ = ["TrainConfig", "load_train_config", "LoadedRun", "load_run"]
