"""The ``kernel`` data plane: a Linux bridge and an nftables ``netdev`` table, driven with ``ip``/``bridge``/``nft``.

What it builds (names configurable; defaults ``evbbr0`` and table ``evb``):

* a Linux bridge, STP off, IPv6 off on the bridge device (it must not talk itself), enslaving
  every station-facing port. ``hairpin on`` is set on a port exactly while EVB negotiated
  reflective relay on it (``port_up(..., reflective_relay=True)``), off otherwise;
* table ``netdev evb`` with, per port *i*, an ``ingress`` chain bound to that port (so no key
  needs the interface name) and sets holding exactly the associated VSIs' filter entries on it:

  ``allowed_i``     MAC . TPID . VID           tagged frames, formats 2/4 (MAC + VID); a verdict
                    (``@ll,48,80``)            map (element → accept)
  ``untagged_i``    ``ether saddr``            the same entries whose VID is the port's default
                                               VID: an untagged frame counts as that VID
  ``vids_i``        TPID . VID (``@ll,96,32``) formats 1/3 (no MAC): any source MAC on that VID
                                               is the VSI's (the VSI is the VLAN)
  ``untagged_vids`` ``iifname``                formats 1/3 whose VID is the default VID (one
                                               set for all ports: a port is in it or not)

  Each has a ``held_`` twin (a set) for pre-associated VSIs. ``allowed`` and ``vids`` are keyed
  by raw link-layer octets, one load for the whole key, masked to leave the TCI's priority and
  DEI bits out (``TAGGED_SOURCE``, ``TAGGED_VID``); the TPID in the key (0x8100) is the
  "tagged" test ``ether saddr . vlan id`` would make with three more expressions (plus the
  interface-type check nft adds to every ``ether``/``vlan`` match). Their elements are written
  as hex integers (``raw_element``). A filter VID of 0 ("bridge, choose", left unchosen) is
  taken as the default VID. Group IDs (formats 3/4) play no part in forwarding. The default
  VID is 1 (``default_vid``), the VID of an unconfigured Linux bridge / IEEE 802.1Q PVID.
* chain ``in_i`` (netdev ingress of port *i*, before the bridge sees the frame): link-local
  frames (destination 01:80:C2:00:00:00-0F) are dropped (counted ``control``): a Linux bridge
  with STP off would flood 01:80:C2:00:00:00, and none of them may be relayed. The test is two
  raw compares (first five octets, then the last one's high nibble), so an ordinary frame
  costs one load and one compare there. Link-local frames still reach the control plane's
  AF_PACKET sockets (``ETH_P_ALL`` taps run before the ingress hook). Then a frame whose key is
  in a set is accepted; a frame of a pre-associated VSI is counted on its ``held_`` entry;
  anything else is dropped and counted (``dropped``). The kernel has already taken the 802.1Q
  tag off into the packet's metadata here; nft rebuilds it for the raw loads.
* with ``forward_counters`` (the default): every frame past the link-local test gets packet
  mark ``MARK_BASE + i`` (those not admitted are dropped anyway), and chain ``out_j`` (netdev
  egress of port *j*) counts admitted frames by that mark:
  ``reflected`` on port *i* when it leaves by the port it came in (hairpin), ``forwarded`` on
  port *i* when it leaves by another. A flooded frame is counted once per egress port. The
  mark belongs to the data plane on station ports. Without ``forward_counters`` there are no
  marks and no egress chains (``bench/dataplane.py`` measures both: on this 2-vCPU machine
  with 100,000 VSIs about 0.81× the bare bridge with them, 0.87-0.91× without, README) and a
  port counts only ``passed`` (admitted: the sum of its entries' counters), ``dropped`` and
  ``control``.

Why netdev and not the bridge family: the same admission lookup in the bridge ``prerouting``
hook, plus the forward hook the bridge family needs for the hairpin counters, costs about
twice as much per frame (measured with ``bench/dataplane.py``, README).

Sets are programmed incrementally: one ``nft -f -`` transaction per call, or per
``batch()`` block / ``defer()``..``flush()`` for many VSIs at once (the bridge agent defers
the changes of one event-loop turn, e.g. the VSIs of one ECPDU, and flushes them in the
next), adding/deleting only elements whose reference count (entries shared by several VSIs)
changes. ``start()`` removes a stale bridge/table of the same names first (after a crash),
``close()`` removes both. Commands run synchronously (``nft`` takes a
few milliseconds); the counters are read with ``nft -j``.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from evb.vdp.events import VsiKey
from evb.vdp.wire import FilterEntry, VdpMode

Runner = Callable[[list[str], str | None], str]
#: destination 01:80:C2:00:00:00-0F, as two raw tests: the first five octets (one load and one
#: compare, where an ordinary frame already fails), then the last octet's high nibble
LINK_LOCAL = "@ll,0,40 == 0x0180c20000 @ll,40,8 & 0xf0 == 0x0"
#: source MAC . TPID 0x8100 . VID in one 10-octet load, the TCI's priority and DEI bits masked
#: off (nft rebuilds the tag the kernel took into the packet's metadata)
TAGGED_SOURCE = "@ll,48,80 & 0xffffffffffffffff0fff"
TAGGED_VID = "@ll,96,32 & 0xffff0fff"  #: TPID 0x8100 . VID, likewise
COUNTERS = ("forwarded", "reflected", "dropped", "control")
MARK_BASE = 0x45560000  #: packet mark of a frame admitted on port i: MARK_BASE + i ("EV")
SETS = {  #: admission sets (per port but ``untagged_vids``) and their keys; each has a ``held_`` twin
    "allowed": "@ll,48,80",
    "untagged": "ether saddr",
    "vids": "@ll,96,32",
    "untagged_vids": "iifname",
}
SHARED = "untagged_vids"
VERDICT_MAP = "allowed"  #: not a set but a verdict map (element → accept): one expression less per frame
RAW = ("allowed", "vids")  #: sets keyed by raw link-layer octets (elements written as hex integers)
TPID = 0x8100
Element = tuple[str, str]  #: (set name, nft element text)


class DataPlaneError(RuntimeError):
    """A command of the kernel data plane failed."""


def run_command(cmd: list[str], stdin: str | None = None) -> str:
    """Run ``cmd`` (with ``stdin`` as input); its output, or ``DataPlaneError``."""
    try:
        res = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DataPlaneError(f"{' '.join(cmd)}: {exc}") from None
    if res.returncode != 0:
        raise DataPlaneError(f"{' '.join(cmd)}: exit {res.returncode}: {(res.stderr or res.stdout).strip()}")
    return res.stdout


def _mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def _logical(name: str) -> str:
    """The logical set of nft set ``name``: ``held_allowed_1`` → ``allowed``."""
    name = name.removeprefix("held_")
    return name if name == SHARED else name.rpartition("_")[0]


def raw_element(mac: bytes | None, vid: int) -> str:
    """The element of a raw-keyed set: ``allowed`` (MAC . TPID . VID) or, without ``mac``,
    ``vids`` (TPID . VID), as nft prints it (hex, no leading zeros)."""
    value = (TPID << 16) | vid
    return hex(int.from_bytes(mac, "big") << 32 | value if mac is not None else value)


def decode_raw(text: str) -> str:
    """``raw_element``'s text back as ``mac/vid`` (``allowed``) or ``vid`` (``vids``)."""
    n = int(text, 16)
    vid = n & 0xFFF
    return f"{_mac((n >> 32).to_bytes(6, 'big'))}/{vid}" if n >> 32 else str(vid)


