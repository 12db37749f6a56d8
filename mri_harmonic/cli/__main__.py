"""``python -m mri_harmonic.cli ...`` (and ``torchrun -m mri_harmonic.cli train ...``)."""

from mri_harmonic.cli import run

run()
