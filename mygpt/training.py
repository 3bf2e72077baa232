"""The training loop.

`train(config)` is a generator of events (`mygpt.events`); it never prints. The CLI
renders the events; a script can simply iterate and keep the last one.

The loop in `_loop` reads as the algorithm: take an optimizer step, report it, and at
each evaluation measure, save and decide whether to stop. Everything a run holds (model,
optimizer, sampler, its files) is set up once by `Session.open` (fresh, resumed or warm
started, compiled and wrapped for DDP); the steps are the functions below the loop.

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
- torch.compile is tried once, before the first step, on a real batch; if that fails the
  run goes on uncompiled (on every rank) with a notice. Later errors are errors.
- Stopping: `max_iters` (the run's total, also across resumes), `max_time` (training
  time, also cumulative), `patience` (evaluations without a new best), `target_loss`
  (val loss low enough), or a `StopFlag` set by the caller (the CLI sets it on Ctrl-C /
  SIGTERM): the current step finishes, the state is saved, and `Interrupted` tells how
  to resume. Under DDP the ranks decide together, at log steps.
"""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from mygpt import checkpoint, data, device as devices, distributed
from mygpt.config import TrainConfig
from mygpt.events import Evaluated, Finished, Interrupted, Saved, Stepped, StopFlag, TrainEvent
from mygpt.session import Session, rank_seed

__all__ = ["train", "evaluate", "lr_at", "resume_base"]


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
        run = Session.open(cfg, world, device, resume=resume, init_from=init_from, strict=strict)
        yield from _loop(run, stop or StopFlag())
    finally:
        distributed.teardown()


