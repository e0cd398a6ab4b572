"""The ``evb`` command as a user types it, against our live agents over a veth pair.

Every command runs as ``sys.executable -m evb.cli ...`` in a subprocess (the installation under
test), talking to the lab's agents through ``--socket`` (the lab puts the sockets in its own
directory). What is checked is what a user sees: stdout (text tables parsed by their header
columns, and ``--json``), stderr and the exit status (0 success; 1 the bridge refused or no answer;
2 bad usage or input, also a request the station refuses locally; 3 no daemon).

EVB proposals differ per side so that the negotiated maxima show in ``evb status``; group IDs on
both sides (``[evb] gid = true``) so that filter formats 3 and 4 are allowed; RTE 12 (ECP ack timer
10 µs × 2^12 = 41 ms) and RKA 20 (keep-alive every 10 µs × 2^20 = 10.5 s) keep the agents quiet
and no VSI in its keep-alive exchange while a test looks at it.

The last test runs the README's "Live agents" commands verbatim (interface names substituted):
both daemons run in private mount namespaces with empty ``/run`` and ``/var/lib`` so that their
default paths (``/run/evb/bridge.sock``, ``/run/evb/station-IF.sock``, the station's state file in
``/var/lib/evb``) are used without touching the host's; the commands enter those namespaces with
``nsenter``.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from evb.control_client import ConnectError, call
from interop.lab import BRIDGE_MAC, STATION_MAC, Agent, Lab, missing_prerequisites, run, wait_for
from tests.integration.labs import open_lab

#: our agents need neither lldpad nor tshark
SKIP_REASON = missing_prerequisites(lldpad=False)

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(SKIP_REASON is not None, reason=f"live lab: {SKIP_REASON}"),
    pytest.mark.timeout(90),
]

README = Path(__file__).resolve().parents[2] / "README.md"
VSI_OPTS = ["--type-id", "5", "--type-version", "4", "--manager-id", "labmgr"]
# Different proposals per side: the operating values are the maxima (R 4, RTE 12, RWD 20, RKA 20).
ST_EVB = {"gid": True, "retries": 3, "rte": 12, "rwd": 18, "rka": 20}
BR_EVB = {"gid": True, "retries": 4, "rte": 10, "rwd": 20, "rka": 19}
OPER = "R=4 RTE=12 RWD=20 RKA=20"


def vsiid(n: int) -> str:
    """A VSIID per test VSI: ``5a0f1c2e-nnnn-4d3c-8e21-0a00000nnnnn``."""
    return f"5a0f1c2e-{n:04x}-4d3c-8e21-0a{n:010x}"


def mac(n: int) -> str:
    return f"02:00:00:00:{n >> 8:02x}:{n & 0xFF:02x}"


# --------------------------------------------------------------------------- running the command


@dataclass(frozen=True)
class Out:
    rc: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.rc}\n--- stdout\n{self.out}--- stderr\n{self.err}"


def evb(*argv: str, mount_of: int | None = None, cwd: Path | None = None, timeout: float = 60) -> Out:
    """``evb ARGV`` in a subprocess (inside the mount namespace of process ``mount_of`` if given)."""
    cmd = [sys.executable, "-m", "evb.cli", *argv]
    if mount_of is not None:
        cmd = [
            "nsenter",
            f"--mount=/proc/{mount_of}/ns/mnt",
            f"--root=/proc/{mount_of}/root",
            f"--wd={cwd or Path.cwd()}",
            "--",
            *cmd,
        ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False)
    return Out(res.returncode, res.stdout, res.stderr)


def ok(*argv: str, **kw: Any) -> str:
    """``evb ARGV``, which must exit 0 and print nothing on stderr; returns stdout."""
    res = evb(*argv, **kw)
    assert (res.rc, res.err) == (0, ""), f"evb {shlex.join(argv)}: {res}"
    return res.out


def table(text: str) -> list[dict[str, str]]:
    """A table printed by ``evb vsi list`` as rows of {column: cell}, cut at the header's columns."""
    lines = text.rstrip("\n").splitlines()
    if lines == ["(none)"]:
        return []
    heads = list(re.finditer(r"\S+", lines[0]))
    starts = [m.start() for m in heads] + [None]
    return [
        {h.group().lower(): line[a:b].strip() for h, a, b in zip(heads, starts[:-1], starts[1:], strict=True)}
        for line in lines[1:]
    ]


def status_lines(text: str) -> dict[str, str]:
    """``evb status`` text: {"head": first line, "EVB": ..., "ECP": ..., "frames": ..., "VSIs": ...}."""
    lines = text.rstrip("\n").splitlines()
    out = {"head": lines[0]}
    for line in lines[1:]:
        assert line.startswith("  "), text
        key, value = line.strip().split(": ", 1)
        out[key] = value
    return out


# --------------------------------------------------------------------------- the lab


@dataclass
class Pair:
    lab: Lab
    st: Agent
    br: Agent

    def assoc(self, mode: str, uuid: str, filters: list[str], *extra: str) -> Out:
        return evb("vsi", mode, "--socket", self.st.socket, "--uuid", uuid, *VSI_OPTS, *filter_args(filters), *extra)

    def lists(self) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
        """(station's, bridge's) ``evb vsi list`` tables."""
        return table(ok("vsi", "list", "--socket", self.st.socket)), table(
            ok("vsi", "list", "--socket", self.br.socket)
        )


