"""Benchmark ``mri-harmonic translate``: one 240x240x155 volume (BraTS size, 1 mm) through the translate path.

For each model size -- the ``phantom-cpu`` preset (its model and preprocess configs, e.g. 2 mm slices) and the
paper's (ResNet-9, ngf 64, 256x256 slices at 1 mm; HarmonicGAN / CycleGAN reference) -- and each device (CPU; CUDA
with bf16 autocast when present) it reports:

- ``prepare_s``: :func:`prepare_volume` (load, RAS, resample, normalise, crop) of the source volume;
- ``model_slices_per_s``: generator throughput over the volume's axial slices (batched, inference mode);
- ``restore_save_s``: :func:`restore_volume` onto the source grid + writing the NIfTI;
- ``seconds_per_volume``: the sum (end-to-end :func:`translate_file` time is also measured when the model runs
  on the whole volume).

Generators are randomly initialised (weights do not change the cost). On a CPU, the paper-size model is timed on
``--paper-cpu-slices`` slices and extrapolated to the volume (marked ``extrapolated``), because the full volume
takes minutes there; ``--full`` runs it on every slice.

    .venv/bin/python pipelines/benchmarks/bench_translate.py [--threads 2] [--full] [--out reports/benchmarks]

Writes ``translate.md`` and ``translate.json`` in ``--out``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SHAPE = (240, 240, 155)


def write_volume(path: Path) -> Path:
    """A BraTS-sized 1 mm volume: ellipsoid brain with smooth texture, LPS-like affine as BraTS files have."""
    import nibabel as nib

    rng = np.random.default_rng(0)
    i, j, k = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    brain = ((i - 120) / 70.0) ** 2 + ((j - 120) / 85.0) ** 2 + ((k - 75) / 65.0) ** 2 < 1
    tex = 300 + 80 * np.sin(i / 7.0) * np.cos(j / 9.0) + 40 * np.sin(k / 5.0)
    data = np.where(brain, tex + rng.normal(0, 10, SHAPE), 0).astype(np.float32)
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    affine[:3, 3] = [120.0, 120.0, -75.0]
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def presets():
    """(name, ModelConfig, PreprocessConfig, source of the settings) for the two model sizes."""
    from mri_harmonic.config import load_config
    from mri_harmonic.data.config import PreprocessConfig
    from mri_harmonic.models.config import ModelConfig

    out = []
    train_yaml, pre_yaml = ROOT / "configs" / "phantom-cpu.yaml", ROOT / "configs" / "preprocess-phantom.yaml"
    if train_yaml.is_file():
        from mri_harmonic.training.config import load_train_config

        model, src = load_train_config(train_yaml).model, str(train_yaml.relative_to(ROOT))
    else:
        model, src = ModelConfig(ngf=32, n_blocks=6), "fallback ngf 32, 6 blocks (configs/phantom-cpu.yaml missing)"
    if pre_yaml.is_file():
        pre, psrc = load_config(PreprocessConfig, pre_yaml), str(pre_yaml.relative_to(ROOT))
    else:
        pre, psrc = PreprocessConfig(spacing=[2.0, 2.0, 2.0], in_plane_size=128), "fallback 2 mm, 128x128"
    out.append(("phantom-cpu", model, pre, f"{src}; {psrc}"))
    out.append(("paper", ModelConfig(ngf=64, n_blocks=9), PreprocessConfig(in_plane_size=256), "ResNet-9 ngf 64, 256x256, 1 mm"))
    return out


def loaded_run(model_cfg, image_size, device):
    """A :class:`LoadedRun` with freshly initialised generators (what ``load_run`` returns, minus the file)."""
    from mri_harmonic.checkpoint import LoadedRun
    from mri_harmonic.methods import build_method
    from mri_harmonic.models.config import LossConfig

    method = build_method(model_cfg, LossConfig(method="harmonic"), discriminators=False)
    gens = {d: method.translator(d).to(device).eval().requires_grad_(False) for d in "AB"}
    return LoadedRun(run_dir=Path("<benchmark>"), config={}, method="harmonic", direction="flair2t1", domain_a="flair",
                     domain_b="t1", image_size=tuple(image_size), step=0, generators=gens)


def bench_one(name, model_cfg, pre_cfg, volume, device, batch_size, max_slices, work: Path):
    import nibabel as nib
    import torch

    from mri_harmonic.data.geometry import prepare_volume, restore_volume
    from mri_harmonic.evaluation.translate import translate_file, translate_slices
    from mri_harmonic.utils.io import atomic_path

    prepare_volume(volume, pre_cfg, "flair")  # warm-up: first-call imports and caches are not the steady cost
    t = time.perf_counter()
    prepared = prepare_volume(volume, pre_cfg, "flair")
    prepare_s = time.perf_counter() - t
    n_z, h, w = prepared.slices.shape
    run = loaded_run(model_cfg, (h, w), device)
    net = run.generator_for("flair")
    translate_slices(net, prepared.slices[:2], prepared.mask[:2], device, batch_size)  # warm-up
    n = n_z if max_slices is None else min(n_z, max_slices)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    for _ in range(1 if n == n_z and device.type == "cpu" else 3):
        sync()
        t = time.perf_counter()
        out = translate_slices(net, prepared.slices[:n], prepared.mask[:n], device, batch_size)
        sync()
        times.append(time.perf_counter() - t)
    model_s = statistics.median(times)
    full = prepared.slices * prepared.mask  # untimed slices: realistic content for the restore + gzip cost
    full[:n] = out
    t = time.perf_counter()
    vol = restore_volume(full, prepared.geometry, mask=prepared.mask, source_mask=prepared.source_mask)
    with atomic_path(work / f"{name}_restore.nii.gz") as tmp:
        nib.save(nib.Nifti1Image(vol, nib.load(str(volume)).affine), str(tmp))
    restore_s = time.perf_counter() - t
    per_slice = model_s / n
    rec = {
        "model": name, "device": str(device), "slices": n_z, "slice_size": [h, w], "batch_size": batch_size,
        "timed_slices": n, "extrapolated": n < n_z, "prepare_s": prepare_s, "model_slices_per_s": 1.0 / per_slice,
        "model_s_per_volume": per_slice * n_z, "restore_save_s": restore_s,
        "seconds_per_volume": prepare_s + per_slice * n_z + restore_s,
        "params_M": sum(p.numel() for p in net.parameters()) / 1e6,
    }
    if n == n_z:  # the whole path as the CLI runs it
        t = time.perf_counter()
        translate_file(run, volume, work / f"{name}_{device.type}.nii.gz", "flair", "t1", pre_cfg,
                       batch_size=batch_size, device=device)
        rec["end_to_end_s"] = time.perf_counter() - t
    return rec


def main(argv=None):
    import torch

    from mri_harmonic.utils.device import describe_device

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--paper-cpu-slices", type=int, default=8, help="slices timed for the paper-size model on CPU")
    ap.add_argument("--full", action="store_true", help="run the paper-size model on every slice on CPU too")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        volume = write_volume(work / "bench_flair.nii.gz")
        for name, model_cfg, pre_cfg, source in presets():
            for dev in devices:
                limit = args.paper_cpu_slices if (name == "paper" and dev.type == "cpu" and not args.full) else None
                rec = bench_one(name, model_cfg, pre_cfg, volume, dev, args.batch_size, limit, work)
                rec["settings"] = source
                rec["device_name"] = describe_device(dev)
                records.append(rec)
                print(f"{name:12s} {rec['device_name']:32s} {rec['slices']:4d} slices {rec['slice_size'][0]}x{rec['slice_size'][1]}  "
                      f"{rec['model_slices_per_s']:8.2f} slices/s  {rec['seconds_per_volume']:8.1f} s/volume"
                      f"{'  (extrapolated)' if rec['extrapolated'] else ''}", flush=True)

    load = os.getloadavg()
    meta = {"volume_shape": list(SHAPE), "torch": torch.__version__, "threads": args.threads, "load_average_1m": load[0],
            "cpu": platform.processor() or platform.machine(), "records": records}
    args.out.mkdir(parents=True, exist_ok=True)
    from mri_harmonic.utils.io import atomic_write_json, atomic_write_text

    atomic_write_json(args.out / "translate.json", meta)
    lines = [
        "# Benchmark: `mri-harmonic translate`, one 240x240x155 volume",
        "",
        f"torch {torch.__version__}, {args.threads} CPU threads, batch {args.batch_size}; generators randomly initialised; "
        f"1-minute load average {load[0]:.1f} at the end (a shared machine slows every figure). "
        "Written by `pipelines/benchmarks/bench_translate.py`.",
        "",
        "| model | device | slices | slice size | params (M) | prepare (s) | model slices/s | restore+save (s) | s / volume | end-to-end (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        e2e = f"{r['end_to_end_s']:.1f}" if "end_to_end_s" in r else "–"
        ext = f" (extrapolated from {r['timed_slices']} slices)" if r["extrapolated"] else ""
        lines.append(f"| {r['model']} | {r['device_name']} | {r['slices']} | {r['slice_size'][0]}x{r['slice_size'][1]} | "
                     f"{r['params_M']:.2f} | {r['prepare_s']:.2f} | {r['model_slices_per_s']:.2f} | {r['restore_save_s']:.2f} | "
                     f"{r['seconds_per_volume']:.1f}{ext} | {e2e} |")
    lines += ["", "Settings: " + "; ".join(sorted({f"{r['model']}: {r['settings']}" for r in records})), ""]
    atomic_write_text(args.out / "translate.md", "\n".join(lines))
    print(f"wrote {args.out / 'translate.md'} and translate.json")


if __name__ == "__main__":
    main()
