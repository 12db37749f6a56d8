"""Real anatomy for the phantom: the MNI ICBM152 2009a tissue maps shipped with nilearn, placed in a BraTS grid.

The grey-matter, white-matter and brain-mask maps (197x233x189, 1 mm, RAS) come from nilearn's wheel
(``load_mni152_gm_template`` etc.; Fonov et al., NeuroImage 54:313-327, 2011) and are read locally, never
downloaded. CSF is the brain hull minus grey and white matter, so all three are partial-volume fractions.

Geometry of the output grid follows real BraTS files (see ``/work/shared/brats-conventions.md``): 240x240x155 at
1 mm with affine ``[[-1,0,0,0],[0,-1,0,239],[0,0,1,0],[0,0,0,1]]`` (LPS voxel axes). A smaller grid keeps the
same axis directions and a field of view at least 240x240x155 mm by using isotropic voxels of
``max(240/X, 240/Y, 155/Z)`` mm, so the whole brain always fits.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
from scipy import ndimage

from mri_harmonic.errors import UserInputError

BRATS_FOV_MM = (240.0, 240.0, 155.0)
#: The lowest 10 mm of the MNI mask (lower brainstem) is dropped so the brain fits 155 mm with a margin.
BRAINSTEM_CUT_MM = 10
#: Largest displacement of the elastic deformation (mm) and range of the global scale; both keep the brain in
#: the 240x240x155 mm field of view (brain extent ~145x181x145 mm after the brainstem cut).
MAX_DISPLACEMENT_MM = 4.0
SCALE_RANGE = (0.92, 1.0)
MAX_ROTATION_DEG = 5.0


def voxel_size(shape: tuple[int, int, int]) -> float:
    """Isotropic voxel size (mm) so that ``shape`` covers at least the BraTS 240x240x155 mm field of view."""
    return max(f / n for f, n in zip(BRATS_FOV_MM, shape))


def grid_affine(shape: tuple[int, int, int]) -> np.ndarray:
    """NIfTI affine of the output grid: BraTS's for 240x240x155, same axis directions (L, P, S) otherwise."""
    s = voxel_size(shape)
    aff = np.diag([-s, -s, s, 1.0])
    aff[1, 3] = s * (shape[1] - 1)
    return aff


def _nilearn_mni_file(name: str) -> Path:
    """Path of an MNI ICBM152 2009a map inside the installed nilearn wheel (found without importing nilearn)."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or spec.origin is None:
        raise UserInputError("the phantom needs nilearn's bundled MNI152 maps; install it with `pip install nilearn`")
    path = Path(spec.origin).parent / "datasets" / "data" / f"mni_icbm152_{name}_tal_nlin_sym_09a_converted.nii.gz"
    if not path.is_file():
        raise UserInputError(f"nilearn's MNI152 map {path} is missing; reinstall nilearn (pip install -U nilearn)")
    return path


def _read_unit(name: str) -> np.ndarray:
    import nibabel as nib

    data = np.asarray(nib.load(_nilearn_mni_file(name)).dataobj).astype(np.float32)
    return data / data.max()


@functools.lru_cache(maxsize=1)
def _mni_maps() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(gm, wm, mask) float32 arrays on the 1 mm MNI grid; gm + wm <= 1 inside the mask, all 0 outside.

    Reads the files behind ``nilearn.datasets.load_mni152_{gm,wm}_template(resolution=1)`` and
    ``load_mni152_brain_mask(resolution=1)`` the way those functions do (rescale to [0, 1]; mask = T1 template
    > 0.2), identical arrays without the ~2.5 s import of ``nilearn.datasets``.
    """
    gm, wm = _read_unit("gm"), _read_unit("wm")
    mask = (_read_unit("t1") > 0.2).astype(np.float32)
    mask[:, :, :BRAINSTEM_CUT_MM] = 0.0
    total = gm + wm
    over = total > 1.0
    gm[over] /= total[over]
    wm[over] /= total[over]
    gm *= mask
    wm *= mask
    return gm, wm, mask


