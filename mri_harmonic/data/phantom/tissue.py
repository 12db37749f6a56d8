"""Tissue relaxation properties at 3 T and the magnitude signal equations of the four BraTS sequences.

The phantom is simulated at **3 T** (most BraTS 2021 sites scanned at 3 T; some at 1.5 T).

Normal tissue (T1, T2 in ms; PD = water content relative to CSF):

- White / grey matter T1: 838 / 1607 ms, MPRAGE at 3 T (Wright et al., "Water proton T1 measurements in brain
  tissue at 7, 3, and 1.5 T using IR-EPI, IR-TSE, and MPRAGE", MAGMA 21:121-130, 2008).
- White / grey matter T2: 69 / 99 ms at 3 T (Stanisz et al., "T1, T2 relaxation and magnetization transfer in
  tissue at 3T", MRM 54:507-512, 2005; Wansapura et al., JMRI 9:531-538, 1999 report 80 / 110 ms).
- CSF T1 / T2: 4309 / 1886 ms in the subarachnoid space at 3 T (frontal horns 4454 / 2373 ms), from "T1 and T2
  of CSF in the subarachnoid space at 3 T" (MRM, 2023; abstract at biocloudy.com/literatureDetail/ODQwMTc4MQ==);
  consistent with Spijkerman et al., MAGMA 31:415-424, 2018 (CSF T2 ~ 1.5-2 s at 3 T).
- PD: white 0.69, grey 0.80, CSF 1.00 (absolute water content; Neeb et al., NeuroImage 31:1156-1168, 2006).

Tumour (no single source gives every value; marked where assumed):

- De Blank et al. (MR fingerprinting of brain tumours at 3 T, J Neurooncol 2019; via neurosurgerywiki MRF page)
  report high-grade solid tumour T1 / T2 = 1863 / 90 ms, peritumoral white matter 1261 / 65 ms and contralateral
  white matter 938 / 38 ms. MRF T2 runs lower than spin-echo T2, so we use the *ratios to white matter*
  (solid tumour 1.99x T1, 2.37x T2; peritumoral oedema 1.35x T1, 1.71x T2) applied to the white-matter values
  above: enhancing tumour 1665 / 163 ms, oedema 1133 / 118 ms.
- Necrosis: fluid-rich, between solid tumour and CSF. **Assumed** T1 2500 ms, T2 300 ms, PD 0.90 (no
  measured value found); tumour PD 0.80 and oedema PD 0.76 (white matter + 10 %) **assumed** (qMRI shows raised
  PD in both).
- Gadolinium: 1/T1_post = 1/T1_pre + r1 C with r1 = 4.0 /(mM s), between gadoterate (3.0) and gadobutrol
  (4.97) in human plasma at 3 T (Szomolanyi et al., Invest Radiol 54:559-564, 2019). Tissue concentration is
  calibrated to the measured pre-minus-post-contrast T1 drop in untreated glioblastoma at 3 T, 838 +- 210 ms in
  enhancing tumour and 123 +- 74 ms in peritumoral oedema ("Quantitative T1 mapping indicates tumor infiltration
  beyond the enhancing part of glioblastomas", NMR Biomed 2020, Frankfurt group; publikationen.ub.uni-frankfurt.de
  docId 57191): C ~ U(0.1, 0.3) mM in enhancing tumour gives 665-1110 ms, and 0.027 mM in oedema gives ~120 ms.
  T2 shortening by Gd is neglected (r2 C << 1/T2 at these doses).

Sequences (typical clinical 3 T parameters; BraTS papers, Menze et al. IEEE TMI 2015 and Bakas et al. Sci Data
2017, describe the acquisitions only qualitatively, so these are representative values, not site protocols):

- T1 and T1ce: spin echo, TR/TE = 500/12 ms;  S = PD (1 - e^{-TR/T1}) e^{-TE/T2}.
- T2: (turbo) spin echo, TR/TE = 5000/100 ms (same equation).
- FLAIR: inversion recovery, TR/TE = 9000/120 ms, TI nulling CSF:  S = PD |1 - 2 e^{-TI/T1} + e^{-TR/T1}|
  e^{-TE/T2}, so TI = T1_csf ln(2 / (1 + e^{-TR/T1_csf})) (-> T1_csf ln 2 for TR >> T1_csf), here 2484 ms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FIELD_STRENGTH_T = 3.0
GD_R1_PER_MM_S = 4.0  # Szomolanyi et al. 2019, see module docstring
GD_CONCENTRATION_MM = (0.1, 0.3)  # enhancing tumour, calibrated to the measured T1 drop (docstring)
GD_OEDEMA_MM = 0.027  # peritumoral oedema leakage, same calibration

#: Classes in the order used by the fraction maps of :mod:`.tumour` and :mod:`.simulate`.
CLASSES = ("gm", "wm", "csf", "oedema", "enhancing", "necrosis")


@dataclass(frozen=True)
class Tissue:
    """Relaxation times (ms) and relative proton density of one tissue class."""

    t1: float
    t2: float
    pd: float


TISSUES: dict[str, Tissue] = {
    "wm": Tissue(t1=838.0, t2=69.0, pd=0.69),
    "gm": Tissue(t1=1607.0, t2=99.0, pd=0.80),
    "csf": Tissue(t1=4309.0, t2=1886.0, pd=1.00),
    "oedema": Tissue(t1=838.0 * 1261 / 933, t2=69.0 * 65 / 38, pd=0.76),
    "enhancing": Tissue(t1=838.0 * 1863 / 938, t2=69.0 * 90 / 38, pd=0.80),
    "necrosis": Tissue(t1=2500.0, t2=300.0, pd=0.90),
}


@dataclass(frozen=True)
class Sequence:
    """A magnitude spin-echo (``ti=None``) or inversion-recovery sequence; times in ms."""

    tr: float
    te: float
    ti: float | None = None


def csf_null_ti(tr: float, t1_csf: float) -> float:
    """Inversion time nulling a tissue of ``t1_csf``: solve 1 - 2e^{-TI/T1} + e^{-TR/T1} = 0."""
    return t1_csf * math.log(2.0 / (1.0 + math.exp(-tr / t1_csf)))


SEQUENCES: dict[str, Sequence] = {
    "t1": Sequence(tr=500.0, te=12.0),
    "t1ce": Sequence(tr=500.0, te=12.0),
    "t2": Sequence(tr=5000.0, te=100.0),
    "flair": Sequence(tr=9000.0, te=120.0, ti=csf_null_ti(9000.0, TISSUES["csf"].t1)),
}

MODALITIES = ("flair", "t1", "t1ce", "t2")


def signal(seq: Sequence, t1, t2, pd):
    """Magnitude signal of ``seq`` for relaxation times ``t1``, ``t2`` (ms) and density ``pd`` (arrays or floats)."""
    t1 = np.asarray(t1, dtype=np.float64) if np.isscalar(t1) else t1
    e_tr = np.exp(-seq.tr / t1)
    decay = np.exp(-seq.te / t2)
    if seq.ti is None:
        return pd * (1.0 - e_tr) * decay
    return pd * np.abs(1.0 - 2.0 * np.exp(-seq.ti / t1) + e_tr) * decay


def gd_t1(t1_pre, concentration_mm, r1: float = GD_R1_PER_MM_S):
    """Post-contrast T1 (ms): 1/T1 = 1/T1_pre + r1 C, with r1 in /(mM s) and C in mM."""
    return 1.0 / (1.0 / t1_pre + r1 * concentration_mm / 1000.0)


def class_signals(jitter: dict[str, tuple[float, float]] | None = None) -> dict[str, np.ndarray]:
    """Per-modality signal of every class in :data:`CLASSES` (pre-contrast; T1ce enhancement added per voxel).

    ``jitter`` maps a class to multiplicative (T1, T2) factors drawn per subject (biological variation).
    """
    jitter = jitter or {}
    out = {}
    for m in MODALITIES:
        seq = SEQUENCES[m]
        vals = []
        for c in CLASSES:
            t = TISSUES[c]
            f1, f2 = jitter.get(c, (1.0, 1.0))
            vals.append(float(signal(seq, t.t1 * f1, t.t2 * f2, t.pd)))
        out[m] = np.asarray(vals, dtype=np.float32)
    return out
