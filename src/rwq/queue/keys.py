"""Every Redis key rwq uses, built in one place.

All keys of one queue share the hash tag ``{<prefix>:q:<queue>}`` so each Lua script touches
a single cluster slot. Keys that span queues (the queue registry, workers, the system event
stream) have tags of their own and are never touched by a queue script.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rwq.errors import RwqError

QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")
RESERVED_QUEUE_NAMES = frozenset({"dead", "all"})
"""Names that mean "the dead letters" and "every queue" to ``peek`` and ``purge``."""
PLUGIN_NAME = re.compile(r"^[a-z0-9-]{1,64}\Z")


class InvalidQueueName(RwqError):
    """A queue name is empty, too long or uses characters outside ``[A-Za-z0-9._:-]``."""

    def __init__(self, name: str) -> None:
        self.name = name
        if name in RESERVED_QUEUE_NAMES:
            reason = "it is reserved (it names dead letters or every queue in admin commands)"
        else:
            reason = (
                "use 1-128 characters of letters, digits, '.', '_', ':' or '-', starting with "
                "a letter or digit"
            )
        super().__init__(f"invalid queue name {name!r}: {reason}")


def check_queue_name(name: str) -> str:
    """Return ``name`` if it is a valid queue name, else raise :class:`InvalidQueueName`."""
    if not QUEUE_NAME.match(name) or name in RESERVED_QUEUE_NAMES:
        raise InvalidQueueName(name)
    return name


class InvalidPluginName(RwqError):
    """A plugin name used in a key is not 1-64 of ``[a-z0-9-]`` (it could escape its
    namespace)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"invalid plugin name {name!r}: use 1-64 of a-z, 0-9 and '-'")


def check_plugin_name(name: str) -> str:
    """Return ``name`` if it is a valid plugin name, else raise :class:`InvalidPluginName`."""
    if not isinstance(name, str) or not PLUGIN_NAME.match(name):
        raise InvalidPluginName(name)
    return name


@dataclass(frozen=True)
class QueueKeys:
    """The keys of one queue; all in one hash slot."""

    prefix: str
    queue: str

    @property
    def tag(self) -> str:
        return f"{self.prefix}:{{{self.prefix}:q:{self.queue}}}"

    @property
    def pending(self) -> str:
        """Sorted set of job ids; score orders by priority, then enqueue time."""
        return f"{self.tag}:pending"

    @property
    def scheduled(self) -> str:
        """Sorted set of job ids by the epoch ms they become due (delays and retries)."""
        return f"{self.tag}:scheduled"

    @property
    def dead(self) -> str:
        """Sorted set of dead-lettered job ids by the epoch ms they died."""
        return f"{self.tag}:dead"

    @property
    def completed(self) -> str:
        """Capped list of completed jobs (JSON), newest first."""
        return f"{self.tag}:completed"

    @property
    def counters(self) -> str:
        """Hash of lifetime counters (enqueued, processed, failed, retried, dead)."""
        return f"{self.tag}:counters"

    @property
    def paused(self) -> str:
        return f"{self.tag}:paused"

    @property
    def events(self) -> str:
        """The queue's capped event stream."""
        return f"{self.tag}:events"

    def job(self, job_id: str) -> str:
        """Hash holding one job's fields."""
        return f"{self.tag}:job:{job_id}"

    def done(self, job_id: str) -> str:
        """List a job's waiters block on: one token (its final state) per waiter when it ends;
        expires a minute later."""
        return f"{self.tag}:done:{job_id}"

    @property
    def job_prefix(self) -> str:
        return f"{self.tag}:job:"

    def processing(self, worker_id: str) -> str:
        """Sorted set of job ids a worker holds, by the epoch ms it started them."""
        return f"{self.tag}:processing:{worker_id}"

    def throughput(self, minute: int) -> str:
        """Hash of per-second counts for one epoch minute (``p:<sec>``, ``f:<sec>``)."""
        return f"{self.tag}:tp:{minute}"

    @property
    def throughput_prefix(self) -> str:
        return f"{self.tag}:tp:"

    def schedule(self, name: str) -> str:
        """Hash of one periodic job firing on this queue: its definition (``spec``, ``rev``)
        and its state (``next_ms``, ``last_tick``, ``last_job``...), in the queue's slot so
        one script checks the tick, enqueues the job and records it."""
        return f"{self.tag}:schedule:{name}"


