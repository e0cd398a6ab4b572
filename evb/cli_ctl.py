"""``evb ctl``: an orchestrator's command line over the MQTT control plane (``docs/mqtt.md``).

``evb ctl assoc|preassoc|preassoc-rr|deassoc --host H --iface IF ...`` publishes a command to
the station agent of host H, interface IF, and waits for its reply; ``evb ctl watch`` shows the
retained state of every station's VSIs, the agents' presence and which bridge port holds each
VSI; ``evb ctl vtdb put|get|list|delete`` keeps the VSI type database (retained
``evb/v1/vtdb/{manager}/{type}/{version}`` messages, the keys of a ``[[manager.type]]`` table of
policy.toml) that bridges read.

The ctl is a short-lived client: a random client id and a clean session, so it leaves nothing
behind in the broker. Exit status: 0 success; 1 refused, not found or no answer in time; 2 bad
usage or input; 3 the broker cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import shutil
import ssl
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TextIO

from evb.cli_agents import add_vsi_options, load_vsis_file, vsi_args
from evb.control import ControlError, vsi_from_args, vsi_json
from evb.errors import EvbError
from evb.mqtt.options import BrokerUrlError, MqttOptions
from evb.mqtt.schema import (
    ONLINE,
    VERSION,
    VTDB,
    VTDB_KEYS,
    PayloadError,
    StationTopics,
    command_payload,
    json_object,
    now_iso,
    parse_station_topic,
    parse_vtdb_topic,
    request_id_of,
    segment,
    vtdb_topic,
)
from evb.settings import ConfigError
from evb.vdp.wire import format_manager_id, manager_id_from_text

if TYPE_CHECKING:
    import aiomqtt

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EXIT_NO_BROKER = 0, 1, 2, 3
DEFAULT_BROKER: Final = "mqtt://127.0.0.1:1883"
BROKER_ENV: Final = "EVB_MQTT_BROKER"
SETTLE: Final = 0.3  #: retained messages are all in once this long passed without a new one
REDRAW: Final = 0.25  #: watch redraws a terminal at most this often
RESYNC: Final = 1.0  #: after a reconnect, what was not retained again by then is gone
#: reply error codes that mean "the request itself is wrong" (exit 2), as for the local CLI
USAGE_CODES: Final = frozenset({"E_BAD_REQUEST", "E_NOT_ALLOWED", "E_NOT_FOUND", "E_CONFLICT"})

_F = argparse.RawDescriptionHelpFormatter
_EXIT = textwrap.dedent(
    """\
    exit status: 0 success; 1 refused, not found, or no answer in time; 2 bad usage or input
    (also when the station calls the request bad, not allowed now, or about an unknown VSI);
    3 the broker cannot be reached."""
)
_BROKER_HELP = textwrap.dedent(
    f"""\
    broker: --broker URL, else ${BROKER_ENV}, else {DEFAULT_BROKER}. A URL is
    mqtt://[user[:password]@]host[:port] (1883) or mqtts://... (TLS, 8883); keep the password
    out of `ps` with --password-file. The ctl connects with a random client id and a clean
    session: nothing of it stays in the broker."""
)

VtdbKey = tuple[bytes, int, int]  #: (Manager ID, Type ID, Version)


class CtlError(EvbError):
    """Ends an ``evb ctl`` command: ``message`` on stderr, ``code`` the exit status."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --------------------------------------------------------------------------- the parser


def _broker_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("broker")
    g.add_argument(
        "--broker",
        metavar="URL",
        help=f"mqtt://[user[:password]@]host[:port] or mqtts://... (default: ${BROKER_ENV}, else {DEFAULT_BROKER})",
    )
    g.add_argument("--username", metavar="USER", help="broker user (overrides the URL's)")
    g.add_argument("--password-file", metavar="FILE", help="a file whose first line is the broker password")
    g.add_argument("--ca-file", metavar="FILE", help="mqtts: the CA certificate of the broker (default: system CAs)")


def _epilog(examples: str, *more: str) -> str:
    return "\n\n".join(("examples:\n" + textwrap.indent(textwrap.dedent(examples).strip("\n"), "  "), *more, _EXIT))


def add_parser(sub: Any) -> None:
    ctl = sub.add_parser(
        "ctl",
        formatter_class=_F,
        help="orchestrate station agents and the VSI type database over MQTT",
        description=textwrap.dedent(
            """\
            Drive station agents and bridges through an MQTT broker (docs/mqtt.md): ask the
            station agent of any host and interface to associate, pre-associate or
            de-associate a VSI and get its answer; watch every station's VSIs live; keep the
            VSI type database the bridges read (evb/v1/vtdb/...). The agents must run with
            --mqtt URL (evb station run / evb bridge run)."""
        ),
        epilog=_epilog(
            """\
            evb ctl assoc --host hv1 --iface eth0 --uuid 6e2bd6a4-3f2a-4a2b-8f0e-000000000001 \\
                --type-id 5 --type-version 4 --manager-id labmgr --filter 10-52:54:00:00:00:01
            evb ctl watch                               live table of all stations' VSIs
            evb ctl watch --once --json | jq .          what is retained right now
            evb ctl vtdb put --replace policy.toml      the database becomes the file's
            evb ctl vtdb list
            """,
            _BROKER_HELP,
        ),
    )
    ctl.set_defaults(func=lambda _args: _group_help(ctl))
    cs = ctl.add_subparsers(dest="ctl_cmd", metavar="COMMAND")
    for mode, what in (
        ("assoc", "associate a VSI"),
        ("preassoc", "pre-associate a VSI"),
        ("preassoc-rr", "pre-associate a VSI with resource reservation"),
        ("deassoc", "de-associate a VSI"),
    ):
        _request_parser(cs, mode, what)
    _watch_parser(cs)
    _vtdb_parsers(cs)


