"""Tokenizers: text <-> token ids, and a JSON form that travels inside checkpoints.

Every tokenizer satisfies the `Tokenizer` protocol. Its JSON description (`to_dict`)
is stored in `tokenizer.json` beside the token files and in each checkpoint's metadata,
so a checkpoint alone is enough to generate text, offline. `from_dict` rebuilds any of them.

- `CharTokenizer` maps each distinct character of the corpus to an id, in sorted order,
  so the same corpus always gives the same vocabulary.
- `BPETokenizer` is byte-level BPE encoded and decoded by tiktoken: either trained here
  (mygpt/bpe.py) or one of tiktoken's pretrained encodings (gpt2, cl100k_base, ...).
  Its ranks, pattern and special tokens are stored in full, never left to tiktoken's
  download cache. Text is encoded as ordinary text: a literal "<|endoftext|>" in a
  corpus is just characters; the special token only separates documents.
- `WordTokenizer` (mygpt/word_tokenizer.py) splits text with one regex into words, single
  punctuation marks and whitespace runs, and keeps the most frequent of them; any other
  piece is <unk>.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional, Protocol, Sequence

from mygpt.errors import TokenizerError
from mygpt.files import describe_os_error, require_regular

if TYPE_CHECKING:
    from mygpt.bpe import BPEResult

ENDOFTEXT = "<|endoftext|>"

# The pre-split pattern and special tokens of tiktoken's pretrained encodings, so that a
# local ranks file (--tokenizer-file) is enough to rebuild one offline. A test checks
# these against tiktoken's own definitions.
_R50K_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
PRETRAINED: dict[str, tuple[str, dict[str, int]]] = {
    "gpt2": (_R50K_PATTERN, {ENDOFTEXT: 50256}),
    "r50k_base": (_R50K_PATTERN, {ENDOFTEXT: 50256}),
    "p50k_base": (_R50K_PATTERN, {ENDOFTEXT: 50256}),
    "cl100k_base": (
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
        {ENDOFTEXT: 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259, "<|fim_suffix|>": 100260,
         "<|endofprompt|>": 100276},
    ),
    "o200k_base": (
        "|".join([
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""", r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""", r"""\s*[\r\n]+""", r"""\s+(?!\S)""", r"""\s+""",
        ]),
        {ENDOFTEXT: 199999, "<|endofprompt|>": 200018},
    ),
}  # fmt: skip


class Tokenizer(Protocol):
    name: str  # "char", "word", "bpe" (trained here) or a pretrained encoding's name

    @property
    def eot_id(self) -> Optional[int]:
        """The document separator's id, if the tokenizer has one."""

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode_bytes(self, ids: Sequence[int]) -> bytes: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


class CharTokenizer:
    """One token per Unicode character seen in the corpus."""

    name = "char"
    eot_id = None

    def __init__(self, chars: Sequence[str]):
        if len(set(chars)) != len(chars) or any(len(c) != 1 for c in chars):
            raise TokenizerError("a char vocabulary must be a list of distinct single characters.")
        self.chars = list(chars)
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def train(cls, text: str) -> CharTokenizer:
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[c] for c in text]
        except KeyError:
            missing = sorted({c for c in text if c not in self.stoi})
            shown = ", ".join(repr(c) for c in missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise TokenizerError(
                f"the text has {len(missing)} character(s) this model's vocabulary lacks: {shown}. "
                "A char model knows only the characters of its training corpus."
            ) from None

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.chars[i] for i in ids)

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        return self.decode(ids).encode("utf-8")

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.name, "vocab_size": self.vocab_size, "chars": "".join(self.chars)}


