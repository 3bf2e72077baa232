"""Byte-level BPE: the trainer, the tiktoken-backed tokenizer, and prepare/train/generate with it."""

import base64
import json
import random
from pathlib import Path

import numpy as np
import pytest
import rustbpe
from conftest import TINY_TRAIN, make_text
from hypothesis import example, given, settings, strategies as st
from typer.testing import CliRunner

from mygpt import bpe, corpus, data
from mygpt.cli import app
from mygpt.errors import TokenizerError
from mygpt.prepare_config import PrepareConfig
from mygpt.tokenizer import ENDOFTEXT, PRETRAINED, BPETokenizer, StreamDecoder, from_dict, pretrained

runner = CliRunner()


def code_like_text(seed: int = 0) -> str:
    """Python-looking source with numbers, indentation and punctuation."""
    rng = random.Random(seed)
    names = ["value", "count", "items", "result", "index", "total", "self", "config"]
    lines = []
    for i in range(400):
        name, other = rng.choice(names), rng.choice(names)
        lines.append(
            f"{'    ' * rng.randint(0, 3)}{name}_{i % 17} = {other}[{rng.randint(0, 99999)}] + {rng.random():.4f}  # {name}"
        )
    return "\n".join(lines)


def unicode_text(seed: int = 0) -> str:
    """Accents, CJK, emoji and long runs: multi-byte characters everywhere."""
    rng = random.Random(seed)
    pieces = [
        "café",
        "naïve",
        "日本語の文章",
        "🙂🙂",
        "ŝtelo",
        "Ωmega",
        "aaaaaaaaaaaa",
        "   ",
        "\n\n",
        "é",
        "e\u0301",
        "12",
    ]
    return " ".join(rng.choice(pieces) for _ in range(3000))


def rustbpe_vocab(docs: list[str], vocab_size: int) -> list[bytes]:
    tok = rustbpe.Tokenizer()
    tok.train_from_iterator(docs, vocab_size, pattern=bpe.SPLIT_PATTERN)
    return [token for token, _ in sorted(tok.get_mergeable_ranks(), key=lambda x: x[1])]


@pytest.mark.parametrize(
    "docs, vocab_size",
    [
        ([make_text(seed=3)], 256 + 70),
        ([code_like_text()], 256 + 140),
        ([unicode_text()], 256 + 60),
        ([make_text(seed=4), code_like_text(1), unicode_text(2)], 256 + 280),  # several documents
        ([make_text(seed=4), code_like_text(1), unicode_text(2)], 100_000),  # more than the corpus has
    ],
    ids=["play", "code", "unicode", "mixed-documents", "runs-out"],
)
def test_merges_equal_rustbpe(docs: list[str], vocab_size: int) -> None:
    ours = bpe.train(docs, vocab_size - 256)
    assert len(ours.merges) == min(vocab_size - 256, 292 if vocab_size == 100_000 else vocab_size)
    assert ours.vocab == rustbpe_vocab(docs, vocab_size)


def test_tie_break_is_highest_count_then_smallest_pair() -> None:
    # (a,a) occurs 3 times; then four pairs tie at 2 and are taken in ascending (left, right) order.
    result = bpe.train(["hello hello world aaaa"], 4)
    assert result.vocab[256:] == [b"aa", b"el", b"hel", b"lo"]


def test_training_is_deterministic() -> None:
    docs = [make_text(seed=5), unicode_text(3)]
    assert bpe.train(docs, 300).merges == bpe.train(docs, 300).merges


def test_stops_when_the_corpus_runs_out_of_pairs() -> None:
    result = bpe.train(["abab abab"], 1000)
    assert 0 < len(result.merges) < 10
    assert all(a < 256 + i and b < 256 + i for i, (a, b) in enumerate(result.merges))


def test_digits_are_split_in_groups_of_at_most_two() -> None:
    assert bpe.count_chunks(["year 20261121"]) == {"year": 1, " ": 1, "20": 1, "26": 1, "11": 1, "21": 1}


@pytest.fixture(scope="module")
def trained() -> BPETokenizer:
    return BPETokenizer.from_merges(bpe.train([make_text(), code_like_text()], 357 - 257))


@settings(max_examples=300, deadline=None)
@given(st.text())
@example("\x00")
@example("🙂" * 200)  # astral characters
@example("\u0301\u0301 e\u0301")  # lone combining marks
@example("a" * 20_000)  # a very long run
@example(" " * 5000 + "\n" * 5000)
@example("1234567890" * 100)
@example(ENDOFTEXT)
def test_round_trip_any_unicode(trained: BPETokenizer, text: str) -> None:
    assert trained.decode_bytes(trained.encode(text)).decode("utf-8") == text == trained.decode(trained.encode(text))


def test_decode_marks_a_character_cut_between_ids(trained: BPETokenizer) -> None:
    ids = trained.encode("é")  # two bytes that no merge of this English-trained tokenizer joins
    assert len(ids) == 2 and trained.decode(ids[:1]) == "\ufffd" and trained.decode(ids) == "é"


def test_literal_endoftext_in_text_is_ordinary_text(trained: BPETokenizer) -> None:
    ids = trained.encode(f"the end{ENDOFTEXT}again")
    assert trained.eot_id not in ids
    assert trained.eot_id == trained.vocab_size - 1 == 356  # inside the requested size, after the merges


def test_json_form_rebuilds_the_same_tokenizer(trained: BPETokenizer) -> None:
    again = from_dict(json.loads(json.dumps(trained.to_dict())))
    text = code_like_text(9)
    assert again.encode(text) == trained.encode(text) and again.vocab_size == trained.vocab_size


