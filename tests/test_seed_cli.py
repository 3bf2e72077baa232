"""The seed projects' ways of typing things: aliases, underscore spellings, My Toy GPT's
`training` and `generation`, picoGPT's and the production GPT's options, through the CLI."""

import json
import os
import re
from pathlib import Path

import pytest
from conftest import make_text
from typer.testing import CliRunner

from mygpt import checkpoint, runs
from mygpt.cli import app
from mygpt.errors import CheckpointError
from mygpt.options import hyphenate
from mygpt.toy_cli import generation_app, training_app

runner = CliRunner()
SMALL = ["--device", "cpu", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "-B", "4",
         "--eval-iters", "1"]  # fmt: skip


def invoke(*args: str, input: str | None = None, program=app):
    return runner.invoke(program, list(args), input=input)


def ok(result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def header(path: str | Path):
    return checkpoint.read_header(Path(path.strip()) if isinstance(path, str) else path).meta


@pytest.fixture
def data(workdir: Path) -> Path:
    Path("play.txt").write_text(make_text(), encoding="utf-8")
    ok(invoke("prepare", "--text", "play.txt"))
    return Path("data/play-char")


def test_underscores_and_bare_values_are_one_rule() -> None:
    names = {"--max-iters", "--top-k", "--resume", "--out"}
    assert hyphenate(["--max_iters", "3", "--top_k=5", "--not_an_option"], names) == [
        "--max-iters", "3", "--top-k=5", "--not_an_option"
    ]  # fmt: skip
    assert hyphenate(["--resume"], names) == ["--resume", "latest"]
    assert hyphenate(["--resume", "--out", "x"], names) == ["--resume", "latest", "--out", "x"]
    assert hyphenate(["--resume", "run.safetensors"], names) == ["--resume", "run.safetensors"]
    assert hyphenate(["--", "--max_iters"], names) == ["--", "--max_iters"]


def test_picogpt_and_toy_spellings_set_the_same_fields(data: Path) -> None:
    out = ok(invoke(
        "train", "--data_dir", str(data), "--ckpt_dir", "runs", "--n_layer", "1", "--heads", "2", "-e", "16",
        "-c", "16", "--batch_size", "4", "--max_iters", "2", "--learning-rate", "2e-3", "--min_lr", "1e-4",
        "--l2-reg", "0.01", "--drop", "0.1", "--cosine_lr", "--tie_weights", "--label_smoothing", "0.05",
        "--eval_interval", "2", "--eval_iters", "1", "--backend", "cpu",
    ))  # fmt: skip
    meta = header(out)
    train = meta.train
    assert Path(out.strip()).parent == Path("runs")
    assert (meta.model.n_layer, meta.model.n_head, meta.model.n_embd, meta.model.block_size) == (1, 2, 16, 16)
    assert meta.model.dropout == 0.1 and meta.model.tie_weights
    assert (train["batch_size"], train["max_iters"], train["lr"], train["weight_decay"]) == (4, 2, 2e-3, 0.01)
    assert (train["lr_schedule"], train["label_smoothing"], train["eval_iters"]) == ("cosine", 0.05, 1)


def test_epochs_count_passes_over_the_data_and_say_so(data: Path) -> None:
    result = invoke("train", "--data", str(data), *SMALL, "--epochs", "0.5", "--eval-interval", "1000")
    meta = header(ok(result))
    train_tokens = _train_tokens(data)
    expected = -(-train_tokens // 2 // (4 * 16))  # half the tokens, 64 per step, rounded up
    assert meta.progress.step == meta.train["max_iters"] == expected
    assert f"--epochs 0.5: 0.5 x {train_tokens:,} training tokens at 64 tokens per step = {expected:,} steps" in (
        result.stderr
    )
    both = invoke("train", "--data", str(data), *SMALL, "--epochs", "1", "--max-iters", "3")
    assert both.exit_code == 2 and "give one of them" in both.stderr


def _train_tokens(data: Path) -> int:
    return json.loads((data / "meta.json").read_text())["tokens"]["train"]


def test_auto_tie_weights_ties_small_data_and_mode_is_checked(data: Path) -> None:
    both = invoke("train", "--data", str(data), *SMALL, "--max-iters", "1", "--auto_tie_weights", "--no-tie-weights")
    assert both.exit_code == 2 and "--auto-tie-weights decides" in both.stderr
    result = invoke("train", "--data", str(data), *SMALL, "--max-iters", "1", "--auto_tie_weights", "--mode", "char")
    assert header(ok(result)).model.tie_weights and "under 1,000,000, so the LM head shares" in result.stderr
    wrong = invoke("train", "--data", str(data), *SMALL, "--max-iters", "1", "--mode", "token")
    assert wrong.exit_code == 2 and "--mode token, but the data in data/play-char is char-level" in wrong.stderr
    clash = invoke("train", "--data", str(data), *SMALL, "--tie-weights", "--no-tie-weights")
    assert clash.exit_code == 2 and "ask for different things" in clash.stderr


def test_output_names_a_folder_that_load_and_generation_find(data: Path) -> None:
    first = Path(ok(invoke("train", "--data", str(data), *SMALL, "--max-iters", "2", "--output", "mine")).strip())
    assert first.parent == Path("checkpoints/mine")
    # --load NAME starts a new run from those weights (a warm start), saved beside them; --init-from in --out
    again = invoke("train", "--data", str(data), "--device", "cpu", "--max-iters", "1", "--load", "mine")
    assert Path(ok(again).strip()).parent == first.parent and header(again.stdout).model == header(first).model
    assert f"starting from the weights of {first}" in again.stderr
    other = ok(invoke("train", "--data", str(data), "--device", "cpu", "--max-iters", "1", "--init-from", str(first)))
    assert Path(other.strip()).parent == Path("checkpoints")
    first = Path(again.stdout.strip())  # the newest in mine/ from here on
    one = ok(invoke("generate", "--load", "mine", "-n", "20", "--seed", "3"))
    assert one == ok(invoke("generate", str(first), "-n", "20", "--seed", "3"))
    assert one == ok(invoke("20", "--load", "mine", "--seed", "3", program=generation_app))
    assert one == ok(invoke("generate", "--model", str(first.parent / "latest.pt"), "-n", "20", "--seed", "3"))
    assert one == ok(invoke("generate", "--ckpt", str(first.parent), "--max_tokens", "20", "--seed", "3"))


def test_no_save_keeps_nothing_and_generate_prints_a_sample(data: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    result = invoke("train", "--data", str(data), *SMALL, "--max-iters", "2", "--no-save", "--generate", "30")
    text = ok(result)
    assert not Path("checkpoints").exists() and not list(tmp_path.glob("mygpt-nosave-*"))
    assert len(text) > 10 and "sampling from" in result.stderr


def test_dataset_prepares_a_text_file_once(workdir: Path) -> None:
    Path("data").mkdir()
    Path("data/book.txt").write_text(make_text(seed=4), encoding="utf-8")
    ok(invoke("train", "--dataset", "book.txt", *SMALL, "--max-iters", "1"))
    meta = Path("data/book-char/meta.json")
    stamp = meta.stat().st_mtime_ns
    ok(invoke("train", "--text_path", "data/book.txt", *SMALL, "--iters", "1"))  # picoGPT's smoke test's spelling
    assert meta.stat().st_mtime_ns == stamp  # the same file: not prepared again
    missing = invoke("train", "--dataset", "nothing.txt", *SMALL)
    assert missing.exit_code == 1 and "no such dataset: nothing.txt" in missing.stderr


def test_bare_resume_continues_the_newest_run_in_out(data: Path) -> None:
    path = ok(invoke("train", "--data", str(data), *SMALL, "--max-iters", "2", "--out", "runs")).strip()
    again = invoke("train", "--resume", "--out", "runs", "--max_iters", "3")
    assert ok(again).strip() == path and header(path).progress.step == 3
    done = invoke("train", "--resume", "--out", "runs", "--max-iters", "2")
    assert done.exit_code == 2 and "total steps, not additional ones" in done.stderr
    lower = invoke("train", "--resume", "--out", "runs", "--max_iters", "4", "--lr", "1e-5")  # picoGPT's "lower LR"
    assert ok(lower).strip() == path and header(path).train["min_lr"] == 1e-6  # the stored min_lr follows lr down


def test_log_level_and_log_file(data: Path) -> None:
    result = invoke("train", "--data", str(data), *SMALL, "--max-iters", "4", "--eval-interval", "2",
                    "--log-level", "INFO", "--log-file", "run.log")  # fmt: skip
    assert "train loss" in ok(result) + result.stderr
    lines = Path("run.log").read_text().splitlines()
    assert [line.split(" ", 3)[2] for line in lines] == ["INFO"] * 4  # started, 2 evaluations, finished
    assert "started" in lines[0] and "finished at step 4" in lines[-1]
    quiet = invoke("train", "--data", str(data), *SMALL, "--max-iters", "2", "--log-level", "warning", "--log-file", "q.log")  # fmt: skip
    assert ok(quiet).strip().endswith(".safetensors") and quiet.stderr == "" and Path("q.log").read_text() == ""
    ok(invoke("train", "--data", str(data), *SMALL, "--max-iters", "2", "--log-level", "debug", "--log-file", "d.log"))
    assert re.search(r"DEBUG step 2/2 loss \d", Path("d.log").read_text())
    bad = invoke("train", "--data", str(data), "--log-level", "loud")
    assert bad.exit_code == 2 and "not one of: debug, info, warning, error" in bad.stderr


def test_training_is_my_toy_gpts_command_with_its_defaults(data: Path) -> None:
    result = invoke("--epochs", "3", "--ctx", "16", "--emb", "32", "--heads", "2", "--blocks", "2", "-B", "4",
                    "--data", str(data), "--eval_iters", "1", "--backend", "cpu", "-g", "20", program=training_app)  # fmt: skip
    path, *sample = ok(result).split("\n", 1)
    meta = header(path)
    assert meta.progress.step == 3 and (meta.model.n_layer, meta.model.n_head, meta.model.n_embd) == (2, 2, 32)
    assert meta.model.dropout == 0.2 and meta.train["lr"] == 1e-3 and meta.train["weight_decay"] == 0.01  # toygpt's
    assert sample and sample[0].strip()
    help_text = flat(invoke("--help", program=training_app).stdout)
    assert "My Toy GPT's --epochs counted steps" in help_text and "Also: --epochs" in help_text
    assert "--epochs counts steps, as My Toy GPT's did" in flat(invoke("train", "--help").stdout)


def flat(help_text: str) -> str:
    """Help text without its box and line breaks."""
    return " ".join(help_text.replace("│", " ").split())


def test_generate_takes_picogpt_and_pico_gpt_options(data: Path) -> None:
    path = ok(invoke("train", "--data", str(data), *SMALL, "--max-iters", "2")).strip()
    result = invoke("generate", "--ckpt", path, "--prompt", "KING:\\nThe", "--max_new_tokens", "5", "--top_k", "3",
                    "--mode", "char", "--vocab_path", "data/char/vocab.json", "--seed", "1")  # fmt: skip
    assert ok(result).startswith("KING:\nThe") and "no tokenizer or vocabulary file is needed" in result.stderr
    wrong = invoke("generate", path, "--mode", "token")
    assert wrong.exit_code == 2 and "is char-level" in wrong.stderr
    chat = invoke("generate", "--model-path", path, "--interactive", "-t", "0", input="hi\n/quit\n")
    assert ok(chat).strip()  # a reply
    assert invoke("generate", path, "-i", "--num-samples", "2").exit_code == 2
    assert invoke("chat", "--load", path, "--system_prompt", "x", input="/quit\n").exit_code == 0


def test_prepare_takes_picogpts_options(workdir: Path) -> None:
    Path("texts").mkdir()
    Path("texts/a.txt").write_text(make_text(seed=1), encoding="utf-8")
    Path("texts/b.txt").write_text(make_text(seed=2), encoding="utf-8")
    Path("texts/c.jsonl").write_text('{"text": "not a txt file"}\n', encoding="utf-8")
    out = ok(invoke("prepare", "--all_txt_in_dir", "--text_dir", "texts", "--out_dir", "data/token",
                    "--vocab_size", "300", "--random_split", "--split_seed", "3"))  # fmt: skip
    meta = json.loads((Path(out.strip()) / "meta.json").read_text())
    assert out.strip() == "data/token" and meta["tokenizer"]["type"] == "bpe" and meta["tokenizer"]["vocab_size"] == 300
    assert meta["split"] == "random" and meta["seed"] == 3 and meta["files"] == 2  # the .txt files only
    word = ok(invoke("prepare", "--text_path", "texts/a.txt", "--backend", "word", "--vocab_size", "100"))
    assert json.loads((Path(word.strip()) / "meta.json").read_text())["tokenizer"]["type"] == "word"
    lone = invoke("prepare", "--all-txt-in-dir", "--text", "texts/a.txt")
    assert lone.exit_code == 2 and "give one with --text-dir" in lone.stderr


def test_checkpoints_are_found_by_the_names_seed_users_give(workdir: Path) -> None:
    folder = Path("checkpoints/mine")
    folder.mkdir(parents=True)
    old, new = (
        folder / "gpt.c8.e8.h1.b1-2026.01.01_000000.safetensors",
        folder / "gpt.c8.e8.h1.b1-2026.01.02_000000.safetensors",
    )
    for n, path in enumerate((old, new)):
        path.write_bytes(b"x")
        os.utime(path, (n, n))
    assert runs.resolve("mine") == new  # a name in checkpoints/: a folder, its newest
    assert runs.resolve(str(folder)) == new
    assert runs.resolve(str(folder / "latest.pt")) == new and runs.resolve(str(folder / "best.pt")) == runs.companion(
        new, "best"
    )
    assert runs.resolve(str(old)) == old
    assert runs.resolve(str(old.with_suffix(".pt"))) == old == runs.resolve(str(old.with_suffix(".pth")))
    assert runs.resolve("latest.pt", out_dir="checkpoints/mine") == new  # a bare latest.pt: in --out
    assert runs.resolve(str(folder / "best_model.pth")) == runs.companion(new, "best")  # the production GPT's name
    assert runs.resolve("mine.pt") == new  # `--output mine`, then `--load mine.pt`
    with pytest.raises(
        CheckpointError, match=f"no such checkpoint: mine/{old.stem} \\(nor mine/{old.stem}.safetensors\\)"
    ):
        runs.resolve("mine/" + old.stem)  # a path is not looked up in checkpoints/
    assert runs.resolve(f"checkpoints/mine/{old.stem}") == old
