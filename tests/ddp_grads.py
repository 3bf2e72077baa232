"""First-step gradients under DDP, for tests/test_distributed.py (not a test itself).

    torchrun --standalone --nproc-per-node 2 tests/ddp_grads.py OUT.safetensors B

Each rank takes its own B rows of one fixed batch of 2B rows, runs forward and backward
through mygpt's DDP wrapping, and rank 0 writes the (all-reduced) gradients.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.nn.functional as F

from mygpt import distributed
from mygpt.config import ModelConfig
from mygpt.model import GPT
from mygpt.session import _ddp

CONFIG = ModelConfig(n_layer=2, n_head=2, n_embd=16, block_size=16, vocab_size=32)


def batch(rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, CONFIG.vocab_size, (rows, CONFIG.block_size + 1), generator=g)
    return tokens[:, :-1], tokens[:, 1:]


if __name__ == "__main__":
    out, B = sys.argv[1], int(sys.argv[2])
    world = distributed.from_env()
    device = distributed.setup(world, torch.device("cpu"))
    torch.manual_seed(0)
    model = GPT(CONFIG)
    x, y = batch(world.size * B)
    mine = slice(world.rank * B, (world.rank + 1) * B)
    ddp = _ddp(model, world, device)  # kept alive: its hooks all-reduce the gradients during backward
    F.cross_entropy(ddp(x[mine]).flatten(0, 1), y[mine].flatten()).backward()
    if world.is_main:
        from safetensors.torch import save_file

        save_file({name: p.grad.contiguous() for name, p in model.named_parameters()}, out)
    del ddp  # before the process group goes, as in mygpt.training
    distributed.teardown()
    # Leave without interpreter finalization, as mygpt's command line does: with gloo it
    # can abort a rank ("terminate called without an active exception", about 1 run in 20
    # here) when its worker threads still hold tensors while Python is torn down.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
