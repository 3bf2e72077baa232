"""Issue 17, class 5: stored data is validated where it is read. Token ids beyond the
vocabulary, an empty split, damaged ranks, metadata nested thousands deep and non-finite
weights are each one clear error at load time, before any output."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_text
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from mygpt import checkpoint, corpus, data
from mygpt.cli import app
from mygpt.config import ModelConfig
from mygpt.errors import CheckpointError, DataError, TokenizerError
from mygpt.model import GPT
from mygpt.prepare_config import PrepareConfig
from mygpt.tokenizer import CharTokenizer, from_dict

runner = CliRunner()


@pytest.fixture
def prepared(workdir: Path) -> Path:
    Path("play.txt").write_text(make_text(), encoding="utf-8")
    return corpus.prepare(PrepareConfig(text=("play.txt",)))


def test_token_ids_beyond_the_vocabulary_and_empty_splits_are_refused(prepared: Path, alarm: None) -> None:
    vocab = data.load(prepared).tokenizer.vocab_size
    ids = np.fromfile(prepared / "train.bin", dtype="<u2")
    ids[len(ids) // 2] = vocab  # one id past the last
    ids.tofile(prepared / "train.bin")
    with pytest.raises(DataError, match=f"train.bin holds token id {vocab}, beyond the tokenizer's {vocab} ids"):
        data.load(prepared)
    result = runner.invoke(app, ["train", "--data", str(prepared), "--preset", "tiny", "--max-iters", "1"])
    assert result.exit_code == 1 and f"holds token id {vocab}" in result.stderr and "Traceback" not in result.output
    ids[len(ids) // 2] = 0
    ids.tofile(prepared / "train.bin")
    meta = json.loads((prepared / "meta.json").read_text())
    meta["tokens"]["val"] = 0
    (prepared / "meta.json").write_text(json.dumps(meta))
    (prepared / "val.bin").write_bytes(b"")
    with pytest.raises(DataError, match="the val split of .* is empty"):
        data.load(prepared)
    (prepared / "tokenizer.json").rename(prepared / "tokenizer.keep")
    os.mkfifo(prepared / "tokenizer.json")  # a FIFO in a data folder is refused, not read (it would block)
    with pytest.raises(DataError, match="tokenizer.json is a FIFO"):  # `alarm`: a regression fails, not hangs
        data.load(prepared)
    (prepared / "tokenizer.json").unlink()
    (prepared / "tokenizer.keep").rename(prepared / "tokenizer.json")
    meta["tokens"] = {"train": "many", "val": [1]}  # the wrong JSON types
    (prepared / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="damaged meta.json"):
        data.load(prepared)


def test_damaged_ranks_are_refused_before_tiktoken_can_panic(capfd) -> None:
    good = {bytes([b]): b for b in range(256)}

    def description(ranks: dict[bytes, int], special: dict[str, int]) -> dict:
        from mygpt.tokenizer import format_ranks

        return {"type": "bpe", "encoding": "bpe", "pattern": r"\S+|\s+", "ranks": format_ranks(ranks),
                "special_tokens": special}  # fmt: skip

    cases = {
        "gives two tokens the same rank": ({**good, b"ab": 5}, {"<|endoftext|>": 257}),
        "lacks the single byte 0x00": ({k: v for k, v in good.items() if k != b"\x00"}, {}),
        "special tokens reuse an id": (good, {"<|endoftext|>": 7}),
    }
    for message, (ranks, special) in cases.items():
        with pytest.raises(TokenizerError, match=message):
            from_dict(description(ranks, special))
    for pattern in (r"(\w+\s?)+$", r"\S+"):  # backtracks too far on a long run; skips whitespace
        with pytest.raises(TokenizerError, match="pattern loses text"):
            from_dict({**description(good, {"<|endoftext|>": 256}), "pattern": pattern})
    assert "panicked" not in capfd.readouterr().err  # tiktoken never got to see them


def small_checkpoint(path: Path) -> Path:
    config = ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=16, vocab_size=8)
    meta = checkpoint.Meta(model=config, tokenizer=CharTokenizer(list("abcdefgh")).to_dict())
    checkpoint.save(path, GPT(config), meta)
    return path


def rewritten(path: Path, out: Path, tensors=None, **metadata: str) -> Path:
    with safe_open(str(path), "pt") as f:
        fields = {**f.metadata(), **metadata}
    save_file(tensors or load_file(str(path)), str(out), fields)
    return out


def test_metadata_nested_thousands_deep_is_damaged_and_info_lists_the_good_ones(workdir: Path) -> None:
    Path("checkpoints").mkdir()
    good = small_checkpoint(Path("checkpoints/good.safetensors"))
    deep = rewritten(good, Path("checkpoints/deep.safetensors"), train="[" * 50_000 + "]" * 50_000)
    with pytest.raises(CheckpointError, match="damaged mygpt metadata"):
        checkpoint.read_header(deep)
    listed = runner.invoke(app, ["info", "--json"])
    assert listed.exit_code == 0 and json.loads(listed.stdout)["path"] == str(good)
    assert "skipped: checkpoints/deep.safetensors has damaged mygpt metadata" in listed.stderr


def test_a_tokenizer_smaller_than_the_model_is_refused(workdir: Path) -> None:
    good = small_checkpoint(Path("good.safetensors"))  # 8 tokens, a model of 8
    smaller = rewritten(good, Path("small.safetensors"), tokenizer=json.dumps(CharTokenizer(list("abcdef")).to_dict()))
    with pytest.raises(CheckpointError, match="its tokenizer has 6 tokens but the model 8"):
        checkpoint.load(smaller)


def test_non_finite_weights_are_refused_by_generate_eval_and_init_from(workdir: Path) -> None:
    good = small_checkpoint(Path("good.safetensors"))
    tensors = load_file(str(good))
    tensors["transformer.h.0.mlp.c_fc.weight"][3, 4] = float("nan")
    bad = rewritten(good, Path("nan.safetensors"), tensors)
    with pytest.raises(CheckpointError, match=r"non-finite weights \(NaN or infinite values in transformer.h.0.mlp"):
        checkpoint.load(bad)
    for args in (["generate", str(bad), "-n", "3"], ["eval", str(bad), "--text", "good.safetensors"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1 and "non-finite" in result.stderr and result.stdout == "", result.output
    Path("play.txt").write_text(make_text(), encoding="utf-8")
    warm = runner.invoke(app, ["train", "--dataset", "play.txt", "--init-from", str(bad), "--max-iters", "1",
                               "--no-strict", "--device", "cpu"])  # fmt: skip
    assert warm.exit_code == 1 and "NaN or infinite" in warm.stderr and "learning rate" not in warm.stderr
    assert torch.isfinite(checkpoint.load(good).model.transformer.wte.weight).all()
