"""``python -m rwq``: the command line."""

from __future__ import annotations

from rwq.cli.app import main

main()
