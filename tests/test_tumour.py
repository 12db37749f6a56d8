"""Tumour fidelity: NAWM rule, lesion outcomes and invented lesions on constructed slices (signs both ways), and the
calibration controls on a small phantom."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mri_harmonic.evaluation.tumour import (
    TumourCheckConfig,
    lesion_outcome,
    nawm_mask,
    summarise_tumour,
    tumour_fidelity,
)

# tissue intensities of the constructed slices (store [0, 1] scale): T1 WM brightest, FLAIR WM between CSF and GM
TISSUE = {"t1": {"wm": 0.70, "gm": 0.50, "csf": 0.15, "lesion": 0.40},
          "flair": {"wm": 0.45, "gm": 0.60, "csf": 0.10, "lesion": 0.85}}


def _slice(modality, seed=0, tumour=True, size=64, noise=0.01):
    """A round brain: CSF ring, GM ring, WM core; an optional lesion disc in the WM."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    brain = r < 28
    t = TISSUE[modality]
    img = np.where(r < 20, t["wm"], np.where(r < 25, t["gm"], t["csf"])) * brain
    seg = np.zeros((size, size), np.uint8)
    if tumour:
        seg[np.hypot(yy - 28, xx - 36) < 4.5] = 2
        img[seg > 0] = t["lesion"]
    img = np.clip(img + rng.normal(0, noise, img.shape) * brain, 0, 1)
    return img, brain, seg


def _blob(img, centre=(38, 24), radius=3.5, value=None):
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    out = img.copy()
    out[np.hypot(yy - centre[0], xx - centre[1]) < radius] = value
    return out


@pytest.mark.parametrize("modality", ["t1", "flair"])
def test_nawm_is_the_white_matter(modality):
    img, brain, seg = _slice(modality)
    nawm, mode = nawm_mask(img, brain, seg, modality)
    assert mode == pytest.approx(TISSUE[modality]["wm"], abs=0.02)
    yy, xx = np.mgrid[:64, :64]
    wm = np.hypot(yy - 32, xx - 32) < 20
    assert (nawm & ~wm).sum() == 0 and nawm.sum() > 0.8 * (wm & ~(seg > 0)).sum() - 200
    assert not (nawm & (seg > 0)).any()


@pytest.mark.parametrize("modality", ["t1", "flair"])
def test_real_target_not_flagged(modality):
    img, brain, seg = _slice(modality)
    rec, lesions = tumour_fidelity(img, img, brain, seg, modality)
    assert rec["scored"] and rec["n_lesions"] == 1 and rec["n_kept"] == 1 and not rec["flagged"]
    assert lesions[0]["contrast_real"] == pytest.approx(TISSUE[modality]["lesion"] - TISSUE[modality]["wm"], abs=0.01)
    assert rec["tumour_mae_255"] == 0


@pytest.mark.parametrize("modality", ["t1", "flair"])
def test_erased_and_wrong_direction(modality):
    img, brain, seg = _slice(modality)
    wm = TISSUE[modality]["wm"]
    erased = img.copy()
    erased[seg > 0] = wm
    rec, les = tumour_fidelity(erased, img, brain, seg, modality)
    assert rec["n_erased"] == 1 and les[0]["outcome"] == "erased" and rec["flagged"]
    half = img.copy()
    half[seg > 0] = wm + 0.6 * (TISSUE[modality]["lesion"] - wm)  # 60 % of the contrast kept: not erased
    assert tumour_fidelity(half, img, brain, seg, modality)[1][0]["outcome"] == "kept"
    reversed_ = img.copy()
    reversed_[seg > 0] = wm - (TISSUE[modality]["lesion"] - wm)  # e.g. a FLAIR-bright lesion in a synthetic T1
    rec, les = tumour_fidelity(reversed_, img, brain, seg, modality)
    assert les[0]["outcome"] == "wrong_direction" and rec["n_wrong_direction"] == 1 and rec["n_erased"] == 0


def test_faint_lesion_judged_by_the_modality_direction():
    """A lesion the real T1 barely shows is not scored for erasure, but painting it bright (FLAIR-like) is wrong."""
    cfg = TumourCheckConfig()
    assert lesion_outcome(-0.01, 0.0, -1, cfg) == "not_scored"
    assert lesion_outcome(-0.01, +0.2, -1, cfg) == "wrong_direction"
    assert lesion_outcome(-0.01, -0.2, -1, cfg) == "not_scored"
    assert lesion_outcome(+0.01, -0.2, +1, cfg) == "wrong_direction"  # FLAIR: a dark lesion is wrong


