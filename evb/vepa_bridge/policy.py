"""The emulated bridge's VSI type database (``policy.toml``): which VSIs a bridge port admits.

A station asks for a VSI by VSI Manager ID, VSI Type ID and Version, and filter entries
(vdp.md §3–§5). The database says, per manager and type, which VIDs, PCPs, MACs and group IDs
the VSI may use, which VID a wildcard (VID 0) entry gets, and how many entries it may have; per
port, how many VSIs the port takes. Pure: reading the file is the only I/O.

Format::

    [defaults]            # per port unless a [ports.NAME] table says otherwise
    max_vsis = 1000       # VSIs on one port (any mode); absent or 0: no limit
    max_reserved = 100    # VSIs in pre-associate-with-RR state on one port; absent or 0: no limit

    [ports.eth1]          # the same keys, for port eth1 (quote names with dots: [ports."eth1.100"])
    max_vsis = 10

    [[manager]]
    id = "labmgr"         # ASCII name (≤ 16) or UUID, as vdptool's mgrid2
    [[manager.type]]
    id = 5                # VSI Type ID, 0..2^24-1
    version = 4           # 0..255, or versions = [3, 4]
    vlans = [10, 20, "100-199"]   # allowed VIDs, 1..4094 (default any); ranges must not overlap
    assign_vid = 10       # the VID given to a wildcard (VID 0) entry, one of vlans; absent: wildcard refused
    pcp = [0, 1, 2]       # allowed PCP when PS is set (default any)
    max_entries = 4       # filter entries per VSI (default: as many as fit)
    macs = ["52:54:00:*", "02:00:00:00:01:*"]   # allowed MAC prefixes, or whole MACs (default any unicast)
    groups = [1001, 1002]                       # allowed group IDs (formats 3/4; default any)

Restrictions apply to what an entry carries: ``macs`` does not concern format 1 or 3 entries
(they have no MAC), ``groups`` does not concern formats 1 and 2. A mistake in the file is a
``PolicyError`` naming file, line and key: unknown tables or keys, wrong types, values out of
range, VIDs or ranges that overlap or are written backwards, ``assign_vid`` not in ``vlans``,
duplicate managers or types, bad MAC prefixes.

Decisions (``VsiTypeDatabase.decide``; status codes of vdp.md §4.3), in this order:

* unknown Manager ID → 3 "unable to contact VSI manager": the bridge has no VSI manager of that
  name to get the type from, which is what code 3 says;
* unknown Type ID/Version for that manager → 4 "other failure": the TLV is well formed (code 1
  is for malformed VSIIDs and filters, ``evb/vdp/validate.py``), the manager is known (3), the
  VIDs/MACs/group IDs are not at fault (5) and nothing ran out (2); the standard has no "unknown
  type" code, 4 is its catch-all;
* an entry's VID not in ``vlans``, PCP (PS set) not in ``pcp``, MAC multicast, zero or not
  matching ``macs``, group ID not in ``groups``, a wildcard VID without ``assign_vid`` → 5
  "invalid VID, GroupID or MAC address" (PCP is part of the PS/PCP/VID word, as in
  ``validate.py``);
* more entries than ``max_entries`` → 2 "insufficient resources";
* a new VSI on a port holding ``max_vsis`` VSIs, or a VSI entering pre-associate-with-RR on a
  port holding ``max_reserved`` such VSIs → 2.

An accepted wildcard entry is granted with ``assign_vid`` (PS and PCP as asked), which the
station then uses (vdp.md §5.3). Invalid values (3, 4, 5) are Hard: the same request gets the
same answer until the database changes; resource shortage (2) is not. A refusal of a request
for a VSI the port already holds in another mode keeps it (Keep) when it is a shortage (say, a
pre-associated VSI asking to reserve resources when the port's reservations are all taken stays
pre-associated); invalid values refuse the VSI itself, so they release it (no Keep). A new VSI
is refused without Keep (the answer is a De-Associate TLV, as lldpad's). The port limits are
checked only where a request adds a VSI or a reservation, so lowering them in a reload evicts
nothing.

The same checks read a document already parsed (``database_from_doc``: JSON, say; errors name
the source and the key path) and one type of a VSI type database entry (``vsi_type_from_entry``:
the MQTT ``evb/v1/vtdb/{manager_id}/{type_id}/{version}`` entries of ``evb.mqtt.vtdb``, whose
payload is a ``[[manager.type]]`` table without ``id`` and ``version``); ``vtdb_entries`` turns a
database into such entries (``evb ctl vtdb put policy.toml``). Port limits are not part of the
entries. A bridge whose ``--policy`` is an ``mqtt://`` URL (``is_mqtt_url``) follows the entries
the broker holds; until they have arrived it refuses requests with ``manager_unreachable``.

Use: ``BridgePort(config, now=t, policy=load_policy(path).policy_for("eth1"))``; to reload,
``port.set_policy(load_policy(path).policy_for("eth1"), now)``: every established VSI the new
database refuses (without Keep) gets an unsolicited De-Associate (``VdpBridge.set_policy``).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from evb.errors import EncodeError
from evb.settings import ConfigError
from evb.vdp.bridge import Decision, Policy, PolicyRequest
from evb.vdp.wire import FilterEntry, VdpMode, VdpStatusCode, format_manager_id, manager_id_from_text

MAX_LIMIT: Final = 10_000_000
MAX_ENTRIES: Final = 243  #: the most entries one association TLV carries (format 1, vdp.md §4.1)

_LIMIT_KEYS: Final = frozenset({"max_vsis", "max_reserved"})
_MANAGER_KEYS: Final = frozenset({"id", "type"})
_TYPE_KEYS: Final = frozenset(
    {"id", "version", "versions", "vlans", "assign_vid", "pcp", "max_entries", "macs", "groups"}
)
#: the keys of a VSI type database entry (MQTT ``evb/v1/vtdb/...``): a type's but its identity
ENTRY_KEYS: Final = _TYPE_KEYS - {"id", "version", "versions"}


class PolicyError(ConfigError):
    """A mistake in a policy file (file, line and key in the message)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PortLimits:
    """Per-port limits (0 = no limit)."""

    max_vsis: int = 0  #: VSIs on the port, any mode
    max_reserved: int = 0  #: VSIs in pre-associate-with-RR state on the port


