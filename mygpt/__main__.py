"""`python -m mygpt` and the `mygpt` command run the command line (torchrun starts it too).

`run` imports the command line itself, so that Ctrl-C while it loads (typer, rich,
pydantic: a fraction of a second) exits 130 quietly, as it does once a command runs.
"""

import importlib
import signal


def run(program: str = "app") -> None:
    """Run `program`: the `mygpt` app, or one of My Toy GPT's commands (mygpt/toy_cli.py)."""
    try:
        from mygpt import cli

        app = getattr(cli, program) if program == "app" else getattr(importlib.import_module("mygpt.toy_cli"), program)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise SystemExit(130) from None
    cli.main(app)


def training() -> None:
    """`uv run training`: My Toy GPT's training command."""
    run("training_app")


def generation() -> None:
    """`uv run generation`: My Toy GPT's generation command."""
    run("generation_app")


if __name__ == "__main__":
    run()
