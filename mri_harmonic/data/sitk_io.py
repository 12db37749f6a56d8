"""Volumes in any format SimpleITK reads (NRRD, MHA/MHD, a DICOM series folder, NIfTI), in and out of the model's
grid.

Clinical scans rarely arrive as BraTS NIfTI: they come as NRRD, MetaImage or a folder of DICOM slices, at their own
spacing and orientation. :func:`read_image` reads any of them; :func:`to_model_grid` reorients a volume to RAS
(``sitk.DICOMOrient``, a pure axis permutation / flip) and resamples it (trilinear, ``sitk.Resample``) to the
spacing the model was trained at; :func:`from_model_grid` maps a translation made on that grid back onto the
input's own grid (normalised interpolation over the translated brain, then exactly the input's own mask: 0 outside
its non-zero voxels, a translated value at each of them); :func:`write_image` writes the result in the format the
output name asks for (``.nii.gz`` / ``.nii``, ``.nrrd`` / ``.nhdr``, ``.mha`` / ``.mhd``).

Physical coordinates follow ITK (LPS); SimpleITK's NIfTI writer converts them to the NIfTI (RAS) affine, so a file
written here and read by nibabel lies where the input lay.
"""

from __future__ import annotations

import contextlib
import functools
import locale
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mri_harmonic.errors import UserInputError

NIFTI_SUFFIXES = (".nii", ".nii.gz")
#: what :func:`write_image` writes, by the output name's ending
WRITE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
#: single-file formats read through SimpleITK (besides NIfTI, which the rest of the package reads with nibabel)
SITK_FILE_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")


def keeps_locale(fn):
    """Restore the process locale after ``fn``: GDCM (SimpleITK's DICOM reader) switches it to ``C``, which turns
    Python's default text encoding into ASCII for the rest of the process."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        saved = locale.setlocale(locale.LC_ALL)
        try:
            return fn(*args, **kwargs)
        finally:
            with contextlib.suppress(locale.Error):
                locale.setlocale(locale.LC_ALL, saved)

    return wrapper


def is_nifti(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def is_sitk_input(path: str | os.PathLike) -> bool:
    """A single NRRD / MetaImage file, or a folder holding a DICOM series (checked by SimpleITK's GDCM)."""
    path = Path(path)
    if path.is_file():
        return path.name.lower().endswith(SITK_FILE_SUFFIXES)
    return path.is_dir() and bool(dicom_series(path))


@keeps_locale
def dicom_series(folder: str | os.PathLike) -> list[str]:
    """The DICOM series ids in ``folder`` (not its subfolders); empty when it holds none (checked quietly: a
    folder of case folders is not scanned, and ITK's "no series" warning is not printed)."""
    import SimpleITK as sitk

    folder = Path(folder)
    if not any(p.is_file() and not p.name.startswith(".") for p in folder.iterdir()):
        return []
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        return list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or [])
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)


@keeps_locale
def read_image(path: str | os.PathLike) -> Any:
    """``path`` (a file SimpleITK reads, or a folder of one DICOM series) -> a 3-D scalar float32 ``sitk.Image``.

    Raises a one-line :class:`UserInputError` naming the path for an unreadable file, a folder with no or several
    DICOM series, or an image that is not one 3-D scalar volume.
    """
    import SimpleITK as sitk

    path = Path(path)
    try:
        if path.is_dir():
            series = dicom_series(path)
            if len(series) != 1:
                raise UserInputError(
                    f"input folder {path} holds {len(series) or 'no'} DICOM series; pass a folder with exactly one "
                    "series (one folder per series), or a NIfTI / NRRD / MHA file"
                )
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path), series[0]))
            img = reader.Execute()
        else:
            img = sitk.ReadImage(str(path))
    except UserInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure: the file is not a volume we can use
        detail = " ".join(str(exc).split())[-160:]
        raise UserInputError(f"input {path} cannot be read by SimpleITK ({detail}); pass a NIfTI, NRRD, MHA or DICOM series") from None
    if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
        raise UserInputError(
            f"input {path} is a {img.GetDimension()}-D image with {img.GetNumberOfComponentsPerPixel()} component(s) per "
            "voxel; translate takes one 3-D scalar volume"
        )
    return sitk.Cast(img, sitk.sitkFloat32)


