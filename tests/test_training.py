"""Trainer, checkpoints, resume, signals, DDP and the ``train`` CLI, on the tiny synthetic store (CPU)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_synthetic_store

from mri_harmonic.checkpoint import load_run, read_checkpoint
from mri_harmonic.cli import main as cli_main
from mri_harmonic.errors import UserInputError
from mri_harmonic.training.config import TrainConfig, load_train_config
from mri_harmonic.training.distributed import DistInfo, ResumableDistributedSampler
from mri_harmonic.training.image_pool import ImagePool
from mri_harmonic.training.trainer import build_state, linear_decay, train, train_step

TINY = ["model.ngf=8", "model.ndf=8", "model.n_blocks=2", "loss.smoothness.patch_size=8", "device=cpu",
        "log_every=1", "sample_every=0", "checkpoint_every=1000", "tensorboard=false"]


def tiny(*extra: str) -> TrainConfig:
    return load_train_config(None, [*TINY, *extra])


def metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def cli(*args) -> tuple[int, str]:
    from typer.testing import CliRunner

    from mri_harmonic.cli import app, cli_message

    res = CliRunner().invoke(app, [str(a) for a in args])
    code = res.exit_code
    if isinstance(res.exception, UserInputError):  # CliRunner bypasses main(); mirror its handling
        return 2, f"error: {cli_message(str(res.exception))}"
    return code, res.output


# ---- the step ------------------------------------------------------------------------------------------------------
def test_steps_lower_the_cycle_loss_on_a_fixed_batch(synthetic_store):
    from mri_harmonic.data.datasets import UnpairedSliceDataset

    torch.manual_seed(0)
    ds = UnpairedSliceDataset(synthetic_store, "flair", "t1")
    a = torch.stack([ds[i]["A"] for i in range(2)])
    b = torch.stack([ds[i]["B"] for i in range(2)])
    state = build_state(tiny("data.batch_size=2"), torch.device("cpu"))
    cyc = []
    for _ in range(30):
        losses = train_step(state, a, b)
        cyc.append(float(losses["cycle_a"] + losses["cycle_b"]))
        assert {"gan_ab", "smooth_a", "smooth_b", "d_a", "d_b", "g_total"} <= set(losses)
    assert np.mean(cyc[-3:]) < 0.7 * np.mean(cyc[:3]), cyc


def test_linear_decay_matches_the_reference_rule():
    rule = linear_decay(3, 4)
    # reference: 1 - max(0, epoch + epoch_count - n_epochs) / (n_epochs_decay + 1), epoch_count = 1
    expected = [1 - max(0, e + 1 - 3) / 5 for e in range(7)]
    assert [rule(e) for e in range(7)] == pytest.approx(expected)
    assert rule(6) == pytest.approx(0.2) and rule(1) == 1.0


def test_image_pool_fills_then_swaps_half_the_time_and_round_trips():
    pool = ImagePool(pool_size=4, seed=1)
    imgs = [torch.full((1, 1, 2, 2), float(i)) for i in range(200)]
    out = [pool.query(x) for x in imgs[:4]]
    assert all(torch.equal(o, x) for o, x in zip(out, imgs[:4])) and len(pool) == 4
    returned_old = sum(not torch.equal(pool.query(x), x) for x in imgs[4:])
    assert 60 < returned_old < 136  # Binomial(196, 1/2): ~98 +- 7
    clone = ImagePool(pool_size=4, seed=99)
    clone.load_state_dict(pool.state_dict())
    probe = torch.full((3, 1, 2, 2), -5.0)
    assert torch.equal(pool.query(probe), clone.query(probe))
    assert torch.equal(ImagePool(0).query(probe), probe)


def test_sampler_shards_caps_and_resumes_mid_epoch():
    data = list(range(10))
    full = [list(ResumableDistributedSampler(data, DistInfo(r, 2, r), seed=3)) for r in range(2)]
    assert sorted(full[0] + full[1]) == data  # 10 = 2 x 5: no padding, disjoint ranks
    capped = ResumableDistributedSampler(data, DistInfo(), seed=3, max_samples=4)
    capped.set_epoch(2)
    order = list(capped)
    assert len(order) == 4 and len(set(order)) == 4
    capped.set_epoch(2)
    capped.set_start(3)
    assert list(capped) == order[3:] and list(capped) == order  # start applies once


# ---- runs ----------------------------------------------------------------------------------------------------------
def test_run_folder_checkpoint_and_load_run(synthetic_store, tmp_path):
    out = tmp_path / "run"
    summary = train(synthetic_store, out, "t12flair", tiny("max_steps=4", "sample_every=2", "checkpoint_every=2",
                                                            "keep_checkpoints=1"), progress=False)
    assert summary["stopped"] == "max_steps" and summary["step"] == 4
    for name in ("config.yaml", "run.json", "metrics.csv", "train.log", "summary.json", "samples/step_000004.png"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["latest.pt", "step_0000004.pt"]
    assert "method: harmonic" in (out / "config.yaml").read_text()
    assert load_train_config(out / "config.yaml").loss.method == "harmonic"  # config.yaml reproduces the run
    rows = metrics(out)
    assert [r["step"] for r in rows] == ["1", "2", "3", "4"]
    assert {"epoch", "elapsed_s", "pairs_per_s", "lr", "cycle_a", "smooth_b", "d_a"} <= set(rows[0])

    ckpt = torch.load(out / "checkpoints" / "latest.pt", weights_only=True)
    assert ckpt["format"] == "mri-harmonic-checkpoint" and ckpt["version"] == 2
    assert (ckpt["method"], ckpt["direction"], ckpt["domain_a"], ckpt["domain_b"]) == ("harmonic", "t12flair", "t1", "flair")
    assert ckpt["image_size"] == [32, 32] and ckpt["store_config_hash"] == "synthetic000"
    assert set(ckpt["models"]) == {"G_AB", "G_BA", "D_A", "D_B"} and set(ckpt["pools"]) == {"A", "B"}
    assert {"optimizers", "schedulers", "rng", "epoch", "batch_in_epoch", "config_hash", "package_version"} <= set(ckpt)
    assert ckpt["store_config"] == {"synthetic": True}  # the run carries its store's preprocessing config

    run = load_run(out)
    assert (run.method, run.direction, run.step, run.image_size) == ("harmonic", "t12flair", 4, (32, 32))
    g = run.generator_for("t1")
    assert g is run.generators["A"] and not g.training and run.target_of("t1") == "flair"
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        y = g(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    from mri_harmonic.models.config import ModelConfig
    from mri_harmonic.models.networks import build_generator
    ref = build_generator(ModelConfig(**run.config["model"])).eval()
    ref.load_state_dict(ckpt["models"]["G_AB"])
    with torch.no_grad():
        assert torch.equal(ref(x), y)
    with pytest.raises(UserInputError, match="not from 't2'"):
        run.generator_for("t2")
    with pytest.raises(UserInputError, match=str(tmp_path / "empty")):
        (tmp_path / "empty").mkdir()
        load_run(tmp_path / "empty")


@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_resume_continues_exactly(synthetic_store, tmp_path, amp):
    # 4-slice epochs, 1 constant + 3 decaying epochs: the split at step 3 and the epoch boundary at 4 both matter
    extra = ["data.max_slices_per_epoch=4", "optim.epochs=1", "optim.epochs_decay=3", "pool_size=2", f"amp={amp}"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(synthetic_store, straight, "flair2t1", tiny(*extra, "max_steps=7"), progress=False)
    train(synthetic_store, split, "flair2t1", tiny(*extra, "max_steps=3"), progress=False)
    ckpt = read_checkpoint(split / "checkpoints" / "latest.pt")
    assert (ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"]) == (3, 0, 3)
    train(synthetic_store, split, "flair2t1", tiny(*extra, "max_steps=7"), resume=True, progress=False)
    a, b = metrics(straight), metrics(split)
    assert [r["step"] for r in b] == [str(i) for i in range(1, 8)]
    drop = {"elapsed_s", "pairs_per_s"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in a] == [{k: v for k, v in r.items() if k not in drop} for r in b]
    assert a[-1]["lr"] != a[0]["lr"]  # the decay phase was reached
    wa, wb = (read_checkpoint(p / "checkpoints" / "latest.pt")["models"] for p in (straight, split))
    for net in wa:
        for k in wa[net]:
            assert torch.equal(wa[net][k], wb[net][k]), (net, k)


def test_resume_from_an_earlier_checkpoint(synthetic_store, tmp_path):
    """train --resume --checkpoint step_N continues from step N, exactly as if the run had stopped there."""
    extra = ["data.max_slices_per_epoch=4", "optim.epochs=1", "optim.epochs_decay=3", "checkpoint_every=2"]
    straight, rerun = tmp_path / "straight", tmp_path / "rerun"
    train(synthetic_store, straight, "flair2t1", tiny(*extra, "max_steps=5"), progress=False)
    train(synthetic_store, rerun, "flair2t1", tiny(*extra, "max_steps=3"), progress=False)  # step_2 and latest (3)
    args = ["train", synthetic_store, "--out", rerun, "--no-progress", "--resume", "--checkpoint", "step_2",
            *sum((["--set", s] for s in [*TINY, *extra, "max_steps=5"]), [])]
    code, out = cli(*args)
    assert code == 0, out
    assert [r["step"] for r in metrics(rerun)] == [str(i) for i in range(1, 6)]
    wa, wb = (read_checkpoint(p / "checkpoints" / "latest.pt")["models"] for p in (straight, rerun))
    assert all(torch.equal(wa[n][k], wb[n][k]) for n in wa for k in wa[n])
    code, out = cli(*args[:-2 * (len(TINY) + len(extra) + 1)], "--checkpoint", "step_9")
    assert code == 2 and "step_9" in out
    code, out = cli("train", synthetic_store, "--out", tmp_path / "new", "--checkpoint", "step_2")
    assert code == 2 and "--resume" in out


def test_resume_accepts_a_checkpoint_from_before_a_new_config_key(synthetic_store, tmp_path):
    """Checkpoints written before a key existed (here: model.upsample) resume with that key at its default."""
    from mri_harmonic.checkpoint import latest_path

    out = tmp_path / "old"
    train(synthetic_store, out, "flair2t1", tiny("max_steps=2"), progress=False)
    path = latest_path(out)
    ckpt = torch.load(path, weights_only=True)
    del ckpt["config"]["model"]["upsample"]
    torch.save(ckpt, path)
    train(synthetic_store, out, "flair2t1", tiny("max_steps=3"), resume=True, progress=False)
    assert read_checkpoint(path)["step"] == 3
    with pytest.raises(UserInputError, match="model.upsample"):  # a real change of the key is still refused
        train(synthetic_store, out, "flair2t1", tiny("max_steps=4", "model.upsample=nearest"), resume=True, progress=False)


def test_cpu_time_is_counted_across_resumes_and_from_an_old_checkpoints_step(synthetic_store, tmp_path):
    """summary.json's cpu_s is the process CPU time of the kept steps, summed over resumptions like elapsed_s; a
    checkpoint from before CPU accounting resumes with cpu_from_step at its step, so a report can say what it covers."""
    from mri_harmonic.checkpoint import latest_path

    out = tmp_path / "run"
    first = train(synthetic_store, out, "flair2t1", tiny("max_steps=2"), progress=False)
    assert first["cpu_s"] > 0 and first["cpu_from_step"] == 0
    assert read_checkpoint(latest_path(out))["cpu_s"] == pytest.approx(first["cpu_s"], abs=1e-3)
    second = train(synthetic_store, out, "flair2t1", tiny("max_steps=3"), resume=True, progress=False)
    assert second["cpu_s"] > first["cpu_s"] and second["cpu_from_step"] == 0
    assert json.loads((out / "summary.json").read_text())["cpu_s"] == second["cpu_s"]
    ckpt = torch.load(latest_path(out), weights_only=True)
    del ckpt["cpu_s"], ckpt["cpu_from_step"]  # as written before CPU accounting
    torch.save(ckpt, latest_path(out))
    t0 = time.process_time()
    third = train(synthetic_store, out, "flair2t1", tiny("max_steps=4"), resume=True, progress=False)
    assert third["cpu_from_step"] == 3 and 0 < third["cpu_s"] <= time.process_time() - t0  # this call's step 4 only
    fourth = train(synthetic_store, out, "flair2t1", tiny("max_steps=5"), resume=True, progress=False)
    assert fourth["cpu_from_step"] == 3 and fourth["cpu_s"] > third["cpu_s"]


def test_resume_refuses_another_store_with_the_same_config(synthetic_store, tmp_path):
    """Two stores built with one preprocessing config (same config hash) but other data: --resume must refuse."""
    other = make_synthetic_store(tmp_path / "other", seed=1)
    run = tmp_path / "run"
    train(synthetic_store, run, "flair2t1", tiny("max_steps=1"), progress=False)
    assert read_checkpoint(run / "checkpoints" / "latest.pt")["store_config_hash"] == "synthetic000"
    with pytest.raises(UserInputError, match="fingerprint") as exc:
        train(other, run, "flair2t1", tiny("max_steps=2"), resume=True, progress=False)
    assert str(other) in str(exc.value) and str(synthetic_store) in str(exc.value) and "\n" not in str(exc.value)
    moved = tmp_path / "moved"  # the same store under another path is still the same store
    synthetic_store.rename(moved)
    train(moved, run, "flair2t1", tiny("max_steps=2"), resume=True, progress=False)
    assert read_checkpoint(run / "checkpoints" / "latest.pt")["step"] == 2


def test_resume_accepts_a_checkpoint_with_the_old_boolean_amp(synthetic_store, tmp_path):
    """Checkpoints from before the precision modes hold ``amp: true``: it reads as ``auto``, the default."""
    from mri_harmonic.checkpoint import latest_path

    out = tmp_path / "old"
    train(synthetic_store, out, "flair2t1", tiny("max_steps=2"), progress=False)
    path = latest_path(out)
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"]["amp"] = True
    torch.save(ckpt, path)
    train(synthetic_store, out, "flair2t1", tiny("max_steps=3"), resume=True, progress=False)
    assert read_checkpoint(path)["step"] == 3 and read_checkpoint(path)["config"]["amp"] == "auto"


def test_resume_follows_the_precision_a_run_trained_in_not_its_amp_setting(synthetic_store, tmp_path, monkeypatch):
    """`amp: auto` is fp32 on a CPU without native bf16 and bf16 autocast on one with it: a run begun on the first
    must not silently continue in bf16 on the second (one line names `amp` and the fix), `amp: off` continues it
    in fp32, and the export and evaluation's grouping carry the precision it trained in."""
    import mri_harmonic.utils.device as devmod
    from mri_harmonic.checkpoint import export_inference, latest_path
    from mri_harmonic.evaluation.evaluate import EvaluatedRun, group_runs

    out = tmp_path / "run"
    monkeypatch.setattr(devmod, "cpu_has_native_bf16", lambda: False)
    train(synthetic_store, out, "flair2t1", tiny("max_steps=2"), progress=False)
    assert read_checkpoint(latest_path(out))["precision"] == "fp32"
    assert json.loads((out / "run.json").read_text())["precision"] == "fp32"
    exported = export_inference(out, tmp_path / "export")  # amp: auto, trained in fp32
    monkeypatch.setattr(devmod, "cpu_has_native_bf16", lambda: True)  # the same run, now on a native-bf16 machine
    with pytest.raises(UserInputError, match=r"trained in fp32 .*`amp` to off") as exc:
        train(synthetic_store, out, "flair2t1", tiny("max_steps=3"), resume=True, progress=False)
    assert "\n" not in str(exc.value)
    train(synthetic_store, out, "flair2t1", tiny("max_steps=3", "amp=off"), resume=True, progress=False)
    assert read_checkpoint(latest_path(out))["step"] == 3
    with pytest.raises(UserInputError, match="`amp` to bf16"):  # the other way round: begun in bf16
        bf = tmp_path / "bf16"
        train(synthetic_store, bf, "flair2t1", tiny("max_steps=2", "seed=2"), progress=False)
        train(synthetic_store, bf, "flair2t1", tiny("max_steps=3", "seed=2", "amp=off"), resume=True, progress=False)

    seed1 = tmp_path / "seed1"  # amp=off from the start, another seed: the same group as the auto-in-fp32 run
    train(synthetic_store, seed1, "flair2t1", tiny("max_steps=2", "amp=off", "seed=1"), progress=False)
    runs = [EvaluatedRun(p.name, p, load_run(p, device="cpu"), "") for p in (exported, seed1, bf)]
    assert [r.loaded.precision for r in runs] == ["fp32", "fp32", "bf16"]
    group_runs(runs)
    assert runs[0].group == runs[1].group != runs[2].group


