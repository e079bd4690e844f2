"""The bodies of the host functions, one class per family, which
:class:`~rwq.plugins.host_api.service.HostAPI` is assembled from (as redis-py assembles its
client from one class per command family); each runs only after the call's checks passed."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from rwq.errors import RwqError
from rwq.plugins.contract.errors import (
    HostCallError,
    InternalError,
    InvalidArgument,
    NotFound,
    QuotaExceeded,
)
from rwq.plugins.contract.events import ALERT_RAISED, local_event, plugin_event_type
from rwq.plugins.eventbus.bus import EventBus
from rwq.plugins.host_api.caller import DELEGATION, Caller
from rwq.plugins.host_api.storage import PluginStorage
from rwq.plugins.host_api.timers import TimerTable
from rwq.queue.admin import Admin, ReadOnlyMode, UnknownQueue
from rwq.queue.producer import Producer

__all__ = [
    "DependencyCall",
    "DependencyFunctions",
    "EventFunctions",
    "LogSink",
    "NoticeFunctions",
    "Notify",
    "QueueFunctions",
    "StorageFunctions",
    "TimerFunctions",
]

DependencyCall = Callable[[tuple[str, ...], str, str, Any], Any]
"""``call_plugin(chain, plugin, function, args) -> result``: run ``function`` of the loaded
plugin ``plugin`` (the lifecycle manager provides it). ``chain`` is the caller first and
``plugin`` last; the callee's own host calls must reach :meth:`HostAPI.call` in the same
thread (the chain travels in a context variable) or pass ``chain=``."""

Notify = Callable[[str, str, str], None]
"""``(plugin, message, level)``."""
LogSink = Callable[[str, str, str], None]
"""``(plugin, level, message)``."""


class QueueFunctions:
    """Jobs and queue admin operations: enqueue, peek, dead letters, purge, pause, stats."""

    admin: Admin
    producer: Producer
    health: Callable[[], Mapping[str, Any]] | None

    def _do_enqueue_job(self, c: Caller, a: dict[str, Any]) -> Any:
        job = self.producer.enqueue(
            a["queue"], a["payload"], priority=a["priority"], tenant=a["tenant"], delay=a["delay"]
        )
        return job.to_dict()

    def _do_peek_job(self, c: Caller, a: dict[str, Any]) -> Any:
        return [job.to_dict() for job in self.admin.peek(a["queue"], a["n"], a["state"])]

    def _do_list_dead(self, c: Caller, a: dict[str, Any]) -> Any:
        page = self.admin.dlq_list(
            queue=a["queue"],
            tenant=a["tenant"],
            error=a["error"],
            older_than_s=a["older_than_s"],
            newer_than_s=a["newer_than_s"],
            offset=a["offset"],
            limit=a["limit"],
        )
        return {"total": page.total, "jobs": [job.to_dict() for job in page.jobs]}

    def _do_requeue_job(self, c: Caller, a: dict[str, Any]) -> Any:
        if not self.admin.requeue([a["job_id"]], queue=a["queue"]):
            raise NotFound(
                f"no dead job {a['job_id']!r} in queue {a['queue']!r}",
                plugin=c.plugin,
                function="requeue_job",
                argument="job_id",
            )
        return {"requeued": 1}

    def _do_requeue_jobs(self, c: Caller, a: dict[str, Any]) -> Any:
        if bool(a["ids"]) == a["all"]:
            raise InvalidArgument(
                "give either ids or all=true", plugin=c.plugin, function="requeue_jobs"
            )
        n = self.admin.requeue(a["ids"], all_jobs=a["all"], queue=a["queue"], to=a["to"])
        return {"requeued": n}

    def _do_purge_queue(self, c: Caller, a: dict[str, Any]) -> Any:
        queue, target = a["queue"], a["target"]
        if target != "pending":
            return {"purged": self.admin.purge(target, queue=queue)}
        # Not admin.purge(queue): a queue named "dead" or "all" would be read as that target
        # and purge every queue.
        broker = self.admin.broker
        if not broker.queue_exists(queue):
            raise UnknownQueue(queue, broker.queues())
        if broker.settings.read_only:
            raise ReadOnlyMode("purge")
        return {"purged": broker.purge(queue, "pending") + broker.purge(queue, "scheduled")}

    def _do_delete_dead(self, c: Caller, a: dict[str, Any]) -> Any:
        if not a["ids"]:
            raise InvalidArgument(
                "give the ids of the dead letters to delete",
                plugin=c.plugin,
                function="delete_dead",
                argument="ids",
            )
        return {"deleted": self.admin.delete_dead(a["queue"], a["ids"])}

    def _do_pause_queue(self, c: Caller, a: dict[str, Any]) -> Any:
        return {"changed": self.admin.pause(a["queue"])}

    def _do_resume_queue(self, c: Caller, a: dict[str, Any]) -> Any:
        return {"changed": self.admin.resume(a["queue"])}

    def _do_get_queue_stats(self, c: Caller, a: dict[str, Any]) -> Any:
        queue = a["queue"]
        return self.admin.stats([queue] if queue is not None else None).to_dict()

    def _do_get_system_stats(self, c: Caller, a: dict[str, Any]) -> Any:
        assert self.health is not None
        keys = self.admin.broker.keys
        client = self.admin.client
        return {
            "workers": int(client.hlen(keys.workers)),
            "queues": int(client.scard(keys.queues)),
            **self.health(),
            "taken_at": time.time(),
        }


class EventFunctions:
    """Subscriptions, the plugin's own events, and alerts."""

    bus: EventBus
    max_subscriptions: int

    def _do_subscribe(self, c: Caller, a: dict[str, Any]) -> Any:
        if len(self.bus.subscriptions(c.plugin)) >= self.max_subscriptions:
            raise QuotaExceeded(
                f"plugin {c.plugin!r} already has {self.max_subscriptions} subscriptions",
                plugin=c.plugin,
                function="subscribe",
            )
        sub_id = self.bus.subscribe(
            c.plugin,
            a["type"],
            queues=a["queues"],
            interval=a["interval"],
            rate_limit=a["rate_limit"],
        )
        return {"id": sub_id}

    def _do_unsubscribe(self, c: Caller, a: dict[str, Any]) -> Any:
        mine = {s.id for s in self.bus.subscriptions(c.plugin)}
        if a["id"] not in mine or not self.bus.unsubscribe(a["id"]):
            raise NotFound(
                f"plugin {c.plugin!r} has no subscription {a['id']!r}",
                plugin=c.plugin,
                function="unsubscribe",
                argument="id",
            )
        return None

    def _do_emit(self, c: Caller, a: dict[str, Any]) -> Any:
        event = local_event(
            plugin_event_type(c.plugin, a["type"]), a["data"], source=f"plugin:{c.plugin}"
        )
        self.bus.publish(event)
        return {"id": event.id, "type": event.type}

    def _do_send_alert(self, c: Caller, a: dict[str, Any]) -> Any:
        data = {"from": c.plugin, **a}
        if c.chain:
            data["chain"] = list(c.chain)
        event = local_event(ALERT_RAISED, data, source=f"plugin:{c.plugin}")
        self.bus.publish(event)
        return {"id": event.id}


