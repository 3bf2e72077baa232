"""A run's files: one owner at a time (a lock that dies with its process), and the modes
the user's umask gives, like every other file they make."""

import os
import stat
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from conftest import make_text

from mygpt import checkpoint, corpus, filemode, runlock, runs
from mygpt.config import ModelConfig
from mygpt.errors import TrainingError
from mygpt.prepare_config import PrepareConfig
from mygpt.tokenizer import CharTokenizer

STARTED = datetime(2026, 11, 21, 10, 15, 0)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def partial_writes(files: runs.RunFiles) -> list[Path]:
    """What a process killed mid-save leaves: a temporary folder beside the state file."""
    tmp = files.path.with_name(f".{files.state.name}.tmp-99999")
    tmp.mkdir()
    (tmp / files.state.name).write_bytes(b"half a file")
    return [tmp]


def test_a_run_another_process_owns_is_refused_by_pid_and_its_files_kept(
    tmp_path: Path, tiny: ModelConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = runs.RunFiles.claim(tmp_path, tiny, STARTED)  # this process trains the run...
    leftovers = partial_writes(files)
    monkeypatch.setattr(runlock, "_HELD", {})  # ...and now asks again as a second process would
    with pytest.raises(TrainingError, match=f"being trained by process {os.getpid()}:"):
        files.remove_leftovers()
    assert files.claim_file.exists() and all(p.exists() for p in leftovers)
    monkeypatch.undo()
    files.release()
    assert not files.claim_file.exists()


def test_the_claim_a_dead_process_left_is_taken_over_and_its_partial_writes_removed(
    tmp_path: Path, tiny: ModelConfig
) -> None:
    files = runs.RunFiles(tmp_path / "gpt.safetensors")
    files.claim_file.write_text('{"pid": 99999, "host": "gone"}')  # its lock died with it
    leftovers = partial_writes(files)
    assert files.remove_leftovers() == leftovers and not leftovers[0].exists()
    assert f'"pid": {os.getpid()}' in files.claim_file.read_text()
    files.release()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_lock_is_released_when_its_process_is_killed(tmp_path: Path) -> None:
    files = runs.RunFiles(tmp_path / "gpt.safetensors")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from mygpt.runs import RunFiles; from pathlib import Path; "
         "RunFiles(Path(sys.argv[1])).lock(); print('locked', flush=True); time.sleep(60)", str(files.path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(TrainingError, match=f"process {holder.pid}:"):
            files.lock()
    finally:
        holder.kill()
        holder.wait()
    files.lock()  # SIGKILL ran no code of the holder's, yet its lock is gone
    files.release()


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o077, 0o600)])
def test_checkpoint_files_get_the_mode_the_umask_gives(tmp_path: Path, tiny: ModelConfig, umask: int,
                                                       expected: int) -> None:  # fmt: skip
    from mygpt.model import GPT

    files = runs.RunFiles(tmp_path / "m.safetensors")
    tokenizer = CharTokenizer([chr(ord("a") + i) for i in range(tiny.vocab_size)])
    previous = os.umask(umask)
    try:
        checkpoint.save(files.path, GPT(tiny), checkpoint.Meta(model=tiny, tokenizer=tokenizer.to_dict()))
        checkpoint.copy(files.path, files.best)
        checkpoint.save_state(files.state, {}, checkpoint.TrainingState(progress=checkpoint.Progress(), rng={}))
    finally:
        os.umask(previous)
    assert [mode(p) for p in (files.path, files.best, files.state)] == [expected] * 3


def test_a_prepared_folder_gets_the_mode_the_umask_gives(workdir: Path) -> None:
    (workdir / "play.txt").write_text(make_text(n_lines=50), encoding="utf-8")
    previous = os.umask(0o027)
    try:
        out = corpus.prepare(PrepareConfig(text=("play.txt",)))
    finally:
        os.umask(previous)
    assert mode(out) == 0o750 and {mode(p) for p in out.iterdir()} == {0o640}


def test_the_umask_is_read_without_proc_and_left_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    previous = os.umask(0o027)
    try:
        assert filemode.umask() == 0o027
        monkeypatch.setattr(filemode, "_STATUS", "/nonexistent/status")  # not Linux
        assert filemode.umask() == 0o027 and filemode.ordinary_mode() == 0o640
        assert os.umask(0o027) == 0o027  # unchanged by reading it
    finally:
        os.umask(previous)
