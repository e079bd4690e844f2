"""The channel between a screen and its plugin host process: whole typed messages, a closed
peer, a corrupt length, something that is not a message, several senders at once; and errors
that cross it with their type and fields."""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from rwq.host.link import HEADER, MAX_MESSAGE, Link, LinkClosed
from rwq.host.messages import (
    Call,
    ErrorInfo,
    Frames,
    Notification,
    Raised,
    Ready,
    RemoteError,
    Returned,
    Stop,
)
from rwq.plugins.engine.manager import LifecycleError, UnknownPlugin


@pytest.fixture
def pair() -> Iterator[tuple[Link, Link]]:
    a, b = socket.socketpair()
    left, right = Link(a), Link(b)
    yield left, right
    left.close()
    right.close()


def test_messages_round_trip_in_order(pair: tuple[Link, Link]) -> None:
    left, right = pair
    error = ErrorInfo(
        "rwq.plugins.engine.manager.UnknownPlugin", "no plugin named 'x'", {"plugin": "x"}
    )
    messages: list[Any] = [
        Call(1, "approve", ("x", ["storage.read"]), {"granted_by": "t"}),
        Frames([b"\x00\xff", "text", 1.5, None]),
        Returned(7, None),
        Raised(8, error),
        Stop(),
    ]
    for message in messages:
        left.send(message)
    assert [right.recv() for _ in messages] == messages
    right.send(Ready())  # both ways
    assert left.recv() == Ready()


def test_large_messages_arrive_whole(pair: tuple[Link, Link]) -> None:
    left, right = pair
    big = [
        Frames([os.urandom(3 * 1024 * 1024)]),
        Returned(1, "x" * (2 * 1024 * 1024 + 17)),
        Returned(2, list(range(100_000))),
    ]
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
    left.send(Notification("p", "last", "info"))
    left.close()
    # what was sent before the close still arrives
    assert right.recv() == Notification("p", "last", "info")
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
            left.send(Frames([b"x" * 65536]))


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
                left.send(Returned(n, (sender, payload)))

    senders = [threading.Thread(target=send, args=(i,)) for i in range(threads)]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join(timeout=60)
    reader.join(timeout=60)
    assert not reader.is_alive()
    assert len(received) == threads * per_thread
    assert all(message.value[1] == payload for message in received)
    for sender in range(threads):  # each sender's messages in its order
        assert [m.id for m in received if m.value[0] == sender] == list(range(per_thread))


def test_what_is_not_a_message_closes_the_link(pair: tuple[Link, Link]) -> None:
    left, right = pair
    body = pickle.dumps(("result", 1, True, None))
    left.sock.sendall(HEADER.pack(len(body)) + body)
    with pytest.raises(LinkClosed, match="not a message: tuple"):
        right.recv()


# -- errors across the link --------------------------------------------------------------------


def test_an_rwq_error_comes_back_as_its_own_type_with_its_fields() -> None:
    unknown = ErrorInfo.of(UnknownPlugin("ghost", ["a", "b"])).rebuild()
    assert type(unknown) is UnknownPlugin
    assert unknown.plugin == "ghost" and "known: a, b" in str(unknown)
    lifecycle = ErrorInfo.of(LifecycleError("p", "cannot enable a plugin that is active"))
    rebuilt = lifecycle.rebuild()
    assert isinstance(rebuilt, LifecycleError)
    assert (rebuilt.plugin, rebuilt.reason) == ("p", "cannot enable a plugin that is active")


def test_other_errors_come_back_as_remote_errors_naming_their_type() -> None:
    rebuilt = ErrorInfo.of(KeyError("x")).rebuild()
    assert type(rebuilt) is RemoteError and rebuilt.kind == "KeyError"
    assert "KeyError" in str(rebuilt)


def test_a_class_name_outside_rwq_is_never_imported() -> None:
    for name in ("os.system", "subprocess.Popen", "rwq.config.Settings", "rwq.nowhere.Error"):
        rebuilt = ErrorInfo(name, "boom").rebuild()
        assert type(rebuilt) is RemoteError and str(rebuilt).endswith("boom")


def test_fields_that_are_not_plain_data_stay_behind() -> None:
    error = UnknownPlugin("p", [])
    error.handle = object()  # type: ignore[attr-defined]
    error._private = "x"  # type: ignore[attr-defined]
    assert ErrorInfo.of(error).fields == {"plugin": "p"}
