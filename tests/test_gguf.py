"""`mygpt export gguf`: the file llama.cpp reads, checked without llama.cpp.

The file is read back with the gguf package's reader and run by a small NumPy copy of
llama.cpp's gpt2 and gptneox graphs (src/models/gpt2.cpp, gptneox.cpp: NeoX rotary on
channel i and i + hs/2, tanh GELU), and its vocabulary is run by a copy of llama.cpp's
BPE (merge the adjacent pair of lowest merge rank). llama.cpp itself is the check in
benchmarks/gguf_llamacpp.py.
"""

from __future__ import annotations

import math
from pathlib import Path

import gguf
import numpy as np
import pytest
import regex
import torch
from typer.testing import CliRunner

from mygpt import bpe, checkpoint
from mygpt.cli import app
from mygpt.config import ModelConfig
from mygpt.convert import bytes_to_unicode
from mygpt.model import GPT
from mygpt.tokenizer import ENDOFTEXT, PRETRAINED, BPETokenizer, CharTokenizer, Tokenizer
from mygpt.word_tokenizer import WordTokenizer

runner = CliRunner()
GPT2_PATTERN = PRETRAINED["gpt2"][0]
TEXT = "First Citizen:\nBefore we proceed any further, hear me speak — naïve café, 2026 «ok»!\n" * 4


def save(path: Path, tokenizer: Tokenizer, **model: object) -> Path:
    """A random model with biases and LayerNorm gains far from their initial values, so
    that every tensor changes the logits."""
    config = ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=32, vocab_size=tokenizer.vocab_size, **model)
    torch.manual_seed(0)
    net = GPT(config)
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.add_((0.3 if "ln_" in name or name.endswith("bias") else 0.05) * torch.randn_like(p))
    checkpoint.save(path, net, checkpoint.Meta(model=config, tokenizer=tokenizer.to_dict()))
    return path


def export(ckpt: Path, out: Path, *flags: str) -> gguf.GGUFReader:
    result = runner.invoke(app, ["export", "gguf", str(ckpt), str(out), *flags])
    assert result.exit_code == 0, result.output
    return gguf.GGUFReader(result.stdout.strip().splitlines()[-1])


def field(reader: gguf.GGUFReader, key: str) -> object:
    return reader.fields[key].contents()


def weights(reader: gguf.GGUFReader) -> dict[str, np.ndarray]:
    """Each tensor as float32, shaped (out, in) as mygpt stores it."""
    out = {}
    for t in reader.tensors:
        data = gguf.quants.dequantize(t.data, t.tensor_type)
        out[t.name] = np.asarray(data, np.float32).reshape(list(reversed([int(n) for n in t.shape])))
    return out


def llama_logits(reader: gguf.GGUFReader, ids: list[int]) -> np.ndarray:
    """llama.cpp's gpt2 / gptneox forward pass, (T, n_vocab), in float64."""
    arch = field(reader, "general.architecture")
    w = {k: v.astype(np.float64) for k, v in weights(reader).items()}
    n_head, eps = field(reader, f"{arch}.attention.head_count"), field(reader, f"{arch}.attention.layer_norm_epsilon")
    T, C = len(ids), w["token_embd.weight"].shape[1]
    hs = C // n_head

    def norm(x: np.ndarray, name: str) -> np.ndarray:
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * w[f"{name}.weight"] + w[f"{name}.bias"]

    def linear(x: np.ndarray, name: str) -> np.ndarray:
        return x @ w[f"{name}.weight"].T + w[f"{name}.bias"]

    def neox(x: np.ndarray) -> np.ndarray:  # (T, n_head, hs): channel i turns with i + hs/2
        theta = np.arange(T)[:, None] * 10000.0 ** (-np.arange(0, hs, 2) / hs)  # (T, hs/2)
        cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
        a, b = x[..., : hs // 2], x[..., hs // 2 :]
        return np.concatenate([a * cos - b * sin, a * sin + b * cos], -1)

    x = w["token_embd.weight"][ids]  # (T, C)
    if arch == "gpt2":
        x = x + w["position_embd.weight"][:T]
    for i in range(field(reader, f"{arch}.block_count")):
        q, k, v = np.split(linear(norm(x, f"blk.{i}.attn_norm"), f"blk.{i}.attn_qkv"), 3, -1)
        q, k, v = (t.reshape(T, n_head, hs) for t in (q, k, v))
        if arch == "gptneox":
            q, k = neox(q), neox(k)
        att = np.einsum("thd,shd->hts", q, k) / math.sqrt(hs) + np.triu(np.full((T, T), -np.inf), 1)
        att = np.exp(att - att.max(-1, keepdims=True))
        y = np.einsum("hts,shd->thd", att / att.sum(-1, keepdims=True), v).reshape(T, C)
        x = x + linear(y, f"blk.{i}.attn_output")
        h = linear(norm(x, f"blk.{i}.ffn_norm"), f"blk.{i}.ffn_up")
        h = 0.5 * h * (1 + np.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h**3)))
        x = x + linear(h, f"blk.{i}.ffn_down")
    head = w.get("output.weight", w["token_embd.weight"])
    return norm(x, "output_norm") @ head.T


