"""The command line's config options, each listed once, and the Typer parameters made from them.

A command's config options are a table, dotted field name -> `Opt` (the option names);
`config_options(cls, table)` turns the table into Typer parameters and hands the command
one `flags` dict, keyed by field name, ready for `configure.build`. Each option's type comes
from the field's annotation and its help text from the field's description
(`configure.field_help`); it defaults to None ("not given"), so defaults live only in
mygpt/config.py. Options that several commands share (sampling, device) are one table,
merged into theirs. Used by the CLI only; imports neither torch nor the CLI.
"""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Annotated, Any, Callable, Optional

import typer

from mygpt.configure import field_help


class Opt:
    """How one config field is given on the command line: its option names; for a bare
    switch (--no-tie-weights), `flag` is the field's value when it is given; `convert`
    applies to each given value (as typed: a \\n in a --stop); `text` takes the value as typed,
    for the config to parse (a size: 32M)."""

    def __init__(self, *names: str, metavar: Optional[str] = None, flag: Any = None,
                 convert: Callable[[Any], Any] = lambda v: v, help: Optional[str] = None, text: bool = False):  # fmt: skip
        self.names, self.metavar, self.flag, self.convert, self.help = names, metavar, flag, convert, help
        self.text = text

    def parameter(self, cls: type, field: str) -> inspect.Parameter:
        """A keyword-only Typer parameter, named after the field's last part."""
        help_text = self.help or field_help(cls, field)
        if self.flag is None:
            option = typer.Option(*self.names, help=help_text, show_default=False, metavar=self.metavar)
            kind, default = Annotated[Optional[str if self.text else option_type(cls, field)], option], None
        else:
            kind, default = Annotated[bool, typer.Option(*self.names, help=help_text)], False
        return inspect.Parameter(_name(field), inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=default)

    def value(self, given: Any) -> Any:
        """The field's value for configure.build: None when the option was not given."""
        if self.flag is not None:
            return self.flag if given else None
        if isinstance(given, (list, tuple)):  # a repeatable option
            return tuple(self.convert(v) for v in given) or None
        return None if given is None else self.convert(given)


def option_type(cls: type, field: str) -> Any:
    """The type Typer parses an option into, from the config field's annotation:
    Optional[X] -> X, a Literal -> str (the config names the choices), tuple -> list."""
    for part in field.split(".")[:-1]:
        cls = cls.model_fields[part].annotation  # type: ignore[attr-defined]
    kind = cls.model_fields[_name(field)].annotation  # type: ignore[attr-defined]
    origin, args = typing.get_origin(kind), [a for a in typing.get_args(kind) if a is not type(None)]
    if origin is typing.Literal:
        return str
    if origin is tuple:
        return list[args[0]]  # type: ignore[valid-type]
    return args[0] if origin is not None else kind  # Optional[X] -> X


def config_options(cls: type, table: dict[str, Opt]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a command that takes `flags`: it gets one option per entry of `table`
    (after its own parameters), and `flags` holds their values keyed by field name."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "flags"]
        added = [opt.parameter(cls, field) for field, opt in table.items()]
        if len({p.name for p in own + added}) < len(own + added):
            raise TypeError(f"{command.__name__}: two options share a parameter name")

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            flags = {field: opt.value(kwargs.pop(_name(field))) for field, opt in table.items()}
            return command(flags=flags, **kwargs)

        wrapper.__signature__ = inspect.Signature(own + added)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in own + added}  # what Typer reads
        return wrapper

    return decorate


def labels(table: dict[str, Opt]) -> dict[str, str]:
    """Field -> the option it is given as, for config errors to name (--out, not --out-dir)."""
    return {field: opt.names[0] for field, opt in table.items()}


def _name(field: str) -> str:
    return field.split(".")[-1]


def _unescape(text: str) -> str:
    """Let \\n and \\t typed on a command line mean a newline and a tab."""
    return text.replace("\\n", "\n").replace("\\t", "\t")


