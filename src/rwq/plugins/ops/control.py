"""The control channel from ``rwq plugin reload`` to the running plugin hosts: requests over
Redis pub/sub, one answer per host on a reply channel of the request's own."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import redis

from rwq.errors import RwqError
from rwq.outage import OUTAGE_ERRORS, Outage
from rwq.plugins.engine.manager import LifecycleError, PluginManager
from rwq.plugins.ops.reloader import HotReloader, ReloadAttempt
from rwq.queue.keys import Keys, check_plugin_name

__all__ = [
    "OPS",
    "ControlError",
    "ControlReply",
    "ControlResult",
    "ControlServer",
    "host_identity",
    "request_reload",
]

log = logging.getLogger(__name__)

OPS = ("reload",)
"""The operations a host answers."""
REQUEST_ID = re.compile(r"^[A-Za-z0-9-]{1,64}\Z")
DEFAULT_TIMEOUT = 10.0
"""How long the CLI waits for the hosts' answers (seconds)."""
_POLL = 0.2
_REDIS_ERRORS = OUTAGE_ERRORS


class ControlError(RwqError):
    """The control channel could not be used (Redis unreachable, no subscription)."""


def host_identity() -> str:
    """``hostname:pid``: how a host names itself in its answers."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class ControlReply:
    """One host's answer to a control request."""

    id: str
    host: str
    """``hostname:pid`` of the answering host."""
    plugin: str
    ok: bool
    outcome: str
    """A reload outcome (``reloaded``, ``rolled back``, ``failed``, ``invalid``, ``awaiting
    approval``), ``unknown plugin`` or ``bad request``."""
    reason: str = ""
    old_version: str = ""
    """The version running when the request arrived."""
    new_version: str = ""
    """The version the reload tried."""
    running_version: str = ""
    """The version running when the host answered (the old one, or the one rolled back to)."""
    running_hash: str = ""
    """The bundle hash of the running version (old and new code of one version differ here)."""
    new_hash: str = ""
    """The bundle hash of a new version awaiting approval."""
    elapsed_ms: float = 0.0
    probation_s: float = 0.0
    """Seconds the new version stays on probation (0 if it ended: ``settle``)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, data: str) -> ControlReply:
        """Raises ValueError (or a subclass) when ``data`` is not a reply."""
        raw = json.loads(data)
        if not isinstance(raw, dict):
            raise ValueError("a reply is a JSON object")
        names = {f.name for f in fields(cls)}
        reply = cls(**{k: v for k, v in raw.items() if k in names})
        if not isinstance(reply.id, str) or not isinstance(reply.ok, bool):
            raise ValueError("a reply needs an id and ok")
        return reply


@dataclass(frozen=True)
class ControlResult:
    """What :func:`request_reload` gathered."""

    plugin: str
    received: int
    """Hosts subscribed when the request was published (``PUBLISH``'s answer)."""
    replies: list[ControlReply] = field(default_factory=list)
    timeout: float = DEFAULT_TIMEOUT

    @property
    def missing(self) -> int:
        """Hosts that received the request but did not answer in time."""
        return max(0, self.received - len(self.replies))

    @property
    def ok(self) -> bool:
        return self.received > 0 and self.missing == 0 and all(r.ok for r in self.replies)


# -- the host side ------------------------------------------------------------------------------


class ControlServer:
    """Answers control requests for one host: a thread subscribed to the control channel.

    Reloads go through ``reloader`` (:meth:`HotReloader.request`), the path of a save: validate,
    load beside, swap, probation, rollback. A host that does not watch its directories passes
    a ``HotReloader(manager, watch=False)``.

    Args:
        manager: the host's started manager.
        reloader: the host's started hot reloader.
        client: a Redis client (``decode_responses=True``); the manager's by default.
        keys: the key space (the prefix of the manager's settings by default).
        identity: how the host names itself (``hostname:pid`` by default).
        timeout: longest a request waits for its reload before it is answered as failed.
    """

    def __init__(
        self,
        manager: PluginManager,
        reloader: HotReloader,
        client: Any = None,
        *,
        keys: Keys | None = None,
        identity: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.manager = manager
        self.reloader = reloader
        self.client = client if client is not None else manager.client
        self.keys = keys or Keys(manager.settings.prefix)
        self.identity = identity or host_identity()
        self.timeout = timeout
        self.handled = 0
        """Requests answered so far."""
        self.ignored = 0
        """Messages ignored as malformed so far."""
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    def start(self, *, wait: float = 5.0) -> None:
        """Start listening; returns once subscribed (or after ``wait`` seconds: the thread
        keeps trying while Redis is away)."""
        if self._thread is not None:
            return
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="rwq-plugin-control")
        self._thread = threading.Thread(target=self._listen, name="rwq-control", daemon=True)
        self._thread.start()
        if not self._subscribed.wait(wait):
            log.warning("plugin control: not subscribed yet to %s", self.keys.plugin_control)

    def stop(self) -> None:
        """Stop listening; requests in flight are answered (``the host is stopping``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> ControlServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def listening(self) -> bool:
        return self._subscribed.is_set() and not self._stop.is_set()

    def _listen(self) -> None:
        channel = self.keys.plugin_control
        outage = Outage("plugin control", log)
        while not self._stop.is_set():
            pubsub = self.client.pubsub()
            try:
                pubsub.subscribe(channel)
                while not self._stop.is_set():
                    msg = pubsub.get_message(timeout=_POLL)
                    if msg is None:
                        continue
                    if msg["type"] == "subscribe":
                        self._subscribed.set()
                        outage.succeeded()
                    elif msg["type"] == "message":
                        self._received(msg["data"])
            except _REDIS_ERRORS as exc:
                self._subscribed.clear()
                self._stop.wait(max(_POLL, outage.failed(exc)))  # logged once per outage
            except Exception:
                log.exception("plugin control: the listener failed; restarting it")
                self._stop.wait(_POLL)
            finally:
                with contextlib.suppress(Exception):
                    pubsub.close()

    def _received(self, data: Any) -> None:
        """Check a message; answer a bad request, hand a good one to the pool. A message
        without a valid id is logged and ignored: there is nowhere to answer."""
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
        try:
            raw = json.loads(text)
        except ValueError:
            self._ignore(f"not JSON: {text[:200]!r}")
            return
        if not isinstance(raw, dict):
            self._ignore(f"not a JSON object: {text[:200]!r}")
            return
        request_id = raw.get("id")
        if not isinstance(request_id, str) or not REQUEST_ID.match(request_id):
            self._ignore(f"id: expected 1-64 of [A-Za-z0-9-], got {request_id!r:.80}")
            return
        op, plugin, settle = raw.get("op"), raw.get("plugin"), raw.get("settle", False)
        problem = ""
        if op not in OPS:
            problem = f"op: expected one of {', '.join(OPS)}, got {op!r:.80}"
        elif not isinstance(plugin, str) or not plugin:
            problem = f"plugin: expected a plugin name, got {plugin!r:.80}"
        elif not isinstance(settle, bool):
            problem = f"settle: expected true or false, got {settle!r:.80}"
        name = plugin[:64] if isinstance(plugin, str) else ""
        if problem:
            self._reply(
                ControlReply(request_id, self.identity, name, False, "bad request", problem)
            )
            return
        assert self._pool is not None
        try:
            self._pool.submit(self._reload, request_id, name, bool(settle))
        except RuntimeError:  # the pool is shut down: the host is stopping
            stopping = ControlReply(
                request_id, self.identity, name, False, "failed", "the host is stopping"
            )
            self._reply(stopping)

    def _ignore(self, why: str) -> None:
        self.ignored += 1
        log.warning("plugin control: ignored a message on %s: %s", self.keys.plugin_control, why)

    def _reload(self, request_id: str, plugin: str, settle: bool) -> None:
        start = time.perf_counter()

        def reply(
            outcome: str,
            reason: str,
            old: str = "",
            new: str = "",
            ok: bool = False,
            probation: float = 0.0,
        ) -> None:
            running = running_hash = new_hash = ""
            with contextlib.suppress(RwqError):
                if old:
                    status = self.manager.status(plugin)
                    running, running_hash = status.version, status.bundle_hash
                new_hash = next(
                    (
                        p.review.bundle_hash
                        for p in self.manager.pending_approvals()
                        if p.plugin == plugin and p.update
                    ),
                    "",
                )
            answer = ControlReply(
                request_id,
                self.identity,
                plugin,
                ok,
                outcome,
                reason,
                old_version=old,
                new_version=new,
                running_version=running,
                running_hash=running_hash,
                new_hash=new_hash if outcome == "awaiting approval" else "",
                elapsed_ms=round((time.perf_counter() - start) * 1000, 3),
                probation_s=probation,
            )
            self._reply(answer)

        try:
            known = self.manager.plugins()
            if plugin not in known:
                names = ", ".join(sorted(known)) or "none"
                reply(
                    "unknown plugin", f"no plugin named {plugin!r} on this host (it runs: {names})"
                )
                return
            old = self.manager.status(plugin).version
            try:
                future = self.reloader.request(plugin, settle=settle)
            except LifecycleError as exc:
                reply("failed", exc.reason, old, old)
                return
            attempt = self._wait(future)
            if attempt is None:
                why = f"no outcome within {self.timeout:g}s"
                reply("failed", "the host is stopping" if self._stop.is_set() else why, old)
                return
            ok = attempt.outcome == "reloaded"
            probation = self.reloader.probation_s if ok and not settle else 0.0
            reply(attempt.outcome, attempt.reason, old, attempt.version, ok, probation)
        except Exception as exc:  # a bug: still answer, the CLI is waiting
            log.exception("plugin control: reloading %s failed", plugin)
            reply("failed", f"host error: {type(exc).__name__}: {exc}")

    def _wait(self, future: Future[ReloadAttempt]) -> ReloadAttempt | None:
        deadline = time.monotonic() + self.timeout
        while not self._stop.is_set():
            try:
                return future.result(timeout=min(_POLL, max(0.0, deadline - time.monotonic())))
            except FutureTimeout:
                if time.monotonic() >= deadline:
                    return None
        return future.result() if future.done() else None

    def _reply(self, reply: ControlReply) -> None:
        try:
            self.client.publish(self.keys.plugin_control_reply(reply.id), reply.to_json())
            self.handled += 1
        except redis.RedisError as exc:
            log.warning("plugin control: cannot answer request %s: %s", reply.id, exc)


# -- the CLI side -------------------------------------------------------------------------------


def request_reload(
    client: Any,
    keys: Keys,
    plugin: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    settle: bool = False,
) -> ControlResult:
    """Ask every running host to reload ``plugin`` and gather their answers.

    Args:
        client: a Redis client (``decode_responses=True``).
        keys: the deployment's key space.
        plugin: the plugin's name.
        timeout: longest wait for the answers (seconds).
        settle: have the hosts answer once the new version's probation ended.

    Raises:
        InvalidPluginName: ``plugin`` is not a plugin name.
        ControlError: the reply channel could not be subscribed to.
    """
    check_plugin_name(plugin)
    request_id = uuid.uuid4().hex
    request = {"id": request_id, "op": "reload", "plugin": plugin, "settle": settle}
    pubsub = client.pubsub()
    try:
        pubsub.subscribe(keys.plugin_control_reply(request_id))
        _wait_subscribed(pubsub)  # so that no answer can come before we listen
        received = int(client.publish(keys.plugin_control, json.dumps(request)))
        replies: dict[str, ControlReply] = {}
        deadline = time.monotonic() + timeout
        while len(replies) < received:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            msg = pubsub.get_message(timeout=min(left, 1.0))
            if msg is None or msg["type"] != "message":
                continue
            try:
                reply = ControlReply.from_json(msg["data"])
            except (ValueError, TypeError) as exc:
                log.warning("plugin control: ignored a malformed answer: %s", exc)
                continue
            if reply.id == request_id:
                replies[reply.host] = reply
    finally:
        with contextlib.suppress(Exception):
            pubsub.close()
    return ControlResult(plugin, received, sorted(replies.values(), key=lambda r: r.host), timeout)


def _wait_subscribed(pubsub: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = pubsub.get_message(timeout=0.5)
        if msg is not None and msg["type"] == "subscribe":
            return
    raise ControlError(f"no answer to SUBSCRIBE within {timeout:g}s")
