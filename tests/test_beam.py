"""Beam search against greedy decoding and against trying every continuation."""

from __future__ import annotations

import itertools

import pytest
import torch

from mygpt.beam import beam_search
from mygpt.config import ModelConfig, SampleConfig
from mygpt.model import GPT
from mygpt.sampling import generate

CPU = torch.device("cpu")


def model(vocab_size: int, block_size: int = 16, seed: int = 0) -> GPT:
    """Random weights of a larger scale than the initialisation's: sharper distributions that
    depend on the context, so that the most likely continuation is not always greedy's."""
    torch.manual_seed(seed)
    config = ModelConfig(
        n_layer=2, n_head=2, n_embd=16, block_size=block_size, vocab_size=vocab_size, tie_weights=False
    )
    gpt = GPT(config)
    with torch.no_grad():
        for p in gpt.parameters():
            if p.dim() == 2:
                p.normal_(0, 2.0 / p.shape[1] ** 0.5)
    return gpt.eval()


def log_prob(gpt: GPT, prompt: list[int], continuation: tuple[int, ...]) -> float:
    """The continuation's log-probability, from one forward pass over prompt and continuation."""
    ids = torch.tensor([prompt + list(continuation)])  # (1, T)
    logp = gpt(ids)[0, :, : gpt.config.vocab_size].log_softmax(dim=-1)  # (T, V)
    return sum(float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(continuation))


def test_one_beam_is_greedy_decoding_past_the_context() -> None:
    gpt = model(vocab_size=12)
    greedy = [
        int(t) for t in generate(gpt, [1, 2, 3], SampleConfig(temperature=0, max_new_tokens=40), seed=0, device=CPU)
    ]
    assert beam_search(gpt, [1, 2, 3], beams=1, max_new_tokens=40) == greedy


@pytest.mark.parametrize(("seed", "prompt"), [(1, [3, 1, 4, 1, 5]), (4, [0])])  # where greedy is not the best
def test_enough_beams_find_the_most_likely_continuation(seed: int, prompt: list[int]) -> None:
    V, L = 6, 3
    gpt = model(vocab_size=V, seed=seed)
    with torch.no_grad():
        scored = {c: log_prob(gpt, prompt, c) for c in itertools.product(range(V), repeat=L)}
    best = max(scored, key=scored.get)
    assert beam_search(gpt, prompt, beams=V ** (L - 1), max_new_tokens=L) == list(best)
    assert scored[tuple(beam_search(gpt, prompt, beams=1, max_new_tokens=L))] < scored[best] - 0.1


def test_beam_search_is_deterministic_and_keeps_its_length() -> None:
    gpt = model(vocab_size=12)
    first = beam_search(gpt, [5], beams=4, max_new_tokens=30)
    assert first == beam_search(gpt, [5], beams=4, max_new_tokens=30) and len(first) == 30
    assert beam_search(gpt, [5], beams=4, max_new_tokens=0) == []


def test_generate_beams_prints_the_beam_search_text(tmp_path) -> None:
    from typer.testing import CliRunner

    from mygpt import checkpoint
    from mygpt.cli import app
    from mygpt.tokenizer import CharTokenizer

    tokenizer = CharTokenizer.train("abcdefghijkl")
    gpt = model(vocab_size=tokenizer.vocab_size, seed=1)
    path = tmp_path / "m.safetensors"
    checkpoint.save(path, gpt, checkpoint.Meta(model=gpt.config, tokenizer=tokenizer.to_dict()))
    args = ["generate", str(path), "--prompt", "abc", "-n", "20", "--beams", "3", "--device", "cpu"]
    printed = [CliRunner().invoke(app, args).stdout for _ in range(2)]
    expected = beam_search(checkpoint.load(path).model, tokenizer.encode("abc"), beams=3, max_new_tokens=20)
    assert printed[0] == printed[1] == "abc" + tokenizer.decode(expected) + "\n"
    refused = CliRunner().invoke(app, args + ["--num-samples", "2"])
    assert refused.exit_code == 2 and "beams" in refused.stderr
