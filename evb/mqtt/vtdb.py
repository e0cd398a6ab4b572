"""The VSI type database as the broker holds it: retained ``evb/v1/vtdb/...`` entries (pure, no I/O).

Each retained message ``evb/v1/vtdb/{manager_id}/{type_id}/{version}`` is one VSI type of one
version: a JSON object with the keys of a ``[[manager.type]]`` table of ``policy.toml`` but its
identity (``schema.VTDB_KEYS``: ``vlans``, ``assign_vid``, ``pcp``, ``max_entries``, ``macs``,
``groups``), in the same notation (``vlans = [10, "100-199"]``, ``macs = ["52:54:00:*"]``) and
checked by the same code (``evb.vepa_bridge.policy.vsi_type_from_entry``). ``{}`` is a type that
allows anything valid; an empty (retained) payload deletes the entry. Entries must be published
retained: one that is not is used while the bridge stays connected, but the next resync drops
it. The manager ID in the topic is written as ``schema.vtdb_topic`` writes it (its name, or its 32
hex digits for a UUID or a name with ``/+#``); any other spelling of the same ID is refused, so
that one type has one topic.

``VtdbView`` keeps, per topic, the last *valid* entry. An invalid message (a topic that does not
parse, a payload that is not a JSON object, an unknown key, a value the policy file would refuse)
is refused with a ``VtdbEntryError`` (a ``PayloadError``) that names the topic and the field; it is
counted, and the topic's previous valid entry stays in force.

Port limits (``[defaults]`` / ``[ports.NAME]`` of policy.toml) are not distributed: the database
built from the view has none. A bridge keeps its local limit, ``[vdp] max_vsis`` of bridge.toml,
which the port enforces whatever the policy says.

After a reconnect the broker sends every retained entry again. ``begin_resync``/``end_resync``
frame that: entries the broker did not send again were deleted while the bridge was away (and
the deletion was lost, e.g. the session expired), so they go, unless the broker sent nothing at
all while the view held entries: that is a broker that lost its retained store, not an operator
who deleted the whole database (which is seen live, entry by entry), and the view is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evb.mqtt.schema import PayloadError, json_object, parse_vtdb_topic, vtdb_topic
from evb.vdp.wire import format_manager_id
from evb.vepa_bridge.policy import PolicyError, VsiType, VsiTypeDatabase, vsi_type_from_entry


class VtdbEntryError(PayloadError):
    """An entry refused: ``topic`` and ``field`` (a key of the entry, or ``topic.type_id`` ...)."""

    def __init__(self, topic: str, field: str, message: str) -> None:
        super().__init__(field, message)
        self.topic = topic
        self.args = (f"{topic}: {field}: {message}" if field else f"{topic}: {message}",)

    def to_json(self) -> dict[str, Any]:
        return super().to_json() | {"topic": self.topic}


@dataclass(frozen=True, slots=True)
class Entry:
    manager_id: bytes
    type_id: int
    version: int
    vtype: VsiType
    payload: bytes  #: as received (a repeated retained message changes nothing)


class VtdbView:
    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}  #: topic → its last valid entry
        self.refused: dict[str, str] = {}  #: topic → why its last message was refused
        self.invalid = 0  #: messages refused so far
        self.last_error = ""
        self.revision = 0  #: changes so far (a new revision means a new database)
        self._seen: set[str] | None = None  #: topics sent since ``begin_resync``

    # ------------------------------------------------------------------ messages

    def update(self, topic: str, payload: bytes) -> bool:
        """Take one (retained) message; True if the database changed. ``VtdbEntryError`` (counted,
        the previous entry of the topic stays) if it is refused."""
        try:
            manager_id, type_id, version = parse_vtdb_topic(topic)
        except PayloadError as exc:
            if not payload:
                return False  # deleting what could never have been taken
            raise self._refuse(topic, exc.field, exc.message) from None
        canonical = vtdb_topic(manager_id, type_id, version)
        if topic != canonical:
            if not payload:
                return False
            raise self._refuse(topic, "topic", f"write this type's topic as {canonical}")
        if self._seen is not None:
            self._seen.add(topic)
        if not payload:
            self.refused.pop(topic, None)
            if self.entries.pop(topic, None) is None:
                return False
            self.revision += 1
            return True
        old = self.entries.get(topic)
        if old is not None and old.payload == payload:
            self.refused.pop(topic, None)
            return False
        try:
            doc = json_object(payload, "the entry")
        except PayloadError as exc:
            raise self._refuse(topic, exc.field, exc.message) from None
        try:
            vtype = vsi_type_from_entry(doc, type_id, version, source=topic)
        except PolicyError as exc:
            raise self._refuse(topic, exc.key, exc.message) from None
        self.refused.pop(topic, None)
        self.entries[topic] = Entry(manager_id, type_id, version, vtype, payload)
        if old is not None and old.vtype == vtype:
            return False  # written differently, the same type
        self.revision += 1
        return True

    def _refuse(self, topic: str, field: str, message: str) -> VtdbEntryError:
        if self._seen is not None:
            self._seen.add(topic)  # on the broker: its previous valid entry stays
        err = VtdbEntryError(topic, field, message)
        self.invalid += 1
        self.last_error = str(err)
        self.refused[topic] = str(err)
        return err

    # ------------------------------------------------------------------ resynchronisation

    def begin_resync(self) -> None:
        """The broker is about to send every retained entry again (a new subscription)."""
        self._seen = set()

    def end_resync(self) -> list[str] | None:
        """The entries not sent again are dropped; their topics. None: the broker sent nothing while
        the view held entries (a broker that lost its store): the view stays as it was."""
        seen, self._seen = self._seen, None
        if seen is None:
            return []
        if not seen and self.entries:
            return None
        gone = [t for t in self.entries if t not in seen]
        for topic in gone:
            del self.entries[topic]
        for topic in [t for t in self.refused if t not in seen]:
            del self.refused[topic]
        if gone:
            self.revision += 1
        return gone

    # ------------------------------------------------------------------ the database

    def database(self) -> VsiTypeDatabase:
        """The VSI type database of the valid entries (no port limits: module docstring)."""
        managers: dict[bytes, dict[tuple[int, int], VsiType]] = {}
        for e in self.entries.values():
            managers.setdefault(e.manager_id, {})[(e.type_id, e.version)] = e.vtype
        return VsiTypeDatabase(managers=managers)

    def status(self) -> dict[str, Any]:
        managers = sorted({format_manager_id(e.manager_id) for e in self.entries.values()})
        return {
            "entries": len(self.entries),
            "managers": managers,
            "invalid": self.invalid,
            "refused_topics": len(self.refused),
            "last_error": self.last_error,
            "revision": self.revision,
        }