def _group_help(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return EXIT_USAGE


def _request_parser(cs: Any, mode: str, what: str) -> None:
    p = cs.add_parser(
        mode,
        formatter_class=_F,
        help=f"{what} through the station agent of --host/--iface",
        description=textwrap.dedent(
            f"""\
            Publish a command (QoS 1) to evb/v1/station/HOST/IF/cmd asking that station agent to
            {what}, and wait for its reply on .../reply/REQUEST_ID. The VSI options are
            those of `evb vsi {mode}`: --filter takes vdptool's notation, VID (format 1),
            VID-MAC (2), VID--GROUP (3) or VID-MAC-GROUP (4); VID 0 asks the bridge to choose.

            The agent answers when the bridge has answered: the line printed is that of
            `evb vsi {mode} --wait` (the VSI, its mode and the filter entries granted). A refusal
            prints the agent's message and exits 1. Commands are idempotent by request_id: the
            same --request-id sent again is answered again ("duplicate") and not executed twice,
            so a command that timed out can be retried safely. An agent that is away gets the
            command when it comes back (its session is persistent)."""
        ),
        epilog=_epilog(
            f"""\
            evb ctl {mode} --host hv1 --iface eth0 --uuid 6e2bd6a4-3f2a-4a2b-8f0e-000000000001 \\
                --type-id 5 --type-version 4 --manager-id labmgr --filter 10-52:54:00:00:00:01
            evb ctl {mode} --host hv1 --iface eth0 --from-file vsis.toml --timeout 120
            evb ctl {mode} --host hv1 --iface eth0 ... --request-id job-17 --no-wait
            """,
            textwrap.dedent(
                """\
                vsis.toml: [[vsi]] tables with uuid, type_id, type_version, manager_id,
                filters = ["10-52:54:00:00:00:01"], and optional format and hints; each is one
                command, with request_id PREFIX-1, PREFIX-2, ... (PREFIX: --request-id or random)."""
            ),
            _BROKER_HELP,
        ),
    )
    p.add_argument("--host", required=True, metavar="H", help="the station's host name in topics")
    p.add_argument("--iface", required=True, metavar="IF", help="the station agent's interface")
    vsi = p.add_argument_group("the VSI (as for `evb vsi assoc`)")
    add_vsi_options(vsi)
    vsi.add_argument("--from-file", metavar="FILE", help="many VSIs from a TOML file of [[vsi]] tables")
    p.add_argument("--request-id", metavar="ID", help="the command's request_id (default: a random one)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S", help="wait this long for the reply (default 30)")
    p.add_argument("--no-wait", action="store_true", help="exit once the broker has the command (PUBACK)")
    p.add_argument("--json", action="store_true", help="print the reply as JSON")
    _broker_args(p)
    p.set_defaults(func=cmd_request, mode=mode)


def _watch_parser(cs: Any) -> None:
    p = cs.add_parser(
        "watch",
        formatter_class=_F,
        help="a live table of all stations' VSIs and the agents' presence",
        description=textwrap.dedent(
            """\
            Show what the agents publish: every station agent's presence (online, offline),
            the retained state of each of its VSIs (the mode wanted, the state confirmed by the
            bridge, the VIDs granted, when the bridge last answered) and which bridge port
            holds the VSI, then the bridges' presence and how many VSIs their ports hold.

            On a terminal the table is redrawn in place as things change (at most 4 times a
            second) until Ctrl-C. Otherwise (a pipe, a log file) one timestamped line is
            printed per change, JSON lines with --json. --once collects the retained messages
            for --wait seconds, prints the table (or, with --json, one object: stations,
            bridges, vsis) and exits. A lost broker is reconnected to; what was cleared in the
            meantime disappears from the table."""
        ),
        epilog=_epilog(
            """\
            evb ctl watch
            evb ctl watch --host hv1
            evb ctl watch --once
            evb ctl watch --once --json | jq '.vsis[] | select(.state != "assoc")'
            evb ctl watch > vsi-changes.log
            """,
            "columns: HOST IFNAME PRESENCE VSI (manager/VSIID) WANTED STATE VIDS KEEPALIVE (age of the\n"
            "bridge's last answer) BRIDGE (bridge/port:mode of the ports that hold it).",
            _BROKER_HELP,
        ),
    )
    p.add_argument("--host", metavar="H", help="only the stations of this host")
    p.add_argument("--once", action="store_true", help="print what is retained now and exit")
    p.add_argument("--json", action="store_true", help="--once: one JSON object; live: one JSON object per change")
    p.add_argument(
        "--wait", type=float, default=1.0, metavar="S", help="--once: collect retained messages this long (1.0)"
    )
    _broker_args(p)
    p.set_defaults(func=cmd_watch)


def _vtdb_parsers(cs: Any) -> None:
    vt = cs.add_parser(
        "vtdb",
        formatter_class=_F,
        help="the VSI type database the bridges read (put, get, list, delete)",
        description=textwrap.dedent(
            """\
            The VSI type database lives in the broker as retained messages, one per VSI
            manager, type and version: evb/v1/vtdb/MANAGER/TYPE_ID/VERSION holds a JSON object
            with the keys of a [[manager.type]] table of policy.toml (vlans, assign_vid, pcp,
            max_entries, macs, groups; same meanings and notation, e.g. "100-199" in vlans,
            "52:54:00:*" in macs). A bridge whose --policy is the broker's URL admits VSIs by
            it. An empty retained message deletes an entry. Entries bridges refuse (a value
            policy.toml would not allow, a manager spelt otherwise than its name or 32 hex
            digits) are reported by get and list, and deleted by put --replace."""
        ),
        epilog=_epilog(
            """\
            evb ctl vtdb put policy.toml
            evb ctl vtdb put --replace policy.toml
            evb ctl vtdb put --manager labmgr --type-id 5 --version 4 --json '{"vlans": [10, "100-199"]}'
            evb ctl vtdb get labmgr 5 4
            evb ctl vtdb list --toml > policy.toml
            evb ctl vtdb delete labmgr 5 4
            """,
            _BROKER_HELP,
        ),
    )
    vt.set_defaults(func=lambda _args: _group_help(vt))
    vs = vt.add_subparsers(dest="vtdb_cmd", metavar="COMMAND")

    put = vs.add_parser(
        "put",
        formatter_class=_F,
        help="publish entries from a policy.toml, or one entry given as JSON",
        description=textwrap.dedent(
            """\
            Publish (retained, QoS 1) one entry per manager, type and version of FILE's
            [[manager.type]] tables (a type with versions = [3, 4] gives two entries). The file
            is checked as `evb bridge run --policy` checks it; a mistake is reported with file,
            line and key, and nothing is published. [defaults] and [ports] are per bridge and
            not published. --replace first reads the entries on the broker and also deletes
            those the file does not have and those bridges refuse (and does not publish those
            that are unchanged).

            Or one entry: --manager, --type-id, --version and --json '{...}' (the keys of a
            [[manager.type]] table but id and version; '-' reads the JSON from stdin), checked
            by the same rules.

            Entries are published as bridges read them: VIDs in order, runs as "lo-hi" ranges,
            MAC prefixes as "52:54:00:*", keys that allow anything left out."""
        ),
        epilog=_epilog(
            """\
            evb ctl vtdb put policy.toml
            evb ctl vtdb put --replace --broker mqtts://broker.example --ca-file ca.crt policy.toml
            evb ctl vtdb put --dry-run policy.toml      check the file, show what would be published
            evb ctl vtdb put --manager labmgr --type-id 5 --version 4 \\
                --json '{"vlans": [10, "100-199"], "assign_vid": 10, "macs": ["52:54:00:*"]}'
            """,
            _BROKER_HELP,
        ),
    )
    put.add_argument("file", nargs="?", metavar="FILE.toml", help="a policy.toml")
    put.add_argument("--replace", action="store_true", help="also delete the entries FILE does not have")
    put.add_argument("--dry-run", action="store_true", help="print the messages, do not publish (no broker needed)")
    one = put.add_argument_group("one entry")
    one.add_argument("--manager", metavar="M", help="VSI Manager ID: a name (≤ 16 ASCII) or a UUID")
    one.add_argument("--type-id", type=int, metavar="T", help="VSI Type ID, 0..16777215")
    one.add_argument("--version", type=int, metavar="V", help="VSI Type Version, 0..255")
    one.add_argument("--json", dest="entry_json", metavar="JSON", help="the entry as a JSON object ('-': stdin)")
    put.add_argument("--wait", type=float, default=3.0, metavar="S", help=argparse.SUPPRESS)
    _broker_args(put)
    put.set_defaults(func=cmd_vtdb_put)

    for name, what in (("get", "show one entry"), ("delete", "delete one entry")):
        p = vs.add_parser(
            name,
            formatter_class=_F,
            help=what,
            description=(
                "Print the entry MANAGER/TYPE_ID/VERSION as a policy.toml fragment (--json: as stored)."
                if name == "get"
                else "Delete the entry MANAGER/TYPE_ID/VERSION (an empty retained message). An entry that "
                "is not on the broker exits 1."
            ),
            epilog=_epilog(f"evb ctl vtdb {name} labmgr 5 4\n", _BROKER_HELP),
        )
        p.add_argument("manager", metavar="MANAGER", help="VSI Manager ID: a name (≤ 16 ASCII) or a UUID")
        p.add_argument("type_id", type=int, metavar="TYPE_ID", help="VSI Type ID")
        p.add_argument("version", type=int, metavar="VERSION", help="VSI Type Version")
        if name == "get":
            p.add_argument("--json", action="store_true", help="print JSON")
        _vtdb_wait(p)
        _broker_args(p)
        p.set_defaults(func=cmd_vtdb_get if name == "get" else cmd_vtdb_delete)

    ls = vs.add_parser(
        "list",
        formatter_class=_F,
        help="all entries: a table, JSON or policy.toml",
        description="List the entries retained on the broker (or one manager's): a table, JSON, or a policy.toml "
        "that `evb ctl vtdb put` and `evb bridge run --policy` read.",
        epilog=_epilog("evb ctl vtdb list\nevb ctl vtdb list --manager labmgr --json\nevb ctl vtdb list --toml\n"),
    )
    ls.add_argument("--manager", metavar="M", help="only this manager's entries")
    out = ls.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="a JSON array of entries")
    out.add_argument("--toml", action="store_true", help="a policy.toml with every entry")
    _vtdb_wait(ls)
    _broker_args(ls)
    ls.set_defaults(func=cmd_vtdb_list)


