"""Fault scenarios, live: our station and our bridge over a veth pair, one of them crashed
(kill -9), frozen (SIGSTOP), cut off (link down), starved (nftables loss) or fed malformed
frames, and both sides' views checked afterwards: the control API (``status``, ``vsi.list``),
the station's state file and the JSON logs.

Timers are small so that each scenario takes seconds. Formulas (vdp.md §8, lldpad's integer
microseconds, ``evb.lldp.negotiate.Operating``), R = 3 (the default) throughout:

* ECP ack timer = 10 µs × 2^RTE
* station reinitKeepAlive = 10 µs × 2^RKA
* station respWaitDelay = 1.5 × ((2R+1) × 10 × 2^RTE + 10 × 2^RWD) µs
* bridge toutKeepAlive = 1.5 × ((2R+1) × 10 × 2^RTE + 10 × 2^RKA) µs

The station agent requests again a VSI it wants but lost (no answer, unsolicited de-associate)
after ``RETRY_FIRST`` = 1 s, doubling (``evb/station_agent/daemon.py``). These are real
processes on a real clock: waits poll with deadlines, and the timer check has a window.
"""

from __future__ import annotations

import json
import random
import signal
import struct
import time
import uuid as uuidlib
from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from evb.ecp.wire import Ecpdu, EcpOp
from evb.station_agent.daemon import RETRY_FIRST
from evb.vdp.wire import VdpPdu
from interop.lab import BRIDGE_MAC, STATION_MAC, Agent, Capture, Lab, missing_prerequisites, wait_for
from tests.integration.labs import HAVE_TSHARK, open_lab

SKIP_REASON = missing_prerequisites(lldpad=False)
NFT_MISSING = missing_prerequisites(lldpad=False, nft=True)

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(SKIP_REASON is not None, reason=f"live lab: {SKIP_REASON}"),
    pytest.mark.timeout(120),
]

R = 3
MANAGER = "labmgr"
ST_MAC = bytes.fromhex(STATION_MAC.replace(":", ""))
BR_MAC = bytes.fromhex(BRIDGE_MAC.replace(":", ""))
NEAREST_CUSTOMER_BRIDGE = bytes.fromhex("0180c2000000")


def us(exponent: int) -> float:
    """10 µs × 2^exponent, in seconds."""
    return 10 * (1 << exponent) / 1e6


def resp_wait_delay(rte: int, rwd: int) -> float:
    return 1.5 * ((2 * R + 1) * us(rte) + us(rwd))


def toutkeepalive(rte: int, rka: int) -> float:
    return 1.5 * ((2 * R + 1) * us(rte) + us(rka))


# --------------------------------------------------------------------------- VSIs and views


def vsiid(n: int) -> str:
    return f"5a0f1c2e-{n:04x}-4d3c-8e21-0f{n:010x}"


def vsi_args(n: int) -> dict[str, Any]:
    """One VSI for ``vsi.bulk``/``vsi.request``: MAC/VID filter, VID 100 + n."""
    return {
        "uuid": vsiid(n),
        "filters": [f"{100 + n}-02:00:00:01:{n >> 8:02x}:{n & 0xFF:02x}"],
        "manager_id": MANAGER,
        "type_id": 5,
        "type_version": 4,
    }


def uuid_of(row: dict[str, Any], field: str = "vsi") -> str:
    """The VSIID of a ``vsi.list`` row or a log record (``labmgr/<uuid>``)."""
    return str(row[field]).rsplit("/", 1)[-1]


def at_station(st: Agent) -> dict[str, list[dict[str, Any]]]:
    """The station's associated VSIs (established, Associate confirmed): VSIID → granted filters."""
    return {uuid_of(r): r["granted"] for r in st.vsis() if r["state"] == "established" and r["confirmed"] == "assoc"}


def at_bridge(br: Agent) -> dict[str, list[dict[str, Any]]]:
    """The bridge's associated VSIs: VSIID → filters."""
    return {uuid_of(r): r["filters"] for r in br.vsis() if r["mode"] == "assoc"}


def listed(agent: Agent) -> set[str]:
    """Every VSIID the agent's ``vsi.list`` shows, whatever its state."""
    return {uuid_of(r) for r in agent.vsis()}


def wanted(st: Agent) -> dict[str, str]:
    """The station's state file: VSIID → the mode wanted."""
    doc = json.loads(st.state.read_text())
    return {str(uuidlib.UUID(hex=item["vsi"]["vsiid"])): item["mode"] for item in doc["vsis"]}