def llama_tokenize(reader: gguf.GGUFReader, text: str) -> list[int]:
    """llama.cpp's BPE with the gpt-2 pre-tokenizer: split, spell bytes in GPT-2's
    alphabet, merge the adjacent pair with the lowest merge rank, look the symbols up."""
    assert field(reader, "tokenizer.ggml.pre") == "gpt-2"
    ids = {t: i for i, t in enumerate(field(reader, "tokenizer.ggml.tokens"))}
    ranks = {tuple(m.split(" ", 1)): r for r, m in enumerate(field(reader, "tokenizer.ggml.merges"))}
    alphabet, out = bytes_to_unicode(), []
    for piece in regex.findall(GPT2_PATTERN, text):
        symbols = [alphabet[b] for b in piece.encode("utf-8")]
        while len(symbols) > 1:
            rank, i = min(
                (ranks.get(pair, math.inf), i) for i, pair in enumerate(zip(symbols, symbols[1:], strict=False))
            )
            if rank == math.inf:
                break
            symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
        out += [ids[s] for s in symbols]
    return out


def gpt2_style_bpe() -> BPETokenizer:
    """Byte-level BPE learned on TEXT with GPT-2's pattern, as `prepare --tokenizer gpt2
    --tokenizer-file` rebuilds a ranks file: ids follow the merges, <|endoftext|> last."""
    vocab = bpe.train([TEXT], 60, pattern=GPT2_PATTERN).vocab
    ranks: dict[bytes, int] = {}
    for i, token in enumerate(vocab):
        ranks.setdefault(token, i)
    return BPETokenizer("gpt2", GPT2_PATTERN, ranks, {ENDOFTEXT: len(vocab)})


@pytest.mark.parametrize(
    "model",
    [
        dict(pos="learned", gelu="tanh"),
        dict(pos="rope", gelu="tanh"),
        dict(pos="sinusoidal", gelu="tanh", tie_weights=False, bias=False),
    ],
    ids=["learned", "rope", "sinusoidal-untied-nobias"],
)
def test_llama_cpp_graph_computes_the_logits_mygpt_does(tmp_path: Path, model: dict) -> None:
    tokenizer = CharTokenizer.train(TEXT)
    ckpt = save(tmp_path / "m.safetensors", tokenizer, **model)
    reader = export(ckpt, tmp_path / "m.gguf")
    ids = tokenizer.encode(TEXT)[:32]
    with torch.no_grad():
        ours = checkpoint.load(ckpt).model.eval()(torch.tensor([ids]))[0].double().numpy()  # (T, V)
    theirs = llama_logits(reader, ids)  # (T, V + 1): the added end-of-text row
    assert np.abs(theirs[:, : tokenizer.vocab_size] - ours).max() < 1e-4
    assert np.abs(theirs[:, tokenizer.vocab_size]).max() < 1e-12  # a zero row: logit 0, and suppressed


