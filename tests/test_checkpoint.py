import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from mygpt import checkpoint, runs
from mygpt.config import ModelConfig
from mygpt.errors import CheckpointError
from mygpt.model import GPT
from mygpt.tokenizer import CharTokenizer

STARTED = datetime(2026, 11, 21, 10, 15, 0)


def write_checkpoint(path: Path, config: ModelConfig, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    model = GPT(config)
    tokenizer = CharTokenizer([chr(ord("a") + i) for i in range(config.vocab_size)])
    meta = checkpoint.Meta(model=config, tokenizer=tokenizer.to_dict(), progress=checkpoint.Progress(step=3))
    checkpoint.save(path, model, meta)
    return model


def test_save_then_load_gives_identical_logits(tmp_path: Path, tiny: ModelConfig) -> None:
    path = tmp_path / "m.safetensors"
    model = write_checkpoint(path, tiny).eval()
    loaded = checkpoint.load(path)
    idx = torch.randint(0, tiny.vocab_size, (2, 9))
    torch.testing.assert_close(loaded.model(idx), model(idx), rtol=0, atol=0)
    assert loaded.model.lm_head.weight is loaded.model.transformer.wte.weight  # still tied after loading
    assert loaded.tokenizer.vocab_size == tiny.vocab_size
    assert loaded.header.meta.progress.step == 3


def test_checkpoints_from_before_gelu_and_pos_existed_load_as_they_were_trained(
    tmp_path: Path, tiny: ModelConfig
) -> None:
    # Such files have no "gelu" or "pos" in their model config; they were trained with
    # GPT-2's tanh GELU and learned positions, which are no longer the defaults.
    config = tiny.model_copy(update={"gelu": "tanh", "pos": "learned"})
    torch.manual_seed(0)
    model = GPT(config).eval()
    older = {k: v for k, v in config.model_dump().items() if k not in ("gelu", "pos")}
    tokenizer = CharTokenizer([chr(ord("a") + i) for i in range(config.vocab_size)])
    path = tmp_path / "old.safetensors"
    fields = {"model": older, "tokenizer": tokenizer.to_dict()}  # as format 1 wrote them
    save_file(
        checkpoint.model_tensors(model),
        str(path),
        metadata={"format": "mygpt", "format_version": "1", **{k: json.dumps(v) for k, v in fields.items()}},
    )
    loaded = checkpoint.load(path)
    assert (loaded.model.config.gelu, loaded.model.config.pos) == ("tanh", "learned")
    idx = torch.randint(0, tiny.vocab_size, (1, 9))
    torch.testing.assert_close(loaded.model(idx), model(idx), rtol=0, atol=0)


def test_tied_weights_are_stored_once(tmp_path: Path, tiny: ModelConfig) -> None:
    path = tmp_path / "m.safetensors"
    model = write_checkpoint(path, tiny)
    header = checkpoint.read_header(path)
    assert "lm_head.weight" not in header.shapes and "transformer.wte.weight" in header.shapes
    assert header.num_params == model.num_params()


def test_name_encodes_hyperparameters_and_start_time(tmp_path: Path) -> None:
    config = ModelConfig(n_layer=6, n_head=6, n_embd=384, block_size=256)
    path = runs.RunFiles.claim(tmp_path, config, STARTED).path
    assert path.name == "gpt.c256.e384.h6.b6-2026.11.21_101500.safetensors"
    assert runs.NAME_PATTERN.fullmatch(path.name)


def test_runs_started_in_the_same_second_get_different_names(tmp_path: Path, tiny: ModelConfig) -> None:
    first = runs.RunFiles.claim(tmp_path, tiny, STARTED).path
    second = runs.RunFiles.claim(tmp_path, tiny, STARTED).path
    assert first != second and second.name.endswith("_101500-2.safetensors")
    assert runs.NAME_PATTERN.fullmatch(second.name)
    write_checkpoint(first, tiny)
    runs.RunFiles(first).release()
    third = runs.RunFiles.claim(tmp_path, tiny, STARTED).path  # the finished file still holds its name
    assert third not in (first, second)


def test_saving_leaves_no_temporary_files(tmp_path: Path, tiny: ModelConfig) -> None:
    write_checkpoint(tmp_path / "m.safetensors", tiny)
    write_checkpoint(tmp_path / "m.safetensors", tiny, seed=1)  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_a_failed_write_keeps_the_previous_checkpoint(
    tmp_path: Path, tiny: ModelConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.safetensors"
    write_checkpoint(path, tiny)
    before = path.read_bytes()

    def disk_full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("safetensors.torch.save_file", disk_full)
    with pytest.raises(
        CheckpointError, match="no space left on the device holding .*previous checkpoint, if any, is unchanged"
    ):
        write_checkpoint(path, tiny, seed=1)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]

    def safetensors_disk_full(tensors, filename, metadata=None):  # safetensors' own error type wraps the OS's
        from safetensors import SafetensorError

        raise SafetensorError(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
        )

    monkeypatch.setattr("safetensors.torch.save_file", safetensors_disk_full)
    with pytest.raises(CheckpointError, match="no space left on the device holding"):
        write_checkpoint(path, tiny, seed=1)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


@pytest.fixture
def good(tmp_path: Path, tiny: ModelConfig) -> Path:
    path = tmp_path / "good.safetensors"
    write_checkpoint(path, tiny)
    return path


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        checkpoint.read_header(tmp_path / "nope.safetensors")


def test_not_a_safetensors_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.safetensors"
    path.write_text("these are my notes, not weights")
    with pytest.raises(CheckpointError, match="is not a safetensors file"):
        checkpoint.read_header(path)


def test_truncated_checkpoint(good: Path) -> None:
    data = good.read_bytes()
    good.write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError, match="truncated or damaged"):
        checkpoint.read_header(good)
    with pytest.raises(CheckpointError, match="truncated or damaged"):
        checkpoint.load(good)


