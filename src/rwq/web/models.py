"""The API's request and response bodies, typed, so ``/openapi.json`` describes every one."""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi.responses import JSONResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_serializer,
)

__all__ = [
    "ApprovalList",
    "ApprovalOut",
    "AuditPage",
    "AuditRecordOut",
    "DeadLetterPage",
    "DecisionRequest",
    "DecisionResult",
    "DeleteRequest",
    "DeleteResult",
    "ErrorBody",
    "ErrorDetail",
    "InputResult",
    "JobList",
    "JobOut",
    "PanelInput",
    "PanelList",
    "PanelOut",
    "PauseResult",
    "PluginList",
    "PluginOut",
    "PluginPermissions",
    "PurgeRequest",
    "PurgeResult",
    "QueueStatsOut",
    "ReloadResult",
    "RequeueRequest",
    "RequeueResult",
    "RevokeResult",
    "SessionInfo",
    "SessionRequest",
    "StatsOut",
    "Throughput",
    "WorkerList",
    "WorkerOut",
]

PeekState = Literal["pending", "scheduled", "dead", "completed", "processing"]
PurgeTarget = Literal["pending", "scheduled", "dead", "completed"]
QUEUE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
QUEUE_GLOB_PATTERN = r"^[A-Za-z0-9._:*?-]{1,128}$"
JOB_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"


class ErrorDetail(BaseModel):
    code: str = Field(
        description="What went wrong, for programs: `unauthorized`, `forbidden`, "
        "`unknown_queue`, `not_found`, `invalid_argument`, `read_only`..."
    )
    message: str = Field(description="What went wrong, for people.")
    argument: str | None = Field(None, description="The argument at fault, when one is.")
    permission: str | None = Field(None, description="The permission a 403 lacked.")
    queue: str | None = Field(None, description="The queue a 403 or 404 was about.")


class ErrorBody(BaseModel):
    """Every error the API answers."""

    error: ErrorDetail


class QueueStatsOut(BaseModel):
    queue: str
    pending: int
    processing: int
    scheduled: int
    dead: int
    completed_total: int
    failed_total: int
    retried_total: int
    dead_total: int
    enqueued_total: int
    paused: bool
    oldest_pending_age_s: float | None
    throughput_1m: int = Field(description="Jobs completed in the last 60 seconds.")
    failed_1m: int
    rate_limit: str | None = Field(None, description="Jobs that may start per period (100/1m).")
    rate_limit_source: str | None = Field(None, description="`stored` or `setting`.")
    rate_used: int | None = Field(None, description="Jobs started in the limit's window.")


class StatsOut(BaseModel):
    """Like `rwq admin stats --json`, limited to the token's queues."""

    queues: list[QueueStatsOut]
    workers: int
    taken_at: float


class JobOut(BaseModel):
    id: str
    queue: str
    payload: Any
    priority: int
    tenant: str | None
    attempts: int
    max_retries: int
    state: str
    created_at: float | None = Field(description="Unix time in milliseconds, as every job time.")
    enqueued_at: float | None
    started_at: float | None
    finished_at: float | None
    run_at: float | None
    dead_at: float | None
    last_error: str | None
    traceback: str | None
    trace_id: str | None
    worker: str | None
    duration_ms: float | None
    labels: dict[str, Any] | None
    timeout: float | None
    result: Any = Field(None, description="What its handler returned (completed, while kept).")
    result_error: str | None = Field(
        None, description="Why a completed job has no result (not JSON, too large)."
    )
    result_ttl: float | None = Field(
        None, description="Seconds its result is kept (its own; null: the setting)."
    )
    unique_key: str | None = None
    progress: float | None = Field(None, description="How far its handler got, 0 to 1.")
    progress_message: str | None = None

    @field_serializer("payload", "result", mode="wrap")
    def _showable(self, value: Any, handler: SerializerFunctionWrapHandler) -> Any:
        """A payload or result too deeply nested to serialise (written by another producer)
        is answered as a note instead of failing the whole answer."""
        try:
            return handler(value)
        except ValueError as exc:
            return f"(not shown: {exc}; see `rwq admin job`)"