@functools.lru_cache(maxsize=2)
def mni_maps_for_spacing(spacing_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(gm, wm, mask, brain_centre_vox) with a Gaussian anti-alias filter for sampling at ``spacing_mm``.

    Sampling a 1 mm map at coarser spacing averages over the larger voxel (sigma = sqrt(s^2 - 1)/2.355, the
    FWHM of the extra blur equals the new voxel size), which is the partial-volume effect of a real scanner.
    """
    gm, wm, mask = _mni_maps()
    if spacing_mm > 1.2:
        sigma = float(np.sqrt(spacing_mm**2 - 1.0) / 2.355)
        gm, wm, mask = (ndimage.gaussian_filter(a, sigma, mode="constant") for a in (gm, wm, mask))
    nz = np.nonzero(_mni_maps()[2])
    centre = np.array([(ax.min() + ax.max()) / 2.0 for ax in nz], dtype=np.float64)
    return gm, wm, mask, centre


def smooth_basis(n: int, control: int) -> np.ndarray:
    """(n, control) matrix whose columns are smooth cubic-spline bumps spanning ``n`` samples."""
    eye = np.eye(control)
    cols = [ndimage.zoom(eye[k], n / control, order=3, mode="nearest", grid_mode=True)[:n] for k in range(control)]
    return np.stack(cols, axis=1).astype(np.float32)


def smooth_field(rng: np.random.Generator, shape: tuple[int, ...], control: int = 5) -> np.ndarray:
    """Smooth random 3-D field on ``shape`` with unit standard deviation.

    A coarse ``control**3`` Gaussian grid is expanded with separable cubic bumps (a tensor-product spline), which
    costs O(N * control) instead of the O(N * 64) of a cubic ``ndimage.zoom``.
    """
    coeff = rng.standard_normal((control,) * 3).astype(np.float32)
    bx, by, bz = (smooth_basis(n, control) for n in shape)
    field = np.einsum("abc,kc->abk", coeff, bz)
    field = np.einsum("abk,jb->ajk", field, by)
    field = np.tensordot(bx, field, axes=(1, 0))
    field -= field.mean()
    field /= field.std() + 1e-8
    return field.astype(np.float32)


def _placement(shape: tuple[int, int, int], centre: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Output-voxel offsets (mm) from the FOV centre along each axis, and the index box holding the brain."""
    s = voxel_size(shape)
    half_out = (np.asarray(shape) - 1) / 2.0
    reach = np.array([73.0, 91.0, 73.0]) + 2 * MAX_DISPLACEMENT_MM  # half extent (mm) of the cut MNI brain + margin
    lo = np.maximum(np.floor(half_out - reach / s).astype(int), 0)
    hi = np.minimum(np.ceil(half_out + reach / s).astype(int) + 1, shape)
    return half_out, lo, hi


@functools.lru_cache(maxsize=4)
def candidate_voxels(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Box corner ``lo``, box shape and flat indices (in the box) of voxels that any deformation can make brain.

    The undeformed brain mask, dilated by ~15-20 mm (a Gaussian of 8 mm thresholded at 0.005), covers the
    largest displacement, rotation and scale allowed, so only these voxels are interpolated per subject.
    """
    s = voxel_size(shape)
    _, _, mask, centre = mni_maps_for_spacing(round(s, 6))
    half_out, lo, hi = _placement(shape, centre)
    coarse = ndimage.zoom(_mni_maps()[2], 0.25, order=1, grid_mode=True, mode="grid-constant")  # 4 mm grid
    reach = ndimage.gaussian_filter(coarse, 2.0, mode="constant") > 0.005
    axes = [(np.arange(lo_i, h, dtype=np.float32) - c) * s for lo_i, h, c in zip(lo, hi, half_out)]
    box = tuple(int(h - lo_i) for lo_i, h in zip(lo, hi))
    coords = np.stack(np.broadcast_arrays(
        -axes[0][:, None, None] + centre[0], -axes[1][None, :, None] + centre[1], axes[2][None, None, :] + centre[2]
    )).astype(np.float32)
    coarse_coords = (coords + 0.5) / 4.0 - 0.5  # 1 mm voxel -> 4 mm voxel index (grid_mode zoom)
    inside = ndimage.map_coordinates(reach.astype(np.float32), coarse_coords, order=0, mode="constant") > 0
    return lo, np.asarray(box), np.flatnonzero(inside.ravel())


def sample_anatomy(rng: np.random.Generator, shape: tuple[int, int, int]) -> tuple[dict[str, np.ndarray], dict]:
    """Deformed GM/WM/CSF fractions and brain mask on the output grid (on-disk LPS voxel order).

    The deformation is a random global scale and in-plane rotation about the brain centre plus a smooth elastic
    displacement of at most :data:`MAX_DISPLACEMENT_MM`. Only voxels near the brain are interpolated.

    Returns:
        ``({'gm','wm','csf': float32 fractions, 'mask': bool}, params)``.
    """
    s = voxel_size(shape)
    gm_m, wm_m, mask_m, centre = mni_maps_for_spacing(round(s, 6))
    scale = float(rng.uniform(*SCALE_RANGE))
    angle = float(np.deg2rad(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG)))
    disp_mm = float(rng.uniform(0.5, 1.0) * MAX_DISPLACEMENT_MM)
    half_out, _, _ = _placement(shape, centre)
    lo, box, flat = candidate_voxels(tuple(shape))
    box = tuple(int(b) for b in box)
    fields = [smooth_field(rng, box, control=6).ravel()[flat] for _ in range(3)]
    norm = float(np.sqrt(fields[0] ** 2 + fields[1] ** 2 + fields[2] ** 2).max()) + 1e-8

    # Output voxel -> MNI voxel. MNI axes are RAS and ours LPS, so x and y flip.
    ijk = np.unravel_index(flat, box)
    x, y, z = ((idx + lo_i - c).astype(np.float32) * s for idx, lo_i, c in zip(ijk, lo, half_out))
    cos, sin = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    k = np.float32(disp_mm / norm)
    coords = np.stack([
        -(cos * x - sin * y) / scale + centre[0] + fields[0] * k,
        -(sin * x + cos * y) / scale + centre[1] + fields[1] * k,
        z / scale + centre[2] + fields[2] * k,
    ]).astype(np.float32)
    vals = {}
    for name, vol in (("gm", gm_m), ("wm", wm_m), ("mask", mask_m)):
        vals[name] = ndimage.map_coordinates(vol, coords, order=1, mode="constant", cval=0.0, prefilter=False)
    inside = vals["mask"] >= 0.5
    gm_v = np.where(inside, vals["gm"], 0.0).astype(np.float32)
    wm_v = np.where(inside, vals["wm"], 0.0).astype(np.float32)
    total = gm_v + wm_v
    over = total > 1.0
    gm_v[over] /= total[over]
    wm_v[over] /= total[over]
    csf_v = np.where(inside, np.clip(1.0 - gm_v - wm_v, 0.0, 1.0), 0.0).astype(np.float32)

    where = tuple(idx + lo_i for idx, lo_i in zip(ijk, lo))
    out = {}
    for name, v in (("gm", gm_v), ("wm", wm_v), ("csf", csf_v), ("mask", inside)):
        full = np.zeros(shape, bool if name == "mask" else np.float32)
        full[where] = v
        out[name] = full
    params = {"scale": scale, "rotation_deg": float(np.rad2deg(angle)), "max_displacement_mm": disp_mm}
    return out, params