def to_model_grid(img: Any, spacing: Sequence[float] | None) -> Any:
    """Reorient ``img`` to RAS and, when ``spacing`` (mm, x y z after reorientation) is given and differs,
    resample it there (trilinear, zero outside) over the same physical extent."""
    import SimpleITK as sitk

    ras = sitk.DICOMOrient(img, "RAS")
    if spacing is None or np.allclose(ras.GetSpacing(), spacing, rtol=1e-4):
        return ras
    old_sp, new_sp = np.asarray(ras.GetSpacing()), np.asarray(spacing, dtype=float)
    size = np.maximum(1, np.round(np.asarray(ras.GetSize()) * old_sp / new_sp)).astype(int)
    direction = np.asarray(ras.GetDirection()).reshape(3, 3)
    # keep the outer edge of the first voxel where it was: voxel centres move by half the spacing change
    origin = np.asarray(ras.GetOrigin()) + direction @ ((new_sp - old_sp) / 2)
    return sitk.Resample(ras, [int(s) for s in size], sitk.Transform(), sitk.sitkLinear, origin.tolist(),
                         new_sp.tolist(), ras.GetDirection(), 0.0, sitk.sitkFloat32)


def array_of(img: Any) -> np.ndarray:
    """Voxel array in (x, y, z) index order (nibabel's), float32."""
    import SimpleITK as sitk

    return np.ascontiguousarray(sitk.GetArrayFromImage(img).transpose(2, 1, 0), dtype=np.float32)


def image_like(array: np.ndarray, reference: Any) -> Any:
    """(x, y, z) ``array`` -> ``sitk.Image`` with ``reference``'s origin, spacing and direction."""
    import SimpleITK as sitk

    out = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array, dtype=np.float32).transpose(2, 1, 0)))
    out.CopyInformation(reference)
    return out


def from_model_grid(values: np.ndarray, brain: np.ndarray, model_img: Any, input_img: Any) -> np.ndarray:
    """A translation on ``model_img``'s grid (``values``, zero outside its ``brain`` mask; (x, y, z) arrays) -> the
    ``input_img`` grid: ``R(v·m) / R(m)`` (trilinear ``sitk.Resample``, so the background's zeros do not darken
    the edge), the input's brain voxels no model voxel reaches filled from their nearest neighbours, and exactly 0
    outside the input's own mask (its non-zero voxels). Returns (x, y, z) float32."""
    import SimpleITK as sitk

    from mri_harmonic.data.geometry import normalised_on_mask

    m = np.asarray(brain, dtype=np.float32)
    resample = lambda a: array_of(sitk.Resample(image_like(a, model_img), input_img, sitk.Transform(),  # noqa: E731
                                                sitk.sitkLinear, 0.0, sitk.sitkFloat32))
    num, den = resample(np.asarray(values, dtype=np.float32) * m), resample(m)
    return normalised_on_mask(num, den, array_of(input_img) != 0)


@keeps_locale
def write_image(array: np.ndarray, reference: Any, path: str | os.PathLike, description: str = "") -> Path:
    """Write (x, y, z) ``array`` on ``reference``'s grid to ``path`` atomically, in the format its name asks for."""
    import SimpleITK as sitk

    from mri_harmonic.utils.io import atomic_path

    path = Path(path)
    if not path.name.lower().endswith(WRITE_SUFFIXES):
        raise UserInputError(f"output {path} must end in {', '.join(WRITE_SUFFIXES)}")
    img = image_like(array, reference)
    if description:
        img.SetMetaData("descrip" if is_nifti(path) else "Description", description[:80])
    if path.name.lower().endswith((".nhdr", ".mhd")):  # header + separate data file: write both in place
        path.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(img, str(path), True)
        return path
    with atomic_path(path) as tmp:
        sitk.WriteImage(img, str(tmp), True)
    return path
