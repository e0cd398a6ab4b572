"""ECP transmit state machine (ecp.md §3): one ULPDU in flight, retransmitted until acked.

Theory of operation. The owner offers a ULPDU with ``start(ulpdu, now)`` only when
``ready(now)`` says so: the machine is idle and the pacing gap since the previous new ECPDU
has passed (``min_gap``; lldpad's VDP keeps one receive buffer per port for 2 ms, so new
ECPDUs toward lldpad must be ≥ 3 ms apart, ecp.md §4.2). This pull model lets the owner pack
whatever accumulated while the previous ECPDU was in flight into the next one.

The ECPDU is sent at once and the acknowledgement timer armed (10 µs × 2^RTE). A matching
acknowledgement ends it (``UlpduDelivered``); each expiry retransmits the same ECPDU (same
sequence number) until 1 + R transmissions, then the ULPDU is abandoned and handed back to
the owner (lldpad tells its ULP nothing; we do, so VDP can re-queue). Sequence numbers start
at ``first_seq`` and skip 0 on wrap, as lldpad does.
"""

from __future__ import annotations

import enum
from typing import Final

from evb.ecp.wire import Ecpdu, EcpOp
from evb.errors import LocalProtocolError
from evb.vdp.wire import VdpPdu

Ulpdu = VdpPdu | bytes


class TxState(enum.Enum):
    IDLE = "idle"  #: nothing in flight
    WAIT_ACK = "wait_ack"  #: an ECPDU sent, ack timer armed


EDGES: Final = {
    TxState.IDLE: frozenset({TxState.WAIT_ACK}),
    TxState.WAIT_ACK: frozenset({TxState.WAIT_ACK, TxState.IDLE}),  # self-loop = retransmission
}


def next_seq(seq: int) -> int:
    """seq + 1 modulo 65536, skipping 0 (ecp.md §3.2)."""
    return seq % 0xFFFF + 1


class EcpTransmitter:
    """Transmit side of one ECP endpoint for one subtype."""

    def __init__(
        self, *, subtype: int, ack_timeout: float, max_retries: int, first_seq: int = 1, min_gap: float = 0.0
    ) -> None:
        if not 1 <= first_seq <= 0xFFFF:
            raise LocalProtocolError(f"first_seq must be 1..65535, not {first_seq}")
        self.state = TxState.IDLE
        self.subtype = subtype
        self.ack_timeout = ack_timeout
        self.max_retries = max_retries
        self.min_gap = min_gap
        self.seq = first_seq
        self.ulpdu: Ulpdu | None = None
        self.tries = 0
        self.deadline: float | None = None
        self._hold_until = float("-inf")
        self.sent = 0
        self.retransmissions = 0
        self.delivered = 0
        self.abandoned = 0

    def ready(self, now: float) -> bool:
        return self.state is TxState.IDLE and now >= self._hold_until

    def hold_until(self) -> float:
        """When a new ECPDU may be started (pacing)."""
        return self._hold_until

    def start(self, ulpdu: Ulpdu, now: float) -> Ecpdu:
        """Send a new ULPDU (caller checked ``ready``); returns the ECPDU to transmit."""
        self.state = TxState.WAIT_ACK
        self.ulpdu = ulpdu
        self.tries = 1
        self.sent += 1
        self.deadline = now + self.ack_timeout
        self._hold_until = now + self.min_gap
        return Ecpdu(EcpOp.REQUEST, self.subtype, self.seq, ulpdu)

    def ack(self, seq: int) -> Ulpdu | None:
        """An acknowledgement arrived; returns the delivered ULPDU, or None if stale."""
        if self.state is not TxState.WAIT_ACK or seq != self.seq:
            return None
        ulpdu = self.ulpdu
        self._finish()
        self.delivered += 1
        return ulpdu

    def expire(self, now: float) -> tuple[Ecpdu | None, Ulpdu | None]:
        """Ack timer check: (ECPDU to retransmit, None) or (None, abandoned ULPDU) or (None, None)."""
        if self.deadline is None or now < self.deadline or self.ulpdu is None:
            return None, None
        if self.tries <= self.max_retries:
            self.tries += 1
            self.sent += 1
            self.retransmissions += 1
            self.deadline = now + self.ack_timeout
            return Ecpdu(EcpOp.REQUEST, self.subtype, self.seq, self.ulpdu), None
        ulpdu = self.ulpdu
        self.abandoned += 1
        self._finish()
        return None, ulpdu

    def reset(self) -> Ulpdu | None:
        """Port disabled / peer lost: drop what is in flight (returned). The sequence number
        keeps counting so that a restart never reuses the number the peer saw last."""
        ulpdu = self.ulpdu if self.state is TxState.WAIT_ACK else None
        if ulpdu is not None:
            self._finish()
        return ulpdu

    def _finish(self) -> None:
        self.state = TxState.IDLE
        self.ulpdu = None
        self.deadline = None
        self.seq = next_seq(self.seq)
