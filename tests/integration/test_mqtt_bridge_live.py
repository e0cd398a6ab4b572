"""Our bridge agent (in this process) following a VSI type database on a real mosquitto, with our
station agent (``evb station run``) on the other end of a veth pair, driven by ``evb vsi assoc``.

The lab's station namespace keeps its end of the veth; the bridge's end is moved into this
process's namespace, where the broker listens on 127.0.0.1. Checked: an empty database refuses
with 3 "unable to contact VSI manager"; a published entry lets a VSI of that type associate
(association event, retained port state); a malformed entry is refused and counted and changes
nothing; an entry that forbids the VSI's VLAN makes the bridge de-associate it (unsolicited) and
clears its retained state; after a broker restart the bridge reconnects and its retained states
are there, also when the broker lost its whole store (the bridge publishes them again and keeps
its database); a bridge that stops clears its states and says offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import structlog

from evb.mqtt.broker import MISSING, Broker
from interop.lab import missing_prerequisites, run
from tests.integration.labs import open_lab

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(
        (missing_prerequisites(lldpad=False) or MISSING) is not None,
        reason=missing_prerequisites(lldpad=False) or MISSING or "",
    ),
    pytest.mark.timeout(300),
]

U0 = "5a0f1c2e-0000-4d3c-8e21-0a0000000000"
U1 = "5a0f1c2e-0001-4d3c-8e21-0a0000000001"
U2 = "5a0f1c2e-0002-4d3c-8e21-0a0000000002"
VTDB_54 = "evb/v1/vtdb/labmgr/5/4"
BASE = "evb/v1/bridge/sw1"
_ids = itertools.count(1)
#: what the station says of U1 once its retry (after "gone: bridge") was refused: VID 10 not allowed
_REFUSED = ("rejected: invalid VID, GroupID or MAC address", "gone: rejected")


async def wait_until(what: str, fn: Callable[[], Any], timeout: float = 20.0) -> Any:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        value = fn()
        if value:
            return value
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def evb(*args: str) -> tuple[int, str, str]:
    """``evb ARGS`` in a subprocess (the bridge runs in this event loop: nothing may block it)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "evb.cli", *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def assoc(socket: str, uuid: str, vid: int) -> tuple[int, str, str]:
    return await evb(
        "vsi", "assoc", "--socket", socket, "--uuid", uuid, "--type-id", "5", "--type-version", "4",
        "--manager-id", "labmgr", "--filter", f"{vid}-02:00:00:00:01:{uuid[-2:]}", "--wait",
    )  # fmt: skip


def client(broker: Broker) -> aiomqtt.Client:
    return aiomqtt.Client(broker.host, broker.port, identifier=f"test-{os.getpid()}-{next(_ids)}")


async def publish(broker: Broker, topic: str, payload: dict[str, Any] | bytes) -> None:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    async with client(broker) as c:
        await c.publish(topic, data, qos=1, retain=True)


