"""VDP station machine: every VSI of one port (vdp.md §9, §11; lldpad-behaviour.md §4.3).

Theory of operation. Each VSI is a record in one of these states:

* ``PROCESSING``: a request (pre-associate, pre-associate-RR, associate) is queued or sent;
  once sent, respWaitDelay runs;
* ``ESTABLISHED`` (the standard's WAIT_SYS_CMD): confirmed; reinitKeepAlive runs and its
  expiry re-sends the same request (``KEEPALIVE``);
* ``KEEPALIVE``: a refresh is queued or sent, respWaitDelay runs;
* ``DEASSOCIATING``: a de-associate is queued or sent;
* ``SUSPENDED``: the EVB peer is gone; every such VSI's request is re-sent when it is back.

Requests wait in a send queue per VSI Manager ID. The owner pulls ECPDU payloads with
``next_pdu(budget)`` whenever ECP can send: one Manager ID TLV, then as many association TLVs
of that manager as fit (``max_per_pdu``, and the ULPDU size), so whatever accumulated while
the previous ECPDU was in flight goes out together. If ECP abandons a payload the VSIs still
waiting for that answer are queued again (respWaitDelay keeps running). Keep-alives due within
``coalesce`` seconds of one that is due now are sent with it: refreshing a little early is
harmless and packs better.

Answers are matched to VSIs by (Manager ID, VSIID format, VSIID), then checked against the
Type ID/version, filter format and entries sent (vdp.md §9.2). Errors follow lldpad: a plain
error ends the VSI, a Keep error leaves an established VSI as it was, a Keep error on the
keep-alive of an associated VSI makes the station de-associate it; an unanswered request
ends the VSI silently after respWaitDelay.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from evb._fast import fast_constructor
from evb.errors import LocalProtocolError
from evb.vdp.events import VdpEvent, VdpViolation, VsiAssociated, VsiDeassociated, VsiKey, VsiRejected
from evb.vdp.timers import Buckets
from evb.vdp.validate import check_filter, check_vsiid, filter_answer_ok
from evb.vdp.wire import (
    ENTRY_SIZE,
    FilterEntry,
    FilterFormat,
    VdpMode,
    VdpPdu,
    VdpStatus,
    VdpTlv,
    VsiidFormat,
    VsiManagerIdTlv,
    VsiTlv,
)

#: The largest ULPDU lldpad accepts (ecp.md §1).
MAX_ULPDU: Final = 1493
#: How often a request is queued again after ECP gave up on it (each time 1 + R transmissions).
RESEND_LIMIT: Final = 3
_make_tlv = fast_constructor(VsiTlv)


@dataclass(frozen=True, slots=True, kw_only=True)
class Vsi:
    """A VSI as the station describes it: identity, type and filter information."""

    manager_id: bytes
    type_id: int
    type_version: int
    vsiid: bytes
    filter_format: FilterFormat
    entries: tuple[FilterEntry, ...]
    vsiid_format: int = VsiidFormat.UUID

    @property
    def key(self) -> VsiKey:
        return (self.manager_id, self.vsiid_format, self.vsiid)


class StState(enum.Enum):
    PROCESSING = "processing"  #: request queued or sent, waiting for the answer
    ESTABLISHED = "established"  #: confirmed, keep-alive timer running
    KEEPALIVE = "keepalive"  #: refresh queued or sent, waiting for the answer
    DEASSOCIATING = "deassociating"  #: de-associate queued or sent
    SUSPENDED = "suspended"  #: EVB peer lost; re-sent when it is back


_WAITING: Final = (StState.PROCESSING, StState.KEEPALIVE, StState.DEASSOCIATING)

#: The standard's mode table (vdp.md §11): may ``new`` follow the last requested mode?
#: (lldpad enforces "numerically not lower" instead, refusing Pre-Assoc-RR → Pre-Assoc.)
_ALLOWED: Final[dict[VdpMode, frozenset[VdpMode | None]]] = {
    VdpMode.PREASSOC: frozenset({None, VdpMode.PREASSOC, VdpMode.PREASSOC_RR}),
    VdpMode.PREASSOC_RR: frozenset({None, VdpMode.PREASSOC, VdpMode.PREASSOC_RR}),
    VdpMode.ASSOC: frozenset({None, VdpMode.PREASSOC, VdpMode.PREASSOC_RR, VdpMode.ASSOC}),
    VdpMode.DEASSOC: frozenset({VdpMode.PREASSOC, VdpMode.PREASSOC_RR, VdpMode.ASSOC}),
}


class StationVsi:
    """State of one VSI (slotted: a station may hold 100,000 of them)."""

    __slots__ = (
        "armed",
        "confirmed",
        "deadline",
        "entries",
        "last_answer",
        "pending",
        "queued",
        "requested",
        "requested_entries",
        "resends",
        "state",
        "status",
        "vsi",
    )

    def __init__(self, vsi: Vsi, mode: VdpMode, status: VdpStatus) -> None:
        self.vsi = vsi
        self.requested = mode
        self.confirmed: VdpMode | None = None
        self.status = status  #: request status octet: the hints of the first request (lldpad)
        self.entries = vsi.entries  #: current entries (with the bridge's wildcard choices)
        self.requested_entries = vsi.entries  #: as the caller gave them
        self.state = StState.PROCESSING
        self.deadline: float | None = None  #: when the running timer expires
        self.armed: float | None = None  #: the time of this VSI's entry in the timer heap
        self.queued = False
        self.resends = 0  #: times the current request was queued again after ECP gave up
        self.pending: tuple[VdpMode, Vsi] | None = None
        self.last_answer: float | None = None  #: ``now`` of the bridge's last answer (keep-alives too)

    def request_tlv(self) -> VsiTlv:
        v = self.vsi
        return _make_tlv(
            self.requested,
            self.status,
            v.type_id,
            v.type_version,
            v.vsiid_format,
            v.vsiid,
            v.filter_format,
            self.entries,
        )

    def size(self) -> int:
        return 27 + len(self.entries) * ENTRY_SIZE[self.vsi.filter_format]


@dataclass(slots=True, kw_only=True)
class StationTimers:
    resp_wait_delay: float
    reinit_keepalive: float
    coalesce: float = 0.0


@dataclass(slots=True)
class StationCounters:
    requests_sent: int = 0
    keepalives_sent: int = 0
    pdus_built: int = 0
    resent_after_abandon: int = 0
    answers: int = 0
    stale_answers: int = 0
    unknown_answers: int = 0
    violations: int = 0
    by_state: dict[str, int] = field(default_factory=dict)


class VdpStation:
    """All VSIs of one station port."""

    def __init__(self, *, timers: StationTimers, max_per_pdu: int = 0) -> None:
        self.timers = timers
        self.max_per_pdu = max_per_pdu  #: association TLVs per ECPDU; 0 = as many as fit
        self.group_ids = False
        self.send_keepalives = True  #: False only to show the conformance suite a faulty station
        self.active = False  #: EVB negotiated: requests may be sent
        self.vsis: dict[VsiKey, StationVsi] = {}
        self.events: deque[VdpEvent] = deque()
        self.counters = StationCounters()
        self._queue: dict[bytes, dict[VsiKey, StationVsi]] = {}
        self._timers: Buckets[StationVsi] = Buckets()

    # ------------------------------------------------------------------ commands

    def request(self, vsi: Vsi, mode: VdpMode, *, now: float, hints: str = "none", force: bool = False) -> None:
        """A client command: ``mode`` for ``vsi``. Raises ``LocalProtocolError`` if illegal.

        ``force`` sends a De-Associate for a VSI this station does not know (an agent restarted
        with a de-associate still owed, from its persisted state)."""
        key = vsi.key
        rec = self.vsis.get(key)
        current = rec.requested if rec is not None else None
        if rec is not None and rec.state is StState.DEASSOCIATING and mode is not VdpMode.DEASSOC:
            current = None  # going away: the new request follows once it is gone
        if force and rec is None and mode is VdpMode.DEASSOC:
            current = VdpMode.ASSOC
        if current not in _ALLOWED[mode]:
            what = "an unknown VSI" if current is None else f"a VSI in {current.label}"
            raise LocalProtocolError(f"{mode.label} is not allowed for {what} (vdp.md §11)")
        problem = check_vsiid(vsi.vsiid_format, vsi.vsiid) or check_filter(
            vsi.filter_format, vsi.entries, group_ids=True
        )
        if problem:
            raise LocalProtocolError(problem[1])
        if self.active and FilterFormat(vsi.filter_format).has_group and not self.group_ids:
            raise LocalProtocolError(f"filter format {vsi.filter_format} needs group IDs, not negotiated")
        if rec is None:
            rec = StationVsi(vsi, mode, VdpStatus.request(hints))
            self.vsis[key] = rec
            self._start(rec, now)
            return
        if (vsi.type_id, vsi.type_version, vsi.filter_format) != (
            rec.vsi.type_id,
            rec.vsi.type_version,
            rec.vsi.filter_format,
        ) or vsi.entries not in (rec.entries, rec.requested_entries):
            raise LocalProtocolError("type or filter differs from the existing VSI's: de-associate it first")
        if rec.state in _WAITING:
            rec.pending = (mode, vsi)  # busy: done when the answer arrives
            return
        rec.requested = mode
        self._start(rec, now)

    def _start(self, rec: StationVsi, now: float) -> None:
        rec.resends = 0
        if rec.requested is VdpMode.DEASSOC:
            rec.state = StState.DEASSOCIATING
        elif self.active:
            rec.state = StState.PROCESSING
        else:
            rec.state = StState.SUSPENDED
        self._set_deadline(rec, None)
        if self.active or rec.state is StState.DEASSOCIATING:
            self._enqueue(rec)  # a de-associate waits in the queue for EVB if need be

    # ------------------------------------------------------------------ queue and PDUs

    def _enqueue(self, rec: StationVsi) -> None:
        if not rec.queued:
            rec.queued = True
            self._queue.setdefault(rec.vsi.manager_id, {})[rec.vsi.key] = rec

    def has_pending(self) -> bool:
        return self.active and bool(self._queue)

    def next_pdu(self, now: float, budget: int = MAX_ULPDU) -> tuple[VdpPdu, list[StationVsi]] | None:
        """Build the next ECPDU payload: one manager's queued requests, packed."""
        while self.active and self._queue:
            mgr = next(iter(self._queue))
            q = self._queue[mgr]
            tlvs: list[VdpTlv] = [VsiManagerIdTlv(mgr)]
            sent: list[StationVsi] = []
            room = budget - 18
            limit = self.max_per_pdu or 1 << 30
            resp_wait = self.timers.resp_wait_delay
            taken: list[StationVsi] = []
            for rec in q.values():
                size = rec.size()
                if len(taken) >= limit or (size > room and taken):
                    break
                room -= size
                taken.append(rec)
            for rec in taken:
                del q[rec.vsi.key]
                rec.queued = False
                if rec.vsi.filter_format in (3, 4) and not self.group_ids:
                    self._end(
                        rec,
                        now,
                        VsiRejected(
                            key=rec.vsi.key,
                            mode=rec.requested,
                            code=1,
                            keep=False,
                            hard=False,
                            reason="filter format needs group IDs, not negotiated",
                        ),
                    )
                    continue
                tlvs.append(rec.request_tlv())
                sent.append(rec)
                if rec.deadline is None:  # a re-send after ECP gave up keeps its respWaitDelay running
                    rec.deadline = now + resp_wait
                    self._timers.arm(rec)
                if rec.state is StState.KEEPALIVE:
                    self.counters.keepalives_sent += 1
                else:
                    self.counters.requests_sent += 1
            if not q:
                del self._queue[mgr]
            else:  # round robin between managers
                self._queue[mgr] = self._queue.pop(mgr)
            if sent:
                self.counters.pdus_built += 1
                return VdpPdu(tuple(tlvs)), sent
        return None

    def abandoned(self, sent: list[StationVsi]) -> None:
        """ECP gave up on the payload that carried these VSIs' requests: queue them again, at most
        ``RESEND_LIMIT`` times per request (then respWaitDelay decides): a silent peer must not be
        flooded (lldpad sends a request 1 + R times in all)."""
        for rec in sent:
            if rec.state in _WAITING and self.vsis.get(rec.vsi.key) is rec and rec.resends < RESEND_LIMIT:
                rec.resends += 1
                self.counters.resent_after_abandon += 1
                self._enqueue(rec)

    # ------------------------------------------------------------------ received VDP

    def receive(self, pdu: VdpPdu, now: float) -> None:
        tlvs = pdu.tlvs
        if not tlvs or not isinstance(tlvs[0], VsiManagerIdTlv):
            self._violation("VDP PDU does not start with a VSI Manager ID TLV")
            return
        mgr = tlvs[0].manager_id
        for tlv in tlvs[1:]:
            if isinstance(tlv, VsiTlv):
                self._answer(mgr, tlv, now)
            elif isinstance(tlv, VsiManagerIdTlv):
                self._violation("second VSI Manager ID TLV in one PDU")
                return

    def _answer(self, mgr: bytes, tlv: VsiTlv, now: float) -> None:
        rec = self.vsis.get((mgr, tlv.vsiid_format, tlv.vsiid))
        status = tlv.status
        if not status.response:
            if tlv.mode is not VdpMode.DEASSOC:
                self._violation(f"bridge sent a {tlv.mode.label} request")
            elif rec is None:
                self.counters.unknown_answers += 1  # e.g. lldpad's lingering de-associate
            else:
                self._end(rec, now, VsiDeassociated(key=rec.vsi.key, reason="bridge"))
            return
        if rec is None:
            self.counters.unknown_answers += 1
            return
        if rec.state not in _WAITING or rec.deadline is None:
            self.counters.stale_answers += 1  # a duplicate answer, or one to a request not sent
            return
        if rec.queued:  # queued again after ECP gave up, but the first copy got through
            self._dequeue(rec)
        v = rec.vsi
        if (tlv.type_id, tlv.type_version, tlv.filter_format) != (v.type_id, v.type_version, v.filter_format):
            self.counters.stale_answers += 1
            return
        self.counters.answers += 1
        rec.last_answer = now
        if not filter_answer_ok(rec.entries, tlv.entries):
            self._end(rec, now, VsiDeassociated(key=v.key, reason="filter-mismatch"))
            return
        code = status.code
        if code:
            self._error_answer(rec, tlv, now)
            return
        if tlv.mode is VdpMode.DEASSOC or rec.state is StState.DEASSOCIATING:
            self._end(rec, now, VsiDeassociated(key=v.key, reason="deassociated"))
            return
        changed = rec.state is StState.PROCESSING or rec.confirmed is not tlv.mode or rec.entries != tlv.entries
        rec.entries = tlv.entries
        rec.confirmed = tlv.mode
        rec.state = StState.ESTABLISHED
        self._set_deadline(rec, now + self.timers.reinit_keepalive)
        if changed:
            self.events.append(
                VsiAssociated(
                    key=v.key, mode=tlv.mode, type_id=v.type_id, type_version=v.type_version, entries=tlv.entries
                )
            )
        self._run_pending(rec, now)

    def _error_answer(self, rec: StationVsi, tlv: VsiTlv, now: float) -> None:
        status = tlv.status
        if status.keep and rec.state is StState.KEEPALIVE and tlv.mode is VdpMode.ASSOC:
            # lldpad (vdp.md §9.3): keep error on a keep-alive of an associated VSI → de-associate
            self.events.append(
                VsiRejected(key=rec.vsi.key, mode=tlv.mode, code=status.code, keep=True, hard=status.hard)
            )
            rec.requested = VdpMode.DEASSOC
            rec.state = StState.DEASSOCIATING
            rec.pending = None
            self._set_deadline(rec, None)
            self._enqueue(rec)
            return
        if status.keep and rec.confirmed is not None:
            self.events.append(
                VsiRejected(key=rec.vsi.key, mode=tlv.mode, code=status.code, keep=True, hard=status.hard)
            )
            rec.requested = rec.confirmed
            rec.state = StState.ESTABLISHED
            self._set_deadline(rec, now + self.timers.reinit_keepalive)
            self._run_pending(rec, now)
            return
        key = rec.vsi.key
        if rec.confirmed is None:
            event: VdpEvent = VsiRejected(
                key=key, mode=rec.requested, code=status.code, keep=status.keep, hard=status.hard
            )
        else:
            event = VsiDeassociated(key=key, reason="rejected", code=status.code, hard=status.hard)
        self._end(rec, now, event)

    def _run_pending(self, rec: StationVsi, now: float) -> None:
        if rec.pending is not None:
            mode, vsi = rec.pending
            rec.pending = None
            try:
                self.request(vsi, mode, now=now)
            except LocalProtocolError as exc:
                self._violation(f"queued command dropped: {exc}")

    # ------------------------------------------------------------------ EVB up / down

    def peer_up(self, *, timers: StationTimers, group_ids: bool, now: float) -> None:
        """EVB negotiated (again): send every suspended VSI's request."""
        self.timers = timers
        self.group_ids = group_ids
        if self.active:
            return
        self.active = True
        for rec in self.vsis.values():
            if rec.state is StState.SUSPENDED:
                rec.state = StState.PROCESSING
                rec.resends = 0
                self._enqueue(rec)

    def peer_lost(self) -> None:
        """EVB peer gone: every VSI waits (suspended) until it is back; nothing is sent."""
        self.active = False
        self._queue.clear()
        self._timers.clear()
        for rec in self.vsis.values():
            rec.queued = False
            rec.deadline = rec.armed = None
            if rec.state is StState.DEASSOCIATING:
                self._enqueue(rec)  # still wanted once the peer is back
            else:
                rec.state = StState.SUSPENDED

    # ------------------------------------------------------------------ timers

    def _set_deadline(self, rec: StationVsi, deadline: float | None) -> None:
        rec.deadline = deadline
        self._timers.arm(rec)

    def next_deadline(self) -> float | None:
        return self._timers.earliest()

    def handle_timer(self, now: float) -> None:
        due = self._timers.pop_due(now)
        if any(rec.state is StState.ESTABLISHED for rec in due):
            # keep-alives due soon go out with those due now (packs better; early is harmless)
            for rec in self._timers.pop_due(now + self.timers.coalesce):
                if rec.state is StState.ESTABLISHED:
                    due.append(rec)
                else:
                    self._timers.arm(rec)  # a response wait: not due yet
        for rec in due:
            if rec.state is StState.ESTABLISHED and not self.send_keepalives:
                self._set_deadline(rec, now + self.timers.reinit_keepalive)
            elif rec.state is StState.ESTABLISHED:
                rec.state = StState.KEEPALIVE
                rec.resends = 0
                rec.deadline = None
                self._enqueue(rec)
            elif rec.state in _WAITING:  # queued again after ECP gave up, or sent: no answer in time
                rec.deadline = None
                self._end(rec, now, VsiDeassociated(key=rec.vsi.key, reason="timeout"))

    # ------------------------------------------------------------------ helpers

    def _dequeue(self, rec: StationVsi) -> None:
        mgr = rec.vsi.manager_id
        q = self._queue.get(mgr)
        if q is not None:
            q.pop(rec.vsi.key, None)
            if not q:
                del self._queue[mgr]
        rec.queued = False

    def _end(self, rec: StationVsi, now: float, event: VdpEvent) -> None:
        """The VSI is gone: forget it, report it, and run a command that waited for it."""
        key = rec.vsi.key
        if self.vsis.get(key) is rec:
            del self.vsis[key]
        rec.armed = rec.deadline = None
        if rec.queued:
            self._dequeue(rec)
        self.events.append(event)
        pending, rec.pending = rec.pending, None
        if pending is not None and pending[0] is not VdpMode.DEASSOC:
            try:
                self.request(pending[1], pending[0], now=now)
            except LocalProtocolError as exc:
                self._violation(f"queued command dropped: {exc}")

    def _violation(self, reason: str) -> None:
        self.counters.violations += 1
        self.events.append(VdpViolation(reason=reason))

    def state_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for rec in self.vsis.values():
            name = rec.state.value
            if rec.state is StState.ESTABLISHED and rec.confirmed is not None:
                name = rec.confirmed.label.lower()
            counts[name] = counts.get(name, 0) + 1
        return counts
