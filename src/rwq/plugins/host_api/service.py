"""The host API service: the one entry runtimes route a plugin's host calls through
(:data:`rwq.plugins.runtimes.base.HostCall`).

What each function takes and returns is declared in :mod:`rwq.plugins.contract`; a call here

1. acts as the plugin the runtime bound, never as anything in the arguments;
2. has its arguments checked against the declaration;
3. is refused in read-only mode if it writes;
4. has its permission checked against the grant store on every queue it touches, for the
   plugin's loaded version and bundle hash (a delegated call checks the whole chain); the
   grant store audits each check, and refusals before the check are audited here;
5. meets per-plugin rate limits and caps (notifications, timers, subscriptions);
6. returns a JSON-safe result, or fails with a :class:`HostCallError` that has a ``code``.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rwq.errors import RwqError
from rwq.outage import OUTAGE_ERRORS
from rwq.plugins.contract.arguments import validate_arguments
from rwq.plugins.contract.errors import (
    ErrorCode,
    HostCallError,
    InternalError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RateLimited,
    UnknownFunction,
)
from rwq.plugins.contract.events import EventTypeError, json_safe
from rwq.plugins.contract.host_functions import (
    HOST_FUNCTIONS,
    MAX_CHAIN,
    MAX_SUBSCRIPTIONS,
    HostFunctionSpec,
    Rate,
)
from rwq.plugins.contract.permissions import CATALOG
from rwq.plugins.eventbus.bus import BusError, EventBus
from rwq.plugins.eventbus.feed import HealthSampler
from rwq.plugins.host_api.caller import DELEGATION, Caller, PluginBinding
from rwq.plugins.host_api.functions import (
    DependencyCall,
    DependencyFunctions,
    EventFunctions,
    LogSink,
    NoticeFunctions,
    Notify,
    QueueFunctions,
    StorageFunctions,
    TimerFunctions,
)
from rwq.plugins.host_api.outages import HostOutages
from rwq.plugins.host_api.storage import PluginStorage
from rwq.plugins.host_api.timers import TimerTable
from rwq.plugins.trust.audit import AuditLog
from rwq.plugins.trust.grants import GrantStore
from rwq.queue.admin import Admin, AdminError, ReadOnlyMode, UnknownQueue
from rwq.queue.job import JobError
from rwq.queue.keys import InvalidQueueName
from rwq.queue.producer import Producer

__all__ = ["DependencyCall", "HostAPI", "LogSink", "Notify", "PluginBinding"]

log = logging.getLogger(__name__)


# -- rate limits ----------------------------------------------------------------------------


class _Buckets:
    """Token buckets per (plugin, function); thread-safe."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._state: dict[tuple[str, str], tuple[float, float]] = {}

    def take(self, plugin: str, function: str, rate: Rate) -> bool:
        key = (plugin, function)
        now = self._clock()
        with self._lock:
            tokens, stamp = self._state.get(key, (float(rate.count), now))
            tokens = min(float(rate.count), tokens + (now - stamp) * rate.count / rate.per)
            if tokens < 1.0:
                self._state[key] = (tokens, now)
                return False
            self._state[key] = (tokens - 1.0, now)
            return True

    def forget(self, plugin: str) -> None:
        with self._lock:
            for key in [k for k in self._state if k[0] == plugin]:
                del self._state[key]


# -- the API --------------------------------------------------------------------------------


_LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def _log_to_logging(plugin: str, level: str, message: str) -> None:
    logging.getLogger(f"rwq.plugin.{plugin}").log(_LOG_LEVELS[level], "%s", message)


def _notify_to_logging(plugin: str, message: str, level: str) -> None:
    log.info("notification from %s (%s): %s", plugin, level, message)


Handler = Callable[[Caller, dict[str, Any]], Any]