class StorageFunctions:
    """The plugin's key-value store."""

    storage: Callable[[str], PluginStorage]

    def _do_storage_get(self, c: Caller, a: dict[str, Any]) -> Any:
        return self.storage(c.plugin).get(a["key"])

    def _do_storage_set(self, c: Caller, a: dict[str, Any]) -> Any:
        return self.storage(c.plugin).set(a["key"], a["value"]).to_dict()

    def _do_storage_delete(self, c: Caller, a: dict[str, Any]) -> Any:
        return {"deleted": self.storage(c.plugin).delete(a["key"])}

    def _do_storage_list(self, c: Caller, a: dict[str, Any]) -> Any:
        return self.storage(c.plugin).list(a["prefix"], a["limit"])

    def _do_storage_usage(self, c: Caller, a: dict[str, Any]) -> Any:
        return self.storage(c.plugin).usage().to_dict()


class TimerFunctions:
    """The plugin's timers."""

    timers: TimerTable

    def _do_set_timer(self, c: Caller, a: dict[str, Any]) -> Any:
        self.timers.set(c.plugin, a["id"], a["interval_ms"], a["repeat"])
        return None

    def _do_clear_timer(self, c: Caller, a: dict[str, Any]) -> Any:
        return {"cleared": self.timers.clear(c.plugin, a["id"])}


class NoticeFunctions:
    """What the plugin tells the operator: log lines and notifications."""

    on_notify: Notify
    on_log: LogSink

    def _do_log(self, c: Caller, a: dict[str, Any]) -> Any:
        self.on_log(c.plugin, a["level"], a["message"])
        return None

    def _do_show_notification(self, c: Caller, a: dict[str, Any]) -> Any:
        self.on_notify(c.plugin, a["message"], a["level"])
        return None


class DependencyFunctions:
    """Calls into the plugins a plugin declares as its dependencies."""

    call_plugin: DependencyCall | None

    def _do_call_dependency(self, c: Caller, a: dict[str, Any]) -> Any:
        target, function = a["plugin"], a["function"]
        if self.call_plugin is None:
            raise NotFound(
                "this host runs no plugin dependencies", plugin=c.plugin, function="call_dependency"
            )
        chain = (*(c.chain or (c.plugin,)), target)
        token = DELEGATION.set(chain)
        try:
            return self.call_plugin(chain, target, function, a["args"])
        except HostCallError:
            raise
        except RwqError as exc:
            raise InternalError(
                f"{target}.{function} failed: {exc}", plugin=c.plugin, function="call_dependency"
            ) from None
        finally:
            DELEGATION.reset(token)
