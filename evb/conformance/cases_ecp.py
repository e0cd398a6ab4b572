"""ECP cases (ecp.md): the DUT's receiver (acknowledgements, duplicates, bad headers) and its
transmitter (format, retransmission, sequence numbers). Receiver cases need no hook in either
role (a station DUT is probed with unsolicited De-Associates of unknown VSIs, which its VDP
ignores); transmitter cases against a station DUT need the hook to make it associate.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from evb.conformance.model import ROLES, Case, CaseFn, Fail, add
from evb.conformance.steps import acked, make_dut_send, probe_pdu
from evb.conformance.tester import Tester, VdpIn, VsiSpec
from evb.ecp.wire import EcpOp
from evb.ethernet import ETH_P_ECP, NEAREST_CUSTOMER_BRIDGE, VlanTag
from evb.frame import decode_frame


def both(
    name: str, title: str, clause: str, expect: str, *, tx: bool = False, lldpad: str = ""
) -> Callable[[CaseFn], CaseFn]:
    """Register a case for a station DUT and for a bridge DUT (``ecp.<role>.<name>``)."""

    def register(fn: CaseFn) -> CaseFn:
        for role in ROLES:
            needs = ("associate",) if tx and role == "station" else ()
            add(Case(f"ecp.{role}.{name}", title, clause, role, fn, needs, expect, lldpad))
        return fn

    return register


def window(t: Tester) -> float:
    """How long to watch for something that must not happen (an ack, a delivery)."""
    return max(0.3, 6 * t.op.ack_timeout)


def answer_for(vsi: VsiSpec, start: int) -> Callable[[VdpIn], bool]:
    """A match for the DUT's answer to ``vsi`` among VDP PDUs from index ``start`` on."""
    return lambda i: i.index >= start and any(vsi.matches(x, i.manager_id) and x.status.response for x in i.vsis)


def answers(t: Tester, start: int, vsi: VsiSpec) -> int:
    """Bridge DUT: how many answers for ``vsi`` arrived in ``vdp_in`` from ``start`` on."""
    return sum(1 for i in t.vdp_in[start:] for x in i.vsis if vsi.matches(x, i.manager_id) and x.status.response)


# --------------------------------------------------------------------------- receiver


@both(
    "rx.ack",
    "a request is acknowledged at once",
    "ecp.md §4.2, §5.3",
    "an ACK with the request's sequence number within the ack timer",
)
async def rx_ack(t: Tester) -> None:
    pdu, _ = probe_pdu(t)
    since = len(t.acks_in)
    sent = t.now()
    seq = await t.send_ulpdu(pdu, reliable=False)
    got = await acked(t, seq, since=since, within=max(0.5, 4 * t.op.ack_timeout))
    if got is None:
        raise Fail(f"no acknowledgement of sequence {seq}", t.last_in(ETH_P_ECP))
    _, hi = t.bounds(t.op.ack_timeout)
    if got[0] - sent > max(hi, 0.5):
        raise Fail(f"acknowledged after {got[0] - sent:.4f} s, the ack timer is {t.op.ack_timeout:.4f} s", got[1])


@both(
    "rx.ack-format",
    "the acknowledgement's header",
    "ecp.md §1, §5.3",
    "ACK to 01-80-C2-00-00-00, EtherType 0x8940, version 1, op 1, subtype and sequence copied",
)
async def rx_ack_format(t: Tester) -> None:
    pdu, _ = probe_pdu(t)
    since = len(t.acks_in)
    seq = await t.send_ulpdu(pdu, reliable=False)
    got = await acked(t, seq, since=since)
    if got is None:
        raise Fail(f"no acknowledgement of sequence {seq}", t.last_in(ETH_P_ECP))
    data = got[1]
    frame = decode_frame(data)
    ecp = frame.pdu
    problems = []
    if frame.dst != NEAREST_CUSTOMER_BRIDGE:
        problems.append(f"destination {frame.dst.hex(':')}")
    if t.dut_mac and frame.src != t.dut_mac:
        problems.append(f"source {frame.src.hex(':')} is not the DUT's {t.dut_mac.hex(':')}")
    if getattr(ecp, "version", None) != 1:
        problems.append(f"version {getattr(ecp, 'version', None)}")
    if getattr(ecp, "subtype", None) != 1:
        problems.append(f"subtype {getattr(ecp, 'subtype', None)}")
    if problems:
        raise Fail("acknowledgement: " + ", ".join(problems), data)


