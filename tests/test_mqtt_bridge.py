"""The bridge's MQTT side without a broker: the VSI type database as documents and entries
(``evb/vepa_bridge/policy.py``: ``database_from_doc``, ``vtdb_entries``, ``vsi_type_from_entry``),
the view of the retained entries (``evb/mqtt/vtdb.py``), and ``BridgeMqtt``'s payloads, settling
and debouncing (``evb/mqtt/bridge.py``) with the link replaced by a recorder."""

from __future__ import annotations

import asyncio
import json
import tomllib
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import structlog

from evb.mqtt import bridge as mqtt_bridge
from evb.mqtt.bridge import BridgeMqtt
from evb.mqtt.options import MqttOptions
from evb.mqtt.schema import VTDB_KEYS, PayloadError, vtdb_topic
from evb.mqtt.vtdb import VtdbEntryError, VtdbView
from evb.settings import BridgeSettings, ConfigError
from evb.vdp.bridge import PolicyRequest, Verdict
from evb.vdp.events import VsiAssociated, VsiDeassociated, VsiRejected
from evb.vdp.wire import FilterEntry, VdpMode, VdpStatus, VdpStatusCode, VsiidFormat, VsiTlv, manager_id_from_text
from evb.vepa_bridge.daemon import mqtt_options, shown_url
from evb.vepa_bridge.policy import (
    ENTRY_KEYS,
    PolicyError,
    VsiTypeDatabase,
    database_from_doc,
    is_mqtt_url,
    manager_unreachable,
    parse_policy,
    vsi_type_from_entry,
    vtdb_entries,
)
from tests.helpers import LABMGR, U1, U2
from tests.test_policy import ERRORS, EXAMPLE, UUID_MGR

# ---------------------------------------------------------------------------------------------- documents


def test_a_document_gives_the_same_database_as_the_file() -> None:
    doc = tomllib.loads(EXAMPLE)
    assert database_from_doc(doc, source="policy.json") == parse_policy(EXAMPLE)
    assert database_from_doc(json.loads(json.dumps(doc)), source="x") == parse_policy(EXAMPLE)  # JSON too
    assert database_from_doc({}, source="x") == VsiTypeDatabase()


DOC_ERRORS = [e for e in ERRORS if e[1]]  # all but the TOML syntax error: a document has no syntax


