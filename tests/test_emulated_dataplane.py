"""``EmulatedDataPlane``'s forwarding decisions, without a kernel: fake rings in ``tpacket2_hdr`` layout.

The live behaviour over real AF_PACKET rings and veth is in
tests/integration/test_dataplane_emulated.py; this checks the rules frame by frame: admission by
(source MAC, VID) of associated VSIs only, learning, reflective relay only when granted,
flooding, link-local frames, VLAN tags put back, and the per-port and per-VSI counters.
"""

from __future__ import annotations

import mmap
import struct

import pytest

from evb.aio.ring import HDR, TP_STATUS_USER, TP_STATUS_VLAN_TPID_VALID, TP_STATUS_VLAN_VALID
from evb.vdp.wire import FilterEntry, VdpMode
from evb.vepa_bridge.emulated import EmulatedDataPlane

FS = 2048
A1, A2 = bytes.fromhex("020000000101"), bytes.fromhex("020000000102")
B1 = bytes.fromhex("020000000201")
SPOOF = bytes.fromhex("020000006666")
K_A, K_B = (b"m" * 16, 1, b"\x0a" * 16), (b"m" * 16, 1, b"\x0b" * 16)
BCAST = b"\xff" * 6


class FakeRing:
    """The parts of ``PacketRing`` the forwarder uses: an RX ring in memory, a TX list."""

    def __init__(self, slots: int = 16) -> None:
        self.map = mmap.mmap(-1, slots * FS)  # anonymous: slicing gives bytes, as on the real ring
        self.frame_size = FS
        self.rx_frames = slots
        self._rx_next = 0
        self._put = 0
        self.sent: list[bytes] = []

    def put(self, frame: bytes, vlan: int | None = None, tpid: int = 0x8100) -> None:
        """What the kernel does: the frame without its tag at tp_mac, the tag in the header."""
        off = self._put * FS
        status = TP_STATUS_USER
        tci = 0
        if vlan is not None:
            status |= TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID
            tci = vlan
        HDR.pack_into(self.map, off, status, len(frame), len(frame), 64, 78, 0, 0, tci, tpid if vlan is not None else 0)
        self.map[off + 64 : off + 64 + len(frame)] = frame
        self._put = (self._put + 1) % self.rx_frames

    def queue(self, frame: bytes) -> bool:
        self.sent.append(bytes(frame))
        return True

    def flush(self) -> int:
        return 0

    def statistics(self) -> tuple[int, int]:
        return 0, 0


def eth(dst: bytes, src: bytes, payload: bytes = b"x" * 46) -> bytes:
    return dst + src + struct.pack("!H", 0x88B5) + payload


def tagged(dst: bytes, src: bytes, vid: int, pcp: int = 0) -> bytes:
    return dst + src + struct.pack("!HHH", 0x8100, pcp << 13 | vid, 0x88B5) + b"x" * 42


def with_tag(frame: bytes, tci: int, tpid: int = 0x8100) -> bytes:
    return frame[:12] + struct.pack("!HH", tpid, tci) + frame[12:]


def make(rr: bool = True) -> tuple[EmulatedDataPlane, FakeRing, FakeRing]:
    dp = EmulatedDataPlane(["p1", "p2"])
    r1, r2 = FakeRing(), FakeRing()
    dp._ports["p1"].ring = r1  # type: ignore[assignment]
    dp._ports["p2"].ring = r2  # type: ignore[assignment]
    dp.port_up("p1", reflective_relay=rr)
    dp.port_up("p2", reflective_relay=rr)
    dp.associate("p1", K_A, VdpMode.ASSOC, (FilterEntry(vid=0, mac=A1), FilterEntry(vid=20, mac=A2)))
    dp.associate("p2", K_B, VdpMode.ASSOC, (FilterEntry(vid=1, mac=B1),))
    return dp, r1, r2


def run(dp: EmulatedDataPlane, port: str, ring: FakeRing) -> None:
    dp.forward(dp._ports[port], ring)  # type: ignore[arg-type]


