"""prepare_volume / restore_volume / slice_to_source_voxel: model space <-> source voxels."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from mri_harmonic.data.config import PreprocessConfig
from mri_harmonic.data.geometry import prepare_volume, restore_volume, slice_to_source_voxel
from mri_harmonic.data.preprocess import preprocess
from mri_harmonic.data.store import SliceStore
from mri_harmonic.errors import UserInputError

SHAPE = (48, 56, 40)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    from mri_harmonic.data.phantom import generate_phantom

    root = tmp_path_factory.mktemp("phantom")
    generate_phantom(root / "b21", subjects=1, seed=2, shape=SHAPE, layout="brats2021", workers=1, progress=False)
    generate_phantom(root / "msd", subjects=1, seed=2, shape=SHAPE, layout="msd", workers=1, progress=False)
    return root


def _normalised_source(path, geometry, modality="flair", channel=None):
    """Independent reference: the file's voxels through the recorded percentiles, clipped, zero background."""
    src = np.asanyarray(nib.load(path).dataobj).astype(np.float64)
    if channel is not None:
        src = src[..., channel]
    lo, hi = geometry["percentiles"][modality]
    return np.where(src != 0, np.clip((src - lo) / (hi - lo), 0, 1), 0.0), src != 0


def _write(path, vol, affine):
    nib.save(nib.Nifti1Image(vol, affine), path)
    return path


def test_round_trip_is_exact_without_spacing(phantom):
    path = phantom / "b21" / "BraTS2021_00000" / "BraTS2021_00000_flair.nii.gz"
    prep = prepare_volume(path, PreprocessConfig(in_plane_size=64), "flair")
    assert prep.slices.shape == (SHAPE[2], 64, 64) and prep.slices.dtype == np.float32 and prep.mask.dtype == bool
    assert prep.geometry["kept_slices"] == list(range(SHAPE[2]))
    ref, brain = _normalised_source(path, prep.geometry)
    restored = restore_volume(prep.slices, prep.geometry)
    assert restored.shape == SHAPE
    np.testing.assert_allclose(restored[brain], ref[brain], atol=1e-6)
    assert np.all(restored[~brain] == 0)


def test_round_trip_with_spacing_to_interpolation_accuracy(tmp_path):
    # a linear intensity field is reproduced exactly by trilinear resampling: any shift or flip would show
    shape = (40, 44, 30)
    x, y, z = np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij")
    brain = ((x - 20) / 16) ** 2 + ((y - 22) / 18) ** 2 + ((z - 15) / 12) ** 2 < 1
    vol = np.where(brain, 200 + 7 * x + 3 * y - 5 * z, 0).astype(np.float32)
    path = _write(tmp_path / "lin.nii.gz", vol, np.array([[-1.0, 0, 0, 39], [0, -1.2, 0, 43], [0, 0, 1.5, 0], [0, 0, 0, 1]]))
    prep = prepare_volume(path, PreprocessConfig(spacing=[2.0, 2.0, 2.5], in_plane_size=32, percentiles=[0, 100]))
    assert prep.geometry["model_spacing"] == pytest.approx([2.0, 2.0, 2.5])
    ref, _ = _normalised_source(path, prep.geometry)
    restored = restore_volume(prep.slices, prep.geometry, mask=prep.mask)
    inner = ndimage.binary_erosion(brain, iterations=5)  # away from voxels blended with the background (2 model voxels)
    np.testing.assert_allclose(restored[inner], ref[inner], atol=1e-4)
    assert np.all(restored[~ndimage.binary_dilation(brain, iterations=3)] == 0)  # within ~1 model voxel


def test_round_trip_with_spacing_on_the_phantom(phantom):
    path = phantom / "b21" / "BraTS2021_00000" / "BraTS2021_00000_t1.nii.gz"
    prep = prepare_volume(path, PreprocessConfig(spacing=[4.0, 4.0, 4.0], in_plane_size=64), "t1")
    ref, brain = _normalised_source(path, prep.geometry, "t1")
    restored = restore_volume(prep.slices, prep.geometry, mask=prep.mask)
    inner = ndimage.binary_erosion(brain, iterations=2)
    err = np.abs(restored[inner] - ref[inner])
    assert err.mean() < 0.05 and np.corrcoef(restored[inner], ref[inner])[0, 1] > 0.95


@pytest.mark.parametrize("spacing, size", [([2.0, 2.0, 2.5], 32), (None, 32)])
def test_background_is_exactly_the_inputs_own_mask(phantom, spacing, size):
    """A model output of 0.5 everywhere comes back as 0.5 on every voxel of the input's brain (its own non-zero
    voxels, on its own grid) and exactly 0 elsewhere: after resampling, and when the crop window (32 px, smaller
    than the 48x56 brain plane) cuts part of the brain off."""
    path = phantom / "b21" / "BraTS2021_00000" / "BraTS2021_00000_flair.nii.gz"
    brain = np.asanyarray(nib.load(path).dataobj) != 0
    prep = prepare_volume(path, PreprocessConfig(spacing=spacing, in_plane_size=size), "flair")
    assert np.array_equal(prep.source_mask, brain)
    out = restore_volume(np.full(prep.slices.shape, 0.5, np.float32), prep.geometry, mask=prep.mask, source_mask=prep.source_mask)
    assert out.dtype == np.float32 and np.all(out[~brain] == 0)
    np.testing.assert_allclose(out[brain], 0.5, atol=1e-5)
    # the model's values are kept: a linear ramp along x comes back as the same ramp (to interpolation accuracy)
    ramp = np.broadcast_to(np.linspace(0.1, 0.9, prep.slices.shape[2], dtype=np.float32), prep.slices.shape)
    out = restore_volume(ramp, prep.geometry, mask=prep.mask, source_mask=prep.source_mask)
    assert np.all(out[~brain] == 0) and out[brain].min() > 0.05


