"""VDP bridge machine: every VSI of one station-facing port (vdp.md §10, lldpad-behaviour.md §4.4).

Theory of operation. Each request TLV (request bit clear) is handled in order:

* **De-Associate**: an existing VSI is released at once (lldpad keeps it until its keep-alive
  timer runs out; we do not) and the answer is the request echoed with status 0x40; a
  De-Associate of an unknown VSI is answered the same way and creates nothing.
* **Pre-Associate, Pre-Associate-RR, Associate** of a VSI the bridge holds in the same mode
  with the same filter: a refresh. Answered at once with the stored answer; the keep-alive
  timer restarts.
* anything else: admission. A new VSI is checked (VSIID, filter entries, group IDs, the
  per-port VSI limit); then the policy callback decides: accept (possibly choosing VIDs and
  PCPs for wildcard entries), reject (status code, Keep, Hard), or pending, decided later by
  ``decide()`` or, after resourceWaitDelay, failed with code 3 (unable to contact VSI manager).

Answers: success and Keep errors keep the request's TLV type; a refusal without Keep is a
De-Associate TLV (as lldpad sends it); a request that fails the validity checks is answered in
its own TLV type (as lldpad, but with code 1 or 5 instead of lldpad's 2). Every answer restarts
toutKeepAlive; when it runs out the bridge sends an unsolicited De-Associate (status 0x00) and
releases the VSI. ``set_policy`` swaps the policy and releases the same way every established VSI
the new one refuses.

Answers wait in a queue per Manager ID and are pulled, packed, by the owner when ECP can send.
If ECP abandons a payload, its answers are queued again (up to ``resend_limit`` times).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Final, Protocol

from evb.tlv import InvalidTlv
from evb.vdp.events import VdpEvent, VdpViolation, VsiAssociated, VsiDeassociated, VsiKey, VsiRejected
from evb.vdp.timers import Buckets
from evb.vdp.validate import check_filter, check_vsiid
from evb.vdp.wire import (
    ENTRY_SIZE,
    FilterEntry,
    VdpMode,
    VdpPdu,
    VdpStatus,
    VdpStatusCode,
    VdpTlv,
    VsiManagerIdTlv,
    VsiTlv,
    salvage_vsi_tlv,
)

MAX_ULPDU: Final = 1493
_OK: Final = VdpStatus.reply()
_UNSOLICITED: Final = VdpStatus()


class Verdict(enum.Enum):
    ACCEPT = "accept"
    REJECT = "reject"
    PENDING = "pending"


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """What the policy says about one request."""

    verdict: Verdict
    entries: tuple[FilterEntry, ...] | None = None  #: accept: the entries to grant (None: as asked)
    code: int = 0  #: reject: status code
    keep: bool = False  #: reject: the VSI stays as it was
    hard: bool = False  #: reject: not transient
    reason: str = ""  #: reject: why, for people (``VsiRejected.reason``); not sent

    @classmethod
    def accept(cls, entries: tuple[FilterEntry, ...] | None = None) -> Decision:
        return cls(verdict=Verdict.ACCEPT, entries=entries)

    @classmethod
    def reject(cls, code: int, *, keep: bool = False, hard: bool = False, reason: str = "") -> Decision:
        return cls(verdict=Verdict.REJECT, code=code, keep=keep, hard=hard, reason=reason)

    @classmethod
    def pending(cls) -> Decision:
        return cls(verdict=Verdict.PENDING)


class PortView(Protocol):
    """What a policy may read of the port it decides for (per-port limits); ``VdpBridge`` is one."""

    def vsi_count(self) -> int:
        """VSIs the port holds, those waiting for a late decision included."""
        ...

    def mode_count(self, mode: VdpMode) -> int:
        """VSIs whose confirmed mode is ``mode``."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyRequest:
    """A request the policy is asked about."""

    manager_id: bytes
    tlv: VsiTlv
    current: VdpMode | None  #: the VSI's confirmed mode, None for a new VSI
    port: PortView | None = None  #: the asking port's VSIs (read only, valid during the call)


Policy = Callable[[PolicyRequest], Decision]


def accept_all(request: PolicyRequest) -> Decision:
    """lldpad's production policy: accept everything, entries as asked (no VID for VID 0)."""
    return Decision.accept()


