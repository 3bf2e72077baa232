"""Sampling text from a trained model: KV-cached decoding, sampling, streaming, stop strings.

- `sample_next_token` is a pure function of logits: temperature, then top-k, then
  top-p; temperature 0 is greedy (argmax) and ignores the random generator; top-k is
  clamped to the vocabulary and top-p always keeps the most likely token.
- `generate` yields one tensor of next-token ids per step, for all samples at once.
  With the KV cache, the prompt is prefilled once in a single pass (shared by all
  samples), then each step feeds one token through the model's decoder (`GPT.decoder`:
  the same computation with the parameters gathered once). Without it
  (`use_cache=False`), every step recomputes the whole context: the plain path, kept
  for verification and benchmarks.
- Past the context window generation goes on: when the context would exceed
  block_size it restarts from the most recent `keep_after_full` tokens (one re-prefill).
  Both paths use this same rule, so they see the same tokens at every step and give the
  same logits. The cache is never rolled, not even with RoPE: a rolled cache keeps
  deeper-layer keys computed from context that has since left the window, so it would
  no longer match a fresh pass over the window.
- Each call owns a seeded `torch.Generator`: the same seed gives the same text.
- `TextStream` turns ids into printable text: only complete UTF-8 characters, and text
  that might be the start of a stop string is held back until it is decided.
"""

from __future__ import annotations

import secrets
from typing import Iterator, Optional, Sequence

import torch

from mygpt import device as devices
from mygpt.config import SampleConfig
from mygpt.errors import TokenizerError
from mygpt.kvcache import KVCache
from mygpt.model import GPT
from mygpt.tokenizer import StreamDecoder, Tokenizer


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
    probs = token_probs(logits, temperature, top_k, top_p)  # (B, V)
    race = torch.empty_like(probs).exponential_(generator=generator)  # (B, V)
    return race_winners(probs, race)


def token_probs(logits: torch.Tensor, temperature: float, top_k: Optional[int], top_p: float) -> torch.Tensor:
    """The distribution each row samples from (temperature > 0): logits (B, V) -> probs (B, V)."""
    if logits.dtype != torch.float32:
        logits = logits.float()
    if temperature != 1.0:
        # Below ~1e-30 the division would overflow float32 to inf (and the softmax to NaN);
        # at 1e-30 the distribution is already all on the most likely token.
        logits = logits / max(temperature, 1e-30)  # (B, V)
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1): the k-th largest logit
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
        probs = sorted_logits.softmax(dim=-1)  # (B, V)
        # Drop a token when the tokens before it already reach top_p; the first always stays.
        drop = probs.cumsum(dim=-1) - probs >= top_p  # (B, V)
        drop[:, 0] = False  # even for a top_p that float32 rounds to 0
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)  # back to vocab order
    return logits.softmax(dim=-1)  # (B, V)


def race_winners(probs: torch.Tensor, race: torch.Tensor) -> torch.Tensor:
    """One token per row of probs (B, V), given Exp(1) draws `race` (B, V); returns (B,) ids.

    An exponential race: token i wins with probability probs[i] (the smallest of
    independent Exp(1) / probs[i] times). Same distribution as torch.multinomial, but
    cheaper: a one-token decoding step is short enough for its cost to count."""
    race = race.clamp_min_(torch.finfo(probs.dtype).tiny)  # (B, V)
    return (probs / race).argmax(dim=-1)  # (B,)


def resolve_seed(seed: Optional[int]) -> int:
    """The seed to use: the given one, or a fresh random one the caller can report."""
    return seed if seed is not None else secrets.randbelow(2**31)


def prompt_ids(tokenizer: Tokenizer, prompt: str) -> list[int]:
    """Token ids the model starts from. An empty prompt starts from the document separator
    (BPE, word), else from a newline when the vocabulary has one, else from token 0.

    Text outside the vocabulary: a char tokenizer refuses it (TokenizerError, naming the
    characters), a word tokenizer encodes each unknown word as <unk>, as it did in the
    training text, so the model has seen that token (`WordTokenizer.unknown` lists them)."""
    if prompt:
        return tokenizer.encode(prompt)
    if tokenizer.eot_id is not None:
        return [tokenizer.eot_id]
    try:
        return tokenizer.encode("\n")
    except TokenizerError:
        return [0]


