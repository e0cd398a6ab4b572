"""TOML configuration of the agents, checked key by key (file, line and key in every error).

Station (``station.toml``)::

    [station]
    iface = "eth0"
    socket = "/run/evb/station-eth0.sock"     # control socket (default shown)
    state = "/var/lib/evb/station-eth0.json"  # desired VSI state (default: next to the config)

    [evb]                  # what this side proposes (lldpad's tlvid0080c20d keys)
    rrreq = true           # request reflective relay
    gid = false            # group IDs (SGID)
    retries = 3            # R
    rte = 8                # ECP retransmission exponent
    rwd = 20               # resource-wait-delay exponent
    rka = 20               # keep-alive exponent

    [vdp]
    min_gap_ms = 3.0       # pacing between new ECPDUs (lldpad needs ≥ 3)
    max_per_pdu = 0        # VSI TLVs per ECPDU, 0 = as many as fit
    end_tlv = true

Bridge (``bridge.toml``): ``[bridge] ports = ["eth1", ...]``, ``socket``, ``policy``, and ``[evb]``
with ``rrcap`` instead of ``rrreq``; ``[vdp]`` adds ``max_vsis`` and ``wildcard_vid`` (without a
policy file: the VID given to a VID-0 entry; 0, the default, returns it unchanged as lldpad does);
and the forwarding::

    [dataplane]
    kind = "kernel"        # none (log only), kernel (Linux bridge + nftables), emulated (Python, AF_PACKET)
    bridge_name = "evbbr0" # kernel: the Linux bridge it creates
    nft_table = "evb"      # kernel: its nftables bridge table
    forward_counters = true # kernel: count forwarded/reflected per port (false: faster, "passed" only)
    default_vid = 1        # the VID an untagged frame counts as
    ring_frames = 16384    # emulated: frames per port ring (each way)

Both take an MQTT control plane (``docs/mqtt.md``; ``--mqtt URL`` on the command line)::

    [mqtt]
    broker = "mqtts://broker.example:8883"  # mqtt://[user[:password]@]host[:port] or mqtts://
    username = "hv1"                        # overrides the URL's
    password_file = "/etc/evb/mqtt.pw"      # first line: the password
    ca_file = "/etc/evb/mqtt-ca.crt"        # mqtts: the broker's CA (default: the system's)
    client_id = "evb-station-hv1-eth0"      # persistent session id (default shown)
    keepalive = 15                          # seconds
    host = "hv1"                            # station: the host name in topics (default: hostname)
    name = "tor1"                           # bridge: its name in topics (default: hostname)
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evb.errors import EvbError
from evb.lldp.negotiate import EvbConfig, Role
from evb.mqtt.options import BrokerUrlError, MqttOptions, parse_broker_url
from evb.port import PortConfig


class ConfigError(EvbError):
    def __init__(self, path: str | Path | None, key: str, message: str, line: int | None = None) -> None:
        where = f"{path}" if path else "command line"
        if line:
            where += f":{line}"
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")
        self.path, self.key, self.line, self.message = path, key, line, message


@dataclass(frozen=True, slots=True, kw_only=True)
class EvbSettings:
    rr: bool = True  #: station: RRREQ; bridge: RRCAP
    gid: bool = False
    retries: int = 3
    rte: int = 8
    rwd: int = 20
    rka: int = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class VdpSettings:
    min_gap_ms: float = 3.0
    max_per_pdu: int = 0
    end_tlv: bool = True
    max_vsis: int = 0
    #: bridge without a policy file: the VID a wildcard (VID 0) entry is given; 0 = returned
    #: unchanged, as lldpad's production policy does (lldpad stations refuse VID 1 in commands,
    #: so they could not de-associate a VSI the bridge gave VID 1)
    wildcard_vid: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class StationSettings:
    iface: str
    socket: str
    state: str
    evb: EvbSettings = field(default_factory=EvbSettings)
    vdp: VdpSettings = field(default_factory=VdpSettings)
    faults: frozenset[str] = frozenset()  #: ``--fault``: deliberate misbehaviour (conformance self-test)
    mqtt: MqttOptions | None = None  #: ``[mqtt]`` / ``--mqtt``: take commands from a broker too


@dataclass(frozen=True, slots=True, kw_only=True)
class DataPlaneSettings:
    """``[dataplane]`` of bridge.toml: which forwarding backend, and its knobs."""

    kind: str = "none"  #: none (log only), kernel (Linux bridge + nftables), emulated (Python over AF_PACKET)
    bridge_name: str = "evbbr0"  #: kernel: the Linux bridge
    nft_table: str = "evb"  #: kernel: the nftables bridge-family table
    forward_counters: bool = True  #: kernel: count forwarded/reflected per port (a rule in the forward hook)
    default_vid: int = 1  #: the VID an untagged frame counts as (both backends)
    ring_frames: int = 16384  #: emulated: frames in each port's receive (and transmit) ring


DATAPLANE_KINDS = ("none", "kernel", "emulated")


@dataclass(frozen=True, slots=True)
class BridgeSettings:
    ports: tuple[str, ...]
    socket: str
    policy: str | None = None
    evb: EvbSettings = field(default_factory=EvbSettings)
    vdp: VdpSettings = field(default_factory=VdpSettings)
    dataplane: DataPlaneSettings = field(default_factory=DataPlaneSettings)
    faults: frozenset[str] = frozenset()  #: ``--fault``: deliberate misbehaviour (conformance self-test)
    mqtt: MqttOptions | None = None  #: ``[mqtt]`` / ``--mqtt``: publish state, follow an MQTT VSI type database


def default_station_socket(iface: str) -> str:
    return f"/run/evb/station-{iface}.sock"


DEFAULT_BRIDGE_SOCKET = "/run/evb/bridge.sock"


class _Reader:
    """Typed access to a parsed TOML document that names file, line and key on error."""

    def __init__(self, path: Path | None, text: str) -> None:
        self.path = path
        self.text = text
        try:
            self.doc: dict[str, Any] = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"line (\d+)", str(exc))
            raise ConfigError(path, "", f"not valid TOML ({exc})", int(m.group(1)) if m else None) from None

    def line_of(self, table: str, key: str) -> int | None:
        section = None
        for n, line in enumerate(self.text.splitlines(), 1):
            s = line.strip()
            if header := re.match(r"\[\s*([^\]]*?)\s*\]", s):  # "[evb]  # comment" too
                section = header.group(1)
            elif section == table and re.match(rf"{re.escape(key)}\s*=", s):
                return n
        return None

    def tables(self, known: set[str]) -> None:
        """Refuse unknown top-level tables (a misspelt ``[vpd]`` must not be silently ignored)."""
        for name in self.doc:
            if name not in known:
                line = next(
                    (n for n, s in enumerate(self.text.splitlines(), 1) if s.strip().startswith(f"[{name}]")), None
                )
                raise ConfigError(self.path, name, f"unknown table (known: {', '.join(sorted(known))})", line)

    def table(self, name: str, known: set[str]) -> dict[str, Any]:
        t = self.doc.get(name, {})
        if not isinstance(t, dict):
            raise ConfigError(self.path, name, "must be a table")
        for key in t:
            if key not in known:
                raise ConfigError(
                    self.path,
                    f"{name}.{key}",
                    f"unknown key (known: {', '.join(sorted(known))})",
                    self.line_of(name, key),
                )
        return t

    def get(
        self, table: dict[str, Any], tname: str, key: str, kind: type, default: Any, lo: Any = None, hi: Any = None
    ) -> Any:
        if key not in table:
            return default
        value = table[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise ConfigError(
                self.path, f"{tname}.{key}", f"must be {kind.__name__}, not {value!r}", self.line_of(tname, key)
            )
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ConfigError(self.path, f"{tname}.{key}", f"{value} is outside {lo}..{hi}", self.line_of(tname, key))
        return value


def _evb(r: _Reader, rr_key: str) -> EvbSettings:
    t = r.table("evb", {rr_key, "gid", "retries", "rte", "rwd", "rka"})
    return EvbSettings(
        rr=r.get(t, "evb", rr_key, bool, True),
        gid=r.get(t, "evb", "gid", bool, False),
        retries=r.get(t, "evb", "retries", int, 3, 0, 7),
        rte=r.get(t, "evb", "rte", int, 8, 0, 31),
        rwd=r.get(t, "evb", "rwd", int, 20, 0, 31),
        rka=r.get(t, "evb", "rka", int, 20, 0, 31),
    )


def _vdp(r: _Reader, bridge: bool) -> VdpSettings:
    known = {"min_gap_ms", "max_per_pdu", "end_tlv"} | ({"max_vsis", "wildcard_vid"} if bridge else set())
    t = r.table("vdp", known)
    return VdpSettings(
        min_gap_ms=r.get(t, "vdp", "min_gap_ms", float, 3.0, 0.0, 10_000.0),
        max_per_pdu=r.get(t, "vdp", "max_per_pdu", int, 0, 0, 1000),
        end_tlv=r.get(t, "vdp", "end_tlv", bool, True),
        max_vsis=r.get(t, "vdp", "max_vsis", int, 0, 0, 10_000_000) if bridge else 0,
        wildcard_vid=r.get(t, "vdp", "wildcard_vid", int, 0, 0, 4094) if bridge else 0,
    )


MQTT_KEYS = {"broker", "username", "password_file", "ca_file", "client_id", "keepalive"}


def _mqtt(r: _Reader, given: dict[str, Any], name_key: str) -> MqttOptions | None:
    """``[mqtt]`` (``name_key``: ``host`` for a station, ``name`` for a bridge) with the command
    line's ``given`` values on top; ``None`` without a broker."""
    t = r.table("mqtt", MQTT_KEYS | {name_key})
    values: dict[str, Any] = {}
    for key in (*sorted(MQTT_KEYS - {"keepalive"}), name_key):
        value = given.get(key)
        values[key] = value if value is not None else r.get(t, "mqtt", key, str, None)
    broker = values.pop("broker")
    if not broker:
        if any(v for v in values.values()):
            raise ConfigError(r.path, "mqtt.broker", "[mqtt] keys given but no broker (--mqtt URL)", None)
        return None
    try:
        parse_broker_url(broker)
    except BrokerUrlError as exc:
        where = "--mqtt" if given.get("broker") else "mqtt.broker"
        raise ConfigError(
            None if given.get("broker") else r.path, where, str(exc), r.line_of("mqtt", "broker")
        ) from None
    name = values.pop(name_key)
    if name is not None and (not name or set(name) & set("/+#\0")):
        raise ConfigError(r.path, f"mqtt.{name_key}", f"{name!r} cannot be a topic level (no / + #)")
    return MqttOptions(
        broker=broker,
        name=name,
        keepalive=r.get(t, "mqtt", "keepalive", int, 15, 2, 3600),
        **values,
    )


