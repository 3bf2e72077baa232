"""The training loop.

`train(config)` is a generator of events (`Started`, `Stepped`, `Evaluated`, `Saved`,
`Notice`, `Interrupted`, `Finished`); it never prints. The CLI renders the events; a
script can simply iterate and keep the last one.

Design choices:
- AdamW with weight decay on weight matrices only; linear warm-up, then cosine or linear
  decay to `min_lr` at `max_iters` (or a constant lr); gradient-norm clipping; gradient
  accumulation over `grad_accum` micro-batches.
- The training loss is read back from the device only every `log_interval` steps.
- Evaluation uses fixed, seeded batches, so successive evaluations differ because the
  model changed, not because the batches did. It reports plain cross-entropy, also
  when the training loss uses label smoothing.
- At every evaluation the run writes, each file atomically: its training state
  (X.state.safetensors: weights, optimizer, RNG and sampler state, so a resume is
  exact), its weights and metadata (X.safetensors), and when val loss improved the
  best weights (X.best.safetensors). Metrics go to X.metrics.jsonl as they come.
- Stopping: `max_iters` (the run's total, also across resumes), `max_time` (training
  time, also cumulative), `patience` (evaluations without a new best), `target_loss`
  (val loss low enough), or a `StopFlag`
  set by the caller (the CLI sets it on Ctrl-C / SIGTERM): the current step finishes,
  the state is saved, and `Interrupted` tells how to resume.
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

import mygpt
from mygpt import checkpoint, data, device as devices, distributed, state
from mygpt.config import ModelConfig, TrainConfig
from mygpt.errors import CheckpointError, ConfigError, DataError, TrainingError
from mygpt.model import GPT

# Model fields that may change when a run is resumed; every other one is architecture.
RESUMABLE_MODEL_FIELDS = {"dropout"}


@dataclass(frozen=True)
class Started:
    config: TrainConfig  # resolved: model.vocab_size and data are filled in
    path: Path  # where the checkpoint is written
    num_params: int
    device: str
    dtype: str
    compiled: bool
    train_tokens: int
    val_tokens: int
    start_step: int = 0  # > 0 when resuming
    world_size: int = 1  # processes training together (torchrun)


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
class Notice:
    message: str  # something the user should know that does not stop the run


@dataclass(frozen=True)
class Interrupted:
    path: Optional[Path]  # None when nothing was trained yet, so nothing was saved
    step: int
    signum: Optional[int] = None


@dataclass(frozen=True)
class Finished:
    path: Path
    step: int
    best_val_loss: float
    elapsed: float
    reason: str = "max_iters"  # or "max_time", "patience", "target_loss"


TrainEvent = Union[Started, Stepped, Evaluated, Saved, Notice, Interrupted, Finished]


@dataclass
class StopFlag:
    """Set (from a signal handler, say) to make the loop save and stop after the current step."""

    signum: Optional[int] = None

    def set(self, signum: int) -> None:
        self.signum = signum


@dataclass
class _Progress:
    step: int = 0
    history: list[dict] = field(default_factory=list)
    best_val: float = math.inf
    evals_since_best: int = 0
    elapsed_before: float = 0.0  # training time of earlier sessions of this run


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warm-up, then the schedule."""
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / (cfg.warmup_iters + 1)
    if cfg.lr_schedule == "constant":
        return cfg.lr
    progress = min(1.0, (step - cfg.warmup_iters) / max(1, cfg.max_iters - cfg.warmup_iters))
    coeff = 1.0 - progress if cfg.lr_schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 -> 0
    return cfg.min_lr + coeff * (cfg.lr - cfg.min_lr)


def make_optimizer(model: GPT, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},  # matrices, embeddings
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},  # biases, LayerNorm gains
    ]
    # One fused kernel for all parameters instead of a loop over tensors; on the CPU too,
    # where it took a step of the nanoGPT CPU recipe from 35.5 to 32.8 ms.
    fused = device.type in ("cuda", "cpu")
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=fused)


def resolve_model(cfg: TrainConfig, vocab_size: int, device: torch.device) -> TrainConfig:
    """The config with model.vocab_size taken from the tokenizer (checked if given) and
    model.vocab_multiple decided for the device."""
    if cfg.model.vocab_size is not None and cfg.model.vocab_size < vocab_size:
        raise ConfigError(
            f"model.vocab_size={cfg.model.vocab_size} is smaller than the tokenizer's {vocab_size} tokens; "
            "leave it unset to use the tokenizer's size."
        )
    multiple = cfg.model.vocab_multiple or (64 if device.type == "cuda" else 1)
    model = ModelConfig(
        **{**cfg.model.model_dump(), "vocab_size": cfg.model.vocab_size or vocab_size, "vocab_multiple": multiple}
    )
    return cfg.model_copy(update={"model": model})


