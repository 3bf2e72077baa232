"""Configuration: the pydantic models, with every default, bound and help text.

This is the only place where defaults, bounds and help text live. The CLI reads its
help strings from these `Field`s and passes only the options a user actually gave
(everything else is `None`), so no default is ever written twice; `mygpt.configure`
builds a config from its layers (presets, a file, flags, `--set`). Every model is
frozen: a config is built once, validated once, and never mutated afterwards. Derived
values are properties, not fields.
"""

from __future__ import annotations

import re
import string
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from mygpt.errors import ConfigError

DEFAULT_OUT_DIR = "checkpoints"  # where runs are written, and where commands look for the newest
DEFAULT_DATA_DIR = "data"  # built-in corpora and prepared token files


def _size(value: object) -> object:
    return parse_size(value) if isinstance(value, str) else value


Size = Annotated[int, BeforeValidator(_size)]  # a number of bytes, also written as 32M, 1.5G, 200k


def _seconds(value: object) -> object:
    # `--set max_time=45` (JSON) and `max_time: 45` (YAML) give a number: seconds, as '45' is.
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


Duration = Annotated[Optional[str], BeforeValidator(_seconds)]  # 90s, 10m, 2h, or a number of seconds


class _Config(BaseModel):
    # defer_build: validators are compiled on first use, not at import, which keeps
    # `mygpt --help` and `mygpt info` fast.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class ModelConfig(_Config):
    """The architecture: everything needed to rebuild the network from its weights."""

    n_layer: int = Field(4, ge=1, le=1024, description="Number of transformer blocks.")
    n_head: int = Field(4, ge=1, le=1024, description="Attention heads per block.")
    n_embd: int = Field(128, ge=1, le=65536, description="Embedding width (a multiple of n_head).")
    block_size: int = Field(64, ge=1, le=1_048_576, description="Context length in tokens.")
    vocab_size: Optional[int] = Field(
        None, ge=1, le=2**31 - 1, description="Vocabulary size; taken from the data's tokenizer when not set."
    )
    vocab_multiple: Optional[int] = Field(
        None,
        ge=1,
        le=4096,
        description="Round the embedding and LM-head rows up to a multiple of this (the extra rows are never "
        "sampled); default: 64 on CUDA, where matmuls of such sizes are faster, else 1.",
    )
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout probability while training.")
    bias: bool = Field(True, description="Use biases in Linear and LayerNorm layers, as GPT-2 does.")
    tie_weights: bool = Field(True, description="Share one matrix between the token embedding and the LM head.")
    gelu: Literal["exact", "tanh"] = Field(
        "exact", description="GELU form: exact (erf), or tanh, GPT-2's approximation (several times slower on CPUs)."
    )
    pos: Literal["learned", "sinusoidal", "rope"] = Field(
        "rope",
        description="Position scheme: learned (GPT-2's table), sinusoidal (fixed, as in the Transformer paper) "
        "or rope (rotary: attention sees relative positions).",
    )

    @model_validator(mode="after")
    def _heads_divide_width(self) -> ModelConfig:
        if self.n_embd % self.n_head:
            below = self.n_embd // self.n_head * self.n_head
            options = ", ".join(str(v) for v in (below, below + self.n_head) if v > 0)
            raise ValueError(
                f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}: "
                f"every head gets n_embd/n_head channels. Try n_embd = {options}, or another n_head."
            )
        if self.pos == "rope" and self.head_size % 2:
            raise ValueError(
                f"pos=rope rotates channel pairs, so n_embd/n_head must be even (it is {self.head_size}). "
                "Change n_embd or n_head."
            )
        return self

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    @property
    def padded_vocab_size(self) -> int:
        """Rows of the embedding and the LM head: vocab_size rounded up to vocab_multiple."""
        if self.vocab_size is None:
            raise ValueError("ModelConfig.vocab_size is not set (it comes from the tokenizer).")
        multiple = self.vocab_multiple or 1
        return -(-self.vocab_size // multiple) * multiple


class GPTConfig(ModelConfig):
    """ModelConfig as nanoGPT-style scripts build it (Pico-GPT's and picoGPT's `GPTConfig`):
    GPT-2's vocabulary size by default (50304, nanoGPT's rounding of 50257), and fields
    that may be set one at a time (`config.n_layer = 2`). It is checked, and frozen into
    a ModelConfig, when a GPT is built from it."""

    model_config = ConfigDict(frozen=False)
    vocab_size: Optional[int] = Field(50304, ge=1, le=2**31 - 1, description="Vocabulary size (GPT-2's, padded).")

    def frozen(self) -> ModelConfig:
        try:
            return ModelConfig.model_validate(self.model_dump())
        except ValidationError as exc:
            problems = "; ".join(
                (f"{'.'.join(map(str, e['loc']))}: " if e["loc"] else "") + e["msg"].removeprefix("Value error, ")
                for e in exc.errors()
            )
            raise ConfigError(f"invalid GPTConfig: {problems}") from None


class TrainConfig(_Config):
    """A training run: the model to build, the data, the optimizer and the schedule."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    data: Optional[str] = Field(
        None,
        description="Prepared data folder (from `mygpt prepare`); default: the Shakespeare corpus, prepared if missing.",
    )
    out_dir: str = Field(DEFAULT_OUT_DIR, description="Folder that receives the checkpoint.")
    batch_size: int = Field(32, ge=1, le=1_000_000, description="Sequences per micro-batch.")
    grad_accum: int = Field(1, ge=1, le=100_000, description="Micro-batches accumulated per optimizer step.")
    max_iters: int = Field(800, ge=1, description="Optimizer steps in the run.")
    epochs: Optional[float] = Field(
        None,
        gt=0.0,
        le=1_000_000,
        description="Passes over the training tokens, turned into steps when the data is known (instead of max_iters).",
    )
    lr: float = Field(3e-3, gt=0.0, le=10.0, description="Peak learning rate (AdamW).")
    min_lr: float = Field(
        None,  # filled in by _min_lr_follows_lr
        ge=0.0,
        description="Learning rate at the end of the decay; a tenth of lr unless given.",
    )
    warmup_iters: int = Field(100, ge=0, description="Steps of linear warm-up from 0 to lr.")
    lr_schedule: Literal["cosine", "linear", "constant"] = Field(
        "cosine", description="After warm-up: cosine or linear decay to min_lr, or constant lr."
    )
    max_time: Duration = Field(
        None, description="Stop (with a final evaluation and save) after this much training time: 90s, 10m, 2h."
    )
    patience: Optional[int] = Field(
        None, ge=1, description="Stop after this many evaluations without a new best val loss."
    )
    target_loss: Optional[float] = Field(
        None,
        gt=0.0,
        description="Stop (with the usual save) at the first evaluation whose val loss is at or below this.",
    )
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0, description="Label smoothing of the training loss.")
    auto_tie_weights: bool = Field(
        False, description="Tie the LM head to the token embedding only when the data has under 1M training tokens."
    )
    mode: Optional[Literal["char", "token"]] = Field(
        None, description="Check that the data is char-level or token-level (bpe or word), as picoGPT's --mode did."
    )
    grad_checkpoint: bool = Field(
        False,
        description="Recompute each block's activations in the backward pass instead of keeping them: "
        "less memory for a longer context or a larger batch, for about a third more compute.",
    )
    weight_decay: float = Field(0.1, ge=0.0, description="AdamW weight decay, applied to weight matrices only.")
    beta1: float = Field(0.9, ge=0.0, lt=1.0, description="AdamW beta1.")
    beta2: float = Field(0.99, ge=0.0, lt=1.0, description="AdamW beta2.")
    grad_clip: float = Field(1.0, ge=0.0, description="Clip the gradient norm to this value; 0 turns clipping off.")
    eval_interval: int = Field(250, ge=1, description="Evaluate and save a checkpoint every this many steps.")
    eval_iters: int = Field(20, ge=1, le=100_000, description="Batches per split in each evaluation.")
    log_interval: int = Field(10, ge=1, description="Read the training loss back every this many steps.")
    seed: int = Field(1337, ge=0, le=2**63 - 1, description="Random seed for initialisation and batch sampling.")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="auto: bf16 autocast on CUDA GPUs that support it (fp16 on those that don't) and on CPUs with "
        "bf16 instructions; float32 elsewhere.",
    )
    compile: Literal["auto", "on", "off"] = Field(
        "auto", description="torch.compile the model; auto compiles on CUDA. A failure falls back to eager mode."
    )

    @model_validator(mode="before")
    @classmethod
    def _min_lr_follows_lr(cls, values: Any) -> Any:
        """min_lr left out is a tenth of lr, so that a lower --lr alone is a valid run."""
        if not isinstance(values, dict) or values.get("min_lr") is not None:
            return values
        try:  # a number, or its text ("1e-3" from a YAML file); anything else is lr's error to report
            lr = float(values.get("lr", cls.model_fields["lr"].default))
        except (TypeError, ValueError):
            return values
        return {**values, "min_lr": float(f"{lr / 10:.12g}")}

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.min_lr > self.lr:
            raise ValueError(
                f"min_lr={self.min_lr:g} is above lr={self.lr:g}: the schedule decays from lr down to min_lr. "
                "Give a --min-lr at or below --lr."
            )
        _check_device(self.device)
        if self.max_time is not None:
            parse_duration(self.max_time)
        return self

    def tokens_per_step(self, world_size: int = 1) -> int:
        """Tokens in one optimizer step: the global batch over every rank."""
        return self.batch_size * self.model.block_size * self.grad_accum * world_size

    @property
    def max_seconds(self) -> Optional[float]:
        return None if self.max_time is None else parse_duration(self.max_time)


def parse_duration(text: str) -> float:
    """'90s', '10m', '2h', '1.5h' or plain seconds ('45') -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"max_time={text!r} is not a duration: write it like 90s, 10m or 2h.")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