@dataclass(frozen=True, slots=True, kw_only=True)
class VsiType:
    """What VSIs of one type (and one or more versions) may use; ``None`` = anything valid."""

    type_id: int
    versions: frozenset[int]
    vlans: frozenset[int] | None = None
    assign_vid: int | None = None  #: VID for a wildcard entry; None: wildcard refused
    pcp: frozenset[int] | None = None  #: allowed PCPs of entries with PS set
    max_entries: int = 0  #: 0 = as many as fit
    macs: tuple[bytes, ...] | None = None  #: allowed MAC prefixes (1..6 octets)
    groups: frozenset[int] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class VsiTypeDatabase:
    """The parsed policy: VSI types per Manager ID, and per-port limits."""

    #: Manager ID (16 octets) → (Type ID, Version) → type
    managers: Mapping[bytes, Mapping[tuple[int, int], VsiType]] = field(default_factory=dict)
    defaults: PortLimits = field(default_factory=PortLimits)
    ports: Mapping[str, PortLimits] = field(default_factory=dict)

    def limits(self, port: str) -> PortLimits:
        return self.ports.get(port, self.defaults)

    def policy_for(self, port: str) -> Policy:
        """The ``Policy`` of one bridge port (its limits; counts from ``PolicyRequest.port``)."""
        limits = self.limits(port)

        def policy(request: PolicyRequest) -> Decision:
            return self._decide(request, limits)

        return policy

    def decide(self, request: PolicyRequest, *, port: str = "") -> Decision:
        """The decision on ``request`` for the bridge port ``port`` (module docstring). Port limits
        are checked only when the request carries the port's counts (``request.port``)."""
        return self._decide(request, self.limits(port))

    def _decide(self, request: PolicyRequest, limits: PortLimits) -> Decision:
        tlv = request.tlv
        held = request.current is not None
        types = self.managers.get(request.manager_id)
        if types is None:
            return _invalid(
                VdpStatusCode.UNABLE_TO_CONTACT_VSI_MANAGER,
                f"unknown VSI manager {format_manager_id(request.manager_id)}",
            )
        vtype = types.get((tlv.type_id, tlv.type_version))
        if vtype is None:
            return _invalid(
                VdpStatusCode.OTHER_FAILURE,
                f"VSI type {tlv.type_id} version {tlv.type_version} unknown to manager "
                f"{format_manager_id(request.manager_id)}",
            )
        granted: list[FilterEntry] = []
        assigned = False
        for i, e in enumerate(tlv.entries):
            problem = _entry_problem(vtype, e)
            if problem:
                return _invalid(VdpStatusCode.INVALID_VID_GROUP_MAC, f"entry {i}: {problem}")
            if e.vid == 0 and vtype.assign_vid is not None:  # (None: refused above)
                e = replace(e, vid=vtype.assign_vid)
                assigned = True
            granted.append(e)
        if assigned:
            seen: dict[tuple[bytes | None, int, int | None], int] = {}
            for i, e in enumerate(granted):
                j = seen.setdefault((e.mac, e.vid, e.group_id), i)
                if j != i:
                    return _invalid(
                        VdpStatusCode.INVALID_VID_GROUP_MAC,
                        f"entry {i}: with VID {e.vid} assigned it repeats entry {j}",
                    )
        if vtype.max_entries and len(tlv.entries) > vtype.max_entries:
            return _short(held, f"{len(tlv.entries)} filter entries, type {tlv.type_id} allows {vtype.max_entries}")
        port = request.port
        if port is not None:
            if not held and limits.max_vsis and port.vsi_count() >= limits.max_vsis:
                return _short(held, f"port full (max_vsis = {limits.max_vsis})")
            rr = VdpMode.PREASSOC_RR
            reserving = tlv.mode is rr and request.current is not rr
            if reserving and limits.max_reserved and port.mode_count(rr) >= limits.max_reserved:
                return _short(held, f"port's reservations full (max_reserved = {limits.max_reserved})")
        return Decision.accept(tuple(granted) if assigned else None)


