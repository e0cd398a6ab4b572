"""``evb bridge run``: the emulated adjacent bridge's control plane on N ports (asyncio root).

One ``BridgePort`` per interface, each run by a ``PortDriver``; reflective relay capability is
advertised on every port (``[evb] rrcap``). VDP admission goes through a policy callback
(accept-all by default); associations and releases are handed to a data plane through the
``DataPlane`` hooks, the seam where the kernel/emulated forwarding of the VEPA bridge plugs in.

The policy is a VSI type database: a ``policy.toml`` file (read again by ``evb bridge reload`` or
SIGHUP), or, with ``--policy mqtt://…``, the retained entries of an MQTT broker, followed live
(``evb.mqtt.bridge``). With a broker (``[mqtt]``, ``--mqtt``, or that policy URL) the bridge also
publishes its association events and each port's VSI states; without one it runs as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from evb.aio.control_server import ControlServer, Notify
from evb.aio.driver import PortDriver
from evb.aio.rawsock import interface_mac
from evb.control import MODE_NAMES, ControlError, ErrorCode, entry_json, key_text
from evb.lldp.events import EvbLost, EvbNegotiated
from evb.lldp.negotiate import Role
from evb.mqtt.options import BrokerUrlError, MqttOptions, parse_broker_url
from evb.port import BridgePort, Event, Port
from evb.settings import BridgeSettings, ConfigError, port_config
from evb.station_agent.daemon import dataclass_dict, port_status
from evb.vdp.bridge import Policy, accept_all, accept_all_assigning
from evb.vdp.events import VsiAssociated, VsiDeassociated, VsiKey
from evb.vdp.wire import FilterEntry, VdpMode
from evb.vepa_bridge.kernel import DataPlaneError, KernelDataPlane
from evb.vepa_bridge.policy import (
    PolicyError,
    VsiTypeDatabase,
    is_mqtt_url,
    load_policy,
    manager_unreachable,
)

if TYPE_CHECKING:
    from evb.mqtt.bridge import BridgeMqtt


class DataPlane(Protocol):
    """What the bridge's forwarding needs to hear from the control plane (``KernelDataPlane``,
    ``EmulatedDataPlane``, ``LogOnlyDataPlane``). ``start`` runs inside the event loop."""

    started: bool

    def start(self) -> None: ...

    def close(self) -> None: ...

    def status(self) -> dict[str, Any]: ...

    def vsi_counters_all(self) -> dict[tuple[str, VsiKey], dict[str, int]]: ...

    def port_up(self, ifname: str, *, reflective_relay: bool) -> None: ...

    def port_down(self, ifname: str) -> None: ...

    def associate(self, ifname: str, key: VsiKey, mode: VdpMode, entries: tuple[FilterEntry, ...]) -> None: ...

    def deassociate(self, ifname: str, key: VsiKey) -> None: ...


_DP_INFO = ("kind", "bridge", "table", "default_vid", "forward_counters", "ring_frames")


class LogOnlyDataPlane:
    """No forwarding yet: records what it is told (``evb bridge status`` shows it)."""

    def __init__(self) -> None:
        self.ports: dict[str, bool] = {}
        self.vsis: dict[tuple[str, VsiKey], tuple[VdpMode, tuple[FilterEntry, ...]]] = {}
        self.started = False

    def start(self) -> None:
        self.started = True

    def close(self) -> None:
        self.started = False

    def status(self) -> dict[str, Any]:
        return {"kind": "none", "ports": {p: {"evb": True, "hairpin": rr} for p, rr in self.ports.items()}}

    def vsi_counters_all(self) -> dict[tuple[str, VsiKey], dict[str, int]]:
        return {}

    def port_up(self, ifname: str, *, reflective_relay: bool) -> None:
        self.ports[ifname] = reflective_relay

    def port_down(self, ifname: str) -> None:
        self.ports.pop(ifname, None)
        for k in [k for k in self.vsis if k[0] == ifname]:
            del self.vsis[k]

    def associate(self, ifname: str, key: VsiKey, mode: VdpMode, entries: tuple[FilterEntry, ...]) -> None:
        self.vsis[(ifname, key)] = (mode, entries)

    def deassociate(self, ifname: str, key: VsiKey) -> None:
        self.vsis.pop((ifname, key), None)


class BridgeAgent:
    def __init__(
        self,
        settings: BridgeSettings,
        *,
        policy: Policy | None = None,
        dataplane: DataPlane | None = None,
        log: Any = None,
    ) -> None:
        self.settings = settings
        #: without a policy file: accept all; a wildcard VID (0) stays 0 or becomes [vdp] wildcard_vid
        wildcard = settings.vdp.wildcard_vid
        self.policy = policy or (accept_all_assigning(wildcard) if wildcard else accept_all)
        self.database: VsiTypeDatabase | None = None  #: from ``settings.policy``, loaded by start()
        self.dataplane: DataPlane = dataplane or LogOnlyDataPlane()
        self.log = (log or structlog.get_logger()).bind(role="bridge")
        self.drivers: dict[str, PortDriver] = {}
        self.server: ControlServer | None = None
        self.mqtt: BridgeMqtt | None = None
        self._stop = asyncio.Event()

    def _port_policy(self, ifname: str) -> Policy:
        return self.database.policy_for(ifname) if self.database is not None else self.policy

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        s = self.settings
        mqtt = mqtt_options(s)  # ConfigError: --policy mqtt://A with --mqtt B
        source = shown_url(s.policy) if is_mqtt_url(s.policy) else None  # without its password
        if source is not None:
            # until the broker's VSI type database has arrived (evb.mqtt.bridge)
            self.policy = manager_unreachable(f"VSI type database from {source} not received yet")
        elif s.policy:
            self.database = load_policy(s.policy)  # PolicyError: the bridge does not start
            self.log.info("bridge.policy_loaded", file=s.policy, managers=len(self.database.managers))
        if mqtt is not None:
            from evb.mqtt.bridge import BridgeMqtt

            self.mqtt = BridgeMqtt(self, mqtt, self.log, vtdb=source)
        dp = self.dataplane
        try:
            dp.start()  # kernel: removes a crashed run's bridge/table first
        except DataPlaneError as exc:
            dp.close()
            raise ControlError(ErrorCode.INTERNAL, f"{getattr(dp, 'kind', '')} data plane: {exc}") from None
        if not isinstance(dp, LogOnlyDataPlane):
            self.log.info("bridge.dataplane_started", **{k: getattr(dp, k) for k in _DP_INFO if hasattr(dp, k)})
        for ifname in s.ports:
            try:
                mac = interface_mac(ifname)
            except OSError as exc:
                raise ControlError(ErrorCode.INTERNAL, f"cannot open port {ifname}: {exc}") from None
            config = port_config(
                Role.BRIDGE, mac, s.evb, s.vdp, first_seq=random.randrange(1, 0x10000), faults=s.faults
            )
            port = BridgePort(config, now=loop.time(), policy=self._port_policy(ifname))
            driver = PortDriver(port, ifname, self.log.bind(ifname=ifname))
            driver.listeners.append(self._listener(ifname))
            if self.mqtt is not None:  # after the data plane's: published once it is done
                driver.listeners.append(self.mqtt.listener(ifname))
            self.drivers[ifname] = driver
            driver.start()
        self.server = ControlServer(s.socket, self._handlers(), self.log)
        await self.server.start()
        if self.mqtt is not None:
            self.mqtt.start()

    async def run(self) -> None:
        await self.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload_logged)
        self.log.info("bridge.running", ports=list(self.settings.ports), socket=self.settings.socket)
        await self._stop.wait()
        await self.stop()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()
        for driver in self.drivers.values():
            driver.stop()
        if self.mqtt is not None:  # clears the VSIs' retained states (a stopped bridge holds none)
            await self.mqtt.close()
        self.dataplane.close()
        self.log.info("bridge.stopped")

    def request_stop(self) -> None:
        self._stop.set()

    def _listener(self, ifname: str) -> Callable[[Port, Event], None]:
        def listener(port: Port, ev: Event) -> None:
            self._on_event(ifname, port, ev)

        return listener

    def _on_event(self, ifname: str, port: Port, ev: Event) -> None:
        try:
            self._to_dataplane(ifname, ev)
        except DataPlaneError as exc:  # the control plane goes on; the frames of that VSI do not
            self.log.error("bridge.dataplane_failed", ifname=ifname, event=type(ev).__name__, error=str(exc))

    def _to_dataplane(self, ifname: str, ev: Event) -> None:
        dp = self.dataplane
        if isinstance(dp, KernelDataPlane) and isinstance(ev, VsiAssociated | VsiDeassociated) and dp.defer():
            asyncio.get_running_loop().call_soon(self._flush_dataplane, dp)  # one nft run per loop turn
        if isinstance(ev, VsiAssociated):
            self.dataplane.associate(ifname, ev.key, ev.mode, ev.entries)
        elif isinstance(ev, VsiDeassociated):
            self.dataplane.deassociate(ifname, ev.key)
        elif isinstance(ev, EvbNegotiated):
            self.dataplane.port_up(ifname, reflective_relay=ev.rr)
        elif isinstance(ev, EvbLost):
            self.dataplane.port_down(ifname)

    def _flush_dataplane(self, dp: KernelDataPlane) -> None:
        try:
            dp.flush()
        except DataPlaneError as exc:
            self.log.error("bridge.dataplane_failed", event="flush", error=str(exc))

    # ------------------------------------------------------------------ policy reload

    def reload(self) -> dict[str, Any]:
        """Read the policy file again; raises ``PolicyError`` (old database kept) if it is bad. With an
        MQTT policy: apply the broker's current entries again (it is followed live anyway)."""
        path = self.settings.policy
        if not path:
            raise ControlError(ErrorCode.NOT_ALLOWED, "the bridge runs without a policy file (accept all)")
        if is_mqtt_url(path):
            assert self.mqtt is not None
            return self.mqtt.reapply()
        return self.apply_database(load_policy(path), source=path)

    def apply_database(
        self, database: VsiTypeDatabase, *, source: str, event: str = "bridge.policy_reloaded", **extra: Any
    ) -> dict[str, Any]:
        """Use ``database`` on every port from now on: VSIs it forbids get an unsolicited
        De-Associate (``VdpBridge.set_policy``); logged as ``event`` with the number released."""
        self.database = database
        released = 0
        for ifname, driver in self.drivers.items():
            port = driver.port
            assert isinstance(port, BridgePort)
            before = port.vdp.counters.policy_releases
            policy = database.policy_for(ifname)

            def apply(now: float, p: BridgePort = port, pol: Policy = policy) -> None:
                p.set_policy(pol, now)

            driver.command(apply)
            released += port.vdp.counters.policy_releases - before
        self.log.info(event, file=source, managers=len(database.managers), released=released, **extra)
        return {"file": source, "released": released, **extra}

    def _reload_logged(self) -> None:
        try:
            self.reload()
        except (PolicyError, ControlError) as exc:
            self.log.error("bridge.policy_reload_failed", error=str(exc))

    async def api_reload(self, args: dict[str, Any], notify: Notify) -> Any:
        try:
            return self.reload()
        except PolicyError as exc:
            raise ControlError(ErrorCode.BAD_REQUEST, f"policy not reloaded, the old one stays: {exc}") from None

    # ------------------------------------------------------------------ control API

    def _handlers(self) -> dict[str, Any]:
        return {
            "status": self.api_status,
            "vsi.list": self.api_list,
            "vsi.show": self.api_show,
            "reload": self.api_reload,
        }

    async def api_status(self, args: dict[str, Any], notify: Notify) -> Any:
        ports = []
        for ifname, d in self.drivers.items():
            port = d.port
            assert isinstance(port, BridgePort)
            ports.append(
                port_status(port, ifname)
                | {"vsis_by_mode": port.vdp.mode_counts(), "vdp": dataclass_dict(port.vdp.counters)}
            )
        result: dict[str, Any] = {"ports": ports}
        if self.mqtt is not None:
            result["mqtt"] = self.mqtt.status()
        try:
            result["dataplane"] = self.dataplane.status()
        except DataPlaneError as exc:
            result["dataplane"] = {"kind": getattr(self.dataplane, "kind", "?"), "error": str(exc)}
        if args.get("vsis"):
            result["vsis"] = await self.api_list({"counters": True}, notify)
        return result

    async def api_list(self, args: dict[str, Any], notify: Notify) -> Any:
        rows: list[dict[str, Any]] = []
        counters = None  # per-VSI data-plane counters, read once (the kernel backend reads every set)
        if args.get("counters") and not isinstance(self.dataplane, LogOnlyDataPlane):
            try:
                counters = self.dataplane.vsi_counters_all()
            except DataPlaneError as exc:
                self.log.error("bridge.dataplane_failed", event="counters", error=str(exc))
                counters = {}
        for ifname, d in self.drivers.items():
            port = d.port
            assert isinstance(port, BridgePort)
            for key, rec in port.vdp.vsis.items():
                answer = rec.answer
                rows.append(
                    {
                        "port": ifname,
                        "vsi": key_text(key),
                        "mode": MODE_NAMES[rec.mode] if rec.mode else "pending",
                        "type_id": answer.type_id if answer else None,
                        "type_version": answer.type_version if answer else None,
                        "filters": [entry_json(e) for e in answer.entries] if answer else [],
                        "expires_in": None if rec.deadline is None else round(rec.deadline - d.loop.time(), 3),
                    }
                )
                if counters is not None:
                    rows[-1]["counters"] = counters.get((ifname, key))
        return rows

    async def api_show(self, args: dict[str, Any], notify: Notify) -> Any:
        text = str(args.get("uuid", "")).lower()
        rows = [r for r in await self.api_list({"counters": True}, notify) if text and text in r["vsi"].lower()]
        if not rows:
            raise ControlError(ErrorCode.NOT_FOUND, f"no VSI matching {text!r}")
        return rows


