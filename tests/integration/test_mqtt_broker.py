"""The mosquitto test broker (``evb/mqtt/broker.py``) and the management network
(``evb/mqtt/mgmtnet.py``) against the real thing: persistence across restarts, persistent
sessions, the per-host ACL, TLS, and namespaces reaching the broker (cut and healed).

The broker tests need only the ``mosquitto`` binary; the management-network tests need root
(network namespaces) and are marked ``netns`` like the other live tests.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from evb.mqtt.broker import MISSING, STATION_PATTERNS, Broker, free_port, make_tls_files
from evb.mqtt.mgmtnet import MgmtNet, can_connect, sh, sweep_stale, unique_name
from interop.lab import missing_prerequisites

NETNS_MISSING = MISSING or missing_prerequisites(lldpad=False)

pytestmark = [pytest.mark.skipif(MISSING is not None, reason=MISSING or ""), pytest.mark.timeout(60)]
needs_netns = pytest.mark.skipif(NETNS_MISSING is not None, reason=f"live: {NETNS_MISSING}")

CMD1 = "evb/v1/station/hv1/eth0/cmd"
CMD2 = "evb/v1/station/hv2/eth0/cmd"
VTDB = "evb/v1/vtdb/labmgr/5/4"


def client(
    broker: Broker,
    user: str | None = None,
    *,
    identifier: str | None = None,
    clean_session: bool | None = None,
    password: str | None = None,
    ca: bool = True,
) -> aiomqtt.Client:
    """A client of ``broker`` as ``user`` (auth brokers: default the orchestrator)."""
    if broker.auth and user is None:
        user = "orchestrator"
    tls = None
    if broker.tls:
        tls = ssl.create_default_context(cafile=str(broker.ca_file) if ca else None)
    return aiomqtt.Client(
        broker.host,
        broker.port,
        username=user,
        password=password if password is not None else broker.users.get(user or ""),
        identifier=identifier,
        clean_session=clean_session,
        tls_context=tls,
        timeout=5,
    )


async def receive(c: aiomqtt.Client, n: int = 1, timeout: float = 5.0) -> list[tuple[str, bytes]]:
    """The next ``n`` messages (topic, payload) of ``c``; TimeoutError if they do not come."""
    got: list[tuple[str, bytes]] = []

    async def take() -> None:
        async for m in c.messages:
            got.append((m.topic.value, bytes(m.payload) if isinstance(m.payload, bytes | bytearray) else b""))
            if len(got) == n:
                return

    await asyncio.wait_for(take(), timeout)
    return got


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    with Broker(tmp_path) as b:
        yield b


@pytest.fixture
def auth_broker(tmp_path: Path) -> Iterator[Broker]:
    with Broker(tmp_path, auth=True) as b:
        yield b


# =========================================================================== persistence


@pytest.mark.asyncio
async def test_retained_message_survives_restart(broker: Broker) -> None:
    async with client(broker) as c:
        await c.publish("evb/v1/bridge/sw1/status", b"online", qos=1, retain=True)
    port = broker.port
    broker.restart()
    assert broker.port == port and "Saving in-memory database" in broker.log()
    async with client(broker) as c:
        await c.subscribe("evb/v1/bridge/+/status", qos=1)
        assert await receive(c) == [("evb/v1/bridge/sw1/status", b"online")]


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["reconnect", "restart", "crash"])
async def test_persistent_session_gets_what_was_published_while_away(broker: Broker, how: str) -> None:
    """clean_session=False, fixed identifier, QoS 1: messages published while the subscriber
    was away arrive after it reconnects, also across a restart (SIGTERM saves the database) and
    a crash (SIGKILL: what the last autosave wrote; ``autosave_interval 1`` saves every 2 s,
    mosquitto waits until more than the interval has passed in whole seconds)."""
    async with client(broker, identifier="evb-station-hv1-eth0", clean_session=False) as sub:
        await sub.subscribe(CMD1, qos=1)
    async with client(broker) as pub:
        for i in range(3):
            await pub.publish(CMD1, b"%d" % i, qos=1)
    if how == "restart":
        broker.restart()
    elif how == "crash":
        await asyncio.sleep(2.5)  # an autosave has passed
        broker.restart(hard=True)
    async with client(broker, identifier="evb-station-hv1-eth0", clean_session=False) as sub:
        assert await receive(sub, 3) == [(CMD1, b"0"), (CMD1, b"1"), (CMD1, b"2")]


@pytest.mark.asyncio
async def test_queues_hold_more_than_mosquittos_default(broker: Broker) -> None:
    """max_queued_messages 100000 (default 1000), max_inflight_messages 0 (default 20)."""
    n = 3000
    async with client(broker, identifier="slow", clean_session=False) as sub:
        await sub.subscribe("q/#", qos=1)
    async with client(broker) as pub:
        await asyncio.gather(*(pub.publish(f"q/{i}", b"x", qos=1) for i in range(n)))
    async with client(broker, identifier="slow", clean_session=False) as sub:
        got = await receive(sub, n, timeout=10)
    assert [t for t, _ in got] == [f"q/{i}" for i in range(n)]


# =========================================================================== users and ACL


@pytest.mark.asyncio
async def test_a_host_reads_only_its_own_commands(auth_broker: Broker) -> None:
    b = auth_broker
    async with client(b, "hv1") as hv1, client(b, "hv2") as hv2, client(b) as orch:
        await hv1.subscribe(CMD2, qos=1)  # accepted (SUBACK) but nothing is delivered
        await hv1.subscribe(CMD1, qos=1)
        await hv2.subscribe(CMD2, qos=1)
        await orch.publish(CMD2, b"for hv2", qos=1)
        await orch.publish(CMD1, b"for hv1", qos=1)  # after the other: hv1 would get that first
        assert await receive(hv1) == [(CMD1, b"for hv1")]
        assert await receive(hv2) == [(CMD2, b"for hv2")]


@pytest.mark.asyncio
async def test_a_host_cannot_command_another_host_nor_write_outside_its_tree(auth_broker: Broker) -> None:
    b = auth_broker
    async with client(b, "hv1") as hv1, client(b) as orch:
        await orch.subscribe("evb/v1/#", qos=1)
        for topic in (CMD2, CMD1, "evb/v1/station/hv2/eth0/vsi/x", VTDB, "evb/v1/bridge/sw1/status"):
            await hv1.publish(topic, b"forged", qos=1)  # MQTT 3.1.1: PUBACK, then dropped
        await hv1.publish("evb/v1/station/hv1/eth0/reply/r1", b"ok", qos=1)
        await hv1.publish("evb/v1/station/hv1/eth0/vsi/x", b"{}", qos=1)
        assert await receive(orch, 2) == [
            ("evb/v1/station/hv1/eth0/reply/r1", b"ok"),
            ("evb/v1/station/hv1/eth0/vsi/x", b"{}"),
        ]


@pytest.mark.asyncio
async def test_bridges_write_their_own_tree_and_everyone_reads_the_vtdb(auth_broker: Broker) -> None:
    b = auth_broker
    async with client(b) as orch:
        await orch.publish(VTDB, b'{"vsi":1}', qos=1, retain=True)
    b.restart()  # the retained entry's source (the orchestrator) is checked again afterwards
    async with client(b, "bridge-sw1") as sw1, client(b, "hv1") as hv1, client(b) as orch:
        await orch.subscribe("evb/v1/bridge/#", qos=1)
        await sw1.publish("evb/v1/bridge/sw2/status", b"forged", qos=1)
        await sw1.publish("evb/v1/bridge/sw1/status", b"online", qos=1)
        assert await receive(orch) == [("evb/v1/bridge/sw1/status", b"online")]
        for c in (sw1, hv1):
            await c.subscribe("evb/v1/vtdb/#", qos=1)
            assert await receive(c) == [(VTDB, b'{"vsi":1}')]


@pytest.mark.asyncio
async def test_wrong_password_and_anonymous_are_refused(auth_broker: Broker) -> None:
    for user, password in (("hv1", "wrong"), (None, None)):
        c = client(auth_broker, user, password=password)
        if user is None:
            c = aiomqtt.Client(auth_broker.host, auth_broker.port, timeout=5)
        with pytest.raises(aiomqtt.MqttError):
            async with c:
                pass
    assert "orchestrator:pw-orchestrator@" in auth_broker.url
    assert auth_broker.url_for("hv1").startswith("mqtt://hv1:pw-hv1@127.0.0.1:")


# =========================================================================== TLS


@pytest.mark.asyncio
async def test_tls_needs_the_ca_file(tmp_path: Path) -> None:
    with Broker(tmp_path, tls=True, users={"orchestrator": "pw"}) as b:
        assert b.url.startswith("mqtts://orchestrator:pw@127.0.0.1:") and b.ca_file is not None
        async with client(b) as c:
            await c.publish(VTDB, b"x", qos=1, retain=True)
        with pytest.raises(aiomqtt.MqttError):
            async with client(b, ca=False):
                pass


# =========================================================================== interop/mosquitto

INTEROP = Path(__file__).resolve().parents[2] / "interop" / "mosquitto"


def test_the_fixtures_station_rules_are_the_example_acls() -> None:
    def patterns(text: str) -> list[list[str]]:
        return [line.split() for line in text.splitlines() if line.startswith("pattern ")]

    assert patterns((INTEROP / "acl").read_text()) == patterns(STATION_PATTERNS)


@pytest.mark.asyncio
async def test_the_example_config_loads_and_confines_hosts(tmp_path: Path) -> None:
    """interop/mosquitto/mosquitto.conf with its acl, on free ports, with files made here."""
    etc = tmp_path / "evb"
    make_tls_files(etc, ["127.0.0.1"])
    shutil.copy(INTEROP / "acl", etc / "acl")
    users = {"orchestrator": "po", "hv1": "p1", "hv2": "p2", "bridge-sw1": "pb"}
    for i, (user, password) in enumerate(users.items()):
        sh("mosquitto_passwd", "-b", *(["-c"] if i == 0 else []), str(etc / "passwd"), user, password)
    plain, tls = free_port(), free_port()
    conf = (INTEROP / "mosquitto.conf").read_text()
    for old, new in (
        ("/etc/mosquitto/evb", str(etc)),
        ("/var/lib/mosquitto/", f"{tmp_path}/"),
        ("/var/log/mosquitto/", f"{tmp_path}/"),
        ("/run/mosquitto/", f"{tmp_path}/"),
        ("listener 1883 ", f"listener {plain} "),
        ("listener 8883\n", f"listener {tls}\n"),
    ):
        assert old in conf
        conf = conf.replace(old, new)
    if os.geteuid() == 0:
        conf = "user root\n" + conf  # else mosquitto reads the files as "mosquitto": not in tmp_path
    (tmp_path / "mosquitto.conf").write_text(conf)
    proc = subprocess.Popen(["mosquitto", "-c", str(tmp_path / "mosquitto.conf")], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not (can_connect(None, "127.0.0.1", plain, 0.2) and can_connect(None, "127.0.0.1", tls, 0.2)):
            log = tmp_path / "mosquitto.log"
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text() if log.exists() else ""
            await asyncio.sleep(0.05)
        ctx = ssl.create_default_context(cafile=str(etc / "ca.crt"))

        def mk(user: str, port: int) -> aiomqtt.Client:
            tls_context = ctx if port == tls else None
            return aiomqtt.Client("127.0.0.1", port, username=user, password=users[user], tls_context=tls_context)

        async with mk("orchestrator", plain) as orch, mk("hv1", tls) as hv1:
            await hv1.subscribe("evb/v1/station/+/+/cmd", qos=1)
            await orch.subscribe("evb/v1/station/+/+/reply/+", qos=1)
            await hv1.publish("evb/v1/station/hv2/eth0/reply/x", b"forged", qos=1)
            await hv1.publish("evb/v1/station/hv1/eth0/reply/x", b"ok", qos=1)
            await orch.publish(CMD2, b"for hv2", qos=1)
            await orch.publish(CMD1, b"for hv1", qos=1)
            assert await receive(hv1) == [(CMD1, b"for hv1")]
            assert await receive(orch) == [("evb/v1/station/hv1/eth0/reply/x", b"ok")]
    finally:
        proc.terminate()
        proc.wait(10)
    assert "Saving in-memory database" in (tmp_path / "mosquitto.log").read_text()


# =========================================================================== management network


@pytest.fixture
def mgmt() -> Iterator[tuple[MgmtNet, str]]:
    """A management network (its own subnet, so parallel runs and labs do not meet) and one
    namespace on it."""
    sweep_stale()
    name = unique_name()
    ns = f"{name}-ns"
    sh("ip", "netns", "add", ns)
    net = None
    try:
        net = MgmtNet(name, f"10.77.{100 + os.getpid() % 150}.1/24")
        yield net, ns
    finally:
        if net is not None:
            net.close()
        sh("ip", "netns", "del", ns, check=False)


@pytest.fixture
def mgmt_broker(tmp_path: Path, mgmt: tuple[MgmtNet, str]) -> Iterator[tuple[Broker, MgmtNet, str]]:
    net, ns = mgmt
    with Broker(tmp_path, listen_addresses=(net.address,)) as b:
        yield b, net, ns


@pytest.mark.netns
@needs_netns
@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["drop", "down"])
async def test_namespace_reaches_the_broker_and_cut_heal(mgmt_broker: tuple[Broker, MgmtNet, str], how: str) -> None:
    b, net, ns = mgmt_broker
    addr = net.add(ns)
    assert addr.startswith(net.address.rsplit(".", 1)[0] + ".") and addr != net.address
    assert can_connect(ns, net.address, b.port)
    assert not can_connect(ns, "127.0.0.1", b.port)  # the namespace's own loopback: nobody
    # MQTT from inside the namespace, read here on loopback
    topic = "evb/v1/station/hv9/eth0/status"
    sh("mosquitto_pub", "-h", net.address, "-p", str(b.port), "-t", topic, "-m", "online", "-r", "-q", "1", ns=ns)
    async with client(b) as c:
        await c.subscribe(topic, qos=1)
        assert await receive(c) == [(topic, b"online")]
    net.cut(ns, how)
    t0 = time.monotonic()
    assert not can_connect(ns, net.address, b.port, timeout=0.5)
    assert time.monotonic() - t0 >= 0.4  # no answer at all (not refused, not unreachable at once)
    net.heal(ns)
    assert can_connect(ns, net.address, b.port)


#: Runs in the namespace: connect, say so, then on "send" send 4 bytes and print what comes.
_PEER = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
print("up", flush=True)
sys.stdin.readline()
s.sendall(b"ping")
print(s.recv(4).decode(), flush=True)
"""


