"""The ``kernel`` data plane: a Linux bridge and an nftables ``bridge`` table, driven with ``ip``/``bridge``/``nft``.

What it builds (names configurable; defaults ``evbbr0`` and table ``evb``):

* a Linux bridge, STP off, IPv6 off on the bridge device (it must not talk itself), enslaving
  every station-facing port. ``hairpin on`` is set on a port exactly while EVB negotiated
  reflective relay on it (``port_up(..., reflective_relay=True)``), off otherwise;
* table ``bridge evb`` with sets holding exactly the associated VSIs' filter entries, each keyed
  by the port (``meta iif``, the interface index: four octets) and the frame's source:

  ``allowed``       iif . MAC . TPID . VID         tagged frames, formats 2/4 (MAC + VID); a verdict
                    (``@ll,48,80``)                map (element → accept)
  ``untagged``      iif . ``ether saddr``          the same entries whose VID is the port's default
                                                   VID: an untagged frame counts as that VID
  ``vids``          iif . TPID . VID (``@ll,96,32``) formats 1/3 (no MAC): any source MAC on that
                                                   VID is the VSI's (the VSI is the VLAN)
  ``untagged_vids`` iif                            formats 1/3 whose VID is the default VID

  Each has a ``held_`` twin (a set) for pre-associated VSIs. The MAC . TPID . VID and TPID . VID
  parts are raw link-layer octets, one load for the whole part, masked to leave the TCI's
  priority and DEI bits out (``TAGGED_SOURCE``, ``TAGGED_VID``); the TPID in the key (0x8100) is
  the "tagged" test ``ether saddr . vlan id`` would make with more expressions. Elements are
  written ``"p1" . 0x...`` (``raw_element``). A filter VID of 0 ("bridge, choose", left
  unchosen) is taken as the default VID. Group IDs (formats 3/4) play no part in forwarding. The
  default VID is 1 (``default_vid``), the VID of an unconfigured Linux bridge / IEEE 802.1Q PVID.
* chain ``admit`` (hook ``prerouting``, before the bridge learns the source address, so a
  spoofed frame cannot move a MAC to its port): a frame whose key is in a set is accepted; a
  link-local frame (destination 01:80:C2:00:00:00-0F) is dropped and counted ``control``; a
  frame of a pre-associated VSI is counted on its ``held_`` entry; anything else is dropped and
  counted (``dropped``). The kernel has already taken the 802.1Q tag off into the packet's
  metadata here; nft rebuilds it for the raw loads.
* link-local frames are never relayed, whatever their source: a Linux bridge with STP off would
  flood 01:80:C2:00:00:00 (it passes 01..0F up and forwards none of them by default). The
  bridge gets a permanent layer-2 multicast entry for 01:80:C2:00:00:00 that only the bridge
  itself joined (``bridge mdb``; snooping on, no port a multicast router port), so it delivers
  such a frame to itself and to no port. That lets ``admit`` test for link-local frames after
  the accepts, where an ordinary frame never gets to; where the kernel refuses the entry,
  ``admit`` tests first (``link_local_first``), as it does for every frame. Link-local frames
  still reach the control plane's AF_PACKET sockets (``ETH_P_ALL`` taps run before the bridge).
  Chain ``local`` (hook ``input``: frames the bridge passes up) counts them ``control``.
* with ``forward_counters`` (the default), chain ``count`` (hook ``forward``, which sees the
  ingress and the egress port) counts each relayed frame by the pair: ``reflected`` on port *i*
  when it leaves by the port it came in (hairpin), ``forwarded`` on port *i* when it leaves by
  another. A flooded frame is counted once per egress port. Without ``forward_counters`` there
  is no ``count`` chain and a port counts only ``passed`` (admitted: the sum of its entries'
  counters), ``dropped`` and ``control``.

Why the bridge family: the bridge calls the ``prerouting`` and ``forward`` hooks for every frame
anyway (and where ``br_netfilter`` is built in, as on the machines this was measured on, it
already runs hooks there), so our chains cost their rules and no hook of their own. An earlier
version used ``netdev`` ingress and egress chains per port (a packet mark between them):
``bench/dataplane.py`` measured that 0.02-0.06× slower with forward counters (README).

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
import functools
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
BRIDGE_GROUP = "01:80:c2:00:00:00"  #: the one link-local address a Linux bridge with STP off floods
#: source MAC . TPID 0x8100 . VID in one 10-octet load, the TCI's priority and DEI bits masked
#: off (nft rebuilds the tag the kernel took into the packet's metadata)
TAGGED_SOURCE = "@ll,48,80 & 0xffffffffffffffff0fff"
TAGGED_VID = "@ll,96,32 & 0xffff0fff"  #: TPID 0x8100 . VID, likewise
COUNTERS = ("forwarded", "reflected", "dropped", "control")
SETS = {  #: admission sets and their keys (the port first); each has a ``held_`` twin
    "allowed": "meta iif . @ll,48,80",
    "untagged": "meta iif . ether saddr",
    "vids": "meta iif . @ll,96,32",
    "untagged_vids": "meta iif",
}
VERDICT_MAP = "allowed"  #: not a set but a verdict map (element → accept): one expression less per frame
RAW = ("allowed", "vids")  #: sets whose second part is raw link-layer octets (written as hex integers)
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


@functools.cache
def _port_text(ifname: str) -> str:
    """A port as an element's first part (a quoted nft string: nft resolves it to the index)."""
    return json.dumps(ifname)


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
        #: test for link-local frames before the admission sets (where the bridge could not be
        #: told to keep 01:80:c2:00:00:00 to itself) instead of after them
        self.link_local_first = False
        self.started = False

    # ------------------------------------------------------------------ life cycle

    def _cmd(self, *args: str) -> str:
        return self._run(list(args), None)

    def _nft(self, script: str) -> None:
        self._run(["nft", "-f", "-"], script)

    def cleanup_table(self) -> None:
        """Remove our nft table if it exists (also an older version's netdev one)."""
        for family in ("bridge", "netdev"):
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
        self.link_local_first = not self._keep_bridge_group()
        self._nft(self._table_script())
        self.started = True

    def _keep_bridge_group(self) -> bool:
        """Make the bridge deliver 01:80:c2:00:00:00 to itself only, never flood it (module
        docstring): multicast snooping on, no port a multicast router port, and a permanent
        entry for the group that only the bridge joined. False if the kernel refuses any of it
        (no IGMP snooping compiled in, no layer-2 entries)."""
        br = self.bridge
        try:
            self._cmd("ip", "link", "set", "dev", br, "type", "bridge", "mcast_snooping", "1")
            for port in self.ports:
                self._cmd("bridge", "link", "set", "dev", port, "mcast_router", "0")
            self._cmd("bridge", "mdb", "add", "dev", br, "port", br, "grp", BRIDGE_GROUP, "permanent")
        except DataPlaneError:
            return False
        return True

    def close(self) -> None:
        self.cleanup()
        self.started = False
        self.rr.clear()
        self.vsis.clear()
        self._refs.clear()

    def counter_name(self, ifname: str, what: str) -> str:
        return f"p{self._index[ifname]}_{what}"

    def _by_port(self, what: str) -> str:
        """An anonymous map port → its counter ``what``."""
        pairs = ", ".join(f'{_port_text(p)} : "{self.counter_name(p, what)}"' for p in self.ports)
        return f"{{ {pairs} }}"

    def _table_script(self) -> str:
        lines = [f"table bridge {self.table} {{"]
        counters = COUNTERS if self.forward_counters else ("dropped", "control")
        for port in self.ports:
            lines += [f"  counter {self.counter_name(port, what)} {{ }}" for what in counters]
        for name, key in SETS.items():
            lines.append(
                f"  map {name} {{ typeof {key} : verdict ; counter ; }}"
                if name == VERDICT_MAP
                else f"  set {name} {{ typeof {key} ; counter ; }}"
            )
            lines.append(f"  set held_{name} {{ typeof {key} ; counter ; }}")
        link_local = f"    {LINK_LOCAL} counter name meta iif map {self._by_port('control')} drop"
        lines += [
            "  chain admit {",
            "    type filter hook prerouting priority filter; policy accept;",
            *([link_local] if self.link_local_first else []),
            f"    meta iif . {TAGGED_SOURCE} vmap @allowed",
            f"    meta iif . {TAGGED_VID} @vids accept",
            "    ether type != 8021q meta iif . ether saddr @untagged accept",
            "    ether type != 8021q meta iif @untagged_vids accept",
            *([] if self.link_local_first else [link_local]),
            # a frame of a VSI that is only pre-associated: counted on that VSI's entry, then dropped
            f"    meta iif . {TAGGED_SOURCE} @held_allowed",
            f"    meta iif . {TAGGED_VID} @held_vids",
            "    ether type != 8021q meta iif . ether saddr @held_untagged",
            "    ether type != 8021q meta iif @held_untagged_vids",
            f"    counter name meta iif map {self._by_port('dropped')} drop",
            "  }",
            "  chain local {",  # what the bridge passes up: link-local frames 01..0f (and 00, see start())
            "    type filter hook input priority filter; policy accept;",
            f"    {LINK_LOCAL} counter name meta iif map {self._by_port('control')}",
            "  }",
        ]
        if self.forward_counters:
            pairs = ", ".join(
                f'{_port_text(p)} . {_port_text(o)} : "{self.counter_name(p, "reflected" if p == o else "forwarded")}"'
                for p in self.ports
                for o in self.ports
            )
            lines += [
                "  chain count {",
                "    type filter hook forward priority filter; policy accept;",
                f"    counter name meta iif . meta oif map {{ {pairs} }}",
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
        elements = self._elements(ifname, entries)
        new = frozenset(elements if mode == VdpMode.ASSOC else [("held_" + name, text) for name, text in elements])
        old = self.vsis.get((ifname, key))
        self.vsis[(ifname, key)] = new
        if old is None:  # the usual case: a new VSI
            self._apply(add=new, remove=frozenset())
        else:
            self._apply(add=new - old, remove=old - new)

    def deassociate(self, ifname: str, key: VsiKey) -> None:
        old = self.vsis.pop((ifname, key), None)
        if old:
            self._apply(add=frozenset(), remove=old)

    # ------------------------------------------------------------------ sets

    def _elements(self, ifname: str, entries: tuple[FilterEntry, ...]) -> list[Element]:
        """(set, element text) of each entry on ``ifname``: ``"p1" . 0x...`` and so on."""
        port = _port_text(ifname)
        out = []
        for e in entries:
            vid = e.vid or self.default_vid
            if e.mac is not None:
                out.append(("allowed", f"{port} . {raw_element(e.mac, vid)}"))
                if vid == self.default_vid:
                    out.append(("untagged", f"{port} . {_mac(e.mac)}"))
            else:
                out.append(("vids", f"{port} . {raw_element(None, vid)}"))
                if vid == self.default_vid:
                    out.append(("untagged_vids", port))
        return out

    def _apply(self, *, add: frozenset[Element], remove: frozenset[Element]) -> None:
        ops = []
        refs = self._refs
        for el in sorted(remove) if len(remove) > 1 else remove:
            n = refs.get(el, 0) - 1
            if n > 0:
                refs[el] = n
            else:
                refs.pop(el, None)
                ops.append(("delete", el[0], el[1]))
        for el in sorted(add) if len(add) > 1 else add:
            n = refs.get(el, 0) + 1
            refs[el] = n
            if n == 1:
                ops.append(("add", el[0], el[1]))
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
            verdict = " : accept" if op == "add" and name == VERDICT_MAP else ""
            items = ", ".join(o[2] + verdict for o in ops[i:j])
            lines.append(f"{op} element bridge {self.table} {name} {{ {items} }}")
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

    def _read_sets(self) -> dict[str, dict[str, int]]:
        """Every set and map as the kernel holds it (one ``nft -j list table``): set name →
        {element text (as ``_elements`` writes it) → packets}."""
        doc = json.loads(self._cmd("nft", "-j", "list", "table", "bridge", self.table))
        got: dict[str, dict[str, int]] = {}
        for item in doc["nftables"]:
            s = item.get("set") or item.get("map")
            if not s:
                continue
            raw = s["name"].removeprefix("held_") in RAW
            elems = got.setdefault(s["name"], {})
            for el in s.get("elem", []):
                if isinstance(el, list):  # a map's [element, verdict]
                    el = el[0]
                packets = 0
                if isinstance(el, dict) and "elem" in el:  # an element with its counter
                    packets = int(el["elem"].get("counter", {}).get("packets", 0))
                    el = el["elem"]["val"]
                parts = el["concat"] if isinstance(el, dict) and "concat" in el else [el]
                text = _port_text(str(parts[0]))
                if len(parts) > 1:  # nft -j gives a raw value as a hex string or a number
                    value = parts[1]
                    if raw:
                        value = hex(int(value, 16) if isinstance(value, str) else int(value))
                    text += f" . {value}"
                elems[text] = packets
        return got

    def elements(self) -> dict[str, set[str]]:
        """What the kernel's sets hold now (read back with ``nft -j``), as ``ifname/mac/vid`` texts
        per set (``allowed``, ``held_allowed``, ...)."""
        out: dict[str, set[str]] = {}
        got = self._read_sets()
        for name in SETS:
            for held in ("", "held_"):
                texts = out.setdefault(held + name, set())
                for text in got.get(held + name, {}):
                    port, _, value = text.partition(" . ")
                    parts = [json.loads(port)]
                    if value:
                        parts.append(decode_raw(value) if name in RAW else value)
                    texts.add("/".join(parts))
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
                own = _port_text(p)
                passed = sum(
                    n
                    for (name, text), n in packets.items()
                    if not name.startswith("held_") and (text == own or text.startswith(own + " . "))
                )
                result[p].update(forwarded=None, reflected=None, passed=passed)
        if not self.started:
            return result
        names = {self.counter_name(p, w): (p, w) for p in self.ports for w in COUNTERS}
        doc = json.loads(self._cmd("nft", "-j", "list", "counters", "table", "bridge", self.table))
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
            "link_local_first": self.link_local_first,
            "ports": {
                p: {"evb": p in self.rr, "hairpin": self.rr.get(p, False), "counters": counters[p]} for p in self.ports
            },
            "vsis": len(self.vsis),
            "elements": len(self._refs),
        }
