"""Write phantom subjects to disk in the BraTS 2021, BraTS 2023 or MSD Task01 layout, in parallel and resumably.

Layouts (names, label conventions and quirks as in ``/work/shared/brats-conventions.md``):

- ``brats2021``: ``OUT/BraTS2021_00000/BraTS2021_00000_{flair,t1,t1ce,t2,seg}.nii.gz``; int16 images, uint8
  labels 0/1/2/4.
- ``brats2023``: ``OUT/BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t2f,t1n,t1c,t2w,seg}.nii.gz``; labels 1/2/3
  (enhancing = 3). Like the real release, the label file is float32 with only a qform (sform code 0).
- ``msd``: ``OUT/imagesTr/BRATS_001.nii.gz`` 4-D channels-last (x, y, z, 4: FLAIR, T1w, T1gd, T2w),
  ``OUT/labelsTr/BRATS_001.nii.gz`` (1 oedema, 2 non-enhancing/necrotic, 3 enhancing) and ``OUT/dataset.json``.

A BraTS case folder is built under a temporary name and renamed into place when complete; every file is written
atomically. A per-subject record ``OUT/.phantom/subject_00000.json`` (hidden, so loaders skip it) is written last and
marks the subject complete: a restarted run skips complete subjects. ``OUT/phantom.json`` holds the generator
version, seed, shape, layout, the physics tables and every subject's drawn parameters.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from mri_harmonic.data.phantom.simulate import PhantomSubject, check_shape, simulate_subject
from mri_harmonic.errors import UserInputError
from mri_harmonic.utils.io import atomic_dir, atomic_path, atomic_write_json, ensure_writable_dir

GENERATOR_VERSION = "1.0"
LAYOUTS = ("brats2021", "brats2023", "msd")
MSD_CHANNELS = ("flair", "t1", "t1ce", "t2")  # MSD Task01 order: FLAIR, T1w, T1gd, T2w
BRATS2023_SUFFIX = {"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w"}
#: BraTS 2021 label -> other conventions
LABELS_2023 = {1: 1, 2: 2, 4: 3}
LABELS_MSD = {1: 2, 2: 1, 4: 3}
RECORD_DIR = ".phantom"


def check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise UserInputError(f"unknown phantom layout {layout!r} (`layout`); choose one of {', '.join(LAYOUTS)}")
    return layout


def case_name(index: int, layout: str) -> str:
    """Case identifier of subject ``index`` in ``layout`` (MSD numbers from 1, BraTS from 0)."""
    check_layout(layout)
    if layout == "brats2021":
        return f"BraTS2021_{index:05d}"
    if layout == "brats2023":
        return f"BraTS-GLI-{index:05d}-000"
    return f"BRATS_{index + 1:03d}"


def _map_labels(seg: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    lut = np.zeros(256, np.uint8)
    for a, b in mapping.items():
        lut[a] = b
    return lut[seg]


def _save_nifti(array: np.ndarray, affine: np.ndarray, target: Path, *, qform_only: bool = False) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(array, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=0 if qform_only else 1)
    with atomic_path(target) as tmp:
        nib.save(img, tmp)


def _int16(a: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(a), -32768, 32767).astype(np.int16)


def subject_path(out_dir, index: int, layout: str) -> Path:
    """Where :func:`write_subject` puts subject ``index``: the case folder (BraTS) or the 4-D image (MSD)."""
    out_dir = Path(out_dir)
    name = case_name(index, layout)
    return out_dir / "imagesTr" / f"{name}.nii.gz" if layout == "msd" else out_dir / name


def write_subject(subject: PhantomSubject, out_dir, index: int, layout: str = "brats2021") -> Path:
    """Write ``subject`` as case ``index`` of ``layout`` under ``out_dir``; return :func:`subject_path`."""
    check_layout(layout)
    out_dir = Path(out_dir)
    name = case_name(index, layout)
    aff = subject.affine
    if layout == "msd":
        img = np.stack([_int16(subject.images[m]) for m in MSD_CHANNELS], axis=-1)
        _save_nifti(img, aff, out_dir / "imagesTr" / f"{name}.nii.gz")
        _save_nifti(_map_labels(subject.seg, LABELS_MSD), aff, out_dir / "labelsTr" / f"{name}.nii.gz")
        return subject_path(out_dir, index, layout)
    target = out_dir / name
    with atomic_dir(target) as tmp:
        for m, arr in subject.images.items():
            suffix = f"_{m}" if layout == "brats2021" else f"-{BRATS2023_SUFFIX[m]}"
            _save_nifti(_int16(arr), aff, tmp / f"{name}{suffix}.nii.gz")
        if layout == "brats2021":
            _save_nifti(subject.seg.astype(np.uint8), aff, tmp / f"{name}_seg.nii.gz")
        else:
            seg = _map_labels(subject.seg, LABELS_2023).astype(np.float32)
            _save_nifti(seg, aff, tmp / f"{name}-seg.nii.gz", qform_only=True)
    return target


def _record_path(out_dir: Path, index: int) -> Path:
    return out_dir / RECORD_DIR / f"subject_{index:05d}.json"


def _is_complete(out_dir: Path, index: int, layout: str) -> bool:
    if not _record_path(out_dir, index).is_file():
        return False
    name = case_name(index, layout)
    if layout == "msd":
        return all((out_dir / d / f"{name}.nii.gz").is_file() for d in ("imagesTr", "labelsTr"))
    return (out_dir / name).is_dir()


def _run_one(args: tuple) -> tuple[int, Path, dict]:
    out_dir, index, seed, shape, layout = args
    subject = simulate_subject(index, seed, shape)
    path = write_subject(subject, out_dir, index, layout)
    atomic_write_json(_record_path(Path(out_dir), index), subject.params)
    return index, path, subject.params


def _init_worker() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _msd_dataset_json(subjects: int) -> dict:
    return {
        "name": "BRATS", "description": "mri-harmonic MR-physics phantom in the MSD Task01_BrainTumour layout",
        "tensorImageSize": "4D", "reference": "mri-harmonic phantom", "licence": "CC-BY-SA 4.0",
        "release": GENERATOR_VERSION,
        "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
        "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"},
        "numTraining": subjects, "numTest": 0,
        "training": [{"image": f"./imagesTr/{case_name(i, 'msd')}.nii.gz",
                      "label": f"./labelsTr/{case_name(i, 'msd')}.nii.gz"} for i in range(subjects)],
        "test": [],
    }


def _settings(seed: int, shape: tuple, layout: str) -> dict:
    return {"generator": "mri_harmonic.data.phantom", "generator_version": GENERATOR_VERSION, "seed": int(seed),
            "shape": list(shape), "layout": layout}


def generate_phantom(
    out_dir,
    subjects: int = 4,
    seed: int = 0,
    shape=(240, 240, 155),
    layout: str = "brats2021",
    workers: int | None = None,
    progress: bool = True,
) -> list[Path]:
    """Simulate and write ``subjects`` subjects (indices 0..N-1) in parallel; skip subjects already complete.

    Returns:
        :func:`subject_path` of every subject, in index order.

    Raises:
        UserInputError: unwritable ``out_dir``, ``subjects < 1``, bad ``shape``, unknown ``layout``, bad
        ``workers``, or an ``out_dir`` holding a phantom made with other settings.
    """
    from tqdm.auto import tqdm

    from mri_harmonic.data.phantom import tissue
    from mri_harmonic.data.phantom.anatomy import grid_affine, voxel_size

    check_layout(layout)
    shape = check_shape(shape)
    if not isinstance(subjects, (int, np.integer)) or subjects < 1:
        raise UserInputError(f"`subjects` must be an integer >= 1, got {subjects!r}")
    if int(seed) < 0:
        raise UserInputError(f"`seed` must be >= 0, got {seed!r}")
    if workers is None:
        workers = min(4, os.cpu_count() or 1)
    if int(workers) < 1:
        raise UserInputError(f"`workers` must be >= 1, got {workers!r}")
    out_dir = ensure_writable_dir(out_dir, "phantom output folder")

    settings = _settings(seed, shape, layout)
    meta_path = out_dir / "phantom.json"
    if meta_path.is_file():
        try:
            old = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            old = {}
        old_settings = {k: old.get(k) for k in settings}
        if old_settings != settings:
            raise UserInputError(
                f"{out_dir} already holds a phantom made with {old_settings}; use an empty folder or the same "
                f"`seed`, `shape` and `layout` to resume it"
            )
    else:  # written first so that a resumed run can check its settings
        atomic_write_json(meta_path, {**settings, "subjects": []})

    todo = [i for i in range(subjects) if not _is_complete(out_dir, i, layout)]
    jobs = [(str(out_dir), i, int(seed), shape, layout) for i in todo]
    bar = tqdm(total=subjects, initial=subjects - len(todo), desc="phantom", unit="subject", disable=not progress)
    try:
        if int(workers) == 1 or len(jobs) <= 1:
            for job in jobs:
                _run_one(job)
                bar.update(1)
        else:
            with ProcessPoolExecutor(max_workers=min(int(workers), len(jobs)), initializer=_init_worker) as pool:
                for fut in as_completed([pool.submit(_run_one, j) for j in jobs]):
                    fut.result()
                    bar.update(1)
    finally:
        bar.close()

    records = [json.loads(_record_path(out_dir, i).read_text()) for i in range(subjects)]
    if layout == "msd":
        atomic_write_json(out_dir / "dataset.json", _msd_dataset_json(subjects))
    meta = {
        **settings,
        "voxel_size_mm": voxel_size(shape),
        "affine": grid_affine(shape).tolist(),
        "field_strength_T": tissue.FIELD_STRENGTH_T,
        "tissues_ms": {k: vars(v) for k, v in tissue.TISSUES.items()},
        "sequences_ms": {k: vars(v) for k, v in tissue.SEQUENCES.items()},
        "gd_r1_per_mM_s": tissue.GD_R1_PER_MM_S,
        "labels": "BraTS 2021 in memory (1 necrotic core, 2 oedema, 4 enhancing); files use the layout's convention",
        "subjects": records,
    }
    atomic_write_json(meta_path, meta)
    return [subject_path(out_dir, i, layout) for i in range(subjects)]
