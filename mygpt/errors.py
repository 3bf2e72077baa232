"""Errors raised by the mygpt library.

Every error a user can cause is a `MyGPTError` whose message is written for a person:
what is wrong, which value or file, and what to do about it. The CLI prints the message
(no traceback) and exits with `exit_code`; the library itself never prints or exits.
"""


class MyGPTError(Exception):
    """Base class: a problem the user can fix. Exit code 1."""

    exit_code = 1


class ConfigError(MyGPTError):
    """An invalid option, preset, config file or `--set` value. Exit code 2 (usage)."""

    exit_code = 2


class DataError(MyGPTError):
    """A corpus or prepared data folder that cannot be used."""


class CheckpointError(MyGPTError):
    """A checkpoint that is missing, damaged, or not a mygpt checkpoint."""


class TokenizerError(MyGPTError):
    """Text the tokenizer cannot encode, or a tokenizer description it cannot load."""


class TrainingError(MyGPTError):
    """Training cannot go on (for example, the loss became NaN)."""