@pytest.mark.parametrize(("text", "key", "line", "message"), DOC_ERRORS, ids=[f"{e[1]}-{e[2]}" for e in DOC_ERRORS])
def test_document_mistakes_name_source_and_key(text: str, key: str, line: int, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        database_from_doc(tomllib.loads(text), source="evb/v1/x")
    err = info.value
    assert (err.path, err.key, err.line) == ("evb/v1/x", key, None)  # the key path, no line
    assert err.message.startswith(message), err.message
    assert str(err) == f"evb/v1/x: {key}: {err.message}"


# ---------------------------------------------------------------------------------------------- entries


def test_entry_keys_are_the_schemas() -> None:
    assert set(VTDB_KEYS) == ENTRY_KEYS


def test_vtdb_entries_in_policy_notation() -> None:
    entries = vtdb_entries(parse_policy(EXAMPLE))
    assert list(entries) == [(LABMGR, 5, 4), (LABMGR, 6, 1), (LABMGR, 6, 2)]  # a manager without types: none
    assert entries[(LABMGR, 5, 4)] == {
        "vlans": [10, 20, "100-199"],
        "assign_vid": 10,
        "pcp": [0, 1, 2],
        "max_entries": 4,
        "macs": ["52:54:00:*", "02:00:00:00:01:*"],
        "groups": [1001, 1002],
    }
    assert entries[(LABMGR, 6, 1)] == entries[(LABMGR, 6, 2)] == {}  # allows anything valid
    whole = parse_policy('[[manager]]\nid = "m"\n[[manager.type]]\nid = 1\nversion = 0\nmacs = ["02:00:00:00:00:01"]\n')
    assert list(vtdb_entries(whole).values()) == [{"macs": ["02:00:00:00:00:01"]}]  # a whole MAC: no *


ALL_FEATURES = (
    EXAMPLE
    + """
[[manager.type]]
id = 16777215
versions = [0, 255]
vlans = [1, 3, "5-6", "4000-4094", 2000]
assign_vid = 4094
pcp = [7]
max_entries = 243
macs = ["02:*", "52:54:00:00:00:01"]
groups = [1, 4294967295]
"""
)


def test_entries_round_trip_through_json() -> None:
    db = parse_policy(ALL_FEATURES)
    for (mid, type_id, version), entry in vtdb_entries(db).items():
        assert set(entry) <= set(VTDB_KEYS)
        back = vsi_type_from_entry(json.loads(json.dumps(entry)), type_id, version, source="t")
        assert back == replace(db.managers[mid][(type_id, version)], versions=frozenset({version}))
    assert vtdb_entries(db)[(UUID_MGR, 16777215, 255)]["vlans"] == [1, 3, "5-6", 2000, "4000-4094"]


@pytest.mark.parametrize(
    ("entry", "key", "message"),
    [
        ({"id": 5}, "id", "unknown key (id and version are in the topic) (known: assign_vid, groups,"),
        ({"version": 4}, "version", "unknown key (id and version are in the topic)"),
        ({"vlan": [10]}, "vlan", "unknown key (known:"),
        ({"vlans": [0]}, "vlans", "element 0: 0 is outside 1..4094"),
        ({"vlans": "10"}, "vlans", "must be an array, not '10'"),
        ({"vlans": [10], "assign_vid": 20}, "assign_vid", "20 is not one of the type's vlans"),
        ({"pcp": [True]}, "pcp", "element 0: must be an integer, not True"),
        ({"max_entries": 1.0}, "max_entries", "must be an integer, not 1.0"),
        ({"macs": ["01:00:5e:*"]}, "macs", "element 0: '01:00:5e:*': a group (multicast)"),
        ({"groups": []}, "groups", "is empty, so nothing would be allowed"),
    ],
)
def test_entry_mistakes_name_the_key(entry: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        vsi_type_from_entry(entry, 5, 4, source="evb/v1/vtdb/labmgr/5/4")
    assert (info.value.key, info.value.line) == (key, None)
    assert info.value.message.startswith(message), info.value.message
    assert str(info.value).startswith(f"evb/v1/vtdb/labmgr/5/4: {key}: ")


# ---------------------------------------------------------------------------------------------- the view

T54 = vtdb_topic(LABMGR, 5, 4)


def put(view: VtdbView, topic: str, entry: dict[str, Any] | bytes) -> bool:
    return view.update(topic, entry if isinstance(entry, bytes) else json.dumps(entry).encode())


def decide(db: VsiTypeDatabase, vid: int, *, mgr: bytes = LABMGR, type_id: int = 5, version: int = 4) -> int:
    """The status code ``db`` answers an association of one VID (0: accepted)."""
    entry = FilterEntry(vid=vid, mac=bytes.fromhex("525400000001"))
    tlv = VsiTlv(VdpMode.ASSOC, VdpStatus(), type_id, version, VsiidFormat.UUID, U1, 2, (entry,))
    d = db.decide(PolicyRequest(manager_id=mgr, tlv=tlv, current=None))
    return 0 if d.verdict is Verdict.ACCEPT else d.code


def test_view_builds_the_database_of_its_entries() -> None:
    view = VtdbView()
    assert view.database() == VsiTypeDatabase()
    assert decide(view.database(), 10) == VdpStatusCode.UNABLE_TO_CONTACT_VSI_MANAGER  # empty: no manager
    assert put(view, T54, {"vlans": [10, 20]}) and view.revision == 1
    assert put(view, vtdb_topic(UUID_MGR, 6, 1), {})
    db = view.database()
    assert decide(db, 10) == 0 and decide(db, 30) == VdpStatusCode.INVALID_VID_GROUP_MAC
    assert decide(db, 30, mgr=UUID_MGR, type_id=6, version=1) == 0
    assert decide(db, 10, version=5) == VdpStatusCode.OTHER_FAILURE
    assert db.defaults == db.limits("eth1")  # port limits are not distributed
    # the same payload again (a reconnect's retained copy): no change
    assert not put(view, T54, {"vlans": [10, 20]}) and view.revision == 2
    assert not put(view, T54, b'{"vlans": [10,20]}')  # written differently, the same type
    assert put(view, T54, {"vlans": [20]}) and decide(view.database(), 10) == VdpStatusCode.INVALID_VID_GROUP_MAC
    # deleted (empty retained payload)
    assert view.update(T54, b"") and decide(view.database(), 20) == VdpStatusCode.UNABLE_TO_CONTACT_VSI_MANAGER
    assert not view.update(T54, b"")  # deleting it again changes nothing
    assert view.status() | {"managers": []} == {
        "entries": 1,
        "managers": [],
        "invalid": 0,
        "refused_topics": 0,
        "last_error": "",
        "revision": 4,
    }


def test_the_database_of_all_entries_decides_as_the_file() -> None:
    db = parse_policy(ALL_FEATURES)
    view = VtdbView()
    for (mid, type_id, version), entry in vtdb_entries(db).items():
        assert put(view, vtdb_topic(mid, type_id, version), entry)
    got = view.database()
    for (mid, type_id, version), _ in vtdb_entries(db).items():
        for vid in (1, 2, 5, 10, 150, 2000, 4094):
            assert decide(got, vid, mgr=mid, type_id=type_id, version=version) == decide(
                db, vid, mgr=mid, type_id=type_id, version=version
            )


@pytest.mark.parametrize(
    ("topic", "payload", "field", "message"),
    [
        (T54, b"{not json", "", "the entry is not JSON"),
        (T54, b"[10]", "", "the entry must be a JSON object, not list"),
        (T54, b'{"vlans": [5000]}', "vlans", "element 0: 5000 is outside 1..4094"),
        (T54, b'{"vlans": [10], "assign_vid": 11}', "assign_vid", "11 is not one of the type's vlans"),
        (T54, b'{"id": 5}', "id", "unknown key (id and version are in the topic)"),
        (T54, b'{"pcp": [8]}', "pcp", "element 0: 8 is outside 0..7"),
        ("evb/v1/vtdb/labmgr/5", b"{}", "topic", "'evb/v1/vtdb/labmgr/5' is not evb/v1/vtdb/MANAGER/TYPE_ID/VERSION"),
        ("evb/v1/vtdb/labmgr/x/4", b"{}", "topic.type_id", "'x' is not a number 0..16777215"),
        ("evb/v1/vtdb/labmgr/5/256", b"{}", "topic.version", "'256' is not a number 0..255"),
        ("evb/v1/vtdb/a-name-of-17-chars/5/4", b"{}", "topic.manager_id", "'a-name-of-17-chars'"),
        ("evb/v1/vtdb/labmgr/05/4", b"{}", "topic", f"write this type's topic as {T54}"),
        (f"evb/v1/vtdb/{LABMGR.hex()}/5/4", b"{}", "topic", f"write this type's topic as {T54}"),
    ],
)
def test_invalid_entries_are_refused_counted_and_the_old_one_stays(
    topic: str, payload: bytes, field: str, message: str
) -> None:
    view = VtdbView()
    put(view, T54, {"vlans": [10]})
    before = view.database()
    with pytest.raises(VtdbEntryError) as info:
        view.update(topic, payload)
    err = info.value
    assert isinstance(err, PayloadError) and err.topic == topic and err.field == field
    assert err.message.startswith(message), err.message
    assert str(err).startswith(f"{topic}: {field}: " if field else f"{topic}: ")
    assert err.to_json()["topic"] == topic and err.to_json()["field"] == field
    assert view.database() == before and view.revision == 1
    assert view.invalid == 1 and view.last_error == str(err) and view.refused == {topic: str(err)}
    if topic == T54:  # a valid entry on that topic again: no longer refused (the count stays)
        put(view, T54, {"vlans": [11]})
        assert view.refused == {} and view.invalid == 1


def test_deleting_an_invalid_topic_is_no_error() -> None:
    view = VtdbView()
    assert not view.update("evb/v1/vtdb/labmgr/5", b"") and view.invalid == 0


def test_resync_drops_entries_the_broker_no_longer_has() -> None:
    view = VtdbView()
    t6 = vtdb_topic(LABMGR, 6, 1)
    put(view, T54, {"vlans": [10]})
    put(view, t6, {})
    view.begin_resync()
    assert not put(view, T54, {"vlans": [10]})  # sent again, unchanged
    assert view.end_resync() == [t6]
    assert list(view.entries) == [T54] and view.revision == 3
    # a broker that sends nothing at all lost its store: the view stays
    view.begin_resync()
    assert view.end_resync() is None and list(view.entries) == [T54]
    # an invalid copy still says the topic exists: its previous valid entry stays
    view.begin_resync()
    with pytest.raises(VtdbEntryError):
        put(view, T54, b"{")
    assert view.end_resync() == [] and list(view.entries) == [T54]


# ---------------------------------------------------------------------------------------------- policy helpers


def test_manager_unreachable_is_code_3_not_hard_keep_if_held() -> None:
    policy = manager_unreachable("not yet")
    tlv = VsiTlv(VdpMode.ASSOC, VdpStatus(), 5, 4, VsiidFormat.UUID, U1, 1, (FilterEntry(vid=10),))
    new = policy(PolicyRequest(manager_id=LABMGR, tlv=tlv, current=None))
    held = policy(PolicyRequest(manager_id=LABMGR, tlv=tlv, current=VdpMode.ASSOC))
    assert (new.verdict, new.code, new.hard, new.keep, new.reason) == (Verdict.REJECT, 3, False, False, "not yet")
    assert (held.code, held.hard, held.keep) == (3, False, True)


def test_mqtt_policy_urls_and_the_broker() -> None:
    assert is_mqtt_url("mqtt://h") and is_mqtt_url("mqtts://h:8883")
    assert not is_mqtt_url("policy.toml") and not is_mqtt_url(None) and not is_mqtt_url("")
    base = BridgeSettings(ports=("eth1",), socket="/x")
    assert mqtt_options(base) is None
    assert mqtt_options(replace(base, policy="p.toml")) is None
    assert mqtt_options(replace(base, policy="mqtt://b:1884")) == MqttOptions(broker="mqtt://b:1884")
    opts = MqttOptions(broker="mqtt://u:pw@B:1884", name="tor1")
    assert mqtt_options(replace(base, mqtt=opts, policy="mqtt://b:1884")) is opts  # same broker, [mqtt]'s user
    with pytest.raises(ConfigError) as info:
        mqtt_options(replace(base, mqtt=opts, policy="mqtt://b:1883"))
    assert "mqtt://b:1883 is not the MQTT broker mqtt://u@b:1884" in str(info.value)
    with pytest.raises(ConfigError, match="nothing may follow host:port"):
        mqtt_options(replace(base, policy="mqtt://b/vtdb"))
    assert shown_url("mqtt://u:secret@b:1") == "mqtt://u@b:1"


def test_bridge_run_takes_the_policy_url_as_the_broker(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from evb import logconfig
    from evb.cli import main
    from evb.vepa_bridge import daemon

    started: list[BridgeSettings] = []
    monkeypatch.setattr(daemon, "main_run", lambda settings, **kw: started.append(settings) or 0)
    monkeypatch.setattr(logconfig, "configure", lambda *a: None)
    assert main(["bridge", "run", "--port", "veth1", "--policy", "mqtt://b:1884", "--mqtt-name", "tor1"]) == 0
    assert started[-1].mqtt == MqttOptions(broker="mqtt://b:1884", name="tor1")
    assert started[-1].policy == "mqtt://b:1884"  # no file read
    assert main(["bridge", "run", "--port", "veth1", "--policy", "mqtt://b:1884", "--mqtt", "mqtt://b:1884"]) == 0
    rc = main(["bridge", "run", "--port", "veth1", "--policy", "mqtt://a:1883", "--mqtt", "mqtt://b:1883"])
    assert rc == 2
    assert (
        "evb bridge run: command line: policy: the VSI type database's broker mqtt://a:1883" in capsys.readouterr().err
    )
    config = tmp_path / "bridge.toml"
    config.write_text('[bridge]\nports = ["veth1"]\npolicy = "mqtt://c:1885"\n[mqtt]\nname = "tor2"\n')
    assert main(["bridge", "run", "--config", str(config)]) == 2  # [mqtt] keys, no broker: say so
    assert "no broker" in capsys.readouterr().err
    config.write_text('[bridge]\nports = ["veth1"]\npolicy = "mqtt://c:1885"\n')
    assert main(["bridge", "run", "--config", str(config)]) == 0
    assert started[-1].mqtt == MqttOptions(broker="mqtt://c:1885")


# ---------------------------------------------------------------------------------------------- BridgeMqtt


class Recorder:
    """Stands for the MqttLink: what would be published."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bool]] = []

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        self.sent.append((topic, payload, retain))

    def status(self) -> dict[str, Any]:
        return {"connected": True}

    async def close(self) -> None:
        pass

    def take(self) -> list[tuple[str, Any, bool]]:
        out = [(t, json.loads(p) if p else None, r) for t, p, r in self.sent]
        self.sent.clear()
        return out


class FakeAgent:
    def __init__(self) -> None:
        self.settings = SimpleNamespace(ports=("eth1", "eth2"))
        self.applied: list[tuple[VsiTypeDatabase, str, dict[str, Any]]] = []

    def apply_database(self, database: VsiTypeDatabase, *, source: str, event: str, **extra: Any) -> dict[str, Any]:
        self.applied.append((database, event, extra))
        return {"file": source, "released": 0, **extra}


def make(vtdb: str | None = None) -> tuple[BridgeMqtt, FakeAgent, Recorder]:
    agent = FakeAgent()
    bm = BridgeMqtt(agent, MqttOptions(broker="mqtt://127.0.0.1:9", name="tor1"), structlog.get_logger(), vtdb=vtdb)  # type: ignore[arg-type]
    rec = Recorder()
    bm.link = rec  # type: ignore[assignment]
    return bm, agent, rec


VSI1 = (LABMGR, VsiidFormat.UUID, U1)
S1 = "5a0f1c2e-0001-4d3c-8e21-0a0000000001"
ENTRY = FilterEntry(vid=10, mac=bytes.fromhex("020000000101"))


def associated(mode: VdpMode = VdpMode.ASSOC, entries: tuple[FilterEntry, ...] = (ENTRY,)) -> VsiAssociated:
    return VsiAssociated(key=VSI1, mode=mode, type_id=5, type_version=4, entries=entries)


def test_client_id_and_topics() -> None:
    bm, _, _ = make()
    assert bm.topics.base == "evb/v1/bridge/tor1"
    agent = FakeAgent()
    real = BridgeMqtt(agent, MqttOptions(broker="mqtt://h", name="tor1"), structlog.get_logger())  # type: ignore[arg-type]
    assert (real.link.client_id, real.link.presence, real.link.subscriptions) == (
        "evb-bridge-tor1",
        "evb/v1/bridge/tor1/status",
        [],
    )
    follower = BridgeMqtt(agent, MqttOptions(broker="mqtt://h", client_id="c"), structlog.get_logger(), vtdb="x")  # type: ignore[arg-type]
    assert follower.link.client_id == "c" and follower.link.subscriptions == [("evb/v1/vtdb/#", 1)]


def test_association_event_and_retained_state() -> None:
    bm, _, rec = make()
    bm.on_event("eth1", associated(VdpMode.PREASSOC))
    bm.on_event("eth1", associated())
    state_topic = f"evb/v1/bridge/tor1/port/eth1/vsi/{S1}"
    (t1, e1, r1), (t2, s1, r2), (t3, e2, _), (t4, s2, _) = rec.take()
    assert (t1, r1, t2, r2, t3, t4) == ("evb/v1/bridge/tor1/event", False, state_topic, True, t1, state_topic)
    filters = [{"vid": 10, "pcp": 0, "ps": False, "mac": "02:00:00:00:01:01"}]
    assert e1.pop("time").endswith("Z") and s1.pop("updated").endswith("Z")
    assert e1 == {
        "event": "associated",
        "port": "eth1",
        "vsi": f"labmgr/{S1}",
        "vsiid": S1,
        "mode": "preassoc",
        "type_id": 5,
        "type_version": 4,
        "filters": filters,
    }
    assert s1 == {k: v for k, v in e1.items() if k != "event"}
    assert e2["mode"] == s2["mode"] == "assoc"
    # released: an event with the last state and why, and the retained state cleared
    bm.on_event("eth1", VsiDeassociated(key=VSI1, reason="policy", code=5, hard=True))
    (t5, e3, r5), (t6, cleared, r6) = rec.take()
    assert (t5, r5, t6, cleared, r6) == ("evb/v1/bridge/tor1/event", False, state_topic, None, True)
    e3.pop("time")
    assert e3 == {
        "event": "deassociated",
        "port": "eth1",
        "vsi": f"labmgr/{S1}",
        "vsiid": S1,
        "mode": "assoc",
        "type_id": 5,
        "type_version": 4,
        "filters": filters,
        "reason": "policy",
        "status": 5,
        "hard": True,
    }
    # other events say nothing
    bm.on_event("eth1", VsiRejected(key=VSI1, mode=VdpMode.ASSOC, code=3, keep=False, hard=False))
    assert rec.take() == [] and bm.counters["events"] == 3


def test_states_are_per_port_and_republished_on_connect() -> None:
    bm, _, rec = make()
    bm.on_event("eth1", associated())
    bm.on_event("eth2", associated())
    bm.on_event("eth2", VsiAssociated(key=(LABMGR, VsiidFormat.UUID, U2), mode=VdpMode.ASSOC, type_id=5,
                                      type_version=4, entries=()))  # fmt: skip
    before = {t: p for t, p, r in rec.take() if r}
    assert len(before) == 3
    bm.on_connect()
    again = rec.take()
    assert all(r for _, _, r in again) and {t: p for t, p, _ in again} == before  # same states, same times
    bm.on_event("eth2", VsiDeassociated(key=VSI1, reason="keepalive-timeout"))
    rec.take()
    bm.on_connect()
    assert sorted(t for t, _, _ in rec.take()) == sorted(t for t in before if "eth2" not in t or S1 not in t)
    assert bm.status()["vsis_published"] == 2 and "vtdb" not in bm.status()


@pytest.mark.asyncio
async def test_close_clears_the_states_still_shown() -> None:
    bm, _, rec = make()
    bm.on_event("eth1", associated())
    rec.take()
    await bm.close()
    assert rec.take() == [(f"evb/v1/bridge/tor1/port/eth1/vsi/{S1}", None, True)]


def test_messages_outside_the_vtdb_are_refused() -> None:
    bm, _, _ = make()
    bm.on_message("evb/v1/vtdb/labmgr/5/4", b"{}")  # not following a vtdb
    bm, _, _ = make(vtdb="mqtt://b:1")
    bm.on_message("evb/v1/bridge/tor1/event", b"{}")
    assert bm.counters["foreign_topic"] == 1


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mqtt_bridge, "SETTLE_QUIET", 0.05)
    monkeypatch.setattr(mqtt_bridge, "SETTLE_MAX", 0.3)
    monkeypatch.setattr(mqtt_bridge, "DEBOUNCE", 0.03)
    monkeypatch.setattr(mqtt_bridge, "DEBOUNCE_MAX", 0.12)


def msg(entry: dict[str, Any] | None) -> bytes:
    return b"" if entry is None else json.dumps(entry).encode()


@pytest.mark.asyncio
@pytest.mark.usefixtures("fast")
async def test_vtdb_settles_then_follows_changes_debounced() -> None:
    bm, agent, _ = make(vtdb="mqtt://b:1")
    with pytest.raises(Exception, match="has not arrived yet"):
        bm.reapply()
    bm.on_connect()
    for vid in (10, 11, 12):  # the retained entries arrive
        bm.on_message(T54, msg({"vlans": [vid]}))
        await asyncio.sleep(0.02)
    assert agent.applied == [] and not bm.loaded
    await asyncio.sleep(0.1)
    assert bm.loaded and len(agent.applied) == 1
    db, event, extra = agent.applied[0]
    assert event == "bridge.policy_loaded" and extra == {"entries": 1} and decide(db, 12) == 0
    # a burst of changes: applied once, after the last
    bm.on_message(T54, msg({"vlans": [20]}))
    bm.on_message(vtdb_topic(LABMGR, 6, 1), msg({}))
    bm.on_message(T54, msg({"vlans": [21]}))
    await asyncio.sleep(0.1)
    assert len(agent.applied) == 2
    db, event, extra = agent.applied[1]
    assert event == "bridge.policy_reloaded" and extra == {"entries": 2} and decide(db, 21) == 0
    # an invalid entry, an unchanged one: nothing applied, the bad one counted
    bm.on_message(T54, b'{"vlans": [5000]}')
    bm.on_message(T54, msg({"vlans": [21]}))
    await asyncio.sleep(0.1)
    assert len(agent.applied) == 2
    st = bm.status()["vtdb"]
    assert (st["entries"], st["invalid"], st["loaded"], st["source"]) == (2, 1, True, "mqtt://b:1")
    assert st["last_error"] == f"{T54}: vlans: element 0: 5000 is outside 1..4094"
    # a change that never stops arriving is applied after DEBOUNCE_MAX anyway
    for vid in range(30, 40):
        bm.on_message(T54, msg({"vlans": [vid]}))
        await asyncio.sleep(0.02)
    assert len(agent.applied) >= 3  # during the burst
    await asyncio.sleep(0.1)
    assert decide(agent.applied[-1][0], 39) == 0
    # reload: the current view again
    assert bm.reapply() == {"file": "mqtt://b:1", "released": 0, "entries": 2}
    await bm.close()


@pytest.mark.asyncio
@pytest.mark.usefixtures("fast")
async def test_an_empty_vtdb_settles_too_and_a_reconnect_resyncs() -> None:
    bm, agent, _ = make(vtdb="mqtt://b:1")
    bm.on_connect()
    await asyncio.sleep(0.1)
    assert bm.loaded and decide(agent.applied[0][0], 10) == VdpStatusCode.UNABLE_TO_CONTACT_VSI_MANAGER
    bm.on_message(T54, msg({}))
    bm.on_message(vtdb_topic(LABMGR, 6, 1), msg({}))
    await asyncio.sleep(0.1)
    assert len(agent.applied) == 2
    # reconnect: the broker sends only T54 again (the other was deleted meanwhile)
    bm.on_connect()
    bm.on_message(T54, msg({}))
    await asyncio.sleep(0.1)
    assert len(agent.applied) == 3 and list(bm.view.entries) == [T54]  # type: ignore[union-attr]
    # reconnect: the broker sends nothing: kept, nothing applied
    bm.on_connect()
    await asyncio.sleep(0.1)
    assert len(agent.applied) == 3 and list(bm.view.entries) == [T54]  # type: ignore[union-attr]
    await bm.close()


@pytest.mark.asyncio
@pytest.mark.usefixtures("fast")
async def test_settling_ends_after_settle_max_however_busy() -> None:
    bm, _, _ = make(vtdb="mqtt://b:1")
    bm.on_connect()
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not bm.loaded and loop.time() - start < 1.0:
        bm.on_message(vtdb_topic(LABMGR, int((loop.time() - start) * 1000), 1), msg({}))
        await asyncio.sleep(0.01)
    assert bm.loaded and 0.25 <= loop.time() - start < 0.5


def test_manager_id_text_of_the_topic() -> None:
    assert vtdb_topic(manager_id_from_text("5a0f1c2e-0000-4d3c-8e21-0a00000000ff"), 1, 2) == (
        "evb/v1/vtdb/5a0f1c2e00004d3c8e210a00000000ff/1/2"
    )