def test_safetensors_that_is_not_a_mygpt_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2, 2)}, str(path), metadata={"producer": "someone else"})
    with pytest.raises(CheckpointError, match="safetensors file but not a mygpt checkpoint"):
        checkpoint.read_header(path)


@pytest.mark.parametrize(
    "version, model, message",
    [
        ("0", {"n_layer": 1, "n_head": 2, "n_embd": 8, "block_size": 4, "vocab_size": 3}, "format version 0"),
        ("3", {}, "format 3, newer than this mygpt understands"),
        ("2", {"n_layer": 1, "n_head": 3, "n_embd": 8, "block_size": 4, "vocab_size": 3}, "n_embd=8 is not divisible"),
        ("2", {"n_layer": 1, "n_head": 2, "n_embd": 8, "block_size": 4}, "no vocab_size"),
    ],
)
def test_metadata_is_validated_on_read(tmp_path: Path, version: str, model: dict, message: str) -> None:
    path = tmp_path / "crafted.safetensors"
    fields = {"model": model, "tokenizer": {"type": "char", "chars": "abc"}}
    save_file(
        {"w": torch.zeros(2)},
        str(path),
        metadata={"format": "mygpt", "format_version": version, **{k: json.dumps(v) for k, v in fields.items()}},
    )
    with pytest.raises(CheckpointError, match=message):
        checkpoint.read_header(path)


def test_newest_checkpoint_is_the_default(tmp_path: Path, tiny: ModelConfig) -> None:
    older, newer = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    write_checkpoint(newer, tiny)
    write_checkpoint(older, tiny)
    os.utime(older, (1_000_000, 1_000_000))
    assert runs.find(tmp_path) == [newer, older]
    assert runs.resolve(None, tmp_path) == newer
    with pytest.raises(CheckpointError, match="no checkpoints under"):
        runs.resolve(None, tmp_path / "empty")


@pytest.mark.slow
def test_reading_the_header_does_not_import_torch(good: Path) -> None:
    code = (
        "import sys; from typer.testing import CliRunner; from mygpt.cli import app; "
        f"r = CliRunner().invoke(app, ['info', '--json', {str(good)!r}]); "
        "assert r.exit_code == 0, r.output; assert '\"params\"' in r.stdout; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_copy_keeps_its_version_when_the_source_is_replaced(tmp_path: Path, tiny: ModelConfig) -> None:
    path, best = tmp_path / "m.safetensors", tmp_path / "m.best.safetensors"
    write_checkpoint(path, tiny, seed=0)
    checkpoint.copy(path, best)
    first = best.read_bytes()
    write_checkpoint(path, tiny, seed=1)  # the run goes on and replaces its checkpoint
    assert best.read_bytes() == first != path.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.best.safetensors", "m.safetensors"]
