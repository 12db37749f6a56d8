"""The trainer: alternating generator / discriminator optimisation of any registered method.

One step follows the CycleGAN reference (junyanz/pytorch-CycleGAN-and-pix2pix, ``models/cycle_gan_model.py``,
``optimize_parameters``): the method's generator objective is minimised by one Adam over its generator networks
with the discriminators frozen; then its discriminator objective by one Adam over the discriminators, on real
images and on generated images drawn through the image pools. ``loss.method`` names the method
(:mod:`mri_harmonic.methods`), which owns the networks and the objectives.

Run folder (``out_dir``): ``config.yaml`` (resolved TrainConfig; run facts in header comments), ``run.json``,
``metrics.csv``, ``train.log``, ``samples/step_NNNNNN.png``, ``checkpoints/{latest,step_NNNNNNN}.pt``,
``tensorboard/`` (when tensorboard is installed) and ``summary.json`` at the end.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch
import yaml
from torch import nn

from mri_harmonic import __version__
from mri_harmonic import checkpoint as ckpt_io
from mri_harmonic.config import config_hash, from_dict, to_dict
from mri_harmonic.data.datasets import PairedSliceDataset, UnpairedSliceDataset, to_network, to_unit
from mri_harmonic.data.store import SliceStore
from mri_harmonic.directions import modalities_of
from mri_harmonic.errors import UserInputError
from mri_harmonic.methods import Method, build_method
from mri_harmonic.training.config import TrainConfig, config_differences, load_train_config, resume_hash
from mri_harmonic.training.distributed import (
    DistInfo,
    ResumableDistributedSampler,
    all_reduce_mean,
    barrier,
    cleanup_distributed,
    env_dist_info,
    gather_to_main,
    init_distributed,
    reduce_max_many,
    unwrap,
    wrap_ddp,
)
from mri_harmonic.training.image_pool import ImagePool
from mri_harmonic.training.logging import (
    MetricsCSV,
    TensorBoardWriter,
    close_file_logger,
    save_sample_grid,
    setup_file_logger,
)
from mri_harmonic.utils.device import (
    autocast,
    channels_last_fault,
    compile_module,
    describe_device,
    describe_precision,
    memory_format,
    resolve_device,
    resolve_precision,
    rng_state,
    seed_everything,
    set_rng_state,
)
from mri_harmonic.utils.io import atomic_write_json, atomic_write_text, ensure_writable_dir


# ---- state -------------------------------------------------------------------------------------------------------
@dataclass
class TrainState:
    """Everything a step reads and writes; ``method.nets`` may be DDP-wrapped (use :func:`unwrap` to save)."""

    cfg: TrainConfig
    device: torch.device
    info: DistInfo
    method: Method
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler]
    pools: dict[str, ImagePool]
    ema: dict[str, torch.optim.swa_utils.AveragedModel] = field(default_factory=dict)
    """``cfg.ema_decay``'s averaged copies of the method's inference networks (empty when off)."""
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    elapsed_s: float = 0.0
    cpu_s: float = 0.0
    """CPU seconds (user + system) of this rank's process over the kept steps, counted across resumes like
    ``elapsed_s`` (with 1 thread about ``elapsed_s``; with N threads up to N times it)."""
    cpu_from_step: int = 0
    """The step ``cpu_s`` counts from: 0, or the step of a checkpoint written before CPU time was recorded."""

    @property
    def fmt(self) -> torch.memory_format:
        return memory_format(self.device, self.cfg.channels_last)

    @property
    def nets(self) -> dict[str, nn.Module]:
        return self.method.nets


def linear_decay(epochs: int, epochs_decay: int):
    """Reference ``linear`` policy: factor ``1 - max(0, e + 1 - epochs) / (epochs_decay + 1)`` at epoch ``e``."""
    return lambda e: 1.0 - max(0, e + 1 - epochs) / float(epochs_decay + 1)


def build_state(cfg: TrainConfig, device: torch.device, info: DistInfo = DistInfo(),
                data_statistics: Mapping[str, Any] | None = None) -> TrainState:
    """The method (networks initialised, on ``device``, DDP-wrapped when distributed), Adams, schedules, pools."""
    fmt = memory_format(device, cfg.channels_last)
    method = build_method(cfg.model, cfg.loss)
    if cfg.compile:  # in place: parameter names, hence checkpoint keys, stay those of the plain modules
        method.nets = {k: compile_module(v) for k, v in method.nets.items()}
    method.nets = {k: wrap_ddp(v.to(device, memory_format=fmt), info, device) for k, v in method.nets.items()}
    method.prepare_training(device, data_statistics)
    lr = cfg.optim.scaled_lr(cfg.data.batch_size * info.world_size)
    adam = dict(lr=lr, betas=(cfg.optim.beta1, cfg.optim.beta2), weight_decay=cfg.optim.weight_decay)
    optimizers = {
        "G": torch.optim.Adam([p for k in method.generator_keys for p in method.nets[k].parameters()], **adam),
        "D": torch.optim.Adam([p for k in method.discriminator_keys for p in method.nets[k].parameters()], **adam),
    }
    rule = linear_decay(cfg.optim.epochs, cfg.optim.epochs_decay)
    schedulers = {k: torch.optim.lr_scheduler.LambdaLR(o, rule) for k, o in optimizers.items()}
    pools = {d: ImagePool(cfg.pool_size, seed=cfg.seed * 1000 + 2 * info.rank + i) for i, d in enumerate("AB")}
    ema = {}
    if cfg.ema_decay is not None:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = {k: AveragedModel(unwrap(method.nets[k]), multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
               for k in method.inference_keys()}
    return TrainState(cfg, device, info, method, optimizers, schedulers, pools, ema)


# ---- one step ----------------------------------------------------------------------------------------------------
def set_requires_grad(nets: Iterable[nn.Module], flag: bool) -> None:
    for net in nets:
        net.requires_grad_(flag)


def generator_step(s: TrainState, real_a: torch.Tensor, real_b: torch.Tensor):
    """Update the generator networks (discriminators frozen) -> (named losses, fake_a, fake_b)."""
    m = s.method
    discriminators = [m.nets[k] for k in m.discriminator_keys]
    set_requires_grad(discriminators, False)
    s.optimizers["G"].zero_grad(set_to_none=True)
    with autocast(s.device, s.cfg.amp):
        losses, fakes = m.generator_objective(real_a, real_b)
    losses["total"].backward()
    s.optimizers["G"].step()
    for k, avg in s.ema.items():  # every rank holds the same weights after the step, hence the same average
        avg.update_parameters(unwrap(m.nets[k]))
    set_requires_grad(discriminators, True)
    return losses, fakes["A"].detach(), fakes["B"].detach()


def discriminator_step(s: TrainState, real_a, real_b, fake_a, fake_b) -> dict[str, torch.Tensor]:
    """Update the discriminators on real images and on pooled fakes."""
    s.optimizers["D"].zero_grad(set_to_none=True)
    pooled_a = s.pools["A"].query(fake_a).to(memory_format=s.fmt)
    pooled_b = s.pools["B"].query(fake_b).to(memory_format=s.fmt)
    with autocast(s.device, s.cfg.amp):
        losses = s.method.discriminator_objective(real_a, real_b, pooled_a, pooled_b)
    losses["total"].backward()
    s.optimizers["D"].step()
    return losses


def train_step(s: TrainState, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, torch.Tensor]:
    """One optimisation step; returns detached named losses (``g_total`` is the generators' objective)."""
    real_a = real_a.to(s.device, non_blocking=True).contiguous(memory_format=s.fmt)
    real_b = real_b.to(s.device, non_blocking=True).contiguous(memory_format=s.fmt)
    s.method.step = s.step
    g_losses, fake_a, fake_b = generator_step(s, real_a, real_b)
    d_losses = discriminator_step(s, real_a, real_b, fake_a, fake_b)
    out = {("g_total" if k == "total" else k): v.detach() for k, v in g_losses.items()}
    out.update({("d_total" if k == "total" else k): v.detach() for k, v in d_losses.items()})
    return out


# ---- checkpoints -------------------------------------------------------------------------------------------------
def make_checkpoint(s: TrainState, meta: Mapping[str, Any]) -> dict[str, Any]:
    """The checkpoint dict (:func:`mri_harmonic.checkpoint.pack`) of the current state."""
    return ckpt_io.pack(
        step=s.step, epoch=s.epoch, batch_in_epoch=s.batch_in_epoch, elapsed_s=s.elapsed_s,
        cpu_s=s.cpu_s, cpu_from_step=s.cpu_from_step, config=to_dict(s.cfg), config_hash=config_hash(s.cfg), method=s.cfg.loss.method, meta=dict(meta),
        models={k: {n: t.detach().cpu() for n, t in unwrap(v).state_dict().items()} for k, v in s.nets.items()},
        optimizers={k: o.state_dict() for k, o in s.optimizers.items()},
        schedulers={k: sch.state_dict() for k, sch in s.schedulers.items()},
        pools={k: p.state_dict() for k, p in s.pools.items()},
        data_statistics=s.method.data_statistics, rng=rng_state(),
        models_ema={k: {n: t.detach().cpu() for n, t in avg.state_dict().items()} for k, avg in s.ema.items()} or None)


def restore_checkpoint(s: TrainState, ckpt: Mapping[str, Any]) -> None:
    """Load weights, optimisers, schedules, pools, position and RNG states into ``s`` (RNG last)."""
    for k, net in s.nets.items():
        unwrap(net).load_state_dict(ckpt["models"][k])
    for k, avg in s.ema.items():  # resume checks that the config (ema_decay included) is the run's
        avg.load_state_dict(ckpt["models_ema"][k])
    for k, opt in s.optimizers.items():
        opt.load_state_dict(ckpt["optimizers"][k])
    for k, sch in s.schedulers.items():
        sch.load_state_dict(ckpt["schedulers"][k])
    for k, pool in s.pools.items():
        pool.load_state_dict(ckpt["pools"][k], s.device)
    s.step, s.epoch, s.batch_in_epoch = int(ckpt["step"]), int(ckpt["epoch"]), int(ckpt["batch_in_epoch"])
    s.elapsed_s = float(ckpt.get("elapsed_s", 0.0))
    # a checkpoint from before CPU accounting: count from its step on, and say so
    s.cpu_s, s.cpu_from_step = float(ckpt.get("cpu_s", 0.0)), int(ckpt.get("cpu_from_step", ckpt["step"] if "cpu_s" not in ckpt else 0))
    set_rng_state(ckpt["rng"])


# ---- each process's own state: image pools and RNG -------------------------------------------------------------------
def rank_state(s: TrainState) -> dict[str, Any]:
    """This process's image pools and RNG states (each DDP rank draws and stores its own)."""
    return {"pools": {k: p.state_dict() for k, p in s.pools.items()}, "rng": rng_state()}


def gather_rank_states(s: TrainState) -> list[dict[str, Any]] | None:
    """Every rank's :func:`rank_state` on rank 0 (``None`` elsewhere). A collective: every rank calls it."""
    return gather_to_main(rank_state(s), s.info)


def rank_checkpoint_fields(s: TrainState, rank_states: list[dict[str, Any]] | None) -> dict[str, Any]:
    """``world_size`` and ``rank_states`` (one :func:`rank_state` per rank) for a checkpoint written by rank 0;
    the checkpoint's ``pools`` / ``rng`` stay rank 0's."""
    return {"world_size": s.info.world_size, "rank_states": list(rank_states) if rank_states else [rank_state(s)]}


def restore_rank_state(s: TrainState, ckpt: Mapping[str, Any], fresh_pools: Mapping[str, Any] | None = None) -> None:
    """After :func:`restore_checkpoint` (which loads rank 0's pools and RNG), load this rank's own. A rank the
    checkpoint holds no state for (a resume on more processes, allowed explicitly) gets ``fresh_pools`` and keeps
    rank 0's RNG; a checkpoint from before per-rank states keeps what :func:`restore_checkpoint` loaded."""
    states = ckpt.get("rank_states")
    if not states:
        return
    if s.info.rank >= len(states):
        for k, pool in s.pools.items():
            if fresh_pools is not None:
                pool.load_state_dict(fresh_pools[k], s.device)
        return
    mine = states[s.info.rank]
    for k, pool in s.pools.items():
        pool.load_state_dict(mine["pools"][k], s.device)
    set_rng_state(mine["rng"])


def seed_worker(worker_id: int) -> None:
    """DataLoader workers: ignore SIGINT/SIGTERM (the main process handles them: it finishes the step, checkpoints
    and ends its workers; a worker killed by the signal would crash the main process instead), and seed numpy and
    ``random`` from the per-worker torch seed the loader derived."""
    import random

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


# ---- run set-up ----------------------------------------------------------------------------------------------------
def domains_for(direction: str) -> tuple[str, str]:
    return modalities_of(direction)


def resolve_config(out_dir: str | Path, config_path: str | Path | None = None,
                   overrides: Iterable[str] | None = None, resume: bool = False,
                   checkpoint: str | int = "latest") -> TrainConfig:
    """The CLI's config: ``--config`` and ``--set``; with ``--resume`` and no ``--config`` the run's own config."""
    if resume and config_path is None:
        latest = ckpt_io.latest_path(out_dir) if checkpoint == "latest" else ckpt_io.resolve_checkpoint(out_dir, checkpoint)
        if latest.is_file():
            saved = ckpt_io.read_checkpoint(latest)["config"]
            return load_train_config(None, overrides, base=saved)
    return load_train_config(config_path, overrides)


def check_store(store: SliceStore, domain_a: str, domain_b: str, cfg: TrainConfig) -> None:
    """One-line errors for a store the networks cannot train on."""
    store.require(split="train", modalities=[domain_a, domain_b])
    h, w = store.image_size
    problem = build_method(cfg.model, cfg.loss, discriminators=False).image_size_problem(h, w)
    if problem:
        raise UserInputError(f"store {store.path} has {h}x{w} slices, {problem} (method {cfg.loss.method})")


def check_resume(ckpt: Mapping[str, Any], cfg: TrainConfig, direction: str, store: SliceStore, out_dir: Path,
                 device: torch.device | None = None) -> None:
    """``--resume`` must continue the same run: same direction, store content, (non-run-length) config and the
    precision it trained in. ``amp: auto`` resolves per machine (bf16 autocast on CUDA and native-bf16 CPUs, fp32
    elsewhere), so checkpoints record the resolved ``precision`` and a resume compares that, not the setting: a run
    begun in fp32 does not silently continue in bf16 on another machine, and ``amp: off`` may continue a run that
    ``auto`` trained in fp32. Checkpoints from before the record compare the setting."""
    if ckpt["direction"] != direction:
        raise UserInputError(
            f"`resume`: run {out_dir} was trained with `direction` {ckpt['direction']}, not {direction}; "
            f"pass `direction` {ckpt['direction']} or another `out_dir`")
    if ckpt.get("store_fingerprint") not in (None, store.fingerprint):  # runs from before fingerprints: hash only
        raise UserInputError(
            f"`resume`: store {store.path} (fingerprint {store.fingerprint}) is not the store run {out_dir} was trained "
            f"on ({ckpt.get('store')}, fingerprint {ckpt['store_fingerprint']}); pass that store or another `out_dir`")
    if ckpt.get("store_config_hash") != store.config_hash:
        raise UserInputError(
            f"`resume`: store {store.path} (config hash {store.config_hash}) is not the store run {out_dir} was trained "
            f"on ({ckpt.get('store')}, hash {ckpt.get('store_config_hash')}); pass that store or another `out_dir`")
    # through the dataclasses, so a key added to the package since the checkpoint was written takes its default
    saved = from_dict(TrainConfig, ckpt["config"], source=f"{ckpt_io.latest_path(out_dir)} (config)")
    trained_in = ckpt.get("precision")
    if trained_in is not None and device is not None:
        now = resolve_precision(device, cfg.amp)
        if now != trained_in:
            fix = "off" if trained_in == "fp32" else "bf16"
            raise UserInputError(
                f"`resume`: run {out_dir} trained in {trained_in} (`amp` {saved.amp}), but `amp` {cfg.amp} means {now} "
                f"on {describe_device(device)}; set `amp` to {fix} to continue it in {trained_in}, or train into another "
                "`out_dir`")
        saved = replace(saved, amp=cfg.amp)  # same precision: the setting's spelling does not matter
    if resume_hash(saved) != resume_hash(cfg):
        diff = "; ".join(config_differences(saved, cfg)[:4])
        raise UserInputError(
            f"`resume`: the config differs from the one run {out_dir} was trained with ({diff}); resume with the same "
            "config (omit `config` to reuse the run's own) or train into another `out_dir`")


def prepare_run(store: SliceStore, out_dir: Path, direction: str, cfg: TrainConfig, resume: bool,
                device: torch.device, checkpoint: str | int = "latest") -> dict[str, Any] | None:
    """Check inputs and the run folder (read-only, on every rank); return the checkpoint to resume, if any."""
    domain_a, domain_b = domains_for(direction)
    check_store(store, domain_a, domain_b, cfg)
    ensure_writable_dir(out_dir, "`out_dir` folder")
    latest = ckpt_io.latest_path(out_dir)
    if not resume:
        if latest.is_file():
            raise UserInputError(
                f"`out_dir` {out_dir} already holds a run (checkpoints/latest.pt); add `resume=True` to continue it or pick "
                "another `out_dir`")
        return None
    if not latest.is_file():
        raise UserInputError(f"`resume`: {out_dir} has no checkpoint to resume (checkpoints/latest.pt missing); drop `resume`")
    if checkpoint != "latest":  # resume from an earlier periodic checkpoint
        latest = ckpt_io.resolve_checkpoint(out_dir, checkpoint)
    ckpt = ckpt_io.read_checkpoint(latest, map_location=device)
    ckpt_io.require_training_state(ckpt, latest)
    check_resume(ckpt, cfg, direction, store, out_dir, device)
    return ckpt


def estimate_data_statistics(method: Method, store: SliceStore, dataset: UnpairedSliceDataset,
                             cfg: TrainConfig) -> dict[str, Any]:
    """The method's data statistics (DistanceGAN's distance mean/std) over evenly spaced training slices."""
    def images(modality: str, rows: np.ndarray):
        pick = rows[np.unique(np.linspace(0, len(rows) - 1, min(len(rows), cfg.distance_stats_slices)).astype(int))]
        arr = store.array("train", modality)
        return (to_network(arr[int(r)]) for r in pick)

    return method.estimate_data_statistics(images(dataset.domain_a, dataset.rows_a),
                                           images(dataset.domain_b, dataset.rows_b))


def store_model_spacing(store: SliceStore) -> list[float] | None:
    """Median voxel size (mm) of the store's subjects on the model grid, kept in the run so that ``translate``
    resamples other formats to it without the store."""
    found = [g["model_spacing"] for g in store.subjects.values() if isinstance(g, dict) and "model_spacing" in g]
    return [float(v) for v in np.median(np.asarray(found, dtype=float), axis=0)] if found else None


def write_run_files(out_dir: Path, cfg: TrainConfig, meta: Mapping[str, Any], device: torch.device, info: DistInfo) -> None:
    """``config.yaml`` (loadable with ``--config``; run facts as header comments) and ``run.json``."""
    header = [f"# resolved config, hash {config_hash(cfg)}", f"# mri-harmonic {__version__}; method {cfg.loss.method}"]
    header += [f"# {k}: {v}" for k, v in meta.items() if k != "store_config"]
    atomic_write_text(out_dir / "config.yaml", "\n".join(header) + "\n" + yaml.safe_dump(to_dict(cfg), sort_keys=False))
    atomic_write_json(out_dir / "run.json", {
        **meta, "method": cfg.loss.method, "config_hash": config_hash(cfg), "package_version": __version__,
        "device": describe_device(device), "precision": describe_precision(device, cfg.amp), "compile": cfg.compile,
        "world_size": info.world_size})


# ---- samples -------------------------------------------------------------------------------------------------------
@contextmanager
def averaged_weights(s: TrainState):
    """Within the block the method translates with ``s.ema``'s averaged networks (as a loaded run does); a no-op
    when ``ema_decay`` is off."""
    saved = {k: s.method.nets[k] for k in s.ema}
    s.method.nets.update({k: avg.module for k, avg in s.ema.items()})
    try:
        yield
    finally:
        s.method.nets.update(saved)


class SampleGrid:
    """Fixed slices (of ``data.sample_split``, else train) translated both ways; both modalities of each slice."""

    def __init__(self, store: SliceStore, domain_a: str, domain_b: str, cfg: TrainConfig):
        split = cfg.data.sample_split if cfg.data.sample_split in store.splits else "train"
        ds = PairedSliceDataset(store, split=split, modalities=(domain_a, domain_b))
        man = ds.manifest
        pool = np.flatnonzero(man["tumour_fraction"].to_numpy() > 0)
        pool = pool if len(pool) >= cfg.sample_slices else np.arange(len(man))
        idx = pool[np.unique(np.linspace(0, len(pool) - 1, min(len(pool), cfg.sample_slices)).astype(int))]
        items = [ds[int(i)] for i in idx]
        self.a = torch.stack([it[domain_a] for it in items])
        self.b = torch.stack([it[domain_b] for it in items])
        self.labels = [f"{it['subject']} z{it['slice_index']}" for it in items]
        self.names = (domain_a, domain_b)
        self.split = split

    @torch.no_grad()
    def save(self, s: TrainState, path: Path) -> Path:
        with averaged_weights(s):
            return self._save(s, path)

    def _save(self, s: TrainState, path: Path) -> Path:
        a, b = self.names
        m = s.method
        g_ab, g_ba = unwrap(m.translator("A")), unwrap(m.translator("B"))
        nets = [unwrap(m.nets[k]) for k in m.generator_keys]
        was = [n.training for n in nets]
        for n in nets:
            n.eval()
        with autocast(s.device, s.cfg.amp):
            ra, rb = self.a.to(s.device), self.b.to(s.device)
            fb, fa = g_ab(ra), g_ba(rb)
            cols = [ra, fb, g_ba(fb), rb, rb, fa, g_ab(fa), ra]
        for n, w in zip(nets, was):
            n.train(w)
        cols = [to_unit(c.float()).cpu().numpy()[:, 0] for c in cols]
        rows = [[c[r] for c in cols] for r in range(len(self.labels))]
        # the method's translators A -> B and B -> A (G_AB / G_BA for the CycleGAN family; UNIT's decoders, ...)
        titles = [f"{a}", f"{a}->{b}: {b}'", f"{b}'->{a}: {a}''", f"real {b}",
                  f"{b}", f"{b}->{a}: {a}'", f"{a}'->{b}: {b}''", f"real {a}"]
        return save_sample_grid(path, rows, titles, self.labels, title=f"step {s.step} ({self.split} slices)")


# ---- rank 0's outputs ----------------------------------------------------------------------------------------------
class Reporter:
    """What rank 0 writes: run files, ``train.log``, ``metrics.csv``, TensorBoard, sample grids, checkpoints."""

    def __init__(self, out_dir: Path, s: TrainState, meta: Mapping[str, Any], store: SliceStore,
                 resume_step: int | None):
        self.out_dir, self.meta, self.cfg = out_dir, dict(meta), s.cfg
        write_run_files(out_dir, s.cfg, meta, s.device, s.info)
        self.log = setup_file_logger(out_dir / "train.log")
        self.resume_step = resume_step
        self.csv: MetricsCSV | None = None
        self.tb = TensorBoardWriter(out_dir / "tensorboard", s.cfg.tensorboard)
        self.log.info("tensorboard events %s", self.tb.reason)
        self.grid = SampleGrid(store, meta["domain_a"], meta["domain_b"], s.cfg)
        self.last_sample = self.last_checkpoint = -1

    def metrics(self, s: TrainState, means: Mapping[str, float], pairs_per_s: float) -> None:
        if self.csv is None:
            self.csv = MetricsCSV(self.out_dir / "metrics.csv", list(means), resume_step=self.resume_step)
        lr = s.optimizers["G"].param_groups[0]["lr"]
        self.csv.append({"step": s.step, "epoch": s.epoch, "elapsed_s": round(s.elapsed_s, 3),
                         "pairs_per_s": pairs_per_s, "lr": lr, **means})
        self.tb.scalars({**{f"loss/{k}": v for k, v in means.items()}, "pairs_per_s": pairs_per_s, "lr": lr}, s.step)
        self.log.info("step %d epoch %d %.1f pairs/s lr %.3g %s", s.step, s.epoch, pairs_per_s, lr,
                      " ".join(f"{k}={v:.4g}" for k, v in means.items()))

    def samples(self, s: TrainState) -> None:
        self.grid.save(s, self.out_dir / "samples" / f"step_{s.step:06d}.png")
        self.last_sample = s.step

    def checkpoint(self, s: TrainState, periodic: bool, rank_states: list[dict[str, Any]] | None) -> Path:
        """Write the checkpoint; ``rank_states`` from :func:`gather_rank_states` (every rank's pools and RNG)."""
        ckpt = {**make_checkpoint(s, self.meta), **rank_checkpoint_fields(s, rank_states)}
        path = ckpt_io.save_checkpoint(ckpt, self.out_dir, periodic=periodic, keep=self.cfg.keep_checkpoints)
        self.last_checkpoint = s.step
        return path

    def finish(self, s: TrainState, summary: dict[str, Any], rank_states: list[dict[str, Any]] | None) -> None:
        """The final checkpoint (unless this step's is written), samples, ``summary.json``, ``run.json``'s status and
        the one-line stop message (``summary["message"]``)."""
        if self.last_checkpoint != s.step or not ckpt_io.latest_path(self.out_dir).is_file():
            self.checkpoint(s, periodic=False, rank_states=rank_states)
        if self.last_sample != s.step and summary["steps_this_run"] > 0:
            self.samples(s)
        summary["message"] = stop_message(summary, self.cfg)
        atomic_write_json(self.out_dir / "summary.json", summary)
        run_json = self.out_dir / "run.json"
        status = {k: summary[k] for k in ("step", "planned_steps", "finished", "stopped", "signal", "message")}
        atomic_write_json(run_json, {**json.loads(run_json.read_text()), "status": status})
        self.log.info(summary["message"])
        self.tb.close()


# ---- stopping ------------------------------------------------------------------------------------------------------
class StopRequest:
    """SIGINT/SIGTERM set a flag: the loop finishes the current step, checkpoints and returns. A second Ctrl-C
    interrupts at once. Handlers are installed only in the main thread and restored afterwards."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self.signum: int = 0
        self._old: dict[int, Any] = {}

    def handler(self, signum: int, frame: Any = None) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum, self.signal = int(signum), signal.Signals(signum).name

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self.handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


def stop_reason(s: TrainState, stop: StopRequest) -> str | None:
    """Why this process would stop after the current step (``None`` = go on); time is ``s.elapsed_s``. Reaching
    ``max_steps`` comes first: a run that reached it is finished, whatever else happened on that step."""
    cfg = s.cfg
    if cfg.max_steps is not None and s.step >= cfg.max_steps:
        return "max_steps"
    if stop.signal:
        return "signal"
    if cfg.time_budget_minutes is not None and s.elapsed_s >= 60 * cfg.time_budget_minutes:
        return "time_budget"
    return None


#: Stop reasons, weakest first: under DDP the strongest reason of any process wins (as in :func:`stop_reason`).
STOP_REASONS = (None, "time_budget", "signal", "max_steps")
#: Under DDP, signals and the time budget (which differ between processes) are agreed on every this many steps.
STOP_SYNC_EVERY = 10


def stop_sync_due(s: TrainState) -> bool:
    """Whether the processes agree on stopping after this step: every :data:`STOP_SYNC_EVERY`-th step and the
    ``max_steps`` step, i.e. every step on which a run may stop. It depends only on the step counter, which all
    processes share, so they all enter the same collective on the same steps (the end of the schedule needs none:
    every process's sampler has the same length)."""
    return s.step % STOP_SYNC_EVERY == 0 or (s.cfg.max_steps is not None and s.step >= s.cfg.max_steps)


def agreed_stop(s: TrainState, stop: StopRequest) -> str | None:
    """:func:`stop_reason`, the same on every process: under DDP, one all-reduce (max) of the reason and the signal
    number on the steps :func:`stop_sync_due` names, and no stop in between. A signal that reached only some
    processes is recorded on all of them (``stop.signal``), so that every process exits with the same status."""
    reason = stop_reason(s, stop)
    if not s.info.enabled:
        return reason
    if not stop_sync_due(s):
        return None
    code, signum = reduce_max_many([STOP_REASONS.index(reason), stop.signum], s.info, s.device)
    if signum and stop.signal is None:
        stop.signum, stop.signal = int(signum), signal.Signals(int(signum)).name
    return STOP_REASONS[int(code)]


def stop_message(summary: Mapping[str, Any], cfg: TrainConfig) -> str:
    """One line: where the run stopped, of how many steps, what was saved, and how to continue."""
    at = f"at step {summary['step']} of {summary['planned_steps']}"
    saved = f"saved {summary['checkpoint']} (step {summary['step']})"
    if summary["finished"]:
        why = "max_steps" if summary["stopped"] == "max_steps" else "end of the schedule"
        late = f"; {summary['signal']} arrived on the last step" if summary.get("signal") else ""
        return f"finished {at} ({why}){late}; {saved}"
    if summary["stopped"] == "signal":
        return f"stopped {at} by {summary['signal']}; {saved}; continue with the same command plus `resume=True`"
    budget = cfg.time_budget_minutes
    return (f"stopped {at} by the time budget ({budget:g} min, counted across resumes); {saved}; continue with the "
            f"same command plus `resume=True` `overrides` time_budget_minutes=M (M > {budget:g})")


# ---- the plan: epoch length, steps, layout, world size ------------------------------------------------------------
@dataclass(frozen=True)
class RunPlan:
    """How long a run is, as the trainer will run it (``steps_per_epoch`` and ``planned_steps`` are per process and
    the same on every process)."""

    dataset_items: int
    """Items of the training dataset: with disjoint subject halves, the larger half's slices, not the split's."""
    slices_per_epoch: int
    """Items one epoch draws over all processes (``data.max_slices_per_epoch`` caps it)."""
    world_size: int
    steps_per_epoch: int
    epochs: int
    total_steps: int
    """``epochs x steps_per_epoch``: the end of the schedule."""
    planned_steps: int
    """``min(max_steps, total_steps)``: the step at which the run is finished."""
    batch_sizes: tuple[int, ...]
    """Per-process batch sizes that occur (the last batch of an epoch may be smaller)."""


def plan_steps(dataset_items: int, cfg: TrainConfig, world_size: int = 1) -> RunPlan:
    """The run's length from the dataset size, exactly as :class:`ResumableDistributedSampler` and the loader cut it."""
    n = dataset_items if cfg.data.max_slices_per_epoch is None else min(dataset_items, cfg.data.max_slices_per_epoch)
    per_process = -(-n // world_size)
    bs = cfg.data.batch_size
    steps_per_epoch = -(-per_process // bs)
    epochs = cfg.optim.epochs + cfg.optim.epochs_decay
    total = epochs * steps_per_epoch
    planned = total if cfg.max_steps is None else min(cfg.max_steps, total)
    sizes = {min(bs, per_process)} | ({per_process % bs} if per_process % bs else set())
    return RunPlan(dataset_items, n, world_size, steps_per_epoch, epochs, total, planned, tuple(sorted(sizes)))


def training_dataset(store: SliceStore, domain_a: str, domain_b: str, cfg: TrainConfig) -> UnpairedSliceDataset:
    """The run's training Dataset: the train split as ``cfg.data`` draws it (halves, tumour prevalence per domain)."""
    d = cfg.data
    return UnpairedSliceDataset(store, domain_a, domain_b, "train", disjoint_halves=d.disjoint_halves, seed=cfg.seed,
                                tumour_prevalence_a=d.tumour_prevalence_a, tumour_prevalence_b=d.tumour_prevalence_b,
                                tumour_min_pixels=d.tumour_min_pixels)


def plan_run(store: str | Path | SliceStore, direction: str, cfg: TrainConfig, world_size: int = 1) -> RunPlan:
    """:func:`plan_steps` for training ``direction`` on ``store`` with ``world_size`` processes (e.g. for a dry run)."""
    store = store if isinstance(store, SliceStore) else SliceStore(store)
    domain_a, domain_b = domains_for(direction)
    check_store(store, domain_a, domain_b, cfg)
    dataset = training_dataset(store, domain_a, domain_b, cfg)
    return plan_steps(len(dataset), cfg, world_size)


def guard_channels_last(cfg: TrainConfig, device: torch.device, info: DistInfo,
                        batch_sizes: Iterable[int]) -> tuple[TrainConfig, str | None]:
    """``cfg`` with ``channels_last`` off, and a one-line warning, when the layouts disagree on this device
    (:func:`mri_harmonic.utils.device.channels_last_fault`; under DDP any process's fault turns it off on all)."""
    if not cfg.channels_last:
        return cfg, None
    fault = channels_last_fault(device, batch_sizes)
    if info.enabled:
        if reduce_max_many([1.0 if fault else 0.0], info, device)[0] and fault is None:
            fault = "another process found a difference"
    if fault is None:
        return cfg, None
    return replace(cfg, channels_last=False), (
        f"warning: channels_last is off for this run: with torch {torch.__version__} on {device.type} the channels_last "
        f"and NCHW layouts disagree ({fault}); training in NCHW")


def check_world_size(ckpt: Mapping[str, Any] | None, cfg: TrainConfig, info: DistInfo, dataset_items: int,
                     out_dir: Path, allow: bool) -> str | None:
    """``--resume`` on as many processes as the checkpoint was written with; another number is a one-line error
    unless ``allow``, in which case this returns what changes (``None`` when nothing does)."""
    old = ckpt.get("world_size") if ckpt else None
    if old is None or int(old) == info.world_size:
        return None
    old, new, bs = int(old), info.world_size, cfg.data.batch_size
    if not allow:
        raise UserInputError(
            f"`resume`: run {out_dir} was trained on {old} process(es), this is {new}; resume with torchrun "
            f"--nproc_per_node {old}, or allow the change (`allow_world_size_change=True`), which changes the global "
            "batch, the epoch length and the image pools")
    p_old, p_new = plan_steps(dataset_items, cfg, old), plan_steps(dataset_items, cfg, new)
    lr_old, lr_new = cfg.optim.scaled_lr(bs * old), cfg.optim.scaled_lr(bs * new)
    lr = (f"learning rate {lr_old:.3g} -> {lr_new:.3g} (optim.lr_scaling {cfg.optim.lr_scaling})" if lr_old != lr_new
          else f"learning rate stays {lr_old:.3g} (optim.lr_scaling none)")
    seen = int(ckpt["batch_in_epoch"]) * bs * old
    redo = seen - (seen // (bs * new)) * bs * new
    pools = (f"ranks {old}-{new - 1} start with empty image pools" if new > old
             else f"the image pools of ranks {new}-{old - 1} are dropped")
    return (f"resuming on {new} process(es) a run trained on {old}: global batch {bs * old} -> {bs * new} pairs a step, "
            f"{p_old.steps_per_epoch} -> {p_new.steps_per_epoch} steps an epoch (max_steps still counts steps); {lr}; "
            f"epoch {ckpt['epoch']} continues with {redo} slice(s) seen again; {pools}")


def adapt_world_size(s: TrainState, ckpt: Mapping[str, Any]) -> None:
    """After an allowed world-size change: position in the epoch and (with ``optim.lr_scaling``) learning rate."""
    old, new, bs = int(ckpt["world_size"]), s.info.world_size, s.cfg.data.batch_size
    s.batch_in_epoch = (s.batch_in_epoch * bs * old) // (bs * new)
    ratio = s.cfg.optim.scaled_lr(bs * new) / s.cfg.optim.scaled_lr(bs * old)
    for key, opt in s.optimizers.items():
        for group in opt.param_groups:
            group["lr"] *= ratio
            group["initial_lr"] = group.get("initial_lr", group["lr"]) * ratio
        sch = s.schedulers[key]
        sch.base_lrs = [b * ratio for b in sch.base_lrs]
        sch._last_lr = [g["lr"] for g in opt.param_groups]


# ---- the loop ------------------------------------------------------------------------------------------------------
def train(store: str | Path | SliceStore, out_dir: str | Path, direction: str = "flair2t1",
          config: TrainConfig | None = None, resume: bool = False, *, progress: bool = True,
          allow_world_size_change: bool = False, checkpoint: str | int = "latest") -> dict[str, Any]:
    """Train ``G_AB: A -> B`` and ``G_BA: B -> A`` (A, B from ``direction``) on the store's train split.

    Under torchrun each process trains one DDP replica; rank 0 writes the run folder. Returns a summary dict:
    ``stopped`` (``completed``, ``max_steps``, ``time_budget`` or ``signal``), ``signal`` (e.g. ``SIGTERM``, or
    ``None``), ``finished`` (``max_steps`` or the end of the schedule reached), ``step`` of ``planned_steps``, and on
    rank 0 ``message``, one line saying where it stopped, what was saved and how to continue. ``--resume`` on
    another number of processes than the checkpoint's is refused unless ``allow_world_size_change``. With
    ``resume``, ``checkpoint`` (``latest``, ``step_N`` or a path) picks the checkpoint to continue from.
    """
    cfg = config or resolve_config(out_dir, resume=resume, checkpoint=checkpoint)
    info = env_dist_info()
    device = resolve_device(cfg.device, local_rank=info.local_rank if info.enabled else None)
    info = init_distributed(device.type)
    try:
        return _train(store, Path(out_dir), direction, cfg, resume, device, info, progress, allow_world_size_change,
                      checkpoint)
    finally:
        if info.is_main:
            close_file_logger()
        cleanup_distributed()


def _train(store, out_dir: Path, direction: str, cfg: TrainConfig, resume: bool, device: torch.device,
           info: DistInfo, progress: bool, allow_world_size_change: bool = False,
           checkpoint: str | int = "latest") -> dict[str, Any]:
    from tqdm.auto import tqdm

    store = store if isinstance(store, SliceStore) else SliceStore(store)
    domain_a, domain_b = domains_for(direction)
    ckpt = prepare_run(store, out_dir, direction, cfg, resume, device, checkpoint)
    seed_everything(cfg.seed, cfg.deterministic)
    if device.type == "cuda" and not cfg.deterministic:
        torch.backends.cudnn.benchmark = True
    dataset = training_dataset(store, domain_a, domain_b, cfg)
    world_change = check_world_size(ckpt, cfg, info, len(dataset), out_dir, allow_world_size_change)
    plan = plan_steps(len(dataset), cfg, info.world_size)
    cfg, layout_warning = guard_channels_last(cfg, device, info, plan.batch_sizes)
    if layout_warning and info.is_main:
        print(layout_warning, file=sys.stderr, flush=True)
    stats = ckpt["data_statistics"] if ckpt else None
    if ckpt is None:
        probe = build_method(cfg.model, cfg.loss, discriminators=False)
        stats = estimate_data_statistics(probe, store, dataset, cfg) if probe.needs_data_statistics else None
    s = build_state(cfg, device, info, stats)
    if ckpt:
        fresh_pools = {k: p.state_dict() for k, p in s.pools.items()}
        restore_checkpoint(s, ckpt)
        restore_rank_state(s, ckpt, fresh_pools)
        if world_change:
            adapt_world_size(s, ckpt)
    sampler, loader = make_loader(dataset, cfg, info, device)
    assert -(-sampler.num_samples // cfg.data.batch_size) == plan.steps_per_epoch
    planned = plan.planned_steps
    meta = {"direction": direction, "domain_a": domain_a, "domain_b": domain_b, "image_size": list(store.image_size),
            "store": str(store.path), "store_config_hash": store.config_hash, "store_config": store.config,
            "store_fingerprint": store.fingerprint, "store_model_spacing": store_model_spacing(store),
            "precision": resolve_precision(device, cfg.amp)}
    rep = Reporter(out_dir, s, meta, store, resume_step=s.step if ckpt else None) if info.is_main else None
    if rep:
        for note in (layout_warning, world_change):
            if note:
                rep.log.warning(note)
        budget = "" if cfg.time_budget_minutes is None else (
            f"; time budget {cfg.time_budget_minutes:g} min (counted across resumes, {s.elapsed_s / 60:.1f} used)")
        rep.log.info("%s training %s (%s -> %s) on %s, %s, %s%s; %d process(es); %d steps planned (%d per epoch of "
                     "%d slices), from step %d%s", "resumed" if ckpt else "started", cfg.loss.method, domain_a,
                     domain_b, store.path, describe_device(device), describe_precision(device, cfg.amp),
                     ", compiled" if cfg.compile else "", info.world_size, planned, plan.steps_per_epoch,
                     plan.slices_per_epoch, s.step, budget)
    if world_change and info.is_main:
        print(world_change, file=sys.stderr, flush=True)
    bar = tqdm(total=planned, initial=min(s.step, planned), disable=not (progress and info.is_main),
               desc=f"{cfg.loss.method} {direction}", unit="step", dynamic_ncols=True)
    bar.set_postfix(budget_postfix(s))
    started, steps_before = time.perf_counter(), s.step
    stop = StopRequest()
    reason = run_epochs(s, dataset, sampler, loader, rep, bar, stop)
    bar.close()
    wall = max(time.perf_counter() - started, 1e-9)
    summary = {"run_dir": str(out_dir), "method": cfg.loss.method, "direction": direction, "stopped": reason,
               "signal": stop.signal, "finished": reason in ("completed", "max_steps") or s.step >= planned,
               "step": s.step, "planned_steps": planned, "steps_per_epoch": plan.steps_per_epoch,
               "epoch": s.epoch, "steps_this_run": s.step - steps_before,
               "elapsed_s": round(s.elapsed_s, 3), "cpu_s": round(s.cpu_s, 3), "cpu_from_step": s.cpu_from_step,
               "pairs_per_s": round((s.step - steps_before) * cfg.data.batch_size * info.world_size / wall, 3),
               "world_size": info.world_size, "channels_last": cfg.channels_last,
               "checkpoint": str(ckpt_io.latest_path(out_dir))}
    rank_states = gather_rank_states(s)  # every rank takes part; rank 0 writes them into the final checkpoint
    if rep:
        rep.finish(s, summary, rank_states)
    # no process exits before rank 0 has written: torchrun ends the others as soon as one exits non-zero (3, 143)
    barrier(info)
    return summary


def make_loader(dataset, cfg: TrainConfig, info: DistInfo, device: torch.device):
    """Seeded, shardable, resumable sampler and its DataLoader (workers ignore SIGINT/SIGTERM: see seed_worker)."""
    sampler = ResumableDistributedSampler(dataset, info, seed=cfg.seed, max_samples=cfg.data.max_slices_per_epoch)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=cfg.data.batch_size, sampler=sampler, num_workers=cfg.data.num_workers,
        pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(cfg.seed + info.rank),
        worker_init_fn=seed_worker, persistent_workers=False)
    return sampler, loader


def run_epochs(s: TrainState, dataset, sampler, loader, rep: Reporter | None, bar,
               stop: StopRequest | None = None) -> str:
    """The loop: epochs from ``s.epoch`` (mid-epoch from ``s.batch_in_epoch``) until done or stopped. ``stop``
    receives SIGINT/SIGTERM while the loop runs (its ``signal`` says which arrived)."""
    cfg = s.cfg
    stop = stop or StopRequest()
    total_epochs = cfg.optim.epochs + cfg.optim.epochs_decay
    meter = Meter(cfg.data.batch_size * s.info.world_size)
    started, base_elapsed = time.perf_counter(), s.elapsed_s
    cpu_started, base_cpu = time.process_time(), s.cpu_s
    reason = stop_reason(s, stop)  # e.g. resumed at max_steps or past the time budget: nothing to do
    with stop:
        while reason is None and s.epoch < total_epochs:
            dataset.set_epoch(s.epoch)
            sampler.set_epoch(s.epoch)
            sampler.set_start(s.batch_in_epoch * cfg.data.batch_size)
            for batch in loader:
                meter.add(train_step(s, batch["A"], batch["B"]))
                s.step, s.batch_in_epoch = s.step + 1, s.batch_in_epoch + 1
                s.elapsed_s = base_elapsed + time.perf_counter() - started
                s.cpu_s = base_cpu + time.process_time() - cpu_started
                bar.update(1)
                reason = agreed_stop(s, stop)
                after_step(s, meter, rep, bar, force_log=reason is not None)
                if reason:
                    break
            else:  # epoch complete: next epoch's learning rate (reference: scheduler.step() once per epoch)
                s.epoch, s.batch_in_epoch = s.epoch + 1, 0
                for sch in s.schedulers.values():
                    sch.step()
    s.elapsed_s = base_elapsed + time.perf_counter() - started
    s.cpu_s = base_cpu + time.process_time() - cpu_started
    return reason or "completed"


def budget_postfix(s: TrainState) -> dict[str, str]:
    """``{"budget ends": "HH:MM:SS"}`` (local clock) when a time budget is set: the progress bar's ETA is for all
    planned steps, and the budget may end the run first."""
    if s.cfg.time_budget_minutes is None:
        return {}
    left = max(0.0, 60 * s.cfg.time_budget_minutes - s.elapsed_s)
    return {"budget ends": time.strftime("%H:%M:%S", time.localtime(time.time() + left))}


@dataclass
class Meter:
    """Loss sums and training time over the current logging interval."""

    pairs_per_step: int
    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    n: int = 0
    t0: float = field(default_factory=time.perf_counter)
    io_s: float = 0.0

    def add(self, losses: Mapping[str, torch.Tensor]) -> None:
        self.sums = {k: self.sums.get(k, 0.0) + v for k, v in losses.items()}
        self.n += 1

    def flush(self, info: DistInfo) -> tuple[dict[str, float], float]:
        """(losses averaged over steps and processes, pairs/s excluding sample/checkpoint writing); resets."""
        means = all_reduce_mean({k: v / self.n for k, v in self.sums.items()}, info)
        pps = self.n * self.pairs_per_step / max(time.perf_counter() - self.t0 - self.io_s, 1e-9)
        self.sums, self.n, self.t0, self.io_s = {}, 0, time.perf_counter(), 0.0
        return means, pps


def after_step(s: TrainState, meter: Meter, rep: Reporter | None, bar, force_log: bool = False) -> None:
    """Log (all processes take part in the reduction), write samples and checkpoints (rank 0)."""
    cfg = s.cfg
    if s.step % cfg.log_every == 0 or force_log:
        means, pps = meter.flush(s.info)
        if rep:
            rep.metrics(s, means, pps)
            bar.set_postfix({k: f"{means[k]:.3g}" for k in ("g_total", "cycle_a", "d_b") if k in means}
                            | {"pairs/s": f"{pps:.2f}"} | budget_postfix(s))
    t_io = time.perf_counter()
    if rep and cfg.sample_every and s.step % cfg.sample_every == 0:
        rep.samples(s)
    if s.step % cfg.checkpoint_every == 0:
        rank_states = gather_rank_states(s)  # a collective: every rank, on the same steps
        if rep:
            rep.checkpoint(s, periodic=True, rank_states=rank_states)
    meter.io_s += time.perf_counter() - t_io
