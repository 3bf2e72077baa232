"""TinyGPT's flow with mygpt: a character-level model trained on a text file, then text
sampled from Python (TinyGPT's src/train.py and src/generate.py in one script).

The settings sit at the top, as in TinyGPT's train.py; TinyGPT's names are in the
comments. The checkpoint holds the tokenizer, so there is no char_tokenizer.json to keep.

    uv run python examples/tiny_gpt.py                   # trains on data/tiny_shakespeare.txt
    uv run python examples/tiny_gpt.py notes.txt --out checkpoints/notes
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import mygpt
from mygpt.events import Evaluated, Finished

# model
BLOCK_SIZE = 64  # block_size: the context window
N_EMBD = 64  # d_model
N_HEAD = 4  # d_model / d_head
N_LAYER = 2  # n_layers
DROPOUT = 0.0
# training
BATCH_SIZE = 16
MAX_ITERS = 60
EVAL_INTERVAL = 30
EVAL_ITERS = 5
LEARNING_RATE = 5e-3
# generation
PROMPT = "KING"
MAX_NEW_TOKENS = 200
TEMPERATURE = 0.8
TOP_K = 40


def train(corpus: Path, out: Path, device: str) -> Path:
    """src/train.py: a char tokenizer from the corpus, a 90/10 split, AdamW, periodic evals."""
    prepare = mygpt.PrepareConfig(text=(str(corpus),), tokenizer="char", val_fraction=0.1, out=str(out / "data"))
    data = mygpt.prepare(prepare)
    model = mygpt.ModelConfig(block_size=BLOCK_SIZE, n_embd=N_EMBD, n_head=N_HEAD, n_layer=N_LAYER, dropout=DROPOUT)
    config = mygpt.TrainConfig(
        model=model, data=str(data), out_dir=str(out), device=device, batch_size=BATCH_SIZE, max_iters=MAX_ITERS,
        eval_interval=EVAL_INTERVAL, eval_iters=EVAL_ITERS, lr=LEARNING_RATE, min_lr=LEARNING_RATE / 10,
        warmup_iters=MAX_ITERS // 10,
    )  # fmt: skip
    for event in mygpt.train(config):
        if isinstance(event, Evaluated):
            print(f"step {event.step}: train loss {event.train_loss:.4f}, val loss {event.val_loss:.4f}")
        elif isinstance(event, Finished):
            print(f"saved {event.path}")
            return event.path
    raise SystemExit("training was interrupted")


def generate(path: Path, prompt: str) -> str:
    """src/generate.py: load the checkpoint (tokenizer included), encode a prompt, sample."""
    loaded = mygpt.load_checkpoint(path)
    model, tokenizer = loaded.model, loaded.tokenizer
    idx = torch.tensor([tokenizer.encode(prompt)])  # (1, T)
    out = model.generate(idx, max_new_tokens=MAX_NEW_TOKENS, temperature=TEMPERATURE, top_k=TOP_K)  # (1, T + N)
    return tokenizer.decode(out[0].tolist())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "corpus",
        nargs="?",
        type=Path,
        default=Path("data/tiny_shakespeare.txt"),
        help="a UTF-8 text file (default: data/tiny_shakespeare.txt, there after `mygpt prepare`)",
    )
    parser.add_argument("--out", type=Path, default=Path("checkpoints/tiny_gpt"), help="folder for data and checkpoint")
    parser.add_argument("--prompt", default=PROMPT, help="text to continue")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    args = parser.parse_args()
    if not args.corpus.is_file():
        parser.error(f"no such file: {args.corpus}. `uv run mygpt prepare` downloads Tiny Shakespeare there.")
    path = train(args.corpus, args.out, args.device)
    print(generate(path, args.prompt))


if __name__ == "__main__":
    main()
