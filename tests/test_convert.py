"""GPT-2 and nanoGPT weights in and out, checked against Hugging Face's own GPT2LMHeadModel."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import transformers  # a dev dependency: the oracle for GPT-2 parity
from safetensors.torch import load_file
from typer.testing import CliRunner

from mygpt import checkpoint, convert
from mygpt.cli import app
from mygpt.config import ModelConfig, SampleConfig
from mygpt.model import GPT
from mygpt.sampling import generate
from mygpt.tokenizer import CharTokenizer

runner = CliRunner()
MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("Ġ", "a"), ("n", "d"), ("Ġa", "nd")]


def write_tokenizer(folder: Path) -> int:
    """A small GPT-2-style byte-level BPE: the 256 bytes in GPT-2's order, a few merges,
    then <|endoftext|>. Returns its size."""
    vocab = {c: i for i, c in enumerate(convert.bytes_to_unicode().values())}
    for a, b in MERGES:
        vocab[a + b] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in MERGES) + "\n", encoding="utf-8"
    )
    return len(vocab)


def hf_folder(folder: Path, n_layer: int, n_head: int, n_embd: int, n_positions: int) -> "transformers.GPT2LMHeadModel":
    folder.mkdir()
    vocab_size = write_tokenizer(folder)
    config = transformers.GPT2Config(vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
                                     n_head=n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)  # fmt: skip
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # random, not-so-small biases and gains, so that every term matters
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(folder)
    return model


def import_hf(folder: Path, out: Path) -> Path:
    result = runner.invoke(app, ["import", "hf", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip())


@pytest.mark.parametrize("shape", [(2, 2, 32, 32), (3, 4, 48, 24)])
def test_imported_gpt2_matches_hugging_face_logits_and_greedy_tokens(tmp_path: Path, shape: tuple) -> None:
    hf = hf_folder(tmp_path / "hf", *shape)
    ours = checkpoint.load(import_hf(tmp_path / "hf", tmp_path / "ck"))
    idx = torch.randint(0, hf.config.vocab_size, (2, shape[3]))
    with torch.no_grad():
        torch.testing.assert_close(ours.model(idx), hf(idx).logits, rtol=1e-4, atol=1e-5)
    prompt = [5, 17, 256]
    hf_tokens = hf.generate(torch.tensor([prompt]), max_new_tokens=16, do_sample=False, pad_token_id=0)[
        0, len(prompt) :
    ]
    cfg = SampleConfig(max_new_tokens=16, temperature=0)
    our_tokens = torch.cat(list(generate(ours.model, prompt, cfg, seed=0)))
    assert our_tokens.tolist() == hf_tokens.tolist()


def test_imported_tokenizer_encodes_like_hugging_face(tmp_path: Path) -> None:
    hf_folder(tmp_path / "hf", 1, 1, 8, 8)
    ours = checkpoint.load(import_hf(tmp_path / "hf", tmp_path / "ck")).tokenizer
    theirs = transformers.GPT2Tokenizer(str(tmp_path / "hf/vocab.json"), str(tmp_path / "hf/merges.txt"))
    text = "and the theme, and then: thandle ¿qué?"
    assert ours.encode(text) == theirs.encode(text)
    assert ours.eot_id == theirs.eos_token_id == ours.vocab_size - 1


def test_export_round_trip_gives_identical_tensors_and_files(tmp_path: Path) -> None:
    hf = hf_folder(tmp_path / "hf", 2, 2, 32, 32)
    path = import_hf(tmp_path / "hf", tmp_path / "ck")
    result = runner.invoke(app, ["export", "hf", str(path), str(tmp_path / "back")])
    assert result.exit_code == 0, result.output
    before, after = (
        load_file(str(tmp_path / "hf/model.safetensors")),
        load_file(str(tmp_path / "back/model.safetensors")),
    )
    assert before.keys() == after.keys()
    for name in before:
        assert torch.equal(before[name], after[name]), name
    assert json.loads((tmp_path / "back/vocab.json").read_text()) == json.loads(
        (tmp_path / "hf/vocab.json").read_text()
    )
    assert (tmp_path / "back/merges.txt").read_text() == (tmp_path / "hf/merges.txt").read_text()
    again = transformers.GPT2LMHeadModel.from_pretrained(str(tmp_path / "back")).eval()
    idx = torch.randint(0, hf.config.vocab_size, (1, 32))
    with torch.no_grad():
        assert torch.equal(again(idx).logits, hf(idx).logits)


def test_export_refuses_what_gpt2_cannot_express(tmp_path: Path, tiny: ModelConfig) -> None:
    model = GPT(tiny)  # RoPE and exact GELU: mygpt's defaults, not GPT-2's
    tok = CharTokenizer([chr(ord("a") + i) for i in range(tiny.vocab_size)])
    checkpoint.save(tmp_path / "m.safetensors", model, checkpoint.Meta(model=tiny, tokenizer=tok.to_dict()))
    result = runner.invoke(app, ["export", "hf", str(tmp_path / "m.safetensors"), str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "cannot be written as GPT-2: pos=rope" in result.stderr and "character tokenizer" in result.stderr
    assert not (tmp_path / "out").exists()


def test_import_hf_refuses_a_folder_that_is_not_gpt2(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    result = runner.invoke(app, ["import", "hf", str(tmp_path / "x")])
    assert result.exit_code == 1 and "lacks config.json, model.safetensors, vocab.json, merges.txt" in result.stderr


def nanogpt_files(tmp_path: Path) -> tuple[GPT, Path, Path]:
    """A checkpoint laid out as nanoGPT writes it (a compiled model's names), with the text
    its prepare.py would have read and the meta.pkl it would have written beside it."""
    config = ModelConfig(n_layer=2, n_head=2, n_embd=16, block_size=16, vocab_size=12, bias=False, pos="learned")
    torch.manual_seed(0)
    model = GPT(config).eval()
    state = {f"_orig_mod.{k}": v for k, v in model.state_dict().items()}
    args = {"n_layer": 2, "n_head": 2, "n_embd": 16, "block_size": 16, "bias": False, "vocab_size": 12, "dropout": 0.0}
    torch.save({"model": state, "model_args": args, "iter_num": 5, "best_val_loss": torch.tensor(2.0),
                "config": {"dataset": "shakespeare_char"}}, tmp_path / "ckpt.pt")  # fmt: skip
    (tmp_path / "input.txt").write_text("a bad cab hig fed!\nbig deaf egg\n")  # 12 distinct characters
    chars = sorted(set((tmp_path / "input.txt").read_text()))
    meta = {"vocab_size": 12, "itos": dict(enumerate(chars)), "stoi": {c: i for i, c in enumerate(chars)}}
    (tmp_path / "meta.pkl").write_bytes(pickle.dumps(meta))
    return model, tmp_path / "ckpt.pt", tmp_path / "input.txt"


def test_nanogpt_checkpoint_imports_with_the_characters_of_its_text(tmp_path: Path) -> None:
    model, ckpt, corpus = nanogpt_files(tmp_path)
    result = runner.invoke(
        app, ["import", "nanogpt", str(ckpt), "--corpus", str(corpus), "--out", str(tmp_path / "ck")]
    )
    assert result.exit_code == 0, result.output
    loaded = checkpoint.load(result.stdout.strip())
    idx = torch.randint(0, 12, (2, 16))
    torch.testing.assert_close(loaded.model(idx), model(idx), rtol=0, atol=0)
    itos = pickle.loads((tmp_path / "meta.pkl").read_bytes())["itos"]  # the table nanoGPT itself would use
    assert [loaded.tokenizer.decode([i]) for i in range(12)] == [itos[i] for i in range(12)]


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_nanogpt_pickles_are_never_read(tmp_path: Path) -> None:
    _, ckpt, _ = nanogpt_files(tmp_path)
    (tmp_path / "meta.pkl").write_bytes(pickle.dumps({"itos": {0: "a"}, "x": Evil()}))
    result = runner.invoke(app, ["import", "nanogpt", str(ckpt), "--corpus", str(tmp_path / "meta.pkl")])
    assert result.exit_code == 1 and "is a pickle (meta.pkl?), and mygpt never reads pickles" in result.stderr
    assert "this must never run" not in result.output
    torch.save({"model": Evil(), "model_args": {}}, tmp_path / "bad.pt")
    result = runner.invoke(app, ["import", "nanogpt", str(tmp_path / "bad.pt")])
    assert result.exit_code == 1 and "not a nanoGPT checkpoint that loads safely" in result.stderr
    assert "this must never run" not in result.output


def test_nanogpt_import_refuses_a_text_with_other_characters(tmp_path: Path) -> None:
    _, ckpt, corpus = nanogpt_files(tmp_path)
    corpus.write_text("abc")
    result = runner.invoke(
        app, ["import", "nanogpt", str(ckpt), "--corpus", str(corpus), "--out", str(tmp_path / "ck")]
    )
    assert (
        result.exit_code == 1 and "has 3 distinct characters but" in result.stderr and "trained on 12" in result.stderr
    )
    assert not (tmp_path / "ck").exists() or not list((tmp_path / "ck").iterdir())
    result = runner.invoke(app, ["import", "nanogpt", str(ckpt), "--corpus", str(tmp_path / "missing.txt")])
    assert result.exit_code == 1 and "no such file" in result.stderr


# mygpt eval


def test_windows_score_every_token_once() -> None:
    from mygpt.scoring import windows

    for n, block, stride in [(100, 16, 8), (100, 16, 16), (17, 16, 5), (5, 16, 8), (2, 4, 1)]:
        spans = windows(n, block, stride)
        scored = [t for begin, end, k in spans for t in range(end - k + 1, end + 1)]
        assert scored == list(range(1, n))
        assert all(end - begin <= block for begin, end, _ in spans)


def test_eval_bits_per_byte_of_a_char_model_is_loss_over_ln2(tmp_path: Path, tiny: ModelConfig) -> None:
    from mygpt.scoring import score

    torch.manual_seed(0)
    model = GPT(tiny).eval()
    tok = CharTokenizer([chr(ord("A") + i) for i in range(tiny.vocab_size)])  # ASCII: one byte per character
    ids = torch.randint(0, tiny.vocab_size, (1 + 3 * tiny.block_size,)).tolist()
    result = score(model, ids, tok, stride=tiny.block_size)
    with torch.no_grad():  # stride = block_size: three plain, non-overlapping windows
        x = torch.tensor(ids[:-1]).view(3, -1)
        y = torch.tensor(ids[1:]).view(3, -1)
        expected = F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()
    assert result.loss == pytest.approx(expected, rel=1e-5)
    assert result.tokens == result.bytes == len(ids) - 1
    assert result.bits_per_byte == pytest.approx(result.loss / math.log(2), rel=1e-9)
    assert score(model, ids, tok, stride=4).loss != result.loss  # overlapping windows: more context, another loss

    checkpoint.save(tmp_path / "m.safetensors", model, checkpoint.Meta(model=tiny, tokenizer=tok.to_dict()))
    (tmp_path / "t.txt").write_text("".join(tok.decode([i]) for i in ids))
    # On the CPU: float32, as the expected loss above (CUDA would score under bf16 autocast).
    out = runner.invoke(app, ["eval", str(tmp_path / "m.safetensors"), "--text", str(tmp_path / "t.txt"),
                              "--stride", str(tiny.block_size), "--json", "--device", "cpu"])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["loss"] == pytest.approx(expected, rel=1e-5)
    assert set(json.loads(out.stdout)) >= {"loss", "perplexity", "bits_per_byte", "tokens"}