def _vtdb_wait(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--wait",
        type=float,
        default=3.0,
        metavar="S",
        help=f"read retained entries until {SETTLE} s pass without one, at most S seconds (3.0)",
    )


# --------------------------------------------------------------------------- the broker


def broker_options(args: argparse.Namespace) -> MqttOptions:
    """How to reach the broker: --broker, else $EVB_MQTT_BROKER, else mqtt://127.0.0.1:1883."""
    options = MqttOptions(
        broker=getattr(args, "broker", None) or os.environ.get(BROKER_ENV) or DEFAULT_BROKER,
        username=getattr(args, "username", None),
        password_file=getattr(args, "password_file", None),
        ca_file=getattr(args, "ca_file", None),
        keepalive=10,
    )
    try:
        options.address()
    except BrokerUrlError as exc:
        text = str(exc)
        text = "--" + text.replace("_", "-", 1) if text.startswith("password_file") else f"--broker {text}"
        raise CtlError(EXIT_USAGE, text) from None
    return options


def _client(options: MqttOptions) -> aiomqtt.Client:
    """A client with a random id and a clean session: nothing of the ctl stays in the broker."""
    from evb.mqtt.link import make_client

    try:
        return make_client(options, f"evb-ctl-{uuid.uuid4().hex[:16]}", clean_session=True)
    except (OSError, ssl.SSLError) as exc:
        raise CtlError(EXIT_USAGE, f"--ca-file {options.ca_file}: {exc}") from None


@contextlib.asynccontextmanager
async def connected(options: MqttOptions) -> AsyncIterator[aiomqtt.Client]:
    """A connected client; the broker out of reach (now or later) is ``CtlError`` exit 3."""
    import aiomqtt

    addr = options.address()
    client = _client(options)
    try:
        await client.__aenter__()
    except aiomqtt.MqttError as exc:
        raise CtlError(EXIT_NO_BROKER, f"cannot reach the MQTT broker {addr}: {exc}") from None
    try:
        yield client
    except aiomqtt.MqttError as exc:
        raise CtlError(EXIT_NO_BROKER, f"lost the connection to the MQTT broker {addr}: {exc}") from None
    finally:
        with contextlib.suppress(Exception):
            await client.__aexit__(None, None, None)


def _payload(message: aiomqtt.Message) -> bytes:
    p = message.payload
    if isinstance(p, bytes | bytearray):
        return bytes(p)
    return b"" if p is None else str(p).encode()


async def collect(
    client: aiomqtt.Client, *, wait: float, settle: float | None = None
) -> AsyncIterator[tuple[str, bytes]]:
    """(topic, payload) of the messages that arrive within ``wait`` seconds, or until ``settle``
    seconds pass without one."""
    loop = asyncio.get_running_loop()
    end = loop.time() + wait
    messages = client.messages
    while (left := end - loop.time()) > 0:
        try:
            message = await asyncio.wait_for(messages.__anext__(), min(left, settle) if settle else left)
        except TimeoutError:
            return
        yield str(message.topic), _payload(message)


