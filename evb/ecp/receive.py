"""ECP receive state machine (ecp.md §4): acknowledge every request, deliver each once.

The standard's rule (and lldpad's): only a repeat of the immediately preceding sequence number
is a duplicate, whatever its content; the first request after (re)start is accepted whatever its
number. We add one refinement for peers that restart (lldpad restarts its sequence at 1, ecp.md
§4.3): a repeat of the last number arriving more than ``repeat_window`` seconds after the
previous copy is a restarted peer's new request and is delivered — retransmissions come one ack
timeout apart, and lldpad needs more than a second to restart. (An earlier version also
delivered a quick repeat with *different* content; the conformance suite's
``vdp.station.answer.seq-repeated`` holds us to the standard there.) ``reset()`` (peer lost,
link down) forgets the last number.
"""

from __future__ import annotations

from evb.ecp.wire import Ecpdu


class EcpReceiver:
    def __init__(self, *, repeat_window: float | None = None) -> None:
        self.last_seq: int | None = None
        self._last_ulpdu: object = None
        self._last_at: float | None = None
        #: seconds after the previous copy within which an identical request is a retransmission
        #: (None: always, whatever the time)
        self.repeat_window = repeat_window
        self.received = 0
        self.delivered = 0
        self.duplicates = 0
        self.restarts_seen = 0

    def receive(self, pdu: Ecpdu, now: float | None = None) -> bool:
        """A request arrived (the caller acknowledges it); True if it must be delivered."""
        self.received += 1
        if pdu.seq == self.last_seq:
            late = (
                now is not None
                and self.repeat_window is not None
                and self._last_at is not None
                and now - self._last_at > self.repeat_window
            )
            if not late:
                self.duplicates += 1
                self._last_at = now
                return False
            self.restarts_seen += 1
        self.last_seq = pdu.seq
        self._last_ulpdu = pdu.ulpdu
        self._last_at = now
        self.delivered += 1
        return True

    def reset(self) -> None:
        self.last_seq = None
        self._last_ulpdu = None
        self._last_at = None
