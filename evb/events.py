"""Port-level events shared by every protocol: what a port did with input it could not use."""

from __future__ import annotations

from dataclasses import dataclass


class PortEvent:
    __slots__ = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameDropped(PortEvent):
    """A received frame was malformed or not acceptable now; it was counted and ignored."""

    pdu: str
    field: str
    offset: int
    reason: str
