"""Built-in corpora: a name -> where it comes from and its sha256.

A corpus is downloaded once into the data folder and verified; when a file with the
right checksum is already there, nothing is downloaded. The download goes to a
temporary file that is renamed only after the checksum matches, so a failed or
interrupted download never leaves a file that looks complete. A wrong checksum is
an error, never a warning.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from mygpt.config import DEFAULT_DATA_DIR
from mygpt.errors import DataError


@dataclass(frozen=True)
class Corpus:
    name: str
    filename: str
    url: str
    sha256: str


CORPORA: dict[str, Corpus] = {
    # Tiny Shakespeare: about 40,000 lines of Shakespeare's plays (char-rnn's corpus), 1,115,394 bytes.
    "shakespeare": Corpus(
        name="shakespeare",
        filename="tiny_shakespeare.txt",
        url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    ),
}

DEFAULT_CORPUS = "shakespeare"

Progress = Callable[[int, Optional[int]], None]


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def get_corpus(name: str) -> Corpus:
    if name not in CORPORA:
        raise DataError(
            f"unknown corpus {name!r}. Built-in corpora: {', '.join(CORPORA)}; "
            "for your own text use --text FILE or --text DIR."
        )
    return CORPORA[name]


def ensure(name: str, data_dir: str | Path = DEFAULT_DATA_DIR, on_progress: Progress | None = None) -> Path:
    """Return the path of the built-in corpus `name`, downloading and verifying it if needed."""
    corpus = get_corpus(name)
    path = Path(data_dir) / corpus.filename
    if path.exists():
        actual = sha256_file(path)
        if actual != corpus.sha256:
            raise DataError(
                f"{path} does not have the expected checksum (sha256 {actual}, expected {corpus.sha256}). "
                f"Delete it to download a fresh copy, or replace it with the original from {corpus.url}."
            )
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.download-{os.getpid()}")
    try:
        _download(corpus.url, tmp, on_progress)
        actual = sha256_file(tmp)
        if actual != corpus.sha256:
            raise DataError(
                f"the download of {corpus.name} from {corpus.url} has the wrong checksum "
                f"(sha256 {actual}, expected {corpus.sha256}); nothing was kept. Try again later."
            )
        os.replace(tmp, path)
    except OSError as exc:
        raise DataError(
            f"could not download the {corpus.name} corpus from {corpus.url} ({_reason(exc)}). "
            f"Without a network, put the file there by hand: save it as {path} "
            f"(sha256 {corpus.sha256}) and run the command again."
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _download(url: str, dest: Path, on_progress: Progress | None) -> None:
    with urllib.request.urlopen(url, timeout=30) as response, open(dest, "wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        done = 0
        for chunk in iter(lambda: response.read(1 << 16), b""):
            out.write(chunk)
            done += len(chunk)
            if on_progress:
                on_progress(done, total)


def _reason(exc: OSError) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return f"no connection: {exc.reason}"
    return str(exc)