@both(
    "rx.duplicate",
    "a retransmitted request is acknowledged again but delivered once",
    "ecp.md §4.2 (lldpad ecp22 test 2)",
    "two ACKs; a bridge answers the VSI once",
)
async def rx_duplicate(t: Tester) -> None:
    pdu, vsi = probe_pdu(t)
    since, start = len(t.acks_in), len(t.vdp_in)
    seq = t.next_seq()
    frame = t.ecp_frame(pdu, seq)
    await t.send_paced(frame)
    if await acked(t, seq, since=since) is None:
        raise Fail(f"no acknowledgement of sequence {seq}", t.last_in(ETH_P_ECP))
    since2 = len(t.acks_in)
    await t.sleep(0.004)
    t.send_frame(frame)
    if await acked(t, seq, since=since2) is None:
        raise Fail(f"the duplicate of sequence {seq} was not acknowledged", t.last_in(ETH_P_ECP))
    if t.dut_role == "bridge":
        await t.sleep(min(t.op.resp_wait_delay, 1.0))
        n = answers(t, start, vsi)
        if n != 1:
            raise Fail(f"the request was answered {n} times, not once (duplicate delivered?)", t.last_in(ETH_P_ECP))


@both(
    "rx.new-sequences",
    "requests with new sequence numbers are each delivered",
    "ecp.md §4.2 (lldpad ecp22 test 3)",
    "three ACKs; a bridge answers each of three VSIs",
)
async def rx_new_sequences(t: Tester) -> None:
    sent = []
    for _ in range(3):
        pdu, vsi = probe_pdu(t)
        start = len(t.vdp_in)
        seq = await t.send_ulpdu(pdu)
        sent.append((seq, vsi, start))
        if t.dut_role == "bridge":
            await t.expect_vdp(answer_for(vsi, start), within=t.op.resp_wait_delay, what=f"answer to sequence {seq}")
    seqs = [s for s, _, _ in sent]
    if len(set(seqs)) != 3:
        raise Fail(f"sequence numbers not distinct: {seqs}")


async def _no_ack(t: Tester, frame: bytes, seq: int, what: str) -> None:
    since = len(t.acks_in)
    await t.send_paced(frame)
    got = await acked(t, seq, since=since, within=window(t))
    if got is not None:
        raise Fail(f"{what} was acknowledged", got[1])
    # and the receiver still works
    pdu, _ = probe_pdu(t)
    since = len(t.acks_in)
    seq2 = await t.send_ulpdu(pdu, reliable=False)
    if await acked(t, seq2, since=since) is None:
        raise Fail(f"after {what}, a valid request was not acknowledged", t.last_in(ETH_P_ECP))


@both(
    "rx.bad-version",
    "a request of version 15 is dropped without an acknowledgement",
    "ecp.md §4.1 (lldpad ecp22 test 4)",
    "no ACK; the next valid request is acknowledged",
)
async def rx_bad_version(t: Tester) -> None:
    pdu, _ = probe_pdu(t)
    seq = t.next_seq()
    await _no_ack(t, t.ecp_frame(pdu, seq, version=15), seq, "a version-15 ECPDU")


@both(
    "rx.bad-subtype",
    "a request of subtype 15 is dropped without an acknowledgement",
    "ecp.md §4.1 (lldpad ecp22 test 5)",
    "no ACK; the next valid request is acknowledged",
)
async def rx_bad_subtype(t: Tester) -> None:
    pdu, _ = probe_pdu(t)
    seq = t.next_seq()
    await _no_ack(t, t.ecp_frame(pdu, seq, subtype=15), seq, "a subtype-15 ECPDU")


@both(
    "rx.subtype-0",
    "a request of subtype 0 is dropped without an acknowledgement",
    "ecp.md §4.1",
    "no ACK; the next valid request is acknowledged",
)
async def rx_subtype_0(t: Tester) -> None:
    pdu, _ = probe_pdu(t)
    seq = t.next_seq()
    await _no_ack(t, t.ecp_frame(pdu, seq, subtype=0), seq, "a subtype-0 ECPDU")


@both(
    "rx.reserved-op",
    "an ECPDU with a reserved operation (2) is ignored",
    "ecp.md §4.1",
    "no ACK; the next valid request is acknowledged",
)
async def rx_reserved_op(t: Tester) -> None:
    pdu, _ = probe_pdu(t)
    seq = t.next_seq()
    await _no_ack(t, t.ecp_frame(pdu, seq, op=2), seq, "an op-2 ECPDU")


