"""Run control of the trainer: the channels_last guard, the stop decision under DDP, signals with DataLoader workers,
per-rank pools and RNG in checkpoints, world-size changes on resume, exit codes and the run's plan (CPU, gloo)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from test_training import TINY, cli, metrics, tiny

from mri_harmonic.checkpoint import latest_path, periodic_checkpoints, read_checkpoint
from mri_harmonic.errors import UserInputError
from mri_harmonic.training.config import load_train_config
from mri_harmonic.training.trainer import build_state, plan_run, train, train_step
from mri_harmonic.utils.device import channels_last_fault

ROOT = Path(__file__).resolve().parents[1]


# ---- channels_last -------------------------------------------------------------------------------------------------
def test_channels_last_self_check_detects_the_cpu_fault_at_batch_1():
    # torch 2.13 on CPU: instance_norm's backward with a channels_last gradient is wrong at N = 1, exact at N = 2
    fault = channels_last_fault(torch.device("cpu"), [1])
    x = torch.randn(1, 4, 8, 8)
    g = torch.randn(1, 4, 8, 8)
    grads = []
    for fmt in (torch.contiguous_format, torch.channels_last):
        xi = x.clone().contiguous(memory_format=fmt).requires_grad_(True)
        torch.nn.functional.instance_norm(xi).backward(g.contiguous(memory_format=fmt))
        grads.append(xi.grad)
    really_wrong = not torch.allclose(grads[0], grads[1], atol=1e-4)
    assert (fault is not None) == really_wrong  # the check reports exactly what an independent comparison finds
    if really_wrong:
        assert "batch 1" in fault and "gradient" in fault
    assert channels_last_fault(torch.device("cpu"), [2, 3]) is None


def _grads_after_one_step(synthetic_store, *extra: str) -> dict[str, torch.Tensor]:
    from mri_harmonic.data.datasets import UnpairedSliceDataset

    ds = UnpairedSliceDataset(synthetic_store, "flair", "t1")
    cfg = tiny("amp=off", *extra)  # layouts, not precision: bf16 (`auto` on a native-bf16 CPU) differs by ~1 %
    n = cfg.data.batch_size
    a, b = torch.stack([ds[i]["A"] for i in range(n)]), torch.stack([ds[i]["B"] for i in range(n)])
    torch.manual_seed(0)
    s = build_state(cfg, torch.device("cpu"))
    train_step(s, a, b)  # G step, then D step: both sets of gradients are left in .grad
    return {f"{k}.{name}": p.grad.detach().clone() for k, net in s.nets.items() for name, p in net.named_parameters()}


def _max_rel_error(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Largest relative error of a network's whole gradient (per parameter, the biases before InstanceNorm, whose
    gradients are rounding noise around zero, would dominate)."""
    errs = []
    for net in ("G_AB", "G_BA", "D_A", "D_B"):
        va, vb = (torch.cat([g[k].flatten() for k in g if k.startswith(net + ".")]) for g in (a, b))
        errs.append(float((va - vb).norm() / vb.norm()))
    return max(errs)


def test_training_gradients_agree_in_both_layouts_where_the_guard_allows(synthetic_store):
    assert channels_last_fault(torch.device("cpu"), [2]) is None
    nchw = _grads_after_one_step(synthetic_store, "data.batch_size=2", "channels_last=false")
    cl = _grads_after_one_step(synthetic_store, "data.batch_size=2", "channels_last=true")
    assert _max_rel_error(cl, nchw) < 1e-3
    # where the guard refuses (batch 1 on this CPU), the layouts do give other gradients: the guard is needed
    if channels_last_fault(torch.device("cpu"), [1]) is not None:
        bad = _grads_after_one_step(synthetic_store, "data.batch_size=1", "channels_last=true")
        good = _grads_after_one_step(synthetic_store, "data.batch_size=1", "channels_last=false")
        assert _max_rel_error(bad, good) > 0.1


def test_channels_last_falls_back_to_nchw_with_one_warning_line(synthetic_store, tmp_path, capsys):
    if channels_last_fault(torch.device("cpu"), [1]) is None:
        pytest.skip("this torch computes channels_last gradients right at batch 1 on CPU")
    out = tmp_path / "run"
    summary = train(synthetic_store, out, "flair2t1", tiny("channels_last=true", "max_steps=2"), progress=False)
    assert summary["channels_last"] is False and summary["finished"]
    err = [line for line in capsys.readouterr().err.splitlines() if "channels_last" in line]
    assert len(err) == 1 and torch.__version__ in err[0] and "NCHW" in err[0]
    assert "channels_last is off" in (out / "train.log").read_text()
    # the run's config says what it ran with, and resuming with the user's own config is accepted
    assert read_checkpoint(latest_path(out))["config"]["channels_last"] is False
    summary = train(synthetic_store, out, "flair2t1", tiny("channels_last=true", "max_steps=3"), resume=True, progress=False)
    assert summary["step"] == 3


