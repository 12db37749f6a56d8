"""Shared fixtures. Tests stay on one CPU thread so that several test processes share the 2-core machine."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import pytest
import torch

from mri_harmonic.data.sitk_io import keeps_locale

torch.set_num_threads(1)


def make_synthetic_store(path, *, size=32, subjects=4, slices=3, modalities=("flair", "t1"), seed=0, splits=("train", "val", "test")):
    """A tiny, structured store written through the real writer (no phantom or NIfTI involved).

    Each slice holds a bright disc (brain) with a smaller "tumour" disc; modalities differ by a monotone
    intensity map so that a translation between them is learnable.
    """
    from mri_harmonic.data.store import write_store

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    arrays, rows, subj_meta = {}, [], {}
    for si, split in enumerate(splits):
        named = {m: [] for m in (*modalities, "mask", "seg")}
        r = 0
        for s in range(subjects):
            sid = f"S{si}{s:02d}"
            subj_meta[sid] = {"split": split, "half": s % 2}
            for z in range(slices):
                c = size / 2 + rng.normal(0, 2, size=2)
                brain = ((yy - c[0]) ** 2 + (xx - c[1]) ** 2) < (size * 0.35) ** 2
                tc = c + rng.normal(0, 3, size=2)
                tumour = ((yy - tc[0]) ** 2 + (xx - tc[1]) ** 2) < (size * 0.1) ** 2
                tumour &= brain
                base = np.where(brain, 0.5 + 0.1 * np.sin(xx / 3.0 + z), 0.0)
                for k, m in enumerate(modalities):
                    v = base.copy()
                    v[tumour] = 0.9 if k % 2 == 0 else 0.2
                    if k % 2:
                        v = np.where(brain, 1.0 - v * 0.8, 0.0)
                    named[m].append(v.astype(np.float16))
                named["mask"].append(brain.astype(np.uint8))
                named["seg"].append((tumour * 2).astype(np.uint8))
                rows.append(dict(split=split, row=r, subject=sid, slice_index=z, brain_fraction=float(brain.mean()),
                                 tumour_fraction=float(tumour.sum() / max(brain.sum(), 1)), half=s % 2))
                r += 1
        arrays[split] = {k: np.stack(v) for k, v in named.items()}
    return write_store(path, arrays=arrays, manifest=pd.DataFrame(rows), subjects=subj_meta, config={"synthetic": True},
                       config_hash="synthetic000", modalities=list(modalities), extra_meta={"unpaired_halves": False})


@pytest.fixture
def synthetic_store(tmp_path):
    """Path of a tiny synthetic slice store (32x32, 3 splits x 4 subjects x 3 slices)."""
    return make_synthetic_store(tmp_path / "store")


@keeps_locale  # GDCM's writer leaves the process in the C locale (ASCII text I/O for later tests)
def write_dicom_series(img, folder, series_number=1):
    """``img`` (int16 sitk.Image) as a DICOM series, one file per axial slice, with the geometry tags GDCM reads;
    ``series_number`` makes the series UID (another number: another series, which may share the folder)."""
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    direction = img.GetDirection()
    series = f"1.2.826.0.1.3680043.2.1125.1.{series_number}"
    for z in range(img.GetDepth()):
        sl = img[:, :, z]
        tags = {
            "0008|0060": "MR", "0008|0016": "1.2.840.10008.5.1.4.1.1.4", "0020|000d": series + ".0", "0020|000e": series,
            "0020|0013": str(z + 1), "0020|0032": "\\".join(f"{v:.6f}" for v in img.TransformIndexToPhysicalPoint((0, 0, z))),
            "0020|0037": "\\".join(f"{v:.6f}" for v in (direction[0], direction[3], direction[6], direction[1], direction[4], direction[7])),
            "0018|0050": f"{img.GetSpacing()[2]:.6f}", "0028|0030": f"{img.GetSpacing()[1]:.6f}\\{img.GetSpacing()[0]:.6f}",
        }
        for k, v in tags.items():
            sl.SetMetaData(k, v)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(folder / f"s{series_number}_slice{z:03d}.dcm"))
        writer.Execute(sl)
    return folder