class BPETokenizer:
    """Byte-level BPE through a `tiktoken.Encoding`: trained here, or a pretrained encoding."""

    def __init__(self, name: str, pattern: str, ranks: dict[bytes, int], special_tokens: dict[str, int]):
        import tiktoken  # imported here so that `mygpt info` stays fast

        self.name = name
        self.pattern = pattern
        self.ranks = ranks
        self.special_tokens = dict(special_tokens)
        _check_ranks(name, ranks, self.special_tokens)  # tiktoken would panic (a BaseException) on these
        try:
            self.encoding = tiktoken.Encoding(
                name=f"mygpt-{name}", pat_str=pattern, mergeable_ranks=ranks, special_tokens=self.special_tokens
            )
        except (ValueError, OverflowError, TypeError) as exc:
            raise TokenizerError(f"the {name} tokenizer's ranks and pattern are not usable: {exc}") from None
        # tiktoken drops text its pattern does not match, and gives up on runs that make the
        # pattern backtrack too far: either would lose text silently, so try both once.
        if self.decode_bytes(self.encode(_PROBE)) != _PROBE.encode("utf-8"):
            raise TokenizerError(
                f"the {name} tokenizer's pattern loses text (it does not match all of it, or backtracks "
                "too far on a long run): its description is damaged."
            )

    @classmethod
    def from_merges(cls, result: BPEResult) -> BPETokenizer:
        """The tokenizer for merges trained by mygpt.bpe; <|endoftext|> takes the next id."""
        ranks: dict[bytes, int] = {}
        for token_id, token in enumerate(result.vocab):
            # Two merges can spell the same bytes ((a, bc) and (ab, c)); the first keeps them.
            ranks.setdefault(token, token_id)
        return cls("bpe", result.pattern, ranks, {ENDOFTEXT: len(result.vocab)})

    @property
    def vocab_size(self) -> int:
        return self.encoding.n_vocab

    @property
    def eot_id(self) -> Optional[int]:
        return self.special_tokens.get(ENDOFTEXT)

    def encode(self, text: str) -> list[int]:
        with _panics_as_errors(self.name):
            return self.encoding.encode_ordinary(text)

    def encode_documents(self, docs: Sequence[str]) -> list[list[int]]:
        with _panics_as_errors(self.name):
            return self.encoding.encode_ordinary_batch(list(docs))

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        """The bytes of ids; an id below vocab_size that no token has (a pretrained encoding
        rebuilt from a smaller ranks file leaves such gaps) decodes to nothing."""
        try:
            return self.encoding.decode_bytes(list(ids))
        except KeyError:  # tiktoken's "Invalid token for decoding"
            return b"".join(self._token_bytes(i) for i in ids)

    def _token_bytes(self, token_id: int) -> bytes:
        try:
            return self.encoding.decode_single_token_bytes(token_id)
        except KeyError:
            return b""

    def decode(self, ids: Sequence[int]) -> str:
        """Text of whole ids; a character split across ids decodes as U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "bpe",
            "encoding": self.name,
            "vocab_size": self.vocab_size,
            "pattern": self.pattern,
            "special_tokens": self.special_tokens,
            "ranks": format_ranks(self.ranks),
        }


def pretrained(name: str, ranks_file: str | Path | None = None) -> BPETokenizer:
    """One of tiktoken's pretrained encodings; from a local .tiktoken ranks file if given."""
    if name not in PRETRAINED:
        raise TokenizerError(f"unknown pretrained encoding {name!r}. Choose from: {', '.join(PRETRAINED)}.")
    pattern, special = PRETRAINED[name]
    if ranks_file is not None:
        path = require_regular(ranks_file, "ranks file", TokenizerError)  # /dev/zero would never end
        try:
            text = path.read_text(encoding="ascii")
        except OSError as exc:
            raise TokenizerError(f"cannot read the ranks file {path}: {describe_os_error(exc, path)}.") from None
        except UnicodeDecodeError as exc:
            raise TokenizerError(f"cannot read the ranks file {path}: {exc}") from None
        return BPETokenizer(name, pattern, parse_ranks(text, str(path)), special)
    import tiktoken

    try:
        encoding = tiktoken.get_encoding(name)
    except Exception as exc:  # requests/urllib/blobfile errors all mean: not downloadable here
        raise TokenizerError(
            f"could not load the {name} encoding: tiktoken downloads it on first use, and that failed "
            f"({type(exc).__name__}). Two ways out: point the TIKTOKEN_CACHE_DIR environment variable "
            f"at a folder holding tiktoken's cached copy of {name}, or pass --tokenizer-file PATH with a local "
            f"{name}.tiktoken ranks file (gpt2 uses r50k_base's ranks)."
        ) from None
    return BPETokenizer(name, pattern, encoding._mergeable_ranks, special)


