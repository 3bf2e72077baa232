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
from mygpt.errors import ConfigError


class Opt:
    """How one config field is given on the command line.

    `names`: the option's names, mygpt's spelling first, then its aliases (the spellings of
    the projects mygpt grew from); `switches`: bare switches that set the field to a value
    (--no-tie-weights -> False, --cosine-lr -> "cosine"), beside or instead of the names.
    `convert` applies to each given value (as typed: a \\n in a --stop); `text` takes the
    value as typed, for the config to parse (a size: 32M). Every option may also be spelled
    with underscores (--max_iters): the command line's one rule, in `hyphenate`."""

    def __init__(self, *names: str, metavar: Optional[str] = None, switches: Optional[dict[str, Any]] = None,
                 convert: Callable[[Any], Any] = lambda v: v, help: Optional[str] = None, text: bool = False):  # fmt: skip
        self.names, self.metavar, self.switches, self.convert, self.help = names, metavar, switches or {}, convert, help
        self.text = text

    def parameters(self, cls: type, field: str, preset: Optional[dict[str, Any]] = None) -> list[inspect.Parameter]:
        """Keyword-only Typer parameters: the option's (named after the field's last part),
        then one per switch (named after the switch). `preset`: the command's own defaults."""
        help_text = field_help(cls, field, preset, self.help)
        out = []
        if self.names:
            option = typer.Option(*self.names, help=help_text, show_default=False, metavar=self.metavar)
            kind = Annotated[Optional[str if self.text else option_type(cls, field)], option]
            out.append(inspect.Parameter(_name(field), inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=None))
        for n, (switch, value) in enumerate(self.switches.items()):
            if self.names:
                switch_help = f"The same as {self.names[0]} {value}."
            elif n == 0:  # the field's own switch: its description
                switch_help = field_help(cls, field, None, self.help, show_default=False)
            else:
                switch_help = f"Sets {_name(field)} to {value}."
            kind = Annotated[bool, typer.Option(switch, help=switch_help)]
            out.append(inspect.Parameter(_switch_name(switch), inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=False))  # fmt: skip
        return out

    def value(self, field: str, given: dict[str, Any]) -> Any:
        """The field's value for configure.build, taken out of the command's keyword
        arguments: None when the option was not given."""
        values = [value for switch, value in self.switches.items() if given.pop(_switch_name(switch))]
        typed = given.pop(_name(field), None) if self.names else None
        if isinstance(typed, (list, tuple)):  # a repeatable option
            typed = tuple(self.convert(v) for v in typed) or None
        elif typed is not None:
            typed = self.convert(typed)
        values += [] if typed is None else [typed]
        if len(set(map(repr, values))) > 1:
            spelled = self.names[:1] if typed is not None else ()
            spelled = [*spelled, *(s for s, v in self.switches.items() if v in values)]
            raise ConfigError(f"{' and '.join(spelled)} ask for different things: give one of them.")
        return values[0] if values else None


def _switch_name(switch: str) -> str:
    return switch.lstrip("-").replace("-", "_")


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


def config_options(
    cls: type, table: dict[str, Opt], preset: Optional[dict[str, Any]] = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a command that takes `flags`: it gets one option per entry of `table`
    (after its own parameters), and `flags` holds their values keyed by field name.
    `preset`: the defaults the command starts from, for its help to show."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "flags"]
        added = [param for field, opt in table.items() for param in opt.parameters(cls, field, preset)]
        if len({p.name for p in own + added}) < len(own + added):
            raise TypeError(f"{command.__name__}: two options share a parameter name")

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            flags = {field: opt.value(field, kwargs) for field, opt in table.items()}
            return command(flags=flags, **kwargs)

        wrapper.__signature__ = inspect.Signature(own + added)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in own + added}  # what Typer reads
        return wrapper

    return decorate


def labels(table: dict[str, Opt]) -> dict[str, str]:
    """Field -> the option it is given as, for config errors to name (--out, not --out-dir)."""
    return {field: (opt.names or tuple(opt.switches))[0] for field, opt in table.items()}


def _name(field: str) -> str:
    return field.split(".")[-1]


def _unescape(text: str) -> str:
    """Let \\n and \\t typed on a command line mean a newline and a tab."""
    return text.replace("\\n", "\n").replace("\\t", "\t")


