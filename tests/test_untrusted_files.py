"""Paths that are not regular files, OS errors, and templates and messages (issue 17, classes 4
and 7). Every input is built here: FIFOs with os.mkfifo, folders, /dev/zero, injected OSErrors.

Opening a FIFO for reading blocks until a writer comes: a regression would hang, not fail.
So each test that hands one to mygpt runs under `alarm`, which turns a wait into an error.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mygpt import data, files, sources, tokenizer
from mygpt.cli import app
from mygpt.config import ChatConfig, TrainConfig
from mygpt.configure import build, load_file
from mygpt.errors import CheckpointError, ConfigError, DataError, TokenizerError
from mygpt.runs import MetricsLog
from mygpt.tokenfiles import TokenFolder
from mygpt.ui import history_table

runner = CliRunner()


@pytest.fixture
def fifo(workdir: Path) -> Path:
    path = workdir / "pipe.txt"
    os.mkfifo(path)
    return path


# --- class 4: only regular files are opened as files ---------------------------------------


def test_require_regular_says_what_a_path_is(workdir: Path, fifo: Path) -> None:
    (workdir / "folder").mkdir()
    (workdir / "ok.txt").write_text("x")
    assert files.require_regular(workdir / "ok.txt", "prompt file") == workdir / "ok.txt"
    cases = {
        "folder": "the prompt file folder is a folder, not a regular file.",
        "pipe.txt": "the prompt file pipe.txt is a FIFO (a named pipe), not a regular file.",
        "/dev/zero": "the prompt file /dev/zero is a character device, not a regular file.",
        "missing.txt": "no such prompt file: missing.txt",
    }
    for name, message in cases.items():
        with pytest.raises(DataError) as caught:
            files.require_regular(name, "prompt file", DataError)
        assert str(caught.value) == message


def test_a_path_in_an_unreadable_folder_is_a_clean_error(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = workdir / "locked"
    locked.mkdir()
    (locked / "in.txt").write_text("text")
    real_stat = os.stat

    def denied(path, *args, **kwargs):  # what a chmod 000 folder does to a user other than root
        if str(path).startswith(str(locked)) or str(path).startswith("locked"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(files.os, "stat", denied)
    with pytest.raises(DataError, match=r"^cannot read the corpus path locked/in.txt: permission denied\.$"):
        sources.find_files(["locked/in.txt"])
    with pytest.raises(ConfigError, match="cannot read the config file locked/in.txt: permission denied"):
        load_file("locked/in.txt")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 folder anyway")
def test_a_real_chmod_000_folder(workdir: Path) -> None:
    (workdir / "locked").mkdir()
    (workdir / "locked" / "in.txt").write_text("text")
    (workdir / "locked").chmod(0)
    try:
        result = runner.invoke(app, ["prepare", "--text", "locked/in.txt"])
    finally:
        (workdir / "locked").chmod(0o755)
    assert result.exit_code == 1 and "permission denied" in result.stderr, result.output


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["prepare", "--text", "pipe.txt"], 1, "the corpus file pipe.txt is a FIFO (a named pipe)"),
        (["prepare", "--text", "/dev/zero"], 1, "the corpus file /dev/zero is a character device"),
        (["prepare", "--text", "play.txt", "--tokenizer", "gpt2", "--tokenizer-file", "pipe.txt"], 1, "the ranks file pipe.txt is a FIFO"),
        (["prepare", "--text", "play.txt", "--tokenizer", "gpt2", "--tokenizer-file", "/dev/zero"], 1, "the ranks file /dev/zero is a character device"),
        (["train", "--dataset", "pipe.txt", "--device", "cpu"], 1, "the dataset pipe.txt is a FIFO"),
        (["train", "--config", "pipe.txt"], 2, "the config file pipe.txt is a FIFO"),
        (["train", "--config", "configs"], 2, "the config file configs is a folder, not a regular file"),
    ],
)  # fmt: skip
def test_the_cli_refuses_what_is_not_a_regular_file_at_once(
    corpus_file: Path, fifo: Path, alarm: None, args: list[str], code: int, message: str
) -> None:
    (corpus_file.parent / "configs").mkdir()
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert message in " ".join(result.stderr.split()) and "Traceback" not in result.output


def test_library_readers_refuse_a_fifo(workdir: Path, fifo: Path, alarm: None) -> None:
    with pytest.raises(DataError, match="the text file pipe.txt is a FIFO"):
        data.read_text(Path("pipe.txt"))  # what --prompt-file reads with
    with pytest.raises(TokenizerError, match="the ranks file pipe.txt is a FIFO"):
        tokenizer.pretrained("gpt2", "pipe.txt")
    with pytest.raises(CheckpointError, match="the metrics file pipe.txt is a FIFO"):
        MetricsLog(Path("pipe.txt"), keep_through=5)


def test_a_folder_corpus_reads_only_its_regular_files(workdir: Path, alarm: None) -> None:
    (workdir / "corpus").mkdir()
    (workdir / "corpus" / "a.txt").write_text("text")
    os.mkfifo(workdir / "corpus" / "b.txt")
    assert [f.path.name for f in sources.find_files(["corpus"])] == ["a.txt"]
    assert [f.path.name for f in sources.find_files(["corpus/*.txt"])] == ["a.txt"]


# --- class 7: templates and messages ----------------------------------------------------------


@pytest.mark.parametrize(
    "template, message",
    [
        ("User: { {text}", "is not a valid template (unexpected '{' in field name)"),
        ("User: {text} }", "is not a valid template (Single '}' encountered"),
        ("{0} {text}", "holds {0}: the only placeholder allowed is {text}"),
        ("{} {text}", "holds {}: the only placeholder allowed is {text}"),
        ("{other} {text}", "holds {other}"),
        ("{text[0]}", "holds {text[0]}"),
        ("{text:d}", "holds {text:d}"),
        ("{text!r}", "holds {text!r}"),
        ("no line here", "has no {text} placeholder"),
    ],
)
def test_a_template_that_format_could_fail_on_is_refused_at_config_time(template: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build(ChatConfig, flags={"template": template})
    assert message in str(caught.value) and repr(template) in str(caught.value)


def test_good_templates_format_any_line() -> None:
    for template in ("User: {text}\nAssistant:", "{text}", "{{literal}} {text} {text}"):
        cfg = build(ChatConfig, flags={"template": template})
        assert "a {line}" in cfg.template.format(text="a {line}")


@pytest.mark.parametrize("value, seconds", [("45", 45.0), ("0.5", 0.5), ('"90s"', 90.0), ("10m", 600.0)])
def test_set_max_time_as_a_number_means_seconds(value: str, seconds: float) -> None:
    assert build(TrainConfig, sets=[f"max_time={value}"]).max_seconds == seconds


def test_set_max_time_refuses_what_is_not_a_duration() -> None:
    for value in ("true", "-3", "0"):
        with pytest.raises(ConfigError, match="max_time"):
            build(TrainConfig, sets=[f"max_time={value}"])


def test_info_summarises_a_huge_history() -> None:
    row = {"train_loss": 2.0, "lr": 1e-3, "elapsed": 1.0}
    history = [{**row, "step": i, "val_loss": 0.5 if i == 2500 else 3 - i * 1e-4} for i in range(5000)]
    table = history_table(history)
    assert table is not None and table.row_count == 5 + 1 + 1 + 1 + 5  # first, a gap, best, a gap, last
    assert "5,000" in str(table.title)
    steps = list(table.columns[0].cells)
    assert steps[:5] == ["0", "1", "2", "3", "4"] and "2500" in steps and steps[-1] == "4999"
    short = history_table(history[:12])
    assert short is not None and short.row_count == 12 and short.title == "evaluations"


def test_os_errors_are_said_in_words() -> None:
    cases = {
        OSError(errno.ENOSPC, "No space left on device"): "no space left on the device holding data/x",
        OSError(errno.EDQUOT, "Disk quota exceeded"): "the disk quota is used up on the device holding data/x",
        OSError(errno.EROFS, "Read-only file system"): "data/x is on a read-only file system",
        PermissionError(errno.EACCES, "Permission denied"): "permission denied for data/x",
        OSError("1003855 requested and 524288 written"): "no space left on the device holding data/x",
    }
    for exc, message in cases.items():
        assert files.describe_os_error(exc, "data/x").startswith(message)


def test_a_full_disk_during_prepare_names_the_cause(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    with TokenFolder(workdir / "data" / "out", np.dtype(np.uint16)) as folder:
        monkeypatch.setattr("mygpt.tokenfiles.os.write", full)
        with pytest.raises(DataError) as caught:
            folder.append(np.arange(100))
    assert (
        str(caught.value) == f"could not write {workdir}/data/out: no space left on the device holding {workdir}/data."
    )
    assert "requested" not in str(caught.value)
    assert not any((workdir / "data").iterdir())  # nothing half-written is left
