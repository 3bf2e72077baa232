import json
from pathlib import Path

import numpy as np
import pytest

from mygpt import corpus, data, datasets
from mygpt.errors import DataError
from mygpt.prepare_config import PrepareConfig


def prepare_text(*paths: Path, **kwargs) -> Path:
    return corpus.prepare(PrepareConfig(text=tuple(str(p) for p in paths), **kwargs))


def test_prepare_writes_token_files_tokenizer_and_meta(corpus_file: Path) -> None:
    out = prepare_text(corpus_file)
    assert out == Path("data/play-char")
    meta = json.loads((out / "meta.json").read_text())
    text = corpus_file.read_text()
    assert meta["tokens"]["train"] + meta["tokens"]["val"] == len(text)
    assert meta["tokenizer"] == {"type": "char", "vocab_size": len(set(text))}
    assert meta["dtype"] == "uint16" and meta["sources"][0]["path"] == str(corpus_file)
    prepared = data.load(out)
    decoded = prepared.tokenizer.decode(np.concatenate([prepared.train, prepared.val]).tolist())
    assert decoded == text  # contiguous split: train then val is the corpus again
    assert prepared.val.size == round(0.1 * len(text))
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_random_split_is_seeded_and_disjoint(corpus_file: Path) -> None:
    a = data.load(prepare_text(corpus_file, split="random", seed=1, out="a"))
    b = data.load(prepare_text(corpus_file, split="random", seed=1, out="b"))
    c = data.load(prepare_text(corpus_file, split="random", seed=2, out="c"))
    assert np.array_equal(a.val, b.val) and not np.array_equal(a.val, c.val)
    assert a.train.size + a.val.size == len(corpus_file.read_text())
    assert a.val.size == pytest.approx(0.1 * (a.train.size + a.val.size), rel=0.2)


def test_folder_of_txt_files_in_sorted_order(workdir: Path) -> None:
    folder = workdir / "books"
    folder.mkdir()
    (folder / "b.txt").write_text("second book\n")
    (folder / "a.txt").write_text("first book")  # no trailing newline: one is added between documents
    (folder / "notes.md").write_text("ignored")
    out = prepare_text(folder, val_fraction=0.2)
    prepared = data.load(out)
    assert out.name == "books-char"
    text = prepared.tokenizer.decode(np.concatenate([prepared.train, prepared.val]).tolist())
    assert text == "first book\nsecond book\n"


def test_preparing_again_replaces_the_folder(corpus_file: Path) -> None:
    out = prepare_text(corpus_file)
    corpus_file.write_text("a different corpus, much shorter\n")
    assert prepare_text(corpus_file) == out
    assert data.load(out).meta["tokens"]["train"] + data.load(out).meta["tokens"]["val"] == 33


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty or only whitespace"),
        (b" \n\t\n  ", "empty or only whitespace"),
        (b"caf\xe9 au lait", r"not UTF-8 text \(byte 0xe9 at offset 3"),
        (b"ab\x00cd", "NUL bytes"),
    ],
)
def test_unusable_corpus_is_refused_and_nothing_written(workdir: Path, content: bytes, message: str) -> None:
    bad = workdir / "bad.txt"
    bad.write_bytes(content)
    with pytest.raises(DataError, match=message):
        prepare_text(bad)
    assert not (workdir / "data").exists() or not any((workdir / "data").iterdir())


def test_missing_path_and_empty_folder(workdir: Path) -> None:
    with pytest.raises(DataError, match="no such file or folder: nope.txt"):
        prepare_text(Path("nope.txt"))
    (workdir / "empty").mkdir()
    with pytest.raises(DataError, match="has no .txt files"):
        prepare_text(workdir / "empty")


