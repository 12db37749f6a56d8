"""torchrun / DistributedDataParallel plumbing, kept out of the training loop.

``torchrun --nproc_per_node N -m mri_harmonic.cli train ...`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``;
:func:`init_distributed` then joins the process group (NCCL on CUDA, gloo on CPU). Without those variables
everything here degrades to single-process no-ops, so the same code path trains on one device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.distributed as dist
from torch import nn

from mri_harmonic.methods.base import unwrap  # noqa: F401 - re-exported for the trainer


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes logs, samples and checkpoints."""
        return self.rank == 0


def env_dist_info() -> DistInfo:
    """Read torchrun's environment variables (single process when absent)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    return DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group when launched by torchrun (NCCL for ``cuda``, gloo otherwise)."""
    info = env_dist_info()
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    return info


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def wrap_ddp(model: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """Wrap in DistributedDataParallel when distributed (one device per process), else return as is."""
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, output_device=ids[0] if ids else None)


def all_reduce_mean(values: Mapping[str, torch.Tensor], info: DistInfo) -> dict[str, float]:
    """Average scalar tensors over processes (one collective for all of them) -> python floats."""
    keys = list(values)
    if not keys:
        return {}
    stacked = torch.stack([values[k].detach().float().reshape(()) for k in keys])
    if info.enabled:
        dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
        stacked /= info.world_size
    return dict(zip(keys, stacked.tolist()))


def reduce_max(value: float, info: DistInfo, device: torch.device) -> float:
    """The largest ``value`` over all processes (e.g. to agree on stopping)."""
    return reduce_max_many([value], info, device)[0]


def reduce_max_many(values: Sequence[float], info: DistInfo, device: torch.device) -> list[float]:
    """Element-wise largest ``values`` over all processes, in one collective (every process must call it)."""
    if not info.enabled:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [float(v) for v in t.tolist()]


def gather_to_main(obj: Any, info: DistInfo) -> list[Any] | None:
    """``[obj of rank 0, obj of rank 1, ...]`` on rank 0, ``None`` elsewhere (every process must call it).

    Pickles ``obj`` (``torch.distributed.gather_object``); CPU tensors inside it travel as they are.
    """
    if not info.enabled:
        return [obj]
    out: list[Any] | None = [None] * info.world_size if info.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


class ResumableDistributedSampler(torch.utils.data.DistributedSampler):
    """:class:`~torch.utils.data.DistributedSampler` that can cap an epoch and start mid-epoch.

    Each epoch is a permutation seeded by ``(seed, epoch)``, optionally cut to ``max_samples`` (a new random subset
    every epoch), padded to a multiple of the world size and split round-robin over ranks, as the parent does.
    :meth:`set_start` skips this rank's first ``n`` indices once, so a resumed run sees exactly the batches an
    uninterrupted one would have seen next. Works without an initialised process group (one replica).
    """

    def __init__(self, dataset, info: DistInfo, seed: int = 0, max_samples: int | None = None):
        super().__init__(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed,
                         drop_last=False)
        self.max_samples = max_samples
        self.start = 0
        n = len(dataset) if max_samples is None else min(len(dataset), max_samples)
        self.num_samples = -(-n // self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_start(self, n: int) -> None:
        self.start = int(n)

    def __iter__(self):
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        indices = torch.randperm(len(self.dataset), generator=g).tolist()
        if self.max_samples is not None:
            indices = indices[: self.max_samples]
        indices += indices[: self.total_size - len(indices)]
        mine = indices[self.rank : self.total_size : self.num_replicas]
        start, self.start = self.start, 0
        return iter(mine[start:])

    def __len__(self) -> int:
        return self.num_samples - self.start
