"""Does llama.cpp run an exported GGUF file as mygpt runs the checkpoint?

    uv run --group llama python benchmarks/gguf_llamacpp.py [--json OUT] [--steps N]

The `llama` group installs llama-cpp-python, which builds llama.cpp from source the first
time (about 5 to 7 minutes on 2 cores). Small models are trained on Tiny Shakespeare (seconds
each), exported with `mygpt export gguf` at f32, f16 and q8_0, and loaded by llama.cpp:
- ids: llama.cpp's tokenizer against mygpt's, on 300 slices of the corpus (1 to 400
  characters, from anywhere in it) and a set of hard strings (numbers, whitespace runs,
  Unicode; a character model gets only those of its characters);
- logits: every position of a 50-token window of held-out text, mygpt's forward pass
  against llama.cpp's (logits_all, its default settings), as the largest absolute
  difference, beside the logits' own spread (standard deviation) for scale, and whether
  it is within the stated tolerance (TOLERANCE: f32 1e-2, f16 2.5e-2; q8_0 reported);
- greedy: 100 tokens after a prompt, `mygpt generate --temperature 0` against llama.cpp's
  most likely token at each step (never a token the file marks as suppressed);
- past the context: llama.cpp runs 16 tokens past block_size (a missing position row
  would abort it).
Models (2 layers, 4 heads, n_embd 64, context 128):
  (a) learned positions, tanh GELU, BPE with GPT-2's pattern (a ranks file learned here,
      as `prepare --tokenizer gpt2 --tokenizer-file` reads one)
  (a2) learned positions, tanh GELU, BPE trained here (`--tokenizer bpe`; --approximate)
  (b) mygpt's default: RoPE, exact GELU, characters (--approximate)
  (b2) RoPE, tanh GELU, characters
  (c) GPT-2 from a Hugging Face folder (transformers' GPT2LMHeadModel, random weights)
      through `mygpt import hf`
  (d) sinusoidal positions, untied head, no biases, tanh GELU, characters
Prints a table and writes JSON. Not part of the test run.
"""

from __future__ import annotations

import argparse
import base64
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import find_corpus, write_report

import mygpt
from mygpt import bpe, checkpoint, convert
from mygpt.config import SampleConfig
from mygpt.gguf_vocab import gguf_vocab
from mygpt.tokenizer import ENDOFTEXT, PRETRAINED, BPETokenizer

WINDOW, GREEDY, PROMPT_TOKENS = 50, 100, 10
# The stated bound on max |logit difference| (q8_0 is reported, not bounded). llama.cpp
# itself rounds on the CPU: GELU through a float16 table, the KV cache in float16.
TOLERANCE = {"f32": 1e-2, "f16": 2.5e-2}
SHAPE = dict(n_layer=2, n_head=4, n_embd=64, block_size=128)
HARD = [
    "  leading spaces", "trailing spaces   ", "ends with a line break\n  ", "numbers 1234567, 12 and 2026.",
    "tabs\t\tand\r\nCRLF", "a\n\n\nb", "'s 're 'LL I'm", "naïve café — “quotes” 日本語 🙂", "<|endoftext|> as text",
    "KING RICHARD III:\nWhat, ho!", "x" * 300,
]  # fmt: skip


def say(what: str) -> None:
    print(f"[{time.strftime('%X')}] {what}", file=sys.stderr, flush=True)