_PROBE = (
    "The quick brown fox, 1234 \u2014 na\u00efve caf\u00e9 \u65e5\u672c\u8a9e!\n\t  x"
    + "a" * 12_000
    + " "
    + "word " * 2_500
)


def _check_ranks(name: str, ranks: dict[bytes, int], special_tokens: dict[str, int]) -> None:
    """What tiktoken needs of a byte-level BPE, checked before it panics: every single byte
    a token, each rank an id in range and used once, special ids apart from the ranks."""
    bad = next((r for r in ranks.values() if not isinstance(r, int) or isinstance(r, bool) or not 0 <= r < 2**31), None)
    if bad is not None:
        raise TokenizerError(f"the {name} tokenizer has a rank out of range ({bad!r}): its description is damaged.")
    if len(set(ranks.values())) != len(ranks):
        raise TokenizerError(f"the {name} tokenizer gives two tokens the same rank: its description is damaged.")
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise TokenizerError(
            f"the {name} tokenizer lacks the single byte {missing[0]:#04x}: it cannot encode all text."
        )
    ids = list(special_tokens.values())
    if len(set(ids)) != len(ids) or set(ids) & set(ranks.values()):
        raise TokenizerError(f"the {name} tokenizer's special tokens reuse an id: its description is damaged.")


@contextlib.contextmanager
def _panics_as_errors(name: str) -> Iterator[None]:
    """tiktoken's Rust panics arrive as a BaseException (pyo3's PanicException): one clear error instead."""
    try:
        yield
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":
            raise
        raise TokenizerError(
            f"the {name} tokenizer failed on this text ({exc}): its pattern or ranks are unusable."
        ) from None


def format_ranks(ranks: dict[bytes, int]) -> str:
    """Ranks in tiktoken's .tiktoken format: one "base64-token rank" line per token."""
    return "\n".join(f"{base64.b64encode(token).decode()} {rank}" for token, rank in ranks.items())


def parse_ranks(text: str, source: str) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except (ValueError, binascii.Error):
            raise TokenizerError(f"{source}, line {lineno}: expected 'base64-token rank', got {line[:60]!r}.") from None
    if not ranks:
        raise TokenizerError(f"{source} holds no ranks.")
    return ranks


def from_dict(d: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from its `to_dict()` form."""
    kind = d.get("type") if isinstance(d, dict) else None
    if kind == "char" and isinstance(d.get("chars"), str):
        return CharTokenizer(list(d["chars"]))
    if kind == "bpe":
        try:
            return BPETokenizer(d["encoding"], d["pattern"], parse_ranks(d["ranks"], "tokenizer"), d["special_tokens"])
        except (KeyError, TypeError):
            pass
    if kind == "word" and isinstance(d.get("pieces"), list) and isinstance(d.get("pattern"), str):
        from mygpt.word_tokenizer import WordTokenizer  # it imports this module

        return WordTokenizer(d["pieces"], d["pattern"])
    raise TokenizerError(f"unknown or damaged tokenizer description (type {kind!r}).")


class StreamDecoder:
    """Turns a stream of token ids into text, emitting only complete UTF-8 characters.

    A multi-byte character can be split across tokens (byte-level tokenizers do this);
    its bytes are held back until the character is complete, so a streamed output
    never shows a replacement character mid-stream.
    """

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, ids: Sequence[int]) -> str:
        return self._utf8.decode(self.tokenizer.decode_bytes(ids))

    def flush(self) -> str:
        return self._utf8.decode(b"", final=True)
