"""Fuzzing kit shared by ``tests/test_fuzz.py``, ``tests/test_schema.py`` and ``fuzz/long_fuzz.py``.

Oracles: ``check_frame()`` (only ``DecodeError`` escapes, exact re-encoding, strict vs
lenient consistency) and ``cross_check_frame()`` / ``outcome()`` (fast path vs construct
reference: same value or same error).

Mutations: ``frame_layout()`` finds, from the raw bytes alone, where the TLV headers and the entry-count
fields of a frame are, so that mutations can target them (a length one octet too long, a
count that disagrees with the length) as well as hitting random octets. ``mutations()``
yields every mutation class of a frame, labelled, from a seeded ``random.Random``: the same
seed gives the same cases on every run.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from evb.ecp.schema import reference_decode_draft_ecpdu, reference_decode_ecpdu
from evb.ecp.wire import DRAFT_PDU, DraftEcpdu, Ecpdu, decode_draft_ecpdu_prefix, decode_ecpdu
from evb.errors import DecodeError
from evb.ethernet import ETH_P_ECP, ETH_P_LLDP, ETH_P_OUI_EXT, TAG_TPIDS, decode_ethernet_header
from evb.frame import Frame, decode_frame, encode_frame
from evb.lldp.wire import Lldpdu
from evb.tlv import InvalidTlv, check_zero_padding
from evb.vdp.wire import VdpPdu

_DRAFT_VDP_PREFIX = bytes.fromhex("001b3f02")

# --------------------------------------------------------------------------- oracles


def has_invalid(pdu: Lldpdu | Ecpdu | DraftEcpdu) -> bool:
    """Whether a (lenient) decode kept a TLV as ``InvalidTlv``."""
    if isinstance(pdu, Ecpdu):
        return isinstance(pdu.ulpdu, VdpPdu) and any(isinstance(t, InvalidTlv) for t in pdu.ulpdu.tlvs)
    return any(isinstance(t, InvalidTlv) for t in pdu.tlvs)


def check_frame(data: bytes) -> str:
    """The fuzz oracle for one input; returns ``rejected``, ``invalid-tlv`` or ``decoded``.

    Only ``DecodeError`` may escape the decoder (anything else propagates to the caller);
    what decodes re-encodes to exactly the input; strict decoding succeeds exactly when
    lenient decoding succeeds without an ``InvalidTlv``, and then both agree.
    """
    lenient: Frame | None
    strict: Frame | None
    try:
        lenient = decode_frame(data, strict=False)
    except DecodeError:
        lenient = None
    try:
        strict = decode_frame(data, strict=True)
    except DecodeError:
        strict = None
    if lenient is None:
        assert strict is None, "strict decoding accepted what lenient decoding refused"
        return "rejected"
    assert encode_frame(lenient) == data, "lenient decode does not re-encode to the input"
    if strict is None:
        assert has_invalid(lenient.pdu), "strict decoding refused a frame lenient decoding found valid"
        return "invalid-tlv"
    assert strict == lenient, "strict and lenient decoding disagree"
    assert not has_invalid(strict.pdu)
    assert encode_frame(strict) == data
    return "decoded"


def outcome(decode: Callable[..., Any], data: bytes, *, strict: bool) -> tuple[Any, ...]:
    """What a decoder makes of ``data``: ``("ok", value)`` or the ``DecodeError``'s every attribute."""
    try:
        return ("ok", decode(data, strict=strict))
    except DecodeError as exc:
        return ("error", type(exc).__name__, exc.pdu, exc.field, exc.offset, exc.reason)


def fast_decode_draft_ecpdu(data: bytes, *, strict: bool = True) -> DraftEcpdu:
    """The fast path's whole-PDU draft decode (prefix decoder + zero padding)."""
    pdu, end = decode_draft_ecpdu_prefix(data, strict=strict)
    check_zero_padding(data, end, pdu=DRAFT_PDU)
    return pdu


#: (fast decoder, reference decoder) by EtherType.
DECODER_PAIRS: dict[int, tuple[Callable[..., Any], Callable[..., Any]]] = {
    ETH_P_ECP: (decode_ecpdu, reference_decode_ecpdu),
    ETH_P_OUI_EXT: (fast_decode_draft_ecpdu, reference_decode_draft_ecpdu),
}


def cross_check(kind: int, payload: bytes) -> None:
    """Fast path and construct reference agree on an ECP or draft ECP payload, strict and lenient."""
    fast, reference = DECODER_PAIRS[kind]
    for strict in (True, False):
        a = outcome(fast, payload, strict=strict)
        b = outcome(reference, payload, strict=strict)
        assert a == b, f"fast path {a!r} != reference {b!r} (strict={strict}) for {payload.hex()}"