def filter_args(filters: list[str]) -> list[str]:
    return [a for f in filters for a in ("--filter", f)]


@pytest.fixture(scope="module")
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    """Our station and our bridge, EVB negotiated."""
    with open_lab(request) as lab:
        br = lab.start_bridge(evb=BR_EVB)
        st = lab.start_station(evb=ST_EVB)
        lab.wait_evb(st, br)
        yield Pair(lab, st, br)


@pytest.fixture
def clean(pair: Pair) -> Iterator[Pair]:
    """The pair, with no VSI on either side before and after the test."""
    assert pair.st.vsis() == [] and pair.br.vsis() == []
    yield pair
    for r in pair.st.vsis():
        if r["state"] != "none":
            keys = ("uuid", "format", "manager_id", "type_id", "type_version", "filters")
            pair.st.call("vsi.request", {k: r[k] for k in keys} | {"mode": "deassoc", "wait": True})
    assert pair.st.vsis() == [] and pair.br.vsis() == []


# =========================================================================== VSI requests


def test_assoc_wait_prints_the_vsi_and_the_granted_filter(clean: Pair) -> None:
    u, filters = vsiid(0x501), [f"10-{mac(0x501)}"]
    res = clean.assoc("assoc", u, filters, "--wait")
    assert (res.rc, res.out, res.err) == (0, f"labmgr/{u}: assoc [vid=10 pcp=0 ps=False mac={mac(0x501)}]\n", "")
    # again with --json: the same VSI (ASSOC → ASSOC is a refresh), the answer as the API gives it
    res = clean.assoc("assoc", u, filters, "--wait", "--json")
    assert (res.rc, res.err) == (0, "")
    assert json.loads(res.out) == {
        "ok": True,
        "result": {
            "vsi": f"labmgr/{u}",
            "mode": "assoc",
            "filters": [{"vid": 10, "pcp": 0, "ps": False, "mac": mac(0x501)}],
        },
    }
    # PS and PCP in the top nibble of the VID word: 0xd00d = PS 1, PCP 5, VID 13
    u2 = vsiid(0x502)
    res = clean.assoc("assoc", u2, ["0xd00d"], "--wait")
    assert (res.rc, res.out, res.err) == (0, f"labmgr/{u2}: assoc [vid=13 pcp=5 ps=True]\n", "")
    res = clean.assoc("deassoc", u, filters, "--wait")
    assert (res.rc, res.out, res.err) == (0, f"labmgr/{u}: deassoc\n", "")
    # without --wait: queued, exit 0 at once; the bridge's answer comes later
    res = clean.assoc("deassoc", u2, ["0xd00d"])
    assert (res.rc, res.out, res.err) == (0, f"labmgr/{u2}: deassoc requested\n", "")
    wait_for("the de-associate answered", lambda: clean.st.vsis() == [] and clean.br.vsis() == [], timeout=10)


def test_mode_sequence_in_both_views(clean: Pair) -> None:
    """preassoc → preassoc-rr → assoc → deassoc, each step seen by ``evb vsi list`` on both sides."""
    u, filters = vsiid(0x510), [f"510-{mac(0x510)}"]
    for mode in ("preassoc", "preassoc-rr", "assoc"):
        res = clean.assoc(mode, u, filters, "--wait")
        assert (res.rc, res.out) == (0, f"labmgr/{u}: {mode} [vid=510 pcp=0 ps=False mac={mac(0x510)}]\n"), res
        st_rows, br_rows = clean.lists()
        assert st_rows == [
            {
                "vsi": f"labmgr/{u}",
                "wanted": mode,
                "state": "established",
                "confirmed": mode,
                "filters": filters[0],
                "last": mode,
            }
        ]
        assert len(br_rows) == 1
        assert {k: v for k, v in br_rows[0].items() if k != "expires_in"} == {
            "port": clean.lab.bridge.ifname,
            "vsi": f"labmgr/{u}",
            "mode": mode,
            "type_id": "5",
            "filters": filters[0],
        }
        assert float(br_rows[0]["expires_in"]) > 0  # toutKeepAlive, counting down
    res = clean.assoc("deassoc", u, filters, "--wait")
    assert (res.rc, res.out, res.err) == (0, f"labmgr/{u}: deassoc\n", "")
    assert clean.lists() == ([], [])
    assert ok("vsi", "list", "--socket", clean.st.socket) == "(none)\n"


