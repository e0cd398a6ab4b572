"""EVB TLV "negotiation": the TLV each side sends and the operating values (lldp-evb-cdcp.md §2.3-2.4).

There is no handshake. Each side recomputes its outgoing EVB TLV from its own configuration
and the last TLV received from the peer, with lldpad's rules:

* R, RTE, RWD, RKA: the larger of own and peer; ROL(RWD)/ROL(RKA) = 1 when the peer's value
  is ≥ own (lldpad's tie rule, byte-identical with lldpad's TLVs);
* station: Bridge Status = copy of the bridge's octet; RRSTAT = 3 (unknown) before any bridge
  TLV, then 1 if the bridge's RRCTR is set, else 0;
* bridge: Station Status = copy of the station's octet; RRCTR = station's RRREQ AND own RRCAP;
* group IDs usable = BGID AND SGID of the TLV being sent.

The values in the TLV a side sends are the values its own ECP and VDP use. This module also
turns the exponents into seconds once (vdp.md §8, ecp.md §2), with lldpad's integer
microsecond arithmetic, so that timers match lldpad to the microsecond.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from evb.errors import LocalProtocolError
from evb.lldp.wire import EvbMode, EvbTlv, RrStat

MAX_RETRIES: Final = 7
MAX_EXPONENT: Final = 31


class Role(enum.Enum):
    STATION = "station"
    BRIDGE = "bridge"

    @property
    def evb_mode(self) -> EvbMode:
        return EvbMode.STATION if self is Role.STATION else EvbMode.BRIDGE


@dataclass(frozen=True, slots=True, kw_only=True)
class EvbConfig:
    """What one side proposes (lldpad's ``tlvid0080c20d`` keys, lldp-evb-cdcp.md §4)."""

    role: Role
    rrreq: bool = True  #: station: request reflective relay
    rrcap: bool = True  #: bridge: offer reflective relay
    gid: bool = False  #: SGID (station) or BGID (bridge)
    r: int = 3  #: ECP retries, 0..7
    rte: int = 8  #: ECP retransmission exponent
    rwd: int = 20  #: resource-wait-delay exponent
    rka: int = 20  #: reinit-keep-alive exponent

    def __post_init__(self) -> None:
        if not 0 <= self.r <= MAX_RETRIES:
            raise LocalProtocolError(f"R must be 0..7, not {self.r}")
        for name in ("rte", "rwd", "rka"):
            value = getattr(self, name)
            if not 0 <= value <= MAX_EXPONENT:
                raise LocalProtocolError(f"{name.upper()} must be 0..31, not {value}")


def local_tlv(config: EvbConfig, peer: EvbTlv | None) -> EvbTlv:
    """The EVB TLV this side sends, given the last TLV received (None: nothing yet)."""
    pr, prte, prwd, prka = (peer.r, peer.rte, peer.rwd, peer.rka) if peer else (0, 0, 0, 0)
    r, rte, rwd, rka = max(config.r, pr), max(config.rte, prte), max(config.rwd, prwd), max(config.rka, prka)
    rol_rwd = peer is not None and prwd >= config.rwd
    rol_rka = peer is not None and prka >= config.rka
    mode = config.role.evb_mode
    if config.role is Role.STATION:
        bridge_octet = peer.bridge_status if peer else 0
        rrstat = RrStat.UNKNOWN if peer is None else RrStat.ENABLED if peer.rrctr else RrStat.NOT_ENABLED
        return EvbTlv(
            bgid=bool(bridge_octet & 0x04),
            rrcap=bool(bridge_octet & 0x02),
            rrctr=bool(bridge_octet & 0x01),
            bridge_reserved=bridge_octet >> 3,
            sgid=config.gid,
            rrreq=config.rrreq,
            rrstat=rrstat,
            r=r,
            rte=rte,
            rwd=rwd,
            rka=rka,
            rol_rwd=rol_rwd,
            rol_rka=rol_rka,
            mode=mode,
        )
    station_octet = peer.station_status if peer else 0
    return EvbTlv(
        bgid=config.gid,
        rrcap=config.rrcap,
        rrctr=bool(peer and peer.rrreq and config.rrcap),
        sgid=bool(station_octet & 0x08),
        rrreq=bool(station_octet & 0x04),
        rrstat=station_octet & 0x03,
        station_reserved=station_octet >> 4,
        r=r,
        rte=rte,
        rwd=rwd,
        rka=rka,
        rol_rwd=rol_rwd,
        rol_rka=rol_rka,
        mode=mode,
    )


def _us(exponent: int) -> int:
    return 10 * (1 << exponent)


@dataclass(frozen=True, slots=True)
class Operating:
    """Operating values of one side (those of the TLV it sends) and the timers they give."""

    r: int
    rte: int
    rwd: int
    rka: int
    rr: bool  #: reflective relay on (bridge: RRCTR sent; station: RRSTAT 1)
    group_ids: bool  #: BGID and SGID both set: filter formats 3 and 4 usable

    @classmethod
    def from_tlv(cls, tlv: EvbTlv) -> Operating:
        rr = tlv.rrctr if tlv.mode == EvbMode.BRIDGE else tlv.rrstat == RrStat.ENABLED
        return cls(tlv.r, tlv.rte, tlv.rwd, tlv.rka, bool(rr), tlv.bgid and tlv.sgid)

    @property
    def ack_timeout(self) -> float:
        """ECP acknowledgement timer: 10 µs × 2^RTE."""
        return _us(self.rte) / 1e6

    def _wait(self, exponent: int) -> float:
        """1.5 × ((2R+1)·10·2^RTE + 10·2^exponent) µs in lldpad's integer arithmetic (vdp.md §8)."""
        t = (2 * self.r + 1) * _us(self.rte) + _us(exponent)
        return (t + t // 2) / 1e6

    @property
    def resp_wait_delay(self) -> float:
        """Station's wait for a VDP answer: 1.5 × ((2R+1)·10·2^RTE + 10·2^RWD) µs."""
        return self._wait(self.rwd)

    @property
    def reinit_keepalive(self) -> float:
        """Station's refresh interval: 10 µs × 2^RKA."""
        return _us(self.rka) / 1e6

    @property
    def resource_wait_delay(self) -> float:
        """Bridge's time to decide: 10 µs × 2^RWD."""
        return _us(self.rwd) / 1e6

    @property
    def keepalive_timeout(self) -> float:
        """Bridge's toutKeepAlive: 1.5 × ((2R+1)·10·2^RTE + 10·2^RKA) µs."""
        return self._wait(self.rka)


def converged(local: EvbTlv, peer: EvbTlv) -> bool:
    """Both TLVs agree on R, RTE, RWD, RKA (lldp-evb-cdcp.md §3: safe to start VDP toward lldpad)."""
    return (local.r, local.rte, local.rwd, local.rka) == (peer.r, peer.rte, peer.rwd, peer.rka)
