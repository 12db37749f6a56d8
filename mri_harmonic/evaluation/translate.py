"""``mri-harmonic translate``: a whole NIfTI volume (or a folder of subjects) through a trained generator.

The input goes through exactly the preprocessing the run's training store was built with
(:func:`mri_harmonic.data.geometry.prepare_volume` with that store's :class:`PreprocessConfig`: RAS reorientation,
optional resampling, brain-mask percentile normalisation to [0, 1], crop/pad to the slice size); every axial slice
is translated (batched, no gradients, bf16 autocast on CUDA) and mapped back onto the input's voxel grid and
orientation with :func:`~mri_harmonic.data.geometry.restore_volume`: exactly 0 outside the input's own brain (its
non-zero voxels, on its own grid) and a translated value at every voxel inside it.

**Other formats** (:mod:`mri_harmonic.data.sitk_io`): an NRRD or MetaImage file, or a folder holding one DICOM
series, is read with SimpleITK, reoriented to RAS and resampled to the spacing the model was trained at
(:func:`training_spacing`), translated the same way, and resampled back onto the input's own grid (0 exactly outside
its non-zero voxels). The output is NIfTI unless OUTPUT's name asks for ``.nrrd`` or ``.mha`` (e.g. the input's own
format).

Output file: the input's shape, affine and header, data type float32, written atomically. **Intensities** are the
model's normalised units — [0, 1], where 0 and 1 correspond to the 0.5th and 99.5th brain percentiles of the
*target* modality in training (the store's ``percentiles``) — multiplied by ``scale`` (default 1; e.g. ``--scale
255`` for the paper's 0-255 scale). Background (outside the input's brain) is 0.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mri_harmonic.data.layouts import is_nifti, modality_from_name
from mri_harmonic.directions import DIRECTIONS, modalities_of
from mri_harmonic.errors import UserInputError

NIFTI_DESCRIP_LEN = 80


def resolve_direction(run, direction: str | None) -> tuple[str, str]:
    """``direction`` (default: the run's training direction) -> (source modality, target modality)."""
    direction = direction or run.direction
    source, target = modalities_of(direction)
    run.generator_for(source)  # one-line error when the run does not translate this modality
    return source, target


def load_preprocess_config(run, store_config: str | os.PathLike | None = None):
    """The :class:`PreprocessConfig` of the run's training store (or of ``store_config``: a store folder or YAML).

    Runs carry their store's config in the checkpoint (version 2); older ones point at the store folder."""
    from mri_harmonic.config import from_dict, read_yaml
    from mri_harmonic.data.config import PreprocessConfig

    if store_config is None and run.store_config is not None:
        return from_dict(PreprocessConfig, run.store_config, source=f"run {run.run_dir} (training store config)")
    if store_config is not None:
        path = Path(store_config)
        flag = "`store_config`"
    elif run.store:
        path = Path(run.store)
        flag = None
    else:
        raise UserInputError(
            f"run {run.run_dir} does not record its training store; pass `store_config` STORE (the slice store it was "
            "trained on, or that store's config.yaml)"
        )
    yaml_path = path / "config.yaml" if path.is_dir() else path
    if not yaml_path.is_file():
        where = f"{flag} {path}" if flag else f"the training store {path} recorded in run {run.run_dir}"
        raise UserInputError(
            f"{where} has no preprocess config ({yaml_path} not found); pass `store_config` with the slice store the "
            "run was trained on (or its config.yaml)"
        )
    return from_dict(PreprocessConfig, read_yaml(yaml_path), source=str(yaml_path))


def _check_input(path: Path, source: str) -> Any:
    import nibabel as nib

    if not path.is_file():
        raise UserInputError(f"input volume {path} not found; pass an existing .nii or .nii.gz file or a data folder")
    try:
        img = nib.load(str(path))
        shape = img.shape
    except Exception as exc:  # noqa: BLE001 - any reader failure means the file is not a usable NIfTI
        raise UserInputError(f"input volume {path} cannot be read as NIfTI ({type(exc).__name__}); pass a .nii/.nii.gz file") from None
    msd = len(shape) == 4 and shape[3] >= 4  # MSD 4-D (FLAIR, T1w, T1gd, T2w): prepare_volume reads one channel
    if len(shape) != 3 and not msd:
        raise UserInputError(
            f"input volume {path} has shape {tuple(shape)}; translate takes one 3-D {source} volume "
            "(or a 4-D MSD file with channels FLAIR, T1w, T1gd, T2w)"
        )
    named = modality_from_name(path)
    if named is not None and named != source:
        raise UserInputError(
            f"input volume {path} is named as a {named} image but this translation reads {source}; pass the "
            f"{source} file or choose `direction` {next((d for d, (s, _) in DIRECTIONS.items() if s == named), 'flair2t1')}"
        )
    return img


def translate_batch(net, x, device, brain=None, amp: bool = True):
    """Network-range batch ``(B, 1, H, W)`` in [-1, 1] -> translation on [0, 1] (channels_last and, with ``amp``,
    bf16 autocast on CUDA; fp32 elsewhere), zeroed outside ``brain`` when given. Call under ``torch.inference_mode()``.

    On CPU this stays fp32 even where training uses bf16: inference is cheap next to training, and fp32 gives the
    same metrics and volumes for a checkpoint on every CPU."""
    from mri_harmonic.utils.device import autocast, memory_format

    with autocast(device, "auto" if (amp and device.type == "cuda") else "off"):
        y = net(x.to(device).contiguous(memory_format=memory_format(device)))
    pred = ((y.float() + 1.0) * 0.5).clamp(0, 1)
    return pred * brain if brain is not None else pred


def translate_slices(net, slices: np.ndarray, mask: np.ndarray, device, batch_size: int = 16, amp: bool = True) -> np.ndarray:
    """``(Z, H, W)`` [0, 1] slices -> translated ``(Z, H, W)`` [0, 1] float32, zero outside ``mask``."""
    import torch

    out = np.zeros(slices.shape, dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, slices.shape[0], batch_size):
            x = torch.from_numpy(np.ascontiguousarray(slices[start : start + batch_size], dtype=np.float32))
            out[start : start + batch_size] = translate_batch(net, (x * 2.0 - 1.0).unsqueeze(1), device, amp=amp)[:, 0].cpu().numpy()
    return out * np.asarray(mask, dtype=bool)


def translate_file(
    loaded, input_path: Path, output_path: Path, source: str, target: str, pre_cfg, *,
    batch_size: int = 16, device=None, scale: float = 1.0, amp: bool = True,
) -> Path:
    """Translate one volume with an already loaded run; see :func:`translate`."""
    import nibabel as nib

    from mri_harmonic.data.geometry import prepare_volume, restore_volume
    from mri_harmonic.utils.io import atomic_path

    img = _check_input(input_path, source)
    try:
        prepared = prepare_volume(input_path, pre_cfg, modality=source)
    except UserInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - an unusable volume (all zero, NaN...) must not end in a traceback
        raise UserInputError(f"input volume {input_path} cannot be preprocessed ({type(exc).__name__}: {exc}); check the file") from None
    _check_slice_size(prepared, loaded, input_path)
    net = loaded.generator_for(source)
    dev = device if device is not None else next(net.parameters()).device
    translated = translate_slices(net, prepared.slices, prepared.mask, dev, batch_size, amp)
    volume = restore_volume(translated, prepared.geometry, mask=prepared.mask, source_mask=prepared.source_mask) * np.float32(scale)
    in_shape = tuple(img.shape[:3])
    if volume.shape != in_shape:
        raise RuntimeError(f"restore_volume returned shape {volume.shape}, input has {in_shape}")
    header = img.header.copy()
    if len(img.shape) == 4:  # MSD: one channel out of four -> a 3-D output on the same grid
        header.set_data_shape(in_shape)
    header.set_data_dtype(np.float32)
    header.set_slope_inter(1.0, 0.0)
    header["cal_min"], header["cal_max"] = 0.0, float(volume.max()) if volume.size else 0.0
    header["descrip"] = f"mri-harmonic {source}->{target} synthetic, x{scale:g}".encode()[:NIFTI_DESCRIP_LEN]
    out = nib.Nifti1Image(volume, img.affine, header)
    out.set_qform(img.get_qform(), code=int(img.header["qform_code"]))
    out.set_sform(img.get_sform(), code=int(img.header["sform_code"]))
    output_path = Path(output_path)
    with atomic_path(output_path) as tmp:
        nib.save(out, str(tmp))
    return output_path


def training_spacing(loaded, pre_cfg) -> list[float] | None:
    """The voxel size (mm; x, y, z in RAS) the run's model was trained at: the preprocess config's ``spacing``,
    else the median model spacing of the training store's subjects (recorded in the run, or read from the store); None when neither is
    known (then the input keeps its own spacing, as a NIfTI input does)."""
    import json

    if pre_cfg.spacing is not None:
        return [float(v) for v in pre_cfg.spacing]
    if loaded.store_model_spacing is not None:  # recorded in the checkpoint (runs since checkpoint version 2)
        return [float(v) for v in loaded.store_model_spacing]
    subjects = Path(loaded.store) / "subjects.json" if loaded.store else None
    if subjects is None or not subjects.is_file():
        return None
    found = [g["model_spacing"] for g in json.loads(subjects.read_text()).values() if "model_spacing" in g]
    return [float(v) for v in np.median(np.asarray(found, dtype=float), axis=0)] if found else None


def translate_sitk_file(
    loaded, input_path: Path, output_path: Path, source: str, target: str, pre_cfg, *,
    batch_size: int = 16, device=None, scale: float = 1.0, amp: bool = True,
) -> Path:
    """Translate an NRRD / MetaImage file or a DICOM series folder (anything :func:`~mri_harmonic.data.sitk_io.read_image`
    reads) with SimpleITK resampling to and from the model's grid; see the module docstring."""
    import tempfile
    from dataclasses import replace

    import SimpleITK as sitk

    from mri_harmonic.data import sitk_io
    from mri_harmonic.data.geometry import prepare_volume, restore_volume

    img = sitk_io.read_image(input_path)
    model_img = sitk_io.to_model_grid(img, training_spacing(loaded, pre_cfg))
    with tempfile.TemporaryDirectory(prefix="mri-harmonic-") as tmp:
        nii = Path(tmp) / f"input_{source}.nii"
        sitk.WriteImage(model_img, str(nii))
        try:  # already on the model's grid and in RAS: the chain only normalises, slices and crops
            prepared = prepare_volume(nii, replace(pre_cfg, spacing=None), modality=source)
        except UserInputError as exc:
            raise UserInputError(str(exc).replace(str(nii), str(input_path))) from None
        except Exception as exc:  # noqa: BLE001 - an unusable volume must not end in a traceback
            raise UserInputError(f"input {input_path} cannot be preprocessed ({type(exc).__name__}: {exc}); check the file") from None
    _check_slice_size(prepared, loaded, input_path)
    net = loaded.generator_for(source)
    dev = device if device is not None else next(net.parameters()).device
    translated = translate_slices(net, prepared.slices, prepared.mask, dev, batch_size, amp)
    on_model = restore_volume(translated, prepared.geometry, mask=prepared.mask, source_mask=prepared.source_mask)
    volume = sitk_io.from_model_grid(on_model, prepared.source_mask, model_img, img) * np.float32(scale)
    return sitk_io.write_image(volume, img, output_path, f"mri-harmonic {source}->{target} synthetic, x{scale:g}")


def _check_slice_size(prepared, loaded, input_path: Path) -> None:
    if tuple(prepared.slices.shape[1:]) != tuple(loaded.image_size):
        raise UserInputError(
            f"input volume {input_path} gives {prepared.slices.shape[1]}x{prepared.slices.shape[2]} slices with this "
            f"preprocess config but run {loaded.run_dir} expects {loaded.image_size[0]}x{loaded.image_size[1]}; pass the "
            "run's training store with `store_config`"
        )


def _check_output_file(output_path: Path, formats: Sequence[str] = (".nii.gz", ".nii")) -> None:
    from mri_harmonic.utils.io import ensure_writable_dir

    if not output_path.name.lower().endswith(tuple(formats)):
        raise UserInputError(f"output {output_path} must end in {' or '.join(formats)}")
    ensure_writable_dir(output_path.parent, "output folder")


def translate(
    run: str | os.PathLike,
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    direction: str | None = None,
    store_config: str | os.PathLike | None = None,
    *,
    batch_size: int = 16,
    device: str = "auto",
    scale: float = 1.0,
    amp: bool = True,
    progress: bool = True,
    checkpoint: str | int = "latest",
) -> Translated:
    """Translate ``input_path`` (a NIfTI volume, or a data folder of subjects) with the run's generator.

    Args:
        run: run folder of ``mri-harmonic train``.
        input_path: a 3-D NIfTI of the source modality, an NRRD / MHA file or a folder holding one DICOM series,
            or a folder in any layout :func:`~mri_harmonic.data.layouts.discover` understands (BraTS 2018-2021,
            2023+, MSD).
        output_path: the output ``.nii.gz`` for a file input (``.nrrd`` / ``.mha`` also for NRRD, MHA and DICOM
            inputs); an output folder for a folder input, receiving ``<subject>/<subject>_<target>_synthetic.nii.gz``.
        direction: ``flair2t1`` or ``t12flair``; default the run's training direction.
        store_config: slice store (or its ``config.yaml``) whose preprocessing to apply; default the run's
            training store.
        scale: output intensity factor (1 = normalised [0, 1] units; 255 = the paper's scale).
        amp: bf16 autocast on CUDA (as in training); ``False`` runs fp32. No effect on CPU.
        checkpoint: which checkpoint of the run: ``latest`` (default), ``step_N`` (a periodic one) or a path.

    Returns the written paths (a :class:`Translated` list; for a folder its ``skipped`` lists the subjects that
    could not be translated, also written to ``skipped.csv`` in the output folder).
    """
    from mri_harmonic.checkpoint import load_run
    from mri_harmonic.utils.device import resolve_device
    from mri_harmonic.utils.io import removed_on_error

    if batch_size < 1:
        raise UserInputError(f"`batch_size` must be >= 1, got {batch_size}")
    if not np.isfinite(scale) or scale <= 0:
        raise UserInputError(f"`scale` must be a positive number, got {scale}")
    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.exists():
        raise UserInputError(f"input {input_path} not found; pass a .nii/.nii.gz volume or a data folder")
    dev = resolve_device(device, key="`device`")
    loaded = load_run(run, device=dev, checkpoint=checkpoint)
    source, target = resolve_direction(loaded, direction)
    pre_cfg = load_preprocess_config(loaded, store_config)
    kwargs = dict(batch_size=batch_size, device=dev, scale=scale, amp=amp)
    from mri_harmonic.data import sitk_io

    if sitk_io.is_sitk_input(input_path):  # NRRD / MHA file or a DICOM series folder
        with removed_on_error(output_path.parent):
            _check_output_file(output_path, sitk_io.WRITE_SUFFIXES)
            return Translated([translate_sitk_file(loaded, input_path, output_path, source, target, pre_cfg, **kwargs)])
    with removed_on_error(output_path.parent if input_path.is_file() else output_path):
        if input_path.is_file():
            _check_output_file(output_path)
            return Translated([translate_file(loaded, input_path, output_path, source, target, pre_cfg, **kwargs)])
        return translate_folder(loaded, input_path, output_path, source, target, pre_cfg, progress=progress, **kwargs)


class Translated(list):
    """The written paths (a list), plus ``skipped``: ``{"subject", "file", "reason"}`` of each subject of a folder
    input that could not be translated (also in ``skipped.csv`` beside the outputs)."""

    skipped: list[dict[str, str]]

    def __init__(self, paths: Sequence[Path] = (), skipped: Sequence[dict[str, str]] = ()):
        super().__init__(paths)
        self.skipped = list(skipped)


SKIPPED_COLUMNS = ["subject", "file", "reason"]


def translate_folder(
    loaded, data_dir: Path, out_dir: Path, source: str, target: str, pre_cfg, *, progress: bool = True, **kwargs: Any
) -> Translated:
    """Every subject of ``data_dir`` -> ``out_dir/<subject>/<subject>_<target>_synthetic.nii.gz``.

    A subject that cannot be translated (unreadable, truncated or empty file, wrong shape...) is skipped and listed
    in ``out_dir/skipped.csv`` (subject, file, reason; rewritten on every run, empty when none was skipped); the
    others are still translated. Raises a one-line :class:`UserInputError` only when no subject was translated.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from mri_harmonic.data.layouts import discover
    from mri_harmonic.utils.io import atomic_write_csv, ensure_writable_dir

    if out_dir.suffix in (".nii", ".gz"):
        raise UserInputError(f"input {data_dir} is a folder, so the output {out_dir} must be a folder, not a NIfTI file name")
    cases = discover(data_dir)
    with_source = [c for c in cases if source in c.images]
    if not with_source:
        raise UserInputError(f"no subject in {data_dir} has a {source} image ({len(cases)} subjects found); check `direction`")
    ensure_writable_dir(out_dir, "output folder")
    written, skipped = [], []
    for case in tqdm(with_source, desc="translate", unit="subject", disable=not progress):
        path = Path(case.images[source].path)  # a 4-D MSD file: prepare_volume reads the source channel
        dest = out_dir / case.subject / f"{case.subject}_{target}_synthetic.nii.gz"
        one = translate_file if is_nifti(path.name) else translate_sitk_file  # NRRD / MHA case files
        try:
            written.append(one(loaded, path, dest, source, target, pre_cfg, **kwargs))
        except UserInputError as exc:
            reason = str(exc).removeprefix(f"{path}: ").removeprefix(f"input volume {path} ").replace(str(path), "the file")
            skipped.append({"subject": case.subject, "file": str(path), "reason": reason})
            with contextlib.suppress(OSError):
                dest.parent.rmdir()  # only if empty: a skipped subject leaves no folder
    if not written:
        first = "; ".join(f"{s['subject']}: {s['file']}: {s['reason']}" for s in skipped[:2])
        raise UserInputError(f"no subject of {data_dir} could be translated ({len(skipped)} skipped; {first})")
    atomic_write_csv(out_dir / "skipped.csv", pd.DataFrame(skipped, columns=SKIPPED_COLUMNS))
    return Translated(written, skipped)


def run_translate_paths(paths: Sequence[Path]) -> str:
    """A short human summary of written (and, for a folder, skipped) subjects for the CLI."""
    skipped = getattr(paths, "skipped", [])
    if len(paths) == 1 and not skipped:
        return f"wrote {paths[0]}"
    out_dir = Path(paths[0]).parent.parent
    lines = [f"wrote {len(paths)} volume(s) under {out_dir}"]
    if skipped:
        lines[0] += f"; skipped {len(skipped)} subject(s) (also in {out_dir / 'skipped.csv'}):"
        lines += [f"  {s['subject']}: {s['file']}: {s['reason']}" for s in skipped]
    return "\n".join(lines)
