"""The built-in phantom data set: BraTS-like multi-modal MRI simulated by MR physics on real anatomy.

Modules, in the order the simulation runs:

- :mod:`.tissue` — 3 T relaxation times and proton densities with their sources, sequence parameters and the
  magnitude spin-echo / inversion-recovery signal equations, gadolinium T1 shortening.
- :mod:`.anatomy` — MNI ICBM152 2009a GM/WM/CSF fractions (shipped with nilearn) placed in the BraTS grid and
  randomly deformed.
- :mod:`.tumour` — random gliomas with necrotic core, enhancing rim and oedema, and their BraTS labels.
- :mod:`.simulate` — :class:`PhantomSubject` and :func:`simulate_subject` (signals, bias field, Rician noise).
- :mod:`.writer` — :func:`write_subject` and :func:`generate_phantom` (layouts, parallel, resumable).
"""

from mri_harmonic.data.phantom.simulate import PhantomSubject, check_shape, simulate_subject, simulate_with_fractions
from mri_harmonic.data.phantom.writer import LAYOUTS, case_name, generate_phantom, subject_path, write_subject

__all__ = [
    "LAYOUTS", "PhantomSubject", "case_name", "check_shape", "generate_phantom", "simulate_subject",
    "simulate_with_fractions", "subject_path", "write_subject",
]
