#!/usr/bin/env python
"""The main job on the built-in data, end to end (``make demo``): about 15 minutes on a 2-core CPU.

1. ``mri-harmonic phantom``    a 16-subject MR-physics phantom in the BraTS 2021 layout  -> work/quickstart/data
2. ``mri-harmonic preprocess`` the slice store (2 mm, 96x96, subject-wise splits)      -> work/quickstart/store
3. ``mri-harmonic train``      HarmonicGAN FLAIR<->T1 with configs/phantom-cpu.yaml      -> work/quickstart/run
4. ``mri-harmonic evaluate``   metrics by region, tumour fidelity, figures               -> work/quickstart/report
5. ``mri-harmonic translate``  one test subject's FLAIR volume -> a synthetic T1 NIfTI   -> work/quickstart/synthetic

Every step is skipped when its output is complete (for evaluate and translate: when its report / volume exists
and is newer than the run), so running it again continues where it stopped.
``--config configs/phantom-cpu-long.yaml`` trains four times longer (~45 min more) for a T1-like Flair -> T1; that
run goes to ``run-phantom-cpu-long`` (and its report to ``report-phantom-cpu-long``) beside the default one.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, phantom_complete, read_json, repo_relative, log, run_cli, run_finished, train_command  # noqa: E402
from mri_harmonic.cli.train import EXIT_TIME_BUDGET  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=ROOT / "work" / "quickstart")
    ap.add_argument("--subjects", type=int, default=16)
    ap.add_argument("--config", default="configs/phantom-cpu.yaml", help="training config (YAML)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="TrainConfig override, e.g. max_steps=200")
    args = ap.parse_args(argv)
    args.work = repo_relative(args.work)
    os.chdir(ROOT)  # paths in logs and reports are relative to the repository
    w = args.work
    if not phantom_complete(w / "data", args.subjects):
        run_cli(["phantom", w / "data", "--subjects", args.subjects, "--seed", 0])
    if not (w / "store" / "store.json").is_file():
        run_cli(["preprocess", w / "data", w / "store", "--config", "configs/preprocess-phantom.yaml"])
    suffix = "" if Path(args.config).name == "phantom-cpu.yaml" else f"-{Path(args.config).stem}"
    run, report = w / f"run{suffix}", w / f"report{suffix}"
    if not (run / "DONE").is_file():
        run_cli(train_command(w / "store", run, args.config, "flair2t1", args.overrides), ok_codes=(0, EXIT_TIME_BUDGET))
        if run_finished(run):  # DONE only at max_steps or the end of the schedule, never at the time budget
            (run / "DONE").write_text("ok\n")
        else:
            log(f"training is not finished ({read_json(run / 'summary.json', {}).get('message')}); evaluating the "
                "model as it is; to continue training run this again with --set time_budget_minutes=M (M above the "
                "budget used: it counts across resumes)")
    if not _newer(report / "report.md", run / "checkpoints" / "latest.pt"):  # a reader study needs two runs
        run_cli(["evaluate", run, "--store", w / "store", "--split", "test", "--out", report])

    import pandas as pd

    manifest = pd.read_csv(w / "store" / "manifest.csv", dtype={"subject": str})
    subject = sorted(manifest.loc[manifest["split"] == "test", "subject"].unique())[0]
    flair = w / "data" / subject / f"{subject}_flair.nii.gz"
    out = w / f"synthetic{suffix}" / f"{subject}_t1_synthetic.nii.gz"
    if not _newer(out, run / "checkpoints" / "latest.pt"):
        run_cli(["translate", run, flair, out, "--direction", "flair2t1"])
    log(f"report: {report / 'report.md'}   synthetic T1: {out}")
    return 0


def _newer(output: Path, than: Path) -> bool:
    """``output`` exists and was written after ``than`` (a retrained run makes its old outputs stale)."""
    return output.is_file() and than.is_file() and output.stat().st_mtime >= than.stat().st_mtime


if __name__ == "__main__":
    sys.exit(main())