def _read(path: str | Path | None) -> _Reader:
    if path is None:
        return _Reader(None, "")
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(p, "", f"cannot read ({exc.strerror})") from None
    return _Reader(p, text)


def load_station(
    path: str | Path | None,
    *,
    iface: str | None = None,
    socket: str | None = None,
    state: str | None = None,
    mqtt: dict[str, Any] | None = None,
) -> StationSettings:
    """station.toml (or defaults) with the command line's values on top (``mqtt``: ``[mqtt]``
    keys given as options, ``None`` values not given)."""
    r = _read(path)
    r.tables({"station", "evb", "vdp", "mqtt"})
    t = r.table("station", {"iface", "socket", "state"})
    name = iface or r.get(t, "station", "iface", str, None)
    if not name:
        raise ConfigError(path, "station.iface", "no interface: give --iface or station.iface")
    if iface and t.get("iface") not in (None, iface):
        raise ConfigError(
            path, "station.iface", f"says {t['iface']!r} but --iface says {iface!r}", r.line_of("station", "iface")
        )
    state_default = str(Path(path).with_suffix(f".{name}.state.json")) if path else f"/var/lib/evb/station-{name}.json"
    return StationSettings(
        iface=name,
        socket=socket or r.get(t, "station", "socket", str, default_station_socket(name)),
        state=state or r.get(t, "station", "state", str, state_default),
        evb=_evb(r, "rrreq"),
        vdp=_vdp(r, bridge=False),
        mqtt=_mqtt(r, mqtt or {}, "host"),
    )


