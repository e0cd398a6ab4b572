"""Ports: LLDP + EVB + ECP + VDP composed into one sans-IO object per role.

A port takes bytes and ``now`` and gives back frames to send, events and one next deadline:

    port.receive_frame(data, now=t)      port.frames_to_send() -> [bytes]
    port.handle_timer(now=t)             port.next_event() -> event | None
    station.associate(vsi, now=t)        port.next_deadline() -> float | None

Theory of operation. The LLDP agent of the nearest-customer-bridge group carries the EVB TLV,
recomputed from our configuration and the peer's last TLV (``evb.lldp.negotiate``) whenever
either changes. ECP and VDP run while EVB is negotiated: a bridge once it has the peer's
station TLV, a station once both TLVs also agree on R, RTE, RWD and RKA (the spec's advice
toward lldpad). When the peer goes (TTL 0, aged out, no EVB TLV, link down) ECP is reset, a
station suspends its VSIs (their requests are re-sent when EVB is back) and a bridge releases
its VSIs. ECP acknowledges every request of version 1, subtype 1 or 2; VDP payloads are
pulled from the VDP machine whenever ECP can send, so they are packed.

Bad input never raises out of a port: a frame that does not decode, or that breaks the
protocol, becomes a ``FrameDropped`` event and a counter.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Final, Protocol

from evb.ecp.events import UlpduAbandoned
from evb.ecp.receive import EcpReceiver
from evb.ecp.transmit import EcpTransmitter
from evb.ecp.wire import MAX_ULPDU_LEN, Ecpdu, EcpOp, decode_ecpdu_prefix
from evb.errors import DecodeError, LocalProtocolError, NotEvbFrame
from evb.ethernet import ETH_P_8021Q, ETH_P_ECP, NEAREST_CUSTOMER_BRIDGE, decode_ethernet_header
from evb.events import FrameDropped
from evb.frame import Frame, build_frame, decode_frame
from evb.lldp.agent import LldpAgent, LldpTimers
from evb.lldp.events import EvbLost, EvbNegotiated, LldpEvent, NeighborAged, NeighborRemoved
from evb.lldp.negotiate import EvbConfig, Operating, Role, converged, local_tlv
from evb.lldp.wire import ChassisId, ChassisIdSubtype, EvbMode, EvbTlv, Lldpdu, PortId, PortIdSubtype
from evb.tlv import InvalidTlv
from evb.vdp.bridge import BridgeTimers, Decision, Policy, VdpBridge, accept_all
from evb.vdp.events import VdpEvent, VsiKey
from evb.vdp.station import StationTimers, StationVsi, VdpStation, Vsi
from evb.vdp.wire import VdpMode, VdpPdu, VdpStatus, VsiTlv

Event = LldpEvent | VdpEvent | UlpduAbandoned | FrameDropped
#: faults a port can be told to have (``PortConfig.faults``; ``--fault`` of the agents): a station
#: that never sends keep-alives, a bridge whose answers carry status code 1 instead of 0, a port
#: that never acknowledges ECPDUs, a port that does not copy the peer's EVB status octet
FAULTS: Final = frozenset({"no-keepalive", "wrong-status", "no-ecp-ack", "no-evb-copy"})
VDP_SUBTYPE: Final = 1
PECSP_SUBTYPE: Final = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class PortConfig:
    """Per-port settings. The defaults are safe toward lldpad (spec ecp.md §4.2, vdp.md §2)."""

    mac: bytes
    evb: EvbConfig
    lldp: LldpTimers = field(default_factory=LldpTimers)
    #: seconds between two new ECPDUs: lldpad keeps one VDP receive buffer per port for 2 ms
    min_gap: float = 0.003
    #: association TLVs per ECPDU, 0 = as many as fit in 1493 octets
    max_per_pdu: int = 0
    #: first ECP sequence number (a restarted agent should not reuse the last one)
    first_seq: int = 1
    #: station: keep-alives due within this many seconds of one due now are sent with it
    keepalive_coalesce: float = 0.05
    #: bridge: most VSIs on this port (0 = no limit)
    max_vsis: int = 0
    #: append an End TLV (00 00) after each VDP payload (guards an lldpad quirk, vdp.md §2)
    end_tlv: bool = True
    #: pad frames to the 60-octet Ethernet minimum
    pad: bool = True
    #: deliberate misbehaviour, to show that the conformance suite catches it (``FAULTS``)
    faults: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        unknown = self.faults - FAULTS
        if unknown:
            raise LocalProtocolError(f"unknown fault(s) {', '.join(sorted(unknown))}: one of {', '.join(FAULTS)}")


@dataclass(slots=True)
class PortCounters:
    frames_in: int = 0
    frames_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    dropped: int = 0
    ignored: int = 0  #: well-formed frames not for us (other LLDP agents, ECP before EVB)
    ecp_acks_sent: int = 0
    ecp_pecsp: int = 0


class VdpMachine(Protocol):
    """What a port needs of its VDP machine (``VdpStation`` or ``VdpBridge``)."""

    events: deque[VdpEvent]

    def receive(self, pdu: VdpPdu, now: float) -> None: ...

    def has_pending(self) -> bool: ...

    def next_deadline(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...

    def peer_lost(self) -> None: ...


class Port(ABC):
    """Common part of station and bridge ports."""

    role: Role
    vdp: VdpMachine

    def __init__(self, config: PortConfig, *, now: float) -> None:
        if config.evb.role is not self.role:
            raise LocalProtocolError(f"a {type(self).__name__} needs an EVB configuration of role {self.role.value}")
        self.config = config
        self.mac = config.mac
        self.counters = PortCounters()
        self._out: list[bytes] = []
        self._events: deque[Event] = deque()
        self.local_tlv = local_tlv(config.evb, None)
        self.peer_tlv: EvbTlv | None = None
        self.operating = Operating.from_tlv(self.local_tlv)
        self.negotiated = False
        self.link_up = True
        self.agent = LldpAgent(self._lldpdu, config.lldp, now=now)
        self.ecp_tx = EcpTransmitter(
            subtype=VDP_SUBTYPE,
            ack_timeout=self.operating.ack_timeout,
            max_retries=self.operating.r,
            first_seq=config.first_seq,
            min_gap=config.min_gap,
        )
        self.ecp_rx = EcpReceiver()
        self._inflight: object = None
        self._pad = 60 if config.pad else 0
        self._after(now)

    # ------------------------------------------------------------------ inputs

    def receive_frame(self, data: bytes, now: float) -> None:
        """One received frame (no FCS). Never raises for bad input."""
        c = self.counters
        c.frames_in += 1
        c.bytes_in += len(data)
        if not self.link_up:
            c.ignored += 1
            return
        try:
            frame = decode_frame(data)
        except NotEvbFrame:
            c.ignored += 1
            return
        except DecodeError as exc:
            self._drop(exc.pdu, exc.field, exc.offset, exc.reason)
            self._ack_undecodable(data)
            return
        if frame.tags and any(tag.vid or tag.tpid != ETH_P_8021Q for tag in frame.tags):
            c.ignored += 1  # another VLAN's or S-channel's LLDP/ECP (lldp-evb-cdcp.md §1.1): not this port's
            return
        pdu = frame.pdu
        if isinstance(pdu, Ecpdu):
            self._ecp(frame, pdu, now)
        elif isinstance(pdu, Lldpdu):
            self._lldp(frame, pdu, now)
        else:
            c.ignored += 1  # draft 0.2 ECP: recognised, not run
        self._after(now)

    def handle_timer(self, now: float) -> None:
        self.agent.handle_timer(now)
        self._lldp_events(now)
        if self.negotiated:
            seq, tries = self.ecp_tx.seq, self.ecp_tx.tries
            retransmit, abandoned = self.ecp_tx.expire(now)
            if retransmit is not None:
                self._emit(retransmit)
            elif abandoned is not None:
                self._events.append(UlpduAbandoned(seq=seq, tries=tries, subtype=VDP_SUBTYPE))
                inflight, self._inflight = self._inflight, None
                if isinstance(abandoned, VdpPdu):
                    self._abandoned(abandoned, inflight)
            self._vdp_timer(now)
        self._after(now)

    def set_link(self, up: bool, now: float) -> None:
        """The interface went down or came back."""
        if up == self.link_up:
            return
        self.link_up = up
        if not up:
            self.agent.forget_neighbors()
            self.agent.shutdown()
            self.agent.out.clear()  # nothing can be sent on a down link
            self.peer_tlv = None
            self._evb_update(now, reason="link down")
            self._vdp_events()  # e.g. the VSIs a bridge released
        else:
            self.agent.restart(now)
            self._after(now)

    def configure_evb(self, evb: EvbConfig, *, now: float) -> None:
        """The EVB configuration changed (``lldptool -T -V evb``): recompute our TLV and announce it."""
        if evb.role is not self.role:
            raise LocalProtocolError(f"a {type(self).__name__} needs an EVB configuration of role {self.role.value}")
        self.config = replace(self.config, evb=evb)
        self._evb_update(now, reason="EVB configuration changed")
        self._after(now)

    def shutdown(self, now: float) -> None:
        """Leave: tell the peer to forget us (LLDP TTL 0)."""
        self.agent.shutdown()
        self._after(now)

    # ------------------------------------------------------------------ outputs

    def frames_to_send(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def next_deadline(self) -> float | None:
        deadlines = [self.agent.next_deadline()]
        if self.negotiated:
            deadlines.append(self.ecp_tx.deadline)
            if self._vdp_has_pending():
                hold = self.ecp_tx.hold_until()
                if self.ecp_tx.deadline is None:
                    deadlines.append(hold)
            deadlines.append(self._vdp_deadline())
        live = [d for d in deadlines if d is not None]
        return min(live) if live else None

    # ------------------------------------------------------------------ LLDP and EVB

    def _lldpdu(self, ttl: int) -> Lldpdu:
        return Lldpdu(
            chassis_id=ChassisId(ChassisIdSubtype.MAC_ADDRESS, self.mac),
            port_id=PortId(PortIdSubtype.MAC_ADDRESS, self.mac),
            ttl=ttl,
            tlvs=(self.local_tlv,) if ttl else (),
        )

    def _lldp(self, frame: Frame, pdu: Lldpdu, now: float) -> None:
        if frame.dst != NEAREST_CUSTOMER_BRIDGE:
            self.counters.ignored += 1  # other LLDP agents (nearest bridge ...) carry no EVB
            return
        for bad in pdu.tlvs:
            if isinstance(bad, InvalidTlv):  # discarded (802.1AB), the rest of the LLDPDU is used
                self._drop("lldpdu", bad.field, bad.offset, bad.reason)
        neighbor = self.agent.receive(pdu, now)
        self._lldp_events(now)
        if neighbor is not None:
            self.peer_tlv = pdu.evb
            self._evb_update(now, reason="peer stopped sending the EVB TLV")

    def _lldp_events(self, now: float) -> None:
        events = self.agent.events
        if not events:
            return
        lost = False
        for ev in events:
            self._events.append(ev)
            if isinstance(ev, NeighborAged | NeighborRemoved):
                lost = True
        events.clear()
        if lost and not self.agent.neighbors:
            self.peer_tlv = None
            self._evb_update(now, reason="peer aged out or shut down")

    def _evb_update(self, now: float, *, reason: str) -> None:
        new_local = local_tlv(self.config.evb, self.peer_tlv)
        if "no-evb-copy" in self.config.faults:  # the peer's status octet not copied back
            if self.role is Role.STATION:
                new_local = replace(new_local, bgid=False, rrcap=False, rrctr=False, bridge_reserved=0)
            else:
                new_local = replace(new_local, sgid=False, rrreq=False, rrstat=0, station_reserved=0)
        if new_local != self.local_tlv:
            self.local_tlv = new_local
            self.agent.local_changed(now)
        peer = self.peer_tlv
        want = EvbMode.BRIDGE if self.role is Role.STATION else EvbMode.STATION
        if peer is None or peer.mode != want:
            if self.negotiated:
                self._stop(reason)
            return
        operating = Operating.from_tlv(new_local)
        if not self.negotiated:
            if self.role is Role.STATION and not converged(new_local, peer):
                return
            self.negotiated = True
            self.operating = operating
            self._apply_operating(now, start=True)
        elif operating != self.operating:
            self.operating = operating
            self._apply_operating(now, start=False)
        else:
            return
        o = operating
        self._events.append(
            EvbNegotiated(
                r=o.r, rte=o.rte, rwd=o.rwd, rka=o.rka, rr=o.rr, group_ids=o.group_ids, local=new_local, peer=peer
            )
        )

    def _apply_operating(self, now: float, *, start: bool) -> None:
        # timers already running keep their duration (as lldpad)
        self.ecp_tx.ack_timeout = self.operating.ack_timeout
        self.ecp_tx.max_retries = self.operating.r
        # an identical copy later than this is a restarted peer's new ULPDU (evb/ecp/receive.py)
        self.ecp_rx.repeat_window = 2 * self.operating.ack_timeout + 1.0

    def _stop(self, reason: str) -> None:
        self.negotiated = False
        self.ecp_tx.reset()
        self._inflight = None
        self.ecp_rx.reset()
        self._events.append(EvbLost(reason=reason))
        self.vdp.peer_lost()

    # ------------------------------------------------------------------ ECP

    def _ecp(self, frame: Frame, pdu: Ecpdu, now: float) -> None:
        if pdu.version != 1 or pdu.subtype not in (VDP_SUBTYPE, PECSP_SUBTYPE):
            self._drop("ecpdu", "header", 14, f"version {pdu.version} subtype {int(pdu.subtype)}: not acknowledged")
            return
        if not self.negotiated:
            self.counters.ignored += 1  # ECP runs only while EVB is negotiated
            return
        if pdu.op is EcpOp.ACK:
            delivered = self.ecp_tx.ack(pdu.seq)
            if delivered is not None:
                self._inflight = None
            return
        if pdu.op is not EcpOp.REQUEST:
            self._drop("ecpdu", "op", 14, f"reserved operation {int(pdu.op)}")
            return
        if "no-ecp-ack" not in self.config.faults:
            self._emit(pdu.ack())
            self.counters.ecp_acks_sent += 1
        if not self.ecp_rx.receive(pdu, now):
            return
        if pdu.subtype == PECSP_SUBTYPE:
            self.counters.ecp_pecsp += 1  # acknowledged, content discarded (as lldpad)
            return
        ulpdu = pdu.ulpdu
        if not isinstance(ulpdu, VdpPdu):
            self._drop("vdp", "ulpdu", 18, "VDP payload not decoded")
            return
        for bad in ulpdu.invalid:
            self._drop("vdp", bad.field, bad.offset, bad.reason)
        self._vdp_receive(ulpdu, now)

    def _ulpdu_budget(self) -> int:
        """Octets the VDP TLVs of one ECPDU may take: lldpad's 1493 less the End TLV we append."""
        return MAX_ULPDU_LEN - 2 if self.config.end_tlv else MAX_ULPDU_LEN

    def _ack_undecodable(self, data: bytes) -> None:
        """ECP acknowledges a request whose ULPDU does not decode: it checks only version and
        subtype (ecp.md §4.1, §5), the ULP drops what it cannot read (as lldpad)."""
        if not self.negotiated:
            return
        try:
            head = decode_ethernet_header(data)
            if head.ethertype != ETH_P_ECP:
                return
            pdu, _ = decode_ecpdu_prefix(data, head.length, decode_ulp=False)
        except DecodeError:
            return
        if pdu.op is EcpOp.REQUEST and pdu.version == 1 and pdu.subtype in (VDP_SUBTYPE, PECSP_SUBTYPE):
            self._emit(pdu.ack())
            self.counters.ecp_acks_sent += 1

    def _emit(self, pdu: Ecpdu | Lldpdu) -> None:
        frame = build_frame(
            NEAREST_CUSTOMER_BRIDGE,
            self.mac,
            pdu,
            end_tlv=self.config.end_tlv and isinstance(pdu, Ecpdu) and isinstance(pdu.ulpdu, VdpPdu),
            pad_to=self._pad,
        )
        self._out.append(frame)
        self.counters.frames_out += 1
        self.counters.bytes_out += len(frame)

    def _drop(self, pdu: str, fld: str, offset: int, reason: str) -> None:
        self.counters.dropped += 1
        self._events.append(FrameDropped(pdu=pdu, field=fld, offset=offset, reason=reason))

    def _after(self, now: float) -> None:
        """After any input: send LLDPDUs, pull VDP payloads into ECP, collect events."""
        if self.agent.out:
            for lldpdu in self.agent.out:
                if self.link_up or lldpdu.ttl == 0:
                    self._emit(lldpdu)
            self.agent.out.clear()
        if self.negotiated and self.link_up:
            tx = self.ecp_tx
            while tx.ready(now):
                got = self._vdp_next(now)
                if got is None:
                    break
                ulpdu, inflight = got
                self._inflight = inflight
                self._emit(tx.start(ulpdu, now))
        self._vdp_events()

    # ------------------------------------------------------------------ role hooks

    def _vdp_receive(self, pdu: VdpPdu, now: float) -> None:
        self.vdp.receive(pdu, now)

    @abstractmethod
    def _vdp_next(self, now: float) -> tuple[VdpPdu, object] | None:
        """The next VDP payload to send, and what to tell the machine if ECP abandons it."""

    def _vdp_has_pending(self) -> bool:
        return self.vdp.has_pending()

    def _vdp_deadline(self) -> float | None:
        return self.vdp.next_deadline()

    def _vdp_timer(self, now: float) -> None:
        self.vdp.handle_timer(now)

    def _vdp_events(self) -> None:
        ev = self.vdp.events
        while ev:
            self._events.append(ev.popleft())

    @abstractmethod
    def _abandoned(self, pdu: VdpPdu, inflight: object) -> None:
        """ECP gave up on ``pdu``: let the VDP machine queue it again."""