def test_requests_refused_locally_exit_2(clean: Pair) -> None:
    u, filters = vsiid(0x520), [f"520-{mac(0x520)}"]
    assert clean.assoc("assoc", u, filters, "--wait").rc == 0
    sent = clean.st.status()["ecp"]["sent"]

    # the station's mode table (vdp.md §11): no way back from ASSOC to PREASSOC
    res = clean.assoc("preassoc", u, filters, "--wait")
    assert (res.rc, res.out) == (2, "")
    assert res.err == "evb: PREASSOC is not allowed for a VSI in ASSOC (vdp.md §11)\n"
    res = clean.assoc("preassoc", u, filters, "--wait", "--json")
    assert (res.rc, json.loads(res.out)) == (
        2,
        {"ok": False, "error": {"code": "E_NOT_ALLOWED", "message": res.err.removeprefix("evb: ").rstrip("\n")}},
    )

    # de-associate of a VSI the station does not know
    other = vsiid(0x5FF)
    res = clean.assoc("deassoc", other, filters, "--wait")
    assert (res.rc, res.out) == (2, "")
    assert res.err == f"evb: no VSI labmgr/{other} on {clean.lab.station.ifname}\n"

    # filters that are not one of the four forms, or mix them
    for bad, reason in [
        (["10-02:00:00:00:01"], "'02:00:00:00:01' is not a MAC address aa:bb:cc:dd:ee:ff"),
        (["10-020000000101"], "'020000000101' is not a MAC address aa:bb:cc:dd:ee:ff"),
        (["ten"], "VID 'ten' is not a number"),
        (["70000"], "VID word 70000 is outside 0..65535"),
        (["10--0"], "group 0 is outside 1..2^32-1"),
        (["10-02:00:00:00:01:01-3-4"], "expected VID, VID-MAC, VID--GROUP or VID-MAC-GROUP"),
    ]:
        res = clean.assoc("assoc", vsiid(0x521), bad, "--wait")
        assert (res.rc, res.out, res.err) == (2, "", f"evb: --filter {bad[0]!r}: {reason}\n"), bad
    res = clean.assoc("assoc", vsiid(0x521), ["10", f"11-{mac(0x521)}"], "--wait")
    assert res.rc == 2
    assert res.err == "evb: all filters of a VSI must have the same form (VID, VID-MAC, VID--GROUP or VID-MAC-GROUP)\n"

    # nothing of this reached the bridge: the VSI is still associated, and nothing was sent for it
    st_rows, br_rows = clean.lists()
    assert [(r["vsi"], r["confirmed"]) for r in st_rows] == [(f"labmgr/{u}", "assoc")]
    assert [(r["vsi"], r["mode"]) for r in br_rows] == [(f"labmgr/{u}", "assoc")]
    assert clean.st.status()["ecp"]["sent"] == sent


def test_no_daemon_exit_3(pair: Pair) -> None:
    gone = str(pair.lab.workdir / "nobody.sock")
    for argv in (
        ["vsi", "assoc", "--socket", gone, "--uuid", vsiid(1), *VSI_OPTS, "--filter", "10", "--wait"],
        ["vsi", "list", "--socket", gone],
        ["vsi", "show", "0001", "--socket", gone],
        ["status", "--socket", gone],
        ["bridge", "status", "--socket", gone],
    ):
        res = evb(*argv)
        assert (res.rc, res.out) == (3, ""), argv
        assert res.err == f"evb: no daemon listens on {gone} (No such file or directory); is it running?\n"


# =========================================================================== many VSIs from a file


def vsis_toml(ns: range, *, broken: dict[int, str] | None = None) -> str:
    """``[[vsi]]`` tables for VSIs ``ns``; ``broken`` replaces the filters line of some entries."""
    broken = broken or {}
    out = []
    for i, n in enumerate(ns):
        filters = broken.get(i, f'filters = ["{n & 0xFFF}-{mac(n)}"]')
        out.append(f'[[vsi]]\nuuid = "{vsiid(n)}"\ntype_id = 5\ntype_version = 4\nmanager_id = "labmgr"\n{filters}\n')
    return "\n".join(out)


