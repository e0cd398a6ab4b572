"""Cross-check evb's frame decoder against tshark, field by field, on pcap files.

Per file, tshark runs once (``tshark -r FILE -T json -x --no-duplicate-keys -n``) and evb decodes every frame
(``evb.frame.decode_frame``, frames read with scapy's ``RawPcapReader``). Compared where both decode them:
Ethernet addresses and EtherType; LLDP TLV types and lengths, chassis and port ID, TTL, OUI and subtype of
organizationally specific TLVs; the ECP header; VDP TLV types and lengths, the Manager ID, the fixed fields of
association TLVs and their first filter entry; the draft-0.2 EVB TLV and ECP header.

A difference is either a *known tshark defect* (checked, not assumed) or a *real mismatch*:

* tshark 4.0 reads the filter info of a ratified VDP association TLV without the 2-octet number of entries
  (spec vdp.md §5.4): its MAC/VID must then equal the bytes two octets before ours;
* tshark 4.0's LLDP dissector reports its PDU 3 octets short: an "Ethernet trailer" then starts at the last
  octet of the TLV before End, and must equal exactly those bytes.

What tshark does not decode at all (EVB TLV body, CDCP, Pre-Associate TLVs, filter formats 3/4) is listed,
not compared. Exit status 1 on any real mismatch.

    python -m interop.tshark_check [--json] [-v] FILE...
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from scapy.utils import RawPcapReader

from evb.ecp.wire import DraftEcpdu, Ecpdu
from evb.errors import DecodeError, NotEvbFrame
from evb.ethernet import mac_to_str
from evb.frame import Frame, decode_frame
from evb.lldp.wire import (
    CDCP_SUBTYPE,
    EVB_SUBTYPE,
    OUI_8021,
    OUI_QBG_DRAFT,
    CdcpTlv,
    DraftEvbTlv,
    EvbTlv,
    Lldpdu,
    OrgTlv,
)
from evb.tlv import InvalidTlv
from evb.vdp.wire import ASSOC_FIXED_LEN, ENTRY_SIZE, FilterEntry, FilterFormat, VdpPdu, VsiManagerIdTlv, VsiTlv

TSHARK_ARGS = ("-T", "json", "-x", "--no-duplicate-keys", "-n")
COUNT_LEN = 2  #: the number-of-entries field tshark 4.0 does not know
FILTER_SHIFT = "vdp-filter-without-count"
LLDP_SHORT = "lldp-pdu-3-octets-short"
_DRAFT_EVB = "lldp.ieee.802_1qbg."  #: tshark's field prefix for the draft EVB TLV
_TLV_LABELS = {1: "Pre-Associate", 2: "Pre-Associate-RR", 3: "Associate", 4: "De-Associate"}


@dataclass(frozen=True)
class Finding:
    """One field on which tshark and evb differ. ``kind`` names a known tshark defect, or is empty."""

    frame: int
    field: str
    ours: str
    tshark: str
    kind: str = ""
    evidence: str = ""


@dataclass
class FileReport:
    path: str
    frames: int = 0  #: frames compared
    skipped: int = 0  #: frames of other protocols
    agreed: list[tuple[int, str]] = field(default_factory=list)  #: (frame, field)
    known_defects: list[Finding] = field(default_factory=list)
    mismatches: list[Finding] = field(default_factory=list)
    not_decoded: list[tuple[int, str]] = field(default_factory=list)  #: (frame, what tshark leaves undecoded)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "frames_compared": self.frames,
            "frames_skipped": self.skipped,
            "fields_agreeing": len(self.agreed),
            "agreeing_by_field": dict(Counter(_generic(name) for _, name in self.agreed)),
            "known_tshark_defects": [asdict(f) for f in self.known_defects],
            "mismatches": [asdict(f) for f in self.mismatches],
            "not_decoded_by_tshark": [{"frame": n, "what": what} for n, what in self.not_decoded],
        }


# --------------------------------------------------------------------------- tshark's JSON


def tshark_version() -> str:
    out = subprocess.run(["tshark", "-v"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0]


def run_tshark(path: str) -> dict[int, dict[str, Any]]:
    """One tshark run over the whole file: frame number -> its ``layers`` tree."""
    proc = subprocess.run(["tshark", "-r", path, *TSHARK_ARGS], capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"tshark failed on {path}: {proc.stderr.strip()}")
    packets = json.loads(proc.stdout or "[]")
    return {int(p["_source"]["layers"]["frame"]["frame.number"]): p["_source"]["layers"] for p in packets}


def _raw(node: dict[str, Any], key: str) -> list[Any] | None:
    """``[hex, offset, length, bitmask, type]`` of a field (tshark ``-x``)."""
    raw = node.get(key + "_raw")
    return raw[0] if raw and isinstance(raw[0], list) else raw  # a repeated field: take the first


def _int(node: dict[str, Any], *keys: str) -> int | None:
    """The first of ``keys`` present, as an integer ("0x0001" and "1" alike)."""
    for key in keys:
        value = node.get(key)
        if isinstance(value, list):
            value = value[0]
        if isinstance(value, str):
            return int(value, 16) if value.startswith("0x") else int(value)
    return None


def _hex(node: dict[str, Any], key: str) -> str | None:
    raw = _raw(node, key)
    return raw[0].lower() if raw else None


def nodes_with(tree: Any, key: str) -> list[dict[str, Any]]:
    """The subtrees holding ``key``, in wire order (by the offset of that field)."""

    def walk(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            if key in node:
                yield node
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    return sorted(walk(tree), key=lambda n: (_raw(n, key) or [0, 0])[1])


def _generic(name: str) -> str:
    """``vdp.tlv[1].type`` -> ``vdp.tlv[].type`` (for per-field counts)."""
    head, sep, tail = name.partition("[")
    return head + "[]" + tail.partition("]")[2] if sep else name


# --------------------------------------------------------------------------- comparison


class _FrameCheck:
    """Compares one frame and records the outcome in the file's report."""

    def __init__(self, report: FileReport, number: int, data: bytes) -> None:
        self.report, self.n, self.data = report, number, data

    def same(self, name: str, ours: object, theirs: object) -> None:
        if theirs is None:
            self.report.mismatches.append(Finding(self.n, name, str(ours), "(field not shown)"))
        elif ours == theirs:
            self.report.agreed.append((self.n, name))
        else:
            self.report.mismatches.append(Finding(self.n, name, str(ours), str(theirs)))

    def not_decoded(self, what: str) -> None:
        self.report.not_decoded.append((self.n, what))

    # ---- Ethernet

    def ethernet(self, frame: Frame, eth: dict[str, Any]) -> None:
        self.same("eth.dst", mac_to_str(frame.dst), eth.get("eth.dst"))
        self.same("eth.src", mac_to_str(frame.src), eth.get("eth.src"))
        self.same("eth.type", frame.tags[0].tpid if frame.tags else frame.ethertype, _int(eth, "eth.type"))

    def tail(self, frame: Frame, eth: dict[str, Any], tshark_end_tlv: int | None) -> None:
        """What follows an LLDPDU: ours is ``frame.pad`` zero octets; tshark shows padding and/or a trailer.

        (tshark's ECP dissectors claim the whole rest of the frame, padding included: nothing to compare there.)
        """
        end = len(self.data) - frame.pad
        padding, trailer = _raw(eth, "eth.padding"), _raw(eth, "eth.trailer")
        if trailer is None:
            if padding or frame.pad:
                self.same("eth.padding", frame.pad, len(padding[0]) // 2 if padding else 0)
            return
        start = trailer[1]
        ours = f"LLDPDU ends at offset {end} (End TLV at {end - 2}), then {frame.pad} zero octets of padding"
        theirs = f"trailer of {trailer[2]} octets at offset {start}: {trailer[0]}"
        known = (
            padding is None
            and start == end - 3
            and tshark_end_tlv == end - 2
            and bytes.fromhex(trailer[0]) == self.data[start:]
        )
        if not known:
            self.report.mismatches.append(Finding(self.n, "eth.trailer", ours, theirs))
            return
        evidence = (
            f"tshark itself shows the End TLV at offset {end - 2}, yet its trailer starts one octet before it, "
            f"at the last octet of the preceding TLV (0x{self.data[start]:02x}): its LLDP dissector reports the "
            "PDU 3 octets short. The octets after End are zero: padding, not a trailer."
        )
        self.report.known_defects.append(Finding(self.n, "eth.trailer", ours, theirs, LLDP_SHORT, evidence))

    # ---- LLDP

    def lldp(self, pdu: Lldpdu, tree: dict[str, Any]) -> int | None:
        """Compare the LLDPDU; return the offset of tshark's End TLV."""
        theirs = nodes_with(tree, "lldp.tlv.type")
        ours: list[tuple[int, int, object]] = [
            (1, 1 + len(pdu.chassis_id.id), pdu.chassis_id),
            (2, 1 + len(pdu.port_id.id), pdu.port_id),
            (3, 2, pdu.ttl),
        ]
        for opt in pdu.tlvs:
            raw = opt.encode()
            ours.append((raw[0] >> 1, len(raw) - 2, opt))
        ours.append((0, 0, None))
        self.same("lldp.tlv.count", len(ours), len(theirs))
        for i, ((t, length, tlv), d) in enumerate(zip(ours, theirs, strict=False)):
            self.same(f"lldp.tlv[{i}].type", t, _int(d, "lldp.tlv.type"))
            self.same(f"lldp.tlv[{i}].len", length, _int(d, "lldp.tlv.len"))
            if i < 2:
                kind = ("chassis", "port")[i]
                ident = pdu.chassis_id if i == 0 else pdu.port_id
                self.same(f"lldp.{kind}.subtype", ident.subtype, _int(d, f"lldp.{kind}.subtype"))
                self.same(f"lldp.{kind}.id", ident.id.hex(), _id_hex(d, f"lldp.{kind}.id"))
            elif i == 2:
                self.same("lldp.time_to_live", pdu.ttl, _int(d, "lldp.time_to_live"))
            elif t == 127:
                self.org_tlv(i, tlv, d)
        ends = [d for d in theirs if _int(d, "lldp.tlv.type") == 0]
        return (_raw(ends[-1], "lldp.tlv.type") or [0, None])[1] if ends else None

    def org_tlv(self, i: int, tlv: object, d: dict[str, Any]) -> None:
        if isinstance(tlv, EvbTlv):
            oui, sub, name = OUI_8021, EVB_SUBTYPE, "EVB"
        elif isinstance(tlv, CdcpTlv):
            oui, sub, name = OUI_8021, CDCP_SUBTYPE, "CDCP"
        elif isinstance(tlv, DraftEvbTlv):
            oui, sub, name = OUI_QBG_DRAFT, 0, "draft EVB"
        elif isinstance(tlv, OrgTlv):
            oui, sub, name = tlv.oui, tlv.subtype, ""
        else:  # InvalidTlv: OUI and subtype from its raw value
            value = tlv.value if isinstance(tlv, InvalidTlv) else b""
            oui, sub, name = value[:3], value[3] if len(value) > 3 else -1, ""
        self.same(f"lldp.tlv[{i}].oui", int.from_bytes(oui, "big"), _int(d, "lldp.orgtlv.oui"))
        sub_keys = [k for k in d if k.endswith("subtype") and k.startswith("lldp.") and "_raw" not in k]
        self.same(f"lldp.tlv[{i}].subtype", sub, _int(d, *sub_keys))
        shown = {k for k in d if not k.endswith("_raw")} - {"lldp.tlv.type", "lldp.tlv.len", "lldp.orgtlv.oui"}
        if isinstance(tlv, DraftEvbTlv) and _DRAFT_EVB + "evb_support_caps" in d:
            self.draft_evb(f"lldp.tlv[{i}].", tlv, d)
        elif name and shown <= set(sub_keys):
            self.not_decoded(f"lldp.tlv[{i}]: {name} TLV body (only OUI and subtype shown)")

    def draft_evb(self, prefix: str, tlv: DraftEvbTlv, d: dict[str, Any]) -> None:
        """tshark decodes the draft-0.2 EVB TLV, mode and capability octets as one 16-bit field."""
        for name, ours in (
            ("evb_support_caps", tlv.supported_modes << 8 | tlv.supported_caps),
            ("evb_configure_caps", tlv.configured_modes << 8 | tlv.configured_caps),
            ("evb_supported_vsi", tlv.supported_vsis),
            ("evb_configured_vsi", tlv.configured_vsis),
            ("evb_retrans_timer", tlv.rte),
        ):
            self.same(prefix + name, ours, _int(d, _DRAFT_EVB + name))

    # ---- ECP and VDP

    def ecp(self, frame: Frame, pdu: Ecpdu, tree: dict[str, Any]) -> None:
        self.same("ecp.ver", pdu.version, _int(tree, "ecp.ver"))
        self.same("ecp.op", int(pdu.op), _int(tree, "ecp.op"))
        self.same("ecp.subtype", int(pdu.subtype), _int(tree, "ecp.subtype"))
        self.same("ecp.seqno", pdu.seq, _int(tree, "ecp.seqno"))
        if isinstance(pdu.ulpdu, VdpPdu):
            self.vdp(pdu.ulpdu, tree, 14 + 4 * len(frame.tags) + 4)

    def draft_ecp(self, pdu: DraftEcpdu, tree: dict[str, Any]) -> None:
        self.same("ecp.mode", pdu.mode, _int(tree, "ecp.mode"))
        self.same("ecp.seq", pdu.seq, _int(tree, "ecp.seq"))

    def vdp(self, pdu: VdpPdu, tree: dict[str, Any], off: int) -> None:
        theirs = [d for d in nodes_with(tree, "vdp21.tlvtype") if _int(d, "vdp21.tlvtype")]  # End is padding to us
        self.same("vdp.tlv.count", len(pdu.tlvs), len(theirs))
        for i, (tlv, d) in enumerate(zip(pdu.tlvs, theirs, strict=False)):
            raw = tlv.encode()
            t, length, name = raw[0] >> 1, len(raw) - 2, f"vdp.tlv[{i}]"
            self.same(name + ".type", t, _int(d, "vdp21.tlvtype"))
            self.same(name + ".len", length, _int(d, "vdp21.tlvlen"))
            if isinstance(tlv, VsiManagerIdTlv):
                self.same(name + ".manager_id", tlv.manager_id.hex(), _hex(d, "vdp21.manager_id"))
            elif 1 <= t <= 4 and isinstance(tlv, VsiTlv | InvalidTlv):
                self.association(name, t, tlv, d, off + 2)
            off += len(raw)

    def association(self, name: str, t: int, tlv: VsiTlv | InvalidTlv, d: dict[str, Any], at: int) -> None:
        """An association TLV whose body starts at frame offset ``at``."""
        f = next(iter(nodes_with(d, "vdp21.vsitypeid")), None)
        if f is None:
            self.not_decoded(f"{name}: {_TLV_LABELS[t]} TLV body (only type and length shown)")
            return
        if isinstance(tlv, VsiTlv):
            flags = _int(f, "vdp21.assoc.request_flags", "vdp21.assoc.response_flags")
            code = _int(f, "vdp21.assoc.reason", "vdp21.assoc.error")
            self.same(name + ".status", tlv.status.octet, None if flags is None or code is None else flags << 4 | code)
            self.same(name + ".vsitypeid", tlv.type_id, _int(f, "vdp21.vsitypeid"))
            self.same(name + ".vsiversion", tlv.type_version, _int(f, "vdp21.vsiversion"))
            self.same(name + ".vsiidformat", int(tlv.vsiid_format), _int(f, "vdp21.vsiidformat"))
            self.same(name + ".vsiid", tlv.vsiid.hex(), _hex(f, "vdp21.VSIID"))
            self.same(name + ".filterformat", int(tlv.filter_format), _int(f, "vdp21.filterformat"))
        self.filter_info(name, tlv, f, at)

    def filter_info(self, name: str, tlv: VsiTlv | InvalidTlv, f: dict[str, Any], at: int) -> None:
        """tshark shows one entry (formats 1 and 2 only); classify it against ours and the shifted bytes."""
        vid_raw = _raw(f, "vdp21.vidstr.vid")
        body = self.data[at : at + len(tlv.encode()) - 2]
        ffmt = body[22]
        if vid_raw is None:
            self.not_decoded(f"{name}: filter info of format {ffmt} (only the format code shown)")
            return
        mac_hex = _hex(f, "vdp21.assoc.mac_id")
        theirs = (bytes.fromhex(mac_hex) if mac_hex else None, _int(f, "vdp21.vidstr.vid"))
        shown = f"VID 0x{theirs[1]:03x} (PS {_int(f, 'vdp21.vidstr.ps')}, PCP {_int(f, 'vdp21.vidstr.pcp')})"
        if theirs[0] is not None:
            shown = f"MAC {mac_to_str(theirs[0])}, {shown}"
        if isinstance(tlv, VsiTlv) and tlv.entries and theirs == (tlv.entries[0].mac, tlv.entries[0].vid):
            self.report.agreed.append((self.n, name + ".filter"))
            return
        size = ENTRY_SIZE[FilterFormat(ffmt)] if ffmt in (1, 2) else 0
        shifted = body[ASSOC_FIXED_LEN - COUNT_LEN : ASSOC_FIXED_LEN - COUNT_LEN + size]
        expected = (shifted[:6] if ffmt == 2 else None, int.from_bytes(shifted[-2:], "big") & 0xFFF)
        ours = vdptool_filter(tlv.entries) if isinstance(tlv, VsiTlv) else f"invalid TLV: {tlv.reason}"
        if ffmt not in (1, 2) or len(shifted) != size or theirs != expected:
            self.report.mismatches.append(Finding(self.n, name + ".filter", ours, shown))
            return
        count = int.from_bytes(body[23:25], "big")
        evidence = (
            f"tshark reads the entry at frame offset {vid_raw[1] - size + 2}, where the 2-octet entry count "
            f"({body[23:25].hex(' ')} = {count}) sits; the entries start 2 octets later. "
            + _length_evidence(len(body), ffmt, count)
        )
        if isinstance(tlv, VsiTlv) and len(tlv.entries) > 1:
            evidence += f" tshark shows 1 of the {len(tlv.entries)} entries."
        self.report.known_defects.append(Finding(self.n, name + ".filter", ours, shown, FILTER_SHIFT, evidence))


def _id_hex(d: dict[str, Any], prefix: str) -> str | None:
    """Raw octets of the chassis/port ID, whichever field tshark uses for the subtype."""
    key = next((k[:-4] for k in d if k.startswith(prefix) and k.endswith("_raw")), None)
    return _hex(d, key) if key else None


def _length_evidence(length: int, ffmt: int, count: int) -> str:
    size = ENTRY_SIZE[FilterFormat(ffmt)]
    if length != ASSOC_FIXED_LEN + count * size:
        return (
            f"The TLV is malformed: {count} entries of {size} octets need length {ASSOC_FIXED_LEN + count * size}, "
            f"it has {length}; tshark cannot notice, as it does not read the count."
        )
    text = f"TLV length {length} = 25 + {count} x {size} only with the count;"
    rest = length - (ASSOC_FIXED_LEN - COUNT_LEN)
    if rest % size:
        return text + f" without it, 23 + k x {size} = {length} has no whole k."
    return text + (
        f" without it, {rest // size} entries of {size} octets would fit too (the count is as long as a format-1 "
        "entry), so here only the request given to lldpad decides."
    )


def vdptool_filter(entries: tuple[FilterEntry, ...]) -> str:
    """Entries as lldpad's client takes them: ``filter=VID[-MAC][-GROUP]``, space-separated."""

    def one(e: FilterEntry) -> str:
        vid = f"0x{e.qos_word:04x}" if e.ps or e.pcp else str(e.vid)
        mac = "" if e.mac is None else mac_to_str(e.mac)
        if e.group_id is not None:
            return f"filter={vid}-{mac}-{e.group_id}"
        return f"filter={vid}-{mac}" if mac else f"filter={vid}"

    return " ".join(one(e) for e in entries)


# --------------------------------------------------------------------------- files


def compare_file(path: str, packets: dict[int, dict[str, Any]]) -> FileReport:
    """Compare evb's decoding of every frame of ``path`` with tshark's ``packets``."""
    report = FileReport(path)
    with RawPcapReader(path) as reader:
        for number, (pkt, _meta) in enumerate(reader, 1):
            data = bytes(pkt)
            frame: Frame | None
            try:
                frame, error = decode_frame(data), ""
            except NotEvbFrame:
                report.skipped += 1
                continue
            except DecodeError as err:
                frame, error = None, str(err)
            report.frames += 1
            layers = packets.get(number)
            check = _FrameCheck(report, number, data)
            if frame is None or layers is None:
                ours = "decoded" if frame else f"DecodeError: {error}"
                report.mismatches.append(Finding(number, "frame", ours, "decoded" if layers else "(no frame)"))
                continue
            eth = layers.get("eth", {})
            check.ethernet(frame, eth)
            if isinstance(frame.pdu, Lldpdu):
                check.tail(frame, eth, check.lldp(frame.pdu, layers.get("lldp", {})))
            elif isinstance(frame.pdu, Ecpdu):
                check.ecp(frame, frame.pdu, layers.get("ecp21", {}))
            else:
                check.draft_ecp(frame.pdu, layers.get("ecp", {}))
    return report


def check_file(path: str) -> FileReport:
    return compare_file(path, run_tshark(path))


def _print_text(version: str, reports: list[FileReport], verbose: bool) -> None:
    print(f"tshark vs evb.frame.decode_frame; {version.rstrip('.')}")
    print(f"{'file':40} {'frames':>6} {'agree':>6} {'known-defect':>12} {'mismatch':>8} {'not-decoded':>11}")
    rows = [(r.path.rsplit("/", 1)[-1], r) for r in reports]
    if len(reports) > 1:
        total = FileReport("total", frames=sum(r.frames for r in reports))
        for r in reports:
            total.agreed += r.agreed
            total.known_defects += r.known_defects
            total.mismatches += r.mismatches
            total.not_decoded += r.not_decoded
        rows.append(("total", total))
    for name, r in rows:
        print(
            f"{name:40} {r.frames:6} {len(r.agreed):6} {len(r.known_defects):12} "
            f"{len(r.mismatches):8} {len(r.not_decoded):11}"
        )
    for r in reports:
        shown = r.mismatches + (r.known_defects if verbose else [])
        for f in shown:
            label = f"known tshark defect ({f.kind})" if f.kind else "MISMATCH"
            print(f"{r.path} frame {f.frame} {f.field}: {label}\n    ours:   {f.ours}\n    tshark: {f.tshark}")
            if f.evidence:
                print(f"    why:    {f.evidence}")
        if verbose:
            for n, what in r.not_decoded:
                print(f"{r.path} frame {n}: not decoded by tshark: {what}")
    count = sum(len(r.mismatches) for r in reports)
    print(f"{count} real mismatch(es)" if count else "no real mismatches")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m interop.tshark_check", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", metavar="FILE", help="pcap/pcapng files")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("-v", "--verbose", action="store_true", help="list known defects and undecoded fields")
    args = parser.parse_args(argv)
    try:
        version = tshark_version()
        reports = [check_file(path) for path in args.files]
    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"tshark_check: {exc}", file=sys.stderr)
        return 2
    ok = not any(r.mismatches for r in reports)
    if args.json:
        json.dump({"tshark": version, "ok": ok, "files": [r.as_dict() for r in reports]}, sys.stdout, indent=2)
        print()
    else:
        _print_text(version, reports, args.verbose)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
