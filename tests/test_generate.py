import pytest
import torch

from mygpt.config import ModelConfig, SampleConfig
from mygpt.generate import generate, prompt_ids, sample_next_token
from mygpt.model import GPT
from mygpt.tokenizer import CharTokenizer


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


LOGITS = torch.tensor([[0.1, 2.0, -1.0, 1.5, 0.0], [3.0, 0.0, 0.5, 0.2, 2.9]])


def test_temperature_zero_is_greedy_and_ignores_the_seed() -> None:
    for seed in range(5):
        assert sample_next_token(LOGITS, temperature=0.0, generator=seeded(seed)).tolist() == [1, 0]


def test_top_k_one_equals_greedy_for_any_seed() -> None:
    for seed in range(20):
        assert sample_next_token(LOGITS, temperature=1.0, top_k=1, generator=seeded(seed)).tolist() == [1, 0]


def test_top_k_never_samples_outside_the_k_best() -> None:
    batch = LOGITS[:1].repeat(2000, 1)
    picks = sample_next_token(batch, temperature=2.0, top_k=2, generator=seeded(0))
    assert set(picks.tolist()) == {1, 3}


def test_top_k_larger_than_vocabulary_is_clamped() -> None:
    picks = sample_next_token(LOGITS, temperature=1.0, top_k=1000, generator=seeded(0))
    assert picks.shape == (2,)


def test_tiny_top_p_keeps_exactly_the_most_likely_token() -> None:
    for seed in range(20):
        assert sample_next_token(LOGITS, temperature=1.0, top_p=1e-6, generator=seeded(seed)).tolist() == [1, 0]


def test_top_p_keeps_the_smallest_set_reaching_p() -> None:
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    batch = probs.log().repeat(4000, 1)
    picks = set(sample_next_token(batch, temperature=1.0, top_p=0.75, generator=seeded(0)).tolist())
    assert picks == {0, 1}  # 0.5 alone is short of 0.75; 0.5 + 0.3 reaches it


def test_the_same_seed_gives_the_same_tokens() -> None:
    a = sample_next_token(LOGITS.repeat(50, 1), generator=seeded(7))
    b = sample_next_token(LOGITS.repeat(50, 1), generator=seeded(7))
    c = sample_next_token(LOGITS.repeat(50, 1), generator=seeded(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.fixture
def model(tiny: ModelConfig) -> GPT:
    torch.manual_seed(0)
    return GPT(tiny)


def test_generate_yields_one_id_per_sample_per_step_beyond_the_context(model: GPT) -> None:
    cfg = SampleConfig(max_new_tokens=model.config.block_size * 2, num_samples=3)
    steps = list(generate(model, [1, 2, 3], cfg, seed=0))
    assert len(steps) == 2 * model.config.block_size
    assert all(s.shape == (3,) and 0 <= s.min() and s.max() < model.config.vocab_size for s in steps)


def test_generate_is_reproducible_from_its_seed(model: GPT) -> None:
    cfg = SampleConfig(max_new_tokens=20, temperature=1.0)
    run = lambda seed: torch.stack(list(generate(model, [0], cfg, seed=seed)))  # noqa: E731
    assert torch.equal(run(3), run(3)) and not torch.equal(run(3), run(4))


def test_empty_prompt_starts_from_a_newline() -> None:
    tok = CharTokenizer.train("ab\ncd")
    assert prompt_ids(tok, "") == tok.encode("\n")
    assert prompt_ids(CharTokenizer.train("abc"), "") == [0]
    assert prompt_ids(tok, "cab") == tok.encode("cab")


def test_empty_prompt_starts_from_the_document_separator_with_bpe() -> None:
    from mygpt import bpe
    from mygpt.tokenizer import BPETokenizer

    tok = BPETokenizer.from_merges(bpe.train(["ab ab ab\n"], 2))
    assert prompt_ids(tok, "") == [tok.eot_id] == [258]