class JsonBody(JSONResponse):
    """JSON answers in ASCII, for the routes answering text that jobs, workers or plugins
    stored: a string with a lone surrogate is answered as its ``\\ud800`` escape (pydantic's
    own JSON writer, which the other routes keep for speed, fails on it)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(
            content, ensure_ascii=True, allow_nan=False, separators=(",", ":")
        ).encode("ascii")


Duration = StrictInt | StrictFloat | StrictStr
"""Seconds, or a duration such as ``30s`` (never a boolean taken for 1 or 0)."""


class EnqueueRequest(BaseModel):
    """One job to enqueue (as `rwq enqueue` takes it)."""

    model_config = ConfigDict(extra="forbid")

    payload: Any = Field(description="The job's payload: any JSON value.")
    priority: StrictInt = Field(0, ge=0, le=9, description="0 (low) to 9 (high).")
    tenant: str | None = Field(None, max_length=128, description="The tenant it belongs to.")
    delay: Duration | None = Field(
        None, description="Run after this long: seconds or a duration (`30s`, `5m`)."
    )
    at: StrictInt | StrictFloat | None = Field(
        None, description="Run at this Unix time (seconds); not with delay."
    )
    max_retries: StrictInt | None = Field(None, ge=0, description="Retries before it dies.")
    job_id: str | None = Field(
        None, pattern=JOB_ID_PATTERN, description="Its id (default: a new one)."
    )
    trace_id: str | None = Field(None, max_length=128)
    timeout: Duration | None = Field(None, description="How long its handler may run.")
    result_ttl: Duration | None = Field(None, description="How long its result is kept.")
    unique_key: str | None = Field(
        None, max_length=200, description="Refuse it while another job holds this key."
    )
    unique_ttl: Duration | None = Field(None, description="How long the key lives (1h).")
    on_duplicate: Literal["refuse", "existing"] = Field(
        "refuse", description="Key held: a 409 (`refuse`), or the job holding it (`existing`)."
    )


class CancelResult(BaseModel):
    job_id: str
    queue: str
    was: str = Field(description="pending, scheduled or processing.")
    worker: str | None = Field(None, description="The worker told to stop its handler.")


class JobList(BaseModel):
    queue: str
    state: PeekState
    jobs: list[JobOut]


class DeadLetterPage(BaseModel):
    total: int = Field(description="How many dead letters match the filters.")
    offset: int
    limit: int
    jobs: list[JobOut]


class RequeueRequest(BaseModel):
    """Dead letters to move back to pending: `ids`, or `all` of them matching the filter."""

    ids: list[str] = Field(
        default_factory=list, max_length=1000, description="Dead job ids (or give `all`)."
    )
    all: bool = Field(False, description="Every dead letter matching `queue`, `tenant`, `error`.")
    queue: str | None = Field(
        None,
        pattern=QUEUE_GLOB_PATTERN,
        description="Only this queue's, or a glob's (null: every queue).",
    )
    tenant: str | None = Field(None, max_length=128, description="With `all`: only this tenant's.")
    error: str | None = Field(
        None,
        max_length=256,
        description="With `all`: only those whose error contains this (any case).",
    )
    to: str | None = Field(
        None, pattern=QUEUE_PATTERN, description="Move them to this queue instead of their own."
    )


class RequeueResult(BaseModel):
    requeued: int


class DeleteRequest(BaseModel):
    """Dead letters of one queue to delete for good."""

    queue: str = Field(pattern=QUEUE_PATTERN, description="The queue they are dead letters of.")
    ids: list[str] = Field(min_length=1, max_length=1000, description="Their ids.")


class DeleteResult(BaseModel):
    deleted: int = Field(description="How many were deleted (ids no longer dead are skipped).")


class Throughput(BaseModel):
    queue: str
    seconds: int
    completed: list[int] = Field(description="Jobs completed in each second, oldest first.")
    failed: list[int] = Field(description="Jobs failed in each second, oldest first.")


class PurgeRequest(BaseModel):
    target: PurgeTarget = Field(description="Which jobs of the queue to delete for good.")


class PurgeResult(BaseModel):
    queue: str
    target: PurgeTarget
    purged: int


class PauseResult(BaseModel):
    queue: str
    paused: bool
    changed: bool = Field(description="False when the queue already was in that state.")


class WorkerOut(BaseModel):
    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    state: str
    alive: bool
    last_heartbeat: float | None = Field(description="Unix time in milliseconds.")
    processed: int
    failed: int
    current_jobs: list[str]


class WorkerList(BaseModel):
    workers: list[WorkerOut]


class AuditRecordOut(BaseModel):
    time: float
    kind: str
    plugin: str = Field(description="Who: a plugin, or `token:<name>` for an API call.")
    operation: str
    resource: str
    allowed: bool
    reason: str = ""
    chain: list[str] = Field(default_factory=list)
    dropped: int = 0


class AuditPage(BaseModel):
    records: list[AuditRecordOut]


class SessionRequest(BaseModel):
    token: str = Field(min_length=1, max_length=256, description="An API token.")


class SessionInfo(BaseModel):
    token: str = Field(description="The token's name.")
    permissions: list[str] = Field(description="The catalog permissions it holds.")
    queues: list[str]
    expires_at: float | None = Field(description="When the session ends (Unix seconds).")
    csrf_token: str | None = Field(
        None, description="Send it as `X-CSRF-Token` on every POST of the session."
    )


PLUGIN_PATTERN = r"^[a-z0-9-]{1,64}$"


class PluginPermissions(BaseModel):
    granted: list[str]
    pending: list[str]
    denied: list[str]


class PluginOut(BaseModel):
    name: str
    version: str
    runtime: str
    state: str = Field(
        description="discovered, validated, awaiting_approval, loading, ready, "
        "active, error, disabled or unloaded."
    )
    reason: str
    permissions: PluginPermissions


class PluginList(BaseModel):
    plugins: list[PluginOut]


class ReloadResult(BaseModel):
    plugin: str
    message: str = Field(description="How the reload went, as `rwq plugin reload` says it.")
    state: str


class ApprovalOut(BaseModel):
    plugin: str
    version: str
    update: bool = Field(description="A new version of a running plugin.")
    pending: list[str]
    granted: list[str]
    denied: list[str]


class ApprovalList(BaseModel):
    approvals: list[ApprovalOut]


class DecisionRequest(BaseModel):
    permissions: list[str] | None = Field(
        None, max_length=64, description="Only these permissions (null: every pending one)."
    )


class DecisionResult(BaseModel):
    plugin: str
    state: str


class RevokeResult(BaseModel):
    plugin: str
    revoked: list[str]


class PanelTarget(BaseModel):
    """Something of the panel a click can name (`POST /api/v1/plugins/{name}/input`)."""

    kind: Literal["button", "select"]
    id: str = Field(description="The button's, list's or table's id.")
    index: int = Field(description="The list item's or table row's index; 0 for a button.")
    label: str = Field(description="The button's label, the item's text or the row's first cell.")
    key: str | None = Field(None, description="The button's key.")


class PanelOut(BaseModel):
    plugin: str
    title: str = Field(description="The panel's title (plain text).")
    seq: int = Field(description="The frame's number; a later frame has a higher one.")
    at: float = Field(description="When the frame was drawn (Unix seconds).")
    state: str = Field(description="The plugin's state.")
    note: str = Field(description="Why there is no panel, or what its border says (plain text).")
    html: str | None = Field(
        description="The panel drawn from its UI elements into HTML, every plugin string "
        "escaped; null when the plugin shows none (its state and `note` say why)."
    )
    targets: list[PanelTarget] = Field(
        default_factory=list, description="What a click can name, in the panel's order."
    )


class PanelList(BaseModel):
    panels: list[PanelOut]


KEY_PATTERN = r"^([!-~]|[^\x00-\x7f]|up|down|left|right|enter|space|home|end|delete|backspace)$"
"""Keys a panel takes from a browser: one printable character, or a named key (Textual's
names); the keys the page binds itself (tab, escape, ?) are not sent."""


class PanelInput(BaseModel):
    kind: Literal["button", "select", "key"] = Field(
        description="A button pressed, a list item or table row chosen, or a key pressed while "
        "the panel has the focus."
    )
    id: str = Field(
        "", max_length=64, description="The button's, list's or table's `id` (not for a key)."
    )
    index: int = Field(0, ge=0, description="The item or row index (0 for a button).")
    key: str | None = Field(
        None,
        pattern=KEY_PATTERN,
        description="For `key`: one printable character or `up`, `down`, `left`, `right`, "
        "`enter`, `space`, `home`, `end`, `delete`, `backspace`. A button's `key` presses it.",
    )


class InputResult(BaseModel):
    plugin: str
    changed: bool = Field(
        description="Whether the plugin's panel changed (its new frame comes on the stream)."
    )
