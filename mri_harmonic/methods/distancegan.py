"""DistanceGAN (Benaim & Wolf, NeurIPS 2017) on CycleGAN's networks: the distance constraint in both directions.

``total = CycleGAN total + lambda_distance (dist_ab + dist_ba)`` with
:class:`~mri_harmonic.models.losses.DistanceLoss` (``dist_ab = D(real_a, G_AB(a))``); set ``lambda_cycle: 0`` for
their pure variant. The loss normalises distances by each domain's mean and standard deviation, estimated once
from training images before the first step (:meth:`DistanceGAN.estimate_data_statistics`) and kept in the
checkpoint. Settings: ``loss.lambda_distance``, ``loss.distance_self``.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import torch

from mri_harmonic.methods.cyclegan import CycleGAN
from mri_harmonic.models.losses import DistanceLoss, estimate_distance_stats


class DistanceGAN(CycleGAN):
    name = "distancegan"
    summary = "DistanceGAN (Benaim & Wolf, NeurIPS 2017): CycleGAN + pairwise-distance preservation"
    needs_data_statistics = True

    def estimate_data_statistics(self, images_a: Iterable[torch.Tensor], images_b: Iterable[torch.Tensor]) -> dict[str, Any]:
        """``{"A": [mu, sigma], "B": [mu, sigma]}`` of the distances :class:`DistanceLoss` compares."""
        self_distance = self.loss_cfg.distance_self
        return {key: list(estimate_distance_stats(imgs, self_distance=self_distance, max_items=None))
                for key, imgs in (("A", images_a), ("B", images_b))}

    def prepare_training(self, device: torch.device, data_statistics: Mapping[str, Any] | None = None) -> None:
        super().prepare_training(device, data_statistics)
        a, b = tuple(self.data_statistics["A"]), tuple(self.data_statistics["B"])
        self.dist_ab = DistanceLoss(self.loss_cfg.distance_self).set_stats(source=a, target=b).to(device)
        self.dist_ba = DistanceLoss(self.loss_cfg.distance_self).set_stats(source=b, target=a).to(device)

    def extra_terms(self, real_a, real_b, fake_b, rec_a, fake_a, rec_b):
        terms = {"dist_ab": self.dist_ab(real_a, fake_b), "dist_ba": self.dist_ba(real_b, fake_a)}
        return terms, self.loss_cfg.lambda_distance * (terms["dist_ab"] + terms["dist_ba"])