@both(
    "rx.reserved-op-3",
    "an ECPDU with a reserved operation (3) is ignored",
    "ecp.md §4.1",
    "no ACK; the next valid request is acknowledged",
)
async def rx_reserved_op_3(t: Tester) -> None:
    pdu, _ = probe_pdu(t)
    seq = t.next_seq()
    await _no_ack(t, t.ecp_frame(pdu, seq, op=3), seq, "an op-3 ECPDU")


@both(
    "rx.stray-ack",
    "an acknowledgement nothing is waiting for is ignored",
    "ecp.md §3.4",
    "no reaction; the DUT still acknowledges valid requests",
)
async def rx_stray_ack(t: Tester) -> None:
    t.send_frame(t.ecp_frame(b"", 0x7777, op=EcpOp.ACK))
    await t.sleep(window(t) / 2)
    pdu, _ = probe_pdu(t)
    since = len(t.acks_in)
    seq = await t.send_ulpdu(pdu, reliable=False)
    if await acked(t, seq, since=since) is None:
        raise Fail("after a stray ACK, a valid request was not acknowledged", t.last_in(ETH_P_ECP))


async def _delivered_twice(t: Tester, first: int, second: int) -> None:
    """Send two requests with sequence numbers ``first`` then ``second``: both must be delivered."""
    for seq in (first, second):
        pdu, vsi = probe_pdu(t)
        start, since = len(t.vdp_in), len(t.acks_in)
        await t.sleep(0.004)
        await t.send_paced(t.ecp_frame(pdu, seq))
        if await acked(t, seq, since=since) is None:
            raise Fail(f"sequence {seq:#06x} not acknowledged", t.last_in(ETH_P_ECP))
        if t.dut_role == "bridge":
            await t.expect_vdp(
                answer_for(vsi, start),
                within=t.op.resp_wait_delay,
                what=f"answer to sequence {seq:#06x} (delivered as new?)",
            )
    t._tx_seq = second


@both(
    "rx.older-sequence",
    "an older (not the last) sequence number is delivered as new",
    "ecp.md §4.2 (only the immediately preceding number is a duplicate)",
    "both requests acknowledged and (bridge) answered",
)
async def rx_older_sequence(t: Tester) -> None:
    base = t.next_seq()
    t.next_seq()
    await _delivered_twice(t, (base + 50) % 0xFFFF + 1, base)


@both(
    "rx.sequence-gap",
    "a sequence number far ahead is delivered as new",
    "ecp.md §4.2",
    "both requests acknowledged and (bridge) answered",
)
async def rx_sequence_gap(t: Tester) -> None:
    base = t.next_seq()
    await _delivered_twice(t, base, (base + 1000) % 0xFFFF + 1)


@both(
    "rx.sequence-wrap",
    "sequence numbers wrap from 0xFFFF to 0x0001",
    "ecp.md §3.2",
    "both requests acknowledged and (bridge) answered",
)
async def rx_sequence_wrap(t: Tester) -> None:
    await _delivered_twice(t, 0xFFFF, 0x0001)


@both(
    "rx.pecsp",
    "a PECSP ECPDU (subtype 2) is acknowledged",
    "ecp.md §4.1, §6",
    "an ACK of subtype 2",
)
async def rx_pecsp(t: Tester) -> None:
    seq = t.next_seq()
    since = len(t.acks_in)
    await t.send_paced(t.ecp_frame(b"\x00\x00", seq, subtype=2))
    got = await acked(t, seq, since=since)
    if got is None:
        raise Fail(f"PECSP sequence {seq} not acknowledged", t.last_in(ETH_P_ECP))


@both(
    "rx.unicast-destination",
    "a request to the DUT's own MAC address is acknowledged",
    "ecp.md §4.1 (addresses are not checked)",
    "an ACK",
)
async def rx_unicast(t: Tester) -> None:
    if t.dut_mac is None:
        raise Fail("the DUT's MAC is unknown (no LLDPDU from it)")
    pdu, _ = probe_pdu(t)
    seq = t.next_seq()
    since = len(t.acks_in)
    await t.send_paced(t.ecp_frame(pdu, seq, dst=t.dut_mac))
    if await acked(t, seq, since=since) is None:
        raise Fail(f"request {seq} to {t.dut_mac.hex(':')} not acknowledged", t.last_in(ETH_P_ECP))


