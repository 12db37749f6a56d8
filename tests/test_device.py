"""Precision choice (bf16 autocast or fp32) per device and CPU kind, and the native-bf16 detector's fallbacks."""

from __future__ import annotations

import pytest
import torch

from mri_harmonic.errors import UserInputError
from mri_harmonic.training.config import TrainConfig, load_train_config
from mri_harmonic.utils import device as devmod
from mri_harmonic.utils.device import autocast, normalize_amp, resolve_precision

CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda"), torch.device("mps")


@pytest.fixture
def cpu_kind(monkeypatch):
    """``cpu_kind(True)`` simulates a CPU with native bf16 (AVX512-BF16 / AMX), ``cpu_kind(False)`` one without."""
    def set_kind(native: bool) -> None:
        monkeypatch.setattr(devmod, "cpu_has_native_bf16", lambda: native)
    return set_kind


def test_auto_is_bf16_only_on_cuda_and_native_bf16_cpus(cpu_kind):
    cpu_kind(False)
    assert [resolve_precision(d, "auto") for d in (CPU, CUDA, MPS)] == ["fp32", "bf16", "fp32"]
    cpu_kind(True)
    assert [resolve_precision(d, "auto") for d in (CPU, CUDA, MPS)] == ["bf16", "bf16", "fp32"]


def test_bf16_forces_autocast_on_any_cpu_and_off_is_fp32(cpu_kind):
    for native in (False, True):
        cpu_kind(native)
        assert resolve_precision(CPU, "bf16") == "bf16" and resolve_precision(CUDA, "bf16") == "bf16"
        assert resolve_precision(MPS, "bf16") == "fp32"
        assert {resolve_precision(d, "off") for d in (CPU, CUDA, MPS)} == {"fp32"}


def test_cpu_autocast_context_follows_the_detector(cpu_kind):
    cpu_kind(False)
    with autocast(CPU, "auto"):
        assert not torch.is_autocast_enabled("cpu")
        assert torch.nn.functional.conv2d(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 3, 3)).dtype == torch.float32
    cpu_kind(True)
    with autocast(CPU, "auto"):
        assert torch.is_autocast_enabled("cpu")
        assert torch.nn.functional.conv2d(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 3, 3)).dtype == torch.bfloat16
    assert not torch.is_autocast_enabled("cpu")


def test_old_boolean_amp_reads_as_auto_or_off():
    assert normalize_amp(True) == "auto" and normalize_amp(False) == "off" and normalize_amp("bf16") == "bf16"
    with pytest.raises(UserInputError, match="key 'amp' must be one of auto, bf16, off"):
        normalize_amp("fp16")
    assert load_train_config(None, ["amp=true"]).amp == "auto"
    assert load_train_config(None, ["amp=false"]).amp == "off"
    assert TrainConfig(amp=True).amp == "auto" and TrainConfig().amp == "auto"  # the checkpoints' `amp: true`
    with pytest.raises(UserInputError, match="key 'amp'"):
        load_train_config(None, ["amp=fp16"])


def test_detector_reads_cpuinfo_flags_when_torch_cannot_tell(monkeypatch, tmp_path):
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.delattr(torch.cpu, name, raising=False)
    info, read_flags = tmp_path / "cpuinfo", devmod._cpuinfo_flags
    monkeypatch.setattr(devmod, "_cpuinfo_flags", lambda: read_flags(info))
    for flags, expected in (("fpu sse avx avx2 fma", False), ("fpu avx2 avx512f avx512_bf16", True),
                            ("fpu avx2 amx_bf16 amx_tile", True)):
        info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
        devmod.cpu_has_native_bf16.cache_clear()
        assert devmod.cpu_has_native_bf16() is expected, flags
    info.unlink()  # no /proc/cpuinfo (macOS, Windows): fp32
    devmod.cpu_has_native_bf16.cache_clear()
    assert devmod.cpu_has_native_bf16() is False
    devmod.cpu_has_native_bf16.cache_clear()


def test_detector_prefers_torch_cpuinfo(monkeypatch):
    monkeypatch.setattr(devmod, "_cpuinfo_flags", lambda: {"avx512_bf16"})  # must not be consulted
    for avx512_bf16, amx, expected in ((False, False, False), (True, False, True), (False, True, True)):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v, raising=False)
        devmod.cpu_has_native_bf16.cache_clear()
        assert devmod.cpu_has_native_bf16() is expected
    devmod.cpu_has_native_bf16.cache_clear()
