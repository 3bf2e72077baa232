"""Device and precision policy, decided when asked (never at import time).

- `auto` picks CUDA, then Apple's MPS, then the CPU.
- A device that is asked for but not present is an error that says what is available.
- On CUDA, matrix products run under bf16 autocast where the GPU supports it, fp16 with a
  gradient scaler where it does not (the weights and the optimizer stay float32), and
  TF32 is allowed; on CPUs with bf16 instructions, bf16 autocast; elsewhere float32.
- torch.compile is used on CUDA by default.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    import numpy as np

from mygpt.errors import ConfigError


def resolve(name: str = "auto") -> torch.device:
    """Turn a device name (auto, cpu, cuda, cuda:N, mps) into an available torch.device."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} was asked for, but CUDA is not available here. {_available()}")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s). {_available()}"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device 'mps' was asked for, but MPS is not available here. {_available()}")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """The dtype matrix products run in (weights and optimizer state stay float32).

    auto: bf16 on CUDA GPUs that support it, fp16 (with a gradient scaler) on those that
    do not; bf16 on CPUs with bf16 instructions (AVX512-BF16 or AMX), where the matrix
    products run natively in bf16 and are faster; float32 on other CPUs (which would
    emulate bf16) and on MPS.
    """
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and cpu_has_bf16():
            return torch.bfloat16
        return torch.float32
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
    if dtype == torch.float16 and device.type != "cuda":
        raise ConfigError(
            f"dtype float16 needs a CUDA GPU (it trains with a gradient scaler); on {device.type} use bfloat16 or float32."
        )
    if dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("this GPU does not support bfloat16; use --dtype float16 (or auto) instead.")
    return dtype


def inference_dtype(device: torch.device) -> torch.dtype:
    """The dtype generation and scoring run in: float32 on the CPU, where a small forward
    pass is bound by per-operation overhead that autocast only adds to; else as training."""
    return torch.float32 if device.type == "cpu" else resolve_dtype("auto", device)


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (elsewhere bf16 is emulated, and slow)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no cheap way to ask, so stay with float32
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Mixed precision for forward passes; nothing to do for float32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def configure(device: torch.device) -> None:
    """Process-wide settings for fast matmuls: on CUDA, float32 products may use TF32
    tensor cores (what remains float32 under autocast, and all of a float32 run)."""
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.allow_tf32 = True


def use_compile(setting: str, device: torch.device) -> bool:
    """on / off, or auto: compile on CUDA, where it pays back within a run."""
    return setting == "on" or (setting == "auto" and device.type == "cuda")


def _available() -> str:
    names = ["cpu"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        names.append("mps")
    return f"Available: {', '.join(names)}."


def to_device(batch: tuple[np.ndarray, np.ndarray], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of numpy ids (x, y) on the device."""
    x, y = (torch.from_numpy(a) for a in batch)  # (B, T) int64 each
    if device.type == "cuda":  # page-locked host memory lets the copy overlap with compute
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)
