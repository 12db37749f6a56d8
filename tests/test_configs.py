"""Every YAML file in configs/ loads through its dataclass; a preset per method, whose variants differ from the
base preset only in the method (and, for methods with their own networks and training recipe, in its settings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mri_harmonic.config import load_config, to_dict
from mri_harmonic.errors import UserInputError
from mri_harmonic.methods import METHODS, method_names
from mri_harmonic.training.config import (
    TrainConfig,
    config_differences,
    load_train_config,
    resume_hash,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ALL = sorted(CONFIGS.glob("*.yaml"))
TRAIN = [p for p in ALL if not p.name.startswith("preprocess-")]
PREPROCESS = [p for p in ALL if p.name.startswith("preprocess-")]
VARIANTS = [m for m in method_names() if m != "harmonic"]


def test_configs_folder_has_the_presets():
    names = {p.name for p in TRAIN}
    for base in ("phantom-cpu", "brats-paper"):
        for suffix in ("", *(f"-{m}" for m in VARIANTS)):
            assert f"{base}{suffix}.yaml" in names


@pytest.mark.parametrize("path", TRAIN, ids=lambda p: p.name)
def test_train_config_loads(path):
    cfg = load_train_config(path)
    assert isinstance(cfg, TrainConfig)


@pytest.mark.parametrize("path", PREPROCESS, ids=lambda p: p.name)
def test_preprocess_config_loads(path):
    data_config = pytest.importorskip("mri_harmonic.data.config")
    load_config(data_config.PreprocessConfig, path)


#: What a variant of a method with its own networks and recipe (``loss.options``) may change besides the method:
#: its objective, optimiser, networks, batch (and the slices per epoch that keep the steps per epoch) and the image
#: pool. Never the run length (max_steps, time_budget_minutes, optim.epochs*), the data split or the run control.
RECIPE_KEYS = ("loss.", "optim.lr", "optim.beta1", "optim.beta2", "optim.weight_decay", "model.",
               "data.batch_size", "data.max_slices_per_epoch", "pool_size")


@pytest.mark.parametrize("base", ["phantom-cpu", "brats-paper"])
@pytest.mark.parametrize("method", VARIANTS)
def test_method_variants_differ_only_in_the_method(base, method):
    ref = load_train_config(CONFIGS / f"{base}.yaml")
    assert ref.loss.method == "harmonic"
    var = load_train_config(CONFIGS / f"{base}-{method}.yaml")
    diffs = config_differences(ref, var, ignore=())
    assert f"loss.method: 'harmonic' -> '{method}'" in diffs
    if not getattr(METHODS[method].Options, "__dataclass_fields__", {}):  # the CycleGAN family: the method alone
        assert diffs == [f"loss.method: 'harmonic' -> '{method}'"]
    else:
        assert [d for d in diffs if not d.startswith(RECIPE_KEYS)] == []
        assert ref.max_steps == var.max_steps and ref.time_budget_minutes == var.time_budget_minutes


def test_discogan_presets_are_the_original_recipe():
    for base in ("phantom-cpu", "brats-paper"):
        cfg = load_train_config(CONFIGS / f"{base}-discogan.yaml")
        o = cfg.optim
        assert (o.lr, o.beta1, o.beta2, o.weight_decay, cfg.pool_size) == (2e-4, 0.5, 0.999, 1e-5, 0)
        options = cfg.loss.options
        assert (options["gan_weight"], options["fm_weight"], options["rate"]) == (0.1, 0.9, 0.5)
    paper = load_train_config(CONFIGS / "brats-paper-discogan.yaml")
    assert paper.data.batch_size == 64 and paper.loss.options["curriculum_steps"] == 10000
    assert (paper.model.ngf, paper.model.ndf, paper.loss.options["n_layers"]) == (64, 64, 4)
    phantom, ref = (load_train_config(CONFIGS / f"phantom-cpu{s}.yaml") for s in ("-discogan", ""))
    steps_per_epoch = lambda c: c.data.max_slices_per_epoch // c.data.batch_size  # noqa: E731
    assert steps_per_epoch(phantom) == steps_per_epoch(ref)


def test_brats_paper_is_the_paper_setting():
    cfg = load_train_config(CONFIGS / "brats-paper.yaml")
    assert (cfg.model.ngf, cfg.model.n_blocks, cfg.model.ndf, cfg.model.d_layers) == (64, 9, 64, 3)
    assert (cfg.optim.lr, cfg.optim.beta1, cfg.optim.epochs, cfg.optim.epochs_decay) == (2e-4, 0.5, 100, 100)
    assert cfg.data.batch_size == 1 and cfg.pool_size == 50 and cfg.loss.lambda_cycle == 10


def test_phantom_preset_has_a_budget():
    cfg = load_train_config(CONFIGS / "phantom-cpu.yaml")
    assert cfg.time_budget_minutes is not None and cfg.time_budget_minutes <= 10
    assert cfg.max_steps is not None


def test_extends_merges_and_rejects_cycles_and_missing_parents(tmp_path):
    (tmp_path / "base.yaml").write_text("model:\n  ngf: 16\n  n_blocks: 3\nseed: 4\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nmodel:\n  ngf: 8\n")
    cfg = load_train_config(tmp_path / "child.yaml", ["seed=5"])
    assert (cfg.model.ngf, cfg.model.n_blocks, cfg.seed) == (8, 3, 5)
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(UserInputError, match="cycle"):
        load_train_config(tmp_path / "a.yaml")
    (tmp_path / "orphan.yaml").write_text("extends: nowhere.yaml\n")
    with pytest.raises(UserInputError, match="nowhere.yaml"):
        load_train_config(tmp_path / "orphan.yaml")


def test_unknown_key_and_wrong_type_name_key_and_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  learning_rate: 0.1\n")
    with pytest.raises(UserInputError, match=r"bad.yaml: key 'optim.learning_rate' is not a known setting"):
        load_train_config(bad)
    bad.write_text("data:\n  batch_size: big\n")
    with pytest.raises(UserInputError, match=r"key 'data.batch_size' must be an integer"):
        load_train_config(bad)
    with pytest.raises(UserInputError, match="optim.lr"):
        load_train_config(None, ["optim.lr=-1"])


def test_resume_hash_ignores_only_run_length_keys():
    a = TrainConfig()
    b = load_train_config(None, ["max_steps=10", "time_budget_minutes=3", "log_every=7", "device=cpu"])
    c = load_train_config(None, ["loss.lambda_smooth=3"])
    assert resume_hash(a) == resume_hash(b) == resume_hash(to_dict(b))
    assert resume_hash(a) != resume_hash(c)


def test_lr_scaling_rule():
    assert load_train_config(None, ["optim.lr_scaling=sqrt"]).optim.scaled_lr(4) == pytest.approx(4e-4)
    assert load_train_config(None, ["optim.lr_scaling=linear"]).optim.scaled_lr(4) == pytest.approx(8e-4)
    assert TrainConfig().optim.scaled_lr(4) == pytest.approx(2e-4)


def test_phantom_long_preset_is_the_benchmarks_harmonic_recipe():
    """configs/phantom-cpu-long.yaml = phantom-cpu.yaml stretched 4x with benchmark v2's recipe, and the same
    config as the benchmark's harmonic runs but for the time budget and how many checkpoints are kept."""
    import sys

    sys.path.insert(0, str(CONFIGS.parent / "pipelines"))
    from phantom_benchmark import plan_runs

    ref = load_train_config(CONFIGS / "phantom-cpu.yaml")
    long = load_train_config(CONFIGS / "phantom-cpu-long.yaml")
    changed = {d.split(":")[0] for d in config_differences(ref, long, ignore=())}
    assert changed == {"optim.epochs", "optim.epochs_decay", "max_steps", "time_budget_minutes", "sample_every",
                       "checkpoint_every", "optim.lr", "model.upsample", "ema_decay"}
    assert long.max_steps == 4 * ref.max_steps
    assert long.optim.epochs + long.optim.epochs_decay == 4 * (ref.optim.epochs + ref.optim.epochs_decay)
    preset, overrides = plan_runs(["harmonic"], 1, False, False)["harmonic-s0"]
    bench = load_train_config(CONFIGS.parent / preset, overrides)
    assert {d.split(":")[0] for d in config_differences(long, bench, ignore=())} == {"time_budget_minutes", "keep_checkpoints", "amp"}
    assert bench.amp == "off"  # the benchmark pins fp32: `auto` would differ between machines


@pytest.mark.parametrize("base", ["phantom-cpu", "brats-paper"])
def test_unit_variants_change_only_the_method_its_options_and_the_original_optimiser(base):
    from dataclasses import asdict

    from mri_harmonic.methods.unit import UNITOptions

    ref, var = load_train_config(CONFIGS / f"{base}.yaml"), load_train_config(CONFIGS / f"{base}-unit.yaml")
    changed = {d.split(":")[0] for d in config_differences(ref, var, ignore=())}
    allowed = {"loss.method", "pool_size", "optim.lr", "optim.beta1", "optim.beta2", "optim.weight_decay"}
    assert "loss.method" in changed and changed <= allowed | {k for k in changed if k.startswith("loss.options.")}
    # the release's Adam (configs/unit_*.yaml: lr 1e-4, betas 0.5/0.999, weight decay 1e-4) and no image pool
    assert (var.optim.lr, var.optim.beta1, var.optim.beta2, var.optim.weight_decay) == (1e-4, 0.5, 0.999, 1e-4)
    assert var.pool_size == 0 and var.loss.gan_mode == "lsgan"
    if base == "brats-paper":
        assert var.loss.options == asdict(UNITOptions())  # the original's networks and loss weights