@dataclass(eq=False)
class HostAPI(
    QueueFunctions,
    EventFunctions,
    StorageFunctions,
    TimerFunctions,
    NoticeFunctions,
    DependencyFunctions,
):
    """The capability-gated host API; :meth:`call` is the runtimes' ``HostCall``, which runs
    every check and then the function's body (one class per family, in
    :mod:`rwq.plugins.host_api.functions`).

    Args:
        grants: the grant store; it must audit to ``audit`` (every check is recorded).
        audit: the audit log; refusals made before a permission check are recorded here.
        admin: queue admin operations.
        producer: enqueues jobs.
        bus: the event bus (subscriptions, emitted events, alerts).
        storage: a plugin's store, by plugin name (built with its manifest's quota).
        bindings: the loaded version, bundle hash and queue scope of a plugin; None if it is
            not loaded (its calls are refused).
        dependencies: plugin name to the plugins its manifest declares as dependencies.
        call_plugin: runs a dependency's function (see :data:`DependencyCall`).
        read_only: refuse every call that changes a queue (``Settings.read_only``).
        on_notify: shows a notification; by default it is logged.
        on_log: receives plugin log lines; by default the ``rwq.plugin.<name>`` logger.
        health: one reading of host and Redis health (``HealthSampler.measure``).
        outages: told of every host call that failed because Redis was away.
        clock: monotonic seconds, for rate limits and timers.
    """

    grants: GrantStore
    audit: AuditLog
    admin: Admin
    producer: Producer
    bus: EventBus
    storage: Callable[[str], PluginStorage]
    bindings: Callable[[str], PluginBinding | None]
    dependencies: Mapping[str, Collection[str]] = field(default_factory=dict)
    call_plugin: DependencyCall | None = None
    read_only: bool = False
    on_notify: Notify = _notify_to_logging
    on_log: LogSink = _log_to_logging
    health: Callable[[], Mapping[str, Any]] | None = None
    outages: HostOutages | None = None
    clock: Callable[[], float] = time.monotonic
    max_subscriptions: int = MAX_SUBSCRIPTIONS
    timers: TimerTable = field(init=False)
    _buckets: _Buckets = field(init=False, repr=False)
    _handlers: dict[str, Handler] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.grants.audit is not self.audit:
            raise RwqError("the host API's grant store must audit to the host API's audit log")
        self.timers = TimerTable(clock=self.clock)
        self._buckets = _Buckets(self.clock)
        self._handlers = {name: getattr(self, f"_do_{name}") for name in HOST_FUNCTIONS}
        if self.health is None:
            # A sampler of its own (never started, on a bus of its own): only ``measure``.
            self.health = HealthSampler(self.admin.client, EventBus()).measure

    def release(self, plugin: str) -> None:
        """Drop what ``plugin`` holds through the API (timers, subscriptions, rate-limit
        state) when it unloads; its storage stays."""
        self.timers.clear_all(plugin)
        self.bus.unsubscribe_all(plugin)
        self._buckets.forget(plugin)

    # -- the entry ------------------------------------------------------------------------

    def call(
        self, plugin: str, function: str, args: Any, *, chain: Sequence[str] | None = None
    ) -> Any:
        """Run host function ``function`` for ``plugin`` (the identity the runtime bound).

        ``chain`` names a delegation (caller first, ``plugin`` last); by default it comes from
        the :func:`call_dependency` in progress in this context.

        Returns:
            The JSON-safe result.

        Raises:
            HostCallError: always this tree, with a ``code`` (see :class:`ErrorCode`).
        """
        spec = HOST_FUNCTIONS.get(function) if isinstance(function, str) else None
        delegated = tuple(DELEGATION.get() if chain is None else chain)
        if not delegated or delegated[-1] != plugin:
            delegated = ()
        try:
            if spec is None:
                name = str(function)[:64]
                raise self._refused(
                    UnknownFunction(f"no host function {name!r}", plugin=plugin),
                    plugin,
                    f"unknown:{name}",
                    delegated,
                )
            binding = self.bindings(plugin) if isinstance(plugin, str) else None
            if binding is None:
                raise self._refused(
                    PermissionDenied(str(plugin), spec.name, None, None, "not loaded"),
                    str(plugin),
                    self._operation(spec),
                    delegated,
                )
            try:
                values = validate_arguments(spec, args, binding.queues)
            except InvalidArgument as exc:
                exc.plugin = plugin
                raise self._refused(exc, plugin, self._operation(spec), delegated) from None
            if spec.writes and self.read_only:
                raise self._refused(
                    self._translate(ReadOnlyMode(spec.name), plugin, spec),
                    plugin,
                    self._operation(spec),
                    delegated,
                )
            c = Caller(plugin, binding, delegated)
            self._authorize(spec, c, values)
            if spec.rate is not None and not self._buckets.take(plugin, spec.name, spec.rate):
                raise RateLimited(
                    f"more than {spec.rate.count} calls in {spec.rate.per:g}s",
                    plugin=plugin,
                    function=spec.name,
                )
            return json_safe(self._handlers[spec.name](c, values))
        except HostCallError as exc:
            raise exc.made_by(str(plugin), spec.name if spec is not None else "") from None
        except Exception as exc:
            raise self._translate(exc, plugin, spec) from None

    @staticmethod
    def _operation(spec: HostFunctionSpec) -> str:
        return f"{spec.permission or 'none'}:{spec.name}"

    def _refused(
        self, exc: HostCallError, plugin: str, operation: str, chain: tuple[str, ...]
    ) -> HostCallError:
        """Audit a refusal made before (or instead of) a grant-store check."""
        self.audit.record(plugin, operation, "", False, reason=str(exc)[:500], chain=chain)
        return exc

    def _translate(
        self, exc: Exception, plugin: str, spec: HostFunctionSpec | None
    ) -> HostCallError:
        function = spec.name if spec is not None else ""
        if isinstance(exc, OUTAGE_ERRORS):  # no traceback: logged once per outage
            if self.outages is not None:
                self.outages.failed(plugin, exc)
            # The plugin is told no more than that: the server's address is the host's.
            reason = "Redis unavailable (see the host log)"
            return InternalError(reason, plugin=plugin, function=function)
        if isinstance(exc, UnknownQueue):
            return NotFound(str(exc), plugin=plugin, function=function, argument="queue")
        if isinstance(exc, ReadOnlyMode):
            code = ErrorCode.READ_ONLY
            return HostCallError(str(exc), code=code, plugin=plugin, function=function)
        if isinstance(exc, AdminError | JobError | InvalidQueueName):
            return InvalidArgument(str(exc), plugin=plugin, function=function)
        if isinstance(exc, BusError | EventTypeError):
            return InvalidArgument(str(exc), plugin=plugin, function=function)
        log.error("host call %s of plugin %s failed", function, plugin, exc_info=exc)
        return InternalError("internal error (see the host log)", plugin=plugin, function=function)

    # -- checks ---------------------------------------------------------------------------

    def _authorize(self, spec: HostFunctionSpec, c: Caller, values: Mapping[str, Any]) -> None:
        if spec.name == "call_dependency":
            self._authorize_dependency(c, values["plugin"], values["function"])
            return
        permission = spec.permission
        if permission is None:
            self.audit.record(
                c.plugin,
                self._operation(spec),
                "",
                True,
                reason="needs no permission",
                chain=c.chain,
            )
            return
        queue_scoped = CATALOG[permission].queue_scoped
        targets = spec.queues(values) if queue_scoped else (None,)
        for queue in targets:
            if queue is not None and ("*" in queue or "?" in queue):
                self._check_glob(spec, c, permission, queue)
            if c.chain:
                versions = self._versions(spec, c)
                decision = self.grants.check_chain(
                    c.chain, permission, queue=queue, operation=spec.name, versions=versions
                )
            else:
                decision = self.grants.check(
                    c.plugin,
                    permission,
                    queue=queue,
                    operation=spec.name,
                    version=c.binding.version,
                    bundle_hash=c.binding.bundle_hash,
                )
            if not decision.allowed:
                raise PermissionDenied(
                    c.plugin, spec.name, permission, queue, decision.reason, c.chain
                )

    def _versions(self, spec: HostFunctionSpec, c: Caller) -> dict[str, tuple[str, str]]:
        versions: dict[str, tuple[str, str]] = {}
        for member in c.chain:
            binding = c.binding if member == c.plugin else self.bindings(member)
            if binding is None:
                raise self._refused(
                    PermissionDenied(
                        c.plugin,
                        spec.name,
                        spec.permission,
                        None,
                        f"{member} is not loaded",
                        c.chain,
                    ),
                    c.plugin,
                    self._operation(spec),
                    c.chain,
                )
            versions[member] = (binding.version, binding.bundle_hash)
        return versions

    def _check_glob(self, spec: HostFunctionSpec, c: Caller, permission: str, glob: str) -> None:
        """A queue glob passes the grant store only as a name; it must also lie inside the
        granted globs, or ``t*`` would pass a grant of ``t?`` and reach every ``t...``."""
        now = time.time()
        for member in c.chain or (c.plugin,):
            binding = c.binding if member == c.plugin else self.bindings(member)
            if binding is None:
                continue  # refused by the chain check
            granted = [
                q
                for g in self.grants.grants_for(member)
                if g.binding == (binding.version, binding.bundle_hash)
                and permission in g.permissions
                and not g.expired(now)
                for q in g.scope.queues
            ]
            if granted and not any(_glob_within(glob, q) for q in granted):
                reason = f"queue glob {glob!r} reaches beyond the granted {', '.join(granted)}"
                self.audit.record(
                    member,
                    f"{permission}:{spec.name}",
                    glob,
                    False,
                    reason=reason,
                    chain=c.chain,
                )
                raise PermissionDenied(c.plugin, spec.name, permission, glob, reason, c.chain)

    def _authorize_dependency(self, c: Caller, target: str, function: str) -> None:
        chain = (*(c.chain or (c.plugin,)), target)
        operation = f"dependency:{function}"
        reason = ""
        if target not in self.dependencies.get(c.plugin, ()):
            reason = f"{c.plugin} does not declare {target} as a dependency"
        elif target in chain[:-1]:
            reason = f"dependency cycle: {' -> '.join(chain)}"
        elif len(chain) > MAX_CHAIN:
            reason = f"delegation chains are at most {MAX_CHAIN} plugins long"
        elif self.bindings(target) is None:
            reason = f"{target} is not loaded"
        self.audit.record(
            target, operation, "", not reason, reason=reason or "declared dependency", chain=chain
        )
        if reason:
            raise PermissionDenied(c.plugin, "call_dependency", None, target, reason, chain)


def _glob_within(requested: str, granted: str) -> bool:
    """Whether every queue ``requested`` matches is matched by ``granted`` (conservative)."""
    if granted in ("*", requested):
        return True
    if not any(ch in requested for ch in "*?"):
        return fnmatch.fnmatchcase(requested, granted)
    prefix = granted[:-1]
    return (
        granted.endswith("*")
        and not any(ch in prefix for ch in "*?[")
        and requested.startswith(prefix)
    )
