"""evb/cli_ctl.py without a broker: options, commands built, replies read, the watch table, the
VSI type database's entries (policy.toml ⇄ retained JSON) and exit codes of bad input.

Bad input is refused (exit 2) before any connection is tried: these tests point ``--broker`` at a
port nobody listens on, so a connection attempt would show up as exit 3 instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import pytest

from evb.cli import build_parser, main
from evb.cli_ctl import (
    EXIT_NO_BROKER,
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_USAGE,
    CtlError,
    Request,
    VtdbSnapshot,
    WatchState,
    age_text,
    broker_options,
    check_entry,
    entries_from_policy,
    policy_toml,
    reply_exit,
    reply_line,
    requests_of,
    timeout_message,
    vtdb_table,
    watch_screen,
    watch_table,
)
from evb.mqtt.schema import StationTopics, parse_command
from evb.vdp.wire import manager_id_from_text
from evb.vepa_bridge.policy import load_policy, parse_policy

U1 = "6e2bd6a4-3f2a-4a2b-8f0e-000000000001"
NOBODY = "mqtt://127.0.0.1:1"  #: nothing listens there: trying to connect would be exit 3
VSI = ["--uuid", U1, "--type-id", "5", "--type-version", "4", "--manager-id", "labmgr"]
LAB: bytes = manager_id_from_text("labmgr")
POLICY = """\
[defaults]
max_vsis = 10

[[manager]]
id = "labmgr"

[[manager.type]]
id = 5
versions = [3, 4]
vlans = [10, 20, "100-199"]
assign_vid = 10
macs = ["52:54:00:*"]