def cross_check_frame(frame: bytes) -> None:
    """``cross_check`` on the payload of an ECP or draft ECP frame; other frames are skipped."""
    try:
        head = decode_ethernet_header(frame)
    except DecodeError:
        return
    if head.ethertype in DECODER_PAIRS:
        cross_check(head.ethertype, frame[head.length :])


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the mutable fields of a frame (or bare PDU) are."""

    ethertype: int | None  #: None for a bare PDU
    payload: int  #: offset of the PDU after the Ethernet header
    tlv_headers: tuple[int, ...]  #: offsets of 2-octet TLV headers (End excluded)
    counts: tuple[int, ...]  #: offsets of 2-octet filter entry counts
    pdu_header: tuple[int, int]  #: (offset, length) of the ECP/draft ECP header, (0, 0) if none


def tlv_walk(data: bytes, start: int) -> tuple[list[int], list[int]]:
    """TLV header offsets and entry-count offsets from ``start`` to End or the first overrun."""
    headers: list[int] = []
    counts: list[int] = []
    off = start
    while off + 2 <= len(data):
        h = (data[off] << 8) | data[off + 1]
        t, length = h >> 9, h & 0x1FF
        if t == 0 or off + 2 + length > len(data):
            break
        headers.append(off)
        value = data[off + 2 : off + 2 + length]
        if 1 <= t <= 4 and length >= 25:
            counts.append(off + 2 + 23)
        elif t == 127 and length >= 30 and value[:4] == _DRAFT_VDP_PREFIX:
            counts.append(off + 2 + 28)
        off += 2 + length
    return headers, counts


def frame_layout(frame: bytes) -> Layout:
    """Layout of an Ethernet frame carrying LLDP, ECP or draft ECP."""
    off = 12
    while off + 2 <= len(frame) and ((frame[off] << 8) | frame[off + 1]) in TAG_TPIDS:
        off += 4
    if off + 2 > len(frame):
        return Layout(None, len(frame), (), (), (0, 0))
    et = (frame[off] << 8) | frame[off + 1]
    pay = off + 2
    if et == ETH_P_LLDP:
        headers, counts = tlv_walk(frame, pay)
        return Layout(et, pay, tuple(headers), tuple(counts), (0, 0))
    if et == ETH_P_ECP:
        headers, counts = tlv_walk(frame, pay + 4)
        return Layout(et, pay, tuple(headers), tuple(counts), (pay, 4))
    if et == ETH_P_OUI_EXT:
        headers, counts = tlv_walk(frame, pay + 9)
        return Layout(et, pay, tuple(headers), tuple(counts), (pay, 9))
    return Layout(et, pay, (), (), (0, 0))


def pdu_layout(data: bytes, tlv_start: int) -> Layout:
    """Layout of a bare PDU whose TLVs start at ``tlv_start`` (0 for a VDP ULPDU, 4 for an ECPDU)."""
    headers, counts = tlv_walk(data, tlv_start)
    return Layout(None, 0, tuple(headers), tuple(counts), (0, tlv_start))


def _with_u16(data: bytes, off: int, value: int) -> bytes:
    return data[:off] + (value & 0xFFFF).to_bytes(2, "big") + data[off + 2 :]


def set_tlv_length(data: bytes, off: int, length: int) -> bytes:
    h = (data[off] << 8) | data[off + 1]
    return _with_u16(data, off, (h & 0xFE00) | (length & 0x1FF))


def set_tlv_type(data: bytes, off: int, tlv_type: int) -> bytes:
    h = (data[off] << 8) | data[off + 1]
    return _with_u16(data, off, ((tlv_type & 0x7F) << 9) | (h & 0x1FF))


def set_count(data: bytes, off: int, count: int) -> bytes:
    return _with_u16(data, off, count)


# --------------------------------------------------------------------------- mutation classes


def truncations(data: bytes) -> Iterator[bytes]:
    """Every proper prefix, the empty one included."""
    for n in range(len(data)):
        yield data[:n]


def bit_flips(data: bytes) -> Iterator[bytes]:
    """Every single-bit flip."""
    for i in range(len(data)):
        for bit in range(8):
            yield data[:i] + bytes((data[i] ^ (1 << bit),)) + data[i + 1 :]


def byte_replacements(data: bytes, rng: random.Random) -> Iterator[bytes]:
    """Every octet set to 0x00, to 0xFF and to a random value."""
    for i in range(len(data)):
        for v in (0x00, 0xFF, rng.randrange(256)):
            if v != data[i]:
                yield data[:i] + bytes((v,)) + data[i + 1 :]


def length_changes(data: bytes, layout: Layout, rng: random.Random) -> Iterator[bytes]:
    """Each TLV header's length set to neighbours of its value, the extremes and random values."""
    for off in layout.tlv_headers:
        length = ((data[off] << 8) | data[off + 1]) & 0x1FF
        rest = len(data) - off - 2
        candidates = {0, 1, 2, 3, 4, 16, 24, 25, 26, 30, 38, 23, 511, rest, rest + 1, rest - 1}
        candidates |= {length + d for d in (-3, -2, -1, 1, 2, 3, 6, 8, 12)}
        candidates |= {rng.randrange(512) for _ in range(4)}
        for v in sorted(c for c in candidates if 0 <= c <= 511 and c != length):
            yield set_tlv_length(data, off, v)


def type_changes(data: bytes, layout: Layout, rng: random.Random) -> Iterator[bytes]:
    """Each TLV header's type set to every interesting type (and a random one)."""
    for off in layout.tlv_headers:
        t = data[off] >> 1
        for v in sorted({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 126, 127, rng.randrange(128)} - {t}):
            yield set_tlv_type(data, off, v)


