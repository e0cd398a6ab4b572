"""Live interoperability: our agents against lldpad (and against each other) over a veth pair.

Each side is checked in its own words: lldptool's EVB TLVs and ``vdptool -t`` for lldpad, the
control API (``status``, ``vsi.list``) and the JSON log for our agents, and where cheap the
frames themselves (tshark capture decoded with ``evb.frame.decode_frame``). A bridge-role
lldpad refuses client commands ("command not applicable", lldpad-behaviour.md §2.5), so its
view of the VSIs is the frames it sends.

Timers are small where the spec allows (RTE 10-12, RKA 14-15; lldpad-behaviour.md §3.3 keeps
RTE ≤ 23, RWD/RKA ≤ 27), so that keep-alives and lldpad's lingering de-associate happen within
a second or two. Formulas used below (vdp.md §8, lldpad's integer microseconds):

* ECP ack timer = 10 µs × 2^RTE
* station reinitKeepAlive = 10 µs × 2^RKA
* bridge toutKeepAlive = 1.5 × ((2R+1) × 10 × 2^RTE + 10 × 2^RKA) µs
"""

from __future__ import annotations

import signal
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from evb.control import entry_json, parse_filter
from evb.ecp.wire import Ecpdu, EcpOp
from evb.lldp.wire import EvbMode, Lldpdu, RrStat
from evb.vdp.wire import FilterFormat, VdpMode, VdpPdu, VsiManagerIdTlv, VsiTlv
from interop.lab import (
    BRIDGE_MAC,
    STATION_MAC,
    Agent,
    Capture,
    Lab,
    LabError,
    Lldpad,
    wait_for,
)
from tests.integration.labs import HAVE_TSHARK, SKIP_REASON, open_lab

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(SKIP_REASON is not None, reason=f"live lab: {SKIP_REASON}"),
    pytest.mark.timeout(120),
]

MODE_OF = {
    "preassoc": VdpMode.PREASSOC,
    "preassoc-rr": VdpMode.PREASSOC_RR,
    "assoc": VdpMode.ASSOC,
    "deassoc": VdpMode.DEASSOC,
}
ST_MAC = bytes.fromhex(STATION_MAC.replace(":", ""))
BR_MAC = bytes.fromhex(BRIDGE_MAC.replace(":", ""))


def vsiid(n: int) -> str:
    """A VSIID (UUID) per test VSI: ``5a0f1c2e-00nn-4d3c-8e21-0a00000000nn``."""
    return f"5a0f1c2e-{n:04x}-4d3c-8e21-0a{n:010x}"


def mac(n: int) -> str:
    return f"02:00:00:00:{n >> 8:02x}:{n & 0xFF:02x}"


def toutkeepalive(r: int, rte: int, rka: int) -> float:
    """Bridge toutKeepAlive in seconds: 1.5 × ((2R+1)·10·2^RTE + 10·2^RKA) µs."""
    return 1.5 * ((2 * r + 1) * 10 * (1 << rte) + 10 * (1 << rka)) / 1e6


# --------------------------------------------------------------------------- frames


@dataclass(frozen=True)
class Vdp:
    """One ECP request carrying VDP, as captured."""

    time: float
    sender: str  #: "station" or "bridge" (by source MAC)
    seq: int
    pdu: VdpPdu


def ecp_frames(cap: Capture | None, since: float = 0.0) -> list[tuple[float, str, Ecpdu]]:
    """(time, sender, ECPDU) of every captured ECP frame after ``since`` (epoch seconds)."""
    if cap is None:
        return []
    out = []
    for c in cap.frames():
        if c.time < since or c.frame is None or not isinstance(c.frame.pdu, Ecpdu):
            continue
        out.append((c.time, "station" if c.frame.src == ST_MAC else "bridge", c.frame.pdu))
    return out


def vdp_requests(cap: Capture | None, since: float = 0.0) -> list[Vdp]:
    """The ECP requests with a VDP payload (retransmissions included)."""
    return [
        Vdp(t, who, p.seq, p.ulpdu)
        for t, who, p in ecp_frames(cap, since)
        if p.op is EcpOp.REQUEST and isinstance(p.ulpdu, VdpPdu)
    ]


def tlvs_for(pdus: list[Vdp], uuid: str, sender: str, *, response: bool | None = None) -> list[tuple[Vdp, VsiTlv]]:
    """The association TLVs of VSI ``uuid`` sent by ``sender`` (responses or requests only if asked)."""
    raw = uuidlib.UUID(uuid).bytes
    return [
        (v, t)
        for v in pdus
        if v.sender == sender
        for t in v.pdu.vsis
        if t.vsiid == raw and (response is None or t.status.response is response)
    ]