@both(
    "rx.priority-tagged",
    "a priority-tagged request (VLAN 0) is acknowledged",
    "README.md §2 (priority tags are untagged frames)",
    "an ACK",
)
async def rx_priority_tagged(t: Tester) -> None:
    pdu, _ = probe_pdu(t)
    seq = t.next_seq()
    since = len(t.acks_in)
    await t.send_paced(t.ecp_frame(pdu, seq, tags=(VlanTag(vid=0, pcp=7),)))
    if await acked(t, seq, since=since) is None:
        raise Fail(f"priority-tagged request {seq} not acknowledged", t.last_in(ETH_P_ECP))


@both(
    "rx.unpadded",
    "an 18-octet (unpadded) request is acknowledged",
    "ecp.md §4.1 (length is not checked)",
    "an ACK",
)
async def rx_unpadded(t: Tester) -> None:
    seq = t.next_seq()
    since = len(t.acks_in)
    frame = t.raw_frame(ETH_P_ECP, bytes([0x10, 0x01]) + seq.to_bytes(2, "big"))
    await t.send_paced(frame)  # 18 octets, no padding, empty ULPDU
    if await acked(t, seq, since=since) is None:
        raise Fail(f"unpadded request {seq} not acknowledged", t.last_in(ETH_P_ECP))


# --------------------------------------------------------------------------- transmitter


async def dut_ecpdu(t: Tester, start: int, within: float) -> tuple[float, int, bytes]:
    got = await t.until(lambda: next(((tt, p.seq, d) for tt, p, d, _ in t.ecp_in[start:]), None), within)
    if got is None:
        raise Fail(f"the DUT sent no ECPDU within {within:.2f} s", t.last_in(ETH_P_ECP))
    return got


@both(
    "tx.format",
    "the DUT's ECPDU header",
    "ecp.md §1, §5.1",
    "to 01-80-C2-00-00-00, EtherType 0x8940, version 1, op 0, subtype 1, sequence ≠ 0",
    tx=True,
)
async def tx_format(t: Tester) -> None:
    start = len(t.ecp_in)
    await make_dut_send(t)
    _, seq, data = await dut_ecpdu(t, start, 5.0)
    frame = decode_frame(data)
    ecp = frame.pdu
    problems = []
    if frame.dst != NEAREST_CUSTOMER_BRIDGE:
        problems.append(f"destination {frame.dst.hex(':')}")
    if getattr(ecp, "version", None) != 1 or getattr(ecp, "subtype", None) != 1:
        problems.append(f"version {getattr(ecp, 'version', None)} subtype {getattr(ecp, 'subtype', None)}")
    if seq == 0:
        problems.append("sequence 0")
    if problems:
        raise Fail("ECPDU: " + ", ".join(problems), data)


@both(
    "tx.retransmit",
    "without an ACK the DUT retransmits after the ack timer, R times, then gives up",
    "ecp.md §2, §3.3, §3.5",
    "1 + R transmissions of the same sequence number, ≥ ack timer apart, then no more",
    tx=True,
)
async def tx_retransmit(t: Tester) -> None:
    t.ack_filter = lambda pdu: False
    start = len(t.ecp_in)
    await make_dut_send(t)
    _, seq, _ = await dut_ecpdu(t, start, 5.0)
    op = t.op
    total = op.ack_timeout * (op.r + 1)
    await t.sleep(total * 3 + 0.2)
    copies = [(tt, d) for tt, p, d, _ in t.ecp_in[start:] if p.seq == seq]
    t.ack_filter = lambda pdu: True
    if len(copies) != op.r + 1:
        raise Fail(f"sequence {seq} sent {len(copies)} times, expected 1 + R = {op.r + 1}", copies[-1][1])
    lo, _ = t.bounds(op.ack_timeout)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(copies)]
    short = [g for g in gaps if g < lo]
    if short:
        raise Fail(f"retransmitted after {min(short) * 1000:.2f} ms, the ack timer is {op.ack_timeout * 1000:.2f} ms")
    bodies = {d[14:] for _, d in copies}
    if len(bodies) != 1:
        raise Fail("the retransmissions differ from the first transmission", copies[1][1])