def test_rope_rows_are_reordered_for_neox_rotary(tmp_path: Path) -> None:
    """Without the reordering, llama.cpp's NeoX rotary computes other logits."""
    tokenizer = CharTokenizer.train(TEXT)
    ckpt = save(tmp_path / "m.safetensors", tokenizer, pos="rope", gelu="tanh")
    reader = export(ckpt, tmp_path / "m.gguf")
    qkv = weights(reader)["blk.0.attn_qkv.weight"]
    stored = checkpoint.load(ckpt).model.transformer.h[0].attn.c_attn.weight.detach().numpy()
    assert np.array_equal(qkv[:16], stored[[0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15]])  # head 0's q
    assert np.array_equal(qkv[64:], stored[64:])  # values keep their order


def test_exact_gelu_is_refused_then_written_with_approximate(tmp_path: Path) -> None:
    tokenizer = CharTokenizer.train(TEXT)
    ckpt = save(tmp_path / "m.safetensors", tokenizer)  # mygpt's default: RoPE, exact GELU
    refused = runner.invoke(app, ["export", "gguf", str(ckpt), str(tmp_path / "m.gguf")])
    assert refused.exit_code == 1 and "exact GELU" in refused.output and "--approximate" in refused.output
    assert not (tmp_path / "m.gguf").exists()
    reader = export(ckpt, tmp_path / "m.gguf", "--approximate")
    ids = tokenizer.encode(TEXT)[:32]
    with torch.no_grad():
        ours = checkpoint.load(ckpt).model.eval()(torch.tensor([ids]))[0].double().numpy()
    difference = np.abs(llama_logits(reader, ids)[:, : tokenizer.vocab_size] - ours).max()
    assert 1e-6 < difference < 0.05  # the tanh form: close, not equal


def test_bpe_vocabulary_tokenizes_to_mygpts_ids(tmp_path: Path) -> None:
    tokenizer = gpt2_style_bpe()
    reader = export(save(tmp_path / "m.safetensors", tokenizer, pos="learned", gelu="tanh"), tmp_path / "m.gguf")
    assert field(reader, "tokenizer.ggml.model") == "gpt2"
    assert field(reader, "tokenizer.ggml.eos_token_id") == tokenizer.eot_id
    assert field(reader, "tokenizer.ggml.token_type")[tokenizer.eot_id] == gguf.TokenType.CONTROL
    for text in [TEXT, "  spaces  and\n\nlines\n", "Citizen citizens 12345 ünïcode 🙂", TEXT[7:90]]:
        assert llama_tokenize(reader, text) == tokenizer.encode(text)


def test_character_vocabulary_tokenizes_to_mygpts_ids(tmp_path: Path) -> None:
    tokenizer = CharTokenizer.train(TEXT + "日本🙂")  # characters of two, three and four bytes
    reader = export(save(tmp_path / "m.safetensors", tokenizer, pos="learned", gelu="tanh"), tmp_path / "m.gguf")
    n = tokenizer.vocab_size
    assert field(reader, "tokenizer.ggml.tokens")[n] == ENDOFTEXT and field(reader, "tokenizer.ggml.eos_token_id") == n
    assert field(reader, "tokenizer.ggml.suppress_tokens") == [n]
    for text in [TEXT, "日本🙂 café\n", "  «»"]:
        assert llama_tokenize(reader, text) == tokenizer.encode(text)


def test_metadata_names_the_checkpoint_and_its_shape(tmp_path: Path) -> None:
    ckpt = save(tmp_path / "m.safetensors", CharTokenizer.train(TEXT), pos="rope", gelu="tanh")
    reader = export(ckpt, tmp_path)  # a folder: NAME.gguf inside
    assert (tmp_path / "m.gguf").is_file()
    assert field(reader, "general.architecture") == "gptneox" and field(reader, "general.name") == "m"
    assert field(reader, "gptneox.context_length") == 32 and field(reader, "gptneox.rope.dimension_count") == 16
    assert field(reader, "gptneox.use_parallel_residual") is False
    assert "m.safetensors" in field(reader, "general.description")