def load_bridge(
    path: str | Path | None,
    *,
    ports: list[str] | None = None,
    socket: str | None = None,
    policy: str | None = None,
    dataplane: dict[str, Any] | None = None,
    mqtt: dict[str, Any] | None = None,
) -> BridgeSettings:
    """bridge.toml (or defaults), with the command line's values on top (``dataplane``: the
    ``[dataplane]`` keys given as options; ``None`` values are not given)."""
    r = _read(path)
    r.tables({"bridge", "evb", "vdp", "dataplane", "mqtt"})
    t = r.table("bridge", {"ports", "socket", "policy"})
    names = ports or r.get(t, "bridge", "ports", list, [])
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(path, "bridge.ports", "no ports: give --port IF (repeatable) or bridge.ports = [...]")
    return BridgeSettings(
        ports=tuple(names),
        socket=socket or r.get(t, "bridge", "socket", str, DEFAULT_BRIDGE_SOCKET),
        policy=policy or r.get(t, "bridge", "policy", str, None),
        evb=_evb(r, "rrcap"),
        vdp=_vdp(r, bridge=True),
        dataplane=_dataplane(r, {k: v for k, v in (dataplane or {}).items() if v is not None}),
        mqtt=_mqtt(r, mqtt or {}, "name"),
    )


