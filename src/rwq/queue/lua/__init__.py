"""The queue's Lua scripts, one file each (loaded by :mod:`rwq.queue.scripts`)."""
