"""`python -m mygpt` and the `mygpt` command run the command line (torchrun starts it too).

`run` imports the command line itself, so that Ctrl-C while it loads (typer, rich,
pydantic: a fraction of a second) exits 130 quietly, as it does once a command runs.
"""

import signal


def run() -> None:
    try:
        from mygpt.cli import main
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise SystemExit(130) from None
    main()


if __name__ == "__main__":
    run()
