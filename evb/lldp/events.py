"""Events of the LLDP agent and of EVB negotiation."""

from __future__ import annotations

from dataclasses import dataclass

from evb.lldp.wire import EvbTlv

Msap = tuple[int, bytes, int, bytes]  #: (chassis ID subtype, chassis ID, port ID subtype, port ID)


class LldpEvent:
    """Base of LLDP and EVB events."""

    __slots__ = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class NeighborAdded(LldpEvent):
    msap: Msap
    ttl: int


@dataclass(frozen=True, slots=True, kw_only=True)
class NeighborUpdated(LldpEvent):
    msap: Msap


@dataclass(frozen=True, slots=True, kw_only=True)
class NeighborAged(LldpEvent):
    """The neighbor's TTL ran out."""

    msap: Msap


@dataclass(frozen=True, slots=True, kw_only=True)
class NeighborRemoved(LldpEvent):
    """The neighbor sent TTL 0 (shutdown LLDPDU)."""

    msap: Msap


@dataclass(frozen=True, slots=True, kw_only=True)
class TooManyNeighbors(LldpEvent):
    """An LLDPDU of a new MSAP was discarded: the neighbor table is full."""

    msap: Msap


@dataclass(frozen=True, slots=True, kw_only=True)
class EvbNegotiated(LldpEvent):
    """ECP and VDP may run with these operating values (sent again when they change)."""

    r: int
    rte: int
    rwd: int
    rka: int
    rr: bool  #: reflective relay on
    group_ids: bool  #: filter formats 3/4 usable
    local: EvbTlv
    peer: EvbTlv


@dataclass(frozen=True, slots=True, kw_only=True)
class EvbLost(LldpEvent):
    """The EVB peer is gone (aged out, shut down, stopped sending the EVB TLV, link down)."""

    reason: str
