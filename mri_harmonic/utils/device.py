"""Device choice, mixed precision, memory format and seeding: the few places where hardware shows through.

``auto`` picks CUDA, then Apple MPS, then CPU. The channels_last memory format is opt-in and guarded: in torch 2.13
on CPU, ``instance_norm``'s backward with a channels_last gradient at batch 1 is wrong (relative error ~1.4, batch 2
exact), so :func:`channels_last_fault` compares the two layouts on the actual device before a run uses it.

Precision (``TrainConfig.amp``, :func:`resolve_precision`): ``auto`` trains under bf16 autocast on CUDA and on CPUs
with native bf16 instructions (AVX512-BF16 or AMX, :func:`cpu_has_native_bf16`), where it is faster; fp32 elsewhere
(on an AVX2-only CPU bf16 is emulated and slower). ``bf16`` forces bf16 autocast on CUDA and on any CPU, ``off``
is fp32. bf16 has fp32's exponent range, so no gradient scaler is needed. Under autocast the convolutions run in
bf16; losses, soft histograms and distances switch autocast off and compute in float32
(:mod:`mri_harmonic.models.losses`). :func:`compile_module` applies ``torch.compile`` in place (``model.compile``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
from pathlib import Path
from typing import Any, ContextManager, Iterable, Literal

import numpy as np
import torch

from mri_harmonic.errors import UserInputError


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str = "auto", local_rank: int | None = None, key: str = "device") -> torch.device:
    """``auto|cpu|cuda|mps`` -> a :class:`torch.device`; ``cuda:LOCAL_RANK`` under torchrun.

    Raises a one-line :class:`UserInputError` naming ``key`` when the requested device is not available.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else ("mps" if mps_available() else "cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UserInputError(f"key '{key}' is 'cuda' but CUDA is not available here; use {key}=auto or {key}=cpu")
        index = local_rank if local_rank is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise UserInputError(
                f"process LOCAL_RANK {index} needs GPU {index} but only {torch.cuda.device_count()} are visible; "
                "start no more processes per node than GPUs (torchrun --nproc_per_node)"
            )
        return torch.device("cuda", index)
    if name == "mps":
        if not mps_available():
            raise UserInputError(f"key '{key}' is 'mps' but Apple MPS is not available here; use {key}=auto or {key}=cpu")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise UserInputError(f"key '{key}' must be one of auto, cpu, cuda, mps; got {name!r}")


def describe_device(device: torch.device) -> str:
    """Human-readable name, e.g. ``cuda:0 (NVIDIA H100 80GB HBM3)`` or ``cpu (2 threads)``."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)


#: ``TrainConfig.amp`` values; ``true`` / ``false`` (configs and checkpoints from before the modes) mean ``auto`` / ``off``.
AMP_MODES = ("auto", "bf16", "off")
#: /proc/cpuinfo flags of native bf16 arithmetic on x86 (Intel Cooper Lake+ / AMD Zen 4+: avx512_bf16; Sapphire Rapids+: AMX).
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def normalize_amp(amp: bool | str, key: str = "amp") -> str:
    """``auto|bf16|off`` (``True`` -> ``auto``, ``False`` -> ``off``); one-line :class:`UserInputError` otherwise."""
    if amp is True or amp is False:
        return "auto" if amp else "off"
    if amp in AMP_MODES:
        return str(amp)
    raise UserInputError(f"key '{key}' must be one of auto, bf16, off (or true = auto, false = off); got {amp!r}")


def _cpuinfo_flags(path: str | Path = "/proc/cpuinfo") -> set[str]:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.partition(":")[2].split())
    return set()


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), so that CPU autocast is faster than fp32.

    Asks torch's cpuinfo (``torch.cpu._is_avx512_bf16_supported`` / ``_is_amx_tile_supported``, which also check
    that the OS enables the registers) and falls back to the /proc/cpuinfo flags :data:`NATIVE_BF16_FLAGS`.
    Tests monkeypatch this function to simulate either kind of CPU.
    """
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if all(callable(p) for p in probes):
        with contextlib.suppress(Exception):
            return any(bool(p()) for p in probes)
    return bool(_cpuinfo_flags() & set(NATIVE_BF16_FLAGS))


def resolve_precision(device: torch.device, amp: bool | str = "auto") -> Literal["bf16", "fp32"]:
    """The precision a run uses on ``device``: ``bf16`` (autocast) or ``fp32``.

    ``auto``: bf16 on CUDA and on CPUs with native bf16 (:func:`cpu_has_native_bf16`), else fp32. ``bf16``: bf16 on
    CUDA and on every CPU (emulated, slower, where the CPU lacks native bf16). ``off``: fp32. MPS always runs fp32.
    """
    mode = normalize_amp(amp)
    if mode == "off" or device.type not in ("cuda", "cpu"):
        return "fp32"
    if mode == "bf16" or device.type == "cuda":
        return "bf16"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def describe_precision(device: torch.device, amp: bool | str = "auto") -> str:
    """``bf16 autocast`` or ``fp32``, for logs and run files."""
    return "bf16 autocast" if resolve_precision(device, amp) == "bf16" else "fp32"


def no_autocast(t: torch.Tensor) -> ContextManager[Any]:
    """Autocast switched off for ``t``'s device: where losses, histograms and distances compute in float32."""
    return torch.autocast(device_type=t.device.type, enabled=False)


def autocast(device: torch.device, amp: bool | str = "auto") -> ContextManager[Any]:
    """bf16 autocast when :func:`resolve_precision` says bf16 for ``device`` and ``amp``; a no-op context otherwise."""
    if resolve_precision(device, amp) == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compile_module(module: torch.nn.Module) -> torch.nn.Module:
    """``torch.compile`` ``module`` in place (``nn.Module.compile``) and return it.

    In place, not ``torch.compile(module)``: the module keeps its class and its parameter names, so state dicts
    (checkpoints) have the same keys as without compiling, and DDP and :func:`~mri_harmonic.training.distributed.unwrap`
    see the plain module. The first steps are slow (graph capture and code generation; inductor needs a C++
    compiler on CPU), so it pays off only in long runs.
    """
    module.compile()
    return module


def memory_format(device: torch.device, channels_last: bool | None = None) -> torch.memory_format:
    """``torch.channels_last`` when ``channels_last`` is true (on any device), else ``torch.contiguous_format``;
    ``None`` is the inference default, channels_last on CUDA only (forward passes agree in both layouts).

    Training checks :func:`channels_last_fault` on the device first: some kernels' gradients are wrong in it.
    """
    if channels_last is None:
        channels_last = device.type == "cuda"
    return torch.channels_last if channels_last else torch.contiguous_format


def channels_last_fault(device: torch.device, batch_sizes: Iterable[int], *, channels: int = 8, size: int = 16,
                        rtol: float = 1e-3) -> str | None:
    """Compare an InstanceNorm2d (the networks' normalisation) forward and backward in NCHW and channels_last on
    ``device`` at each of ``batch_sizes`` (those training will use); ``None`` when they agree, else what differs
    (e.g. ``"input gradient at batch 1: relative error 1.42"``).

    The reference is the NCHW result; the channels_last run feeds a channels_last input and upstream gradient, as a
    channels_last network does. Runs in fp32 under a fixed private seed (the global RNG is not touched).
    """
    gen = torch.Generator().manual_seed(1234)
    for n in sorted({int(b) for b in batch_sizes}):
        x = torch.randn(n, channels, size, size, generator=gen)
        grad = torch.randn(n, channels, size, size, generator=gen)
        results = []
        for fmt in (torch.contiguous_format, torch.channels_last):
            norm = torch.nn.InstanceNorm2d(channels, affine=True).to(device)
            xi = x.to(device).contiguous(memory_format=fmt).detach().clone(memory_format=fmt).requires_grad_(True)
            y = norm(xi)
            y.backward(grad.to(device).contiguous(memory_format=fmt))
            results.append({"output": y.detach().float().cpu(), "input gradient": xi.grad.float().cpu(),
                             "weight gradient": norm.weight.grad.float().cpu()})
        ref, got = results
        for what in ref:
            err = float((got[what] - ref[what]).norm() / ref[what].norm().clamp_min(1e-12))
            if not err <= rtol:  # also catches NaN
                return f"{what} at batch {n}: relative error {err:.3g}"
    return None


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python ``random``, numpy and torch (all devices); optionally force deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)  # e.g. reflection-pad backward on CUDA has none
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def rng_state() -> dict[str, Any]:
    """All global RNG states as plain types and tensors (loadable with ``torch.load(weights_only=True)``)."""
    np_state = np.random.get_state(legacy=False)
    return {
        "python": _to_plain(random.getstate()),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np.asarray(np_state["state"]["key"], dtype=np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state({
        "bit_generator": n["bit_generator"],
        "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
        "has_gauss": n["has_gauss"],
        "gauss": n["gauss"],
    })
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _to_plain(x: Any) -> Any:
    if isinstance(x, tuple):
        return [_to_plain(v) for v in x]
    return x
