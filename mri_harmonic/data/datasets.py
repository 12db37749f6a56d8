"""torch Datasets over a :class:`~mri_harmonic.data.store.SliceStore`.

Both read single slices from the memory maps (O(1), no decompression) and return float32 tensors of shape
``(1, H, W)`` scaled to the networks' range [-1, 1] (store value ``v`` in [0, 1] -> ``2 v - 1``; background -> -1).
Use :func:`to_unit` to go back to [0, 1].

Tumour prevalence: :func:`slice_tumour_pixels` counts each slice's labelled pixels from the manifest,
:func:`prevalence_subset` draws a seeded subset of healthy and tumorous slices with a given tumorous share; the
training Dataset applies it per domain (``tumour_prevalence_a`` / ``_b``), the evaluation's slice filter uses the
same healthy / tumorous definition.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from mri_harmonic.data.store import SliceStore
from mri_harmonic.errors import UserInputError

#: A slice is *tumorous* when it holds at least this many labelled (tumour) pixels inside the brain, the size from
#: which the tumour-fidelity checks score a lesion (``TumourCheckConfig.min_lesion_pixels``); *healthy* when it holds
#: none. Slices in between are neither (a few labelled pixels at a lesion's pole).
TUMOUR_MIN_PIXELS = 20
#: When a prevalence cannot be met exactly with the slices at hand, the realised tumorous share may differ from it by
#: at most this much (else the prevalence is refused).
PREVALENCE_TOLERANCE = 0.01


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


def slice_tumour_pixels(manifest: pd.DataFrame, image_size: tuple[int, int] | list[int]) -> np.ndarray:
    """Labelled pixels inside the brain of each manifest row (int), from its ``tumour_fraction`` (of the brain) and
    ``brain_fraction`` (of the ``H x W`` slice); both are stored to 6 decimals, which is exact after rounding for
    slices up to 2^16 pixels."""
    h, w = image_size
    px = manifest["tumour_fraction"].to_numpy(float) * manifest["brain_fraction"].to_numpy(float) * (h * w)
    return np.rint(px).astype(np.int64)


def slice_kinds(manifest: pd.DataFrame, image_size, min_pixels: int = TUMOUR_MIN_PIXELS) -> tuple[np.ndarray, np.ndarray]:
    """``(healthy, tumorous)`` boolean arrays over the manifest rows: no labelled pixel / at least ``min_pixels``."""
    px = slice_tumour_pixels(manifest, image_size)
    return px == 0, px >= min_pixels


def prevalence_counts(n_healthy: int, n_tumour: int, prevalence: float,
                      tolerance: float = PREVALENCE_TOLERANCE) -> tuple[int, int] | None:
    """``(healthy, tumorous)`` slice counts with tumorous share ``prevalence``, as many slices as the counts allow.

    Exact when ``prevalence`` is a fraction with denominator <= 1000 that the counts can hold (0.6 -> multiples of
    3 tumorous : 2 healthy); otherwise the largest subset whose share ``round(p n) / n`` lies within ``tolerance``.
    ``None`` when no subset qualifies.
    """
    f = Fraction(prevalence).limit_denominator(1000)
    if abs(float(f) - prevalence) < 1e-12:
        num, rest = f.numerator, f.denominator - f.numerator
        k = min(n_tumour // num if num else n_healthy + n_tumour, n_healthy // rest if rest else n_healthy + n_tumour)
        if k >= 1:
            return k * rest, k * num
    for n in range(n_healthy + n_tumour, 0, -1):
        t = int(round(prevalence * n))
        if t <= n_tumour and n - t <= n_healthy and abs(t / n - prevalence) <= tolerance:
            return n - t, t
    return None


def prevalence_subset(rows: np.ndarray, healthy: np.ndarray, tumorous: np.ndarray, prevalence: float, seed,
                      what: str = "the selection", min_pixels: int = TUMOUR_MIN_PIXELS) -> np.ndarray:
    """A seeded subset of ``rows`` (sorted) with tumorous share ``prevalence`` (:func:`prevalence_counts`):
    healthy and tumorous rows are subsampled without replacement; rows that are neither are dropped.
    ``what`` names the slices (and the setting) and ``min_pixels`` the tumorous definition in the one-line
    :class:`UserInputError` when the rows cannot deliver the share."""
    rows = np.asarray(rows)
    h_rows, t_rows = rows[np.asarray(healthy, bool)], rows[np.asarray(tumorous, bool)]
    counts = prevalence_counts(len(h_rows), len(t_rows), prevalence)
    if counts is None:
        raise UserInputError(
            f"{what} has {len(t_rows)} tumorous (>= {min_pixels} tumour pixels) and {len(h_rows)} healthy slices, "
            f"which cannot give a tumorous share of {prevalence:g} (within {PREVALENCE_TOLERANCE:g}); choose a prevalence "
            "these counts allow, null for the natural mix, or a store with more slices of the scarce kind")
    k_h, k_t = counts
    rng = np.random.default_rng(seed)
    picked = np.concatenate([rng.choice(h_rows, k_h, replace=False), rng.choice(t_rows, k_t, replace=False)])
    return np.sort(picked)


class UnpairedSliceDataset(Dataset):
    """Unpaired (A, B) slices for CycleGAN-style training.

    Item ``i`` is slice ``i mod n_A`` of domain A with a slice of domain B drawn from a seeded permutation that
    :meth:`set_epoch` reshuffles, as the CycleGAN reference draws B at random. With ``disjoint_halves`` (default:
    what the store was built with, ``unpaired_halves``) A comes only from subjects of half 0 and B only from
    subjects of half 1, so no subject is seen in both domains.

    ``tumour_prevalence_a`` / ``tumour_prevalence_b`` (``None`` = the split's natural mix) keep, once at
    construction, a seeded subset of domain A's / B's slices of which exactly that share is tumorous (at least
    ``tumour_min_pixels`` labelled pixels) and the rest healthy (none); see :func:`prevalence_subset`. Items are
    read as fast as without it. ``tumour_shares`` holds the realised shares.

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
        tumour_prevalence_a: float | None = None,
        tumour_prevalence_b: float | None = None,
        tumour_min_pixels: int = TUMOUR_MIN_PIXELS,
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
        healthy, tumorous = slice_kinds(manifest, self.store.image_size, tumour_min_pixels)
        by_row = pd.Series(np.arange(len(manifest)), index=manifest["row"].to_numpy())
        for side, modality, prevalence, code in (("a", domain_a, tumour_prevalence_a, 0),
                                                 ("b", domain_b, tumour_prevalence_b, 1)):
            if prevalence is None:
                continue
            rows = getattr(self, f"rows_{side}")
            pos = by_row.loc[rows].to_numpy()
            what = (f"data.tumour_prevalence_{side} = {prevalence:g}: the {split} split's domain "
                    f"{side.upper()} ({modality})")
            setattr(self, f"rows_{side}", prevalence_subset(rows, healthy[pos], tumorous[pos], prevalence,
                                                            [seed, code], what, tumour_min_pixels))
        tumour_rows = manifest.loc[tumorous, "row"].to_numpy()
        self.tumour_shares = {d: float(np.isin(rows, tumour_rows).mean()) if len(rows) else float("nan")
                              for d, rows in (("A", self.rows_a), ("B", self.rows_b))}
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