def test_evaluation_pools_a_seed_trained_before_a_new_config_key_with_later_seeds(synthetic_store, tmp_path):
    """Benchmark v2's seed 0 was trained before `model.keep_background` existed: its saved config lacks the key, and
    evaluate split it from seeds 1-2 into a group of its own. Read through the dataclasses, the key takes its default
    and the seeds pool; a real difference in the key still splits them."""
    from mri_harmonic.checkpoint import latest_path
    from mri_harmonic.evaluation.evaluate import EvaluatedRun, group_runs

    dirs = {}
    for name, extra in (("old-s0", ["seed=0"]), ("new-s1", ["seed=1"]), ("kb-s2", ["seed=2", "model.keep_background=true"])):
        dirs[name] = tmp_path / name
        train(synthetic_store, dirs[name], "flair2t1", tiny("max_steps=1", "amp=off", *extra), progress=False)
    ckpt = torch.load(latest_path(dirs["old-s0"]), weights_only=True)
    del ckpt["config"]["model"]["keep_background"]  # as written before the key existed
    torch.save(ckpt, latest_path(dirs["old-s0"]))
    runs = [EvaluatedRun(n, d, load_run(d, device="cpu"), "") for n, d in dirs.items()]
    assert "keep_background" not in runs[0].loaded.config["model"]
    group_runs(runs)
    assert runs[0].group == runs[1].group != runs[2].group


