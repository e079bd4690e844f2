"""What the asyncio API's tests run against (the ``target`` fixture of this folder)."""

from __future__ import annotations

from dataclasses import dataclass

from rwq.config import Settings
from rwq.queue.admin import Admin
from rwq.queue.broker import Broker


@dataclass(frozen=True)
class Target:
    """Settings that point at a flushed server, and a sync broker on it."""

    name: str
    settings: Settings
    broker: Broker

    @property
    def admin(self) -> Admin:
        return Admin(self.broker)