@both(
    "tx.wrong-ack-ignored",
    "an ACK with another sequence number does not stop retransmission",
    "ecp.md §3.4",
    "the DUT retransmits after the wrong ACK",
    tx=True,
)
async def tx_wrong_ack(t: Tester) -> None:
    t.ack_filter = lambda pdu: False
    start = len(t.ecp_in)
    await make_dut_send(t)
    _, seq, _ = await dut_ecpdu(t, start, 5.0)
    t.send_frame(t.ecp_frame(b"", (seq + 7) % 0xFFFF + 1, op=EcpOp.ACK))
    got = await t.until(
        lambda: sum(1 for _, p, _, _ in t.ecp_in[start:] if p.seq == seq) >= 2, 1 + 4 * t.op.ack_timeout
    )
    t.ack_filter = lambda pdu: True
    if not got:
        raise Fail(f"no retransmission of sequence {seq} after an ACK of another number", t.last_in(ETH_P_ECP))


@both(
    "tx.ack-stops",
    "the right ACK stops retransmission",
    "ecp.md §3.3",
    "one transmission when acknowledged at once",
    tx=True,
)
async def tx_ack_stops(t: Tester) -> None:
    start = len(t.ecp_in)
    await make_dut_send(t)
    _, seq, _ = await dut_ecpdu(t, start, 5.0)
    await t.sleep(max(0.2, 5 * t.op.ack_timeout))
    n = sum(1 for _, p, _, _ in t.ecp_in[start:] if p.seq == seq)
    if n != 1:
        raise Fail(f"sequence {seq} sent {n} times although acknowledged at once", t.last_in(ETH_P_ECP))


@both(
    "tx.next-sequence",
    "consecutive ECPDUs carry consecutive sequence numbers",
    "ecp.md §3.2",
    "each new ECPDU's sequence = the previous one's + 1 (0 skipped)",
    tx=True,
)
async def tx_next_sequence(t: Tester) -> None:
    start = len(t.ecp_in)
    await make_dut_send(t)
    await dut_ecpdu(t, start, 5.0)
    await t.sleep(0.01)
    await make_dut_send(t)
    await t.until(lambda: len({p.seq for _, p, _, _ in t.ecp_in[start:]}) >= 2, 5.0)
    seqs: list[int] = []
    for _, p, data, _ in t.ecp_in[start:]:  # new numbers in the order they appeared (retransmissions skipped)
        if p.seq in seqs:
            continue
        if seqs and p.seq != seqs[-1] % 0xFFFF + 1:
            raise Fail(f"sequence {seqs[-1]} then {p.seq}", data)
        seqs.append(p.seq)
    if len(seqs) < 2:
        raise Fail("the DUT sent only one ECPDU for two requests", t.last_in(ETH_P_ECP))


@both(
    "tx.after-give-up",
    "after giving up on an ECPDU the next one takes the next sequence number",
    "ecp.md §3.2, §3.5",
    "next ECPDU's sequence = the abandoned one's + 1",
    tx=True,
)
async def tx_after_give_up(t: Tester) -> None:
    t.ack_filter = lambda pdu: False
    start = len(t.ecp_in)
    await make_dut_send(t)
    _, seq, _ = await dut_ecpdu(t, start, 5.0)
    await t.sleep(t.op.ack_timeout * (t.op.r + 1) + 0.05)
    t.ack_filter = lambda pdu: True
    await make_dut_send(t)
    got = await t.until(lambda: next((p.seq for _, p, _, _ in t.ecp_in[start:] if p.seq != seq), None), 5.0)
    if got is None:
        raise Fail("no new ECPDU from the DUT", t.last_in(ETH_P_ECP))
    if got != seq % 0xFFFF + 1:
        raise Fail(f"abandoned sequence {seq}, next ECPDU has {got}", t.last_in(ETH_P_ECP))


@both(
    "tx.pacing",
    "the DUT waits for each ECPDU's ACK before sending the next one",
    "ecp.md §3.3 (one outstanding ECPDU)",
    "no second sequence number while the first is unacknowledged",
    tx=True,
)
async def tx_pacing(t: Tester) -> None:
    t.ack_filter = lambda pdu: False
    start = len(t.ecp_in)
    await make_dut_send(t)
    _, seq, _ = await dut_ecpdu(t, start, 5.0)
    await make_dut_send(t)
    await t.sleep(t.op.ack_timeout * 2)
    t.ack_filter = lambda pdu: True
    first_times = [tt for tt, p, _, _ in t.ecp_in[start:] if p.seq == seq]
    early = [(tt, p.seq, d) for tt, p, d, _ in t.ecp_in[start:] if p.seq != seq and tt < first_times[-1]]
    if early:
        raise Fail(f"sequence {early[0][1]} sent while {seq} was still outstanding", early[0][2])