class SampleConfig(_Config):
    """How to sample text from a trained model."""

    prompt: str = Field("", description="Text the model continues.")
    max_new_tokens: int = Field(500, ge=0, le=10_000_000, description="Tokens to generate per sample.")
    temperature: float = Field(
        0.8, ge=0.0, le=100.0, description="Softmax temperature; 0 picks the most likely token (greedy)."
    )
    top_k: Optional[int] = Field(None, ge=1, description="Sample only among the k most likely tokens.")
    top_p: float = Field(
        1.0, gt=0.0, le=1.0, description="Sample from the smallest set of tokens whose probability reaches p."
    )
    seed: Optional[int] = Field(None, ge=0, le=2**63 - 1, description="Random seed; the same seed gives the same text.")
    num_samples: int = Field(1, ge=1, le=10_000, description="Independent samples to draw.")
    beams: int = Field(
        1,
        ge=1,
        le=1024,
        description="Beam search: keep the N most likely continuations at each step and print the "
        "best (deterministic; temperature, top-k and top-p do not apply).",
    )
    stop: tuple[str, ...] = Field((), description="End a sample when its text ends with this string (repeatable).")
    kv_cache: bool = Field(
        True, description="Reuse past keys and values instead of recomputing the context each token."
    )
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps.")

    @model_validator(mode="after")
    def _check(self) -> SampleConfig:
        _check_device(self.device)
        if self.beams > 1 and self.num_samples > 1:
            raise ValueError("beams gives one text, the most likely: use beams or num_samples, not both.")
        return self