def accept_all_assigning(vid: int) -> Policy:
    """Accept everything, entries as asked, but a wildcard VID (0) becomes ``vid``: the bridge
    supplies the VID (vdp.md §5.3, §12 #4). The bridge agent's policy without a policy file when
    ``[vdp] wildcard_vid`` is set."""

    def policy(request: PolicyRequest) -> Decision:
        entries = request.tlv.entries
        if all(e.vid for e in entries):
            return Decision.accept()
        return Decision.accept(tuple(e if e.vid else replace(e, vid=vid) for e in entries))

    return policy


class BrState(enum.Enum):
    PENDING = "pending"  #: the policy has not decided yet (resourceWaitDelay runs)
    ESTABLISHED = "established"  #: confirmed; toutKeepAlive runs


class BridgeVsi:
    __slots__ = ("answer", "armed", "asked", "deadline", "key", "mode", "state", "waiting")

    def __init__(self, key: VsiKey) -> None:
        self.key = key
        self.answer: VsiTlv | None = None  #: the success answer (entries as granted)
        self.asked: tuple[FilterEntry, ...] = ()  #: the entries as the station asked for them
        self.mode: VdpMode | None = None  #: confirmed mode
        self.state = BrState.PENDING
        self.deadline: float | None = None  #: when the running timer expires
        self.armed: float | None = None  #: the time of this VSI's entry in the timer heap
        self.waiting: VsiTlv | None = None  #: the request the policy is deciding on


@dataclass(slots=True, kw_only=True)
class BridgeTimers:
    resource_wait_delay: float
    keepalive_timeout: float


@dataclass(slots=True)
class BridgeCounters:
    requests: int = 0
    refreshes: int = 0
    admitted: int = 0
    rejected: int = 0
    invalid: int = 0
    ignored: int = 0
    keepalive_timeouts: int = 0
    policy_releases: int = 0  #: VSIs a new policy refused (``set_policy``)
    answers_sent: int = 0
    resent_after_abandon: int = 0
    violations: int = 0
    by_mode: dict[str, int] = field(default_factory=dict)


