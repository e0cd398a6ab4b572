"""Cases, verdicts and the catalogue.

A case is a small async function of a ``Tester`` plus data: an id (``area.role.what``), a title,
the clause of ``../shared/spec`` it checks, the DUT role it applies to, the hook actions it needs
and one line saying what passes. It passes by returning, fails by raising ``Fail`` (with the
frame that showed it), and is skipped by raising ``Skip`` (with the reason). Any other exception
is an ``error`` of the suite itself.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evb.conformance.tester import Tester

ROLES = ("station", "bridge")
VERDICTS = ("pass", "fail", "skip", "error")
CaseFn = Callable[["Tester"], Awaitable[None]]


class Fail(Exception):
    """The DUT did not behave as the clause says."""

    def __init__(self, reason: str, frame: bytes | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.frame = frame


class Skip(Exception):
    """The case cannot run against this DUT (a hook is missing, a feature is off, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    title: str
    clause: str  #: the section of ../shared/spec/ it checks, e.g. "ecp.md §4.2"
    role: str  #: the DUT's role: station or bridge
    fn: CaseFn = field(repr=False, compare=False)
    needs: tuple[str, ...] = ()  #: hook actions the DUT must perform (see hooks.py)
    expect: str = ""  #: what passes, in one line
    lldpad: str = ""  #: lldpad's known deviation from this case, if any (lldpad-behaviour.md)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "clause": self.clause,
            "role": self.role,
            "needs": list(self.needs),
            "expect": self.expect,
            "lldpad": self.lldpad,
        }


CATALOG: dict[str, Case] = {}


def case(
    id: str, title: str, clause: str, role: str, *, needs: tuple[str, ...] = (), expect: str = "", lldpad: str = ""
) -> Callable[[CaseFn], CaseFn]:
    """Register the decorated function as a case (ids are unique)."""
    if role not in ROLES:
        raise ValueError(f"case {id}: role must be station or bridge, not {role!r}")

    def register(fn: CaseFn) -> CaseFn:
        add(Case(id, title, clause, role, fn, needs, expect, lldpad))
        return fn

    return register


def add(c: Case) -> None:
    if c.id in CATALOG:
        raise ValueError(f"duplicate case id {c.id}")
    CATALOG[c.id] = c


def load_all() -> dict[str, Case]:
    """The whole catalogue (importing the case modules registers them)."""
    from evb.conformance import cases_ecp, cases_evb, cases_robust, cases_vdp_bridge, cases_vdp_station  # noqa: F401

    return CATALOG


#: the order areas run in: the robustness cases last (a DUT that a malformed frame kills must not
#: take the protocol cases' verdicts with it)
AREAS = ("evb", "ecp", "vdp", "robust")


def select(role: str | None = None, patterns: list[str] | None = None) -> list[Case]:
    """Cases of ``role`` (None: all) whose id matches one of the glob ``patterns`` (None: all),
    area by area (``AREAS``), in catalogue order within an area."""
    out = []
    cases = sorted(load_all().values(), key=lambda c: AREAS.index(c.id.split(".")[0]))
    for c in cases:
        if role and c.role != role:
            continue
        if patterns and not any(fnmatch.fnmatchcase(c.id, p) for p in patterns):
            continue
        out.append(c)
    return out


@dataclass(slots=True)
class CaseResult:
    case: Case
    verdict: str
    reason: str = ""
    frame: bytes | None = None
    seconds: float = 0.0
    frames: tuple[int, int] = (0, 0)  #: index range of this case's frames in the run's log

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.case.id,
            "title": self.case.title,
            "clause": self.case.clause,
            "verdict": self.verdict,
            "reason": self.reason,
            "frame": self.frame.hex() if self.frame else None,
            "seconds": round(self.seconds, 4),
            "frames": list(self.frames),
        }
