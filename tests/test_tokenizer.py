import json
from collections import Counter

import pytest
import regex
from conftest import make_text
from hypothesis import given, strategies as st

from mygpt.errors import TokenizerError
from mygpt.sampling import prompt_ids
from mygpt.tokenizer import ENDOFTEXT, PRETRAINED, BPETokenizer, CharTokenizer, StreamDecoder, from_dict
from mygpt.word_tokenizer import UNK, WORD_PATTERN, WordTokenizer


@given(st.text())
def test_round_trip_any_unicode(text: str) -> None:
    tok = CharTokenizer.train(text)
    assert tok.decode(tok.encode(text)) == text


@given(st.text(min_size=1))
def test_survives_its_json_form(text: str) -> None:
    tok = CharTokenizer.train(text)
    again = from_dict(tok.to_dict())
    assert again.encode(text) == tok.encode(text)
    assert again.vocab_size == tok.vocab_size


def test_vocabulary_is_sorted_and_deterministic() -> None:
    tok = CharTokenizer.train("banana!")
    assert tok.chars == ["!", "a", "b", "n"]
    assert tok.encode("nab") == [3, 1, 2]


def test_unknown_characters_are_named() -> None:
    tok = CharTokenizer.train("abc")
    with pytest.raises(TokenizerError, match=r"2 character\(s\).*'x', 'z'"):
        tok.encode("axbz")


def test_damaged_description_is_refused() -> None:
    with pytest.raises(TokenizerError, match="unknown or damaged"):
        from_dict({"type": "char"})
    with pytest.raises(TokenizerError):
        from_dict({"type": "wordpiece", "chars": "ab"})


class BytesTokenizer:
    """One token per byte: splits multi-byte characters across tokens."""

    name = "bytes"
    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode_bytes(self, ids: list[int]) -> bytes:
        return bytes(ids)

    def to_dict(self) -> dict:
        return {"type": "bytes"}


def test_stream_holds_back_incomplete_characters() -> None:
    tok = BytesTokenizer()
    stream = StreamDecoder(tok)
    pieces = [stream.push([i]) for i in tok.encode("aé€")]
    assert pieces == ["a", "", "é", "", "", "€"]
    assert "\ufffd" not in "".join(pieces)
    assert stream.flush() == ""


# A small alphabet makes repeated words, punctuation and whitespace runs likely.
WORDISH = st.text(alphabet="ab é.,!'\n\t\u3000", max_size=60)


def pieces_of(text: str) -> list[str]:
    return regex.findall(WORD_PATTERN, text)


@given(st.text())
def test_word_round_trip_when_every_piece_is_known(text: str) -> None:
    tok = WordTokenizer.train(text, vocab_size=10_000)
    assert tok.decode(tok.encode(text)) == text
    assert len(tok.encode(text)) == len(pieces_of(text))  # one token per piece


@given(WORDISH, st.integers(min_value=2, max_value=12))
def test_word_cap_unknown_pieces_become_unk_and_whitespace_survives(text: str, size: int) -> None:
    tok = WordTokenizer.train(text, vocab_size=size)
    assert tok.vocab_size <= size
    expected = "".join(p if p in tok.stoi or p.isspace() else UNK for p in pieces_of(text))
    if all(c in tok.stoi for c in text if c.isspace()):  # the cap left room for every whitespace character
        assert tok.decode(tok.encode(text)) == expected


def test_word_vocabulary_is_the_most_frequent_pieces_ties_by_string() -> None:
    tok = WordTokenizer.train("b a b c c a d", vocab_size=5)
    assert tok.tokens == [UNK, "<|endoftext|>", " ", "a", "b"]  # a, b, c tie at 2: a and b win
    assert tok.encode("c a!") == [tok.unk_id, 2, 3, tok.unk_id]
    assert tok.decode(tok.encode("c a!")) == "<unk> a<unk>"
    assert tok.unknown("c a!") == ["c", "!"]
    assert WordTokenizer.train("b a b c c a d", vocab_size=100).vocab_size == 2 + 5  # no more than the corpus has


def test_word_vocabulary_does_not_depend_on_count_order() -> None:
    counts = Counter(pieces_of("the cat, the dog; a cat\n\n" * 3 + "zebra yak"))
    backwards = Counter(dict(reversed(list(counts.items()))))
    assert list(backwards) != list(counts)
    for size in (4, 8, 30):
        assert WordTokenizer.from_counts(backwards, size).to_dict() == WordTokenizer.from_counts(counts, size).to_dict()


def test_every_whitespace_character_is_kept_and_unknown_runs_are_spelled_out() -> None:
    text = "one two one two one two\tthree\n\nfour\n"
    tok = WordTokenizer.train(text, vocab_size=6)  # room for 4 pieces: the 3 whitespace characters and "one"
    assert set(tok.pieces) == {" ", "\t", "\n", "one"}
    assert tok.decode(tok.encode("one\n\n\t two")) == "one\n\n\t <unk>"  # a run it lacks, one character at a time
    assert tok.decode(tok.encode("one\r\n")) == "one<unk>\n"  # a whitespace character the corpus lacks
    assert tok.unknown("one\r\n two") == ["\r", "two"]


def test_word_tokenizer_survives_its_json_form() -> None:
    tok = WordTokenizer.train(make_text(n_lines=40), vocab_size=20)
    again = from_dict(json.loads(json.dumps(tok.to_dict())))
    assert isinstance(again, WordTokenizer) and again.to_dict() == tok.to_dict()
    text = "KING:\nThe queen spoke of a far land, quoth he.\n"
    assert again.encode(text) == tok.encode(text) and tok.unk_id in tok.encode(text)
    assert (again.eot_id, again.vocab_size) == (1, 20)
    with pytest.raises(TokenizerError, match="unknown or damaged"):
        from_dict({"type": "word", "pieces": ["a"]})  # no pattern
    with pytest.raises(TokenizerError, match="distinct"):
        from_dict({"type": "word", "pattern": WORD_PATTERN, "pieces": ["a", "a"]})


def test_a_prompt_with_unknown_words_starts_from_unk() -> None:
    tok = WordTokenizer.train("the king spoke\n", vocab_size=100)
    start = prompt_ids(tok, "the jester spoke")  # no error, unlike a char model's unseen character
    assert len(start) == 5 and start[2] == tok.unk_id and tok.decode(start) == "the <unk> spoke"
    assert prompt_ids(tok, "") == [tok.eot_id]


def test_an_id_without_a_token_decodes_to_nothing() -> None:
    """A pretrained encoding rebuilt from a smaller ranks file has ids no token holds
    (between its merges and <|endoftext|>); a model may still sample one."""
    ranks = {bytes([i]): i for i in range(256)}
    tokenizer = BPETokenizer("gpt2", PRETRAINED["gpt2"][0], ranks, {ENDOFTEXT: 300})
    assert tokenizer.decode([104, 105, 280, 300, 33]) == "hi<|endoftext|>!"
