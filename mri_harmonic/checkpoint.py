"""Checkpoints: the one module that writes and reads them (one plain dict per file, written atomically by rank
0, loadable with ``weights_only=True``), and rebuilds a method's inference networks from a checkpoint's own config.

Layout (format ``mri-harmonic-checkpoint``, version 2)::

    {"format", "version", "step", "epoch", "batch_in_epoch", "elapsed_s",
     "cpu_s", "cpu_from_step": process CPU seconds of the kept steps from that step on (absent before CPU accounting),
     "config": resolved TrainConfig as a dict, "config_hash", "package_version", "method", "direction",
     "domain_a", "domain_b", "image_size": [H, W], "store": str, "store_config_hash",
     "store_config": the training store's resolved preprocessing config (so a run translates without its store),
     "store_model_spacing": median voxel size of its subjects on the model grid, "store_fingerprint",
     "models": {net key: state dict} (the method's ``generator_keys`` + ``discriminator_keys``, unwrapped),
     "optimizers": {"G", "D"}, "schedulers": {"G", "D"},
     "pools": {"A", "B"} ({"images": (N,C,H,W), "generator": RNG state}),
     "data_statistics": what the method estimated from the data before step 1 (DistanceGAN) or None,
     "rng": {"python", "numpy", "torch", "cuda"}}

An *inference-only export* (:func:`export_inference`) has the same format and version and the same run facts, but
``models`` holds only the method's inference networks and there are no optimizer, scheduler, pool or RNG states;
it adds ``"inference_only": True``, ``"exported_from"`` (the run folder and checkpoint) and ``"provenance"`` (a
caller's dict, e.g. how the run was trained). :func:`load_run` reads it like a run's checkpoint; training refuses to
resume it (:func:`require_training_state`).

Version 1 (before the method registry) differs only in naming ``data_statistics`` ``distance_stats`` and lacking
``store_config``; :func:`read_checkpoint` upgrades it in memory. ``epoch`` / ``batch_in_epoch`` say where in the data
order the next step starts, so ``--resume`` continues exactly. A run folder keeps ``checkpoints/latest.pt`` (always
the newest) and the last ``keep`` periodic ``checkpoints/step_NNNNNNN.pt``. :func:`load_run` is what evaluation and
translation use; it imports nothing from :mod:`mri_harmonic.training`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mri_harmonic.errors import UserInputError
from mri_harmonic.utils.io import atomic_dir, atomic_path, atomic_torch_save, atomic_write_json, atomic_write_text

FORMAT = "mri-harmonic-checkpoint"
VERSION = 2
#: Versions :func:`read_checkpoint` can upgrade to :data:`VERSION`.
READABLE_VERSIONS = (1, 2)
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
            f"choose another checkpoint of the run with `checkpoint` step_N (periodic ones: {have})"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserInputError(f"{path} is not an mri-harmonic checkpoint (no format '{FORMAT}')")
    if ckpt.get("version") not in READABLE_VERSIONS:
        raise UserInputError(
            f"checkpoint {path} has format version {ckpt.get('version')}, this version of mri-harmonic reads "
            f"{', '.join(map(str, READABLE_VERSIONS))}; use the mri-harmonic version it was written with "
            f"(package_version {ckpt.get('package_version')!r} in the file)"
        )
    return upgrade(ckpt)


def upgrade(ckpt: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint of an older readable version, in the current layout (in memory; the file is untouched)."""
    if ckpt["version"] == 1:
        ckpt = dict(ckpt)
        ckpt["data_statistics"] = ckpt.pop("distance_stats", None)
        ckpt.setdefault("store_config", None)
        ckpt["version"] = VERSION
    return ckpt


def pack(*, step: int, epoch: int, batch_in_epoch: int, elapsed_s: float, cpu_s: float = 0.0, cpu_from_step: int = 0, config: dict[str, Any], config_hash: str,
         method: str, meta: dict[str, Any], models: dict[str, dict[str, torch.Tensor]], optimizers: dict[str, Any],
         schedulers: dict[str, Any], pools: dict[str, Any], data_statistics: Any, rng: dict[str, Any],
         models_ema: dict[str, dict[str, torch.Tensor]] | None = None) -> dict[str, Any]:
    """The checkpoint dict of the current layout (see the module docstring); ``meta`` holds the run facts
    (direction, domains, image size, store, store_config_hash, store_config); ``models_ema`` the averaged
    inference networks when the run keeps them (``ema_decay``; their ``n_averaged`` counter included)."""
    from mri_harmonic import __version__

    return {"format": FORMAT, "version": VERSION, "step": int(step), "epoch": int(epoch),
            "batch_in_epoch": int(batch_in_epoch), "elapsed_s": float(elapsed_s),
            "cpu_s": float(cpu_s), "cpu_from_step": int(cpu_from_step), "config": config,
            "config_hash": config_hash, "package_version": __version__, "method": method, **meta, "models": models,
            "optimizers": optimizers, "schedulers": schedulers, "pools": pools, "data_statistics": data_statistics,
            "rng": rng, **({"models_ema": models_ema} if models_ema else {})}