def test_300_vsis_from_a_file(clean: Pair) -> None:
    ns = range(0x1000, 0x1000 + 300)
    path = clean.lab.workdir / "vsis.toml"
    path.write_text(vsis_toml(ns))
    want = {f"labmgr/{vsiid(n)}" for n in ns}

    res = evb("vsi", "assoc", "--socket", clean.st.socket, "--from-file", str(path))
    assert (res.rc, res.out, res.err) == (0, "300 requested, 300 answered ok, 0 failed\n", "")
    st_rows, br_rows = clean.lists()
    assert {r["vsi"] for r in st_rows} == want and len(st_rows) == 300
    assert {r["confirmed"] for r in st_rows} == {"assoc"}
    assert {r["vsi"] for r in br_rows} == want and len(br_rows) == 300
    assert {r["mode"] for r in br_rows} == {"assoc"}
    assert status_lines(ok("status", "--socket", clean.st.socket))["VSIs"] == "assoc 300"
    assert status_lines(ok("bridge", "status", "--socket", clean.br.socket))["VSIs"] == "assoc 300"

    # all 300 de-associated in one go. (Each answered de-associate used to rewrite and fsync the
    # state file: about 9 ms per VSI stalled the station for ~0.4 s per ECPDU of 42 answers, past
    # the bridge's ECP retries, which gave answers up; with keep-alives of 10 µs × 2^14 the VSIs
    # waiting behind timed out at the bridge: "300 requested, 84 answered ok, 216 failed".)
    abandoned = clean.br.status()["ecp"]["abandoned"]
    res = evb("vsi", "deassoc", "--socket", clean.st.socket, "--from-file", str(path), "--json")
    assert (res.rc, res.err) == (0, "")
    assert json.loads(res.out) == {"requested": 300, "ok": 300, "failed": 0, "errors": []}
    assert clean.lists() == ([], [])
    # the station acknowledged every answer in time (1 + R = 5 tries, 41 ms apart): none given up
    assert clean.br.status()["ecp"]["abandoned"] == abandoned
    timeouts = [e for e in clean.br.events("vdp.vsi_deassociated") if e["reason"] != "deassociated"]
    assert timeouts == []


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('filters = ["117-02:00:00:01:00"]', "--filter '117-02:00:00:01:00': '02:00:00:01:00' is not a MAC address"),
        ('filters = ["117", "118-02:00:00:01:00:76"]', "all filters of a VSI must have the same form"),
        ("filters = []", "at least one --filter is needed"),
        ('filters = ["117"]\nhints = "sideways"', "hints must be none, to or from"),
        ('filters = ["117"]\ncolour = "red"', "unknown keys ['colour']"),
        (
            'filters = ["117"]\nformat = "ipv4"',
            "--uuid '5a0f1c2e-1011-4d3c-8e21-0a0000001011' is not a VSIID of format ipv4",
        ),
    ],
    ids=["bad-mac", "mixed-forms", "no-filter", "bad-hints", "unknown-key", "uuid-not-ipv4"],
)
def test_vsis_file_with_a_broken_entry(clean: Pair, line: str, reason: str) -> None:
    """One broken entry among 30: exit 2 naming the file and the entry; nothing is requested."""
    path = clean.lab.workdir / "broken.toml"
    path.write_text(vsis_toml(range(0x1000, 0x1000 + 30), broken={17: line}))
    sent = clean.st.status()["ecp"]["sent"]
    res = evb("vsi", "assoc", "--socket", clean.st.socket, "--from-file", str(path))
    assert (res.rc, res.out) == (2, ""), res
    assert res.err.startswith(f"evb: {path}: vsi[17]: ") and reason in res.err, res.err
    assert clean.lists() == ([], [])
    assert clean.st.status()["ecp"]["sent"] == sent


# =========================================================================== status


def test_status_text_and_json(clean: Pair) -> None:
    st, br = clean.st, clean.br
    for n, mode in ((0x530, "preassoc"), (0x531, "preassoc-rr"), (0x532, "assoc"), (0x533, "assoc")):
        assert clean.assoc(mode, vsiid(n), [f"{n}-{mac(n)}"], "--wait").rc == 0

    for argv, role, local_mac, by in (
        (["status", "--socket", st.socket], "station", STATION_MAC, "vsis_by_state"),
        (["bridge", "status", "--socket", br.socket], "bridge", BRIDGE_MAC, "vsis_by_mode"),
    ):
        before = json.loads(ok(*argv, "--json"))
        text = status_lines(ok(*argv))
        after = json.loads(ok(*argv, "--json"))
        if role == "bridge":  # {"ports": [...]}: one entry per port
            assert [len(x["ports"]) for x in (before, after)] == [1, 1]
            before, after = before["ports"][0], after["ports"][0]
        ifname = clean.lab.side(role).ifname
        assert text["head"] == f"{ifname} ({role}, {local_mac}), link up"
        assert text["EVB"] == f"negotiated; {OPER}; reflective relay on; group IDs usable"
        assert {
            k: after["evb"][k] for k in ("negotiated", "r", "rte", "rwd", "rka", "reflective_relay", "group_ids")
        } == {
            "negotiated": True,
            "r": 4,
            "rte": 12,
            "rwd": 20,
            "rka": 20,
            "reflective_relay": True,
            "group_ids": True,
        }
        assert text["VSIs"] == "assoc 2, preassoc 1, preassoc-rr 1"
        assert after[by] == {"assoc": 2, "preassoc": 1, "preassoc-rr": 1}
        # the counters of the text lie between those of the JSON answers before and after it
        m = re.fullmatch(
            r"sent (\d+) \(retransmitted (\d+), abandoned (\d+)\), received (\d+) \(duplicates (\d+)\)", text["ECP"]
        )
        assert m is not None, text["ECP"]
        keys = ("sent", "retransmissions", "abandoned", "received", "duplicates")
        for key, value in zip(keys, m.groups(), strict=True):
            assert before["ecp"][key] <= int(value) <= after["ecp"][key], (key, text["ECP"])
        assert before["ecp"]["sent"] >= 4 and before["ecp"]["received"] >= 4  # the four requests / answers
        m = re.fullmatch(r"in (\d+), out (\d+), dropped (\d+), ignored (\d+)", text["frames"])
        assert m is not None, text["frames"]
        for key, value in zip(("frames_in", "frames_out", "dropped", "ignored"), m.groups(), strict=True):
            assert before["frames"][key] <= int(value) <= after["frames"][key], (key, text["frames"])
        assert after["frames"]["dropped"] == 0
        assert after["lldp"]["neighbors"] == 1
    # each side's view of the other's EVB TLV is what the other sends
    st_json = json.loads(ok("status", "--socket", st.socket, "--json"))
    br_json = json.loads(ok("bridge", "status", "--socket", br.socket, "--json"))["ports"][0]
    assert st_json["evb"]["peer_tlv"] == br_json["evb"]["local_tlv"]
    assert br_json["evb"]["peer_tlv"] == st_json["evb"]["local_tlv"]
    assert st_json["wanted"] == 4


