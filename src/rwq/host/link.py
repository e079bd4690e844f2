"""The channel between a screen and its plugin host process: whole messages
(:mod:`rwq.host.messages`) over a Unix socket, each a 4-byte big-endian length and a pickle.

Both ends are rwq's own processes, started together (the host process inherits one end of a
socket pair): plugins never write to this channel — they live in sandboxes further down.
"""

from __future__ import annotations

import contextlib
import pickle
import socket
import struct
import threading
from typing import cast, get_args

from rwq.host.messages import Message

KINDS = get_args(Message)
HEADER = struct.Struct(">I")
MAX_MESSAGE = 256 * 1024 * 1024
"""The largest message accepted (a corrupt length must not allocate gigabytes)."""


class LinkClosed(EOFError):
    """The other end closed the channel (or it broke)."""


class Link:
    """One end of the channel. :meth:`send` may be called from any thread; :meth:`recv` from
    one reading thread."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._send_lock = threading.Lock()

    def send(self, message: Message) -> None:
        body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            with self._send_lock:
                self.sock.sendall(HEADER.pack(len(body)) + body)
        except OSError as exc:
            raise LinkClosed(str(exc)) from None

    def recv(self) -> Message:
        (size,) = HEADER.unpack(self._exactly(HEADER.size))
        if size > MAX_MESSAGE:
            raise LinkClosed(f"a message of {size} bytes, over the {MAX_MESSAGE}-byte cap")
        message: object = pickle.loads(self._exactly(size))
        if not isinstance(message, KINDS):
            raise LinkClosed(f"not a message: {type(message).__name__}")
        return cast(Message, message)

    def _exactly(self, count: int) -> bytes:
        chunks = []
        while count:
            try:
                chunk = self.sock.recv(min(count, 1 << 20))
            except OSError as exc:
                raise LinkClosed(str(exc)) from None
            if not chunk:
                raise LinkClosed("the other end closed the channel")
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