DEVICE = {"device": Opt("--device", "--backend")}
SAMPLING = {  # shared by generate and chat
    "max_new_tokens": Opt("--max-new-tokens", "-n"), "temperature": Opt("--temperature", "-t"),
    "top_k": Opt("--top-k"), "top_p": Opt("--top-p"), "seed": Opt("--seed"),
    "stop": Opt("--stop", metavar="TEXT", convert=_unescape), **DEVICE,
}  # fmt: skip
GENERATE_OPTIONS = {
    "prompt": Opt("--prompt", "-p"), **SAMPLING, "num_samples": Opt("--num-samples"), "beams": Opt("--beams"),
    "kv_cache": Opt("--no-kv-cache", flag=False, help="Recompute the whole context for every token (slow; for checks)."),
}  # fmt: skip
CHAT_OPTIONS = {
    **SAMPLING,
    "template": Opt("--template", convert=_unescape),
    "system": Opt("--system", convert=_unescape),
}
SERVE_OPTIONS = {
    **CHAT_OPTIONS, "host": Opt("--host"), "port": Opt("--port"), "api_key": Opt("--api-key", metavar="KEY"),
    "max_batch": Opt("--max-batch"), "max_queue": Opt("--max-queue"), "max_body": Opt("--max-body", metavar="SIZE", text=True),
    "max_prompt_tokens": Opt("--max-prompt-tokens"), "max_tokens_limit": Opt("--max-tokens-limit"),
}  # fmt: skip
PREPARE_OPTIONS = {
    "text": Opt("--text", metavar="PATH|GLOB"), "tokenizer": Opt("--tokenizer"), "vocab_size": Opt("--vocab-size"),
    "tokenizer_file": Opt("--tokenizer-file", metavar="PATH"), "val_fraction": Opt("--val-fraction"),
    "split": Opt("--split"), "seed": Opt("--seed"), "out": Opt("--out", metavar="DIR"),
    "hf_dataset": Opt("--hf-dataset", metavar="NAME[:SPLIT]"), "text_field": Opt("--text-field", metavar="NAME"), "workers": Opt("--workers", "-j"),
    "tokenizer_sample": Opt("--tokenizer-sample", metavar="SIZE", text=True),
    "skip_bad_records": Opt("--skip-bad-records", flag=True),
}  # fmt: skip
TRAIN_OPTIONS = {
    "data": Opt("--data", metavar="DIR"), "out_dir": Opt("--out", metavar="DIR"),
    "model.n_layer": Opt("--n-layer", "--blocks"), "model.n_head": Opt("--n-head", "--heads"),
    "model.n_embd": Opt("--n-embd", "--emb"), "model.block_size": Opt("--block-size", "--ctx"),
    "model.dropout": Opt("--dropout"), "model.pos": Opt("--pos"),
    "model.tie_weights": Opt("--no-tie-weights", flag=False, help="Give the LM head its own matrix instead of the token embedding's."),
    "batch_size": Opt("--batch-size", "-B"), "lr": Opt("--lr"), "min_lr": Opt("--min-lr"),
    "warmup_iters": Opt("--warmup-iters"), "max_iters": Opt("--max-iters"), "weight_decay": Opt("--weight-decay"),
    "grad_clip": Opt("--grad-clip"), "grad_accum": Opt("--grad-accum"), "eval_interval": Opt("--eval-interval"),
    "eval_iters": Opt("--eval-iters"), "seed": Opt("--seed"), **DEVICE, "dtype": Opt("--dtype"),
    "compile": Opt("--compile"), "lr_schedule": Opt("--lr-schedule"), "label_smoothing": Opt("--label-smoothing"),
    "grad_checkpoint": Opt("--grad-checkpoint", flag=True),
    "patience": Opt("--patience"), "target_loss": Opt("--target-loss"), "max_time": Opt("--max-time", metavar="DURATION"),
}  # fmt: skip
