"""``evb station run``: the hypervisor's agent on one uplink (asyncio root).

It runs a ``StationPort`` on the interface through a ``PortDriver``, serves the control API,
and keeps the desired VSI state on disk. Reconciliation: a VSI the operator wants but the
bridge dropped (unsolicited de-associate, keep-alive lost, no answer) is requested again after
a back-off (1 s doubling to 60 s), and so is a de-associate that got no answer (it stays in
the state file until answered); a VSI the bridge refused stays refused until the operator
asks again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import random
import signal
from typing import TYPE_CHECKING, Any

import structlog

from evb.aio.control_server import ControlServer, Notify
from evb.aio.driver import PortDriver
from evb.aio.rawsock import interface_mac
from evb.control import MODE_NAMES, MODES, ControlError, ErrorCode, entry_json, key_text, vsi_from_args, vsi_json
from evb.errors import LocalProtocolError
from evb.lldp.events import EvbLost, EvbNegotiated
from evb.lldp.negotiate import Role
from evb.port import Event, Port, StationPort
from evb.settings import StationSettings, port_config
from evb.station_agent.state import DesiredState
from evb.vdp.events import VsiAssociated, VsiDeassociated, VsiKey, VsiRejected
from evb.vdp.station import StState, Vsi
from evb.vdp.wire import VdpMode, status_meaning

if TYPE_CHECKING:
    from evb.mqtt.station import StationMqtt

RETRY_FIRST = 1.0
RETRY_MAX = 60.0
RETRY_REASONS = {"bridge", "timeout", "keepalive-timeout", "filter-mismatch", "peer-lost"}
#: answered de-associates leave the state file together, this long after the first (a save is
#: an fsync of the whole file: one per VSI stalled the loop past ECP's ack timer)
SAVE_DELAY = 0.1


class StationAgent:
    def __init__(self, settings: StationSettings, *, log: Any = None) -> None:
        self.settings = settings
        self.log = (log or structlog.get_logger()).bind(ifname=settings.iface, role="station")
        self.state = DesiredState(settings.state)
        self.driver: PortDriver | None = None
        self.port: StationPort | None = None
        self.server: ControlServer | None = None
        self._waiters: dict[VsiKey, list[asyncio.Future[Event]]] = {}
        self._retry: dict[VsiKey, asyncio.TimerHandle] = {}
        self._backoff: dict[VsiKey, float] = {}
        self.status: dict[VsiKey, str] = {}  #: last outcome per VSI, for `vsi list`
        self._save: asyncio.TimerHandle | None = None
        self._stop = asyncio.Event()
        self.mqtt: StationMqtt | None = None
        #: the state file is written (fsync) in this one thread, in order: an fsync on a busy
        #: disk can take hundreds of milliseconds, which must not stall the protocol's timers
        self._writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="state")

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        s = self.settings
        try:
            own_mac = interface_mac(s.iface)
        except OSError as exc:
            raise ControlError(ErrorCode.INTERNAL, f"cannot open {s.iface}: {exc}") from None
        # a random first sequence number: never the one a peer saw last (ecp.md §4.3)
        config = port_config(
            Role.STATION, own_mac, s.evb, s.vdp, first_seq=random.randrange(1, 0x10000), faults=s.faults
        )
        self.port = StationPort(config, now=loop.time())
        self.driver = PortDriver(self.port, s.iface, self.log)
        self.driver.listeners.append(self._on_event)
        for problem in self.state.load():
            self.log.warning("station.state_problem", problem=problem)
        self.driver.start()
        restored = 0
        for vsi, mode, hints in list(self.state.vsis.values()):
            try:
                self._restore(vsi, mode, hints)
                restored += 1
            except LocalProtocolError as exc:
                self.log.warning("station.restore_failed", vsiid=key_text(vsi.key), error=str(exc))
        if restored:
            self.log.info("station.restored", vsis=restored)
        self.server = ControlServer(s.socket, self._handlers(), self.log)
        await self.server.start()
        if s.mqtt is not None:
            from evb.mqtt.station import StationMqtt

            self.mqtt = StationMqtt(self, s.mqtt, self.log)
            self.driver.listeners.append(self.mqtt.on_event)  # after _on_event: sees the agent's view
            self.mqtt.start()

    def _restore(self, vsi: Vsi, mode: VdpMode, hints: str) -> None:
        assert self.driver is not None and self.port is not None
        port = self.port
        force = mode is VdpMode.DEASSOC  # a de-associate still owed from before the restart

        def cmd(now: float) -> None:
            port.request(vsi, mode, now=now, hints=hints, force=force)

        self.driver.command(cmd)

    async def run(self) -> None:
        await self.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        self.log.info("station.running", socket=self.settings.socket, state=self.settings.state)
        await self._stop.wait()
        await self.stop()

    async def stop(self) -> None:
        if self.mqtt is not None:
            await self.mqtt.close()
        if self.server is not None:
            await self.server.close()
        for handle in self._retry.values():
            handle.cancel()
        if self.driver is not None:
            self.driver.stop()
        if self._save is not None:
            self._save.cancel()
            self._save_now()
        self._writer.shutdown(wait=True)
        self.log.info("station.stopped")

    def request_stop(self) -> None:
        self._stop.set()

    # ------------------------------------------------------------------ events

    def _on_event(self, port: Port, ev: Event) -> None:
        key = getattr(ev, "key", None)
        if isinstance(ev, VsiAssociated):
            self.status[ev.key] = MODE_NAMES[ev.mode]
            self._retry_cancel(ev.key)
        elif isinstance(ev, VsiRejected):
            self.status[ev.key] = f"rejected: {status_meaning(ev.code)}" + (" (kept)" if ev.keep else "")
        elif isinstance(ev, VsiDeassociated):
            self.status[ev.key] = f"gone: {ev.reason}"
            wanted = self.state.vsis.get(ev.key)
            if wanted is not None:
                if wanted[1] is VdpMode.DEASSOC and ev.reason == "deassociated":
                    self.state.drop(ev.key, save=False)
                    self._save_later()
                    self.status.pop(ev.key, None)
                    self._retry_cancel(ev.key)
                elif ev.reason in RETRY_REASONS:  # an unanswered de-associate is owed too: sent again
                    self._retry_later(ev.key)
        elif isinstance(ev, EvbNegotiated | EvbLost):
            return
        if key is not None:
            for fut in self._waiters.pop(key, []):
                if not fut.done():
                    fut.set_result(ev)

    def _save_later(self) -> None:
        if self._save is None:
            self._save = asyncio.get_running_loop().call_later(SAVE_DELAY, self._save_now)

    def _save_now(self) -> None:
        self._save = None
        done = self._writer.submit(self.state.write, self.state.snapshot())
        done.add_done_callback(self._saved)

    def _saved(self, done: concurrent.futures.Future[None]) -> None:
        exc = done.exception()
        if exc is not None:
            self.log.error("station.state_not_saved", file=self.settings.state, error=str(exc))

    async def _persist(self) -> None:
        """Write the state file now (in the writer thread) and wait until it is on disk."""
        text = self.state.snapshot()
        try:
            await asyncio.get_running_loop().run_in_executor(self._writer, self.state.write, text)
        except OSError as exc:
            raise ControlError(ErrorCode.INTERNAL, f"cannot save {self.settings.state}: {exc}") from None

    def _retry_later(self, key: VsiKey) -> None:
        delay = min(RETRY_MAX, self._backoff.get(key, RETRY_FIRST / 2) * 2)
        self._backoff[key] = delay
        old = self._retry.pop(key, None)
        if old is not None:
            old.cancel()
        self._retry[key] = asyncio.get_running_loop().call_later(delay, self._retry_now, key)
        self.log.info("station.retry_scheduled", vsiid=key_text(key), delay=delay)

    def _retry_cancel(self, key: VsiKey) -> None:
        old = self._retry.pop(key, None)
        if old is not None:
            old.cancel()
        self._backoff.pop(key, None)

    def _retry_now(self, key: VsiKey) -> None:
        self._retry.pop(key, None)
        wanted = self.state.vsis.get(key)
        if wanted is None or self.driver is None or self.port is None:
            return
        vsi, mode, hints = wanted
        port = self.port
        if key in port.vdp.vsis:
            return
        try:
            force = mode is VdpMode.DEASSOC  # the port forgot the VSI when its de-associate timed out
            self.driver.command(lambda now: port.request(vsi, mode, now=now, hints=hints, force=force))
        except LocalProtocolError as exc:
            self.log.warning("station.retry_failed", vsiid=key_text(key), error=str(exc))

    # ------------------------------------------------------------------ control API

    def _handlers(self) -> dict[str, Any]:
        return {
            "vsi.request": self.api_request,
            "vsi.bulk": self.api_bulk,
            "vsi.list": self.api_list,
            "vsi.show": self.api_show,
            "status": self.api_status,
        }

    def _wait_timeout(self) -> float:
        assert self.port is not None
        return self.port.vdp.timers.resp_wait_delay * 2 + 5.0

    def _force(self, vsi: Vsi, mode: VdpMode) -> bool:
        """Must a de-associate be forced (a VSI wanted in the state file but unknown to the port)?"""
        assert self.port is not None
        rec = self.port.vdp.vsis.get(vsi.key)
        force = mode is VdpMode.DEASSOC and rec is None and vsi.key in self.state.vsis
        if mode is VdpMode.DEASSOC and rec is None and not force:
            raise ControlError(ErrorCode.NOT_FOUND, f"no VSI {key_text(vsi.key)} on {self.settings.iface}")
        return force

    def _command(self, vsi: Vsi, mode: VdpMode, hints: str) -> None:
        assert self.driver is not None and self.port is not None
        port = self.port
        force = self._force(vsi, mode)
        try:
            self.driver.command(lambda now: port.request(vsi, mode, now=now, hints=hints, force=force))
        except LocalProtocolError as exc:
            raise ControlError(ErrorCode.NOT_ALLOWED, str(exc)) from None
        old = self._retry.pop(vsi.key, None)
        if old is not None:
            old.cancel()

    async def api_request(self, args: dict[str, Any], notify: Notify) -> Any:
        mode = MODES.get(str(args.get("mode")))
        if mode is None:
            raise ControlError(ErrorCode.BAD_REQUEST, f"mode must be one of {', '.join(MODES)}")
        hints = str(args.get("hints", "none"))
        if hints not in ("none", "to", "from"):
            raise ControlError(ErrorCode.BAD_REQUEST, "hints must be none, to or from")
        vsi = vsi_from_args(args)
        fut: asyncio.Future[Event] | None = None
        if args.get("wait"):
            fut = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(vsi.key, []).append(fut)
        self._command(vsi, mode, hints)
        self.state.set(vsi, mode, hints, save=False)
        await self._persist()
        if fut is None:
            return {"vsi": key_text(vsi.key), "queued": MODE_NAMES[mode]}
        try:
            ev = await asyncio.wait_for(fut, self._wait_timeout())
        except TimeoutError:
            raise ControlError(ErrorCode.TIMEOUT, f"no answer for {key_text(vsi.key)}") from None
        return self._outcome(vsi, mode, ev)

    def _outcome(self, vsi: Vsi, mode: VdpMode, ev: Event) -> dict[str, Any]:
        key = key_text(vsi.key)
        if isinstance(ev, VsiAssociated):
            return {"vsi": key, "mode": MODE_NAMES[ev.mode], "filters": [entry_json(e) for e in ev.entries]}
        if isinstance(ev, VsiDeassociated) and ev.reason == "deassociated" and mode is VdpMode.DEASSOC:
            return {"vsi": key, "mode": "deassoc"}
        if isinstance(ev, VsiRejected):
            raise ControlError(
                ErrorCode.REJECTED,
                f"the bridge refused {key}: status {ev.code} ({status_meaning(ev.code)})"
                + (", keep" if ev.keep else "")
                + (", hard" if ev.hard else ""),
                {"status": ev.code, "keep": ev.keep, "hard": ev.hard, "meaning": status_meaning(ev.code)},
            )
        assert isinstance(ev, VsiDeassociated)
        raise ControlError(
            ErrorCode.REJECTED,
            f"{key} ended: {ev.reason}" + (f", status {ev.code} ({status_meaning(ev.code)})" if ev.code else ""),
            {"status": ev.code, "reason": ev.reason, "meaning": status_meaning(ev.code)},
        )

    async def api_bulk(self, args: dict[str, Any], notify: Notify) -> Any:
        mode = MODES.get(str(args.get("mode")))
        if mode is None:
            raise ControlError(ErrorCode.BAD_REQUEST, f"mode must be one of {', '.join(MODES)}")
        items = args.get("vsis")
        if not isinstance(items, list) or not items:
            raise ControlError(ErrorCode.BAD_REQUEST, "vsis must be a non-empty list")
        vsis = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise ControlError(ErrorCode.BAD_REQUEST, f"vsis[{i}] must be a table")
            hints = str(item.get("hints", args.get("hints", "none")))
            if hints not in ("none", "to", "from"):  # checked before anything is queued (no half-done bulk)
                raise ControlError(ErrorCode.BAD_REQUEST, f"vsis[{i}]: hints must be none, to or from")
            try:
                vsis.append((vsi_from_args(item), hints))
            except ControlError as exc:
                raise ControlError(exc.code, f"vsis[{i}]: {exc.message}") from None
        loop = asyncio.get_running_loop()
        futs: list[asyncio.Future[Event]] = []
        wait = bool(args.get("wait", True))
        errors: list[dict[str, Any]] = []
        # all commands go to the port in one call, so that they are packed into as few ECPDUs
        # as possible (one by one, the first VSI would leave alone in its own ECPDU)
        plan: list[tuple[Vsi, str, bool, asyncio.Future[Event] | None]] = []
        for vsi, hints in vsis:
            try:
                force = self._force(vsi, mode)
            except ControlError as exc:
                errors.append({"vsi": key_text(vsi.key), "error": exc.message})
                continue
            fut: asyncio.Future[Event] | None = None
            if wait:
                fut = loop.create_future()
                self._waiters.setdefault(vsi.key, []).append(fut)
            plan.append((vsi, hints, force, fut))
        assert self.driver is not None and self.port is not None
        port = self.port
        outcomes = self.driver.command(lambda now: port.request_many([(v, mode, h, f) for v, h, f, _ in plan], now=now))
        for (vsi, hints, _force, fut), problem in zip(plan, outcomes, strict=True):
            if problem is not None:
                errors.append({"vsi": key_text(vsi.key), "error": str(problem)})
                if fut is not None:
                    fut.cancel()
                continue
            self.state.set(vsi, mode, hints, save=False)
            old = self._retry.pop(vsi.key, None)
            if old is not None:
                old.cancel()
            if fut is not None:
                futs.append(fut)
        await self._persist()
        ok = failed = 0
        if wait and futs:
            total = len(futs)
            done_count = 0
            pending = set(futs)
            deadline = loop.time() + self._wait_timeout()
            while pending and loop.time() < deadline:
                done, pending = await asyncio.wait(pending, timeout=min(0.5, deadline - loop.time()))
                for f in done:
                    done_count += 1
                    ev = f.result() if not f.cancelled() else None
                    good = isinstance(ev, VsiAssociated) or (
                        isinstance(ev, VsiDeassociated) and ev.reason == "deassociated" and mode is VdpMode.DEASSOC
                    )
                    ok += good
                    failed += not good
                notify({"done": done_count, "total": total})
            failed += len(pending)
            for f in pending:
                f.cancel()
        return {"requested": len(vsis) - len(errors), "ok": ok, "failed": failed, "errors": errors[:20]}

    def _vsi_row(self, key: VsiKey) -> dict[str, Any]:
        assert self.port is not None
        rec = self.port.vdp.vsis.get(key)
        wanted = self.state.vsis.get(key)
        vsi = rec.vsi if rec is not None else wanted[0] if wanted else None
        row: dict[str, Any] = {"vsi": key_text(key)}
        if vsi is not None:
            row.update(vsi_json(vsi))
        row["wanted"] = MODE_NAMES[wanted[1]] if wanted else None
        if rec is not None:
            row["state"] = rec.state.value
            row["confirmed"] = MODE_NAMES[rec.confirmed] if rec.confirmed else None
            row["granted"] = [entry_json(e) for e in rec.entries]
            row["hints"] = rec.status.hints
        else:
            row["state"] = "none"
        row["last"] = self.status.get(key)
        return row

    async def api_list(self, args: dict[str, Any], notify: Notify) -> Any:
        assert self.port is not None
        keys = list(dict.fromkeys([*self.state.vsis, *self.port.vdp.vsis]))
        return [self._vsi_row(k) for k in keys]

    async def api_show(self, args: dict[str, Any], notify: Notify) -> Any:
        assert self.port is not None
        text = str(args.get("uuid", "")).lower()
        rows = [r for r in await self.api_list(args, notify) if text and text in r["vsi"].lower()]
        if not rows:
            raise ControlError(ErrorCode.NOT_FOUND, f"no VSI matching {text!r}")
        return rows

    async def api_status(self, args: dict[str, Any], notify: Notify) -> Any:
        assert self.port is not None and self.driver is not None
        return (
            port_status(self.port, self.settings.iface)
            | {
                "vsis_by_state": self.port.vdp.state_counts(),
                "wanted": len(self.state.vsis),
                "vdp": dataclass_dict(self.port.vdp.counters),
            }
            | ({"mqtt": self.mqtt.status()} if self.mqtt is not None else {})
        )


def dataclass_dict(obj: Any) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def port_status(port: Port, ifname: str) -> dict[str, Any]:
    o = port.operating
    peer = port.peer_tlv
    tx, rx = port.ecp_tx, port.ecp_rx
    return {
        "ifname": ifname,
        "mac": port.mac.hex(":"),
        "role": port.role.value,
        "link_up": port.link_up,
        "evb": {
            "negotiated": port.negotiated,
            "r": o.r,
            "rte": o.rte,
            "rwd": o.rwd,
            "rka": o.rka,
            "reflective_relay": o.rr,
            "group_ids": o.group_ids,
            "peer_seen": peer is not None,
            "local_tlv": port.local_tlv.encode().hex(),
            "peer_tlv": peer.encode().hex() if peer is not None else None,
        },
        "ecp": {
            "sent": tx.sent,
            "retransmissions": tx.retransmissions,
            "delivered": tx.delivered,
            "abandoned": tx.abandoned,
            "received": rx.received,
            "duplicates": rx.duplicates,
            "next_seq": tx.seq,
        },
        "frames": dataclass_dict(port.counters),
        "lldp": {"sent": port.agent.tx_count, "received": port.agent.rx_count, "neighbors": len(port.agent.neighbors)},
    }


def main_run(settings: StationSettings) -> int:
    agent = StationAgent(settings)

    async def go() -> None:
        await agent.run()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(go())
    return 0


__all__ = ["StState", "StationAgent", "main_run", "port_status"]
