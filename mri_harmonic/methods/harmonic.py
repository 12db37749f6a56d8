"""HarmonicGAN (Zhang, Pfister, Li, ICLR 2019): CycleGAN plus the smoothness term over a patch graph.

``total = CycleGAN total + lambda_smooth (smooth_a + smooth_b)`` with ``smooth_a = S(real_a, G_AB(a), G_BA(G_AB(a)))``
and ``smooth_b = S(real_b, G_BA(b), G_AB(G_BA(b)))``, ``S`` = :class:`~mri_harmonic.models.losses.SmoothnessLoss`
(Eq. 6-7: the graph of ``x``'s patches weights distances in ``G(x)``; the graph of ``G(x)``'s weights distances in
``F(G(x))``). Settings: ``loss.lambda_smooth`` and ``loss.smoothness.*``.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from mri_harmonic.methods.cyclegan import CycleGAN
from mri_harmonic.models.losses import SmoothnessLoss


class HarmonicGAN(CycleGAN):
    name = "harmonic"
    summary = "HarmonicGAN (Zhang et al., ICLR 2019): CycleGAN + smoothness over a graph of patch features"

    def image_size_problem(self, height: int, width: int) -> str | None:
        p = self.loss_cfg.smoothness.patch_size
        if height % p or width % p:
            return f"not divisible by loss.smoothness.patch_size = {p}; choose a patch size that divides both sides"
        return super().image_size_problem(height, width)

    def prepare_training(self, device: torch.device, data_statistics: Mapping[str, Any] | None = None) -> None:
        super().prepare_training(device, data_statistics)
        self.smooth = SmoothnessLoss(self.loss_cfg.smoothness).to(device)

    def extra_terms(self, real_a, real_b, fake_b, rec_a, fake_a, rec_b):
        terms = {"smooth_a": self.smooth(real_a, fake_b, rec_a), "smooth_b": self.smooth(real_b, fake_a, rec_b)}
        return terms, self.loss_cfg.lambda_smooth * (terms["smooth_a"] + terms["smooth_b"])