def resume_base(path: str | Path) -> dict[str, Any]:
    """A checkpoint's stored train config, as the lowest config layer for resuming it."""
    header = checkpoint.read_header(path)
    return {**header.meta.get("train", {}), "model": header.model}


def train(
    cfg: TrainConfig,
    *,
    resume: str | Path | None = None,
    init_from: str | Path | None = None,
    strict: bool = True,
    stop: StopFlag | None = None,
) -> Iterator[TrainEvent]:
    """Train as `cfg` says; yield events; write the checkpoint files as it goes.

    resume: a checkpoint to continue (same files, same run). init_from: a checkpoint whose
    weights start a new run (strict=False initialises mismatched tensors fresh).
    """
    world = distributed.from_env()
    device = distributed.setup(world, devices.resolve(cfg.device))
    try:
        yield from _train(cfg, world, device, resume, init_from, strict, stop or StopFlag())
    finally:
        distributed.teardown()


def _train(
    cfg: TrainConfig, world: distributed.World, device: torch.device, resume: str | Path | None,
    init_from: str | Path | None, strict: bool, stop: StopFlag,
) -> Iterator[TrainEvent]:  # fmt: skip
    started_at = datetime.now()
    data_dir = _data_dir(cfg, world)
    prepared = data.load(data_dir)
    cfg = resolve_model(cfg, prepared.tokenizer.vocab_size, device).model_copy(update={"data": str(data_dir)})
    mcfg = cfg.model
    for split_name, tokens in (("train", prepared.train), ("val", prepared.val)):
        if tokens.size < mcfg.block_size + 1:
            raise DataError(
                f"the {split_name} split of {data_dir} has {tokens.size} tokens, fewer than block_size + 1 = "
                f"{mcfg.block_size + 1}. Use a smaller --block-size, more text, or a different --val-fraction."
            )
    source = checkpoint.read_header(resume or init_from) if (resume or init_from) else None
    if resume is not None:
        _check_resume(cfg, source, prepared)

    dtype = devices.resolve_dtype(cfg.dtype, device)
    devices.configure(device)
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    model = GPT(mcfg).to(device)
    if world.rank > 0:  # other ranks draw their own dropout masks (rank 0 stays a plain run)
        torch.manual_seed(cfg.seed + world.rank)
    optimizer = make_optimizer(model, cfg, device)
    sampler = data.BatchSampler(prepared.train, mcfg.block_size, cfg.batch_size, rank_seed(cfg.seed, world.rank))
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    progress = _Progress()
    fresh: list[str] = []

    if resume is not None:
        path = Path(resume)
        progress = _restore(path, model, optimizer, sampler, scaler, world, cfg.seed)
        if world.is_main:
            checkpoint.remove_leftovers(path)  # a killed process leaves its claim and partial writes
        created = source.meta.get("created", started_at.astimezone(timezone.utc).isoformat(timespec="seconds"))
    else:
        if init_from is not None:
            fresh = _warm_start(model, Path(init_from), source, prepared, strict)
        path = distributed.broadcast(world, checkpoint.claim_path(cfg.out_dir, mcfg, started_at) if world.is_main else None)
        created = started_at.astimezone(timezone.utc).isoformat(timespec="seconds")
    start_step = progress.step
    metrics = _Metrics(checkpoint.companion(path, "metrics"), keep_through=start_step, enabled=world.is_main)

    compiled = torch.compile(model) if devices.use_compile(cfg.compile, device) else model
    forward = _ddp(compiled, world, device)
    autocast = devices.autocast(device, dtype)
    tokens_per_step = cfg.batch_size * mcfg.block_size * cfg.grad_accum * world.size  # the global batch
    t0 = time.perf_counter() - progress.elapsed_before  # elapsed time counts the run's earlier sessions
    saved_step = start_step

    def save(best: bool = False, gather: bool = True) -> None:
        """State first (what a resume reads), then the weights; `best` also keeps them as the best.
        Every rank calls it (to hand rank 0 its random state); only rank 0 writes."""
        nonlocal saved_step
        ranks = distributed.gather(world, state.rank_rng(sampler)) if gather else []
        if not world.is_main:
            saved_step = progress.step
            return
        weights = checkpoint.model_tensors(model)  # one host copy, for both files
        tensors, rng = state.capture(model, optimizer, sampler, weights)
        if world.enabled:
            rng["ranks"] = ranks
        summary = _summary(progress, cfg, tokens_per_step, time.perf_counter() - t0)
        checkpoint.save_state(
            checkpoint.companion(path, "state"),
            tensors,
            {"progress": {**summary, "evals_since_best": progress.evals_since_best}, "rng": rng,
             "scaler": scaler.state_dict() if scaler.is_enabled() else None},
        )  # fmt: skip
        checkpoint.save(path, model, _metadata(cfg, prepared, summary, created, device, path, world.size), weights)
        if best:
            checkpoint.copy(path, checkpoint.companion(path, "best"))
        saved_step = progress.step

    reason = "max_iters"
    try:
        if progress.step >= cfg.max_iters:
            raise ConfigError(
                f"this run already finished: it is at step {progress.step} and --max-iters is {cfg.max_iters} "
                "(the run's total). Pass a larger --max-iters to train further."
            )
        yield Started(
            cfg, path, model.num_params(), str(device), str(dtype).removeprefix("torch."), compiled is not model,
            int(prepared.train.size), int(prepared.val.size), start_step, world.size,
        )  # fmt: skip
        if fresh:
            yield Notice(f"initialised fresh (not in {init_from} or shaped differently): {', '.join(fresh)}")
        mark_time, mark_step, paused = time.perf_counter(), progress.step, 0.0  # paused: eval time since mark
        loss_sum = torch.zeros((), device=device)
        while progress.step < cfg.max_iters:
            lr = lr_at(progress.step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            for micro in range(cfg.grad_accum):
                x, y = _to_device(sampler.next(), device)
                # DDP averages gradients across ranks in backward; only the last micro-step needs to.
                last = micro == cfg.grad_accum - 1
                with contextlib.nullcontext() if last or not world.enabled else forward.no_sync():
                    try:
                        with autocast:
                            logits = forward(x)  # (B, T, V)
                    except Exception as exc:  # torch.compile failures surface on the first call
                        if compiled is model:
                            raise
                        compiled, forward = model, _ddp(model, world, device)
                        yield Notice(f"torch.compile failed ({type(exc).__name__}); training goes on without it.")
                        with autocast:
                            logits = forward(x)
                    loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), label_smoothing=cfg.label_smoothing)
                    scaler.scale(loss / cfg.grad_accum).backward()
                loss_sum += loss.detach()
            if cfg.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            progress.step += 1
            step = progress.step

            now = time.perf_counter()
            log_step = step % cfg.log_interval == 0 or step == cfg.max_iters
            if log_step:
                distributed.sum_(world, loss_sum)  # the mean over all ranks
                loss_value = loss_sum.item() / ((step - mark_step) * cfg.grad_accum * world.size)  # waits for the device
                now = time.perf_counter()
                rate = (step - mark_step) * tokens_per_step / max(now - mark_time - paused, 1e-9)
                if not math.isfinite(loss_value):
                    raise TrainingError(_non_finite(step, cfg, dtype))
                metrics.write({"step": step, "train_loss": loss_value, "lr": lr, "tokens_per_sec": rate,
                               "elapsed": now - t0})  # fmt: skip
                yield Stepped(step, cfg.max_iters, lr, now - t0, loss_value, rate)
                loss_sum.zero_()
                mark_time, mark_step, paused = now, step, 0.0
            else:
                yield Stepped(step, cfg.max_iters, lr, now - t0)

            out_of_time = cfg.max_seconds is not None and now - t0 >= cfg.max_seconds
            stopping = stop.signum is not None
            if world.enabled:  # ranks must agree on when to stop: they decide together, at log steps
                if log_step:
                    decided = distributed.sum_(world, torch.tensor([float(out_of_time), float(stopping)], device=device))
                    out_of_time, stopping = bool(decided[0]), bool(decided[1])
                else:
                    out_of_time = stopping = False
            if step % cfg.eval_interval == 0 or step == cfg.max_iters or out_of_time:
                eval_start = time.perf_counter()
                train_loss = evaluate(compiled, prepared.train, cfg, cfg.seed + 1, device, dtype, world)
                val_loss = evaluate(compiled, prepared.val, cfg, cfg.seed + 2, device, dtype, world)
                if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
                    raise TrainingError(_non_finite(step, cfg, dtype))
                is_best = val_loss < progress.best_val
                progress.best_val = min(progress.best_val, val_loss)
                progress.evals_since_best = 0 if is_best else progress.evals_since_best + 1
                elapsed = time.perf_counter() - t0
                record = {"step": step, "train_loss": train_loss, "val_loss": val_loss, "lr": lr, "elapsed": round(elapsed, 3)}
                progress.history.append(record)
                metrics.write(record)
                save(best=is_best)
                yield Evaluated(step, train_loss, val_loss, lr, elapsed, is_best)
                yield Saved(path, step)
                paused += time.perf_counter() - eval_start  # evaluation time is not training throughput
                if cfg.patience is not None and progress.evals_since_best >= cfg.patience:
                    reason = "patience"
                    break
                if cfg.target_loss is not None and val_loss <= cfg.target_loss:
                    reason = "target_loss"
                    break
            if out_of_time:
                reason = "max_time"
                break
            if stopping:
                if saved_step != step:
                    save()
                yield Interrupted(path, step, stop.signum or signal.SIGTERM)  # another rank may have been told
                return
        yield Finished(path, progress.step, progress.best_val, time.perf_counter() - t0, reason)
    except KeyboardInterrupt:  # a caller that passed no StopFlag: save what we have
        if progress.step > saved_step:
            save(gather=False)  # the other ranks are not at this point together with us
        yield Interrupted(path if progress.step > 0 else None, progress.step)
    finally:
        metrics.close(keep=path.exists())  # a run that never saved leaves nothing behind
        if resume is None and world.is_main:
            checkpoint.release_path(path)


