"""The training loop.

`train(config)` is a generator of events (`Started`, `Stepped`, `Evaluated`, `Saved`,
`Interrupted`, `Finished`); it never prints. The CLI renders the events; a script can
simply iterate and keep the last one.

Design choices:
- AdamW with weight decay on weight matrices only (not on biases, LayerNorm gains or
  nothing else 1-D); linear warm-up to `lr`, then cosine decay to `min_lr` at
  `max_iters`; gradient-norm clipping; gradient accumulation over `grad_accum`
  micro-batches.
- The training loss is read back from the device only every `log_interval` steps, so
  the loop does not wait on the device every step.
- Evaluation uses fixed, seeded batches (the same ones every time), so successive
  evaluations differ because the model changed, not because the batches did.
- A checkpoint is written (atomically) at every evaluation and at the end; Ctrl-C
  saves the current weights before stopping.
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

import mygpt
from mygpt import checkpoint, data, device as devices
from mygpt.config import ModelConfig, TrainConfig
from mygpt.errors import ConfigError, DataError, TrainingError
from mygpt.model import GPT


@dataclass(frozen=True)
class Started:
    config: TrainConfig  # resolved: model.vocab_size and data are filled in
    path: Path  # where the checkpoint will be written
    num_params: int
    device: str
    train_tokens: int
    val_tokens: int


@dataclass(frozen=True)
class Stepped:
    step: int  # optimizer steps done so far
    max_iters: int
    lr: float
    elapsed: float
    loss: Optional[float] = None  # set every log_interval steps
    tokens_per_sec: Optional[float] = None


@dataclass(frozen=True)
class Evaluated:
    step: int
    train_loss: float
    val_loss: float
    lr: float
    elapsed: float
    is_best: bool


@dataclass(frozen=True)
class Saved:
    path: Path
    step: int


@dataclass(frozen=True)
class Interrupted:
    path: Optional[Path]  # None when nothing was trained yet, so nothing was saved
    step: int


@dataclass(frozen=True)
class Finished:
    path: Path
    step: int
    best_val_loss: float
    elapsed: float


TrainEvent = Union[Started, Stepped, Evaluated, Saved, Interrupted, Finished]


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warm-up, then cosine to min_lr."""
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / (cfg.warmup_iters + 1)
    progress = (step - cfg.warmup_iters) / max(1, cfg.max_iters - cfg.warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))  # 1 -> 0
    return cfg.min_lr + coeff * (cfg.lr - cfg.min_lr)


def make_optimizer(model: GPT, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},  # matrices, embeddings
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},  # biases, LayerNorm gains
    ]
    fused = device.type == "cuda"  # one kernel for all parameters instead of one per tensor
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=fused)


def resolve_model(cfg: TrainConfig, vocab_size: int) -> TrainConfig:
    """The config with model.vocab_size taken from the tokenizer (checked if given)."""
    if cfg.model.vocab_size is not None and cfg.model.vocab_size < vocab_size:
        raise ConfigError(
            f"model.vocab_size={cfg.model.vocab_size} is smaller than the tokenizer's {vocab_size} tokens; "
            "leave it unset to use the tokenizer's size."
        )
    model = ModelConfig(**{**cfg.model.model_dump(), "vocab_size": cfg.model.vocab_size or vocab_size})
    return cfg.model_copy(update={"model": model})