class KernelDataPlane:
    """VEPA forwarding in the kernel: bridge + nftables source filter (see the module docstring)."""

    kind = "kernel"

    def __init__(
        self,
        ports: Sequence[str],
        *,
        bridge: str = "evbbr0",
        table: str = "evb",
        default_vid: int = 1,
        forward_counters: bool = True,
        runner: Runner = run_command,
    ) -> None:
        if not 1 <= default_vid <= 4094:
            raise ValueError(f"default VID must be 1..4094, not {default_vid}")
        self.ports = tuple(ports)
        self.bridge = bridge
        self.table = table
        self.default_vid = default_vid
        self.forward_counters = forward_counters
        self._run = runner
        self._index = {name: i for i, name in enumerate(self.ports)}
        self.rr: dict[str, bool] = {}  #: ports EVB is up on, with hairpin state
        self.vsis: dict[tuple[str, VsiKey], frozenset[Element]] = {}
        self._refs: Counter[Element] = Counter()
        self._pending: list[tuple[str, str, str]] | None = None  #: (add|delete, set, element) to send
        self.started = False

    # ------------------------------------------------------------------ life cycle

    def _cmd(self, *args: str) -> str:
        return self._run(list(args), None)

    def _nft(self, script: str) -> None:
        self._run(["nft", "-f", "-"], script)

    def cleanup_table(self) -> None:
        """Remove our nft table if it exists (also an older version's bridge-family one)."""
        for family in ("netdev", "bridge"):
            with contextlib.suppress(DataPlaneError):
                self._cmd("nft", "delete", "table", family, self.table)

    def cleanup(self) -> None:
        """Remove our table and bridge if they exist (a crashed run's leftovers); no error if not."""
        self.cleanup_table()
        with contextlib.suppress(DataPlaneError):
            self._cmd("ip", "link", "del", "dev", self.bridge)

    def start(self) -> None:
        self.cleanup()
        br = self.bridge
        self._cmd("ip", "link", "add", "name", br, "type", "bridge", "stp_state", "0")
        with contextlib.suppress(OSError), open(f"/proc/sys/net/ipv6/conf/{br}/disable_ipv6", "w") as f:
            f.write("1")
        for port in self.ports:
            self._cmd("ip", "link", "set", "dev", port, "master", br)
            self._cmd("bridge", "link", "set", "dev", port, "hairpin", "off")
            self._cmd("ip", "link", "set", "dev", port, "up")
        self._cmd("ip", "link", "set", "dev", br, "up")
        self._nft(self._table_script())
        self.started = True

    def close(self) -> None:
        self.cleanup()
        self.started = False
        self.rr.clear()
        self.vsis.clear()
        self._refs.clear()

    def counter_name(self, ifname: str, what: str) -> str:
        return f"p{self._index[ifname]}_{what}"

    def set_name(self, name: str, ifname: str) -> str:
        """The nft set of logical set ``name`` (``allowed``, ``held_vids``, ...) on port ``ifname``."""
        return name if name.endswith(SHARED) else f"{name}_{self._index[ifname]}"

    def _table_script(self) -> str:
        lines = [f"table netdev {self.table} {{"]
        counters = COUNTERS if self.forward_counters else ("dropped", "control")
        for port in self.ports:
            lines += [f"  counter {self.counter_name(port, what)} {{ }}" for what in counters]
        for name, key in SETS.items():
            for held in ("", "held_"):
                for port in [self.ports[0]] if name == SHARED else self.ports:
                    if name == VERDICT_MAP and not held:
                        lines.append(f"  map {self.set_name(name, port)} {{ typeof {key} : verdict ; counter ; }}")
                    else:
                        lines.append(f"  set {self.set_name(held + name, port)} {{ typeof {key} ; counter ; }}")
        for i, port in enumerate(self.ports):
            s = {name: f"@{self.set_name(name, port)}" for n in SETS for name in (n, "held_" + n)}
            lines += [
                f"  chain in_{i} {{",
                f"    type filter hook ingress device {json.dumps(port)} priority 0; policy accept;",
                f"    {LINK_LOCAL} counter name {self.counter_name(port, 'control')} drop",
            ]
            if self.forward_counters:  # on every frame past here: those not admitted are dropped
                lines.append(f"    meta mark set {MARK_BASE + i:#x}")
            lines += [
                f"    {TAGGED_SOURCE} vmap {s['allowed']}",
                f"    {TAGGED_VID} {s['vids']} accept",
                f"    ether type != 8021q ether saddr {s['untagged']} accept",
                f"    ether type != 8021q iifname {s['untagged_vids']} accept",
                # a frame of a VSI that is only pre-associated: counted on that VSI's entry, then dropped
                f"    {TAGGED_SOURCE} {s['held_allowed']}",
                f"    {TAGGED_VID} {s['held_vids']}",
                f"    ether type != 8021q ether saddr {s['held_untagged']}",
                f"    ether type != 8021q iifname {s['held_untagged_vids']}",
                f"    counter name {self.counter_name(port, 'dropped')} drop",
                "  }",
            ]
        if self.forward_counters:
            for j, out in enumerate(self.ports):
                pairs = ", ".join(
                    f'{MARK_BASE + i:#x} : "{self.counter_name(p, "reflected" if p == out else "forwarded")}"'
                    for i, p in enumerate(self.ports)
                )
                lines += [
                    f"  chain out_{j} {{",
                    f"    type filter hook egress device {json.dumps(out)} priority 0; policy accept;",
                    f"    counter name meta mark map {{ {pairs} }}",
                    "  }",
                ]
        lines.append("}")
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ DataPlane

    def port_up(self, ifname: str, *, reflective_relay: bool) -> None:
        self._cmd("bridge", "link", "set", "dev", ifname, "hairpin", "on" if reflective_relay else "off")
        self.rr[ifname] = reflective_relay

    def port_down(self, ifname: str) -> None:
        """EVB lost: hairpin off, and the port's VSIs go (the station is gone)."""
        if ifname in self._index:
            self._cmd("bridge", "link", "set", "dev", ifname, "hairpin", "off")
        self.rr.pop(ifname, None)
        with self.batch():
            for port, key in [k for k in self.vsis if k[0] == ifname]:
                self.deassociate(port, key)

    def associate(self, ifname: str, key: VsiKey, mode: VdpMode, entries: tuple[FilterEntry, ...]) -> None:
        """Program the VSI's entries (replacing what it had: a re-associate may change them): into
        the admission sets if ``mode`` is Associate, else into their ``held_`` twins (a
        pre-associated VSI's frames are dropped, and counted on it)."""
        prefix = "" if mode == VdpMode.ASSOC else "held_"
        new = frozenset((self.set_name(prefix + s, ifname), text) for s, text in self._elements(ifname, entries))
        old = self.vsis.get((ifname, key), frozenset())
        self.vsis[(ifname, key)] = new
        self._apply(add=new - old, remove=old - new)

    def deassociate(self, ifname: str, key: VsiKey) -> None:
        old = self.vsis.pop((ifname, key), None)
        if old:
            self._apply(add=frozenset(), remove=old)

    # ------------------------------------------------------------------ sets

    def _elements(self, ifname: str, entries: tuple[FilterEntry, ...]) -> Iterator[Element]:
        """(logical set, element text) of each entry on ``ifname``."""
        for e in entries:
            vid = e.vid or self.default_vid
            if e.mac is not None:
                yield ("allowed", raw_element(e.mac, vid))
                if vid == self.default_vid:
                    yield ("untagged", _mac(e.mac))
            else:
                yield ("vids", raw_element(None, vid))
                if vid == self.default_vid:
                    yield ("untagged_vids", json.dumps(ifname))  # a quoted nft string

    def _apply(self, *, add: frozenset[Element], remove: frozenset[Element]) -> None:
        ops = []
        for el in sorted(remove):
            self._refs[el] -= 1
            if self._refs[el] <= 0:
                del self._refs[el]
                ops.append(("delete", *el))
        for el in sorted(add):
            self._refs[el] += 1
            if self._refs[el] == 1:
                ops.append(("add", *el))
        if not ops:
            return
        if self._pending is not None:
            self._pending += ops
        else:
            self._nft(self._script(ops))

    def _script(self, ops: list[tuple[str, str, str]]) -> str:
        """One ``add|delete element`` command per run of the same operation on the same set (up
        to 1,000 elements each: nft parses a list far faster than as many commands)."""
        lines = []
        i = 0
        while i < len(ops):
            op, name = ops[i][0], ops[i][1]
            j = i + 1
            while j < len(ops) and j - i < 1000 and ops[j][0] == op and ops[j][1] == name:
                j += 1
            verdict = " : accept" if op == "add" and _logical(name) == VERDICT_MAP and "held_" not in name else ""
            items = ", ".join(o[2] + verdict for o in ops[i:j])
            lines.append(f"{op} element netdev {self.table} {name} {{ {items} }}")
            i = j
        return "\n".join(lines) + "\n"

    def defer(self) -> bool:
        """From now on collect set changes until ``flush()``; False if already collecting."""
        if self._pending is not None:
            return False
        self._pending = []
        return True

    def flush(self) -> None:
        """Send the collected set changes as one ``nft -f -`` transaction, and stop collecting."""
        ops, self._pending = self._pending, None
        if ops:
            self._nft(self._script(ops))

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Collect the set changes made inside the block into one ``nft -f -`` transaction."""
        if not self.defer():  # nested: the outer block sends
            yield
            return
        try:
            yield
        finally:
            self.flush()

    def _all_sets(self) -> Iterator[tuple[str, str, str]]:
        """(logical name, nft set name, port or "") of every set in the table."""
        for name in SETS:
            for logical in (name, "held_" + name):
                if name == SHARED:
                    yield logical, logical, ""
                else:
                    for port in self.ports:
                        yield logical, self.set_name(logical, port), port

    def _read_sets(self) -> dict[str, dict[str, int]]:
        """Every set and map as the kernel holds it (one ``nft -j list table``): nft set name →
        {element text (as ``_elements`` writes it) → packets}."""
        doc = json.loads(self._cmd("nft", "-j", "list", "table", "netdev", self.table))
        got: dict[str, dict[str, int]] = {}
        for item in doc["nftables"]:
            s = item.get("set") or item.get("map")
            if not s:
                continue
            raw = _logical(s["name"]) in RAW
            elems = got.setdefault(s["name"], {})
            for el in s.get("elem", []):
                if isinstance(el, list):  # a map's [element, verdict]
                    el = el[0]
                packets = 0
                if isinstance(el, dict) and "elem" in el:  # an element with its counter
                    packets = int(el["elem"].get("counter", {}).get("packets", 0))
                    el = el["elem"]["val"]
                if raw:
                    elems[hex(int(el, 16) if isinstance(el, str) else int(el))] = packets
                    continue
                parts = el["concat"] if isinstance(el, dict) and "concat" in el else [el]
                text = " . ".join(json.dumps(p) if isinstance(p, str) and ":" not in p else str(p) for p in parts)
                elems[text] = packets
        return got

    def elements(self) -> dict[str, set[str]]:
        """What the kernel's sets hold now (read back with ``nft -j``), as ``ifname/mac/vid`` texts
        per logical set (``allowed``, ``held_allowed``, ...)."""
        got = self._read_sets()
        out: dict[str, set[str]] = {}
        for logical, name, port in self._all_sets():
            texts = out.setdefault(logical, set())
            for text in got.get(name, {}):
                value = decode_raw(text) if _logical(name) in RAW else text.strip('"')
                texts.add("/".join(([port] if port else []) + [value]))
        return out

    def vsi_counters_all(self) -> dict[tuple[str, VsiKey], dict[str, int]]:
        """Per VSI: ``passed`` (frames admitted: forwarded or reflected; the kernel backend does not
        split them per VSI, see the README) and ``dropped`` (frames of a pre-associated VSI). An
        entry shared by several VSIs counts for each."""
        packets = self._packets()
        out = {}
        for k, els in self.vsis.items():
            passed = sum(packets.get(e, 0) for e in els if not e[0].startswith("held_"))
            dropped = sum(packets.get(e, 0) for e in els if e[0].startswith("held_"))
            out[k] = {"passed": passed, "dropped": dropped}
        return out

    def _packets(self) -> dict[Element, int]:
        if not self.started:
            return {}
        return {(name, text): n for name, elems in self._read_sets().items() for text, n in elems.items()}

    # ------------------------------------------------------------------ counters

    def counters(self) -> dict[str, dict[str, int | None]]:
        """Per port: frames ``forwarded`` (to another port), ``reflected`` (hairpinned back),
        ``dropped`` (source not associated), ``control`` (link-local, not relayed). Without
        ``forward_counters``: ``passed`` (admitted) instead of forwarded and reflected (None)."""
        result: dict[str, dict[str, int | None]] = {p: dict.fromkeys(COUNTERS, 0) for p in self.ports}
        if not self.forward_counters:
            packets = self._packets()
            for p in self.ports:
                mine = {self.set_name(n, p) for n in SETS}
                own = json.dumps(p)
                passed = sum(
                    n for (name, text), n in packets.items() if name in mine and (name != SHARED or text == own)
                )
                result[p].update(forwarded=None, reflected=None, passed=passed)
        if not self.started:
            return result
        names = {self.counter_name(p, w): (p, w) for p in self.ports for w in COUNTERS}
        doc = json.loads(self._cmd("nft", "-j", "list", "counters", "table", "netdev", self.table))
        for item in doc["nftables"]:
            c = item.get("counter")
            if c and c.get("name") in names:
                port, what = names[c["name"]]
                result[port][what] = int(c["packets"])
        return result

    def status(self) -> dict[str, Any]:
        counters = self.counters()
        return {
            "kind": "kernel",
            "bridge": self.bridge,
            "table": self.table,
            "default_vid": self.default_vid,
            "forward_counters": self.forward_counters,
            "ports": {
                p: {"evb": p in self.rr, "hairpin": self.rr.get(p, False), "counters": counters[p]} for p in self.ports
            },
            "vsis": len(self.vsis),
            "elements": len(self._refs),
        }
