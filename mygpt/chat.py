"""A conversation with a model: turns wrapped in a template, trimmed to fit the context.

Each of the user's lines becomes `template.format(text=line)` (by default
"User: {line}\\nAssistant:"), the model's reply is appended to that turn, and the whole
conversation (the system text once, then the turns) is the next prompt. When it grows
past what fits in the context, the oldest turns are dropped first; the system text stays.
The REPL around it (reading lines, commands, streaming) lives in the CLI.
"""

from __future__ import annotations

from mygpt.config import ChatConfig
from mygpt.sampling import keep_after_full
from mygpt.tokenizer import Tokenizer


class Conversation:
    def __init__(self, tokenizer: Tokenizer, block_size: int, cfg: ChatConfig):
        self.tokenizer = tokenizer
        self.cfg = cfg
        # Leave room for the reply: the prompt may fill what stays in context after a re-prefill.
        self.budget = keep_after_full(block_size)
        self.turns: list[str] = []
        self.dropped = 0  # turns trimmed away so far

    def ask(self, text: str) -> list[int]:
        """Add the user's line as a new turn; return the prompt ids for the model's reply.

        Raises TokenizerError (and forgets the turn) if the line cannot be encoded.
        """
        self.turns.append(self.cfg.template.format(text=text))
        try:
            ids = self.tokenizer.encode(self.prompt())
        except Exception:
            self.turns.pop()
            raise
        while len(ids) > self.budget and len(self.turns) > 1:
            self.turns.pop(0)
            self.dropped += 1
            ids = self.tokenizer.encode(self.prompt())
        return ids

    def reply(self, text: str) -> None:
        """Record the model's reply to the last turn."""
        self.turns[-1] += text + "\n"

    def prompt(self) -> str:
        return self.cfg.system + "".join(self.turns)

    def reset(self) -> None:
        self.turns.clear()