def gone_for(agent: Agent, reason: str | None = None) -> list[str]:
    """VSIIDs of the agent's ``vdp.vsi_deassociated`` log records (of one reason if given), in order."""
    return [uuid_of(e, "vsiid") for e in agent.events("vdp.vsi_deassociated") if reason in (None, e.get("reason"))]


def log_time(record: dict[str, Any]) -> float:
    """A log record's timestamp (ISO, UTC) in seconds since the epoch."""
    return datetime.fromisoformat(str(record["timestamp"]).replace("Z", "+00:00")).timestamp()


def start_pair(lab: Lab, evb: dict[str, Any]) -> tuple[Agent, Agent]:
    br = lab.start_bridge(evb=evb)
    st = lab.start_station(evb=evb)
    lab.wait_evb(st, br)
    return st, br


def associate(st: Agent, br: Agent, ns: list[int]) -> set[str]:
    """Associate VSIs ``ns`` in one ``vsi.bulk``; both views hold them all. Returns their VSIIDs."""
    res = st.call("vsi.bulk", {"mode": "assoc", "vsis": [vsi_args(n) for n in ns], "wait": True})
    assert res == {"requested": len(ns), "ok": len(ns), "failed": 0, "errors": []}
    ids = {vsiid(n) for n in ns}
    assert set(at_station(st)) == set(at_bridge(br)) == ids
    return ids


def wait_views(st: Agent, br: Agent, ids: set[str], *, timeout: float) -> None:
    """Wait until the station and the bridge both hold exactly ``ids``, associated, with the same filters."""
    seen: list[tuple[object, object]] = []

    def agree() -> bool:
        s, b = at_station(st), at_bridge(br)
        seen.append((sorted(s), sorted(b)))
        return set(s) == set(b) == ids and s == b

    try:
        wait_for(f"both views to hold the {len(ids)} VSIs", agree, timeout=timeout, interval=0.1)
    except Exception:
        s, b = seen[-1]
        raise AssertionError(f"station {s} / bridge {b} != {sorted(ids)}") from None


# =========================================================================== 1. bridge crash


FAST = {"rte": 8, "rwd": 14, "rka": 15}


@pytest.mark.parametrize("restart", ["at-once", "after-station-timeouts"])
def test_bridge_kill9_and_restart(request: pytest.FixtureRequest, restart: str) -> None:
    """kill -9 our bridge holding 20 VSIs and start it again on the same port: every VSI ends up
    associated on both sides, all admitted anew by the new bridge process.

    RTE 8, RWD 14, RKA 15: keep-alives every reinitKeepAlive = 327.68 ms, unanswered ones given up
    after respWaitDelay = 1.5 × (7 × 2.56 + 163.84) ms = 272.64 ms. ``at-once``: the new bridge
    may get keep-alives of VSIs it does not know, which it admits; ``after-station-timeouts``:
    the bridge comes back only after the station gave up every VSI, which it then requests
    again (first back-off RETRY_FIRST = 1 s)."""
    ns = list(range(0x100, 0x114))
    with open_lab(request) as lab:
        st, br = start_pair(lab, FAST)
        ids = associate(st, br, ns)
        br.kill()
        if restart == "after-station-timeouts":
            limit = us(FAST["rka"]) + resp_wait_delay(FAST["rte"], FAST["rwd"]) + 2.0
            wait_for("the station to time out every VSI", lambda: set(gone_for(st, "timeout")) == ids, timeout=limit)
            assert at_station(st) == {}
            first = {uuid_of(e, "vsiid") for e in st.events("station.retry_scheduled") if e["delay"] == RETRY_FIRST}
            assert first == ids
        br.start()
        wait_views(st, br, ids, timeout=20)
        vdp = br.status()["vdp"]  # the new process's counters
        assert vdp["admitted"] == 20 and vdp["rejected"] == 0 and vdp["keepalive_timeouts"] == 0
        assert wanted(st) == dict.fromkeys(ids, "assoc")
        assert st.events("vdp.vsi_rejected") == []
        associated = Counter(uuid_of(e, "vsiid") for e in st.events("vdp.vsi_associated"))
        if restart == "after-station-timeouts":
            assert associated == dict.fromkeys(ids, 2)  # the first time, and again after the restart
        else:
            assert set(associated) == ids


# =========================================================================== 2. station crash

