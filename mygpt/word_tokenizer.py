"""The word-level tokenizer (picoGPT's fallback): words, single punctuation marks and
whitespace runs, split by one regex; the most frequent of them make the vocabulary and
any other piece is one <unk> token. Its JSON form is rebuilt by `tokenizer.from_dict`.
"""

from __future__ import annotations

import heapq
from collections import Counter
from typing import Any, Mapping, Sequence

from mygpt.errors import TokenizerError
from mygpt.tokenizer import ENDOFTEXT

UNK = "<unk>"
# A word (letters, digits, marks, underscores), one other non-space character, or a run of
# whitespace: every character falls in exactly one, so the pieces join back into the text.
WORD_PATTERN = r"\w+|[^\w\s]|\s+"


class WordTokenizer:
    """One token per word, punctuation mark or whitespace run of the vocabulary.

    Ids: 0 is <unk>, 1 is <|endoftext|> (the document separator), then the pieces, most
    frequent first. A piece the vocabulary lacks is one <unk>, which decodes to the text
    "<unk>", except whitespace: every whitespace character of the corpus is kept in the
    vocabulary, and a run the vocabulary lacks is spelled one character at a time, so line
    breaks and indentation always survive a round trip. Other single characters are not
    reserved: the common ones get in by frequency, and reserving every character of a
    Unicode-rich corpus would fill a word vocabulary with rare symbols.
    """

    name = "word"
    unk_id = 0
    eot_id = 1
    SPECIALS = (UNK, ENDOFTEXT)

    def __init__(self, pieces: Sequence[str], pattern: str = WORD_PATTERN):
        import regex  # imported here so that `mygpt info` stays fast

        if any(not isinstance(p, str) or not p for p in pieces) or len(set(pieces)) != len(pieces):
            raise TokenizerError("a word vocabulary must be a list of distinct, non-empty strings.")
        try:
            self._split = regex.compile(pattern).findall
        except regex.error as exc:
            raise TokenizerError(f"the word tokenizer's pattern is not usable: {exc}") from None
        self._space = regex.compile(r"\s+").fullmatch
        self.pattern = pattern
        self.pieces = list(pieces)
        self.tokens = [*self.SPECIALS, *self.pieces]  # id -> text
        self.stoi = {p: i for i, p in enumerate(self.tokens) if i >= len(self.SPECIALS)}

    @classmethod
    def train(cls, text: str, vocab_size: int) -> WordTokenizer:
        """The vocabulary of one text (the corpus pipeline counts pieces and uses `from_counts`)."""
        import regex

        return cls.from_counts(Counter(regex.findall(WORD_PATTERN, text)), vocab_size)

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], vocab_size: int) -> WordTokenizer:
        """The `vocab_size - 2` most frequent pieces of `counts` (pieces of WORD_PATTERN),
        every whitespace character among them; ties go to the smaller string. Fewer when
        the corpus has fewer distinct pieces."""
        import regex

        room = vocab_size - len(cls.SPECIALS)
        if room < 0:
            raise TokenizerError(f"a word vocabulary of {vocab_size} tokens has no room for <unk> and <|endoftext|>.")
        space = regex.compile(r"\s+").fullmatch
        space_chars: Counter[str] = Counter()
        for piece, n in counts.items():
            if space(piece):
                for char in piece:
                    space_chars[char] += n
        chosen = {c for c, _ in sorted(space_chars.items(), key=_by_count)[:room]}
        for piece, _ in heapq.nsmallest(room, counts.items(), key=_by_count):  # O(D log V), not a sort of all D
            if len(chosen) >= room:
                break
            chosen.add(piece)
        return cls(sorted(chosen, key=lambda p: _by_count((p, counts.get(p, 0)))))

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece in self._split(text):
            token = self.stoi.get(piece)
            if token is not None:
                ids.append(token)
            elif self._space(piece):
                ids.extend(self.stoi.get(char, self.unk_id) for char in piece)
            else:
                ids.append(self.unk_id)
        return ids

    def unknown(self, text: str) -> list[str]:
        """The pieces of `text` that encode to <unk>, in order: what a caller may warn about."""
        missing: list[str] = []
        for piece in self._split(text):
            if piece not in self.stoi:
                missing.extend((c for c in piece if c not in self.stoi) if self._space(piece) else (piece,))
        return missing

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.tokens[i] for i in ids)

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        return self.decode(ids).encode("utf-8")

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.name, "vocab_size": self.vocab_size, "pattern": self.pattern, "pieces": list(self.pieces)}


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    """Sort key: the most frequent first, then the smaller string (deterministic ties)."""
    return -item[1], item[0]
