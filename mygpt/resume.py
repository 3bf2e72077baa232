"""What an exact resume needs, as tensors and JSON (never pickle).

A run's state file holds, in one safetensors file written atomically:
- the weights (`model.*`) and the AdamW moments and step counts (`optim.<param>.*`),
  named by parameter, so they do not depend on the order parameters were created in;
- the RNG states: torch's CPU (and CUDA) generators as uint8 tensors, and in the JSON
  metadata Python's `random`, numpy's global generator and the batch sampler's generator.

Because the state is one file, a process killed at any moment leaves either the old or
the new state, never a mix; the weights-only checkpoint beside it is for generation.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from mygpt import checkpoint
from mygpt.data import BatchSampler
from mygpt.errors import CheckpointError
from mygpt.model import GPT


def capture(
    model: GPT, optimizer: torch.optim.Optimizer, sampler: BatchSampler, weights: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, rng) for the state file: weights (`checkpoint.model_tensors(model)`),
    optimizer moments, RNG states."""
    tensors = {f"model.{name}": t for name, t in weights.items()}
    names = {id(p): name for name, p in model.named_parameters()}
    for group in optimizer.param_groups:
        for p in group["params"]:
            for key, value in optimizer.state.get(p, {}).items():
                if torch.is_tensor(value):
                    tensors[f"optim.{names[id(p)]}.{key}"] = value.detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    rng = {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), pos, has_gauss, cached],
        "sampler": sampler.rng.bit_generator.state,
    }
    return tensors, rng


def restore(
    model: GPT, optimizer: torch.optim.Optimizer, sampler: BatchSampler, tensors: dict[str, torch.Tensor], rng: dict
) -> None:
    """Put a captured state back: after this the run continues exactly where it was saved."""
    checkpoint.load_weights(
        model, {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}, "the state file"
    )
    names = {id(p): name for name, p in model.named_parameters()}
    saved = optimizer.state_dict()
    index, per_param = 0, {}
    for group in optimizer.param_groups:  # optimizer.state_dict numbers parameters in group order
        for p in group["params"]:
            prefix = f"optim.{names[id(p)]}."
            entry = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            if entry:
                per_param[index] = entry
            index += 1
    optimizer.load_state_dict({"state": per_param, "param_groups": saved["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states[: torch.cuda.device_count()])
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = rng["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    sampler.rng.bit_generator.state = rng["sampler"]


def rank_rng(sampler: BatchSampler) -> dict:
    """One rank's own random state (its batch sampler and torch's generator), as JSON:
    rank 0 gathers every rank's into the state file, so that each resumes its own stream."""
    return {"sampler": sampler.rng.bit_generator.state, "torch": torch.get_rng_state().tolist()}


def restore_rank_rng(sampler: BatchSampler, saved: dict) -> None:
    sampler.rng.bit_generator.state = saved["sampler"]
    torch.set_rng_state(torch.tensor(saved["torch"], dtype=torch.uint8))


def warm_start(model: GPT, tensors: dict[str, torch.Tensor], strict: bool, source: str) -> list[str]:
    """Copy matching weights into a freshly initialised model.

    strict: every tensor must exist with the same shape. Not strict: tensors that are
    missing or shaped differently (a new vocabulary, a longer context) keep their fresh
    initialisation; their names are returned.
    """
    own = model.state_dict()
    tied = {"lm_head.weight"} if model.config.tie_weights else set()
    fresh = sorted(
        name for name, t in own.items()
        if name not in tied and (name not in tensors or tensors[name].shape != t.shape)
    )  # fmt: skip
    if fresh and strict:
        detail = ", ".join(
            f"{n} ({tuple(tensors[n].shape)} there, {tuple(own[n].shape)} here)" if n in tensors else f"{n} (missing)"
            for n in fresh[:4]
        )
        raise CheckpointError(
            f"the weights in {source} do not fit this model: {detail}. "
            "Use --no-strict to initialise those tensors fresh, or match the architecture."
        )
    model.load_state_dict({n: t for n, t in tensors.items() if n in own and n not in fresh}, strict=False)
    return fresh
