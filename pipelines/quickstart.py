#!/usr/bin/env python
"""The main job on the built-in data, end to end (``make demo``: 16.9 min from a fresh clone on the idle 2-core
development machine, 2026-12-01), ending with a one-line verdict.

1. ``mri-harmonic phantom``    16 new subjects (phantom seed 1; the pretrained models saw seed 0)  -> WORK/data
2. ``mri-harmonic preprocess`` the slice store (2 mm, 96x96; 8 / 4 / 4 subjects train/val/test)    -> WORK/store
3. ``mri-harmonic train``      a live HarmonicGAN FLAIR<->T1 run, configs/phantom-cpu-demo.yaml (2,400
                               steps, ~11 min): training working, from scratch, on this machine     -> WORK/run-phantom-cpu-demo
4. ``mri-harmonic evaluate``   the validation split, both directions, beside the untranslated input:
                               the pretrained HarmonicGAN and CycleGAN (pretrained/, 9,600 steps each,
                               pipelines/pretrain_demo.py), with a blinded reader study of the two  -> WORK/report-pretrained
                               and the live run                                                     -> WORK/report-phantom-cpu-demo
5. ``mri-harmonic translate``  one test subject's FLAIR volume -> a synthetic T1 NIfTI (pretrained
                               HarmonicGAN)                                                         -> WORK/synthetic-phantom-harmonic

The closing verdict is the pretrained HarmonicGAN's. Without pretrained/ the demo says so in one line, skips step
4's pretrained part and translates with the live run. The live run's line says plainly whether it beats the
untranslated input yet: 2,400 steps is a quarter of the pretrained models' budget; ``--config
configs/phantom-cpu-long.yaml`` trains the full 9,600 (~45 min in fp32 here).

Finished steps are skipped, so running it again continues where it stopped. A training run cut short (by the time
budget of this invocation, or Ctrl-C) is never taken for a finished one: the demo still evaluates what it has, says
"after step N of M (training not finished)", writes no ``DONE`` and exits with code 3; the next run continues it (with
a fresh time budget). The verdict is measured on the validation split; the test split is kept for the translation.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, log, phantom_complete, read_json, repo_relative, run_cli, train_command  # noqa: E402

from mri_harmonic.cli.train import EXIT_TIME_BUDGET  # noqa: E402

DEFAULT_CONFIG = "configs/phantom-cpu-demo.yaml"
#: The live run's time budget in each invocation: 2,400 steps at ~270 ms (fp32, 2 idle cores) with room to spare;
#: a busier machine cuts the run (exit 3) and the next invocation continues it.
BUDGET_MINUTES = 14.0
#: The demo's phantom: a seed the pretrained models never saw (they trained on seed 0), and the benchmark's split
#: (8 / 4 / 4 subjects of 16) so that 4 subjects are validated; 2 mm, 96x96 as the pretrained models' store.
PHANTOM_SEED, SUBJECTS, PREPROCESS = 1, 16, "configs/preprocess-phantom-benchmark.yaml"
#: Pretrained exports (pipelines/pretrain_demo.py), method -> folder; HarmonicGAN's gives the closing verdict.
PRETRAINED = {"harmonic": Path("pretrained/phantom-harmonic"), "cyclegan": Path("pretrained/phantom-cyclegan")}
READER_STUDY = 20
#: The split of the verdict; ``flair2t1`` is the demo's direction.
SPLIT, DIRECTION = "val", "flair2t1"
NOT_FINISHED = EXIT_TIME_BUDGET  # the demo's exit status while its training is not finished, as `train`'s


def training_status(run_dir: Path) -> dict:
    """``{"finished": bool, "step": int, "planned": int | None, "stopped": str | None, "elapsed_s": float}`` of a run.

    ``finished`` is the trainer's ``summary.json`` field; a summary without it (older trainers) counts as finished
    only when it stopped because it was ``completed`` or reached ``max_steps``. No summary: not finished.
    """
    summary = read_json(Path(run_dir) / "summary.json", {}) or {}
    stopped = summary.get("stopped")
    finished = summary.get("finished")
    if finished is None:
        finished = stopped in ("completed", "max_steps")
    planned = summary.get("planned_steps")
    if planned is None:
        planned = _configured_max_steps(run_dir)
    return {"finished": bool(finished), "step": int(summary.get("step", 0)), "planned": planned, "stopped": stopped,
            "elapsed_s": float(summary.get("elapsed_s", 0.0))}


def _configured_max_steps(run_dir: Path) -> int | None:
    from mri_harmonic.training.config import load_train_config

    path = Path(run_dir) / "config.yaml"
    return load_train_config(path).max_steps if path.is_file() else None


def resume_overrides(run_dir: Path, config: str, overrides: list[str], budget_minutes: float | None) -> list[str]:
    """The demo's training overrides. Each invocation gets a full time budget (``budget_minutes``, else the config's):
    the trainer counts ``time_budget_minutes`` across resumes, so continuing a cut run sets it to the time already
    spent plus the budget (without that, the old budget would stop the run again at once)."""
    from mri_harmonic.training.config import load_train_config

    budget = budget_minutes if budget_minutes is not None else load_train_config(config, overrides).time_budget_minutes
    spent = training_status(run_dir)["elapsed_s"] / 60
    if budget is None or (spent == 0 and budget_minutes is None):
        return list(overrides)
    return [*overrides, f"time_budget_minutes={round(spent + budget, 3)}"]


def figures(report_dir: Path, run: str | None = None, direction: str = DIRECTION) -> dict[str, float]:
    """``{"MAE", "MAE_input", "SSIM", "SSIM_input"}`` of ``run`` (an evaluation's run label; ``None``: its only run)
    and of the untranslated input, from the evaluation's ``summary.csv``: whole slice, 0-255 scale."""
    import pandas as pd

    from mri_harmonic.evaluation.evaluate import REFERENCE_RUN

    summary = pd.read_csv(Path(report_dir) / "summary.csv")
    rows = summary[(summary["direction"] == direction) & (summary["region"] == "slice") & (summary["scale"] == "0-255")]
    runs = sorted(set(rows["run"]) - {REFERENCE_RUN})
    if run is None:
        if len(runs) != 1:
            raise ValueError(f"{report_dir} evaluates runs {runs}; name one")
        run = runs[0]
    value = {(r.run, r.metric): float(r.mean) for r in rows.itertuples()}
    return {f"{m}{tail}": value[(name, m)] for m in ("MAE", "SSIM") for name, tail in ((run, ""), (REFERENCE_RUN, "_input"))}


def verdict(report_dir: Path, status: dict | None = None, direction: str = DIRECTION, run: str | None = None) -> str:
    """One line: ``run`` (default: the evaluation's only run) against the untranslated input, whole slice; prefixed
    with "after step N of M (training not finished)" when ``status`` says the run is not finished."""
    from mri_harmonic.directions import DIRECTIONS

    f = figures(report_dir, run, direction)
    meta = json.loads((Path(report_dir) / "evaluation.json").read_text())
    src, tgt = (m.capitalize() if m == "flair" else m.upper() for m in DIRECTIONS[direction])
    store = meta["store"]
    better = [name for name, ok in (("MAE", f["MAE"] < f["MAE_input"]), ("SSIM", f["SSIM"] > f["SSIM_input"])) if ok]
    judged = ("better than the untranslated input on MAE and SSIM" if len(better) == 2 else
              f"better than the untranslated input on {better[0]} only" if better else
              "NOT better than the untranslated input")
    n = store["n_subjects"]
    line = (f"{src}->{tgt} on {n} {_split_name(store['split'])} subject{'s' if n != 1 else ''}: MAE {f['MAE']:.1f} "
            f"(untranslated input {f['MAE_input']:.1f}), SSIM {f['SSIM']:.2f} ({f['SSIM_input']:.2f}): {judged}")
    if status is not None and not status["finished"]:
        of = f" of {status['planned']:,}" if status.get("planned") else ""
        line = f"after step {status['step']:,}{of} (training not finished): " + line
    return line


def live_verdict(report_dir: Path, status: dict, pretrained_steps: int | None) -> str:
    """The live run's line: its verdict, and, when it does not beat the input on both, that its short budget is why
    (in the pretrained models' terms)."""
    line = verdict(report_dir, status)
    steps = f"{status['step']:,} steps" + ("" if status["finished"] else " so far")
    if not line.endswith("on MAE and SSIM"):
        budget = f" of the pretrained models' {pretrained_steps:,}" if pretrained_steps else ""
        line += f" — {steps}{budget}, too short a budget to beat it on both yet"
    return line


def missing_pretrained(folders: dict[str, Path]) -> list[str]:
    """The pretrained exports that are not there (they ship in pretrained/; `make pretrained` makes them)."""
    return [str(p) for p in folders.values() if not (Path(p) / "checkpoints" / "latest.pt").is_file()]


#: What the demo says when pretrained/ lacks its models (a checkout without them): where they come from.
NO_PRETRAINED = ("no pretrained models in pretrained/ ({missing} missing; they ship with the repository, see "
                 "pretrained/phantom-harmonic/PROVENANCE.md in a fresh clone): this demo shows the live run only. "
                 "`make pretrained` exports them again from the phantom benchmark's seed-0 runs")


def _split_name(split: str) -> str:
    return {"val": "validation", "test": "test", "train": "training"}.get(split, split)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=ROOT / "work" / "quickstart")
    ap.add_argument("--subjects", type=int, default=SUBJECTS)
    ap.add_argument("--config", default=DEFAULT_CONFIG, help="training config of the live run (YAML)")
    ap.add_argument("--budget-minutes", type=float, default=BUDGET_MINUTES,
                    help=f"the live run's training time budget in this invocation (default {BUDGET_MINUTES:g})")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="TrainConfig override, e.g. max_steps=200")
    args = ap.parse_args(argv)
    args.work = repo_relative(args.work)
    os.chdir(ROOT)  # paths in logs and reports are relative to the repository
    missing = missing_pretrained(PRETRAINED)
    if missing:
        log(NO_PRETRAINED.format(missing=", ".join(missing)))
    w = args.work
    if not phantom_complete(w / "data", args.subjects):
        run_cli(["phantom", w / "data", "--subjects", args.subjects, "--seed", PHANTOM_SEED])
    if not (w / "store" / "store.json").is_file():
        run_cli(["preprocess", w / "data", w / "store", "--config", PREPROCESS])
    suffix = f"-{Path(args.config).stem}"
    run, report = w / f"run{suffix}", w / f"report{suffix}"
    if not (run / "DONE").is_file():
        run_cli(train_command(w / "store", run, args.config, DIRECTION,
                              resume_overrides(run, args.config, args.overrides, args.budget_minutes)),
                ok_codes=(0, EXIT_TIME_BUDGET))
    status = training_status(run)
    if status["finished"]:
        (run / "DONE").write_text("ok\n")
    else:
        of = f" of {status['planned']:,}" if status["planned"] else ""
        log(f"training stopped at step {status['step']:,}{of} ({status['stopped']}): not finished; evaluating what "
            "there is; run the same command again to continue")
    latest = run / "checkpoints" / "latest.pt"
    if not _newer(report / "report.md", latest):
        run_cli(["evaluate", run, "--store", w / "store", "--split", SPLIT, "--out", report])
    if missing:
        return _live_only(w, run, report, status)
    pretrained_report = w / "report-pretrained"
    newest = max((p / "checkpoints" / "latest.pt" for p in PRETRAINED.values()), key=lambda p: p.stat().st_mtime)
    if not (_newer(pretrained_report / "report.md", newest) and _newer(pretrained_report / "report.md", w / "store" / "store.json")):
        run_cli(["evaluate", *PRETRAINED.values(), "--store", w / "store", "--split", SPLIT, "--out", pretrained_report,
                 "--reader-study", READER_STUDY])

    harmonic = PRETRAINED["harmonic"]
    out = _translate_test_volume(w, harmonic)
    pretrained_steps = _step(harmonic)
    log("where to look:")
    log(f"  {pretrained_report / 'report.md'}  (the pretrained HarmonicGAN and CycleGAN: tables, figures, tumour checks; "
        "the input-as-output row is the floor to beat)")
    log(f"  {pretrained_report / 'figures' / f'samples_{DIRECTION}.png'}  (input FLAIR | each method's synthetic T1 | "
        "real T1 | |error|)")
    log(f"  {pretrained_report / 'reader_study' / 'sheet.html'}  (a blinded reader study of the two, {READER_STUDY} slices)")
    log(f"  {report / 'report.md'} and {run / 'samples'}  (the run trained just now)")
    log(f"  {out}  (a whole test volume translated by the pretrained HarmonicGAN, on the input's grid)")
    log(f"  {harmonic / 'PROVENANCE.md'}  (how the pretrained models were trained)")
    log("pretrained CycleGAN: " + verdict(pretrained_report, None, DIRECTION, PRETRAINED["cyclegan"].name))
    log("pretrained HarmonicGAN: " + verdict(pretrained_report, None, "t12flair", harmonic.name) + " (the other direction)")
    log(f"trained just now ({run.name}): " + live_verdict(report, status, pretrained_steps))
    log("pretrained HarmonicGAN: " + verdict(pretrained_report, None, DIRECTION, harmonic.name))
    return 0 if status["finished"] else NOT_FINISHED


