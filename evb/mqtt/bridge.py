"""The bridge agent's MQTT side: association events and retained VSI state out, the VSI type
database in.

``BridgeMqtt`` serves ``evb/v1/bridge/{name}/`` (``evb.mqtt.schema``; ``name`` is ``[mqtt] name``,
``--mqtt-name``, default the host name) for one ``BridgeAgent``, over one ``MqttLink`` (client id
``evb-bridge-{name}``, retained ``online``/``offline`` on ``status``, the last will):

* ``event`` (QoS 1, not retained): every association (a VSI confirmed in a mode, a change of mode
  or filters included) and every release, as it happens::

      {"event": "associated", "port": "eth1", "vsi": "labmgr/5a0f…", "vsiid": "5a0f…",
       "mode": "assoc", "type_id": 5, "type_version": 4, "filters": [{"vid": 10, …}],
       "time": "2024-…Z"}

  a release has ``"event": "deassociated"``, the last mode, type and filters, and ``reason``
  (``deassociated``, ``keepalive-timeout``, ``policy``, ``peer-lost``, ``rejected``), ``status``
  (the code of a refusal or a policy's release) and ``hard``;
* ``port/{ifname}/vsi/{vsiid}`` (retained): the state of each VSI the port holds (``port``,
  ``vsi``, ``vsiid``, ``mode``, ``type_id``, ``type_version``, ``filters``, ``updated``), cleared
  (empty retained payload) when it is released; a bridge that stops releases all. On every
  (re)connect all states are published again, and retained states of VSIs it does not hold
  (a crashed run's) are cleared.

With ``--policy mqtt://…`` the bridge follows the VSI type database of the broker: it subscribes
``evb/v1/vtdb/#`` (QoS 1) and feeds a ``VtdbView`` (``evb.mqtt.vtdb``: the entries, how they are
checked, why port limits are not distributed). After a connect it lets the retained entries arrive
(until none came for ``SETTLE_QUIET`` s, at most ``SETTLE_MAX`` s); until the first view has
settled, every request is refused with status 3 "unable to contact VSI manager" (not Hard:
``policy.manager_unreachable``). Then each change is applied ``DEBOUNCE`` s after the last message
of a burst (at most ``DEBOUNCE_MAX`` s after its first), the way ``evb bridge reload`` applies a
file (``BridgeAgent.apply_database``): VSIs still valid stay, those the new database forbids get an
unsolicited De-Associate (logged, ``reason: policy``, and published as above). An empty
database knows no manager: everything is refused with 3, which is what that code says. While the
broker is away the last database stays in force. ``evb bridge reload`` (or SIGHUP) applies the
current view again (there is no file to read; the bridge follows the broker live anyway).

A malformed entry never stops the agent: it is refused with a log line naming topic and field
(``mqtt.vtdb_entry_refused``), counted (``evb bridge status``: ``mqtt.vtdb``), and the topic's
previous valid entry stays in force.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from evb.control import MODE_NAMES, ControlError, ErrorCode, entry_json, key_text
from evb.mqtt.link import MqttLink
from evb.mqtt.options import MqttOptions
from evb.mqtt.schema import VTDB, BridgeTopics, PayloadError, now_iso, segment, vsiid_segment
from evb.mqtt.vtdb import VtdbEntryError, VtdbView
from evb.port import Event, Port
from evb.vdp.events import VsiAssociated, VsiDeassociated, VsiKey

if TYPE_CHECKING:
    from evb.vepa_bridge.daemon import BridgeAgent

SETTLE_QUIET: Final = 0.5  #: after a connect: the retained entries have arrived when none came for this long
SETTLE_MAX: Final = 3.0  #: ... or this long after the connect
DEBOUNCE: Final = 0.2  #: a change is applied this long after the last message of a burst
DEBOUNCE_MAX: Final = 1.0  #: ... or this long after the first


class BridgeMqtt:
    def __init__(self, agent: BridgeAgent, options: MqttOptions, log: Any, *, vtdb: str | None = None) -> None:
        """``vtdb``: the ``--policy mqtt://…`` URL when the bridge follows the broker's VSI type
        database (the broker is ``options``'; the URL only names the source in logs and answers)."""
        self.agent = agent
        self.log = log
        name = options.name or socket.gethostname()
        self.topics = BridgeTopics(name)
        self.ports: dict[str, str] = {}
        for ifname in agent.settings.ports:
            try:
                self.ports[ifname] = segment(ifname, "port")
            except PayloadError as exc:
                raise ControlError(ErrorCode.BAD_REQUEST, f"MQTT: port {ifname!r}: {exc.message}") from None
        self.source = vtdb
        self.view = VtdbView() if vtdb is not None else None
        self.loaded = False  #: the first view has settled and been applied
        self.applied = -1  #: the view's revision applied last
        self.link = MqttLink(
            options,
            client_id=options.client_id or f"evb-bridge-{name}",
            presence=self.topics.status,
            subscriptions=[(f"{VTDB}/#", 1)] if vtdb is not None else [],
            on_message=self.on_message,
            on_connect=self.on_connect,
            log=log.bind(mqtt=self.topics.base),
            own_retained=f"{self.topics.base}/port/+/vsi/+",
            owned=lambda: {topic for topic, _ in self._states.values()},
        )
        self.counters = {"events": 0, "foreign_topic": 0, "reloads": 0}
        #: (port, VSI) → (its retained topic, its state): what the broker shows of each VSI held
        self._states: dict[tuple[str, VsiKey], tuple[str, dict[str, Any]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._settling = False  #: a connect's retained entries are arriving
        self._settle_end = 0.0  #: loop time when settling ends at the latest
        self._burst_end: float | None = None  #: loop time when a burst's change is applied at the latest

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        self.link.start()

    async def close(self) -> None:
        """Clear the states still shown (a stopped bridge holds no VSI), say ``offline``, disconnect."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for topic, _ in self._states.values():
            self.link.publish(topic, b"", retain=True)
        self._states.clear()
        await self.link.close()

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = self.link.status() | {"topics": self.topics.base, "vsis_published": len(self._states)}
        out |= self.counters
        if self.view is not None:
            out["vtdb"] = self.view.status() | {"source": self.source, "loaded": self.loaded}
        return out

    # ------------------------------------------------------------------ association events, VSI state

    def listener(self, ifname: str) -> Callable[[Port, Event], None]:
        def on_event(port: Port, ev: Event) -> None:
            self.on_event(ifname, ev)

        return on_event

    def on_event(self, ifname: str, ev: Event) -> None:
        if not isinstance(ev, VsiAssociated | VsiDeassociated):
            return
        key = ev.key
        now = time.time()
        seg = vsiid_segment(key[1], key[2])
        if isinstance(ev, VsiAssociated):
            state = state_doc(ifname, ev, seg, now)
            topic = self.topics.port_vsi(self.ports[ifname], seg)
            old = self._states.get((ifname, key))
            if old is not None and old[0] != topic:
                self.link.publish(old[0], b"", retain=True)
            self._states[(ifname, key)] = (topic, state)
            self._publish_event(event_doc("associated", state, now))
            self.link.publish(topic, json.dumps(state).encode(), retain=True)
            return
        gone = self._states.pop((ifname, key), None)
        last = gone[1] if gone is not None else {"port": ifname, "vsi": key_text(key), "vsiid": seg}
        doc = event_doc("deassociated", last, now) | {"reason": ev.reason, "status": ev.code, "hard": ev.hard}
        self._publish_event(doc)
        if gone is not None:
            self.link.publish(gone[0], b"", retain=True)

    def _publish_event(self, doc: dict[str, Any]) -> None:
        self.counters["events"] += 1
        self.link.publish(self.topics.event, json.dumps(doc).encode(), qos=1)

    def on_connect(self) -> None:
        """Publish every VSI's state again; start taking the retained VSI type database."""
        for topic, state in self._states.values():
            self.link.publish(topic, json.dumps(state).encode(), retain=True)
        if self.view is not None:
            self.view.begin_resync()
            self._settling = True
            self._settle_end = asyncio.get_running_loop().time() + SETTLE_MAX
            self._arm(SETTLE_QUIET, self._settle_end)

    # ------------------------------------------------------------------ the VSI type database

    def on_message(self, topic: str, payload: bytes) -> None:
        if self.view is None or not topic.startswith(VTDB + "/"):
            self.counters["foreign_topic"] += 1
            self.log.warning("mqtt.foreign_topic_refused", topic=topic)
            return
        try:
            changed = self.view.update(topic, payload)
        except VtdbEntryError as exc:
            self.log.warning("mqtt.vtdb_entry_refused", topic=topic, field=exc.field, error=str(exc))
            changed = False
        loop_now = asyncio.get_running_loop().time()
        if self._settling:
            self._arm(SETTLE_QUIET, self._settle_end)
        elif changed:
            if self._burst_end is None:
                self._burst_end = loop_now + DEBOUNCE_MAX
            self._arm(DEBOUNCE, self._burst_end)

    def _arm(self, delay: float, latest: float) -> None:
        loop = asyncio.get_running_loop()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(min(loop.time() + delay, latest), self._due)

    def _due(self) -> None:
        self._timer = None
        self._burst_end = None
        view = self.view
        assert view is not None
        if self._settling:
            self._settling = False
            gone = view.end_resync()
            if gone is None:
                self.log.warning("mqtt.vtdb_kept", reason="the broker sent no entry after the reconnect; kept")
            elif gone:
                self.log.info("mqtt.vtdb_entries_gone", topics=gone)
        if not self.loaded or view.revision != self.applied:
            try:
                self.apply()
            except Exception as exc:  # never leave the timer chain broken
                self.log.exception("mqtt.vtdb_apply_failed", error=str(exc))

    def apply(self) -> dict[str, Any]:
        """Give the bridge the database of the current view (``BridgeAgent.apply_database``)."""
        view = self.view
        assert view is not None and self.source is not None
        first = not self.loaded
        self.applied = view.revision
        self.loaded = True
        self.counters["reloads"] += 1
        return self.agent.apply_database(
            view.database(),
            source=self.source,
            event="bridge.policy_loaded" if first else "bridge.policy_reloaded",
            entries=len(view.entries),
        )

    def reapply(self) -> dict[str, Any]:
        """``evb bridge reload``: the current view again (once it has arrived)."""
        if not self.loaded:
            raise ControlError(
                ErrorCode.NOT_ALLOWED,
                f"the VSI type database from {self.source} has not arrived yet (requests get status 3 until it has)",
            )
        return self.apply()


def state_doc(ifname: str, ev: VsiAssociated, vsiid: str, at: float) -> dict[str, Any]:
    """The retained state of one VSI on one port (``port/{ifname}/vsi/{vsiid}``)."""
    return {
        "port": ifname,
        "vsi": key_text(ev.key),
        "vsiid": vsiid,
        "mode": MODE_NAMES[ev.mode],
        "type_id": ev.type_id,
        "type_version": ev.type_version,
        "filters": [entry_json(e) for e in ev.entries],
        "updated": now_iso(at),
    }


def event_doc(kind: str, state: dict[str, Any], at: float) -> dict[str, Any]:
    """An ``event`` message about the VSI whose (last) state is ``state``."""
    keys = ("port", "vsi", "vsiid", "mode", "type_id", "type_version", "filters")
    return {"event": kind} | {k: state.get(k) for k in keys} | {"time": now_iso(at)}