# =========================================================================== show


def show_blocks(text: str) -> list[dict[str, str]]:
    """``evb vsi show`` text: one block of ``key: value`` lines per VSI, blank line after each."""
    blocks = []
    for chunk in text.strip("\n").split("\n\n"):
        block = {}
        for line in chunk.splitlines():
            key, value = line.split(": ", 1)
            block[key.strip()] = value
        blocks.append(block)
    return blocks


def test_vsi_show_part_of_the_uuid(clean: Pair) -> None:
    st, br = clean.st, clean.br
    for n in (0x540, 0x541):
        assert clean.assoc("assoc", vsiid(n), [f"{n}-{mac(n)}"], "--wait").rc == 0
    u = vsiid(0x541)

    blocks = show_blocks(ok("vsi", "show", "0541-4d3c", "--socket", st.socket))
    assert blocks == [
        {
            "vsi": f"labmgr/{u}",
            "manager_id": "labmgr",
            "type_id": "5",
            "type_version": "4",
            "format": "uuid",
            "uuid": u,
            "filters": f"1345-{mac(0x541)}",  # 0x541 = 1345
            "wanted": "assoc",
            "state": "established",
            "confirmed": "assoc",
            "granted": f"1345-{mac(0x541)}",
            "hints": "none",
            "last": "assoc",
        }
    ]
    # upper case matches too; the bridge's view
    blocks = show_blocks(ok("vsi", "show", "0A0000000541", "--socket", br.socket))
    assert [{k: v for k, v in b.items() if k != "expires_in"} for b in blocks] == [
        {
            "port": clean.lab.bridge.ifname,
            "vsi": f"labmgr/{u}",
            "mode": "assoc",
            "type_id": "5",
            "type_version": "4",
            "filters": f"1345-{mac(0x541)}",
        }
    ]
    # a part common to both: both shown; --json
    rows = json.loads(ok("vsi", "show", "5a0f1c2e-054", "--socket", st.socket, "--json"))
    assert [r["uuid"] for r in rows] == [vsiid(0x540), u]
    assert len(show_blocks(ok("vsi", "show", "5a0f1c2e-054", "--socket", br.socket))) == 2
    # no match: exit 2
    for sock in (st.socket, br.socket):
        res = evb("vsi", "show", "deadbeef", "--socket", sock)
        assert (res.rc, res.out, res.err) == (2, "", "evb: no VSI matching 'deadbeef'\n")


# =========================================================================== formats


@pytest.mark.parametrize(
    ("fmt", "given", "shown"),
    [
        ("uuid", "5A0F1C2E-0550-4D3C-8E21-0A0000000550", vsiid(0x550)),
        ("uuid", f"urn:uuid:{vsiid(0x551)}", vsiid(0x551)),
        ("mac", "02-00-00-00-05-52", "02:00:00:00:05:52"),
        ("ipv4", "10.0.5.83", "10.0.5.83"),
        ("ipv6", "FD00:0:0:0::554", "fd00::554"),
        ("local", "0555", "05550000000000000000000000000000"),
    ],
    ids=["uuid", "uuid-urn", "mac", "ipv4", "ipv6", "local"],
)
def test_vsiid_formats(clean: Pair, fmt: str, given: str, shown: str) -> None:
    """--format with --uuid in that format's notation; both views show the VSIID in its canonical form."""
    vsi = ["--socket", clean.st.socket, "--format", fmt, "--uuid", given, *VSI_OPTS, "--filter", "1365", "--wait"]
    res = evb("vsi", "assoc", *vsi)
    assert (res.rc, res.out, res.err) == (0, f"labmgr/{shown}: assoc [vid=1365 pcp=0 ps=False]\n", ""), res
    st_rows, br_rows = clean.lists()
    assert [(r["vsi"], r["confirmed"], r["filters"]) for r in st_rows] == [(f"labmgr/{shown}", "assoc", "1365")]
    assert [(r["vsi"], r["mode"], r["filters"]) for r in br_rows] == [(f"labmgr/{shown}", "assoc", "1365")]
    (shown_row,) = json.loads(ok("vsi", "show", shown, "--socket", clean.st.socket, "--json"))
    assert (shown_row["format"], shown_row["uuid"]) == (fmt, shown)
    res = evb("vsi", "deassoc", *vsi)
    assert (res.rc, res.out) == (0, f"labmgr/{shown}: deassoc\n"), res


def test_vsiid_not_of_its_format_exit_2(clean: Pair) -> None:
    for fmt, given in (("ipv4", "10.0.0.256"), ("mac", "02:00:00:00:05"), ("uuid", "not-a-uuid"), ("ipv6", "fd00::g")):
        vsi = ["--socket", clean.st.socket, "--format", fmt, "--uuid", given, *VSI_OPTS, "--filter", "10", "--wait"]
        res = evb("vsi", "assoc", *vsi)
        assert (res.rc, res.out) == (2, "")
        assert res.err.startswith(f"evb: --uuid {given!r} is not a VSIID of format {fmt} ("), res.err


