"""Helpers shared by the benchmark scripts: finding the corpus, describing the machine,
writing the JSON report."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path


def find_corpus(given: str | None = None) -> Path:
    """Tiny Shakespeare: the given path, data/, or the shared copy beside the checkout."""
    for candidate in [given, "data/tiny_shakespeare.txt", "../shared/data/tiny_shakespeare.txt"]:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    sys.exit("Tiny Shakespeare not found: run `uv run mygpt prepare` first, or pass --corpus PATH.")


def machine() -> dict:
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }


def write_report(path: str | Path, benchmark: str, **fields: object) -> Path:
    """Write {"benchmark", "machine", **fields} as JSON to path (making its folder) and say where."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": benchmark, "machine": machine(), **fields}, indent=2))
    print(f"wrote {out}")
    return out


def run_measured(cmd: list[str], cwd: str | Path | None = None, env: dict | None = None) -> dict:
    """Run a command to its end: wall time, peak RSS (of its largest process), exit code
    and output (stdout and stderr together)."""
    import subprocess
    import tempfile
    import time

    with tempfile.TemporaryFile("w+") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own resource usage
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        output = log.read()
    return {"wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024, "returncode": proc.returncode, "output": output}
