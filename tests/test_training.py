"""Training you can trust: exact resume, warm start, signals, kills, write failures, stopping rules.

Every run here says device="cpu" (or --device cpu): bit-identical resumes, the unpadded
vocabulary and the eager (uncompiled) model are what the CPU gives; with a GPU visible,
`auto` would pick CUDA instead.
"""

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import make_text
from safetensors.torch import load_file
from typer.testing import CliRunner

from mygpt import checkpoint, corpus, data, device as devices, runs, training
from mygpt.config import TrainConfig
from mygpt.configure import build
from mygpt.errors import CheckpointError, ConfigError
from mygpt.events import Notice
from mygpt.prepare_config import PrepareConfig

runner = CliRunner()


@pytest.fixture
def play(workdir: Path) -> Path:
    (workdir / "play.txt").write_text(make_text(n_lines=400), encoding="utf-8")
    return corpus.prepare(PrepareConfig(text=("play.txt",)))


def tiny_cfg(play: Path, **flags) -> TrainConfig:
    defaults = {"data": str(play), "model.n_embd": 16, "model.block_size": 16, "model.dropout": 0.1, "device": "cpu",
                "max_iters": 40, "eval_interval": 20, "eval_iters": 2, "log_interval": 5}  # fmt: skip
    return build(TrainConfig, preset="tiny", flags={**defaults, **flags})


def run(cfg: TrainConfig, stop_at: int | None = None, **kwargs):
    """Train; with stop_at, set the stop flag (as Ctrl-C does) once that step is done."""
    stop = training.StopFlag()
    events = []
    for event in training.train(cfg, stop=stop, **kwargs):
        events.append(event)
        if stop_at is not None and isinstance(event, training.Stepped) and event.step == stop_at:
            stop.set(signal.SIGINT)
    return events


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_a_stop_during_evaluation_is_honoured_between_its_batches(play: Path, monkeypatch) -> None:
    # Issue 17, class 6: the stop flag is read inside evaluation too (here 5,000 batches a split)
    drawn = []
    real_next = data.BatchSampler.next
    monkeypatch.setattr(data.BatchSampler, "next", lambda self: drawn.append(1) or real_next(self))
    halted = run(tiny_cfg(play, eval_iters=5000), stop_at=20)[-1]  # step 20 is an evaluation step
    assert isinstance(halted, training.Interrupted) and halted.step == 20 and halted.signum == signal.SIGINT
    assert len(drawn) == 20  # the 20 training batches: evaluation drew none after the stop
    assert checkpoint.read_header(halted.path).meta.progress.step == 20  # the step was saved, resumable
    with pytest.raises(ConfigError, match="eval_iters=100001"):
        tiny_cfg(play, eval_iters=100_001)


def test_resume_is_bit_identical_to_training_straight_through(play: Path) -> None:
    straight = run(tiny_cfg(play, out_dir="a"))[-1]
    halted = run(tiny_cfg(play, out_dir="b"), stop_at=21)[-1]
    assert isinstance(halted, training.Interrupted) and halted.step == 21
    resumed = run(tiny_cfg(play, out_dir="b"), resume=halted.path)[-1]
    assert isinstance(resumed, training.Finished) and resumed.step == 40 and resumed.path == halted.path
    a, b = weights(straight.path), weights(resumed.path)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit for bit, dropout included
    history = runs.summary(checkpoint.read_header(resumed.path))["history"]
    assert [h["step"] for h in history] == [20, 40]


def test_resume_mid_interval_drops_metrics_after_the_saved_step(play: Path) -> None:
    halted = run(tiny_cfg(play), stop_at=13)[-1]
    metrics = runs.companion(halted.path, "metrics")
    with metrics.open("a") as f:  # lines a killed process may have logged after its last save
        f.write(json.dumps({"step": 15, "train_loss": 9.0}) + "\n" + '{"step": 16, "tra')
    run(tiny_cfg(play), resume=halted.path)
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps == sorted(steps) and 9.0 not in [
        json.loads(line).get("train_loss") for line in metrics.read_text().splitlines()
    ]


