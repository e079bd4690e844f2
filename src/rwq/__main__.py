"""``python -m rwq``: the command line."""

from __future__ import annotations

from rwq.cli import main

main()