def _dataplane(r: _Reader, given: dict[str, Any]) -> DataPlaneSettings:
    t = r.table("dataplane", {"kind", "bridge_name", "nft_table", "forward_counters", "default_vid", "ring_frames"})
    kind = given.get("kind") or r.get(t, "dataplane", "kind", str, "none")
    if kind not in DATAPLANE_KINDS:
        where = r.line_of("dataplane", "kind")
        raise ConfigError(r.path, "dataplane.kind", f"{kind!r} is not one of {', '.join(DATAPLANE_KINDS)}", where)
    names = {}
    for key, default in (("bridge_name", "evbbr0"), ("nft_table", "evb")):
        value = given.get(key) or r.get(t, "dataplane", key, str, default)
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]{0,14}", value):
            raise ConfigError(
                r.path, f"dataplane.{key}", f"{value!r}: 1-15 letters, digits, _ . -", r.line_of("dataplane", key)
            )
        names[key] = value
    default_vid = given.get("default_vid")
    if default_vid is None:
        default_vid = r.get(t, "dataplane", "default_vid", int, 1, 1, 4094)
    elif not 1 <= default_vid <= 4094:
        raise ConfigError(None, "--default-vid", f"{default_vid} is outside 1..4094")
    forward_counters = given.get("forward_counters")
    if forward_counters is None:
        forward_counters = r.get(t, "dataplane", "forward_counters", bool, True)
    return DataPlaneSettings(
        kind=kind,
        default_vid=default_vid,
        forward_counters=forward_counters,
        ring_frames=r.get(t, "dataplane", "ring_frames", int, 16384, 64, 1 << 20),
        **names,
    )


def port_config(
    role: Role, mac: bytes, evb: EvbSettings, vdp: VdpSettings, *, first_seq: int, faults: frozenset[str] = frozenset()
) -> PortConfig:
    """The sans-IO port's configuration from an agent's settings (``rr`` is RRREQ or RRCAP by role)."""
    rr = {"rrreq": evb.rr} if role is Role.STATION else {"rrcap": evb.rr}
    return PortConfig(
        mac=mac,
        evb=EvbConfig(role=role, gid=evb.gid, r=evb.retries, rte=evb.rte, rwd=evb.rwd, rka=evb.rka, **rr),
        min_gap=vdp.min_gap_ms / 1000,
        max_per_pdu=vdp.max_per_pdu,
        end_tlv=vdp.end_tlv,
        max_vsis=vdp.max_vsis,
        first_seq=first_seq,
        faults=faults,
    )