def wait_tlvs(
    cap: Capture | None, uuid: str, sender: str, *, since: float, response: bool | None, count: int = 1
) -> list[tuple[Vdp, VsiTlv]]:
    """Wait until the capture holds ``count`` such TLVs (nothing to wait for without tshark)."""
    if cap is None:
        return []
    got: list[list[tuple[Vdp, VsiTlv]]] = []

    def enough() -> bool:
        found = tlvs_for(vdp_requests(cap, since), uuid, sender, response=response)
        got.append(found)
        return len(found) >= count

    wait_for(f"{count} VDP TLV(s) of {uuid} from the {sender}", enough, timeout=10, interval=0.1)
    return got[-1]


def wait_refreshes(cap: Capture, uuid: str, since: float, count: int) -> list[Vdp]:
    """Wait until the capture holds ``count`` station requests (distinct ECP sequence numbers) of
    VSI ``uuid`` after ``since``; returns all VDP requests since then."""
    pdus: list[list[Vdp]] = []

    def enough() -> bool:
        pdus.append(vdp_requests(cap, since))
        return len({v.seq for v, _ in tlvs_for(pdus[-1], uuid, "station", response=False)}) >= count

    wait_for(f"{count} refreshes of {uuid} in the capture", enough, timeout=5, interval=0.2)
    return pdus[-1]


def assert_sent_evb(cap: Capture | None, sender_mac: bytes, expected: object) -> None:
    """The last LLDPDU of one side in the capture carries ``expected`` (waits for the capture,
    which hands frames over up to about a second late)."""
    if cap is None:
        return
    seen: list[object] = []

    def last_is_expected() -> bool:
        found = [
            c.frame.pdu.evb
            for c in cap.frames()
            if c.frame is not None and isinstance(c.frame.pdu, Lldpdu) and c.frame.src == sender_mac
        ]
        seen.append(found[-1] if found else None)
        return seen[-1] == expected

    try:
        wait_for("the EVB TLV in the capture", last_is_expected, timeout=5, interval=0.2)
    except LabError:
        raise AssertionError(f"last captured EVB TLV {seen[-1]} != {expected}") from None


def granted(rows: list[dict[str, Any]], uuid: str) -> dict[str, Any] | None:
    """The row of VSI ``uuid`` in a ``vsi.list`` answer, if any."""
    return next((r for r in rows if r["vsi"].endswith(uuid)), None)


def row_of(rows: list[dict[str, Any]], uuid: str) -> dict[str, Any]:
    row = granted(rows, uuid)
    assert row is not None, f"no VSI {uuid} in {rows}"
    return row


def expected_entries(filters: list[str]) -> list[dict[str, Any]]:
    return [entry_json(parse_filter(f)[1]) for f in filters]


# --------------------------------------------------------------------------- fixtures


@dataclass
class Rig:
    lab: Lab
    station: Agent | Lldpad
    bridge: Agent | Lldpad
    cap: Capture | None


def _capture(lab: Lab) -> Capture | None:
    return lab.capture("station") if HAVE_TSHARK else None


# Our station ↔ lldpad bridge: different proposals on each side, so that the maxima show.
ST_EVB = {"gid": True, "retries": 3, "rte": 12, "rwd": 15, "rka": 15}
LLDPAD_BR_EVB = {"evbgpid": True, "ecpretries": 4, "ecprte": 10, "vdprwd": 16, "vdprka": 14}
OPER_A = {"r": 4, "rte": 12, "rwd": 16, "rka": 15}


@pytest.fixture(scope="module")
def st_lldpad_br(request: pytest.FixtureRequest) -> Iterator[Rig]:
    with open_lab(request) as lab:
        cap = _capture(lab)
        br = lab.start_lldpad("bridge", **LLDPAD_BR_EVB)
        st = lab.start_station(evb=ST_EVB)
        lab.wait_evb(st, br)
        yield Rig(lab, st, br, cap)


# lldpad station ↔ our bridge: the other way round.
LLDPAD_ST_EVB = {"evbgpid": True, "ecpretries": 3, "ecprte": 12, "vdprwd": 14, "vdprka": 15}
BR_EVB = {"gid": True, "retries": 4, "rte": 10, "rwd": 16, "rka": 14}


@pytest.fixture(scope="module")
def lldpad_st_br(request: pytest.FixtureRequest) -> Iterator[Rig]:
    with open_lab(request) as lab:
        cap = _capture(lab)
        br = lab.start_bridge(evb=BR_EVB)
        st = lab.start_lldpad("station", **LLDPAD_ST_EVB)
        lab.wait_evb(st, br)
        yield Rig(lab, st, br, cap)


@pytest.fixture(scope="module")
def st_br(request: pytest.FixtureRequest) -> Iterator[Rig]:
    """Our station ↔ our bridge."""
    with open_lab(request) as lab:
        br = lab.start_bridge(evb=BR_EVB)
        st = lab.start_station(evb=ST_EVB)
        lab.wait_evb(st, br)
        yield Rig(lab, st, br, None)


