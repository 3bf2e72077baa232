"""The public API: `import mygpt`, then its names, as a script would use them.

No public name is also a submodule's name, so importing a submodule (`mygpt.training`,
`mygpt.sampling`) never replaces a function on the package.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_text

from mygpt.config import ModelConfig
from mygpt.errors import ConfigError
from mygpt.events import Finished
from mygpt.model import GPT
from mygpt.tokenizer import CharTokenizer


def check_names() -> None:
    """Every public name reads as one and the same object; the functions stay functions
    after their modules are imported. Run here and, by its source, in a fresh interpreter."""
    import inspect

    import mygpt as m

    for name in m.__all__:
        assert getattr(m, name) is getattr(m, name), name
    assert all(callable(getattr(m, name)) for name in ("train", "generate", "prepare", "load_checkpoint",
                                                       "generate_text", "load_model", "train_from_config"))  # fmt: skip
    import mygpt.sampling
    import mygpt.training  # noqa: F401
    from mygpt import generate, train

    assert inspect.isfunction(train) and inspect.isfunction(generate)
    assert m.train is train is mygpt.training.train and m.generate is generate is mygpt.sampling.generate


def test_public_names_are_stable_objects() -> None:
    check_names()


@pytest.mark.slow
def test_public_names_in_a_fresh_interpreter() -> None:
    # Fresh: the names are loaded on first use, here before anything imported their modules.
    code = "\n".join([
        "import sys, mygpt",
        "assert 'torch' not in sys.modules and 'mygpt.training' not in sys.modules, 'import mygpt loaded torch'",
        inspect.getsource(check_names),
        "check_names()",
        "print('ok')",
    ])  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout == "ok\n", out.stderr


def test_prepare_train_load_and_generate_from_python(workdir: Path) -> None:
    import mygpt as m

    Path("play.txt").write_text(make_text(), encoding="utf-8")
    folder = m.prepare(m.PrepareConfig(text=("play.txt",)))
    cfg = m.TrainConfig(data=str(folder), device="cpu", max_iters=20, eval_interval=10, eval_iters=2, warmup_iters=0,
                        lr=1e-2, batch_size=8, model=m.ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=16))  # fmt: skip
    events = list(m.train(cfg))
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.step == 20 and Path(finished.path).exists()

    loaded = m.load_checkpoint(finished.path)
    assert isinstance(loaded.model, m.GPT) and loaded.model.config.n_layer == 1
    start = loaded.tokenizer.encode("KING:")
    sample = m.SampleConfig(max_new_tokens=12, num_samples=2, temperature=1.0)
    steps = list(m.generate(loaded.model, start, sample, seed=3, device=torch.device("cpu")))
    assert len(steps) == 12 and all(s.shape == (2,) for s in steps)
    ids = torch.stack(steps, dim=1)  # (num_samples, max_new_tokens)
    assert int(ids.max()) < loaded.tokenizer.vocab_size
    again = torch.stack(list(m.generate(loaded.model, start, sample, seed=3)), dim=1)  # device: the model's
    assert torch.equal(ids, again)
    texts = [loaded.tokenizer.decode(row.tolist()) for row in ids]
    assert all(len(t) == 12 for t in texts)  # one character per id


def test_gpt_config_works_as_pico_gpt_and_picogpt_wrote_it() -> None:
    from mygpt import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=100))  # picoGPT's sanity check
    assert sum(p.numel() for p in model.parameters()) == model.get_num_params()
    config = GPTConfig()  # Pico-GPT's: GPT-2's vocabulary, fields set one by one
    config.block_size, config.n_layer, config.n_head, config.n_embd = 32, 2, 6, 48
    model = GPT(config)
    assert type(model.config) is ModelConfig and model.config.vocab_size == 50304 and model.config.n_head == 6
    config.n_embd = 50  # not a multiple of n_head: refused when a model is built, with the reason
    with pytest.raises(ConfigError, match="invalid GPTConfig: n_embd=50 is not divisible by n_head=6"):
        GPT(config)
    with pytest.raises(ValueError, match="frozen"):  # a ModelConfig is built once
        model.config.n_layer = 3


def test_production_gpt_and_pico_gpt_names(tmp_path) -> None:
    import mygpt as m

    (tmp_path / "run.yaml").write_text("max_iters: 7\nlr: 1e-4\nmodel:\n  n_layer: 1\n")
    config = m.load_config(tmp_path / "run.yaml", batch_size=3)  # the production GPT's load_config
    assert (config.max_iters, config.model.n_layer, config.batch_size, config.min_lr) == (7, 1, 3, 1e-5)
    with pytest.raises(ConfigError, match="load_config\\(batch_size=...\\)"):
        m.load_config(tmp_path / "run.yaml", batch_size=0)
    tokenizer = m.SimpleTokenizer()  # Pico-GPT's: no corpus needed, a token per UTF-8 byte
    ids = tokenizer.encode("héllo <|endoftext|>")
    assert ids[:3] == [104, 195, 169] and tokenizer.decode(ids) == "héllo <|endoftext|>" and tokenizer.vocab_size == 257
    assert isinstance(tokenizer, m.BPETokenizer) and m.CharTokenizer is CharTokenizer


def test_model_generate_appends_what_mygpt_generate_samples(tiny: ModelConfig) -> None:
    import mygpt as m

    torch.manual_seed(0)
    model = m.GPT(tiny)
    idx = torch.randint(0, tiny.vocab_size, (2, 5))
    with torch.no_grad():
        out = model.generate(idx, max_new_tokens=20, temperature=0.8, top_k=10, seed=7)  # 25 ids: past the context
    assert out.shape == (2, 25) and out.dtype == torch.long and torch.equal(out[:, :5], idx)
    cfg = m.SampleConfig(max_new_tokens=20, temperature=0.8, top_k=10)
    for b in range(2):  # one sampling path: row b is the library's sample for its prompt, with seed + b
        assert torch.equal(out[b, 5:], torch.cat(list(m.generate(model, idx[b].tolist(), cfg, seed=7 + b))))
    assert torch.equal(model.generate(idx, 20, 0.8, 10, seed=7), out)
    assert not torch.equal(model.generate(idx, 20, 0.8, 10, seed=8), out)


def test_model_generate_without_a_seed_follows_torch_manual_seed(tiny: ModelConfig) -> None:
    model = GPT(tiny).train()
    idx = torch.zeros(1, 1, dtype=torch.long)
    torch.manual_seed(3)
    first = model.generate(idx, 10)
    torch.manual_seed(3)
    assert torch.equal(model.generate(idx, 10), first)
    assert model.training  # sampling left the mode it found


def test_model_generate_names_a_bad_argument(tiny: ModelConfig) -> None:
    model, idx = GPT(tiny), torch.zeros(1, 3, dtype=torch.long)
    with pytest.raises(ConfigError, match="temperature"):
        model.generate(idx, 5, temperature=-1.0)
    with pytest.raises(ValueError, match=r"\(B, T\) tensor"):
        model.generate(idx[0], 5)


def test_generate_text_returns_the_prompt_and_its_continuation() -> None:
    import mygpt as m

    tokenizer = CharTokenizer.train(make_text())
    torch.manual_seed(0)
    model = m.GPT(ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=16, vocab_size=tokenizer.vocab_size))
    text = m.generate_text(model, tokenizer, "KING:", max_tokens=30, temperature=1.0, top_k=10, seed=5)
    steps = m.generate(
        model, tokenizer.encode("KING:"), m.SampleConfig(max_new_tokens=30, top_k=10, temperature=1.0), 5
    )
    assert text == "KING:" + tokenizer.decode([int(ids) for ids in steps])  # one character per token
    assert m.generate_text(model, tokenizer, "KING:", max_tokens=30, temperature=1.0, top_k=10, seed=5) == text
    stopped = m.generate_text(model, tokenizer, "KING:", max_tokens=30, temperature=1.0, top_k=10, seed=5, stop=["e"])
    assert "e" in text[5:] and stopped == text[: text.index("e", 5)]


def test_train_from_a_yaml_config_then_load_the_model(
    workdir: Path, offline_shakespeare: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import mygpt as m

    Path("small.yaml").write_text(
        "model: {n_layer: 1, n_head: 2, n_embd: 16, block_size: 16}\n"
        "batch_size: 8\nmax_iters: 50\neval_interval: 10\neval_iters: 2\nwarmup_iters: 0\ndevice: cpu\n",
        encoding="utf-8",
    )
    path = m.train_from_config("small.yaml", max_iters=10)  # no data named: the default corpus, prepared offline
    assert (
        path.is_file()
        and path.parent.name == "checkpoints"
        and (workdir / "data" / "shakespeare-char" / "meta.json").exists()
    )
    model, tokenizer = m.load_model(path)
    assert model.config.n_layer == 1 and m.load_checkpoint(path).header.meta.progress.step == 10  # the override won
    assert m.generate_text(model, tokenizer, "KING", max_tokens=5, seed=0).startswith("KING")
    assert m.load_model()[0].config == model.config  # no path: the newest checkpoint
    assert capsys.readouterr().out == ""
    with pytest.raises(ConfigError, match="max_iter"):
        m.train_from_config("small.yaml", max_iter=5)
