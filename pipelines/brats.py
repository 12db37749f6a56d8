#!/usr/bin/env python
"""The paper's recipe on your own BraTS copy, at paper scale, on one GPU or several (``torchrun``).

    python pipelines/brats.py --data /data/BraTS2021_TrainingData [--gpus 4 --gpu-recipe sqrt-lr] [--methods ...]

What it expects
- ``--data``: a BraTS 2018-2021, BraTS 2023 GLI or MSD Task01_BrainTumour folder (layout found automatically); not
  needed once WORK/store exists.
- A CUDA GPU. Without one it stops and says so, unless ``--allow-cpu`` (then it is days per method; only useful
  with ``--set max_steps``).
- Time: before training it prints the plan: the epoch length and the steps the trainer will run (read from the
  store exactly as the trainer counts them: with disjoint subject halves an epoch is the larger half's slices, not
  the whole train split), and a time estimate from the training benchmark's measured pairs/s
  (reports/benchmarks/training.json) when it was measured on this kind of device at 256x256, otherwise from an
  assumed figure that the plan labels ASSUMED.

Several GPUs (``--gpus N``, N > 1) change the paper's recipe: each of the N processes trains on its own batch of
``data.batch_size`` (1) slices, so every update sees N slices and an epoch has N times fewer updates. Choose what
to keep with ``--gpu-recipe`` (required with ``--gpus`` > 1; the plan prints the resulting lr and updates):
- ``same-updates``: the paper's number of updates at the paper's lr (``optim.epochs`` and ``optim.epochs_decay``
  times N). Each update sees N slices, N times the paper's data, so it takes about as long as one GPU.
- ``sqrt-lr``: the paper's epochs, N times fewer updates, lr times sqrt(N) (``optim.lr_scaling: sqrt``, the
  square-root rule for Adam). About N times faster; not the paper's optimisation.
- ``same-lr``: the paper's epochs and lr with N times fewer updates: the fewest updates of the three.
A run keeps its number of processes: the trainer refuses ``--resume`` with another ``--gpus``.

Steps (each skipped when complete; training resumes from its last checkpoint):
1. ``mri-harmonic preprocess`` with configs/preprocess-brats.yaml (1 mm, 240 -> 256 padding, subject splits,
   disjoint subject halves for the two domains) -> WORK/store
2. ``mri-harmonic train`` (or ``torchrun --nproc_per_node N -m mri_harmonic.cli train``) per method ->
   WORK/runs/<method>. A run is DONE only when it is finished (max_steps or the end of its schedule reached:
   ``finished`` in its summary.json); a run stopped by its time budget or a signal stops the pipeline, and running
   the pipeline again continues it. DataLoader workers (``data.num_workers``, 4 in the preset) are capped at the
   CPU cores available to each process.
3. ``mri-harmonic evaluate`` of all runs, both directions, with a 40-case reader study -> OUT
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, log, preset_config, run_cli, run_finished, stop_reason, train_command, versions, write_json  # noqa: E402
from _common import usable_cores as available_cores  # noqa: E402

PRESET = "brats-paper"  # configs/brats-paper.yaml (harmonic) and configs/brats-paper-<method>.yaml
ASSUMED_PAIRS_PER_S = {"cuda": 100.0, "cpu": 0.1}  # assumptions, used only without a matching measurement
ASSUMED_SLICES_PER_SUBJECT = 100  # kept axial slices per BraTS subject before a store exists (an assumption)
GPU_RECIPES = ("same-updates", "sqrt-lr", "same-lr")


def throughput(device: str) -> tuple[float, str]:
    """(harmonic pairs/s of one process, where the figure comes from): the training benchmark's measurement
    (reports/benchmarks/training.json) when it was taken on this kind of device at 256x256, else an assumption."""
    bench = ROOT / "reports" / "benchmarks" / "training.json"
    try:
        data = json.loads(bench.read_text())
        measured_on_gpu = not str(data.get("device", "cpu")).startswith("cpu")
        if measured_on_gpu == (device == "cuda") and tuple(data.get("image_size", ())) == (256, 256):
            return float(data["pairs_per_s"]["harmonic"]), f"measured ({bench.relative_to(ROOT)}, {data.get('device')})"
    except (OSError, ValueError, TypeError, KeyError):
        pass
    return ASSUMED_PAIRS_PER_S[device], f"ASSUMED (no 256x256 {device} measurement in reports/benchmarks/training.json)"


def recipe_overrides(recipe: str | None, gpus: int, epochs: int, epochs_decay: int) -> list[str]:
    """``--set`` overrides that implement ``--gpu-recipe`` on ``gpus`` processes (none for one process)."""
    if gpus <= 1 or recipe == "same-lr":
        return []
    if recipe == "same-updates":
        return [f"optim.epochs={epochs * gpus}", f"optim.epochs_decay={epochs_decay * gpus}"]
    if recipe == "sqrt-lr":
        return ["optim.lr_scaling=sqrt"]
    raise SystemExit(f"error: --gpus {gpus} changes the paper's recipe; choose --gpu-recipe {'|'.join(GPU_RECIPES)} "
                     "(see --help)")


def plan_lines(store: Path, n_subjects: int | None, direction: str, cfg, gpus: int, recipe: str | None,
               device: str) -> list[str]:
    """The plan as printed: epoch length and steps (as the trainer counts them), the recipe, pairs/s and time."""
    from mri_harmonic.training.trainer import plan_run, plan_steps

    bs = cfg.data.batch_size
    if (store / "store.json").is_file():
        plan = plan_run(store, direction, cfg, world_size=gpus)
        n_train = json.loads((store / "store.json").read_text())["splits"]["train"]["n_slices"]
        half = "the larger disjoint subject half" if plan.dataset_items < n_train else "all of them"
        source = f"store {store}: {n_train} training slices, {plan.dataset_items} an epoch ({half})"
    else:
        from mri_harmonic.config import load_config
        from mri_harmonic.data.config import PreprocessConfig

        pcfg = load_config(PreprocessConfig, ROOT / "configs" / "preprocess-brats.yaml")
        n_train = round((n_subjects or 0) * pcfg.split_fractions[0]) * ASSUMED_SLICES_PER_SUBJECT
        plan = plan_steps(-(-n_train // 2) if pcfg.unpaired_halves else n_train, cfg, gpus)
        source = (f"ESTIMATED before preprocessing: {n_subjects} subjects x {pcfg.split_fractions[0]:g} train x "
                  f"~{ASSUMED_SLICES_PER_SUBJECT} slices (ASSUMED), halved for the disjoint subject halves")
    pps, pps_source = throughput(device)
    pairs = plan.planned_steps * bs * gpus
    cap = "" if cfg.max_steps is None else f", max_steps {cfg.max_steps}"
    lines = [f"epoch: {plan.slices_per_epoch} slices = {plan.steps_per_epoch} steps per process ({source})",
             f"steps: {plan.planned_steps} planned ({plan.epochs} epochs x {plan.steps_per_epoch}{cap}), "
             f"{pairs:,} pairs per run"]
    if gpus > 1:
        one = plan_steps(plan.dataset_items, cfg, 1).planned_steps
        lines.append(f"recipe: {gpus} processes x batch {bs} = global batch {bs * gpus}; --gpu-recipe {recipe}: "
                     f"lr {cfg.optim.scaled_lr(bs * gpus):.3g}, {plan.planned_steps:,} updates of {bs * gpus} slices "
                     f"(one GPU with the paper's config: {one:,} updates of {bs})")
    scaling = f" x {gpus} processes (linear scaling ASSUMED)" if gpus > 1 else ""
    hours = pairs / (pps * gpus) / 3600
    lines.append(f"time: ~{hours:.1f} h per run at {pps:.1f} pairs/s{scaling}; pairs/s {pps_source}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="your BraTS folder (not needed once WORK/store exists)")
    ap.add_argument("--work", type=Path, default=ROOT / "work" / "brats")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "brats")
    ap.add_argument("--methods", default="cyclegan,distancegan,harmonic",
                    help="comma-separated registered methods (cyclegan, distancegan, harmonic, discogan, unit); each "
                         "trains with configs/brats-paper[-METHOD].yaml")
    ap.add_argument("--gpus", type=int, default=1,
                    help="processes per run; > 1 uses torchrun (DDP, NCCL) and needs --gpu-recipe")
    ap.add_argument("--gpu-recipe", choices=GPU_RECIPES, default=None,
                    help="with --gpus N > 1: same-updates (epochs x N), sqrt-lr (lr x sqrt N, N x fewer updates) or "
                         "same-lr (N x fewer updates); see above")
    ap.add_argument("--workers", type=int, default=None, help="preprocess workers")
    ap.add_argument("--direction", default="flair2t1")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="TrainConfig override for every run")
    ap.add_argument("--allow-cpu", action="store_true")
    ap.add_argument("--dry-run", action="store_true", help="check inputs, print the plan and the time estimate, stop")
    args = ap.parse_args(argv)

    import torch

    store = args.work / "store"
    if args.data is None and not (store / "store.json").is_file():
        raise SystemExit(f"error: --data is needed: {store} does not exist yet; point --data at your BraTS copy")
    if args.data is not None and not args.data.is_dir():
        raise SystemExit(f"error: --data {args.data} is not a folder; point it at your BraTS copy")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    n_gpu = torch.cuda.device_count()
    log(f"device: {torch.cuda.get_device_name(0) + f' x{n_gpu}' if device == 'cuda' else 'CPU only'}")
    if device == "cpu" and not (args.allow_cpu or args.dry_run):
        raise SystemExit("error: no CUDA GPU found; paper scale needs one (or pass --allow-cpu with --set max_steps=N)")
    if args.gpus > max(1, n_gpu) and device == "cuda":
        raise SystemExit(f"error: --gpus {args.gpus} but only {n_gpu} visible")

    n_subjects = None
    if args.data is not None:
        from mri_harmonic.data.layouts import discover

        n_subjects = len(discover(args.data))
        log(f"found {n_subjects} subjects in {args.data}")

    if not (store / "store.json").is_file() and not args.dry_run:
        cmd = ["preprocess", args.data, store, "--config", "configs/preprocess-brats.yaml"]
        if args.workers:
            cmd += ["--workers", args.workers]
        run_cli(cmd)

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for method in methods:
        preset_config(PRESET, method)  # one-line exit for an unknown method or a missing preset, before any work
    from mri_harmonic.training.config import load_train_config

    base = load_train_config(ROOT / preset_config(PRESET, "harmonic"), args.overrides)
    overrides = [*recipe_overrides(args.gpu_recipe, args.gpus, base.optim.epochs, base.optim.epochs_decay),
                 *args.overrides]
    cores = available_cores()
    cap = max(0, cores // max(1, args.gpus) - 1)  # a core per process for itself, the rest for its workers
    if base.data.num_workers > cap:
        log(f"data.num_workers {base.data.num_workers} -> {cap}: {cores} CPU cores for {args.gpus} process(es)")
        overrides.append(f"data.num_workers={cap}")
    cfg = load_train_config(ROOT / preset_config(PRESET, "harmonic"), overrides)
    log(f"plan: {len(methods)} runs ({', '.join(methods)}), {args.direction}, {args.gpus} process(es) each")
    for line in plan_lines(store, n_subjects, args.direction, cfg, args.gpus, args.gpu_recipe, device):
        log("plan: " + line)
    if args.dry_run:
        return 0

    runs = []
    for method in methods:
        run_dir = args.work / "runs" / method
        cmd = train_command(store, run_dir, preset_config(PRESET, method), args.direction, overrides)
        if not (run_dir / "DONE").is_file():
            if args.gpus > 1:
                full = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={args.gpus}", "-m",
                        "mri_harmonic.cli", *map(str, cmd)]
                log("$ " + " ".join(full))
                code = subprocess.run(full, cwd=ROOT).returncode
            else:
                code = run_cli(cmd, ok_codes=None)
            if not run_finished(run_dir):  # a time budget, a signal or a failure: never DONE
                raise SystemExit(f"training {method} is not finished (exit code {code}{stop_reason(run_dir)}); "
                                 "run this pipeline again to continue it")
            (run_dir / "DONE").write_text("ok\n")
        runs.append(run_dir)
    run_cli(["evaluate", *runs, "--store", store, "--split", "test", "--direction", "both", "--out", args.out,
             "--reader-study", 40])
    write_json(args.out / "versions.json", versions())
    return 0


if __name__ == "__main__":
    sys.exit(main())
