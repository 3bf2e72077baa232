import pytest
import torch
import torch.nn.functional as F

import mygpt.model as gpt
from mygpt.config import ModelConfig
from mygpt.kvcache import KVCache
from mygpt.model import GPT

# The decoder (the parameters gathered once) must compute what forward(idx, cache) computes.


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
        {"pos": "rope", "n_embd": 256, "n_head": 4, "n_layer": 1},  # a wider model: bigger one-row products
    ],
)
@pytest.mark.parametrize("rows", [1, 3])
def test_decoder_matches_forward_with_the_cache_and_without(tiny: ModelConfig, update: dict, rows: int) -> None:
    torch.manual_seed(0)
    config = tiny.model_copy(update=update)
    model = perturbed(GPT(config))
    step = model.decoder()
    idx = torch.randint(0, config.vocab_size, (rows, config.block_size))
    slow, fast = (KVCache(config, rows, torch.device("cpu")) for _ in range(2))
    with torch.inference_mode():
        whole = model(idx)  # (rows, T, V): no cache at all
        model(idx[:, :5], slow), model(idx[:, :5], fast)  # the same prefill
        for t in range(5, config.block_size):  # then one token at a time, to a full cache
            expected = model(idx[:, t : t + 1], slow)  # (rows, 1, V)
            got = step(idx[:, t : t + 1], fast)
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(got[:, -1], whole[:, t], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(fast.k, slow.k)
        torch.testing.assert_close(fast.v, slow.v)
        assert fast.pos == slow.pos == config.block_size
        with pytest.raises(ValueError, match="longer than block_size"):
            step(idx[:, :1], fast)


def test_gelu_of_one_row_equals_torchs(tiny: ModelConfig) -> None:
    torch.manual_seed(0)
    for form, approximate in (("exact", "none"), ("tanh", "tanh")):
        for shape in [(1, 512), (1, 64), (3, 64)]:
            x = torch.randn(shape)
            with torch.inference_mode():
                torch.testing.assert_close(gpt.gelu(x, form), F.gelu(x, approximate=approximate), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("pos", ["rope", "learned", "sinusoidal"])
def test_decoder_under_bf16_autocast_with_a_bf16_cache(tiny: ModelConfig, pos: str) -> None:
    # What generation does on CUDA, tried on the CPU: mixed dtypes must meet where autocast casts them.
    torch.manual_seed(0)
    config = tiny.model_copy(update={"pos": pos})
    model = GPT(config).eval()
    step = model.decoder()
    idx = torch.randint(0, config.vocab_size, (2, config.block_size))
    slow, fast = (KVCache(config, 2, torch.device("cpu"), torch.bfloat16) for _ in range(2))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(idx[:, :4], slow), model(idx[:, :4], fast)
        for t in range(4, config.block_size):
            expected = model(idx[:, t : t + 1], slow)
            got = step(idx[:, t : t + 1], fast)
            assert got.dtype == expected.dtype == torch.bfloat16
            torch.testing.assert_close(got.float(), expected.float(), rtol=0, atol=1e-2)


def test_the_decoding_layout_keeps_values_logits_and_saved_files(tmp_path) -> None:
    from mygpt import checkpoint
    from mygpt.tokenizer import CharTokenizer

    torch.manual_seed(0)
    config = ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=40)
    plain = perturbed(GPT(config))
    laid = perturbed(GPT(config))
    laid.load_state_dict(plain.state_dict())
    laid.decoding_layout()
    fc = laid.transformer.h[0].mlp.c_fc.weight
    assert fc.shape == (128, 32) and fc.t().is_contiguous()  # stored column by column
    idx = torch.randint(0, 40, (3, 16))
    with torch.no_grad():
        torch.testing.assert_close(laid(idx), plain(idx), rtol=1e-5, atol=1e-5)
    tokenizer = CharTokenizer([chr(65 + i) for i in range(40)])
    checkpoint.save(tmp_path / "m.safetensors", laid, checkpoint.Meta(model=config, tokenizer=tokenizer.to_dict()))
    loaded = checkpoint.load(tmp_path / "m.safetensors").model
    assert all(
        torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), plain.state_dict().values(), strict=False)
    )
