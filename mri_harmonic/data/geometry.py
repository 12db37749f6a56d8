"""Single volumes in and out of model space: :func:`prepare_volume`, :func:`restore_volume`,
:func:`slice_to_source_voxel`.

*Model space* is what the store holds and the networks see: the volume reoriented to RAS (and resampled to
``config.spacing`` if set), normalised to [0, 1], cut into axial slices and cropped / padded to
``in_plane_size`` around the brain. A geometry dict (the same one ``preprocess`` writes per subject to
``subjects.json``) records every step:

- ``source_affine``, ``source_shape``, ``source_orientation`` (nibabel axis codes, e.g. ``"LPS"``),
  ``source_spacing`` — the file on disk;
- ``model_affine``, ``model_shape`` (X, Y, Z), ``model_orientation`` (``"RAS"``), ``model_spacing``;
- ``plane_shape`` ``[Y, X]`` — the rotated axial plane before cropping; slice ``z`` holds
  ``S[z, i, j] = V[j, Y-1-i, z]`` (rows anterior -> posterior, columns left -> right);
- ``crop_box`` ``[row0, col0, H, W]`` — stored pixel ``(i, j)`` is plane pixel ``(i + row0, j + col0)``;
- ``percentiles`` {modality: [p_low, p_high]} in source units and ``percentile_levels``;
- ``kept_slices`` (store only), ``sources``, ``label_convention``, ``split``, ``half``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mri_harmonic.errors import UserInputError


@dataclass
class PreparedVolume:
    """One volume in model space."""

    slices: np.ndarray  # (Z, H, W) float32 in [0, 1]: every axial slice, processed exactly as preprocess does
    mask: np.ndarray  # (Z, H, W) bool brain mask
    geometry: dict  # as stored per subject in subjects.json
    source_mask: np.ndarray | None = None  # (X, Y, Z) bool: the input's own brain (non-zero voxels) on its own grid


def case_geometry(case: Any, chain_geometry: dict) -> dict:
    """The subjects.json geometry of ``case`` from what the transform chain recorded."""
    return {
        "subject": case.subject,
        "label_convention": case.label_convention,
        "sources": {m: {"path": str(Path(s.path).resolve()), "channel": s.channel} for m, s in sorted(case.images.items())},
        "seg_path": str(Path(case.seg).resolve()) if case.seg is not None else None,
        **chain_geometry,
    }


def prepare_volume(path: str | os.PathLike, config: Any, modality: str = "flair") -> PreparedVolume:
    """Load one NIfTI volume and process it exactly as ``preprocess`` does (same transform chain), keeping all
    axial slices. A 4-D file is read as MSD (channels last: FLAIR, T1w, T1gd, T2w) and ``modality`` picks the
    channel. The brain mask is the volume's own non-zero voxels.

    Raises :class:`~mri_harmonic.errors.UserInputError` (one line, naming the file) for a missing, unreadable,
    empty, NaN-holding or non-3-D/4-D file.
    """
    import nibabel as nib

    from mri_harmonic.data.config import MODALITIES
    from mri_harmonic.data.layouts import MSD_CHANNELS, Case, Source, nifti_stem
    from mri_harmonic.data.transforms import SOURCE_MASK, run_chain

    path = Path(path)
    if modality not in MODALITIES:
        raise UserInputError(f"modality {modality!r} is not one of {', '.join(MODALITIES)}")
    if not path.is_file():
        raise UserInputError(f"input volume {path} not found; pass an existing .nii or .nii.gz file")
    try:
        ndim = len(nib.load(str(path)).shape)
    except Exception as exc:  # noqa: BLE001 - any header failure: not a readable NIfTI
        raise UserInputError(f"{path}: cannot be read as NIfTI ({type(exc).__name__}); pass a valid .nii/.nii.gz volume") from None
    if ndim not in (3, 4):
        raise UserInputError(f"{path}: has {ndim} dimensions; expected a 3-D volume (or a 4-D MSD file)")
    source = Source(path, MSD_CHANNELS[modality] if ndim == 4 else None)
    case = Case(nifti_stem(path.name), {modality: source}, None, "brats2021", path.parent)
    data = run_chain(case, config, [modality], with_seg=False, keep_source_mask=True)
    geometry = case_geometry(case, data["geometry"])
    geometry["kept_slices"] = list(range(data[modality].shape[0]))
    src = data[SOURCE_MASK]
    source_mask = np.asarray(src.as_tensor() if hasattr(src, "as_tensor") else src)[0] > 0.5
    return PreparedVolume(slices=data[modality], mask=data["mask"].astype(bool), geometry=geometry, source_mask=source_mask)


def _source_to_model(geometry: dict) -> np.ndarray:
    """4x4 matrix: source voxel index -> model (RAS, resampled) voxel index."""
    a_model = np.asarray(geometry["model_affine"], dtype=np.float64)
    a_src = np.asarray(geometry["source_affine"], dtype=np.float64)
    return np.linalg.inv(a_model) @ a_src


def _model_volume(slices: np.ndarray, geometry: dict) -> np.ndarray:
    """(Z, H, W) model-space slices -> RAS model volume (X, Y, Z), zeros outside the crop window."""
    from mri_harmonic.data.transforms import from_axial_slices, uncrop

    row0, col0, h, w = geometry["crop_box"]
    plane_h, plane_w = geometry["plane_shape"]
    n_z = geometry["model_shape"][2]
    if tuple(slices.shape) != (n_z, h, w):
        raise ValueError(f"slices have shape {tuple(slices.shape)}, the geometry expects ({n_z}, {h}, {w})")
    return from_axial_slices(uncrop(slices, row0, col0, plane_h, plane_w))


def _resample_to_source(model: np.ndarray, geometry: dict, order: int,
                        box: tuple[slice, slice, slice] | None = None) -> np.ndarray:
    """Model volume -> source voxel grid (only the sub-block ``box`` of it, when given). Exact indexing when the
    grids differ only by axis flips / permutations (no ``spacing``); otherwise ``scipy.ndimage.affine_transform``
    with spline ``order`` (0 or 1)."""
    m = _source_to_model(geometry)
    src_shape = tuple(int(s) for s in geometry["source_shape"])
    rot, offset = m[:3, :3], m[:3, 3]
    if box is not None:  # output voxel o of the block is source voxel o + start: fold the start into the offset
        start = np.array([b.start for b in box], dtype=float)
        src_shape = tuple(int(b.stop - b.start) for b in box)
        offset = offset + rot @ start
    rounded = np.rint(rot)
    is_perm = (
        np.allclose(rot, rounded, atol=1e-4)
        and np.allclose(offset, np.rint(offset), atol=1e-3)
        and (np.abs(rounded).sum(axis=0) == 1).all()
        and (np.abs(rounded).sum(axis=1) == 1).all()
    )
    if is_perm:
        # model index along model axis k = sign * (source index along axis j) + offset_k
        axes, index = [], []
        for j in range(3):
            k = int(np.flatnonzero(rounded[:, j])[0])
            axes.append(k)
            index.append(int(rounded[k, j]) * np.arange(src_shape[j]) + int(np.rint(offset[k])))
        vol = np.transpose(model, axes)
        valid = [(ix >= 0) & (ix < vol.shape[a]) for a, ix in enumerate(index)]
        out = vol[np.ix_(*[np.clip(ix, 0, vol.shape[a] - 1) for a, ix in enumerate(index)])]
        out = out * (valid[0][:, None, None] & valid[1][None, :, None] & valid[2][None, None, :])
        return np.ascontiguousarray(out)
    from scipy import ndimage

    return ndimage.affine_transform(model, rot, offset=offset, output_shape=src_shape, order=order, mode="constant", cval=0.0)


def restore_volume(slices: np.ndarray, geometry: dict, mask: np.ndarray | None = None,
                   source_mask: np.ndarray | None = None) -> np.ndarray:
    """Model-space slices ``(Z, H, W)`` -> float32 volume on the source voxel grid and orientation.

    Exact (pure re-indexing) when the store was built without ``spacing``; trilinear resampling otherwise.
    Zero outside the crop window and, when ``mask`` (model-space ``(Z, H, W)`` bool, e.g.
    :attr:`PreparedVolume.mask`) is given, outside the brain (values outside it are dropped before resampling and
    the mask, resampled by nearest neighbour, is applied after).

    With ``source_mask`` (the input's own brain on the source grid, :attr:`PreparedVolume.source_mask`) the
    background is exactly that mask's: 0 outside it, and a translated value at every voxel inside it. Values are
    resampled as ``R(v·m) / R(m)`` (normalised interpolation over the model brain ``m``, so the background's zeros
    do not darken the brain's edge); the few brain voxels no model brain voxel reaches (its edge after resampling,
    or beyond the crop window) take their nearest neighbours' values.
    """
    if source_mask is not None:
        return _restore_on_source_mask(slices, geometry, mask, np.asarray(source_mask, dtype=bool))
    vals = np.asarray(slices, dtype=np.float32)
    if mask is not None:
        vals = np.where(np.asarray(mask, dtype=bool), vals, np.float32(0))
    out = _resample_to_source(_model_volume(vals, geometry), geometry, order=1).astype(np.float32, copy=False)
    if mask is not None:
        src_mask = _resample_to_source(_model_volume(np.asarray(mask, dtype=np.float32), geometry), geometry, order=0)
        out = np.where(src_mask > 0.5, out, np.float32(0))
    return out


#: Voxels around the input brain's bounding box that the exact-background restore also computes, so that a brain
#: voxel's nearest translated neighbour is found as on the whole grid.
RESTORE_MARGIN = 4


def _restore_on_source_mask(slices: np.ndarray, geometry: dict, mask: np.ndarray | None, source_mask: np.ndarray) -> np.ndarray:
    vals = np.asarray(slices, dtype=np.float32)
    m = np.ones(vals.shape, dtype=np.float32) if mask is None else np.asarray(mask, dtype=np.float32)
    full = tuple(int(v) for v in geometry["source_shape"])
    if tuple(source_mask.shape) != full:
        raise ValueError(f"source_mask has shape {tuple(source_mask.shape)}, the source grid is {full}")
    out = np.zeros(full, dtype=np.float32)
    if not source_mask.any():
        return out
    # only the input brain's bounding box (plus a margin) can hold non-zero output: resample and fill just there
    idx = np.nonzero(source_mask)
    box = tuple(slice(max(int(i.min()) - RESTORE_MARGIN, 0), min(int(i.max()) + 1 + RESTORE_MARGIN, n))
                for i, n in zip(idx, full))
    num = _resample_to_source(_model_volume(vals * m, geometry), geometry, order=1, box=box).astype(np.float32, copy=False)
    den = _resample_to_source(_model_volume(m, geometry), geometry, order=1, box=box).astype(np.float32, copy=False)
    out[box] = normalised_on_mask(num, den, source_mask[box])
    return out


def normalised_on_mask(num: np.ndarray, den: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """``num / den`` (normalised interpolation: ``R(v·m) / R(m)``) where ``den`` is appreciable, the nearest such
    value at the other ``inside`` voxels, and exactly 0 outside ``inside``."""
    valid = den > 1e-3
    out = np.zeros(num.shape, dtype=np.float32)
    np.divide(num, den, out=out, where=valid)
    need = inside & ~valid
    if need.any():
        fill_nearest(out, valid, need)
    out[~inside] = 0.0
    return out


def fill_nearest(out: np.ndarray, valid: np.ndarray, need: np.ndarray) -> None:
    """Give each ``need`` voxel of ``out`` the value of its nearest ``valid`` voxel (in place). The EDT runs on the
    bounding box of ``need`` grown until it holds valid voxels, so its cost follows the few voxels to fill."""
    from scipy import ndimage

    idx = np.nonzero(need)
    lo = np.array([i.min() for i in idx])
    hi = np.array([i.max() + 1 for i in idx])
    shape = np.array(out.shape)
    grow = 2
    while True:
        a, b = np.maximum(lo - grow, 0), np.minimum(hi + grow, shape)
        box = tuple(slice(int(x), int(y)) for x, y in zip(a, b))
        if valid[box].any() or (a == 0).all() and (b == shape).all():
            break
        grow *= 2
    sub_valid = valid[box]
    if not sub_valid.any():
        return  # nothing translated anywhere: the volume stays zero
    near = ndimage.distance_transform_edt(~sub_valid, return_distances=False, return_indices=True)
    sub_out, sub_need = out[box], need[box]
    sub_out[sub_need] = sub_out[tuple(n[sub_need] for n in near)]


def slice_to_source_voxel(geometry: dict, slice_index: int, row: int, col: int) -> tuple[int, int, int]:
    """Source voxel ``(i, j, k)`` (index into the file's array as nibabel loads it) of stored pixel ``(row, col)``
    of axial slice ``slice_index`` (model-space index; the store's ``slice_index`` column).

    Raises ``ValueError`` for a pixel in the zero padding (outside the source volume).
    """
    row0, col0, _, _ = geometry["crop_box"]
    plane_h, plane_w = geometry["plane_shape"]
    n_z = geometry["model_shape"][2]
    pr, pc = row + row0, col + col0
    if not (0 <= pr < plane_h and 0 <= pc < plane_w and 0 <= slice_index < n_z):
        raise ValueError(f"pixel ({row}, {col}) of slice {slice_index} lies in the padding, outside the source volume")
    model_voxel = np.array([pc, plane_h - 1 - pr, slice_index, 1.0])
    src = _source_to_model_inverse(geometry) @ model_voxel
    idx = tuple(int(v) for v in np.rint(src[:3]))
    if not all(0 <= v < s for v, s in zip(idx, geometry["source_shape"])):
        raise ValueError(f"pixel ({row}, {col}) of slice {slice_index} maps to {idx}, outside the source volume {geometry['source_shape']}")
    return idx


def _source_to_model_inverse(geometry: dict) -> np.ndarray:
    a_model = np.asarray(geometry["model_affine"], dtype=np.float64)
    a_src = np.asarray(geometry["source_affine"], dtype=np.float64)
    return np.linalg.inv(a_src) @ a_model