async def retained(broker: Broker, topic_filter: str, quiet: float = 0.7) -> dict[str, Any]:
    """The retained messages under ``topic_filter`` now (JSON decoded where it is JSON)."""
    out: dict[str, Any] = {}
    async with client(broker) as c:
        await c.subscribe(topic_filter, qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(quiet):
                async for m in c.messages:
                    if m.retain and isinstance(m.payload, bytes):
                        try:
                            out[str(m.topic)] = json.loads(m.payload)
                        except ValueError:
                            out[str(m.topic)] = m.payload.decode()
    return out


async def collect(broker: Broker, topic: str, into: list[dict[str, Any]]) -> None:
    async with client(broker) as c:
        await c.subscribe(topic, qos=1)
        async for m in c.messages:
            if isinstance(m.payload, bytes):
                into.append(json.loads(m.payload))


@pytest.mark.asyncio
async def test_bridge_follows_the_vtdb_and_publishes_its_vsis(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    from evb.mqtt.options import MqttOptions
    from evb.settings import BridgeSettings
    from evb.vepa_bridge.daemon import BridgeAgent

    broker = Broker(tmp_path)
    broker.start()
    with open_lab(request) as lab, structlog.testing.capture_logs() as logs:
        station = await asyncio.to_thread(lab.start_station)
        port = lab.bridge.ifname  # into this process's namespace, where the broker is
        run(["ip", "-n", lab.bridge.ns, "link", "set", port, "netns", str(os.getpid())])
        run(["sysctl", "-qw", f"net.ipv6.conf.{port}.disable_ipv6=1"], check=False)
        run(["ip", "link", "set", port, "up"])
        settings = BridgeSettings(
            ports=(port,),
            socket=str(lab.workdir / "bridge.sock"),
            policy=broker.url,
            mqtt=MqttOptions(broker=broker.url, name="sw1"),
        )
        agent = BridgeAgent(settings)
        events: list[dict[str, Any]] = []
        watcher = asyncio.create_task(collect(broker, f"{BASE}/event", events))
        try:
            await agent.start()
            assert agent.mqtt is not None
            mq = agent.mqtt
            await wait_until("the first (empty) VSI type database", lambda: mq.loaded, 10)
            await asyncio.to_thread(station.wait_evb)
            st_sock = station.socket

            # nothing published: no manager is known, 3 "unable to contact VSI manager"
            rc, out, err = await assoc(st_sock, U0, 10)
            assert rc == 1 and "unable to contact VSI manager" in (out + err), (out, err)

            # an entry: type 5 version 4 on VLANs 10 and 20
            await publish(broker, VTDB_54, {"vlans": [10, 20]})
            await wait_until("the entry applied", lambda: mq.view is not None and len(mq.view.entries) == 1)
            await wait_until("the entry applied", lambda: mq.applied == mq.view.revision)  # type: ignore[union-attr]
            rc, out, err = await assoc(st_sock, U1, 10)
            assert rc == 0, (out, err)
            state_u1 = f"{BASE}/port/{port}/vsi/{U1}"
            states = await retained(broker, f"{BASE}/#")
            assert states[f"{BASE}/status"] == "online"
            assert states[state_u1]["mode"] == "assoc" and states[state_u1]["filters"][0]["vid"] == 10
            assert states[state_u1]["vsi"] == f"labmgr/{U1}" and states[state_u1]["type_id"] == 5
            await wait_until("the association event", lambda: [e for e in events if e["event"] == "associated"])
            assert events[0]["vsiid"] == U1 and events[0]["port"] == port and events[0]["mode"] == "assoc"

            # a malformed entry: refused, counted, the database stays
            database = agent.database
            await publish(broker, VTDB_54, {"vlans": [10, 5000]})
            await wait_until("the bad entry counted", lambda: mq.view is not None and mq.view.invalid == 1)
            await asyncio.sleep(0.5)
            status = (await asyncio.to_thread(_call, settings.socket, "status"))["mqtt"]
            assert status["connected"] and status["vtdb"]["invalid"] == 1 and status["vtdb"]["entries"] == 1
            assert status["vtdb"]["last_error"].startswith(f"{VTDB_54}: vlans: element 1: 5000 is outside")
            assert agent.database is database
            refused = [r for r in logs if r["event"] == "mqtt.vtdb_entry_refused"]
            assert refused and refused[0]["field"] == "vlans"

            # VLAN 10 forbidden: the bridge de-associates U1, the retained state goes
            await publish(broker, VTDB_54, {"vlans": [20]})
            await wait_until(
                "U1's de-association",
                lambda: [e for e in events if e["event"] == "deassociated" and e["vsiid"] == U1],
            )
            gone = next(e for e in events if e["event"] == "deassociated")
            assert (gone["reason"], gone["status"], gone["hard"], gone["mode"]) == ("policy", 5, True, "assoc")
            reloaded = [r for r in logs if r["event"] == "bridge.policy_reloaded" and r.get("released")]
            assert reloaded and reloaded[0]["released"] == 1
            assert state_u1 not in await retained(broker, f"{BASE}/#")
            for _ in range(50):  # the station ends it (an unsolicited De-Associate)
                rows = json.loads((await evb("vsi", "list", "--socket", st_sock, "--json"))[1])
                (u1,) = [r for r in rows if U1 in r["vsi"]]
                if u1.get("confirmed") != "assoc":
                    break
                await asyncio.sleep(0.1)
            assert u1.get("confirmed") != "assoc" and u1["last"] in ("gone: bridge", *_REFUSED), u1

            # U2 on VLAN 20 is fine
            rc, out, err = await assoc(st_sock, U2, 20)
            assert rc == 0, (out, err)
            state_u2 = f"{BASE}/port/{port}/vsi/{U2}"
            assert (await retained(broker, f"{BASE}/#"))[state_u2]["mode"] == "assoc"
            watcher.cancel()

            # the broker restarts: the bridge reconnects, its states are there
            await asyncio.to_thread(broker.restart)
            await wait_until("the reconnect", lambda: mq.link.counters.connects == 2 and mq.link.connected.is_set())
            states = await retained(broker, f"{BASE}/#")
            assert states[state_u2]["mode"] == "assoc" and states[f"{BASE}/status"] == "online"
            assert state_u1 not in states

            # the broker comes back without its store: the bridge publishes its states again and
            # keeps its database (a broker that sends no entry at all lost them)
            await asyncio.to_thread(broker.stop)
            shutil.rmtree(broker.db_dir)
            broker.db_dir.mkdir()
            await asyncio.to_thread(broker.start)
            await wait_until("the reconnect", lambda: mq.link.counters.connects == 3 and mq.link.connected.is_set())
            for _ in range(10):  # each look takes 0.7 s
                states = await retained(broker, f"{BASE}/#")
                if state_u2 in states:
                    break
            assert states[state_u2]["mode"] == "assoc"
            await asyncio.sleep(4)  # the resync has settled (at most 3 s)
            assert [r for r in logs if r["event"] == "mqtt.vtdb_kept"]
            assert mq.view is not None and len(mq.view.entries) == 1
            bridge_vsis = await asyncio.to_thread(_call, settings.socket, "vsi.list")
            assert [r["vsi"] for r in bridge_vsis] == [f"labmgr/{U2}"]

            # evb bridge reload: the current view again
            rc, out, err = await evb("bridge", "reload", "--socket", settings.socket, "--json")
            assert rc == 0 and json.loads(out)["released"] == 0 and json.loads(out)["entries"] == 1, (out, err)
        finally:
            watcher.cancel()
            await agent.stop()
            broker_states = await retained(broker, f"{BASE}/#") if broker.running else {}
            broker.stop()
        # a stopped bridge holds nothing: its states are cleared, it is offline
        assert broker_states.get(f"{BASE}/status") == "offline"
        assert not [t for t in broker_states if "/port/" in t]


def _call(socket: str, cmd: str) -> Any:
    from evb.control_client import call

    return call(socket, cmd, timeout=10)
