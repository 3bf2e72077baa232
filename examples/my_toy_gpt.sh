#!/usr/bin/env bash
# My Toy GPT's usage with mygpt, typed as its README types it: `uv run training` (its
# defaults: one block of 16 heads, 5000 steps; --epochs counts steps) and `uv run
# generation N --load NAME`. Sizes are scaled down so it runs in seconds on a CPU.
#
#   bash examples/my_toy_gpt.sh [TEXT]    # default: tiny_shakespeare.txt in data/
set -euo pipefail
dataset=${1:-tiny_shakespeare.txt}
uv() { command uv "$1" --project "$(dirname "${BASH_SOURCE[0]}")/.." "${@:2}"; }  # this repository's mygpt, from any folder

# train on a text file in data/ (prepared on the fly), save it under a name, sample after training
uv run training --epochs 100 --batch-size 16 --learning-rate 0.002 --ctx 32 --emb 32 --heads 4 --blocks 2 \
  --dataset "$dataset" --output my_model --generate 100

# load it and continue training (a new run from its weights, saved beside it in my_model), then generate
uv run training --load my_model --dataset "$dataset" --epochs 50 --drop 0.1 --l2-reg 0.01 -B 16 --generate 50
uv run generation 200 --load my_model --seed 42