def is_mqtt_url(policy: str | None) -> bool:
    """Whether a ``--policy`` / ``[bridge] policy`` names a broker (the MQTT VSI type database,
    ``evb.mqtt.vtdb``) rather than a file."""
    return bool(policy) and str(policy).startswith(("mqtt://", "mqtts://"))


def manager_unreachable(reason: str) -> Policy:
    """Refuse every request with 3 "unable to contact VSI manager", not Hard (it may work later),
    Keep for a VSI the port holds: the policy of a bridge whose VSI type database has not arrived."""

    def policy(request: PolicyRequest) -> Decision:
        return Decision.reject(
            VdpStatusCode.UNABLE_TO_CONTACT_VSI_MANAGER, keep=request.current is not None, reason=reason
        )

    return policy


def _invalid(code: int, reason: str) -> Decision:
    return Decision.reject(code, hard=True, reason=reason)


def _short(held: bool, reason: str) -> Decision:
    return Decision.reject(VdpStatusCode.INSUFFICIENT_RESOURCES, keep=held, reason=reason)


def _entry_problem(t: VsiType, e: FilterEntry) -> str | None:
    if e.vid == 0:
        if t.assign_vid is None:
            return "wildcard VID 0 refused (the type has no assign_vid)"
    elif not 1 <= e.vid <= 4094 or (t.vlans is not None and e.vid not in t.vlans):
        return f"VID {e.vid} not allowed"
    if e.ps and t.pcp is not None and e.pcp not in t.pcp:
        return f"PCP {e.pcp} not allowed"
    if e.mac is not None:
        if len(e.mac) != 6 or e.mac[0] & 0x01 or e.mac == bytes(6):
            return f"MAC {e.mac.hex(':')} is not a unicast address"
        if t.macs is not None and not any(e.mac.startswith(p) for p in t.macs):
            return f"MAC {e.mac.hex(':')} not allowed"
    if e.group_id is not None and t.groups is not None and e.group_id not in t.groups:
        return f"group ID {e.group_id} not allowed"
    return None


# ---------------------------------------------------------------------------------------------- loading


