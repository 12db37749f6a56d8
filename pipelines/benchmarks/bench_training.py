"""Training step time of every registered method at one image size, measured side by side.

The CycleGAN family (harmonic, cyclegan, distancegan) differ only in ``loss.method``: same networks, batch, device
and precision, so their ratios isolate the extra term's cost. DiscoGAN and UNIT bring their own networks and batch,
so they run with their own preset beside the base one (``phantom-cpu-discogan.yaml``, ...); compare them per pair. Steps are timed in rounds that alternate the methods (rotating which goes first), so that drift in
machine load hits all methods alike; the figure per method is the median over rounds. Inputs are random images
in [-1, 1] (step time does not depend on content).

- CPU (default when no GPU): ``configs/phantom-cpu.yaml`` at 128x128, in the preset's precision (``amp: auto``:
  bf16 autocast on CPUs with native bf16, else fp32; ``bench_precision.py`` compares the two).
- CUDA: ``configs/brats-paper.yaml`` at 256x256 (ResNet-9, ngf 64, bf16 autocast), with peak GPU
  memory per method.

Target: the smoothness term costs <= 10 % of a CycleGAN step (harmonic / cyclegan <= 1.10).

    python pipelines/benchmarks/bench_training.py                # writes reports/benchmarks/training.{md,json}
    python pipelines/benchmarks/bench_training.py --rounds 9 --threads 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from mri_harmonic import __version__
from mri_harmonic.methods import build_method, method_names
from mri_harmonic.training.config import load_train_config
from mri_harmonic.training.trainer import build_state, train_step
from mri_harmonic.utils.device import describe_device, resolve_device, resolve_precision
from mri_harmonic.utils.io import atomic_write_json, atomic_write_text

ROOT = Path(__file__).resolve().parents[2]
METHODS = method_names()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(state, a, b, n: int) -> float:
    sync(state.device)
    t = time.perf_counter()
    for _ in range(n):
        train_step(state, a, b)
    sync(state.device)
    return (time.perf_counter() - t) / n


def smoothness_share(state, size: int, batch: int) -> float:
    """Seconds of one smoothness forward+backward pair (both cycles), as in a harmonic step."""
    smooth = state.method.smooth
    dev = state.device
    x = torch.rand(batch, 1, size, size, device=dev) * 2 - 1
    gx = (torch.rand_like(x) * 2 - 1).requires_grad_()
    fgx = (torch.rand_like(x) * 2 - 1).requires_grad_()
    for _ in range(2):
        (smooth(x, gx, fgx) + smooth(x, gx, fgx)).backward()
    sync(dev)
    t = time.perf_counter()
    for _ in range(5):
        (smooth(x, gx, fgx) + smooth(x, gx, fgx)).backward()
    sync(dev)
    return (time.perf_counter() - t) / 5


def method_preset(config: Path, method: str) -> Path:
    """The method's own preset beside ``config`` (``phantom-cpu-unit.yaml`` for ``phantom-cpu.yaml``), which carries
    its networks and batch; ``config`` itself (with ``loss.method`` set) for the CycleGAN family's or when absent."""
    own = config.with_name(f"{config.stem}-{method}{config.suffix}")
    return own if method != "harmonic" and own.is_file() else config


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    p.add_argument("--config", type=Path, default=None,
                   help="preset (default: phantom-cpu.yaml on CPU, brats-paper.yaml on CUDA)")
    p.add_argument("--size", type=int, default=None, help="image side (default 128 on CPU, 256 on CUDA)")
    p.add_argument("--rounds", type=int, default=7, help="alternating rounds (median over them)")
    p.add_argument("--steps", type=int, default=None, help="steps per method per round (default 2 CPU, 20 CUDA)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps per method (default 2 CPU, 10 CUDA)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks", help="folder for training.md/.json")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device, key="--device")
    cuda = device.type == "cuda"
    config = args.config or ROOT / "configs" / ("brats-paper.yaml" if cuda else "phantom-cpu.yaml")
    size = args.size or (256 if cuda else 128)
    steps = args.steps or (20 if cuda else 2)
    warmup = args.warmup if args.warmup is not None else (10 if cuda else 2)
    base = load_train_config(config, [f"device={device.type}"])
    batch = base.data.batch_size

    states, batches, configs = {}, {}, {}
    for m in METHODS:
        torch.manual_seed(0)
        configs[m] = method_preset(config, m)
        cfg = load_train_config(configs[m], [f"device={device.type}", f"loss.method={m}"])
        n = cfg.data.batch_size
        batches[m] = tuple((torch.rand(n, 1, size, size) * 2 - 1).to(device) for _ in "AB")
        # statistics from the random batch: values do not change the step's cost
        probe = build_method(cfg.model, cfg.loss, discriminators=False)
        stats = probe.estimate_data_statistics(iter(batches[m][0]), iter(batches[m][1])) if probe.needs_data_statistics else None
        states[m] = build_state(cfg, device, data_statistics=stats)
    peak_mb = {}
    for m, s in states.items():
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        time_steps(s, *batches[m], warmup)
        if cuda:
            peak_mb[m] = torch.cuda.max_memory_allocated(device) / 2**20
    per_step: dict[str, list[float]] = {m: [] for m in METHODS}
    for r in range(args.rounds):
        order = METHODS[r % len(METHODS):] + METHODS[: r % len(METHODS)]
        for m in order:
            per_step[m].append(time_steps(states[m], *batches[m], steps))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{m} {per_step[m][-1] * 1000:.0f} ms" for m in METHODS),
              flush=True)
    med = {m: statistics.median(v) for m, v in per_step.items()}
    smooth_s = smoothness_share(states["harmonic"], size, batch)
    result = {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "package_version": __version__,
        "device": describe_device(device),
        "host": f"{platform.node()} ({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs)",
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "config": str(config.relative_to(ROOT) if config.is_relative_to(ROOT) else config),
        "image_size": [size, size], "batch_size": batch,
        "model": {"ngf": base.model.ngf, "n_blocks": base.model.n_blocks, "ndf": base.model.ndf},
        "amp_bf16": resolve_precision(device, base.amp) == "bf16", "channels_last": bool(cuda and base.channels_last),
        "rounds": args.rounds, "steps_per_round": steps, "warmup_steps": warmup,
        "method_configs": {m: str(c.relative_to(ROOT) if c.is_relative_to(ROOT) else c) for m, c in configs.items()},
        "batch_sizes": {m: batches[m][0].shape[0] for m in METHODS},
        "median_step_s": med,
        "pairs_per_s": {m: batches[m][0].shape[0] / v for m, v in med.items()},
        "step_time_ratio_vs_cyclegan": {m: med[m] / med["cyclegan"] for m in METHODS},
        # within-round ratios cancel load drift between rounds; their median is the steadier comparison
        "paired_ratio_vs_cyclegan": {m: statistics.median(x / c for x, c in zip(per_step[m], per_step["cyclegan"]))
                                     for m in METHODS},
        "smoothness_fwd_bwd_s_per_step": smooth_s,
        "peak_gpu_memory_mib": peak_mb or None,
        "all_step_s": per_step,
    }
    ratio = result["paired_ratio_vs_cyclegan"]["harmonic"]
    result["smoothness_overhead_target_met"] = ratio <= 1.10
    write_report(result, args.out)
    print(f"device: {result['device']}; {size}x{size}, batch {batch}, config {result['config']}")
    for m in METHODS:
        mem = f", peak {peak_mb[m]:.0f} MiB" if peak_mb else ""
        print(f"  {m:12s} {med[m] * 1000:8.1f} ms/step  {result['pairs_per_s'][m]:7.2f} pairs/s  "
              f"x{result['paired_ratio_vs_cyclegan'][m]:.3f} (paired){mem}")
    print(f"  smoothness fwd+bwd (both cycles): {smooth_s * 1000:.1f} ms/step; harmonic/cyclegan = {ratio:.3f} "
          f"({'meets' if ratio <= 1.10 else 'misses'} the <= 1.10 target)")
    return result


