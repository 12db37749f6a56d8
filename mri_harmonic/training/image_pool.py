"""The image buffer of generated images shown to the discriminators.

Shrivastava et al., "Learning from Simulated and Unsupervised Images through Adversarial Training", CVPR 2017,
Sec. 2.3; as used by CycleGAN (reference ``util/image_pool.py``): until the pool holds ``pool_size`` images each
new image is stored and returned; afterwards, with probability 1/2 a new image is returned as is, otherwise a
uniformly chosen stored image is returned and replaced by the new one. This damps discriminator oscillation.

Unlike the reference (global ``random``), the pool draws from its own seeded :class:`torch.Generator`, whose state
is part of :meth:`state_dict`, so that a resumed run makes the same choices as an uninterrupted one.
"""

from __future__ import annotations

import torch


class ImagePool:
    """History of generated images (stored detached, on the images' device)."""

    def __init__(self, pool_size: int = 50, seed: int = 0):
        self.pool_size = int(pool_size)
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator()
        self.generator.manual_seed(int(seed))

    def __len__(self) -> int:
        return len(self.images)

    def _uniform(self) -> float:
        return float(torch.rand((), generator=self.generator))

    def _index(self) -> int:
        return int(torch.randint(0, self.pool_size, (), generator=self.generator))

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` new images -> ``(B, C, H, W)`` float32 images for the discriminator (detached)."""
        if self.pool_size == 0:
            return images.detach().float()
        out = []
        for image in images.detach():
            image = image.unsqueeze(0).float().clone()  # float32 whatever autocast produced
            if len(self.images) < self.pool_size:
                self.images.append(image)
                out.append(image)
            elif self._uniform() > 0.5:
                i = self._index()
                out.append(self.images[i])
                self.images[i] = image
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """``{"images": (N, C, H, W) float32 on CPU, "generator": RNG state}``."""
        images = torch.cat(self.images, 0).float().cpu() if self.images else torch.empty(0)
        return {"images": images, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor], device: torch.device | str = "cpu") -> None:
        images = state["images"]
        self.images = [img.unsqueeze(0).to(device) for img in images] if images.numel() else []
        self.generator.set_state(state["generator"].cpu())
