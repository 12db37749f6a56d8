#!/usr/bin/env python
"""Re-run the paired comparison of an evaluation report from its per_slice.csv, without the checkpoints.

    python pipelines/recompare.py reports/phantom/test [--baseline cyclegan]

Rewrites ``comparison.csv`` and the "Paired comparison" section of ``report.md`` with the interval of
:mod:`mri_harmonic.evaluation.compare` (test subjects and training seeds; a verdict only with enough of both). Runs
without ``group``/``seed`` columns (reports written before issue 12) count as one seed each. With ``--withdraw-tumour``
it also replaces the report's "Tumour fidelity" section, written with the withdrawn flags, by a note and deletes
its tumour CSVs: the new measures need the translations, i.e. the checkpoints (retrain with the report's pipeline).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mri_harmonic.evaluation.compare import compare_runs, comparison_markdown  # noqa: E402
from mri_harmonic.utils.io import atomic_write_csv, atomic_write_text  # noqa: E402

WITHDRAWN = """## Tumour fidelity

The flags this report was first written with ("contrast lost", "hallucinated") were withdrawn (issue 12): the
hallucination flag thresholded the unsigned error and flagged the untranslated input on 97.6 % of slices, and
"contrast lost" had no upper bound. The runs' checkpoints are gone, so the new signed measures (erased,
wrong-direction and invented lesions against normal-appearing white matter, calibrated in
[reports/fidelity_controls/](../fidelity_controls/README.md)) could not be computed for them; retrain with
`python pipelines/phantom_benchmark.py` to score these methods with them. What doing nothing scores on this test
split is in the controls report (rows `input`).

"""


def replace_section(text: str, title_prefix: str, new: str) -> str:
    """Replace the ``## `` section whose title starts with ``title_prefix`` (up to the next ``## ``) by ``new``."""
    m = re.search(rf"^## {re.escape(title_prefix)}.*?(?=^## )", text, flags=re.S | re.M)
    if not m:
        raise SystemExit(f"report.md has no section '## {title_prefix}…'")
    return text[: m.start()] + new + text[m.end():]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("report", type=Path)
    ap.add_argument("--baseline", default="cyclegan")
    ap.add_argument("--withdraw-tumour", action="store_true")
    args = ap.parse_args(argv)
    per_slice = pd.read_csv(args.report / "per_slice.csv", dtype={"subject": str})
    cmp = compare_runs(per_slice, args.baseline)
    atomic_write_csv(args.report / "comparison.csv", cmp)
    section = "\n".join([
        f"## Paired comparison against {args.baseline} (whole slice, 0-255)", "",
        "Recomputed from per_slice.csv by `python pipelines/recompare.py` (issue 12): mean of the per-slice "
        "differences, aggregated per test subject, with a 95 % interval over test subjects and training seeds "
        "(comparison.csv; mri_harmonic/evaluation/compare.py).", "",
        comparison_markdown(cmp, args.baseline), "", ""])
    report = args.report / "report.md"
    text = replace_section(report.read_text(), "Paired comparison", section)
    if args.withdraw_tumour:
        text = replace_section(text, "Tumour fidelity", WITHDRAWN)
        text = text.replace("- `tumour_per_slice.csv`\n", "").replace("- `tumour_summary.csv`\n", "")
        for name in ("tumour_per_slice.csv", "tumour_summary.csv"):
            (args.report / name).unlink(missing_ok=True)
    atomic_write_text(report, text)
    print(comparison_markdown(cmp, args.baseline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
