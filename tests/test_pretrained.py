"""The shipped pretrained phantom models (pretrained/, made by pipelines/pretrain_demo.py, used by `make demo`): they
load as runs, reproduce their figures on new phantom subjects (a phantom seed they never saw) and beat the
untranslated input there on MAE and SSIM.

Skipped only while pretrained/ does not hold them; once it does, a model that loads badly or does not beat the input
fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = {m: ROOT / "pretrained" / f"phantom-{m}" for m in ("harmonic", "cyclegan")}
#: Phantom seed and subjects of the check: seed 1 as the demo's (the models trained on seed 0); 2 of 3 subjects
#: validated, at the pretrained models' preprocessing (2 mm, 96x96).
SEED, SUBJECTS = 1, 3
#: What the shipped exports score on these two new subjects (Flair -> T1, whole slice, 0-255; measured 2026-12-01 on
#: the development machine, fp32): {run: (MAE, SSIM)}, and the untranslated input's. The check is deterministic (fixed
#: phantom seed, fixed weights), so it is a regression test of loading and translating the exports (EMA weights, the
#: store's normalisation, the generator's layers), not a statistical claim. Whether the models beat the input in
#: general is measured where subjects are many enough for an interval: the phantom benchmark (11 validation subjects;
#: there they beat the input's Flair -> T1 MAE, 16.17 against 16.55, but not its SSIM, 0.698 against 0.703).
#: Re-exporting other weights changes these figures: update them from the assertion message.
EXPECTED = {"phantom-harmonic": (16.208, 0.7254), "phantom-cyclegan": (16.219, 0.7290)}
INPUT = (16.354, 0.7070)
#: Tolerance across CPUs and BLAS builds (the same weights gave identical figures on reruns here).
MAE_TOL, SSIM_TOL = 0.05, 0.002

pytestmark = pytest.mark.skipif(
    not all((p / "checkpoints" / "latest.pt").is_file() for p in PRETRAINED.values()),
    reason="pretrained/phantom-{harmonic,cyclegan} not in this checkout yet (made by pipelines/pretrain_demo.py)")


@pytest.fixture(scope="module")
def new_phantom_store(tmp_path_factory):
    from mri_harmonic.data.config import PreprocessConfig
    from mri_harmonic.data.phantom.writer import generate_phantom
    from mri_harmonic.data.preprocess import preprocess

    root = tmp_path_factory.mktemp("pretrained")
    generate_phantom(root / "data", subjects=SUBJECTS, seed=SEED, workers=1, progress=False)
    config = PreprocessConfig(in_plane_size=96, spacing=[2.0, 2.0, 2.0], split_fractions=[0.34, 0.66, 0.0])
    preprocess(root / "data", root / "store", config, workers=1, progress=False)
    return root / "store"


def test_pretrained_exports_are_what_their_provenance_says():
    from mri_harmonic.checkpoint import load_run, read_checkpoint

    for method, folder in PRETRAINED.items():
        ckpt = read_checkpoint(folder / "checkpoints" / "latest.pt")
        facts = json.loads((folder / "provenance.json").read_text())
        assert ckpt["inference_only"] and "optimizers" not in ckpt
        assert (ckpt["method"], facts["method"]) == (method, method)
        assert ckpt["step"] == facts["training"]["step"] == facts["training"]["planned_steps"]
        assert facts["phantom"]["seed"] != SEED
        assert (folder / "checkpoints" / "latest.pt").stat().st_size < 4e6
        run = load_run(folder)
        assert (run.image_size, run.domain_a, run.domain_b) == ((96, 96), "flair", "t1")


def test_pretrained_models_reproduce_their_figures_and_beat_the_input_on_new_subjects(new_phantom_store):
    from mri_harmonic.data.store import SliceStore
    from mri_harmonic.evaluation.evaluate import REFERENCE_RUN, compute_evaluation

    store = SliceStore(new_phantom_store)
    assert store.manifest.query("split == 'val'")["subject"].nunique() == 2
    result = compute_evaluation(list(PRETRAINED.values()), store, split="val", directions="flair2t1", device="cpu",
                                progress=False)
    s = result.summary
    s = s[(s.region == "slice") & (s.scale == "0-255") & (s.direction == "flair2t1")]
    value = {(r.run, r.metric): r.mean for r in s.itertuples()}
    measured = {run: (value[(run, "MAE")], value[(run, "SSIM")]) for run in [*EXPECTED, REFERENCE_RUN]}
    assert measured[REFERENCE_RUN] == pytest.approx(INPUT, abs=1e-3), measured  # the same subjects and preprocessing
    for run, (mae, ssim) in EXPECTED.items():
        assert measured[run][0] == pytest.approx(mae, abs=MAE_TOL), measured
        assert measured[run][1] == pytest.approx(ssim, abs=SSIM_TOL), measured
        # and on these subjects, which they never saw, they are better than doing nothing on both metrics
        assert measured[run][0] < measured[REFERENCE_RUN][0] and measured[run][1] > measured[REFERENCE_RUN][1], measured