# ---- precision and compile -----------------------------------------------------------------------------------------
def fixed_batch(store, n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    from mri_harmonic.data.datasets import UnpairedSliceDataset

    ds = UnpairedSliceDataset(store, "flair", "t1")
    return torch.stack([ds[i]["A"] for i in range(n)]), torch.stack([ds[i]["B"] for i in range(n)])


def generator_output_dtypes(cfg: TrainConfig, store) -> tuple[set[torch.dtype], dict[str, torch.Tensor]]:
    """Dtypes of ``G_AB``'s outputs during one step, and the step's losses."""
    state = build_state(cfg, torch.device("cpu"))
    seen: set[torch.dtype] = set()
    state.nets["G_AB"].register_forward_hook(lambda mod, inp, out: seen.add(out.dtype))
    losses = train_step(state, *fixed_batch(store))
    assert all(p.dtype == torch.float32 for net in state.nets.values() for p in net.parameters())
    return seen, losses


def test_cpu_bf16_step_runs_the_networks_in_bf16_and_keeps_losses_float32(synthetic_store):
    seen, losses = generator_output_dtypes(tiny("amp=bf16"), synthetic_store)
    assert seen == {torch.bfloat16}
    assert {"gan_ab", "cycle_a", "smooth_a", "d_a", "g_total"} <= set(losses)
    for name, value in losses.items():
        assert value.dtype == torch.float32 and torch.isfinite(value), name


def test_auto_precision_falls_back_to_fp32_on_a_cpu_without_native_bf16(synthetic_store, tmp_path, monkeypatch):
    from mri_harmonic.utils import device as devmod

    for native, dtype, precision in ((False, torch.float32, "fp32"), (True, torch.bfloat16, "bf16 autocast")):
        monkeypatch.setattr(devmod, "cpu_has_native_bf16", lambda v=native: v)
        seen, _ = generator_output_dtypes(tiny(), synthetic_store)  # amp: auto
        assert seen == {dtype}, native
        out = tmp_path / f"native{native}"
        train(synthetic_store, out, "flair2t1", tiny("max_steps=1"), progress=False)
        import json
        assert json.loads((out / "run.json").read_text())["precision"] == precision
        assert precision in (out / "train.log").read_text()
    seen, _ = generator_output_dtypes(tiny("amp=off"), synthetic_store)
    assert seen == {torch.float32}


def test_compile_keeps_checkpoint_keys_and_the_computation(synthetic_store, tmp_path, monkeypatch):
    """``compile: true`` compiles in place: same checkpoint keys, and (with the eager backend, which runs the captured
    graphs unchanged; inductor's code generation takes minutes on this CPU) the same losses step by step."""
    import functools

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    runs = {}
    for compiled in (False, True):
        out = tmp_path / f"compile{compiled}"
        train(synthetic_store, out, "flair2t1", tiny("max_steps=2", f"compile={str(compiled).lower()}"), progress=False)
        runs[compiled] = out
    state = build_state(tiny("compile=true"), torch.device("cpu"))
    assert all(getattr(net, "_compiled_call_impl", None) is not None for net in state.nets.values())
    ca, cb = (read_checkpoint(runs[c] / "checkpoints" / "latest.pt") for c in (False, True))
    for net in ca["models"]:
        assert list(ca["models"][net]) == list(cb["models"][net]), net
        assert not any("_orig_mod" in k for k in cb["models"][net])
    drop = {"elapsed_s", "pairs_per_s"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in metrics(runs[False])] == \
        [{k: v for k, v in r.items() if k not in drop} for r in metrics(runs[True])]
    assert load_run(runs[True]).step == 2


def test_cyclegan_and_distancegan_record_their_method(synthetic_store, tmp_path):
    for method in ("cyclegan", "distancegan"):
        out = tmp_path / method
        train(synthetic_store, out, "flair2t1", tiny(f"loss.method={method}", "max_steps=2"), progress=False)
        ckpt = read_checkpoint(out / "checkpoints" / "latest.pt")
        assert ckpt["method"] == method and f"method: {method}" in (out / "config.yaml").read_text()
        cols = set(metrics(out)[0])
        assert not {"smooth_a", "smooth_b"} & cols
        assert ({"dist_ab", "dist_ba"} <= cols) == (method == "distancegan")
        if method == "distancegan":
            mu, sd = ckpt["data_statistics"]["A"]
            assert sd > 0 and mu > 0
        assert load_run(out).method == method


def test_sigterm_finishes_the_step_and_checkpoints(synthetic_store, tmp_path, monkeypatch):
    from mri_harmonic.training import trainer

    calls = []

    def step_then_sigterm(*args, **kwargs):  # the signal arrives in the middle of step 3
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_step(*args, **kwargs)

    real_step = trainer.train_step
    monkeypatch.setattr(trainer, "train_step", step_then_sigterm)
    out = tmp_path / "run"
    summary = train(synthetic_store, out, "flair2t1", tiny("max_steps=50"), progress=False)
    assert summary["stopped"] == "signal" and "`resume=True`" in summary["message"]
    assert summary["step"] == 3 and len(calls) == 3  # step 3 finished, no step 4 started
    assert read_checkpoint(out / "checkpoints" / "latest.pt")["step"] == 3
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handler restored


# ---- errors through the CLI ----------------------------------------------------------------------------------------
def test_cli_trains_and_reports_bad_input_in_one_line(synthetic_store, tmp_path):
    args = ["train", synthetic_store, "--out", tmp_path / "run", "--no-progress", *sum((["--set", s] for s in TINY), [])]
    assert cli(*args, "--set", "max_steps=2")[0] == 0
    # no --resume into a folder with a checkpoint
    code, out = cli(*args, "--set", "max_steps=2")
    assert code == 2 and "--resume" in out and out.count("\n") <= 1
    # resume with another config, and with the run's own config plus a longer budget
    code, out = cli(*args, "--set", "max_steps=3", "--set", "loss.lambda_cycle=5", "--resume")
    assert code == 2 and "loss.lambda_cycle" in out and "--resume" in out
    assert cli("train", synthetic_store, "--out", tmp_path / "run", "--no-progress", "--set", "max_steps=3", "--resume")[0] == 0
    assert read_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")["step"] == 3
    # --resume where there is nothing to resume
    code, out = cli("train", synthetic_store, "--out", tmp_path / "fresh", "--resume")
    assert code == 2 and "no checkpoint" in out
    # unknown key / wrong type in YAML, naming key and file; exit 2 via the real entry point
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  ngff: 8\n")
    code, out = cli("train", synthetic_store, "--out", tmp_path / "x", "--config", bad)
    assert code == 2 and "model.ngff" in out and str(bad) in out and out.strip().count("\n") == 0
    bad.write_text("optim:\n  lr: fast\n")
    assert cli_main(["train", str(synthetic_store), "--out", str(tmp_path / "x"), "--config", str(bad)]) == 2
    code, out = cli("train", synthetic_store, "--out", tmp_path / "x", "--set", "pool_size=many")
    assert code == 2 and "pool_size" in out
    code, out = cli("train", synthetic_store, "--out", tmp_path / "x", "--direction", "t2flair")
    assert code == 2 and "flair2t1" in out


def test_store_without_train_split_or_modality_is_a_clear_error(tmp_path):
    no_train = make_synthetic_store(tmp_path / "s1", splits=("val", "test"))
    with pytest.raises(UserInputError, match="split 'train'"):
        train(no_train, tmp_path / "r1", "flair2t1", tiny())
    no_t1 = make_synthetic_store(tmp_path / "s2", modalities=("flair", "t2"))
    with pytest.raises(UserInputError, match="modality 't1'"):
        train(no_t1, tmp_path / "r2", "flair2t1", tiny())
    with pytest.raises(UserInputError, match="patch_size"):
        train(make_synthetic_store(tmp_path / "s3"), tmp_path / "r3", "flair2t1", tiny("loss.smoothness.patch_size=5"))


def test_unwritable_out_is_one_line(synthetic_store, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")  # mkdir below a regular file fails, even for root
    with pytest.raises(UserInputError, match="cannot write to `out_dir` folder"):
        train(synthetic_store, blocker / "run", "flair2t1", tiny())


@pytest.mark.dist
def test_two_process_gloo_ddp_run_completes(synthetic_store, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "mri_harmonic.cli", "train", str(synthetic_store), "--out", str(out), "--no-progress",
           *sum((["--set", s] for s in TINY), []), "--set", "max_steps=3", "--set", "checkpoint_every=2"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    ckpt = read_checkpoint(out / "checkpoints" / "latest.pt")
    assert ckpt["step"] == 3
    assert [r["step"] for r in metrics(out)] == ["1", "2", "3"]
    import json
    assert json.loads((out / "run.json").read_text())["world_size"] == 2