def inference_weights(ckpt: dict[str, Any], key: str) -> dict[str, torch.Tensor]:
    """The weights a translation uses for network ``key``: the averaged ones when the checkpoint holds them
    (``ema_decay``; AveragedModel's ``module.`` prefix and counter removed), else the trained ones."""
    ema = (ckpt.get("models_ema") or {}).get(key)
    if ema is None:
        return ckpt["models"][key]
    return {n[len("module."):]: t for n, t in ema.items() if n.startswith("module.")}


def weights_kind(ckpt: dict[str, Any]) -> str:
    """``"ema"`` when translations use averaged weights (:func:`inference_weights`), else ``"raw"``."""
    return "ema" if ckpt.get("models_ema") or ckpt.get("weights") == "ema" else "raw"


def resolve_checkpoint(run_dir: str | os.PathLike, checkpoint: str | int = "latest") -> Path:
    """``"latest"``, a step number, ``"step_1000"`` / ``"step_0001000"`` or a path -> the checkpoint file of ``run_dir``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserInputError(f"run folder {run_dir} does not exist; pass the `out_dir` of a training run (`mri-harmonic train`)")
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
                f"(`mri-harmonic train` with `out_dir` {run_dir}) or pass another run folder"
            )
        have = ", ".join(p.stem for p in periodic_checkpoints(run_dir)) or "none"
        raise UserInputError(f"run folder {run_dir} has no checkpoint {checkpoint!r} (periodic ones: {have}); use 'latest'")
    return path


@dataclass
class LoadedRun:
    """A trained run, ready for translation: the method's translators in eval mode on ``device``."""

    run_dir: Path
    config: dict[str, Any]
    """The run's resolved training config, as saved (a plain dict)."""
    method: str
    direction: str
    domain_a: str
    domain_b: str
    image_size: tuple[int, int]
    step: int
    generators: dict[str, nn.Module] = field(default_factory=dict)
    """``{"A": A -> B translator, "B": B -> A translator}``."""
    checkpoint_path: Path | None = None
    store: str | None = None
    store_config_hash: str | None = None
    store_config: dict[str, Any] | None = None
    """The training store's preprocessing config (None for checkpoints written before version 2)."""
    store_model_spacing: list[float] | None = None
    """Median voxel size (mm) of the training store's subjects on the model grid (None when unknown)."""
    weights: str = "raw"
    """``"ema"``: the run's averaged weights (``ema_decay``), else ``"raw"``: the trained ones."""
    precision: str | None = None
    """``"fp32"`` or ``"bf16"``: what the run trained in (``amp`` resolved on its machine); None when the checkpoint
    predates that record."""

    def generator_for(self, source_modality: str) -> nn.Module:
        """The module that maps ``source_modality`` to the other domain (``flair`` -> the flair->t1 net)."""
        if source_modality == self.domain_a:
            return self.generators["A"]
        if source_modality == self.domain_b:
            return self.generators["B"]
        raise UserInputError(
            f"run {self.run_dir} translates between {self.domain_a} and {self.domain_b}, not from {source_modality!r}; "
            f"pick one of {self.domain_a}, {self.domain_b}"
        )

    def target_of(self, source_modality: str) -> str:
        """The modality ``generator_for(source_modality)`` produces."""
        self.generator_for(source_modality)
        return self.domain_b if source_modality == self.domain_a else self.domain_a


def build_inference_method(config: dict[str, Any], source: str = "checkpoint config"):
    """The run's method with freshly built generator networks (no discriminators, no loss modules), from the
    ``model`` and ``loss`` sections of a saved training config."""
    from mri_harmonic.config import from_dict
    from mri_harmonic.methods import build_method
    from mri_harmonic.models.config import LossConfig, ModelConfig

    model = from_dict(ModelConfig, config.get("model", {}), source=source, prefix="model")
    loss = from_dict(LossConfig, config.get("loss", {}), source=source, prefix="loss")
    return build_method(model, loss, discriminators=False)


