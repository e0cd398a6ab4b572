"""``evb ctl`` against a real mosquitto (``evb/mqtt/broker.py``).

The station side is a stand-in (``FakeStation``): an aiomqtt client on the test's loop that
answers commands as the station agent's contract says (reply on ``reply/{request_id}``, the VSI's
retained state, ``online`` presence, duplicates answered again) — the real agent is tested in
its own module. The CLI runs in a worker thread (it has its own event loop), the live ``watch``
as a subprocess that is stopped with SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from evb.cli_ctl import EXIT_NO_BROKER, EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, entries_from_policy, policy_toml
from evb.control import entry_json, vsi_json
from evb.mqtt.broker import MISSING, Broker
from evb.mqtt.schema import Command, StationTopics, now_iso, parse_command, reply_payload, vsiid_segment

pytestmark = [pytest.mark.skipif(MISSING is not None, reason=MISSING or ""), pytest.mark.timeout(90)]

ROOT = Path(__file__).resolve().parents[2]
U1 = "6e2bd6a4-3f2a-4a2b-8f0e-000000000001"
U2 = "6e2bd6a4-3f2a-4a2b-8f0e-000000000002"
VSI = ["--uuid", U1, "--type-id", "5", "--type-version", "4", "--manager-id", "labmgr"]
F1 = "10-52:54:00:00:00:01"
POLICY = """\
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

Answer = Callable[[Command], dict[str, Any] | None]  #: {"result": ...} or {"error": ...}; None: no answer


def accept(cmd: Command) -> dict[str, Any]:
    v = vsi_json(cmd.vsi)
    return {"result": {"vsi": f"{v['manager_id']}/{v['uuid']}", "mode": cmd.mode, "filters": _granted(cmd)}}


def _granted(cmd: Command) -> list[dict[str, Any]]:
    return [entry_json(e) for e in cmd.vsi.entries] if cmd.mode != "deassoc" else []


def refuse(cmd: Command) -> dict[str, Any]:
    v = vsi_json(cmd.vsi)
    message = f"the bridge refused {v['manager_id']}/{v['uuid']}: status 5 (invalid VID, GroupID or MAC address), hard"
    return {"error": {"code": "E_REJECTED", "message": message, "data": {"status": 5, "keep": False, "hard": True}}}


class FakeStation:
    """The station agent of ``host``/``ifname`` as far as the MQTT contract goes."""

    def __init__(self, broker: Broker, host: str = "hv1", ifname: str = "eth0", answer: Answer = accept) -> None:
        self.broker = broker
        self.topics = StationTopics(host, ifname)
        self.answer = answer
        self.commands: list[Command] = []
        self.answers: dict[str, bytes] = {}
        self._task: asyncio.Task[None] | None = None
        self._client = aiomqtt.Client(broker.host, broker.port, identifier=f"fake-{host}-{ifname}")

    async def __aenter__(self) -> FakeStation:
        await self._client.__aenter__()
        await self._client.subscribe(self.topics.cmd, qos=1)
        await self._client.publish(self.topics.status, b"online", qos=1, retain=True)
        self._task = asyncio.create_task(self._serve())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._client.publish(self.topics.status, b"offline", qos=1, retain=True)
        await self._client.__aexit__(None, None, None)

    async def _serve(self) -> None:
        async for message in self._client.messages:
            assert isinstance(message.payload, bytes)
            cmd = parse_command(message.payload)
            self.commands.append(cmd)
            reply = self.topics.reply(cmd.request_id)
            if cmd.request_id in self.answers:  # a command seen before: answered again, not run again
                doc = json.loads(self.answers[cmd.request_id]) | {"duplicate": True}
                await self._client.publish(reply, json.dumps(doc).encode(), qos=1)
                continue
            answer = self.answer(cmd)
            if answer is None:
                continue
            ok = "result" in answer
            if ok:
                await self._publish_state(cmd)
            payload = reply_payload(
                cmd.request_id, result=answer.get("result"), error=answer.get("error"), at=time.time()
            )
            self.answers[cmd.request_id] = payload
            await self._client.publish(reply, payload, qos=1)

    async def _publish_state(self, cmd: Command) -> None:
        topic = self.topics.vsi(vsiid_segment(cmd.vsi.vsiid_format, cmd.vsi.vsiid))
        if cmd.mode == "deassoc":
            await self._client.publish(topic, b"", qos=1, retain=True)
            return
        granted = _granted(cmd)
        doc = {
            "host": self.topics.host,
            "ifname": self.topics.ifname,
            "vsi": vsi_json(cmd.vsi),
            "wanted": cmd.mode,
            "state": cmd.mode,
            "machine": "established",
            "status": cmd.mode,
            "vids": sorted({g["vid"] for g in granted}),
            "granted": granted,
            "last_keepalive": now_iso(time.time()),
            "updated": now_iso(time.time()),
        }
        await self._client.publish(topic, json.dumps(doc).encode(), qos=1, retain=True)


