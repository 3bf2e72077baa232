import pytest
import torch
import torch.nn.functional as F

from mygpt.config import ModelConfig
from mygpt.decode import ROW_PRODUCT_SIZES, DecodeStep, Linear
from mygpt.model import GPT, KVCache

# The flat one-token decoding step must compute what forward(idx, cache) computes.


def perturbed(model: GPT) -> GPT:
    """Random biases and LayerNorms, so that every parameter the step reads matters."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize(
    "update",
    [
        {"pos": "rope"},
        {"pos": "learned", "gelu": "tanh"},
        {"pos": "sinusoidal", "bias": False, "tie_weights": False},
        {"pos": "rope", "n_embd": 256, "n_head": 4, "n_layer": 1},  # weights in ROW_PRODUCT_SIZES
    ],
)
@pytest.mark.parametrize("rows", [1, 3])
def test_decode_step_matches_forward_with_the_cache(tiny: ModelConfig, update: dict, rows: int) -> None:
    torch.manual_seed(0)
    config = tiny.model_copy(update=update)
    model = perturbed(GPT(config))
    step = DecodeStep(model)
    idx = torch.randint(0, config.vocab_size, (rows, config.block_size))
    slow, fast = (KVCache(config, rows, torch.device("cpu")) for _ in range(2))
    with torch.inference_mode():
        model(idx[:, :5], slow), model(idx[:, :5], fast)  # the same prefill
        for t in range(5, config.block_size):  # then one token at a time, to a full cache
            expected = model(idx[:, t : t + 1], slow)[:, -1]  # (rows, V)
            torch.testing.assert_close(step(idx[:, t : t + 1], fast), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(fast.k, slow.k)
        torch.testing.assert_close(fast.v, slow.v)
        assert fast.pos == slow.pos == config.block_size
        with pytest.raises(ValueError, match="cache is full"):
            step(idx[:, :1], fast)


def test_one_row_product_equals_linear_inside_and_outside_its_size_range() -> None:
    torch.manual_seed(0)
    lo, _ = ROW_PRODUCT_SIZES
    for out_features, in_features, bias in [(lo // 256, 256, True), (lo // 256, 256, False), (64, 32, True)]:
        layer = torch.nn.Linear(in_features, out_features, bias=bias)
        assert Linear.row_product(layer) == (in_features == 256)
        for rows in (1, 2):
            x = torch.randn(rows, in_features)
            with torch.inference_mode():  # decoding only ever runs so
                torch.testing.assert_close(Linear.of(layer)(x), F.linear(x, layer.weight, layer.bias))


@pytest.mark.parametrize("pos", ["rope", "learned", "sinusoidal"])
def test_decode_step_under_bf16_autocast_with_a_bf16_cache(tiny: ModelConfig, pos: str) -> None:
    # What generation does on CUDA, tried on the CPU: mixed dtypes must meet where autocast casts them.
    torch.manual_seed(0)
    config = tiny.model_copy(update={"pos": pos})
    model = GPT(config).eval()
    step = DecodeStep(model)
    idx = torch.randint(0, config.vocab_size, (2, config.block_size))
    slow, fast = (KVCache(config, 2, torch.device("cpu"), torch.bfloat16) for _ in range(2))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(idx[:, :4], slow), model(idx[:, :4], fast)
        for t in range(4, config.block_size):
            expected = model(idx[:, t : t + 1], slow)[:, -1]
            got = step(idx[:, t : t + 1], fast)
            assert got.dtype == expected.dtype == torch.bfloat16
            torch.testing.assert_close(got.float(), expected.float(), rtol=0, atol=1e-2)


def test_decode_step_leaves_onednn_as_it_found_it(tiny: ModelConfig) -> None:
    model = GPT(tiny).eval()
    cache = KVCache(tiny, 1, torch.device("cpu"))
    before = torch.backends.mkldnn.enabled
    with torch.inference_mode():
        model(torch.tensor([[1]]), cache)
        DecodeStep(model)(torch.tensor([[2]]), cache)
        cache.pos = tiny.block_size
        with pytest.raises(ValueError):
            DecodeStep(model)(torch.tensor([[2]]), cache)  # also when the step fails
    assert torch.backends.mkldnn.enabled == before