def load_policy(path: str | Path) -> VsiTypeDatabase:
    """Read and check a ``policy.toml``; ``PolicyError`` names file, line and key of a mistake."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise PolicyError(p, "", f"cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise PolicyError(p, "", f"not UTF-8 text ({exc.reason})") from None
    return parse_policy(text, path=p)


def parse_policy(text: str, *, path: str | Path | None = None) -> VsiTypeDatabase:
    """``load_policy`` on text already read (``path`` only names it in errors)."""
    return _Loader.from_text(text, path).database()


def database_from_doc(doc: Mapping[str, Any], *, source: str) -> VsiTypeDatabase:
    """The database of a policy document already parsed (JSON, a TOML table): the shape and the
    checks of ``policy.toml``; a ``PolicyError`` names ``source`` and the key path
    (``manager[0].type[1].vlans``), without a line."""
    return _Loader(doc, source).database()


def vsi_type_from_entry(entry: Mapping[str, Any], type_id: int, version: int, *, source: str) -> VsiType:
    """One VSI type of version ``version`` from a VSI type database entry: a table with the keys
    ``ENTRY_KEYS`` (those of a ``[[manager.type]]`` table but ``id`` and ``version(s)``, which the
    MQTT topic carries). ``PolicyError`` names ``source`` and the key (``vlans``)."""
    for key in entry:
        if key not in ENTRY_KEYS:
            known = ", ".join(sorted(ENTRY_KEYS))
            hint = " (id and version are in the topic)" if key in ("id", "version", "versions") else ""
            raise PolicyError(source, str(key), f"unknown key{hint} (known: {known})")
    return _Loader({}, source).vsi_type({**entry, "id": type_id, "version": version}, ())


def vtdb_entries(db: VsiTypeDatabase) -> dict[tuple[bytes, int, int], dict[str, Any]]:
    """The VSI type database entries of ``db``, one per (Manager ID, Type ID, Version): JSON-ready
    tables in ``policy.toml`` notation with only the ``ENTRY_KEYS`` (VID runs as ``"lo-hi"``, MAC
    prefixes as ``"52:54:00:*"``; a key that allows anything is left out).
    ``vsi_type_from_entry(entry, type_id, version, ...)`` gives the type back. The per-port
    limits (``db.defaults``, ``db.ports``) are not part of any entry: they are not distributed."""
    out: dict[tuple[bytes, int, int], dict[str, Any]] = {}
    for mid, types in db.managers.items():
        for (type_id, version), t in sorted(types.items()):
            entry: dict[str, Any] = {}
            if t.vlans is not None:
                entry["vlans"] = _vlan_items(t.vlans)
            if t.assign_vid is not None:
                entry["assign_vid"] = t.assign_vid
            if t.pcp is not None:
                entry["pcp"] = sorted(t.pcp)
            if t.max_entries:
                entry["max_entries"] = t.max_entries
            if t.macs is not None:
                entry["macs"] = [m.hex(":") if len(m) == 6 else m.hex(":") + ":*" for m in t.macs]
            if t.groups is not None:
                entry["groups"] = sorted(t.groups)
            out[(mid, type_id, version)] = entry
    return out


def _vlan_items(vids: frozenset[int]) -> list[int | str]:
    """Sorted VIDs with runs written as ``"lo-hi"`` ranges (single VIDs as numbers)."""
    items: list[int | str] = []
    ordered = sorted(vids)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        items.append(ordered[i] if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return items


TablePath = tuple[str | int, ...]  #: ("manager", 0, "type", 1): the second type of the first manager


def _dotted(tpath: TablePath, key: str = "") -> str:
    out = ""
    for part in (*tpath, key) if key else tpath:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f'"{part}"'  # [ports."eth1.100"]
            out += f".{name}" if out else name
    return out


_HEADER = re.compile(r"^\s*(\[\[?)\s*(.*?)\s*\]\]?\s*(#.*)?$")
_KEY_PART = re.compile(r'\s*("(?:[^"\\]|\\.)*"|\'[^\']*\'|[A-Za-z0-9_-]+)\s*(\.|$)')


def _split_key(dotted: str) -> list[str] | None:
    parts: list[str] = []
    pos = 0
    while pos < len(dotted):
        m = _KEY_PART.match(dotted, pos)
        if m is None:
            return None
        token = m.group(1)
        parts.append(token[1:-1] if token[0] in "\"'" else token)
        pos = m.end()
    return parts


class _Lines:
    """Where tables and keys are in the text: array-of-tables headers are counted, so
    ``("manager", 1, "type", 0)`` is the first ``[[manager.type]]`` after the second ``[[manager]]``."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.blocks: list[tuple[TablePath, int]] = [((), 1)]  #: (table, line of its header)
        arrays: dict[TablePath, int] = {}
        for n, line in enumerate(self.lines, 1):
            m = _HEADER.match(line)
            if m is None:
                continue
            names = _split_key(m.group(2))
            if not names:
                continue
            path: TablePath = ()
            for name in names[:-1]:
                path += (name,)
                if path in arrays:
                    path += (arrays[path],)
            path += (names[-1],)
            if m.group(1) == "[[":
                arrays[path] = arrays.get(path, -1) + 1
                path += (arrays[path],)
            self.blocks.append((path, n))

    def of(self, tpath: TablePath, key: str | None = None) -> int | None:
        """The line of ``key`` in table ``tpath`` (of the table's header if ``key`` is None or not there)."""
        for i, (path, start) in enumerate(self.blocks):
            if path != tpath:
                continue
            if key is not None:
                end = self.blocks[i + 1][1] - 1 if i + 1 < len(self.blocks) else len(self.lines)
                k = re.escape(key)
                pattern = re.compile(rf"""\s*(?:{k}|"{k}"|'{k}')\s*=""")
                for n in range(start, end + 1):
                    if pattern.match(self.lines[n - 1]):
                        return n
                for sub, n in self.blocks:  # a sub-table: [ports.eth1] for key "eth1" of "ports"
                    if sub[: len(tpath) + 1] == (*tpath, key):
                        return n
            return start if tpath else None
        # no header: a table given inline (manager = [{...}]) or only through sub-tables ([ports.x])
        for sub, n in self.blocks:
            if len(sub) > len(tpath) and sub[: len(tpath)] == tpath and key is None:
                return n
        for cut in range(len(tpath) - 1, -1, -1):
            part = tpath[cut]
            if isinstance(part, str):
                return self.of(tpath[:cut], part)
        return None