def test_unknown_destination_is_flooded_and_reflected_with_rr() -> None:
    dp, r1, r2 = make()
    r1.put(eth(BCAST, A1))  # untagged: the default VID 1, which VID 0 in the filter means
    run(dp, "p1", r1)
    assert r2.sent == [eth(BCAST, A1)] and r1.sent == [eth(BCAST, A1)]
    assert dp.counters()["p1"] == {"forwarded": 1, "reflected": 1, "dropped": 0, "control": 0}
    assert dp.vsi_counters("p1", K_A) == {"forwarded": 1, "reflected": 1, "dropped": 0}


def test_learnt_destination_goes_to_its_port_only() -> None:
    dp, r1, r2 = make()
    r2.put(eth(BCAST, B1))
    run(dp, "p2", r2)  # B1 learnt behind p2
    r1.sent.clear()
    r2.sent.clear()
    r1.put(eth(B1, A1))
    run(dp, "p1", r1)
    assert r2.sent == [eth(B1, A1)] and r1.sent == []
    r1.put(eth(BCAST, A1))  # A1 learnt behind p1 now
    run(dp, "p1", r1)
    r1.sent.clear()
    r2.sent.clear()
    r2.put(eth(A1, B1))
    run(dp, "p2", r2)
    assert r1.sent == [eth(A1, B1)] and r2.sent == []
    assert dp.vsi_counters("p2", K_B) == {"forwarded": 2, "reflected": 1, "dropped": 0}


def test_hairpin_only_when_reflective_relay_was_granted() -> None:
    for rr in (True, False):
        dp, r1, r2 = make(rr=rr)
        r1.put(eth(BCAST, A2), vlan=20)
        run(dp, "p1", r1)  # A2 learnt behind p1 on VID 20
        r1.sent.clear()
        r2.sent.clear()
        r1.put(eth(A2, A1))
        run(dp, "p1", r1)  # A1 → A2 on the same port, VID 1 ≠ 20: A2 unknown on VID 1: flooded
        r1.sent.clear()
        r2.sent.clear()
        r1.put(eth(A2, A2), vlan=20)  # A2 → itself on VID 20: the learnt port is the ingress port
        run(dp, "p1", r1)
        assert r1.sent == ([with_tag(eth(A2, A2), 20)] if rr else [])
        assert r2.sent == []


def test_vlan_tag_and_tpid_and_pcp_are_put_back() -> None:
    dp, r1, r2 = make()
    frame = tagged(BCAST, A2, 20, pcp=5)
    r1.put(frame[:12] + frame[16:], vlan=5 << 13 | 20)
    run(dp, "p1", r1)
    assert r2.sent == [frame]
    dp.associate("p1", K_A, VdpMode.ASSOC, (FilterEntry(vid=20, mac=A2),))
    r1.put(frame[:12] + frame[16:], vlan=20, tpid=0x88A8)  # an S-tag: the TPID is kept
    run(dp, "p1", r1)
    assert r2.sent[-1] == BCAST + A2 + struct.pack("!HH", 0x88A8, 20) + frame[16:]


def test_priority_tagged_frame_counts_as_the_default_vid() -> None:
    dp, r1, r2 = make()
    frame = BCAST + A1 + struct.pack("!HHH", 0x8100, 3 << 13, 0x88B5) + b"x" * 42
    r1.put(frame[:12] + frame[16:], vlan=3 << 13)
    run(dp, "p1", r1)
    assert r2.sent == [frame]


@pytest.mark.parametrize(
    ("src", "vid"),
    [(SPOOF, None), (A1, 20), (A2, None), (A2, 21), (B1, None)],  # unknown MAC, wrong VID, another port's VSI
)
def test_frames_of_no_associated_vsi_are_dropped_and_counted(src: bytes, vid: int | None) -> None:
    dp, r1, r2 = make()
    for _ in range(3):
        r1.put(eth(BCAST, src)) if vid is None else r1.put(eth(BCAST, src), vlan=vid)
    run(dp, "p1", r1)
    assert r1.sent == r2.sent == []
    assert dp.counters()["p1"]["dropped"] == 3
    assert dp.vsi_counters("p1", K_A) == {"forwarded": 0, "reflected": 0, "dropped": 0}


