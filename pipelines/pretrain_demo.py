#!/usr/bin/env python
"""The demo's pretrained phantom models (``make pretrained``): ``pretrained/phantom-harmonic/`` and
``pretrained/phantom-cyclegan/``, each an inference-only export of a phantom benchmark run with its provenance.

    python pipelines/pretrain_demo.py              # export work/phantom-v2/runs/{harmonic,cyclegan}-s0 (train if absent)
    python pipelines/pretrain_demo.py --no-train   # export only; one-line exit when a run is not finished

1. The runs: ``harmonic-s0`` and ``cyclegan-s0`` of ``pipelines/phantom_benchmark.py`` (its ``plan_runs``: the long
   CPU budget, 9,600 steps, training seed 0) on its 44-subject phantom (phantom seed 0) and store. A run without
   ``DONE`` is trained (or continued) here with the benchmark's own commands, two side by side, one thread each.
2. ``checkpoint.export_inference``: the translators' networks and run facts, no training state -> OUT/phantom-<method>
3. ``mri-harmonic evaluate`` of both exports on the store's validation split, both directions -> WORK/pretrained-val
4. OUT/phantom-<method>/provenance.json and PROVENANCE.md: command, config, phantom seed and subjects, steps,
   training time, device, versions, git commit, and the validation figures beside the untranslated input.

``make demo`` (pipelines/quickstart.py) evaluates these exports on a phantom of another seed, which they never saw.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    ROOT,
    log,
    phantom_complete,
    read_json,
    run_cli,
    train_command,
    train_in_parallel,
    versions,
    write_json,
)
from phantom_benchmark import plan_runs  # noqa: E402

#: The benchmark's phantom and store (phantom_benchmark.py's defaults): what the pretrained runs were trained on.
PHANTOM_SEED, SUBJECTS, PREPROCESS = 0, 44, "configs/preprocess-phantom-benchmark.yaml"
METHODS, SEED, DIRECTION = ("harmonic", "cyclegan"), 0, "flair2t1"
NAMES = {"harmonic": "HarmonicGAN", "cyclegan": "CycleGAN"}


def export_name(method: str) -> str:
    return f"phantom-{method}"


def planned() -> dict[str, tuple[str, str, list[str]]]:
    """``{method: (run name, preset, overrides)}``: the benchmark's seed-0 runs of :data:`METHODS`."""
    runs = plan_runs(list(METHODS), SEED + 1, False, False)
    return {m: (name, *runs[name]) for m in METHODS for name in [f"{m}-s{SEED}"]}


def ensure_runs(work: Path, jobs: int, allow_training: bool) -> dict[str, Path]:
    """The finished run folder of each method, training what is missing with the benchmark's commands."""
    runs = planned()
    dirs = {m: work / "runs" / name for m, (name, _, _) in runs.items()}
    missing = [str(d) for d in dirs.values() if not (d / "DONE").is_file()]
    if missing and not allow_training:
        raise SystemExit(f"error: run(s) {', '.join(missing)} not finished (no DONE); run without --no-train to train them")
    if missing:
        data, store = work / "data", work / "store"
        if not phantom_complete(data, SUBJECTS):
            run_cli(["phantom", data, "--subjects", SUBJECTS, "--seed", PHANTOM_SEED, "--no-progress"])
        if not (store / "store.json").is_file():
            run_cli(["preprocess", data, store, "--config", PREPROCESS])
        commands = {name: (dirs[m], train_command(store, dirs[m], cfg, DIRECTION, ["time_budget_minutes=null", *extra]))
                    for m, (name, cfg, extra) in runs.items()}
        train_in_parallel(commands, jobs=jobs, log_dir=work / "logs")
    return dirs


def floor_figures(report: Path, run: str) -> dict[str, dict[str, float]]:
    """``{direction: {"MAE", "MAE_input", "SSIM", "SSIM_input"}}`` of ``run`` (whole slice, 0-255) in an evaluation."""
    from quickstart import figures

    return {d: figures(report, run, d) for d in ("flair2t1", "t12flair")}