@pytest.mark.netns
@needs_netns
@pytest.mark.parametrize("how", ["drop", "down"])
def test_a_cut_leaves_tcp_connections_hanging_not_reset(mgmt: tuple[MgmtNet, str], how: str) -> None:
    """During a cut both ends can still send (it is buffered, retransmitted), nobody gets an
    error; after heal the bytes arrive: a real cut, not a refused or reset connection."""
    net, ns = mgmt
    net.add(ns)
    with socket.create_server((net.address, 0)) as srv:
        srv.settimeout(5)
        cmd = ["ip", "netns", "exec", ns, sys.executable, "-c", _PEER, net.address, str(srv.getsockname()[1])]
        peer = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert peer.stdout is not None and peer.stdin is not None
            conn, _ = srv.accept()
            with conn:
                assert peer.stdout.readline() == "up\n"
                net.cut(ns, how)
                conn.sendall(b"pong")
                peer.stdin.write("send\n")
                peer.stdin.flush()
                conn.settimeout(1.0)
                with pytest.raises(TimeoutError):
                    conn.recv(4)  # nothing comes, and no reset either
                assert peer.poll() is None
                net.heal(ns)
                conn.settimeout(10)
                assert conn.recv(4) == b"ping"
                assert peer.stdout.readline() == "pong\n"
                assert peer.wait(10) == 0
        finally:
            if peer.poll() is None:
                peer.kill()
                peer.wait()