class StationPort(Port):
    """The station side: a hypervisor's uplink."""

    role = Role.STATION
    vdp: VdpStation

    def __init__(self, config: PortConfig, *, now: float) -> None:
        o = Operating.from_tlv(local_tlv(config.evb, None))
        self.vdp = VdpStation(timers=self._timers(o, config), max_per_pdu=config.max_per_pdu)
        self.vdp.send_keepalives = "no-keepalive" not in config.faults
        super().__init__(config, now=now)

    @staticmethod
    def _timers(o: Operating, config: PortConfig) -> StationTimers:
        return StationTimers(
            resp_wait_delay=o.resp_wait_delay,
            reinit_keepalive=o.reinit_keepalive,
            coalesce=min(config.keepalive_coalesce, o.reinit_keepalive / 4),
        )

    # commands ------------------------------------------------------------

    def request(self, vsi: Vsi, mode: VdpMode, *, now: float, hints: str = "none", force: bool = False) -> None:
        self.vdp.request(vsi, mode, now=now, hints=hints, force=force)
        self._after(now)

    def request_many(
        self, requests: list[tuple[Vsi, VdpMode, str, bool]], *, now: float
    ) -> list[LocalProtocolError | None]:
        """Several commands ``(vsi, mode, hints, force)`` queued before anything is sent, so that
        they share ECPDUs (``request`` one by one would send the first VSI alone). One outcome per
        command: None, or the ``LocalProtocolError`` that refused it."""
        outcomes: list[LocalProtocolError | None] = []
        for vsi, mode, hints, force in requests:
            try:
                self.vdp.request(vsi, mode, now=now, hints=hints, force=force)
            except LocalProtocolError as exc:
                outcomes.append(exc)
            else:
                outcomes.append(None)
        self._after(now)
        return outcomes

    def associate(self, vsi: Vsi, *, now: float, hints: str = "none") -> None:
        self.request(vsi, VdpMode.ASSOC, now=now, hints=hints)

    def preassociate(self, vsi: Vsi, *, now: float, hints: str = "none") -> None:
        self.request(vsi, VdpMode.PREASSOC, now=now, hints=hints)

    def preassociate_rr(self, vsi: Vsi, *, now: float, hints: str = "none") -> None:
        self.request(vsi, VdpMode.PREASSOC_RR, now=now, hints=hints)

    def deassociate(self, vsi: Vsi, *, now: float) -> None:
        self.request(vsi, VdpMode.DEASSOC, now=now)

    # hooks ---------------------------------------------------------------

    def _apply_operating(self, now: float, *, start: bool) -> None:
        super()._apply_operating(now, start=start)
        timers = self._timers(self.operating, self.config)
        if start:
            self.vdp.peer_up(timers=timers, group_ids=self.operating.group_ids, now=now)
        else:
            self.vdp.timers = timers
            self.vdp.group_ids = self.operating.group_ids

    def _vdp_next(self, now: float) -> tuple[VdpPdu, object] | None:
        return self.vdp.next_pdu(now, self._ulpdu_budget())

    def _abandoned(self, pdu: VdpPdu, inflight: object) -> None:
        if isinstance(inflight, list):
            recs: list[StationVsi] = inflight
            self.vdp.abandoned(recs)


