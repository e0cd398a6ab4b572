"""The station agent's MQTT side: commands in, replies and retained VSI state out.

``StationMqtt`` serves ``evb/v1/station/{host}/{ifname}/`` (``evb.mqtt.schema``) for one
``StationAgent``:

* ``cmd`` (QoS 1, persistent session): each command runs as the local API's ``vsi.request``
  with ``wait``; its answer goes to ``reply/{request_id}`` when the bridge has answered (or
  refused, or respWaitDelay ran out). Commands are idempotent by ``request_id``: one seen
  before is answered again (``"duplicate": true``) and not executed again; one still running
  is answered when it ends. The last 10,000 request_ids and their answers are kept in
  ``STATE.requests.json`` beside the state file, so a command the broker redelivers after an
  agent restart is not executed twice either. A request_id reused for another command gets
  ``E_CONFLICT``.
* A payload that does not parse gets an ``E_BAD_REQUEST`` answer naming the field, on
  ``reply/{request_id}`` if the request_id is readable, else on ``error``; a message on a topic
  this agent does not own (another host's or interface's) is refused: logged, counted, not run.
* ``vsi/{vsiid}`` (retained): the VSI's state after every change, and its last keep-alive
  answer at most ``KEEPALIVE_REPUBLISH`` s stale; cleared (empty retained payload) once a
  VSI is de-associated and no longer wanted. On every (re)connect all states are published
  again (a broker that lost them gets them back), and retained states of VSIs this agent does
  not hold (left by a run that crashed) are cleared.
* ``event``: every association, refusal and release as it happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evb.control import MODE_NAMES, ControlError, entry_json, key_text, vsi_json
from evb.mqtt.link import MqttLink
from evb.mqtt.options import MqttOptions
from evb.mqtt.schema import (
    PayloadError,
    RequestLog,
    StationTopics,
    json_object,
    now_iso,
    parse_command,
    reply_payload,
    request_id_of,
    vsiid_segment,
)
from evb.port import Event, Port
from evb.vdp.events import VsiAssociated, VsiDeassociated, VsiKey, VsiRejected
from evb.vdp.wire import status_meaning

if TYPE_CHECKING:
    from evb.station_agent.daemon import StationAgent

KEEPALIVE_REPUBLISH = 30.0  #: a VSI's retained state shows a keep-alive at most this old
SWEEP = 5.0  #: how often keep-alive times are looked at
SAVE_DELAY = 1.0  #: the request log is written this long after a command ends


class StationMqtt:
    def __init__(self, agent: StationAgent, options: MqttOptions, log: Any) -> None:
        self.agent = agent
        self.log = log
        host = options.name or socket.gethostname()
        self.topics = StationTopics(host, agent.settings.iface)
        self.requests = RequestLog()
        self.requests_file = Path(agent.settings.state + ".requests.json")
        self.link = MqttLink(
            options,
            client_id=options.client_id or f"evb-station-{host}-{agent.settings.iface}",
            presence=self.topics.status,
            subscriptions=[(self.topics.cmd, 1)],
            on_message=self.on_message,
            on_connect=self.republish,
            log=log.bind(mqtt=self.topics.base),
            own_retained=self.topics.vsi("+"),
            owned=lambda: {self.topics.vsi(seg) for _, seg, _ in self._published.values()},
        )
        self.counters = {"commands": 0, "duplicates": 0, "malformed": 0, "conflicts": 0, "foreign_topic": 0}
        self._running: dict[str, int] = {}  #: duplicates of a running command, to answer when it ends
        #: per VSI with a retained state: when it was published (wall time), its VSIID as a topic
        #: level, and the keep-alive answer it showed
        self._published: dict[VsiKey, tuple[float, str, float | None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._save: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        self._load_requests()
        self.link.start()
        self._sweeper = asyncio.create_task(self._sweep())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in list(self._tasks):
            task.cancel()
        await self.link.close()
        if self._save is not None:
            self._save.cancel()
            self._save_requests()

    def status(self) -> dict[str, Any]:
        return (
            self.link.status()
            | {"topics": self.topics.base, "requests_remembered": len(self.requests)}
            | (self.counters)
        )

    # ------------------------------------------------------------------ commands

    def on_message(self, topic: str, payload: bytes) -> None:
        if topic != self.topics.cmd:
            self.counters["foreign_topic"] += 1
            self.log.warning("mqtt.foreign_topic_refused", topic=topic, own=self.topics.cmd)
            return
        try:
            cmd = parse_command(payload)
        except PayloadError as exc:
            self.counters["malformed"] += 1
            rid = None
            with contextlib.suppress(PayloadError):
                rid = request_id_of(json_object(payload))
            self.log.warning("mqtt.bad_command", error=str(exc), request_id=rid)
            answer = reply_payload(rid, error=exc.to_json(), at=time.time())
            self.link.publish(self.topics.reply(rid) if rid else self.topics.error, answer)
            return
        self.counters["commands"] += 1
        seen = self.requests.begin(cmd.request_id, cmd.digest)
        if seen == "new":
            task = asyncio.create_task(self._execute(cmd.request_id, cmd.mode, cmd.hints, cmd.args))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        if seen == "conflict":
            self.counters["conflicts"] += 1
            error = {
                "code": "E_CONFLICT",
                "field": "request_id",
                "message": f"request_id {cmd.request_id!r} was used for another command",
            }
            answer = reply_payload(cmd.request_id, error=error, at=time.time())
            self.link.publish(self.topics.reply(cmd.request_id), answer)
            return
        self.counters["duplicates"] += 1
        self.log.info("mqtt.duplicate_command", request_id=cmd.request_id, running=seen == "pending")
        done = self.requests.reply(cmd.request_id)
        if done is not None:
            self.link.publish(self.topics.reply(cmd.request_id), _as_duplicate(done))
        else:  # answered again when it ends
            self._running[cmd.request_id] = self._running.get(cmd.request_id, 0) + 1

    async def _execute(self, rid: str, mode: str, hints: str, vsi_args: dict[str, Any]) -> None:
        args = dict(vsi_args, mode=mode, hints=hints, wait=True)
        try:
            result = await self.agent.api_request(args, lambda _: None)
            answer = reply_payload(rid, result=result, at=time.time())
        except ControlError as exc:
            answer = reply_payload(rid, error=exc.to_json(), at=time.time())
        except Exception as exc:  # never lose a command's answer to a bug
            self.log.exception("mqtt.command_failed", request_id=rid, error=str(exc))
            answer = reply_payload(rid, error={"code": "E_INTERNAL", "message": str(exc)}, at=time.time())
        self.requests.finish(rid, answer)
        self.link.publish(self.topics.reply(rid), answer)
        for _ in range(self._running.pop(rid, 0)):
            self.link.publish(self.topics.reply(rid), _as_duplicate(answer))
        self._save_later()

    # ------------------------------------------------------------------ state

    def on_event(self, port: Port, ev: Event) -> None:
        if not isinstance(ev, VsiAssociated | VsiDeassociated | VsiRejected):
            return
        doc: dict[str, Any] = {"vsi": key_text(ev.key), "time": now_iso(time.time())}
        if isinstance(ev, VsiAssociated):
            doc |= {"event": "associated", "mode": MODE_NAMES[ev.mode], "filters": [entry_json(e) for e in ev.entries]}
        elif isinstance(ev, VsiRejected):
            doc |= {"event": "rejected", "mode": MODE_NAMES[ev.mode], "status": ev.code, "keep": ev.keep}
            doc["meaning"] = status_meaning(ev.code)
        else:
            doc |= {"event": "deassociated", "reason": ev.reason, "status": ev.code}
        self.link.publish(self.topics.event, json.dumps(doc).encode())
        # the agent's own listener ran first (it was added first): its view is up to date
        self.publish_state(ev.key)

    def state_doc(self, key: VsiKey) -> dict[str, Any] | None:
        """The retained state of one VSI, or None when it is gone and not wanted."""
        agent = self.agent
        assert agent.port is not None
        rec = agent.port.vdp.vsis.get(key)
        wanted = agent.state.vsis.get(key)
        if rec is None and wanted is None:
            return None
        vsi = rec.vsi if rec is not None else wanted[0] if wanted is not None else None
        assert vsi is not None
        doc: dict[str, Any] = {
            "host": self.topics.host,
            "ifname": self.topics.ifname,
            "vsi": vsi_json(vsi),
            "wanted": MODE_NAMES[wanted[1]] if wanted is not None else None,
        }
        last = agent.status.get(key)
        if rec is not None and rec.confirmed is not None:
            state = MODE_NAMES[rec.confirmed]
        elif rec is not None:
            state = "pending"
        else:
            state = "rejected" if last and last.startswith("rejected") else "gone"
        doc["state"] = state
        doc["machine"] = rec.state.value if rec is not None else "none"
        doc["status"] = last
        granted = rec.entries if rec is not None and rec.confirmed is not None else ()
        doc["vids"] = sorted({e.vid for e in granted})
        doc["granted"] = [entry_json(e) for e in granted]
        ka = rec.last_answer if rec is not None else None
        loop_now = asyncio.get_running_loop().time()
        doc["last_keepalive"] = None if ka is None else now_iso(time.time() - (loop_now - ka))
        doc["updated"] = now_iso(time.time())
        return doc

    def publish_state(self, key: VsiKey) -> None:
        doc = self.state_doc(key)
        if doc is None:
            seen = self._published.pop(key, None)
            if seen is not None:
                self.link.publish(self.topics.vsi(seen[1]), b"", retain=True)
            return
        seg = vsiid_segment(key[1], key[2])
        rec = self.agent.port.vdp.vsis.get(key) if self.agent.port is not None else None
        self._published[key] = (time.time(), seg, rec.last_answer if rec is not None else None)
        self.link.publish(self.topics.vsi(seg), json.dumps(doc).encode(), retain=True)

    def republish(self) -> None:
        """Every VSI's state again (after a (re)connect)."""
        agent = self.agent
        if agent.port is None:
            return
        for key in dict.fromkeys([*agent.state.vsis, *agent.port.vdp.vsis, *self._published]):
            self.publish_state(key)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP)
            port = self.agent.port
            if port is None:
                continue
            cutoff = time.time() - KEEPALIVE_REPUBLISH
            for key, rec in port.vdp.vsis.items():
                seen = self._published.get(key)
                if seen is not None and seen[0] <= cutoff and rec.last_answer != seen[2]:
                    self.publish_state(key)

    # ------------------------------------------------------------------ the request log on disk

    def _load_requests(self) -> None:
        try:
            self.requests.load(json.loads(self.requests_file.read_text()))
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            self.log.warning("mqtt.request_log_unreadable", file=str(self.requests_file), error=str(exc))

    def _save_later(self) -> None:
        if self._save is None:
            self._save = asyncio.get_running_loop().call_later(SAVE_DELAY, self._save_requests)

    def _save_requests(self) -> None:
        self._save = None
        tmp = self.requests_file.with_suffix(".tmp")
        try:
            self.requests_file.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(self.requests.to_json()))
            os.replace(tmp, self.requests_file)
        except OSError as exc:
            self.log.warning("mqtt.request_log_not_saved", file=str(self.requests_file), error=str(exc))


def _as_duplicate(reply: bytes) -> bytes:
    doc = json.loads(reply)
    doc["duplicate"] = True
    return json.dumps(doc).encode()