def keep_after_full(block_size: int) -> int:
    """How many recent tokens stay in context when it is full: 3/4 of the window, so a
    re-prefill happens every block_size/4 tokens and the model keeps most of its context."""
    return max(1, block_size - block_size // 4)


@torch.inference_mode()
def generate(
    model: GPT,
    start: Sequence[int],
    cfg: SampleConfig,
    seed: int,
    device: Optional[torch.device] = None,
    use_cache: bool = True,
) -> Iterator[torch.Tensor]:
    """Yield `cfg.max_new_tokens` steps of next-token ids, each of shape (num_samples,).

    A prompt longer than the context keeps its last block_size tokens (see `prompt_tail`).
    """
    device = device or next(model.parameters()).device
    model.eval()
    block_size = model.config.block_size
    dtype = devices.inference_dtype(device)
    autocast = devices.autocast(device, dtype)
    devices.configure(device)
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    V = model.config.vocab_size
    context = torch.tensor([list(start)[-block_size:]], dtype=torch.long, device=device)  # (1, T)
    cache = KVCache(model.config, 1, device, dtype) if use_cache else None
    step = model.decoder() if use_cache else None
    with autocast:
        logits = last(model(context, cache), V)  # (1, V): the prompt, prefilled in one pass
    logits = logits.expand(cfg.num_samples, -1)  # (N, V): every sample continues the same prompt
    context = context.expand(cfg.num_samples, -1)  # (N, T)
    if cache is not None and cfg.num_samples > 1:
        cache.repeat(cfg.num_samples)
    for i in range(cfg.max_new_tokens):
        next_ids = sample_next_token(logits, cfg.temperature, cfg.top_k, cfg.top_p, generator)  # (N,)
        yield next_ids
        if i == cfg.max_new_tokens - 1:
            break
        next_ids = next_ids.unsqueeze(1)  # (N, 1)
        context = torch.cat([context, next_ids], dim=1)  # (N, T+1)
        if context.size(1) > block_size:  # full: restart from the recent tokens
            context = context[:, -keep_after_full(block_size) :]  # (N, keep)
            if cache is not None:
                cache.reset()
        with autocast:
            if cache is None:
                logits = last(model(context), V)  # (N, V): recompute the whole context
            elif cache.pos == 0:
                logits = last(step(context, cache), V)  # (N, V): re-prefill the window
            else:
                logits = last(step(next_ids, cache), V)  # (N, V): one new position


def last(logits: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """The last position's logits (B, T, padded_vocab_size) -> (B, vocab_size): the padding
    rows (ModelConfig.vocab_multiple) are never sampled."""
    logits = logits.select(1, -1)  # (B, padded_vocab_size)
    return logits if logits.size(1) == vocab_size else logits.narrow(1, 0, vocab_size)


def prompt_tail(start: Sequence[int], block_size: int) -> int:
    """How many prompt tokens do not fit in the context (and are not seen by the model)."""
    return max(0, len(start) - block_size)


class TextStream:
    """Token ids in, printable text out.

    Emits only complete UTF-8 characters. With stop strings, text that could still turn
    into a stop string is held back; once the output contains one, everything from the
    stop string on is dropped and `stopped` becomes True.
    """

    def __init__(self, tokenizer: Tokenizer, stops: Sequence[str] = ()):
        self.decoder = StreamDecoder(tokenizer)
        self.stops = [s for s in stops if s]
        self.pending = ""  # decoded, not yet emitted
        self.text = ""  # everything emitted so far
        self.stopped = False

    def push(self, ids: Sequence[int]) -> str:
        if self.stopped:
            return ""
        self.pending += self.decoder.push(ids)
        hits = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.stopped = True
            return self._emit(min(hits), drop_rest=True)
        return self._emit(len(self.pending) - self._held_back())

    def finish(self) -> str:
        """The rest, at the end of generation (held-back text that never became a stop)."""
        if self.stopped:
            return ""
        self.pending += self.decoder.flush()
        return self._emit(len(self.pending))

    def _emit(self, n: int, drop_rest: bool = False) -> str:
        out, self.pending = self.pending[:n], "" if drop_rest else self.pending[n:]
        self.text += out
        return out

    def _held_back(self) -> int:
        """Length of the longest end of `pending` that is the beginning of a stop string."""
        longest = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(self.pending)), longest, -1):
                if self.pending.endswith(stop[:n]):
                    longest = n
                    break
        return longest
