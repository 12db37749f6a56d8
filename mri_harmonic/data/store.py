"""The slice store: what ``mri-harmonic preprocess`` writes and every later stage reads.

Layout of a store folder (format version 1)::

    STORE/
      store.json              meta: format, version, complete, config_hash, store_id (random, one per build),
                              package_version, created, modalities, image_size [H, W], dtype,
                              splits {name: {n_slices, n_subjects}}, unpaired_halves
      config.yaml             the resolved PreprocessConfig it was built with
      manifest.csv            one row per slice: split, row, subject, slice_index, brain_fraction, tumour_fraction, half
      subjects.json           per subject: split, half, sources, geometry (see below)
      skipped.csv             subject, path, reason   (subjects left out, and why)
      <split>/<modality>.npy  (N, H, W) intensities in [0, 1], background 0 (np.load(mmap_mode="r") for O(1) access)
      <split>/mask.npy        (N, H, W) uint8 brain mask
      <split>/seg.npy         (N, H, W) uint8 labels, BraTS 2018-2021 convention (1 necrosis, 2 oedema, 4 enhancing)

``row`` indexes the split's arrays; ``slice_index`` is the axial index in the subject's preprocessed (RAS,
resampled) volume; ``subjects.json`` holds the per-subject geometry needed to map that slice back to source voxels.
``half`` (0 or 1) is a seeded per-subject coin used to give the two domains disjoint subjects during training.

A store is written under a temporary name and renamed into place when complete (:func:`write_store`), so a
reader never sees a half-written store. :attr:`SliceStore.fingerprint` identifies a store's content (its
``store_id``, manifest and array headers): a run records it and ``--resume`` refuses any other store.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import uuid
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from mri_harmonic import __version__
from mri_harmonic.errors import UserInputError
from mri_harmonic.utils.io import atomic_dir, json_default

FORMAT = "mri-harmonic-slice-store"
FORMAT_VERSION = 1
MANIFEST_COLUMNS = ["split", "row", "subject", "slice_index", "brain_fraction", "tumour_fraction", "half"]
SPLITS = ("train", "val", "test")
EXTRA_ARRAYS = ("mask", "seg")


def write_store(
    path: str | os.PathLike,
    *,
    arrays: Mapping[str, Mapping[str, np.ndarray]],
    manifest: pd.DataFrame,
    subjects: Mapping[str, Mapping[str, Any]],
    config: Mapping[str, Any],
    config_hash: str,
    modalities: list[str],
    skipped: pd.DataFrame | None = None,
    extra_meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write a complete store atomically (temporary folder, then rename; an old store is replaced only at the end).

    ``arrays[split][name]`` holds ``(N, H, W)`` arrays for every modality plus ``mask`` and ``seg``; ``manifest``
    has :data:`MANIFEST_COLUMNS` with ``row`` indexing those arrays.
    """
    import yaml

    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise ValueError(f"manifest lacks columns {missing}")
    path = Path(path)
    image_size = None
    splits_meta: dict[str, dict[str, int]] = {}
    dtype = None
    with atomic_dir(path) as tmp:
        for split, named in arrays.items():
            n = None
            (tmp / split).mkdir()
            for name in [*modalities, *EXTRA_ARRAYS]:
                if name not in named:
                    raise ValueError(f"split {split} lacks array {name}")
                arr = np.ascontiguousarray(named[name])
                if n is None:
                    n = arr.shape[0]
                    image_size = list(arr.shape[1:])
                if arr.shape[0] != n or list(arr.shape[1:]) != image_size:
                    raise ValueError(f"array {split}/{name} has shape {arr.shape}, expected ({n}, *{image_size})")
                if name in modalities:
                    dtype = str(arr.dtype)
                np.save(tmp / split / f"{name}.npy", arr)
            rows = manifest[manifest["split"] == split]
            if len(rows) != n:
                raise ValueError(f"manifest has {len(rows)} rows for split {split}, arrays have {n}")
            splits_meta[split] = {"n_slices": int(n or 0), "n_subjects": int(rows["subject"].nunique())}
        manifest[MANIFEST_COLUMNS + [c for c in manifest.columns if c not in MANIFEST_COLUMNS]].to_csv(
            tmp / "manifest.csv", index=False
        )
        (tmp / "subjects.json").write_text(json.dumps(subjects, indent=1, default=json_default) + "\n")
        (tmp / "config.yaml").write_text(f"# resolved config, hash {config_hash}\n" + yaml.safe_dump(dict(config), sort_keys=False))
        (skipped if skipped is not None else pd.DataFrame(columns=["subject", "path", "reason"])).to_csv(
            tmp / "skipped.csv", index=False
        )
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "complete": True,
            "config_hash": config_hash,
            "store_id": uuid.uuid4().hex,
            "package_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "modalities": list(modalities),
            "image_size": image_size,
            "dtype": dtype,
            "splits": splits_meta,
            **dict(extra_meta or {}),
        }
        (tmp / "store.json").write_text(json.dumps(meta, indent=2, default=json_default) + "\n")
    return path