def count_changes(data: bytes, layout: Layout, rng: random.Random) -> Iterator[bytes]:
    """Each filter entry count set to neighbours of its value, 0, the extremes and random values."""
    for off in layout.counts:
        n = (data[off] << 8) | data[off + 1]
        candidates = {0, 1, 2, 3, 0x7FFF, 0x8000, 0xFFFF, n + 1, n + 2, n - 1, n - 2, n * 2, rng.randrange(0x10000)}
        for v in sorted(c for c in candidates if 0 <= c <= 0xFFFF and c != n):
            yield set_count(data, off, v)


def header_changes(data: bytes, layout: Layout) -> Iterator[bytes]:
    """ECP header: every version, every op, interesting subtypes; draft header: each octet varied."""
    off, size = layout.pdu_header
    if size == 4 and len(data) >= off + 4:
        word = (data[off] << 8) | data[off + 1]
        for version in range(16):
            yield _with_u16(data, off, (word & 0x0FFF) | (version << 12))
        for op in range(4):
            yield _with_u16(data, off, (word & 0xF3FF) | (op << 10))
        for sub in (0, 1, 2, 3, 0x100, 0x3FF):
            yield _with_u16(data, off, (word & 0xFC00) | sub)
    elif size == 9 and len(data) >= off + 9:
        for i in range(off, off + 9):
            for v in (0x00, 0x01, 0x02, 0xFF):
                yield data[:i] + bytes((v,)) + data[i + 1 :]


def extensions(data: bytes, rng: random.Random, layout: Layout) -> Iterator[bytes]:
    """Garbage, zeros, zeros then garbage, a copy of a TLV, a lone octet appended."""
    for n in (1, 2, 3, 5, 8, 17, 64):
        yield data + rng.randbytes(n)
        yield data + bytes(n)
        yield data + bytes(n) + bytes((rng.randrange(1, 256),))
    yield data + b"\x00\x01"
    yield data + b"\x01"
    for off in layout.tlv_headers[:3]:
        length = ((data[off] << 8) | data[off + 1]) & 0x1FF
        yield data + data[off : off + 2 + length]
        yield data[:off] + data[off : off + 2 + length] + data[off:]  # the TLV twice
        yield data[:off] + data[off + 2 + length :]  # the TLV removed


def random_mutation(data: bytes, layout: Layout, rng: random.Random) -> bytes:
    """One random primitive mutation (for stacking)."""
    kind = rng.randrange(9)
    if not data:
        return rng.randbytes(rng.randrange(1, 8))
    i = rng.randrange(len(data))
    if kind == 0:
        return data[:i] + bytes((data[i] ^ (1 << rng.randrange(8)),)) + data[i + 1 :]
    if kind == 1:
        return data[:i] + bytes((rng.randrange(256),)) + data[i + 1 :]
    if kind == 2:
        return data[:i]
    if kind == 3:
        return data + rng.randbytes(rng.randrange(1, 12))
    if kind == 4:
        return data[:i] + rng.randbytes(rng.randrange(1, 6)) + data[i:]
    if kind == 5:
        return data[:i] + data[i + rng.randrange(1, 6) :]
    if kind == 6 and layout.tlv_headers:
        off = rng.choice(layout.tlv_headers)
        if off + 2 <= len(data):
            return set_tlv_length(data, off, rng.randrange(512))
    if kind == 7 and layout.counts:
        off = rng.choice(layout.counts)
        if off + 2 <= len(data):
            return set_count(data, off, rng.choice((0, 1, 2, 3, 0xFFFF, rng.randrange(0x10000))))
    if kind == 8 and layout.tlv_headers:
        off = rng.choice(layout.tlv_headers)
        if off + 2 <= len(data):
            return set_tlv_type(data, off, rng.randrange(128))
    return data[:i] + bytes((0,)) + data[i + 1 :]


def stacked(data: bytes, layout: Layout, rng: random.Random, n: int) -> Iterator[bytes]:
    """``n`` cases of 2 to 5 random mutations applied one after the other."""
    for _ in range(n):
        out = data
        for _ in range(rng.randrange(2, 6)):
            out = random_mutation(out, layout, rng)
        yield out


def mutations(frame: bytes, rng: random.Random, *, stacked_per_frame: int = 200) -> Iterator[tuple[str, bytes]]:
    """Every mutation class of one frame, labelled by class."""
    layout = frame_layout(frame)
    yield "original", frame
    for kind, cases in (
        ("truncate", truncations(frame)),
        ("bitflip", bit_flips(frame)),
        ("replace", byte_replacements(frame, rng)),
        ("length", length_changes(frame, layout, rng)),
        ("type", type_changes(frame, layout, rng)),
        ("count", count_changes(frame, layout, rng)),
        ("header", header_changes(frame, layout)),
        ("extend", extensions(frame, rng, layout)),
        ("stacked", stacked(frame, layout, rng, stacked_per_frame)),
    ):
        for case in cases:
            yield kind, case
