"""The intensity-map oracle: recovers a pixelwise contrast exactly, and scores on the evaluator's scale."""

from __future__ import annotations

import numpy as np
import pytest

from mri_harmonic.evaluation.oracle import apply_intensity_map, fit_intensity_map, score_slices


def _slices(seed: int, n: int = 6):
    rng = np.random.default_rng(seed)
    source = rng.random((n, 32, 32)).astype(np.float32)
    brain = np.zeros_like(source, dtype=bool)
    brain[:, 4:28, 6:26] = True
    return source, brain


def contrast(x: np.ndarray) -> np.ndarray:
    """A non-monotone map (grey/white inversion), constant within each of 8 bins of [0, 1]."""
    levels = np.array([0.1, 0.9, 0.8, 0.2, 0.3, 0.7, 0.05, 0.6])
    return levels[np.clip((x * 8).astype(int), 0, 7)]


def test_a_pixelwise_contrast_is_recovered_exactly_on_held_out_slices():
    train, brain = _slices(0)
    lookup = fit_intensity_map(train, contrast(train), brain, bins=64)
    held, held_brain = _slices(1)
    pred = apply_intensity_map(lookup, held, held_brain)
    np.testing.assert_allclose(pred[held_brain], contrast(held)[held_brain], atol=1e-6)
    assert (pred[~held_brain] == 0).all()


def test_scores_are_on_the_evaluators_scale():
    target, brain = _slices(2)
    target = np.where(brain, target, 0).astype(np.float32)
    s = score_slices(np.where(brain, target + 1 / 255, 0), target, brain)
    assert s["brain MAE"] == pytest.approx(1.0, rel=1e-4)
    assert s["slice MAE"] == pytest.approx(brain[0].mean(), rel=1e-4)  # 1 grey level on the brain's share of pixels
    assert score_slices(target, target, brain)["slice SSIM"] == pytest.approx(1.0)
