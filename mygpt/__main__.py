"""`python -m mygpt` runs the command line (this is also what torchrun starts)."""

from mygpt.cli import main

main()
