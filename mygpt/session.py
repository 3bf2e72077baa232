"""One process's session of a training run: everything it holds while it trains.

A run may take several sessions (each `--resume` is one). `Session.open` sets one up:
the data, the resolved config, the model, optimizer, batch sampler and gradient scaler,
then either the saved state of the run (resume), the weights of another checkpoint
(warm start) or a fresh start with a newly claimed name; then it compiles the model
once and wraps it for DDP. `Session.save` writes the run's files. The loop itself is
`mygpt.training`.
"""

from __future__ import annotations

import contextlib
import math
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

import mygpt
from mygpt import checkpoint, data, device as devices, distributed, memory, resume as state
from mygpt.config import ModelConfig, TrainConfig
from mygpt.errors import CheckpointError, ConfigError, MyGPTError
from mygpt.events import Notice, Started
from mygpt.model import GPT
from mygpt.plan import plan
from mygpt.runs import MetricsLog, RunFiles

# Model fields that may change when a run is resumed; every other one is architecture.
RESUMABLE_MODEL_FIELDS = {"dropout"}


@dataclass
class Progress:
    """The run's progress as training changes it (saved as checkpoint.Progress)."""

    step: int = 0
    history: list[checkpoint.Evaluation] = field(default_factory=list)
    best_val: float = math.inf
    evals_since_best: int = 0
    elapsed_before: float = 0.0  # training time of earlier sessions of this run


@dataclass
class Meter:
    """Where throughput is measured from: a step, its time, and evaluation time since."""

    step: int
    time: float
    paused: float = 0.0

    def restart(self, step: int, now: float) -> None:
        self.step, self.time, self.paused = step, now, 0.0