def write_report(r: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "training.json", r)
    rows = "\n".join(
        f"| {m} | `{r.get('method_configs', {}).get(m, r['config'])}`, batch {r.get('batch_sizes', {}).get(m, r['batch_size'])} | {r['median_step_s'][m] * 1000:.1f} | {r['pairs_per_s'][m]:.2f} | {r['step_time_ratio_vs_cyclegan'][m]:.3f} |"
        f" {r['paired_ratio_vs_cyclegan'][m]:.3f} |"
        + (f" {r['peak_gpu_memory_mib'][m]:.0f} |" if r["peak_gpu_memory_mib"] else "")
        for m in METHODS)
    mem_head = " peak GPU MiB |" if r["peak_gpu_memory_mib"] else ""
    mem_rule = "---:|" if r["peak_gpu_memory_mib"] else ""
    text = f"""# Training step time of every method

Written by `pipelines/benchmarks/bench_training.py` on {r['created']} (mri-harmonic {r['package_version']}, torch {r['torch']}).

- Device: **{r['device']}**; host {r['host']}; load average at the end {r['load_average']}
- Config `{r['config']}` at {r['image_size'][0]}x{r['image_size'][1]}, batch {r['batch_size']}, generator ngf {r['model']['ngf']} x {r['model']['n_blocks']} blocks, discriminator ndf {r['model']['ndf']}; bf16 autocast {r['amp_bf16']}, channels_last {r['channels_last']}
- {r['rounds']} alternating rounds x {r['steps_per_round']} steps per method (after {r['warmup_steps']} warm-up steps); median per step. Random inputs.

| method | preset, batch | ms / step | pairs / s | x cyclegan (medians) | x cyclegan (median of within-round ratios) |{mem_head}
|---|---|---:|---:|---:|---:|{mem_rule}
{rows}

Smoothness term (forward + backward, both cycles) alone: {r['smoothness_fwd_bwd_s_per_step'] * 1000:.1f} ms per step.
Target harmonic / cyclegan <= 1.10 (within-round ratio): **{'met' if r['smoothness_overhead_target_met'] else 'missed'}** ({r['paired_ratio_vs_cyclegan']['harmonic']:.3f}).
On a shared CPU the per-round times scatter with the machine's load (see `all_step_s` in training.json); the
smoothness-alone figure is the steadier measure of the term's cost.
"""
    atomic_write_text(out / "training.md", text)


if __name__ == "__main__":
    main()
