"""Beam search: the continuation with the highest log-probability among those kept N at a time.

Every step extends each of the N best sequences so far by every token, scores each
candidate by the sum of its tokens' log-probabilities, and keeps the N best. With N = 1
it is greedy decoding; with N at least the number of candidates it is exhaustive. It
uses no randomness: the same prompt gives the same text. The KV cache rows follow their
beams (`KVCache.select`), and past the context window every beam restarts from its recent
tokens as `sampling.generate` does, so one beam gives exactly generate's greedy tokens.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from mygpt import device as devices
from mygpt.kvcache import KVCache
from mygpt.model import GPT
from mygpt.sampling import keep_after_full, last


@torch.inference_mode()
def beam_search(
    model: GPT, start: Sequence[int], beams: int, max_new_tokens: int, device: Optional[torch.device] = None
) -> list[int]:
    """The `max_new_tokens` ids that continue `start` best, keeping `beams` candidates at each step."""
    if beams < 1:
        raise ValueError(f"beams={beams}: at least one beam is needed")
    device = device or next(model.parameters()).device
    model.eval()
    block_size, V = model.config.block_size, model.config.vocab_size
    dtype = devices.inference_dtype(device)
    step = model.decoder()
    context = torch.tensor([list(start)[-block_size:]], dtype=torch.long, device=device)  # (1, T)
    cache = KVCache(model.config, 1, device, dtype)
    generated = torch.empty(1, 0, dtype=torch.long, device=device)  # (K, i): each beam's new tokens
    scores = torch.zeros(1, device=device)  # (K,): each beam's log-probability so far
    with devices.autocast(device, dtype):
        logits = last(step(context, cache), V)  # (1, V)
    for i in range(max_new_tokens):
        candidates = scores[:, None] + logits.float().log_softmax(dim=-1)  # (K, V)
        scores, best = candidates.view(-1).topk(min(beams, candidates.numel()))  # (K',) each, best first
        rows, tokens = best // V, best % V  # the beam each extends, and by which token
        generated = torch.cat([generated[rows], tokens[:, None]], dim=1)  # (K', i+1)
        if i == max_new_tokens - 1:
            break
        context = torch.cat([context[rows], tokens[:, None]], dim=1)  # (K', T+1)
        cache.select(rows)
        if context.size(1) > block_size:  # full: every beam restarts from its recent tokens
            context = context[:, -keep_after_full(block_size) :]
            cache.reset()
        with devices.autocast(device, dtype):
            fed = context if cache.pos == 0 else tokens[:, None]  # (K', T) re-prefill, or (K', 1)
            logits = last(step(fed, cache), V)  # (K', V)
    return generated[0].tolist() if max_new_tokens else []