@pytest.mark.parametrize(
    ("n", "filters", "printed"),
    [
        (0x561, ["1377"], "vid=1377 pcp=0 ps=False"),
        (
            0x562,
            [f"98-{mac(0x562)}", f"0xa062-{mac(0x1562)}"],
            f"vid=98 pcp=0 ps=False mac={mac(0x562)}, vid=98 pcp=2 ps=True mac={mac(0x1562)}",
        ),
        (0x563, ["99--3001"], "vid=99 pcp=0 ps=False group=3001"),
        (0x564, [f"100-{mac(0x564)}-3002"], f"vid=100 pcp=0 ps=False mac={mac(0x564)} group=3002"),
        (0x565, [f"0-{mac(0x565)}"], f"vid=0 pcp=0 ps=False mac={mac(0x565)}"),
        (0x566, ["0xd066"], "vid=102 pcp=5 ps=True"),
    ],
    ids=["format1", "format2", "format3", "format4", "vid0", "ps-pcp"],
)
def test_filter_formats(clean: Pair, n: int, filters: list[str], printed: str) -> None:
    """Filter formats 1-4 (3 and 4 carry group IDs: negotiated with gid on both sides), shown by
    both views in the notation of --filter."""
    u = vsiid(n)
    res = clean.assoc("assoc", u, filters, "--wait")
    assert (res.rc, res.out, res.err) == (0, f"labmgr/{u}: assoc [{printed}]\n", ""), res
    st_rows, br_rows = clean.lists()
    listed = ",".join(filters)
    assert [(r["vsi"], r["filters"]) for r in st_rows] == [(f"labmgr/{u}", listed)]
    # the bridge lists what it granted; it used to print format 3 as VID-GROUP ("99-3001", which
    # reads as a VID-MAC) and to drop PS/PCP ("102" for 0xd066)
    assert [(r["vsi"], r["filters"]) for r in br_rows] == [(f"labmgr/{u}", listed)]
    assert clean.assoc("deassoc", u, filters, "--wait").rc == 0


# =========================================================================== starting and stopping


@pytest.mark.parametrize(
    ("role", "text", "line", "key", "message"),
    [
        (
            "station",
            "[station]\n\n[evb]\nrte = 12\nrkx = 3\n",
            5,
            "evb.rkx",
            "unknown key (known: gid, retries, rka, rrreq, rte, rwd)",
        ),
        ("station", "[evb]\nrka = 40\n", 2, "evb.rka", "40 is outside 0..31"),
        ("station", "[vdp]\nmin_gap_ms = 3\nmax_per_pdu = 'many'\n", 3, "vdp.max_per_pdu", "must be int, not 'many'"),
        ("station", "[vpd]\nmax_per_pdu = 1\n", 1, "vpd", "unknown table (known: evb, mqtt, station, vdp)"),
        ("bridge", "[evb]\nrrreq = true\n", 2, "evb.rrreq", "unknown key (known: gid, retries, rka, rrcap, rte, rwd)"),
        ("bridge", "[vdp]\nmax_vsis = -1\n", 2, "vdp.max_vsis", "-1 is outside 0..10000000"),
    ],
    ids=["unknown-key", "out-of-range", "wrong-type", "unknown-table", "bridge-unknown-key", "bridge-out-of-range"],
)
def test_run_refuses_a_bad_config(pair: Pair, role: str, text: str, line: int, key: str, message: str) -> None:
    """exit 2, ``FILE:LINE: KEY: why`` on stderr, and nothing started (no socket, no state file)."""
    lab, side = pair.lab, pair.lab.side(role)
    conf = lab.workdir / f"bad-{role}.toml"
    conf.write_text(text)
    sock, state = lab.workdir / "bad.sock", lab.workdir / "bad.state.json"
    where = ["--iface", side.ifname, "--state", str(state)] if role == "station" else ["--port", side.ifname]
    argv = [sys.executable, "-m", "evb.cli", role, "run", "--config", str(conf), "--socket", str(sock), *where]
    res = run(argv, ns=side.ns, check=False, timeout=20)
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr == f"evb {role} run: {conf}:{line}: {key}: {message}\n"
    assert not sock.exists() and not state.exists()


@pytest.mark.parametrize("role", ["station", "bridge"])
def test_run_on_a_missing_interface(pair: Pair, role: str) -> None:
    lab = pair.lab
    sock, state = lab.workdir / "missing.sock", lab.workdir / "missing.state.json"
    where = ["--iface", "nosuch0", "--state", str(state)] if role == "station" else ["--port", "nosuch0"]
    argv = [sys.executable, "-m", "evb.cli", role, "run", "--socket", str(sock), *where]
    res = run(argv, ns=lab.side(role).ns, check=False, timeout=20)
    port = "" if role == "station" else "port "
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr == f"evb {role} run: cannot open {port}nosuch0: no interface with this name\n"
    assert not sock.exists() and not state.exists()


def _events(agent: Agent, name: str, since: int) -> list[dict[str, Any]]:
    return [r for r in agent.log_records()[since:] if r.get("event") == name]


