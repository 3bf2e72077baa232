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
    model = GPT(tiny.model_copy(update={"pos": "learned"}))  # random tokens: learned positions memorise fastest
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


@pytest.mark.parametrize("tied", [True, False])
def test_get_num_params_matches_a_hand_count(tiny: ModelConfig, tied: bool) -> None:
    model = GPT(tiny.model_copy(update={"pos": "learned", "tie_weights": tied}))
    C, V, T, L = 16, 32, 16, 2
    block = 2 * (2 * C) + (3 * C * C + 3 * C) + (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C)  # 2 LNs, 4 Linears
    body = L * block + 2 * C  # blocks and ln_f
    head = 0 if tied else C * V  # a tied head is the token table itself
    assert model.get_num_params() == model.num_params() == V * C + T * C + body + head
    # nanoGPT's non-embedding count: no position table, and the token table only as the head
    assert model.get_num_params(non_embedding=True) == body + V * C
    rope = GPT(tiny)  # no position parameters to leave out
    assert rope.get_num_params(non_embedding=True) == rope.get_num_params() == V * C + body


def test_gpt2_parameter_names(tiny: ModelConfig) -> None:
    names = set(GPT(tiny.model_copy(update={"pos": "learned"})).state_dict())  # GPT-2's own position scheme
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


@pytest.mark.parametrize("pos", ["learned", "sinusoidal", "rope"])
def test_every_position_scheme_is_causal_and_learns(tiny: ModelConfig, pos: str) -> None:
    torch.manual_seed(0)
    config = tiny.model_copy(update={"pos": pos})
    model = GPT(config)
    x = torch.randint(0, tiny.vocab_size, (4, 16))
    changed = x.clone()
    changed[:, 9] = (x[:, 9] + 1) % tiny.vocab_size
    torch.testing.assert_close(model(x)[:, :9], model(changed)[:, :9])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = F.cross_entropy(model(x).flatten(0, 1), torch.roll(x, -1, dims=1).flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
    assert ("transformer.wpe.weight" in model.state_dict()) == (pos == "learned")  # fixed schemes store nothing


@pytest.mark.parametrize("pos", ["sinusoidal", "rope"])
def test_position_schemes_tell_positions_apart(tiny: ModelConfig, pos: str) -> None:
    # One token, then another repeated: only how far back the first one is (position
    # information) can make the logits at positions 2 and 6 differ.
    torch.manual_seed(0)
    model = GPT(tiny.model_copy(update={"pos": pos})).eval()
    logits = model(torch.tensor([[7, 3, 3, 3, 3, 3, 3, 3]]))  # (1, 8, V)
    assert not torch.allclose(logits[0, 2], logits[0, 6], atol=1e-4)


def test_rope_depends_only_on_relative_positions(tiny: ModelConfig) -> None:
    # Keys and queries shifted by the same number of positions give the same scores.
    from mygpt.positions import rope_angles, rope_rotate

    torch.manual_seed(0)
    q, k = torch.randn(2, 1, 1, 1, 8).unbind(0)  # (B=1, T=1, H=1, hs=8) each
    angles = rope_angles(64, 8)  # (64, 4)
    rot = lambda x, p: rope_rotate(x, torch.polar(torch.ones(1, 4), angles[p : p + 1])[:, None])  # noqa: E731
    score = lambda pq, pk: (rot(q, pq) * rot(k, pk)).sum().item()  # noqa: E731
    assert score(10, 3) == pytest.approx(score(50, 43), abs=1e-5)
    assert score(10, 3) != pytest.approx(score(10, 4), abs=1e-3)


def test_rope_needs_an_even_head_size() -> None:
    with pytest.raises(ValueError, match="must be even"):
        ModelConfig(n_head=3, n_embd=15, pos="rope")
    ModelConfig(n_head=3, n_embd=15, pos="learned")  # only RoPE cares


@pytest.mark.parametrize("pos", ["rope", "learned"])
def test_recomputing_activations_gives_the_same_gradients(tiny: ModelConfig, pos: str) -> None:
    config = tiny.model_copy(update={"pos": pos, "dropout": 0.1})  # dropout: its masks must be drawn again alike
    idx = torch.randint(0, config.vocab_size, (4, config.block_size))
    grads = []
    for recompute in (False, True):
        torch.manual_seed(0)
        model = GPT(config).train()
        model.grad_checkpoint = recompute
        F.cross_entropy(model(idx).flatten(0, 1), idx.flatten()).backward()
        grads.append({name: p.grad for name, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=0, atol=0, msg=name)