def mygpt_cli(*args: str) -> str:
    say("mygpt " + " ".join(args)[:100])
    done = subprocess.run([sys.executable, "-m", "mygpt", *args], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"mygpt {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def train(workdir: Path, name: str, data: Path, steps: int, **model: object) -> Path:
    say(f"training {name}")
    cfg = mygpt.TrainConfig(
        data=str(data), out_dir=str(workdir / name), max_iters=steps, eval_interval=steps, eval_iters=5,
        batch_size=16, lr=3e-3, device="cpu", seed=1, model={**SHAPE, **model},
    )  # fmt: skip
    for event in mygpt.train(cfg):
        if type(event).__name__ == "Finished":
            return event.path
    raise RuntimeError(f"training {name} did not finish")


def prepare(workdir: Path, corpus: Path, name: str, *args: str) -> Path:
    return Path(mygpt_cli("prepare", "--text", str(corpus), "--out", str(workdir / name), *args).strip())


def hf_model(workdir: Path, vocab: list[bytes]) -> Path:
    """A random GPT-2 from transformers, with a GPT-2-style vocabulary (the tokens of `vocab`
    up to the first that repeats one: every id a token, <|endoftext|> last), imported by
    `mygpt import hf`."""
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = workdir / "hf-gpt2"
    folder.mkdir()
    ranks: dict[bytes, int] = {}
    for token in vocab:
        if token in ranks:
            break
        ranks[token] = len(ranks)
    tokenizer = BPETokenizer("gpt2", PRETRAINED["gpt2"][0], ranks, {ENDOFTEXT: len(ranks)})
    convert.write_hf_tokenizer(tokenizer, folder)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=tokenizer.vocab_size, n_positions=SHAPE["block_size"], n_embd=SHAPE["n_embd"],
                        n_layer=SHAPE["n_layer"], n_head=SHAPE["n_head"], initializer_range=0.2)  # fmt: skip
    GPT2LMHeadModel(config).save_pretrained(folder, safe_serialization=True)
    return Path(mygpt_cli("import", "hf", str(folder), "--out", str(workdir / "c")).strip())


def texts_for(tokenizer: object, corpus: str, rng: random.Random) -> list[str]:
    slices = []
    for _ in range(300):
        start, length = rng.randrange(len(corpus) - 400), rng.randint(1, 400)
        slices.append(corpus[start : start + length])
    texts = slices + HARD
    if hasattr(tokenizer, "stoi"):  # a character model knows only its characters
        texts = [t for t in texts if all(c in tokenizer.stoi for c in t)]
    return texts


def compare(ckpt: Path, gguf: Path, corpus: str, val_text: str, prompt: str) -> dict:
    from llama_cpp import Llama

    loaded = checkpoint.load(ckpt)
    model, tokenizer = loaded.model.eval(), loaded.tokenizer
    V = model.config.vocab_size
    n_ctx = model.config.block_size + 16  # room for the check past the trained context
    llm = Llama(model_path=str(gguf), n_ctx=n_ctx, logits_all=True, n_threads=2, verbose=False)
    texts = texts_for(tokenizer, corpus, random.Random(0))
    mismatched = [t for t in texts if tokenizer.encode(t) != llm.tokenize(t.encode(), add_bos=False, special=False)]
    window = tokenizer.encode(val_text)[:WINDOW]
    with torch.no_grad():
        ours = model(torch.tensor([window]))[0, :, :V].numpy()  # (WINDOW, V)
    llm.reset()
    llm.eval(window)
    theirs = np.array(llm.scores[: len(window), :V])  # (WINDOW, V); a copy: the greedy run below reuses llm.scores
    start = tokenizer.encode(prompt)[:PROMPT_TOKENS]
    cfg = SampleConfig(max_new_tokens=GREEDY, temperature=0.0)
    our_ids = [int(step[0]) for step in mygpt.generate(model, start, cfg, seed=0)]
    their_ids = llama_greedy(llm, start, gguf_vocab(tokenizer).suppress)
    past = tokenizer.encode(corpus[:20000])[:n_ctx]
    llm.reset()
    llm.eval(past)  # past the trained context: llama.cpp must run on (a missing position row would abort it)
    cli = mygpt_cli("generate", str(ckpt), "--prompt", tokenizer.decode(start), "-n", str(GREEDY), "--temperature", "0")
    their_text = tokenizer.decode(start) + llm.detokenize(their_ids).decode("utf-8", errors="replace")
    return {
        "ids_equal": f"{len(texts) - len(mismatched)}/{len(texts)}",
        "ids_mismatch_examples": [t[:60] for t in mismatched[:3]],
        "max_logit_diff": float(np.abs(ours - theirs).max()),
        "logit_std": float(ours.std()),
        "greedy_ids_equal": our_ids == their_ids,
        "greedy_first_difference": next(
            (i for i, (a, b) in enumerate(zip(our_ids, their_ids, strict=True)) if a != b), None
        ),
        "greedy_text_equal": cli.rstrip("\n") == their_text.rstrip("\n"),
        "ran_past_block_size": llm.n_tokens == len(past),
    }