def _stop_in_time(agent: Agent) -> float:
    t0 = time.monotonic()
    assert agent.stop() == 0
    took = time.monotonic() - t0
    assert took < 3.0, f"{agent.name} took {took:.1f} s to stop"
    return took


def test_sigterm_leaves_with_ttl_0(request: pytest.FixtureRequest) -> None:
    """SIGTERM: the agent exits 0 at once; the peer hears LLDP TTL 0 (neighbor removed, EVB lost)."""
    with open_lab(request) as lab:
        br = lab.start_bridge(evb=BR_EVB)
        st = lab.start_station(evb=ST_EVB)
        lab.wait_evb(st, br)
        u, filters = vsiid(0x570), [f"570-{mac(0x570)}"]
        vsi = ["--socket", st.socket, "--uuid", u, *VSI_OPTS, *filter_args(filters), "--wait"]
        assert evb("vsi", "assoc", *vsi).rc == 0

        # the bridge goes: the station suspends its VSI
        mark = len(st.log_records())
        _stop_in_time(br)
        assert not Path(br.socket).exists()
        removed = wait_for("the station to hear TTL 0", lambda: _events(st, "lldp.neighbor_removed", mark), timeout=5)
        assert removed[0]["msap"] == f"{BRIDGE_MAC}/{BRIDGE_MAC}"
        assert _events(st, "lldp.evb_lost", mark) != []
        assert _events(st, "lldp.neighbor_aged", mark) == []  # not aged out: told
        text = status_lines(ok("status", "--socket", st.socket))
        assert text["EVB"].startswith("no EVB peer; ")
        assert [(r["vsi"], r["wanted"], r["state"]) for r in table(ok("vsi", "list", "--socket", st.socket))] == [
            (f"labmgr/{u}", "assoc", "suspended")
        ]
        res = evb("bridge", "status", "--socket", br.socket)
        assert res.rc == 3

        # the bridge is back: the VSI is asked for again
        br.start()
        lab.wait_evb(st, br)
        wait_for("the VSI back", lambda: [r["mode"] for r in br.vsis()] == ["assoc"], timeout=10)

        # the station goes: the bridge releases the VSI
        mark = len(br.log_records())
        _stop_in_time(st)
        removed = wait_for("the bridge to hear TTL 0", lambda: _events(br, "lldp.neighbor_removed", mark), timeout=5)
        assert removed[0]["msap"] == f"{STATION_MAC}/{STATION_MAC}"
        assert _events(br, "lldp.evb_lost", mark) != []
        released = _events(br, "vdp.vsi_deassociated", mark)
        assert [(e["vsiid"], e["reason"]) for e in released] == [(f"labmgr/{u}", "peer-lost")]
        assert ok("vsi", "list", "--socket", br.socket) == "(none)\n"
        text = status_lines(ok("bridge", "status", "--socket", br.socket))
        assert text["EVB"].startswith("no EVB peer; ") and text["VSIs"] == "none"
        for agent in (st, br):
            assert "Traceback" not in agent.log.read_text()


# =========================================================================== the README


def readme_commands() -> list[list[str]]:
    """The commands of the README's "Live agents" block (continuations joined, comments dropped)."""
    text = README.read_text()
    m = re.search(r"### Live agents[^\n]*\n+```sh\n(.*?)\n```", text, re.S)
    assert m is not None, "README: no ```sh block under '### Live agents'"
    cmds = []
    for line in m.group(1).replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            cmds.append(words)
    return cmds


PRIVATE_DIRS = [  # a private mount namespace with empty /run and /var/lib, then the command
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-c",
    'mount -t tmpfs evb-run /run && mount -t tmpfs evb-lib /var/lib && exec "$@"',
    "sh",
]
README_FILE = "\n".join(
    [
        '[[vsi]]\nuuid = "5a0f1c2e-0002-4d3c-8e21-0a0000000002"\ntype_id = 5\ntype_version = 4',
        'manager_id = "labmgr"\nfilters = ["11-02:00:00:00:01:02"]\n',
        '[[vsi]]\nuuid = "02:00:00:00:01:03"\nformat = "mac"\nhints = "to"\ntype_id = 5\ntype_version = 4',
        'manager_id = "labmgr"\nfilters = ["12-02:00:00:00:01:03"]\n',
    ]
)