def test_channels_last_is_off_by_default():
    assert load_train_config(None).channels_last is False
    assert load_train_config(ROOT / "configs" / "brats-paper.yaml").channels_last is False


# ---- stop reasons, summaries and exit codes ------------------------------------------------------------------------
def test_time_budget_stop_is_not_finished_and_exits_3(synthetic_store, tmp_path):
    out = tmp_path / "run"
    args = ["train", synthetic_store, "--out", out, "--no-progress", *sum((["--set", s] for s in TINY), [])]
    code, text = cli(*args, "--set", "max_steps=500", "--set", "time_budget_minutes=0.0005")
    summary = json.loads((out / "summary.json").read_text())
    assert code == 3, text
    assert summary["stopped"] == "time_budget" and summary["finished"] is False
    assert summary["planned_steps"] == 500 and 1 <= summary["step"] < 500
    line = f"stopped at step {summary['step']} of 500"
    assert line in text and line in summary["message"] and "time_budget_minutes" in summary["message"]
    assert line in (out / "train.log").read_text()
    status = json.loads((out / "run.json").read_text())["status"]
    assert status["finished"] is False and status["planned_steps"] == 500 and line in status["message"]
    # a finished run exits 0 and says so
    code, text = cli(*args, "--set", "max_steps=3", "--set", "time_budget_minutes=60", "--resume")
    summary = json.loads((out / "summary.json").read_text())
    assert code == 0 and summary["finished"] and summary["step"] == 3 and "finished at step 3 of 3" in text
    assert json.loads((out / "run.json").read_text())["status"]["finished"] is True
    code, text = cli("train", "--help")
    assert code == 0 and "3 stopped by the time budget" in " ".join(text.split())


def test_progress_bar_shows_when_the_time_budget_ends(synthetic_store, tmp_path, capsys):
    from types import SimpleNamespace

    from mri_harmonic.training.trainer import budget_postfix

    s = SimpleNamespace(cfg=tiny("time_budget_minutes=10"), elapsed_s=540.0)
    end = time.strptime(budget_postfix(s)["budget ends"], "%H:%M:%S")
    expected = time.localtime(time.time() + 60)
    assert abs((end.tm_hour * 3600 + end.tm_min * 60 + end.tm_sec)
               - (expected.tm_hour * 3600 + expected.tm_min * 60 + expected.tm_sec)) % 86400 <= 5
    assert budget_postfix(SimpleNamespace(cfg=tiny(), elapsed_s=0.0)) == {}
    train(synthetic_store, tmp_path / "run", "flair2t1", tiny("time_budget_minutes=30", "max_steps=2"), progress=True)
    assert "budget ends" in capsys.readouterr().err


def test_schedule_end_is_finished(synthetic_store, tmp_path):
    cfg = tiny("data.max_slices_per_epoch=2", "optim.epochs=1", "optim.epochs_decay=1")
    summary = train(synthetic_store, tmp_path / "run", "flair2t1", cfg, progress=False)
    assert summary["stopped"] == "completed" and summary["finished"] and summary["step"] == summary["planned_steps"] == 4


def _signal_at_step(monkeypatch, k: int, signum: int) -> None:
    from mri_harmonic.training import trainer

    real_step, calls = trainer.train_step, []

    def step(*args, **kwargs):
        calls.append(1)
        if len(calls) == k:
            os.kill(os.getpid(), signum)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(trainer, "train_step", step)


def test_ctrl_c_exits_130_with_what_was_saved(synthetic_store, tmp_path, monkeypatch):
    _signal_at_step(monkeypatch, 2, signal.SIGINT)
    out = tmp_path / "run"
    code, text = cli("train", synthetic_store, "--out", out, "--no-progress",
                     *sum((["--set", s] for s in TINY), []), "--set", "max_steps=50")
    assert code == 130
    assert "stopped at step 2 of 50 by SIGINT" in text and "--resume" in text and str(latest_path(out)) in text
    assert read_checkpoint(latest_path(out))["step"] == 2


