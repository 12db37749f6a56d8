#!/usr/bin/env python
"""The main job on the built-in data, end to end (``make demo``), ending with a one-line verdict.

1. ``mri-harmonic phantom``    a 16-subject MR-physics phantom in the BraTS 2021 layout   -> WORK/data
2. ``mri-harmonic preprocess`` the slice store (2 mm, 96x96, subject-wise splits)       -> WORK/store
3. ``mri-harmonic train``      HarmonicGAN FLAIR<->T1, configs/phantom-cpu-long.yaml     -> WORK/run-phantom-cpu-long
4. ``mri-harmonic evaluate``   the validation split, both directions: metrics by region beside the untranslated
                               input, tumour fidelity, figures                              -> WORK/report-phantom-cpu-long
5. ``mri-harmonic translate``  one test subject's FLAIR volume -> a synthetic T1 NIfTI    -> WORK/synthetic-phantom-cpu-long

Training: 9,600 steps, the shortest CPU budget measured to give a T1-like Flair -> T1 (the 2,400-step
``phantom-cpu.yaml`` scores no better than the untranslated input on the validation split; reports/preset_tuning/).
``amp: auto`` trains under bf16 autocast on CPUs with native bf16 (AVX512-BF16 or AMX) and in fp32 elsewhere.

Finished steps are skipped, so running it again continues where it stopped. A training run cut short (by its time
budget, or Ctrl-C) is never taken for a finished one: the demo still evaluates what it has, says "after step N of M
(training not finished)", writes no ``DONE`` and exits with code 3; the next run continues it (with a fresh time
budget). The verdict is measured on the validation split, on which the presets were chosen; the test split is kept
for ``make benchmark``.
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

DEFAULT_CONFIG = "configs/phantom-cpu-long.yaml"
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


def verdict(report_dir: Path, status: dict, direction: str = DIRECTION) -> str:
    """One line from the evaluation's ``summary.csv``: the run against the untranslated input, whole slice."""
    import pandas as pd

    from mri_harmonic.directions import DIRECTIONS
    from mri_harmonic.evaluation.evaluate import REFERENCE_RUN

    summary = pd.read_csv(Path(report_dir) / "summary.csv")
    meta = json.loads((Path(report_dir) / "evaluation.json").read_text())
    rows = summary[(summary["direction"] == direction) & (summary["region"] == "slice") & (summary["scale"] == "0-255")]
    value = {(r.run == REFERENCE_RUN, r.metric): r.mean for r in rows.itertuples()}
    mae, mae0, ssim, ssim0 = (value[(ref, m)] for m in ("MAE", "SSIM") for ref in (False, True))
    src, tgt = (m.capitalize() if m == "flair" else m.upper() for m in DIRECTIONS[direction])
    store = meta["store"]
    better = [name for name, ok in (("MAE", mae < mae0), ("SSIM", ssim > ssim0)) if ok]
    judged = ("better than the untranslated input on MAE and SSIM" if len(better) == 2 else
              f"better than the untranslated input on {better[0]} only" if better else
              "NOT better than the untranslated input")
    n = store["n_subjects"]
    line = (f"{src}->{tgt} on {n} {_split_name(store['split'])} subject{'s' if n != 1 else ''}: MAE {mae:.1f} "
            f"(untranslated input {mae0:.1f}), SSIM {ssim:.2f} ({ssim0:.2f}): {judged}")
    if not status["finished"]:
        of = f" of {status['planned']:,}" if status.get("planned") else ""
        line = f"after step {status['step']:,}{of} (training not finished): " + line
    return line


def _split_name(split: str) -> str:
    return {"val": "validation", "test": "test", "train": "training"}.get(split, split)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=ROOT / "work" / "quickstart")
    ap.add_argument("--subjects", type=int, default=16)
    ap.add_argument("--config", default=DEFAULT_CONFIG, help="training config (YAML)")
    ap.add_argument("--budget-minutes", type=float, default=None,
                    help="training time budget of this invocation (default: the config's time_budget_minutes)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="TrainConfig override, e.g. max_steps=200")
    args = ap.parse_args(argv)
    args.work = repo_relative(args.work)
    os.chdir(ROOT)  # paths in logs and reports are relative to the repository
    w = args.work
    if not phantom_complete(w / "data", args.subjects):
        run_cli(["phantom", w / "data", "--subjects", args.subjects, "--seed", 0])
    if not (w / "store" / "store.json").is_file():
        run_cli(["preprocess", w / "data", w / "store", "--config", "configs/preprocess-phantom.yaml"])
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
    if not _newer(report / "report.md", latest):  # a reader study needs two runs: `make benchmark` writes one
        run_cli(["evaluate", run, "--store", w / "store", "--split", SPLIT, "--out", report])

    import pandas as pd

    manifest = pd.read_csv(w / "store" / "manifest.csv", dtype={"subject": str})
    subject = sorted(manifest.loc[manifest["split"] == "test", "subject"].unique())[0]
    flair = w / "data" / subject / f"{subject}_flair.nii.gz"
    out = w / f"synthetic{suffix}" / f"{subject}_t1_synthetic.nii.gz"
    if not _newer(out, latest):
        run_cli(["translate", run, flair, out, "--direction", DIRECTION])
    log("where to look:")
    log(f"  {report / 'report.md'}  (tables, figures, tumour checks; the input-as-output row is the floor to beat)")
    log(f"  {report / 'figures' / f'samples_{DIRECTION}.png'}  (input FLAIR | synthetic T1 | real T1 | |error|)")
    log(f"  {run / 'samples'}  (training progress)")
    log(f"  {out}  (a whole test volume translated, on the input's grid)")
    log(verdict(report, status))
    log(verdict(report, status, "t12flair") + " (the other direction, trained alongside)")
    return 0 if status["finished"] else NOT_FINISHED


def _newer(output: Path, than: Path) -> bool:
    """``output`` exists and was written after ``than`` (a run trained further makes its old outputs stale)."""
    return output.is_file() and than.is_file() and output.stat().st_mtime >= than.stat().st_mtime


if __name__ == "__main__":
    sys.exit(main())
