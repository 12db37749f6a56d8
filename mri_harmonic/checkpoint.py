"""Checkpoints: one plain dict per file, written atomically by rank 0, loadable with ``weights_only=True``.

Layout of a checkpoint (format ``mri-harmonic-checkpoint``, version 1)::

    {"format", "version", "step", "epoch", "batch_in_epoch", "elapsed_s",
     "config": to_dict(TrainConfig), "config_hash", "package_version", "method", "direction",
     "domain_a", "domain_b", "image_size": [H, W], "store": str, "store_config_hash",
     "models": {"G_AB", "G_BA", "D_A", "D_B"} (state dicts of the unwrapped modules),
     "optimizers": {"G", "D"}, "schedulers": {"G", "D"},
     "pools": {"A", "B"} ({"images": (N,C,H,W), "generator": RNG state}),
     "distance_stats": {"A": [mu, sigma], "B": [mu, sigma]} or None,
     "rng": {"python", "numpy", "torch", "cuda"}}

``epoch`` / ``batch_in_epoch`` say where in the data order the next step starts, so ``--resume`` continues
exactly. A run folder keeps ``checkpoints/latest.pt`` (always the newest) and the last ``keep`` periodic
``checkpoints/step_NNNNNNN.pt``. :func:`load_run` is what evaluation and translation use.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mri_harmonic.errors import UserInputError
from mri_harmonic.utils.io import atomic_path, atomic_torch_save

FORMAT = "mri-harmonic-checkpoint"
VERSION = 1
_STEP_FILE = re.compile(r"^step_(\d{7,})\.pt$")


def checkpoint_dir(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / "checkpoints"


def latest_path(run_dir: str | os.PathLike) -> Path:
    return checkpoint_dir(run_dir) / "latest.pt"


def step_path(run_dir: str | os.PathLike, step: int) -> Path:
    return checkpoint_dir(run_dir) / f"step_{step:07d}.pt"


def periodic_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Periodic checkpoints of a run, oldest first."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_FILE.match(p.name))]
    return [p for _, p in sorted(found)]


def save_checkpoint(ckpt: dict[str, Any], run_dir: str | os.PathLike, *, periodic: bool = False, keep: int = 3) -> Path:
    """Write ``latest.pt`` (and, if ``periodic``, ``step_NNNNNNN.pt``, pruning to the newest ``keep``) atomically.

    A periodic checkpoint is written once and hard-linked as ``latest.pt`` (copied where links are unsupported).
    Call on rank 0 only.
    """
    latest = latest_path(run_dir)
    if not periodic:
        return atomic_torch_save(ckpt, latest)
    target = atomic_torch_save(ckpt, step_path(run_dir, int(ckpt["step"])))
    with atomic_path(latest) as tmp:
        tmp.unlink()
        try:
            os.link(target, tmp)
        except OSError:
            shutil.copyfile(target, tmp)
    for old in periodic_checkpoints(run_dir)[:-keep]:
        with contextlib.suppress(FileNotFoundError):
            old.unlink()
    return target


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint file (``weights_only=True``); one-line error when it is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"checkpoint {path} not found; pass a run folder that holds checkpoints/latest.pt")
    try:
        with warnings.catch_warnings():  # torch warns about what it refuses to unpickle; the error below says it
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt or foreign file
        have = ", ".join(p.stem for p in periodic_checkpoints(path.parent.parent)) or "none"
        raise UserInputError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}); it is corrupt or not an mri-harmonic checkpoint — "
            f"choose another checkpoint of the run with --checkpoint step_N (periodic ones: {have})"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserInputError(f"{path} is not an mri-harmonic checkpoint (no format '{FORMAT}')")
    if ckpt.get("version") != VERSION:
        raise UserInputError(
            f"checkpoint {path} has format version {ckpt.get('version')}, this version of mri-harmonic reads {VERSION}; "
            "use the mri-harmonic version it was written with (package_version in the file)"
        )
    return ckpt


def resolve_checkpoint(run_dir: str | os.PathLike, checkpoint: str | int = "latest") -> Path:
    """``"latest"``, a step number, ``"step_1000"`` / ``"step_0001000"`` or a path -> the checkpoint file of ``run_dir``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserInputError(f"run folder {run_dir} does not exist; pass the --out folder of a `mri-harmonic train` run")
    step = re.fullmatch(r"(?:step_)?(\d+)(?:\.pt)?", str(checkpoint))
    if isinstance(checkpoint, int) or step:
        path = step_path(run_dir, int(checkpoint) if isinstance(checkpoint, int) else int(step.group(1)))
    elif checkpoint == "latest":
        path = latest_path(run_dir)
    elif str(checkpoint).endswith(".pt") and Path(checkpoint).is_file():
        path = Path(checkpoint)
    else:
        path = checkpoint_dir(run_dir) / f"{checkpoint}{'' if str(checkpoint).endswith('.pt') else '.pt'}"
    if not path.is_file():
        if checkpoint == "latest":
            raise UserInputError(
                f"run folder {run_dir} has no checkpoint ({path} missing); train it first "
                f"(`mri-harmonic train STORE --out {run_dir}`) or pass another run folder"
            )
        have = ", ".join(p.stem for p in periodic_checkpoints(run_dir)) or "none"
        raise UserInputError(f"run folder {run_dir} has no checkpoint {checkpoint!r} (periodic ones: {have}); use 'latest'")
    return path