def test_prepare_volume_matches_the_store(phantom, tmp_path):
    cfg = PreprocessConfig(in_plane_size=64, split_fractions=[1.0, 0.0, 0.0])
    preprocess(phantom / "b21", tmp_path / "store", cfg, workers=1, progress=False)
    store = SliceStore(tmp_path / "store")
    geom = store.subjects["BraTS2021_00000"]
    prep = prepare_volume(geom["sources"]["flair"]["path"], cfg, "flair")
    kept = prep.slices[geom["kept_slices"]]
    assert geom["crop_box"] == prep.geometry["crop_box"] and geom["percentiles"]["flair"] == pytest.approx(prep.geometry["percentiles"]["flair"])
    np.testing.assert_allclose(store.array("train", "flair"), kept, atol=1e-3)  # float16 storage


def test_slice_to_source_voxel_under_axis_permutation(tmp_path):
    # a volume stored with permuted, flipped axes (orientation 'SAL'): every pixel must map to its own voxel
    shape = (12, 14, 16)
    vol = (np.arange(np.prod(shape), dtype=np.float32).reshape(shape) + 1)
    affine = np.array([[0, 0, -1.0, 20], [0, 1.0, 0, -5], [1.0, 0, 0, 3], [0, 0, 0, 1]])
    path = _write(tmp_path / "perm.nii.gz", vol, affine)
    prep = prepare_volume(path, PreprocessConfig(in_plane_size=24, percentiles=[0, 100]))
    assert prep.geometry["source_orientation"] == "SAL"
    lo, hi = prep.geometry["percentiles"]["flair"]
    rng = np.random.default_rng(0)
    zs, rows, cols = np.nonzero(prep.mask)
    for k in rng.choice(len(zs), size=40, replace=False):
        vox = slice_to_source_voxel(prep.geometry, int(zs[k]), int(rows[k]), int(cols[k]))
        assert prep.slices[zs[k], rows[k], cols[k]] == pytest.approx((vol[vox] - lo) / (hi - lo), abs=1e-6)
    np.testing.assert_allclose(restore_volume(prep.slices, prep.geometry), (vol - lo) / (hi - lo), atol=1e-6)
    with pytest.raises(ValueError, match="padding"):
        slice_to_source_voxel(prep.geometry, 0, 0, 0)  # 24x24 window around a 14x? plane: corner is padding


def test_msd_4d_input_and_mask(phantom):
    path = phantom / "msd" / "imagesTr" / "BRATS_001.nii.gz"
    prep = prepare_volume(path, PreprocessConfig(in_plane_size=64), "t2")
    assert prep.geometry["sources"]["t2"]["channel"] == 3
    ref, brain = _normalised_source(path, prep.geometry, "t2", channel=3)
    noisy = prep.slices + 0.3  # e.g. a generator output that is not zero outside the brain
    restored = restore_volume(noisy, prep.geometry, mask=prep.mask)
    assert np.all(restored[~brain] == 0)
    np.testing.assert_allclose(restored[brain], ref[brain] + 0.3, atol=1e-5)


def test_prepare_volume_bad_input(tmp_path):
    with pytest.raises(UserInputError, match="not found"):
        prepare_volume(tmp_path / "none.nii.gz", PreprocessConfig())
    (tmp_path / "junk.nii.gz").write_bytes(b"junk" * 50)
    with pytest.raises(UserInputError, match="cannot be read"):
        prepare_volume(tmp_path / "junk.nii.gz", PreprocessConfig())
    flat = _write(tmp_path / "flat.nii.gz", np.ones((5, 5), np.float32), np.eye(4))
    with pytest.raises(UserInputError, match="dimensions"):
        prepare_volume(flat, PreprocessConfig())
    vol = np.ones((6, 6, 6), np.float32)
    vol[2, 2, 2] = np.nan
    with pytest.raises(UserInputError, match="NaN") as err:
        prepare_volume(_write(tmp_path / "nan.nii.gz", vol, np.eye(4)), PreprocessConfig(in_plane_size=16))
    assert "nan.nii.gz" in str(err.value)
    with pytest.raises(UserInputError, match="all zero"):
        prepare_volume(_write(tmp_path / "zero.nii.gz", np.zeros((6, 6, 6), np.float32), np.eye(4)), PreprocessConfig(in_plane_size=16))
    with pytest.raises(UserInputError, match="modality"):
        prepare_volume(flat, PreprocessConfig(), modality="pd")
