"""The preprocessing transforms and the one function that chains them (:func:`build_transforms`).

MONAI style: each step is an array function (plain NumPy, testable alone) plus a thin dictionary wrapper
(``...d``) that applies it to named keys of the sample dict. The chain (used by ``preprocess`` for the store AND by
``prepare_volume`` for whole-volume translation, so both see identical numbers) is::

    LoadImaged -> EnsureChannelFirstd -> [SelectChannelsd: MSD 4-D] -> MatchVoxelOrderd -> ValidateVolumesd -> BrainMaskd
    -> Orientationd("RAS") -> [Spacingd] -> ToArraysd (MetaTensor -> NumPy, geometry recorded)
    -> NormalizePercentilesd -> [ConvertLabelsd] -> ToAxialSlicesd -> CropPadToBraind

The brain mask is made on the source grid and resampled by nearest neighbour, so that voxels blended with the
background by trilinear resampling do not enter the mask or the percentiles.

Sample-dict keys: the modality names (``flair``, ``t1``, ``t1ce``, ``t2``), :data:`SEG`, :data:`MASK`,
:data:`IMAGE4D` (an MSD 4-D file before its channels are split) and :data:`GEOMETRY` (a dict that the steps fill
with what is needed to map slices back to source voxels).

Slice orientation: axial slice ``z`` of the RAS volume ``V`` (shape X, Y, Z) is stored as
``S[z, i, j] = V[j, Y - 1 - i, z]``: rows run anterior -> posterior, columns patient left -> right (the
"neurological" view: anterior at the top, the patient's left on the image's left, as nilearn plots axial slices).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    LoadImaged,
    MapTransform,
    Orientationd,
    Spacingd,
    Transform,
)

from mri_harmonic.data.layouts import LABEL_MAPS, is_nifti
from mri_harmonic.errors import UserInputError

SEG, MASK, IMAGE4D, GEOMETRY = "seg", "mask", "image4d", "geometry"
#: the brain mask on the source grid, before reorientation and resampling (kept only when asked: translation)
SOURCE_MASK = "source_mask"
RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))
#: absolute tolerance (mm) for two modalities' affines to count as the same grid; BraTS 2023 labels carry only a
#: qform (quaternion, float32), so their affine differs from the images' sform by rounding (~1e-5 mm).
AFFINE_ATOL = 1e-3


class BadVolumeError(UserInputError):
    """A volume of a subject that cannot be used; ``key`` names which one (a modality or ``seg``)."""

    def __init__(self, key: str, problem: str):
        super().__init__(problem)
        self.key = key
        self.problem = problem


def find_bad_volume(exc: BaseException) -> BadVolumeError | None:
    """The :class:`BadVolumeError` behind ``exc`` (MONAI's Compose wraps errors in ``RuntimeError``), if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, BadVolumeError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


# ---------------------------------------------------------------------------------------------------------------
# array functions
# ---------------------------------------------------------------------------------------------------------------
def brain_mask(images: Sequence[Any]) -> Any:
    """Brain = voxels non-zero in any of ``images`` (skull-stripped data: background is exactly 0), as nnU-Net's
    ``create_nonzero_mask``. NumPy arrays give a bool array; tensors (MetaTensor, meta kept) a float32 0/1 tensor
    that Orientationd / Spacingd (nearest) can resample."""
    mask = images[0] != 0
    for img in images[1:]:
        mask = mask | (img != 0)
    return mask.to(torch.float32) if isinstance(mask, torch.Tensor) else mask


def normalize_percentiles(img: np.ndarray, mask: np.ndarray, lower: float, upper: float) -> tuple[np.ndarray, tuple[float, float]]:
    """Map the ``lower``/``upper`` percentiles of the non-zero brain voxels of ``img`` to 0/1, clip to [0, 1], zero
    outside ``mask``. Returns the float32 image and the two percentile values (source intensity units)."""
    values = img[mask & (img != 0)]
    if values.size == 0:
        raise BadVolumeError("", "has no non-zero voxel inside the brain")
    p_lo, p_hi = (float(v) for v in np.percentile(values, [lower, upper]))
    if not p_hi > p_lo:
        raise BadVolumeError("", f"has no intensity contrast in the brain (percentiles {lower} and {upper} both {p_lo:g})")
    out = (img.astype(np.float32, copy=False) - np.float32(p_lo)) * np.float32(1.0 / (p_hi - p_lo))
    np.clip(out, 0.0, 1.0, out=out)
    out[~mask] = 0.0
    return out, (p_lo, p_hi)


def convert_labels(seg: np.ndarray, convention: str) -> np.ndarray:
    """Labels of ``convention`` (a :data:`~mri_harmonic.data.layouts.LABEL_MAPS` key) -> BraTS 2018-2021, uint8.
    Label files may be stored as float (BraTS 2023 writes float32); values must still be integers."""
    table = LABEL_MAPS[convention]
    flat = np.ascontiguousarray(seg).reshape(-1)
    idx = np.flatnonzero(flat)  # tumour voxels are few: do the checks and the mapping on them only
    vals = flat[idx].astype(np.float64)
    lab = np.rint(vals)
    if (np.abs(lab - vals) > 1e-3).any():
        raise BadVolumeError(SEG, "holds non-integer label values; expected integer tumour labels")
    unknown = sorted({int(v) for v in np.unique(lab)} - set(table))
    if unknown:
        raise BadVolumeError(
            SEG, f"holds label value(s) {unknown} not in the {convention} convention (allowed {sorted(table)}); "
            "check the data release (e.g. BraTS 2024 post-treatment labels differ)"
        )
    lut = np.zeros(max(table) + 1, dtype=np.uint8)
    for k, v in table.items():
        lut[k] = v
    out = np.zeros(flat.shape, dtype=np.uint8)
    out[idx] = lut[lab.astype(np.intp)]
    return out.reshape(seg.shape)


def to_axial_slices(vol: np.ndarray) -> np.ndarray:
    """RAS volume ``(X, Y, Z)`` -> axial slices ``(Z, Y, X)`` with ``S[z, i, j] = V[j, Y-1-i, z]`` (anterior up).
    Returns a view (no copy); :func:`crop_pad` makes the contiguous result."""
    return np.transpose(vol[:, ::-1, :], (2, 1, 0))


def from_axial_slices(slices: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_axial_slices`: ``(Z, Y, X)`` -> RAS volume ``(X, Y, Z)``."""
    return np.ascontiguousarray(np.transpose(slices, (2, 1, 0))[:, ::-1, :])


def brain_box(mask: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner ``(row0, col0)`` of the ``size x size`` window centred on the in-plane bounding box of
    ``mask`` (Z, H, W) over all slices; may be negative or exceed the image (zero padding)."""
    _, h, w = mask.shape
    rows, cols = np.flatnonzero(mask.any(axis=(0, 2))), np.flatnonzero(mask.any(axis=(0, 1)))
    if rows.size == 0:
        return (h - size) // 2, (w - size) // 2
    return int(rows[0] + rows[-1] + 1 - size) // 2, int(cols[0] + cols[-1] + 1 - size) // 2


def crop_pad(slices: np.ndarray, row0: int, col0: int, size: int) -> np.ndarray:
    """``out[z, i, j] = slices[z, i + row0, j + col0]`` where inside, else 0; ``out`` is ``(Z, size, size)``."""
    z, h, w = slices.shape
    out = np.zeros((z, size, size), dtype=slices.dtype)
    r_lo, r_hi = max(row0, 0), min(row0 + size, h)
    c_lo, c_hi = max(col0, 0), min(col0 + size, w)
    if r_hi > r_lo and c_hi > c_lo:
        out[:, r_lo - row0 : r_hi - row0, c_lo - col0 : c_hi - col0] = slices[:, r_lo:r_hi, c_lo:c_hi]
    return out


def uncrop(slices: np.ndarray, row0: int, col0: int, height: int, width: int) -> np.ndarray:
    """Inverse of :func:`crop_pad` onto the ``(height, width)`` plane (zeros where the window did not reach)."""
    z, size_h, size_w = slices.shape
    out = np.zeros((z, height, width), dtype=slices.dtype)
    r_lo, r_hi = max(row0, 0), min(row0 + size_h, height)
    c_lo, c_hi = max(col0, 0), min(col0 + size_w, width)
    if r_hi > r_lo and c_hi > c_lo:
        out[:, r_lo:r_hi, c_lo:c_hi] = slices[:, r_lo - row0 : r_hi - row0, c_lo - col0 : c_hi - col0]
    return out


# ---------------------------------------------------------------------------------------------------------------
# array transforms (MONAI Transform) and their dictionary wrappers
# ---------------------------------------------------------------------------------------------------------------
class NormalizePercentiles(Transform):
    """Array transform: see :func:`normalize_percentiles`."""

    def __init__(self, lower: float = 0.5, upper: float = 99.5):
        self.lower, self.upper = lower, upper

    def __call__(self, img: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
        return normalize_percentiles(img, mask, self.lower, self.upper)


class ConvertLabels(Transform):
    """Array transform: see :func:`convert_labels`."""

    def __init__(self, convention: str):
        if convention not in LABEL_MAPS:
            raise ValueError(f"unknown label convention {convention!r}; known: {', '.join(LABEL_MAPS)}")
        self.convention = convention

    def __call__(self, seg: np.ndarray) -> np.ndarray:
        return convert_labels(seg, self.convention)


class SelectChannelsd(MapTransform):
    """Split a channel-first 4-D image (MSD) into one ``(1, X, Y, Z)`` entry per modality, then drop it."""

    def __init__(self, key: str, channels: Mapping[str, int]):
        super().__init__([key])
        self.channels = dict(channels)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        img = d.pop(self.keys[0])
        for mod, ch in self.channels.items():
            if ch >= img.shape[0]:
                raise BadVolumeError(mod, f"has {img.shape[0]} channel(s), so no channel {ch} for {mod}; expected 4-D channels-last FLAIR, T1w, T1gd, T2w")
            d[mod] = img[ch : ch + 1]
        return d


class MatchVoxelOrderd(MapTransform):
    """Store every key in the first key's voxel order when it lies on the same grid in another order (an axis
    permutation or flip: a DICOM series, which is stacked along its slice normal, beside a NIfTI of the same scan).
    Grids that differ otherwise are left as they are, for :class:`ValidateVolumesd` to reject."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        import nibabel as nib
        from monai.transforms import Orientation

        d = dict(data)
        ref, codes = None, None
        for key in self.key_iterator(d):
            img = d[key]
            if ref is None:
                ref = img
                codes = nib.aff2axcodes(np.asarray(ref.affine, dtype=np.float64), labels=RAS_LABELS)
                continue
            same = img.shape == ref.shape and np.allclose(np.asarray(img.affine), np.asarray(ref.affine), atol=AFFINE_ATOL)
            if same or img.ndim != 4 or ref.ndim != 4 or None in codes:
                continue
            moved = Orientation(axcodes="".join(codes), labels=RAS_LABELS)(img)
            if moved.shape == ref.shape and np.allclose(np.asarray(moved.affine), np.asarray(ref.affine), atol=AFFINE_ATOL):
                d[key] = moved
        return d


class ValidateVolumesd(MapTransform):
    """Reject what cannot be used, naming the key: non-3-D volumes, shapes or affines that disagree between keys,
    NaN/inf values, all-zero images. Label keys (``label_keys``) may be all zero."""

    def __init__(self, keys: Sequence[str], label_keys: Sequence[str] = (SEG,)):
        super().__init__(keys)
        self.label_keys = set(label_keys)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        ref_key, ref_shape, ref_affine = None, None, None
        for key in self.key_iterator(d):
            img = d[key]
            shape = tuple(img.shape[1:])
            if img.ndim != 4 or img.shape[0] != 1:
                raise BadVolumeError(key, f"has shape {tuple(img.shape[1:]) or tuple(img.shape)}, expected a 3-D volume")
            affine = np.asarray(img.affine, dtype=np.float64)
            if ref_key is None:
                ref_key, ref_shape, ref_affine = key, shape, affine
            elif shape != ref_shape:
                raise BadVolumeError(key, f"has shape {shape} but {ref_key} has {ref_shape}; the modalities of a subject must be co-registered on one grid")
            elif not np.allclose(affine, ref_affine, atol=AFFINE_ATOL):
                raise BadVolumeError(key, f"has another affine (voxel-to-world matrix) than {ref_key} (largest difference {np.abs(affine - ref_affine).max():.3g}); the modalities of a subject must share one grid")
            arr = np.asarray(img.as_tensor() if hasattr(img, "as_tensor") else img)
            if not np.isfinite(arr.sum(dtype=np.float64)):  # one pass; NaN / inf propagate into the sum
                raise BadVolumeError(key, "contains NaN or infinite values")
            if key not in self.label_keys and not np.count_nonzero(arr):
                raise BadVolumeError(key, "is all zero (an empty image)")
        return d


class ToArraysd(MapTransform):
    """MetaTensor ``(1, X, Y, Z)`` -> float32 NumPy ``(X, Y, Z)`` (``mask``: bool), recording the source and model geometry in
    ``data["geometry"]`` (MONAI's per-voxel overhead is avoided in all later steps)."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        import nibabel as nib

        d = dict(data)
        geom = dict(d.get(GEOMETRY, {}))
        for key in self.key_iterator(d):
            img = d[key]
            if "model_affine" not in geom:
                src_affine = np.asarray(img.meta.get("original_affine", img.affine), dtype=np.float64)
                src_shape = [int(s) for s in np.asarray(img.meta.get("spatial_shape"))[:3]]
                model_affine = np.asarray(img.affine, dtype=np.float64)
                geom.update(
                    source_affine=src_affine.tolist(),
                    source_shape=src_shape,
                    source_orientation="".join(nib.aff2axcodes(src_affine)),
                    source_spacing=[float(v) for v in nib.affines.voxel_sizes(src_affine)],
                    model_affine=model_affine.tolist(),
                    model_shape=[int(s) for s in img.shape[1:]],
                    model_orientation="".join(nib.aff2axcodes(model_affine)),
                    model_spacing=[float(v) for v in nib.affines.voxel_sizes(model_affine)],
                )
            arr = np.asarray(img.as_tensor() if hasattr(img, "as_tensor") else img, dtype=np.float32)[0]
            d[key] = arr > 0.5 if key == MASK else arr
        d[GEOMETRY] = geom
        return d


class BrainMaskd(MapTransform):
    """``data["mask"]`` = :func:`brain_mask` of the images under ``keys``."""

    def __init__(self, keys: Sequence[str], mask_key: str = MASK, source_key: str | None = None):
        super().__init__(keys)
        self.mask_key, self.source_key = mask_key, source_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        d[self.mask_key] = brain_mask([d[k] for k in self.key_iterator(d)])
        if self.source_key is not None:  # the same tensor; the later steps make new ones and leave it as it is
            d[self.source_key] = d[self.mask_key]
        return d


class NormalizePercentilesd(MapTransform):
    """:class:`NormalizePercentiles` on each key within ``data[mask_key]``; the percentile values go to
    ``data["geometry"]["percentiles"][key]``."""

    def __init__(self, keys: Sequence[str], lower: float = 0.5, upper: float = 99.5, mask_key: str = MASK):
        super().__init__(keys)
        self.normalize = NormalizePercentiles(lower, upper)
        self.mask_key = mask_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        geom = dict(d.get(GEOMETRY, {}))
        pct = dict(geom.get("percentiles", {}))
        for key in self.key_iterator(d):
            try:
                d[key], pct[key] = self.normalize(d[key], d[self.mask_key])
            except BadVolumeError as exc:
                raise BadVolumeError(key, exc.problem) from None
        geom["percentiles"] = pct
        geom["percentile_levels"] = [self.normalize.lower, self.normalize.upper]
        d[GEOMETRY] = geom
        return d


class ConvertLabelsd(MapTransform):
    """:class:`ConvertLabels` on ``keys`` (labels -> BraTS 2018-2021, uint8)."""

    def __init__(self, keys: Sequence[str], convention: str):
        super().__init__(keys)
        self.convert = ConvertLabels(convention)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.convert(d[key])
        return d


class ToAxialSlicesd(MapTransform):
    """:func:`to_axial_slices` on each key; records the rotated plane size in ``geometry["plane_shape"]``."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = to_axial_slices(d[key])
        geom = dict(d.get(GEOMETRY, {}))
        geom["plane_shape"] = list(d[self.keys[0]].shape[1:])
        d[GEOMETRY] = geom
        return d


class CropPadToBraind(MapTransform):
    """Crop / zero-pad every key to ``size x size`` around the brain (:func:`brain_box` of ``data[mask_key]``);
    the window goes to ``geometry["crop_box"] = [row0, col0, size, size]``."""

    def __init__(self, keys: Sequence[str], size: int, mask_key: str = MASK):
        super().__init__(keys)
        self.size, self.mask_key = size, mask_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        row0, col0 = brain_box(d[self.mask_key], self.size)
        for key in self.key_iterator(d):
            d[key] = crop_pad(d[key], row0, col0, self.size)
        geom = dict(d.get(GEOMETRY, {}))
        geom["crop_box"] = [int(row0), int(col0), self.size, self.size]
        d[GEOMETRY] = geom
        return d


# ---------------------------------------------------------------------------------------------------------------
# the chain
# ---------------------------------------------------------------------------------------------------------------
def build_transforms(
    config: Any,
    modalities: Sequence[str],
    *,
    with_seg: bool,
    label_convention: str = "brats2021",
    msd_channels: Mapping[str, int] | None = None,
    keep_source_mask: bool = False,
) -> Compose:
    """The preprocessing chain for one subject (see the module docstring).

    Args:
        config: a :class:`~mri_harmonic.data.config.PreprocessConfig` (spacing, percentiles, in_plane_size).
        modalities: image keys to load (3-D files), or to take from the 4-D ``image4d`` file when ``msd_channels``.
        with_seg: also load, resample (nearest neighbour) and convert ``seg``.
        label_convention: how ``seg`` is labelled (a key of :data:`~mri_harmonic.data.layouts.LABEL_MAPS`).
        msd_channels: modality -> channel of the 4-D ``image4d`` file (MSD), or None for one file per modality.
        keep_source_mask: also return the brain mask on the source grid under :data:`SOURCE_MASK` (a ``(1, X, Y,
            Z)`` tensor), for restoring a translation onto exactly the input's own brain.

    Input dict: ``{modality: path, ...}`` (or ``{"image4d": path}``) plus ``{"seg": path}``.
    Output dict: modalities as float32 ``(Z, S, S)`` in [0, 1], ``mask`` bool, ``seg`` uint8 (BraTS 2021 labels),
    and ``geometry``.
    """
    mods = list(modalities)
    images = mods
    keys = mods + ([SEG] if with_seg else [])
    chain: list[Any] = []
    if msd_channels is not None:
        chain += [
            LoadImaged([IMAGE4D], reader="NibabelReader", image_only=True, dtype=np.float32),
            EnsureChannelFirstd([IMAGE4D], channel_dim=-1),
            SelectChannelsd(IMAGE4D, {m: msd_channels[m] for m in mods}),
        ]
        if with_seg:
            chain += [LoadImaged([SEG], reader="NibabelReader", image_only=True, dtype=np.float32), EnsureChannelFirstd([SEG], channel_dim="no_channel")]
    else:
        chain += [LoadImaged(keys, reader="NibabelReader", image_only=True, dtype=np.float32), EnsureChannelFirstd(keys, channel_dim="no_channel")]
    spatial = keys + [MASK]
    chain += [MatchVoxelOrderd(keys), ValidateVolumesd(keys), BrainMaskd(images, source_key=SOURCE_MASK if keep_source_mask else None), Orientationd(spatial, axcodes="RAS", labels=RAS_LABELS)]
    if config.spacing is not None:  # images trilinear; labels and the brain mask nearest neighbour
        modes = ["bilinear"] * len(images) + (["nearest"] if with_seg else []) + ["nearest"]
        chain.append(Spacingd(spatial, pixdim=list(config.spacing), mode=modes))
    chain += [
        ToArraysd(spatial),
        NormalizePercentilesd(images, lower=config.percentiles[0], upper=config.percentiles[1]),
    ]
    if with_seg:
        chain.append(ConvertLabelsd([SEG], label_convention))
    chain += [ToAxialSlicesd(keys + [MASK]), CropPadToBraind(keys + [MASK], size=config.in_plane_size)]
    return Compose(chain)


# ---------------------------------------------------------------------------------------------------------------
# running the chain on one case
# ---------------------------------------------------------------------------------------------------------------
class BadSubjectError(UserInputError):
    """A subject that cannot be preprocessed: ``path`` is the offending file (or folder), ``reason`` one line."""

    def __init__(self, subject: str, path: Any, reason: str):
        super().__init__(f"{path}: {reason}")
        self.subject, self.path, self.reason = subject, str(path), reason


def _read_fully(path: Any) -> None:
    import nibabel as nib

    if Path(path).is_dir():
        from mri_harmonic.data.sitk_io import read_image

        read_image(path)
        return
    if not is_nifti(Path(path).name):
        import SimpleITK as sitk

        sitk.ReadImage(str(path))
        return
    np.asanyarray(nib.load(str(path)).dataobj)


def as_nifti(path: Any, folder: Any, key: str) -> Path:
    """A NIfTI copy of a volume SimpleITK reads: a file, or a folder holding one DICOM series (its writer keeps the
    voxel grid and maps LPS to the NIfTI affine). A folder with several series is a :class:`BadVolumeError`."""
    import SimpleITK as sitk

    out = Path(folder) / f"{key}.nii"
    if Path(path).is_dir():
        from mri_harmonic.data.sitk_io import dicom_series, read_image

        n = len(dicom_series(path))
        if n != 1:
            raise BadVolumeError(key, f"holds {n or 'no'} DICOM series, but a modality folder must hold one; move each "
                                      f"other series into a folder of its own (outside the case, or named for its modality)")
        sitk.WriteImage(read_image(path), str(out))
        return out
    sitk.WriteImage(sitk.ReadImage(str(path)), str(out))
    return out


def run_chain(case: Any, config: Any, modalities: Sequence[str] | None = None, *, with_seg: bool = True,
              keep_source_mask: bool = False) -> dict:
    """Run :func:`build_transforms` on ``case`` (a :class:`~mri_harmonic.data.layouts.Case`).

    Raises :class:`BadSubjectError` naming the file for a missing modality, an unreadable (corrupt, truncated)
    file, or anything :class:`ValidateVolumesd` / the normalisation / the label conversion reject.
    """
    mods = list(modalities if modalities is not None else config.modalities)
    missing = [m for m in mods if m not in case.images]
    if missing:
        have = ", ".join(sorted(case.images)) or "none"
        raise BadSubjectError(
            case.subject, case.folder,
            f"subject {case.subject} lacks modality {', '.join(missing)} (found: {have}); add the file or drop the "
            f"modality from the config key 'modalities'",
        )
    with_seg = with_seg and case.seg is not None
    channels = {m: case.images[m].channel for m in mods}
    msd = any(c is not None for c in channels.values())
    if msd:
        image_path = case.images[mods[0]].path
        try:
            import nibabel as nib

            ndim = len(nib.load(str(image_path)).shape)
        except Exception:  # noqa: BLE001 - unreadable header: reported below by the full read
            ndim = 4
        if ndim != 4:
            raise BadSubjectError(
                case.subject, image_path, f"is {ndim}-D; an MSD imagesTr file must be 4-D channels-last (FLAIR, T1w, "
                "T1gd, T2w); per-channel files (nnU-Net '_0000' style) are not supported",
            )
        inputs: dict[str, Any] = {IMAGE4D: str(image_path)}
        paths = {m: image_path for m in mods}
    else:
        inputs = {m: str(case.images[m].path) for m in mods}
        paths = {m: case.images[m].path for m in mods}
    if with_seg:
        inputs[SEG] = str(case.seg)
        paths[SEG] = case.seg
    chain = build_transforms(config, mods, with_seg=with_seg, label_convention=case.label_convention,
                             msd_channels=channels if msd else None, keep_source_mask=keep_source_mask)
    try:
        if all(is_nifti(Path(p).name) for p in inputs.values()):
            return chain(inputs)
        with tempfile.TemporaryDirectory(prefix="mri-harmonic-") as tmp:  # NRRD / MHA / DICOM: same grid, as NIfTI
            return chain({k: v if is_nifti(Path(v).name) else str(as_nifti(v, tmp, k)) for k, v in inputs.items()})
    except Exception as exc:  # map to the file at fault; a bug (no bad file found) propagates unchanged
        bad = find_bad_volume(exc)
        if bad is not None:
            raise BadSubjectError(case.subject, paths.get(bad.key, case.folder), bad.problem) from None
        for path in dict.fromkeys(paths.values()):
            try:
                _read_fully(path)
            except Exception as read_exc:  # noqa: BLE001 - any reader failure means the file is unusable
                detail = " ".join(str(read_exc).split())[:160] or type(read_exc).__name__
                raise BadSubjectError(
                    case.subject, path, f"cannot be read{' as NIfTI' if is_nifti(Path(path).name) else ''} "
                    f"({type(read_exc).__name__}: {detail}); the file is "
                    "corrupt or truncated: re-download or re-export it, or remove the subject",
                ) from None
        raise