class Session:
    def __init__(
        self, cfg: TrainConfig, world: distributed.World, device: torch.device, prepared: data.PreparedData,
        files: RunFiles, created: str, resumed: bool,
    ) -> None:  # fmt: skip
        self.cfg, self.world, self.device, self.prepared = cfg, world, device, prepared
        self.files, self.created, self.resumed = files, created, resumed
        self.dtype = devices.resolve_dtype(cfg.dtype, device)
        self.autocast = devices.autocast(device, self.dtype)
        devices.configure(device)
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank
        self.model = GPT(cfg.model).to(device)
        self.model.grad_checkpoint = cfg.grad_checkpoint
        if world.rank > 0:  # other ranks draw their own dropout masks (rank 0 stays a plain run)
            torch.manual_seed(cfg.seed + world.rank)
        self.optimizer = make_optimizer(self.model, cfg, device)
        self.sampler = data.BatchSampler(
            prepared.train, cfg.model.block_size, cfg.batch_size, rank_seed(cfg.seed, world.rank)
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)
        self.progress = Progress()
        self.notices: list[Notice] = []
        self.tokens_per_step = cfg.tokens_per_step(world.size)
        self.loss_sum = torch.zeros((), device=device)
        self.compiled: torch.nn.Module = self.model
        self.forward: torch.nn.Module = self.model
        self.metrics: MetricsLog
        self.t0 = self.saved_step = 0.0
        self.meter = Meter(0, 0.0)

    @classmethod
    def open(
        cls, cfg: TrainConfig, world: distributed.World, device: torch.device, *,
        resume: str | Path | None = None, init_from: str | Path | None = None, strict: bool = True,
    ) -> Session:  # fmt: skip
        """Set up a session: fresh, resuming `resume`, or starting from `init_from`'s weights."""
        started_at = datetime.now()
        prepared = data.load(_data_dir(cfg, world))
        cfg = cfg.model_copy(update={"data": str(prepared.path)})
        cfg, decided = plan(cfg, prepared.tokenizer, int(prepared.train.size), device.type, world.size)
        prepared.check_windows(cfg.model.block_size)
        memory.require_training(cfg, device)  # before the model and optimizer are allocated
        source = checkpoint.read_header(resume or init_from) if (resume or init_from) else None
        created = started_at.astimezone(timezone.utc).isoformat(timespec="seconds")
        if resume is not None:
            _check_resume(cfg, source, prepared)
            files, created = RunFiles(Path(resume)), source.meta.created or created
            _own(world, files)  # refused while another process trains the run
        else:
            claimed = RunFiles.claim(cfg.out_dir, cfg.model, started_at) if world.is_main else None
            files = distributed.broadcast(world, claimed)
        try:
            session = cls(cfg, world, device, prepared, files, created, resumed=resume is not None)
            session.notices += [Notice(message) for message in decided]
            if resume is not None:
                session._restore()
            elif init_from is not None:
                session._warm_start(Path(init_from), source, strict)
            if session.progress.step >= cfg.max_iters:
                raise ConfigError(
                    f"this run already finished: it is at step {session.progress.step} and --max-iters is "
                    f"{cfg.max_iters} (the run's total steps, not additional ones). Pass a larger --max-iters to "
                    "train further."
                )
            session.metrics = MetricsLog(files.metrics, keep_through=session.progress.step, enabled=world.is_main)
            session._compile()
            session.forward = _ddp(session.compiled, world, device)
        except BaseException:
            if world.is_main:
                files.release()  # a run that never started leaves no claim behind
            raise
        session.t0 = time.perf_counter() - session.progress.elapsed_before  # counts the run's earlier sessions
        session.saved_step = session.progress.step
        session.meter = Meter(session.progress.step, time.perf_counter())
        return session

    def started(self) -> Started:
        return Started(
            self.cfg, self.files.path, self.model.num_params(), str(self.device), str(self.dtype).removeprefix("torch."),
            self.compiled is not self.model, int(self.prepared.train.size), int(self.prepared.val.size),
            self.progress.step, self.world.size,
        )  # fmt: skip

    def elapsed(self) -> float:
        """Training time of the run so far, its earlier sessions included."""
        return time.perf_counter() - self.t0

    def is_log_step(self) -> bool:
        step = self.progress.step
        return step % self.cfg.log_interval == 0 or step == self.cfg.max_iters

    def no_sync(self, last: bool) -> contextlib.AbstractContextManager:
        """DDP's gradient all-reduce only on the last micro-step of an optimizer step."""
        return contextlib.nullcontext() if last or not self.world.enabled else self.forward.no_sync()

    def save(self, best: bool = False, gather: bool = True) -> None:
        """The weights first, then the state that a resume reads: if the second write fails
        (or the process dies between them), the state is at an older step and a resume
        trains the steps since again, rather than finding a state ahead of its weights.
        Every rank calls it (to hand rank 0 its random state); only rank 0 writes."""
        ranks = distributed.gather(self.world, state.rank_rng(self.sampler)) if gather else []
        self.saved_step = self.progress.step
        if not self.world.is_main:
            return
        weights = checkpoint.model_tensors(self.model)  # one host copy, for both files
        progress = self._saved_progress()
        checkpoint.save(self.files.path, self.model, self._metadata(progress), weights)
        if best:
            checkpoint.copy(self.files.path, self.files.best)
        tensors, rng = state.capture(self.model, self.optimizer, self.sampler, weights)
        if self.world.enabled:
            rng["ranks"] = ranks
        scaler = self.scaler.state_dict() if self.scaler.is_enabled() else None
        checkpoint.save_state(
            self.files.state, tensors, checkpoint.TrainingState(progress=progress, rng=rng, scaler=scaler)
        )

    def save_if_unsaved(self, gather: bool = True) -> None:
        if self.progress.step > self.saved_step:
            self.save(gather=gather)

    def close(self) -> None:
        self.metrics.close(keep=self.files.path.exists())  # a run that never saved leaves nothing behind
        if self.world.is_main:
            self.files.release()

    def _restore(self) -> None:
        if not self.files.state.exists():
            raise CheckpointError(
                f"there is no training state beside {self.files.path} (expected {self.files.state.name}), so the run "
                f"cannot be resumed exactly. Start a new run from its weights with --init-from {self.files.path}."
            )
        tensors, saved = checkpoint.load_state(self.files.state)
        state.restore(self.model, self.optimizer, self.sampler, tensors, saved.rng)
        p, rank, seed = saved.progress, self.world.rank, self.cfg.seed
        if rank > 0:  # rank 0's state is the one above; other ranks take their own
            ranks = saved.rng.get("ranks", [])
            if rank < len(ranks):
                state.restore_rank_rng(self.sampler, ranks[rank])
            else:  # a rank the saved run did not have: a fresh stream of its own
                self.sampler.rng = np.random.default_rng([seed, rank, p.step])
                torch.manual_seed(seed + rank + p.step)
        if saved.scaler and self.scaler.is_enabled():
            self.scaler.load_state_dict(saved.scaler)
        best = math.inf if p.best_val_loss is None else p.best_val_loss
        self.progress = Progress(p.step, list(p.history), best, p.evals_since_best, p.elapsed)
        if self.world.is_main:
            self.files.remove_leftovers()  # partial writes a killed process left (this one owns the run now)

    def _warm_start(self, path: Path, header: checkpoint.Header, strict: bool) -> None:
        from safetensors.torch import load_file

        tensors = load_file(str(path))
        # Damaged weights would make the first loss NaN, which reads as a learning rate too high.
        checkpoint.require_finite(tensors, path)
        if self.prepared.tokenizer.to_dict() != header.meta.tokenizer:
            if strict:
                raise ConfigError(
                    f"the data's tokenizer differs from the one {path} was trained with; "
                    "add --no-strict to start the embeddings fresh."
                )
            tensors = {k: v for k, v in tensors.items() if k not in ("transformer.wte.weight", "lm_head.weight")}
        fresh = state.warm_start(self.model, tensors, strict, str(path))
        if fresh:
            self.notices.append(Notice(f"initialised fresh (not in {path} or shaped differently): {', '.join(fresh)}"))

    def _compile(self) -> None:
        """Compile once, on a real batch, before the first step; if that fails on any rank,
        every rank trains uncompiled. The trial step leaves no trace: its gradients are
        dropped and the random state is put back."""
        if not devices.use_compile(self.cfg.compile, self.device):
            return
        compiled, failure = torch.compile(self.model), None
        trial = data.BatchSampler(self.prepared.train, self.cfg.model.block_size, self.cfg.batch_size, self.cfg.seed)
        x, _ = devices.to_device(trial.next(), self.device)  # (B, T) each
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            try:
                with self.autocast:
                    compiled(x).float().mean().backward()
            except Exception as exc:  # a compiler or toolchain problem, found before training starts
                failure = exc
        self.optimizer.zero_grad(set_to_none=True)
        failed = distributed.sum_(self.world, torch.tensor([float(failure is not None)], device=self.device))
        if failed.item():
            why = type(failure).__name__ if failure else "on another rank"
            self.notices.append(Notice(f"torch.compile failed ({why}); training goes on without it."))
        else:
            self.compiled = compiled

    def _saved_progress(self) -> checkpoint.Progress:
        p = self.progress
        best = min(p.history, key=lambda h: h.val_loss) if p.history else None
        last = p.history[-1] if p.history else None
        return checkpoint.Progress(
            step=p.step, max_iters=self.cfg.max_iters, tokens_seen=p.step * self.tokens_per_step,
            train_loss=last.train_loss if last else None, val_loss=last.val_loss if last else None,
            best_val_loss=best.val_loss if best else None, best_step=best.step if best else None,
            evals_since_best=p.evals_since_best, elapsed=round(self.elapsed(), 3), history=tuple(p.history),
        )  # fmt: skip

    def _metadata(self, progress: checkpoint.Progress) -> checkpoint.Meta:
        meta = self.prepared.meta
        return checkpoint.Meta(
            model=self.cfg.model,
            tokenizer=self.prepared.tokenizer.to_dict(),
            train=self.cfg.model_dump(mode="json", exclude={"model"}),
            progress=progress,
            data=checkpoint.DataSource(
                path=str(self.prepared.path),
                **{k: meta.get(k) for k in ("corpus", "checksum", "sources", "tokens", "bytes_per_token")},
            ),
            files={kind: getattr(self.files, kind).name for kind in ("state", "best", "metrics")},
            run=checkpoint.RunInfo(device=str(self.device), world_size=self.world.size),
            versions={
                "mygpt": mygpt.__version__,
                "torch": torch.__version__,
                "numpy": np.__version__,
                "python": platform.python_version(),
            },  # fmt: skip
            created=self.created,
            saved=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )


def make_optimizer(model: GPT, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},  # matrices, embeddings
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},  # biases, LayerNorm gains
    ]
    # One fused kernel for all parameters instead of a loop over tensors, on the CPU too.
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=device.type in ("cuda", "cpu"))


def rank_seed(seed: int, rank: int) -> int | list[int]:
    """Seed of rank `rank`'s random stream: rank 0 uses the run's seed as a single process
    does; other ranks get independent streams (numpy derives one from the pair)."""
    return seed if rank == 0 else [seed, rank]


def _data_dir(cfg: TrainConfig, world: distributed.World) -> Path:
    """cfg.data, or the default corpus: prepared by rank 0 while the other ranks wait."""
    path = Path(cfg.data) if cfg.data else (data.ensure_default() if world.is_main else None)
    distributed.barrier(world)  # every rank passes here, whatever its cfg.data
    return path or data.ensure_default()


def _own(world: distributed.World, files: RunFiles) -> None:
    """Rank 0 locks the run it resumes (it alone writes); when it cannot, every rank
    raises its refusal, so that none waits for the others in a collective."""
    refusal = None
    if world.is_main:
        try:
            files.lock()
        except MyGPTError as exc:
            refusal = exc
    refusal = distributed.broadcast(world, refusal)
    if refusal is not None:
        raise refusal


def _ddp(module: torch.nn.Module, world: distributed.World, device: torch.device) -> torch.nn.Module:
    """The module wrapped in DistributedDataParallel when there are several ranks."""
    if not world.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def _check_resume(cfg: TrainConfig, header: checkpoint.Header, prepared: data.PreparedData) -> None:
    """Refuse changes that would make the resumed run a different model."""
    stored = header.meta.model
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
    if prepared.tokenizer.to_dict() != header.meta.tokenizer:
        raise ConfigError(
            f"the data in {prepared.path} uses a different tokenizer than the run in {header.path}; "
            "resume with the run's own data, or start a new run with --init-from and --no-strict."
        )