[[manager.type]]
id = 7
version = 1
"""


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")  # argparse wraps help to the terminal width
    monkeypatch.delenv("EVB_MQTT_BROKER", raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


# --------------------------------------------------------------------------- the parser


@pytest.mark.parametrize(
    "argv",
    [
        ["ctl"],
        ["ctl", "assoc"],
        ["ctl", "preassoc"],
        ["ctl", "preassoc-rr"],
        ["ctl", "deassoc"],
        ["ctl", "watch"],
        ["ctl", "vtdb"],
        ["ctl", "vtdb", "put"],
        ["ctl", "vtdb", "get"],
        ["ctl", "vtdb", "list"],
        ["ctl", "vtdb", "delete"],
    ],
)
def test_help_has_examples_and_exit_status(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert "exit status: 0 success" in out
    assert "3 the broker cannot be reached" in out
    if len(argv) > 2 or argv[-1] in ("assoc", "watch"):
        assert "--broker URL" in out and "--password-file" in out and "--ca-file" in out


def test_group_without_command_prints_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "ctl")
    assert rc == EXIT_USAGE and "COMMAND" in err and "vtdb" in err
    rc, _, err = run(capsys, "ctl", "vtdb")
    assert rc == EXIT_USAGE and "put" in err and "delete" in err


def test_assoc_needs_host_and_iface(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["ctl", "assoc", *VSI, "--filter", "10"])
    assert exc.value.code == EXIT_USAGE
    assert "--host" in capsys.readouterr().err


def test_broker_default_env_and_option(monkeypatch: pytest.MonkeyPatch) -> None:
    assert broker_options(parse("ctl", "watch")).broker == "mqtt://127.0.0.1:1883"
    monkeypatch.setenv("EVB_MQTT_BROKER", "mqtts://broker.example")
    opts = broker_options(parse("ctl", "watch"))
    assert str(opts.address()) == "mqtts://broker.example:8883"
    opts = broker_options(parse("ctl", "watch", "--broker", "mqtt://u:p@b:1999", "--username", "orchestrator"))
    addr = opts.address()
    assert (addr.host, addr.port, addr.username, addr.password) == ("b", 1999, "orchestrator", "p")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--broker", "http://x"], "--broker 'http://x': the scheme must be mqtt:// or mqtts://"),
        (["--broker", "mqtt://"], "no host"),
        (["--password-file", "/nonexistent/pw"], "--password-file /nonexistent/pw: cannot read it"),
    ],
)
def test_bad_broker_options_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    rc, _, err = run(capsys, "ctl", "vtdb", "list", *argv)
    assert rc == EXIT_USAGE, err
    assert needle in err


def test_unreachable_broker_exits_3_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "ctl", "watch", "--once", "--broker", NOBODY)
    assert rc == EXIT_NO_BROKER
    assert out == ""
    assert "cannot reach the MQTT broker mqtt://127.0.0.1:1" in err


def test_missing_ca_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, _, err = run(capsys, "ctl", "vtdb", "list", "--broker", "mqtts://127.0.0.1:1", "--ca-file", str(tmp_path / "x"))
    assert rc == EXIT_USAGE
    assert "--ca-file" in err


# --------------------------------------------------------------------------- commands


def test_request_built_from_the_options() -> None:
    args = parse(
        "ctl", "preassoc-rr", "--host", "hv1", "--iface", "eth0", *VSI, "--filter", "0x000a-52:54:00:00:00:01",
        "--hints", "to", "--request-id", "job-1",
    )  # fmt: skip
    (r,) = requests_of(args)
    assert r == Request(
        StationTopics("hv1", "eth0"),
        "job-1",
        "preassoc-rr",
        {
            "manager_id": "labmgr",
            "type_id": 5,
            "type_version": 4,
            "format": "uuid",
            "uuid": U1,
            "filters": ["10-52:54:00:00:00:01"],  # canonical: a retry in another notation is the same command
        },
        "to",
    )
    assert r.topics.cmd == "evb/v1/station/hv1/eth0/cmd"
    cmd = parse_command(r.payload())  # what the station agent reads
    assert (cmd.request_id, cmd.mode, cmd.hints) == ("job-1", "preassoc-rr", "to")
    assert r.station == "hv1/eth0" and r.vsi_text == f"labmgr/{U1}"


def test_request_id_is_random_without_the_option() -> None:
    args = parse("ctl", "assoc", "--host", "hv1", "--iface", "eth0", *VSI, "--filter", "10")
    a, b = requests_of(args)[0], requests_of(args)[0]
    assert a.request_id != b.request_id and len(a.request_id) == 32


def test_requests_from_file(tmp_path: Path) -> None:
    f = tmp_path / "vsis.toml"
    f.write_text(
        "".join(
            f'[[vsi]]\nuuid = "{U1[:-1]}{i}"\ntype_id = 5\ntype_version = 4\nmanager_id = "labmgr"\n'
            f'filters = ["10-52:54:00:00:00:0{i}"]\n'
            for i in range(1, 4)
        )
    )
    args = parse("ctl", "deassoc", "--host", "hv1", "--iface", "eth0", "--from-file", str(f), "--request-id", "b")
    rs = requests_of(args)
    assert [r.request_id for r in rs] == ["b-1", "b-2", "b-3"]
    assert [r.vsi["filters"] for r in rs] == [[f"10-52:54:00:00:00:0{i}"] for i in range(1, 4)]
    assert {r.mode for r in rs} == {"deassoc"}


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--host", "a/b", "--iface", "eth0", *VSI, "--filter", "10"], "--host 'a/b' cannot be a topic level"),
        (["--host", "hv1", "--iface", "e#", *VSI, "--filter", "10"], "--iface 'e#' cannot be a topic level"),
        (["--host", "hv1", "--iface", "eth0", *VSI], "missing --filter"),
        (["--host", "hv1", "--iface", "eth0", "--filter", "10"], "missing --uuid, --type-id"),
        (["--host", "hv1", "--iface", "eth0", *VSI, "--filter", "70000"], "--filter '70000'"),
        (["--host", "hv1", "--iface", "eth0", *VSI, "--filter", "10", "--filter", "11-52:54:00:00:00:01"], "same form"),
        (["--host", "hv1", "--iface", "eth0", *VSI[:-1], "x" * 17, "--filter", "10"], "manager id"),
        (["--host", "hv1", "--iface", "eth0", *VSI, "--filter", "10", "--request-id", "a b"], "--request-id 'a b'"),
        (["--host", "hv1", "--iface", "eth0", *VSI, "--filter", "10", "--timeout", "0"], "--timeout must be"),
        (["--host", "hv1", "--iface", "eth0", "--from-file", "/nonexistent.toml"], "cannot read"),
    ],
)
def test_bad_request_exits_2_before_connecting(
    capsys: pytest.CaptureFixture[str], extra: list[str], needle: str
) -> None:
    rc, out, err = run(capsys, "ctl", "assoc", "--broker", NOBODY, *extra)
    assert rc == EXIT_USAGE, err
    assert needle in err
    assert out == ""


def test_bad_entry_of_vsis_file_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "vsis.toml"
    f.write_text(f'[[vsi]]\nuuid = "{U1}"\ntype_id = 5\ntype_version = 400\nmanager_id = "m"\nfilters = ["10"]\n')
    rc, _, err = run(capsys, "ctl", "assoc", "--broker", NOBODY, "--host", "h", "--iface", "i", "--from-file", str(f))
    assert rc == EXIT_USAGE
    assert f"{f}: vsi[0]: type version 400 is outside 0..255" in err


def test_reply_lines_and_exit_codes() -> None:
    ok = {
        "request_id": "r",
        "ok": True,
        "result": {"vsi": f"labmgr/{U1}", "mode": "assoc", "filters": [{"vid": 10, "pcp": 0, "ps": False}]},
    }
    assert reply_line(ok) == f"labmgr/{U1}: assoc [vid=10 pcp=0 ps=False]"  # as `evb vsi assoc --wait`
    assert reply_line(ok | {"duplicate": True}).endswith("(answered before: duplicate)")
    assert reply_line({"ok": True, "result": {"vsi": "m/u", "mode": "deassoc"}}) == "m/u: deassoc"
    assert reply_exit(ok) == EXIT_OK
    for code, want in [
        ("E_REJECTED", EXIT_PROBLEM),
        ("E_TIMEOUT", EXIT_PROBLEM),
        ("E_INTERNAL", EXIT_PROBLEM),
        ("E_BAD_REQUEST", EXIT_USAGE),
        ("E_NOT_ALLOWED", EXIT_USAGE),
        ("E_NOT_FOUND", EXIT_USAGE),
        ("E_CONFLICT", EXIT_USAGE),
    ]:
        bad = {"ok": False, "error": {"code": code, "message": "why"}}
        assert reply_exit(bad) == want, code
        assert reply_line(bad) == f"{code}: why"
    assert reply_exit({"ok": False}) == EXIT_PROBLEM


def test_timeout_message_says_what_is_known_of_the_agent() -> None:
    r = Request(StationTopics("hv1", "eth0"), "r-1", "assoc", {"manager_id": "m", "uuid": "u"})
    online = timeout_message(r, 30, "online")
    assert "no reply from hv1/eth0 within 30 s (request_id r-1)" in online and "agent is online" in online
    assert "--request-id r-1" in online
    offline = timeout_message(r, 2.5, "offline")
    assert "within 2.5 s" in offline and "offline" in offline and "runs when the agent is back" in offline
    unknown = timeout_message(r, 1, None)
    assert "nothing is known" in unknown and "evb/v1/station/hv1/eth0/status" in unknown
    bulk = timeout_message(Request(r.topics, "job-3", "assoc", r.vsi), 5, "online", count=2)
    assert "to 2 commands" in bulk and "--request-id job " in bulk + " "


# --------------------------------------------------------------------------- watch


def vsi_state(host: str = "hv1", uuid: str = U1, state: str = "assoc", **extra: object) -> bytes:
    doc = {
        "host": host,
        "ifname": "eth0",
        "vsi": {"manager_id": "labmgr", "type_id": 5, "type_version": 4, "format": "uuid", "uuid": uuid,
                "filters": ["10-52:54:00:00:00:01"]},
        "wanted": "assoc",
        "state": state,
        "status": state,
        "vids": [10] if state == "assoc" else [],
        "granted": [],
        "last_keepalive": "2030-01-01T00:00:00.000Z",
        "updated": "2030-01-01T00:00:00.000Z",
    } | extra  # fmt: skip
    return json.dumps(doc).encode()


ST = "evb/v1/station/hv1/eth0"
T0 = 1893456000.0  #: 2030-01-01T00:00:00Z


def test_watch_state_changes() -> None:
    w = WatchState()
    assert w.apply("evb/v1/station/hv1/eth0/reply/x", b"{}") is None  # not watched
    c = w.apply(f"{ST}/status", b"online")
    assert c is not None and c.text == "hv1/eth0: online" and c.kind == "station"
    assert w.apply(f"{ST}/status", b"online") is None  # nothing new
    c = w.apply(f"{ST}/vsi/{U1}", vsi_state(state="pending", status="asked"))
    assert c is not None and c.text == f"hv1/eth0 labmgr/{U1}: pending (wanted assoc); asked"
    c = w.apply(f"{ST}/vsi/{U1}", vsi_state())
    assert c is not None and c.text == f"hv1/eth0 labmgr/{U1}: assoc, VIDs 10"
    assert c.to_json(T0) == {
        "time": "2030-01-01T00:00:00.000Z",
        "kind": "vsi",
        "host": "hv1",
        "ifname": "eth0",
        "vsiid": U1,
        "value": json.loads(vsi_state()),
    }
    # a keep-alive republish changes nothing worth a line
    assert w.apply(f"{ST}/vsi/{U1}", vsi_state(last_keepalive="2030-01-01T00:00:30.000Z")) is None
    c = w.apply("evb/v1/bridge/sw1/port/p1/vsi/" + U1, json.dumps({"vsi": f"labmgr/{U1}", "mode": "assoc"}).encode())
    assert c is not None and c.text == f"bridge sw1 port p1 labmgr/{U1}: assoc"
    c = w.apply("evb/v1/bridge/sw1/status", b"offline")
    assert c is not None and c.text == "bridge sw1: offline" and c.key == {"bridge": "sw1"}
    c = w.apply(f"{ST}/vsi/x", b"not json")
    assert c is not None and c.kind == "malformed" and w.malformed == 1 and "not JSON" in c.text
    c = w.apply(f"{ST}/vsi/{U1}", b"")
    assert c is not None and c.text == f"hv1/eth0 labmgr/{U1}: gone" and c.value is None
    assert w.apply(f"{ST}/vsi/{U1}", b"") is None
    c = w.apply("evb/v1/bridge/sw1/port/p1/vsi/" + U1, b"")
    assert c is not None and c.text.endswith(": released")
    assert not w.vsis and not w.ports and w.stations == {("hv1", "eth0"): "online"}


def test_watch_subscriptions_by_host() -> None:
    assert WatchState().subscriptions() == [
        "evb/v1/station/+/+/status",
        "evb/v1/station/+/+/vsi/+",
        "evb/v1/bridge/+/status",
        "evb/v1/bridge/+/port/+/vsi/+",
    ]
    assert WatchState("hv2").subscriptions()[:2] == ["evb/v1/station/hv2/+/status", "evb/v1/station/hv2/+/vsi/+"]


def test_watch_resync_drops_what_was_not_retained_again() -> None:
    w = WatchState()
    w.apply(f"{ST}/status", b"online")
    w.apply("evb/v1/station/hv2/eth0/status", b"online")
    w.apply(f"{ST}/vsi/{U1}", vsi_state())
    w.apply("evb/v1/bridge/sw1/status", b"online")
    w.begin_resync()
    w.apply(f"{ST}/status", b"online")  # still there after the reconnect
    w.apply(f"{ST}/vsi/{U1}", vsi_state())
    changes = w.end_resync()
    assert sorted(c.text for c in changes) == ["bridge sw1: presence cleared", "hv2/eth0: presence cleared"]
    assert list(w.stations) == [("hv1", "eth0")] and list(w.vsis) == [("hv1", "eth0", U1)] and not w.bridges
    assert w.end_resync() == []


def filled() -> WatchState:
    w = WatchState()
    w.apply(f"{ST}/status", b"online")
    w.apply(f"{ST}/vsi/{U1}", vsi_state())
    u2 = U1[:-1] + "2"
    w.apply(f"{ST}/vsi/{u2}", vsi_state(uuid=u2, state="rejected", wanted=None, last_keepalive=None))
    w.apply("evb/v1/station/hv2/eth0/status", b"offline")
    w.apply("evb/v1/station/hv3/eth9/vsi/" + U1, vsi_state(host="hv3"))  # no presence known
    port = {"vsi": f"labmgr/{U1}", "mode": "assoc"}
    w.apply(f"evb/v1/bridge/sw1/port/p1/vsi/{U1}", json.dumps(port).encode())
    w.apply(f"evb/v1/bridge/sw1/port/p2/vsi/{U1}", json.dumps(port | {"vsi": "othermgr/x"}).encode())
    w.apply("evb/v1/bridge/sw1/status", b"online")
    w.apply("evb/v1/bridge/sw2/status", b"offline")
    return w


def test_watch_table() -> None:
    lines = watch_table(filled(), T0 + 75)
    assert lines[0].split() == ["HOST", "IFNAME", "PRESENCE", "VSI", "WANTED", "STATE", "VIDS", "KEEPALIVE", "BRIDGE"]
    rows = [line.split() for line in lines[1:5]]
    assert rows[0] == ["hv1", "eth0", "online", f"labmgr/{U1}", "assoc", "assoc", "10", "75s", "ago", "sw1/p1:assoc"]
    assert rows[1] == ["hv1", "eth0", "online", f"labmgr/{U1[:-1]}2", "-", "rejected", "-", "-", "-"]
    assert rows[2] == ["hv2", "eth0", "offline", "-", "-", "-", "-", "-", "-"]  # a station without VSIs
    assert rows[3][:3] == ["hv3", "eth9", "unknown"] and rows[3][-1] == "sw1/p1:assoc"
    assert lines[5] == ""
    assert [line.split() for line in lines[6:]] == [
        ["BRIDGE", "PRESENCE", "PORTS", "VSIS"],
        ["sw1", "online", "2", "2"],
        ["sw2", "offline", "0", "0"],
    ]
    assert watch_table(WatchState(), T0) == ["(no station has published anything)"]


def test_watch_json() -> None:
    doc = filled().to_json()
    assert doc["stations"] == [
        {"host": "hv1", "ifname": "eth0", "presence": "online"},
        {"host": "hv2", "ifname": "eth0", "presence": "offline"},
        {"host": "hv3", "ifname": "eth9", "presence": "unknown"},
    ]
    assert [(b["name"], b["presence"], len(b["vsis"])) for b in doc["bridges"]] == [
        ("sw1", "online", 2),
        ("sw2", "offline", 0),
    ]
    assert doc["bridges"][0]["vsis"][0] == {"vsi": f"labmgr/{U1}", "mode": "assoc", "port": "p1", "vsiid": U1}
    first = doc["vsis"][0]
    assert first["key"] == f"labmgr/{U1}" and first["presence"] == "online" and first["state"] == "assoc"
    assert first["held_by"] == [{"bridge": "sw1", "port": "p1", "mode": "assoc"}]  # p2 holds another manager's
    assert first["vsi"]["filters"] == ["10-52:54:00:00:00:01"]  # the retained state as published
    json.dumps(doc)


def test_watch_screen_draws_in_place_and_clips() -> None:
    w = filled()
    frame = watch_screen(w, now=T0, broker="mqtt://b:1883", width=40, height=8, note="")
    assert frame.startswith("\x1b[H") and frame.endswith("\x1b[J")
    lines = frame[3:-3].split("\x1b[K\n")[:-1]
    assert len(lines) == 7  # one row left for the cursor
    assert all(len(line) <= 40 for line in lines)
    assert lines[0].startswith("evb ctl watch  mqtt://b:1883")
    assert lines[1] == "3 stations (1 online), 3 VSIs (2 associa"  # cut to the width
    assert lines[-1].startswith("... ") and "more lines" in lines[-1]
    noted = watch_screen(w, now=T0, broker="b", width=200, height=50, note="lost the broker; trying again")
    assert "\nlost the broker; trying again\x1b[K" in noted


@pytest.mark.parametrize(
    ("iso", "text"),
    [
        (None, "-"),
        ("2030-01-01T00:00:00.000Z", "5s ago"),
        ("2030-01-01T00:00:04.500Z", "now"),
        ("2030-01-01T00:00:10Z", "now"),  # a clock ahead of ours
        ("2029-12-31T23:58:05.000Z", "2m ago"),
        ("2029-12-31T21:00:00+00:00", "3h ago"),
        ("2029-12-25T00:00:00", "7d ago"),
        ("yesterday", "yesterday"),
    ],
)
def test_age_text(iso: str | None, text: str) -> None:
    assert age_text(iso, T0 + 5) == text


def test_watch_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "ctl", "watch", "--once", "--host", "a+b", "--broker", NOBODY)
    assert rc == EXIT_USAGE and "cannot be a topic level" in err
    rc, _, err = run(capsys, "ctl", "watch", "--once", "--wait", "-1", "--broker", NOBODY)
    assert rc == EXIT_USAGE and "--wait" in err


# --------------------------------------------------------------------------- vtdb


def test_entries_from_policy(tmp_path: Path) -> None:
    f = tmp_path / "policy.toml"
    f.write_text(POLICY)
    entries, skipped = entries_from_policy(str(f))
    five = {"vlans": [10, 20, "100-199"], "assign_vid": 10, "macs": ["52:54:00:*"]}
    assert entries == {(LAB, 5, 3): five, (LAB, 5, 4): five, (LAB, 7, 1): {}}
    assert skipped == ["[defaults]"]


def test_policy_toml_round_trip(tmp_path: Path) -> None:
    f = tmp_path / "policy.toml"
    f.write_text(POLICY)
    entries, _ = entries_from_policy(str(f))
    other = manager_id_from_text("6e2bd6a4-3f2a-4a2b-8f0e-0000000000ff")
    entries[(other, 1, 0)] = {"pcp": [0, 5], "max_entries": 4, "groups": [7]}
    text = policy_toml(entries)
    assert text.startswith('[[manager]]\nid = "6e2bd6a43f2a4a2b8f0e0000000000ff"\n')
    g = tmp_path / "again.toml"
    g.write_text(text)
    assert entries_from_policy(str(g)) == (entries, [])
    db, original = parse_policy(text), load_policy(f)
    for key, vtype in db.managers[LAB].items():  # the same but for versions = [3, 4] split in two
        assert vtype == dataclasses.replace(original.managers[LAB][key], versions=frozenset({key[1]}))
    assert db.managers[other][(1, 0)].max_entries == 4


def test_check_entry_gives_the_entry_as_bridges_read_it() -> None:
    entry = {"macs": ["52:54:00:*", "02:00:00:00:00:01"], "vlans": [12, 10, 11, "100-199"], "assign_vid": 10}
    assert check_entry("labmgr", 5, 4, entry) == (
        (LAB, 5, 4),
        {"vlans": ["10-12", "100-199"], "assign_vid": 10, "macs": ["52:54:00:*", "02:00:00:00:00:01"]},
    )
    assert check_entry("labmgr", 0, 0, {}) == ((LAB, 0, 0), {})


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ([1], "--json: must be a JSON object"),
        ({"id": 5}, "--json: id: unknown key"),
        ({"vlan": [1]}, "--json: vlan: unknown key (known: assign_vid, groups, macs, max_entries, pcp, vlans)"),
        ({"version": 4}, "--json: version: unknown key (id and version are in the topic)"),
        ({"vlans": None}, "--json: vlans: must be an array, not None"),
        ({"vlans": [10, "5-20"]}, "--json: vlans: element 1: '5-20' overlaps element 0 (10)"),
        ({"vlans": ["20-5"]}, "written backwards"),
        ({"vlans": [5000]}, "outside 1..4094"),
        ({"vlans": [1], "assign_vid": 2}, "--json: assign_vid: 2 is not one of the type's vlans"),
        ({"pcp": [8]}, "--json: pcp: element 0: 8 is outside 0..7"),
        ({"pcp": [True]}, "must be an integer, not True"),
        ({"max_entries": 0}, "--json: max_entries: 0 is outside 1..243"),
        ({"max_entries": 1.5}, "must be an integer, not 1.5"),
        ({"macs": ["01:00:5e:*"]}, "--json: macs: element 0: '01:00:5e:*': a group (multicast) address"),
        ({"macs": [{"a": 1}]}, "macs: element 0: must be a string"),
        ({"groups": []}, "--json: groups: is empty"),
        ({"vlans": "10"}, "--json: vlans: must be an array"),
        ({"macs": ['quote"\x7f']}, "macs: element 0:"),  # strings survive the TOML rendering
    ],
)
def test_check_entry_refuses(entry: object, needle: str) -> None:
    with pytest.raises(CtlError) as exc:
        check_entry("labmgr", 5, 4, entry)
    assert exc.value.code == EXIT_USAGE
    assert needle in exc.value.message


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("x" * 17, 5, 4), "manager 'xxxxxxxxxxxxxxxxx' is neither an ASCII name"),
        (("labmgr", 1 << 24, 4), "type id 16777216 is outside 0..16777215"),
        (("labmgr", 5, 256), "version 256 is outside 0..255"),
    ],
)
def test_check_entry_refuses_keys(args: tuple[str, int, int], needle: str) -> None:
    with pytest.raises(CtlError) as exc:
        check_entry(*args, {})
    assert needle in exc.value.message


def test_vtdb_snapshot_reads_as_bridges_do() -> None:
    s = VtdbSnapshot()
    s.add("evb/v1/vtdb/labmgr/5/4", b'{"vlans": [10]}')
    s.add("evb/v1/vtdb/labmgr/5/x", b"{}")  # not a topic of the database
    s.add("evb/v1/vtdb/labmgr/7/1", b"[1]")  # not an object
    s.add("evb/v1/vtdb/labmgr/7/2", b'{"pcp": [9]}')  # what policy.toml would refuse
    uuid_spelt = "evb/v1/vtdb/6c61626d-6772-0000-0000-000000000000/5/4"  # labmgr's 16 octets as a UUID
    s.add(uuid_spelt, b'{"vlans": [11]}')  # bridges take one spelling of a manager only
    assert s.entries == {(LAB, 5, 4): {"vlans": [10]}}
    assert set(s.bad) == {"evb/v1/vtdb/labmgr/5/x", "evb/v1/vtdb/labmgr/7/1", "evb/v1/vtdb/labmgr/7/2", uuid_spelt}
    assert "pcp" in s.bad["evb/v1/vtdb/labmgr/7/2"]
    assert s.topics_of((LAB, 5, 4)) == ["evb/v1/vtdb/labmgr/5/4", uuid_spelt]
    assert s.topics_of((LAB, 7, 2)) == ["evb/v1/vtdb/labmgr/7/2"]
    assert s.topics_of((LAB, 9, 9)) == []
    s.add("evb/v1/vtdb/labmgr/5/4", b"")
    assert s.entries == {} and s.topics_of((LAB, 5, 4)) == [uuid_spelt]


def test_vtdb_table() -> None:
    lines = vtdb_table(
        [
            ((LAB, 7, 1), {}),
            ((LAB, 5, 4), {"vlans": [10, "100-199"], "assign_vid": 10, "pcp": [0], "max_entries": 4, "macs": ["a"]}),
        ]
    )
    assert [line.split() for line in lines] == [
        ["MANAGER", "TYPE", "VERSION", "VLANS", "ASSIGN_VID", "PCP", "MAX_ENTRIES", "MACS", "GROUPS"],
        ["labmgr", "5", "4", "10,100-199", "10", "0", "4", "a", "any"],
        ["labmgr", "7", "1", "any", "-", "any", "-", "any", "any"],
    ]
    assert vtdb_table([]) == ["(no entries)"]


def test_vtdb_put_dry_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "policy.toml"
    f.write_text(POLICY)
    rc, out, err = run(capsys, "ctl", "vtdb", "put", "--dry-run", str(f))
    assert rc == EXIT_OK
    assert out.splitlines() == [
        'evb/v1/vtdb/labmgr/5/3 {"vlans": [10, 20, "100-199"], "assign_vid": 10, "macs": ["52:54:00:*"]}',
        'evb/v1/vtdb/labmgr/5/4 {"vlans": [10, 20, "100-199"], "assign_vid": 10, "macs": ["52:54:00:*"]}',
        "evb/v1/vtdb/labmgr/7/1 {}",
    ]
    assert "[defaults] is per bridge: not published" in err


def test_vtdb_put_bad_file_names_file_line_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "policy.toml"
    f.write_text(POLICY.replace("assign_vid = 10", "assign_vid = 30"))
    rc, out, err = run(capsys, "ctl", "vtdb", "put", "--broker", NOBODY, str(f))
    assert rc == EXIT_USAGE and out == ""
    assert f"{f}:11: manager[0].type[0].assign_vid: 30 is not one of the type's vlans" in err
    rc, _, err = run(capsys, "ctl", "vtdb", "put", "--broker", NOBODY, str(tmp_path / "none.toml"))
    assert rc == EXIT_USAGE and "cannot read" in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["FILE", "--manager", "m"], "give FILE, or --manager, --type-id, --version and --json: not both"),
        (["--manager", "m", "--type-id", "1", "--json", "{}"], "missing --version"),
        (["--manager", "m", "--type-id", "1", "--version", "1", "--json", "{}", "--replace"], "--replace needs FILE"),
        (["--manager", "m", "--type-id", "1", "--version", "1", "--json", "{x"], "--json: not JSON"),
        (["--manager", "m", "--type-id", "1", "--version", "1", "--json", '{"pcp": [9]}'], "pcp: element 0"),
        (["--manager", "m" * 17, "--type-id", "1", "--version", "1", "--json", "{}"], "neither an ASCII name"),
    ],
)
def test_vtdb_put_bad_usage(capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], needle: str) -> None:
    f = tmp_path / "policy.toml"
    f.write_text(POLICY)
    argv = [str(f) if a == "FILE" else a for a in argv]
    rc, out, err = run(capsys, "ctl", "vtdb", "put", "--broker", NOBODY, *argv)
    assert rc == EXIT_USAGE, err
    assert needle in err and out == ""


def test_vtdb_put_json_from_stdin(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO('{"vlans": [1, 3]}'))
    rc, out, _ = run(
        capsys, "ctl", "vtdb", "put", "--dry-run", "--manager", "m", "--type-id", "1", "--version", "2", "--json", "-"
    )
    assert rc == EXIT_OK
    assert out == 'evb/v1/vtdb/m/1/2 {"vlans": [1, 3]}\n'


@pytest.mark.parametrize("cmd", ["get", "delete"])
def test_vtdb_get_delete_bad_key(capsys: pytest.CaptureFixture[str], cmd: str) -> None:
    rc, _, err = run(capsys, "ctl", "vtdb", cmd, "x" * 17, "1", "1", "--broker", NOBODY)
    assert rc == EXIT_USAGE and "neither an ASCII name" in err
    rc, _, err = run(capsys, "ctl", "vtdb", cmd, "m", "1", "300", "--broker", NOBODY)
    assert rc == EXIT_USAGE and "VERSION 0..255" in err


def test_vtdb_list_bad_manager(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "ctl", "vtdb", "list", "--manager", "é", "--broker", NOBODY)
    assert rc == EXIT_USAGE and "--manager 'é'" in err


def test_quick_failure_when_nothing_listens(capsys: pytest.CaptureFixture[str]) -> None:
    t = time.monotonic()
    rc, _, err = run(capsys, "ctl", "assoc", "--host", "h", "--iface", "i", *VSI, "--filter", "10", "--broker", NOBODY)
    assert rc == EXIT_NO_BROKER and "cannot reach the MQTT broker" in err
    assert time.monotonic() - t < 5
