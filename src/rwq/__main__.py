"""``python -m rwq`` runs the command line."""

from rwq.cli import main

main()
