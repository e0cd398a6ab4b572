"""`evb decode` as a user runs it: lines, JSON, tree, --check, ladders, skipped and bad frames."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from evb.capture import read_capture, write_pcap
from evb.cli import _locate, main

CAPTURES = Path(__file__).parent / "data" / "pcap"
if not CAPTURES.exists():
    CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "captures"
ASSOC = CAPTURES / "vdp-assoc-deassoc.pcap"
ERRORS = CAPTURES / "vdp-bridge-errors-injected.pcap"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_one_line_per_frame(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "decode", str(ASSOC))
    assert rc == 0
    lines = out.splitlines()
    assert len(lines) == 15
    assert lines[0].split()[:3] == ["1", "0.000000", "02:00:00:00:0a:01"]
    assert lines[0].endswith(
        "ECP REQ seq=1 mgr=labmgr VDP ASSOC vsi=5a0f…0001 type=5/v4 fmt=MAC/VID [02:00:00:00:01:01 vid=10] status=req"
    )
    assert "ECP ACK seq=1" in lines[1]
    assert lines[2].endswith("status=ok")
    assert "EVB bridge br=03[RRCAP,RRCTR] st=05[RRREQ,RRSTAT=1] R=3 RTE=8 RWD=20(rol) RKA=20(rol)" in lines[4]
    assert "15 frames decoded, 0 skipped (other protocols), 0 malformed" in err


def test_json_has_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "decode", "--json", str(ASSOC))
    assert rc == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 15
    first = records[0]
    assert first["frame"] == 1 and first["src"] == "02:00:00:00:0a:01" and first["dst"] == "01:80:c2:00:00:00"
    assert first["ethertype"] == 0x8940
    ecp = first["pdu"]
    assert (ecp["kind"], ecp["op"], ecp["subtype"], ecp["seq"], ecp["version"]) == ("Ecpdu", "request", "vdp", 1, 1)
    mgr, vsi = ecp["ulpdu"]["tlvs"]
    assert mgr["manager_id_text"] == "labmgr"
    assert vsi["mode"] == "assoc" and vsi["type_id"] == 5 and vsi["type_version"] == 4
    assert vsi["vsiid_text"] == "5a0f1c2e-0001-4d3c-8e21-0a0000000001"
    assert vsi["status"]["octet"] == 0 and vsi["filter_format"] == "mac-vid"
    assert vsi["entries"] == [
        {"kind": "FilterEntry", "vid": 10, "pcp": 0, "ps": False, "mac": "02:00:00:00:01:01", "group_id": None}
    ]
    evb = records[4]["pdu"]["tlvs"][0]
    assert evb["kind"] == "EvbTlv" and evb["bridge_status"] == 3 and evb["rwd"] == 20 and evb["rol_rwd"] is True


def test_verbose_tree(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "decode", "-v", str(ASSOC))
    assert rc == 0
    assert "frame 1 t=0.000000" in out
    assert "vsiid_text: 5a0f1c2e-0001-4d3c-8e21-0a0000000001" in out
    assert "mac: 02:00:00:00:01:01" in out


def test_check_all_reference_captures(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(str(p) for p in CAPTURES.glob("*.pcap"))
    total = sum(1 for f in files for _ in read_capture(f))
    rc, out, _ = run(capsys, "decode", "--check", *files)
    assert rc == 0
    assert out.strip() == f"{total} frames checked, 0 errors"


def test_check_reports_invalid_content_only_when_strict(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "decode", "--check", str(ERRORS))
    assert rc == 0 and "1 TLVs with invalid content" in err
    rc, out, err = run(capsys, "decode", "--check", "--strict", str(ERRORS))
    assert rc == 1
    assert "frame 29: vdp: assoc.filter.count at offset 61" in err
    assert out.splitlines()[-1].startswith(f"first error: {ERRORS}: frame 29:")


def test_malformed_frame_reported_and_decoding_goes_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frames = [(cf.time, cf.data) for cf in read_capture(ASSOC)]
    good = frames[0][1]
    truncated = good[:40]  # the association TLV runs past the end
    other = bytes.fromhex("ffffffffffff020000000a010800") + bytes(46)  # IPv4: skipped
    path = tmp_path / "mixed.pcap"
    write_pcap(path, [(1.0, good), (2.0, truncated), (3.0, other), (4.0, good)])
    rc, out, err = run(capsys, "decode", str(path))
    assert rc == 1
    assert len(out.splitlines()) == 2  # frames 1 and 4
    assert f"{path}: frame 2: vdp: tlv.length at offset 36: TLV type 3 length 33 runs" in err
    assert "2 frames decoded, 1 skipped (other protocols), 1 malformed" in err
    rc, out, err = run(capsys, "decode", "--check", str(path))
    assert rc == 1
    assert out.splitlines()[0] == "2 frames checked, 1 errors"
    assert "frame 2: vdp: tlv.length at offset 36" in out.splitlines()[1]
    rc, out, _ = run(capsys, "decode", "--json", str(path))
    bad = [json.loads(x) for x in out.splitlines() if "error" in json.loads(x)]
    assert bad == [
        {
            "file": str(path),
            "frame": 2,
            "time": 2.0,
            "error": {"pdu": "vdp", "field": "tlv.length", "offset": 36, "reason": bad[0]["error"]["reason"]},
            "hex": truncated.hex(),
        }
    ]


def test_text_ladder(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "decode", "--ladder", "--no-lldp", str(ASSOC))
    assert rc == 0
    lines = out.splitlines()
    assert lines[1].startswith("station 02:00:00:00:0a:01") and "bridge 02:00:00:00:0b:01" in lines[1]
    arrows = [line for line in lines[2:] if "|" in line]
    assert len(arrows) == 8
    assert "ECP REQ 1 VDP ASSOC 5a0f…0001" in arrows[0] and arrows[0].rstrip().endswith(">|")
    assert arrows[1].split("|")[1].startswith("<") and "ECP ACK 1" in arrows[1]
    assert "ok" in arrows[2] and arrows[2].split("|")[1].startswith("<")


def test_svg_ladder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    svg = tmp_path / "l.svg"
    rc, _, _ = run(capsys, "decode", "--ladder-svg", str(svg), str(ERRORS))
    assert rc == 0
    root = ET.parse(svg).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    arrows = root.findall(f"{ns}line")
    assert len(arrows) == 2 + 34  # two lifelines, one arrow per frame
    texts = "".join(root.itertext())
    assert "err=2(insufficient resources)" in texts and "INVALID(assoc.filter.count)" in texts


def test_pcapng(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcapng

    path = tmp_path / "x.pcapng"
    packets = []
    for i, cf in enumerate(read_capture(ASSOC)):
        pkt = Ether(cf.data)
        pkt.time = 100 + i
        packets.append(pkt)
    wrpcapng(str(path), packets)
    assert path.read_bytes()[:4] == bytes.fromhex("0a0d0d0a")  # a pcapng section header block
    rc, out, _ = run(capsys, "decode", str(path))
    assert rc == 0 and len(out.splitlines()) == 15
    assert out.splitlines()[1].split()[1] == "1.000000"


def test_unreadable_file_is_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    rc, _, err = run(capsys, "decode", str(junk))
    assert rc == 2 and "not a pcap or pcapng file" in err
    rc, _, err = run(capsys, "decode", str(tmp_path / "missing.pcap"))
    assert rc == 2 and "no such file" in err


def test_no_subcommand_and_help() -> None:
    assert main([]) == 2
    res = subprocess.run([sys.executable, "-m", "evb.cli", "decode", "--help"], capture_output=True, text=True)
    assert res.returncode == 0
    assert "--ladder-svg" in res.stdout and "exit status" in res.stdout


def test_locate_names_the_field() -> None:
    data = next(read_capture(ASSOC)).data
    assert _locate(data, 3) == "ethernet.dst"
    assert _locate(data, 16) == "ecpdu.seq"
    assert _locate(data, 20) == "vdp.tlv[0](type 5) octet 2"
    assert _locate(data, 61) == "vdp.tlv[1](type 3) octet 25"
