"""The production GPT's flow with mygpt: train from a YAML config file, then continue a
prompt with `model.generate` and decode it (its `scripts/train.py --config
configs/small.yaml`, then its Python API).

    uv run python examples/production_gpt.py             # trains on data/tiny_shakespeare.txt
    uv run python examples/production_gpt.py notes.txt --config my.yaml --out checkpoints/notes
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import mygpt
from mygpt import load_model, train_from_config

SMALL = Path(__file__).parent / "configs" / "small.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "corpus",
        nargs="?",
        type=Path,
        default=Path("data/tiny_shakespeare.txt"),
        help="a UTF-8 text file (default: data/tiny_shakespeare.txt, there after `mygpt prepare`)",
    )
    parser.add_argument("--config", type=Path, default=SMALL, help="a .yaml, .toml or .json config file")
    parser.add_argument(
        "--out", type=Path, default=Path("checkpoints/production_gpt"), help="folder for data and checkpoint"
    )
    parser.add_argument("--prompt", default="The king", help="text to continue")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    args = parser.parse_args()
    if not args.corpus.is_file():
        parser.error(f"no such file: {args.corpus}. `uv run mygpt prepare` downloads Tiny Shakespeare there.")

    data = mygpt.prepare(mygpt.PrepareConfig(text=(str(args.corpus),), out=str(args.out / "data")))
    # The file's settings, then these on top (keyword arguments, as TrainConfig names them).
    path = train_from_config(args.config, data=str(data), out_dir=str(args.out), device=args.device)
    print(f"Trained: {path}")

    model, tokenizer = load_model(path)
    input_ids = tokenizer.encode(args.prompt)
    input_tensor = torch.tensor([input_ids])  # (1, T)
    with torch.no_grad():
        output = model.generate(input_tensor, max_new_tokens=50, temperature=0.8)  # (1, T + 50)
    generated_text = tokenizer.decode(output[0].tolist())
    print(generated_text)


if __name__ == "__main__":
    main()