def _agent(x: Agent | Lldpad) -> Agent:
    assert isinstance(x, Agent)
    return x


def _lldpad(x: Agent | Lldpad) -> Lldpad:
    assert isinstance(x, Lldpad)
    return x


# =========================================================================== our station ↔ lldpad bridge


class TestStationToLldpadBridge:
    def test_evb_maxima_rr_and_group_ids(self, st_lldpad_br: Rig) -> None:
        st, br, cap = _agent(st_lldpad_br.station), _lldpad(st_lldpad_br.bridge), st_lldpad_br.cap
        # lldpad's own TLV: bridge mode, RR offered and on (RRCTR = our RRREQ AND its RRCAP),
        # BGID; our station octet copied; every value the larger of the two proposals
        local = br.evb_local()
        assert local is not None and local.mode == EvbMode.BRIDGE
        assert (local.bgid, local.rrcap, local.rrctr) == (True, True, True)
        assert (local.sgid, local.rrreq, local.rrstat) == (True, True, RrStat.ENABLED)
        assert {"r": local.r, "rte": local.rte, "rwd": local.rwd, "rka": local.rka} == OPER_A
        # each side received exactly what the other sends
        assert br.evb_peer() == st.evb_local()
        assert st.evb_peer() == local
        # our view
        evb = st.status()["evb"]
        assert evb["negotiated"] is True
        assert {k: evb[k] for k in OPER_A} == OPER_A
        assert evb["reflective_relay"] is True and evb["group_ids"] is True
        # lldpad's VDP module took the same values over (its debug log); its settings read back
        assert br.vdp_values() == OPER_A
        settings = br.evb_settings()
        assert {k: settings[k] for k in ("evbmode", "evbrrcap", "evbgpid", "ecprte", "vdprka")} == {
            "evbmode": "bridge",
            "evbrrcap": "yes",
            "evbgpid": "yes",
            "ecprte": "10",
            "vdprka": "14",
        }
        # and the wire agrees with lldptool
        assert_sent_evb(cap, BR_MAC, local)
        assert_sent_evb(cap, ST_MAC, st.evb_local())

    def test_mode_sequence(self, st_lldpad_br: Rig) -> None:
        """Pre-Assoc → Pre-Assoc-RR → Assoc → De-Assoc (lldpad test 110), each answered 0x40."""
        st, cap = _agent(st_lldpad_br.station), st_lldpad_br.cap
        u, filters = vsiid(0x110), [f"110-{mac(0x110)}"]
        for mode in ("preassoc", "preassoc-rr", "assoc"):
            since = time.time()
            result = st.request(mode, uuid=u, filters=filters)
            assert result["mode"] == mode
            row = granted(st.vsis(), u)
            assert row is not None and (row["state"], row["confirmed"], row["wanted"]) == ("established", mode, mode)
            answers = wait_tlvs(cap, u, "bridge", since=since, response=True)
            if cap is not None:
                tlv = answers[0][1]
                assert (tlv.mode, tlv.status.code, tlv.status.keep, tlv.status.hard) == (MODE_OF[mode], 0, False, False)
        since = time.time()
        assert st.request("deassoc", uuid=u, filters=filters)["mode"] == "deassoc"
        assert granted(st.vsis(), u) is None
        answers = wait_tlvs(cap, u, "bridge", since=since, response=True)
        if cap is not None:
            assert answers[0][1].mode is VdpMode.DEASSOC and answers[0][1].status.code == 0

    @pytest.mark.parametrize(
        ("n", "filters", "fmt"),
        [
            (0x121, ["121"], FilterFormat.VID),
            (0x122, [f"122-{mac(0x122)}", f"0xa07a-{mac(0x1122)}"], FilterFormat.MAC_VID),  # 2nd: PS 1, PCP 2
            (0x123, ["123--1001"], FilterFormat.GROUP_VID),
            (0x124, [f"124-{mac(0x124)}-1002", f"124-{mac(0x1124)}-1003"], FilterFormat.GROUP_MAC_VID),
        ],
        ids=["format1", "format2", "format3", "format4"],
    )
    def test_filter_formats(self, st_lldpad_br: Rig, n: int, filters: list[str], fmt: FilterFormat) -> None:
        """Formats 1-4 (3 and 4 need the group IDs both sides set); lldpad echoes the entries."""
        st, cap = _agent(st_lldpad_br.station), st_lldpad_br.cap
        u = vsiid(n)
        since = time.time()
        result = st.request("assoc", uuid=u, filters=filters)
        assert result["filters"] == expected_entries(filters)
        row = granted(st.vsis(), u)
        assert row is not None and row["granted"] == expected_entries(filters)
        if cap is not None:
            req = wait_tlvs(cap, u, "station", since=since, response=False)[0][1]
            ans = wait_tlvs(cap, u, "bridge", since=since, response=True)[0][1]
            assert req.filter_format is fmt and ans.filter_format is fmt
            assert ans.entries == req.entries and ans.status.code == 0
        st.request("deassoc", uuid=u, filters=filters)

    def test_vid0_wildcard(self, st_lldpad_br: Rig) -> None:
        """VID 0 asks the bridge to choose; lldpad's production policy returns it unchanged."""
        st, cap = _agent(st_lldpad_br.station), st_lldpad_br.cap
        u, filters = vsiid(0x130), [f"0-{mac(0x130)}"]
        since = time.time()
        result = st.request("assoc", uuid=u, filters=filters)
        assert result["filters"] == [{"vid": 0, "pcp": 0, "ps": False, "mac": mac(0x130)}]
        if cap is not None:
            ans = wait_tlvs(cap, u, "bridge", since=since, response=True)[0][1]
            assert [e.vid for e in ans.entries] == [0]
        st.request("deassoc", uuid=u, filters=filters)

    def test_keepalive(self, st_lldpad_br: Rig) -> None:
        """RKA 15: a refresh every 10 µs × 2^15 = 0.328 s; over ≥ 3 periods none is lost."""
        st, cap = _agent(st_lldpad_br.station), st_lldpad_br.cap
        u, filters = vsiid(0x140), [f"140-{mac(0x140)}"]
        st.request("assoc", uuid=u, filters=filters)
        since = time.time()
        before = st.status()["vdp"]["keepalives_sent"]
        period = 10 * 2**15 / 1e6
        time.sleep(4.5 * period)
        row = granted(st.vsis(), u)
        assert row is not None and (row["state"], row["confirmed"]) in {
            ("established", "assoc"),
            ("keepalive", "assoc"),
        }
        assert st.status()["vdp"]["keepalives_sent"] - before >= 3
        gone = [e for e in st.events("vdp.vsi_deassociated") if e.get("vsiid", "").endswith(u)]
        assert gone == []
        if cap is not None:
            pdus = wait_refreshes(cap, u, since, 3)
            refreshes = tlvs_for(pdus, u, "station", response=False)
            answers = tlvs_for(pdus, u, "bridge", response=True)
            assert all(t.mode is VdpMode.ASSOC for _, t in refreshes)  # a refresh repeats the request
            assert len(answers) >= len({v.seq for v, _ in refreshes}) - 1  # the last may be on its way
            assert all(t.status.code == 0 for _, t in answers)
        st.request("deassoc", uuid=u, filters=filters)

    def test_lingering_deassociate_acked_and_ignored(self, st_lldpad_br: Rig) -> None:
        """lldpad answers our De-Assoc but keeps the VSI until toutKeepAlive, then sends its own
        De-Associate (status 0x00; lldpad-behaviour.md §4.4): ECP-acknowledged, otherwise ignored."""
        st, cap = _agent(st_lldpad_br.station), st_lldpad_br.cap
        u, filters = vsiid(0x150), [f"150-{mac(0x150)}"]
        st.request("assoc", uuid=u, filters=filters)
        unknown_before = st.status()["vdp"]["unknown_answers"]
        since = time.time()
        st.request("deassoc", uuid=u, filters=filters)
        linger = toutkeepalive(OPER_A["r"], OPER_A["rte"], OPER_A["rka"])  # 1.04448 s
        if cap is not None:
            unsolicited = wait_tlvs(cap, u, "bridge", since=since, response=False)
            vdp, tlv = unsolicited[0]
            assert tlv.mode is VdpMode.DEASSOC and tlv.status.octet == 0
            assert vdp.time - since == pytest.approx(linger, abs=0.5)
            acks = [p for t, who, p in ecp_frames(cap, since) if who == "station" and p.op is EcpOp.ACK]
            assert vdp.seq in {p.seq for p in acks}
        else:
            time.sleep(linger + 0.5)
        wait_for(
            "the unsolicited de-associate counted",
            lambda: st.status()["vdp"]["unknown_answers"] > unknown_before,
            timeout=5,
        )
        assert granted(st.vsis(), u) is None
        reasons = [e.get("reason") for e in st.events("vdp.vsi_deassociated") if e.get("vsiid", "").endswith(u)]
        assert reasons == ["deassociated"]