def llama_greedy(llm: object, start: list[int], suppress: list[int]) -> list[int]:
    llm.reset()
    llm.eval(start)
    out = []
    for _ in range(GREEDY):
        logits = np.array(llm.scores[llm.n_tokens - 1])
        logits[suppress] = -np.inf
        out.append(int(logits.argmax()))
        llm.eval([out[-1]])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default="benchmarks/results/gguf_llamacpp.json")
    parser.add_argument("--steps", type=int, default=300, help="training steps per model")
    parser.add_argument("--corpus", default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    corpus_path = find_corpus(args.corpus)
    corpus = corpus_path.read_text(encoding="utf-8")
    val_text, prompt = corpus[-3000:], corpus[-6000:-5900]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        say("learning a ranks file with GPT-2's pattern")
        ranks = work / "gpt2-like.tiktoken"
        vocab = bpe.train([corpus], 500, pattern=PRETRAINED["gpt2"][0]).vocab
        ranks.write_text("\n".join(f"{base64.b64encode(t).decode()} {i}" for i, t in enumerate(vocab)))
        char = prepare(work, corpus_path, "data-char", "--tokenizer", "char")
        gpt2 = prepare(work, corpus_path, "data-gpt2", "--tokenizer", "gpt2", "--tokenizer-file", str(ranks))
        ours = prepare(work, corpus_path, "data-bpe", "--tokenizer", "bpe", "--vocab-size", "512")
        models = {
            "a: learned, BPE (GPT-2 pattern)": (train(work, "a", gpt2, args.steps, pos="learned", gelu="tanh"), []),
            "a2: learned, BPE trained here": (train(work, "a2", ours, args.steps, pos="learned", gelu="tanh"),
                                              ["--approximate"]),
            "b: RoPE, exact GELU, char (default)": (train(work, "b", char, args.steps), ["--approximate"]),
            "b2: RoPE, tanh GELU, char": (train(work, "b2", char, args.steps, gelu="tanh"), []),
            "d: sinusoidal, untied, no bias, char": (train(work, "d", char, args.steps, pos="sinusoidal", gelu="tanh",
                                                           tie_weights=False, bias=False), []),
        }  # fmt: skip
        models["c: GPT-2 via import hf"] = (hf_model(work, vocab), [])
        rows = []
        for name, (ckpt, flags) in models.items():
            for dtype in ("f32", "f16", "q8_0"):
                gguf = work / f"{name[:2].strip(':')}-{dtype}.gguf"
                mygpt_cli("export", "gguf", str(ckpt), str(gguf), "--dtype", dtype, *flags)
                row = {"model": name, "dtype": dtype, "flags": flags, **compare(ckpt, gguf, corpus, val_text, prompt)}
                bound = TOLERANCE.get(dtype)
                row["tolerance"], row["within_tolerance"] = (
                    bound,
                    None if bound is None else row["max_logit_diff"] <= bound,
                )
                rows.append(row)
                print_row(row)
    write_report(args.json, "gguf_llamacpp", llama_cpp_python=llama_version(), window=WINDOW, greedy=GREEDY,
                 steps=args.steps, rows=rows)  # fmt: skip


def print_row(row: dict) -> None:
    if not hasattr(print_row, "header"):
        print_row.header = True
        print(
            f"| {'model':38} | dtype | ids equal | max logit diff (logit std) | within | greedy 100 ids | greedy text |"
        )
        print(f"|{'-' * 40}|-------|-----------|----------------------------|--------|----------------|-------------|")
    greedy = "equal" if row["greedy_ids_equal"] else f"differ at {row['greedy_first_difference']}"
    within = "-" if row["within_tolerance"] is None else f"{row['tolerance']:g}" if row["within_tolerance"] else "NO"
    print(f"| {row['model']:38} | {row['dtype']:5} | {row['ids_equal']:>9} | "
          f"{row['max_logit_diff']:.2e} ({row['logit_std']:.2f}){'':11} | {within:6} | {greedy:14} | "
          f"{'equal' if row['greedy_text_equal'] else 'differs':11} |", flush=True)  # fmt: skip


def llama_version() -> str:
    import llama_cpp

    return llama_cpp.__version__


if __name__ == "__main__":
    main()
