"""CycleGAN (Zhu, Park, Isola, Efros, ICCV 2017) as in the reference ``models/cycle_gan_model.py``.

Networks: ``G_AB``, ``G_BA`` (ResNet generators), ``D_A``, ``D_B`` (70x70 PatchGANs). Generator objective::

    total = lambda_gan (gan_ab + gan_ba) + lambda_cycle (cycle_a + cycle_b)
            + lambda_cycle lambda_identity (idt_a + idt_b) + extra_terms(...)

with ``gan_ab = GAN(D_B(G_AB(a)), real)``, ``cycle_a = |G_BA(G_AB(a)) - a|_1``, ``idt_a = |G_AB(b) - b|_1``
(only when ``lambda_identity > 0``). :class:`CycleGAN` subclasses (HarmonicGAN, DistanceGAN) add their terms in
:meth:`CycleGAN.extra_terms`. Each discriminator minimises ``0.5 [GAN(D(real), 1) + GAN(D(fake), 0)]``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

import torch
from torch import nn

from mri_harmonic.methods.base import Method
from mri_harmonic.models.losses import GANLoss, discriminator_loss, l1_loss
from mri_harmonic.models.networks import build_discriminator, build_generator


class CycleGAN(Method):
    name = "cyclegan"
    summary = "CycleGAN (Zhu et al., ICCV 2017): adversarial + cycle-consistency (+ identity) losses"
    generator_keys = ("G_AB", "G_BA")
    discriminator_keys = ("D_A", "D_B")

    def build_networks(self, discriminators: bool = True) -> dict[str, nn.Module]:
        m = self.model_cfg
        reverse = replace(m, in_channels=m.out_channels, out_channels=m.in_channels)
        nets = {"G_AB": build_generator(m), "G_BA": build_generator(reverse)}
        if discriminators:
            nets["D_A"] = build_discriminator(m, m.in_channels)
            nets["D_B"] = build_discriminator(m, m.out_channels)
        return nets

    def translator(self, source: str) -> nn.Module:
        return self.nets[{"A": "G_AB", "B": "G_BA"}[source]]

    def prepare_training(self, device: torch.device, data_statistics: Mapping[str, Any] | None = None) -> None:
        super().prepare_training(device, data_statistics)
        self.gan = GANLoss(self.loss_cfg.gan_mode).to(device)

    def generator_objective(self, real_a, real_b):
        cfg = self.loss_cfg
        g_ab, g_ba = self.net("G_AB"), self.net("G_BA")
        fake_b = g_ab(real_a)
        rec_a = g_ba(fake_b)
        fake_a = g_ba(real_b)
        rec_b = g_ab(fake_a)
        use_idt = cfg.lambda_identity > 0
        idt_a, idt_b = (g_ab(real_b), g_ba(real_a)) if use_idt else (None, None)
        out: dict[str, torch.Tensor] = {
            "gan_ab": self.gan(self.frozen("D_B")(fake_b), True),
            "gan_ba": self.gan(self.frozen("D_A")(fake_a), True),
            "cycle_a": l1_loss(rec_a, real_a),
            "cycle_b": l1_loss(rec_b, real_b),
        }
        total = cfg.lambda_gan * (out["gan_ab"] + out["gan_ba"]) + cfg.lambda_cycle * (out["cycle_a"] + out["cycle_b"])
        if use_idt:
            out["idt_a"] = l1_loss(idt_a, real_b)
            out["idt_b"] = l1_loss(idt_b, real_a)
            total = total + cfg.lambda_cycle * cfg.lambda_identity * (out["idt_a"] + out["idt_b"])
        extra, weighted = self.extra_terms(real_a, real_b, fake_b, rec_a, fake_a, rec_b)
        out.update(extra)
        out["total"] = total + weighted if extra else total
        return out, {"A": fake_a, "B": fake_b}

    def extra_terms(self, real_a, real_b, fake_b, rec_a, fake_a, rec_b) -> tuple[dict[str, torch.Tensor], Any]:
        """A subclass's additional named terms and their weighted sum (``({}, 0)`` for plain CycleGAN)."""
        return {}, 0.0

    def discriminator_objective(self, real_a, real_b, fake_a, fake_b):
        d_a = discriminator_loss(self.net("D_A"), real_a, fake_a, self.gan)
        d_b = discriminator_loss(self.net("D_B"), real_b, fake_b, self.gan)
        return {"d_a": d_a, "d_b": d_b, "total": d_a + d_b}
