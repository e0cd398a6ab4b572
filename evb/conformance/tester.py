"""The tester: the DUT's counterpart on one link, with the primitives cases are written in.

It plays the other role (a bridge for a station DUT, a station for a bridge DUT) as a normal
peer where a case does not say otherwise:

* LLDP: sends an LLDPDU with the EVB TLV every ``lldp_interval`` and at once when its TLV
  changes; the TLV follows ``evb.lldp.negotiate.local_tlv`` from the DUT's last TLV (max of the
  timers, RRCTR = RRREQ and RRCAP, status octets copied) unless a case overrides it;
* ECP receive: acknowledges every request (unless a case withholds acks) and delivers a VDP
  ULPDU unless its sequence number equals the last delivered one (ecp.md §4.2);
* ECP send: ``send_ulpdu`` retransmits after the operating ack timer, at most R times, and
  keeps ≥ 3 ms between new ECPDUs (lldpad's single VDP buffer, ecp.md §4.2);
* VDP: nothing automatic. Cases read the DUT's VDP with ``expect_vdp``/``no_vdp`` and answer
  with ``reply``/``deassociate`` (bridge role) or send with ``request`` (station role).

Everything the tester sends and sees is logged with its time (``log``) for the pcap and for
the frame quoted in a failure. Time is the running loop's clock (wall clock on a real link,
virtual in the simulator), so nothing here sleeps by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from evb.conformance.hooks import Hook, HookUnsupported
from evb.conformance.links import FrameLink
from evb.conformance.model import Case, Fail, Skip
from evb.ecp.wire import Ecpdu, EcpOp
from evb.errors import DecodeError
from evb.ethernet import ETH_P_ECP, ETH_P_LLDP, NEAREST_CUSTOMER_BRIDGE, VlanTag, encode_ethernet_header
from evb.frame import Frame, build_frame, decode_frame, frame_kind
from evb.lldp.negotiate import EvbConfig, Operating, Role, local_tlv
from evb.lldp.wire import ChassisId, ChassisIdSubtype, EvbTlv, Lldpdu, PortId, PortIdSubtype
from evb.vdp.wire import (
    FilterEntry,
    FilterFormat,
    VdpMode,
    VdpPdu,
    VdpStatus,
    VsiidFormat,
    VsiManagerIdTlv,
    VsiTlv,
    format_manager_id,
    manager_id_from_text,
)

T = TypeVar("T")
MANAGER = "conformance"  #: the VSI Manager ID of the suite's VSIs (configure the DUT's policy to accept it)
COPY_PATIENCE = 3.0  #: seconds ensure_evb waits for the DUT to copy our status octet
MIN_GAP = 0.003  #: seconds between two new ECPDUs we send (lldpad's 2-ms VDP buffer, ecp.md §4.2)


@dataclass(frozen=True, slots=True)
class Seen:
    """A frame on the link: when, which way (``in`` from the DUT, ``out`` from us), the bytes."""

    t: float
    way: str
    data: bytes


@dataclass(frozen=True, slots=True)
class VdpIn:
    """A VDP ULPDU the DUT sent us (delivered by our ECP receiver)."""

    t: float
    seq: int
    pdu: VdpPdu
    data: bytes  #: the whole frame
    index: int  #: position in ``Tester.vdp_in``

    @property
    def manager_id(self) -> bytes | None:
        return self.pdu.manager_id

    @property
    def vsis(self) -> tuple[VsiTlv, ...]:
        return self.pdu.vsis


@dataclass(frozen=True, slots=True)
class VsiSpec:
    """A VSI a case works with: its identity, filter and hints, and how to ask a hook for it."""

    manager_id: bytes
    type_id: int
    type_version: int
    vsiid: bytes
    filter_format: FilterFormat
    entries: tuple[FilterEntry, ...]
    vsiid_format: int = VsiidFormat.UUID
    hints: str = "none"

    def tlv(self, mode: VdpMode, *, status: VdpStatus | None = None, **changes: Any) -> VsiTlv:
        tlv = VsiTlv(
            mode=mode,
            status=status if status is not None else VdpStatus.request(self.hints),
            type_id=self.type_id,
            type_version=self.type_version,
            vsiid_format=self.vsiid_format,
            vsiid=self.vsiid,
            filter_format=self.filter_format,
            entries=self.entries,
        )
        return replace(tlv, **changes) if changes else tlv

    def pdu(self, mode: VdpMode, **changes: Any) -> VdpPdu:
        return VdpPdu((VsiManagerIdTlv(self.manager_id), self.tlv(mode, **changes)))

    def matches(self, tlv: VsiTlv, manager_id: bytes | None = None) -> bool:
        """Same VSI (manager, type, version, VSIID format and VSIID, filter format: vdp.md §4.5)."""
        return (
            (manager_id is None or manager_id == self.manager_id)
            and tlv.type_id == self.type_id
            and tlv.type_version == self.type_version
            and tlv.vsiid_format == self.vsiid_format
            and tlv.vsiid == self.vsiid
            and tlv.filter_format == self.filter_format
        )

    def hook_params(self) -> dict[str, Any]:
        import uuid

        filters = []
        for e in self.entries:
            vid = e.qos_word
            text = f"{vid}"
            if e.mac is not None:
                text += "-" + ":".join(f"{b:02x}" for b in e.mac)
            if e.group_id is not None:
                text += ("" if e.mac is not None else "-") + f"-{e.group_id}"
            filters.append(text)
        return {
            "vsi": {
                "manager": format_manager_id(self.manager_id),
                "manager_hex": self.manager_id.hex(),
                "type_id": self.type_id,
                "type_version": self.type_version,
                "uuid": str(uuid.UUID(bytes=self.vsiid)),
                "filter_format": int(self.filter_format),
                "filters": filters,
                "hints": self.hints,
            }
        }


@dataclass(slots=True)
class TesterConfig:
    """What the tester proposes and how patient it is."""

    r: int = 3
    rte: int = 8
    rwd: int = 14
    rka: int = 14
    gid: bool = True  #: BGID / SGID
    rr: bool = True  #: RRCAP (as bridge) / RRREQ (as station)
    lldp_interval: float = 1.0
    ttl: int = 120
    tolerance: float = 0.25  #: relative tolerance of timing checks (lower bound; the upper is looser)
    slack: float = 0.05  #: absolute slack added to timing bounds (seconds): scheduling on a busy host
    evb_timeout: float = 15.0  #: how long to wait for the DUT's EVB TLV to converge
    ack_patience: float = 1.0  #: after the last retransmission, how long a late ACK still counts


class Tester:
    def __init__(
        self,
        link: FrameLink,
        *,
        dut_role: str,
        mac: bytes,
        dut_mac: bytes | None = None,
        hook: Hook | None = None,
        config: TesterConfig | None = None,
    ) -> None:
        self.link = link
        self.dut_role = dut_role
        self.role = Role.BRIDGE if dut_role == "station" else Role.STATION
        self.mac = mac
        self.dut_mac = dut_mac
        self.hook = hook
        self.config = config or TesterConfig()
        c = self.config
        rr = {"rrcap": c.rr} if self.role is Role.BRIDGE else {"rrreq": c.rr}
        self.evb_config = EvbConfig(role=self.role, gid=c.gid, r=c.r, rte=c.rte, rwd=c.rwd, rka=c.rka, **rr)
        self.loop = asyncio.get_running_loop()
        self.epoch = time.time() - self.loop.time()  #: add to a log time for a wall-clock time (pcap)
        self.log: list[Seen] = []
        self.lldp_in: list[tuple[float, Lldpdu, bytes]] = []
        self.acks_in: list[tuple[float, int, bytes]] = []
        self.ecp_in: list[tuple[float, Ecpdu, bytes, bool]] = []  #: every ECP request, delivered or not
        self.vdp_in: list[VdpIn] = []
        self.undecodable: list[tuple[float, bytes, str]] = []
        self.peer_evb: EvbTlv | None = None
        self.evb_override: EvbTlv | None = None  #: a case's hand-made TLV instead of the negotiated one
        self.lldp_enabled = True
        self.ack_filter: Callable[[Ecpdu], bool] = lambda pdu: True  #: False: withhold the ack
        self.cleanups: list[Callable[[], Awaitable[None]]] = []
        self._tx_seq = 0
        self._rx_last: int | None = None
        self._last_new_tx = -1.0
        self._consumed: set[int] = set()
        self._wake = asyncio.Event()
        self._ticker: asyncio.Task[None] | None = None
        self.case: Case | None = None
        self.case_start = 0
        self._vsi_n = 0
        self._no_copies = False
        self._disturbed = False  #: we sent TTL 0 or a hand-made TLV since the last ensure_evb
        #: the timers the session converged on (R, RTE, RWD, RKA); ensure_evb returns to them
        self.session: tuple[int, int, int, int] | None = (
            None  #: the DUT did not copy our status octet within COPY_PATIENCE once
        )
        link.set_receiver(self._on_frame)

    # ------------------------------------------------------------------ clock and waiting

    def now(self) -> float:
        return self.loop.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def until(self, check: Callable[[], T | None], within: float) -> T | None:
        """``check()``'s first truthy value within ``within`` seconds (re-checked on every frame), or None."""
        deadline = self.now() + within
        while True:
            value = check()
            if value:
                return value
            left = deadline - self.now()
            if left <= 0:
                return None
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), left)

    # ------------------------------------------------------------------ operating values

    @property
    def local_evb(self) -> EvbTlv:
        """The EVB TLV we send now."""
        if self.evb_override is not None:
            return self.evb_override
        return local_tlv(self.evb_config, self.peer_evb)

    @property
    def op(self) -> Operating:
        """Operating values (those of the TLV we send; once converged the DUT's are the same)."""
        return Operating.from_tlv(self.local_evb)

    def bounds(self, expected: float) -> tuple[float, float]:
        """(earliest, latest) acceptable time for something due ``expected`` seconds after its cause."""
        c = self.config
        return expected * (1 - c.tolerance) - c.slack, expected * (1 + 2 * c.tolerance) + 4 * c.slack + 0.1

    # ------------------------------------------------------------------ frames in

    def _on_frame(self, data: bytes) -> None:
        t = self.now()
        self.log.append(Seen(t, "in", data))
        self._wake.set()
        try:
            frame = decode_frame(data)
        except DecodeError as exc:
            self.undecodable.append((t, data, str(exc)))
            return
        pdu = frame.pdu
        if isinstance(pdu, Lldpdu):
            if frame.dst != NEAREST_CUSTOMER_BRIDGE:
                return
            if self.dut_mac is None:
                self.dut_mac = frame.src
            self.lldp_in.append((t, pdu, data))
            if pdu.ttl == 0:
                self.peer_evb = None
                return
            before = self.local_evb
            self.peer_evb = pdu.evb
            if self.lldp_enabled and self.local_evb != before:
                self.send_lldp()
        elif isinstance(pdu, Ecpdu):
            self._ecp(t, frame, pdu, data)

    def _ecp(self, t: float, frame: Frame, pdu: Ecpdu, data: bytes) -> None:
        if pdu.op == EcpOp.ACK:
            self.acks_in.append((t, pdu.seq, data))
            return
        if pdu.op != EcpOp.REQUEST or pdu.version != 1 or pdu.subtype not in (1, 2):
            self.ecp_in.append((t, pdu, data, False))
            return
        if self.ack_filter(pdu):
            self.send_frame(build_frame(NEAREST_CUSTOMER_BRIDGE, self.mac, pdu.ack(), pad_to=0))
        new = pdu.seq != self._rx_last
        self.ecp_in.append((t, pdu, data, new))
        if not new:
            return
        self._rx_last = pdu.seq
        if pdu.subtype == 1:
            if isinstance(pdu.ulpdu, VdpPdu):
                self.vdp_in.append(VdpIn(t, pdu.seq, pdu.ulpdu, data, len(self.vdp_in)))
            else:
                self.undecodable.append((t, data, "VDP ULPDU did not decode"))

    # ------------------------------------------------------------------ frames out

    def send_frame(self, data: bytes) -> None:
        now = self.now()
        self.log.append(Seen(now, "out", data))
        if ecp_request_body(data) is not None:
            self._last_new_tx = now
        self.link.send(data)

    async def pace(self) -> None:
        """Wait until ``MIN_GAP`` has passed since our last ECP request (lldpad's one VDP buffer)."""
        wait = self._last_new_tx + MIN_GAP - self.now()
        if wait > 0:
            await self.sleep(wait)

    async def send_paced(self, data: bytes) -> None:
        """``send_frame`` after ``pace()``: for hand-made ECP requests."""
        await self.pace()
        self.send_frame(data)

    def lldpdu(
        self, *, ttl: int | None = None, evb: EvbTlv | bool | None = True, extra: tuple[Any, ...] = ()
    ) -> Lldpdu:
        tlvs: tuple[Any, ...] = ()
        if evb is True:
            tlvs = (self.local_evb,)
        elif isinstance(evb, EvbTlv):
            tlvs = (evb,)
        return Lldpdu(
            chassis_id=ChassisId(ChassisIdSubtype.MAC_ADDRESS, self.mac),
            port_id=PortId(PortIdSubtype.MAC_ADDRESS, self.mac),
            ttl=self.config.ttl if ttl is None else ttl,
            tlvs=tlvs + extra,
        )

    def send_lldp(self, **kw: Any) -> None:
        if kw.get("ttl") == 0 or kw.get("evb", True) is not True:
            self._disturbed = True  # the DUT may drop our TLV: ensure_evb waits for its fresh one
        self.send_frame(build_frame(NEAREST_CUSTOMER_BRIDGE, self.mac, self.lldpdu(**kw)))

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.config.lldp_interval)
            if self.lldp_enabled:
                self.send_lldp()

    def next_seq(self) -> int:
        self._tx_seq = self._tx_seq % 0xFFFF + 1  # 1..65535, 0 skipped (ecp.md §3.2)
        return self._tx_seq

    def ecp_frame(
        self,
        ulpdu: VdpPdu | bytes,
        seq: int,
        *,
        op: int = EcpOp.REQUEST,
        subtype: int = 1,
        version: int = 1,
        tags: tuple[VlanTag, ...] = (),
        dst: bytes = NEAREST_CUSTOMER_BRIDGE,
        end_tlv: bool = True,
    ) -> bytes:
        """An ECPDU frame; a ``VdpPdu`` is followed by an End TLV (as our agents do: lldpad does
        not clear its VDP input buffer and walks it to a type-0 header, vdp.md §2), raw bytes
        are sent as they are."""
        pdu = Ecpdu(op=EcpOp(op), subtype=subtype, seq=seq, ulpdu=ulpdu, version=version)
        body = pdu.encode(end_tlv=end_tlv and isinstance(ulpdu, VdpPdu))
        frame = encode_ethernet_header(dst, self.mac, ETH_P_ECP, tags) + body
        return frame + bytes(max(0, 60 - len(frame)))

    async def send_ulpdu(
        self, ulpdu: VdpPdu | bytes, *, reliable: bool = True, seq: int | None = None, **kw: Any
    ) -> int:
        """Send one ECPDU carrying ``ulpdu``; with ``reliable``, retransmit until acknowledged
        (at most R times, then ``Fail``). Returns its sequence number."""
        await self.pace()
        seq = self.next_seq() if seq is None else seq
        frame = self.ecp_frame(ulpdu, seq, **kw)
        start = len(self.acks_in)
        interval = max(self.op.ack_timeout, 0.01)
        acked = self._acked(seq, start)
        for _ in range(1 + (self.op.r if reliable else 0)):
            self.send_frame(frame)
            if not reliable:
                return seq
            if await self.until(acked, interval):
                return seq
        # a late ACK still counts: a DUT on a busy host must not fail a case that is not about ECP
        if await self.until(acked, self.config.ack_patience):
            return seq
        raise Fail(f"ECP: sequence {seq} not acknowledged after {1 + self.op.r} transmissions", frame)

    def send_raw(self, data: bytes) -> None:
        """A hand-made frame, sent as it is (padded to 60 octets)."""
        self.send_frame(data + bytes(max(0, 60 - len(data))))

    def raw_frame(self, ethertype: int, body: bytes, *, dst: bytes = NEAREST_CUSTOMER_BRIDGE) -> bytes:
        return encode_ethernet_header(dst, self.mac, ethertype) + body

    # ------------------------------------------------------------------ session

    async def start(self) -> None:
        """Start LLDP and wait until the DUT's EVB TLV has converged with ours."""
        self.send_lldp()
        self._ticker = asyncio.ensure_future(self._tick())
        await self.ensure_evb()
        self.session = self._timers(self.local_evb)

    def converged(self, *, copies: bool = True) -> bool:
        """The DUT's TLV agrees with ours: same timers, a station DUT has seen our TLV, and (with
        ``copies``) the DUT copied our status octet."""
        peer, local = self.peer_evb, self.local_evb
        if peer is None:
            return False
        if (peer.r, peer.rte, peer.rwd, peer.rka) != (local.r, local.rte, local.rwd, local.rka):
            return False
        if self.role is Role.BRIDGE and peer.rrstat == 3:
            return False
        if not copies:
            return True
        if self.role is Role.BRIDGE:
            return peer.bridge_status == local.bridge_status
        return peer.station_status == local.station_status

    async def raise_timers(
        self, *, r: int | None = None, rte: int | None = None, rwd: int | None = None, rka: int | None = None
    ) -> EvbTlv:
        """Propose larger timers (``rka=17``, ...) for the rest of the case and wait until the DUT
        runs with them (``Fail`` if it does not). The next ``ensure_evb`` brings the session's
        values back."""
        now = self.local_evb
        values = {"r": r or now.r, "rte": rte or now.rte, "rwd": rwd or now.rwd, "rka": rka or now.rka}
        self.evb_override = replace(now, r=values["r"], rte=values["rte"], rwd=values["rwd"], rka=values["rka"])
        self.send_lldp()
        want = tuple(getattr(self.evb_override, k) for k in ("r", "rte", "rwd", "rka"))

        def adopted() -> EvbTlv | None:
            peer = self.peer_evb
            return peer if peer and (peer.r, peer.rte, peer.rwd, peer.rka) == want else None

        got = await self.until(adopted, self.config.evb_timeout)
        if got is None:
            raise Fail(f"the DUT did not adopt the larger timers {values}", self.last_in(ETH_P_LLDP))
        return got

    def _timers(self, tlv: EvbTlv | None) -> tuple[int, int, int, int] | None:
        return None if tlv is None else (tlv.r, tlv.rte, tlv.rwd, tlv.rka)

    def _restore_session(self) -> None:
        """While the DUT still runs with timers a case raised (each side keeps the larger value),
        announce the session's values outright until it is back."""
        target = self.session
        if target is None:
            return
        natural = local_tlv(self.evb_config, self.peer_evb)
        if self._timers(natural) != target:
            r, rte, rwd, rka = target
            self.evb_override = replace(natural, r=r, rte=rte, rwd=rwd, rka=rka, rol_rwd=False, rol_rka=False)
        elif self.evb_override is not None:
            self.evb_override = None

    async def ensure_evb(self, within: float | None = None) -> EvbTlv:
        """The DUT's EVB TLV once it agrees with ours (re-announcing ours if needed, and the
        session's timers if a case raised them); ``Fail`` if not."""
        self.evb_override = None
        self.lldp_enabled = True
        self._restore_session()
        fresh = len(self.lldp_in)  #: a DUT LLDPDU after this index is needed if we disturbed it
        disturbed, self._disturbed = self._disturbed, False
        if not disturbed and self.evb_override is None and self.converged(copies=not self._no_copies):
            assert self.peer_evb is not None
            return self.peer_evb
        self.send_lldp()
        within = self.config.evb_timeout if within is None else within
        last_send = self.now()

        started = self.now()

        def check() -> EvbTlv | None:
            nonlocal last_send
            if self.evb_override is not None and self._timers(self.peer_evb) == self.session:
                self.evb_override = None  # the DUT is back at the session's timers
                self.send_lldp()
            if disturbed and len(self.lldp_in) <= fresh:
                return None  # its TLV from before our TTL 0 / hand-made TLV does not count
            # a DUT that never copies our status octet is the EVB cases' finding; after a few
            # seconds the other cases run on agreeing timers alone
            if self.converged(copies=not self._no_copies and self.now() - started < COPY_PATIENCE):
                if not self.converged():
                    self._no_copies = True  # do not wait for the copy again
                return self.peer_evb
            if self.now() - last_send > 1.0:
                last_send = self.now()
                self.send_lldp()
            return None

        got = await self.until(check, within)
        if got is None:
            seen = self.peer_evb
            raise Fail(
                f"EVB did not converge within {within:g} s (DUT's last EVB TLV: {seen})", self.last_in(ETH_P_LLDP)
            )
        return got

    async def close(self) -> None:
        if self._ticker:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        self.link.close()

    def begin_case(self, case: Case) -> None:
        self.case = case
        self.case_start = len(self.log)
        self.ack_filter = lambda pdu: True
        self.cleanups = []
        self._consumed = set(range(len(self.vdp_in)))

    async def end_case(self) -> None:
        errors = []
        for fn in reversed(self.cleanups):
            try:
                await fn()
            except (Fail, Skip, HookUnsupported) as exc:
                errors.append(str(exc))
        self.cleanups = []
        self.ack_filter = lambda pdu: True
        self.evb_override = None
        self.lldp_enabled = True
        await self.sleep(2 * MIN_GAP)  # what the case left in flight arrives before the next one
        if errors:
            raise Fail("clean-up: " + "; ".join(errors))

    def last_in(self, ethertype: int | None = None) -> bytes | None:
        """The last frame from the DUT (of ``ethertype``), for a failure report."""
        for seen in reversed(self.log):
            if seen.way == "in" and (ethertype is None or frame_kind(seen.data) == ethertype):
                return seen.data
        return None

    async def responsive(self, tries: int = 3) -> bool:
        """Does the DUT still acknowledge ECPDUs? (A De-Associate of a VSI nobody has, sent up
        to ``tries`` times.) The runner asks after a failed case: a DUT that a frame killed."""
        vsi = self.new_vsi()
        for _ in range(tries):
            since = len(self.acks_in)
            await self.pace()
            seq = self.next_seq()
            self.send_frame(self.ecp_frame(vsi.pdu(VdpMode.DEASSOC, status=VdpStatus()), seq))
            if await self.until(self._acked(seq, since), max(0.5, 4 * self.op.ack_timeout)):
                return True
        return False

    def _acked(self, seq: int, since: int) -> Callable[[], bool]:
        return lambda: any(s == seq for _, s, _ in self.acks_in[since:])

    # ------------------------------------------------------------------ VSIs

    def new_vsi(
        self,
        *,
        fmt: FilterFormat = FilterFormat.MAC_VID,
        vid: int = 10,
        count: int = 1,
        entries: tuple[FilterEntry, ...] | None = None,
        hints: str = "none",
        type_id: int = 10,
        type_version: int = 1,
        vsiid: bytes | None = None,
        vsiid_format: int = VsiidFormat.UUID,
        manager: str = MANAGER,
    ) -> VsiSpec:
        """A VSI no earlier case used: UUID ``c0f0c0f0-0000-4000-8000-<n>``, MAC ``02:cf:00:00:<n>``."""
        self._vsi_n += 1
        n = self._vsi_n
        if entries is None:
            entries = tuple(
                FilterEntry(
                    vid=vid,
                    mac=bytes([0x02, 0xCF, 0, k, n >> 8, n & 0xFF]) if fmt.has_mac else None,
                    group_id=1000 + k if fmt.has_group else None,
                )
                for k in range(count)
            )
        if vsiid is None:
            vsiid = bytes.fromhex("c0f0c0f000004000800000000000") + n.to_bytes(2, "big")
        return VsiSpec(manager_id_from_text(manager), type_id, type_version, vsiid, fmt, entries, vsiid_format, hints)

    # ------------------------------------------------------------------ hooks

    async def act(self, action: str, vsi: VsiSpec) -> None:
        """Ask the DUT (through the run's hook) to do ``action`` with ``vsi``; ``Skip`` without a hook."""
        if self.hook is None:
            raise Skip(f"needs the DUT to {action} a VSI: no --hook given")
        try:
            await self.hook(action, vsi.hook_params())
        except HookUnsupported as exc:
            raise Skip(str(exc)) from None

    def act_soon(self, action: str, vsi: VsiSpec) -> asyncio.Task[None]:
        """``act`` in the background (a hook may wait for the DUT, which waits for our answer)."""
        if self.hook is None:
            raise Skip(f"needs the DUT to {action} a VSI: no --hook given")
        return asyncio.ensure_future(self.act(action, vsi))

    # ------------------------------------------------------------------ VDP in

    def _find(self, match: Callable[[VdpIn], bool] | None, start: int = 0) -> VdpIn | None:
        for item in self.vdp_in[start:]:
            if item.index not in self._consumed and (match is None or match(item)):
                return item
        return None

    async def expect_vdp(
        self, match: Callable[[VdpIn], bool] | None = None, *, within: float, what: str = "a VDP request"
    ) -> VdpIn:
        """The next VDP ULPDU from the DUT that ``match``es, within ``within`` seconds; else ``Fail``."""
        got = await self.until(lambda: self._find(match), within)
        if got is None:
            raise Fail(f"no {what} from the DUT within {within:.3f} s", self.last_in(ETH_P_ECP))
        self._consumed.add(got.index)
        return got

    async def maybe_vdp(self, match: Callable[[VdpIn], bool] | None = None, *, within: float) -> VdpIn | None:
        got = await self.until(lambda: self._find(match), within)
        if got is not None:
            self._consumed.add(got.index)
        return got

    async def no_vdp(
        self, match: Callable[[VdpIn], bool] | None = None, *, within: float, what: str = "VDP traffic"
    ) -> None:
        """``Fail`` if the DUT sends a matching VDP ULPDU within ``within`` seconds."""
        got = await self.until(lambda: self._find(match), within)
        if got is not None:
            raise Fail(f"unexpected {what} from the DUT {got.t - self.now() + within:.3f} s into the window", got.data)

    def about(self, vsi: VsiSpec, mode: VdpMode | None = None) -> Callable[[VdpIn], bool]:
        """A ``match`` for VDP ULPDUs carrying ``vsi`` (in ``mode``, if given)."""

        def match(item: VdpIn) -> bool:
            return any(vsi.matches(t, item.manager_id) and (mode is None or t.mode == mode) for t in item.vsis)

        return match

    @staticmethod
    def tlv_of(item: VdpIn, vsi: VsiSpec) -> VsiTlv:
        for t in item.vsis:
            if vsi.matches(t, item.manager_id):
                return t
        raise Fail("the VDP PDU does not carry the VSI", item.data)

    # ------------------------------------------------------------------ VDP out (tester as bridge)

    def answer_pdu(
        self,
        req: VdpIn,
        vsi: VsiSpec,
        *,
        code: int = 0,
        keep: bool = False,
        hard: bool = False,
        mode: VdpMode | None = None,
        entries: tuple[FilterEntry, ...] | None = None,
    ) -> VdpPdu:
        """The answer to ``vsi``'s TLV in ``req``: echoed with the response bit and ``code``
        (+Keep/Hard), in another ``mode`` or with other ``entries`` if given."""
        tlv = self.tlv_of(req, vsi)
        answer = replace(
            tlv,
            status=VdpStatus.reply(code, keep=keep, hard=hard),
            mode=tlv.mode if mode is None else mode,
            entries=tlv.entries if entries is None else entries,
        )
        return VdpPdu((VsiManagerIdTlv(req.manager_id or vsi.manager_id), answer))

    async def reply(self, req: VdpIn, vsi: VsiSpec, **kw: Any) -> int:
        """Send ``answer_pdu(req, vsi, **kw)`` (reliably); its ECP sequence number."""
        return await self.send_ulpdu(self.answer_pdu(req, vsi, **kw))

    async def deassociate(self, vsi: VsiSpec, *, entries: tuple[FilterEntry, ...] | None = None) -> int:
        """An unsolicited De-Associate (status 0x00) for ``vsi`` (vdp.md §10.5)."""
        tlv = vsi.tlv(VdpMode.DEASSOC, status=VdpStatus())
        if entries is not None:
            tlv = replace(tlv, entries=entries)
        return await self.send_ulpdu(VdpPdu((VsiManagerIdTlv(vsi.manager_id), tlv)))

    # ------------------------------------------------------------------ VDP out (tester as station)

    async def request(
        self, vsi: VsiSpec, mode: VdpMode, *, within: float | None = None, **changes: Any
    ) -> tuple[VsiTlv, VdpIn]:
        """Send ``vsi`` in ``mode`` and return the bridge's answer for it (``Fail`` if none within
        respWaitDelay)."""
        start = len(self.vdp_in)
        await self.send_ulpdu(vsi.pdu(mode, **changes))
        within = self.op.resp_wait_delay if within is None else within

        def answered(item: VdpIn) -> bool:
            return item.index >= start and any(vsi.matches(t, item.manager_id) and t.status.response for t in item.vsis)

        got = await self.expect_vdp(answered, within=within, what=f"answer to the {mode.label} of the VSI")
        return self.tlv_of(got, vsi), got


def ecp_request_body(data: bytes) -> bytes | None:
    """The ECPDU (header on) of an untagged or tagged ECP request frame (op 0: bits 3-2 of the
    header's first octet), or None; it need not decode (a malformed echo counts as an answer)."""
    n = 12
    while data[n : n + 2] in (b"\x81\x00", b"\x88\xa8"):
        n += 4
    if data[n : n + 2] == b"\x89\x40" and len(data) > n + 3 and data[n + 2] & 0x0C == 0:
        return data[n + 2 :]
    return None