@pytest.fixture
def broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Broker]:
    monkeypatch.delenv("EVB_MQTT_BROKER", raising=False)
    b = Broker(tmp_path)
    b.start()
    try:
        yield b
    finally:
        b.cleanup()


async def ctl(capsys: pytest.CaptureFixture[str], broker: Broker | str, *argv: str) -> tuple[int, str, str]:
    """``evb ctl ARGV --broker URL`` as a user runs it (a process): (exit status, stdout, stderr)."""
    url = broker if isinstance(broker, str) else broker.url
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "evb.cli", "ctl", *argv, "--broker", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        raise AssertionError(f"evb ctl {' '.join(argv)} hung; stderr: {err.decode(errors='replace')}") from None
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@contextlib.asynccontextmanager
async def client(broker: Broker) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(broker.host, broker.port) as c:
        yield c


# --------------------------------------------------------------------------- assoc & co


@pytest.mark.asyncio
async def test_assoc_answered_then_watch_sees_it(broker: Broker, capsys: pytest.CaptureFixture[str]) -> None:
    assoc = ["assoc", "--host", "hv1", "--iface", "eth0", *VSI, "--filter", F1]
    async with FakeStation(broker) as station:
        rc, out, err = await ctl(capsys, broker, *assoc, "--request-id", "r-1")
        assert (rc, err) == (EXIT_OK, "")
        assert out == f"labmgr/{U1}: assoc [vid=10 pcp=0 ps=False mac=52:54:00:00:00:01]\n"
        (cmd,) = station.commands
        assert (cmd.request_id, cmd.mode, cmd.args["filters"]) == ("r-1", "assoc", [F1])
        # the same request_id again: answered again, not run again
        rc, out, _ = await ctl(capsys, broker, *assoc, "--request-id", "r-1")
        assert rc == EXIT_OK and out.endswith("(answered before: duplicate)\n")
        rc, out, _ = await ctl(capsys, broker, *assoc, "--json")
        reply = json.loads(out)
        assert rc == EXIT_OK and reply["ok"] is True and reply["result"]["mode"] == "assoc"
        assert reply["request_id"] == station.commands[-1].request_id and len(reply["request_id"]) == 32

        async with client(broker) as c:  # a bridge port holding the VSI
            port = {"port": "p1", "vsi": f"labmgr/{U1}", "mode": "assoc", "type_id": 5, "type_version": 4}
            await c.publish(f"evb/v1/bridge/sw1/port/p1/vsi/{U1}", json.dumps(port).encode(), qos=1, retain=True)
            await c.publish("evb/v1/bridge/sw1/status", b"online", qos=1, retain=True)
        rc, out, _ = await ctl(capsys, broker, "watch", "--once", "--json", "--wait", "0.5")
        assert rc == EXIT_OK
        doc = json.loads(out)
        assert doc["stations"] == [{"host": "hv1", "ifname": "eth0", "presence": "online"}]
        assert [(b["name"], b["presence"], len(b["vsis"])) for b in doc["bridges"]] == [("sw1", "online", 1)]
        (row,) = doc["vsis"]
        assert (row["key"], row["state"], row["wanted"], row["vids"]) == (f"labmgr/{U1}", "assoc", "assoc", [10])
        assert row["held_by"] == [{"bridge": "sw1", "port": "p1", "mode": "assoc"}]
        rc, out, _ = await ctl(capsys, broker, "watch", "--once", "--wait", "0.5")
        lines = out.splitlines()
        assert lines[1].split()[:7] == ["hv1", "eth0", "online", f"labmgr/{U1}", "assoc", "assoc", "10"]
        assert lines[1].split()[7] in ("now", "1s", "2s", "3s")  # KEEPALIVE: an age
        assert lines[1].split()[-1] == "sw1/p1:assoc"

        rc, out, _ = await ctl(capsys, broker, "deassoc", "--host", "hv1", "--iface", "eth0", *VSI, "--filter", F1)
        assert rc == EXIT_OK and out == f"labmgr/{U1}: deassoc\n"
        rc, out, _ = await ctl(capsys, broker, "watch", "--once", "--json", "--wait", "0.5", "--host", "hv1")
        assert json.loads(out)["vsis"] == []  # its retained state was cleared
    rc, out, _ = await ctl(capsys, broker, "watch", "--once", "--json", "--wait", "0.5")
    assert json.loads(out)["stations"][0]["presence"] == "offline"


