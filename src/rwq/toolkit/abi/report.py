"""What a conformance run found: one verdict per case, with the reason a guest author acts on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from rwq.errors import RwqError
from rwq.plugins.runtimes.base import Hook

if TYPE_CHECKING:
    from rwq.toolkit.abi.harness import Harness

__all__ = [
    "AbiInputError",
    "AbiReport",
    "Case",
    "CaseFailed",
    "CaseResult",
    "NotExercised",
    "Verdict",
]

Verdict = Literal["pass", "fail", "skip"]


class AbiInputError(RwqError):
    """The path is no compiled plugin to run the cases on: names it and says what to do."""


class CaseFailed(Exception):
    """The plugin broke the rule a case checks; the message says how."""


class NotExercised(Exception):
    """The case could not be driven for this plugin (it never makes the host call the case
    watches, say); the message says why."""


@dataclass(frozen=True)
class Case:
    """One rule of ABI v1 checked against a running module."""

    name: str
    proves: str
    """What a pass proves, in one line (``docs/abi.md`` lists them)."""
    run: Callable[[Harness], str]
    """Drives the plugin and returns what it saw; raises :class:`CaseFailed` or
    :class:`NotExercised`."""
    needs: tuple[Hook, ...] = ()
    """Hooks the case calls: it is skipped when the module exports none of them."""


@dataclass(frozen=True)
class CaseResult:
    name: str
    verdict: Verdict
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "result": self.verdict, "reason": self.reason}


@dataclass
class AbiReport:
    """Every case's verdict on one plugin; :meth:`to_dict` is ``--abi --json``."""

    plugin: dict[str, str]
    cases: list[CaseResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No case failed (skipped ones are allowed)."""
        return all(case.verdict != "fail" for case in self.cases)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def counts(self) -> dict[str, int]:
        verdicts: list[Verdict] = ["pass", "fail", "skip"]
        return {v: sum(1 for case in self.cases if case.verdict == v) for v in verdicts}

    def add(self, name: str, verdict: Verdict, reason: str) -> None:
        self.cases.append(CaseResult(name, verdict, reason))

    def to_dict(self) -> dict[str, Any]:
        return {
            "plugin": self.plugin,
            "ok": self.ok,
            "counts": self.counts(),
            "cases": [case.to_dict() for case in self.cases],
        }