def provenance(method: str, run_dir: Path, store: Path, data: Path, argv: list[str], work: Path) -> dict:
    """What the export's ``provenance.json`` says about how its weights were made (everything read from files)."""
    from mri_harmonic.checkpoint import read_checkpoint, resolve_checkpoint, weights_kind

    name, preset, overrides = planned()[method]
    ckpt = read_checkpoint(resolve_checkpoint(run_dir))
    run_json, summary = read_json(run_dir / "run.json", {}), read_json(run_dir / "summary.json", {})
    phantom = read_json(data / "phantom.json", {}) or {}
    subjects = read_json(store / "subjects.json", {}) or {}
    by_split: dict[str, list[str]] = {}
    for sid, info in sorted(subjects.items()):
        if isinstance(info, dict) and "split" in info:
            by_split.setdefault(info["split"], []).append(sid)
    timings = read_json(work / "timings.json", {}) or {}
    train_args = [a for a in train_command(store, run_dir, preset, DIRECTION, ["time_budget_minutes=null", *overrides])
                  if a != "--resume"]  # the command as first run (a rerun of it adds --resume)
    return {
        "name": export_name(method), "method": method, "direction": ckpt["direction"],
        "command": "python pipelines/pretrain_demo.py" + "".join(f" {shlex.quote(a)}" for a in argv),
        "source_run": str(run_dir), "training_command": "mri-harmonic " + " ".join(shlex.quote(str(a)) for a in train_args),
        "trained_by": f"run {name} of pipelines/phantom_benchmark.py's plan_runs",
        "config": preset, "overrides": overrides, "config_hash": ckpt["config_hash"],
        "plan_config_hash": _plan_hash(preset, overrides),
        "phantom": {"seed": phantom.get("seed"), "subjects": len(phantom.get("subjects", [])),
                    "shape": phantom.get("shape"), "generator_version": phantom.get("generator_version")},
        "store": {"path": str(store), "preprocess_config": _preprocess_config_name(ckpt.get("store_config")),
                  "config_hash": ckpt.get("store_config_hash"),
                  "fingerprint": ckpt.get("store_fingerprint"), "subjects": by_split},
        "training": {"step": int(ckpt["step"]), "planned_steps": summary.get("planned_steps"),
                     "finished": summary.get("finished"), "elapsed_s": summary.get("elapsed_s"),
                     "wall_s": timings.get(f"train_{name}_s"), "device": run_json.get("device"),
                     "precision": run_json.get("precision"), "cpu": _cpu_model(), "package_version": ckpt["package_version"]},
        "weights": weights_kind(ckpt), "git_commit": _git_commit(), "versions": versions(),
    }


