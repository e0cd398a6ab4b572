"""Subcommands of the live agents: ``evb station``, ``evb bridge``, ``evb vsi``, ``evb status``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import Any

from evb.control import ControlError, ErrorCode, filter_text, vsi_from_args
from evb.control_client import ConnectError, call
from evb.settings import DEFAULT_BRIDGE_SOCKET, ConfigError, default_station_socket, load_bridge, load_station
from evb.vdp.wire import FilterEntry

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EXIT_NO_DAEMON = 0, 1, 2, 3
_F = argparse.RawDescriptionHelpFormatter
_EXIT = textwrap.dedent(
    """\
    exit status: 0 success; 1 the bridge refused, or no answer in time; 2 bad usage or
    input; 3 no daemon listens on the control socket."""
)


def _fault_arg(p: argparse.ArgumentParser) -> None:
    from evb.port import FAULTS

    p.add_argument(
        "--fault",
        action="append",
        choices=sorted(FAULTS),
        default=[],
        metavar="FAULT",
        help="misbehave on purpose, to check that `evb conformance` notices (repeatable): " + ", ".join(sorted(FAULTS)),
    )


def _log_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log-format",
        choices=("auto", "console", "json"),
        default="auto",
        help="console on a terminal, JSON lines otherwise (default auto)",
    )
    p.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="log this level and above (default info)",
    )


def _socket_args(p: argparse.ArgumentParser, *, bridge_ok: bool = True) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--iface", metavar="IF", help="the station agent of this interface")
    if bridge_ok:
        g.add_argument("--bridge", action="store_true", help=f"the bridge agent ({DEFAULT_BRIDGE_SOCKET})")
    g.add_argument("--socket", metavar="PATH", help="a control socket path")
    p.add_argument("--json", action="store_true", help="print JSON")


def _mqtt_args(p: argparse.ArgumentParser, name_key: str) -> None:
    g = p.add_argument_group("MQTT control plane (docs/mqtt.md; or [mqtt] in the config)")
    g.add_argument(
        "--mqtt",
        metavar="URL",
        dest="mqtt_broker",
        help="also serve the broker at mqtt://[user[:password]@]host[:port] or mqtts://... (TLS)",
    )
    what = "host name in topics (default: this host's name)" if name_key == "host" else "bridge's name in topics"
    g.add_argument(f"--mqtt-{name_key}", metavar="NAME", dest="mqtt_name", help=f"the {what}")
    g.add_argument("--mqtt-username", metavar="USER", help="broker user (overrides the URL's)")
    g.add_argument("--mqtt-password-file", metavar="FILE", help="a file whose first line is the broker password")
    g.add_argument("--mqtt-ca-file", metavar="FILE", help="mqtts: the CA certificate of the broker")


def _mqtt_given(args: argparse.Namespace, name_key: str) -> dict[str, Any]:
    return {
        "broker": args.mqtt_broker,
        name_key: args.mqtt_name,
        "username": args.mqtt_username,
        "password_file": args.mqtt_password_file,
        "ca_file": args.mqtt_ca_file,
    }


def add_vsi_options(p: Any) -> None:
    """The options that describe one VSI (``evb vsi assoc``, ``evb ctl assoc``; ``vsi_args`` reads them)."""
    p.add_argument("--uuid", help="the VSIID (in the notation of --format)")
    p.add_argument("--type-id", type=int, help="VSI Type ID, 0..16777215")
    p.add_argument("--type-version", type=int, help="VSI Type Version, 0..255")
    p.add_argument("--manager-id", help="VSI Manager ID: a name (≤ 16 ASCII) or a UUID")
    p.add_argument("--filter", action="append", default=[], metavar="VID[-MAC[-GROUP]]", help="repeatable")
    p.add_argument(
        "--format", choices=("uuid", "mac", "ipv4", "ipv6", "local"), default="uuid", help="VSIID format (default uuid)"
    )
    p.add_argument("--hints", choices=("none", "to", "from"), default="none", help="migration hints")


def add_parsers(sub: Any) -> None:
    # ---------------------------------------------------------------- station
    st = sub.add_parser(
        "station",
        help="the station (hypervisor) agent",
        formatter_class=_F,
        description="The EVB station agent: LLDP/EVB, ECP and VDP on one uplink.",
    )
    sts = st.add_subparsers(dest="station_cmd", metavar="COMMAND")
    run = sts.add_parser(
        "run",
        formatter_class=_F,
        help="run the station agent on an interface",
        description=textwrap.dedent(
            """\
            Run the station agent on IF until SIGTERM/SIGINT. It advertises the EVB TLV
            (requesting reflective relay unless [evb] rrreq = false), negotiates R/RTE/RWD/RKA
            with the bridge, and associates the VSIs asked for through the control socket
            (`evb vsi ...`). The VSIs wanted are kept in a state file, so a restart
            re-requests them, and a de-associate issued while the bridge is away is sent
            when it is back. With --mqtt it also takes the same commands from an MQTT
            broker (evb/v1/station/HOST/IF/cmd, idempotent by request_id) and publishes
            replies, retained VSI states and its presence there (docs/mqtt.md, `evb ctl`).
            Needs root (raw sockets)."""
        ),
        epilog="example:\n  evb station run --iface eth0 --config /etc/evb/station.toml\n\n" + _EXIT,
    )
    run.add_argument("--iface", metavar="IF", help="the uplink to the adjacent bridge")
    run.add_argument("--config", metavar="FILE", help="station.toml (see README)")
    run.add_argument("--socket", metavar="PATH", help="control socket (default /run/evb/station-IF.sock)")
    run.add_argument("--state", metavar="PATH", help="desired-state file (default next to the config)")
    _mqtt_args(run, "host")
    _fault_arg(run)
    _log_args(run)
    run.set_defaults(func=cmd_station_run)

    # ---------------------------------------------------------------- bridge
    br = sub.add_parser(
        "bridge",
        help="the emulated adjacent bridge",
        formatter_class=_F,
        description="The EVB bridge: LLDP/EVB, ECP and VDP on N station-facing ports.",
    )
    brs = br.add_subparsers(dest="bridge_cmd", metavar="COMMAND")
    brun = brs.add_parser(
        "run",
        formatter_class=_F,
        help="run the bridge on one or more ports",
        description=textwrap.dedent(
            """\
            Run the bridge side of LLDP/EVB/ECP/VDP on each --port until SIGTERM/SIGINT,
            offering reflective relay (unless [evb] rrcap = false) and admitting VSIs through
            the policy (accept-all by default; --policy FILE, or --policy mqtt://BROKER to
            follow the VSI type database retained on a broker). With --mqtt it publishes
            association events and retained per-port VSI states (docs/mqtt.md). Needs root
            (raw sockets)."""
        ),
        epilog="example:\n  evb bridge run --port veth1 --port veth2\n\n" + _EXIT,
    )
    brun.add_argument("--port", action="append", metavar="IF", help="a station-facing port (repeatable)")
    brun.add_argument("--config", metavar="FILE", help="bridge.toml (see README)")
    brun.add_argument(
        "--policy",
        metavar="FILE|URL",
        help="VSI type database: a policy.toml, or mqtt://broker[:port] to follow the retained "
        "evb/v1/vtdb/# entries live (docs/mqtt.md); default: accept all",
    )
    brun.add_argument("--socket", metavar="PATH", help=f"control socket (default {DEFAULT_BRIDGE_SOCKET})")
    brun.add_argument(
        "--dataplane",
        choices=("none", "kernel", "emulated"),
        help="forwarding (default: [dataplane] kind, else none): none (log only), kernel (Linux bridge + "
        "nftables source filter; needs ip, bridge, nft) or emulated (a Python bridge over AF_PACKET rings)",
    )
    brun.add_argument("--bridge-name", metavar="NAME", help="the kernel data plane's bridge (default evbbr0)")
    brun.add_argument("--nft-table", metavar="NAME", help="the kernel data plane's nft bridge table (default evb)")
    brun.add_argument(
        "--no-forward-counters",
        dest="forward_counters",
        action="store_false",
        default=None,
        help="kernel data plane: do not count forwarded/reflected frames per port (saves a rule in the "
        "bridge's forward hook per frame; ports then count passed, dropped, control)",
    )
    brun.add_argument("--default-vid", metavar="VID", type=int, help="the VID untagged frames count as (default 1)")
    _mqtt_args(brun, "name")
    _fault_arg(brun)
    _log_args(brun)
    brun.set_defaults(func=cmd_bridge_run)
    brl = brs.add_parser(
        "reload",
        formatter_class=_F,
        help="read the policy file again (as SIGHUP does)",
        description="Read the bridge's policy file again. A bad file is refused (exit 2) and the old policy "
        "stays; otherwise VSIs the new policy forbids are de-associated and their number printed. A bridge "
        "that follows an MQTT VSI type database (--policy mqtt://...) applies every change as it arrives; "
        "reload re-applies the current view.",
        epilog=_EXIT,
    )
    brl.add_argument("--socket", metavar="PATH", default=DEFAULT_BRIDGE_SOCKET, help="the bridge's control socket")
    brl.add_argument("--json", action="store_true", help="print JSON")
    brl.set_defaults(func=cmd_bridge_reload)
    bst = brs.add_parser(
        "status",
        help="negotiated EVB values, counters, VSIs per port, data-plane counters",
        formatter_class=_F,
        description=textwrap.dedent(
            """\
            Per port: EVB, ECP and VDP state and counters; then the data plane's counters per port
            (frames forwarded to another port, reflected back out of the port they came in, dropped
            because their source is no associated VSI's, link-local frames kept from relaying) and
            per VSI (forwarded/reflected; the kernel backend counts them together as "passed";
            dropped: frames of a VSI that is only pre-associated)."""
        ),
        epilog=_EXIT,
    )
    bst.add_argument("--socket", metavar="PATH", default=DEFAULT_BRIDGE_SOCKET, help="a control socket path")
    bst.add_argument("--json", action="store_true", help="print JSON")
    bst.set_defaults(func=cmd_bridge_status)

    # ---------------------------------------------------------------- vsi
    vsi = sub.add_parser(
        "vsi",
        help="ask for, list and show VSIs",
        formatter_class=_F,
        description="VSI commands, sent to a running agent's control socket.",
    )
    vs = vsi.add_subparsers(dest="vsi_cmd", metavar="COMMAND")
    for mode, what in (
        ("assoc", "associate"),
        ("preassoc", "pre-associate"),
        ("preassoc-rr", "pre-associate with resource reservation"),
        ("deassoc", "de-associate"),
    ):
        p = vs.add_parser(
            mode,
            formatter_class=_F,
            help=f"{what} a VSI (or many, --from-file)",
            description=textwrap.dedent(
                f"""\
                Ask the station agent of --iface to {what} a VSI. --filter takes vdptool's
                notation: VID (format 1), VID-MAC (2), VID--GROUP (3), VID-MAC-GROUP (4); VID 0
                asks the bridge to choose; a VID word above 4095 carries PS and PCP in its top
                nibble (0xd00d = PS 1, PCP 5, VID 13). With --wait the bridge's answer is
                printed (the VID/PCP it chose for wildcard entries too) and a refusal exits 1
                with the status code and its meaning."""
            ),
            epilog=textwrap.dedent(
                f"""\
                examples:
                  evb vsi {mode} --iface eth0 --uuid 5a0f1c2e-0001-4d3c-8e21-0a0000000001 \\
                      --type-id 5 --type-version 4 --manager-id labmgr --filter 10-02:00:00:00:01:01 --wait
                  evb vsi {mode} --iface eth0 --from-file vsis.toml

                vsis.toml: [[vsi]] tables with uuid, type_id, type_version, manager_id,
                filters = ["10-02:00:00:00:01:01"], and optional format and hints.

                """
            )
            + _EXIT,
        )
        p.add_argument("--iface", metavar="IF", help="the station agent's interface")
        p.add_argument("--socket", metavar="PATH", help="a control socket path (instead of --iface)")
        add_vsi_options(p)
        p.add_argument("--wait", action="store_true", help="wait for the bridge's answer")
        p.add_argument("--from-file", metavar="FILE", help="many VSIs from a TOML file (waits for all)")
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(func=cmd_vsi_request, mode=mode)
    ls = vs.add_parser("list", help="VSIs of an agent", formatter_class=_F, epilog=_EXIT)
    _socket_args(ls)
    ls.set_defaults(func=cmd_vsi_list)
    sh = vs.add_parser("show", help="one VSI in detail", formatter_class=_F, epilog=_EXIT)
    sh.add_argument("uuid", help="the VSIID or a part of it")
    _socket_args(sh)
    sh.set_defaults(func=cmd_vsi_show)

    # ---------------------------------------------------------------- status
    stt = sub.add_parser(
        "status", help="EVB negotiated values, RR, ECP counters, VSIs by state", formatter_class=_F, epilog=_EXIT
    )
    _socket_args(stt)
    stt.set_defaults(func=cmd_status)


# --------------------------------------------------------------------------- helpers


def _socket(args: argparse.Namespace) -> str:
    if getattr(args, "socket", None):
        return str(args.socket)
    if getattr(args, "bridge", False):
        return DEFAULT_BRIDGE_SOCKET
    if getattr(args, "iface", None):
        return default_station_socket(args.iface)
    raise ConfigError(None, "", "say which agent: --iface IF, --bridge or --socket PATH")


def _call(args: argparse.Namespace, cmd: str, payload: dict[str, Any] | None = None, **kw: Any) -> Any:
    return call(_socket(args), cmd, payload, **kw)


def _run_client(fn: Any, args: argparse.Namespace) -> int:
    try:
        return int(fn(args))
    except ConfigError as exc:
        print(f"evb: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConnectError as exc:
        print(f"evb: {exc}", file=sys.stderr)
        return EXIT_NO_DAEMON
    except ControlError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"ok": False, "error": exc.to_json()}))
        print(f"evb: {exc.message}", file=sys.stderr)
        return (
            EXIT_USAGE
            if exc.code in (ErrorCode.BAD_REQUEST, ErrorCode.NOT_ALLOWED, ErrorCode.NOT_FOUND)
            else EXIT_PROBLEM
        )


def _entry_text(f: dict[str, Any]) -> str:
    """A granted entry (``entry_json``) in the notation of --filter: ``32--3001``, ``0xd00d``."""
    mac = bytes.fromhex(f["mac"].replace(":", "")) if f.get("mac") else None
    return filter_text(
        FilterEntry(vid=f["vid"], pcp=f.get("pcp", 0), ps=bool(f.get("ps")), mac=mac, group_id=f.get("group"))
    )


def _table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    if not rows:
        return "(none)"
    text = [[str(r.get(c, "") if r.get(c) is not None else "-") for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in text)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)) for t in text]
    return "\n".join(lines)


# --------------------------------------------------------------------------- daemons


def cmd_station_run(args: argparse.Namespace) -> int:
    from evb.logconfig import configure
    from evb.station_agent.daemon import main_run

    try:
        settings = load_station(
            args.config, iface=args.iface, socket=args.socket, state=args.state, mqtt=_mqtt_given(args, "host")
        )
        settings = dataclasses.replace(settings, faults=frozenset(args.fault))
    except ConfigError as exc:
        print(f"evb station run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure(args.log_format, args.log_level)
    try:
        return main_run(settings)
    except ControlError as exc:
        print(f"evb station run: {exc.message}", file=sys.stderr)
        return EXIT_PROBLEM


def cmd_bridge_run(args: argparse.Namespace) -> int:
    from evb.logconfig import configure
    from evb.settings import BridgeSettings
    from evb.vepa_bridge.daemon import main_run, make_dataplane, mqtt_options
    from evb.vepa_bridge.policy import is_mqtt_url

    try:
        dataplane_args = {
            "kind": args.dataplane,
            "bridge_name": args.bridge_name,
            "nft_table": args.nft_table,
            "default_vid": args.default_vid,
            "forward_counters": args.forward_counters,
        }
        given = _mqtt_given(args, "name")

        def load(mqtt: dict[str, Any]) -> BridgeSettings:
            return load_bridge(
                args.config,
                ports=args.port,
                socket=args.socket,
                policy=args.policy,
                dataplane=dataplane_args,
                mqtt=mqtt,
            )

        try:
            settings = load(given)
        except ConfigError as exc:
            # --policy mqtt://... names the broker when neither --mqtt nor [mqtt] broker does
            if not (exc.key == "mqtt.broker" and "no broker" in exc.message and is_mqtt_url(args.policy)):
                raise
            settings = load(given | {"broker": args.policy})
        settings = dataclasses.replace(settings, faults=frozenset(args.fault))
        settings = dataclasses.replace(settings, mqtt=mqtt_options(settings))  # one broker, or refused
    except ConfigError as exc:
        print(f"evb bridge run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if settings.policy and not is_mqtt_url(settings.policy):  # an MQTT policy arrives once running
        from evb.vepa_bridge.policy import load_policy

        try:
            load_policy(settings.policy)  # a bad file: refuse to start, with file, line and key
        except ConfigError as exc:
            print(f"evb bridge run: {exc}", file=sys.stderr)
            return EXIT_USAGE
    configure(args.log_format, args.log_level)
    try:
        return main_run(settings, dataplane=make_dataplane(settings))
    except ControlError as exc:
        print(f"evb bridge run: {exc.message}", file=sys.stderr)
        return EXIT_PROBLEM


# --------------------------------------------------------------------------- clients


def vsi_args(args: argparse.Namespace) -> dict[str, Any]:
    missing = [
        o
        for o, v in (
            ("--uuid", args.uuid),
            ("--type-id", args.type_id),
            ("--type-version", args.type_version),
            ("--manager-id", args.manager_id),
        )
        if v is None
    ]
    if not args.filter:
        missing.append("--filter")
    if missing:
        raise ConfigError(None, "", f"missing {', '.join(missing)} (or use --from-file)")
    return {
        "uuid": args.uuid,
        "type_id": args.type_id,
        "type_version": args.type_version,
        "manager_id": args.manager_id,
        "filters": args.filter,
        "format": args.format,
        "hints": args.hints,
    }


def load_vsis_file(path: str) -> list[dict[str, Any]]:
    try:
        doc = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"not valid TOML ({exc})") from None
    items = doc.get("vsi")
    if not isinstance(items, list) or not items:
        raise ConfigError(path, "vsi", "no [[vsi]] tables")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(path, f"vsi[{i}]", "must be a table")
        unknown = set(item) - {"uuid", "type_id", "type_version", "manager_id", "filters", "format", "hints"}
        if unknown:
            raise ConfigError(path, f"vsi[{i}]", f"unknown keys {sorted(unknown)}")
        try:  # a broken entry is named here, with its file, before any VSI is asked for
            vsi_from_args(item)
        except ControlError as exc:
            raise ConfigError(path, f"vsi[{i}]", exc.message) from None
        if item.get("hints", "none") not in ("none", "to", "from"):
            raise ConfigError(path, f"vsi[{i}]", "hints must be none, to or from")
        out.append(dict(item))
    return out


def cmd_vsi_request(args: argparse.Namespace) -> int:
    def go(args: argparse.Namespace) -> int:
        if not args.iface and not args.socket:
            raise ConfigError(None, "", "--iface IF (or --socket PATH) is needed")
        if args.from_file:
            from evb.progress import Progress

            vsis = load_vsis_file(args.from_file)
            bar = Progress(f"{args.mode} {len(vsis)} VSIs", total=len(vsis))
            result = _call(
                args,
                "vsi.bulk",
                {"mode": args.mode, "vsis": vsis, "wait": True},
                timeout=None,
                on_notify=lambda n: bar.update(int(n.get("done", 0))),
            )
            bar.close()
            if args.json:
                print(json.dumps(result))
            else:
                print(f"{result['requested']} requested, {result['ok']} answered ok, {result['failed']} failed")
                for e in result.get("errors", []):
                    print(f"  {e['vsi']}: {e['error']}")
            return EXIT_OK if result["failed"] == 0 and not result.get("errors") else EXIT_PROBLEM
        payload = vsi_args(args) | {"mode": args.mode, "wait": args.wait}
        result = _call(args, "vsi.request", payload, timeout=None if args.wait else 30)
        if args.json:
            print(json.dumps({"ok": True, "result": result}))
        elif args.wait:
            filters = ", ".join(" ".join(f"{k}={v}" for k, v in f.items()) for f in result.get("filters", []))
            print(f"{result['vsi']}: {result['mode']}" + (f" [{filters}]" if filters else ""))
        else:
            print(f"{result['vsi']}: {result['queued']} requested")
        return EXIT_OK

    return _run_client(go, args)


def cmd_vsi_list(args: argparse.Namespace) -> int:
    def go(args: argparse.Namespace) -> int:
        rows = _call(args, "vsi.list")
        if args.json:
            print(json.dumps(rows))
            return EXIT_OK
        cols = (
            ["port", "vsi", "mode", "type_id", "filters", "expires_in"]
            if rows and "port" in rows[0]
            else ["vsi", "wanted", "state", "confirmed", "filters", "last"]
        )
        for r in rows:
            if isinstance(r.get("filters"), list) and r["filters"] and isinstance(r["filters"][0], dict):
                r["filters"] = ",".join(_entry_text(f) for f in r["filters"])
            elif isinstance(r.get("filters"), list):
                r["filters"] = ",".join(r["filters"])
        print(_table(rows, cols))
        return EXIT_OK

    return _run_client(go, args)


def cmd_vsi_show(args: argparse.Namespace) -> int:
    def go(args: argparse.Namespace) -> int:
        rows = _call(args, "vsi.show", {"uuid": args.uuid})
        if args.json:
            print(json.dumps(rows))
        else:
            for r in rows:
                for k, v in r.items():
                    if isinstance(v, list):  # filters in the notation of --filter, not Python's repr
                        v = ",".join(_entry_text(f) if isinstance(f, dict) else str(f) for f in v)
                    elif k == "counters":  # the bridge's data plane: frames of this VSI
                        v = _vsi_counter_text(v)
                    print(f"{k:>14}: {'-' if v is None else v}")
                print()
        return EXIT_OK

    return _run_client(go, args)


def _print_status(st: dict[str, Any]) -> None:
    evb = st["evb"]
    print(f"{st['ifname']} ({st['role']}, {st['mac']}), link {'up' if st['link_up'] else 'down'}")
    state = "negotiated" if evb["negotiated"] else ("peer seen, not converged" if evb["peer_seen"] else "no EVB peer")
    print(
        f"  EVB: {state}; R={evb['r']} RTE={evb['rte']} RWD={evb['rwd']} RKA={evb['rka']}; "
        f"reflective relay {'on' if evb['reflective_relay'] else 'off'}; group IDs "
        f"{'usable' if evb['group_ids'] else 'not usable'}"
    )
    e = st["ecp"]
    print(
        f"  ECP: sent {e['sent']} (retransmitted {e['retransmissions']}, abandoned {e['abandoned']}), "
        f"received {e['received']} (duplicates {e['duplicates']})"
    )
    f = st["frames"]
    print(f"  frames: in {f['frames_in']}, out {f['frames_out']}, dropped {f['dropped']}, ignored {f['ignored']}")
    by = st.get("vsis_by_state") or st.get("vsis_by_mode") or {}
    print("  VSIs: " + (", ".join(f"{k} {v}" for k, v in sorted(by.items())) or "none"))


def _print_mqtt(m: dict[str, Any] | None) -> None:
    if not m:
        return
    state = "connected" if m.get("connected") else f"not connected ({m.get('last_error') or 'connecting'})"
    print(
        f"MQTT: {m.get('broker')} as {m.get('client_id')}: {state}; connects {m.get('connects', 0)}, "
        f"received {m.get('received', 0)}, published {m.get('published', 0)}, queued {m.get('queued', 0)}"
    )
    if "commands" in m:
        print(
            f"  commands {m['commands']} (duplicates {m['duplicates']}, malformed {m['malformed']}, "
            f"conflicts {m['conflicts']}, foreign topic {m['foreign_topic']})"
        )
    v = m.get("vtdb")
    if isinstance(v, dict):
        loaded = "loaded" if v.get("loaded") else "not loaded yet"
        n, bad = v.get("entries", 0), v.get("invalid", 0)
        print(f"  VSI type database from the broker: {loaded}, {n} entries, {bad} invalid")


def _vsi_counter_text(c: dict[str, int] | None) -> str:
    if not c:
        return "-"
    return ", ".join(f"{k} {v}" for k, v in c.items())


def _print_dataplane(dp: dict[str, Any], vsis: list[dict[str, Any]]) -> None:
    if "error" in dp:
        print(f"data plane ({dp['kind']}): {dp['error']}")
        return
    if dp["kind"] == "none":  # no forwarding: nothing to count (``--json`` says kind none)
        return
    where = f"bridge {dp['bridge']}, nft table bridge {dp['table']}" if dp["kind"] == "kernel" else "AF_PACKET rings"
    print(f"data plane: {dp['kind']} ({where}), {dp['vsis']} VSIs, default VID {dp['default_vid']}")
    rows = []
    for name, port in dp["ports"].items():
        c = port.get("counters", {})
        rows.append({"port": name, "hairpin": "on" if port["hairpin"] else "off", **c})
    cols = ["forwarded", "reflected"] if dp.get("forward_counters", True) else ["passed"]
    print(_table(rows, ["port", "hairpin", *cols, "dropped", "control"]))
    counted = [v for v in vsis if v.get("counters")]
    if counted:
        counted.sort(key=lambda v: -sum(v["counters"].values()))
        print(f"per VSI ({len(counted)}{', the 20 busiest' if len(counted) > 20 else ''}):")
        keys = list(counted[0]["counters"])
        top = [{"port": v["port"], "vsi": v["vsi"], **v["counters"]} for v in counted[:20]]
        print(_table(top, ["port", "vsi", *keys]))


def cmd_status(args: argparse.Namespace) -> int:
    def go(args: argparse.Namespace) -> int:
        st = _call(args, "status", {"vsis": True})
        if args.json:
            print(json.dumps(st))
        elif "ports" in st:
            for p in st["ports"]:
                _print_status(p)
            if st.get("dataplane"):
                _print_dataplane(st["dataplane"], st.get("vsis", []))
            _print_mqtt(st.get("mqtt"))
        else:
            _print_status(st)
            _print_mqtt(st.get("mqtt"))
        return EXIT_OK

    return _run_client(go, args)


def cmd_bridge_status(args: argparse.Namespace) -> int:
    args.bridge, args.iface = True, None
    return cmd_status(args)


def cmd_bridge_reload(args: argparse.Namespace) -> int:
    def go(args: argparse.Namespace) -> int:
        result = call(str(args.socket), "reload")
        if args.json:
            print(json.dumps(result))
        else:
            print(f"policy {result['file']} reloaded; {result['released']} VSIs de-associated")
        return EXIT_OK

    return _run_client(go, args)
