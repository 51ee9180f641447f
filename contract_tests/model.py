"""The kit's data: a case (events + fault schedule), what happened (attempts), what was judged.

Everything here is plain, JSON-serialisable data, so a case and its evidence can be written
to a failure file, read back by ``replay``, and judged again without running anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Api = Literal["v1", "v2"]
Level = Literal["MUST", "SHOULD"]

#: Fault kinds a schedule entry may hold, in shrink order: ``ok`` first, so that shrinking
#: removes faults before anything else. Each maps to one rule of the mock (``to_rule``).
FAULT_KINDS = (
    "ok",
    "503",
    "500",
    "502",
    "504",
    "429",
    "429-date",
    "reset",
    "empty",
    "stall",
    "accept-then-500",
    "accept-then-reset",
    "expire-token",
    "partial-reject",
)


@dataclass(frozen=True)
class Case:
    """One generated (or replayed) input: the events to deliver and the faults to serve.

    ``schedule[k]`` is the fault served to the (k+1)-th POST events attempt of the case's
    namespace; attempts past the end of the schedule get no fault. ``token_schedule`` does the
    same for token requests.
    """

    api: Api
    events: list[dict[str, Any]]
    schedule: list[str] = field(default_factory=list)
    token_schedule: list[str] = field(default_factory=list)
    seed: int = 0
    case_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Case:
        return cls(
            api=data["api"],
            events=list(data["events"]),
            schedule=list(data.get("schedule", [])),
            token_schedule=list(data.get("token_schedule", [])),
            seed=int(data.get("seed", 0)),
            case_id=str(data.get("case_id", "")),
        )


@dataclass(frozen=True)
class SenderRun:
    """How the sender process ended, and what it reported in ``ROKT_KIT_RESULT_FILE``."""

    exit_code: int | None  # None: killed at the deadline
    timed_out: bool
    duration_s: float
    #: Parsed result-file lines, or None when the sender wrote no result file.
    results: list[dict[str, Any]] | None
    stdout: str = ""
    stderr: str = ""
    result_errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Finding:
    """One property that did not hold (or a coverage warning), with its evidence."""

    property: str
    level: Level
    message: str
    expected: Any = None
    observed: Any = None
    #: Journal request ids (attempts) that show it.
    attempts: tuple[int, ...] = ()
    #: Event ids concerned.
    events: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["attempts"] = list(self.attempts)
        out["events"] = list(self.events)
        return out


@dataclass
class Judgement:
    """The verdict on one case: failures by property, warnings, and coverage notes."""

    findings: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    coverage: list[str] = field(default_factory=list)
    #: Properties that were evaluated (and so could have failed) in this case.
    checked: list[str] = field(default_factory=list)
    #: Properties skipped, with the reason (e.g. no result file).
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "MUST"]

    @property
    def ok(self) -> bool:
        return not self.failed