def test_a_position_table_is_padded_to_llama_cpps_context_multiple(tmp_path: Path) -> None:
    """llama.cpp runs a context of 256 positions at least and asserts that each has a row."""
    ckpt = save(tmp_path / "m.safetensors", CharTokenizer.train(TEXT), pos="learned", gelu="tanh")
    reader = export(ckpt, tmp_path / "m.gguf")
    table = weights(reader)["position_embd.weight"]
    assert table.shape == (256, 32) and field(reader, "gpt2.context_length") == 256
    assert field(reader, "mygpt.block_size") == 32 and not table[32:].any()
    assert np.array_equal(table[:32], checkpoint.load(ckpt).model.transformer.wpe.weight.detach().numpy())


def test_f16_and_q8_0_store_matrices_smaller_and_close(tmp_path: Path) -> None:
    ckpt = save(tmp_path / "m.safetensors", CharTokenizer.train(TEXT), pos="learned", gelu="tanh")
    exact = weights(export(ckpt, tmp_path / "f32.gguf"))
    for dtype, kind, tolerance in [
        ("f16", gguf.GGMLQuantizationType.F16, 1e-3),
        ("q8_0", gguf.GGMLQuantizationType.Q8_0, 2e-2),
    ]:
        reader = export(ckpt, tmp_path / f"{dtype}.gguf", "--dtype", dtype)
        types = {t.name: t.tensor_type for t in reader.tensors}
        assert types["blk.0.attn_qkv.weight"] == kind and types["blk.0.attn_qkv.bias"] == gguf.GGMLQuantizationType.F32
        assert (tmp_path / f"{dtype}.gguf").stat().st_size < (tmp_path / "f32.gguf").stat().st_size
        assert all(np.abs(exact[name] - w).max() < tolerance for name, w in weights(reader).items())


def test_what_llama_cpp_cannot_express_is_refused(tmp_path: Path) -> None:
    words = WordTokenizer.train(TEXT, 50)
    cases = [
        (save(tmp_path / "w.safetensors", words, pos="learned", gelu="tanh"), [], "llama.cpp has no word vocabulary"),
        (save(tmp_path / "b.safetensors", BPETokenizer.from_merges(bpe.train([TEXT], 30)), pos="learned", gelu="tanh"),
         [], "groups of two digits"),
        (save(tmp_path / "p.safetensors", BPETokenizer("bpe", r"\S+|\s+", {bytes([i]): i for i in range(256)},
                                                      {ENDOFTEXT: 256}), pos="learned", gelu="tanh"),
         ["--approximate"], "pattern is not one llama.cpp knows"),
    ]  # fmt: skip
    for ckpt, flags, message in cases:
        result = runner.invoke(app, ["export", "gguf", str(ckpt), str(tmp_path / "x.gguf"), *flags])
        assert result.exit_code == 1 and message in result.output, result.output
    assert not (tmp_path / "x.gguf").exists()
    bad_dtype = runner.invoke(app, ["export", "gguf", str(cases[1][0]), str(tmp_path / "x.gguf"), "--dtype", "q4"])
    assert bad_dtype.exit_code == 2 and "f32, f16, q8_0" in bad_dtype.output


def test_an_existing_file_is_replaced_only_if_it_is_gguf(tmp_path: Path) -> None:
    ckpt = save(tmp_path / "m.safetensors", CharTokenizer.train(TEXT), pos="learned", gelu="tanh")
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    result = runner.invoke(app, ["export", "gguf", str(ckpt), str(notes)])
    assert result.exit_code == 1 and "not a GGUF file" in result.output and notes.read_text() == "mine"
    export(ckpt, tmp_path / "m.gguf")
    (tmp_path / ".m.gguf.tmp-999999999").write_bytes(b"GGUF half")  # left by an export that was killed
    export(ckpt, tmp_path / "m.gguf", "--dtype", "f16")  # an earlier export is replaced
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_failed_write_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt = save(tmp_path / "m.safetensors", CharTokenizer.train(TEXT), pos="learned", gelu="tanh")
    export(ckpt, tmp_path / "m.gguf")
    before = (tmp_path / "m.gguf").read_bytes()

    def full_disk(self: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", full_disk)
    result = runner.invoke(app, ["export", "gguf", str(ckpt), str(tmp_path / "m.gguf"), "--dtype", "f16"])
    assert result.exit_code == 1 and "could not write" in result.output and "Traceback" not in result.output
    assert (tmp_path / "m.gguf").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
