"""`python -m cli` runs the `gridmap` command."""

from cli import main

main()
