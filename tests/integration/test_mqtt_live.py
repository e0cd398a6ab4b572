"""Station and bridge agents in network namespaces, driven only through a real mosquitto broker.

The agents reach the broker (root namespace) over a management network; the test is the
orchestrator: it publishes commands and reads replies, retained states and presence. Broker
restarts, an agent that is away when commands are published, and a silent network cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import pytest_asyncio

from evb.mqtt.broker import MISSING, Broker
from evb.mqtt.mgmtnet import MgmtNet
from interop.lab import Agent, Lab, missing_prerequisites

SKIP = missing_prerequisites(lldpad=False) or MISSING
pytestmark = [pytest.mark.skipif(SKIP is not None, reason=SKIP or ""), pytest.mark.asyncio]

HOST, BRIDGE = "hv1", "br1"
KEEPALIVE = 2  #: MQTT keep-alive of the agents: a cut is noticed in about 3 s


def vsi(n: int) -> dict[str, Any]:
    return {
        "manager_id": "labmgr",
        "type_id": 5,
        "type_version": 4,
        "uuid": f"6e2bd6a4-3f2a-4a2b-8f0e-{n:012x}",
        "filters": [f"10-52:54:00:00:00:{n:02x}"],
    }


class Orchestrator:
    """An MQTT client that sees everything under evb/v1/ and publishes commands; it reconnects
    (persistent session) when the broker restarts."""

    def __init__(self, port: int, **client: Any) -> None:
        self.port = port
        self.client_args = client  #: more aiomqtt.Client arguments (credentials, TLS)
        self.identifier = f"orch-{uuid.uuid4().hex[:8]}"
        self.client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        self.retained: dict[str, bytes] = {}  #: the last payload per topic
        self.log: list[tuple[str, bytes]] = []
        self.changed = asyncio.Event()

    async def pump(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.port, identifier=self.identifier, clean_session=False, **self.client_args
                ) as client:
                    await client.subscribe("evb/v1/#", qos=1)
                    self.client = client
                    self.connected.set()
                    async for m in client.messages:
                        payload = m.payload if isinstance(m.payload, bytes) else str(m.payload or "").encode()
                        self.retained[str(m.topic)] = payload
                        self.log.append((str(m.topic), payload))
                        self.changed.set()
            except aiomqtt.MqttError:
                self.connected.clear()
                await asyncio.sleep(0.3)

    async def publish(self, topic: str, payload: str | bytes, *, retain: bool = False) -> None:
        await asyncio.wait_for(self.connected.wait(), 20)
        assert self.client is not None
        await self.client.publish(topic, payload, qos=1, retain=retain)

    async def wait(self, what: str, fn: Callable[[], Any], timeout: float = 20) -> Any:
        async def until() -> Any:
            while not (value := fn()):
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), 0.5)
            return value

        try:
            return await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            seen = "\n".join(f"  {t} {p[:200]!r}" for t, p in self.log[-15:])
            raise AssertionError(f"timed out waiting for {what}; last messages:\n{seen}") from None

    def station(self, rest: str) -> str:
        return f"evb/v1/station/{HOST}/{IFNAME}/{rest}"

    async def command(self, rid: str, mode: str, n: int, **extra: Any) -> None:
        doc = {"request_id": rid, "mode": mode, "vsi": vsi(n), **extra}
        await self.publish(self.station("cmd"), json.dumps(doc))

    def replies(self, rid: str) -> list[dict[str, Any]]:
        return [json.loads(p) for t, p in self.log if t == self.station(f"reply/{rid}")]

    async def reply(self, rid: str, count: int = 1, timeout: float = 20) -> dict[str, Any]:
        got: list[dict[str, Any]] = await self.wait(
            f"{count} replies to {rid}", lambda: (r := self.replies(rid)) and len(r) >= count and r, timeout
        )
        return got[-1]

    def state(self, n: int) -> dict[str, Any] | None:
        payload = self.retained.get(self.station(f"vsi/{vsi(n)['uuid']}"))
        return json.loads(payload) if payload else None

    def presence(self, base: str) -> str | None:
        payload = self.retained.get(f"{base}/status")
        return payload.decode() if payload is not None else None


IFNAME = ""  # set by the fixture: the station end of the veth
World = tuple[Lab, MgmtNet, Broker, Agent, Agent, "Orchestrator"]


@contextlib.asynccontextmanager
async def make_world(tmp_path: Path, *, secure: bool = False) -> AsyncIterator[World]:
    """A station and a bridge in namespaces, a broker (with TLS, passwords and ACLs when
    ``secure``), and an orchestrator that sees everything."""
    global IFNAME
    lab = Lab()
    lab.up()
    mgmt = MgmtNet(f"evbq{os.getpid() & 0xFFFF:04x}", f"10.77.{100 + os.getpid() % 150}.1/24")
    broker: Broker | None = None
    try:
        for side in (lab.station, lab.bridge):
            mgmt.add(side.ns)
        users = {"orchestrator": "pw-o", HOST: "pw-h", f"bridge-{BRIDGE}": "pw-b"} if secure else None
        broker = Broker(tmp_path, listen_addresses=(mgmt.address,), tls=secure, users=users).start()
        common: dict[str, Any] = {"keepalive": KEEPALIVE}
        orch_args: dict[str, Any] = {}
        if secure:
            assert broker.ca_file is not None
            common |= {"broker": f"mqtts://{mgmt.address}:{broker.port}", "ca_file": str(broker.ca_file)}
            for user in (HOST, f"bridge-{BRIDGE}"):
                (tmp_path / f"{user}.pw").write_text(broker.users[user] + "\n")
            station_auth = {"username": HOST, "password_file": str(tmp_path / f"{HOST}.pw")}
            bridge_auth = {"username": f"bridge-{BRIDGE}", "password_file": str(tmp_path / f"bridge-{BRIDGE}.pw")}
            tls = ssl.create_default_context(cafile=str(broker.ca_file))
            orch_args = {"username": "orchestrator", "password": "pw-o", "tls_context": tls}
        else:
            common["broker"] = broker.url_for(host=mgmt.address)
            station_auth = bridge_auth = {}
        IFNAME = lab.station.ifname
        bridge = lab.start_bridge(mqtt={**common, **bridge_auth, "name": BRIDGE})
        station = lab.start_station(mqtt={**common, **station_auth, "host": HOST})
        lab.wait_evb(station, bridge)
        orch = Orchestrator(broker.port, **orch_args)
        pump = asyncio.create_task(orch.pump())
        try:
            await orch.wait("the station online", lambda: orch.presence(orch.station("")[:-1]) == "online")
            await orch.wait("the bridge online", lambda: orch.presence(f"evb/v1/bridge/{BRIDGE}") == "online")
            yield lab, mgmt, broker, station, bridge, orch
        finally:
            pump.cancel()
    finally:
        lab.close()
        mgmt.close()
        if broker is not None:
            broker.stop()


@pytest_asyncio.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with make_world(tmp_path) as w:
        yield w


def bridge_vsis(bridge: Agent) -> set[str]:
    return {row["vsi"].split("/", 1)[1] for row in bridge.vsis()}


async def test_commands_replies_and_retained_state(world: Any) -> None:
    lab, _mgmt, _broker, station, bridge, orch = world
    await orch.command("r1", "assoc", 1)
    r1 = await orch.reply("r1")
    assert r1["ok"] and r1["result"]["mode"] == "assoc", r1
    assert r1["result"]["filters"][0]["vid"] == 10
    state = await orch.wait("associated state", lambda: (s := orch.state(1)) and s["state"] == "assoc" and s)
    assert state["wanted"] == "assoc" and state["vids"] == [10] and state["last_keepalive"]
    port_topic = f"evb/v1/bridge/{BRIDGE}/port/{lab.bridge.ifname}/vsi/{vsi(1)['uuid']}"
    await orch.wait("the bridge's retained port state", lambda: orch.retained.get(port_topic))
    assert json.loads(orch.retained[port_topic])["mode"] == "assoc"

    # a redelivered command is answered again, not executed again
    await orch.command("r1", "assoc", 1)
    again = await orch.reply("r1", count=2)
    assert again["duplicate"] is True and again["result"] == r1["result"]
    counters = station.status()["mqtt"]
    assert (counters["commands"], counters["duplicates"]) == (2, 1)
    # the same request_id for another command
    await orch.command("r1", "deassoc", 1)
    conflict = await orch.reply("r1", count=3)
    assert conflict["error"]["code"] == "E_CONFLICT"

    # malformed payloads: an answer naming the field, and the agent goes on
    await orch.publish(
        orch.station("cmd"), json.dumps({"request_id": "bad1", "mode": "assoc", "vsi": vsi(2) | {"type_id": "x"}})
    )
    bad = await orch.reply("bad1")
    assert bad["error"]["code"] == "E_BAD_REQUEST" and bad["error"]["field"] == "vsi.type_id"
    await orch.publish(orch.station("cmd"), b"\xff not json")
    err = await orch.wait("an error answer", lambda: orch.retained.get(orch.station("error")))
    assert json.loads(err)["error"]["field"] == ""
    await orch.command("r2", "deassoc", 1)
    assert (await orch.reply("r2"))["ok"]
    await orch.wait("the state cleared", lambda: orch.retained.get(orch.station(f"vsi/{vsi(1)['uuid']}")) == b"")
    await orch.wait("the port state cleared", lambda: orch.retained.get(port_topic) == b"")
    assert bridge_vsis(bridge) == set()
    assert station.status()["mqtt"]["malformed"] == 2


async def test_commands_published_while_the_agent_is_away_run_once(world: Any) -> None:
    _lab, _mgmt, broker, station, bridge, orch = world
    await orch.command("a1", "assoc", 1)
    assert (await orch.reply("a1"))["ok"]

    # the broker restarts: the agents reconnect and their retained state is there
    broker.restart()
    await orch.wait(
        "the station reconnected", lambda: (m := station.status()["mqtt"])["connects"] >= 2 and m["connected"], 30
    )

    # the station agent stops; commands published meanwhile, one twice, with a broker restart between
    station.stop()
    await orch.wait("station offline", lambda: orch.presence(orch.station("")[:-1]) == "offline")
    stale = orch.station(f"vsi/{vsi(9)['uuid']}")  # a state the agent does not own (a crashed run's)
    await orch.publish(stale, json.dumps({"state": "assoc"}), retain=True)
    await orch.command("a2", "deassoc", 1)
    await orch.command("a3", "assoc", 3)
    await orch.command("a2", "deassoc", 1)
    await asyncio.sleep(0.3)
    broker.restart()
    station.start()
    a2, a3 = await orch.reply("a2", count=2, timeout=30), await orch.reply("a3", timeout=30)
    replies = orch.replies("a2")
    assert replies[0]["ok"] and replies[0]["result"]["mode"] == "deassoc", replies
    assert replies[1]["duplicate"] is True and a2["result"] == replies[0]["result"]
    assert a3["ok"] and a3["result"]["mode"] == "assoc"
    assert bridge_vsis(bridge) == {vsi(3)["uuid"]}
    assert station.status()["mqtt"]["commands"] == 3  # each executed once
    await orch.wait("the stale state cleared", lambda: orch.retained.get(stale) == b"")


async def test_a_network_cut_is_survived(world: Any) -> None:
    lab, mgmt, _broker, station, bridge, orch = world
    base = orch.station("")[:-1]
    mgmt.cut(lab.station.ns)
    # the broker misses the keep-alives and publishes the last will
    await orch.wait("the last will", lambda: orch.presence(base) == "offline", 15)
    await orch.command("c1", "assoc", 4)
    await asyncio.sleep(1.0)
    assert not orch.replies("c1")  # nothing crosses a cut
    mgmt.heal(lab.station.ns)
    c1 = await orch.reply("c1", timeout=45)
    assert c1["ok"] and c1["result"]["mode"] == "assoc"
    await orch.wait("online again", lambda: orch.presence(base) == "online")
    assert bridge_vsis(bridge) == {vsi(4)["uuid"]}
    st = station.status()["mqtt"]
    assert st["connects"] >= 2 and st["commands"] == 1


async def test_agents_over_tls_with_passwords_and_acls(tmp_path: Path) -> None:
    """mqtts:// with the broker's CA, a password file, and the per-host ACL of interop/mosquitto."""
    async with make_world(tmp_path, secure=True) as (_lab, _mgmt, _broker, station, bridge, orch):
        await orch.command("s1", "assoc", 5)
        assert (await orch.reply("s1"))["ok"]
        await orch.wait("the retained state", lambda: (s := orch.state(5)) and s["state"] == "assoc")
        assert bridge_vsis(bridge) == {vsi(5)["uuid"]}
        st = station.status()["mqtt"]
        assert st["broker"].startswith("mqtts://hv1@") and "pw-h" not in st["broker"]  # no password shown
