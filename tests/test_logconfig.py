"""evb/logconfig.py: the log vocabulary is the event vocabulary (house style §8).

An event is logged as ``<layer>.<snake_case class name>``: the layer is the package of its
events module (``evb/vdp/events.py`` → ``vdp``), and ``evb/events.py`` (port-level) is ``port``.
Fields are made readable: a VSI key as ``manager/vsiid`` in its format's notation, MACs with
colons, enums by name; the whole EVB TLVs of ``EvbNegotiated`` are left out (too long).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from evb.ecp.events import UlpduAbandoned
from evb.events import FrameDropped
from evb.lldp.events import (
    EvbLost,
    EvbNegotiated,
    NeighborAdded,
    NeighborAged,
    NeighborRemoved,
    NeighborUpdated,
    TooManyNeighbors,
)
from evb.lldp.negotiate import EvbConfig, Role, local_tlv
from evb.logconfig import configure, event_fields, event_name, log_event, readable
from evb.vdp.events import VdpViolation, VsiAssociated, VsiDeassociated, VsiRejected
from evb.vdp.wire import FilterEntry, VdpMode, VsiidFormat
from tests.helpers import BRIDGE_MAC, LABMGR, STATION_MAC, U1

KEY = (LABMGR, VsiidFormat.UUID, U1)
MSAP = (4, BRIDGE_MAC, 3, BRIDGE_MAC)  # chassis ID subtype 4 (MAC), port ID subtype 3 (MAC)
TLV = local_tlv(EvbConfig(role=Role.STATION), None)


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    yield
    structlog.reset_defaults()  # configure() is global: leave no trace for other tests


@pytest.mark.parametrize(
    ("event", "name"),
    [
        (VsiAssociated(key=KEY, mode=VdpMode.ASSOC, type_id=5, type_version=4, entries=()), "vdp.vsi_associated"),
        (VsiDeassociated(key=KEY, reason="timeout"), "vdp.vsi_deassociated"),
        (VsiRejected(key=KEY, mode=VdpMode.ASSOC, code=2, keep=False, hard=False), "vdp.vsi_rejected"),
        (VdpViolation(reason="x"), "vdp.vdp_violation"),
        (
            EvbNegotiated(r=3, rte=8, rwd=20, rka=20, rr=True, group_ids=False, local=TLV, peer=TLV),
            "lldp.evb_negotiated",
        ),
        (EvbLost(reason="aged"), "lldp.evb_lost"),
        (NeighborAdded(msap=MSAP, ttl=120), "lldp.neighbor_added"),
        (NeighborUpdated(msap=MSAP), "lldp.neighbor_updated"),
        (NeighborAged(msap=MSAP), "lldp.neighbor_aged"),
        (NeighborRemoved(msap=MSAP), "lldp.neighbor_removed"),
        (TooManyNeighbors(msap=MSAP), "lldp.too_many_neighbors"),
        (UlpduAbandoned(seq=7, tries=4, subtype=1), "ecp.ulpdu_abandoned"),
        (FrameDropped(pdu="ecp", field="seq", offset=15, reason="short"), "port.frame_dropped"),
    ],
)
def test_event_name(event: object, name: str) -> None:
    assert event_name(event) == name


def test_vsi_associated_fields_are_readable() -> None:
    ev = VsiAssociated(
        key=KEY,
        mode=VdpMode.PREASSOC_RR,
        type_id=5,
        type_version=4,
        entries=(FilterEntry(vid=10, mac=bytes.fromhex("020000000101")), FilterEntry(vid=13, pcp=5, ps=True)),
    )
    assert event_fields(ev) == {
        "vsiid": "labmgr/5a0f1c2e-0001-4d3c-8e21-0a0000000001",  # the key, as text, under "vsiid"
        "mode": "preassoc_rr",
        "type_id": 5,
        "type_version": 4,
        "entries": [
            {"vid": 10, "pcp": 0, "ps": False, "mac": "02:00:00:00:01:01", "group_id": None},
            {"vid": 13, "pcp": 5, "ps": True, "mac": None, "group_id": None},
        ],
    }


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ((LABMGR, VsiidFormat.MAC, bytes(10) + bytes.fromhex("5254008eaa11")), "labmgr/52:54:00:8e:aa:11"),
        ((LABMGR, VsiidFormat.IPV4, bytes(10) + bytes.fromhex("ffffc0000207")), "labmgr/192.0.2.7"),
        ((LABMGR, VsiidFormat.IPV6, bytes.fromhex("20010db8" + "00" * 11 + "01")), "labmgr/2001:db8::1"),
        ((LABMGR, VsiidFormat.LOCAL, bytes(range(16))), "labmgr/" + bytes(range(16)).hex()),
        ((bytes(range(16)), VsiidFormat.UUID, U1), bytes(range(16)).hex() + "/5a0f1c2e-0001-4d3c-8e21-0a0000000001"),
    ],
)
def test_vsiid_text_per_format(key: tuple[bytes, int, bytes], text: str) -> None:
    assert event_fields(VsiDeassociated(key=key, reason="bridge", code=3, hard=True)) == {
        "vsiid": text,
        "reason": "bridge",
        "code": 3,
        "hard": True,
    }


def test_evb_negotiated_leaves_the_tlvs_out() -> None:
    ev = EvbNegotiated(r=3, rte=8, rwd=20, rka=20, rr=True, group_ids=False, local=TLV, peer=TLV)
    assert event_fields(ev) == {"r": 3, "rte": 8, "rwd": 20, "rka": 20, "rr": True, "group_ids": False}


def test_msap_and_macs_with_colons() -> None:
    assert event_fields(NeighborAdded(msap=(4, STATION_MAC, 3, BRIDGE_MAC), ttl=120)) == {
        "msap": "02:00:00:00:0a:01/02:00:00:00:0b:01",
        "ttl": 120,
    }
    assert readable("mac", BRIDGE_MAC) == "02:00:00:00:0b:01"
    assert readable("vsiid", U1) == U1.hex()  # not 6 octets: hex
    assert readable("mode", VdpMode.DEASSOC) == "deassoc"
    assert readable("x", (1, b"\x01\x02")) == [1, "0102"]


def test_not_a_dataclass_has_no_fields() -> None:
    assert event_fields(object()) == {}


def test_log_event_with_capture_logs() -> None:
    log = structlog.get_logger().bind(ifname="veth0", role="station")
    with capture_logs() as logs:
        log_event(log, UlpduAbandoned(seq=1, tries=3, subtype=1))
        log_event(log, FrameDropped(pdu="lldp", field="ttl", offset=20, reason="missing"), level="warning")
    assert logs == [
        {
            "ifname": "veth0",
            "role": "station",
            "seq": 1,
            "tries": 3,
            "subtype": 1,
            "event": "ecp.ulpdu_abandoned",
            "log_level": "info",
        },
        {
            "ifname": "veth0",
            "role": "station",
            "pdu": "lldp",
            "field": "ttl",
            "offset": 20,
            "reason": "missing",
            "event": "port.frame_dropped",
            "log_level": "warning",
        },
    ]


def test_configure_json_renders_json_lines() -> None:
    stream = io.StringIO()
    configure("json", "info", stream=stream)
    log = structlog.get_logger().bind(ifname="veth0")
    log_event(log, VsiDeassociated(key=KEY, reason="timeout"))
    log.debug("not.shown")  # below the level
    log.warning("aio.send_failed", error="ENOBUFS")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    for line in lines:
        assert line.pop("timestamp").endswith("Z")  # ISO 8601, UTC
    assert lines == [
        {
            "ifname": "veth0",
            "vsiid": "labmgr/5a0f1c2e-0001-4d3c-8e21-0a0000000001",
            "reason": "timeout",
            "code": 0,
            "hard": False,
            "event": "vdp.vsi_deassociated",
            "level": "info",
        },
        {"ifname": "veth0", "error": "ENOBUFS", "event": "aio.send_failed", "level": "warning"},
    ]


def test_configure_level_filters() -> None:
    stream = io.StringIO()
    configure("json", "warning", stream=stream)
    structlog.get_logger().info("quiet")
    structlog.get_logger().error("loud")
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["loud"]


def test_configure_auto_is_json_when_not_a_terminal() -> None:
    stream = io.StringIO()  # isatty() is False
    configure("auto", "debug", stream=stream)
    structlog.get_logger().debug("x.y", n=1)
    doc = json.loads(stream.getvalue())
    assert (doc["event"], doc["n"], doc["level"]) == ("x.y", 1, "debug")


def test_configure_console_is_not_json() -> None:
    stream = io.StringIO()
    configure("console", "info", stream=stream)
    structlog.get_logger().info("vdp.vsi_associated", vsiid="labmgr/u1")
    text = stream.getvalue()
    assert "vdp.vsi_associated" in text
    assert "vsiid=labmgr/u1" in text
    assert "\x1b[" not in text  # no colours when the stream is not a terminal
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
