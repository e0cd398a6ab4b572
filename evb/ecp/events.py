"""Events of ECP (clause 43)."""

from __future__ import annotations

from dataclasses import dataclass


class EcpEvent:
    __slots__ = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class UlpduAbandoned(EcpEvent):
    """A ULPDU was sent 1 + R times without an acknowledgement and given up."""

    seq: int
    tries: int
    subtype: int
