"""`mygpt prepare`'s configuration: the corpus, the tokenizer and how the tokens are split.

Like every config (mygpt/config.py), a frozen pydantic model holding each default, bound
and help text once.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from mygpt.config import DEFAULT_DATA_DIR, Size, _Config

DEFAULT_BPE_VOCAB = 4096
MAX_BPE_VOCAB = 65536
DEFAULT_WORD_VOCAB = 8000  # picoGPT's example
MIN_WORD_VOCAB = 32  # <unk>, <|endoftext|> and Unicode's 25 whitespace characters, which are always kept
MAX_WORD_VOCAB = 65536  # ids are stored as uint16


class PrepareConfig(_Config):
    """How to turn text into token files."""

    corpus: Optional[str] = Field(None, description="A built-in corpus name (default: shakespeare).")
    text: tuple[str, ...] = Field(
        (),
        description="Files, folders or glob patterns ('books/**/*.txt') to use instead of a built-in corpus: "
        ".txt (one document each), .jsonl/.ndjson, .parquet, and .txt/.jsonl compressed as .gz or .zst. "
        "A folder gives its supported files, not its subfolders'.",
    )
    hf_dataset: Optional[str] = Field(
        None,
        description="A Hugging Face dataset, NAME[:SPLIT] (split default: train): a save_to_disk folder, or a "
        "name in the local cache. Needs the hf extra.",
    )
    text_field: str = Field(
        "text", min_length=1, description="The field (jsonl) or column (parquet) that holds each document."
    )
    skip_bad_records: bool = Field(
        False, description="Skip records that cannot be used (bad JSON, no text field, not a string) and count them."
    )
    workers: Optional[int] = Field(
        None, ge=1, le=1024, description="Processes that read and tokenize (default: all cores)."
    )
    tokenizer_sample: Size = Field(
        32_000_000,
        ge=1,
        description="For --tokenizer bpe or word: train it on a seeded sample of about this many bytes "
        "of the corpus (K, M, G suffixes: 500M).",
    )
    tokenizer: Literal["char", "bpe", "word", "gpt2", "r50k_base", "p50k_base", "cl100k_base", "o200k_base"] = Field(
        "char",
        description="char (one token per character), bpe (byte-level BPE trained on the corpus), "
        "word (the corpus's most frequent words, punctuation marks and whitespace runs; any other word, "
        'in the corpus or a prompt, is one <unk> token and comes out as the text "<unk>"), '
        "or a pretrained tiktoken encoding: gpt2, r50k_base, p50k_base, cl100k_base, o200k_base.",
    )
    vocab_size: Optional[int] = Field(
        None,
        description=f"Vocabulary size for --tokenizer bpe (default: {DEFAULT_BPE_VOCAB}) or word (default: "
        f"{DEFAULT_WORD_VOCAB}), special tokens included. A smaller word vocabulary shrinks the embedding and "
        "head, at the cost of more <unk>.",
    )
    tokenizer_file: Optional[str] = Field(
        None, description="A local .tiktoken ranks file for a pretrained --tokenizer (no download needed)."
    )
    val_fraction: float = Field(0.1, gt=0.0, lt=1.0, description="Share of the tokens held out for validation.")
    split: Literal["contiguous", "random"] = Field(
        "contiguous", description="contiguous: the last tokens are validation; random: seeded random chunks are."
    )
    seed: int = Field(
        1337, ge=0, le=2**63 - 1, description="Seed for --split random and the bpe or word tokenizer's sample."
    )
    out: Optional[str] = Field(
        None,
        min_length=1,
        description="Output folder (default: data/<corpus>-<tokenizer>, e.g. data/notes-bpe4096, data/notes-word8000).",
    )
    data_dir: str = Field(DEFAULT_DATA_DIR, description="Where built-in corpora are kept.")

    @model_validator(mode="after")
    def _check(self) -> PrepareConfig:
        if sum(map(bool, (self.corpus, self.text, self.hf_dataset))) > 1:
            raise ValueError("give only one of: a built-in corpus name, --text, --hf-dataset.")
        if self.vocab_size is not None:
            self._check_vocab_size(self.vocab_size)
        if "tokenizer_sample" in self.model_fields_set and self.tokenizer not in ("bpe", "word"):
            raise ValueError(
                f"--tokenizer-sample is for --tokenizer bpe or word; the {self.tokenizer} tokenizer is not trained "
                "on a sample."
            )
        if self.tokenizer_file is not None and self.tokenizer in ("char", "bpe", "word"):
            raise ValueError(
                "--tokenizer-file is for pretrained encodings, e.g. --tokenizer gpt2 --tokenizer-file r50k_base.tiktoken."
            )
        return self

    def _check_vocab_size(self, size: int) -> None:
        if self.tokenizer not in ("bpe", "word"):
            raise ValueError(
                f"--vocab-size is for --tokenizer bpe or word; the {self.tokenizer} tokenizer's size is fixed."
            )
        if self.tokenizer == "word" and not MIN_WORD_VOCAB <= size <= MAX_WORD_VOCAB:
            raise ValueError(
                f"vocab_size={size} is too {'small' if size < MIN_WORD_VOCAB else 'large'} for --tokenizer word: "
                f"it takes {MIN_WORD_VOCAB} to {MAX_WORD_VOCAB} (<unk>, <|endoftext|> and the whitespace characters "
                f"included; token ids are stored as uint16). Try {DEFAULT_WORD_VOCAB}."
            )
        if self.tokenizer == "bpe" and size < 257:
            raise ValueError(
                f"vocab_size={size} is too small: byte-level BPE starts from the 256 byte values and "
                f"adds <|endoftext|>, so 257 is the minimum (no merges). Try {DEFAULT_BPE_VOCAB}."
            )
        if self.tokenizer == "bpe" and size > MAX_BPE_VOCAB:
            raise ValueError(
                f"vocab_size={size} is too large: token ids are stored as uint16, so a trained "
                f"vocabulary holds at most 65535 tokens plus <|endoftext|> ({MAX_BPE_VOCAB}). For more, use a "
                "pretrained encoding such as --tokenizer cl100k_base."
            )

    @property
    def trained_vocab_size(self) -> int:
        """The size a trained tokenizer (bpe, word) aims at: --vocab-size or its default."""
        return self.vocab_size or (DEFAULT_WORD_VOCAB if self.tokenizer == "word" else DEFAULT_BPE_VOCAB)
