"""Device and precision policy, decided when asked (never at import time).

- `auto` picks CUDA, then Apple's MPS, then the CPU.
- A device that is asked for but not present is an error that says what is available.
- On CUDA, matrix products run under bf16 autocast where the GPU supports it (the
  weights and the optimizer stay float32) and TF32 is allowed; elsewhere float32.
"""

from __future__ import annotations

import contextlib

import torch

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
            raise ConfigError(f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s). {_available()}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device 'mps' was asked for, but MPS is not available here. {_available()}")
    return device


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed precision for the forward pass: bf16 on CUDA GPUs that support it."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _available() -> str:
    names = ["cpu"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        names.append("mps")
    return f"Available: {', '.join(names)}."
