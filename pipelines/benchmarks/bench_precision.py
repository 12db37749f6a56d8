"""Training step time in fp32, bf16 autocast and bf16 autocast + torch.compile, side by side, on this machine's CPU.

Two settings (``--settings``):

- ``preset``: ``configs/phantom-cpu.yaml`` at 96x96 (ngf 16, 4 blocks, ndf 32, batch 1): what the demo trains.
- ``reference``: the CycleGAN reference implementation's benchmark configuration: 64x64, ngf = ndf = 32,
  ResNet-9, batch 4, ``lambda_identity`` 0.5 (one-channel images, as everywhere in this package). Issue 13 measured
  the reference code (junyanz/pytorch-CycleGAN-and-pix2pix) at 0.89-0.91 s a step there with 2 threads on the
  2-core development machine; the target is a harmonic step <= 0.77x that (:data:`REFERENCE_STEP_S`,
  :data:`TARGET_RATIO`). The reference's figure is not re-measured here: compare only figures from the same machine.

The variants (``--variants``) run in alternating rounds (rotating which goes first) so that load drift hits all
alike; the figure per variant is the median over rounds, and ``x fp32`` is the median of within-round ratios.
``compile`` is compiled during the warm-up steps (minutes on a 2-core CPU; inductor needs a C++ compiler). Inputs
are random images in [-1, 1]. bf16 is forced (``amp: bf16``) so that every variant runs on any CPU; on a CPU
without native bf16 (AVX512-BF16 / AMX) it is emulated and slower, and ``amp: auto`` would train in fp32 there.

The machine must be quiet: :mod:`quiet` measures the CPU time of other processes for a few seconds before and
during the measurement; above the limit the script refuses to write the report (exit 3) unless ``--allow-load``
is given, and then the report says TAKEN UNDER LOAD.

    python pipelines/benchmarks/bench_precision.py                 # writes reports/benchmarks/precision.{md,json}
    python pipelines/benchmarks/bench_precision.py --settings reference --methods harmonic,cyclegan
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training import time_steps  # noqa: E402
from quiet import LoadMonitor, quiet_probe, verdict  # noqa: E402

from mri_harmonic import __version__  # noqa: E402
from mri_harmonic.training.config import load_train_config  # noqa: E402
from mri_harmonic.training.trainer import build_state  # noqa: E402
from mri_harmonic.utils.device import cpu_has_native_bf16, describe_device, resolve_device, resolve_precision  # noqa: E402
from mri_harmonic.utils.io import atomic_write_json, atomic_write_text  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SETTINGS: dict[str, dict] = {
    "preset": {"config": "configs/phantom-cpu.yaml", "size": 96, "overrides": [], "steps": 6},
    "reference": {"config": None, "size": 64, "steps": 2,
                  "overrides": ["model.ngf=32", "model.ndf=32", "model.n_blocks=9", "data.batch_size=4",
                                "loss.lambda_identity=0.5"]},
}
VARIANTS: dict[str, list[str]] = {"fp32": ["amp=off"], "bf16": ["amp=bf16"], "bf16+compile": ["amp=bf16", "compile=true"]}
#: The CycleGAN reference's step at the ``reference`` setting, 2 threads, 2-core AMD Zen 4 development machine
#: (issue 13: 0.89-0.91 s, measured side by side with this package's cyclegan at 0.90 s and harmonic at 0.92 s).
REFERENCE_STEP_S = 0.90
TARGET_RATIO = 0.77


def build(setting: dict, variant: list[str], method: str, device: torch.device):
    config = ROOT / setting["config"] if setting["config"] else None
    cfg = load_train_config(config, [f"device={device.type}", *setting["overrides"], *variant, f"loss.method={method}",
                                     "tensorboard=false"])
    torch.manual_seed(0)
    stats = {"A": [0.2, 0.05], "B": [0.25, 0.06]}  # DistanceGAN's statistics: any positive values time the same
    return build_state(cfg, device, data_statistics=stats if method == "distancegan" else None), cfg


def measure(name: str, setting: dict, methods: list[str], variants: list[str], rounds: int, steps: int, warmup: int,
            device: torch.device) -> dict:
    size = setting["size"]
    results: dict = {"image_size": [size, size], "config": setting["config"] or "TrainConfig defaults",
                     "overrides": setting["overrides"], "methods": {}}
    for method in methods:
        states, errors, batch = {}, {}, None
        for v in variants:
            try:
                states[v], cfg = build(setting, VARIANTS[v], method, device)
                batch = cfg.data.batch_size
                a = (torch.rand(batch, 1, size, size) * 2 - 1).to(device)
                b = (torch.rand(batch, 1, size, size) * 2 - 1).to(device)
                print(f"[{name}/{method}] warm-up {v} ({warmup} steps{', compiling' if cfg.compile else ''})", flush=True)
                time_steps(states[v], a, b, warmup)
            except Exception as exc:  # noqa: BLE001 - e.g. no C++ compiler for inductor: report, go on
                errors[v] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                states.pop(v, None)
                print(f"[{name}/{method}] {v} failed: {errors[v]}", flush=True)
        ok = [v for v in variants if v in states]
        per_step: dict[str, list[float]] = {v: [] for v in ok}
        for r in range(rounds):
            for v in ok[r % len(ok):] + ok[: r % len(ok)] if ok else []:
                per_step[v].append(time_steps(states[v], a, b, steps))
            print(f"[{name}/{method}] round {r + 1}/{rounds}: "
                  + ", ".join(f"{v} {per_step[v][-1] * 1000:.0f} ms" for v in ok), flush=True)
        med = {v: statistics.median(t) for v, t in per_step.items()}
        base = "fp32" if "fp32" in per_step else None
        results["methods"][method] = {
            "batch_size": batch, "median_step_s": med, "pairs_per_s": {v: batch / t for v, t in med.items()},
            "paired_ratio_vs_fp32": {v: statistics.median(x / f for x, f in zip(per_step[v], per_step[base]))
                                     for v in ok} if base else {},
            "all_step_s": per_step, "errors": errors,
        }
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--settings", default="preset,reference", help="comma-separated: " + ", ".join(SETTINGS))
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated: " + ", ".join(VARIANTS))
    p.add_argument("--methods", default="harmonic", help="comma-separated registered methods (harmonic, cyclegan, distancegan, discogan, unit)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (the reference benchmark used 2)")
    p.add_argument("--rounds", type=int, default=7, help="alternating rounds (median over them)")
    p.add_argument("--steps", type=int, default=None, help="steps per variant per round (default: 6 preset, 2 reference)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per variant (compiles the compiled variant)")
    p.add_argument("--probe-s", type=float, default=5.0, help="seconds of idle load check before measuring")
    p.add_argument("--allow-load", action="store_true", help="write the report even if the machine was busy (flagged)")
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks", help="folder for precision.md/.json")
    args = p.parse_args(argv)
    settings = [s for s in args.settings.split(",") if s]
    variants = [v for v in args.variants.split(",") if v]
    methods = [m for m in args.methods.split(",") if m]
    for name, known, what in ((settings, SETTINGS, "--settings"), (variants, VARIANTS, "--variants")):
        bad = [x for x in name if x not in known]
        if bad:
            raise SystemExit(f"error: {what}: unknown {', '.join(bad)}; choose from {', '.join(known)}")

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device, key="--device")
    before = quiet_probe(args.probe_s)
    if before.quiet is False and not args.allow_load:
        print(f"refusing to measure: other processes use {before.foreign_cores:.2f} cores (limit "
              f"{before.as_dict()['max_foreign_cores']}); rerun on a quiet machine or pass --allow-load", file=sys.stderr)
        return 3
    with LoadMonitor() as during:
        measured = {s: measure(s, SETTINGS[s], methods, variants, args.rounds, args.steps or SETTINGS[s]["steps"],
                               args.warmup, device) for s in settings}
    load = verdict(before, during)
    result = {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "package_version": __version__, "torch": torch.__version__,
        "device": describe_device(device),
        "host": f"{platform.node()} ({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs)",
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_has_native_bf16": cpu_has_native_bf16(),
        "amp_auto_resolves_to": resolve_precision(device, "auto"),
        "rounds": args.rounds, "warmup_steps": args.warmup, "threads": args.threads,
        "load": load, "settings": measured,
        "reference_cyclegan_step_s": REFERENCE_STEP_S, "target_ratio_vs_reference": TARGET_RATIO,
    }
    ref = measured.get("reference", {}).get("methods", {}).get("harmonic")
    if ref:
        result["harmonic_vs_reference_cyclegan"] = {v: t / REFERENCE_STEP_S for v, t in ref["median_step_s"].items()}
    print(load["note"])
    if load["quiet"] is False and not args.allow_load:
        print("not writing the report: the machine was busy during the measurement (pass --allow-load to keep a "
              "flagged figure)", file=sys.stderr)
        return 3
    write_report(result, args.out)
    print((args.out / "precision.md").read_text())
    return 0


def write_report(r: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "precision.json", r)
    lines = [
        "# Training step time: fp32 vs bf16 autocast vs bf16 + torch.compile (CPU)",
        "",
        f"Written by `pipelines/benchmarks/bench_precision.py` on {r['created']} (mri-harmonic {r['package_version']}, "
        f"torch {r['torch']}).",
        "",
        f"- Device **{r['device']}**; host {r['host']}; torch CPU capability {r['cpu_capability']}; native bf16 "
        f"(AVX512-BF16 or AMX): **{r['cpu_has_native_bf16']}**, so `amp: auto` trains in **{r['amp_auto_resolves_to']}** here.",
        f"- Load: {r['load']['note']}.",
        f"- {r['rounds']} alternating rounds after {r['warmup_steps']} warm-up steps per variant; median per step; "
        "`x fp32` is the median of within-round ratios. Random inputs.",
    ]
    if r["load"]["quiet"] is False:
        lines += ["", "**TAKEN UNDER LOAD: not a measurement of this machine's speed.**"]
    for name, s in r["settings"].items():
        over = ", ".join(f"`{o}`" for o in s["overrides"]) or "none"
        lines += ["", f"## {name}: {s['image_size'][0]}x{s['image_size'][1]}, {s['config']}, overrides {over}", "",
                  "| method | variant | ms / step | pairs / s | x fp32 |", "|---|---|---:|---:|---:|"]
        for method, m in s["methods"].items():
            for v, t in m["median_step_s"].items():
                ratio = m["paired_ratio_vs_fp32"].get(v)
                lines.append(f"| {method} | {v} | {t * 1000:.1f} | {m['pairs_per_s'][v]:.2f} | "
                             f"{'' if ratio is None else f'{ratio:.3f}'} |")
            for v, err in m["errors"].items():
                lines.append(f"| {method} | {v} | failed: {err} | | |")
    if "harmonic_vs_reference_cyclegan" in r:
        lines += ["", f"Harmonic step at the reference setting against the CycleGAN reference's "
                      f"{r['reference_cyclegan_step_s']:.2f} s (measured in issue 13 on the 2-core development machine; "
                      f"only comparable on that machine), target <= x{r['target_ratio_vs_reference']}:", ""]
        for v, ratio in r["harmonic_vs_reference_cyclegan"].items():
            lines.append(f"- {v}: x{ratio:.2f} ({'meets' if ratio <= r['target_ratio_vs_reference'] else 'misses'} the target)")
    atomic_write_text(out / "precision.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
