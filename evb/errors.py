"""One exception hierarchy for the whole package (house style §4).

``DecodeError`` is what a peer's bytes raise when they do not parse: it names the PDU, the
field, the absolute octet offset in the buffer that was handed to the decoder, and the reason.
Nothing else (``IndexError``, ``struct.error``, construct's errors) may escape a decoder.
"""

from __future__ import annotations


class EvbError(Exception):
    """Root of every error raised by evb; catch it only at a program's outer edge."""


class DecodeError(EvbError):
    """The peer's bytes do not parse.

    Attributes:
        reason: what is wrong, in words.
        pdu: which PDU or TLV was being decoded (``lldpdu``, ``ecpdu``, ``vdp``, ...).
        field: the field that is wrong (dotted path, ``vsi.filter.count``).
        offset: octet offset of that field from the start of the decoded buffer.
    """

    def __init__(self, reason: str, *, pdu: str, field: str, offset: int) -> None:
        super().__init__(f"{pdu}: {field} at offset {offset}: {reason}")
        self.reason = reason
        self.pdu = pdu
        self.field = field
        self.offset = offset

    def __reduce__(self) -> tuple[object, ...]:  # keep pickling (multiprocessing) working
        return (_rebuild_decode_error, (type(self), self.reason, self.pdu, self.field, self.offset))


def _rebuild_decode_error(cls: type[DecodeError], reason: str, pdu: str, field: str, offset: int) -> DecodeError:
    return cls(reason, pdu=pdu, field=field, offset=offset)


class NotEvbFrame(DecodeError):
    """A well-formed Ethernet frame of a protocol evb does not decode (skip it, count it)."""


class EncodeError(EvbError, ValueError):
    """A value handed to an encoder cannot be put on the wire (out of range, wrong size)."""

    def __init__(self, reason: str, *, pdu: str, field: str) -> None:
        super().__init__(f"{pdu}: {field}: {reason}")
        self.reason = reason
        self.pdu = pdu
        self.field = field


class ProtocolViolation(EvbError):
    """Well-formed input that is illegal now (wrong order, wrong state, bad value)."""


class LocalProtocolError(EvbError):
    """Our own caller asked for something illegal (wrong-state command, unknown edge)."""
