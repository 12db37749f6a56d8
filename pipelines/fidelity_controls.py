#!/usr/bin/env python
"""Calibrate the tumour-fidelity measures on controls whose answer is known -> reports/fidelity_controls/.

    python pipelines/fidelity_controls.py          # ~2 min once the phantom store exists (else +5 min to build it)

Builds (or reuses) the phantom benchmark's 24-subject phantom and store (``mri-harmonic phantom`` + ``preprocess``
with configs/preprocess-phantom.yaml, in WORK = work/phantom), then scores every control of
:mod:`mri_harmonic.evaluation.fidelity_controls` on the test split in both directions with the default
:class:`~mri_harmonic.evaluation.tumour.TumourCheckConfig`, and writes ``README.md``, ``rates.csv`` (one row per
control x direction), ``per_slice.csv`` and ``lesions.csv``. The targets the thresholds were calibrated to are
printed next to the rates; the script exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, log, phantom_complete, repo_relative, run_cli, versions, write_json  # noqa: E402

from mri_harmonic.evaluation.tables import markdown_table  # noqa: E402

#: control -> (column of rates.csv, bound, "max"/"min", what it means)
TARGETS = {
    "real": ("flagged_slice_frac", 0.01, "max", "slices flagged (any erased, reversed or invented lesion)"),
    "blur1": ("flagged_slice_frac", 0.05, "max", "slices flagged"),
    "blur2": ("flagged_slice_frac", 0.05, "max", "slices flagged"),
    "noise": ("flagged_slice_frac", 0.05, "max", "slices flagged"),
    "inpainted": ("erased_frac", 0.95, "min", "conspicuous lesions erased"),
    "added": ("added_detected_frac", 0.95, "min", "added lesions found as invented"),
}


def pct(v) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f} %"


def readme(rates, cfg, args, seconds, n_slices, n_subjects) -> tuple[str, bool]:
    from mri_harmonic.evaluation import fidelity_controls as fc

    ok_all = True
    rows = []
    for _, r in rates.iterrows():
        target = TARGETS.get(r["control"])
        if target:
            col, bound, kind, _ = target
            v = r[col]
            ok = (not math.isnan(v)) and (v <= bound if kind == "max" else v >= bound)
            ok_all &= ok
            verdict = f"{'≤' if kind == 'max' else '≥'} {100 * bound:.0f} % of {TARGETS[r['control']][3]}: {'**met**' if ok else '**missed**'}"
        else:
            verdict = "(reported: what doing nothing scores)"
        rows.append([r["control"], r["direction"], r["n_scored_slices"], f"{r['n_lesions']} ({r['n_conspicuous']})", pct(r["erased_frac"]),
                     pct(r["wrong_direction_frac"]), pct(r["invented_slice_frac"]),
                     "–" if math.isnan(r.get("added_detected_frac", math.nan)) else f"{pct(r['added_detected_frac'])} of {int(r['n_added'])}",
                     pct(r["flagged_slice_frac"]), verdict])
    table = markdown_table(["control", "direction", "scored slices", "lesions (conspicuous)", "erased (of conspicuous)",
                            "wrong direction", "slices with an invented lesion", "added lesions found",
                            "slices flagged", "target"], rows)
    cfg_rows = [[f"`{f.name}`", getattr(cfg, f.name)] for f in dataclasses.fields(cfg)]
    text = f"""# Tumour-fidelity controls

Written by `python pipelines/fidelity_controls.py` ({seconds:.0f} s); phantom of {args.subjects} subjects (seed
{args.seed}), store built with `configs/preprocess-phantom.yaml`, **{args.split}** split: {n_slices} slices of
{n_subjects} subjects, scored in both directions. The measures are defined in `mri_harmonic/evaluation/tumour.py`;
the controls in `mri_harmonic/evaluation/fidelity_controls.py`; `tests/test_tumour.py` checks the same targets on
a smaller phantom.

Each control stands in for the synthetic image and is scored against the real target:

- **real**: the target itself. **blur1 / blur2**: the target smoothed by a Gaussian of σ 1 / 2 px. **noise**: the
  target plus Gaussian noise of sd {fc.NOISE_SD} (≈ {fc.NOISE_SD * 255:.0f}/255, about the phantom's own noise in
  white matter). None of these erases, reverses or invents a lesion, so they should not be flagged.
- **inpainted**: every labelled pixel replaced by white-matter pixels drawn from within {fc.INPAINT_RING} px of the
  lesion: each conspicuous lesion should be *erased*.
- **added**: one disc of radius {fc.ADDED_RADIUS} px with contrast {fc.ADDED_CONTRAST} ({fc.ADDED_CONTRAST * 255:.0f}/255)
  over white matter in the target's lesion direction (brighter in FLAIR, darker in T1), placed where the disc and
  its rim lie in white matter (slices with no such place are not counted): it should be found as *invented*.
- **input**: the untranslated source image scored as the translation — what doing nothing scores.

{table}

Reading the input rows: the untranslated FLAIR scored as a T1 shows most lesions in the wrong direction (bright
where T1 shows them dark) and invents lesion-like dark regions; the untranslated T1 as a FLAIR shows them dark where
FLAIR shows them bright. A translation should score far below these rows on every column; the real-target rows
are the floor (0). "Erased" counts conspicuous lesions (|contrast| ≥ `min_lesion_contrast`) only; "wrong
direction" is over all scored lesions; slices without NAWM (too little brain) are not scored.

## Thresholds (`TumourCheckConfig` defaults)

{markdown_table(["key", "value"], cfg_rows)}

Versions: {versions()}
"""
    return text, ok_all


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=ROOT / "work" / "phantom", help="phantom data and store (shared with phantom_benchmark.py)")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "fidelity_controls")
    ap.add_argument("--subjects", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", default="test")
    args = ap.parse_args(argv)
    args.work, args.out = repo_relative(args.work), repo_relative(args.out)
    os.chdir(ROOT)
    t0 = time.perf_counter()
    data, store_dir = args.work / "data", args.work / "store"
    if not phantom_complete(data, args.subjects):
        run_cli(["phantom", data, "--subjects", args.subjects, "--seed", args.seed])
    if not (store_dir / "store.json").is_file():
        run_cli(["preprocess", data, store_dir, "--config", "configs/preprocess-phantom.yaml"])

    from mri_harmonic.data.store import SliceStore
    from mri_harmonic.evaluation.fidelity_controls import control_rates, score_controls, store_slices
    from mri_harmonic.evaluation.tumour import TumourCheckConfig
    from mri_harmonic.utils.io import atomic_write_csv, atomic_write_text

    cfg = TumourCheckConfig()
    slices = store_slices(SliceStore(store_dir), args.split)
    log(f"scoring controls on {len(slices)} {args.split} slices")
    per_slice, lesions, added = score_controls(slices, cfg, seed=args.seed)
    rates = control_rates(per_slice, lesions, added)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(args.out / "rates.csv", rates)
    atomic_write_csv(args.out / "per_slice.csv", per_slice)
    atomic_write_csv(args.out / "lesions.csv", lesions)
    text, ok = readme(rates, cfg, args, time.perf_counter() - t0, len(slices), len({s["subject"] for s in slices}))
    atomic_write_text(args.out / "README.md", text)
    write_json(args.out / "command.json", {"argv": sys.argv, "subjects": args.subjects, "seed": args.seed, "split": args.split})
    log(f"{'all targets met' if ok else 'a target was MISSED'}; report: {args.out / 'README.md'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