def test_refuses_to_overwrite_a_folder_that_is_not_prepared_data(corpus_file: Path, workdir: Path) -> None:
    (workdir / "precious").mkdir()
    (workdir / "precious" / "thesis.tex").write_text("do not delete")
    with pytest.raises(DataError, match="not a prepared data folder"):
        prepare_text(corpus_file, out="precious")
    assert (workdir / "precious" / "thesis.tex").exists()
    (workdir / "precious" / "meta.json").write_text("{}")  # a meta.json, but not one prepare wrote
    with pytest.raises(DataError, match="not a prepared data folder"):
        prepare_text(corpus_file, out="precious")
    assert (workdir / "precious" / "thesis.tex").exists()


def test_load_reports_incomplete_folders(corpus_file: Path) -> None:
    out = prepare_text(corpus_file)
    (out / "val.bin").write_bytes(b"\x00")
    with pytest.raises(DataError, match="val.bin is missing or has the wrong size"):
        data.load(out)
    with pytest.raises(DataError, match="no prepared data at elsewhere"):
        data.load("elsewhere")


def test_batches_are_seeded_windows_shifted_by_one() -> None:
    tokens = np.arange(100, dtype=np.uint16)
    x, y = data.BatchSampler(tokens, block_size=8, batch_size=4, seed=0).next()
    assert x.shape == y.shape == (4, 8) and x.dtype == np.int64
    np.testing.assert_array_equal(y, x + 1)  # consecutive tokens: y is x shifted
    np.testing.assert_array_equal(np.diff(x, axis=1), 1)
    again, _ = data.BatchSampler(tokens, block_size=8, batch_size=4, seed=0).next()
    np.testing.assert_array_equal(x, again)


def test_sampler_reaches_the_last_window_and_needs_block_plus_one_tokens() -> None:
    tokens = np.arange(10, dtype=np.uint16)
    x, y = data.BatchSampler(tokens, block_size=9, batch_size=2, seed=0).next()
    assert y[0, -1] == 9
    with pytest.raises(DataError, match="fewer than block_size \\+ 1 = 11"):
        data.BatchSampler(tokens, block_size=10, batch_size=2, seed=0)


def test_builtin_corpus_downloads_once_and_is_verified(offline_shakespeare: Path, workdir: Path) -> None:
    path = datasets.ensure("shakespeare", "data")
    assert path.read_bytes() == offline_shakespeare.read_bytes()
    offline_shakespeare.unlink()  # a second call must not download again
    assert datasets.ensure("shakespeare", "data") == path


def test_builtin_corpus_with_wrong_checksum_is_an_error(offline_shakespeare: Path, workdir: Path) -> None:
    offline_shakespeare.write_text("tampered")
    with pytest.raises(DataError, match="wrong checksum.*nothing was kept"):
        datasets.ensure("shakespeare", "data")
    assert not list((workdir / "data").iterdir())
    (workdir / "data" / "tiny_shakespeare.txt").write_text("not the real thing")
    with pytest.raises(DataError, match="does not have the expected checksum"):
        datasets.ensure("shakespeare", "data")


def test_offline_error_says_where_to_put_the_file(offline_shakespeare: Path, workdir: Path) -> None:
    offline_shakespeare.unlink()
    with pytest.raises(DataError, match=r"save it as data/tiny_shakespeare\.txt \(sha256 [0-9a-f]{64}\)"):
        datasets.ensure("shakespeare", "data")
    assert not list((workdir / "data").iterdir())  # no partial download left behind


def test_unknown_builtin_corpus(workdir: Path) -> None:
    with pytest.raises(DataError, match="unknown corpus 'wikipedia'.*--text"):
        corpus.prepare(PrepareConfig(corpus="wikipedia"))


def test_windows_read_from_the_file_equal_those_of_the_array(corpus_file: Path) -> None:
    prepared = data.load(prepare_text(corpus_file))
    from_file, in_memory = (data.BatchSampler(t, 16, 8, seed=3) for t in (prepared.train, np.array(prepared.train)))
    for _ in range(5):
        for a, b in zip(from_file.next(), in_memory.next(), strict=False):
            assert a.dtype == b.dtype == np.int64 and np.array_equal(a, b)
