"""Issue 17, class 1: sizes come from the file, not from a belief. A crafted header, a
config.json or nanoGPT's model_args decide nothing about memory before the stored tensors
agree; sizes a user asks for are estimated and refused before anything is allocated.
The commands run under an address-space limit, so a regression fails instead of
exhausting the machine."""

import json
import resource
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from mygpt import checkpoint, memory
from mygpt.cli import app
from mygpt.config import ModelConfig
from mygpt.errors import CheckpointError
from mygpt.model import GPT
from mygpt.tokenizer import CharTokenizer

LIMIT = 5 * 2**30  # enough for torch itself; far below what the crafted files ask for


def limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


def mygpt(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The CLI in a process of its own, under the address-space limit."""
    return subprocess.run([sys.executable, "-m", "mygpt", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, preexec_fn=limited)  # fmt: skip


def small_checkpoint(path: Path) -> Path:
    config = ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=16, vocab_size=8)
    tokenizer = CharTokenizer(list("abcdefgh"))
    meta = checkpoint.Meta(model=config, tokenizer=tokenizer.to_dict(), progress=checkpoint.Progress(step=1))
    checkpoint.save(path, GPT(config), meta)
    return path


def crafted(path: Path, **model: int) -> Path:
    """The same tensors under a header whose model config says something else."""
    with safe_open(str(path), "pt") as f:
        metadata = dict(f.metadata())
    config = json.loads(metadata["model"])
    config.update(model)
    metadata["model"] = json.dumps(config)
    out = path.with_name("crafted.safetensors")
    save_file(load_file(str(path)), str(out), metadata)
    return out


@pytest.mark.slow
def test_a_header_that_claims_a_huge_model_is_refused_before_allocating(tmp_path: Path) -> None:
    bad = crafted(small_checkpoint(tmp_path / "ok.safetensors"), n_embd=8192, n_layer=64, n_head=64, block_size=4096)
    # believed, this header would be a 52B-parameter model: over 200 GB to allocate
    for args in (["generate", str(bad), "-n", "5"], ["eval", str(bad), "--text", str(bad)],
                 ["train", "--init-from", str(bad), "--max-iters", "1"]):  # fmt: skip
        done = mygpt(*args, cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        assert "transformer.wte.weight is stored as (8, 16) but its config implies (8, 8192)" in done.stderr
        assert "Traceback" not in done.stderr and done.stdout == ""


def test_every_mismatch_names_its_tensor(tmp_path: Path) -> None:
    good = small_checkpoint(tmp_path / "ok.safetensors")
    assert checkpoint.load(good).model.config.n_embd == 16
    with pytest.raises(CheckpointError, match=r"transformer.h.1.ln_1.weight, which its config implies"):
        checkpoint.load(crafted(good, n_layer=2))  # one block stored, two claimed
    config = ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=16, vocab_size=8)
    stored = memory.model_shapes(config)
    with pytest.raises(CheckpointError, match=r"holds tensors its config has no place for: transformer.h.7.mlp"):
        memory.check_shapes(config, {**stored, "transformer.h.7.mlp.c_fc.weight": (64, 16)}, "x")
    memory.check_shapes(config, {**stored, "lm_head.weight": (8, 16)}, "x")  # a tied head stored twice (nanoGPT)
    with pytest.raises(
        CheckpointError, match=r"lm_head.weight is stored as \(9, 16\) but its config implies \(8, 16\)"
    ):
        memory.check_shapes(config, {**stored, "lm_head.weight": (9, 16)}, "x")


def test_sizes_a_user_asks_for_are_estimated_and_refused(workdir: Path, corpus_file: Path, monkeypatch) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["prepare", "--text", str(corpus_file)]).exit_code == 0
    huge = runner.invoke(app, ["train", "--data", "data/play-char", "--n-embd", "8192", "--n-layer", "64",
                               "--n-head", "64", "--device", "cpu"])  # fmt: skip
    assert huge.exit_code == 2, huge.output
    assert "training this model (51,5" in huge.stderr and "GB available" in huge.stderr  # 51,5xx.xM parameters
    assert "needs about 8" in huge.stderr  # 16 bytes a parameter: about 824 GB
    assert not Path("checkpoints").exists() or not any(Path("checkpoints").iterdir())
    path = small_checkpoint(workdir / "m.safetensors")
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 2_000_000)  # a machine with 2 MB free
    many = runner.invoke(app, ["generate", str(path), "--num-samples", "10000", "-n", "3", "--device", "cpu"])
    assert many.exit_code == 2 and "sampling 10,000 sequences at once from this model needs about" in many.stderr
    assert many.stdout == ""  # refused before the prompt is printed
    assert (
        runner.invoke(app, ["generate", str(path), "--num-samples", "2", "-n", "3", "--device", "cpu"]).exit_code == 0
    )


@pytest.mark.slow
def test_a_nanogpt_file_that_declares_more_than_it_holds_is_refused(tmp_path: Path) -> None:
    torch.save({"model": {"w": torch.zeros(4, 4)}, "model_args": {"n_layer": 1}}, tmp_path / "ok.pt")
    with zipfile.ZipFile(tmp_path / "ok.pt") as z:
        names = z.namelist()
        pickled = next(n for n in names if n.endswith("data.pkl"))
        data = z.read(pickled)
        # the tensor now claims 32768 x 32768 floats (4 GiB) from a 64-byte record
        forged = data.replace(b"K\x04K\x04\x86", b"J\x00\x80\x00\x00J\x00\x80\x00\x00\x86").replace(
            b"K\x10t", b"J\x00\x00\x00\x40t"
        )
        assert forged != data
        with zipfile.ZipFile(tmp_path / "big.pt", "w") as out:
            for name in names:
                out.writestr(name, forged if name == pickled else z.read(name))
    done = mygpt("import", "nanogpt", str(tmp_path / "big.pt"), cwd=tmp_path)
    assert done.returncode == 1 and "declares tensors larger than the file holds" in done.stderr, done.stderr


def test_an_hf_config_that_disagrees_with_its_weights_is_refused(tmp_path: Path) -> None:
    from mygpt import convert

    config = ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=16, vocab_size=8, pos="learned", gelu="tanh")
    weights = {name: torch.zeros(shape) for name, shape in memory.model_shapes(config).items()}
    claimed = config.model_copy(update={"n_embd": 4096, "n_head": 32})  # what a crafted config.json says
    with pytest.raises(CheckpointError, match=r"transformer.wte.weight is stored as \(8, 16\) but its config implies"):
        convert.save_imported(claimed, weights, CharTokenizer(list("abcdefgh")), tmp_path / "out", "hf-folder")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
