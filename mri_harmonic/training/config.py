"""Configuration of a training run (:class:`TrainConfig`) and its YAML loader with ``extends:``.

YAML layout (every key optional; defaults live in the dataclasses below and in
:mod:`mri_harmonic.models.config`)::

    extends: phantom-cpu.yaml      # optional: start from another file (path relative to this one)
    model: {ngf: 32, n_blocks: 6}  # ModelConfig
    loss: {method: harmonic, smoothness: {sigma: 0.5}}   # LossConfig
    optim: {lr: 2.0e-4, epochs: 100, epochs_decay: 100}  # OptimConfig
    data: {batch_size: 1, num_workers: 0}               # DataConfig
    pool_size: 50
    seed: 0
    device: auto
    max_steps: 4000

``extends`` is resolved by :func:`load_train_config` only (it is not a config field): the named file is loaded
first (recursively, cycles rejected), then this file's keys are deep-merged over it, then ``--set`` overrides.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

from mri_harmonic.config import (
    config_hash,
    deep_merge,
    from_layers,
    read_yaml,
    require,
    to_dict,
)
from mri_harmonic.errors import UserInputError
from mri_harmonic.models.config import LossConfig, ModelConfig

#: Keys that may differ between a run's checkpoint and the config given to ``--resume``: they change how long the
#: run lasts, how often it reports, or where it runs, but not what one step computes.
RESUME_SAFE_KEYS: frozenset[str] = frozenset(
    {
        "max_steps",
        "time_budget_minutes",
        "log_every",
        "sample_every",
        "checkpoint_every",
        "keep_checkpoints",
        "sample_slices",
        "tensorboard",
        "device",
        "channels_last",
        "compile",
        "data.num_workers",
    }
)


@dataclass
class OptimConfig:
    """Adam for both generators jointly and for both discriminators jointly, with the CycleGAN reference schedule.

    The reference (junyanz/pytorch-CycleGAN-and-pix2pix, ``models/networks.py::get_scheduler``, policy ``linear``)
    keeps ``lr`` for ``epochs`` epochs, then decays it linearly towards zero over ``epochs_decay`` epochs:
    ``lr(e) = lr * (1 - max(0, e + 1 - epochs) / (epochs_decay + 1))`` for epoch ``e = 0, 1, ...``.

    Batch size: the reference and the paper train with batch 1 at ``lr = 2e-4``. The global batch is
    ``data.batch_size x world_size`` (DDP). ``lr_scaling`` rescales ``lr`` by it: ``sqrt`` multiplies by
    ``sqrt(global_batch)`` (the square-root rule for Adam, Malladi et al., NeurIPS 2022), ``linear`` by
    ``global_batch`` (Goyal et al., 2017; usually too aggressive for GANs), ``none`` (default) keeps ``lr`` as given.
    """

    lr: float = 2e-4
    """Initial learning rate of both Adams (reference ``--lr 0.0002``)."""
    beta1: float = 0.5
    """Adam beta1 (reference ``--beta1 0.5``)."""
    beta2: float = 0.999
    """Adam beta2."""
    epochs: int = 100
    """Epochs at the initial learning rate (reference ``--n_epochs 100``)."""
    epochs_decay: int = 100
    """Epochs of linear decay to zero that follow (reference ``--n_epochs_decay 100``)."""
    lr_scaling: Literal["none", "sqrt", "linear"] = "none"
    """Rescale ``lr`` by the global batch size (see class docstring)."""
    weight_decay: float = 0.0
    """Adam's L2 weight decay (0 in the CycleGAN reference; UNIT's release uses 1e-4)."""

    def __post_init__(self) -> None:
        require(self.lr > 0, "optim.lr", f"must be > 0, got {self.lr}")
        require(0 <= self.beta1 < 1, "optim.beta1", f"must be in [0, 1), got {self.beta1}")
        require(0 <= self.beta2 < 1, "optim.beta2", f"must be in [0, 1), got {self.beta2}")
        require(self.epochs >= 0, "optim.epochs", f"must be >= 0, got {self.epochs}")
        require(self.epochs_decay >= 0, "optim.epochs_decay", f"must be >= 0, got {self.epochs_decay}")
        require(self.epochs + self.epochs_decay >= 1, "optim.epochs", "epochs + epochs_decay must be >= 1")
        require(self.weight_decay >= 0, "optim.weight_decay", f"must be >= 0, got {self.weight_decay}")

    def scaled_lr(self, global_batch: int) -> float:
        """``lr`` after the ``lr_scaling`` rule for ``global_batch`` images per step."""
        factor = {"none": 1.0, "sqrt": float(global_batch) ** 0.5, "linear": float(global_batch)}[self.lr_scaling]
        return self.lr * factor


@dataclass
class DataConfig:
    """How training slices are drawn from the slice store."""

    batch_size: int = 1
    """Unpaired (A, B) pairs per step and process (reference and paper: 1)."""
    num_workers: int = 0
    """DataLoader worker processes (slices are memory-mapped, so 0 is enough on CPU; 2-4 on a GPU)."""
    disjoint_halves: bool | None = None
    """Draw A and B from disjoint subject halves; ``null`` = what the store was built with."""
    max_slices_per_epoch: int | None = None
    """Cap the slices of one epoch (a seeded random subset, new each epoch); ``null`` = the whole train split."""
    sample_split: str = "val"
    """Split whose slices fill the sample grids (falls back to ``train`` when the store has no such split)."""
    tumour_prevalence_a: float | None = None
    """Share of tumorous slices among domain A's training slices (0 = only healthy slices, 0.6 = 60 % tumorous); a
    seeded subset of the train split's healthy (no tumour label) and tumorous (>= ``tumour_min_pixels`` labelled
    pixels) slices, fixed for the run; ``null`` = every slice, the split's natural mix. For hallucination stress tests
    (Cohen et al., MICCAI 2018; StegoGAN's BRATS_mismatch): ``pipelines/hallucination_stress.py``."""
    tumour_prevalence_b: float | None = None
    """As ``tumour_prevalence_a``, for domain B (the target of ``--direction``)."""
    tumour_min_pixels: int = 20
    """Labelled pixels that make a slice tumorous for the prevalence keys (20 = the tumour checks' smallest scored
    lesion, ``TumourCheckConfig.min_lesion_pixels``); slices with fewer, but some, are left out when a prevalence is set."""

    def __post_init__(self) -> None:
        require(self.batch_size >= 1, "data.batch_size", f"must be >= 1, got {self.batch_size}")
        require(self.num_workers >= 0, "data.num_workers", f"must be >= 0, got {self.num_workers}")
        require(self.max_slices_per_epoch is None or self.max_slices_per_epoch >= 1, "data.max_slices_per_epoch",
                f"must be >= 1 or null, got {self.max_slices_per_epoch}")
        for side in ("a", "b"):
            v = getattr(self, f"tumour_prevalence_{side}")
            require(v is None or 0.0 <= v <= 1.0, f"data.tumour_prevalence_{side}",
                    f"must lie in [0, 1] (a share of slices) or be null, got {v}")
        require(self.tumour_min_pixels >= 1, "data.tumour_min_pixels", f"must be >= 1, got {self.tumour_min_pixels}")


@dataclass
class TrainConfig:
    """A complete training run: networks, objective, optimiser, data and run control."""

    model: ModelConfig = field(default_factory=ModelConfig)
    """Generators and discriminators."""
    loss: LossConfig = field(default_factory=LossConfig)
    """Objective, including ``loss.method`` (a name in :data:`mri_harmonic.methods.METHODS`)."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Adam and the learning-rate schedule."""
    data: DataConfig = field(default_factory=DataConfig)
    """Sampling of training slices."""
    pool_size: int = 50
    """Image buffer of generated images shown to the discriminators (Shrivastava et al., CVPR 2017; reference
    ``--pool_size 50``); 0 disables it."""
    seed: int = 0
    """Seeds torch, numpy, python ``random``, the data order and the image pools."""
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    """``auto`` = CUDA, then MPS, then CPU. Under torchrun each process uses ``cuda:LOCAL_RANK``."""
    amp: Literal["auto", "bf16", "off"] | bool = "auto"
    """Mixed precision: ``auto`` = bf16 autocast on CUDA and on CPUs with native bf16 (AVX512-BF16 or AMX), fp32
    elsewhere; ``bf16`` = bf16 autocast on CUDA and any CPU; ``off`` = fp32 (MPS: always fp32). Losses, soft
    histograms and distances stay float32. ``true`` / ``false`` (older configs and checkpoints) read as ``auto`` /
    ``off``. See :func:`mri_harmonic.utils.device.resolve_precision`."""
    compile: bool = False
    """``torch.compile`` the four networks (in place, so checkpoints keep their keys). The first steps are slow
    (compilation; a C++ compiler is needed on CPU): worth it for long runs only."""
    channels_last: bool = False
    """channels_last memory format for networks and inputs (any device). Off by default: instance_norm returns
    NCHW whatever it gets, so the layout converts back at every layer, and in torch 2.13 on CPU its backward in
    channels_last is wrong at batch 1. When on, a start-up self-check on the device compares both layouts at the
    run's batch sizes and falls back to NCHW with a warning where they differ."""
    deterministic: bool = False
    """``torch.use_deterministic_algorithms`` (+ cuDNN deterministic); slower on GPU. CPU runs are reproducible
    without it."""
    log_every: int = 50
    """Steps between rows of ``metrics.csv`` (losses averaged over the interval and over processes)."""
    sample_every: int = 500
    """Steps between sample grids ``samples/step_NNNNNN.png``; 0 = only at the end."""
    checkpoint_every: int = 1000
    """Steps between periodic checkpoints ``checkpoints/step_NNNNNNN.pt`` (``latest.pt`` is refreshed too)."""
    keep_checkpoints: int = 3
    """Periodic checkpoints kept (oldest deleted first); ``latest.pt`` is always kept."""
    sample_slices: int = 4
    """Rows of each sample grid (fixed slices of ``data.sample_split``)."""
    distance_stats_slices: int = 256
    """DistanceGAN only: slices per domain used to estimate the distance mean/std (Benaim & Wolf, Sec. 3)."""
    tensorboard: bool = True
    """Write TensorBoard events to ``OUT/tensorboard`` when ``torch.utils.tensorboard`` imports."""
    ema_decay: float | None = None
    """Exponential moving average of the translating networks' weights (``torch.optim.swa_utils``'s EMA, e.g.
    0.999: a window of ~1,000 steps), updated after every generator step. When set, checkpoints also hold the
    averaged weights (``models_ema``), and sample grids, ``load_run`` (evaluate, translate) and exports use them;
    ``null`` = off, the reference's raw weights. GAN weights oscillate from step to step; their average does not."""
    max_steps: int | None = None
    """Stop after this many optimisation steps (counted over the whole run, across resumes)."""
    time_budget_minutes: float | None = None
    """Stop (with a checkpoint) after this much training time, counted across resumes."""

    def __post_init__(self) -> None:
        require(self.pool_size >= 0, "pool_size", f"must be >= 0, got {self.pool_size}")
        for name in ("log_every", "checkpoint_every", "keep_checkpoints"):
            require(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        require(self.sample_every >= 0, "sample_every", f"must be >= 0, got {self.sample_every}")
        require(self.sample_slices >= 1, "sample_slices", f"must be >= 1, got {self.sample_slices}")
        require(self.distance_stats_slices >= 2, "distance_stats_slices",
                f"must be >= 2, got {self.distance_stats_slices}")
        require(self.ema_decay is None or 0 < self.ema_decay < 1, "ema_decay",
                f"must be between 0 and 1 (e.g. 0.999) or null, got {self.ema_decay}")
        require(self.max_steps is None or self.max_steps >= 1, "max_steps", f"must be >= 1 or null, got {self.max_steps}")
        require(self.time_budget_minutes is None or self.time_budget_minutes > 0, "time_budget_minutes",
                f"must be > 0 or null, got {self.time_budget_minutes}")
        require(self.device in ("auto", "cpu", "cuda", "mps"), "device",
                f"must be one of 'auto', 'cpu', 'cuda', 'mps', got {self.device!r}")
        if isinstance(self.amp, bool):  # configs and checkpoints from before the precision modes
            self.amp = "auto" if self.amp else "off"
        require(self.amp in ("auto", "bf16", "off"), "amp", f"must be one of 'auto', 'bf16', 'off', got {self.amp!r}")


def _read_with_extends(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in chain:
        cycle = " -> ".join(p.name for p in (*chain, path))
        raise UserInputError(f"config file {path}: key 'extends' forms a cycle ({cycle}); remove one of the extends")
    data = read_yaml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent:
        raise UserInputError(f"config file {path}: key 'extends' must be a file name, got {parent!r}")
    parent_path = (path.parent / parent)
    if not parent_path.is_file():
        raise UserInputError(
            f"config file {path}: key 'extends' names {parent_path}, which does not exist; give a path relative to {path.parent}"
        )
    return deep_merge(_read_with_extends(parent_path, (*chain, path)), data)


def load_train_config(
    path: str | os.PathLike | None = None,
    overrides: Iterable[str] | Mapping[str, Any] | None = None,
    base: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """Defaults <- ``base`` (e.g. a run's saved config) <- YAML ``path`` (with ``extends``) <- ``overrides``.

    Unknown keys and wrong types raise a one-line :class:`UserInputError` naming the key and the file.
    """
    data: dict[str, Any] = dict(base or {})
    source = "config"
    if path is not None:
        data = deep_merge(data, _read_with_extends(Path(path)))
        source = str(path)
    return from_layers(TrainConfig, data, source, overrides)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def resume_hash(cfg: TrainConfig | Mapping[str, Any]) -> str:
    """Hash of everything in the config except :data:`RESUME_SAFE_KEYS`."""
    flat = _flatten(cfg if isinstance(cfg, Mapping) else to_dict(cfg))
    return config_hash({k: v for k, v in flat.items() if k not in RESUME_SAFE_KEYS})


def config_differences(old: TrainConfig | Mapping[str, Any], new: TrainConfig | Mapping[str, Any],
                       ignore: Iterable[str] = RESUME_SAFE_KEYS) -> list[str]:
    """``["loss.lambda_smooth: 1.0 -> 2.0", ...]`` for keys (outside ``ignore``) whose values differ."""
    a = _flatten(old if isinstance(old, Mapping) else to_dict(old))
    b = _flatten(new if isinstance(new, Mapping) else to_dict(new))
    skip = set(ignore)
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if k not in skip and a.get(k) != b.get(k)]