class VdpBridge:
    """All VSIs of one bridge port."""

    def __init__(
        self,
        *,
        timers: BridgeTimers,
        policy: Policy = accept_all,
        max_vsis: int = 0,
        max_per_pdu: int = 0,
        resend_limit: int = 3,
    ) -> None:
        self.timers = timers
        self.policy = policy
        self.max_vsis = max_vsis  #: 0 = no limit
        self.max_per_pdu = max_per_pdu
        self.resend_limit = resend_limit
        self.group_ids = False
        self.ok_status = _OK  #: the status of a success answer (another only to test the conformance suite)
        self.vsis: dict[VsiKey, BridgeVsi] = {}
        self.events: deque[VdpEvent] = deque()
        self.counters = BridgeCounters()
        self._queue: dict[bytes, list[tuple[VsiTlv, int]]] = {}
        self._timers: Buckets[BridgeVsi] = Buckets()
        self._modes: dict[VdpMode, int] = {}  #: VSIs per confirmed mode (``mode_count``)

    # ------------------------------------------------------------------ received requests

    def receive(self, pdu: VdpPdu, now: float) -> None:
        tlvs = pdu.tlvs
        if not tlvs or not isinstance(tlvs[0], VsiManagerIdTlv):
            self._violation("VDP PDU does not start with a VSI Manager ID TLV: dropped (as lldpad)")
            return
        mgr = tlvs[0].manager_id
        for tlv in tlvs[1:]:
            if isinstance(tlv, VsiTlv):
                if tlv.status.response:
                    self.counters.ignored += 1  # an answer sent to a bridge (lldpad ignores it too)
                else:
                    self._request(mgr, tlv, now)
            elif isinstance(tlv, VsiManagerIdTlv):
                self._violation("second VSI Manager ID TLV in one PDU: rest dropped")
                return
            elif isinstance(tlv, InvalidTlv):
                self.counters.invalid += 1
                head = salvage_vsi_tlv(tlv.type, tlv.value)
                if head is not None and not head.status.response:
                    # identity readable: refuse with "invalid format" (lldpad stays silent, and the
                    # station waits respWaitDelay); otherwise there is nobody to answer
                    self._violation(f"malformed {head.mode.label} request ({tlv.reason}): refused, code 1")
                    self._send(mgr, _with_status(head, VdpStatus.reply(VdpStatusCode.INVALID_FORMAT)))

    def _request(self, mgr: bytes, tlv: VsiTlv, now: float) -> None:
        self.counters.requests += 1
        key = (mgr, tlv.vsiid_format, tlv.vsiid)
        rec = self.vsis.get(key)
        if tlv.mode is VdpMode.DEASSOC:
            if rec is not None:
                self._release(rec, VsiDeassociated(key=key, reason="deassociated"))
            self._send(mgr, _with_status(tlv, self.ok_status))
            return
        if rec is not None and rec.state is BrState.PENDING:
            self.counters.ignored += 1  # busy: the answer comes when the policy decides
            return
        answer = rec.answer if rec is not None else None
        if (
            answer is not None
            and tlv.mode is answer.mode
            and tlv.type_id == answer.type_id
            and tlv.type_version == answer.type_version
            and (tlv.entries == answer.entries or tlv.entries == rec.asked)  # type: ignore[union-attr]
        ):
            self.counters.refreshes += 1
            self._send(mgr, answer)
            self._set_deadline(rec, now + self.timers.keepalive_timeout)  # type: ignore[arg-type]
            return
        if rec is None:
            problem = check_vsiid(tlv.vsiid_format, tlv.vsiid) or check_filter(
                tlv.filter_format, tlv.entries, group_ids=self.group_ids
            )
            if problem:
                self.counters.invalid += 1
                self.events.append(
                    VsiRejected(key=key, mode=tlv.mode, code=problem[0], keep=False, hard=False, reason=problem[1])
                )
                self._send(mgr, _with_status(tlv, VdpStatus.reply(problem[0])))
                return
            if self.max_vsis and len(self.vsis) >= self.max_vsis:
                self.counters.rejected += 1
                code = VdpStatusCode.INSUFFICIENT_RESOURCES
                self.events.append(
                    VsiRejected(key=key, mode=tlv.mode, code=code, keep=False, hard=False, reason="port VSI limit")
                )
                self._send(mgr, _with_status(tlv, VdpStatus.reply(code)), deassoc=True)
                return
        decision = self.policy(PolicyRequest(manager_id=mgr, tlv=tlv, current=rec.mode if rec else None, port=self))
        if decision.verdict is Verdict.PENDING:
            if rec is None:
                rec = BridgeVsi(key)
                self.vsis[key] = rec
            rec.state = BrState.PENDING
            rec.waiting = tlv
            self._set_deadline(rec, now + self.timers.resource_wait_delay)
            return
        self._apply(mgr, key, rec, tlv, decision, now)

    def decide(self, key: VsiKey, decision: Decision, *, now: float) -> bool:
        """The policy's late answer for a pending request; False if nothing waits for it."""
        rec = self.vsis.get(key)
        if rec is None or rec.state is not BrState.PENDING or rec.waiting is None:
            return False
        tlv, rec.waiting = rec.waiting, None
        if decision.verdict is Verdict.PENDING:
            return False
        self._apply(key[0], key, rec if rec.mode is not None else None, tlv, decision, now, placeholder=rec)
        return True

    def _apply(
        self,
        mgr: bytes,
        key: VsiKey,
        rec: BridgeVsi | None,
        tlv: VsiTlv,
        decision: Decision,
        now: float,
        placeholder: BridgeVsi | None = None,
    ) -> None:
        if decision.verdict is Verdict.REJECT:
            self.counters.rejected += 1
            code, keep, hard = decision.code, decision.keep, decision.hard
            self.events.append(
                VsiRejected(key=key, mode=tlv.mode, code=code, keep=keep, hard=hard, reason=decision.reason)
            )
            if keep:
                self._send(mgr, _with_status(tlv, VdpStatus.reply(code, keep=True, hard=hard)))
                if rec is not None:
                    rec.state = BrState.ESTABLISHED
                    self._set_deadline(rec, now + self.timers.keepalive_timeout)
                elif placeholder is not None:
                    self._forget(placeholder)
                return
            self._send(mgr, _with_status(tlv, VdpStatus.reply(code, hard=hard)), deassoc=True)
            target = rec or placeholder
            if target is not None:
                if rec is not None:
                    self._release(rec, VsiDeassociated(key=key, reason="rejected", code=code, hard=hard))
                else:
                    self._forget(target)
            return
        entries = decision.entries if decision.entries is not None else tlv.entries
        if len(entries) != len(tlv.entries):
            entries = tlv.entries  # a policy may choose VIDs/PCPs, not add or drop entries
        answer = VsiTlv(
            tlv.mode,
            self.ok_status,
            tlv.type_id,
            tlv.type_version,
            tlv.vsiid_format,
            tlv.vsiid,
            tlv.filter_format,
            entries,
        )
        if rec is None:
            rec = placeholder or BridgeVsi(key)
            self.vsis[key] = rec
        changed = rec.mode is not tlv.mode or rec.answer is None or rec.answer.entries != entries
        rec.asked = tlv.entries
        rec.answer = answer
        if rec.mode is not tlv.mode:
            if rec.mode is not None:
                self._modes[rec.mode] -= 1
            self._modes[tlv.mode] = self._modes.get(tlv.mode, 0) + 1
        rec.mode = tlv.mode
        rec.state = BrState.ESTABLISHED
        self.counters.admitted += 1
        self._send(mgr, answer)
        self._set_deadline(rec, now + self.timers.keepalive_timeout)
        if changed:
            self.events.append(
                VsiAssociated(
                    key=key, mode=tlv.mode, type_id=tlv.type_id, type_version=tlv.type_version, entries=entries
                )
            )

    # ------------------------------------------------------------------ timers

    def _set_deadline(self, rec: BridgeVsi, deadline: float | None) -> None:
        rec.deadline = deadline
        self._timers.arm(rec)

    def next_deadline(self) -> float | None:
        return self._timers.earliest()

    def handle_timer(self, now: float) -> None:
        for rec in self._timers.pop_due(now):
            self._expire(rec, now)

    def _expire(self, rec: BridgeVsi, now: float) -> None:
        mgr = rec.key[0]
        if rec.state is BrState.PENDING and rec.waiting is not None:
            tlv = rec.waiting
            rec.waiting = None
            code = VdpStatusCode.UNABLE_TO_CONTACT_VSI_MANAGER
            if rec.mode is not None:  # it was established: keep it as it was
                self._apply(mgr, rec.key, rec, tlv, Decision.reject(code, keep=True), now)
            else:
                self._apply(mgr, rec.key, None, tlv, Decision.reject(code), now, placeholder=rec)
            return
        # toutKeepAlive: unsolicited De-Associate (status 0x00) with what the VSI was granted
        self.counters.keepalive_timeouts += 1
        if rec.answer is None:
            self._forget(rec)
            return
        self._send(mgr, _with_status(rec.answer, _UNSOLICITED), deassoc=True)
        self._release(rec, VsiDeassociated(key=rec.key, reason="keepalive-timeout"))

    # ------------------------------------------------------------------ releasing

    def _release(self, rec: BridgeVsi, event: VdpEvent) -> None:
        self._forget(rec)
        if rec.mode is not None:
            self.events.append(event)

    def _forget(self, rec: BridgeVsi) -> None:
        if self.vsis.get(rec.key) is rec:
            del self.vsis[rec.key]
            if rec.mode is not None:
                self._modes[rec.mode] -= 1
        rec.armed = rec.deadline = None

    def peer_lost(self) -> None:
        """EVB peer gone: release every VSI (nothing can be sent)."""
        for rec in list(self.vsis.values()):
            self._release(rec, VsiDeassociated(key=rec.key, reason="peer-lost"))
        self._queue.clear()
        self._timers.clear()

    def peer_up(self, *, timers: BridgeTimers, group_ids: bool) -> None:
        self.timers = timers
        self.group_ids = group_ids

    # ------------------------------------------------------------------ policy

    def set_policy(self, policy: Policy, now: float) -> None:
        """Use ``policy`` from now on (a reloaded VSI type database) and re-check every established VSI.

        The new policy is asked about each VSI as it stands: its confirmed mode (``current``, and
        the TLV's mode) and its granted entries. A VSI it rejects without Keep is released as on
        toutKeepAlive expiry: an unsolicited De-Associate (status 0x00) and
        ``VsiDeassociated(reason="policy")`` carrying the policy's code and Hard bit. An accept, a
        Keep rejection or a pending verdict leaves the VSI untouched (its timer too). A VSI whose
        request waits for a late decision is left to that decision (``decide`` or resourceWaitDelay).
        ``now`` is not needed (nothing is timed) but kept for symmetry with the other inputs.
        """
        self.policy = policy
        for rec in list(self.vsis.values()):
            if rec.state is not BrState.ESTABLISHED or rec.answer is None:
                continue
            tlv = _with_status(rec.answer, _UNSOLICITED)
            mgr = rec.key[0]
            decision = policy(PolicyRequest(manager_id=mgr, tlv=tlv, current=rec.mode, port=self))
            if decision.verdict is not Verdict.REJECT or decision.keep:
                continue
            self.counters.policy_releases += 1
            self._send(mgr, tlv, deassoc=True)
            self._release(rec, VsiDeassociated(key=rec.key, reason="policy", code=decision.code, hard=decision.hard))

    def vsi_count(self) -> int:
        """VSIs this port holds, those waiting for a late decision included (``PortView``)."""
        return len(self.vsis)

    def mode_count(self, mode: VdpMode) -> int:
        """VSIs whose confirmed mode is ``mode`` (``PortView``)."""
        return self._modes.get(mode, 0)

    # ------------------------------------------------------------------ answers out

    def _send(self, mgr: bytes, tlv: VsiTlv, *, deassoc: bool = False, tries: int = 0) -> None:
        if deassoc and tlv.mode is not VdpMode.DEASSOC:
            tlv = VsiTlv(
                VdpMode.DEASSOC,
                tlv.status,
                tlv.type_id,
                tlv.type_version,
                tlv.vsiid_format,
                tlv.vsiid,
                tlv.filter_format,
                tlv.entries,
            )
        q = self._queue.get(mgr)
        if q is None:
            self._queue[mgr] = [(tlv, tries)]
        else:
            q.append((tlv, tries))

    def has_pending(self) -> bool:
        return bool(self._queue)

    def next_pdu(self, budget: int = MAX_ULPDU) -> tuple[VdpPdu, list[tuple[VsiTlv, int]]] | None:
        """The next payload of answers: one manager's, packed."""
        if not self._queue:
            return None
        mgr = next(iter(self._queue))
        q = self._queue[mgr]
        room = budget - 18
        limit = self.max_per_pdu or 1 << 30
        n = 0
        while n < len(q) and n < limit:
            size = 27 + len(q[n][0].entries) * ENTRY_SIZE[q[n][0].filter_format]
            if size > room and n:
                break
            room -= size
            n += 1
        items, rest = q[:n], q[n:]
        if rest:
            del self._queue[mgr]
            self._queue[mgr] = rest  # round robin
        else:
            del self._queue[mgr]
        self.counters.answers_sent += n
        tlvs: list[VdpTlv] = [VsiManagerIdTlv(mgr)]
        tlvs.extend(t for t, _ in items)
        return VdpPdu(tuple(tlvs)), items

    def abandoned(self, pdu: VdpPdu, items: list[tuple[VsiTlv, int]]) -> None:
        """ECP gave up on a payload of answers: queue them again, a bounded number of times."""
        mgr = pdu.manager_id
        if mgr is None:
            return
        for tlv, tries in items:
            if tries < self.resend_limit:
                self.counters.resent_after_abandon += 1
                self._send(mgr, tlv, tries=tries + 1)

    # ------------------------------------------------------------------ helpers

    def _violation(self, reason: str) -> None:
        self.counters.violations += 1
        self.events.append(VdpViolation(reason=reason))

    def mode_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for rec in self.vsis.values():
            name = rec.mode.label.lower() if rec.mode is not None else "pending"
            counts[name] = counts.get(name, 0) + 1
        return counts


def _with_status(tlv: VsiTlv, status: VdpStatus) -> VsiTlv:
    return VsiTlv(
        tlv.mode, status, tlv.type_id, tlv.type_version, tlv.vsiid_format, tlv.vsiid, tlv.filter_format, tlv.entries
    )