SLOW = {"rte": 8, "rwd": 14, "rka": 20}
#: toutKeepAlive with SLOW = 1.5 × (7 × 2.56 + 10485.76) ms: the bridge holds a silent station's VSIs
SLOW_TOUT = toutkeepalive(8, 20)


def test_station_kill9_restores_and_owed_deassoc_after_bridge_freeze(request: pytest.FixtureRequest) -> None:
    """kill -9 our station holding 20 VSIs and start it on the same state file: it requests all
    of them again and the bridge, which held them (toutKeepAlive 15.75 s), only refreshes them.
    Then a ``deassoc`` while the bridge is frozen (SIGSTOP): unanswered, the port gives it up
    after respWaitDelay (272.64 ms), but the state file still owes it, and once the bridge is
    thawed the de-associate is sent again and answered: the VSI is gone on both sides and from
    the state file; the other 19 stay."""
    ns = list(range(0x200, 0x214))
    with open_lab(request) as lab:
        st, br = start_pair(lab, SLOW)
        ids = associate(st, br, ns)
        assert wanted(st) == dict.fromkeys(ids, "assoc")
        before = br.status()["vdp"]
        st.kill()
        st.start()
        wait_for("the restored VSIs", lambda: set(at_station(st)) == ids, timeout=10)
        assert [e["vsis"] for e in st.events("station.restored")] == [20]
        wait_views(st, br, ids, timeout=5)
        after = br.status()["vdp"]
        assert after["admitted"] == before["admitted"] == 20  # nothing admitted anew: refreshed
        assert after["refreshes"] - before["refreshes"] == 20
        assert after["keepalive_timeouts"] == 0 and gone_for(br) == []

        gone, kept = vsiid(ns[0]), ids - {vsiid(ns[0])}
        br.send_signal(signal.SIGSTOP)
        try:
            answer = st.call("vsi.request", vsi_args(ns[0]) | {"mode": "deassoc", "wait": False})
            assert answer["queued"] == "deassoc"
            wait_for("the unanswered de-associate to time out", lambda: gone in gone_for(st, "timeout"), timeout=5)
            assert wanted(st)[gone] == "deassoc"
            wait_for(
                "the de-associate to be scheduled again",
                lambda: any(uuid_of(e, "vsiid") == gone for e in st.events("station.retry_scheduled")),
                timeout=2,
            )
        finally:
            br.send_signal(signal.SIGCONT)
        wait_for(
            "the de-associate to reach the bridge and leave the state file",
            lambda: gone not in listed(br) and gone not in listed(st) and gone not in wanted(st),
            timeout=15,
        )
        wait_views(st, br, kept, timeout=5)
        assert wanted(st) == dict.fromkeys(kept, "assoc")
        assert gone_for(br) == [gone] and gone_for(br, "deassociated") == [gone]  # released by the request
        assert gone in gone_for(st, "deassociated")
        assert br.status()["vdp"]["keepalive_timeouts"] == 0