def test_link_local_frames_are_never_relayed() -> None:
    dp, r1, r2 = make()
    for last in (0x00, 0x03, 0x0E, 0x0F):
        r1.put(eth(bytes.fromhex("0180c20000") + bytes([last]), A1))
    r1.put(eth(bytes.fromhex("0180c2000010"), A1))  # 01-80-C2-00-00-10 is not link-local
    run(dp, "p1", r1)
    assert dp.counters()["p1"]["control"] == 4
    assert len(r2.sent) == 1


def test_pre_associated_vsi_is_held_and_its_drops_counted_then_admitted() -> None:
    dp, r1, r2 = make()
    key = (b"m" * 16, 1, b"\x0c" * 16)
    mac = bytes.fromhex("020000000199")
    dp.associate("p1", key, VdpMode.PREASSOC_RR, (FilterEntry(vid=1, mac=mac),))
    r1.put(eth(BCAST, mac))
    run(dp, "p1", r1)
    assert r2.sent == []
    assert dp.vsi_counters("p1", key) == {"forwarded": 0, "reflected": 0, "dropped": 1}
    dp.associate("p1", key, VdpMode.ASSOC, (FilterEntry(vid=1, mac=mac),))
    r1.put(eth(BCAST, mac))
    run(dp, "p1", r1)
    assert r2.sent == [eth(BCAST, mac)]
    assert dp.vsi_counters("p1", key) == {"forwarded": 1, "reflected": 1, "dropped": 1}  # kept across modes


def test_vid_only_entry_admits_any_source_on_that_vid() -> None:
    dp, r1, r2 = make()
    dp.associate("p1", K_A, VdpMode.ASSOC, (FilterEntry(vid=30),))
    r1.put(eth(BCAST, SPOOF), vlan=30)
    r1.put(eth(BCAST, SPOOF), vlan=31)
    run(dp, "p1", r1)
    assert len(r2.sent) == 1
    assert dp.counters()["p1"]["dropped"] == 1


def test_deassociate_and_port_down_forget_entries_and_learnt_addresses() -> None:
    dp, r1, r2 = make()
    r1.put(eth(BCAST, A1))
    run(dp, "p1", r1)
    assert dp.status()["learnt"] == 1
    dp.deassociate("p1", K_A)
    assert dp.status()["learnt"] == 0 and dp.vsi_counters("p1", K_A) is None
    r1.put(eth(BCAST, A1))
    run(dp, "p1", r1)
    assert dp.counters()["p1"]["dropped"] == 1
    r2.put(eth(BCAST, B1))
    run(dp, "p2", r2)
    dp.port_down("p2")
    assert dp.status()["vsis"] == 0 and dp.status()["learnt"] == 0
    assert dp.status()["ports"]["p2"] == {"evb": False, "hairpin": False, "counters": dp.counters()["p2"]}


def test_ring_is_read_in_order_and_slots_given_back() -> None:
    dp, r1, r2 = make()
    for i in range(40):  # more than the 16 slots: put and forward in rounds, as the kernel would wrap
        r1.put(eth(BCAST, A1, bytes([i]) * 46))
        run(dp, "p1", r1)
    assert [f[14] for f in r2.sent] == list(range(40))
    assert all(r1.map[i * FS] == 0 for i in range(r1.rx_frames))  # every slot is the kernel's again


def test_ageing_moves_entries_to_the_old_half_then_forgets_them() -> None:
    dp, r1, r2 = make()
    r2.put(eth(BCAST, B1))
    run(dp, "p2", r2)
    dp._loop = type("L", (), {"call_later": lambda self, *a: None})()  # type: ignore[assignment]
    dp._age()
    r1.put(eth(B1, A1))
    run(dp, "p1", r1)
    assert r2.sent[-1] == eth(B1, A1) and r1.sent[-1] == eth(BCAST, B1)  # still known (old half): not flooded
    dp._age()
    dp._age()
    r1.sent.clear()
    r1.put(eth(B1, A1))
    run(dp, "p1", r1)
    assert r1.sent == [eth(B1, A1)]  # forgotten: flooded again, hairpin included
