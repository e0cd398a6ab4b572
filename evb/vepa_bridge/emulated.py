"""The ``emulated`` data plane: a VEPA bridge in Python over AF_PACKET rings.

For kernels or sandboxes where the ``kernel`` backend (Linux bridge + nftables) is not
available, and for packet-level lab work: every frame passes through here, so it can be
counted, traced or changed. The same interface and the same admission rule as the kernel
backend:

* a frame from a station port is admitted only if its ``(source MAC, VID)`` is a filter entry
  of a VSI *associated* on that port (formats 1/3, no MAC: any source on that VID); an untagged
  frame counts as the port's default VID; a filter VID of 0 is the default VID. Anything else is
  dropped and counted ``dropped`` on the port, and on the VSI too if the frame matches a VSI that
  is only pre-associated (the station has not associated it yet, or it is reserved);
* link-local frames (01:80:C2:00:00:00-0F) are never relayed (counted ``control``); the agent's
  own control-plane sockets still receive them;
* learning: an admitted frame's source is learnt on its port and VID (ageing: entries unheard
  for 300 s go, in two halves, without reading a clock per frame); a frame to a learnt unicast
  address leaves by that port; a frame to a group or unknown address is flooded to every other
  port (as the Linux bridge of the kernel backend does). Leaving by the port it came in
  (reflective relay, "hairpin") only while EVB negotiated RR on it;
* the VLAN tag the kernel strips on receive (read from the ring's frame header, the same
  ``tp_vlan_tci`` as ``PACKET_AUXDATA``) is written back on send, TPID included.

Counters per port (``forwarded``, ``reflected``, ``dropped``, ``control``) and per VSI
(``forwarded``, ``reflected``, ``dropped``); a flooded frame counts once per port it leaves by.

It runs in the bridge agent's event loop (``loop.add_reader`` on each port's ring): reading
needs no system call per frame, and each batch of sends is one ``send()`` per port.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Sequence
from typing import Any

from evb.aio.ring import HDR, RX_RELEASE, TP_STATUS_USER, TP_STATUS_VLAN_TPID_VALID, TP_STATUS_VLAN_VALID, PacketRing
from evb.vdp.events import VsiKey
from evb.vdp.wire import FilterEntry, VdpMode
from evb.vepa_bridge.kernel import COUNTERS, DataPlaneError

FORWARDED, REFLECTED, DROPPED, CONTROL = 0, 1, 2, 3
VSI_COUNTERS = ("forwarded", "reflected", "dropped")
BATCH = 256  #: frames read per port per turn of the event loop
_TAG = struct.Struct("!I")


class _Port:
    __slots__ = ("allowed", "counters", "evb", "held", "held_vids", "index", "name", "ring", "rr", "vids")

    def __init__(self, name: str, index: int) -> None:
        self.name = name
        self.index = index
        self.ring: PacketRing | None = None
        self.evb = False  #: EVB up: the port takes part in forwarding
        self.rr = False  #: reflective relay granted: frames may leave by the port they came in
        self.allowed: dict[tuple[bytes, int], list[int]] = {}  #: (mac, vid) → the VSI's counters
        self.vids: dict[int, list[int]] = {}  #: vid → counters, formats 1/3
        self.held: dict[tuple[bytes, int], list[int]] = {}  #: pre-associated VSIs' entries
        self.held_vids: dict[int, list[int]] = {}
        self.counters = [0, 0, 0, 0]


class EmulatedDataPlane:
    """VEPA forwarding in Python (see the module docstring)."""

    kind = "emulated"

    def __init__(
        self,
        ports: Sequence[str],
        *,
        default_vid: int = 1,
        ring_frames: int = 16384,
        ageing: float = 300.0,
    ) -> None:
        if not 1 <= default_vid <= 4094:
            raise ValueError(f"default VID must be 1..4094, not {default_vid}")
        self.ports = tuple(ports)
        self.default_vid = default_vid
        self.ring_frames = ring_frames
        self.ageing = ageing
        self._ports = {name: _Port(name, i) for i, name in enumerate(self.ports)}
        self._by_index = list(self._ports.values())
        self.vsis: dict[tuple[str, VsiKey], tuple[VdpMode, list[int], tuple[tuple[bytes | None, int], ...]]] = {}
        self._fdb: dict[tuple[bytes, int], int] = {}  #: (mac, vid) → port index, learnt this half
        self._fdb_old: dict[tuple[bytes, int], int] = {}  #: the previous half
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ageing_handle: asyncio.TimerHandle | None = None
        self.started = False
        self.ring_drops = 0  #: frames the kernel could not put in a full RX ring

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            for p in self._by_index:
                p.ring = PacketRing(p.name, rx_frames=self.ring_frames, tx_frames=self.ring_frames, promiscuous=True)
        except OSError as exc:
            self.close()
            raise DataPlaneError(f"cannot open an AF_PACKET ring: {exc}") from None
        for p in self._by_index:
            assert p.ring is not None
            loop.add_reader(p.ring.fileno(), self._on_readable, p)
        self._loop = loop
        self._ageing_handle = loop.call_later(self.ageing / 2, self._age)
        self.started = True

    def close(self) -> None:
        for p in self._by_index:
            if p.ring is not None:
                if self._loop is not None and not self._loop.is_closed():
                    self._loop.remove_reader(p.ring.fileno())
                p.ring.close()
                p.ring = None
        if self._ageing_handle is not None:
            self._ageing_handle.cancel()
        self._loop = None
        self.started = False

    def _age(self) -> None:
        self._fdb_old, self._fdb = self._fdb, {}
        assert self._loop is not None
        self._ageing_handle = self._loop.call_later(self.ageing / 2, self._age)

    # ------------------------------------------------------------------ DataPlane

    def port_up(self, ifname: str, *, reflective_relay: bool) -> None:
        p = self._ports[ifname]
        p.evb, p.rr = True, reflective_relay

    def port_down(self, ifname: str) -> None:
        p = self._ports[ifname]
        p.evb = p.rr = False
        for port, key in [k for k in self.vsis if k[0] == ifname]:
            self.deassociate(port, key)
        self._forget(p.index)

    def _forget(self, index: int) -> None:
        for fdb in (self._fdb, self._fdb_old):
            for k in [k for k, v in fdb.items() if v == index]:
                del fdb[k]

    def associate(self, ifname: str, key: VsiKey, mode: VdpMode, entries: tuple[FilterEntry, ...]) -> None:
        """Admit the VSI's entries if ``mode`` is Associate; a pre-associated VSI's entries are held
        (its frames are dropped and counted on it). Replaces what the VSI had."""
        p = self._ports[ifname]
        old = self.vsis.get((ifname, key))
        counters = old[1] if old else [0, 0, 0]
        if old:
            self._unlink(p, old[0], old[2])
        keys = tuple((e.mac, e.vid or self.default_vid) for e in entries)
        self.vsis[(ifname, key)] = (mode, counters, keys)
        by_mac, by_vid = (p.allowed, p.vids) if mode == VdpMode.ASSOC else (p.held, p.held_vids)
        for mac, vid in keys:
            if mac is None:
                by_vid[vid] = counters
            else:
                by_mac[(mac, vid)] = counters

    def deassociate(self, ifname: str, key: VsiKey) -> None:
        old = self.vsis.pop((ifname, key), None)
        if old:
            self._unlink(self._ports[ifname], old[0], old[2])

    def _unlink(self, p: _Port, mode: VdpMode, keys: tuple[tuple[bytes | None, int], ...]) -> None:
        by_mac, by_vid = (p.allowed, p.vids) if mode == VdpMode.ASSOC else (p.held, p.held_vids)
        for mac, vid in keys:
            if mac is None:
                by_vid.pop(vid, None)
            else:
                by_mac.pop((mac, vid), None)
                for fdb in (self._fdb, self._fdb_old):
                    if fdb.get((mac, vid)) == p.index:
                        del fdb[(mac, vid)]

    # ------------------------------------------------------------------ forwarding

    def _on_readable(self, p: _Port) -> None:
        ring = p.ring
        if ring is None:
            return
        touched = self.forward(p, ring)
        for out in touched:
            out.flush()

    def forward(self, p: _Port, ring: PacketRing, limit: int = BATCH) -> set[PacketRing]:
        """Relay what waits in ``p``'s RX ring (at most ``limit`` frames); the rings written to."""
        m, fs, n = ring.map, ring.frame_size, ring.rx_frames
        unpack = HDR.unpack_from
        pack_tag = _TAG.pack
        index = p.index
        counters = p.counters
        allowed, vids, fdb, fdb_old = p.allowed, p.vids, self._fdb, self._fdb_old
        default_vid = self.default_vid
        ports = self._by_index
        touched: set[PacketRing] = set()
        i = ring._rx_next
        while limit:
            off = i * fs
            if not m[off] & TP_STATUS_USER:
                break
            status, length, _snap, mac, _net, _sec, _nsec, tci, tpid = unpack(m, off)
            start = off + mac
            frame = m[start : start + length]
            m[off : off + 4] = RX_RELEASE
            i = i + 1 if i + 1 < n else 0
            limit -= 1
            if frame[0] == 1 and frame[1:5] == b"\x80\xc2\x00\x00" and frame[5] < 0x10:
                counters[CONTROL] += 1
                continue
            if status & TP_STATUS_VLAN_VALID:
                vid = tci & 0xFFF
                if not vid:  # priority-tagged: the port's VID
                    vid = default_vid
                tag = pack_tag((tpid if status & TP_STATUS_VLAN_TPID_VALID and tpid else 0x8100) << 16 | tci)
                frame = frame[:12] + tag + frame[12:]
            else:
                vid = default_vid
            src = frame[6:12]
            vsi = allowed.get((src, vid)) or vids.get(vid)
            if vsi is None or not p.evb:
                counters[DROPPED] += 1
                held = p.held.get((src, vid)) or p.held_vids.get(vid)
                if held is not None:
                    held[DROPPED] += 1
                continue
            fdb[(src, vid)] = index
            if frame[0] & 1:
                out = -1
            else:
                dst = (frame[:6], vid)
                out = fdb.get(dst, -1)
                if out < 0:
                    out = fdb_old.get(dst, -1)
            if out >= 0:
                q = ports[out]
                if out == index:
                    if not p.rr:
                        continue
                    what = REFLECTED
                else:
                    what = FORWARDED
                r = q.ring
                if r is not None and r.queue(frame):
                    touched.add(r)
                    counters[what] += 1
                    vsi[what] += 1
                continue
            for q in ports:  # flood
                if q is p and not p.rr:
                    continue
                r = q.ring
                if r is not None and r.queue(frame):
                    touched.add(r)
                    what = REFLECTED if q is p else FORWARDED
                    counters[what] += 1
                    vsi[what] += 1
        ring._rx_next = i
        return touched

    # ------------------------------------------------------------------ status

    def counters(self) -> dict[str, dict[str, int]]:
        return {p.name: dict(zip(COUNTERS, p.counters, strict=True)) for p in self._by_index}

    def vsi_counters(self, ifname: str, key: VsiKey) -> dict[str, int] | None:
        rec = self.vsis.get((ifname, key))
        return None if rec is None else dict(zip(VSI_COUNTERS, rec[1], strict=True))

    def vsi_counters_all(self) -> dict[tuple[str, VsiKey], dict[str, int]]:
        return {k: dict(zip(VSI_COUNTERS, rec[1], strict=True)) for k, rec in self.vsis.items()}

    def status(self) -> dict[str, Any]:
        counters = self.counters()
        drops = 0
        for p in self._by_index:
            if p.ring is not None:
                drops += p.ring.statistics()[1]
        self.ring_drops += drops
        return {
            "kind": "emulated",
            "default_vid": self.default_vid,
            "ports": {p.name: {"evb": p.evb, "hairpin": p.rr, "counters": counters[p.name]} for p in self._by_index},
            "vsis": len(self.vsis),
            "elements": sum(len(p.allowed) + len(p.vids) for p in self._by_index),
            "learnt": len(self._fdb.keys() | self._fdb_old.keys()),
            "ring_drops": self.ring_drops,
        }
