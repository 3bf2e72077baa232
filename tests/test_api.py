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

from mygpt.events import Finished


def check_names() -> None:
    """Every public name reads as one and the same object; the functions stay functions
    after their modules are imported. Run here and, by its source, in a fresh interpreter."""
    import inspect

    import mygpt as m

    for name in m.__all__:
        assert getattr(m, name) is getattr(m, name), name
    assert all(callable(getattr(m, name)) for name in ("train", "generate", "prepare", "load_checkpoint"))
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
