"""A conversation with a model: turns wrapped in a template, trimmed to fit the context,
and the read-answer loop around it.

Each of the user's lines becomes `template.format(text=line)` (by default
"User: {line}\\nAssistant:"), the model's reply is appended to that turn, and the whole
conversation (the system text once, then the turns) is the next prompt. When it grows
past what fits in the context, the oldest turns are dropped first; the system text stays.

`repl` reads lines, runs /commands and streams replies over injected functions
(`ChatIO`): it never touches the terminal itself, so the CLI decides how lines are read
and text is shown, and tests drive it with lists. `stream_text` and `sample_texts` turn
sampled ids into the text that `mygpt generate` and `mygpt chat` show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

from mygpt import sampling as gen
from mygpt.config import ChatConfig, SampleConfig
from mygpt.configure import build
from mygpt.errors import ConfigError, MyGPTError
from mygpt.sampling import TextStream, keep_after_full
from mygpt.tokenizer import Tokenizer

CHAT_HELP = """commands:
  /quit        leave (Ctrl-D does too)
  /reset       forget the conversation
  /temp X      set the temperature (0 is greedy)
  /topk N      sample among the N most likely tokens (/topk 0 turns it off)
  /help        this list
Ctrl-C during a reply stops the reply; Ctrl-C at the prompt leaves."""


class Conversation:
    def __init__(self, tokenizer: Tokenizer, block_size: int, cfg: ChatConfig):
        self.tokenizer = tokenizer
        self.cfg = cfg
        # Leave room for the reply: the prompt may fill what stays in context after a re-prefill.
        self.budget = keep_after_full(block_size)
        self.turns: list[str] = []
        self.dropped = 0  # turns trimmed away so far

    def ask(self, text: str, limit: Optional[int] = None) -> list[int]:
        """Add the user's line as a new turn; return the prompt ids for the model's reply.

        Raises TokenizerError (and forgets the turn) if the line cannot be encoded, and
        ConfigError (likewise) if the whole conversation, before its oldest turns are
        dropped to fit the context, is longer than `limit` tokens.
        """
        self.turns.append(self.cfg.template.format(text=text))
        try:
            ids = self.tokenizer.encode(self.prompt())
            if limit is not None and len(ids) > limit:
                raise ConfigError(f"the conversation is {len(ids):,} tokens; at most {limit:,} are taken")
        except Exception:
            self.turns.pop()
            raise
        if len(ids) > self.budget and len(self.turns) > 1:
            # The fewest oldest turns to drop, found by bisection: a prompt of thousands of
            # turns (sent to `mygpt serve`) costs a few encodings, not one per turn.
            lo, hi = 1, len(self.turns) - 1
            while lo < hi:
                mid = (lo + hi) // 2
                if len(self.tokenizer.encode(self.prompt(mid))) <= self.budget:
                    hi = mid
                else:
                    lo = mid + 1
            del self.turns[:lo]
            self.dropped += lo
            ids = self.tokenizer.encode(self.prompt())
        return ids

    def reply(self, text: str) -> None:
        """Record the model's reply to the last turn."""
        self.turns[-1] += text + "\n"

    def prompt(self, skip: int = 0) -> str:
        """The system text and the turns, without the `skip` oldest."""
        return self.cfg.system + "".join(self.turns[skip:])

    def reset(self) -> None:
        self.turns.clear()


def prompt_from_messages(messages: Sequence[tuple[str, str]], tokenizer: Tokenizer, block_size: int,
                         cfg: ChatConfig, limit: Optional[int] = None) -> list[int]:  # fmt: skip
    """Prompt ids for the reply to a conversation given as (role, text) pairs, as `mygpt chat`
    would have put it to the model: system texts (if any) replace cfg.system, each user
    text is a turn of the template, each assistant text that turn's reply. The last message
    must be the user's. Raises ConfigError for a conversation that does not end so, or that
    is longer than `limit` tokens in all (before its oldest turns are dropped to fit)."""
    system = [text for role, text in messages if role in ("system", "developer")]
    if system:
        joined = "\n".join(system)
        cfg = cfg.model_copy(update={"system": joined if joined.endswith("\n") else joined + "\n"})
    talk = [(role, text) for role, text in messages if role not in ("system", "developer")]
    if not talk or talk[-1][0] != "user":
        raise ConfigError("the last message must be the user's: the model replies to it")
    conversation = Conversation(tokenizer, block_size, cfg)
    for role, text in talk[:-1]:
        if role == "user":
            conversation.turns.append(cfg.template.format(text=text))
        elif conversation.turns:
            conversation.reply(text)
        else:  # the assistant spoke first (a greeting): its line stands on its own
            conversation.turns.append(text + "\n")
    # A template of only {text} and no text leaves nothing: start as generate does then.
    return conversation.ask(talk[-1][1], limit) or gen.prompt_ids(tokenizer, "")


