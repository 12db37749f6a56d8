"""BraTS / MSD NIfTI folder -> slice store: :func:`preprocess` (``mri-harmonic preprocess``).

Steps: :func:`~mri_harmonic.data.layouts.discover` the cases; run the shared transform chain
(:func:`mri_harmonic.data.transforms.build_transforms`) on every subject in parallel; keep axial slices whose brain
covers at least ``min_brain_fraction`` of the slice; assign each SURVIVING subject a split (seeded, by subject, so
no subject's neighbouring slices leak across splits) and a balanced ``half`` (0/1) for unpaired training; write the
store with :func:`~mri_harmonic.data.store.write_store`. A split that ``split_fractions`` asks for but that would
be empty (too few subjects survived) is a one-line error; the finished subjects are kept for the rerun.

Bad input never stops the run silently or loses work: a subject with a missing modality, a corrupt or truncated
file, modalities on different grids, an all-zero image or NaNs is skipped with a one-line reason (listed in the
summary and ``skipped.csv``); with ``strict=True`` the first one stops the run with that reason.

Resume: every finished subject is saved atomically under ``STORE.partial/`` (arrays ``subjects/<id>.npz`` and
``subjects/<id>.json``, the json written last, with the source files' sizes and modification times). Run the same
command again after a crash and only the missing subjects are processed. The partial folder records the config
hash (of the settings that shape the arrays: the split keys are left out, as splits are assigned at the end) and
data folder; another config there is an error unless ``overwrite``. The final store is built in a
temporary folder and renamed into place, then the partial folder is removed. A complete store built with the same
config from the same folder is left as it is ("already up to date"; pass ``overwrite`` to rebuild it after the
data changed); one built with another config is replaced only with ``overwrite``.

From Python, :func:`compute_slices` returns the arrays and tables without writing a store (a
:class:`PreprocessResult`) and :func:`write_slices` writes one; :func:`preprocess` is the two with the bookkeeping
above.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from mri_harmonic.config import config_hash, dump_config, to_dict
from mri_harmonic.data.config import SPLIT_NAMES, PreprocessConfig
from mri_harmonic.data.layouts import Case, discover
from mri_harmonic.errors import UserInputError
from mri_harmonic.utils.io import atomic_write_json, ensure_writable_dir, remove_stale_temporaries

PARTIAL_SUFFIX = ".partial"
#: stores up to this size are concatenated in RAM before writing; larger ones through memory-mapped files
ASSEMBLE_IN_MEMORY_BYTES = 512 * 2**20
SLICE_ORIENTATION = (
    "slice z of the RAS volume V (X, Y, Z) is S[z, i, j] = V[j + col0, Y - 1 - (i + row0), z]: rows anterior -> "
    "posterior, columns patient left -> right"
)


# ---------------------------------------------------------------------------------------------------------------
# splits
# ---------------------------------------------------------------------------------------------------------------
def split_counts(n: int, fractions: list[float]) -> list[int]:
    """Subjects per split: largest-remainder rounding of ``n * fractions``; every split with a positive fraction
    gets at least one subject when there are enough subjects (taken from the largest split)."""
    raw = np.asarray(fractions, dtype=float) * n
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    positive = [i for i, f in enumerate(fractions) if f > 0]
    if n >= len(positive):
        for i in positive:
            if counts[i] == 0:
                counts[int(np.argmax(counts))] -= 1
                counts[i] = 1
    return counts.tolist()


#: split recorded by a worker; the real one is assigned once every subject is done (over the survivors)
UNASSIGNED = "unassigned"
SPLIT_KEYS = ("split_fractions", "split_seed", "seed", "unpaired_halves")


def work_hash(config: PreprocessConfig) -> str:
    """Hash of the settings that shape a subject's arrays (the config without :data:`SPLIT_KEYS`): the resume
    folder is keyed by it, so a rerun with other split fractions reuses every finished subject."""
    defaults = PreprocessConfig()
    return config_hash(replace(config, **{k: getattr(defaults, k) for k in SPLIT_KEYS}))


def _require_splits(assignment: dict[str, tuple[str, int]], config: PreprocessConfig, found: int, skipped: int) -> None:
    """One-line error when a split with a positive fraction got no subject."""
    counts = {s: sum(1 for split, _ in assignment.values() if split == s) for s in SPLIT_NAMES}
    empty = [s for s, f in zip(SPLIT_NAMES, config.split_fractions) if f > 0 and counts[s] == 0]
    if empty:
        have = ", ".join(f"{s} {counts[s]}" for s in SPLIT_NAMES)
        zeroed = [0 if s in empty else f for s, f in zip(SPLIT_NAMES, config.split_fractions)]
        zeroed[0] += 1 - sum(zeroed)
        raise UserInputError(
            f"{'splits' if len(empty) > 1 else 'split'} {' and '.join(empty)} would be empty: {len(assignment)} of {found} subjects survived ({skipped} "
            f"skipped), split_fractions {config.split_fractions} gives {have}; add subjects, or rerun with `overrides` "
            f"split_fractions=[{', '.join(f'{v:g}' for v in zeroed)}] (finished subjects are reused)"
        )


def assign_splits(subjects: list[str], config: PreprocessConfig) -> dict[str, tuple[str, int]]:
    """``subject -> (split, half)``: a seeded permutation (``split_seed``) of the sorted subjects cut by
    ``split_fractions``; within each split a seeded (``seed``) order alternates half 0 / 1, so both halves hold
    (nearly) equally many subjects."""
    ids = sorted(subjects)
    order = [ids[i] for i in np.random.default_rng(config.split_seed).permutation(len(ids))]
    out: dict[str, tuple[str, int]] = {}
    start = 0
    for k, (split, count) in enumerate(zip(SPLIT_NAMES, split_counts(len(ids), config.split_fractions))):
        members = sorted(order[start : start + count])
        start += count
        for pos, i in enumerate(np.random.default_rng([config.seed, k]).permutation(len(members))):
            out[members[i]] = (split, pos % 2)
    return out


# ---------------------------------------------------------------------------------------------------------------
# one subject (runs in a worker process)
# ---------------------------------------------------------------------------------------------------------------
def fingerprint(case: Case) -> dict[str, list[int]]:
    """Size and modification time of each source file (of a DICOM series folder: the total size and the latest
    time of its files): a resumed run redoes a subject whose files changed."""
    out = {}
    for p in case.files():
        stats = [os.stat(f) for f in sorted(Path(p).iterdir()) if f.is_file()] if Path(p).is_dir() else [os.stat(p)]
        out[str(p)] = [sum(int(st.st_size) for st in stats), max((int(st.st_mtime_ns) for st in stats), default=0)]
    return out


def _subject_files(partial: Path, subject: str) -> tuple[Path, Path]:
    return partial / "subjects" / f"{subject}.npz", partial / "subjects" / f"{subject}.json"


def process_subject(case: Case, config: PreprocessConfig, split: str, half: int, partial: Path) -> dict[str, Any]:
    """Preprocess one subject and save its kept slices under ``partial/subjects/``.

    Returns ``{"subject", "status": "ok", "n_slices"}`` or ``{"subject", "status": "skipped", "path", "reason"}``.
    """
    from mri_harmonic.data.geometry import case_geometry
    from mri_harmonic.data.transforms import MASK, SEG, BadSubjectError, run_chain

    try:
        data = run_chain(case, config)
    except BadSubjectError as exc:
        return {"subject": case.subject, "status": "skipped", "path": exc.path, "reason": exc.reason}
    mask = data[MASK]
    brain = mask.reshape(mask.shape[0], -1).mean(axis=1)
    keep = np.flatnonzero((brain >= config.min_brain_fraction) & (brain > 0))
    if keep.size == 0:
        return {
            "subject": case.subject, "status": "skipped", "path": str(case.folder),
            "reason": f"no axial slice has a brain fraction >= {config.min_brain_fraction} (largest {brain.max():.3f}); "
            "lower min_brain_fraction or in_plane_size",
        }
    seg = data[SEG][keep] if SEG in data else np.zeros((keep.size, *mask.shape[1:]), dtype=np.uint8)
    kept_mask = mask[keep]
    brain_px = kept_mask.sum(axis=(1, 2))
    tumour = ((seg > 0) & kept_mask).sum(axis=(1, 2)) / np.maximum(brain_px, 1)
    arrays = {m: _cast(data[m][keep], config.dtype) for m in config.modalities}
    arrays[MASK] = kept_mask.astype(np.uint8)
    arrays[SEG] = seg.astype(np.uint8)
    geometry = case_geometry(case, data["geometry"])
    geometry.update(kept_slices=keep.tolist(), split=split, half=int(half), has_seg=SEG in data)
    npz, meta = _subject_files(partial, case.subject)
    npz.parent.mkdir(parents=True, exist_ok=True)
    # rename makes each file all-or-nothing for a killed run; no fsync: the resume folder is scratch (the final
    # store is written by write_store), and the json, written last, marks the subject complete
    tmp = npz.with_name(f".{npz.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, npz)
    _write_json_scratch(meta, {
        "subject": case.subject,
        "fingerprint": fingerprint(case),
        "geometry": geometry,
        "slices": {"slice_index": keep.tolist(), "brain_fraction": brain[keep].tolist(), "tumour_fraction": tumour.tolist()},
    })
    return {"subject": case.subject, "status": "ok", "n_slices": int(keep.size)}


def _cast(a: np.ndarray, dtype: str) -> np.ndarray:
    """float32 -> ``dtype``; torch converts to float16 several times faster than NumPy (vectorised)."""
    if dtype == "float16":
        import torch

        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(torch.float16).numpy()
    return a.astype(dtype, copy=False)


def _write_json_scratch(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj) + "\n")
    os.replace(tmp, path)


def _init_worker(parent: int | None = None) -> None:
    """Worker set-up: one torch thread, and the worker ends with its parent (``parent``: its pid), even when the
    parent is killed (SIGKILL): Linux's ``PR_SET_PDEATHSIG`` sends it SIGTERM, and elsewhere a watchdog thread
    exits once the parent is gone."""
    import threading

    import torch

    torch.set_num_threads(1)
    if parent is None:
        return
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent handles it
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler (inherited through fork)
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate a pool's worker processes now (an interrupted run must not wait for their current subjects)."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            proc.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------------------------------------------------------
# store / partial folder bookkeeping
# ---------------------------------------------------------------------------------------------------------------
def partial_dir_for(store_dir: str | os.PathLike) -> Path:
    """The resume folder beside ``store_dir``: ``STORE.partial``."""
    store_dir = Path(store_dir)
    return store_dir.with_name(store_dir.name + PARTIAL_SUFFIX)


def _existing_store(store_dir: Path, chash: str, data_key: str, overwrite: bool) -> dict | None:
    """store.json of an up-to-date store, None when a (re)build is needed; error for a store we may not replace."""
    if not store_dir.exists():
        return None
    if not store_dir.is_dir():
        raise UserInputError(f"STORE {store_dir} is a file; choose a folder path for the slice store")
    meta_file = store_dir / "store.json"
    if not meta_file.is_file():
        if any(store_dir.iterdir()):
            raise UserInputError(f"STORE {store_dir} exists and is not a slice store (no store.json); choose another path or remove the folder")
        return None
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, json.JSONDecodeError):
        meta = {}
    if meta.get("complete") and meta.get("config_hash") == chash and meta.get("data_dir") == data_key:
        return meta
    if overwrite:
        return None
    if meta.get("config_hash") != chash:
        why = f"with another config (hash {meta.get('config_hash')}, this config {chash})"
    else:
        why = f"from another data folder ({meta.get('data_dir')})"
    raise UserInputError(f"store {store_dir} was built {why}; pass `overwrite=True` to rebuild it, or choose another STORE")


def _open_partial(partial: Path, chash: str, data_key: str, config: PreprocessConfig, overwrite: bool) -> None:
    state_file = partial / "state.json"
    if partial.exists():
        try:
            state = json.loads(state_file.read_text())
        except (OSError, json.JSONDecodeError):
            state = {}
        if state.get("config_hash") == chash and state.get("data_dir") == data_key:
            for tmp in (partial / "subjects").glob(".*.tmp*"):  # files a killed worker was writing
                tmp.unlink(missing_ok=True)
            return
        if not overwrite:
            raise UserInputError(
                f"{partial} holds an interrupted run with another config or data folder (hash {state.get('config_hash')}, "
                f"this run {chash}); pass `overwrite=True` to discard it, or rerun with the config it was started with"
            )
        shutil.rmtree(partial)
    ensure_writable_dir(partial, "resume folder")
    dump_config(config, partial / "config.yaml")
    atomic_write_json(state_file, {"config_hash": chash, "data_dir": data_key})


def _finished(partial: Path, case: Case) -> dict | None:
    """The saved metadata of ``case`` when its partial result is complete and its source files are unchanged."""
    npz, meta_file = _subject_files(partial, case.subject)
    if not (npz.is_file() and meta_file.is_file()):
        return None
    try:
        meta = json.loads(meta_file.read_text())
        return meta if meta.get("fingerprint") == fingerprint(case) else None
    except (OSError, json.JSONDecodeError):
        return None


def _assemble(partial: Path, metas: dict[str, dict], config: PreprocessConfig, in_memory: bool | None = None) -> tuple[dict, pd.DataFrame, dict]:
    """Concatenate the saved subjects of each split into (memory-mapped) arrays, the manifest and subjects.json;
    ``in_memory`` (default: by size, :data:`ASSEMBLE_IN_MEMORY_BYTES`) forces or forbids RAM arrays."""
    size = config.in_plane_size
    names = [*config.modalities, "mask", "seg"]
    dtypes = {**{m: np.dtype(config.dtype) for m in config.modalities}, "mask": np.dtype(np.uint8), "seg": np.dtype(np.uint8)}
    work = partial / "assemble"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    arrays: dict[str, dict[str, np.ndarray]] = {}
    rows: list[dict[str, Any]] = []
    subjects: dict[str, dict] = {}
    n_total = sum(len(m["slices"]["slice_index"]) for m in metas.values())
    if in_memory is None:
        in_memory = n_total * size * size * sum(d.itemsize for d in dtypes.values()) <= ASSEMBLE_IN_MEMORY_BYTES
    for split in SPLIT_NAMES:
        members = sorted(s for s, m in metas.items() if m["geometry"]["split"] == split)
        n = sum(len(metas[s]["slices"]["slice_index"]) for s in members)
        if n == 0:
            arrays[split] = {k: np.zeros((0, size, size), dtype=dtypes[k]) for k in names}
            continue
        if in_memory:
            arrays[split] = {k: np.empty((n, size, size), dtype=dtypes[k]) for k in names}
        else:  # large stores are assembled in memory-mapped files so that RAM use stays flat
            arrays[split] = {k: np.lib.format.open_memmap(work / f"{split}_{k}.npy", mode="w+", dtype=dtypes[k], shape=(n, size, size)) for k in names}
        row = 0
        for s in members:
            meta = metas[s]
            sl = meta["slices"]
            k = len(sl["slice_index"])
            with np.load(_subject_files(partial, s)[0]) as z:
                for name in names:
                    arrays[split][name][row : row + k] = z[name]
            half = meta["geometry"]["half"]
            for j in range(k):
                rows.append(dict(split=split, row=row + j, subject=s, slice_index=sl["slice_index"][j],
                                 brain_fraction=round(sl["brain_fraction"][j], 6),
                                 tumour_fraction=round(sl["tumour_fraction"][j], 6), half=half))
            subjects[s] = {**meta["geometry"], "rows": [row, row + k]}
            row += k
    return arrays, pd.DataFrame(rows, columns=["split", "row", "subject", "slice_index", "brain_fraction", "tumour_fraction", "half"]), subjects


# ---------------------------------------------------------------------------------------------------------------
# the pipeline
# ---------------------------------------------------------------------------------------------------------------
def preprocess(
    data_dir: str | os.PathLike,
    store_dir: str | os.PathLike,
    config: PreprocessConfig | None = None,
    workers: int | None = None,
    strict: bool = False,
    progress: bool = True,
    *,
    overwrite: bool = False,
    on_subject_done: Callable[[dict], None] | None = None,
) -> dict[str, Any]:
    """Build the slice store ``store_dir`` from the BraTS / MSD cases under ``data_dir``.

    Args:
        data_dir: folder of cases in any layout :func:`~mri_harmonic.data.layouts.discover` understands.
        store_dir: the store folder to write (see :mod:`mri_harmonic.data.store`).
        config: settings (defaults: ``PreprocessConfig()``).
        workers: processes (default: CPU count, at most 8); 1 runs in this process.
        strict: stop at the first bad subject with a one-line :class:`UserInputError` instead of skipping it.
        progress: show a tqdm bar.
        overwrite: replace a store (or discard a resume folder) built with another config or data folder.
        on_subject_done: called in this process with each subject's result dict as it finishes (progress hooks;
            tests raise from it to simulate an interrupted run).

    Returns:
        A summary dict: ``status`` ("built" or "up_to_date"), ``subjects_found``, ``subjects_stored``,
        ``subjects_processed`` (this run), ``subjects_reused`` (from an interrupted run), ``skipped`` (list of
        subject/path/reason), ``splits`` {split: {subjects, slices}}, ``seconds``, ``subjects_per_second``,
        ``config_hash``, ``store``.
    """
    partial = partial_dir_for(store_dir)
    try:
        return _preprocess(data_dir, store_dir, config, workers, strict, progress, overwrite, on_subject_done)
    except BaseException:
        # a failed or interrupted run keeps what can be resumed; a resume folder with no finished subject goes
        with contextlib.suppress(OSError):
            if partial.is_dir() and not any((partial / "subjects").glob("*.json")):
                shutil.rmtree(partial)
        raise


def _preprocess(data_dir, store_dir, config, workers, strict, progress, overwrite, on_subject_done) -> dict[str, Any]:
    t0 = time.perf_counter()
    config = config if config is not None else PreprocessConfig()
    data_dir, store_dir = Path(data_dir), Path(store_dir)
    chash = config_hash(config)
    _require_data_dir(data_dir)
    data_key = str(data_dir.resolve())
    meta = _existing_store(store_dir, chash, data_key, overwrite)
    if meta is not None:
        return {**meta.get("summary", {}), "status": "up_to_date", "store": str(store_dir), "config_hash": chash,
                "seconds": round(time.perf_counter() - t0, 3)}
    ensure_writable_dir(store_dir.parent, "STORE's parent folder")
    remove_stale_temporaries(store_dir)  # what a killed run left of its final write
    partial = partial_dir_for(store_dir)
    result = _compute_slices(data_dir, partial, config, workers, strict, progress, overwrite, on_subject_done, None, t0)
    summary = write_slices(result, store_dir)
    del result  # the arrays may be memory-mapped files in the partial folder
    shutil.rmtree(partial, ignore_errors=True)
    return summary


def _require_data_dir(data_dir: Path) -> None:
    if not data_dir.is_dir():
        raise UserInputError(f"data folder {data_dir} does not exist or is not a folder; pass the folder holding the BraTS/MSD cases")


@dataclass
class PreprocessResult:
    """What :func:`compute_slices` returns and :func:`write_slices` writes as a slice store (:mod:`.store`)."""

    arrays: dict[str, dict[str, np.ndarray]]  # split -> modality / "mask" / "seg" -> (N, H, W), rows of the manifest
    manifest: pd.DataFrame  # one row per slice: split, row, subject, slice_index, brain/tumour fraction, half
    subjects: dict[str, dict]  # subject -> geometry, split, half, rows (subjects.json)
    skipped: pd.DataFrame  # subject, path, reason (skipped.csv)
    summary: dict[str, Any]  # as :func:`preprocess` returns it, with status "computed" and store None until written
    config: PreprocessConfig


def compute_slices(
    data_dir: str | os.PathLike,
    config: PreprocessConfig | None = None,
    workers: int | None = None,
    strict: bool = False,
    progress: bool = True,
    *,
    partial: str | os.PathLike | None = None,
    overwrite: bool = False,
    on_subject_done: Callable[[dict], None] | None = None,
) -> PreprocessResult:
    """The computing core of :func:`preprocess`: the slices of the cases under ``data_dir``, in memory; no store.

    Arguments as :func:`preprocess`. ``partial``: a resume folder keeping every finished subject (a rerun reuses
    them; ``overwrite`` discards one of another config); the arrays of a large result are then memory-mapped files
    in it. ``None`` (default): the workers hand their subjects over in a temporary folder that is removed before
    this returns, and the arrays are in RAM.
    """
    t0 = time.perf_counter()
    config = config if config is not None else PreprocessConfig()
    data_dir = Path(data_dir)
    _require_data_dir(data_dir)
    if partial is not None:
        return _compute_slices(data_dir, Path(partial), config, workers, strict, progress, overwrite, on_subject_done, None, t0)
    with tempfile.TemporaryDirectory(prefix="mri-harmonic-preprocess-") as scratch:
        return _compute_slices(data_dir, Path(scratch) / "partial", config, workers, strict, progress, overwrite,
                               on_subject_done, True, t0)


def _compute_slices(data_dir, partial, config, workers, strict, progress, overwrite, on_subject_done, in_memory, t0) -> PreprocessResult:
    from tqdm.auto import tqdm

    chash = config_hash(config)
    data_key = str(data_dir.resolve())
    cases = discover(data_dir)
    _open_partial(partial, work_hash(config), data_key, config, overwrite)

    metas: dict[str, dict] = {}
    todo: list[Case] = []
    for case in cases:
        done = _finished(partial, case)
        if done is not None:  # arrays do not depend on the split, which is assigned at the end
            metas[case.subject] = done
        else:
            todo.append(case)
    reused = len(metas)
    skipped: list[dict[str, str]] = []

    def handle(result: dict) -> None:
        if result["status"] == "ok":
            metas[result["subject"]] = json.loads(_subject_files(partial, result["subject"])[1].read_text())
        else:
            if strict:
                raise UserInputError(
                    f"{result['path']}: {result['reason']} (subject {result['subject']}; fix or remove it, or run without `strict` to skip it)"
                )
            skipped.append({"subject": result["subject"], "path": result["path"], "reason": result["reason"]})
        if on_subject_done is not None:
            on_subject_done(result)

    n_workers = max(1, min(workers or min(os.cpu_count() or 1, 8), len(todo)))
    if todo:  # import MONAI once here (seconds), not in every forked worker, and outside the timed work
        import mri_harmonic.data.transforms  # noqa: F401
    t_work = time.perf_counter()
    if n_workers == 1:
        bar = tqdm(total=len(todo), desc="preprocess", unit="subject", disable=not progress)
        try:
            for case in todo:
                handle(process_subject(case, config, UNASSIGNED, 0, partial))
                bar.update()
        finally:
            bar.close()
    else:
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
        pool = ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_init_worker, initargs=(os.getpid(),))
        try:
            futures = [pool.submit(process_subject, c, config, UNASSIGNED, 0, partial) for c in todo]
            with tqdm(total=len(todo), desc="preprocess", unit="subject", disable=not progress) as bar:
                for fut in as_completed(futures):
                    handle(fut.result())
                    bar.update()
        except BaseException:
            _stop_workers(pool)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    work_seconds = time.perf_counter() - t_work

    if not metas:
        reasons = "; ".join(f"{s['subject']}: {s['path']}: {s['reason']}" for s in skipped[:3])
        raise UserInputError(f"no subject under {data_dir} could be preprocessed ({len(skipped)} skipped: {reasons})")
    assignment = assign_splits(list(metas), config)
    _require_splits(assignment, config, len(cases), len(skipped))
    for subject, meta in metas.items():
        meta["geometry"]["split"], meta["geometry"]["half"] = assignment[subject]
    arrays, manifest, subjects = _assemble(partial, metas, config, in_memory)
    splits = {
        s: {"subjects": int(sum(1 for g in subjects.values() if g["split"] == s)), "slices": int((manifest["split"] == s).sum())}
        for s in SPLIT_NAMES
    }
    summary = {
        "status": "computed",
        "store": None,
        "data_dir": data_key,
        "config_hash": chash,
        "subjects_found": len(cases),
        "subjects_stored": len(metas),
        "subjects_processed": len(todo),
        "subjects_reused": reused,
        "skipped": skipped,
        "splits": splits,
        "workers": n_workers,
        "seconds": 0.0,
        "subjects_per_second": round(len(todo) / work_seconds, 3) if todo and work_seconds > 0 else None,
    }
    skipped_df = pd.DataFrame(skipped, columns=["subject", "path", "reason"])
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    return PreprocessResult(arrays=arrays, manifest=manifest, subjects=subjects, skipped=skipped_df, summary=summary,
                            config=config)


def write_slices(result: PreprocessResult, store_dir: str | os.PathLike) -> dict[str, Any]:
    """Write ``result`` (:func:`compute_slices`) as the slice store ``store_dir`` (atomically; an old store there
    is replaced); returns its summary (status "built")."""
    from mri_harmonic.data.store import write_store

    t_write = time.perf_counter()
    config = result.config
    summary = result.summary
    summary.update(status="built", store=str(store_dir))
    write_store(
        store_dir, arrays=result.arrays, manifest=result.manifest, subjects=result.subjects, config=to_dict(config),
        config_hash=summary["config_hash"], modalities=list(config.modalities), skipped=result.skipped,
        extra_meta={"unpaired_halves": bool(config.unpaired_halves), "data_dir": summary["data_dir"], "label_convention": "brats2021",
                    "slice_orientation": SLICE_ORIENTATION, "summary": summary},
    )
    summary["seconds"] = round(summary["seconds"] + time.perf_counter() - t_write, 3)
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """Human-readable lines for the CLI."""
    if summary["status"] == "up_to_date":
        return f"store {summary['store']} is already up to date (config hash {summary['config_hash']}); nothing to do"
    rate = summary.get("subjects_per_second")
    lines = [
        f"preprocessed {summary['subjects_processed']} subject(s) in {summary['seconds']:.1f} s"
        + (f" ({rate:.2f} subjects/s, {summary['workers']} worker(s))" if rate else "")
        + (f"; reused {summary['subjects_reused']} from an interrupted run" if summary["subjects_reused"] else ""),
        "  " + " | ".join(f"{s}: {v['subjects']} subjects, {v['slices']} slices" for s, v in summary["splits"].items()),
    ]
    if summary["skipped"]:
        lines.append(f"  skipped {len(summary['skipped'])} subject(s) (also in skipped.csv):")
        lines += [f"    {s['subject']}: {s['path']}: {s['reason']}" for s in summary["skipped"]]
    lines.append(f"store: {summary['store']} (config hash {summary['config_hash']}, {summary['subjects_stored']} subjects)")
    return "\n".join(lines)
