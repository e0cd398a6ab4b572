"""The MQTT control plane's vocabulary: topics and JSON payloads, version 1 (pure, no I/O).

Everything lives under ``evb/v1/`` (``docs/mqtt.md`` is the reference):

``evb/v1/station/{host}/{ifname}/cmd``                 commands to one station agent (QoS 1)
``evb/v1/station/{host}/{ifname}/reply/{request_id}``  the answer to one command (QoS 1)
``evb/v1/station/{host}/{ifname}/error``               answers to commands without a usable request_id
``evb/v1/station/{host}/{ifname}/vsi/{vsiid}``         retained state of one VSI (cleared when it is gone)
``evb/v1/station/{host}/{ifname}/event``               what happened to a VSI, as it happens
``evb/v1/station/{host}/{ifname}/status``              retained ``online`` / ``offline`` (last will)
``evb/v1/bridge/{name}/status``                        retained ``online`` / ``offline`` (last will)
``evb/v1/bridge/{name}/event``                         association events of all ports
``evb/v1/bridge/{name}/port/{ifname}/vsi/{vsiid}``     retained state of one VSI on one port
``evb/v1/vtdb/{manager_id}/{type_id}/{version}``       retained VSI type database entries

Names in topics (host, interface, bridge, request_id, VSIID, manager ID) never contain ``/``,
``+`` or ``#``: a manager ID whose name does is written as its 32 hex digits.

A command::

    {"request_id": "r-42", "mode": "assoc", "hints": "none",
     "vsi": {"manager_id": "labmgr", "type_id": 5, "type_version": 4, "format": "uuid",
             "uuid": "…", "filters": ["10-52:54:00:00:00:01"]}}

``mode``: ``assoc``, ``preassoc``, ``preassoc-rr``, ``deassoc``; ``vsi`` holds the arguments of
``evb vsi assoc`` (``evb.control.vsi_from_args``). A payload that does not parse is a
``PayloadError`` that names the field (``vsi.type_id``); the agent answers it, never crashes.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final

from evb.control import MODES, ControlError, vsi_from_args
from evb.errors import EvbError
from evb.vdp.station import Vsi
from evb.vdp.wire import format_manager_id, format_vsiid, manager_id_from_text

VERSION: Final = "v1"
ROOT: Final = f"evb/{VERSION}"
VTDB: Final = f"{ROOT}/vtdb"
ONLINE, OFFLINE = b"online", b"offline"
#: keys of a VSI type database entry: those of a ``[[manager.type]]`` table of policy.toml but
#: ``id`` and ``version``/``versions``, which the topic carries
VTDB_KEYS: Final = ("vlans", "assign_vid", "pcp", "max_entries", "macs", "groups")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@=-]{1,128}")
_FORBIDDEN = set("/+#\0")


class PayloadError(EvbError):
    """A payload or topic that does not parse; ``field`` is a dotted path (``vsi.type_id``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message

    def to_json(self) -> dict[str, Any]:
        return {"code": "E_BAD_REQUEST", "field": self.field, "message": str(self)}


def now_iso(t: float) -> str:
    """A wall-clock time (seconds since the epoch) as ISO 8601 UTC, milliseconds."""
    return datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def segment(text: str, what: str) -> str:
    """``text`` if it can be one topic level (not empty, no ``/``, ``+``, ``#``, NUL)."""
    if not isinstance(text, str) or not text or len(text) > 256 or _FORBIDDEN & set(text):
        raise PayloadError(what, f"{text!r} cannot be a topic level (1..256 characters, no '/', '+', '#')")
    return text


def manager_segment(manager_id: bytes) -> str:
    """A Manager ID as a topic level: its name, or 32 hex digits if the name has ``/+#``."""
    text = format_manager_id(manager_id)
    return manager_id.hex() if _FORBIDDEN & set(text) else text


def vsiid_segment(fmt: int, vsiid: bytes) -> str:
    text = format_vsiid(fmt, vsiid)
    return vsiid.hex() if _FORBIDDEN & set(text) else text


@dataclass(frozen=True, slots=True)
class StationTopics:
    host: str
    ifname: str

    def __post_init__(self) -> None:
        segment(self.host, "host")
        segment(self.ifname, "ifname")

    @property
    def base(self) -> str:
        return f"{ROOT}/station/{self.host}/{self.ifname}"

    @property
    def cmd(self) -> str:
        return f"{self.base}/cmd"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def event(self) -> str:
        return f"{self.base}/event"

    @property
    def error(self) -> str:
        return f"{self.base}/error"

    def reply(self, request_id: str) -> str:
        return f"{self.base}/reply/{request_id}"

    def vsi(self, vsiid: str) -> str:
        return f"{self.base}/vsi/{vsiid}"


@dataclass(frozen=True, slots=True)
class BridgeTopics:
    name: str

    def __post_init__(self) -> None:
        segment(self.name, "bridge name")

    @property
    def base(self) -> str:
        return f"{ROOT}/bridge/{self.name}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def event(self) -> str:
        return f"{self.base}/event"

    def port_vsi(self, ifname: str, vsiid: str) -> str:
        return f"{self.base}/port/{ifname}/vsi/{vsiid}"


@dataclass(frozen=True, slots=True)
class StationTopic:
    """A parsed ``evb/v1/station/{host}/{ifname}/{kind}[/{rest}]`` topic."""

    host: str
    ifname: str
    kind: str  #: cmd, reply, vsi, status, event, error
    rest: str = ""  #: request_id (reply) or VSIID (vsi)


def parse_station_topic(topic: str) -> StationTopic | None:
    parts = topic.split("/")
    if len(parts) < 6 or parts[:3] != ["evb", VERSION, "station"]:
        return None
    return StationTopic(parts[3], parts[4], parts[5], "/".join(parts[6:]))


def vtdb_topic(manager_id: bytes, type_id: int, version: int) -> str:
    return f"{VTDB}/{manager_segment(manager_id)}/{type_id}/{version}"


def parse_vtdb_topic(topic: str) -> tuple[bytes, int, int]:
    """(Manager ID, Type ID, Version) of ``evb/v1/vtdb/{manager_id}/{type_id}/{version}``."""
    parts = topic.split("/")
    if len(parts) != 6 or parts[:3] != ["evb", VERSION, "vtdb"]:
        raise PayloadError("topic", f"{topic!r} is not {VTDB}/MANAGER/TYPE_ID/VERSION")
    try:
        manager = manager_id_from_text(parts[3])
    except (EvbError, UnicodeError) as exc:
        raise PayloadError("topic.manager_id", f"{parts[3]!r}: {exc}") from None
    numbers = []
    for name, text, hi in (("type_id", parts[4], 0xFFFFFF), ("version", parts[5], 0xFF)):
        if not text.isdigit() or not 0 <= int(text) <= hi:
            raise PayloadError(f"topic.{name}", f"{text!r} is not a number 0..{hi}")
        numbers.append(int(text))
    return manager, numbers[0], numbers[1]


# --------------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class Command:
    request_id: str
    mode: str  #: a key of ``evb.control.MODES``
    hints: str
    vsi: Vsi
    args: dict[str, Any]  #: the ``vsi`` object as given (for the local API's ``vsi.request``)
    digest: str  #: of the command's content: a request_id reused for another command is refused


def json_object(payload: bytes | str, what: str = "payload") -> dict[str, Any]:
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeError) as exc:
        raise PayloadError("", f"{what} is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise PayloadError("", f"{what} must be a JSON object, not {type(doc).__name__}")
    return doc


def request_id_of(doc: dict[str, Any]) -> str:
    rid = doc.get("request_id")
    if not isinstance(rid, str) or not _REQUEST_ID.fullmatch(rid):
        raise PayloadError("request_id", f"{rid!r} must be a string of 1..128 letters, digits or ._:@=-")
    return rid


_VSI_TYPES: Final = {
    "manager_id": (str,),
    "type_id": (int,),
    "type_version": (int,),
    "uuid": (str,),
    "filters": (list,),
    "format": (str,),
}


def parse_command(payload: bytes | str) -> Command:
    """A command payload, checked field by field (``PayloadError`` names the first bad one)."""
    doc = json_object(payload)
    rid = request_id_of(doc)
    unknown = sorted(set(doc) - {"request_id", "mode", "hints", "vsi", "schema"})
    if unknown:
        raise PayloadError(unknown[0], "unknown field (known: request_id, mode, hints, vsi, schema)")
    if doc.get("schema", 1) != 1:
        raise PayloadError("schema", f"{doc['schema']!r}: only schema 1 is known")
    mode = doc.get("mode")
    if mode not in MODES:
        raise PayloadError("mode", f"{mode!r} must be one of {', '.join(MODES)}")
    hints = doc.get("hints", "none")
    if hints not in ("none", "to", "from"):
        raise PayloadError("hints", f"{hints!r} must be none, to or from")
    vsi_doc = doc.get("vsi")
    if not isinstance(vsi_doc, dict):
        raise PayloadError("vsi", "missing, or not an object")
    for key, types in _VSI_TYPES.items():
        if key not in vsi_doc:
            if key != "format":
                raise PayloadError(f"vsi.{key}", "missing")
            continue
        value = vsi_doc[key]
        if not isinstance(value, types) or isinstance(value, bool):
            raise PayloadError(f"vsi.{key}", f"{value!r} must be a {types[0].__name__}")
    extra = sorted(set(vsi_doc) - set(_VSI_TYPES))
    if extra:
        raise PayloadError(f"vsi.{extra[0]}", f"unknown field (known: {', '.join(_VSI_TYPES)})")
    try:
        vsi = vsi_from_args(vsi_doc)
    except ControlError as exc:
        raise PayloadError(f"vsi.{_field_of(exc.message)}", exc.message) from None
    canon = json.dumps({"mode": mode, "hints": hints, "vsi": vsi_doc}, sort_keys=True)
    digest = hashlib.sha256(canon.encode()).hexdigest()[:16]
    return Command(rid, mode, hints, vsi, dict(vsi_doc), digest)


def _field_of(message: str) -> str:
    """Which VSI field a ``vsi_from_args`` message is about."""
    for needle, name in (
        ("type id", "type_id"),
        ("type version", "type_version"),
        ("manager id", "manager_id"),
        ("--uuid", "uuid"),
        ("filter", "filters"),
        ("format", "format"),
    ):
        if needle in message:
            return name
    return "vsi"


def command_payload(request_id: str, mode: str, vsi: dict[str, Any], hints: str = "none") -> bytes:
    """What ``evb ctl`` publishes (``vsi`` as ``evb.control.vsi_json`` writes it)."""
    return json.dumps({"request_id": request_id, "mode": mode, "hints": hints, "vsi": vsi}).encode()


def reply_payload(
    request_id: str | None,
    *,
    result: Any = None,
    error: dict[str, Any] | None = None,
    duplicate: bool = False,
    at: float,
) -> bytes:
    doc: dict[str, Any] = {"request_id": request_id, "ok": error is None, "time": now_iso(at)}
    if error is None:
        doc["result"] = result
    else:
        doc["error"] = error
    if duplicate:
        doc["duplicate"] = True
    return json.dumps(doc).encode()


class RequestLog:
    """Idempotency by request_id: a command seen before is answered again, not executed again.

    ``begin(rid, digest)`` → ``"new"`` (execute it), ``"pending"`` (it runs: answer when it
    ends), ``"done"`` (answer with ``reply(rid)``) or ``"conflict"`` (the request_id was used for
    another command). The last ``size`` request_ids are remembered.
    """

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._log: OrderedDict[str, tuple[str, bytes | None]] = OrderedDict()

    def begin(self, rid: str, digest: str) -> str:
        seen = self._log.get(rid)
        if seen is None:
            self._log[rid] = (digest, None)
            while len(self._log) > self.size:
                self._log.popitem(last=False)
            return "new"
        self._log.move_to_end(rid)
        if seen[0] != digest:
            return "conflict"
        return "pending" if seen[1] is None else "done"

    def finish(self, rid: str, reply: bytes) -> None:
        seen = self._log.get(rid)
        if seen is not None:
            self._log[rid] = (seen[0], reply)

    def reply(self, rid: str) -> bytes | None:
        seen = self._log.get(rid)
        return None if seen is None else seen[1]

    def __len__(self) -> int:
        return len(self._log)

    def to_json(self) -> list[list[Any]]:
        """The finished entries, oldest first (persisted by the agent)."""
        return [[rid, d, r.decode()] for rid, (d, r) in self._log.items() if r is not None]

    def load(self, items: Any) -> None:
        if not isinstance(items, list):
            return
        for item in items[-self.size :]:
            if isinstance(item, list) and len(item) == 3 and all(isinstance(x, str) for x in item):
                self._log[item[0]] = (item[1], item[2].encode())