@dataclass(frozen=True)
class ChatIO:
    """How `repl` talks to the person: the CLI passes the terminal, tests pass lists."""

    read_line: Callable[[], Optional[str]]  # the next line; None at the end of input (Ctrl-D)
    write: Callable[[str], None]  # the model's text, piece by piece as it comes
    notify: Callable[[str], None]  # messages about the session: the help, a changed setting
    error: Callable[[str], None]  # a line or a command that could not be used


def repl(conversation: Conversation, model: Any, device: Any, io: ChatIO) -> int:
    """Read lines and answer them until /quit or the end of input; returns the exit code.

    A KeyboardInterrupt while reading leaves (130); one during a reply stops only that
    reply, and what was said of it stays in the conversation. /temp and /topk change
    `conversation.cfg`.
    """
    turn = 0
    while True:
        try:
            line = io.read_line()
        except KeyboardInterrupt:
            io.notify("")
            return 130
        if line is None:
            return 0
        line = line.rstrip("\n")
        if line.startswith("/"):
            command, _, arg = line.partition(" ")
            if command == "/quit":
                return 0
            try:
                conversation.cfg = run_command(command, arg.strip(), conversation, io.notify)
            except MyGPTError as exc:
                io.error(str(exc))
        elif line.strip():
            try:
                ids = conversation.ask(line)
            except MyGPTError as exc:  # a line the vocabulary cannot encode: say so and go on
                io.error(str(exc))
                continue
            turn += 1
            _answer(conversation, model, ids, turn, device, io.write)


def _answer(conversation: Conversation, model: Any, ids: list[int], turn: int, device: Any,
            write: Callable[[str], None]) -> None:  # fmt: skip
    """Stream the model's reply to the last turn and record it."""
    cfg = conversation.cfg
    seed = gen.resolve_seed(None if cfg.seed is None else cfg.seed + turn)
    reply = TextStream(conversation.tokenizer, cfg.stop)
    try:
        for piece in stream_text(gen.generate(model, ids, cfg, seed, device), reply):
            write(piece)
    except KeyboardInterrupt:  # stop this reply, keep the conversation (and what was said)
        pass
    write("\n")
    conversation.reply(reply.text)


def run_command(command: str, arg: str, conversation: Conversation, notify: Callable[[str], None]) -> ChatConfig:
    """Apply a /command other than /quit; returns the (possibly changed) config.

    Raises ConfigError for an unknown command or a value that does not fit.
    """
    cfg = conversation.cfg
    if command == "/reset":
        conversation.reset()
        notify("(conversation forgotten)")
    elif command == "/help":
        notify(CHAT_HELP)
    elif command in ("/temp", "/topk"):
        key = "temperature" if command == "/temp" else "top_k"
        try:
            value: Any = float(arg) if key == "temperature" else int(arg)
        except ValueError:
            example = "0.8" if key == "temperature" else "40"
            raise ConfigError(f"{command} needs a number, e.g. {command} {example}.") from None
        if key == "top_k" and value == 0:
            cfg = cfg.model_copy(update={"top_k": None})
        else:
            cfg = build(type(cfg), base=cfg.model_dump(), flags={key: value})
        notify(f"({key} is now {getattr(cfg, key)})")
    else:
        raise ConfigError(f"unknown command {command}; /help lists them.")
    return cfg


def stream_text(steps: Iterable[Any], text: TextStream) -> Iterator[str]:
    """One sample's text as it comes, from steps of (1,) ids, until its stop string or the end."""
    for ids in steps:
        yield text.push(ids.tolist())
        if text.stopped:
            break
    yield text.finish()


def sample_texts(steps: Iterable[Any], tokenizer: Tokenizer, cfg: SampleConfig) -> list[str]:
    """Every sample's whole text (the prompt not included), from steps of (num_samples,)
    ids. A sample ends at a stop string (not included); sampling ends when all have."""
    streams = [TextStream(tokenizer, cfg.stop) for _ in range(cfg.num_samples)]
    for ids in steps:
        for stream, i in zip(streams, ids.tolist(), strict=True):
            stream.push([i])
        if all(s.stopped for s in streams):
            break
    for stream in streams:
        stream.finish()
    return [s.text for s in streams]
