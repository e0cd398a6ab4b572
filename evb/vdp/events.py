"""Events of the VDP station and bridge machines.

``key`` is a VSI's identity: (Manager ID, VSIID format, VSIID).
"""

from __future__ import annotations

from dataclasses import dataclass

from evb.vdp.wire import FilterEntry, VdpMode

VsiKey = tuple[bytes, int, bytes]


class VdpEvent:
    __slots__ = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class VsiAssociated(VdpEvent):
    """A request was confirmed: the VSI is now in ``mode`` (pre-associated, pre-associated
    with resource reservation, or associated) with these filter entries (the VIDs/PCPs the
    bridge chose for wildcard entries included). Refreshes do not repeat it."""

    key: VsiKey
    mode: VdpMode
    type_id: int
    type_version: int
    entries: tuple[FilterEntry, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class VsiDeassociated(VdpEvent):
    """The VSI is gone. ``reason``: ``deassociated`` (the station asked), ``bridge``
    (unsolicited de-associate), ``keepalive-timeout`` (bridge: no refresh), ``timeout``
    (station: no answer within respWaitDelay), ``rejected`` (error answer), ``filter-mismatch``,
    ``peer-lost``, ``policy`` (bridge: a new policy refuses the VSI, ``VdpBridge.set_policy``).
    A Keep error on a keep-alive of an associated VSI is reported as ``VsiRejected(keep=True)``;
    the station then de-associates it (``deassociated``), as lldpad."""

    key: VsiKey
    reason: str
    code: int = 0
    hard: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class VsiRejected(VdpEvent):
    """A request was refused; with ``keep`` the VSI stays in its previous state."""

    key: VsiKey
    mode: VdpMode
    code: int
    keep: bool
    hard: bool
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class VdpViolation(VdpEvent):
    """Received VDP content that breaks the protocol (ignored, counted)."""

    reason: str