def _run(args: argparse.Namespace, job: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run one command: ``CtlError`` and bad input become their message and exit status."""
    try:
        return asyncio.run(job())
    except CtlError as exc:
        print(f"evb ctl: {exc.message}", file=sys.stderr)
        return exc.code
    except ConfigError as exc:
        print(f"evb ctl: {exc}", file=sys.stderr)
        return EXIT_USAGE


# --------------------------------------------------------------------------- assoc & co


@dataclass(frozen=True, slots=True)
class Request:
    """One command to one station agent."""

    topics: StationTopics
    request_id: str
    mode: str
    vsi: dict[str, Any]  #: as ``vsi_json`` writes it
    hints: str = "none"

    def payload(self) -> bytes:
        return command_payload(self.request_id, self.mode, self.vsi, self.hints)

    @property
    def station(self) -> str:
        return f"{self.topics.host}/{self.topics.ifname}"

    @property
    def vsi_text(self) -> str:
        return f"{self.vsi['manager_id']}/{self.vsi['uuid']}"


def _vsi_doc(args: dict[str, Any], where: str) -> dict[str, Any]:
    try:
        return vsi_json(vsi_from_args(args))
    except ControlError as exc:
        raise CtlError(EXIT_USAGE, f"{where}{exc.message}") from None


def requests_of(args: argparse.Namespace) -> list[Request]:
    """The commands ``evb ctl MODE`` publishes (bad options: ``CtlError`` exit 2)."""

    try:
        topics = StationTopics(args.host, args.iface)
    except PayloadError as exc:
        raise CtlError(EXIT_USAGE, f"--{'host' if exc.field == 'host' else 'iface'} {exc.message}") from None
    if args.timeout <= 0:
        raise CtlError(EXIT_USAGE, "--timeout must be more than 0 seconds")
    base = args.request_id or uuid.uuid4().hex
    if args.from_file:
        items = load_vsis_file(args.from_file)  # ConfigError: exit 2, with file and entry
        out = [
            Request(
                topics,
                f"{base}-{i}",
                args.mode,
                _vsi_doc(item, f"{args.from_file}: vsi[{i - 1}]: "),
                item.get("hints", "none"),
            )
            for i, item in enumerate(items, 1)
        ]
    else:
        given = vsi_args(args)
        hints = given.pop("hints")
        out = [Request(topics, base, args.mode, _vsi_doc(given, ""), hints)]
    try:
        for r in out:
            request_id_of({"request_id": r.request_id})
    except PayloadError as exc:
        raise CtlError(EXIT_USAGE, f"--request-id {exc.message}") from None
    return out


def reply_exit(reply: dict[str, Any]) -> int:
    """The exit status a reply means."""
    if reply.get("ok") is True:
        return EXIT_OK
    error = reply.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return EXIT_USAGE if code in USAGE_CODES else EXIT_PROBLEM


def reply_line(reply: dict[str, Any]) -> str:
    """What ``evb vsi assoc --wait`` prints for the result, or the error's message."""
    if reply.get("ok") is not True:
        error = reply.get("error")
        if not isinstance(error, dict):
            error = {}
        return f"{error.get('code', 'E_?')}: {error.get('message', 'refused')}"
    result = reply.get("result") or {}
    filters = ", ".join(" ".join(f"{k}={v}" for k, v in f.items()) for f in result.get("filters") or [])
    line = f"{result.get('vsi', '?')}: {result.get('mode', '?')}" + (f" [{filters}]" if filters else "")
    return line + (" (answered before: duplicate)" if reply.get("duplicate") else "")


def timeout_message(request: Request, timeout: float, presence: str | None, count: int = 1) -> str:
    """Why no reply came, as far as the station's presence tells."""
    what = f"no reply from {request.station} within {timeout:g} s"
    what += f" (request_id {request.request_id})" if count == 1 else f" to {count} commands"
    retry = f"ask again with --request-id {request.request_id.rsplit('-', 1)[0] if count > 1 else request.request_id}"
    if presence == "online":
        return f"{what}; the agent is online: the bridge may be slow to answer. {retry} to get its answer"
    if presence == "offline":
        return (
            f"{what}; the station agent is offline: the command waits in the broker and runs when the agent "
            f"is back. {retry} to get its answer then (it will not run twice)"
        )
    return (
        f"{what}; nothing is known of that agent (nothing retained on {request.topics.status}): "
        f"is `evb station run --mqtt URL --mqtt-host {request.topics.host} --iface {request.topics.ifname}` running?"
    )


async def send(
    client: aiomqtt.Client,
    requests: list[Request],
    *,
    timeout: float,
    wait: bool = True,
    on_reply: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[dict[str, dict[str, Any]], str | None]:
    """Publish ``requests`` (to one station) and collect their replies: (request_id → reply, presence)."""
    topics = requests[0].topics
    await client.subscribe(topics.status, qos=1)
    if wait:
        await client.subscribe(topics.reply(requests[0].request_id if len(requests) == 1 else "+"), qos=1)
    await asyncio.gather(*(client.publish(r.topics.cmd, r.payload(), qos=1) for r in requests))
    presence: str | None = None
    replies: dict[str, dict[str, Any]] = {}
    if not wait:
        return replies, presence
    pending = {r.request_id for r in requests}
    async for topic, payload in collect(client, wait=timeout):
        if topic == topics.status:
            presence = payload.decode(errors="replace").strip() or None
            continue
        parsed = parse_station_topic(topic)
        if parsed is None or parsed.kind != "reply" or parsed.rest not in pending:
            continue
        try:
            reply = json_object(payload, "reply")
        except PayloadError as exc:
            reply = {"request_id": parsed.rest, "ok": False, "error": {"code": "E_BAD_REPLY", "message": str(exc)}}
        replies[parsed.rest] = reply
        pending.discard(parsed.rest)
        if on_reply is not None:
            on_reply(reply)
        if not pending:
            break
    return replies, presence


def cmd_request(args: argparse.Namespace) -> int:
    async def job() -> int:
        from evb.progress import Progress

        options = broker_options(args)
        requests = requests_of(args)
        # many VSIs: a progress bar on a terminal (stderr), one step per reply
        bar = Progress(f"{args.mode} {len(requests)} VSIs", total=len(requests))
        bar.enabled = bar.enabled and len(requests) > 1 and not args.no_wait
        done = 0

        def tick(_reply: dict[str, Any]) -> None:
            nonlocal done
            done += 1
            bar.update(done)

        async with connected(options) as client:
            replies, presence = await send(client, requests, timeout=args.timeout, wait=not args.no_wait, on_reply=tick)
        bar.close()
        if args.no_wait:
            return _print_published(args, requests)
        if len(requests) == 1:
            return _print_reply(args, requests[0], replies.get(requests[0].request_id), presence)
        return _print_bulk(args, requests, replies, presence)

    return _run(args, job)


def _print_published(args: argparse.Namespace, requests: list[Request]) -> int:
    r = requests[0]
    if args.json:
        print(json.dumps({"published": [{"request_id": x.request_id, "topic": x.topics.cmd} for x in requests]}))
    elif len(requests) == 1:
        print(f"{r.station}: {r.mode} of {r.vsi_text} published (request_id {r.request_id})")
    else:
        print(
            f"{r.station}: {len(requests)} commands published (request_ids {r.request_id}..{requests[-1].request_id})"
        )
    return EXIT_OK


def _print_reply(args: argparse.Namespace, request: Request, reply: dict[str, Any] | None, presence: str | None) -> int:
    if reply is None:
        message = timeout_message(request, args.timeout, presence)
        if args.json:
            error = {"code": "E_TIMEOUT", "message": message, "data": {"presence": presence or "unknown"}}
            print(json.dumps({"request_id": request.request_id, "ok": False, "error": error}))
        print(f"evb ctl: {message}", file=sys.stderr)
        return EXIT_PROBLEM
    if args.json:
        print(json.dumps(reply))
    elif reply.get("ok") is True:
        print(reply_line(reply))
    if reply.get("ok") is not True:
        print(f"evb ctl: {request.station}: {reply_line(reply)}", file=sys.stderr)
    return reply_exit(reply)


def _print_bulk(
    args: argparse.Namespace, requests: list[Request], replies: dict[str, dict[str, Any]], presence: str | None
) -> int:
    ok = [r for r in requests if replies.get(r.request_id, {}).get("ok") is True]
    failed = [r for r in requests if r.request_id in replies and r not in ok]
    missing = [r for r in requests if r.request_id not in replies]
    if args.json:
        doc = {
            "requested": len(requests),
            "ok": len(ok),
            "failed": len(failed),
            "unanswered": [r.request_id for r in missing],
            "replies": [replies[r.request_id] for r in requests if r.request_id in replies],
        }
        print(json.dumps(doc))
    else:
        print(f"{len(requests)} requested, {len(ok)} answered ok, {len(failed)} failed, {len(missing)} unanswered")
        for r in failed:
            print(f"  {r.vsi_text}: {reply_line(replies[r.request_id])}")
    if missing:
        print(f"evb ctl: {timeout_message(missing[0], args.timeout, presence, len(missing))}", file=sys.stderr)
    return EXIT_OK if not failed and not missing else EXIT_PROBLEM


# --------------------------------------------------------------------------- watch


@dataclass(slots=True)
class Change:
    """One change ``WatchState.apply`` saw: what (``kind``), of which, and its line of text."""

    kind: str  #: station, vsi, bridge, port, malformed
    key: dict[str, str]
    value: Any  #: presence text, the retained JSON, or None (cleared)
    text: str

    def to_json(self, at: float) -> dict[str, Any]:
        return {"time": now_iso(at), "kind": self.kind, **self.key, "value": self.value}


_VSI_FIELDS: Final = ("vsi", "wanted", "state", "status", "vids", "granted")  #: a change of these is shown


def _vsi_key(doc: dict[str, Any], vsiid: str) -> str:
    vsi = doc.get("vsi")
    if isinstance(vsi, dict) and "manager_id" in vsi and "uuid" in vsi:
        return f"{vsi['manager_id']}/{vsi['uuid']}"
    return vsiid


def _ids(values: Any) -> str:
    return ",".join(str(v) for v in values) if isinstance(values, list) and values else "-"


@dataclass(slots=True)
class WatchState:
    """What ``evb ctl watch`` knows: presence, retained VSI states, bridge ports' VSIs."""

    host: str | None = None
    stations: dict[tuple[str, str], str] = field(default_factory=dict)  #: (host, ifname) → presence
    bridges: dict[str, str] = field(default_factory=dict)  #: name → presence
    vsis: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)  #: (host, ifname, vsiid)
    ports: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)  #: (bridge, port, vsiid)
    malformed: int = 0
    _unconfirmed: set[tuple[str, tuple[str, ...]]] | None = None

    def subscriptions(self) -> list[str]:
        h = self.host or "+"
        return [
            f"evb/{VERSION}/station/{h}/+/status",
            f"evb/{VERSION}/station/{h}/+/vsi/+",
            f"evb/{VERSION}/bridge/+/status",
            f"evb/{VERSION}/bridge/+/port/+/vsi/+",
        ]

    def apply(self, topic: str, payload: bytes) -> Change | None:
        """Take one message in; the change it makes, if any."""
        p = topic.split("/")
        if p[:2] != ["evb", VERSION]:
            return None
        if len(p) == 6 and p[2] == "station" and p[5] == "status":
            return self._presence("station", (p[3], p[4]), self.stations, payload, f"{p[3]}/{p[4]}")
        if len(p) == 5 and p[2] == "bridge" and p[4] == "status":
            return self._presence("bridge", (p[3],), self.bridges, payload, f"bridge {p[3]}")
        if len(p) == 7 and p[2] == "station" and p[5] == "vsi":
            return self._vsi(p[3], p[4], p[6], payload)
        if len(p) == 8 and p[2] == "bridge" and p[4] == "port" and p[6] == "vsi":
            return self._port(p[3], p[5], p[7], payload)
        return None

    def _seen(self, kind: str, key: tuple[str, ...]) -> None:
        if self._unconfirmed is not None:
            self._unconfirmed.discard((kind, key))

    def _presence(
        self, kind: str, key: tuple[str, ...], table: dict[Any, str], payload: bytes, name: str
    ) -> Change | None:
        self._seen(kind, key)
        text = payload.decode(errors="replace").strip()
        keys = {"host": key[0], "ifname": key[1]} if kind == "station" else {"bridge": key[0]}
        where = key if kind == "station" else key[0]  # stations by (host, ifname), bridges by name
        if not text:
            return Change(kind, keys, None, f"{name}: presence cleared") if table.pop(where, None) else None
        if table.get(where) == text:
            return None
        table[where] = text
        return Change(kind, keys, text, f"{name}: {text}")

    def _vsi(self, host: str, ifname: str, vsiid: str, payload: bytes) -> Change | None:
        key = (host, ifname, vsiid)
        self._seen("vsi", key)
        keys = {"host": host, "ifname": ifname, "vsiid": vsiid}
        old = self.vsis.get(key)
        if not payload:
            if old is None:
                return None
            del self.vsis[key]
            return Change("vsi", keys, None, f"{host}/{ifname} {_vsi_key(old, vsiid)}: gone")
        try:
            doc = json_object(payload, "VSI state")
        except PayloadError as exc:
            self.malformed += 1
            return Change("malformed", keys, None, f"{host}/{ifname} vsi/{vsiid}: {exc.message}")
        self.vsis[key] = doc
        if old is not None and all(old.get(f) == doc.get(f) for f in _VSI_FIELDS):
            return None
        state, wanted, status = doc.get("state"), doc.get("wanted"), doc.get("status")
        text = f"{host}/{ifname} {_vsi_key(doc, vsiid)}: {state}"
        if wanted != state:
            text += f" (wanted {wanted or 'nothing'})"
        if doc.get("vids"):
            text += f", VIDs {_ids(doc['vids'])}"
        if status and status != state:
            text += f"; {status}"
        return Change("vsi", keys, doc, text)

    def _port(self, bridge: str, port: str, vsiid: str, payload: bytes) -> Change | None:
        key = (bridge, port, vsiid)
        self._seen("port", key)
        keys = {"bridge": bridge, "port": port, "vsiid": vsiid}
        old = self.ports.get(key)
        where = f"bridge {bridge} port {port}"
        if not payload:
            if old is None:
                return None
            del self.ports[key]
            return Change("port", keys, None, f"{where} {old.get('vsi') or vsiid}: released")
        try:
            doc = json_object(payload, "bridge VSI state")
        except PayloadError as exc:
            self.malformed += 1
            return Change("malformed", keys, None, f"{where} vsi/{vsiid}: {exc.message}")
        self.ports[key] = doc
        if old is not None and old.get("mode") == doc.get("mode") and old.get("filters") == doc.get("filters"):
            return None
        return Change("port", keys, doc, f"{where} {doc.get('vsi') or vsiid}: {doc.get('mode')}")

    # ------------------------------------------------------------------ reconnects

    def begin_resync(self) -> None:
        """After a reconnect: what is not retained again by ``end_resync`` is gone."""
        self._unconfirmed = (
            {("station", k) for k in self.stations}
            | {("bridge", (k,)) for k in self.bridges}
            | {("vsi", k) for k in self.vsis}
            | {("port", k) for k in self.ports}
        )

    def end_resync(self) -> list[Change]:
        gone, self._unconfirmed = self._unconfirmed or set(), None
        changes = []
        for kind, key in sorted(gone):
            topic = (
                f"evb/{VERSION}/station/{key[0]}/{key[1]}/status"
                if kind == "station"
                else f"evb/{VERSION}/bridge/{key[0]}/status"
                if kind == "bridge"
                else f"evb/{VERSION}/station/{key[0]}/{key[1]}/vsi/{key[2]}"
                if kind == "vsi"
                else f"evb/{VERSION}/bridge/{key[0]}/port/{key[1]}/vsi/{key[2]}"
            )
            change = self.apply(topic, b"")
            if change is not None:
                changes.append(change)
        return changes

    # ------------------------------------------------------------------ views

    def holders(self) -> dict[str, list[tuple[str, str, dict[str, Any]]]]:
        """VSIID → the bridge ports holding it: (bridge, port, their state)."""
        out: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
        for (bridge, port, vsiid), doc in sorted(self.ports.items()):
            out.setdefault(vsiid, []).append((bridge, port, doc))
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One row per station VSI (the retained state, and host, ifname, vsiid, key, presence,
        held_by), sorted by host, interface, VSI."""
        holders = self.holders()
        rows = []
        for (host, ifname, vsiid), doc in self.vsis.items():
            key = _vsi_key(doc, vsiid)
            held = [
                {"bridge": b, "port": port, "mode": d.get("mode")}
                for b, port, d in holders.get(vsiid, [])
                if not isinstance(d.get("vsi"), str) or d["vsi"] == key
            ]
            presence = self.stations.get((host, ifname), "unknown")
            rows.append(
                {
                    **doc,
                    "host": host,
                    "ifname": ifname,
                    "vsiid": vsiid,
                    "key": key,
                    "presence": presence,
                    "held_by": held,
                }
            )
        rows.sort(key=lambda r: (r["host"], r["ifname"], r["key"]))
        return rows

    def to_json(self) -> dict[str, Any]:
        """``--once --json``: stations, bridges (with their ports' VSIs) and VSI rows."""
        stations = sorted({*self.stations, *((h, i) for h, i, _ in self.vsis)})
        bridges = sorted({*self.bridges, *(b for b, _, _ in self.ports)})
        return {
            "stations": [
                {"host": h, "ifname": i, "presence": self.stations.get((h, i), "unknown")} for h, i in stations
            ],
            "bridges": [
                {
                    "name": b,
                    "presence": self.bridges.get(b, "unknown"),
                    "vsis": [
                        {**doc, "port": port, "vsiid": vsiid}
                        for (bb, port, vsiid), doc in sorted(self.ports.items())
                        if bb == b
                    ],
                }
                for b in bridges
            ],
            "vsis": self.rows(),
        }

    def summary(self) -> str:
        stations = {*self.stations, *((h, i) for h, i, _ in self.vsis)}
        online = sum(1 for v in self.stations.values() if v == ONLINE.decode())
        assoc = sum(1 for d in self.vsis.values() if d.get("state") == "assoc")
        bridges = {*self.bridges, *(b for b, _, _ in self.ports)}
        text = f"{len(stations)} stations ({online} online), {len(self.vsis)} VSIs ({assoc} associated)"
        text += f", {len(bridges)} bridges"
        return text + (f", {self.malformed} malformed messages" if self.malformed else "")


def age_text(iso: Any, now: float) -> str:
    """``12s ago`` for an ISO 8601 time ``now`` (seconds since the epoch) is 12 s later."""
    if not isinstance(iso, str) or not iso:
        return "-"
    try:
        t = datetime.datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.UTC)
    s = now - t.timestamp()
    if s < 1:
        return "now"
    if s < 120:
        return f"{int(s)}s ago"
    if s < 7200:
        return f"{int(s // 60)}m ago"
    if s < 172800:
        return f"{int(s // 3600)}h ago"
    return f"{int(s // 86400)}d ago"