def load_run(run_dir: str | os.PathLike, device: str | torch.device = "cpu", checkpoint: str | int = "latest") -> LoadedRun:
    """Load a run's translators from ``checkpoints/<checkpoint>.pt`` (``latest`` by default).

    Raises a one-line :class:`UserInputError` when the folder or checkpoint is missing or not ours.
    """
    from mri_harmonic.utils.device import resolve_device

    run_dir = Path(run_dir)
    path = resolve_checkpoint(run_dir, checkpoint)
    dev = resolve_device(device) if isinstance(device, str) else device
    ckpt = read_checkpoint(path, map_location="cpu")
    method = build_inference_method(ckpt["config"], source=f"{path} (config)")
    for key in method.inference_keys():
        net = method.nets[key]
        net.load_state_dict(inference_weights(ckpt, key))
        net.to(dev).eval()
        net.requires_grad_(False)
    generators = {d: method.translator(d).eval() for d in "AB"}
    return LoadedRun(
        run_dir=run_dir, config=ckpt["config"], method=ckpt["method"], direction=ckpt["direction"],
        domain_a=ckpt["domain_a"], domain_b=ckpt["domain_b"], image_size=tuple(ckpt["image_size"]),
        step=int(ckpt["step"]), generators=generators, checkpoint_path=path, store=ckpt.get("store"),
        store_config_hash=ckpt.get("store_config_hash"), store_config=ckpt.get("store_config"),
        store_model_spacing=ckpt.get("store_model_spacing"), weights=weights_kind(ckpt), precision=ckpt.get("precision"),
    )


#: Run facts an inference-only export keeps besides the networks (what :func:`load_run` and ``translate`` read, and
#: what says where the weights come from).
EXPORT_KEYS = ("format", "version", "step", "epoch", "elapsed_s", "cpu_s", "cpu_from_step", "config", "config_hash", "package_version", "method",
               "direction", "domain_a", "domain_b", "image_size", "store", "store_config_hash", "store_config",
               "store_model_spacing", "store_fingerprint", "world_size", "precision")


def inference_checkpoint(ckpt: dict[str, Any], *, exported_from: dict[str, Any] | None = None,
                         provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """The inference-only form of a (current-layout) checkpoint dict: the run facts of :data:`EXPORT_KEYS`, the
    method's inference networks (:meth:`Method.inference_keys`, the networks :func:`load_run` restores) and
    ``provenance``; no discriminators, optimizer, scheduler, pool or RNG state. The networks are those a
    translation uses (:func:`inference_weights`: averaged when the run keeps an average), ``weights`` says which."""
    method = build_inference_method(ckpt["config"], source="checkpoint config")
    slim = {k: ckpt[k] for k in EXPORT_KEYS if k in ckpt}
    slim["models"] = {k: inference_weights(ckpt, k) for k in method.inference_keys()}
    slim.update(inference_only=True, exported_from=exported_from, provenance=provenance, weights=weights_kind(ckpt))
    return slim


def export_inference(run_dir: str | os.PathLike, out_dir: str | os.PathLike, checkpoint: str | int = "latest", *,
                     provenance: dict[str, Any] | None = None) -> Path:
    """Write ``out_dir`` as an inference-only copy of a training run: ``checkpoints/latest.pt``
    (:func:`inference_checkpoint` of the run's ``checkpoint``), ``config.yaml`` (the resolved training config) and
    ``exported.json`` (the checkpoint's facts less the weights). ``load_run``, ``evaluate`` and ``translate`` take
    ``out_dir`` as they take the run; ``resume`` refuses it. The folder is built aside and renamed into place, so an
    existing ``out_dir`` is replaced whole (put files that belong beside it there afterwards)."""
    import yaml

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "exported.json").is_file():
        raise UserInputError(f"`out_dir` {out_dir} exists and is not an inference-only export (no exported.json); "
                             "export into a new or empty folder (an export replaces the folder whole)")
    source = resolve_checkpoint(run_dir, checkpoint)
    ckpt = read_checkpoint(source)
    slim = inference_checkpoint(ckpt, exported_from={"run": str(run_dir), "checkpoint": source.name},
                                provenance=provenance)
    with atomic_dir(out_dir) as tmp:
        atomic_torch_save(slim, latest_path(tmp))
        header = (f"# resolved training config of {run_dir} ({source.name}, step {slim['step']}), hash "
                  f"{slim['config_hash']}; inference-only export, mri-harmonic {slim['package_version']}\n")
        atomic_write_text(tmp / "config.yaml", header + yaml.safe_dump(slim["config"], sort_keys=False))
        atomic_write_json(tmp / "exported.json", {k: v for k, v in slim.items() if k not in ("models", "config")})
    return out_dir


def require_training_state(ckpt: dict[str, Any], path: str | os.PathLike, action: str = "resume") -> None:
    """One-line error when ``ckpt`` is an inference-only export, which has no optimizer state to continue from."""
    if ckpt.get("inference_only"):
        raise UserInputError(
            f"`{action}`: {path} is an inference-only export (networks for translation, no optimizer or training state), "
            "so it cannot be trained further; evaluate or translate with it, or continue the run it was exported from "
            f"({(ckpt.get('exported_from') or {}).get('run', 'unknown')})")