@pytest.mark.skipif(shutil.which("nsenter") is None, reason="needs nsenter (util-linux)")
def test_readme_live_agents(request: pytest.FixtureRequest) -> None:
    """The README's example session, command by command, with the default sockets and state file."""
    cmds = readme_commands()
    assert [c[:3] for c in cmds] == [
        ["evb", "bridge", "run"],
        ["evb", "station", "run"],
        ["evb", "status", "--iface"],
        ["evb", "vsi", "assoc"],
        ["evb", "vsi", "assoc"],
        ["evb", "vsi", "list"],
        ["evb", "bridge", "status"],
    ], "the README's Live agents block changed: update this test"
    with open_lab(request) as lab:
        st_if, br_if, br_if2 = lab.station.ifname, lab.bridge.ifname, f"{lab.prefix}-b2"
        run(["ip", "-n", lab.bridge.ns, "link", "add", br_if2, "type", "veth", "peer", "name", f"{lab.prefix}-x2"])
        for name in (br_if2, f"{lab.prefix}-x2"):
            run(["ip", "-n", lab.bridge.ns, "link", "set", name, "up"])
        names = {"eth0": st_if, "eth1": br_if, "eth2": br_if2}

        def subst(cmd: list[str]) -> list[str]:
            return [names.get(w, w) for w in cmd if w != "&"]

        daemons = {}
        for cmd, side in ((cmds[0], lab.bridge), (cmds[1], lab.station)):
            assert cmd[-1] == "&"
            proc = lab.spawn(
                cmd[1],
                [*PRIVATE_DIRS, sys.executable, "-m", "evb.cli", *subst(cmd)[1:]],
                ns=side.ns,
                log=lab.workdir / f"readme-{cmd[1]}.log",
            )
            daemons[cmd[1]] = proc
        br_pid, st_pid = daemons["bridge"].pid, daemons["station"].pid
        br_sock = f"/proc/{br_pid}/root/run/evb/bridge.sock"
        st_sock = f"/proc/{st_pid}/root/run/evb/station-{st_if}.sock"

        def negotiated() -> bool:
            for proc in daemons.values():
                proc.check_alive()
            try:
                call(br_sock, "status", timeout=2)
                return bool(call(st_sock, "status", timeout=2)["evb"]["negotiated"])
            except (ConnectError, OSError):
                return False

        wait_for("the README's station to negotiate EVB", negotiated, timeout=20)
        in_station = {"mount_of": st_pid, "cwd": lab.workdir}
        in_bridge = {"mount_of": br_pid, "cwd": lab.workdir}
        (lab.workdir / "vsis.toml").write_text(README_FILE)
        uuid1 = "5a0f1c2e-0001-4d3c-8e21-0a0000000001"

        # evb status --iface eth0
        text = status_lines(ok(*subst(cmds[2])[1:], **in_station))
        assert text["head"] == f"{st_if} (station, {STATION_MAC}), link up"
        assert text["EVB"] == "negotiated; R=3 RTE=8 RWD=20 RKA=20; reflective relay on; group IDs not usable"
        assert text["VSIs"] == "none"
        # evb vsi assoc --iface eth0 --uuid ... --wait
        vsi = ["--uuid", uuid1, *VSI_OPTS, "--filter", "10-02:00:00:00:01:01", "--wait"]
        assert subst(cmds[3])[1:] == ["vsi", "assoc", "--iface", st_if, *vsi]
        out = ok(*subst(cmds[3])[1:], **in_station)
        assert out == f"labmgr/{uuid1}: assoc [vid=10 pcp=0 ps=False mac=02:00:00:00:01:01]\n"
        # evb vsi assoc --iface eth0 --from-file vsis.toml
        assert ok(*subst(cmds[4])[1:], **in_station) == "2 requested, 2 answered ok, 0 failed\n"
        # evb vsi list --iface eth0, and (the comment) evb vsi list --bridge
        assert cmds[5][3:] == ["--iface", "eth0"] and "evb vsi list --bridge" in README.read_text()
        want = [f"labmgr/{uuid1}", "labmgr/5a0f1c2e-0002-4d3c-8e21-0a0000000002", "labmgr/02:00:00:00:01:03"]
        st_rows = table(ok(*subst(cmds[5])[1:], **in_station))
        assert [(r["vsi"], r["confirmed"]) for r in st_rows] == [(v, "assoc") for v in want]
        br_rows = table(ok("vsi", "list", "--bridge", **in_bridge))
        assert sorted((r["port"], r["vsi"], r["mode"]) for r in br_rows) == sorted((br_if, v, "assoc") for v in want)
        # evb bridge status --json: both ports, the second without a station
        doc = json.loads(ok(*subst(cmds[6])[1:], **in_bridge))
        ports = {p["ifname"]: p for p in doc["ports"]}
        assert list(ports) == [br_if, br_if2]
        assert ports[br_if]["evb"]["negotiated"] is True and ports[br_if]["vsis_by_mode"] == {"assoc": 3}
        assert ports[br_if2]["evb"]["negotiated"] is False and ports[br_if2]["vsis_by_mode"] == {}
        assert ports[br_if2]["link_up"] is True and ports[br_if2]["evb"]["peer_seen"] is False
        # the desired VSIs are kept in the station's state file (default /var/lib/evb/station-IF.json)
        state = json.loads(Path(f"/proc/{st_pid}/root/var/lib/evb/station-{st_if}.json").read_text())
        assert [v["mode"] for v in state["vsis"]] == ["assoc"] * 3
        assert state["vsis"][2]["hints"] == "to"
        # and nothing of it on the host
        assert not Path(f"/run/evb/station-{st_if}.sock").exists()
        assert not Path(f"/var/lib/evb/station-{st_if}.json").exists()
        # "stop cleanly on SIGTERM"
        for proc in daemons.values():
            assert proc.stop() == 0
        for name in daemons:
            log = (lab.workdir / f"readme-{name}.log").read_text()
            assert f'"event": "{name}.stopped"' in log and "Traceback" not in log
