"""The tshark cross-check (interop/tshark_check.py) on the reference captures.

tshark runs once per capture (module fixture); the tests then read the reports. Frame numbers and the
filters given to lldpad are those of the captures README.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.l2 import Ether
from scapy.utils import RawPcapReader, wrpcap

from evb.ecp.wire import DraftEcpdu, Ecpdu, EcpOp
from evb.ethernet import ETH_P_ECP, ETH_P_LLDP, NEAREST_BRIDGE, NEAREST_CUSTOMER_BRIDGE, NEAREST_NON_TPMR_BRIDGE
from evb.frame import build_frame, decode_frame, frame_kind
from evb.lldp.wire import CdcpTlv, ChassisId, DraftEvbTlv, Lldpdu, PortId
from evb.vdp.wire import VdpPdu, VsiTlv
from interop import tshark_check as tc

pytestmark = [
    pytest.mark.tshark,
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed (Debian package `tshark`)"),
]

_LOCAL = Path(__file__).resolve().parents[1] / "data" / "pcap"
CAPTURE_DIR = _LOCAL if _LOCAL.is_dir() else Path("/work/shared/captures")
CAPTURES = sorted(CAPTURE_DIR.glob("*.pcap"))
ids = [p.name for p in CAPTURES]

ECP_HEADER = {"ecp.ver", "ecp.op", "ecp.subtype", "ecp.seqno"}
LLDP_MANDATORY = {"lldp.chassis.subtype", "lldp.chassis.id", "lldp.port.subtype", "lldp.port.id", "lldp.time_to_live"}

#: The filters given to lldpad (`lab.sh vsi ... filter=`) where the captures README spells them out, for the
#: association TLVs tshark decodes (not Pre-Associate, not formats 3/4).
REQUESTED = {
    "vdp-assoc-deassoc.pcap": {"filter=10-02:00:00:00:01:01"},
    "vdp-preassoc.pcap": {"filter=10-02:00:00:00:01:01"},
    "vdp-assoc-3vsi.pcap": {f"filter=10-02:00:00:00:01:0{i}" for i in (1, 2, 3)},
    "vdp-filter-fmt1-vid.pcap": {"filter=0", "filter=100"},
    "vdp-filter-fmt2-multi.pcap": {
        "filter=10-02:00:00:00:01:01 filter=20-02:00:00:00:01:02 filter=0-02:00:00:00:01:03"
    },
}


@pytest.fixture(scope="module")
def packets() -> dict[str, dict[int, dict[str, Any]]]:
    if not CAPTURES:
        pytest.skip(f"no captures in {CAPTURE_DIR}")
    return {p.name: tc.run_tshark(str(p)) for p in CAPTURES}


@pytest.fixture(scope="module")
def reports(packets: dict[str, dict[int, dict[str, Any]]]) -> dict[str, tc.FileReport]:
    return {p.name: tc.compare_file(str(p), packets[p.name]) for p in CAPTURES}


def frames(path: Path) -> list[bytes]:
    with RawPcapReader(str(path)) as reader:
        return [bytes(pkt) for pkt, _ in reader]


def agreed_in(report: tc.FileReport, frame: int) -> set[str]:
    return {name for n, name in report.agreed if n == frame}


@pytest.mark.parametrize("path", CAPTURES, ids=ids)
def test_no_real_mismatch(path: Path, reports: dict[str, tc.FileReport]) -> None:
    report = reports[path.name]
    assert report.frames == len(frames(path)) > 0  # every frame is LLDP or ECP, and every one was compared
    assert report.mismatches == []


@pytest.mark.parametrize("path", CAPTURES, ids=ids)
def test_ecp_header_and_lldp_mandatory_tlvs_agree(path: Path, reports: dict[str, tc.FileReport]) -> None:
    report = reports[path.name]
    for n, data in enumerate(frames(path), 1):
        kind = frame_kind(data)
        want = ECP_HEADER if kind == ETH_P_ECP else LLDP_MANDATORY if kind == ETH_P_LLDP else set()
        assert want and want <= agreed_in(report, n), f"frame {n}"
        assert {"eth.dst", "eth.src", "eth.type"} <= agreed_in(report, n)


@pytest.mark.parametrize("path", CAPTURES, ids=ids)
def test_filter_defect_found_on_every_format_1_2_association_tlv(path: Path, reports: dict[str, tc.FileReport]) -> None:
    """Where ours has a ratified (De-)Associate TLV of format 1 or 2, tshark 4.0 must show the shifted entry."""
    report = reports[path.name]
    defects = {(f.frame, f.field) for f in report.known_defects if f.kind == tc.FILTER_SHIFT}
    expected = set()
    for n, data in enumerate(frames(path), 1):
        pdu = decode_frame(data).pdu
        if isinstance(pdu, Ecpdu) and isinstance(pdu.ulpdu, VdpPdu):
            for i, tlv in enumerate(pdu.ulpdu.tlvs):
                if isinstance(tlv, VsiTlv) and tlv.mode in (3, 4) and tlv.filter_format in (1, 2):
                    expected.add((n, f"vdp.tlv[{i}].filter"))
    assert expected <= defects
    assert not any(name.endswith(".filter") for _, name in report.agreed)


def test_filter_defect_vdp_assoc_deassoc_frame_1(reports: dict[str, tc.FileReport]) -> None:
    report = reports["vdp-assoc-deassoc.pcap"]
    (finding,) = [f for f in report.known_defects if f.frame == 1]
    assert finding.kind == tc.FILTER_SHIFT
    assert finding.field == "vdp.tlv[1].filter"
    assert finding.ours == "filter=10-02:00:00:00:01:01"  # MAC 02:00:00:00:01:01, VID 10
    assert finding.tshark == "MAC 00:01:02:00:00:00, VID 0x101 (PS 0, PCP 1)"
    assert "frame offset 61" in finding.evidence  # the count 00 01; our MAC starts at 63
    assert "33 = 25 + 1 x 8 only with the count" in finding.evidence
    assert "no whole k" in finding.evidence
    assert {"vdp.tlv[1].vsiid", "vdp.tlv[1].filterformat", "vdp.tlv[0].manager_id"} <= agreed_in(report, 1)


@pytest.mark.parametrize("name", sorted(REQUESTED))
def test_our_filter_values_are_the_requests_given_to_lldpad(name: str, reports: dict[str, tc.FileReport]) -> None:
    found = {f.ours for f in reports[name].known_defects if f.kind == tc.FILTER_SHIFT}
    assert found == REQUESTED[name]


def test_malformed_tlv_is_the_same_defect(reports: dict[str, tc.FileReport]) -> None:
    """Errors frame 29: count 2 in a TLV of length 33. Ours rejects it, tshark cannot see the count."""
    (finding,) = [f for f in reports["vdp-bridge-errors-injected.pcap"].known_defects if f.frame == 29]
    assert finding.kind == tc.FILTER_SHIFT
    assert finding.ours.startswith("invalid TLV: 2 entries of format 2 need TLV length 41")
    assert finding.tshark.startswith("MAC 00:02:02:00:00:00")
    assert "malformed" in finding.evidence


def test_lldp_trailer_and_undecoded_parts(reports: dict[str, tc.FileReport]) -> None:
    report = reports["evb-rr-granted.pcap"]
    trailers = {f.frame: f for f in report.known_defects if f.kind == tc.LLDP_SHORT}
    assert set(trailers) == set(range(1, 18))  # every LLDP frame
    assert trailers[1].tshark == "trailer of 14 octets at offset 46: 1400000000000000000000000000"
    assert (1, "lldp.tlv[3]: EVB TLV body (only OUI and subtype shown)") in report.not_decoded
    assert {"lldp.tlv[3].oui", "lldp.tlv[3].subtype"} <= agreed_in(report, 1)
    undecoded = {what for _, what in reports["vdp-filter-fmt3-fmt4-group.pcap"].not_decoded}
    assert "vdp.tlv[1]: filter info of format 3 (only the format code shown)" in undecoded
    assert "vdp.tlv[1]: filter info of format 4 (only the format code shown)" in undecoded
    preassoc = reports["vdp-preassoc.pcap"].not_decoded
    assert (1, "vdp.tlv[1]: Pre-Associate TLV body (only type and length shown)") in preassoc


def test_a_difference_tshark_does_not_explain_is_a_mismatch(packets: dict[str, dict[int, dict[str, Any]]]) -> None:
    """Negative control: the classifier must not swallow other differences."""
    path = str(CAPTURE_DIR / "vdp-assoc-deassoc.pcap")
    bad = copy.deepcopy(packets["vdp-assoc-deassoc.pcap"])
    bad[1]["ecp21"]["ecp.seqno"] = "99"
    tc.nodes_with(bad[3], "vdp21.assoc.mac_id")[0]["vdp21.assoc.mac_id_raw"][0] = "aabbccddeeff"
    bad[5]["eth"]["eth.trailer_raw"][1] += 1
    bad[6]["lldp"]["Time To Live = 120 sec"]["lldp.time_to_live"] = "121"
    report = tc.compare_file(path, bad)
    assert {(f.frame, f.field) for f in report.mismatches} == {
        (1, "ecp.seqno"),
        (3, "vdp.tlv[1].filter"),
        (5, "eth.trailer"),
        (6, "lldp.time_to_live"),
    }


def test_a_correct_tshark_reading_agrees(packets: dict[str, dict[int, dict[str, Any]]]) -> None:
    """A tshark that read the count would agree: the MAC/VID of our first entry count as agreeing."""
    fixed = copy.deepcopy(packets["vdp-assoc-deassoc.pcap"])
    node = tc.nodes_with(fixed[1], "vdp21.assoc.mac_id")[0]
    node["vdp21.assoc.mac_id_raw"][0] = "020000000101"
    node["vdp21.vidstr.vid"] = "0x000a"
    report = tc.compare_file(str(CAPTURE_DIR / "vdp-assoc-deassoc.pcap"), fixed)
    assert "vdp.tlv[1].filter" in agreed_in(report, 1)
    assert not [f for f in report.known_defects if f.frame == 1]


def test_synthetic_cdcp_draft_evb_and_draft_ecp(tmp_path: Path) -> None:
    """Frames no capture has: CDCP (named only), draft EVB TLV (decoded by tshark), draft ECP header."""
    src = bytes.fromhex("020000000a01")
    cdcp = CdcpTlv(role=1, scomp=True, chncap=2, channels=((1, 1), (2, 100)))
    draft = DraftEvbTlv(
        supported_modes=0x80,
        supported_caps=7,
        configured_modes=0x80,
        configured_caps=7,
        supported_vsis=100,
        configured_vsis=1,
        rte=20,
    )
    lldp = [Lldpdu(chassis_id=ChassisId(4, src), port_id=PortId(5, b"eth0"), ttl=120, tlvs=(t,)) for t in (cdcp, draft)]
    pcap = tmp_path / "synthetic.pcap"
    wrpcap(
        str(pcap),
        [
            Ether(build_frame(NEAREST_NON_TPMR_BRIDGE, src, lldp[0])),
            Ether(build_frame(NEAREST_BRIDGE, src, lldp[1])),
            Ether(build_frame(NEAREST_BRIDGE, src, DraftEcpdu(1, 7))),
            Ether(build_frame(NEAREST_CUSTOMER_BRIDGE, src, Ecpdu(EcpOp.ACK, 1, 9))),
        ],
    )
    report = tc.check_file(str(pcap))
    assert report.frames == 4
    assert report.mismatches == []
    assert report.not_decoded == [(1, "lldp.tlv[3]: CDCP TLV body (only OUI and subtype shown)")]
    assert {"lldp.tlv[3].evb_support_caps", "lldp.tlv[3].evb_retrans_timer"} <= agreed_in(report, 2)
    assert {"ecp.mode", "ecp.seq"} <= agreed_in(report, 3)
    assert agreed_in(report, 4) >= ECP_HEADER


def test_cli(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(CAPTURE_DIR / "vdp-filter-fmt2-multi.pcap")
    assert tc.main([path]) == 0
    assert "no real mismatches" in capsys.readouterr().out
    assert tc.main(["--json", path]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is True
    assert out["tshark"].startswith("TShark (Wireshark)")
    (entry,) = out["files"]
    assert entry["frames_compared"] == 15
    assert entry["mismatches"] == []
    assert entry["known_tshark_defects"][0]["kind"] == tc.FILTER_SHIFT
