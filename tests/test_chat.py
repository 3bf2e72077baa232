"""The chat REPL through `repl`, over fake input and output; the text helpers of generate and chat."""

from __future__ import annotations

from typing import Optional

import pytest
import torch

from mygpt.chat import CHAT_HELP, ChatIO, Conversation, repl, sample_texts, stream_text
from mygpt.config import ChatConfig, ModelConfig, SampleConfig
from mygpt.model import GPT
from mygpt.tokenizer import CharTokenizer

TOKENIZER = CharTokenizer.train("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ:\n")
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model() -> GPT:
    torch.manual_seed(0)
    config = ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=128, vocab_size=TOKENIZER.vocab_size)
    return GPT(config).eval()


def conversation(**cfg) -> Conversation:
    # No stop string: every reply is exactly max_new_tokens characters.
    cfg = {"max_new_tokens": 5, "temperature": 0.0, "stop": (), **cfg}
    return Conversation(TOKENIZER, 128, ChatConfig(**cfg))


class Terminal:
    """Lines to read (KeyboardInterrupt among them is raised), and what was written, noted and reported."""

    def __init__(self, *lines: object, interrupt_write: bool = False):
        self.lines = list(lines)
        self.out: list[str] = []
        self.notes: list[str] = []
        self.errors: list[str] = []
        self.interrupt_write = interrupt_write  # Ctrl-C at the first piece of reply text

    def read_line(self) -> Optional[str]:
        if not self.lines:
            return None
        line = self.lines.pop(0)
        if line is KeyboardInterrupt:
            raise KeyboardInterrupt
        return f"{line}\n"

    def write(self, text: str) -> None:
        if self.interrupt_write and text:
            self.interrupt_write = False
            raise KeyboardInterrupt
        self.out.append(text)

    def io(self) -> ChatIO:
        return ChatIO(self.read_line, self.write, self.notes.append, self.errors.append)


def replies(conv: Conversation) -> list[str]:
    """The model's reply in each turn, as the conversation recorded it."""
    return [turn.split("Assistant:", 1)[1].removesuffix("\n") for turn in conv.turns]


def test_each_line_is_answered_and_quit_stops_reading(model: GPT) -> None:
    conv, term = conversation(), Terminal("hello", "", "KING", "/quit", "never read")
    assert repl(conv, model, CPU, term.io()) == 0
    assert term.lines == ["never read"] and term.errors == []
    said = replies(conv)
    assert [t.split("\n")[0] for t in conv.turns] == ["User: hello", "User: KING"]  # the empty line is skipped
    assert [len(r) for r in said] == [5, 5]
    assert "".join(term.out) == "".join(r + "\n" for r in said)  # what was shown is what was recorded


def test_end_of_input_leaves_with_0_and_ctrl_c_at_the_prompt_with_130(model: GPT) -> None:
    assert repl(conversation(), model, CPU, Terminal().io()) == 0
    term = Terminal("hello", KeyboardInterrupt, "never read")
    assert repl(conversation(), model, CPU, term.io()) == 130
    assert term.lines == ["never read"]


def test_ctrl_c_during_a_reply_stops_only_that_reply(model: GPT) -> None:
    conv, term = conversation(), Terminal("hello", "KING", interrupt_write=True)
    assert repl(conv, model, CPU, term.io()) == 0
    first, second = replies(conv)
    assert len(first) == 1 and len(second) == 5  # the piece in flight was said; the next reply is whole
    assert "".join(term.out) == "\n" + second + "\n"


def test_commands_change_settings_and_report_bad_values(model: GPT) -> None:
    conv = conversation(top_k=2)
    term = Terminal("/temp 0.5", "/topk 3", "/topk 0", "/temp hot", "/topk -2", "/bogus", "/help", "hello", "/reset")
    assert repl(conv, model, CPU, term.io()) == 0
    assert conv.cfg.temperature == 0.5 and conv.cfg.top_k is None
    assert term.notes[:3] == ["(temperature is now 0.5)", "(top_k is now 3)", "(top_k is now None)"]
    assert CHAT_HELP in term.notes and term.notes[-1] == "(conversation forgotten)"
    assert len(term.errors) == 3
    assert "/temp needs a number" in term.errors[0] and "top_k=-2" in term.errors[1]
    assert "unknown command /bogus" in term.errors[2]
    assert conv.turns == [] and len("".join(term.out)) == 6  # one reply before /reset


def test_a_line_the_vocabulary_cannot_encode_is_reported_and_forgotten(model: GPT) -> None:
    conv, term = conversation(), Terminal("¿hello?", "hello")
    assert repl(conv, model, CPU, term.io()) == 0
    assert len(term.errors) == 1 and "'¿'" in term.errors[0]
    assert len(conv.turns) == 1 and conv.turns[0].startswith("User: hello\n")


def test_a_seed_gives_the_same_replies(model: GPT) -> None:
    runs = []
    for _ in range(2):
        conv = conversation(temperature=1.0, seed=3, max_new_tokens=20)
        repl(conv, model, CPU, Terminal("hello", "KING").io())
        runs.append(replies(conv))
    assert runs[0] == runs[1] and runs[0][0] != runs[0][1]  # turns get seeds of their own


def steps(*columns: str) -> list[torch.Tensor]:
    """Fake sampling steps: sample n's text is columns[n], one character per step."""
    return [torch.tensor(TOKENIZER.encode("".join(chars))) for chars in zip(*columns, strict=True)]


def test_sample_texts_end_each_sample_at_its_stop_string() -> None:
    cfg = SampleConfig(num_samples=3, stop=("\nUser:",))
    texts = sample_texts(steps("ab\nUser: x", "abcdefghij", "abc\nUsxyzw"), TOKENIZER, cfg)
    assert texts == ["ab", "abcdefghij", "abc\nUsxyzw"]  # a partial stop string is not a stop


def test_stream_text_holds_back_a_possible_stop_string() -> None:
    from mygpt.sampling import TextStream

    pieces = list(stream_text(steps("ab\nUser: never"), TextStream(TOKENIZER, ("\nUser:",))))
    assert "".join(pieces) == "ab" and "\n" not in pieces
    pieces = list(stream_text(steps("ab\nU"), TextStream(TOKENIZER, ("\nUser:",))))
    assert pieces[-1] == "\nU"  # the held-back text comes out at the end


@pytest.mark.parametrize("turns", [1, 2, 7, 300])
def test_a_long_conversation_keeps_the_longest_tail_of_turns_that_fits(turns: int) -> None:
    conv = conversation(system="KING:\n")
    for i in range(turns):
        conv.turns.append(conv.cfg.template.format(text="a" * (i % 17)) + "b" * (i % 5) + "\n")
    ids = conv.ask("the last line")
    assert len(ids) <= conv.budget and conv.turns[-1].startswith("User: the last line")
    kept = len(conv.turns)
    assert conv.dropped == turns + 1 - kept
    if conv.dropped:  # one more of the newest dropped turns would not have fitted
        one_more = (
            conv.cfg.template.format(text="a" * ((conv.dropped - 1) % 17)) + "b" * ((conv.dropped - 1) % 5) + "\n"
        )
        assert len(TOKENIZER.encode(conv.cfg.system + one_more + "".join(conv.turns))) > conv.budget
