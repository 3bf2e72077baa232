"""Issue 17, class 3: every write path fails cleanly. A full disk (an injected ENOSPC) while
training saves or logs, or while `export hf` writes, ends with one message naming the
cause and exit 1; the previous files are intact and nothing is half-written."""

import errno
import json
from pathlib import Path

import pytest
from conftest import TINY_TRAIN, make_text
from typer.testing import CliRunner

from mygpt import checkpoint, convert, runs
from mygpt.cli import app

runner = CliRunner()


@pytest.fixture
def data(workdir: Path) -> Path:
    Path("play.txt").write_text(make_text(), encoding="utf-8")
    assert runner.invoke(app, ["prepare", "--text", "play.txt"]).exit_code == 0
    return Path("data/play-char")


def test_a_full_disk_during_training_saves_stops_cleanly_and_keeps_the_last_save(data: Path, monkeypatch) -> None:
    import safetensors.torch
    from safetensors import SafetensorError

    real, calls = safetensors.torch.save_file, []

    def fills_up(tensors, filename, metadata=None):  # the first evaluation's two files fit, then the disk is full
        calls.append(filename)
        if len(calls) > 2:  # as safetensors reports it: its own error type around the OS's
            raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")
        real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", fills_up)
    result = runner.invoke(app, ["train", "--data", str(data), *TINY_TRAIN])  # saves at steps 15 and 30
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "no space left on the device holding checkpoints" in result.stderr
    (path,) = runs.find("checkpoints")
    assert checkpoint.load(path).header.meta.progress.step == 15  # the save before the disk filled, whole
    assert not [p for p in Path("checkpoints").iterdir() if ".tmp-" in p.name]


def test_a_metrics_file_that_cannot_be_written_stops_the_run_with_the_reason(data: Path, monkeypatch) -> None:
    real = Path.write_text

    def read_only_metrics(self, *args, **kwargs):  # the metrics file's folder went read-only
        if self.name.endswith(".metrics.jsonl"):
            raise OSError(errno.EROFS, "Read-only file system")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", read_only_metrics)
    result = runner.invoke(app, ["train", "--data", str(data), *TINY_TRAIN])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "could not write the metrics file" in result.stderr and "on a read-only file system" in result.stderr


def test_export_hf_onto_a_full_disk_leaves_the_earlier_export_whole(data: Path, monkeypatch) -> None:
    gpt2_shape = ["--pos", "learned", "--set", "model.gelu=tanh"]  # what export hf can express
    assert (
        runner.invoke(app, ["prepare", "--text", "play.txt", "--tokenizer", "bpe", "--vocab-size", "300"]).exit_code
        == 0
    )
    trained = runner.invoke(app, ["train", "--data", "data/play-bpe300", *TINY_TRAIN, *gpt2_shape])
    assert trained.exit_code == 0, trained.output
    path = trained.stdout.strip()
    assert runner.invoke(app, ["export", "hf", path, "out"]).exit_code == 0
    before = {p.name: p.read_bytes() for p in Path("out").iterdir()}

    def full(tokenizer, folder):
        (folder / "vocab.json").write_text("{", encoding="utf-8")  # half a file
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(convert, "write_hf_tokenizer", full)
    result = runner.invoke(app, ["export", "hf", path, "out"])
    assert result.exit_code == 1 and "no space left on the device holding out" in result.stderr, result.output
    assert {p.name: p.read_bytes() for p in Path("out").iterdir()} == before  # the earlier export, whole
    assert sorted(p.name for p in Path(".").iterdir() if p.name.startswith(".out")) == []  # no temporary left
    json.loads((Path("out") / "config.json").read_text())


def test_what_a_killed_prepare_left_is_cleaned_by_the_next(workdir: Path) -> None:
    import os

    from mygpt.tokenfiles import clean_leftovers

    Path("play.txt").write_text(make_text(), encoding="utf-8")
    out = Path("data/play-char")
    assert runner.invoke(app, ["prepare", "--text", "play.txt"]).exit_code == 0
    dead = 2**22 + 12345  # above Linux's default pid_max: no such process
    stray = out.parent / f".play-char.tmp-{dead}-x1y2"
    stray.mkdir()
    (stray / "all.bin").write_bytes(b"\0" * 64)
    mine = out.parent / f".play-char.tmp-{os.getpid()}-live"  # a prepare still running is left alone
    mine.mkdir()
    moved = out.parent / f".play-char.old-{dead}"
    os.replace(out, moved)  # killed after moving the old folder aside, before the new one was in
    clean_leftovers(out)
    assert not stray.exists() and mine.exists() and (out / "meta.json").is_file() and not moved.exists()
    mine.rmdir()
    again = runner.invoke(app, ["prepare", "--text", "play.txt", "--val-fraction", "0.2"])  # re-prepare in place
    assert again.exit_code == 0 and json.loads((out / "meta.json").read_text())["val_fraction"] == 0.2
    assert sorted(p.name for p in out.parent.iterdir()) == ["play-char"]  # nothing beside it