def test_resuming_a_finished_run_says_so(play: Path) -> None:
    done = run(tiny_cfg(play))[-1]
    with pytest.raises(ConfigError, match=r"already finished: it is at step 40 and --max-iters is 40"):
        run(tiny_cfg(play), resume=done.path)
    assert run(tiny_cfg(play, max_iters=45), resume=done.path)[-1].step == 45


def test_resume_refuses_architecture_changes_and_names_them(play: Path) -> None:
    halted = run(tiny_cfg(play), stop_at=5)[-1]
    result = runner.invoke(
        app_cli(), ["train", "--resume", str(halted.path), "--n-layer", "3", "--ctx", "8", "--lr", "1e-3"]
    )
    assert result.exit_code == 2
    assert (
        "--n-layer (2 -> 3)" in result.stderr
        and "--block-size (16 -> 8)" in result.stderr
        and "--init-from" in result.stderr
    )
    ok = runner.invoke(app_cli(), ["train", "--resume", "latest", "--lr", "1e-3", "--max-iters", "8"])
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.strip() == str(halted.path)
    assert runs.summary(checkpoint.read_header(halted.path))["train"]["lr"] == 1e-3  # lr may change


def test_resume_without_state_file_points_to_init_from(play: Path) -> None:
    done = run(tiny_cfg(play))[-1]
    runs.companion(done.path, "state").unlink()
    with pytest.raises(CheckpointError, match="no training state beside .*--init-from"):
        run(tiny_cfg(play, max_iters=50), resume=done.path)


def test_warm_start_strict_and_not(play: Path) -> None:
    learned = {"model.pos": "learned"}  # a position table: its shape depends on block_size
    source = run(tiny_cfg(play, **learned))[-1].path
    warm = run(tiny_cfg(play, out_dir="warm", max_iters=1, eval_interval=1, lr=1e-9, min_lr=0.0, warmup_iters=0, **learned),
               init_from=source)  # fmt: skip
    assert warm[-1].path != source  # a new run name
    assert torch.allclose(weights(warm[-1].path)["transformer.h.0.mlp.c_fc.weight"],
                          weights(source)["transformer.h.0.mlp.c_fc.weight"], atol=1e-6)  # fmt: skip
    with pytest.raises(
        CheckpointError, match=r"transformer.wpe.weight \(\(16, 16\) there, \(32, 16\) here\).*--no-strict"
    ):
        run(tiny_cfg(play, out_dir="longer", **{"model.block_size": 32}, **learned), init_from=source)
    events = run(
        tiny_cfg(play, out_dir="longer", max_iters=2, **{"model.block_size": 32}, **learned),
        init_from=source,
        strict=False,
    )
    notices = [e.message for e in events if isinstance(e, Notice)]
    assert notices and "transformer.wpe.weight" in notices[0] and "transformer.h.0" not in notices[0]
    # RoPE stores nothing per position: a longer context warm-starts with every tensor.
    rope = run(tiny_cfg(play, out_dir="rope"))[-1].path
    events = run(tiny_cfg(play, out_dir="rope-longer", max_iters=1, **{"model.block_size": 32}), init_from=rope)
    assert not [e for e in events if isinstance(e, Notice)]


