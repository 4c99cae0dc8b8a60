"""`python -m umup_sweep` runs the CLI."""

from umup_sweep.cli import main

main()