def write_provenance(out: Path, facts: dict) -> None:
    """``provenance.json`` (``facts``) and a readable ``PROVENANCE.md`` beside the export."""
    t, v = facts["training"], facts.get("validation", {})
    hours = f"{t['elapsed_s'] / 3600:.2f} h" if t.get("elapsed_s") else "not recorded"
    lines = [
        f"# {facts['name']}: pretrained {NAMES.get(facts['method'], facts['method'])} on the built-in phantom", "",
        f"An inference-only export (`mri_harmonic.checkpoint.export_inference`: the translators' networks, the resolved "
        f"config, the training store's preprocessing config; no optimizer state, so it cannot be resumed) of the "
        f"phantom benchmark run `{facts['source_run']}`. `mri-harmonic evaluate` and `mri-harmonic translate` take this "
        "folder as a run folder. Written by:", "",
        f"    {facts['command']}", "",
        "## How it was trained", "",
        f"- Command: `{facts['training_command']}` ({facts['trained_by']}).",
        f"- Config: `{facts['config']}` with `{' '.join(facts['overrides'])}`; resolved in `config.yaml` (hash "
        f"{facts['config_hash']})"
        + ("." if facts["plan_config_hash"] == facts["config_hash"] else
           f"; NOTE: the plan resolves to hash {facts['plan_config_hash']} today, so `config.yaml`, not this line, is "
           "what the run was trained with."),
        f"- Data: phantom seed {facts['phantom']['seed']}, {facts['phantom']['subjects']} subjects (shape "
        f"{facts['phantom']['shape']}), preprocessed with {facts['store']['preprocess_config']}: "
        + ", ".join(f"{len(s)} {k}" for k, s in facts["store"]["subjects"].items()) + " subjects (listed in provenance.json).",
        f"- Steps: {t['step']:,} of {t['planned_steps'] or t['step']:,} (finished: {t['finished']}).",
        "- Weights: " + ("the exponential moving average of the generator weights over training (`ema_decay`), as "
                         "the benchmark evaluates them." if facts.get("weights") == "ema" else "the trained weights."),
        f"- Training time: {hours} of the run's own clock"
        + (f", {t['wall_s'] / 3600:.2f} h wall for the training process" if t.get("wall_s") else "")
        + f"; device {t['device']}, precision {t['precision']}, CPU {t['cpu']}. Measured on a shared machine: a time, "
          "not a speed figure.",
        f"- Versions: mri-harmonic {t['package_version']} (at training), torch {facts['versions'].get('torch')}, python "
        f"{facts['versions'].get('python')}; export at git commit {facts['git_commit']}.", "",
    ]
    if v:
        lines += [f"## Validation split of the training phantom ({v['subjects']} subjects, never trained on)", "",
                  "Whole slice, 0-255 scale, mean over slices, beside the untranslated input (the floor):", "",
                  "| direction | MAE | input MAE | SSIM | input SSIM |", "|---|---|---|---|---|"]
        lines += [f"| {d} | {f['MAE']:.2f} | {f['MAE_input']:.2f} | {f['SSIM']:.3f} | {f['SSIM_input']:.3f} |"
                  for d, f in v["figures"].items()]
        lines += ["", f"Report: `{v['report']}` (not committed; rerun the command to regenerate it).", ""]
    write_json(out / "provenance.json", facts)
    from mri_harmonic.utils.io import atomic_write_text

    atomic_write_text(out / "PROVENANCE.md", "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    from mri_harmonic.checkpoint import export_inference, latest_path

    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("work/phantom-v2"),
                    help="the benchmark's folder: data, store, runs (default work/phantom-v2)")
    ap.add_argument("--out", type=Path, default=Path("pretrained"), help="where the exports go (default pretrained)")
    ap.add_argument("--no-train", dest="train", action="store_false", help="export finished runs only; never train")
    ap.add_argument("--jobs", type=int, default=2, help="trainings side by side when runs are missing")
    ap.add_argument("--report", type=Path, default=None, help="validation report folder (default WORK/pretrained-val)")
    args = ap.parse_args(argv)
    os.chdir(ROOT)  # paths in provenance are relative to the repository
    work, out = args.work, args.out
    dirs = ensure_runs(work, args.jobs, args.train)

    exports = {}
    for method, run_dir in dirs.items():
        facts = provenance(method, run_dir, work / "store", work / "data", argv, work)
        exports[method] = export_inference(run_dir, out / export_name(method),
                                           provenance={k: facts[k] for k in ("command", "source_run", "training_command",
                                                                             "config", "overrides", "phantom", "git_commit")})
        log(f"exported {run_dir} -> {exports[method]} ({latest_path(exports[method]).stat().st_size / 1e6:.2f} MB)")
        facts["size_bytes"] = latest_path(exports[method]).stat().st_size
        write_provenance(exports[method], facts)

    report = args.report or work / "pretrained-val"
    run_cli(["evaluate", *exports.values(), "--store", work / "store", "--split", "val", "--direction", "both",
             "--out", report])
    meta = read_json(report / "evaluation.json", {})
    for folder in exports.values():
        facts = read_json(folder / "provenance.json")
        facts["validation"] = {"split": "val", "subjects": meta["store"]["n_subjects"], "report": str(report),
                               "figures": floor_figures(report, folder.name)}
        write_provenance(folder, facts)
        f = facts["validation"]["figures"][DIRECTION]
        log(f"{folder.name}: Flair->T1 on {meta['store']['n_subjects']} validation subjects: MAE {f['MAE']:.1f} "
            f"(untranslated input {f['MAE_input']:.1f}), SSIM {f['SSIM']:.2f} ({f['SSIM_input']:.2f})")
    return 0


def _plan_hash(preset: str, overrides: list[str]) -> str:
    """Hash of the config the plan resolves to now (equal to the run's when the run is what the plan says)."""
    from mri_harmonic.config import config_hash
    from mri_harmonic.training.config import load_train_config

    return config_hash(load_train_config(ROOT / preset, ["time_budget_minutes=null", *overrides]))


def _preprocess_config_name(store_config: dict | None) -> str:
    """The preprocess config's file name when the store was built with it, else what the store says."""
    from mri_harmonic.config import load_config, to_dict
    from mri_harmonic.data.config import PreprocessConfig

    if store_config is not None and to_dict(load_config(PreprocessConfig, ROOT / PREPROCESS)) == store_config:
        return f"`{PREPROCESS}`"
    return f"the store's own config (not `{PREPROCESS}`: {store_config})"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"{versions().get('processor')} ({os.cpu_count()} cores)"


def _git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.strip()
        return head + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
