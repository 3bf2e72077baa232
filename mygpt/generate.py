"""Sampling text from a trained model.

- `sample_next_token` is a pure function of logits: temperature, then top-k, then
  top-p; temperature 0 is greedy (argmax) and ignores the random generator.
- `generate` yields one tensor of next-token ids per step, for all samples at once
  (the samples are rows of one batch), so the caller can stream text as it comes.
- Each call owns a seeded `torch.Generator`: the same seed gives the same text,
  whatever else the program did with torch's global random state.
- Past the context window the model keeps going on the most recent `block_size`
  tokens.
"""

from __future__ import annotations

import secrets
from typing import Iterator, Optional, Sequence

import torch

from mygpt import device as devices
from mygpt.config import SampleConfig
from mygpt.errors import TokenizerError
from mygpt.model import GPT
from mygpt.tokenizer import Tokenizer


def sample_next_token(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: Optional[int] = None,
    top_p: float = 1.0,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Pick one token per row from logits of shape (B, V); returns (B,) ids."""
    if temperature == 0:
        return logits.argmax(dim=-1)  # (B,)
    logits = logits.float() / temperature  # (B, V)
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1): the k-th largest logit
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
        probs = sorted_logits.softmax(dim=-1)  # (B, V)
        # Drop a token when the tokens before it already reach top_p; the first always stays.
        drop = probs.cumsum(dim=-1) - probs >= top_p  # (B, V)
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)  # back to vocab order
    probs = logits.softmax(dim=-1)  # (B, V)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)  # (B,)


def resolve_seed(seed: Optional[int]) -> int:
    """The seed to use: the given one, or a fresh random one the caller can report."""
    return seed if seed is not None else secrets.randbelow(2**31)


def prompt_ids(tokenizer: Tokenizer, prompt: str) -> list[int]:
    """Token ids the model starts from. An empty prompt starts from the document separator
    (BPE), else from a newline when the vocabulary has one, else from token 0."""
    if prompt:
        return tokenizer.encode(prompt)
    if tokenizer.eot_id is not None:
        return [tokenizer.eot_id]
    try:
        return tokenizer.encode("\n")
    except TokenizerError:
        return [0]


@torch.no_grad()
def generate(
    model: GPT, start: Sequence[int], cfg: SampleConfig, seed: int, device: Optional[torch.device] = None
) -> Iterator[torch.Tensor]:
    """Yield `cfg.max_new_tokens` steps of next-token ids, each of shape (num_samples,)."""
    device = device or next(model.parameters()).device
    model.eval()
    block_size = model.config.block_size
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    idx = torch.tensor([list(start)] * cfg.num_samples, dtype=torch.long, device=device)  # (N, T)
    for _ in range(cfg.max_new_tokens):
        context = idx[:, -block_size:]  # (N, <=block_size): the most recent window
        with devices.autocast(device, devices.resolve_dtype("auto", device)):
            logits = model(context)[:, -1, :]  # (N, V): only the last position predicts the next token
        next_ids = sample_next_token(logits, cfg.temperature, cfg.top_k, cfg.top_p, generator)  # (N,)
        idx = torch.cat([idx, next_ids[:, None]], dim=1)  # (N, T+1)
        yield next_ids