def _looks_like_data(path: Path, depth: int = 3, budget: int = 5000) -> bool:
    """Whether ``path`` holds medical images up to ``depth`` folders down (BraTS 2019 nests HGG/<case>/<file>): a
    data folder, not a store. Stops at the first image or after ``budget`` entries."""
    suffixes = (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd", ".dcm")
    base = len(path.parts)
    seen = 0
    for root, dirs, files in os.walk(path):
        if len(Path(root).parts) - base >= depth:
            dirs[:] = []
        if any(f.lower().endswith(suffixes) for f in files):
            return True
        seen += len(files) + len(dirs)
        if seen > budget:
            return False
    return False


class SliceStore:
    """Read-only view of a slice store; arrays are memory-mapped, never decompressed.

    >>> store = SliceStore("stores/phantom")            # doctest: +SKIP
    >>> store.array("train", "flair")[12]              # (H, W) float slice in [0, 1]  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        meta_file = self.path / "store.json"
        if not meta_file.is_file():
            if _looks_like_data(self.path):  # a data folder given where its store belongs: suggest a store beside it
                store = self.path.with_name(f"{self.path.name or 'data'}-store")
                raise UserInputError(
                    f"{self.path} holds images, not a slice store (no store.json); build a store from it first: "
                    f"`mri-harmonic preprocess {self.path} {store}`, then pass {store}"
                )
            raise UserInputError(
                f"{self.path} is not a slice store (no store.json); build one with `mri-harmonic preprocess DATA_DIR {self.path}`"
            )
        try:
            self.meta: dict[str, Any] = json.loads(meta_file.read_text())
        except json.JSONDecodeError:
            raise UserInputError(f"{meta_file} is corrupt; rebuild the store with `mri-harmonic preprocess`") from None
        if self.meta.get("format") != FORMAT or not self.meta.get("complete"):
            raise UserInputError(f"{self.path} is not a complete slice store; rerun `mri-harmonic preprocess` to finish it")
        if self.meta.get("version") != FORMAT_VERSION:
            raise UserInputError(
                f"{self.path} has store format {self.meta.get('version')}, this version reads {FORMAT_VERSION}; rebuild it with `mri-harmonic preprocess`"
            )
        self._arrays: dict[tuple[str, str], np.ndarray] = {}

    # ---- metadata -------------------------------------------------------------------------------------------
    @property
    def modalities(self) -> list[str]:
        return list(self.meta["modalities"])

    @property
    def splits(self) -> list[str]:
        return [s for s, m in self.meta["splits"].items() if m["n_slices"] > 0]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.meta["image_size"])  # type: ignore[return-value]

    @property
    def config_hash(self) -> str:
        return self.meta["config_hash"]

    @cached_property
    def fingerprint(self) -> str:
        """16 hex digits identifying this store's content: a hash of its ``store_id`` (new at every build), its
        manifest and the header (dtype, shape) of every array. Independent of where the store lies; cheap (no
        array data is read)."""
        h = hashlib.sha256(str(self.meta.get("store_id", "")).encode())
        h.update((self.path / "manifest.csv").read_bytes())
        for split in sorted(self.meta["splits"]):
            for name in [*self.modalities, *EXTRA_ARRAYS]:
                npy = self.path / split / f"{name}.npy"
                if npy.is_file():
                    with open(npy, "rb") as fh:
                        major, _ = np.lib.format.read_magic(fh)
                        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                        shape, fortran, dtype = read(fh)
                    h.update(f"{split}/{name}:{dtype.str}:{shape}:{fortran};".encode())
        return h.hexdigest()[:16]

    @property
    def unpaired_halves(self) -> bool:
        return bool(self.meta.get("unpaired_halves", False))

    @cached_property
    def config(self) -> dict[str, Any]:
        import yaml

        return yaml.safe_load((self.path / "config.yaml").read_text()) or {}

    @cached_property
    def manifest(self) -> pd.DataFrame:
        return pd.read_csv(self.path / "manifest.csv", dtype={"subject": str})

    @cached_property
    def subjects(self) -> dict[str, dict[str, Any]]:
        return json.loads((self.path / "subjects.json").read_text())

    @cached_property
    def skipped(self) -> pd.DataFrame:
        return pd.read_csv(self.path / "skipped.csv", dtype=str)

    def split_manifest(self, split: str) -> pd.DataFrame:
        self.require(split=split)
        return self.manifest[self.manifest["split"] == split].sort_values("row").reset_index(drop=True)

    def geometry(self, subject: str) -> dict[str, Any]:
        try:
            return self.subjects[subject]
        except KeyError:
            raise UserInputError(f"subject {subject!r} is not in store {self.path}") from None

    # ---- arrays ---------------------------------------------------------------------------------------------
    def array(self, split: str, name: str) -> np.ndarray:
        """Memory-mapped ``(N, H, W)`` array of ``name`` (a modality, ``mask`` or ``seg``) in ``split``."""
        key = (split, name)
        if key not in self._arrays:
            self.require(split=split, modalities=[name] if name not in EXTRA_ARRAYS else None)
            self._arrays[key] = np.load(self.path / split / f"{name}.npy", mmap_mode="r")
        return self._arrays[key]

    def require(self, split: str | None = None, modalities: list[str] | tuple[str, ...] | None = None) -> SliceStore:
        """Raise a one-line error unless the store has ``split`` (with slices) and all ``modalities``."""
        if split is not None and split not in self.splits:
            raise UserInputError(
                f"store {self.path} has no slices in split '{split}' (it has: {', '.join(self.splits) or 'none'}); "
                "rebuild it with other split fractions or pick another split"
            )
        for m in modalities or []:
            if m not in self.modalities:
                raise UserInputError(
                    f"store {self.path} has no modality '{m}' (it has: {', '.join(self.modalities)}); "
                    f"rebuild it with `overrides` modalities=[...,{m}]"
                )
        return self

    def __repr__(self) -> str:
        counts = ", ".join(f"{s}={m['n_slices']}" for s, m in self.meta["splits"].items())
        return f"SliceStore({str(self.path)!r}, modalities={self.modalities}, size={self.image_size}, {counts})"

    def __getstate__(self) -> dict[str, Any]:  # picklable for DataLoader workers: drop open memory maps
        state = self.__dict__.copy()
        state["_arrays"] = {}
        return state