def mqtt_options(settings: BridgeSettings) -> MqttOptions | None:
    """The broker of a bridge: ``settings.mqtt`` (``[mqtt]``, ``--mqtt``), else the URL of an MQTT
    policy (``--policy mqtt://…``), else None. Both given: they must name the same broker (scheme,
    host and port; user, password, client id and name come from ``[mqtt]``), else ``ConfigError``."""
    policy = settings.policy
    if not is_mqtt_url(policy):
        return settings.mqtt
    assert policy is not None
    try:
        wanted = parse_broker_url(policy)
    except BrokerUrlError as exc:
        raise ConfigError(None, "policy", str(exc)) from None
    if settings.mqtt is None:
        return MqttOptions(broker=policy)
    have = parse_broker_url(settings.mqtt.broker)
    if (have.host.lower(), have.port, have.tls) != (wanted.host.lower(), wanted.port, wanted.tls):
        raise ConfigError(
            None,
            "policy",
            f"the VSI type database's broker {wanted} is not the MQTT broker {have} ([mqtt] broker / --mqtt): "
            "a bridge uses one broker",
        )
    return settings.mqtt


def shown_url(url: str | None) -> str:
    """A broker URL as logs and answers show it: without the password."""
    try:
        return str(parse_broker_url(url or ""))
    except BrokerUrlError:
        return "mqtt://?"


def make_dataplane(settings: BridgeSettings) -> DataPlane | None:
    """The data plane ``settings.dataplane`` names (``None`` for ``none``: log only)."""
    d = settings.dataplane
    if d.kind == "kernel":
        return KernelDataPlane(
            settings.ports,
            bridge=d.bridge_name,
            table=d.nft_table,
            default_vid=d.default_vid,
            forward_counters=d.forward_counters,
        )
    if d.kind == "emulated":
        from evb.vepa_bridge.emulated import EmulatedDataPlane

        return EmulatedDataPlane(settings.ports, default_vid=d.default_vid, ring_frames=d.ring_frames)
    return None


def main_run(settings: BridgeSettings, policy: Policy | None = None, dataplane: DataPlane | None = None) -> int:
    agent = BridgeAgent(settings, policy=policy, dataplane=dataplane)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(agent.run())
    finally:
        if dataplane is not None and dataplane.started:
            dataplane.close()  # also when start() or run() failed half-way
    return 0
