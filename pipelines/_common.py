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

from mri_harmonic.cli.train import EXIT_TIME_BUDGET

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "mri_harmonic.cli"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run_cli(args: Sequence[str], *, threads: int | None = None, log_file: Path | None = None,
            ok_codes: Sequence[int] | None = (0,)) -> float:
    """Run ``mri-harmonic ARGS`` in a subprocess; return wall seconds; raise SystemExit on an exit code outside
    ``ok_codes`` (``None`` accepts any: the caller looks at the outputs, e.g. :func:`run_finished`)."""
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
    if ok_codes is not None and proc.returncode not in ok_codes:
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


class PipelineTimings(dict):
    """Seconds of a resumable pipeline's steps, kept in ``path`` (JSON): the entries a pipeline sets, plus ``total_s``
    (wall clock) and ``cpu_s`` (user + system of its finished child processes), each summed over every invocation;
    :meth:`save` after each step, and every minute while runs train (``train_in_parallel(on_tick=...)``), so an
    invocation killed mid-training loses at most a minute of wall time. A killed training's CPU time is in its own
    ``summary.json`` (:func:`training_costs`), not here."""

    def __init__(self, path: Path):
        super().__init__({k: v for k, v in (read_json(Path(path), {}) or {}).items() if not k.endswith("_before")})
        self.path = Path(path)
        self._wall_before, self._cpu_before = self.get("total_s", 0.0), self.get("cpu_s", 0.0)
        self._wall0, self._cpu0 = time.perf_counter(), children_cpu()

    def this_invocation_s(self) -> float:
        return time.perf_counter() - self._wall0

    def save(self) -> None:
        self["total_s"] = self._wall_before + self.this_invocation_s()
        self["cpu_s"] = self._cpu_before + (children_cpu() - self._cpu0)
        write_json(self.path, dict(self))

    def step(self, key: str, args: Sequence[str]) -> None:
        """Run the blocking CLI step ``args`` (:func:`run_cli`); record its wall seconds as ``KEY_s`` and its CPU
        seconds (user + system of the child) as ``KEY_cpu_s``; save."""
        cpu0 = children_cpu()
        self[f"{key}_s"] = run_cli(args)
        self[f"{key}_cpu_s"] = children_cpu() - cpu0
        self.save()