@torch.no_grad()
def evaluate(
    forward: Any, tokens: np.ndarray, cfg: TrainConfig, seed: int, device: torch.device, dtype: torch.dtype,
    world: distributed.World = distributed.World(),
) -> float:
    """Mean cross-entropy over `eval_iters` fixed batches (the same batches for the same seed);
    with several ranks, each evaluates its own batches and the mean is over all of them."""
    sampler = data.BatchSampler(tokens, cfg.model.block_size, cfg.batch_size, rank_seed(seed, world.rank))
    forward.eval()
    total = torch.zeros((), device=device)
    with devices.autocast(device, dtype):
        for _ in range(cfg.eval_iters):
            x, y = _to_device(sampler.next(), device)
            logits = forward(x)  # (B, T, V)
            total += F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
    forward.train()
    return distributed.sum_(world, total).item() / (cfg.eval_iters * world.size)


def rank_seed(seed: int, rank: int) -> int | list[int]:
    """Seed of rank `rank`'s random stream: rank 0 uses the run's seed as a single process
    does; other ranks get independent streams (numpy derives one from the pair)."""
    return seed if rank == 0 else [seed, rank]


def _data_dir(cfg: TrainConfig, world: distributed.World) -> Path:
    """cfg.data, or the default corpus: prepared by rank 0 while the other ranks wait."""
    path = Path(cfg.data) if cfg.data else (data.ensure_default() if world.is_main else None)
    distributed.barrier(world)  # every rank passes here, whatever its cfg.data
    return path or data.ensure_default()


