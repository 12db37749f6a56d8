"""The interface every translation method implements (after the CycleGAN reference's ``BaseModel``).

A :class:`Method` owns its networks and its objectives; the trainer, checkpoints, evaluation and translation
only talk to it through this interface, so adding a method touches its own module and the registry
(:mod:`mri_harmonic.methods.registry`), nothing else.

Life cycle::

    m = CycleGAN(model_cfg, loss_cfg)        # builds and initialises every network in self.nets (CPU)
    m.nets = {k: wrap(v) for ...}            # the trainer may move/wrap them (DDP, compile)
    m.prepare_training(device, data_stats)   # loss modules (VGG weights etc. are read only here)
    losses, fakes = m.generator_objective(real_a, real_b)        # losses["total"] is minimised
    d = m.discriminator_objective(real_a, real_b, pool_a, pool_b) # d["total"] is minimised

Domains are ``A`` (source of the ``--direction``) and ``B``. ``fakes`` maps a domain to generated images of
that domain (``fakes["B"]`` came from real A), which the trainer feeds through the image pools into
:meth:`Method.discriminator_objective`. For inference, :meth:`Method.translator` returns a module mapping one
domain's batch to the other's; it is all that evaluation and ``translate`` need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Mapping

import torch
from torch import nn

from mri_harmonic.models.config import LossConfig, ModelConfig


def unwrap(net: nn.Module) -> nn.Module:
    """The plain module under DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        if hasattr(net, "module") and isinstance(net.module, nn.Module):
            net = net.module
        elif hasattr(net, "_orig_mod") and isinstance(net._orig_mod, nn.Module):
            net = net._orig_mod
        else:
            return net


@dataclass
class NoOptions:
    """Methods whose settings all live in ``loss.*`` take no ``loss.options``."""


class Method:
    """Base class: a translation method between domains ``A`` and ``B``.

    Subclasses set :attr:`name`, :attr:`generator_keys`, :attr:`discriminator_keys` (keys of :attr:`nets`
    optimised by the generator and discriminator Adam respectively; their union is what a checkpoint's
    ``models`` holds), optionally :attr:`Options` (a dataclass for ``loss.options``), and implement
    :meth:`build_networks`, :meth:`generator_objective`, :meth:`discriminator_objective` and :meth:`translator`.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    """One line for ``--help`` and docs."""
    Options: ClassVar[type] = NoOptions
    generator_keys: ClassVar[tuple[str, ...]] = ()
    discriminator_keys: ClassVar[tuple[str, ...]] = ()
    needs_data_statistics: ClassVar[bool] = False
    """True when :meth:`prepare_training` needs statistics from :meth:`estimate_data_statistics`."""

    def __init__(self, model: ModelConfig, loss: LossConfig, *, discriminators: bool = True):
        self.model_cfg, self.loss_cfg = model, loss
        self.options = self.Options(**dict(loss.options))
        self.nets: dict[str, nn.Module] = self.build_networks(discriminators=discriminators)
        self.data_statistics: dict[str, Any] | None = None
        self.step = 0
        """Optimisation steps completed before the current one; the trainer sets it before each step, so an
        objective with a schedule (DiscoGAN's reconstruction curriculum) resumes exactly."""

    # ---- networks ------------------------------------------------------------------------------------------------
    def build_networks(self, discriminators: bool = True) -> dict[str, nn.Module]:
        """Every network, initialised, on the CPU (the discriminators only when ``discriminators``)."""
        raise NotImplementedError

    def translator(self, source: str) -> nn.Module:
        """A module mapping a batch of domain ``source`` (``"A"`` or ``"B"``) to the other domain."""
        raise NotImplementedError

    def image_size_problem(self, height: int, width: int) -> str | None:
        """Why the networks cannot take ``height x width`` images (a phrase naming the setting), or ``None``."""
        k = 2 ** self.model_cfg.n_downsampling
        if height % k or width % k:
            return f"not divisible by 2**model.n_downsampling = {k}; rebuild the store with another size or lower model.n_downsampling"
        return None

    # ---- training ------------------------------------------------------------------------------------------------
    def prepare_training(self, device: torch.device, data_statistics: Mapping[str, Any] | None = None) -> None:
        """Build the loss modules on ``device`` (called once by the trainer, after the networks are placed)."""
        if self.needs_data_statistics and data_statistics is None:
            raise ValueError(f"method {self.name!r} needs data statistics (estimate_data_statistics) to train")
        self.data_statistics = dict(data_statistics) if data_statistics is not None else None

    def estimate_data_statistics(self, images_a: Iterable[torch.Tensor], images_b: Iterable[torch.Tensor]) -> dict[str, Any]:
        """Statistics of the training data the objective needs (only when :attr:`needs_data_statistics`)."""
        return {}

    def generator_objective(self, real_a: torch.Tensor, real_b: torch.Tensor
                            ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """``(named losses with "total", {"A": fake_a, "B": fake_b})`` with the discriminators frozen."""
        raise NotImplementedError

    def discriminator_objective(self, real_a: torch.Tensor, real_b: torch.Tensor, fake_a: torch.Tensor,
                                fake_b: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named discriminator losses with ``"total"``; ``fake_*`` are (pooled) detached generator outputs."""
        raise NotImplementedError

    # ---- helpers for subclasses ----------------------------------------------------------------------------------
    def net(self, key: str) -> nn.Module:
        """``nets[key]`` as placed by the trainer (possibly DDP-wrapped): use it where gradients must sync."""
        return self.nets[key]

    def frozen(self, key: str) -> nn.Module:
        """``nets[key]`` unwrapped: frozen networks must not go through DDP, whose hooks would wait for gradients."""
        return unwrap(self.nets[key])

    def inference_keys(self) -> tuple[str, ...]:
        """Networks a translation needs (what ``load_run`` restores)."""
        return self.generator_keys

    def __repr__(self) -> str:
        return f"{type(self).__name__}(nets={list(self.nets)})"


class Translator(nn.Module):
    """``forward(x) = fn(x)`` over the given submodules, so inference code can treat any method as one module."""

    def __init__(self, fn, **modules: nn.Module):
        super().__init__()
        self.parts = nn.ModuleDict(modules)
        self._fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fn(x)