class BridgePort(Port):
    """The bridge side: one station-facing bridge port."""

    role = Role.BRIDGE
    vdp: VdpBridge

    def __init__(self, config: PortConfig, *, now: float, policy: Policy = accept_all) -> None:
        o = Operating.from_tlv(local_tlv(config.evb, None))
        self.vdp = VdpBridge(
            timers=self._timers(o), policy=policy, max_vsis=config.max_vsis, max_per_pdu=config.max_per_pdu
        )
        if "wrong-status" in config.faults:
            self.vdp.ok_status = VdpStatus.reply(1)
        super().__init__(config, now=now)

    @staticmethod
    def _timers(o: Operating) -> BridgeTimers:
        return BridgeTimers(resource_wait_delay=o.resource_wait_delay, keepalive_timeout=o.keepalive_timeout)

    def decide(self, key: VsiKey, decision: Decision, *, now: float) -> bool:
        """Deliver the policy's late decision on a pending request."""
        done = self.vdp.decide(key, decision, now=now)
        self._after(now)
        return done

    def set_policy(self, policy: Policy, now: float) -> None:
        """A new policy (a reloaded VSI type database): established VSIs it refuses get an
        unsolicited De-Associate now (``VdpBridge.set_policy``)."""
        self.vdp.set_policy(policy, now)
        self._after(now)

    def _apply_operating(self, now: float, *, start: bool) -> None:
        super()._apply_operating(now, start=start)
        self.vdp.peer_up(timers=self._timers(self.operating), group_ids=self.operating.group_ids)

    def _vdp_next(self, now: float) -> tuple[VdpPdu, object] | None:
        return self.vdp.next_pdu(self._ulpdu_budget())

    def _abandoned(self, pdu: VdpPdu, inflight: object) -> None:
        if isinstance(inflight, list):
            items: list[tuple[VsiTlv, int]] = inflight
            self.vdp.abandoned(pdu, items)