def test_station_to_lldpad_bridge_rr_denied(request: pytest.FixtureRequest) -> None:
    """lldpad bridge with evbrrcap=no: RRCTR 0, our RRSTAT 0, VDP still works (lldpad test 102)."""
    with open_lab(request) as lab:
        br = lab.start_lldpad("bridge", evbrrcap=False, ecprte=10)
        st = lab.start_station(evb={"rte": 10})
        lab.wait_evb(st, br)
        local = br.evb_local()
        assert local is not None and (local.rrcap, local.rrctr) == (False, False)
        peer = br.evb_peer()
        assert peer is not None and (peer.rrreq, peer.rrstat) == (True, RrStat.NOT_ENABLED)
        evb = st.status()["evb"]
        assert evb["negotiated"] is True and evb["reflective_relay"] is False
        assert st.request("assoc", uuid=vsiid(0x160), filters=[f"160-{mac(0x160)}"])["mode"] == "assoc"


def test_station_survives_lldpad_bridge_restart(request: pytest.FixtureRequest) -> None:
    """kill -9 the lldpad bridge and start it again: its ECP restarts at sequence 1 and it knows
    no VSI. Our station's refreshes go unanswered while it is away, the VSI times out
    (respWaitDelay 1.5 × (7 × 10.24 + 163.84) ms = 353 ms with R 3, RTE 10, RWD 14) and the agent
    associates it again once the new instance answers; new requests work."""
    with open_lab(request) as lab:
        cap = _capture(lab)
        br = lab.start_lldpad("bridge", ecprte=10, vdprwd=14, vdprka=15)
        st = lab.start_station(evb={"rte": 10, "rwd": 14, "rka": 15})
        lab.wait_evb(st, br)
        u = vsiid(0x170)
        st.request("assoc", uuid=u, filters=[f"170-{mac(0x170)}"])
        time.sleep(0.8)  # two refreshes: lldpad's sequence is past 1
        br.kill()
        killed = time.time()
        br.restart()
        br.wait_evb()

        def reestablished() -> bool:
            row = granted(st.vsis(), u)
            return row is not None and row["state"] == "established"

        wait_for("the VSI established again", reestablished, timeout=15)
        answers = wait_tlvs(cap, u, "bridge", since=killed, response=True)
        if cap is not None:
            first = next(p for t, who, p in ecp_frames(cap, killed) if who == "bridge" and p.op is EcpOp.REQUEST)
            assert first.seq == 1
            assert answers[0][1].status.code == 0
        mine = [e for e in st.log_records() if e.get("vsiid", "").endswith(u)]
        ended = [e["reason"] for e in mine if e["event"] == "vdp.vsi_deassociated"]
        assert ended and set(ended) <= {"timeout", "bridge"}  # no answer, or lldpad's VDP not ready yet
        assert sum(e["event"] == "vdp.vsi_associated" for e in mine) == len(ended) + 1
        u2 = vsiid(0x171)
        assert st.request("assoc", uuid=u2, filters=[f"171-{mac(0x171)}"])["mode"] == "assoc"
        assert st.status()["evb"]["negotiated"] is True