@pytest.mark.parametrize("modality,direction", [("flair", 1), ("t1", -1)])
def test_invented_lesion_sign_matters(modality, direction):
    """A blob in the target's lesion direction outside the labels is invented; the same blob the other way is not."""
    img, brain, seg = _slice(modality, tumour=False)
    wm = TISSUE[modality]["wm"]
    lesion_like = _blob(img, value=wm + direction * 0.3)
    other_way = _blob(img, value=wm - direction * 0.3)
    rec, _ = tumour_fidelity(lesion_like, img, brain, seg, modality)
    assert rec["n_invented"] == 1 and rec["invented_pixels"] >= 20 and rec["flagged"]
    assert tumour_fidelity(other_way, img, brain, seg, modality)[0]["n_invented"] == 0
    # small specks invent nothing; a blob the real target has too is not invented
    assert tumour_fidelity(_blob(img, radius=1.2, value=wm + direction * 0.3), img, brain, seg, modality)[0]["n_invented"] == 0
    assert tumour_fidelity(lesion_like, lesion_like, brain, seg, modality)[0]["n_invented"] == 0


def test_invented_search_skips_the_labels():
    img, brain, seg = _slice("flair")
    brighter = img.copy()
    brighter[seg > 0] = 1.0  # the labelled lesion made brighter: kept, not invented
    rec, les = tumour_fidelity(brighter, img, brain, seg, "flair")
    assert rec["n_invented"] == 0 and les[0]["outcome"] == "kept"


def test_summary_rates():
    img, brain, seg = _slice("flair")
    free, fb, fs = _slice("flair", seed=1, tumour=False)
    erased = img.copy()
    erased[seg > 0] = TISSUE["flair"]["wm"]
    blob = _blob(free, value=0.9)
    cases = [(img, img, brain, seg), (erased, img, brain, seg), (blob, free, fb, fs), (free, free, fb, fs)]
    slices, lesions = [], []
    for p, t, b, s in cases:
        rec, les = tumour_fidelity(p, t, b, s, "flair")
        slices.append(dict(run="r", method="m", direction="t12flair", **rec))
        lesions += [dict(run="r", method="m", direction="t12flair", **x) for x in les]
    summ = summarise_tumour(pd.DataFrame(slices), pd.DataFrame(lesions)).iloc[0]
    assert summ.n_scored_slices == 4 and summ.n_lesions == 2 and summ.n_conspicuous == 2
    assert summ.erased_frac == 0.5 and summ.wrong_direction_frac == 0
    assert summ.invented_slice_frac == 0.25 and summ.invented_slice_frac_tumour_free == 0.5
    assert summ.flagged_slice_frac == 0.5 and math.isclose(summ.tumour_mae_255_mean, np.nanmean([s["tumour_mae_255"] for s in slices]))


def test_config_errors_name_the_key():
    from mri_harmonic.errors import UserInputError

    with pytest.raises(UserInputError, match="kept_fraction"):
        TumourCheckConfig(kept_fraction=1.5)
    with pytest.raises(ValueError, match="modality 'pd'"):
        tumour_fidelity(*(_slice("t1")[0],) * 2, *_slice("t1")[1:], "pd")


# ---- the calibration controls on a small phantom -----------------------------------------------------------------
@pytest.fixture(scope="module")
def phantom_slices():
    """Axial slices of 2 phantom subjects on a 2 mm grid, normalised as the store does (0.5-99.5 % within brain)."""
    from mri_harmonic.data.phantom import simulate_subject
    from mri_harmonic.data.transforms import normalize_percentiles

    out = []
    for index in (0, 1):
        subj = simulate_subject(index, seed=7, shape=(120, 120, 78))
        brain = subj.images["t1"] > 0
        norm = {m: normalize_percentiles(subj.images[m].astype(np.float32), brain, 0.5, 99.5)[0] for m in ("flair", "t1")}
        for z in range(0, brain.shape[2], 2):
            if brain[:, :, z].mean() < 0.1:
                continue
            out.append({"subject": f"P{index}", "slice_index": z, "brain": brain[:, :, z], "seg": subj.seg[:, :, z],
                        **{m: norm[m][:, :, z].astype(np.float64) for m in norm}})
    return out


def test_controls_meet_their_targets(phantom_slices):
    from mri_harmonic.evaluation.fidelity_controls import control_rates, score_controls

    per_slice, lesions, added = score_controls(phantom_slices, seed=0)
    rates = control_rates(per_slice, lesions, added).set_index(["control", "direction"])
    for d in ("flair2t1", "t12flair"):
        assert rates.loc[("real", d), "flagged_slice_frac"] <= 0.01
        for c in ("blur1", "blur2", "noise"):
            assert rates.loc[(c, d), "flagged_slice_frac"] <= 0.05, (c, d)
        assert rates.loc[("inpainted", d), "n_conspicuous"] >= 10 and rates.loc[("inpainted", d), "erased_frac"] >= 0.95
        assert rates.loc[("added", d), "n_added"] >= 10 and rates.loc[("added", d), "added_detected_frac"] >= 0.95
        # the untranslated input is far from a faithful translation: most slices flagged
        assert rates.loc[("input", d), "flagged_slice_frac"] >= 0.5