def _columns(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return out


WATCH_COLUMNS: Final = ["HOST", "IFNAME", "PRESENCE", "VSI", "WANTED", "STATE", "VIDS", "KEEPALIVE", "BRIDGE"]


def watch_table(state: WatchState, now: float) -> list[str]:
    """The table's lines: one per station VSI (a station without VSIs: one row of dashes),
    then one per bridge."""
    rows = []
    by_station: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in state.rows():
        by_station.setdefault((r["host"], r["ifname"]), []).append(r)
    for host, ifname in sorted({*state.stations, *by_station}):
        presence = state.stations.get((host, ifname), "unknown")
        vsis = by_station.get((host, ifname))
        if not vsis:
            rows.append([host, ifname, presence, "-", "-", "-", "-", "-", "-"])
            continue
        for r in vsis:
            held = ",".join(f"{h['bridge']}/{h['port']}:{h['mode']}" for h in r["held_by"]) or "-"
            rows.append(
                [
                    host,
                    ifname,
                    presence,
                    r["key"],
                    str(r.get("wanted") or "-"),
                    str(r.get("state") or "-"),
                    _ids(r.get("vids")),
                    age_text(r.get("last_keepalive"), now),
                    held,
                ]
            )
    lines = _columns(WATCH_COLUMNS, rows) if rows else ["(no station has published anything)"]
    bridges = sorted({*state.bridges, *(b for b, _, _ in state.ports)})
    if bridges:
        brows = []
        for b in bridges:
            ports = [port for bb, port, _ in state.ports if bb == b]
            brows.append([b, state.bridges.get(b, "unknown"), str(len(set(ports))), str(len(ports))])
        lines += ["", *_columns(["BRIDGE", "PRESENCE", "PORTS", "VSIS"], brows)]
    return lines


def watch_screen(state: WatchState, *, now: float, broker: str, width: int, height: int, note: str = "") -> str:
    """One frame of the live view: cursor home, every line cleared to its end, the rest of the
    screen cleared; lines cut to ``width``, rows beyond ``height`` left out (and counted)."""
    clock = time.strftime("%H:%M:%S", time.localtime(now))
    head = [f"evb ctl watch  {broker}  {clock}  (Ctrl-C to quit)", note or state.summary(), ""]
    body = watch_table(state, now)
    room = max(1, height - len(head) - 1)
    if len(body) > room:
        body = [*body[: room - 1], f"... {len(body) - room + 1} more lines (a taller window, or --once)"]
    lines = [line[:width] for line in head + body]
    return "\x1b[H" + "".join(line + "\x1b[K\n" for line in lines) + "\x1b[J"


async def _watch_once(args: argparse.Namespace, options: MqttOptions) -> WatchState:
    state = WatchState(args.host)
    async with connected(options) as client:
        for topic in state.subscriptions():
            await client.subscribe(topic, qos=1)
        async for topic, payload in collect(client, wait=args.wait):
            state.apply(topic, payload)
    return state


async def _watch_live(args: argparse.Namespace, options: MqttOptions, out: TextIO) -> int:
    loop = asyncio.get_running_loop()
    state = WatchState(args.host)
    screen = out.isatty() and not args.json
    dirty = asyncio.Event()
    note = ""
    broker = str(options.address())

    def emit(change: Change | None) -> None:
        if change is None:
            return
        if screen:
            dirty.set()
        elif args.json:
            print(json.dumps(change.to_json(time.time())), file=out, flush=True)
        else:
            print(f"{now_iso(time.time())} {change.text}", file=out, flush=True)

    async def draw() -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(dirty.wait(), 1.0)  # ages move on: redraw every second anyway
            dirty.clear()
            size = shutil.get_terminal_size()
            out.write(
                watch_screen(state, now=time.time(), broker=broker, width=size.columns, height=size.lines, note=note)
            )
            out.flush()
            await asyncio.sleep(REDRAW)

    def resynced() -> None:
        for change in state.end_resync():
            emit(change)

    drawer = asyncio.create_task(draw()) if screen else None
    if screen:
        out.write("\x1b[?25l")  # no cursor blinking over the table
    first, delay = True, 0.5
    try:
        while True:
            try:
                async with connected(options) as client:
                    for topic in state.subscriptions():
                        await client.subscribe(topic, qos=1)
                    if not first:
                        note, delay = "", 0.5
                        dirty.set()
                        state.begin_resync()
                        loop.call_later(RESYNC, resynced)
                    first = False
                    async for message in client.messages:
                        emit(state.apply(str(message.topic), _payload(message)))
            except CtlError as exc:
                if first or exc.code != EXIT_NO_BROKER:
                    raise
                note = f"{exc.message}; trying again in {delay:.0f} s"
                if screen:
                    dirty.set()
                else:
                    print(f"evb ctl: {note}", file=sys.stderr, flush=True)
                await asyncio.sleep(delay)
                delay = min(10.0, delay * 2)
    finally:
        if drawer is not None:
            drawer.cancel()
            out.write("\x1b[?25h")
            out.flush()


def cmd_watch(args: argparse.Namespace) -> int:
    async def job() -> int:
        options = broker_options(args)
        if args.host:
            try:
                segment(args.host, "--host")
            except PayloadError as exc:
                raise CtlError(EXIT_USAGE, str(exc)) from None
        if args.wait < 0:
            raise CtlError(EXIT_USAGE, "--wait must be 0 seconds or more")
        if args.once:
            state = await _watch_once(args, options)
            if args.json:
                print(json.dumps(state.to_json()))
            else:
                print("\n".join(watch_table(state, time.time())))
            return EXIT_OK
        return await _watch_live(args, options, sys.stdout)

    try:
        return _run(args, job)
    except KeyboardInterrupt:  # the way to end a live watch
        return EXIT_OK


# --------------------------------------------------------------------------- vtdb


def _manager(text: str, what: str) -> bytes:
    try:
        return manager_id_from_text(text)
    except (EvbError, UnicodeError):
        raise CtlError(EXIT_USAGE, f"{what} {text!r} is neither an ASCII name of 1..16 characters nor a UUID") from None


def vtdb_name(key: VtdbKey) -> str:
    """``labmgr/5/4``: the entry's topic below ``evb/v1/vtdb/``."""
    return vtdb_topic(*key)[len(VTDB) + 1 :]


def toml_value(value: Any) -> str:
    """A value in TOML notation (booleans, numbers, strings, lists, inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise ValueError(f"{value!r} has no TOML form")


def policy_toml(entries: dict[VtdbKey, dict[str, Any]]) -> str:
    """Entries as a policy.toml: one ``[[manager]]`` per manager, one ``[[manager.type]]`` per
    type and version (what ``evb bridge run --policy`` and ``evb ctl vtdb put`` read)."""
    out: list[str] = []
    managers = sorted({k[0] for k in entries}, key=format_manager_id)
    for mid in managers:
        out += ["[[manager]]", f"id = {toml_value(format_manager_id(mid))}", ""]
        for (m, type_id, version), entry in sorted(entries.items(), key=lambda kv: kv[0][1:]):
            if m != mid:
                continue
            out += ["[[manager.type]]", f"id = {type_id}", f"version = {version}"]
            out += [f"{k} = {toml_value(v)}" for k, v in entry.items()]
            out.append("")
    return "\n".join(out)


def check_entry(
    manager: str, type_id: int, version: int, entry: Any, *, where: str = "--json"
) -> tuple[VtdbKey, dict[str, Any]]:
    """The key of a VSI type database entry and the entry as bridges read it, after checking it
    as bridges do (``policy.vsi_type_from_entry``, the rules of policy.toml); a mistake is
    ``CtlError`` exit 2 naming ``where`` and the key."""
    from evb.vepa_bridge.policy import PolicyError, VsiTypeDatabase, vsi_type_from_entry, vtdb_entries

    mid = _manager(manager, "manager")
    if not 0 <= type_id <= 0xFFFFFF:
        raise CtlError(EXIT_USAGE, f"type id {type_id} is outside 0..16777215")
    if not 0 <= version <= 255:
        raise CtlError(EXIT_USAGE, f"version {version} is outside 0..255")
    if not isinstance(entry, dict):
        raise CtlError(EXIT_USAGE, f"{where}: must be a JSON object with keys of {', '.join(VTDB_KEYS)}")
    try:
        vtype = vsi_type_from_entry(entry, type_id, version, source=where)
    except PolicyError as exc:
        raise CtlError(EXIT_USAGE, str(exc)) from None
    key = (mid, type_id, version)
    return key, vtdb_entries(VsiTypeDatabase(managers={mid: {(type_id, version): vtype}}))[key]


def entries_from_policy(path: str) -> tuple[dict[VtdbKey, dict[str, Any]], list[str]]:
    """The entries of a policy.toml as bridges read them (``policy.vtdb_entries``; the file is
    checked by ``load_policy``: ``PolicyError`` names file, line and key) and its tables that are
    not published ([defaults], [ports]: per bridge)."""
    from evb.vepa_bridge.policy import PortLimits, load_policy, vtdb_entries

    db = load_policy(path)
    skipped = [name for name, there in (("[defaults]", db.defaults != PortLimits()), ("[ports]", db.ports)) if there]
    return vtdb_entries(db), skipped


class VtdbSnapshot:
    """The entries retained on the broker, read as a bridge reads them (``evb.mqtt.vtdb.VtdbView``):
    ``entries`` the valid ones, ``bad`` the topics bridges refuse (a payload the policy rules
    refuse, a topic that does not parse, a manager spelt otherwise than ``vtdb_topic``) and why."""

    def __init__(self) -> None:
        from evb.mqtt.vtdb import VtdbView

        self.view = VtdbView()

    def add(self, topic: str, payload: bytes) -> None:
        from evb.mqtt.vtdb import VtdbEntryError

        with contextlib.suppress(VtdbEntryError):  # kept in view.refused
            self.view.update(topic, payload)

    @property
    def entries(self) -> dict[VtdbKey, dict[str, Any]]:
        return {(e.manager_id, e.type_id, e.version): json.loads(e.payload) for e in self.view.entries.values()}

    @property
    def bad(self) -> dict[str, str]:
        return dict(self.view.refused)

    def topics_of(self, key: VtdbKey) -> list[str]:
        """Where ``key`` is on the broker: its topic, and refused topics that name the same type."""
        out = [vtdb_topic(*key)] if vtdb_topic(*key) in self.view.entries else []
        for topic in sorted(self.view.refused):
            with contextlib.suppress(PayloadError):
                if parse_vtdb_topic(topic) == key:
                    out.append(topic)
        return out


async def read_vtdb(client: aiomqtt.Client, wait: float) -> VtdbSnapshot:
    """All retained ``evb/v1/vtdb/#`` messages (until ``SETTLE`` s pass without one, at most ``wait``)."""
    snap = VtdbSnapshot()
    await client.subscribe(f"{VTDB}/#", qos=1)
    async for topic, payload in collect(client, wait=wait, settle=SETTLE):
        snap.add(topic, payload)
    return snap


def _key_of(args: argparse.Namespace) -> VtdbKey:
    mid = _manager(args.manager, "MANAGER")
    if not 0 <= args.type_id <= 0xFFFFFF or not 0 <= args.version <= 255:
        raise CtlError(EXIT_USAGE, "TYPE_ID must be 0..16777215, VERSION 0..255")
    return mid, args.type_id, args.version


def _entry_payload(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry).encode()


def _put_entries(args: argparse.Namespace) -> tuple[dict[VtdbKey, dict[str, Any]], str]:
    """The entries ``vtdb put`` publishes, and where from."""
    single = [args.manager, args.type_id, args.version, args.entry_json]
    if args.file:
        if any(v is not None for v in single):
            raise CtlError(EXIT_USAGE, "give FILE, or --manager, --type-id, --version and --json: not both")
        entries, skipped = entries_from_policy(args.file)
        if skipped:
            verb = "are" if len(skipped) > 1 else "is"
            print(f"evb ctl: {args.file}: {' and '.join(skipped)} {verb} per bridge: not published", file=sys.stderr)
        return entries, args.file
    if any(v is None for v in single):
        names = ("--manager", "--type-id", "--version", "--json")
        missing = [n for n, v in zip(names, single, strict=True) if v is None]
        raise CtlError(EXIT_USAGE, f"give FILE, or one entry: missing {', '.join(missing)}")
    if args.replace:
        raise CtlError(EXIT_USAGE, "--replace needs FILE (the whole database)")
    text = sys.stdin.read() if args.entry_json == "-" else args.entry_json
    try:
        entry = json.loads(text)
    except ValueError as exc:
        raise CtlError(EXIT_USAGE, f"--json: not JSON ({exc})") from None
    key, entry = check_entry(args.manager, args.type_id, args.version, entry)
    return {key: entry}, "--json"


def cmd_vtdb_put(args: argparse.Namespace) -> int:
    async def job() -> int:
        options = None if args.dry_run else broker_options(args)
        entries, source = _put_entries(args)
        if not entries and not args.replace:
            print(f"evb ctl: {source} has no [[manager.type]] tables: nothing to publish", file=sys.stderr)
            return EXIT_OK
        if options is None:
            for key, entry in sorted(entries.items()):
                print(f"{vtdb_topic(*key)} {_entry_payload(entry).decode()}")
            if args.replace:
                print("(--replace: entries on the broker that are not listed would be deleted)")
            return EXIT_OK
        async with connected(options) as client:
            current = await read_vtdb(client, args.wait) if args.replace else VtdbSnapshot()
            publish = {k: e for k, e in entries.items() if current.entries.get(k) != e}
            # what the file does not have, and whatever bridges refuse (but the topics written now)
            keep = {vtdb_topic(*k) for k in entries}
            clear = sorted({*(vtdb_topic(*k) for k in current.entries), *current.bad} - keep)
            jobs = [client.publish(vtdb_topic(*k), _entry_payload(e), qos=1, retain=True) for k, e in publish.items()]
            jobs += [client.publish(t, b"", qos=1, retain=True) for t in clear]
            await asyncio.gather(*jobs)
        new = sum(1 for k in publish if k not in current.entries)
        text = f"{_count(len(publish), 'entry', 'entries')} published to {options.address()}"
        if args.replace:
            text += f" ({new} new, {len(publish) - new} changed, {len(entries) - len(publish)} unchanged)"
            text += f", {len(clear)} deleted"
        print(text)
        for topic in clear:
            print(f"  deleted {topic[len(VTDB) + 1 :]}")
        return EXIT_OK

    return _run(args, job)


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _entry_json(key: VtdbKey, entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "manager_id": format_manager_id(key[0]),
        "type_id": key[1],
        "version": key[2],
        "topic": vtdb_topic(*key),
        "entry": entry,
    }


def cmd_vtdb_get(args: argparse.Namespace) -> int:
    async def job() -> int:
        options = broker_options(args)
        key = _key_of(args)
        async with connected(options) as client:
            snap = await read_vtdb(client, args.wait)
        entry = snap.entries.get(key)
        if entry is None:
            refused = "; ".join(snap.bad[t] for t in snap.topics_of(key))
            why = f" (bridges refuse {refused})" if refused else ""
            raise CtlError(EXIT_PROBLEM, f"no entry {vtdb_name(key)} on the broker {options.address()}{why}")
        print(json.dumps(_entry_json(key, entry)) if args.json else policy_toml({key: entry}).rstrip("\n"))
        return EXIT_OK

    return _run(args, job)


def cmd_vtdb_delete(args: argparse.Namespace) -> int:
    async def job() -> int:
        options = broker_options(args)
        key = _key_of(args)
        async with connected(options) as client:
            snap = await read_vtdb(client, args.wait)
            topics = snap.topics_of(key)
            if not topics:
                raise CtlError(EXIT_PROBLEM, f"no entry {vtdb_name(key)} on the broker {options.address()}")
            await asyncio.gather(*(client.publish(t, b"", qos=1, retain=True) for t in topics))
        print(f"{vtdb_name(key)}: deleted")
        return EXIT_OK

    return _run(args, job)


def vtdb_table(entries: Iterable[tuple[VtdbKey, dict[str, Any]]]) -> list[str]:
    """``vtdb list``: one row per entry; absent allow-lists read ``any``."""
    rows = []
    for (mid, type_id, version), e in sorted(entries, key=lambda kv: (format_manager_id(kv[0][0]), kv[0][1:])):
        rows.append(
            [
                format_manager_id(mid),
                str(type_id),
                str(version),
                _list_text(e.get("vlans")),
                str(e.get("assign_vid", "-")),
                _list_text(e.get("pcp")),
                str(e.get("max_entries", "-")),
                _list_text(e.get("macs")),
                _list_text(e.get("groups")),
            ]
        )
    if not rows:
        return ["(no entries)"]
    head = ["MANAGER", "TYPE", "VERSION", "VLANS", "ASSIGN_VID", "PCP", "MAX_ENTRIES", "MACS", "GROUPS"]
    return _columns(head, rows)


def _list_text(value: Any) -> str:
    if value is None:
        return "any"
    return ",".join(str(v) for v in value) if isinstance(value, list) else str(value)


def cmd_vtdb_list(args: argparse.Namespace) -> int:
    async def job() -> int:
        options = broker_options(args)
        mid = _manager(args.manager, "--manager") if args.manager else None
        async with connected(options) as client:
            snap = await read_vtdb(client, args.wait)
        entries = {k: e for k, e in snap.entries.items() if mid is None or k[0] == mid}
        for _, problem in sorted(snap.bad.items()):
            print(f"evb ctl: bridges refuse {problem}", file=sys.stderr)
        if args.json:
            print(json.dumps([_entry_json(k, e) for k, e in sorted(entries.items())]))
        elif args.toml:
            print(policy_toml(entries), end="")
        else:
            print("\n".join(vtdb_table(entries.items())))
        return EXIT_OK

    return _run(args, job)
