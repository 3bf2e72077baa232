"""Sizes before allocations: what a model's tensors must be, and whether a run fits.

A file says what model it holds (a checkpoint's header, `import hf`'s config.json, a
nanoGPT `model_args`); nothing is allocated from that belief before it is checked
against the tensors the file actually stores (`check_shapes`, with the expected shapes
taken from a model built on the meta device: no memory, and no second copy of the
architecture). Sizes a user asks for are estimated first and refused with the estimate
and the memory there is (`require`): a lower bound, so that nothing that fits is refused.
"""

from __future__ import annotations

import math
import os
import resource
from typing import TYPE_CHECKING, Mapping, Sequence

from mygpt.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    import torch

    from mygpt.config import ModelConfig, TrainConfig

# fp32 weights, their gradients and AdamW's two moments: 4 copies of 4 bytes per parameter.
TRAIN_BYTES_PER_PARAM = 16


def model_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every stored tensor's shape for a model of this config (a tied LM head is stored as
    the token embedding only), computed on the meta device: nothing is allocated."""
    import torch

    from mygpt.model import GPT

    with torch.device("meta"):
        model = GPT(config)
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    if config.tie_weights:
        shapes.pop("lm_head.weight", None)
    return shapes


def check_shapes(config: ModelConfig, stored: Mapping[str, Sequence[int]], source: str) -> None:
    """Raise unless `stored` (tensor name -> shape, as a file's header declares them) is
    exactly what `config` implies: the first difference is named."""
    expected = model_shapes(config)
    stored = dict(stored)
    if config.tie_weights and "lm_head.weight" in stored:  # a tied head stored twice (nanoGPT): the same matrix
        expected["lm_head.weight"] = expected["transformer.wte.weight"]
    for name, shape in expected.items():
        if name not in stored:
            raise CheckpointError(f"{source} does not hold {name}, which its config implies: the file is damaged.")
        if tuple(stored[name]) != shape:
            raise CheckpointError(
                f"{source}: {name} is stored as {tuple(stored[name])} but its config implies {shape}: "
                "the config and the weights do not belong together."
            )
    extra = sorted(set(stored) - set(expected))
    if extra:
        raise CheckpointError(f"{source} holds tensors its config has no place for: {', '.join(extra[:3])}.")


def num_params(config: ModelConfig) -> int:
    return sum(math.prod(shape) for shape in model_shapes(config).values())


def training_bytes(cfg: TrainConfig, params: int) -> int:
    """A lower bound on what training `cfg` (a model of `params` parameters) holds at once:
    the weights, gradients and optimizer moments, the logits of a micro-batch and their
    gradient, and each block's input kept for the backward pass."""
    m = cfg.model
    tokens = cfg.batch_size * m.block_size
    logits = 2 * tokens * m.padded_vocab_size * 4
    activations = tokens * m.n_embd * m.n_layer * 4
    return params * TRAIN_BYTES_PER_PARAM + logits + activations


def sampling_bytes(config: ModelConfig, rows: int) -> int:
    """A lower bound on sampling `rows` sequences at once: the weights (fp32), each row's
    keys and values for the whole context in every layer, and a row of logits each."""
    cache = rows * config.n_layer * 2 * config.block_size * config.n_embd * 4
    return num_params(config) * 4 + cache + rows * config.padded_vocab_size * 4


def available_bytes(device: torch.device | str = "cpu") -> int:
    """Memory this process may still use on `device`: free GPU memory on CUDA; on the CPU
    the kernel's MemAvailable, capped by an address-space limit (ulimit -v) if one is set."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    available = _meminfo_available()
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    return min(available, limit) if limit != resource.RLIM_INFINITY else available


def require(need: int, what: str, device: torch.device | str = "cpu") -> None:
    """Refuse, before allocating, what cannot fit: 'this model needs about 206 GB for ...'."""
    have = available_bytes(device)
    if need > have:
        raise ConfigError(
            f"{what} needs about {_gb(need)}; this machine has {_gb(have)} available"
            f"{' on ' + str(device) if str(device) != 'cpu' else ''}. Choose something smaller."
        )


def require_training(cfg: TrainConfig, device: torch.device | str = "cpu") -> None:
    """Refuse a training run that cannot fit, naming its size."""
    n = num_params(cfg.model)
    what = (
        f"training this model ({n / 1e6:,.1f}M parameters, batches of {cfg.batch_size} x {cfg.model.block_size} tokens)"
    )
    require(training_bytes(cfg, n), what + " for its weights, optimizer and activations", device)


def require_sampling(config: ModelConfig, rows: int, device: torch.device | str = "cpu") -> None:
    """Refuse sampling `rows` sequences at once when their caches cannot fit."""
    require(sampling_bytes(config, rows), f"sampling {rows:,} sequences at once from this model", device)


def _meminfo_available() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _gb(n: int) -> str:
    return f"{n / 1e9:,.1f} GB" if n >= 1e8 else f"{n / 1e6:,.0f} MB"
