import pytest
from hypothesis import given, strategies as st

from mygpt.errors import TokenizerError
from mygpt.tokenizer import CharTokenizer, StreamDecoder, from_dict


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