def children_cpu() -> float:
    """CPU seconds (user + system) of every finished child process of this one."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def runs_fingerprint(run_dirs: Sequence[Path]) -> dict[str, str]:
    """``{run folder: sha256 of its checkpoints/latest.pt}``: what an evaluation was computed from, by content (a
    fresh clone's file times say nothing)."""
    import hashlib

    out = {}
    for d in map(Path, run_dirs):
        h = hashlib.sha256()
        with open(d / "checkpoints" / "latest.pt", "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        out[str(d)] = h.hexdigest()
    return out


def evaluation_stale(run_dirs: Sequence[Path], report: Path) -> bool:
    """Whether ``report`` is missing or was not computed from exactly ``run_dirs``' current weights (its folder's
    ``evaluated.json``, written by :func:`mark_evaluated`, differs): a retrained or added run makes it stale."""
    report = Path(report)
    return not report.is_file() or read_json(report.parent / "evaluated.json") != runs_fingerprint(run_dirs)


def mark_evaluated(run_dirs: Sequence[Path], report: Path) -> None:
    """Record beside ``report`` which weights it was computed from (:func:`evaluation_stale` reads it)."""
    write_json(Path(report).parent / "evaluated.json", runs_fingerprint(run_dirs))


def keep_run(run_dir: Path, kept_dir: Path, provenance: dict | None = None) -> Path:
    """Keep a finished training run as ``kept_dir``: an inference-only export (``export_inference``: the translators'
    averaged weights, resolved config, the run's facts incl. its training clock and CPU time; ~2.7 MB at the CPU
    presets' widths) that ``evaluate`` takes as a run folder. A long pipeline keeps each run in its report folder as
    it finishes, so that a pipeline interrupted on one machine continues on another from its committed runs
    (``work/`` is not committed)."""
    from mri_harmonic.checkpoint import export_inference

    log(f"keeping {run_dir} as {kept_dir}")
    return export_inference(run_dir, kept_dir, provenance={"kept_by": Path(sys.argv[0]).name, "run": str(run_dir),
                                                           **versions()})


def is_kept(kept_dir: Path) -> bool:
    """Whether ``kept_dir`` holds a kept run (:func:`keep_run` writes ``exported.json`` last, atomically)."""
    return (Path(kept_dir) / "exported.json").is_file()


def preset_config(preset: str, method: str) -> str:
    """``configs/<preset>.yaml`` for HarmonicGAN, ``configs/<preset>-<method>.yaml`` for every other registered
    method (the registry names them; a one-line exit for a name it does not know)."""
    from mri_harmonic.methods import method_names

    if method not in method_names():
        raise SystemExit(f"unknown method {method!r}; choose from {', '.join(method_names())}")
    path = f"configs/{preset}.yaml" if method == "harmonic" else f"configs/{preset}-{method}.yaml"
    if not (ROOT / path).is_file():
        raise SystemExit(f"method {method!r} has no preset {path}; add one (extends: {preset}.yaml)")
    return path


def run_finished(run_dir: Path) -> bool:
    """Whether a training run is finished (``max_steps`` or the end of its schedule reached): ``finished`` in the
    ``summary.json`` that `mri-harmonic train` writes at every stop. A run stopped by its time budget or a signal is
    not; only a finished run may get a DONE file."""
    return bool((read_json(Path(run_dir) / "summary.json", {}) or {}).get("finished"))


def stop_reason(run_dir: Path) -> str:
    """``"; stopped at step N of M by SIGTERM"`` from the run's ``summary.json`` (empty when it wrote none): where a
    run stopped, without the trainer's own advice, which names the train command rather than the pipeline."""
    s = read_json(Path(run_dir) / "summary.json", {}) or {}
    if "step" not in s or s.get("finished"):
        return ""
    by = s.get("signal") or {"time_budget": "its time budget"}.get(s.get("stopped"), s.get("stopped") or "an error")
    return f"; stopped at step {s['step']} of {s.get('planned_steps', '?')} by {by}"


def train_command(store: Path, run_dir: Path, config: str, direction: str, overrides: Sequence[str] = ()) -> list:
    """``mri-harmonic train`` arguments for one run; adds ``--resume`` when the run has a checkpoint."""
    cmd: list = ["train", store, "--direction", direction, "--out", run_dir, "--config", config]
    for o in overrides:
        cmd += ["--set", o]
    if (Path(run_dir) / "checkpoints" / "latest.pt").is_file():
        cmd.append("--resume")
    return cmd


def usable_cores() -> int:
    """CPU cores this process may run on: its affinity mask (``taskset``, a scheduler's cpuset), else all."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


#: The file (in a pipeline's work folder) that drains its training: no new run starts, the running ones finish and
#: are kept, and the pipeline exits with :data:`NOT_FINISHED`; the next invocation removes it and continues.
DRAIN = "DRAIN"
NOT_FINISHED = EXIT_TIME_BUDGET  # as `mri-harmonic train`: not finished, run again to continue


def train_in_parallel(commands: dict[str, tuple[Path, list]], *, jobs: int, log_dir: Path, on_done=None,
                      on_tick=None, tick_s: float = 60.0, drain_file: Path | None = None) -> dict[str, float]:
    """Run ``{name: (run_dir, train_args)}`` at most ``jobs`` at a time, each with cores // jobs CPU threads.

    A finished run (:func:`run_finished`) gets ``run_dir/DONE`` and is skipped next time (so a killed pipeline
    continues); a failure, or a run that stopped before its end (time budget, signal), stops the others and exits
    with the log's path. Returns wall seconds per run trained now; ``on_done(name, seconds)``
    is called as each finishes, ``on_tick()`` every ``tick_s`` seconds while runs train (e.g. save timings).

    ``drain_file`` (default ``log_dir/../DRAIN``; ``touch`` it while the pipeline runs) stops new runs from
    starting: the running ones finish (and ``on_done`` keeps them), then the pipeline exits with
    :data:`NOT_FINISHED`, e.g. before a machine is taken away. A drain file left from before is removed at the start.
    """
    drain_file = Path(drain_file) if drain_file is not None else Path(log_dir).parent / DRAIN
    drain_file.unlink(missing_ok=True)
    threads = max(1, usable_cores() // max(1, jobs))
    pending = [n for n, (run_dir, _) in commands.items() if not (Path(run_dir) / "DONE").is_file()]
    active: dict[str, tuple[subprocess.Popen, float]] = {}
    seconds: dict[str, float] = {}
    last_tick = time.perf_counter()
    while pending or active:
        draining = drain_file.is_file()
        if draining and pending and not active:
            log(f"drained ({drain_file} exists): {len(pending)} run(s) not started ({', '.join(pending)}); "
                "run the pipeline again to continue")
            drain_file.unlink(missing_ok=True)
            raise SystemExit(NOT_FINISHED)
        while pending and len(active) < jobs and not draining:
            name = pending.pop(0)
            active[name] = (start_cli(commands[name][1], threads=threads, log_file=log_dir / f"train-{name}.log"), time.perf_counter())
        time.sleep(2)
        if on_tick is not None and time.perf_counter() - last_tick >= tick_s:
            on_tick()
            last_tick = time.perf_counter()
        for name, (proc, t0) in list(active.items()):
            if proc.poll() is None:
                continue
            del active[name]
            if proc.returncode != 0 or not run_finished(commands[name][0]):
                for other, _ in active.values():
                    other.terminate()
                raise SystemExit(f"training {name} is not finished (exit {proc.returncode}{stop_reason(commands[name][0])}); "
                                 f"see {log_dir / f'train-{name}.log'}; run the pipeline again to continue it")
            seconds[name] = time.perf_counter() - t0
            (Path(commands[name][0]) / "DONE").write_text("ok\n")
            log(f"trained {name} in {seconds[name] / 60:.1f} min")
            if on_done is not None:
                on_done(name, seconds[name])
    return seconds


def repo_relative(path: Path) -> Path:
    """``path`` (relative to the current folder) as a path relative to the repository when it lies inside it.

    Pipelines ``chdir`` to the repository so that the paths they pass on, and that reports print, are
    repository-relative (a committed report then names no machine's folders).
    """
    path = Path(path).resolve()
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def phantom_complete(data_dir: Path, subjects: int) -> bool:
    """Whether ``mri-harmonic phantom`` finished ``subjects`` subjects in ``data_dir`` (it writes phantom.json first,
    with an empty subject list, and fills the list when every subject is written)."""
    meta = read_json(Path(data_dir) / "phantom.json", {}) or {}
    return len(meta.get("subjects", [])) >= subjects


def parse_variants(specs: Sequence[str]) -> dict[str, list[str]]:
    """``["NAME=key=value[,key=value]", ...]`` -> ``{NAME: ["key=value", ...]}``; a malformed spec exits with one line."""
    variants: dict[str, list[str]] = {}
    for spec in specs:
        name, _, sets = spec.partition("=")
        if not name or not sets:
            raise SystemExit(f"error: --variant {spec!r}: expected NAME=key=value[,key=value]")
        variants[name] = sets.split(",")
    return variants


def markdown_rows(table, header: Sequence[str]) -> list[str]:
    """A Markdown table of ``table``'s ``header`` columns; floats below 1 with 3 decimals, others with 2."""
    def fmt(v) -> str:
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 1 else f"{v:.2f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(fmt(r[h]) for h in header) + " |" for _, r in table.iterrows()]


def training_clocks(run_dirs: dict[str, Path]) -> dict[str, float | None]:
    """Each run's own training time in seconds (:func:`training_costs`' ``clock_s``), so a report regenerated without
    retraining still records how long its runs took."""
    return {name: c["clock_s"] for name, c in training_costs(run_dirs).items()}


def training_costs(run_dirs: dict[str, Path]) -> dict[str, dict]:
    """Per run, from its ``summary.json`` (or a kept run's ``exported.json``; summed over resumptions): ``clock_s`` (training wall clock), ``cpu_s``
    (process CPU time, user + system) and ``cpu_from_step`` (0, or the step it counts from when the run's first
    steps were trained before CPU time was recorded), ``step``; ``None`` where a summary lacks the value (a run
    that wrote none, or one trained entirely before CPU time was recorded)."""
    out = {}
    for name, d in run_dirs.items():
        s = read_json(Path(d) / "summary.json") or read_json(Path(d) / "exported.json", {}) or {}  # a kept run: its export
        out[name] = {"clock_s": s.get("elapsed_s"), "cpu_s": s.get("cpu_s"),
                     "cpu_from_step": s.get("cpu_from_step"), "step": s.get("step")}
    return out


def trained_precision(run_dir: Path) -> str:
    """A table cell: the precision a run (or kept run) trained in, as its checkpoint recorded it (``fp32`` /
    ``bf16``), else ``not recorded (amp: <setting>)`` for runs from before the record."""
    import yaml

    d = Path(run_dir)
    facts = read_json(d / "exported.json") or read_json(d / "run.json") or {}
    if facts.get("precision") in ("fp32", "bf16"):
        return facts["precision"]
    cfg = yaml.safe_load((d / "config.yaml").read_text()) if (d / "config.yaml").is_file() else {}
    return f"not recorded (amp: {(cfg or {}).get('amp', '?')})"


def minutes(seconds: float | None, from_step: int | None = 0) -> str:
    """A table cell: ``seconds`` in minutes (empty when unknown), with ``(from step N)`` when it covers a run's later
    steps only (:func:`training_costs`' ``cpu_from_step``)."""
    if seconds is None:
        return ""
    return f"{seconds / 60:.1f}" + (f" (from step {from_step:,})" if from_step else "")


def compute_sentence(timings: dict, costs: dict[str, dict]) -> str:
    """One paragraph for a report: the pipeline's recorded wall time, the runs' training clock and CPU time (naming
    the runs whose CPU time was not recorded, or covers only their later steps), and the CPU time of the other steps
    (``*_cpu_s``)."""
    clock = sum(c["clock_s"] or 0 for c in costs.values())
    cpu = sum(c["cpu_s"] or 0 for c in costs.values())
    unrecorded = [n for n, c in costs.items() if c["cpu_s"] is None]
    partial = {n: c["cpu_from_step"] for n, c in costs.items() if c["cpu_s"] is not None and c["cpu_from_step"]}
    other = sum(v for k, v in timings.items() if k.endswith("_cpu_s"))
    text = (f"Training: {clock / 3600:.2f} h of training clock summed over {len(costs)} runs (the steps each run kept, "
            f"over all its resumptions) and {cpu / 3600:.2f} h of process CPU time measured")
    notes = []
    if unrecorded:
        notes.append(f"not recorded for {', '.join(unrecorded)}, trained before CPU time was recorded (their clock: "
                     f"{sum(costs[n]['clock_s'] or 0 for n in unrecorded) / 3600:.2f} h)")
    if partial:
        notes.append("counted from a later step for " + ", ".join(f"{n} (from step {s:,})" for n, s in partial.items()))
    text += (f" ({'; '.join(notes)})" if notes else "") + "."
    text += (f" Other steps (phantom, preprocessing, evaluation, as recorded): {other / 3600:.2f} h CPU. Wall time of the "
             f"pipeline as recorded over its invocations: {timings.get('total_s', 0) / 3600:.2f} h (saved every minute "
             "while runs train; an invocation killed before that was saved at each finished run lost its time since).")
    return text


def is_better(metric: str, value: float, base: float) -> bool:
    """``value`` beats ``base`` on ``metric`` (lower MAE/MSE, higher PSNR/SSIM, as the paired comparison counts it)."""
    from mri_harmonic.evaluation.compare import HIGHER_IS_BETTER

    return value > base if HIGHER_IS_BETTER[metric] else value < base
