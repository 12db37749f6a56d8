"""torch Datasets over a :class:`~mri_harmonic.data.store.SliceStore`.

Both read single slices from the memory maps (O(1), no decompression) and return float32 tensors of shape
``(1, H, W)`` scaled to the networks' range [-1, 1] (store value ``v`` in [0, 1] -> ``2 v - 1``; background -> -1).
Use :func:`to_unit` to go back to [0, 1].
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mri_harmonic.data.store import SliceStore


def to_network(x: np.ndarray) -> torch.Tensor:
    """[0, 1] array (H, W) -> float32 tensor (1, H, W) in [-1, 1].

    float16 slices are copied as float16 and widened by torch, whose half -> float conversion is vectorised
    (NumPy's is not: ~4x slower, the bottleneck of a training Dataset at 256x256)."""
    a = np.asarray(x)
    if a.dtype == np.float16:
        t = torch.from_numpy(np.array(a, copy=True)).to(torch.float32)
    else:
        t = torch.from_numpy(np.array(a, dtype=np.float32, copy=True))
    return t.mul_(2.0).sub_(1.0).unsqueeze(0)


def to_unit(t: torch.Tensor) -> torch.Tensor:
    """Network range [-1, 1] -> [0, 1] (clamped)."""
    return ((t + 1.0) * 0.5).clamp(0.0, 1.0)


def _as_store(store: SliceStore | str) -> SliceStore:
    return store if isinstance(store, SliceStore) else SliceStore(store)


class UnpairedSliceDataset(Dataset):
    """Unpaired (A, B) slices for CycleGAN-style training.

    Item ``i`` is slice ``i mod n_A`` of domain A with a slice of domain B drawn from a seeded permutation that
    :meth:`set_epoch` reshuffles, as the CycleGAN reference draws B at random. With ``disjoint_halves`` (default:
    what the store was built with, ``unpaired_halves``) A comes only from subjects of half 0 and B only from
    subjects of half 1, so no subject is seen in both domains.

    Returns ``{"A": (1,H,W), "B": (1,H,W), "A_row": int, "B_row": int}``.
    """

    def __init__(
        self,
        store: SliceStore | str,
        domain_a: str = "flair",
        domain_b: str = "t1",
        split: str = "train",
        *,
        disjoint_halves: bool | None = None,
        seed: int = 0,
    ):
        self.store = _as_store(store).require(split=split, modalities=[domain_a, domain_b])
        self.split, self.domain_a, self.domain_b, self.seed = split, domain_a, domain_b, seed
        manifest = self.store.split_manifest(split)
        halves = self.store.unpaired_halves if disjoint_halves is None else disjoint_halves
        if halves and manifest["half"].nunique() > 1:
            self.rows_a = manifest.loc[manifest["half"] == 0, "row"].to_numpy()
            self.rows_b = manifest.loc[manifest["half"] == 1, "row"].to_numpy()
        else:
            self.rows_a = self.rows_b = manifest["row"].to_numpy()
        self.disjoint_halves = bool(halves)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        rng = np.random.default_rng([self.seed, epoch])
        n = len(self)
        self._perm_b = rng.integers(0, len(self.rows_b), size=n)

    def __len__(self) -> int:
        return int(max(len(self.rows_a), len(self.rows_b)))

    def __getitem__(self, i: int) -> dict[str, Any]:
        ra = int(self.rows_a[i % len(self.rows_a)])
        rb = int(self.rows_b[self._perm_b[i % len(self._perm_b)]])
        return {
            "A": to_network(self.store.array(self.split, self.domain_a)[ra]),
            "B": to_network(self.store.array(self.split, self.domain_b)[rb]),
            "A_row": ra,
            "B_row": rb,
        }


class PairedSliceDataset(Dataset):
    """Co-registered slices of one subject for evaluation: every modality, brain mask, labels and identity.

    Returns ``{<modality>: (1,H,W) in [-1,1] for each of modalities, "mask": (1,H,W) bool, "seg": (1,H,W) int64,
    "subject": str, "slice_index": int, "row": int}``.
    """

    def __init__(self, store: SliceStore | str, split: str = "test", modalities: tuple[str, ...] = ("flair", "t1")):
        self.store = _as_store(store).require(split=split, modalities=list(modalities))
        self.split, self.modalities = split, tuple(modalities)
        self.manifest = self.store.split_manifest(split)

    def __len__(self) -> int:
        return len(self.manifest)

    def __getitem__(self, i: int) -> dict[str, Any]:
        rec = self.manifest.iloc[i]
        row = int(rec["row"])
        item: dict[str, Any] = {m: to_network(self.store.array(self.split, m)[row]) for m in self.modalities}
        item["mask"] = torch.from_numpy(np.asarray(self.store.array(self.split, "mask")[row]) > 0).unsqueeze(0)
        item["seg"] = torch.from_numpy(np.asarray(self.store.array(self.split, "seg")[row], dtype=np.int64)).unsqueeze(0)
        item["subject"] = str(rec["subject"])
        item["slice_index"] = int(rec["slice_index"])
        item["row"] = row
        return item
