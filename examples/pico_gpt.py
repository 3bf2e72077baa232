"""Pico-GPT's example flow with mygpt: a forward pass through a tiny GPT, its parameter
counts, a quick training run, then text from `generate_text` (Pico-GPT's example.py,
train_small.py and generate.py, in one script).

    uv run python examples/pico_gpt.py                   # trains on data/tiny_shakespeare.txt
    uv run python examples/pico_gpt.py notes.txt --out checkpoints/notes --max-iters 500
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

import mygpt
from mygpt import GPT, GPTConfig, generate_text, load_model
from mygpt.events import Finished, Started, Stepped


def forward_pass() -> None:
    """example.py: build a tiny GPT, run a batch through it, and score it."""
    print("=== Testing Forward Pass ===")
    config = GPTConfig()  # as Pico-GPT's README sets one up: field by field, checked when the model is built
    config.vocab_size = 100
    config.block_size = 32
    config.n_layer, config.n_head, config.n_embd = 2, 2, 64
    config.pos = "learned"  # Pico-GPT's position embeddings: a learned table
    model = GPT(config)
    print(f"Created tiny GPT with {model.get_num_params():,} parameters")
    print(f"Non-embedding parameters: {model.get_num_params(non_embedding=True):,}")
    idx = torch.randint(0, config.vocab_size, (2, 10))
    targets = torch.randint(0, config.vocab_size, (2, 10))
    logits = model(idx)  # (2, 10, 100): the model returns logits; the loss is ours to compute
    loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    print(f"Input shape: {idx.shape}")
    print(f"Output logits shape: {logits.shape}")
    print(f"Loss: {loss.item():.4f}")


def train_small(corpus: Path, out: Path, max_iters: int, device: str) -> Path:
    """train_small.py: a small model, trained briefly; returns the checkpoint's path."""
    print("=== Training a small model ===")
    data = mygpt.prepare(mygpt.PrepareConfig(text=(str(corpus),), out=str(out / "data")))
    config = mygpt.TrainConfig(
        data=str(data), out_dir=str(out), device=device, max_iters=max_iters, batch_size=16, lr=5e-3, min_lr=5e-4,
        warmup_iters=10, eval_interval=max_iters, eval_iters=5, log_interval=20,
        model=mygpt.ModelConfig(n_layer=2, n_head=2, n_embd=64, block_size=64),  # the vocabulary: the data's
    )  # fmt: skip
    for event in mygpt.train(config):  # the library yields events; printing them is up to us
        if isinstance(event, Started):
            print(f"Training data: {event.train_tokens:,} tokens")
            print(f"Model parameters: {event.num_params:,}")
        elif isinstance(event, Stepped) and event.loss is not None:
            print(f"iter {event.step:3d}: loss {event.loss:.4f}")
        elif isinstance(event, Finished):
            print(f"Model saved as '{event.path}'")
            return event.path
    raise SystemExit("training was interrupted")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "corpus",
        nargs="?",
        type=Path,
        default=Path("data/tiny_shakespeare.txt"),
        help="a UTF-8 text file (default: data/tiny_shakespeare.txt, there after `mygpt prepare`)",
    )
    parser.add_argument("--out", type=Path, default=Path("checkpoints/pico_gpt"), help="folder for data and checkpoint")
    parser.add_argument("--max-iters", type=int, default=60, help="training steps")
    parser.add_argument("--prompt", default="The king", help="text to continue")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    args = parser.parse_args()
    if not args.corpus.is_file():
        parser.error(f"no such file: {args.corpus}. `uv run mygpt prepare` downloads Tiny Shakespeare there.")

    print("Pico-GPT Example Usage")
    print("=" * 30)
    forward_pass()
    path = train_small(args.corpus, args.out, args.max_iters, args.device)

    print("=== Generating ===")  # generate.py
    model, tokenizer = load_model(path)
    print(f"Model loaded from {path}")
    result = generate_text(model, tokenizer, prompt=args.prompt, max_tokens=100, temperature=0.7, top_k=15)
    print(f"\nPrompt: {args.prompt}")
    print(f"Generated: {result}")


if __name__ == "__main__":
    main()
