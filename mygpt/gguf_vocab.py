"""A mygpt tokenizer as a GGUF vocabulary that llama.cpp tokenizes to the same ids.

llama.cpp's BPE (GGUF tokenizer model "gpt2") splits text with one of its built-in
pre-tokenizers (a file names one; it cannot carry a pattern of its own), spells each
piece in GPT-2's byte-to-character alphabet, and merges adjacent symbols by the rank of
the pair in the file's merge list. What that can express:

- BPE: every token spelled in that alphabet, and the merges `convert.merge_list` finds,
  in token order, so that pairs rank as tiktoken ranks their merged bytes. GPT-2's
  pattern is llama.cpp's `gpt-2` pre-tokenizer exactly. mygpt's own BPE pattern (GPT-4's,
  numbers in groups of two), cl100k_base's and o200k_base's have no exact counterpart:
  writing the nearest (`llama-bpe`, `gpt-4o`) is an approximation, which
  `approximation` names.
- Characters: every character is a token; one of several UTF-8 bytes is reached by
  merging its bytes (a merge need not make a token: only the final symbols are looked
  up). A character vocabulary has no end-of-text token, and llama.cpp takes one of its
  tokens as the end of generation (by default id 11, some character): an `<|endoftext|>`
  is added after the last id to be that token instead, with a row of zeros in the model,
  and listed as a token never to sample (`tokenizer.ggml.suppress_tokens`, which
  llama.cpp's own samplers honour).
- Words: refused. llama.cpp has no word vocabulary with an unknown token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from mygpt.bpe import SPLIT_PATTERN
from mygpt.convert import merge_list, spell
from mygpt.errors import CheckpointError
from mygpt.tokenizer import ENDOFTEXT, PRETRAINED, BPETokenizer, CharTokenizer, Tokenizer

NORMAL, CONTROL, UNUSED = 1, 3, 5  # GGUF token types (gguf.TokenType)
NEVER_MERGED = "\u0149 \u0149"  # beyond GPT-2's byte alphabet (U+0021 to U+0143)

# BPE pattern -> (llama.cpp pre-tokenizer, what it splits differently; None when it is the same)
PRE_TOKENIZERS: dict[str, tuple[str, Optional[str]]] = {
    PRETRAINED["gpt2"][0]: ("gpt-2", None),
    SPLIT_PATTERN: (
        "llama-bpe",
        "mygpt's BPE splits numbers into groups of two digits, llama.cpp's nearest pre-tokenizer "
        "(llama-bpe) into groups of three, so a number of three or more digits may get other ids",
    ),
    PRETRAINED["cl100k_base"][0]: (
        "llama-bpe",
        "cl100k_base keeps whitespace at the very end of a text whole ('\\n  '), llama.cpp's llama-bpe "
        "splits it after the last line break",
    ),
    PRETRAINED["o200k_base"][0]: (
        "gpt-4o",
        "llama.cpp's gpt-4o pre-tokenizer tells upper from lower case by [^a-z] and [^A-Z] and leaves out "
        "combining marks, so words with letters beyond ASCII may split differently",
    ),
}


@dataclass
class Vocab:
    """What the GGUF file's tokenizer.ggml.* keys hold."""

    tokens: list[str]
    types: list[int]
    merges: list[str]
    pre: str
    eot_id: int
    model_vocab: int  # the model's vocab_size
    suppress: list[int] = field(default_factory=list)  # ids llama.cpp must never sample
    approximation: Optional[str] = None  # what llama.cpp tokenizes differently; None: nothing

    @property
    def added_rows(self) -> int:
        """Tokens beyond the model's vocabulary (an added end-of-text): zero rows in the model."""
        return len(self.tokens) - self.model_vocab


def gguf_vocab(tokenizer: Tokenizer) -> Vocab:
    """The GGUF vocabulary of a tokenizer; CheckpointError names what cannot be expressed."""
    if isinstance(tokenizer, CharTokenizer):
        return _chars(tokenizer)
    if isinstance(tokenizer, BPETokenizer):
        return _bpe(tokenizer)
    raise CheckpointError(
        f"a {tokenizer.name} tokenizer cannot be written as GGUF: llama.cpp has no word vocabulary "
        "with an unknown token (character and BPE vocabularies export)."
    )


def _chars(tokenizer: CharTokenizer) -> Vocab:
    tokens, merges = [], {}
    for c in tokenizer.chars:
        try:
            raw = c.encode("utf-8")
        except UnicodeEncodeError:
            raise CheckpointError(f"the character vocabulary holds {c!r}, which is not valid Unicode text.") from None
        tokens.append(spell(raw))
        for i in range(2, len(raw) + 1):  # the character's bytes merged left to right
            merges.setdefault(f"{spell(raw[: i - 1])} {spell(raw[i - 1 : i])}", None)
    n = len(tokens)
    # llama.cpp refuses a BPE vocabulary without merges; one of a character outside GPT-2's
    # byte alphabet (no text is ever spelled with it) never applies.
    return Vocab(
        tokens=[*tokens, ENDOFTEXT], types=[NORMAL] * n + [CONTROL], merges=list(merges) or [NEVER_MERGED],
        pre="gpt-2", eot_id=n,
        model_vocab=n, suppress=[n],
    )  # fmt: skip


def _bpe(tokenizer: BPETokenizer) -> Vocab:
    if tokenizer.pattern not in PRE_TOKENIZERS:
        raise CheckpointError(
            f"the {tokenizer.name} tokenizer's pre-split pattern is not one llama.cpp knows "
            "(GGUF names one of llama.cpp's built-in pre-tokenizers; it cannot carry a pattern)."
        )
    pre, approximation = PRE_TOKENIZERS[tokenizer.pattern]
    if tokenizer.eot_id is None:
        raise CheckpointError(f"the {tokenizer.name} tokenizer has no {ENDOFTEXT} token for llama.cpp to stop at.")
    n = tokenizer.vocab_size
    tokens, types = [f"<|unused_{i}|>" for i in range(n)], [UNUSED] * n  # ids no token has (see BPETokenizer)
    for token, i in tokenizer.ranks.items():
        tokens[i], types[i] = spell(token), NORMAL
    for text, i in tokenizer.special_tokens.items():
        tokens[i], types[i] = text, CONTROL
    merges = [f"{spell(a)} {spell(b)}" for a, b in merge_list(tokenizer.ranks)]
    suppress = [i for i, kind in enumerate(types) if kind == UNUSED]
    return Vocab(tokens, types, merges, pre, tokenizer.eot_id, n, suppress, approximation)
