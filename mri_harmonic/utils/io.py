"""Atomic writes: a file either has its old content or its complete new content, never half of one.

Every writer goes to a temporary file in the same folder, flushes and fsyncs it, then ``os.replace``s it over the
target (atomic on POSIX within one file system). Folders are made atomic the same way via :func:`atomic_dir`;
:func:`remove_stale_temporaries` removes what a killed process left of them, and :func:`removed_on_error` the
empty folders a failed command created.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from mri_harmonic.errors import UserInputError

OWNER_FILE = ".owner-pid"


def ensure_writable_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Create ``path`` (and parents) and check that we can write into it; raise a one-line error otherwise."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as exc:
        raise UserInputError(
            f"cannot write to {what} {path}: {exc.strerror or exc}; choose a folder you can write to"
        ) from None
    return path


@contextlib.contextmanager
def removed_on_error(*folders: str | os.PathLike) -> Iterator[None]:
    """On an exception, remove those of ``folders`` (and their parents) that did not exist on entry and are empty
    on exit: a failed command leaves no empty output folder behind. Folders holding anything are kept."""
    created = []
    for folder in folders:
        path = Path(folder).absolute()
        chain = []
        while not path.exists() and path != path.parent:
            chain.append(path)
            path = path.parent
        created.append(chain)  # deepest first
    try:
        yield
    except BaseException:
        for chain in created:
            for path in chain:
                try:
                    path.rmdir()  # only if empty
                except OSError:
                    break
        raise


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``, on error it is removed.

    ``suffix`` defaults to the target's own suffix so that libraries choosing a format from the extension
    (``np.save``, ``nib.save``, ``plt.savefig``) keep working.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = "".join(target.suffixes)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=f".tmp{suffix}")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_text(target: str | os.PathLike, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def atomic_write_json(target: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(target, json.dumps(obj, indent=2, sort_keys=False, default=json_default) + "\n")


def atomic_write_csv(target: str | os.PathLike, frame: Any, **kwargs: Any) -> Path:
    """Write a pandas DataFrame as CSV atomically (``index=False`` unless given)."""
    kwargs.setdefault("index", False)
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, **kwargs)
    return Path(target)


def atomic_torch_save(obj: Any, target: str | os.PathLike) -> Path:
    import torch

    with atomic_path(target) as tmp:
        torch.save(obj, tmp)
    return Path(target)


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Build a folder under a temporary name and rename it into place when complete.

    An existing ``target`` is replaced only after the new one is complete (old one moved aside, then deleted).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the folder the usual permissions
    (tmp / OWNER_FILE).write_text(f"{os.getpid()}\n")  # lets remove_stale_temporaries tell a live build from a dead one
    try:
        yield tmp
        (tmp / OWNER_FILE).unlink()
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale_temporaries(target: str | os.PathLike) -> list[Path]:
    """Remove the temporary folders :func:`atomic_dir` left beside ``target`` when its process was killed
    (``.NAME.tmp-*`` and ``.NAME.old-PID`` whose process is gone). Returns the removed paths."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    removed = []
    for p in target.parent.glob(f".{target.name}.*"):
        name = p.name[len(target.name) + 2 :]
        if not p.is_dir() or not (name.startswith("tmp-") or name.startswith("old-")):
            continue
        if name.startswith("old-") and name[4:].isdigit() and _process_alive(int(name[4:])):
            continue
        if name.startswith("tmp-") and _owner_alive(p):
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_alive(tmp: Path) -> bool:
    """Whether the process that is building ``tmp`` (its pid in ``tmp/.owner``) still runs."""
    try:
        return _process_alive(int((tmp / OWNER_FILE).read_text().strip()))
    except (OSError, ValueError):
        return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def json_default(obj: Any) -> Any:
    """``json.dumps(default=...)`` for numpy scalars and arrays and paths."""
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