def _translate_test_volume(w: Path, run_dir: Path) -> Path:
    """Translate the first test subject's FLAIR volume with ``run_dir`` (skipped when already newer than its model)."""
    import pandas as pd

    manifest = pd.read_csv(w / "store" / "manifest.csv", dtype={"subject": str})
    subject = sorted(manifest.loc[manifest["split"] == "test", "subject"].unique())[0]
    out = w / f"synthetic-{Path(run_dir).name}" / f"{subject}_t1_synthetic.nii.gz"
    if not _newer(out, Path(run_dir) / "checkpoints" / "latest.pt"):
        run_cli(["translate", run_dir, w / "data" / subject / f"{subject}_flair.nii.gz", out, "--direction", DIRECTION])
    return out


def _live_only(w: Path, run: Path, report: Path, status: dict) -> int:
    """The demo without pretrained models: the live run's volume, where to look and its verdict line."""
    out = _translate_test_volume(w, run)
    log("where to look:")
    log(f"  {report / 'report.md'}  (the run trained just now: tables, figures, tumour checks; the input-as-output row "
        "is the floor to beat)")
    log(f"  {report / 'figures' / f'samples_{DIRECTION}.png'} and {run / 'samples'}  (input FLAIR | synthetic T1 | real T1)")
    log(f"  {out}  (a whole test volume translated by the run, on the input's grid)")
    log(f"trained just now ({run.name}): " + live_verdict(report, status, None))
    return 0 if status["finished"] else NOT_FINISHED


def _step(run_dir: Path) -> int | None:
    """The training step of a run's latest checkpoint, from the export's facts or the run's summary."""
    facts = read_json(Path(run_dir) / "exported.json", None) or read_json(Path(run_dir) / "summary.json", {}) or {}
    return facts.get("step")


def _newer(output: Path, than: Path) -> bool:
    """``output`` exists and was written after ``than`` (a run trained further makes its old outputs stale)."""
    return output.is_file() and than.is_file() and output.stat().st_mtime >= than.stat().st_mtime


if __name__ == "__main__":
    sys.exit(main())