DEVICE = {"device": Opt("--device", "--backend")}
SAMPLING = {  # shared by generate and chat
    "max_new_tokens": Opt("--max-new-tokens", "-n", "--max-tokens"), "temperature": Opt("--temperature", "-t"),
    "top_k": Opt("--top-k"), "top_p": Opt("--top-p"), "seed": Opt("--seed"),
    "stop": Opt("--stop", metavar="TEXT", convert=_unescape), **DEVICE,
}  # fmt: skip
GENERATE_OPTIONS = {
    "prompt": Opt("--prompt", "-p", convert=_unescape, help="Text the model continues (\\n: a newline, \\t: a tab)."), **SAMPLING, "num_samples": Opt("--num-samples"),
    "beams": Opt("--beams"),
    "kv_cache": Opt(switches={"--no-kv-cache": False}, help="Recompute the whole context for every token (slow; for checks)."),
}  # fmt: skip
CHAT_OPTIONS = {
    **SAMPLING,
    "template": Opt("--template", convert=_unescape),
    "system": Opt("--system", "--system-prompt", convert=_unescape),
}
SERVE_OPTIONS = {
    **CHAT_OPTIONS, "host": Opt("--host"), "port": Opt("--port"), "api_key": Opt("--api-key", metavar="KEY"),
    "max_batch": Opt("--max-batch"), "max_queue": Opt("--max-queue"), "max_body": Opt("--max-body", metavar="SIZE", text=True),
    "max_prompt_tokens": Opt("--max-prompt-tokens"), "max_tokens_limit": Opt("--max-tokens-limit"),
}  # fmt: skip
PREPARE_OPTIONS = {
    "text": Opt("--text", "--text-path", "--text-dir", metavar="PATH|GLOB"),
    "tokenizer": Opt("--tokenizer", "--backend"), "vocab_size": Opt("--vocab-size"),
    "tokenizer_file": Opt("--tokenizer-file", metavar="PATH"), "val_fraction": Opt("--val-fraction"),
    "split": Opt("--split", switches={"--random-split": "random"}), "seed": Opt("--seed", "--split-seed"),
    "out": Opt("--out", "--out-dir", metavar="DIR"),
    "hf_dataset": Opt("--hf-dataset", metavar="NAME[:SPLIT]"), "text_field": Opt("--text-field", metavar="NAME"), "workers": Opt("--workers", "-j"),
    "tokenizer_sample": Opt("--tokenizer-sample", metavar="SIZE", text=True),
    "skip_bad_records": Opt(switches={"--skip-bad-records": True}),
}  # fmt: skip
TRAIN_OPTIONS = {
    "data": Opt("--data", "--data-dir", metavar="DIR"), "out_dir": Opt("--out", "--out-dir", "--ckpt-dir", metavar="DIR"),
    "mode": Opt("--mode"),
    "model.n_layer": Opt("--n-layer", "--blocks", "--bl", "-b", "--n-layers"), "model.n_head": Opt("--n-head", "--heads"),
    "model.n_embd": Opt("--n-embd", "--emb", "-e", "--d-model"), "model.block_size": Opt("--block-size", "--ctx", "-c"),
    "model.dropout": Opt("--dropout", "--drop", "-d"), "model.pos": Opt("--pos"),
    "model.tie_weights": Opt(switches={"--tie-weights": True, "--no-tie-weights": False},
                             help="Share one matrix between the token embedding and the LM head (the default)."),
    "auto_tie_weights": Opt(switches={"--auto-tie-weights": True}),
    "batch_size": Opt("--batch-size", "-B"), "lr": Opt("--lr", "--learning-rate", "-l"), "min_lr": Opt("--min-lr"),
    "warmup_iters": Opt("--warmup-iters"), "max_iters": Opt("--max-iters", "--iters"),
    "epochs": Opt("--epochs", help="Passes over the training tokens, turned into steps and reported (instead of --max-iters). "
                                   "In `uv run training`, --epochs counts steps, as My Toy GPT's did."),
    "weight_decay": Opt("--weight-decay", "--l2-reg"),
    "grad_clip": Opt("--grad-clip"), "grad_accum": Opt("--grad-accum"), "eval_interval": Opt("--eval-interval"),
    "eval_iters": Opt("--eval-iters"), "seed": Opt("--seed"), **DEVICE, "dtype": Opt("--dtype"),
    "compile": Opt("--compile"), "lr_schedule": Opt("--lr-schedule", switches={"--cosine-lr": "cosine"}),
    "label_smoothing": Opt("--label-smoothing"), "grad_checkpoint": Opt(switches={"--grad-checkpoint": True}),
    "patience": Opt("--patience"), "target_loss": Opt("--target-loss"), "max_time": Opt("--max-time", metavar="DURATION"),
}  # fmt: skip
# My Toy GPT's `uv run training`: its --epochs counted optimizer steps, so there it is --max-iters.
TOY_TRAIN_OPTIONS = {
    **{field: opt for field, opt in TRAIN_OPTIONS.items() if field != "epochs"},
    "max_iters": Opt("--max-iters", "--epochs", help="Optimizer steps (My Toy GPT's --epochs counted steps, not passes over the data)."),
}  # fmt: skip

# Options whose value may be left out, and what they mean then: picoGPT's bare --resume.
BARE = {"--resume": "latest"}


def hyphenate(args: list[str], names: set[str]) -> list[str]:
    """The command line's spelling rule, for a command whose options are `names`: an option
    may be written with underscores (--max_iters, --top_k=5), and an option of `BARE` given
    without a value gets its bare value. Arguments after `--` are left alone."""
    out: list[str] = []
    for n, arg in enumerate(args):
        if arg == "--":
            return out + args[n:]
        name, eq, value = arg.partition("=")
        if name.startswith("--") and "_" in name and name.replace("_", "-") in names:
            arg = name.replace("_", "-") + eq + value
        out.append(arg)
        if arg in BARE and arg in names and (n + 1 == len(args) or args[n + 1].startswith("-")):
            out.append(BARE[arg])
    return out