def test_streaming_holds_back_a_character_split_across_tokens(trained: BPETokenizer) -> None:
    ids = trained.encode("ok 🙂!")
    assert len(ids) > 3  # the emoji is unknown to this vocabulary: it is spelled in bytes
    stream = StreamDecoder(trained)
    pieces = [stream.push([i]) for i in ids]
    assert "".join(pieces) + stream.flush() == "ok 🙂!" and "\ufffd" not in "".join(pieces)


def test_token_dtype_widens_only_when_needed() -> None:
    assert data.token_dtype(65536) == np.dtype("<u2")
    assert data.token_dtype(65537) == np.dtype("<u4")


def test_documents_are_separated_by_endoftext(workdir: Path) -> None:
    folder = workdir / "docs"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.txt").write_text(make_text(n_lines=60, seed=i) + ENDOFTEXT)  # a literal one too
    out = corpus.prepare(PrepareConfig(text=(str(folder),), tokenizer="bpe", vocab_size=300))
    assert out.name == "docs-bpe300"
    prepared = data.load(out)
    ids = np.concatenate([prepared.train, prepared.val])
    assert int((ids == prepared.tokenizer.eot_id).sum()) == 2  # between the three documents only
    assert prepared.meta["tokenizer"] == {"type": "bpe", "encoding": "bpe", "vocab_size": 300}
    assert prepared.meta["bytes_per_token"] > 1.5 and prepared.meta["tokenizer_seconds"] >= 0


def test_pretrained_patterns_match_tiktoken(monkeypatch: pytest.MonkeyPatch) -> None:
    import tiktoken_ext.openai_public as openai_public

    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", lambda *a, **k: {})  # no download: only the spec
    monkeypatch.setattr(openai_public, "data_gym_to_mergeable_bpe_ranks", lambda *a, **k: {})
    for name, (pattern, special) in PRETRAINED.items():
        spec = getattr(openai_public, name)()
        assert (spec["pat_str"], spec["special_tokens"]) == (pattern, special), name


def test_offline_pretrained_error_names_both_ways_out(monkeypatch: pytest.MonkeyPatch) -> None:
    import tiktoken

    def offline(name):
        raise ConnectionError("Failed to resolve 'openaipublic.blob.core.windows.net'")

    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    with pytest.raises(TokenizerError) as err:
        pretrained("gpt2")
    message = str(err.value)
    assert "could not load the gpt2 encoding" in message
    assert "TIKTOKEN_CACHE_DIR" in message and "--tokenizer-file PATH" in message


def write_ranks_file(path: Path, text: str, merges: int = 40) -> Path:
    """A small .tiktoken ranks file: the 256 bytes, then merges learned on `text`."""
    vocab = bpe.train([text], merges).vocab
    path.write_text("\n".join(f"{base64.b64encode(tok).decode()} {rank}" for rank, tok in enumerate(vocab)))
    return path


def test_tokenizer_file_gives_a_pretrained_encoding_offline(corpus_file: Path, workdir: Path) -> None:
    ranks = write_ranks_file(workdir / "r50k_base.tiktoken", corpus_file.read_text())
    result = runner.invoke(
        app, ["prepare", "--text", str(corpus_file), "--tokenizer", "gpt2", "--tokenizer-file", str(ranks)]
    )
    assert result.exit_code == 0, result.output
    prepared = data.load(result.stdout.strip())
    assert prepared.tokenizer.vocab_size == 50257 and prepared.meta["dtype"] == "uint16"
    assert prepared.tokenizer.eot_id == 50256
    wide = corpus.prepare(
        PrepareConfig(text=(str(corpus_file),), tokenizer="cl100k_base", tokenizer_file=str(ranks), out="wide")
    )
    assert data.load(wide).meta["dtype"] == "uint32"  # cl100k's special tokens sit above 65535


def test_bad_ranks_file(workdir: Path) -> None:
    bad = workdir / "bad.tiktoken"
    bad.write_text("not base64 at all\n")
    with pytest.raises(TokenizerError, match="line 1: expected 'base64-token rank'"):
        pretrained("gpt2", bad)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--vocab-size", "200"], "vocab_size=200 is too small"),
        (["--vocab-size", "70000"], "vocab_size=70000 is too large"),
    ],
)
def test_vocab_size_bounds_are_usage_errors(corpus_file: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["prepare", "--text", str(corpus_file), "--tokenizer", "bpe", *args])
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output


def test_bpe_checkpoint_generates_after_its_sources_are_deleted(corpus_file: Path, workdir: Path) -> None:
    prep = runner.invoke(app, ["prepare", "--text", str(corpus_file), "--tokenizer", "bpe", "--vocab-size", "320"])
    assert prep.exit_code == 0, prep.output
    folder = Path(prep.stdout.strip())
    trained = runner.invoke(app, ["train", "--data", str(folder), *TINY_TRAIN])
    assert trained.exit_code == 0, trained.output
    ckpt = trained.stdout.strip()
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    corpus_file.unlink()
    result = runner.invoke(app, ["generate", ckpt, "--prompt", "KING: café", "-n", "30", "--seed", "3"])
    assert result.exit_code == 0, result.output
    # (an undertrained model may emit invalid byte sequences; those rightly show as U+FFFD)
    assert result.stdout.startswith("KING: café") and len(result.stdout) > len("KING: café\n")
    info = json.loads(runner.invoke(app, ["info", "--json", ckpt]).stdout)
    assert info["tokenizer"] == {"type": "bpe", "encoding": "bpe", "vocab_size": 320}
    assert info["bytes_per_token"] > 1
