"""The event bus: routes each event into the bounded inbox of every plugin whose subscriptions
match (the dispatcher, :mod:`rwq.plugins.eventbus.dispatcher`, hands each plugin its inbox).

Routing goes through an index, never a scan of every subscription: exact type patterns are a
dict, the few distinct wildcard patterns are compiled once, and the subscribers of each
(type, queue) are computed once and cached until the subscriptions change. Publishing never
waits for a plugin: a full inbox drops its oldest event and counts the drop.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from rwq.errors import RwqError
from rwq.plugins.contract.events import SAMPLED, check_pattern, glob_matcher, is_glob
from rwq.queue.events import Event

__all__ = [
    "DEFAULT_INBOX",
    "DEFAULT_SAMPLE_INTERVAL",
    "MIN_SAMPLE_INTERVAL",
    "BusError",
    "EventBus",
    "InboxStats",
    "Subscription",
]

log = logging.getLogger(__name__)

DEFAULT_INBOX = 1000
DEFAULT_SAMPLE_INTERVAL = 5.0
MIN_SAMPLE_INTERVAL = 0.2
_CACHE_LIMIT = 4096
"""Routes cached per bus (event types) and per route (queues) before the cache is reset."""

WorkListener = Callable[[str], None]
ChangeListener = Callable[[], None]


class BusError(RwqError):
    """A subscription was given bad arguments."""


@dataclass(frozen=True)
class Subscription:
    """What one plugin asked to receive."""

    id: str
    plugin: str
    type_pattern: str
    queues: tuple[str, ...] = ("*",)
    interval: float | None = None
    """Seconds between sampled events (``queue.stats``, ``system.health``) it wants."""
    rate_limit: float | None = None
    """Events per second (token bucket, burst of one second's worth)."""
    priority: int = 0

    @property
    def sample_interval(self) -> float:
        return max(MIN_SAMPLE_INTERVAL, self.interval or DEFAULT_SAMPLE_INTERVAL)


@dataclass(frozen=True)
class InboxStats:
    """Counters of one plugin's inbox."""

    delivered: int
    """Events handed to the plugin (drained)."""
    dropped: int
    """Events lost because the inbox was full."""
    coalesced: int
    """Sampled events replaced by a newer one before delivery."""
    throttled: int
    """Events refused by the subscription's rate limit."""
    queued: int
    """Events waiting now."""
    first_drop: float = 0.0
    """When the inbox first dropped an event (``time.time()``; 0: never)."""
    last_drop: float = 0.0
    """When it last dropped one."""


class _Subscriber:
    """A subscription and its mutable state (token bucket, sampling schedule)."""

    __slots__ = ("next_sample", "stamp", "sub", "tokens")

    def __init__(self, sub: Subscription, now: float) -> None:
        self.sub = sub
        self.tokens = max(1.0, sub.rate_limit or 0.0)
        self.stamp = now
        self.next_sample: dict[str, float] = {}

    def take_token(self, now: float) -> bool:
        rate = self.sub.rate_limit
        assert rate is not None
        self.tokens = min(max(1.0, rate), self.tokens + (now - self.stamp) * rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


Target = tuple[str, tuple[_Subscriber, ...]]
"""A plugin and its subscriptions that match one (type, queue), highest priority first."""


class _Route:
    """The subscribers of one event type, indexed by queue glob; targets cached per queue."""

    __slots__ = ("anywhere", "by_queue", "cache", "globs", "subscribers", "unlimited")

    def __init__(self, subscribers: list[_Subscriber]) -> None:
        self.subscribers = subscribers
        self.unlimited = all(s.sub.rate_limit is None for s in subscribers)
        """No subscription of this type is rate-limited: every target takes every event."""
        self.anywhere: list[_Subscriber] = []
        self.by_queue: dict[str, list[_Subscriber]] = {}
        globs: dict[str, list[_Subscriber]] = {}
        for s in subscribers:
            if "*" in s.sub.queues:
                self.anywhere.append(s)
                continue
            for q in s.sub.queues:
                if is_glob(q):
                    globs.setdefault(q, []).append(s)
                else:
                    self.by_queue.setdefault(q, []).append(s)
        self.globs = [(glob_matcher(g), group) for g, group in globs.items()]
        self.cache: dict[str, tuple[Target, ...]] = {}

    def targets(self, queue: str, bus: EventBus) -> tuple[Target, ...]:
        found = self.cache.get(queue)
        if found is not None:
            return found
        if queue == "":  # events without a queue pass every queue filter
            matched = list(self.subscribers)
        else:
            matched = [*self.anywhere, *self.by_queue.get(queue, ())]
            for match, group in self.globs:
                bus.match_checks += 1
                if match(queue):
                    matched.extend(group)
        per_plugin: dict[str, dict[str, _Subscriber]] = {}
        for s in matched:
            per_plugin.setdefault(s.sub.plugin, {})[s.sub.id] = s
        found = bus.intern_targets(
            tuple(
                (plugin, tuple(sorted(subs.values(), key=lambda s: -s.sub.priority)))
                for plugin, subs in per_plugin.items()
            )
        )
        if len(self.cache) >= _CACHE_LIMIT:
            self.cache.clear()
        self.cache[queue] = found
        return found


@dataclass
class _Inbox:
    """One plugin's bounded inbox: ordinary events in a deque, sampled ones keyed by
    (type, queue) so a newer one replaces the older. A sampled event keeps its place among the
    ordinary ones as ``(ordinal, tick)``: how many ordinary events had been added before it,
    and its arrival among the sampled ones. Ordinary events are stored as they are, no wrapper
    per event (the garbage collector would have to walk millions of them at scale)."""

    maxlen: int
    events: deque[Event] = field(default_factory=deque)
    latest: dict[tuple[str, str], tuple[int, int, Event]] = field(default_factory=dict)
    appended: int = 0
    """Ordinary events ever added: ``events[0]`` is number ``appended - len(events)``."""
    ticks: int = 0
    delivered: int = 0
    dropped: int = 0
    first_drop: float = 0.0
    last_drop: float = 0.0
    coalesced: int = 0
    throttled: int = 0

    def __len__(self) -> int:
        return len(self.events) + len(self.latest)

    def put(self, event: Event) -> bool:
        """Add ``event``; True if the inbox was empty (the dispatcher must be woken)."""
        was_empty = not self.events and not self.latest
        if event.type in SAMPLED:
            key = (event.type, event.queue)
            self.ticks += 1
            if key in self.latest:
                self.latest[key] = (self.appended, self.ticks, event)
                self.coalesced += 1
                return False
            self._make_room()
            self.latest[key] = (self.appended, self.ticks, event)
        else:
            self._make_room()
            self.events.append(event)
            self.appended += 1
        return was_empty

    def put_many(self, events: list[Event]) -> bool:
        """Add ordinary (not sampled) ``events``, with the same outcome as :meth:`put` of each
        in turn; True if the inbox was empty."""
        queue, latest = self.events, self.latest
        was_empty = not queue and not latest
        over = len(queue) + len(latest) + len(events) - self.maxlen
        if over > 0:
            self._dropped(over)
            if not queue and len(latest) >= self.maxlen:
                # one by one, only the first put finds no ordinary event to drop
                self._drop_oldest_sampled()
                over -= 1
        queue.extend(events)
        self.appended += len(events)
        for _ in range(over):
            queue.popleft()
        return was_empty

    def _make_room(self) -> None:
        if len(self.events) + len(self.latest) < self.maxlen:
            return
        if self.events:
            self.events.popleft()
        else:  # only sampled events wait: drop the oldest of them
            self._drop_oldest_sampled()
        self._dropped(1)

    def _dropped(self, count: int) -> None:
        now = time.time()
        if not self.dropped:
            self.first_drop = now
        self.last_drop = now
        self.dropped += count

    def _drop_oldest_sampled(self) -> None:
        latest = self.latest
        del latest[min(latest, key=lambda k: latest[k][:2])]

    def take(self, limit: int) -> list[Event]:
        events = self.events
        out: list[Event]
        if not self.latest:
            if limit >= len(events):
                out = list(events)
                events.clear()
            else:
                out = [events.popleft() for _ in range(limit)]
        else:
            head = self.appended - len(events)
            sampled = sorted(self.latest.values(), key=lambda item: item[:2])
            out = []
            i = 0
            while len(out) < limit and (events or i < len(sampled)):
                if i < len(sampled) and (not events or sampled[i][0] <= head):
                    event = sampled[i][2]
                    del self.latest[(event.type, event.queue)]
                    out.append(event)
                    i += 1
                else:
                    out.append(events.popleft())
                    head += 1
        self.delivered += len(out)
        return out

    def clear(self) -> int:
        n = len(self)
        self.events.clear()
        self.latest.clear()
        return n


class EventBus:
    """Routes events to per-plugin bounded inboxes. Thread-safe: publish from reader threads,
    drain from dispatcher threads.

    Args:
        maxlen: the capacity of each plugin's inbox.
        clock: monotonic seconds, for rate limits and sampling intervals (tests pass a fake).
    """

    def __init__(
        self, *, maxlen: int = DEFAULT_INBOX, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if maxlen < 1:
            raise BusError(f"maxlen must be at least 1, got {maxlen}")
        self.maxlen = maxlen
        self.clock = clock
        self.match_checks = 0
        """How many pattern and glob tests routing has made (cache misses only): publish costs
        what the matching subscriptions cost, not what all of them do."""
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._subscribers: dict[str, _Subscriber] = {}
        self._by_plugin: dict[str, dict[str, _Subscriber]] = {}
        self._exact: dict[str, dict[str, _Subscriber]] = {}
        self._wild: dict[str, tuple[Callable[[str], bool], dict[str, _Subscriber]]] = {}
        self._routes: dict[str, _Route] = {}
        self._targets: dict[tuple[Target, ...], tuple[Target, ...]] = {}
        """Equal target lists of different routes as one object (``job.*`` reaches the same
        plugins for each job event type), so publishing tells a run by identity."""
        self._inboxes: dict[str, _Inbox] = {}
        self._priorities: dict[str, int] = {}
        self._work_listeners: tuple[WorkListener, ...] = ()
        self._change_listeners: tuple[ChangeListener, ...] = ()

    # -- subscriptions -----------------------------------------------------------------------

    def subscribe(
        self,
        plugin: str,
        type_pattern: str,
        *,
        queues: Sequence[str] = ("*",),
        interval: float | None = None,
        rate_limit: float | None = None,
        priority: int = 0,
    ) -> str:
        """Subscribe ``plugin`` to events whose type matches ``type_pattern`` (``job.*``) and
        whose queue matches one of ``queues`` (globs); return the subscription id.

        Raises:
            BusError: bad arguments.
            EventTypeError: the pattern matches no event type.
        """
        if not plugin:
            raise BusError("a subscription needs a plugin name")
        check_pattern(type_pattern)
        if isinstance(queues, str):
            queues = (queues,)
        if not queues or not all(isinstance(q, str) and q for q in queues):
            raise BusError(f"queues must be non-empty globs, got {queues!r}")
        if interval is not None and not interval > 0:
            raise BusError(f"interval must be positive seconds, got {interval!r}")
        if rate_limit is not None and not rate_limit > 0:
            raise BusError(f"rate_limit must be positive events/s, got {rate_limit!r}")
        with self._lock:
            sub = Subscription(
                id=f"sub-{next(self._ids)}",
                plugin=plugin,
                type_pattern=type_pattern,
                queues=tuple(dict.fromkeys(queues)),
                interval=interval,
                rate_limit=rate_limit,
                priority=int(priority),
            )
            subscriber = _Subscriber(sub, self.clock())
            self._subscribers[sub.id] = subscriber
            self._by_plugin.setdefault(plugin, {})[sub.id] = subscriber
            if is_glob(type_pattern):
                group = self._wild.setdefault(type_pattern, (glob_matcher(type_pattern), {}))[1]
            else:
                group = self._exact.setdefault(type_pattern, {})
            group[sub.id] = subscriber
            self._inboxes.setdefault(plugin, _Inbox(self.maxlen))
            self._changed(plugin)
        self._notify_change()
        return sub.id

    def unsubscribe(self, subscription_id: str) -> bool:
        """Remove one subscription; False if there is none with that id."""
        with self._lock:
            subscriber = self._subscribers.pop(subscription_id, None)
            if subscriber is None:
                return False
            self._remove(subscriber)
            self._changed(subscriber.sub.plugin)
        self._notify_change()
        return True

    def unsubscribe_all(self, plugin: str) -> int:
        """Remove every subscription of ``plugin``; return how many. Its inbox (events still
        waiting and its counters) stays until :meth:`discard`."""
        with self._lock:
            mine = list(self._by_plugin.get(plugin, {}).values())
            for subscriber in mine:
                del self._subscribers[subscriber.sub.id]
                self._remove(subscriber)
            self._changed(plugin)
        if mine:
            self._notify_change()
        return len(mine)

    def _remove(self, subscriber: _Subscriber) -> None:
        sub = subscriber.sub
        mine = self._by_plugin[sub.plugin]
        del mine[sub.id]
        if not mine:
            del self._by_plugin[sub.plugin]
        if is_glob(sub.type_pattern):
            group = self._wild[sub.type_pattern][1]
            del group[sub.id]
            if not group:
                del self._wild[sub.type_pattern]
        else:
            group = self._exact[sub.type_pattern]
            del group[sub.id]
            if not group:
                del self._exact[sub.type_pattern]

    def _changed(self, plugin: str) -> None:
        self._routes.clear()
        self._targets.clear()
        mine = self._by_plugin.get(plugin, {})
        self._priorities[plugin] = max((s.sub.priority for s in mine.values()), default=0)

    def subscriptions(self, plugin: str | None = None) -> list[Subscription]:
        with self._lock:
            if plugin is None:
                return [s.sub for s in self._subscribers.values()]
            return [s.sub for s in self._by_plugin.get(plugin, {}).values()]

    def priority(self, plugin: str) -> int:
        """The highest priority among ``plugin``'s subscriptions (0 without any)."""
        return self._priorities.get(plugin, 0)

    def route(self, event_type: str, queue: str = "") -> list[tuple[str, list[Subscription]]]:
        """The plugins (and their subscriptions) an event of this type and queue reaches."""
        with self._lock:
            targets = self._route(event_type).targets(queue, self)
            return [(plugin, [s.sub for s in subs]) for plugin, subs in targets]

    def sample_interval(self, event_type: str) -> float | None:
        """The smallest interval any subscription matching ``event_type`` asks for (default
        5 s, at least 0.2 s); None while nobody subscribes."""
        with self._lock:
            subscribers = self._route(event_type).subscribers
            return min((s.sub.sample_interval for s in subscribers), default=None)

    def intern_targets(self, targets: tuple[Target, ...]) -> tuple[Target, ...]:
        """The one object equal to ``targets`` (lock held)."""
        if len(self._targets) >= _CACHE_LIMIT:
            self._targets.clear()
        return self._targets.setdefault(targets, targets)

    def _route(self, event_type: str) -> _Route:
        route = self._routes.get(event_type)
        if route is None:
            subscribers = list(self._exact.get(event_type, {}).values())
            for match, group in self._wild.values():
                self.match_checks += 1
                if match(event_type):
                    subscribers.extend(group.values())
            route = _Route(subscribers)
            if len(self._routes) >= _CACHE_LIMIT:
                self._routes.clear()
            self._routes[event_type] = route
        return route

    # -- events ------------------------------------------------------------------------------

    def publish(self, event: Event) -> int:
        """Route ``event`` into every matching plugin's inbox; return how many took it."""
        return self.publish_many((event,))

    def publish_many(self, events: Iterable[Event]) -> int:
        """Publish a batch under one lock and wake each plugin's dispatcher at most once.

        Consecutive events that reach the same plugins, none of them rate-limited, and are
        not sampled (a run of job events from one stream) go into each inbox together: the
        cost is per plugin per run, not per plugin per event."""
        woken: list[str] = []
        taken = 0
        now = self.clock()
        with self._lock:
            routes = self._routes
            run: list[Event] = []
            run_targets: tuple[Target, ...] = ()
            for event in events:
                route = routes.get(event.type) or self._route(event.type)
                targets = route.cache.get(event.queue)
                if targets is None:
                    targets = route.targets(event.queue, self)
                if event.type not in SAMPLED and route.unlimited:
                    if targets is not run_targets:
                        taken += self._put_run(run, run_targets, woken)
                        run, run_targets = [], targets
                    run.append(event)
                    continue
                taken += self._put_run(run, run_targets, woken)
                run, run_targets = [], ()
                sampled = event.type in SAMPLED
                for plugin, subscribers in targets:
                    inbox = self._inboxes[plugin]
                    if not self._admit(subscribers, event, now, sampled, inbox):
                        continue
                    taken += 1
                    if inbox.put(event):
                        woken.append(plugin)
            taken += self._put_run(run, run_targets, woken)
        for plugin in woken:
            for listener in self._work_listeners:
                try:
                    listener(plugin)
                except Exception:  # a listener must never break publishing
                    log.exception("event bus work listener failed")
        return taken

    def _put_run(self, run: list[Event], targets: tuple[Target, ...], woken: list[str]) -> int:
        """Put ``run`` (ordinary events every target admits) into each target's inbox."""
        if not run:
            return 0
        for plugin, _ in targets:
            if self._inboxes[plugin].put_many(run):
                woken.append(plugin)
        return len(run) * len(targets)

    @staticmethod
    def _admit(
        subscribers: tuple[_Subscriber, ...],
        event: Event,
        now: float,
        sampled: bool,
        inbox: _Inbox,
    ) -> bool:
        limited = False
        for s in subscribers:
            sub = s.sub
            if sub.rate_limit is None and not sampled:
                return True
            if sampled:
                # Samplers tick at the smallest interval asked; a slower subscription takes
                # one sample per its own interval (10% slack absorbs tick jitter).
                due = s.next_sample.get(event.queue, 0.0)
                interval = sub.sample_interval
                if now < due - 0.1 * interval:
                    continue
            if sub.rate_limit is not None and not s.take_token(now):
                limited = True
                continue
            if sampled:
                base = due if due > now - interval else now  # keep the cadence, no catch-up
                s.next_sample[event.queue] = base + interval
            return True
        if limited:
            inbox.throttled += 1
        return False

    def drain(self, plugin: str, max_batch: int = DEFAULT_INBOX) -> list[Event]:
        """Take up to ``max_batch`` waiting events of ``plugin``, oldest first."""
        with self._lock:
            inbox = self._inboxes.get(plugin)
            return inbox.take(max_batch) if inbox else []

    def pending(self, plugin: str) -> int:
        with self._lock:
            inbox = self._inboxes.get(plugin)
            return len(inbox) if inbox else 0

    def ready(self) -> list[str]:
        """Plugins with events waiting."""
        with self._lock:
            return [plugin for plugin, inbox in self._inboxes.items() if len(inbox)]

    def plugins(self) -> list[str]:
        """Plugins with an inbox (subscribed at least once and not discarded)."""
        with self._lock:
            return list(self._inboxes)

    def stats(self, plugin: str) -> InboxStats:
        with self._lock:
            inbox = self._inboxes.get(plugin)
            if inbox is None:
                return InboxStats(0, 0, 0, 0, 0)
            return InboxStats(
                inbox.delivered, inbox.dropped, inbox.coalesced, inbox.throttled, len(inbox),
                inbox.first_drop, inbox.last_drop,
            )  # fmt: skip

    def drops(self, plugin: str) -> tuple[int, float, float]:
        """How many events ``plugin``'s inbox dropped, the first and the last time; read
        without the bus lock (a panel asks at every frame: each figure is read whole, and
        a drop made meanwhile shows at the next frame)."""
        inbox = self._inboxes.get(plugin)
        if inbox is None:
            return 0, 0.0, 0.0
        return inbox.dropped, inbox.first_drop, inbox.last_drop

    def discard(self, plugin: str) -> int:
        """Drop ``plugin``'s inbox and counters (after it unloads); return the events lost.
        A plugin that still has subscriptions keeps an empty inbox."""
        with self._lock:
            inbox = self._inboxes.pop(plugin, None)
            if inbox is None:
                return 0
            if plugin in self._by_plugin:
                self._inboxes[plugin] = _Inbox(self.maxlen)
            return inbox.clear()

    # -- listeners ---------------------------------------------------------------------------

    def add_work_listener(self, listener: WorkListener) -> None:
        """Call ``listener(plugin)`` (in the publishing thread) when an inbox gets work."""
        with self._lock:
            self._work_listeners = (*self._work_listeners, listener)

    def remove_work_listener(self, listener: WorkListener) -> None:
        with self._lock:
            self._work_listeners = tuple(x for x in self._work_listeners if x != listener)

    def add_change_listener(self, listener: ChangeListener) -> None:
        """Call ``listener()`` after any subscription change (samplers re-plan)."""
        with self._lock:
            self._change_listeners = (*self._change_listeners, listener)

    def remove_change_listener(self, listener: ChangeListener) -> None:
        with self._lock:
            self._change_listeners = tuple(x for x in self._change_listeners if x != listener)

    def _notify_change(self) -> None:
        for listener in self._change_listeners:
            try:
                listener()
            except Exception:
                log.exception("event bus change listener failed")