@dataclass
class LoadedRun:
    """A trained run, ready for translation: both generators in eval mode on ``device``."""

    run_dir: Path
    config: Any  # TrainConfig
    method: str
    direction: str
    domain_a: str
    domain_b: str
    image_size: tuple[int, int]
    step: int
    generators: dict[str, nn.Module] = field(default_factory=dict)
    checkpoint_path: Path | None = None
    store: str | None = None
    store_config_hash: str | None = None

    def generator_for(self, source_modality: str) -> nn.Module:
        """The generator that maps ``source_modality`` to the other domain (``flair`` -> the flair->t1 net)."""
        if source_modality == self.domain_a:
            return self.generators["G_AB"]
        if source_modality == self.domain_b:
            return self.generators["G_BA"]
        raise UserInputError(
            f"run {self.run_dir} translates between {self.domain_a} and {self.domain_b}, not from {source_modality!r}; "
            f"pick one of {self.domain_a}, {self.domain_b}"
        )

    def target_of(self, source_modality: str) -> str:
        """The modality ``generator_for(source_modality)`` produces."""
        self.generator_for(source_modality)
        return self.domain_b if source_modality == self.domain_a else self.domain_a


def build_generators(model_cfg: Any) -> dict[str, nn.Module]:
    """``G_AB`` (in -> out channels) and ``G_BA`` (out -> in), initialised from ``model_cfg``."""
    from mri_harmonic.models.networks import build_generator

    reverse = replace(model_cfg, in_channels=model_cfg.out_channels, out_channels=model_cfg.in_channels)
    return {"G_AB": build_generator(model_cfg), "G_BA": build_generator(reverse)}


def load_run(run_dir: str | os.PathLike, device: str | torch.device = "cpu", checkpoint: str | int = "latest") -> LoadedRun:
    """Load a run's generators from ``checkpoints/<checkpoint>.pt`` (``latest`` by default).

    Raises a one-line :class:`UserInputError` when the folder or checkpoint is missing or not ours.
    """
    from mri_harmonic.config import from_dict
    from mri_harmonic.training.config import TrainConfig
    from mri_harmonic.utils.device import resolve_device

    run_dir = Path(run_dir)
    path = resolve_checkpoint(run_dir, checkpoint)
    dev = resolve_device(device) if isinstance(device, str) else device
    ckpt = read_checkpoint(path, map_location="cpu")
    config = from_dict(TrainConfig, ckpt["config"], source=f"{path} (config)")
    generators = build_generators(config.model)
    for name, net in generators.items():
        net.load_state_dict(ckpt["models"][name])
        net.to(dev).eval()
        net.requires_grad_(False)
    return LoadedRun(
        run_dir=run_dir, config=config, method=ckpt["method"], direction=ckpt["direction"],
        domain_a=ckpt["domain_a"], domain_b=ckpt["domain_b"], image_size=tuple(ckpt["image_size"]),
        step=int(ckpt["step"]), generators=generators, checkpoint_path=path, store=ckpt.get("store"),
        store_config_hash=ckpt.get("store_config_hash"),
    )
