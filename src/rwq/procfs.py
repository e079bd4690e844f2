"""What Linux's ``/proc`` says about this process: CPU time per thread."""

from __future__ import annotations

import os
import threading


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of each of this process's Python threads so far, by thread
    name, threads that differ only by a trailing number summed (``rwq-plugin-dispatch-3``
    counts as ``rwq-plugin-dispatch``). Empty where ``/proc`` is not there."""
    ticks = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            with open(f"/proc/self/task/{thread.native_id}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # gone, or not Linux
            continue
        name = thread.name.rstrip("0123456789").rstrip("-_") or thread.name
        used[name] = used.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return used
