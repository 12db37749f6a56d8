"""pipelines/brats.py: the dry-run plan is what the trainer runs, the multi-GPU recipe is chosen on purpose, the
throughput is measured or labelled an assumption, DataLoader workers fit the cores, and DONE means finished."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "pipelines"))

import _common  # noqa: E402
import brats  # noqa: E402

from mri_harmonic.training.config import load_train_config  # noqa: E402
from mri_harmonic.training.trainer import plan_run, train  # noqa: E402

SETS = ["model.ngf=8", "model.ndf=8", "model.n_blocks=2", "device=cpu", "optim.epochs=1", "optim.epochs_decay=1",
        "data.num_workers=0", "log_every=5", "sample_every=0", "checkpoint_every=1000", "tensorboard=false"]


@pytest.fixture(scope="module")
def phantom_work(tmp_path_factory):
    """A 4-subject phantom and its store (64x64, disjoint subject halves) in a brats.py --work folder."""
    from mri_harmonic.data.config import PreprocessConfig
    from mri_harmonic.data.phantom import generate_phantom
    from mri_harmonic.data.preprocess import preprocess

    root = tmp_path_factory.mktemp("brats")
    generate_phantom(root / "data", subjects=4, seed=1, shape=(48, 56, 40), layout="brats2021", workers=1, progress=False)
    cfg = PreprocessConfig(in_plane_size=64, split_fractions=[0.5, 0.25, 0.25], min_brain_fraction=0.05)
    preprocess(root / "data", root / "work" / "store", cfg, workers=1, progress=False)
    return root


def _plan(capsys, *argv) -> dict[str, str]:
    assert brats.main([*map(str, argv), "--dry-run"]) == 0
    return {m.group(1): m.group(2) for m in re.finditer(r"plan: (\w+): (.*)", capsys.readouterr().out)}


def test_dry_run_prints_the_epoch_and_steps_the_trainer_runs(phantom_work, tmp_path, capsys):
    store = phantom_work / "work" / "store"
    plan = _plan(capsys, "--data", phantom_work / "data", "--work", phantom_work / "work",
                 *sum((["--set", s] for s in SETS), []))
    epoch_slices, steps_per_epoch = map(int, re.match(r"(\d+) slices = (\d+) steps", plan["epoch"]).groups())
    planned = int(re.match(r"(\d+) planned", plan["steps"]).group(1))
    n_train = json.loads((store / "store.json").read_text())["splits"]["train"]["n_slices"]
    assert epoch_slices < n_train and "disjoint" in plan["epoch"]  # an epoch is one half's slices, not the split's
    assert "ASSUMED" in plan["time"] or "measured" in plan["time"]
    cfg = load_train_config(ROOT / "configs" / "brats-paper.yaml", SETS)
    summary = train(store, tmp_path / "run", "flair2t1", cfg, progress=False)
    assert summary["finished"] and summary["stopped"] == "completed"
    assert (summary["steps_per_epoch"], summary["step"], summary["planned_steps"]) == (steps_per_epoch, planned, planned)


def test_several_gpus_need_a_recipe_that_the_plan_states(phantom_work, capsys, monkeypatch):
    work = ["--work", phantom_work / "work", *sum((["--set", s] for s in SETS if "num_workers" not in s), [])]
    with pytest.raises(SystemExit, match="--gpu-recipe"):
        brats.main([*map(str, work), "--gpus", "2", "--dry-run"])
    monkeypatch.setattr(brats, "available_cores", lambda: 8)
    plan = _plan(capsys, *work, "--gpus", "2", "--gpu-recipe", "sqrt-lr")
    cfg = load_train_config(ROOT / "configs" / "brats-paper.yaml", [*SETS, "optim.lr_scaling=sqrt"])
    two = plan_run(phantom_work / "work" / "store", "flair2t1", cfg, world_size=2)
    assert f"= {two.steps_per_epoch} steps per process" in plan["epoch"]
    assert "global batch 2" in plan["recipe"] and f"lr {2e-4 * 2 ** 0.5:.3g}" in plan["recipe"]
    assert "linear scaling ASSUMED" in plan["time"]
    assert brats.recipe_overrides("same-updates", 4, 100, 100) == ["optim.epochs=400", "optim.epochs_decay=400"]
    assert brats.recipe_overrides("same-lr", 4, 100, 100) == [] and brats.recipe_overrides(None, 1, 100, 100) == []


def test_dataloader_workers_are_capped_at_the_cores(phantom_work, capsys, monkeypatch):
    monkeypatch.setattr(brats, "available_cores", lambda: 2)
    sets = sum((["--set", s] for s in SETS if "num_workers" not in s), [])  # the preset's 4 workers
    assert brats.main([*map(str, ["--work", phantom_work / "work", *sets]), "--dry-run"]) == 0
    assert "data.num_workers 4 -> 1: 2 CPU cores for 1 process(es)" in capsys.readouterr().out


def test_throughput_is_measured_only_for_the_same_device_and_size(tmp_path, monkeypatch):
    monkeypatch.setattr(brats, "ROOT", tmp_path)
    pps, source = brats.throughput("cuda")
    assert "ASSUMED" in source
    bench = tmp_path / "reports" / "benchmarks" / "training.json"
    bench.parent.mkdir(parents=True)
    bench.write_text(json.dumps({"device": "cuda:0 (H100)", "image_size": [256, 256], "pairs_per_s": {"harmonic": 42.0}}))
    assert brats.throughput("cuda") == (42.0, "measured (reports/benchmarks/training.json, cuda:0 (H100))")
    assert "ASSUMED" in brats.throughput("cpu")[1]  # a GPU figure says nothing about a CPU


def test_done_only_for_a_finished_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    assert not _common.run_finished(run)  # no summary: not finished
    (run / "summary.json").write_text(json.dumps({"finished": False, "stopped": "time_budget"}))
    assert not _common.run_finished(run)
    (run / "summary.json").write_text(json.dumps({"finished": True, "stopped": "max_steps"}))
    assert _common.run_finished(run)


def test_a_stopped_run_is_reported_without_the_trainers_advice(tmp_path):
    """A pipeline tells its user where a run stopped, not the train command's `resume=True` (the pipeline resumes)."""
    run = tmp_path / "run"
    run.mkdir()
    assert _common.stop_reason(run) == ""
    summary = {"finished": False, "stopped": "signal", "signal": "SIGTERM", "step": 1071, "planned_steps": 9600,
               "message": "stopped at step 1071 of 9600 by SIGTERM; ...; continue with the same command plus `resume=True`"}
    (run / "summary.json").write_text(json.dumps(summary))
    assert _common.stop_reason(run) == "; stopped at step 1071 of 9600 by SIGTERM"
    (run / "summary.json").write_text(json.dumps({**summary, "stopped": "time_budget", "signal": None}))
    assert _common.stop_reason(run) == "; stopped at step 1071 of 9600 by its time budget"