@dataclass(frozen=True)
class Keys:
    """The key space of one rwq deployment (one prefix)."""

    prefix: str = "rwq"

    def queue(self, name: str) -> QueueKeys:
        return QueueKeys(self.prefix, check_queue_name(name))

    @property
    def queues(self) -> str:
        """Set of every queue name ever enqueued to (the registry)."""
        return f"{self.prefix}:{{{self.prefix}:registry}}:queues"

    @property
    def workers(self) -> str:
        """Hash of worker id -> worker info JSON (host, pid, queues, started)."""
        return f"{self.prefix}:{{{self.prefix}:registry}}:workers"

    def heartbeat(self, worker_id: str) -> str:
        """Key with a TTL that exists while the worker is alive."""
        return f"{self.prefix}:{{{self.prefix}:registry}}:heartbeat:{worker_id}"

    @property
    def reaper_lock(self) -> str:
        return f"{self.prefix}:{{{self.prefix}:registry}}:reaper-lock"

    @property
    def schedules(self) -> str:
        """Hash of schedule name -> the queue it fires on (its state is under the queue's
        tag: :meth:`QueueKeys.schedule`)."""
        return f"{self.prefix}:{{{self.prefix}:registry}}:schedules"

    @property
    def schedules_channel(self) -> str:
        """Pub/sub channel: a schedule was added, changed or removed (payload: its name), so
        sleeping schedulers look again."""
        return f"{self.prefix}:schedules"

    @property
    def system_events(self) -> str:
        """Stream of events not tied to one queue (``worker.status``)."""
        return f"{self.prefix}:{{{self.prefix}:registry}}:events"

    def plugin_storage(self, plugin: str) -> str:
        """Hash of one plugin's stored data (key -> value). A plugin's keys share the hash tag
        ``{<prefix>:plugin:<name>}``, so its storage scripts touch one cluster slot."""
        return f"{self.prefix}:{{{self.prefix}:plugin:{check_plugin_name(plugin)}}}:storage"

    def plugin_storage_usage(self, plugin: str) -> str:
        """Bytes (sum of key and value lengths) held in :meth:`plugin_storage`."""
        return f"{self.prefix}:{{{self.prefix}:plugin:{check_plugin_name(plugin)}}}:usage"

    @property
    def notify_channel(self) -> str:
        """Pub/sub channel: a queue became non-empty or was resumed (payload: queue)."""
        return f"{self.prefix}:notify"

    @property
    def plugin_control(self) -> str:
        """Pub/sub channel: requests to the running plugin hosts (``rwq plugin reload``),
        JSON ``{"id", "op", "plugin", "settle"}``."""
        return f"{self.prefix}:plugin-control"

    def plugin_control_reply(self, request_id: str) -> str:
        """Pub/sub channel where the hosts answer the control request ``request_id``."""
        return f"{self.prefix}:plugin-control:reply:{request_id}"

    @property
    def web_tokens(self) -> str:
        """Hash of HTTP API token name -> its record JSON (permissions, queues, times and
        the SHA-256 of its secret; never the secret)."""
        return f"{self.prefix}:{{{self.prefix}:web}}:tokens"

    @property
    def web_tokens_used(self) -> str:
        """Hash of HTTP API token name -> when it was last used (Unix seconds)."""
        return f"{self.prefix}:{{{self.prefix}:web}}:tokens-used"

    def web_session(self, session_hash: str) -> str:
        """A browser session of ``rwq web`` (JSON, expiring), by the SHA-256 of its id."""
        return f"{self.prefix}:{{{self.prefix}:web}}:session:{session_hash}"