@pytest.mark.asyncio
async def test_refused_exits_1(broker: Broker, capsys: pytest.CaptureFixture[str]) -> None:
    async with FakeStation(broker, answer=refuse):
        argv = ["preassoc", "--host", "hv1", "--iface", "eth0", *VSI, "--filter", F1]
        rc, out, err = await ctl(capsys, broker, *argv)
        assert rc == EXIT_PROBLEM and out == ""
        assert err == f"evb ctl: hv1/eth0: E_REJECTED: the bridge refused labmgr/{U1}: status 5 (invalid VID, " + (
            "GroupID or MAC address), hard\n"
        )
        rc, out, _ = await ctl(capsys, broker, *argv, "--json")
        reply = json.loads(out)
        assert rc == EXIT_PROBLEM and reply["ok"] is False and reply["error"]["data"]["status"] == 5


@pytest.mark.asyncio
async def test_bad_request_answer_exits_2(broker: Broker, capsys: pytest.CaptureFixture[str]) -> None:
    def not_found(cmd: Command) -> dict[str, Any]:
        return {"error": {"code": "E_NOT_FOUND", "message": f"no VSI {U1}"}}

    async with FakeStation(broker, answer=not_found):
        rc, _, err = await ctl(capsys, broker, "deassoc", "--host", "hv1", "--iface", "eth0", *VSI, "--filter", F1)
    assert rc == EXIT_USAGE and f"E_NOT_FOUND: no VSI {U1}" in err