@pytest.mark.parametrize("cut", ["bridge-frozen", "link-down"])
def test_owed_deassoc_survives_station_restart(request: pytest.FixtureRequest, cut: str) -> None:
    """A ``deassoc`` issued while the bridge is unreachable (frozen with SIGSTOP, or its end of
    the link down), then kill -9 and restart of the station before the bridge is back: the new
    station reads the owed de-associate from its state file, keeps it queued until EVB is
    negotiated with the returning bridge and delivers it then; the VSI is gone on both sides and
    from the state file, the others associated.

    With the link down both sides lose EVB (the bridge releases every VSI, "peer-lost"); the
    station's de-associate waits for EVB, and the other VSIs are associated again."""
    ns = list(range(0x300, 0x305))
    with open_lab(request) as lab:
        st, br = start_pair(lab, SLOW)
        ids = associate(st, br, ns)
        gone, kept = vsiid(ns[0]), ids - {vsiid(ns[0])}
        frozen = cut == "bridge-frozen"
        try:
            if frozen:
                br.send_signal(signal.SIGSTOP)
            else:
                lab.set_link("bridge", False)
                wait_for(
                    "both agents to see the link down (their watchdogs poll once a second)",
                    lambda: not st.status()["link_up"] and not br.status()["link_up"],
                    timeout=5,
                )
                assert not st.status()["evb"]["negotiated"] and at_bridge(br) == {}
                assert sorted(gone_for(br, "peer-lost")) == sorted(ids)
            st.call("vsi.request", vsi_args(ns[0]) | {"mode": "deassoc", "wait": False})
            assert wanted(st)[gone] == "deassoc"
            if frozen:  # sent and unanswered before the crash
                wait_for("the de-associate to time out", lambda: gone in gone_for(st, "timeout"), timeout=5)
            st.kill()
            st.start()
            assert wanted(st)[gone] == "deassoc"
            # the new process learns its peer from the peer's LLDPDUs: its de-associate waits for EVB
            assert not st.status()["evb"]["negotiated"]
            assert [r["state"] for r in st.vsis() if uuid_of(r) == gone] == ["deassociating"]
        finally:
            if frozen:
                br.send_signal(signal.SIGCONT)
            else:
                lab.set_link("bridge", True)
        wait_for(
            "the de-associate to reach the bridge and leave the state file",
            lambda: gone not in listed(br) and gone not in listed(st) and gone not in wanted(st),
            timeout=15,
        )
        wait_views(st, br, kept, timeout=10)
        assert wanted(st) == dict.fromkeys(kept, "assoc")
        assert gone in gone_for(st, "deassociated")
        if frozen:
            assert gone_for(br) == [gone] and gone_for(br, "deassociated") == [gone]
        else:
            assert br.status()["vdp"]["admitted"] == len(ids) + len(kept)  # once before, once after
        assert br.status()["vdp"]["keepalive_timeouts"] == 0


# =========================================================================== 3. vanished station


KA = {"rte": 8, "rwd": 14, "rka": 16}
#: 1.5 × (7 × 2.56 + 655.36) ms = 1009.92 ms
KA_TOUT = toutkeepalive(KA["rte"], KA["rka"])
KA_REINIT = us(KA["rka"])  # 655.36 ms


def last_answers(cap: Capture) -> dict[str, float]:
    """VSIID → time of the last VDP answer (response bit set) the bridge sent for it."""
    out: dict[str, float] = {}
    for c in cap.frames():
        pdu = c.frame.pdu if c.frame is not None else None
        if not isinstance(pdu, Ecpdu) or pdu.op is not EcpOp.REQUEST or not isinstance(pdu.ulpdu, VdpPdu):
            continue
        if c.frame is not None and c.frame.src == BR_MAC:
            for tlv in pdu.ulpdu.vsis:
                if tlv.status.response:
                    out[str(uuidlib.UUID(bytes=tlv.vsiid))] = c.time
    return out


@pytest.mark.parametrize("how", ["kill", "freeze"])
def test_bridge_releases_vanished_station_after_keepalive_timeout(request: pytest.FixtureRequest, how: str) -> None:
    """The station vanishes (kill -9, or SIGSTOP): the bridge's ``vsi list`` empties toutKeepAlive
    = 1.5 × ((2R+1) × 10 × 2^RTE + 10 × 2^RKA) µs = 1009.92 ms after its last answer to each VSI
    (RTE 8, RKA 16), within [−50 ms, +1 s] on the real clock; each release is logged as
    ``vdp.vsi_deassociated`` with reason keepalive-timeout. A frozen station, thawed, takes the
    bridge's unsolicited de-associates and associates every VSI again."""
    ns = list(range(0x400, 0x414))
    with open_lab(request) as lab:
        cap = lab.capture("bridge") if HAVE_TSHARK else None
        st, br = start_pair(lab, KA)
        ids = associate(st, br, ns)
        time.sleep(KA_REINIT)  # a keep-alive round, so that the last answers are refreshes
        t_cut = time.time()
        if how == "kill":
            st.kill()
        else:
            st.send_signal(signal.SIGSTOP)
        try:
            left = [r["expires_in"] for r in br.vsis()]
            assert len(left) == 20 and all(0 < x <= KA_TOUT + 0.001 for x in left), left  # rounded to 1 ms
            wait_for("the bridge to release every VSI", lambda: br.vsis() == [], timeout=KA_TOUT + 3, interval=0.02)
            t_empty = time.time()
            released = br.events("vdp.vsi_deassociated")
            assert sorted(uuid_of(e, "vsiid") for e in released) == sorted(ids)
            assert {e["reason"] for e in released} == {"keepalive-timeout"}
            assert br.status()["vdp"]["keepalive_timeouts"] == 20
            # the last answer came at most one refresh period (and some loop latency) before the cut
            assert KA_TOUT - KA_REINIT - 0.2 <= t_empty - t_cut <= KA_TOUT + 1.0
            if cap is not None:
                cap.stop()
                answered = last_answers(cap)
                assert set(answered) == ids
                for e in released:
                    last = answered[uuid_of(e, "vsiid")]
                    assert KA_TOUT - 0.05 <= log_time(e) - last <= KA_TOUT + 1.0, (e, last)
                assert KA_TOUT - 0.05 <= t_empty - max(answered.values()) <= KA_TOUT + 1.0
        finally:
            if how == "freeze":
                st.send_signal(signal.SIGCONT)
        if how == "kill":
            assert wanted(st) == dict.fromkeys(ids, "assoc")  # the dead station's persisted view
        else:
            wait_for("the station to hear of it", lambda: set(gone_for(st, "bridge")) == ids, timeout=5)
            wait_views(st, br, ids, timeout=10)