def test_cli_warm_start_lists_fresh_tensors(play: Path) -> None:
    source = run(tiny_cfg(play, **{"model.pos": "learned"}))[-1].path
    result = runner.invoke(app_cli(), ["train", "--init-from", str(source), "--no-strict", "--data", str(play), "--device", "cpu",
                                       "--pos", "learned", "--ctx", "24", "--max-iters", "3", "--eval-interval", "3", "--out", "w"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "initialised fresh" in result.stderr and "transformer.wpe.weight" in result.stderr


def test_a_full_disk_keeps_the_previous_checkpoint_and_the_run_resumes_from_it(
    play: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import safetensors.torch

    real = safetensors.torch.save_file

    def disk_full_after_the_first_evaluation(tensors, filename, metadata=None):
        if json.loads(metadata["progress"])["step"] > 20:  # the disk filled up after step 20 was saved
            Path(filename).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full_after_the_first_evaluation)
    args = ["train", "--data", str(play), "--preset", "tiny", "--n-embd", "16", "--ctx", "16", "--device", "cpu",
            "--max-iters", "40", "--eval-interval", "20", "--eval-iters", "2"]  # fmt: skip
    result = runner.invoke(app_cli(), args)
    assert (
        result.exit_code == 1
        and "no space left on the device holding" in result.stderr
        and "unchanged" in result.stderr
    )
    (path,) = runs.find("checkpoints")
    assert checkpoint.load(path).header.meta.progress.step == 20
    assert checkpoint.load_state(runs.companion(path, "state"))[1].progress.step == 20
    assert checkpoint.load(runs.companion(path, "best")).header.meta.progress.step == 20
    assert not [p for p in Path("checkpoints").iterdir() if p.name.startswith(".")]  # no partial files left
    monkeypatch.setattr(safetensors.torch, "save_file", real)  # space again: the run goes on from what was kept
    resumed = runner.invoke(app_cli(), ["train", "--resume", str(path)])
    assert resumed.exit_code == 0, resumed.output
    assert [h.step for h in checkpoint.read_header(path).meta.progress.history] == [20, 40]


def test_a_state_write_that_fails_leaves_weights_a_resume_catches_up_with(
    play: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import safetensors.torch

    real = safetensors.torch.save_file

    def state_write_fails_at_step_40(tensors, filename, metadata=None):
        if metadata["format"] == "mygpt-state" and json.loads(metadata["progress"])["step"] == 40:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", state_write_fails_at_step_40)
    with pytest.raises(CheckpointError):
        run(tiny_cfg(play))
    (path,) = runs.find("checkpoints")
    assert checkpoint.read_header(path).meta.progress.step == 40  # the weights were written
    assert checkpoint.load_state(runs.companion(path, "state"))[1].progress.step == 20  # the state was not
    monkeypatch.setattr(safetensors.torch, "save_file", real)
    events = run(tiny_cfg(play), resume=path)  # trains steps 21..40 again instead of refusing a finished run
    assert isinstance(events[-1], training.Finished) and events[-1].step == 40
    assert checkpoint.load_state(runs.companion(path, "state"))[1].progress.step == 40


def test_patience_stops_after_evaluations_without_a_new_best(play: Path) -> None:
    # A learning rate too small to move any weight: every evaluation measures the model the
    # first one measured, so only the first is a new best.
    still = {"lr": 1e-30, "min_lr": 0.0, "warmup_iters": 0}
    events = run(tiny_cfg(play, max_iters=100, eval_interval=2, patience=2, **still))
    evaluated = [e for e in events if isinstance(e, training.Evaluated)]
    assert [(e.step, e.is_best) for e in evaluated] == [(2, True), (4, False), (6, False)]
    finished = events[-1]
    assert isinstance(finished, training.Finished) and finished.reason == "patience" and finished.step == 6
    summary = runs.summary(checkpoint.read_header(finished.path))
    assert summary["step"] == 6 and summary["best"]["step"] == 2 and summary["best_val_loss"] == evaluated[0].val_loss
    assert checkpoint.read_header(summary["best"]["path"]).meta.progress.step == 2


def test_target_loss_stops_at_the_first_evaluation_that_reaches_it(play: Path) -> None:
    fast = {"max_iters": 12, "eval_interval": 2, "lr": 1e-2, "warmup_iters": 0}
    val = [e.val_loss for e in run(tiny_cfg(play, out_dir="full", **fast)) if isinstance(e, training.Evaluated)]
    assert val[0] > val[1] > val[2]  # the loss falls, so the third evaluation is the first at the target
    events = run(tiny_cfg(play, out_dir="target", target_loss=(val[1] + val[2]) / 2, **fast))  # the same run, seeded
    finished = events[-1]
    assert isinstance(finished, training.Finished) and finished.reason == "target_loss" and finished.step == 6
    assert checkpoint.read_header(finished.path).meta.progress.step == 6


def test_a_keyboard_interrupt_inside_training_saves_the_step_it_reached(play: Path) -> None:
    # A caller that passes no StopFlag gets Ctrl-C as KeyboardInterrupt wherever training is.
    events = training.train(tiny_cfg(play))
    for event in events:
        if isinstance(event, training.Stepped) and event.step == 7:
            break
    interrupted = events.throw(KeyboardInterrupt)
    assert isinstance(interrupted, training.Interrupted) and interrupted.step == 7 and interrupted.signum is None
    assert list(events) == []  # and then it ends
    assert checkpoint.load(interrupted.path).header.meta.progress.step == 7
    assert run(tiny_cfg(play), resume=interrupted.path)[-1].step == 40


def test_padded_vocabulary_trains_saves_and_is_never_sampled(play: Path) -> None:
    from mygpt.config import SampleConfig
    from mygpt.sampling import generate

    events = run(tiny_cfg(play, max_iters=2, eval_interval=2, **{"model.vocab_multiple": 64}))
    loaded = checkpoint.load(events[-1].path)
    vocab = loaded.tokenizer.vocab_size
    assert loaded.model.config.padded_vocab_size == 64 > vocab
    assert loaded.model.lm_head.weight.shape[0] == 64
    with torch.no_grad():  # make the padding rows irresistible: only slicing them off keeps them out
        loaded.model.lm_head.weight[vocab:] = 100.0
    steps = list(generate(loaded.model, [0], SampleConfig(max_new_tokens=20, temperature=1.0, num_samples=2), seed=0))
    assert max(int(s.max()) for s in steps) < vocab
    # On the CPU the default is no padding; the checkpoint records what was used.
    plain = run(tiny_cfg(play, out_dir="plain", max_iters=1, eval_interval=1))
    assert checkpoint.read_header(plain[-1].path).meta.model.vocab_multiple == 1


def test_max_time_stops_with_a_final_evaluation(play: Path) -> None:
    events = run(tiny_cfg(play, max_iters=10_000, eval_interval=10_000, max_time="0.0001s"))
    assert events[-1].reason == "max_time" and events[-1].step == 1
    assert any(isinstance(e, training.Evaluated) and e.step == 1 for e in events)


def test_lr_schedules() -> None:
    cfg = TrainConfig(lr=1.0, min_lr=0.0, warmup_iters=0, max_iters=100)
    for schedule, halfway in (("cosine", 0.5), ("linear", 0.5), ("constant", 1.0)):
        c = cfg.model_copy(update={"lr_schedule": schedule})
        assert training.lr_at(0, c) == 1.0 and training.lr_at(50, c) == pytest.approx(halfway)
        assert training.lr_at(100, c) == (1.0 if schedule == "constant" else 0.0)
    assert training.lr_at(24, TrainConfig(lr=1.0, warmup_iters=99)) == pytest.approx(0.25)


def test_untied_head_trains_saves_and_loads(play: Path) -> None:
    path = run(tiny_cfg(play, max_iters=4, eval_interval=4, **{"model.tie_weights": False}))[-1].path
    stored = weights(path)
    assert "lm_head.weight" in stored and not torch.equal(stored["lm_head.weight"], stored["transformer.wte.weight"])
    loaded = checkpoint.load(path).model
    assert loaded.lm_head.weight is not loaded.transformer.wte.weight


def test_label_smoothing_changes_training_not_evaluation(play: Path) -> None:
    plain = run(tiny_cfg(play, max_iters=5, eval_interval=5))
    smooth = run(tiny_cfg(play, max_iters=5, eval_interval=5, label_smoothing=0.3, out_dir="s"))
    loss = lambda events: [e.loss for e in events if isinstance(e, training.Stepped) and e.loss is not None][0]  # noqa: E731
    assert loss(smooth) > loss(plain)  # the smoothed target is harder to fit exactly


def test_metrics_file_has_a_line_per_log_step_and_evaluation(play: Path) -> None:
    path = run(tiny_cfg(play))[-1].path
    records = [json.loads(line) for line in runs.companion(path, "metrics").read_text().splitlines()]
    train_lines = [r for r in records if "val_loss" not in r]
    assert [r["step"] for r in train_lines] == list(range(5, 41, 5))
    assert set(train_lines[0]) == {"step", "train_loss", "lr", "tokens_per_sec", "elapsed"}
    assert [r["step"] for r in records if "val_loss" in r] == [20, 40]


def test_device_dtype_compile_and_padding_policies(monkeypatch) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert devices.resolve("cpu") == cpu
    present = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert devices.resolve("auto").type == present  # the best device this machine has
    monkeypatch.setattr(devices, "cpu_has_bf16", lambda: False)
    assert devices.resolve_dtype("auto", cpu) == torch.float32
    monkeypatch.setattr(devices, "cpu_has_bf16", lambda: True)
    assert devices.resolve_dtype("auto", cpu) == torch.bfloat16
    assert devices.resolve_dtype("bfloat16", cpu) == torch.bfloat16
    with pytest.raises(ConfigError, match="float16 needs a CUDA GPU"):
        devices.resolve_dtype("float16", cpu)
    assert (
        not devices.use_compile("auto", cpu) and devices.use_compile("on", cpu) and not devices.use_compile("off", cpu)
    )
    assert devices.use_compile("auto", cuda)
    if torch.cuda.is_available():
        with pytest.raises(ConfigError, match=f"does not exist: {torch.cuda.device_count()} CUDA device"):
            devices.resolve(f"cuda:{torch.cuda.device_count()}")
    else:
        with pytest.raises(ConfigError, match="CUDA is not available"):
            devices.resolve("cuda")
    # The vocabulary is padded to a multiple of 64 on CUDA by default, not on the CPU; a given multiple wins.
    from mygpt.plan import plan
    from mygpt.tokenizer import CharTokenizer

    chars = CharTokenizer([chr(i) for i in range(32, 97)])  # 65 characters
    assert plan(TrainConfig(), chars, 10_000, "cuda")[0].model.padded_vocab_size == 128
    assert plan(TrainConfig(), chars, 10_000, "cpu")[0].model.padded_vocab_size == 65
    eight = TrainConfig(model={"vocab_multiple": 8})
    assert plan(eight, chars, 10_000, "cuda")[0].model.padded_vocab_size == 72
    assert plan(eight, chars, 10_000, "cpu")[0].model.padded_vocab_size == 72


def test_bfloat16_training_runs_on_cpu(play: Path) -> None:
    events = run(tiny_cfg(play, max_iters=4, eval_interval=4, dtype="bfloat16"))
    assert events[0].dtype == "bfloat16" and isinstance(events[-1], training.Finished)


def test_compile_failure_falls_back_to_eager_with_one_notice(play: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_compile(model):
        def call(*args, **kwargs):
            raise RuntimeError("no C compiler here")

        call.eval = call.train = lambda: None
        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    events = run(tiny_cfg(play, max_iters=4, eval_interval=4, compile="on"))
    notices = [e for e in events if isinstance(e, Notice)]
    assert len(notices) == 1 and "torch.compile failed" in notices[0].message
    assert isinstance(events[-1], training.Finished)


def app_cli():
    from mygpt.cli import app

    return app


# Real processes: signals and kills.

TRAIN_FOREVER = [
    "--preset",
    "tiny",
    "--n-embd",
    "16",
    "--ctx",
    "16",
    "--max-iters",
    "1000000",
    "--eval-iters",
    "1",
    "--device",
    "cpu",
]


def start_training(play: Path, *extra: str, output: int = subprocess.PIPE) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "mygpt", "train", "--data", str(play), *TRAIN_FOREVER, *extra],
        stdout=output, stderr=output, text=True, env=env,
    )  # fmt: skip


def wait_for_checkpoint(folder: Path, timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = runs.find(folder)
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError("training wrote no checkpoint in time")


def wait_for_logged_step(path: Path, step: int, timeout: float = 60) -> int:
    """Wait until the run's metrics file has logged `step` or a later one; return the last step logged."""
    metrics = runs.companion(path, "metrics")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines() if line.endswith("}")]
        if steps and steps[-1] >= step:
            return steps[-1]
        time.sleep(0.05)
    raise AssertionError(f"training logged no step {step} in time")


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_prints_resume_hint_and_resume_continues(play: Path, sig: int, code: int) -> None:
    proc = start_training(play, "--eval-interval", "50")
    logged = wait_for_logged_step(wait_for_checkpoint(Path("checkpoints")), 60)  # past the evaluation at step 50
    proc.send_signal(sig)
    time.sleep(0.01)
    proc.send_signal(sig)  # a second one while it saves changes nothing
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    path = Path(out.strip())
    assert f"resume with: mygpt train --resume {path}" in err
    step = checkpoint.load(path).header.meta.progress.step
    assert step >= logged > 50  # saved where the signal stopped it, not only at the last evaluation
    assert checkpoint.load_state(runs.companion(path, "state"))[1].progress.step == step
    # The hint's command, run here: a second process would only import torch again.
    result = runner.invoke(app_cli(), ["train", "--resume", str(path), "--max-iters", str(step + 7), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert checkpoint.read_header(path).meta.progress.step == step + 7


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_loadable_checkpoints(play: Path) -> None:
    rng = random.Random(0)
    outs = [Path(f"kill{attempt}") for attempt in range(3)]
    # Started together, so that their start-ups (importing torch: seconds each) overlap; each
    # is killed at a random moment after its first save. Nobody reads their output.
    procs = [start_training(play, "--eval-interval", "1", "--out", str(out), output=subprocess.DEVNULL)  # saves every step
             for out in outs]  # fmt: skip
    try:
        for proc, out in zip(procs, outs, strict=False):
            wait_for_checkpoint(out, timeout=120)
            time.sleep(rng.uniform(0.05, 0.8))
            proc.kill()
            proc.wait(timeout=30)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for out in outs:
        (path,) = runs.find(out)
        step = checkpoint.load(path).header.meta.progress.step
        checkpoint.load_state(runs.companion(path, "state"))
        checkpoint.load(runs.companion(path, "best"))
        resumed = list(training.train(build(TrainConfig, base=training.resume_base(path), flags={"max_iters": step + 3}),
                                      resume=path))[-1]  # fmt: skip
        assert isinstance(resumed, training.Finished) and resumed.step == step + 3
        assert not [p for p in out.iterdir() if p.name.startswith(".")]  # the resume tidied up after the kill


@pytest.mark.slow
def test_resuming_a_live_run_is_refused_naming_its_process_until_it_is_killed(play: Path) -> None:
    out = Path("live")
    proc = start_training(play, "--eval-interval", "1", "--out", str(out), output=subprocess.DEVNULL)
    try:
        path = wait_for_checkpoint(out)
        claim = runs.RunFiles(path).claim_file
        step = checkpoint.read_header(path).meta.progress.step
        # One step more than it has: were it not refused, this would train and exit 0, not hang.
        refused = runner.invoke(app_cli(), ["train", "--resume", str(path), "--max-iters", str(step + 1)])
        assert refused.exit_code == 1, refused.output
        assert f"is being trained by process {proc.pid}:" in refused.output
        assert claim.exists() and proc.poll() is None  # the live run's claim and process are left alone
    finally:
        proc.kill()
        proc.wait(timeout=30)
    step = checkpoint.read_header(path).meta.progress.step
    cfg = build(TrainConfig, base=training.resume_base(path), flags={"max_iters": step + 2})
    assert list(training.train(cfg, resume=path))[-1].step == step + 2  # the dead process's lock went with it
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # its claim and partial writes too


def test_info_plot_writes_a_png_or_explains_what_is_missing(play: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = run(tiny_cfg(play))[-1].path
    result = runner.invoke(app_cli(), ["info", str(path), "--plot", "loss.png"])
    assert result.exit_code == 0, result.output
    assert Path("loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "• train" in result.stderr and "× val" in result.stderr  # the text chart
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    missing = runner.invoke(app_cli(), ["info", str(path), "--plot", "again.png"])
    assert missing.exit_code == 1 and "--plot needs matplotlib" in missing.stderr and not Path("again.png").exists()


def test_recomputing_activations_trains_the_same_weights(play: Path) -> None:
    plain = run(tiny_cfg(play, out_dir="a", max_iters=6, eval_interval=6))[-1]
    recomputed = run(tiny_cfg(play, out_dir="b", max_iters=6, eval_interval=6, grad_checkpoint=True))[-1]
    a, b = weights(plain.path), weights(recomputed.path)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
