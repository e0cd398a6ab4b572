"""LLDP agent for one group address (802.1AB clause 9, simplified to what EVB needs).

Theory of operation. Transmit: an LLDPDU every ``tx_interval`` seconds; on start (and
``restart``) and when the local information changes (``local_changed``), ``tx_fast_init``
LLDPDUs one ``fast_interval`` apart first (802.1AB starts fast only for a new neighbor; a start
is news to the neighbor too, and a lost first LLDPDU then costs a second, not ``tx_interval``),
the first at once if transmit credit is left (802.1AB's txCredit: at most ``tx_credit_max``
LLDPDUs in a burst, one credit back per second). The TTL sent is ``tx_interval × tx_hold``
(120 s with the defaults, as lldpad); ``shutdown()`` sends TTL 0.

Receive: each LLDPDU updates the neighbor of its MSAP (chassis ID + port ID), which ages out
after its TTL; TTL 0 removes it at once. A new MSAP beyond ``max_neighbors`` is discarded
(802.1AB "too many neighbors"). The agent reports what changed through events; the owner
(the port) decides what a neighbor's EVB TLV means.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from evb.lldp.events import LldpEvent, NeighborAdded, NeighborAged, NeighborRemoved, NeighborUpdated, TooManyNeighbors
from evb.lldp.wire import Lldpdu


@dataclass(frozen=True, slots=True, kw_only=True)
class LldpTimers:
    tx_interval: float = 30.0  #: msgTxInterval
    tx_hold: int = 4  #: msgTxHold: TTL = tx_interval × tx_hold
    fast_interval: float = 1.0  #: msgFastTx
    tx_fast_init: int = 4  #: txFastInit: LLDPDUs sent fast after a change
    tx_credit_max: int = 5  #: txCreditMax
    max_neighbors: int = 1  #: an EVB port has one peer; more MSAPs are "too many neighbors"

    @property
    def ttl(self) -> int:
        return min(0xFFFF, int(self.tx_interval * self.tx_hold))


@dataclass(slots=True)
class Neighbor:
    msap: tuple[int, bytes, int, bytes]
    lldpdu: Lldpdu
    expires: float


class LldpAgent:
    """One LLDP agent: ``build`` supplies the LLDPDU to send (it is rebuilt at each send)."""

    def __init__(self, build: Callable[[int], Lldpdu], timers: LldpTimers, *, now: float) -> None:
        self._build = build
        self.timers = timers
        self.neighbors: dict[tuple[int, bytes, int, bytes], Neighbor] = {}
        self.events: list[LldpEvent] = []
        self.out: list[Lldpdu] = []
        self._credit = timers.tx_credit_max
        self._credit_at = now + 1.0
        self._fast = timers.tx_fast_init
        self._tx_at: float | None = now
        self._running = True
        self.tx_count = 0
        self.rx_count = 0
        self.too_many = 0
        self.aged = 0

    # ------------------------------------------------------------------ inputs

    def local_changed(self, now: float) -> None:
        """Local information changed: send soon, then fast for a while."""
        if not self._running:
            return
        self._fast = self.timers.tx_fast_init
        if self._credit > 0:
            self._tx_at = now
        else:
            self._tx_at = min(self._tx_at or self._credit_at, self._credit_at)

    def receive(self, pdu: Lldpdu, now: float) -> Neighbor | None:
        """A received LLDPDU; returns the neighbor it updated (None if removed or discarded)."""
        self.rx_count += 1
        msap = (pdu.chassis_id.subtype, pdu.chassis_id.id, pdu.port_id.subtype, pdu.port_id.id)
        old = self.neighbors.get(msap)
        if pdu.ttl == 0:
            if old is not None:
                del self.neighbors[msap]
                self.events.append(NeighborRemoved(msap=msap))
            return None
        if old is None:
            if len(self.neighbors) >= self.timers.max_neighbors:
                self.too_many += 1
                self.events.append(TooManyNeighbors(msap=msap))
                return None
            nb = Neighbor(msap, pdu, now + pdu.ttl)
            self.neighbors[msap] = nb
            self.events.append(NeighborAdded(msap=msap, ttl=pdu.ttl))
            return nb
        changed = old.lldpdu != pdu
        old.lldpdu = pdu
        old.expires = now + pdu.ttl
        if changed:
            self.events.append(NeighborUpdated(msap=msap))
        return old

    def handle_timer(self, now: float) -> None:
        if self._credit_at <= now:
            gained = int(now - self._credit_at) + 1
            self._credit = min(self.timers.tx_credit_max, self._credit + gained)
            self._credit_at += gained
        for msap, nb in list(self.neighbors.items()):
            if nb.expires <= now:
                del self.neighbors[msap]
                self.aged += 1
                self.events.append(NeighborAged(msap=msap))
        if self._running and self._tx_at is not None and self._tx_at <= now:
            if self._credit > 0:
                self._send(self.timers.ttl)
                self._credit -= 1
                if self._fast > 0:
                    self._fast -= 1
                interval = self.timers.fast_interval if self._fast > 0 else self.timers.tx_interval
                self._tx_at = now + interval
            else:
                self._tx_at = self._credit_at

    def shutdown(self) -> None:
        """Stop transmitting; the peer is told to forget us (TTL 0)."""
        if self._running:
            self._send(0)
            self._running = False
            self._tx_at = None

    def restart(self, now: float) -> None:
        self._running = True
        self._fast = self.timers.tx_fast_init
        self._tx_at = now

    def forget_neighbors(self) -> None:
        self.neighbors.clear()

    # ------------------------------------------------------------------ outputs

    def _send(self, ttl: int) -> None:
        self.out.append(self._build(ttl))
        self.tx_count += 1

    def next_deadline(self) -> float | None:
        deadlines = [nb.expires for nb in self.neighbors.values()]
        if self._tx_at is not None:
            deadlines.append(self._tx_at)
        if self._credit < self.timers.tx_credit_max:
            deadlines.append(self._credit_at)
        return min(deadlines) if deadlines else None
