"""The shipped pretrained phantom models (pretrained/, made by pipelines/pretrain_demo.py, used by `make demo`): they
load as runs and clearly beat the untranslated input on MAE and SSIM on new phantom subjects (a phantom seed they
never saw).

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
#: "Beats" means clearly, not by noise: MAE at least 3 % below the input's and SSIM at least 0.02 above. The
#: 2,400-step presets, which sit at the floor on the validation split (reports/preset_tuning/), come within 1 % / 0.015
#: of the input here and fail; the 9,600-step runs measured 10 % / 0.05 better on the validation split.
MAE_RATIO, SSIM_GAIN = 0.97, 0.02

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


def test_pretrained_models_beat_the_untranslated_input_on_new_subjects(new_phantom_store):
    from mri_harmonic.data.store import SliceStore
    from mri_harmonic.evaluation.evaluate import REFERENCE_RUN, compute_evaluation

    store = SliceStore(new_phantom_store)
    assert store.manifest.query("split == 'val'")["subject"].nunique() == 2
    result = compute_evaluation(list(PRETRAINED.values()), store, split="val", directions="flair2t1", device="cpu",
                                progress=False)
    s = result.summary
    s = s[(s.region == "slice") & (s.scale == "0-255") & (s.direction == "flair2t1")]
    value = {(r.run, r.metric): r.mean for r in s.itertuples()}
    for folder in PRETRAINED.values():
        run = folder.name
        assert value[(run, "MAE")] < MAE_RATIO * value[(REFERENCE_RUN, "MAE")], (run, value)
        assert value[(run, "SSIM")] > value[(REFERENCE_RUN, "SSIM")] + SSIM_GAIN, (run, value)