# =========================================================================== packing toward lldpad


PACK_CONFIGS = {
    "tuned": {"max_per_pdu": 100, "min_gap_ms": 3.0},  # large limit: "as many as fit" all the same
    "default": {},
}


@pytest.fixture(scope="module")
def packing_lab(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """An lldpad bridge with default timers; our station is (re)started per configuration."""
    with open_lab(request) as lab:
        cap = _capture(lab)
        br = lab.start_lldpad("bridge")
        yield {"lab": lab, "bridge": br, "cap": cap, "station": None, "config": None}


@pytest.mark.parametrize(
    ("config", "n"), [("tuned", 10), ("tuned", 40), ("default", 10), ("default", 40)], ids=lambda x: str(x)
)
def test_packed_associates_to_lldpad_bridge(
    packing_lab: dict[str, Any], config: str, n: int, record_property: Callable[[str, object], None]
) -> None:
    """ONE ECPDU with a Manager ID TLV and N Associate TLVs (vsi.bulk): lldpad answers every VSI
    (each in its own ECPDU, ~2.6 ms apart, lldpad-behaviour.md §4.4) and all are associated."""
    lab: Lab = packing_lab["lab"]
    br: Lldpad = packing_lab["bridge"]
    cap: Capture | None = packing_lab["cap"]
    if packing_lab["config"] != config:
        if packing_lab["station"] is not None:
            packing_lab["station"].stop()
        packing_lab["station"] = lab.start_station(vdp=PACK_CONFIGS[config], name=f"station-{config}")
        packing_lab["config"] = config
        lab.wait_evb(packing_lab["station"], br)
    st: Agent = packing_lab["station"]
    base = {"tuned": 0x1000, "default": 0x2000}[config] + n * 0x100
    vsis = [
        {
            "uuid": vsiid(base + i),
            "type_id": 5,
            "type_version": 4,
            "manager_id": "labmgr",
            "filters": [f"{100 + i}-{mac(base + i)}"],
        }
        for i in range(n)
    ]
    since = time.time()
    t0 = time.monotonic()
    result = st.call("vsi.bulk", {"mode": "assoc", "vsis": vsis, "wait": True})
    elapsed = time.monotonic() - t0
    assert result == {"requested": n, "ok": n, "failed": 0, "errors": []}
    rows = {r["uuid"]: r for r in st.vsis()}
    assert all(rows[v["uuid"]]["confirmed"] == "assoc" for v in vsis)
    record_property("bulk_seconds", round(elapsed, 4))
    if cap is None:
        return
    wanted = {uuidlib.UUID(str(v["uuid"])).bytes for v in vsis}

    def answered(pdus: list[Vdp]) -> set[bytes]:
        return {t.vsiid for v in pdus if v.sender == "bridge" for t in v.pdu.vsis if t.status.response}

    wait_for("lldpad's answers in the capture", lambda: wanted <= answered(vdp_requests(cap, since)), timeout=10)
    pdus = vdp_requests(cap, since)
    requests = [v for v in pdus if v.sender == "station" and {t.vsiid for t in v.pdu.vsis} & wanted]
    assert len({v.seq for v in requests}) == 1, "all N associates in one ECPDU"
    req = requests[0]
    assert isinstance(req.pdu.tlvs[0], VsiManagerIdTlv)
    assert [t.mode for t in req.pdu.vsis] == [VdpMode.ASSOC] * n and len(req.pdu.tlvs) == n + 1
    answers = [(v, t) for v in pdus if v.sender == "bridge" for t in v.pdu.vsis if t.vsiid in wanted]
    assert {t.vsiid for _, t in answers} == wanted
    assert all(t.status.response and t.status.code == 0 and len(v.pdu.vsis) == 1 for v, t in answers)
    span = max(v.time for v, _ in answers) - req.time
    rate = n / span
    record_property("answers_span_s", round(span, 4))
    record_property("answers_per_s", round(rate))
    print(
        f"\npacking {config} N={n}: 1 ECPDU, {n} answers in {span * 1000:.1f} ms ({rate:.0f}/s), bulk {elapsed:.3f} s"
    )
    # leave with one packed de-associate as well
    gone = st.call("vsi.bulk", {"mode": "deassoc", "vsis": vsis, "wait": True})
    assert gone["ok"] == n


# =========================================================================== lldpad station ↔ our bridge

OPER_B = {"r": 4, "rte": 12, "rwd": 16, "rka": 15}


class TestLldpadStationToBridge:
    def test_evb_maxima_rr_and_group_ids(self, lldpad_st_br: Rig) -> None:
        st, br, cap = _lldpad(lldpad_st_br.station), _agent(lldpad_st_br.bridge), lldpad_st_br.cap
        local = st.evb_local()
        assert local is not None and local.mode == EvbMode.STATION
        assert (local.sgid, local.rrreq, local.rrstat) == (True, True, RrStat.ENABLED)
        assert (local.bgid, local.rrcap, local.rrctr) == (True, True, True)
        assert {"r": local.r, "rte": local.rte, "rwd": local.rwd, "rka": local.rka} == OPER_B
        assert st.evb_peer() == br.evb_local()
        assert br.evb_peer() == local
        evb = br.status()["evb"]
        assert evb["negotiated"] is True and {k: evb[k] for k in OPER_B} == OPER_B
        assert evb["reflective_relay"] is True and evb["group_ids"] is True
        assert st.vdp_values() == OPER_B
        assert_sent_evb(cap, ST_MAC, local)
        assert_sent_evb(cap, BR_MAC, br.evb_local())

    def test_mode_sequence(self, lldpad_st_br: Rig) -> None:
        """vdptool Pre-Assoc → Pre-Assoc-RR → Assoc → De-Assoc: both sides agree at each step."""
        st, br, cap = _lldpad(lldpad_st_br.station), _agent(lldpad_st_br.bridge), lldpad_st_br.cap
        u, filters = vsiid(0x210), [f"210-{mac(0x210)}"]
        for mode in ("preassoc", "preassoc-rr", "assoc"):
            since = time.time()
            res = st.vdp(mode, uuid=u, filters=filters)
            assert res.ok and "Response from VDP" in res.output, res.output
            listed = st.vsis(mode, uuid=u)
            assert [(r["mode"], r["filter"]) for r in listed] == [(mode, filters)]
            row = granted(br.vsis(), u)
            assert row is not None and row["mode"] == mode and row["filters"] == expected_entries(filters)
            answers = wait_tlvs(cap, u, "bridge", since=since, response=True)
            if cap is not None:
                assert answers[0][1].mode is MODE_OF[mode] and answers[0][1].status.octet == 0x40
        res = st.vdp("deassoc", uuid=u, filters=filters)
        assert res.ok and "Response from VDP" in res.output, res.output
        assert st.vsis(uuid=u) == []
        assert granted(br.vsis(), u) is None

    @pytest.mark.parametrize(
        ("n", "filters", "listed"),
        [
            (0x221, ["221"], ["221"]),
            (0x222, [f"222-{mac(0x222)}", f"222-{mac(0x1222)}"], None),
            (0x223, ["223--2001"], ["223-2001"]),  # vdptool lists format 3 as VID-GROUP
            (0x224, [f"224-{mac(0x224)}-2002", f"224-{mac(0x1224)}-2003"], None),
            (0x225, [f"0-{mac(0x225)}"], None),  # VID 0: our bridge (accept-all) leaves it 0
        ],
        ids=["format1", "format2", "format3", "format4", "vid0"],
    )
    def test_filter_formats(self, lldpad_st_br: Rig, n: int, filters: list[str], listed: list[str] | None) -> None:
        st, br = _lldpad(lldpad_st_br.station), _agent(lldpad_st_br.bridge)
        u = vsiid(n)
        res = st.vdp("assoc", uuid=u, filters=filters)
        assert res.ok and "Response from VDP" in res.output, res.output
        assert [r["filter"] for r in st.vsis("assoc", uuid=u)] == [listed or filters]
        row = granted(br.vsis(), u)
        assert row is not None and row["mode"] == "assoc" and row["filters"] == expected_entries(filters)
        assert st.vdp("deassoc", uuid=u, filters=filters).ok

    def test_keepalive(self, lldpad_st_br: Rig) -> None:
        """lldpad refreshes every 10 µs × 2^15 = 0.328 s; our bridge (toutKeepAlive 1.5 ×
        (9 × 40.96 + 327.68) ms = 1.044 s) keeps the VSI over ≥ 3 periods."""
        st, br, cap = _lldpad(lldpad_st_br.station), _agent(lldpad_st_br.bridge), lldpad_st_br.cap
        u, filters = vsiid(0x230), [f"230-{mac(0x230)}"]
        assert st.vdp("assoc", uuid=u, filters=filters).ok
        since = time.time()
        before = br.status()["vdp"]
        expiries = []
        for _ in range(8):
            time.sleep(0.2)
            row = granted(br.vsis(), u)
            assert row is not None and row["mode"] == "assoc"
            expiries.append(row["expires_in"])
        after = br.status()["vdp"]
        assert after["keepalive_timeouts"] == before["keepalive_timeouts"]
        assert after["refreshes"] - before["refreshes"] >= 3
        tout = toutkeepalive(OPER_B["r"], OPER_B["rte"], OPER_B["rka"])
        assert all(0 < e <= tout for e in expiries)
        assert [r["mode"] for r in st.vsis(uuid=u)] == ["assoc"]
        if cap is not None:
            pdus = wait_refreshes(cap, u, since, 3)
            assert all(t.mode is VdpMode.ASSOC for _, t in tlvs_for(pdus, u, "station", response=False))
        assert st.vdp("deassoc", uuid=u, filters=filters).ok


def test_lldpad_station_to_bridge_rr_denied(request: pytest.FixtureRequest) -> None:
    """Our bridge with rrcap = false: lldpad's RRSTAT 0, our RR off, VDP still works."""
    with open_lab(request) as lab:
        br = lab.start_bridge(evb={"rrcap": False, "rte": 10})
        st = lab.start_lldpad("station", ecprte=10)
        lab.wait_evb(st, br)
        local = st.evb_local()
        assert local is not None and (local.rrreq, local.rrstat) == (True, RrStat.NOT_ENABLED)
        peer = st.evb_peer()
        assert peer is not None and (peer.rrcap, peer.rrctr) == (False, False)
        assert br.status()["evb"]["reflective_relay"] is False
        u = vsiid(0x240)
        assert st.vdp("assoc", uuid=u, filters=[f"240-{mac(0x240)}"]).ok
        assert granted(br.vsis(), u) is not None


def test_bridge_answers_restarted_lldpad_station(request: pytest.FixtureRequest) -> None:
    """kill -9 the lldpad station right after one Associate (its ECP sequence 1), start it again
    and repeat the same Associate: it comes with sequence 1 and the same content as the last
    request of the old instance (the ecp.md §4.3 trap). Our bridge must answer it."""
    with open_lab(request) as lab:
        cap = _capture(lab)
        br = lab.start_bridge(evb={"rte": 10})
        st = lab.start_lldpad("station", ecprte=10)
        lab.wait_evb(st, br)
        u, filters = vsiid(0x250), [f"250-{mac(0x250)}"]
        assert st.vdp("assoc", uuid=u, filters=filters).ok
        st.kill()
        killed = time.time()
        st.restart()
        st.wait_evb()
        assert st.vsis() == []  # a new lldpad knows no VSI
        res = st.vdp("assoc", uuid=u, filters=filters)
        assert res.ok and "Response from VDP" in res.output, res.output
        assert [r["mode"] for r in st.vsis(uuid=u)] == ["assoc"]
        assert row_of(br.vsis(), u)["mode"] == "assoc"
        assert br.status()["ecp"]["duplicates"] == 0
        if cap is not None:
            answer = wait_tlvs(cap, u, "bridge", since=killed, response=True)[0][0]
            (req,) = [v for v in vdp_requests(cap, killed) if v.sender == "station" and v.time <= answer.time]
            assert req.seq == 1 and tlvs_for([req], u, "station")


# =========================================================================== our station ↔ our bridge


class TestStationToBridge:
    def test_evb_maxima(self, st_br: Rig) -> None:
        st, br = _agent(st_br.station), _agent(st_br.bridge)
        for agent in (st, br):
            evb = agent.status()["evb"]
            assert evb["negotiated"] is True and {k: evb[k] for k in OPER_A} == OPER_A
            assert evb["reflective_relay"] is True and evb["group_ids"] is True
        assert st.evb_peer() == br.evb_local()
        assert br.evb_peer() == st.evb_local()

    def test_mode_sequence(self, st_br: Rig) -> None:
        st, br = _agent(st_br.station), _agent(st_br.bridge)
        u, filters = vsiid(0x310), [f"310-{mac(0x310)}"]
        for mode in ("preassoc", "preassoc-rr", "assoc"):
            assert st.request(mode, uuid=u, filters=filters)["mode"] == mode
            assert row_of(st.vsis(), u)["confirmed"] == mode
            assert row_of(br.vsis(), u)["mode"] == mode
        assert st.request("deassoc", uuid=u, filters=filters)["mode"] == "deassoc"
        assert granted(st.vsis(), u) is None
        assert granted(br.vsis(), u) is None  # our bridge forgets at once (unlike lldpad)

    @pytest.mark.parametrize(
        ("n", "filters"),
        [
            (0x321, ["321"]),
            (0x322, [f"322-{mac(0x322)}", f"0xa142-{mac(0x1322)}"]),
            (0x323, ["323--3001"]),
            (0x324, [f"324-{mac(0x324)}-3002"]),
            (0x325, [f"0-{mac(0x325)}"]),
        ],
        ids=["format1", "format2", "format3", "format4", "vid0"],
    )
    def test_filter_formats(self, st_br: Rig, n: int, filters: list[str]) -> None:
        st, br = _agent(st_br.station), _agent(st_br.bridge)
        u = vsiid(n)
        assert st.request("assoc", uuid=u, filters=filters)["filters"] == expected_entries(filters)
        assert row_of(br.vsis(), u)["filters"] == expected_entries(filters)
        st.request("deassoc", uuid=u, filters=filters)

    def test_keepalive(self, st_br: Rig) -> None:
        st, br = _agent(st_br.station), _agent(st_br.bridge)
        u, filters = vsiid(0x330), [f"330-{mac(0x330)}"]
        st.request("assoc", uuid=u, filters=filters)
        before_st, before_br = st.status()["vdp"], br.status()["vdp"]
        time.sleep(4.5 * 10 * 2**15 / 1e6)  # ≥ 4 refresh periods of 0.328 s
        after_st, after_br = st.status()["vdp"], br.status()["vdp"]
        assert after_st["keepalives_sent"] - before_st["keepalives_sent"] >= 3
        assert after_br["refreshes"] - before_br["refreshes"] >= 3
        assert after_br["keepalive_timeouts"] == before_br["keepalive_timeouts"]
        assert row_of(br.vsis(), u)["mode"] == "assoc"
        assert [e for e in st.events("vdp.vsi_deassociated") if e.get("vsiid", "").endswith(u)] == []
        st.request("deassoc", uuid=u, filters=filters)

    def test_station_survives_bridge_freeze(self, st_br: Rig) -> None:
        """SIGSTOP/SIGCONT the bridge for less than respWaitDelay: the refresh is answered late."""
        st, br = _agent(st_br.station), _agent(st_br.bridge)
        u, filters = vsiid(0x340), [f"340-{mac(0x340)}"]
        st.request("assoc", uuid=u, filters=filters)
        br.send_signal(signal.SIGSTOP)
        try:
            time.sleep(0.6)  # two refresh periods; respWaitDelay 1.5 × (9 × 40.96 + 655.36) ms = 1.536 s
        finally:
            br.send_signal(signal.SIGCONT)
        wait_for("the refresh answered", lambda: row_of(st.vsis(), u)["state"] == "established", timeout=5)
        assert [e for e in st.events("vdp.vsi_deassociated") if e.get("vsiid", "").endswith(u)] == []
        assert st.status()["ecp"]["retransmissions"] > 0
        st.request("deassoc", uuid=u, filters=filters)


def test_lab_names_are_unique_and_cleaned_up(request: pytest.FixtureRequest) -> None:
    """Two labs at once get different names; closing deletes their namespaces."""
    from interop.lab import list_namespaces

    with open_lab(request) as a, open_lab(request) as b:
        assert a.prefix != b.prefix
        names = set(list_namespaces())
        assert {a.station.ns, a.bridge.ns, b.station.ns, b.bridge.ns} <= names
    assert not {a.station.ns, a.bridge.ns, b.station.ns, b.bridge.ns} & set(list_namespaces())