class ChatConfig(SampleConfig):
    """Sampling plus the turn template of `mygpt chat`."""

    max_new_tokens: int = Field(200, ge=1, le=10_000_000, description="Tokens at most per reply.")
    stop: tuple[str, ...] = Field(("\nUser:",), description="A reply ends where it would start this string.")
    template: str = Field(
        "User: {text}\nAssistant:", description="How each of your lines is put to the model; {text} is the line."
    )
    system: str = Field("", description="Text put once before the conversation.")

    @model_validator(mode="after")
    def _has_placeholder(self) -> ChatConfig:
        problem = _template_problem(self.template)
        if problem:
            raise ValueError(f"template={self.template!r} {problem}")
        return self


def _template_problem(template: str) -> Optional[str]:
    """Why `template.format(text=line)` could fail or lose the line; None if it cannot.
    Only a bare {text} is allowed: a conversion, index or spec ({text[0]}, {text:d}) fails
    on some lines and not others, so it is refused here rather than at some later line."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:  # a lone { or }
        return f"is not a valid template ({exc}): write a literal brace as {{{{ or }}}}."
    for _, field, spec, conversion in parts:
        if field is not None and (field != "text" or spec or conversion):
            shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            return f"holds {shown}: the only placeholder allowed is {{text}} (write a literal brace as {{{{ or }}}})."
    if not any(field == "text" for _, field, _, _ in parts):
        return "has no {text} placeholder for your line."
    return None


class ServeConfig(ChatConfig):
    """`mygpt serve`: where to listen, its limits, and the defaults of requests that leave a
    sampling field out. Chat requests use the template, system text and stop strings of
    `mygpt chat`; completion requests stop only where they ask to."""

    max_new_tokens: int = Field(
        ChatConfig.model_fields["max_new_tokens"].default,
        ge=1,
        le=10_000_000,
        description="Tokens per choice when a request does not say (its max_tokens).",
    )
    stop: tuple[str, ...] = Field(
        ChatConfig.model_fields["stop"].default,
        description="Chat replies end where they would start this string (completions stop only where they ask).",
    )
    host: str = Field("127.0.0.1", min_length=1, description="Address to listen on (0.0.0.0: every interface).")
    port: int = Field(8000, ge=0, le=65535, description="Port to listen on (0: any free port).")
    api_key: Optional[str] = Field(
        None, min_length=1, description="Require 'Authorization: Bearer KEY' on /v1 routes (default: $MYGPT_API_KEY)."
    )
    max_batch: int = Field(8, ge=1, le=1024, description="Rows (choices of requests) decoded together, at most.")
    max_queue: int = Field(64, ge=1, le=100_000, description="Requests that may wait for a free row; more get 503.")
    max_body: Size = Field(
        1_000_000, ge=1_000, description="Largest request body in bytes (1M, 200k, ...); larger get 413."
    )
    max_prompt_tokens: int = Field(
        8192, ge=1, description="Longest prompt (or chat history) in tokens a request may send."
    )
    max_tokens_limit: int = Field(4096, ge=1, description="Largest max_tokens a request may ask for.")

    @model_validator(mode="after")
    def _default_within_limit(self) -> ServeConfig:
        if self.max_new_tokens > self.max_tokens_limit:
            raise ValueError(
                f"max_new_tokens={self.max_new_tokens} is above max_tokens_limit={self.max_tokens_limit}: "
                "requests could not use the default."
            )
        return self


def _check_device(device: str) -> None:
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", device):
        raise ValueError(f"device={device!r} is not one of auto, cpu, cuda, cuda:N, mps.")


def parse_size(text: str) -> int:
    """Bytes from '32M', '1.5G', '500k', '1000' (decimal units; KiB, MiB, GiB are binary)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*", text.lower())
    if not match:
        raise ValueError(f"{text!r} is not a size: write bytes, or a number with K, M or G (32M, 1.5G).")
    number, unit, binary = match.groups()
    return int(float(number) * (1024 if binary else 1000) ** " kmgt".index(unit or " "))