# =========================================================================== 4. frame loss


@pytest.mark.skipif(NFT_MISSING is not None, reason=f"frame loss: {NFT_MISSING}")
def test_200_vsis_associate_under_30_percent_loss(request: pytest.FixtureRequest) -> None:
    """30 % of the frames lost each way (nftables, ``Lab.set_loss``): 200 VSIs associated with
    one ``vsi.bulk`` all end up associated, the station's and the bridge's views agree (same
    VSIs, same filters) also after a keep-alive round under loss, and ECP retransmitted on both
    sides. RTE 10 (ack timer 10.24 ms), RWD 14, RKA 18 (reinitKeepAlive 2.62 s)."""
    evb = {"rte": 10, "rwd": 14, "rka": 18}
    ns = list(range(0x500, 0x500 + 200))
    with open_lab(request) as lab:
        st, br = start_pair(lab, evb)
        lab.set_loss("station", 30)
        lab.set_loss("bridge", 30)
        res = st.call("vsi.bulk", {"mode": "assoc", "vsis": [vsi_args(n) for n in ns], "wait": True})
        assert res["requested"] == 200 and res["errors"] == [] and res["ok"] + res["failed"] == 200
        ids = {vsiid(n) for n in ns}
        wait_views(st, br, ids, timeout=30)  # a VSI whose answer was lost is requested again
        time.sleep(us(evb["rka"]) + 0.5)
        wait_views(st, br, ids, timeout=10)
        assert wanted(st) == dict.fromkeys(ids, "assoc")
        for agent in (st, br):
            assert agent.status()["ecp"]["retransmissions"] > 0, agent.name
        assert lab.lost("station") > 0 and lab.lost("bridge") > 0
        assert st.events("vdp.vsi_rejected") == []
        lab.set_loss("station", 0)
        lab.set_loss("bridge", 0)
        assert lab.lost("station") == lab.lost("bridge") == 0


# =========================================================================== 5. malformed frames


def tlv(kind: int, value: bytes) -> bytes:
    """An LLDP/VDP TLV: 7-bit type, 9-bit length, value."""
    return struct.pack("!H", (kind << 9) | len(value)) + value


def ecp_frame(src: bytes, version: int, seq: int, payload: bytes) -> bytes:
    """An ECP request (operation 0, subtype 1 = VDP) of the given version."""
    word = (version << 12) | (int(EcpOp.REQUEST) << 10) | 1
    return NEAREST_CUSTOMER_BRIDGE + src + b"\x89\x40" + struct.pack("!HH", word, seq) + payload


def assoc_tlv(*, filter_format: int = 2, length: int | None = None) -> bytes:
    """An Associate TLV (type 3) with one MAC/VID entry; ``length`` overrides the header's length."""
    body = (
        struct.pack("!I", 5)  # status 0, type ID 5
        + bytes([4, 5])  # type version 4, VSIID format 5 (UUID)
        + uuidlib.UUID(vsiid(0x5EE)).bytes
        + bytes([filter_format])
        + struct.pack("!H", 1)
        + bytes.fromhex("020000015ee0")
        + struct.pack("!H", 100)
    )
    return struct.pack("!H", (3 << 9) | (len(body) if length is None else length)) + body


#: a random ECP payload (seeded): its first nibble, the version, is 9, so ECP drops it
GARBAGE = random.Random(8021).randbytes(40)