def train(cfg: TrainConfig) -> Iterator[TrainEvent]:
    """Train a model as `cfg` says; yield events; write the checkpoint as it goes."""
    started_at = datetime.now()
    data_dir = Path(cfg.data) if cfg.data else data.ensure_default()
    prepared = data.load(data_dir)
    cfg = resolve_model(cfg, prepared.tokenizer.vocab_size).model_copy(update={"data": str(data_dir)})
    mcfg = cfg.model
    for split_name, tokens in (("train", prepared.train), ("val", prepared.val)):
        if tokens.size < mcfg.block_size + 1:
            raise DataError(
                f"the {split_name} split of {data_dir} has {tokens.size} tokens, fewer than block_size + 1 = "
                f"{mcfg.block_size + 1}. Use a smaller --block-size, more text, or a different --val-fraction."
            )

    device = devices.resolve(cfg.device)
    torch.manual_seed(cfg.seed)
    model = GPT(mcfg).to(device)
    optimizer = make_optimizer(model, cfg, device)
    sampler = data.BatchSampler(prepared.train, mcfg.block_size, cfg.batch_size, cfg.seed)
    autocast = devices.autocast(device)

    path = checkpoint.claim_path(cfg.out_dir, mcfg, started_at)
    tokens_per_step = cfg.batch_size * mcfg.block_size * cfg.grad_accum
    history: list[dict] = []
    best_val = math.inf
    step = 0
    t0 = time.perf_counter()
    saved = False

    def save() -> None:
        last = history[-1] if history else {}
        progress = {
            "step": step,
            "max_iters": cfg.max_iters,
            "tokens_seen": step * tokens_per_step,
            "train_loss": last.get("train_loss"),
            "val_loss": last.get("val_loss"),
            "best_val_loss": best_val if history else None,
            "elapsed": round(time.perf_counter() - t0, 3),
            "history": history,
        }
        checkpoint.save(path, model, _metadata(cfg, prepared, progress, started_at, device))

    try:
        yield Started(cfg, path, model.num_params(), str(device), int(prepared.train.size), int(prepared.val.size))
        mark_time, mark_step, paused = t0, 0, 0.0  # paused: evaluation time since mark_time
        loss_sum = torch.zeros((), device=device)
        while step < cfg.max_iters:
            lr = lr_at(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            for _ in range(cfg.grad_accum):
                x, y = _to_device(sampler.next(), device)
                with autocast:
                    logits = model(x)  # (B, T, V)
                loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())  # mean over B*T tokens
                (loss / cfg.grad_accum).backward()
                loss_sum += loss.detach()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1

            now = time.perf_counter()
            if step % cfg.log_interval == 0 or step == cfg.max_iters:
                loss_value = loss_sum.item() / ((step - mark_step) * cfg.grad_accum)  # waits for the device
                now = time.perf_counter()
                rate = (step - mark_step) * tokens_per_step / max(now - mark_time - paused, 1e-9)
                if not math.isfinite(loss_value):
                    raise TrainingError(_non_finite(step, cfg))
                yield Stepped(step, cfg.max_iters, lr, now - t0, loss_value, rate)
                loss_sum.zero_()
                mark_time, mark_step, paused = now, step, 0.0
            else:
                yield Stepped(step, cfg.max_iters, lr, now - t0)

            if step % cfg.eval_interval == 0 or step == cfg.max_iters:
                eval_start = time.perf_counter()
                train_loss = evaluate(model, prepared.train, cfg, cfg.seed + 1, device)
                val_loss = evaluate(model, prepared.val, cfg, cfg.seed + 2, device)
                if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
                    raise TrainingError(_non_finite(step, cfg))
                is_best = val_loss < best_val
                best_val = min(best_val, val_loss)
                elapsed = time.perf_counter() - t0
                history.append(
                    {"step": step, "train_loss": train_loss, "val_loss": val_loss, "lr": lr, "elapsed": round(elapsed, 3)}
                )
                save()
                saved = True
                yield Evaluated(step, train_loss, val_loss, lr, elapsed, is_best)
                yield Saved(path, step)
                paused += time.perf_counter() - eval_start  # evaluation time is not training throughput
        yield Finished(path, step, best_val, time.perf_counter() - t0)
    except KeyboardInterrupt:
        if step > 0:
            save()
            saved = True
        yield Interrupted(path if saved else None, step)
    finally:
        checkpoint.release_path(path)


@torch.no_grad()
def evaluate(model: GPT, tokens: np.ndarray, cfg: TrainConfig, seed: int, device: torch.device) -> float:
    """Mean loss over `eval_iters` fixed batches (the same batches for the same seed)."""
    sampler = data.BatchSampler(tokens, cfg.model.block_size, cfg.batch_size, seed)
    model.eval()
    total = torch.zeros((), device=device)
    with devices.autocast(device):
        for _ in range(cfg.eval_iters):
            x, y = _to_device(sampler.next(), device)
            logits = model(x)  # (B, T, V)
            total += F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
    model.train()
    return total.item() / cfg.eval_iters


def _to_device(batch: tuple[np.ndarray, np.ndarray], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = (torch.from_numpy(a) for a in batch)  # (B, T) int64 each
    if device.type == "cuda":  # page-locked host memory lets the copy overlap with compute
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)


def _non_finite(step: int, cfg: TrainConfig) -> str:
    return (
        f"the loss became non-finite (NaN or infinite) at step {step}; training stopped and the last good "
        f"checkpoint was kept. Try a lower learning rate (now --lr {cfg.lr:g}) or a smaller --grad-clip."
    )


def _metadata(
    cfg: TrainConfig, prepared: data.PreparedData, progress: dict, started_at: datetime, device: torch.device
) -> dict:
    meta = prepared.meta
    return {
        "model": cfg.model.model_dump(mode="json"),
        "tokenizer": prepared.tokenizer.to_dict(),
        "train": cfg.model_dump(mode="json", exclude={"model"}),
        "progress": progress,
        "data": {
            "path": str(prepared.path),
            "corpus": meta.get("corpus"),
            "checksum": meta.get("checksum"),
            "sources": meta.get("sources"),
            "tokens": meta.get("tokens"),
            "bytes_per_token": meta.get("bytes_per_token"),
        },
        "run": {"device": str(device), "world_size": 1},
        "versions": {
            "mygpt": mygpt.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "created": started_at.astimezone(timezone.utc).isoformat(timespec="seconds"),
        "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
