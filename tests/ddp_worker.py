"""`mygpt train` under torchrun, for tests/test_distributed.py (not a test itself).

    torchrun --standalone --nproc-per-node 2 tests/ddp_worker.py OUT_WEIGHTS_DIR train ARGS...

Runs the real command line in each rank, then writes that rank's final weights to
OUT_WEIGHTS_DIR/rank{N}.safetensors, so a test can compare the ranks. With
MYGPT_TEST_FAIL="R:N", rank R raises a DataError when it draws its N-th batch.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import mygpt.session as session
from mygpt import data
from mygpt.errors import DataError

rank = int(os.environ["RANK"])
models: list = []


class KeptGPT(session.GPT):
    """The trainer's model, remembered so its final weights can be written."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        models.append(self)


session.GPT = KeptGPT

if os.environ.get("MYGPT_TEST_FAIL"):
    fail_rank, fail_at = map(int, os.environ["MYGPT_TEST_FAIL"].split(":"))
    if rank == fail_rank:
        real_next, drawn = data.BatchSampler.next, [0]

        def failing_next(self):
            drawn[0] += 1
            if drawn[0] == fail_at:
                raise DataError(f"injected failure on batch {fail_at}")
            return real_next(self)

        data.BatchSampler.next = failing_next

from typer.main import get_command  # noqa: E402

from mygpt.cli import app  # noqa: E402

out = Path(sys.argv[1])
code = get_command(app).main(sys.argv[2:], prog_name="mygpt", standalone_mode=False)
if models:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in models[0].state_dict().items() if k != "lm_head.weight"}
    save_file(state, str(out / f"rank{rank}.safetensors"))
sys.exit(code or 0)
