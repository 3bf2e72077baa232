"""Preparing corpora of any size: formats, workers, pieces, the tokenizer sample, progress, Ctrl-C."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import regex
from conftest import make_text
from hypothesis import given, settings, strategies as st
from typer.testing import CliRunner

from mygpt import bpe, corpus, data, sources, tokenfiles
from mygpt.cli import app
from mygpt.errors import DataError
from mygpt.prepare_config import PrepareConfig
from mygpt.tokenizer import PRETRAINED
from mygpt.word_tokenizer import UNK, WORD_PATTERN, WordTokenizer

runner = CliRunner()
DOCS = [make_text(n_lines=30, seed=i) for i in range(5)] + ["", "ünïcödé ✓ text\r\nwith CRLF and no newline"]


def prepare(*text: str | Path, **kwargs) -> Path:
    return corpus.prepare(PrepareConfig(text=tuple(map(str, text)), **kwargs))


def folder_bytes(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in ("train.bin", "val.bin", "tokenizer.json")}


def write_txt(folder: Path, docs: list[str], suffix: str = ".txt") -> Path:
    folder.mkdir()
    for i, doc in enumerate(docs):
        raw = doc.encode("utf-8")
        if suffix.endswith(".gz"):
            raw = gzip.compress(raw)
        elif suffix.endswith(".zst"):
            import zstandard

            raw = zstandard.ZstdCompressor().compress(raw)
        (folder / f"doc{i:03d}{suffix}").write_bytes(raw)
    return folder


def write_jsonl(path: Path, docs: list[str], field: str = "text") -> Path:
    lines = "".join(json.dumps({"id": i, field: doc}) + "\n" for i, doc in enumerate(docs))
    raw = lines.encode("utf-8")
    if path.name.endswith(".gz"):
        raw = gzip.compress(raw)
    elif path.name.endswith(".zst"):
        import zstandard

        raw = zstandard.ZstdCompressor().compress(raw)
    path.write_bytes(raw)
    return path


def write_parquet(path: Path, docs: list[str], column: str = "text") -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": list(range(len(docs))), column: docs}), path, row_group_size=3)
    return path


@pytest.mark.parametrize(
    "tokenizer",
    [{"tokenizer": "char"}, {"tokenizer": "bpe", "vocab_size": 300}, {"tokenizer": "word", "vocab_size": 40}],
)
def test_every_format_gives_the_tokens_of_the_same_documents_as_txt(workdir: Path, tokenizer: dict) -> None:
    reference = folder_bytes(prepare(write_txt(workdir / "txt", DOCS), out="ref", **tokenizer))
    made = {
        "txt.gz": write_txt(workdir / "gz", DOCS, ".txt.gz"),
        "txt.zst": write_txt(workdir / "zst", DOCS, ".txt.zst"),
        "jsonl": write_jsonl(workdir / "d.jsonl", DOCS),
        "ndjson.gz": write_jsonl(workdir / "d.ndjson.gz", DOCS),
        "jsonl.zst": write_jsonl(workdir / "d.jsonl.zst", DOCS),
        "parquet": write_parquet(workdir / "d.parquet", DOCS),
    }
    for name, path in made.items():
        assert folder_bytes(prepare(path, out=f"out-{name}", **tokenizer)) == reference, name
    split_files = [write_jsonl(workdir / "a.jsonl", DOCS[:3]), write_parquet(workdir / "b.parquet", DOCS[3:])]
    assert folder_bytes(prepare(*split_files, out="mixed", **tokenizer)) == reference


def test_text_field_chooses_the_field_and_column(workdir: Path) -> None:
    reference = folder_bytes(prepare(write_jsonl(workdir / "a.jsonl", DOCS), out="ref"))
    assert (
        folder_bytes(prepare(write_jsonl(workdir / "b.jsonl", DOCS, "body"), text_field="body", out="b")) == reference
    )
    parquet = write_parquet(workdir / "c.parquet", DOCS, "content")
    assert folder_bytes(prepare(parquet, text_field="content", out="c")) == reference
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": pa.array(DOCS).dictionary_encode()}), workdir / "categorical.parquet")
    assert folder_bytes(prepare(workdir / "categorical.parquet", out="d")) == reference


@pytest.mark.parametrize(
    "tokenizer",
    [{"tokenizer": "char"}, {"tokenizer": "bpe", "vocab_size": 320}, {"tokenizer": "word", "vocab_size": 40}],
)
def test_workers_and_pieces_do_not_change_the_output(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, tokenizer: dict
) -> None:
    big = workdir / "big.txt"
    big.write_text("".join(make_text(n_lines=200, seed=s) for s in range(6)), encoding="utf-8")
    jsonl = write_jsonl(workdir / "d.jsonl", DOCS)
    whole = folder_bytes(prepare(big, jsonl, workers=1, out="whole", **tokenizer))
    # Small batches and pieces: the big file is cut into dozens of pieces, spread over two workers.
    monkeypatch.setattr(sources, "BATCH_BYTES", 20_000)
    monkeypatch.setattr(sources, "READ_BYTES", 7_000)
    assert folder_bytes(prepare(big, jsonl, workers=1, out="one", **tokenizer)) == whole
    assert folder_bytes(prepare(big, jsonl, workers=2, out="two", **tokenizer)) == whole


PATTERNS = {"mygpt": bpe.SPLIT_PATTERN, "word": WORD_PATTERN, **{name: p for name, (p, _) in PRETRAINED.items()}}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "Z", "9", " ", "  ", "\n", "\r\n", "\t", ".", "/", "'s", "é", "\u3000", "漢", "\u00a0", "!\n"]),
                min_size=2, max_size=40))  # fmt: skip
def test_pieces_are_cut_where_no_pattern_changes_its_chunks(parts: list[str]) -> None:
    text = "".join(parts)
    raw = text.encode("utf-8")
    cuts, end = [], len(raw)
    while (cut := sources.safe_cut(raw[:end])) > 0:
        cuts.append(cut)
        end = cut
    pieces = [raw[a:b].decode("utf-8") for a, b in zip([0] + cuts[::-1], cuts[::-1] + [len(raw)], strict=False)]
    for name, pattern in PATTERNS.items():
        compiled = regex.compile(pattern)
        assert [c for p in pieces for c in compiled.findall(p)] == compiled.findall(text), (name, pieces)


def test_the_tokenizer_sample_is_bounded_and_seeded(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "BATCH_BYTES", 5_000)
    folder = write_txt(workdir / "books", [make_text(n_lines=100, seed=s) for s in range(12)])
    size = sum(f.stat().st_size for f in folder.iterdir())
    runs = {name: prepare(folder, tokenizer="bpe", vocab_size=300, tokenizer_sample=20_000, seed=seed, out=name)
            for name, seed in (("a", 1), ("b", 1), ("c", 2))}  # fmt: skip
    sample = data.load(runs["a"]).meta["tokenizer_sample"]
    assert 20_000 <= sample["bytes"] < 20_000 + 3 * 5_000 < size and sample["limit"] == 20_000
    assert folder_bytes(runs["a"]) == folder_bytes(runs["b"])
    assert (runs["a"] / "tokenizer.json").read_bytes() != (runs["c"] / "tokenizer.json").read_bytes()
    everything = data.load(prepare(folder, tokenizer="bpe", vocab_size=300, out="all")).meta["tokenizer_sample"]
    assert everything["bytes"] == size  # a corpus smaller than the sample is all sampled


def test_the_sample_depends_on_the_documents_not_their_files(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "READ_BYTES", 2_000)  # the last document is sampled in pieces
    docs = [make_text(n_lines=20, seed=s) for s in range(8)] + [make_text(n_lines=200, seed=9)]
    options = {"tokenizer": "bpe", "vocab_size": 300, "tokenizer_sample": 6_000, "workers": 1}
    reference = prepare(write_txt(workdir / "txt", docs), out="ref", **options)
    assert 6_000 <= data.load(reference).meta["tokenizer_sample"]["bytes"] < 0.7 * sum(len(d) for d in docs)
    shuffled = [write_txt(workdir / "other", docs[:4]), write_jsonl(workdir / "b.jsonl.gz", docs[4:8]),
                write_parquet(workdir / "c.parquet", docs[8:])]  # fmt: skip
    assert folder_bytes(prepare(*shuffled, out="mixed", **options)) == folder_bytes(reference)
    reordered = prepare(write_jsonl(workdir / "r.jsonl", docs[::-1]), out="reordered", **options)
    assert (reordered / "tokenizer.json").read_bytes() == (reference / "tokenizer.json").read_bytes()


def as_words(text: str, tokenizer: WordTokenizer) -> str:
    """`text` as the word tokenizer gives it back: unknown pieces as <unk>, whitespace kept."""
    return "".join(p if p in tokenizer.stoi or p.isspace() else UNK for p in regex.findall(WORD_PATTERN, text))


def test_word_tokenizer_prepares_the_corpus_back(workdir: Path) -> None:
    folder = write_txt(workdir / "books", DOCS)
    out = prepare(folder, tokenizer="word")
    assert out.name == "books-word8000"
    full = data.load(out)
    assert full.meta["tokenizer"]["type"] == "word" and "too few distinct pieces" in full.meta["note"]
    assert full.tokenizer.decode([*full.train, *full.val]) == "<|endoftext|>".join(DOCS)  # every piece known
    small = data.load(prepare(folder, tokenizer="word", vocab_size=32, out="small"))
    assert small.tokenizer.vocab_size == 32 and "note" not in small.meta
    text = small.tokenizer.decode([*small.train, *small.val])
    assert text == "<|endoftext|>".join(as_words(doc, small.tokenizer) for doc in DOCS)
    assert UNK in text and "ünïcödé" not in text and text.count("\n") == "".join(DOCS).count("\n")


def test_word_tokenizer_counts_only_the_sample(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "BATCH_BYTES", 2_000)
    docs = [f"document{i} " + make_text(n_lines=10, seed=i) for i in range(12)]
    folder = write_txt(workdir / "books", docs)
    options = {"tokenizer": "word", "tokenizer_sample": 1_500, "workers": 1}
    runs = [data.load(prepare(folder, seed=seed, out=f"s{seed}", **options)) for seed in (1, 1, 2)]
    assert 1_500 <= runs[0].meta["tokenizer_sample"]["bytes"] < 0.7 * sum(map(len, docs))
    known = [{w for w in run.tokenizer.pieces if w.startswith("document")} for run in runs]
    assert 0 < len(known[0]) < len(docs) and known[0] == known[1] != known[2]  # seeded: words of sampled docs only
    assert UNK in runs[0].tokenizer.decode(runs[0].train)  # the other documents' names


@pytest.mark.parametrize(
    "options, message",
    [
        ({"tokenizer": "word", "vocab_size": 31}, "vocab_size=31 is too small for --tokenizer word"),
        ({"tokenizer": "word", "vocab_size": 65537}, "vocab_size=65537 is too large for --tokenizer word"),
        ({"tokenizer": "char", "vocab_size": 100}, "--vocab-size is for --tokenizer bpe or word"),
        ({"tokenizer": "char", "tokenizer_sample": 100}, "--tokenizer-sample is for --tokenizer bpe or word"),
    ],
)
def test_word_vocab_size_bounds(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=regex.escape(message)):
        PrepareConfig(**options)
    assert PrepareConfig(tokenizer="word", vocab_size=65536, tokenizer_sample=100).trained_vocab_size == 65536


def test_a_word_model_trains_and_generates_from_its_checkpoint_alone(workdir: Path) -> None:
    import torch

    from mygpt import checkpoint, sampling, training
    from mygpt.config import SampleConfig, TrainConfig
    from mygpt.configure import build

    (workdir / "play.txt").write_text(make_text(n_lines=60), encoding="utf-8")
    out = prepare("play.txt", tokenizer="word", vocab_size=40)
    flags = {"data": str(out), "model.n_embd": 16, "model.block_size": 16, "device": "cpu", "max_iters": 2,
             "eval_interval": 2, "eval_iters": 1}  # fmt: skip
    finished = list(training.train(build(TrainConfig, preset="tiny", flags=flags)))[-1]
    for f in out.iterdir():
        f.unlink()
    loaded = checkpoint.load(finished.path, device="cpu")
    assert isinstance(loaded.tokenizer, WordTokenizer) and loaded.tokenizer.vocab_size == 40
    start = sampling.prompt_ids(loaded.tokenizer, "KING: zounds")
    assert start[-1] == loaded.tokenizer.unk_id
    steps = sampling.generate(loaded.model, start, SampleConfig(max_new_tokens=8), seed=0, device=torch.device("cpu"))
    ids = [int(step[0]) for step in steps]
    assert len(ids) == 8 and all(0 <= i < 40 for i in ids)
    assert isinstance(loaded.tokenizer.decode(ids), str)


def test_random_split_is_the_same_done_a_block_at_a_time(corpus_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = folder_bytes(prepare(corpus_file, split="random", out="whole"))
    monkeypatch.setattr(tokenfiles, "BLOCK_TOKENS", 1000)
    assert folder_bytes(prepare(corpus_file, split="random", out="blocks")) == whole
    assert folder_bytes(prepare(corpus_file, out="contiguous")) != whole


def test_folders_globs_and_names(workdir: Path) -> None:
    (workdir / "lib" / "deep").mkdir(parents=True)
    (workdir / "lib" / "a.txt").write_text("top level\n")
    (workdir / "lib" / "deep" / "b.txt").write_text("one level down\n")
    (workdir / "lib" / "notes.md").write_text("not a corpus file\n")
    as_text = lambda out: data.load(out).tokenizer.decode([*data.load(out).train, *data.load(out).val])  # noqa: E731
    assert as_text(prepare("lib", val_fraction=0.3)) == "top level\n"  # a folder does not recurse
    out = prepare("lib/**/*.txt", val_fraction=0.3)
    assert out.name == "lib-char" and as_text(out) == "top level\none level down\n"  # sorted paths, ** recurses
    assert prepare(write_jsonl(workdir / "dump.jsonl.gz", DOCS)).name == "dump-char"
    (workdir / "lib" / ".hidden.txt").write_text("a hidden file\n")
    (workdir / "lib" / "Book [v2].txt").write_text("brackets\n")  # a real file, not a pattern
    twice = prepare(
        "lib/a.txt", str(workdir / "lib" / "a.txt"), "lib/Book [v2].txt", "lib", out="twice", val_fraction=0.3
    )
    assert as_text(twice) == "top level\nbrackets\n"  # each file once, in the order first named


def test_progress_reports_bytes_of_the_total_documents_and_tokens(workdir: Path) -> None:
    folder = write_txt(workdir / "books", DOCS)
    events = []
    corpus.prepare(PrepareConfig(text=(str(folder),)), events.append)
    tokenizing = [e for e in events if e.phase == "tokenizing"]
    total = sum(f.stat().st_size for f in folder.iterdir())
    assert tokenizing[0].done == 0 and tokenizing[-1].done == tokenizing[-1].total == total
    assert tokenizing[-1].documents == len(DOCS) and tokenizing[-1].tokens > 0
    assert [e.phase for e in events if e.phase != "tokenizing"][:1] == ["reading characters"]


@pytest.mark.parametrize("phase", ["reading characters", "tokenizing", "splitting"])
def test_an_interrupted_prepare_leaves_nothing(workdir: Path, monkeypatch: pytest.MonkeyPatch, phase: str) -> None:
    monkeypatch.setattr(sources, "BATCH_BYTES", 2_000)
    folder = write_txt(workdir / "books", [make_text(n_lines=60, seed=s) for s in range(5)])

    def interrupt(event) -> None:
        if event.phase == phase and (event.done or phase == "splitting"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        corpus.prepare(PrepareConfig(text=(str(folder),), workers=2), interrupt)
    assert not (workdir / "data").exists() or not any((workdir / "data").iterdir())


def _corrupt_gz(path: Path) -> None:
    path.write_bytes(gzip.compress(b"some text\n" * 1000)[:-30])  # truncated


def _corrupt_zst(path: Path) -> None:
    import zstandard

    raw = bytearray(zstandard.ZstdCompressor().compress(b"some text\n" * 1000))
    raw[len(raw) // 2 :] = b"\x00" * (len(raw) - len(raw) // 2)  # damaged in the middle
    path.write_bytes(bytes(raw))


def _zst_cut(path: Path, drop: int) -> None:
    import zstandard

    raw = zstandard.ZstdCompressor().compress(b"some text\n" * 1000)
    path.write_bytes(raw[:-drop])


BAD_INPUTS = {
    "bad JSON": ("d.jsonl", lambda p: p.write_text('{"text": "fine"}\n{"text": oops}\n'), "d.jsonl, line 2: not valid JSON"),
    "no field": ("d.jsonl", lambda p: p.write_text('{"title": "a", "body": "b"}\n'),
                 "d.jsonl, line 1: the record has no 'text' field (its fields: title, body)"),
    "not a string": ("d.jsonl", lambda p: p.write_text('{"text": "ok"}\n\n{"text": 42}\n'), "d.jsonl, line 3: 'text' is a number, not a string"),
    "not an object": ("d.jsonl", lambda p: p.write_text('["a list"]\n'), "line 1: expected a JSON object with a 'text' field, got a list"),
    "null row": ("d.parquet", lambda p: write_parquet(p, ["fine", None]), "d.parquet, row 2: 'text' is null, not a string"),
    "no column": ("d.parquet", lambda p: write_parquet(p, ["a"], column="body"), "d.parquet has no column 'text' (its columns: id, body)"),
    "not parquet": ("d.parquet", lambda p: p.write_bytes(b"PAR1 this is not parquet"), "d.parquet is not a readable parquet file"),
    "corrupt gz": ("d.txt.gz", _corrupt_gz, "d.txt.gz is not a readable .gz file"),
    "corrupt zst": ("d.jsonl.zst", _corrupt_zst, "d.jsonl.zst is not a readable .zst file"),
    "extension": ("d.docx", lambda p: p.write_text("text"), "d.docx: unsupported file type. Supported: .txt, .jsonl"),
    "no documents": ("d.jsonl", lambda p: p.write_text("\n\n"), "the corpus has no documents"),
    "not UTF-8": ("d.jsonl", lambda p: p.write_bytes(b'{"text": "caf\xe9"}\n'), "d.jsonl, line 1: not valid JSON (not UTF-8)"),
    "surrogate": ("d.jsonl", lambda p: p.write_text('{"text": "a\\ud800b"}\n'), "d.jsonl, line 1: 'text' holds '\\ud800' at character 1, a lone surrogate"),
    "too deep": ("d.jsonl", lambda p: p.write_text('{"text": "x", "y": ' + "[" * 5000 + "]" * 5000 + "}\n"), "line 1: not valid JSON (nested too deeply)"),
    "markup": ("d.jsonl", lambda p: p.write_text('{"[/]": 1}\n'), "the record has no 'text' field (its fields: [/])"),
    "truncated zst": ("d.txt.zst", lambda p: _zst_cut(p, 1), "d.txt.zst is not a readable .zst file: it is damaged or truncated"),
    "fifo": ("fifo.txt", lambda p: os.mkfifo(p), "fifo.txt is a FIFO (a named pipe), not a regular file"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_is_one_clear_error_and_nothing_written(workdir: Path, case: str) -> None:
    name, make, message = BAD_INPUTS[case]
    make(workdir / name)
    result = runner.invoke(app, ["prepare", "--text", name])
    assert result.exit_code == 1, result.output
    assert message in " ".join(result.stderr.split()), result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    assert not (workdir / "data").exists() or not any((workdir / "data").iterdir())


def test_a_glob_that_matches_nothing(workdir: Path) -> None:
    (workdir / "notes.md").write_text("x")
    result = runner.invoke(app, ["prepare", "--text", "*.txt"])
    assert result.exit_code == 1 and "the pattern '*.txt' matches no supported files" in result.stderr
    result = runner.invoke(app, ["prepare", "--text", "*.md"])
    assert "matches no supported files (it matches 1 files of other types)" in result.stderr


def test_skip_bad_records_counts_them_and_goes_on(workdir: Path) -> None:
    Path("d.jsonl").write_text(
        '{"text": "good one\\n"}\nnot json\n{"body": "x"}\n{"text": "good two\\n"}\n{"text": null}\n'
    )
    result = runner.invoke(app, ["prepare", "--text", "d.jsonl", "--skip-bad-records", "--val-fraction", "0.2"])
    assert result.exit_code == 0, result.output
    meta = data.load(result.stdout.strip()).meta
    assert meta["skipped_records"] == 3 and meta["documents"] == 2
    assert "skipped 3 bad records" in result.stderr and "d.jsonl, line 2: not valid JSON" in result.stderr


def test_progress_lines_when_stderr_is_not_a_terminal(corpus_file: Path) -> None:
    result = runner.invoke(app, ["prepare", "--text", str(corpus_file)])
    assert result.exit_code == 0
    size = corpus_file.stat().st_size / 1e3
    assert f"reading characters: 0 B of {size:.1f} KB (0%)" in result.stderr
    assert f"tokenizing: 0 B of {size:.1f} KB (0%)" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("sig, code, said", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_ctrl_c_or_kill_during_prepare_leaves_nothing(workdir: Path, sig: int, code: int, said: str) -> None:
    import zstandard

    # 23 MB of text in 5 zstd frames of the same 4.6 MB: ~4 s of work after the first phase
    # starts, so the signal lands mid-run even on a loaded machine (4.6 MB of plain text left
    # 0.9 s, and the run once finished first). Under 2 BATCH_BYTES on disk, it is prepared in
    # the one process, as the plain file was: --workers starts processes only for more.
    frame = zstandard.ZstdCompressor().compress((make_text(n_lines=2000) * 60).encode("utf-8"))
    big = workdir / "big.txt.zst"
    big.write_bytes(frame * 5)
    command = [sys.executable, "-m", "mygpt", "prepare", "--text", str(big), "--tokenizer", "bpe", "--workers", "2"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stderr is not None
    for line in process.stderr:  # plain progress lines: stderr is a pipe
        if line.startswith("sampling"):  # the first phase (then counting, training, tokenizing) has started
            break
    process.send_signal(sig)
    _, rest = process.communicate(timeout=60)
    assert process.returncode == code, rest
    assert said in rest and "Traceback" not in rest
    assert not (workdir / "data").exists() or not any((workdir / "data").iterdir())


def test_a_hugging_face_dataset_saved_to_disk(workdir: Path) -> None:
    import datasets

    reference = folder_bytes(prepare(write_txt(workdir / "txt", DOCS), out="ref"))
    datasets.Dataset.from_dict({"id": list(range(len(DOCS))), "text": DOCS}).save_to_disk(str(workdir / "hf"))
    out = corpus.prepare(PrepareConfig(hf_dataset=str(workdir / "hf")))
    assert out.name == "hf-char" and folder_bytes(out) == reference
    splits = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"body": ["x"]}),
                                   "validation": datasets.Dataset.from_dict({"body": DOCS})})  # fmt: skip
    splits.save_to_disk(str(workdir / "splits"))
    chosen = corpus.prepare(PrepareConfig(hf_dataset=f"{workdir / 'splits'}:validation", text_field="body", out="v"))
    assert folder_bytes(chosen) == reference
    for spec, field, message in [(f"{workdir / 'splits'}:test", "body", "has no split 'test' (it has: train, validation)"),
                                 (str(workdir / "hf"), "body", "has no column 'body' (its columns: id, text)"),
                                 (str(workdir / "txt"), "text", "could not load the Hugging Face dataset")]:  # fmt: skip
        result = runner.invoke(app, ["prepare", "--hf-dataset", spec, "--text-field", field])
        assert result.exit_code == 1 and message in " ".join(result.stderr.split()), result.stderr


def test_hugging_face_mistakes_are_one_message(workdir: Path) -> None:
    import datasets

    datasets.Dataset.from_dict({"text": DOCS, "tags": [["a"]] * len(DOCS)}).save_to_disk(str(workdir / "hf"))
    for spec, field, message in [(f"{workdir / 'hf'}:test", "text", "has no splits: it is one dataset. Drop ':test'"),
                                 (str(workdir / "hf"), "tags", "column 'tags' holds"),
                                 ("nobody/nothing-here", "text", "could not load the Hugging Face dataset 'nobody/nothing-here'")]:  # fmt: skip
        result = runner.invoke(app, ["prepare", "--hf-dataset", spec, "--text-field", field])
        assert result.exit_code == 1 and message in " ".join(result.stderr.split()), result.stderr
        assert "Traceback" not in result.output


def test_a_bad_record_found_by_a_worker_process_is_the_same_message(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "BATCH_BYTES", 2_000)
    lines = [json.dumps({"text": make_text(n_lines=5, seed=i)}) for i in range(40)]
    lines[30] = '{"text": oops}'
    (workdir / "d.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"d.jsonl, line 31: not valid JSON \(Expecting value at column 10\)"):
        prepare(workdir / "d.jsonl", workers=2)
    assert not (workdir / "data").exists() or not any((workdir / "data").iterdir())
