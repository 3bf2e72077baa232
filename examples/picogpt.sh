#!/usr/bin/env bash
# picoGPT's quickstart with mygpt, spelled as picoGPT's README spells it: char-level
# prepare -> train -> sample, then token-level (the word tokenizer, picoGPT's fallback)
# with its regularisation flags, resume, warm start and chat. Sizes are scaled down so
# it runs in seconds on a CPU; picoGPT's own sizes are in the comments.
#
#   bash examples/picogpt.sh [TEXT] [OUT]    # default: data/tiny_shakespeare.txt, checkpoints/picogpt
set -euo pipefail
text=${1:-data/tiny_shakespeare.txt}
out=${2:-checkpoints/picogpt}
mygpt() { uv run --project "$(dirname "${BASH_SOURCE[0]}")/.." mygpt "$@"; }  # this repository's, from any folder
small=(--n_layer 2 --n_head 2 --n_embd 32 --block_size 32 --batch_size 16 --eval_interval 50 --eval_iters 5)

# 1) prepare, train and sample char-level (picoGPT: --n_layer 4 --n_embd 256 --block_size 256 --max_iters 2000)
mygpt prepare --text_path "$text" --out_dir "$out/data/char"
mygpt train --mode char --data_dir "$out/data/char" --ckpt_dir "$out/char" "${small[@]}" --max_iters 100
mygpt generate --mode char --ckpt "$out/char/latest.pt" --vocab_path "$out/data/char/vocab.json" \
  --prompt "What is wisdom?\n" --max_new_tokens 100

# resume (--max_iters is the run's total in mygpt: 100 done, 50 more), then warm-start from the best weights
mygpt train --mode char --data_dir "$out/data/char" --ckpt_dir "$out/char" --resume "$out/char/latest.pt" --max_iters 150
mygpt train --mode char --data_dir "$out/data/char" --ckpt_dir "$out/char" --init_from "$out/char/best.pt" \
  --no_strict_init --max_iters 20

# 2) token-level, with a random split and the overfitting guards of picoGPT's README
mygpt prepare --text_path "$text" --out_dir "$out/data/token" --vocab_size 2000 --backend word \
  --random_split --split_seed 1337
mygpt train --mode token --data_dir "$out/data/token" --tokenizer_path "$out/data/token/tokenizer.json" \
  --ckpt_dir "$out/token" "${small[@]}" --max_iters 100 --dropout 0.1 --weight_decay 0.05 \
  --label_smoothing 0.05 --auto_tie_weights --cosine_lr --warmup_iters 10 --lr 2e-3 --min_lr 1e-5
mygpt generate --mode token --ckpt "$out/token/latest.pt" --prompt "Q: What is knowledge?\nA:" --max_new_tokens 40

# 3) chat: one line in, one reply out
printf 'What is virtue?\n/quit\n' | mygpt chat --mode token --ckpt "$out/token/latest.pt" \
  --system_prompt "You are picoGPT, a helpful assistant." --max_new_tokens 40
