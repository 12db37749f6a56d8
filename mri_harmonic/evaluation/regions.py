"""Evaluation regions of a slice: the whole slice (as the paper), the brain mask, and the tumour.

- ``slice``: every pixel (the paper's Table 1 compares whole images);
- ``brain``: the store's brain mask (non-zero voxels of all modalities, written by ``mri-harmonic preprocess``);
- ``tumour``: labelled voxels, ``seg > 0`` (BraTS 2018-2021 labels 1 necrosis/non-enhancing core, 2 oedema,
  4 enhancing: the whole tumour);
- ``normal`` (used by the tumour-fidelity checks, not reported as a metric region): brain without tumour.

All functions take ``(B, H, W)`` or ``(B, 1, H, W)`` tensors and return boolean tensors of the same shape.
"""

from __future__ import annotations

import torch

#: Regions reported by ``mri-harmonic evaluate``, in report order.
REGIONS = ("slice", "brain", "tumour")


def tumour_mask(seg: torch.Tensor) -> torch.Tensor:
    """Whole tumour: any BraTS label (> 0)."""
    return seg > 0


def normal_brain_mask(brain: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    """Brain pixels outside the tumour."""
    return brain.to(torch.bool) & ~tumour_mask(seg)


def region_masks(brain: torch.Tensor, seg: torch.Tensor) -> dict[str, torch.Tensor | None]:
    """``{"slice": None (all pixels), "brain": bool mask, "tumour": bool mask}`` for :func:`regional_metrics`."""
    if brain.shape != seg.shape:
        raise ValueError(f"brain mask {tuple(brain.shape)} and labels {tuple(seg.shape)} differ in shape")
    return {"slice": None, "brain": brain.to(torch.bool), "tumour": tumour_mask(seg)}
