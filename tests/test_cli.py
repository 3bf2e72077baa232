"""Every subcommand through Typer's CliRunner, on a small corpus the tests write."""

import json
import math
from pathlib import Path

import pytest
from conftest import TINY_TRAIN, make_text
from safetensors.torch import save_file
from typer.testing import CliRunner

from mygpt import checkpoint, runs
from mygpt.cli import app

runner = CliRunner()


def invoke(*args: str, input: str | None = None):
    return runner.invoke(app, list(args), input=input)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny model, trained once through the CLI, shared by the tests that only read it."""
    folder = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        Path("play.txt").write_text(make_text(), encoding="utf-8")
        assert invoke("prepare", "--text", "play.txt").exit_code == 0
        result = invoke("train", "--data", "data/play-char", *TINY_TRAIN)
        assert result.exit_code == 0, result.output
    return folder / result.stdout.strip()


def test_prepare_prints_the_folder_and_a_summary(corpus_file: Path) -> None:
    result = invoke("prepare", "--text", str(corpus_file), "--val-fraction", "0.2", "--split", "random")
    assert result.exit_code == 0, result.output
    assert result.stdout == "data/play-char\n"
    assert "vocab size" in result.stderr and "random split" in result.stderr
    meta = json.loads(Path("data/play-char/meta.json").read_text())
    assert meta["val_fraction"] == 0.2 and meta["split"] == "random"


def test_prepare_builtin_corpus_by_name(offline_shakespeare: Path, workdir: Path) -> None:
    result = invoke("prepare", "shakespeare")
    assert result.exit_code == 0, result.output
    assert result.stdout == "data/shakespeare-char\n" and Path("data/tiny_shakespeare.txt").exists()
    assert_fails(invoke("prepare", "wikipedia"), 1, "unknown corpus 'wikipedia'")
    assert_fails(
        invoke("prepare", "shakespeare", "--text", "x.txt"), 2, "give only one of: a built-in corpus name, --text"
    )


def test_train_writes_a_named_checkpoint_and_prints_only_its_path(corpus_file: Path) -> None:
    assert invoke("prepare", "--text", str(corpus_file)).exit_code == 0
    result = invoke("train", "--data", "data/play-char", *TINY_TRAIN, "--blocks", "1", "-B", "4", "--out", "runs")
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip())
    assert result.stdout == f"{path}\n" and path.parent == Path("runs") and path.exists()
    assert path.name.startswith("gpt.c16.e16.h2.b1-") and runs.NAME_PATTERN.fullmatch(path.name)
    assert "train loss" in result.stderr and "val ppl" in result.stderr  # the loss table
    summary = runs.summary(checkpoint.read_header(path))
    assert summary["step"] == 30 and summary["tokens_seen"] == 30 * 4 * 16
    assert [h["step"] for h in summary["history"]] == [15, 30]
    assert summary["train"]["batch_size"] == 4 and summary["data"]["corpus"] == "play"
    expected = {path, runs.companion(path, "state"), runs.companion(path, "best"), runs.companion(path, "metrics")}
    assert set(Path("runs").iterdir()) == expected  # and no claim or temp files left


def test_train_with_no_data_prepares_the_default_corpus(offline_shakespeare: Path, workdir: Path) -> None:
    result = invoke("train", *TINY_TRAIN)
    assert result.exit_code == 0, result.output
    assert (workdir / "data" / "tiny_shakespeare.txt").read_bytes() == offline_shakespeare.read_bytes()
    assert (workdir / "data" / "shakespeare-char" / "meta.json").exists()
    assert Path(result.stdout.strip()).parent == Path("checkpoints")


def test_train_loss_falls(trained: Path) -> None:
    summary = runs.summary(checkpoint.read_header(trained))
    history, vocab_size = summary["history"], summary["tokenizer"]["vocab_size"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_loss"] < math.log(vocab_size) - 0.3  # better than guessing uniformly


def test_generate_streams_prompt_and_text_reproducibly(trained: Path) -> None:
    args = ["generate", str(trained), "--prompt", "KING:", "--max-new-tokens", "40", "--seed", "1"]
    first, second = invoke(*args), invoke(*args)
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("KING:") and len(first.stdout) == len("KING:") + 40 + 1
    assert first.stdout == second.stdout
    assert invoke(*args[:-1], "2").stdout != first.stdout
    assert "seed 1" in first.stderr and "seed" not in first.stdout


def test_generate_defaults_to_the_newest_checkpoint_and_reads_stdin(trained: Path, monkeypatch) -> None:
    monkeypatch.chdir(trained.parent.parent)
    result = invoke("generate", "--prompt", "-", "-n", "5", "--temperature", "0", input="QUEEN:")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("QUEEN:") and str(trained.name) in result.stderr


def test_generate_several_samples(trained: Path) -> None:
    result = invoke("generate", str(trained), "--num-samples", "3", "-n", "10", "--seed", "0", "-p", "A")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len([s for s in result.stdout.split("\n") if s.startswith("A")]) >= 3
    assert result.stderr.count("--- sample") == 3 and lines


def test_info_json_has_the_documented_keys(trained: Path) -> None:
    result = invoke("info", str(trained), "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    for key in ("path", "params", "model", "tokenizer", "step", "tokens_seen", "train_loss", "val_loss",
                "best_val_loss", "created", "history"):  # fmt: skip
        assert key in info
    assert info["tokenizer"]["type"] == "char" and info["model"]["n_embd"] == 16
    assert info["best_val_loss"] == min(h["val_loss"] for h in info["history"])


def test_info_lists_every_checkpoint_newest_first(trained: Path, monkeypatch) -> None:
    monkeypatch.chdir(trained.parent.parent)
    table = invoke("info")
    assert table.exit_code == 0 and trained.name in table.stderr and "evaluations" in table.stderr
    two = invoke("info", "--json", str(trained), str(trained))
    assert [i["path"] for i in json.loads(two.stdout)] == [str(trained)] * 2


# Bad input: one clear message, the right exit code, no traceback, nothing half-written.


def assert_fails(result, code: int, message: str) -> None:
    assert result.exit_code == code, result.output
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.output and result.stdout == ""


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "the corpus is empty or only whitespace"),
        (b"   \n\n ", "the corpus is empty or only whitespace"),
        (b"\xff\xfe bad bytes", "is not UTF-8 text"),
    ],
)
def test_prepare_bad_corpus(workdir: Path, content: bytes, message: str) -> None:
    Path("bad.txt").write_bytes(content)
    assert_fails(invoke("prepare", "--text", "bad.txt"), 1, message)
    assert not Path("data").exists() or not any(Path("data").iterdir())


def test_prepare_missing_path(workdir: Path) -> None:
    assert_fails(invoke("prepare", "--text", "missing.txt"), 1, "no such file or folder: missing.txt")


def test_train_split_shorter_than_the_context(workdir: Path) -> None:
    Path("short.txt").write_text("To be, or not to be, that is the question.\n" * 3)
    assert invoke("prepare", "--text", "short.txt").exit_code == 0
    result = invoke("train", "--data", "data/short-char", "--preset", "tiny", "--ctx", "64")
    assert_fails(result, 1, "the val split of data/short-char has 13 tokens, fewer than block_size + 1 = 65")
    assert not Path("checkpoints").exists() or not any(Path("checkpoints").iterdir())


def test_train_missing_data_folder(workdir: Path) -> None:
    assert_fails(invoke("train", "--data", "nowhere", "--preset", "tiny"), 1, "no prepared data at nowhere")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--preset", "huge"], "unknown preset 'huge'"),
        (["--n-embd", "100", "--n-head", "6"], "n_embd=100 is not divisible by n_head=6"),
        (["--lr", "-0.1"], "lr=-0.1 (from --lr): Input should be greater than 0"),
        (["--block-size", "0"], "model.block_size=0 (from --block-size): Input should be greater than or equal to 1"),
        (["--set", "model.n_layers=3"], "unknown setting 'model.n_layers' in --set. Did you mean 'model.n_layer'?"),
        (["--set", "batch_size=many"], "batch_size='many' (from --set batch_size): Input should be a valid integer"),
        (["--device", "cuda:7"], "device 'cuda:7'"),  # not available, or not there: CUDA present or not
    ],
)
def test_train_invalid_options_are_usage_errors(workdir: Path, args: list[str], message: str) -> None:
    code = 2
    assert_fails(invoke("train", *args), code, message)
    assert not Path("checkpoints").exists()


def test_debug_shows_the_traceback(workdir: Path) -> None:
    result = invoke("--debug", "train", "--preset", "huge")
    assert result.exit_code != 0 and result.exception is not None


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "no such checkpoint"),
        (lambda p: p.write_text("not weights"), "is not a safetensors file"),
        (lambda p: save_file({"w": __import__("torch").zeros(1)}, str(p)), "not a mygpt checkpoint"),
    ],
)
def test_bad_checkpoints(workdir: Path, make, message: str) -> None:
    path = workdir / "x.safetensors"
    make(path)
    for command in ("generate", "info"):
        assert_fails(invoke(command, str(path)), 1, message)


def test_truncated_checkpoint(trained: Path, workdir: Path) -> None:
    cut = workdir / "cut.safetensors"
    cut.write_bytes(trained.read_bytes()[:-64])
    for command in ("generate", "info"):
        assert_fails(invoke(command, str(cut)), 1, "is truncated or damaged")


def test_generate_without_any_checkpoint(workdir: Path) -> None:
    assert_fails(invoke("generate"), 1, "no checkpoints under checkpoints/")
    assert_fails(invoke("info"), 1, "no checkpoints under checkpoints/")


def test_prompt_with_unknown_characters_names_them(trained: Path) -> None:
    assert_fails(invoke("generate", str(trained), "--prompt", "KING: ¿qué?"), 1, "'¿', 'é'")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--max-new-tokens", "-5"], "max_new_tokens=-5"),
        (["--top-p", "0"], "top_p=0.0"),
        (["--top-p", "1.01"], "top_p=1.01"),
        (["--temperature", "-1"], "temperature=-1.0"),
    ],
)
def test_generate_invalid_sampling_values(trained: Path, args: list[str], message: str) -> None:
    assert_fails(invoke("generate", str(trained), *args), 2, message)


def test_unknown_option_is_a_usage_error(workdir: Path) -> None:
    result = invoke("train", "--learning-rates", "1")
    assert result.exit_code == 2 and "No such option" in result.output


def test_help_and_version() -> None:
    assert invoke("--help").exit_code == 0
    assert invoke("--version").stdout.startswith("mygpt ")
    train_help = invoke("train", "--help")
    for alias in ("--ctx", "--emb", "--heads", "--blocks", "--backend", "-B"):
        assert alias in train_help.stdout


def test_train_reads_a_config_file_and_flags_override_it(corpus_file: Path) -> None:
    assert invoke("prepare", "--text", str(corpus_file)).exit_code == 0
    Path("run.toml").write_text('data = "data/play-char"\nmax_iters = 4\neval_interval = 2\n[model]\nn_layer = 1\n')
    result = invoke("train", "--config", "run.toml", *TINY_TRAIN[:6], "--device", "cpu", "--max-iters", "6")
    assert result.exit_code == 0, result.output
    summary = runs.summary(checkpoint.read_header(result.stdout.strip()))
    assert summary["model"]["n_layer"] == 1 and summary["step"] == 6  # file, then the flag over it


def test_ctrl_c_saves_the_weights_and_exits_130(corpus_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert invoke("prepare", "--text", str(corpus_file)).exit_code == 0
    import os
    import signal

    from mygpt import ui
    from mygpt.events import Stepped

    render = ui.render_training

    def press_ctrl_c_at_step_7(events, *args, **kwargs):  # a real SIGINT, sent while step 7 is on the screen
        def watched():
            for event in events:
                yield event
                if isinstance(event, Stepped) and event.step == 7:
                    os.kill(os.getpid(), signal.SIGINT)

        return render(watched(), *args, **kwargs)

    monkeypatch.setattr(ui, "render_training", press_ctrl_c_at_step_7)
    before = signal.signal(signal.SIGINT, lambda *_: None)  # a SIGINT the command misses fails the test, not pytest
    try:
        result = invoke("train", "--data", "data/play-char", *TINY_TRAIN, "--eval-interval", "100")
    finally:
        signal.signal(signal.SIGINT, before)
    assert result.exit_code == 130, result.output
    path = result.stdout.strip()
    assert (
        "stopped by SIGINT at step 7" in result.stderr and f"resume with: mygpt train --resume {path}" in result.stderr
    )
    summary = runs.summary(checkpoint.read_header(path))
    assert summary["step"] == 7 and summary["history"] == []
    resumed = invoke("train", "--resume", path, "--max-iters", "9")
    assert resumed.exit_code == 0, resumed.output
    assert runs.summary(checkpoint.read_header(path))["step"] == 9


def test_a_diverging_run_stops_with_advice_and_keeps_the_last_good_checkpoint(corpus_file: Path) -> None:
    assert invoke("prepare", "--text", str(corpus_file)).exit_code == 0
    # Decoupled weight decay with lr x weight_decay far above 2 flips and grows every weight
    # each step: the loss overflows within a few steps, after the evaluation at step 3.
    result = invoke(
        "train", "--data", "data/play-char", *TINY_TRAIN, "--eval-interval", "3", "--lr", "10", "--weight-decay", "10"
    )
    assert_fails(result, 1, "the loss became non-finite (NaN or infinite) at step ")
    assert "Try a lower learning rate (now --lr 10)" in result.stderr
    (path,) = runs.find("checkpoints")
    header = checkpoint.read_header(path)
    assert header.meta.progress.step == 3 and all(math.isfinite(h.val_loss) for h in header.meta.progress.history)
    assert checkpoint.load(path).header.meta.progress.step == 3  # whole, and loadable
    assert not [p for p in Path("checkpoints").iterdir() if p.name.startswith(".")]
    resumed = invoke("train", "--resume", str(path), "--lr", "1e-2", "--weight-decay", "0.1", "--max-iters", "6")
    assert resumed.exit_code == 0, resumed.output  # the kept checkpoint is a good place to go on from


def test_chat_through_piped_stdin(trained: Path) -> None:
    result = invoke(
        "chat",
        str(trained),
        "--seed",
        "1",
        "-n",
        "20",
        "--device",
        "cpu",
        input="KING: hello\n/temp 0\n/topk 5\nQUEEN: and you\n/help\n/quit\nnever read\n",
    )
    assert result.exit_code == 0, result.output
    replies = [line for line in result.stdout.split("\n") if line]
    assert len(replies) >= 2  # one reply per line of text; commands print nothing on stdout
    assert "temperature is now 0.0" in result.stderr and "top_k is now 5" in result.stderr and "/reset" in result.stderr
    assert "you>" not in result.output  # no prompt decoration when stdin is not a terminal


def test_chat_reports_bad_lines_and_commands_and_goes_on(trained: Path) -> None:
    result = invoke(
        "chat", str(trained), "-n", "5", "--seed", "1", "--device", "cpu", input="¿qué?\n/temp hot\n/bogus\nKING\n"
    )
    assert result.exit_code == 0, result.output
    assert (
        "'¿', 'é'" in result.stderr
        and "/temp needs a number" in result.stderr
        and "unknown command /bogus" in result.stderr
    )
    assert result.stdout.strip()  # the last line still got its reply


def test_chat_conversation_is_trimmed_from_the_oldest_turns() -> None:
    from mygpt.chat import Conversation
    from mygpt.config import ChatConfig
    from mygpt.tokenizer import CharTokenizer

    tokenizer = CharTokenizer.train("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ:\n")
    conv = Conversation(tokenizer, 128, ChatConfig(system="KING:\n"))  # room for about three turns
    words = "the king and queen of a far land spoke to".split()
    for word in words:
        ids = conv.ask(f"QUEEN {word}")
        conv.reply("hope")
        assert len(ids) <= conv.budget
    assert conv.dropped > 0 and conv.prompt().startswith("KING:\n") and "QUEEN to" in conv.prompt()
    assert "QUEEN the" not in conv.prompt()  # the oldest turns went first
    conv.reset()
    assert conv.prompt() == "KING:\n"


def test_generate_greedy_is_identical_with_and_without_the_cache(trained: Path) -> None:
    # On the CPU in float32: under CUDA's bf16 the two paths may round a near tie differently.
    args = [
        "generate",
        str(trained),
        "--temperature",
        "0",
        "-n",
        "100",
        "-p",
        "KING:",
        "--device",
        "cpu",
    ]  # 100 > 6 windows of 16
    cached, plain = invoke(*args), invoke(*args, "--no-kv-cache")
    assert cached.exit_code == plain.exit_code == 0
    assert cached.stdout == plain.stdout and len(cached.stdout) == len("KING:") + 100 + 1


def test_generate_prompt_file_no_stream_and_a_long_prompt(trained: Path, workdir: Path) -> None:
    Path("prompt.txt").write_text("KING:\n" * 10)  # 60 characters, the context is 16
    result = invoke("generate", str(trained), "--prompt-file", "prompt.txt", "-n", "10", "--no-stream", "--seed", "1")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("KING:\n" * 10) and "the model sees its last 16" in result.stderr
    assert_fails(invoke("generate", str(trained), "--prompt-file", "nope.txt"), 1, "no such prompt file: nope.txt")
    assert_fails(invoke("generate", str(trained), "-p", "x", "--prompt-file", "prompt.txt"), 2, "not both")


def test_generate_stops_at_a_stop_string(trained: Path) -> None:
    result = invoke(
        "generate", str(trained), "-p", "KING:", "-n", "200", "--seed", "0", "--stop", "\\n", "--device", "cpu"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1 and len(result.stdout) < 200  # ended at the first generated newline


@pytest.mark.slow
def test_ctrl_c_while_the_program_starts_exits_130_quietly(workdir: Path) -> None:
    # Issue 17, class 6: during the imports of the first second too, never swallowed, no traceback
    import signal
    import subprocess
    import sys
    import time

    for delay in (0.05, 0.3, 0.8):
        proc = subprocess.Popen([sys.executable, "-m", "mygpt", "train", "--preset", "tiny", "--max-iters", "5"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        # before Python's own handler exists the signal ends the process, which a shell also reports as 130
        assert proc.returncode in (130, -signal.SIGINT) and "Traceback" not in err and out == "", (delay, err)
