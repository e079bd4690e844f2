"""The channel between the TUI and its plugin host process: whole messages, a closed peer, a
corrupt length, several senders at once."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from rwq.tui.link import HEADER, MAX_MESSAGE, Link, LinkClosed


@pytest.fixture
def pair() -> Iterator[tuple[Link, Link]]:
    a, b = socket.socketpair()
    left, right = Link(a), Link(b)
    yield left, right
    left.close()
    right.close()


def test_messages_round_trip_in_order(pair: tuple[Link, Link]) -> None:
    left, right = pair
    messages: list[Any] = [
        ("init", {"a": 1}, None, True),
        ("frames", [b"\x00\xff", "text", 1.5, None]),
        ("result", 7, False, "no plugin named 'x'"),
        (),
        "plain",
    ]
    for message in messages:
        left.send(message)
    assert [right.recv() for _ in messages] == messages
    right.send(("stop",))  # both ways
    assert left.recv() == ("stop",)


def test_large_messages_arrive_whole(pair: tuple[Link, Link]) -> None:
    left, right = pair
    big = [os.urandom(3 * 1024 * 1024), "x" * (2 * 1024 * 1024 + 17), list(range(100_000))]
    received: list[Any] = []
    # the socket buffer is far smaller than a message: read while the other side writes
    reader = threading.Thread(target=lambda: received.extend(right.recv() for _ in big))
    reader.start()
    for message in big:
        left.send(message)
    reader.join(timeout=60)
    assert not reader.is_alive()
    assert received == big


def test_recv_raises_link_closed_when_the_peer_closes(pair: tuple[Link, Link]) -> None:
    left, right = pair
    left.send(("last",))
    left.close()
    assert right.recv() == ("last",)  # what was sent before the close still arrives
    with pytest.raises(LinkClosed):
        right.recv()


def test_a_peer_closing_mid_message_is_link_closed(pair: tuple[Link, Link]) -> None:
    left, right = pair
    left.sock.sendall(HEADER.pack(100) + b"only part of it")
    left.close()
    with pytest.raises(LinkClosed):
        right.recv()


def test_send_to_a_closed_peer_raises_link_closed(pair: tuple[Link, Link]) -> None:
    left, right = pair
    right.close()
    with pytest.raises(LinkClosed):
        for _ in range(100):  # the first sends may land in the buffer
            left.send(("hello", b"x" * 65536))


def test_a_length_over_the_cap_is_refused(pair: tuple[Link, Link]) -> None:
    left, right = pair
    left.sock.sendall(HEADER.pack(MAX_MESSAGE + 1))
    with pytest.raises(LinkClosed, match="cap"):
        right.recv()


def test_a_length_at_the_cap_is_not_refused_for_its_size(pair: tuple[Link, Link]) -> None:
    left, right = pair
    left.sock.sendall(HEADER.pack(MAX_MESSAGE) + b"short")
    left.close()
    with pytest.raises(LinkClosed) as raised:
        right.recv()
    assert "cap" not in str(raised.value)  # it waited for the body, which never came


def test_senders_on_several_threads_keep_messages_whole(pair: tuple[Link, Link]) -> None:
    left, right = pair
    threads, per_thread = 8, 40
    payload = b"p" * 200_000  # each message larger than one socket write
    received: list[Any] = []

    def read() -> None:
        try:
            received.extend(right.recv() for _ in range(threads * per_thread))
        except Exception:  # a torn message: stop the senders too, the asserts say it
            right.close()

    reader = threading.Thread(target=read)
    reader.start()
    go = threading.Barrier(threads)

    def send(sender: int) -> None:
        go.wait()
        with contextlib.suppress(LinkClosed):
            for n in range(per_thread):
                left.send((sender, n, payload))

    senders = [threading.Thread(target=send, args=(i,)) for i in range(threads)]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join(timeout=60)
    reader.join(timeout=60)
    assert not reader.is_alive()
    assert len(received) == threads * per_thread
    assert all(message[2] == payload for message in received)
    for sender in range(threads):  # each sender's messages in its order
        assert [m[1] for m in received if m[0] == sender] == list(range(per_thread))
