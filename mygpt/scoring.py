"""How well a model predicts held-out text: loss, perplexity and bits per byte.

Every token after the first is scored once. A text longer than the context is read in
windows of block_size tokens that start `stride` tokens apart; each window scores only
the tokens the previous one did not, so (with stride < block_size) every token is
predicted from at least block_size - stride tokens of context, not from a cold start.

Bits per byte divide the total loss (converted from nats to bits) by the UTF-8 bytes of
the scored text: unlike loss per token, it compares models with different tokenizers.

`score_checkpoint` is what `mygpt eval` runs: it picks the text (a file, a prepared data
folder's val split, or by default the val split the checkpoint was trained beside) and
refuses prepared data whose tokenizer is not the checkpoint's.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F

from mygpt import checkpoint, data as datamod, device as devices
from mygpt.errors import ConfigError, DataError
from mygpt.model import GPT
from mygpt.tokenizer import Tokenizer


@dataclass(frozen=True)
class Score:
    loss: float  # mean cross-entropy per scored token, in nats
    perplexity: float
    bits_per_byte: float
    tokens: int  # tokens scored
    bytes: int  # UTF-8 bytes of the scored tokens

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def windows(n: int, block_size: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, scored) per window: inputs ids[begin:end] predict ids[begin+1:end+1],
    and the last `scored` of those predictions are new."""
    out, done, begin = [], 0, 0
    while done < n - 1:
        end = min(begin + block_size, n - 1)
        out.append((begin, end, end - max(done, begin)))
        done, begin = end, begin + stride
    return out


@torch.inference_mode()
def score(model: GPT, ids: Sequence[int], tokenizer: Tokenizer, stride: Optional[int] = None,
          device: Optional[torch.device] = None, batch_size: int = 16) -> Score:  # fmt: skip
    """Score `ids` (at least 2 tokens) with `model`; stride defaults to half the context."""
    if len(ids) < 2:
        raise ValueError("need at least 2 tokens to score")
    device = device or next(model.parameters()).device
    model.eval()
    block_size = model.config.block_size
    stride = stride or max(1, block_size // 2)
    dtype = devices.inference_dtype(device)
    V = model.config.vocab_size
    tokens = torch.tensor(list(ids), dtype=torch.long)
    spans = windows(len(ids), block_size, stride)
    total = 0.0
    # Windows of one length run together; only the last window can be shorter.
    for length in sorted({end - begin for begin, end, _ in spans}):
        same = [s for s in spans if s[1] - s[0] == length]
        for i in range(0, len(same), batch_size):
            chunk = same[i : i + batch_size]
            x = torch.stack([tokens[b:e] for b, e, _ in chunk]).to(device)  # (N, L)
            y = torch.stack([tokens[b + 1 : e + 1] for b, e, _ in chunk]).to(device)  # (N, L)
            with devices.autocast(device, dtype):
                logits = model(x)[..., :V]  # (N, L, V): padding rows are not tokens
            nll = F.cross_entropy(logits.float().transpose(1, 2), y, reduction="none")  # (N, L)
            total += sum(nll[row, length - k :].sum().item() for row, (_, _, k) in enumerate(chunk))
    scored = len(ids) - 1
    n_bytes = len(tokenizer.decode_bytes(list(ids[1:])))
    loss = total / scored
    return Score(loss, math.exp(min(loss, 700.0)), total / math.log(2) / max(n_bytes, 1), scored, n_bytes)


def score_checkpoint(path: str | Path, text: Optional[Path] = None, data: Optional[Path] = None,
                     stride: Optional[int] = None, device: str = "auto") -> tuple[Score, str]:  # fmt: skip
    """Score a checkpoint on a text file, on a prepared data folder's val split, or (by
    default) on the val split of the data it was trained on. Returns the score and a
    description of what was scored."""
    if text is not None and data is not None:
        raise ConfigError("give --text or --data, not both.")
    loaded = checkpoint.load(path, str(devices.resolve(device)))
    if text is not None:
        ids, source = loaded.tokenizer.encode(datamod.read_text(text)), str(text)  # read_text refuses a FIFO
    else:
        stored = loaded.header.meta.data
        folder = data or Path(stored.path if stored and stored.path else "")
        if not (folder / "meta.json").is_file():
            raise DataError(f"no prepared data at {folder}; give --text FILE or --data DIR to score.")
        prepared = datamod.load(folder)
        if prepared.tokenizer.to_dict() != loaded.tokenizer.to_dict():
            raise DataError(f"the data in {folder} uses a different tokenizer than {loaded.header.path}.")
        ids, source = prepared.val.tolist(), f"{folder} (val split)"
    if len(ids) < 2:
        raise DataError(f"{source} has {len(ids)} token(s): at least 2 are needed to score anything.")
    return score(loaded.model, ids, loaded.tokenizer, stride), source