def _ddp(module: torch.nn.Module, world: distributed.World, device: torch.device) -> torch.nn.Module:
    """The module wrapped in DistributedDataParallel when there are several ranks."""
    if not world.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def _check_resume(cfg: TrainConfig, header: checkpoint.Header, prepared: data.PreparedData) -> None:
    """Refuse changes that would make the resumed run a different model."""
    stored = ModelConfig(**header.model)
    changed = [
        f"--{name.replace('_', '-')} ({getattr(stored, name)} -> {getattr(cfg.model, name)})"
        for name in ModelConfig.model_fields
        if name not in RESUMABLE_MODEL_FIELDS and getattr(stored, name) != getattr(cfg.model, name)
    ]
    if changed:
        raise ConfigError(
            f"resuming {header.path} cannot change its architecture: {', '.join(changed)}. "
            "Start a new run from its weights with --init-from instead."
        )
    if prepared.tokenizer.to_dict() != header.meta["tokenizer"]:
        raise ConfigError(
            f"the data in {prepared.path} uses a different tokenizer than the run in {header.path}; "
            "resume with the run's own data, or start a new run with --init-from and --no-strict."
        )


def _restore(
    path: Path, model: GPT, optimizer: torch.optim.Optimizer, sampler: data.BatchSampler,
    scaler: torch.amp.GradScaler, world: distributed.World, seed: int,
) -> _Progress:  # fmt: skip
    state_path = checkpoint.companion(path, "state")
    if not state_path.exists():
        raise CheckpointError(
            f"there is no training state beside {path} (expected {state_path.name}), so the run cannot be resumed "
            f"exactly. Start a new run from its weights with --init-from {path}."
        )
    tensors, meta = checkpoint.load_state(state_path)
    state.restore(model, optimizer, sampler, tensors, meta["rng"])
    p = meta["progress"]
    if world.rank > 0:  # rank 0's state is the one above; other ranks take their own
        ranks = meta["rng"].get("ranks", [])
        if world.rank < len(ranks):
            state.restore_rank_rng(sampler, ranks[world.rank])
        else:  # a rank the saved run did not have: a fresh stream of its own
            sampler.rng = np.random.default_rng([seed, world.rank, p["step"]])
            torch.manual_seed(seed + world.rank + p["step"])
    if meta.get("scaler") and scaler.is_enabled():
        scaler.load_state_dict(meta["scaler"])
    best = p.get("best_val_loss")
    return _Progress(p["step"], p["history"], math.inf if best is None else best, p.get("evals_since_best", 0), p["elapsed"])


