import math

import pytest
import torch
import torch.nn.functional as F

from mygpt.config import ModelConfig
from mygpt.model import GPT


def test_forward_returns_logits_for_every_position(tiny: ModelConfig) -> None:
    model = GPT(tiny)
    idx = torch.randint(0, tiny.vocab_size, (3, 10))
    assert model(idx).shape == (3, 10, tiny.vocab_size)


def test_changing_a_later_token_leaves_earlier_logits_alone(tiny: ModelConfig) -> None:
    torch.manual_seed(0)
    model = GPT(tiny).eval()
    idx = torch.randint(0, tiny.vocab_size, (1, 12))
    changed = idx.clone()
    changed[0, 7] = (idx[0, 7] + 1) % tiny.vocab_size
    before, after = model(idx), model(changed)
    torch.testing.assert_close(before[:, :7], after[:, :7])
    assert not torch.allclose(before[:, 7:], after[:, 7:])


def test_loss_falls_on_a_fixed_batch(tiny: ModelConfig) -> None:
    torch.manual_seed(0)
    model = GPT(tiny)
    x = torch.randint(0, tiny.vocab_size, (4, 16))
    y = torch.roll(x, -1, dims=1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(math.log(tiny.vocab_size), rel=0.1)  # starts near uniform
    assert losses[-1] < 0.5 * losses[0]


def test_head_is_tied_to_token_embedding_and_counted_once(tiny: ModelConfig) -> None:
    model = GPT(tiny)
    assert model.lm_head.weight is model.transformer.wte.weight
    distinct = {p.data_ptr(): p.numel() for p in model.state_dict().values()}
    assert model.num_params() == sum(distinct.values())


def test_gpt2_parameter_names(tiny: ModelConfig) -> None:
    names = set(GPT(tiny).state_dict())
    for name in ("transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.attn.c_attn.weight",
                 "transformer.h.1.mlp.c_proj.bias", "transformer.h.0.ln_1.weight", "transformer.ln_f.weight",
                 "lm_head.weight"):  # fmt: skip
        assert name in names


def test_residual_projections_start_smaller() -> None:
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=8, n_head=2, n_embd=64, block_size=8, vocab_size=16))
    c_proj = model.transformer.h[0].mlp.c_proj.weight.std().item()
    c_fc = model.transformer.h[0].mlp.c_fc.weight.std().item()
    assert c_proj == pytest.approx(0.02 / math.sqrt(16), rel=0.1)
    assert c_fc == pytest.approx(0.02, rel=0.1)


def test_sequence_longer_than_context_is_rejected(tiny: ModelConfig) -> None:
    with pytest.raises(ValueError, match="longer than block_size"):
        GPT(tiny)(torch.zeros(1, tiny.block_size + 1, dtype=torch.long))


def test_model_without_vocab_size_is_refused() -> None:
    with pytest.raises(ValueError, match="vocab_size"):
        GPT(ModelConfig(n_layer=1, n_head=1, n_embd=8, block_size=8))