class _Loader:
    """The checks of a policy document; ``where`` finds the lines of a text (None: a document
    that has no text, JSON from the broker, whose errors name the key path only)."""

    def __init__(self, doc: Mapping[str, Any], path: str | Path | None, where: _Lines | None = None) -> None:
        self.path = path
        self.doc = doc
        self.where = where

    @classmethod
    def from_text(cls, text: str, path: str | Path | None) -> _Loader:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"line (\d+)", str(exc))
            raise PolicyError(path, "", f"not valid TOML ({exc})", int(m.group(1)) if m else None) from None
        return cls(doc, path, _Lines(text))

    # ------------------------------------------------------------------ typed access

    def error(self, tpath: TablePath, key: str | None, message: str) -> PolicyError:
        line = self.where.of(tpath, key) if self.where is not None else None
        return PolicyError(self.path, _dotted(tpath, key or ""), message, line)

    def table(self, value: Any, tpath: TablePath, known: frozenset[str]) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.error(tpath, None, f"must be a table, not {value!r}")
        for key in value:
            if key not in known:
                raise self.error(tpath, key, f"unknown key (known: {', '.join(sorted(known))})")
        return value

    def tables(self, value: Any, tpath: TablePath, what: str) -> list[Any]:
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(tpath, None, f"must be an array of tables ([[{what}]])")
        return value

    def integer(self, t: Mapping[str, Any], tpath: TablePath, key: str, lo: int, hi: int) -> int:
        value = t[key]
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(tpath, key, f"must be an integer, not {value!r}")
        if not lo <= value <= hi:
            raise self.error(tpath, key, f"{value} is outside {lo}..{hi}")
        return value

    def items(self, t: Mapping[str, Any], tpath: TablePath, key: str) -> list[Any]:
        value = t[key]
        if not isinstance(value, list):
            raise self.error(tpath, key, f"must be an array, not {value!r}")
        if not value:
            raise self.error(tpath, key, "is empty, so nothing would be allowed (leave it out to allow any)")
        return value

    def int_set(self, t: Mapping[str, Any], tpath: TablePath, key: str, lo: int, hi: int) -> frozenset[int]:
        out: set[int] = set()
        for i, v in enumerate(self.items(t, tpath, key)):
            if not isinstance(v, int) or isinstance(v, bool):
                raise self.error(tpath, key, f"element {i}: must be an integer, not {v!r}")
            if not lo <= v <= hi:
                raise self.error(tpath, key, f"element {i}: {v} is outside {lo}..{hi}")
            if v in out:
                raise self.error(tpath, key, f"element {i}: {v} is given twice")
            out.add(v)
        return frozenset(out)

    # ------------------------------------------------------------------ the document

    def database(self) -> VsiTypeDatabase:
        for name in self.doc:
            if name not in ("defaults", "ports", "manager"):
                raise self.error((), name, "unknown table (known: defaults, manager, ports)")
        defaults = self.limits(self.doc.get("defaults", {}), ("defaults",), PortLimits())
        ports: dict[str, PortLimits] = {}
        raw_ports = self.doc.get("ports", {})
        if not isinstance(raw_ports, dict):
            raise self.error((), "ports", "must be a table of [ports.NAME] tables")
        for name, value in raw_ports.items():
            ports[name] = self.limits(value, ("ports", name), defaults)
        managers: dict[bytes, dict[tuple[int, int], VsiType]] = {}
        first: dict[bytes, int] = {}
        for i, raw in enumerate(self.tables(self.doc.get("manager", []), ("manager",), "manager")):
            tpath: TablePath = ("manager", i)
            m = self.table(raw, tpath, _MANAGER_KEYS)
            if "id" not in m:
                raise self.error(tpath, None, 'has no id (id = "name" or a UUID)')
            mid = self.manager_id(m, tpath)
            if mid in first:
                raise self.error(tpath, "id", f"manager {m['id']!r} is defined twice (also manager[{first[mid]}])")
            first[mid] = i
            managers[mid] = self.types(m.get("type", []), tpath)
        return VsiTypeDatabase(managers=managers, defaults=defaults, ports=ports)

    def limits(self, value: Any, tpath: TablePath, base: PortLimits) -> PortLimits:
        t = self.table(value, tpath, _LIMIT_KEYS)
        return PortLimits(
            max_vsis=self.integer(t, tpath, "max_vsis", 0, MAX_LIMIT) if "max_vsis" in t else base.max_vsis,
            max_reserved=self.integer(t, tpath, "max_reserved", 0, MAX_LIMIT)
            if "max_reserved" in t
            else base.max_reserved,
        )

    def manager_id(self, m: Mapping[str, Any], tpath: TablePath) -> bytes:
        text = m["id"]
        if not isinstance(text, str):
            raise self.error(tpath, "id", f"must be a string, not {text!r}")
        try:
            return manager_id_from_text(text)
        except (EncodeError, UnicodeEncodeError):
            raise self.error(tpath, "id", f"{text!r} is neither an ASCII name of 1..16 characters nor a UUID") from None

    def types(self, value: Any, mpath: TablePath) -> dict[tuple[int, int], VsiType]:
        out: dict[tuple[int, int], VsiType] = {}
        where: dict[tuple[int, int], int] = {}
        for j, raw in enumerate(self.tables(value, (*mpath, "type"), f"{_dotted(mpath[:1])}.type")):
            tpath: TablePath = (*mpath, "type", j)
            vtype = self.vsi_type(self.table(raw, tpath, _TYPE_KEYS), tpath)
            for version in sorted(vtype.versions):
                key = (vtype.type_id, version)
                if key in where:
                    also = _dotted((*mpath, "type", where[key]))
                    vkey = "version" if "version" in raw else "versions"
                    raise self.error(
                        tpath, vkey, f"type {vtype.type_id} version {version} is defined twice (also {also})"
                    )
                where[key] = j
                out[key] = vtype
        return out

    def vsi_type(self, t: Mapping[str, Any], tpath: TablePath) -> VsiType:
        if "id" not in t:
            raise self.error(tpath, None, "has no id (the VSI Type ID)")
        type_id = self.integer(t, tpath, "id", 0, 0xFFFFFF)
        if ("version" in t) == ("versions" in t):
            raise self.error(tpath, "versions" if "versions" in t else None, "needs exactly one of version, versions")
        if "version" in t:
            versions = frozenset({self.integer(t, tpath, "version", 0, 255)})
        else:
            versions = self.int_set(t, tpath, "versions", 0, 255)
        vlans = self.vlans(t, tpath) if "vlans" in t else None
        assign_vid = None
        if "assign_vid" in t:
            assign_vid = self.integer(t, tpath, "assign_vid", 1, 4094)
            if vlans is not None and assign_vid not in vlans:
                raise self.error(tpath, "assign_vid", f"{assign_vid} is not one of the type's vlans")
        return VsiType(
            type_id=type_id,
            versions=versions,
            vlans=vlans,
            assign_vid=assign_vid,
            pcp=self.int_set(t, tpath, "pcp", 0, 7) if "pcp" in t else None,
            max_entries=self.integer(t, tpath, "max_entries", 1, MAX_ENTRIES) if "max_entries" in t else 0,
            macs=self.macs(t, tpath) if "macs" in t else None,
            groups=self.int_set(t, tpath, "groups", 1, 0xFFFFFFFF) if "groups" in t else None,
        )

    def vlans(self, t: Mapping[str, Any], tpath: TablePath) -> frozenset[int]:
        """VIDs and ``"lo-hi"`` ranges, 1..4094, none overlapping another."""
        spans: list[tuple[int, int, int]] = []  # (lo, hi, element index)
        for i, v in enumerate(self.items(t, tpath, "vlans")):
            if isinstance(v, int) and not isinstance(v, bool):
                lo = hi = v
            elif isinstance(v, str) and (m := re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", v)):
                lo, hi = int(m.group(1)), int(m.group(2))
                if lo > hi:
                    raise self.error(tpath, "vlans", f"element {i}: range {v!r} is written backwards ({hi}-{lo})")
            else:
                raise self.error(tpath, "vlans", f'element {i}: {v!r} is neither a VID nor a range "lo-hi"')
            if lo < 1 or hi > 4094:
                raise self.error(tpath, "vlans", f"element {i}: {v!r} is outside 1..4094")
            for lo2, hi2, k in spans:
                if lo <= hi2 and lo2 <= hi:
                    raise self.error(tpath, "vlans", f"element {i}: {v!r} overlaps element {k} ({_span(lo2, hi2)})")
            spans.append((lo, hi, i))
        return frozenset(vid for lo, hi, _ in spans for vid in range(lo, hi + 1))

    def macs(self, t: Mapping[str, Any], tpath: TablePath) -> tuple[bytes, ...]:
        out: list[bytes] = []
        for i, v in enumerate(self.items(t, tpath, "macs")):
            if not isinstance(v, str):
                raise self.error(tpath, "macs", f"element {i}: must be a string, not {v!r}")
            prefix = _mac_prefix(v)
            if isinstance(prefix, str):
                raise self.error(tpath, "macs", f"element {i}: {v!r}: {prefix}")
            if prefix in out:
                raise self.error(tpath, "macs", f"element {i}: {v!r} is given twice")
            out.append(prefix)
        return tuple(out)


def _span(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}-{hi}"


def _mac_prefix(text: str) -> bytes | str:
    """``"52:54:00:*"`` → its octets; a whole MAC (6 octets, no ``*``) → itself; else what is wrong."""
    s = text.strip().lower()
    wildcard = s.endswith(("*",))
    body = s[:-1].rstrip(":-") if wildcard else s
    if wildcard and not s[:-1].endswith((":", "-")):
        return 'a prefix is octets then ":*", e.g. "52:54:00:*"'
    if not body:
        return "a prefix needs at least one octet (leave macs out to allow any unicast MAC)"
    octets = re.split(r"[:-]", body)
    if not all(re.fullmatch(r"[0-9a-f]{2}", o) for o in octets):
        return 'octets are two hex digits separated by ":", e.g. "52:54:00:*"'
    if wildcard and len(octets) > 5:
        return "a prefix has at most 5 octets (give a whole MAC without *)"
    if not wildcard and len(octets) != 6:
        return f'{len(octets)} octets: a whole MAC has 6, a prefix ends with ":*"'
    raw = bytes(int(o, 16) for o in octets)
    if raw[0] & 0x01:
        return "a group (multicast) address: only unicast MACs can be allowed"
    if not wildcard and raw == bytes(6):
        return "the all-zero MAC is not a valid address"
    return raw