def _loop(run: Session, stop: StopFlag) -> Iterator[TrainEvent]:
    cfg, progress = run.cfg, run.progress
    reason = "max_iters"
    try:
        yield run.started()
        yield from run.notices
        while progress.step < cfg.max_iters:
            lr = lr_at(progress.step, cfg)
            optimizer_step(run, lr)
            yield report(run, lr)
            out_of_time, stopping = stop_votes(run, stop)
            if progress.step % cfg.eval_interval == 0 or progress.step == cfg.max_iters or out_of_time:
                try:
                    evaluated = evaluate_and_save(run, lr, stop)
                except _Stopped:  # asked to stop while evaluating: save the step, skip its evaluation
                    run.save_if_unsaved()
                    yield Interrupted(run.files.path, progress.step, stop.signum)
                    return
                yield evaluated
                yield Saved(run.files.path, progress.step)
                reason = early_stop(run, evaluated)
                if reason:
                    break
            if out_of_time:
                reason = "max_time"
                break
            if stopping:
                run.save_if_unsaved()
                yield Interrupted(run.files.path, progress.step, stop.signum or signal.SIGTERM)  # another rank was told
                return
        yield Finished(run.files.path, progress.step, progress.best_val, run.elapsed(), reason or "max_iters")
    except KeyboardInterrupt:  # a caller that passed no StopFlag: save what we have
        run.save_if_unsaved(gather=False)  # the other ranks are not at this point together with us
        yield Interrupted(run.files.path if progress.step > 0 else None, progress.step)
    finally:
        run.close()


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warm-up, then the schedule."""
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / (cfg.warmup_iters + 1)
    if cfg.lr_schedule == "constant":
        return cfg.lr
    progress = min(1.0, (step - cfg.warmup_iters) / max(1, cfg.max_iters - cfg.warmup_iters))
    coeff = 1.0 - progress if cfg.lr_schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 -> 0
    return cfg.min_lr + coeff * (cfg.lr - cfg.min_lr)


def optimizer_step(run: Session, lr: float) -> None:
    """One optimizer step over `grad_accum` micro-batches; their losses add to run.loss_sum."""
    cfg = run.cfg
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    for micro in range(cfg.grad_accum):
        x, y = devices.to_device(run.sampler.next(), run.device)
        # DDP averages gradients across ranks in backward; only the last micro-step needs to.
        with run.no_sync(last=micro == cfg.grad_accum - 1):
            with run.autocast:
                logits = run.forward(x)  # (B, T, V)
            loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), label_smoothing=cfg.label_smoothing)
            run.scaler.scale(loss / cfg.grad_accum).backward()
        run.loss_sum += loss.detach()
    if cfg.grad_clip > 0:
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    run.progress.step += 1


def report(run: Session, lr: float) -> Stepped:
    """The step's event; at log steps, with the mean training loss since the last one
    (read back from the device only then) and the throughput."""
    cfg, step, meter = run.cfg, run.progress.step, run.meter
    if not run.is_log_step():
        return Stepped(step, cfg.max_iters, lr, run.elapsed())
    distributed.sum_(run.world, run.loss_sum)  # the sum over all ranks
    loss = run.loss_sum.item() / ((step - meter.step) * cfg.grad_accum * run.world.size)  # waits for the device
    now = time.perf_counter()
    rate = (step - meter.step) * run.tokens_per_step / max(now - meter.time - meter.paused, 1e-9)
    if not math.isfinite(loss):
        raise _non_finite(run)
    run.metrics.write({"step": step, "train_loss": loss, "lr": lr, "tokens_per_sec": rate, "elapsed": run.elapsed()})
    run.loss_sum.zero_()
    meter.restart(step, now)
    return Stepped(step, cfg.max_iters, lr, run.elapsed(), loss, rate)


def stop_votes(run: Session, stop: StopFlag) -> tuple[bool, bool]:
    """(out of time, asked to stop). Under DDP the ranks must agree: they decide together,
    at log steps only, and each stops if any rank wants to."""
    out_of_time = run.cfg.max_seconds is not None and run.elapsed() >= run.cfg.max_seconds
    stopping = stop.signum is not None
    if not run.world.enabled:
        return out_of_time, stopping
    if not run.is_log_step():
        return False, False
    votes = distributed.sum_(run.world, torch.tensor([float(out_of_time), float(stopping)], device=run.device))
    return bool(votes[0]), bool(votes[1])


def evaluate_and_save(run: Session, lr: float, stop: StopFlag | None = None) -> Evaluated:
    """Measure both splits, record the evaluation, and save the run (best weights too when
    val loss improved). Evaluation time does not count against throughput."""
    started = time.perf_counter()
    cfg, progress = run.cfg, run.progress
    train_loss = evaluate(run.compiled, run.prepared.train, cfg, cfg.seed + 1, run.device, run.dtype, run.world, stop)
    val_loss = evaluate(run.compiled, run.prepared.val, cfg, cfg.seed + 2, run.device, run.dtype, run.world, stop)
    if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
        raise _non_finite(run)
    is_best = val_loss < progress.best_val
    progress.best_val = min(progress.best_val, val_loss)
    progress.evals_since_best = 0 if is_best else progress.evals_since_best + 1
    record = checkpoint.Evaluation(
        step=progress.step, train_loss=train_loss, val_loss=val_loss, lr=lr, elapsed=round(run.elapsed(), 3)
    )
    progress.history.append(record)
    run.metrics.write(record.model_dump())
    run.save(best=is_best)
    run.meter.paused += time.perf_counter() - started
    return Evaluated(progress.step, train_loss, val_loss, lr, record.elapsed, is_best)


def early_stop(run: Session, evaluated: Evaluated) -> str | None:
    """Why the run stops after this evaluation (patience, target_loss), or None."""
    cfg = run.cfg
    if cfg.patience is not None and run.progress.evals_since_best >= cfg.patience:
        return "patience"
    if cfg.target_loss is not None and evaluated.val_loss <= cfg.target_loss:
        return "target_loss"
    return None


@torch.no_grad()
def evaluate(
    forward: Any,
    tokens: np.ndarray,
    cfg: TrainConfig,
    seed: int,
    device: torch.device,
    dtype: torch.dtype,
    world: distributed.World = distributed.World(),  # noqa: B008 -- a frozen value: one process
    stop: StopFlag | None = None,
) -> float:
    """Mean cross-entropy over `eval_iters` fixed batches (the same batches for the same seed);
    with several ranks, each evaluates its own batches and the mean is over all of them.
    A single process asked to stop (`stop`) stops between batches; ranks evaluating
    together finish (they meet in the sum), which eval_iters' bound keeps short."""
    sampler = data.BatchSampler(tokens, cfg.model.block_size, cfg.batch_size, rank_seed(seed, world.rank))
    forward.eval()
    total = torch.zeros((), device=device)
    with devices.autocast(device, dtype):
        for _ in range(cfg.eval_iters):
            if stop is not None and stop.signum is not None and not world.enabled:
                forward.train()
                raise _Stopped
            x, y = devices.to_device(sampler.next(), device)
            logits = forward(x)  # (B, T, V)
            total += F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
    forward.train()
    return distributed.sum_(world, total).item() / (cfg.eval_iters * world.size)


class _Stopped(Exception):
    """Evaluation left early because the run was asked to stop."""


def resume_base(path: str | Path) -> dict[str, Any]:
    """A checkpoint's stored train config, as the lowest config layer for resuming it."""
    return checkpoint.read_header(path).meta.train_config().model_dump(mode="json")


def _non_finite(run: Session) -> Exception:
    from mygpt.errors import TrainingError

    cfg = run.cfg
    advice = f"Try a lower learning rate (now --lr {cfg.lr:g})"
    advice += ", or --dtype float32." if run.dtype != torch.float32 else " or a smaller --grad-clip."
    return TrainingError(
        f"the loss became non-finite (NaN or infinite) at step {run.progress.step}; training stopped and the last "
        f"good checkpoint was kept. {advice}"
    )