def test_second_ctrl_c_claims_only_a_checkpoint_that_exists(synthetic_store, tmp_path, monkeypatch):
    from mri_harmonic.training import trainer

    def interrupted(*args, **kwargs):  # a second Ctrl-C during the first step: KeyboardInterrupt
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "train_step", interrupted)
    out = tmp_path / "run"
    args = ["train", synthetic_store, "--out", out, "--no-progress", *sum((["--set", s] for s in TINY), [])]
    code, text = cli(*args, "--set", "max_steps=5")
    assert code == 130 and not latest_path(out).exists()
    assert "no checkpoint was written" in text and "latest.pt holds" not in text
    monkeypatch.undo()
    assert cli(*args, "--set", "max_steps=2")[0] == 0  # "run the same command" indeed starts it
    monkeypatch.setattr(trainer, "train_step", interrupted)
    code, text = cli(*args, "--set", "max_steps=5", "--resume")
    assert code == 130 and "holds the last checkpoint (step 2)" in text and "--resume" in text


def _start_cli(args: list, tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    log = open(tmp_path / "cli.log", "w")
    return subprocess.Popen([sys.executable, "-m", "mri_harmonic.cli", *map(str, args)], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for_metrics(out: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"training ended early with {proc.returncode}")
        if (out / "metrics.csv").is_file() and len(metrics(out)) >= 2:
            return
        time.sleep(0.2)
    raise AssertionError("training did not start in time")


@pytest.mark.parametrize("target", ["process", "group"])
def test_sigterm_with_dataloader_workers_checkpoints_and_exits_143(synthetic_store, tmp_path, target):
    out = tmp_path / "run"
    proc = _start_cli(["train", synthetic_store, "--out", out, "--no-progress", *sum((["--set", s] for s in TINY), []),
                       "--set", "max_steps=100000", "--set", "data.num_workers=2"], tmp_path)
    try:
        _wait_for_metrics(out, proc)
        (os.kill(proc.pid, signal.SIGTERM) if target == "process" else os.killpg(proc.pid, signal.SIGTERM))
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = (tmp_path / "cli.log").read_text()
    assert code == 143, text[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped"] == "signal" and summary["signal"] == "SIGTERM" and not summary["finished"]
    assert read_checkpoint(latest_path(out))["step"] == summary["step"] >= 2
    assert "by SIGTERM" in text and "killed by signal" not in text


# ---- the plan --------------------------------------------------------------------------------------------------------
def test_plan_is_what_the_trainer_runs_with_disjoint_halves(synthetic_store, tmp_path):
    cfg = tiny("data.disjoint_halves=true", "optim.epochs=1", "optim.epochs_decay=1", "data.batch_size=2")
    plan = plan_run(synthetic_store, "flair2t1", cfg)
    # 4 train subjects x 3 slices, halves of 2 subjects: 6 slices an epoch, not the split's 12
    assert (plan.dataset_items, plan.steps_per_epoch, plan.planned_steps) == (6, 3, 6)
    assert plan_run(synthetic_store, "flair2t1", cfg, world_size=2).steps_per_epoch == 2
    summary = train(synthetic_store, tmp_path / "run", "flair2t1", cfg, progress=False)
    assert summary["steps_per_epoch"] == plan.steps_per_epoch and summary["step"] == summary["planned_steps"] == 6


# ---- world size ------------------------------------------------------------------------------------------------------
def _fake_world(path: Path, world: int) -> None:
    ckpt = torch.load(path, weights_only=True)
    ckpt["world_size"] = world
    ckpt["rank_states"] = ckpt["rank_states"] * world
    torch.save(ckpt, path)


def test_resume_on_another_world_size_is_refused_unless_allowed(synthetic_store, tmp_path, capsys):
    out = tmp_path / "run"
    extra = ["data.max_slices_per_epoch=8", "optim.lr_scaling=sqrt"]
    train(synthetic_store, out, "flair2t1", tiny(*extra, "max_steps=2"), progress=False)
    ckpt = read_checkpoint(latest_path(out))
    assert ckpt["world_size"] == 1 and len(ckpt["rank_states"]) == 1 and set(ckpt["rank_states"][0]) == {"pools", "rng"}
    _fake_world(latest_path(out), 2)  # as if trained on 2 processes
    with pytest.raises(UserInputError, match="trained on 2 process") as err:
        train(synthetic_store, out, "flair2t1", tiny(*extra, "max_steps=3"), resume=True, progress=False)
    assert "\n" not in str(err.value) and "`allow_world_size_change=True`" in str(err.value)
    lr_before = read_checkpoint(latest_path(out))["optimizers"]["G"]["param_groups"][0]["lr"]
    summary = train(synthetic_store, out, "flair2t1", tiny(*extra, "max_steps=3"), resume=True, progress=False,
                    allow_world_size_change=True)
    said = [line for line in capsys.readouterr().err.splitlines() if "process(es)" in line]
    assert len(said) == 1 and "global batch 2 -> 1" in said[0] and "learning rate" in said[0]
    assert summary["step"] == 3
    lr_after = read_checkpoint(latest_path(out))["optimizers"]["G"]["param_groups"][0]["lr"]
    assert lr_after == pytest.approx(lr_before / 2 ** 0.5)  # sqrt rule: global batch 2 -> 1


# ---- 2-process gloo DDP ----------------------------------------------------------------------------------------------
DRIVER = textwrap.dedent("""
    import os, signal, sys
    from mri_harmonic.training import trainer
    from mri_harmonic.cli import main

    at = int(os.environ.get("SIGNAL_AT_STEP", "0"))
    real_step, calls = trainer.train_step, []

    def step(*args, **kwargs):
        calls.append(1)
        if at and len(calls) == at and os.environ.get("RANK") == "0":
            os.kill(os.getpid(), signal.SIGTERM)  # rank 0 only, during step `at`
        return real_step(*args, **kwargs)

    trainer.train_step = step
    sys.exit(main(sys.argv[1:]))
""")


def _torchrun(tmp_path: Path, store, out: Path, *sets: str, resume: bool = False, signal_at: int = 0):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "SIGNAL_AT_STEP": str(signal_at)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(driver),
           "train", str(store), "--out", str(out), "--no-progress", *sum((["--set", s] for s in (*TINY, *sets)), []),
           *(["--resume"] if resume else [])]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.dist
@pytest.mark.parametrize("signal_at,stop_at,finished", [(12, 12, True), (4, 10, False)])
def test_signal_on_rank_0_stops_both_ranks_cleanly(synthetic_store, tmp_path, signal_at, stop_at, finished):
    out = tmp_path / "ddp"
    res = _torchrun(tmp_path, synthetic_store, out, "max_steps=12", "checkpoint_every=1000", signal_at=signal_at)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["step"] == stop_at and summary["finished"] is finished, res.stderr[-3000:]
    assert summary["signal"] == "SIGTERM"  # rank 0's signal, recorded through the agreed decision
    assert (res.returncode == 0) is finished, res.stderr[-3000:]
    if not finished:  # a worker exited 143; torchrun then reports its workers' failure (and ends the others)
        assert "exitcode  : 143" in res.stderr, res.stderr[-3000:]
    assert read_checkpoint(latest_path(out))["step"] == stop_at and periodic_checkpoints(out) == []
    assert [int(r["step"]) for r in metrics(out)] == list(range(1, stop_at + 1))
    assert "SIGABRT" not in res.stderr and "trainer.py" not in res.stderr  # no crash inside the trainer


@pytest.mark.dist
def test_two_process_resume_with_pools_is_bit_identical(synthetic_store, tmp_path):
    extra = ["pool_size=2", "data.max_slices_per_epoch=8", "optim.epochs=2", "optim.epochs_decay=2",
             "checkpoint_every=1000"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    for out, steps, resume in ((straight, 12, False), (split, 6, False), (split, 12, True)):
        res = _torchrun(tmp_path, synthetic_store, out, *extra, f"max_steps={steps}", resume=resume)
        assert res.returncode == 0, res.stderr[-3000:]
    drop = {"elapsed_s", "pairs_per_s"}
    rows = [[{k: v for k, v in r.items() if k not in drop} for r in metrics(p)] for p in (straight, split)]
    assert rows[0] == rows[1] and len(rows[0]) == 12
    a, b = (read_checkpoint(latest_path(p)) for p in (straight, split))
    for net in a["models"]:
        for k in a["models"][net]:
            assert torch.equal(a["models"][net][k], b["models"][net][k]), (net, k)
    assert a["world_size"] == 2 and len(a["rank_states"]) == 2
    for ra, rb in zip(a["rank_states"], b["rank_states"]):
        for d in "AB":
            assert torch.equal(ra["pools"][d]["images"], rb["pools"][d]["images"])
            assert torch.equal(ra["pools"][d]["generator"], rb["pools"][d]["generator"])
    # the ranks keep their own pools: their histories differ
    assert not torch.equal(a["rank_states"][0]["pools"]["A"]["images"], a["rank_states"][1]["pools"]["A"]["images"])
