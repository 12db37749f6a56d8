"""Shared plumbing for the pipelines: run CLI steps with timing, record versions, skip finished steps."""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "mri_harmonic.cli"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run_cli(args: Sequence[str], *, threads: int | None = None, log_file: Path | None = None) -> float:
    """Run ``mri-harmonic ARGS`` in a subprocess; return wall seconds; raise SystemExit on failure."""
    env = dict(os.environ)
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), MRI_HARMONIC_THREADS=str(threads))
    cmd = [*CLI, *map(str, args)]
    log("$ mri-harmonic " + " ".join(shlex.quote(str(a)) for a in args))
    t0 = time.perf_counter()
    if log_file is None:
        proc = subprocess.run(cmd, cwd=ROOT, env=env)
    else:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "ab") as fh:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        where = f" (log: {log_file})" if log_file else ""
        raise SystemExit(f"step failed with exit code {proc.returncode}: mri-harmonic {' '.join(map(str, args))}{where}")
    return time.perf_counter() - t0


def start_cli(args: Sequence[str], *, threads: int, log_file: Path) -> subprocess.Popen:
    """Start ``mri-harmonic ARGS`` in the background with ``threads`` CPU threads, output to ``log_file``."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), MRI_HARMONIC_THREADS=str(threads))
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log("$ mri-harmonic " + " ".join(shlex.quote(str(a)) for a in args) + f"  (log: {log_file})")
    fh = open(log_file, "ab")
    return subprocess.Popen([*CLI, *map(str, args)], cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)


def versions() -> dict[str, str]:
    """Versions of the interpreter, platform and the libraries results depend on."""
    import importlib.metadata as md

    out = {"python": platform.python_version(), "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
           "cpu_count": str(os.cpu_count())}
    for pkg in ("mri-harmonic", "torch", "monai", "numpy", "nibabel", "SimpleITK", "scikit-image", "pandas", "nilearn"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    try:
        import torch

        out["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    except Exception:  # pragma: no cover
        pass
    return out


def write_json(path: Path, obj) -> None:
    from mri_harmonic.utils.io import atomic_write_json

    atomic_write_json(path, obj)


def read_json(path: Path, default=None):
    return json.loads(path.read_text()) if path.is_file() else default
