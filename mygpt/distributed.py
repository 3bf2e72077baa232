"""Training on several processes with PyTorch's DistributedDataParallel, under torchrun.

`torchrun --nproc-per-node N -m mygpt train ...` starts N copies of `mygpt train` and
tells each its place through the environment (RANK, LOCAL_RANK, WORLD_SIZE, and where
rank 0 listens). `from_env()` reads that; without torchrun it returns a world of one
and nothing here does anything, so a plain `mygpt train` is one ordinary process.

- `setup()` joins the process group: NCCL on CUDA (each rank on GPU LOCAL_RANK), gloo
  on the CPU, with a timeout on every collective (MYGPT_DIST_TIMEOUT seconds, default
  300), so a rank that stops answering ends the job instead of hanging it.
- The helpers below are the few collectives the trainer needs; each is a no-op for a
  world of one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from mygpt.errors import ConfigError

if TYPE_CHECKING:
    import torch

# torch is imported inside the functions: the CLI reads the World before anything needs
# torch, and `mygpt info` never imports it.


@dataclass(frozen=True)
class World:
    rank: int = 0  # this process, 0..size-1
    local_rank: int = 0  # this process on its machine: which GPU it uses
    size: int = 1

    @property
    def enabled(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only one that prints, writes checkpoints and metrics."""
        return self.rank == 0


def from_env() -> World:
    """The world torchrun describes in the environment, or a world of one."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise ConfigError(f"the torchrun environment is malformed ({exc}).") from None
    return World(rank, local_rank, size)


def setup(world: World, device: torch.device) -> torch.device:
    """Join the process group; returns this rank's device (cuda:LOCAL_RANK on CUDA)."""
    if not world.enabled:
        return device
    import torch
    import torch.distributed as dist

    if device.type == "cuda":
        if world.local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"rank {world.rank} wants GPU {world.local_rank}, but this machine has {torch.cuda.device_count()}: "
                "use --nproc-per-node up to the number of GPUs."
            )
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise ConfigError(f"training on several processes works on CUDA (NCCL) or the CPU (gloo), not {device.type}.")
    if not dist.is_initialized():
        timeout = timedelta(seconds=float(os.environ.get("MYGPT_DIST_TIMEOUT", "300")))
        dist.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo",
            timeout=timeout,
            device_id=device if device.type == "cuda" else None,
        )
    return device


def teardown() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.enabled:
        import torch.distributed as dist

        dist.barrier()


def sum_(world: World, values: torch.Tensor) -> torch.Tensor:
    """Elementwise sum over ranks (in place; returns the tensor)."""
    if world.enabled:
        import torch.distributed as dist

        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def broadcast(world: World, obj: Any) -> Any:
    """Rank 0's `obj`, on every rank."""
    if not world.enabled:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(world: World, obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on rank 0 (elsewhere an empty list)."""
    if not world.enabled:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world.size if world.is_main else []
    dist.gather_object(obj, out if world.is_main else None, dst=0)
    return out
