"""The ``evb`` command: one entry point, one subcommand per job.

Exit codes (all subcommands): 0 success; 1 the job ran and found problems (malformed
frames, round-trip mismatches); 2 bad usage or unreadable input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from evb import __version__
from evb.capture import LINKTYPE_ETHERNET, CaptureError, read_capture
from evb.describe import protocol_name, summarize, to_json, tree
from evb.ecp.wire import Ecpdu
from evb.errors import DecodeError, EncodeError, NotEvbFrame
from evb.ethernet import mac_to_str
from evb.frame import Frame, decode_frame, encode_frame
from evb.ladder import svg_ladder, text_ladder
from evb.lldp.wire import Lldpdu
from evb.progress import Progress
from evb.tlv import InvalidTlv
from evb.vdp.wire import VdpPdu

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2

_FORMATTER = argparse.RawDescriptionHelpFormatter
_SUBPARSERS: dict[str, argparse.ArgumentParser] = {}


def _decode_parser(sub: Any) -> None:
    p = sub.add_parser(
        "decode",
        formatter_class=_FORMATTER,
        help="decode LLDP/EVB, ECP and VDP frames of pcap/pcapng captures",
        description=textwrap.dedent(
            """\
            Decode every LLDP (EtherType 0x88cc), ECP (0x8940) and draft-0.2 ECP (0x88b7)
            frame of one or more captures (pcap or pcapng, Ethernet link type) and print one
            line per frame: number, time since the first frame, source MAC, protocol and a
            compact meaning, e.g.

                1   0.000000  02:00:00:00:0a:01  ECP   ECP REQ seq=1 mgr=labmgr VDP ASSOC
                    vsi=5a0f…0001 type=5/v4 fmt=MAC/VID [02:00:00:00:01:01 vid=10] status=req

            Frames of other protocols are skipped and counted. A malformed frame is reported
            with the PDU, field, offset and reason of the error, and decoding goes on. A TLV
            whose header is sound but whose content is not (lldpad skips such TLVs) is shown
            as INVALID with its error; --strict turns it into a decode error."""
        ),
        epilog=textwrap.dedent(
            """\
            examples:
              evb decode capture.pcap                    one line per frame
              evb decode --json capture.pcap | jq .      one JSON object per frame, every field
              evb decode -v capture.pcap                 full tree of every frame
              evb decode --check captures/*.pcap         decode, re-encode, compare bytes
              evb decode --ladder --no-lldp capture.pcap station <-> bridge ladder (text)
              evb decode --ladder-svg out.svg capture.pcap

            exit status: 0 all frames decoded (and, with --check, re-encoded bit for bit);
            1 malformed frames or mismatches found; 2 bad usage or unreadable file."""
        ),
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="pcap or pcapng capture files")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print one JSON object per frame (JSON lines)")
    out.add_argument("-v", "--verbose", action="store_true", help="print the full decoded tree of every frame")
    out.add_argument("--ladder", action="store_true", help="print a station <-> bridge ladder diagram per file")
    p.add_argument(
        "--check",
        action="store_true",
        help="re-encode every decoded frame and compare it with the captured bytes; "
        "prints 'N frames checked, E errors'",
    )
    p.add_argument("--strict", action="store_true", help="treat TLVs with invalid content as decode errors")
    p.add_argument("--ladder-svg", metavar="OUT.svg", help="write the ladder diagram as an SVG image")
    p.add_argument("--no-lldp", action="store_true", help="leave LLDP frames out of the listing and the ladder")
    p.set_defaults(func=cmd_decode)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evb",
        formatter_class=_FORMATTER,
        description=textwrap.dedent(
            """\
            evb: IEEE 802.1Qbg-2012 Edge Virtual Bridging — the EVB TLV, CDCP, ECP and VDP.
            Decode and check captures, simulate station <-> bridge at scale, run the station
            agent on a hypervisor's uplink and the bridge on station-facing ports."""
        ),
        epilog="Run 'evb SUBCOMMAND --help' for the options of each subcommand.",
    )
    parser.add_argument("--version", action="version", version=f"evb {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")
    _decode_parser(sub)
    from evb.simulate import add_parser as _simulate_parser

    _simulate_parser(sub)
    from evb.cli_agents import add_parsers as _agent_parsers

    _agent_parsers(sub)
    from evb.labdemo import add_parser as _lab_parser

    _lab_parser(sub)
    from evb.cli_conformance import add_parser as _conformance_parser

    _conformance_parser(sub)
    from evb.cli_ctl import add_parser as _ctl_parser

    _ctl_parser(sub)
    _SUBPARSERS.clear()
    _SUBPARSERS.update(sub.choices)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        # `evb station` without a command: that group's help
        chosen = [a for a in (argv if argv is not None else sys.argv[1:]) if not a.startswith("-")][:1]
        group = _SUBPARSERS.get(chosen[0]) if chosen else None
        (group or parser).print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except BrokenPipeError:  # `evb decode x.pcap | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        return 130


# --------------------------------------------------------------------------- decode


def _locate(data: bytes, offset: int) -> str:
    """Name the field that holds ``offset`` of a frame (for round-trip mismatch reports)."""
    if offset < 6:
        return "ethernet.dst"
    if offset < 12:
        return "ethernet.src"
    off = 12
    while off + 2 <= len(data) and data[off : off + 2] in (b"\x81\x00", b"\x88\xa8"):
        if offset < off + 4:
            return "ethernet.tag"
        off += 4
    if offset < off + 2:
        return "ethernet.ethertype"
    ethertype = int.from_bytes(data[off : off + 2], "big")
    off += 2
    if ethertype == 0x8940:
        if offset < off + 2:
            return "ecpdu.header"
        if offset < off + 4:
            return "ecpdu.seq"
        off, pdu = off + 4, "vdp"
    elif ethertype == 0x88B7:
        if offset < off + 9:
            return "draft-ecpdu.header"
        off, pdu = off + 9, "draft-vdp"
    else:
        pdu = "lldpdu"
    index = 0
    while off + 2 <= len(data):
        h = int.from_bytes(data[off : off + 2], "big")
        end = off + 2 + (h & 0x1FF)
        if offset < end or h >> 9 == 0:
            return f"{pdu}.tlv[{index}](type {h >> 9}) octet {offset - off}"
        off, index = end, index + 1
    return f"{pdu}.padding"


class _Decoder:
    """State of one ``evb decode`` run (counts, output stream)."""

    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
        self.args = args
        self.out = out
        self.err = err
        self.checked = 0
        self.errors = 0
        self.error_lines: list[str] = []

    def problem(self, text: str) -> None:
        self.errors += 1
        if len(self.error_lines) < 50:
            self.error_lines.append(text)
        print(text, file=self.err)

    def run_file(self, path: str) -> list[tuple[float, Frame]]:
        args = self.args
        frames: list[tuple[float, Frame]] = []
        skipped = malformed = invalid = 0
        t0: float | None = None
        try:
            size = Path(path).stat().st_size
        except FileNotFoundError:
            raise CaptureError(f"{path}: no such file") from None
        progress = Progress(f"decoding {Path(path).name}", total=size, stream=self.err)
        done = 0
        for cf in read_capture(path):
            done += len(cf.data) + 16
            progress.update(done)
            if t0 is None:
                t0 = cf.time
            rel = cf.time - t0
            if cf.linktype != LINKTYPE_ETHERNET:
                skipped += 1
                continue
            try:
                frame = decode_frame(cf.data, strict=args.strict)
            except NotEvbFrame:
                skipped += 1
                continue
            except DecodeError as exc:
                malformed += 1
                self.problem(f"{path}: frame {cf.number}: {exc}")
                if args.json:
                    print(
                        json.dumps(
                            {
                                "file": path,
                                "frame": cf.number,
                                "time": cf.time,
                                "error": {
                                    "pdu": exc.pdu,
                                    "field": exc.field,
                                    "offset": exc.offset,
                                    "reason": exc.reason,
                                },
                                "hex": cf.data.hex(),
                            }
                        ),
                        file=self.out,
                    )
                continue
            bad_tlvs = _invalid_tlvs(frame)
            invalid += len(bad_tlvs)
            if args.check:
                self.checked += 1
                self._check(path, cf.number, cf.data, frame)
            if args.no_lldp and isinstance(frame.pdu, Lldpdu):
                continue
            frames.append((cf.time, frame))
            self._print(path, cf.number, cf.time, rel, frame)
        progress.close()
        note = f", {invalid} TLVs with invalid content" if invalid else ""
        print(
            f"# {path}: {len(frames)} frames decoded, {skipped} skipped (other protocols), {malformed} malformed{note}",
            file=self.err,
        )
        return frames

    def _check(self, path: str, number: int, data: bytes, frame: Frame) -> None:
        try:
            again = encode_frame(frame)
        except EncodeError as exc:
            self.problem(f"{path}: frame {number}: re-encoding failed: {exc}")
            return
        if again != data:
            at = next(
                (i for i, (a, b) in enumerate(zip(data, again, strict=False)) if a != b), min(len(data), len(again))
            )
            self.problem(
                f"{path}: frame {number}: {_locate(data, at)} at offset {at}: re-encoded "
                f"{again[at : at + 1].hex() or 'nothing'} where the capture has {data[at : at + 1].hex() or 'nothing'}"
                f" ({len(again)} vs {len(data)} octets)"
            )

    def _print(self, path: str, number: int, ts: float, rel: float, frame: Frame) -> None:
        args = self.args
        if (args.check and not (args.json or args.verbose)) or args.ladder:
            return
        if args.json:
            record = {"file": path, "frame": number, "time": ts, "rel_time": round(rel, 9), **to_json(frame)}
            print(json.dumps(record), file=self.out)
        elif args.verbose:
            print(f"{path} frame {number} t={rel:.6f}", file=self.out)
            for line in tree(frame):
                print("  " + line, file=self.out)
        else:
            print(
                f"{number:5d} {rel:11.6f}  {mac_to_str(frame.src)}  {protocol_name(frame):<9} {summarize(frame)}",
                file=self.out,
            )


def _invalid_tlvs(frame: Frame) -> list[InvalidTlv]:
    pdu = frame.pdu
    if isinstance(pdu, Ecpdu) and isinstance(pdu.ulpdu, VdpPdu):
        return list(pdu.ulpdu.invalid)
    tlvs = getattr(pdu, "tlvs", ())
    return [t for t in tlvs if isinstance(t, InvalidTlv)]


def cmd_decode(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    dec = _Decoder(args, out, err)
    all_frames: list[tuple[float, Frame]] = []
    for path in args.files:
        try:
            frames = dec.run_file(path)
        except (CaptureError, OSError) as exc:
            print(f"evb decode: {exc}", file=err)
            return EXIT_USAGE
        if args.ladder:
            print(f"== {path}", file=out)
            print(text_ladder(frames), file=out)
        all_frames.extend(frames)
    if args.ladder_svg:
        title = ", ".join(Path(p).name for p in args.files)
        Path(args.ladder_svg).write_text(svg_ladder(sorted(all_frames, key=lambda x: x[0]), title=title))
        print(f"# ladder written to {args.ladder_svg}", file=err)
    if args.check:
        print(f"{dec.checked} frames checked, {dec.errors} errors", file=out)
        if dec.error_lines:
            print(f"first error: {dec.error_lines[0]}", file=out)
    return EXIT_PROBLEMS if dec.errors else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
