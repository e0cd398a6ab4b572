"""The 7-bit type / 9-bit length TLV shared by LLDP (802.1AB §8.4), VDP and CDCP (802.1Qbg).

``header16 = (type << 9) | length``; *length* counts the octets after the 2-octet header.
This module holds what LLDP and VDP share: header helpers, the construct schema with the
error translation of the house style, and ``InvalidTlv``, the lenient decoders' record of a
TLV whose header is sound but whose content is not.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from construct import BitsInteger, BitStruct, Bytes, Construct, ConstructError, Rebuild, Struct, len_, this

from evb.errors import DecodeError, EncodeError

TLV_HEADER_LEN = 2
MAX_TLV_LENGTH = 0x1FF  #: 511, the largest value of the 9-bit length field

_U16 = struct.Struct("!H")

#: Generic TLV, construct form (used by the LLDP decoder and by reference decoders).
TLV = Struct(
    "head" / BitStruct("type" / BitsInteger(7), "length" / Rebuild(BitsInteger(9), len_(this._.value))),
    "value" / Bytes(this.head.length),
)


def tlv_header(tlv_type: int, length: int, *, pdu: str) -> bytes:
    """Pack a TLV header, refusing values that do not fit 7 and 9 bits."""
    if not 0 <= tlv_type <= 127:
        raise EncodeError(f"TLV type {tlv_type} is outside 0..127", pdu=pdu, field="type")
    if not 0 <= length <= MAX_TLV_LENGTH:
        raise EncodeError(f"TLV length {length} is outside 0..511", pdu=pdu, field="length")
    return _U16.pack((tlv_type << 9) | length)


def parse_at(schema: Construct, data: bytes, *, offset: int, pdu: str, field: str = "") -> Any:
    """Parse ``data`` with a construct schema, turning construct's error into ``DecodeError``.

    ``offset`` is where ``data`` starts in the caller's buffer; it is added to error offsets.
    """
    try:
        return schema.parse(data)
    except ConstructError as exc:
        path = (exc.path or "").removeprefix("(parsing)").removeprefix(" -> ").replace(" -> ", ".")
        where = ".".join(p for p in (field, path) if p) or "?"
        raise DecodeError(str(exc).splitlines()[-1], pdu=pdu, field=where, offset=offset) from None


def check_zero_padding(data: bytes, start: int, *, pdu: str, base: int = 0) -> None:
    """Everything from ``start`` to the end must be zero octets (End TLV and padding)."""
    if data.count(0, start) != len(data) - start:
        bad = next(i for i in range(start, len(data)) if data[i])
        raise DecodeError(
            f"non-zero octet 0x{data[bad]:02x} after the end of the PDU (trailing garbage)",
            pdu=pdu,
            field="padding",
            offset=base + bad,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class InvalidTlv:
    """A TLV whose header fits but whose content does not decode (lenient decoding only).

    The raw value is kept so that the PDU still re-encodes bit for bit; ``reason``, ``field``
    and ``offset`` are those of the ``DecodeError`` a strict decoder raises for it.
    """

    type: int
    value: bytes
    reason: str
    field: str
    offset: int

    @classmethod
    def from_error(cls, tlv_type: int, value: bytes, err: DecodeError) -> InvalidTlv:
        return cls(type=tlv_type, value=value, reason=err.reason, field=err.field, offset=err.offset)

    def as_error(self, pdu: str) -> DecodeError:
        return DecodeError(self.reason, pdu=pdu, field=self.field, offset=self.offset)

    def encode(self) -> bytes:
        return tlv_header(self.type, len(self.value), pdu="tlv") + self.value