def _warm_start(model: GPT, path: Path, header: checkpoint.Header, prepared: data.PreparedData, strict: bool) -> list[str]:
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    if prepared.tokenizer.to_dict() != header.meta["tokenizer"]:
        if strict:
            raise ConfigError(
                f"the data's tokenizer differs from the one {path} was trained with; "
                "add --no-strict to start the embeddings fresh."
            )
        tensors = {k: v for k, v in tensors.items() if k not in ("transformer.wte.weight", "lm_head.weight")}
    return state.warm_start(model, tensors, strict, str(path))


class _Metrics:
    """X.metrics.jsonl: one JSON object per line, flushed as training goes.

    Created on the first line. On resume, lines after the resumed step are dropped:
    those steps are trained again.
    """

    def __init__(self, path: Path, keep_through: int, enabled: bool = True):
        self.path = path
        self.enabled = enabled  # only rank 0 writes
        self.file: Any = None
        self.kept: list[str] = []
        if keep_through > 0 and path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    if json.loads(line)["step"] <= keep_through:
                        self.kept.append(line + "\n")
                except (ValueError, KeyError, TypeError):  # a torn last line from a killed process
                    continue

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        if self.file is None:
            self.path.write_text("".join(self.kept), encoding="utf-8")
            self.file = open(self.path, "a", encoding="utf-8")
        self.file.write(json.dumps({k: round(v, 6) if isinstance(v, float) else v for k, v in record.items()}) + "\n")
        self.file.flush()

    def close(self, keep: bool) -> None:
        if self.file is not None:
            self.file.close()
            if not keep:
                self.path.unlink(missing_ok=True)


def _summary(progress: _Progress, cfg: TrainConfig, tokens_per_step: int, elapsed: float) -> dict:
    last = progress.history[-1] if progress.history else {}
    best = min(progress.history, key=lambda h: h["val_loss"]) if progress.history else None
    return {
        "step": progress.step,
        "max_iters": cfg.max_iters,
        "tokens_seen": progress.step * tokens_per_step,
        "train_loss": last.get("train_loss"),
        "val_loss": last.get("val_loss"),
        "best_val_loss": best["val_loss"] if best else None,
        "best_step": best["step"] if best else None,
        "elapsed": round(elapsed, 3),
        "history": progress.history,
    }


def _to_device(batch: tuple[np.ndarray, np.ndarray], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = (torch.from_numpy(a) for a in batch)  # (B, T) int64 each
    if device.type == "cuda":  # page-locked host memory lets the copy overlap with compute
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)


def _non_finite(step: int, cfg: TrainConfig, dtype: torch.dtype) -> str:
    advice = f"Try a lower learning rate (now --lr {cfg.lr:g})"
    advice += ", or --dtype float32." if dtype != torch.float32 else " or a smaller --grad-clip."
    return (
        f"the loss became non-finite (NaN or infinite) at step {step}; training stopped and the last good "
        f"checkpoint was kept. {advice}"
    )


def _metadata(
    cfg: TrainConfig, prepared: data.PreparedData, progress: dict, created: str, device: torch.device, path: Path,
    world_size: int = 1,
) -> dict:  # fmt: skip
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
        "files": {kind: checkpoint.companion(path, kind).name for kind in ("state", "best", "metrics")},
        "run": {"device": str(device), "world_size": world_size},
        "versions": {
            "mygpt": mygpt.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "created": created,
        "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