@pytest.mark.asyncio
async def test_timeout_says_whether_the_agent_is_offline_or_unknown(
    broker: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["assoc", "--iface", "eth0", *VSI, "--filter", F1, "--timeout", "0.5", "--request-id", "t-1"]
    t = time.monotonic()
    rc, out, err = await ctl(capsys, broker, *argv, "--host", "ghost")
    assert 0.5 <= time.monotonic() - t < 10
    assert rc == EXIT_PROBLEM and out == ""
    assert "no reply from ghost/eth0 within 0.5 s (request_id t-1)" in err
    assert "nothing is known of that agent (nothing retained on evb/v1/station/ghost/eth0/status)" in err

    async with client(broker) as c:
        await c.publish("evb/v1/station/hv9/eth0/status", b"offline", qos=1, retain=True)
    rc, out, err = await ctl(capsys, broker, *argv, "--host", "hv9", "--json")
    assert rc == EXIT_PROBLEM
    assert "the station agent is offline" in err and "--request-id t-1" in err
    doc = json.loads(out)
    assert doc["ok"] is False and doc["error"]["code"] == "E_TIMEOUT" and doc["error"]["data"]["presence"] == "offline"

    async with FakeStation(broker, host="hv8", answer=lambda cmd: None):  # online, but never answers
        rc, _, err = await ctl(capsys, broker, *argv, "--host", "hv8")
    assert rc == EXIT_PROBLEM and "the agent is online" in err


@pytest.mark.asyncio
async def test_no_wait_returns_once_the_broker_has_it(broker: Broker, capsys: pytest.CaptureFixture[str]) -> None:
    async with client(broker) as c:
        await c.subscribe("evb/v1/station/hv1/eth0/cmd", qos=1)
        rc, out, _ = await ctl(
            capsys, broker, "assoc", "--host", "hv1", "--iface", "eth0", *VSI, "--filter", F1, "--no-wait",
            "--request-id", "nw-1",
        )  # fmt: skip
        assert rc == EXIT_OK and out == f"hv1/eth0: assoc of labmgr/{U1} published (request_id nw-1)\n"
        message = await asyncio.wait_for(anext(aiter(c.messages)), 5)
    assert isinstance(message.payload, bytes)
    cmd = parse_command(message.payload)
    assert (cmd.request_id, cmd.mode) == ("nw-1", "assoc")


@pytest.mark.asyncio
async def test_from_file(broker: Broker, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "vsis.toml"
    f.write_text(
        "".join(
            f'[[vsi]]\nuuid = "{u}"\ntype_id = 5\ntype_version = 4\nmanager_id = "labmgr"\nfilters = ["{F1}"]\n'
            for u in (U1, U2)
        )
    )

    def picky(cmd: Command) -> dict[str, Any]:
        return refuse(cmd) if vsi_json(cmd.vsi)["uuid"] == U2 else accept(cmd)

    async with FakeStation(broker, answer=picky) as station:
        argv = ["assoc", "--host", "hv1", "--iface", "eth0", "--from-file", str(f), "--request-id", "job"]
        rc, out, _ = await ctl(capsys, broker, *argv)
        assert rc == EXIT_PROBLEM
        assert out.splitlines() == [
            "2 requested, 1 answered ok, 1 failed, 0 unanswered",
            f"  labmgr/{U2}: E_REJECTED: the bridge refused labmgr/{U2}: status 5 (invalid VID, GroupID or MAC "
            "address), hard",
        ]
        assert sorted(c.request_id for c in station.commands) == ["job-1", "job-2"]
        rc, out, _ = await ctl(capsys, broker, *argv, "--json")
        doc = json.loads(out)
        assert (doc["requested"], doc["ok"], doc["failed"], doc["unanswered"]) == (2, 1, 1, [])
        assert all(r.get("duplicate") for r in doc["replies"])


# --------------------------------------------------------------------------- watch, live


async def _line(stream: asyncio.StreamReader, needle: str, timeout: float = 15.0) -> str:
    """The next line of ``stream`` that contains ``needle``."""
    end = time.monotonic() + timeout
    while True:
        raw = await asyncio.wait_for(stream.readline(), max(0.1, end - time.monotonic()))
        if not raw:
            raise AssertionError(f"end of output before {needle!r}")
        line = raw.decode()
        if needle in line:
            return line


@pytest.mark.asyncio
async def test_watch_prints_changes_and_survives_a_broker_restart(broker: Broker) -> None:
    async with client(broker) as c:
        await c.publish("evb/v1/station/hv1/eth0/status", b"online", qos=1, retain=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "evb.cli", "ctl", "watch", "--broker", broker.url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT, env=env,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = await _line(proc.stdout, "hv1/eth0")
        assert line.endswith(" hv1/eth0: online\n") and line[:4].isdigit()  # timestamped
        state = {"vsi": {"manager_id": "labmgr", "uuid": U1}, "wanted": "assoc", "state": "pending"}
        async with client(broker) as c:
            await c.publish(f"evb/v1/station/hv1/eth0/vsi/{U1}", json.dumps(state).encode(), qos=1, retain=True)
        assert (await _line(proc.stdout, U1)).endswith(f" hv1/eth0 labmgr/{U1}: pending (wanted assoc)\n")

        broker.restart()
        await _line(proc.stderr, "trying again")
        async with client(broker) as c:
            await c.publish(f"evb/v1/station/hv1/eth0/vsi/{U1}", json.dumps(state | {"state": "assoc"}).encode(),
                            qos=1, retain=True)  # fmt: skip
            await c.publish("evb/v1/bridge/sw1/status", b"online", qos=1, retain=True)
        assert (await _line(proc.stdout, U1)).endswith(f" hv1/eth0 labmgr/{U1}: assoc\n")
        assert (await _line(proc.stdout, "sw1")).endswith(" bridge sw1: online\n")
        async with client(broker) as c:
            await c.publish(f"evb/v1/station/hv1/eth0/vsi/{U1}", b"", qos=1, retain=True)
        assert (await _line(proc.stdout, U1)).endswith(f" hv1/eth0 labmgr/{U1}: gone\n")
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        rc = await asyncio.wait_for(proc.wait(), 10)
    assert rc == EXIT_OK  # Ctrl-C is the way to end it


@pytest.mark.asyncio
async def test_watch_json_lines(broker: Broker) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "evb.cli", "ctl", "watch", "--json", "--host", "hv2", "--broker", broker.url,
        stdout=asyncio.subprocess.PIPE, cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        await asyncio.sleep(0.5)  # subscribed by then (a retained message would come anyway)
        async with client(broker) as c:
            await c.publish("evb/v1/station/hv1/eth0/status", b"online", qos=1, retain=True)  # another host
            await c.publish("evb/v1/station/hv2/eth3/status", b"offline", qos=1, retain=True)
        doc = json.loads(await _line(proc.stdout, "hv"))
        assert {k: doc[k] for k in ("kind", "host", "ifname", "value")} == {
            "kind": "station",
            "host": "hv2",
            "ifname": "eth3",
            "value": "offline",
        }
    finally:
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 10) == EXIT_OK


# --------------------------------------------------------------------------- vtdb


@pytest.mark.asyncio
async def test_vtdb_round_trip(broker: Broker, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "policy.toml"
    f.write_text(POLICY)
    rc, out, _ = await ctl(capsys, broker, "vtdb", "put", str(f))
    assert rc == EXIT_OK and out == f"3 entries published to {broker.url}\n"
    rc, out, _ = await ctl(capsys, broker, "vtdb", "list", "--json")
    assert rc == EXIT_OK
    listed = json.loads(out)
    assert [(e["manager_id"], e["type_id"], e["version"]) for e in listed] == [
        ("labmgr", 5, 3),
        ("labmgr", 5, 4),
        ("labmgr", 7, 1),
    ]
    assert listed[1] == {
        "manager_id": "labmgr",
        "type_id": 5,
        "version": 4,
        "topic": "evb/v1/vtdb/labmgr/5/4",
        "entry": {"vlans": [10, 20, "100-199"], "assign_vid": 10, "macs": ["52:54:00:*"]},
    }
    rc, out, _ = await ctl(capsys, broker, "vtdb", "list")
    assert [line.split()[:5] for line in out.splitlines()] == [
        ["MANAGER", "TYPE", "VERSION", "VLANS", "ASSIGN_VID"],
        ["labmgr", "5", "3", "10,20,100-199", "10"],
        ["labmgr", "5", "4", "10,20,100-199", "10"],
        ["labmgr", "7", "1", "any", "-"],
    ]
    rc, out, _ = await ctl(capsys, broker, "vtdb", "list", "--toml")
    g = tmp_path / "exported.toml"
    g.write_text(out)
    assert entries_from_policy(str(g)) == entries_from_policy(str(f))  # what `vtdb put` reads back
    rc, out, _ = await ctl(capsys, broker, "vtdb", "get", "labmgr", "5", "4")
    assert rc == EXIT_OK and out.startswith('[[manager]]\nid = "labmgr"\n\n[[manager.type]]\nid = 5\nversion = 4\n')
    rc, out, _ = await ctl(capsys, broker, "vtdb", "get", "labmgr", "7", "1", "--json")
    assert rc == EXIT_OK and json.loads(out)["entry"] == {}

    one = ["--manager", "other", "--type-id", "9", "--version", "0", "--json", '{"pcp": [1, 2], "groups": [7]}']
    rc, out, _ = await ctl(capsys, broker, "vtdb", "put", *one)
    assert rc == EXIT_OK and out == f"1 entry published to {broker.url}\n"
    rc, out, _ = await ctl(capsys, broker, "vtdb", "get", "other", "9", "0", "--json")
    assert json.loads(out)["entry"] == {"pcp": [1, 2], "groups": [7]}
    rc, out, _ = await ctl(capsys, broker, "vtdb", "list", "--manager", "other", "--json")
    assert [e["manager_id"] for e in json.loads(out)] == ["other"]

    async with client(broker) as c:  # something bridges refuse
        await c.publish("evb/v1/vtdb/bad/1/1", b'{"pcp": [9]}', qos=1, retain=True)
    rc, out, err = await ctl(capsys, broker, "vtdb", "list", "--json")
    assert rc == EXIT_OK and len(json.loads(out)) == 4
    assert err == "evb ctl: bridges refuse evb/v1/vtdb/bad/1/1: pcp: element 0: 9 is outside 0..7\n"
    rc, _, err = await ctl(capsys, broker, "vtdb", "get", "bad", "1", "1")
    assert rc == EXIT_PROBLEM and "(bridges refuse evb/v1/vtdb/bad/1/1: pcp: element 0" in err
    rc, out, _ = await ctl(capsys, broker, "vtdb", "delete", "bad", "1", "1")
    assert rc == EXIT_OK and out == "bad/1/1: deleted\n"

    rc, out, _ = await ctl(capsys, broker, "vtdb", "delete", "labmgr", "5", "4")
    assert rc == EXIT_OK and out == "labmgr/5/4: deleted\n"
    rc, out, err = await ctl(capsys, broker, "vtdb", "get", "labmgr", "5", "4")
    assert rc == EXIT_PROBLEM and out == "" and f"no entry labmgr/5/4 on the broker {broker.url}" in err
    rc, _, err = await ctl(capsys, broker, "vtdb", "delete", "labmgr", "5", "4")
    assert rc == EXIT_PROBLEM and "no entry labmgr/5/4" in err


@pytest.mark.asyncio
async def test_vtdb_put_replace(broker: Broker, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "policy.toml"
    f.write_text(POLICY)
    assert (await ctl(capsys, broker, "vtdb", "put", str(f)))[0] == EXIT_OK
    async with client(broker) as c:  # things the file does not have, and one that is not an entry
        await c.publish("evb/v1/vtdb/other/1/1", b"{}", qos=1, retain=True)
        await c.publish("evb/v1/vtdb/other/x/1", b"{}", qos=1, retain=True)
        await c.publish("evb/v1/vtdb/6c61626d-6772-0000-0000-000000000000/7/1", b"{}", qos=1, retain=True)
    # 5/3 and 5/4 stay, 7/1 is now version 2, a type 8 is new
    f.write_text(POLICY.replace("id = 7\nversion = 1", "id = 7\nversion = 2\n\n[[manager.type]]\nid = 8\nversion = 1"))
    rc, out, _ = await ctl(capsys, broker, "vtdb", "put", "--replace", str(f))
    assert rc == EXIT_OK
    assert out.splitlines() == [
        f"2 entries published to {broker.url} (2 new, 0 changed, 2 unchanged), 4 deleted",
        "  deleted 6c61626d-6772-0000-0000-000000000000/7/1",  # labmgr spelt as a UUID
        "  deleted labmgr/7/1",
        "  deleted other/1/1",
        "  deleted other/x/1",
    ]
    rc, out, _ = await ctl(capsys, broker, "vtdb", "list", "--toml")
    entries, _ = entries_from_policy(str(f))
    assert out == policy_toml(entries)
    rc, out, _ = await ctl(capsys, broker, "vtdb", "put", "--replace", str(f))
    assert out == f"0 entries published to {broker.url} (0 new, 0 changed, 4 unchanged), 0 deleted\n"


# --------------------------------------------------------------------------- reaching the broker


@pytest.mark.asyncio
async def test_broker_down_exits_3(broker: Broker, capsys: pytest.CaptureFixture[str]) -> None:
    broker.stop()
    for argv in (
        ["vtdb", "list"],
        ["watch", "--once"],
        ["assoc", "--host", "hv1", "--iface", "eth0", *VSI, "--filter", F1],
    ):
        rc, out, err = await ctl(capsys, broker, *argv)
        assert rc == EXIT_NO_BROKER, argv
        assert out == "" and f"evb ctl: cannot reach the MQTT broker {broker.url}" in err


@pytest.mark.asyncio
async def test_password_file_and_refused_login(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Broker(tmp_path, auth=True) as b:
        plain = f"mqtt://{b.host}:{b.port}"
        pw = tmp_path / "pw"
        pw.write_text("pw-orchestrator\n")
        rc, out, err = await ctl(
            capsys, plain, "vtdb", "list", "--username", "orchestrator", "--password-file", str(pw)
        )
        assert (rc, out, err) == (EXIT_OK, "(no entries)\n", "")
        pw.write_text("wrong\n")
        rc, _, err = await ctl(capsys, plain, "vtdb", "list", "--username", "orchestrator", "--password-file", str(pw))
        assert rc == EXIT_NO_BROKER and f"cannot reach the MQTT broker mqtt://orchestrator@{b.host}:{b.port}" in err


@pytest.mark.asyncio
async def test_tls_with_ca_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Broker(tmp_path, tls=True) as b:
        rc, out, _ = await ctl(capsys, b.url, "vtdb", "list", "--ca-file", str(b.ca_file))
        assert (rc, out) == (EXIT_OK, "(no entries)\n")
        rc, _, err = await ctl(capsys, b.url, "vtdb", "list")  # the system's CAs do not know it
        assert rc == EXIT_NO_BROKER and "certificate" in err
