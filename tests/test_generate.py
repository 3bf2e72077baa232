import pytest
import torch

from mygpt.config import ModelConfig, SampleConfig
from mygpt.model import GPT
from mygpt.sampling import TextStream, generate, prompt_ids, prompt_tail, sample_next_token
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


@pytest.mark.parametrize("top_p", [1e-6, 1e-300])  # 1e-300 is 0 in float32
def test_tiny_top_p_keeps_exactly_the_most_likely_token(top_p: float) -> None:
    for seed in range(20):
        assert sample_next_token(LOGITS, temperature=1.0, top_p=top_p, generator=seeded(seed)).tolist() == [1, 0]


@pytest.mark.parametrize("temperature", [1e-6, 1e-40])  # 1e-40 would overflow the scaled logits to inf
def test_a_tiny_temperature_is_greedy(temperature: float) -> None:
    for seed in range(5):
        assert sample_next_token(LOGITS, temperature=temperature, generator=seeded(seed)).tolist() == [1, 0]


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


# KV cache: the cached path must see exactly what the recompute path sees.


def record_logits(monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """Make generation greedy and keep the logits of every step."""
    import mygpt.sampling as gen

    seen: list[torch.Tensor] = []

    def greedy(logits, temperature=1.0, top_k=None, top_p=1.0, generator=None):
        seen.append(logits.clone())
        return logits.argmax(dim=-1)

    monkeypatch.setattr(gen, "sample_next_token", greedy)
    return seen


@pytest.mark.parametrize("pos", ["learned", "sinusoidal", "rope"])
@pytest.mark.parametrize("prompt_len", [1, 5, 40])  # 40 > block_size: the prompt keeps its tail
def test_cached_and_recomputed_logits_match_at_every_step(
    tiny: ModelConfig, monkeypatch, prompt_len: int, pos: str
) -> None:
    torch.manual_seed(0)
    model = GPT(tiny.model_copy(update={"pos": pos}))
    seen = record_logits(monkeypatch)
    cfg = SampleConfig(max_new_tokens=3 * model.config.block_size, num_samples=2)  # well past the context window
    start = [i % model.config.vocab_size for i in range(prompt_len)]
    cached = torch.stack(list(generate(model, start, cfg, seed=0, use_cache=True)))
    n = len(seen)
    recomputed = torch.stack(list(generate(model, start, cfg, seed=0, use_cache=False)))
    assert torch.equal(cached, recomputed)  # the same greedy tokens
    assert len(seen) == 2 * n == 2 * cfg.max_new_tokens
    for with_cache, without in zip(seen[:n], seen[n:], strict=True):
        torch.testing.assert_close(with_cache, without, rtol=1e-4, atol=1e-5)


def test_samples_continue_one_prompt_and_differ_afterwards(model: GPT) -> None:
    cfg = SampleConfig(max_new_tokens=5, num_samples=3, temperature=1.5)
    steps = torch.stack(list(generate(model, [1, 2, 3, 4], cfg, seed=0)), dim=1)  # (3, 5)
    assert steps.shape == (3, 5)
    assert len({tuple(row) for row in steps.tolist()}) > 1  # one shared prefill, then each its own stream
    one = SampleConfig(max_new_tokens=5, num_samples=1, temperature=0)
    greedy = SampleConfig(max_new_tokens=5, num_samples=3, temperature=0)
    rows = torch.stack(list(generate(model, [1, 2, 3, 4], greedy, seed=0)), dim=1)  # (3, 5)
    alone = torch.stack(list(generate(model, [1, 2, 3, 4], one, seed=0)), dim=1)  # (1, 5)
    assert torch.equal(rows, alone.expand(3, -1))  # greedy rows are the single sample, each


def test_text_stream_holds_back_a_stop_string_split_across_tokens() -> None:
    tok = CharTokenizer.train("abcdefghijklmnopqrstuvwxyz:\n ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    stream = TextStream(tok, ["\nUser:"])
    out = [stream.push(tok.encode(c)) for c in "hi\nUse it\nUser: more"]
    assert "".join(out) == "hi\nUse it" and stream.stopped  # the stop string itself is not printed
    assert out[2:6] == ["", "", "", ""]  # "\nUse" could have become "\nUser:" and was held back
    assert out[6] == "\nUse " and stream.finish() == ""


def test_text_stream_releases_held_text_at_the_end() -> None:
    tok = CharTokenizer.train("ab\nU")
    stream = TextStream(tok, ["\nUser:"])
    assert stream.push(tok.encode("ab\nU")) == "ab" and stream.finish() == "\nU"


def test_text_stream_with_bytes_and_stops_never_shows_half_a_character() -> None:
    from test_tokenizer import BytesTokenizer

    tok = BytesTokenizer()
    stream = TextStream(tok, ["€!"])
    pieces = [stream.push([b]) for b in "a€ b€!c".encode()]
    assert "".join(pieces) == "a€ b" and stream.stopped and "\ufffd" not in "".join(pieces)


def test_prompt_tail_counts_what_does_not_fit() -> None:
    assert prompt_tail(list(range(10)), 16) == 0 and prompt_tail(list(range(20)), 16) == 4


def test_text_stream_keeps_what_it_emitted() -> None:
    tok = CharTokenizer.train("abc:")
    stream = TextStream(tok, [":"])
    for c in "ab:c":
        stream.push(tok.encode(c))
    assert stream.text == "ab" and stream.stopped


def test_sampling_follows_the_distribution() -> None:
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    picks = sample_next_token(probs.log().repeat(20000, 1), temperature=1.0, generator=seeded(0))
    freq = torch.bincount(picks, minlength=4).float() / len(picks)
    torch.testing.assert_close(freq, probs, atol=0.015, rtol=0)