def malformed(src: bytes, seq: int) -> list[tuple[str, bytes, tuple[str, str, int]]]:
    """(name, frame, the (pdu, field, offset) the agent must report) for each malformed frame.

    ``src`` is the sender's MAC (the peer's), ``seq`` a sequence number for the ECP requests
    (far from the peer's own, so that acknowledgements of these do not confirm its requests)."""
    manager = tlv(5, MANAGER.encode().ljust(16, b"\0"))  # octets 18..35 of the frame
    stranger = bytes.fromhex("02000000ee01")
    lldp = NEAREST_CUSTOMER_BRIDGE + src + b"\x88\xcc"
    return [
        ("truncated ECP header", NEAREST_CUSTOMER_BRIDGE + src + b"\x89\x40\x10", ("ecpdu", "header", 14)),
        (
            "VDP TLV length runs past the frame",
            ecp_frame(src, 1, seq, manager + assoc_tlv(length=200)),
            ("vdp", "tlv.length", 36),
        ),
        (
            "unknown filter format 9",
            ecp_frame(src, 1, seq + 1, manager + assoc_tlv(filter_format=9)),
            ("vdp", "assoc.filter_format", 36 + 2 + 22),
        ),
        (
            "garbage after the End TLV",
            ecp_frame(src, 1, seq + 2, manager + b"\0\0" + b"\xde\xad\xbe\xef"),
            ("ecpdu", "padding", 38),
        ),
        (
            "LLDPDU starting with a Port ID TLV",
            lldp + tlv(2, b"\x03" + src) + tlv(1, b"\x04" + src) + tlv(3, b"\x00\x78") + b"\0\0",
            ("lldpdu", "tlv.type", 14),
        ),
        (
            # from a second MSAP, so that the rest of the LLDPDU is no news of the real peer
            "EVB TLV of length 8",
            lldp
            + tlv(1, b"\x04" + stranger)
            + tlv(2, b"\x03" + stranger)
            + tlv(3, b"\x00\x78")
            + tlv(127, bytes.fromhex("0080c20d") + bytes(4))
            + b"\0\0",
            ("lldpdu", "evb.length", 14 + 9 + 9 + 4),
        ),
        ("random octets", NEAREST_CUSTOMER_BRIDGE + src + b"\x89\x40" + GARBAGE, ("ecpdu", "header", 14)),
        ("ECP version 15", ecp_frame(src, 15, seq + 3, manager), ("ecpdu", "header", 14)),
    ]


def test_malformed_frames_counted_logged_and_survived(request: pytest.FixtureRequest) -> None:
    """Eight malformed frames sent from the peer's namespace (``Lab.inject``, an AF_PACKET socket)
    to our station and to our bridge: each agent stays up, its ``frames.dropped`` counter rises
    by exactly 8, it logs one ``port.frame_dropped`` per frame naming the PDU, field and offset,
    the VSI associated before is untouched, and a new VSI associates afterwards."""
    assert GARBAGE[0] >> 4 != 1
    with open_lab(request) as lab:
        st, br = start_pair(lab, {"rte": 8, "rwd": 14, "rka": 18})
        first = associate(st, br, [0x600])
        for target, peer, src in ((st, br, BR_MAC), (br, st, ST_MAC)):
            seq = (peer.status()["ecp"]["next_seq"] + 0x8000) % 0xFFF0 + 1
            frames = malformed(src, seq)
            dropped = target.status()["frames"]["dropped"]
            expected = dropped + len(frames)
            logged = len(target.events("port.frame_dropped"))
            lab.inject(target.role, [f for _, f, _ in frames])

            def counted(agent: Agent = target, n: int = expected) -> bool:
                return bool(agent.status()["frames"]["dropped"] >= n)

            wait_for(f"the {target.role} to drop {len(frames)} frames", counted, timeout=5)
            time.sleep(0.2)
            assert target.status()["frames"]["dropped"] == expected
            assert target.proc is not None
            target.proc.check_alive()
            records = target.events("port.frame_dropped")[logged:]
            assert [(r["pdu"], r["field"], r["offset"]) for r in records] == [want for _, _, want in frames]
            assert all(r["reason"] for r in records)
        for agent in (st, br):
            assert agent.proc is not None
            agent.proc.check_alive()
            assert agent.status()["evb"]["negotiated"] is True
        assert set(at_bridge(br)) == set(at_station(st)) == first
        answer = st.request("assoc", **vsi_args(0x601))
        assert answer["mode"] == "assoc"
        wait_views(st, br, first | {vsiid(0x601)}, timeout=5)
