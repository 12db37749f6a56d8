"""One phantom subject: anatomy -> tumours -> tissue signals -> bias field, noise and scanner scaling.

Steps (all float32, vectorised; a full 240x240x155 subject takes a few seconds on one core):

1. :func:`~.anatomy.sample_anatomy`: MNI GM/WM/CSF fractions, randomly scaled, rotated and elastically deformed.
2. :func:`~.tumour.add_tumours`: 1-2 gliomas replace tissue fractions; the BraTS label map is written.
3. Each voxel's magnitude signal is the fraction-weighted sum of class signals from the spin-echo /
   inversion-recovery equations of :mod:`.tissue` (partial-volume mixing), with per-subject T1/T2 variation of
   a few percent, a faint smooth tissue texture and, in T1ce only, gadolinium-shortened T1 in enhancing tumour
   (and a little in oedema).
4. Per modality: a smooth multiplicative bias field (exp of a smooth field; the slowly varying receive-coil
   sensitivity of Sled et al., IEEE TMI 17:87-97, 1998), Rician noise (magnitude of signal plus complex Gaussian
   noise; Gudbjartsson & Patz, MRM 34:910-914, 1995), a random scanner gain, rounding to integers like BraTS'
   int16 files, and skull stripping (exactly 0 outside the brain, >= 1 inside).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mri_harmonic.data.phantom.anatomy import grid_affine, sample_anatomy, smooth_field, voxel_size
from mri_harmonic.data.phantom.tissue import (
    CLASSES,
    GD_OEDEMA_MM,
    MODALITIES,
    SEQUENCES,
    TISSUES,
    class_signals,
    gd_t1,
    signal,
)
from mri_harmonic.data.phantom.tumour import add_tumours
from mri_harmonic.errors import UserInputError

#: Output intensity of the brightest normal tissue before the random gain (BraTS int16 files span ~0..a few 1000).
INTENSITY_REFERENCE = 1000.0
GAIN_RANGE = (0.7, 1.3)
NOISE_FRACTION_RANGE = (0.01, 0.035)  # noise sigma / brightest normal-tissue signal (SNR ~ 30-100)
BIAS_AMPLITUDE_RANGE = (0.05, 0.2)  # std of log bias field (~ +-10-40 % across the brain)
RELAXATION_JITTER = 0.04  # per-subject relative std of T1 and T2 per class
TEXTURE_AMPLITUDE = 0.03


@dataclass
class PhantomSubject:
    """A simulated subject in the on-disk (LPS) voxel order of BraTS.

    Attributes:
        images: ``'flair', 't1', 't1ce', 't2'`` -> float32 (x, y, z); integer-valued, 0 outside the brain.
        seg: uint8 (x, y, z), BraTS 2021 labels 0, 1 (necrotic core), 2 (oedema), 4 (enhancing).
        affine: 4x4 NIfTI affine of the grid.
        params: everything drawn for this subject (JSON-safe).
    """

    images: dict[str, np.ndarray]
    seg: np.ndarray
    affine: np.ndarray
    params: dict = field(default_factory=dict)


def check_shape(shape) -> tuple[int, int, int]:
    """Validate a grid shape (3 integers >= 8) and return it as a tuple; one-line error otherwise."""
    try:
        out = tuple(int(s) for s in shape)
        ok = len(out) == 3 and all(s >= 8 and s == float(v) for s, v in zip(out, shape))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise UserInputError(f"phantom shape {shape!r} is invalid; give three integers >= 8, e.g. 240,240,155")
    return out  # type: ignore[return-value]


def simulate_subject(index: int, seed: int = 0, shape=(240, 240, 155)) -> PhantomSubject:
    """Simulate subject ``index`` of the data set with ``seed`` (random stream ``[seed, index]``) on ``shape``.

    Deterministic: the same ``(index, seed, shape)`` gives identical arrays.
    """
    return simulate_with_fractions(index, seed, shape)[0]


def simulate_with_fractions(index: int, seed: int = 0, shape=(240, 240, 155)) -> tuple[PhantomSubject, dict]:
    """:func:`simulate_subject` plus the ground-truth tissue maps: ``{'gm','wm','csf': float32 fractions of
    normal tissue (after tumours displaced it), 'mask': bool brain}`` — for checks and realism statistics."""
    shape = check_shape(shape)
    if int(index) < 0 or int(seed) < 0:
        raise UserInputError(f"phantom index {index} and seed {seed} must be >= 0")
    rng = np.random.default_rng([int(seed), int(index)])
    s = voxel_size(shape)
    frac, anat_params = sample_anatomy(rng, shape)
    seg = np.zeros(shape, np.uint8)
    lesions, tumour_params = add_tumours(rng, frac, seg, s)

    jitter = {c: tuple(float(x) for x in np.clip(rng.normal(1, RELAXATION_JITTER, 2), 0.85, 1.15)) for c in CLASSES}
    sig = class_signals(jitter)
    mask = frac["mask"]
    idx = np.flatnonzero(mask.ravel())
    texture = 1 + TEXTURE_AMPLITUDE * smooth_field(rng, shape, control=16).ravel()[idx]
    f_gm, f_wm, f_csf = (frac[k].ravel()[idx] for k in ("gm", "wm", "csf"))
    enh_t1 = TISSUES["enhancing"].t1 * jitter["enhancing"][0]
    enh_t2 = TISSUES["enhancing"].t2 * jitter["enhancing"][1]

    images, mod_params = {}, {}
    for m in MODALITIES:
        sg = sig[m]
        base = np.zeros(shape, np.float32)
        base.ravel()[idx] = (f_gm * sg[0] + f_wm * sg[1]) * texture + f_csf * sg[2]
        oed = sg[3]
        if m == "t1ce":
            ot = TISSUES["oedema"]
            t1_post = gd_t1(ot.t1 * jitter["oedema"][0], GD_OEDEMA_MM)
            oed = float(signal(SEQUENCES[m], t1_post, ot.t2 * jitter["oedema"][1], ot.pd))
        for les in lesions:
            enh = sg[4]
            if m == "t1ce":
                enh = signal(SEQUENCES[m], gd_t1(enh_t1, les.gd_mm), enh_t2, TISSUES["enhancing"].pd)
            base[les.where] += les.oedema * oed + les.enhancing * enh + les.necrosis * sg[5]
        ref = float(max(sg[0], sg[1], sg[2]))
        bias_amp = float(rng.uniform(*BIAS_AMPLITUDE_RANGE))
        bias = np.exp(bias_amp * smooth_field(rng, shape, control=4).ravel()[idx])
        noise_frac = float(rng.uniform(*NOISE_FRACTION_RANGE))
        sigma = np.float32(noise_frac * ref)
        clean = base.ravel()[idx] * bias
        re = clean + sigma * rng.standard_normal(idx.size, dtype=np.float32)
        im = sigma * rng.standard_normal(idx.size, dtype=np.float32)
        gain = float(rng.uniform(*GAIN_RANGE)) * INTENSITY_REFERENCE / ref
        out = np.zeros(shape, np.float32)
        out.ravel()[idx] = np.clip(np.rint(np.sqrt(re * re + im * im) * gain), 1, 32767)
        images[m] = out
        mod_params[m] = {"gain": gain, "bias_log_std": bias_amp, "noise_sigma": float(sigma) * gain,
                         "noise_fraction": noise_frac}

    affine = grid_affine(shape)
    for t in tumour_params:
        t["centre_world_mm"] = [float(x) for x in (affine @ np.r_[t["centre_voxel"], 1.0])[:3]]
    params = {
        "index": int(index), "seed": int(seed), "shape": list(shape), "voxel_size_mm": s,
        "anatomy": anat_params, "tumours": tumour_params, "modalities": mod_params,
        "relaxation_jitter": {c: list(v) for c, v in jitter.items()},
        "label_voxels": {str(k): int((seg == k).sum()) for k in (1, 2, 4)},
    }
    truth = {k: frac[k] for k in ("gm", "wm", "csf", "mask")}
    return PhantomSubject(images=images, seg=seg, affine=affine, params=params), truth
