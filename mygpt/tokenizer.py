"""Tokenizers: text <-> token ids, and a JSON form that travels inside checkpoints.

Every tokenizer satisfies the `Tokenizer` protocol. Its JSON description (`to_dict`)
is stored in `tokenizer.json` beside the token files and in each checkpoint's metadata,
so a checkpoint alone is enough to generate text. `from_dict` rebuilds any of them.

`CharTokenizer` maps each distinct character of the corpus to an id, in sorted order,
so the same corpus always gives the same vocabulary.
"""

from __future__ import annotations

import codecs
from typing import Any, Protocol, Sequence

from mygpt.errors import TokenizerError


class Tokenizer(Protocol):
    name: str

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode_bytes(self, ids: Sequence[int]) -> bytes: ...

    def to_dict(self) -> dict[str, Any]: ...


class CharTokenizer:
    """One token per Unicode character seen in the corpus."""

    name = "char"

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


def from_dict(d: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from its `to_dict()` form."""
    kind = d.get("type") if isinstance(d, dict) else None
    if kind == "char" and isinstance(d.get("chars"), str):
        return CharTokenizer(list(d["chars"]))
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
