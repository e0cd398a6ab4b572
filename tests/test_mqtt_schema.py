"""The MQTT control plane's topics and payloads (evb/mqtt/schema.py, evb/mqtt/options.py): pure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evb.mqtt.options import BrokerUrlError, MqttOptions, parse_broker_url
from evb.mqtt.schema import (
    PayloadError,
    RequestLog,
    StationTopics,
    command_payload,
    manager_segment,
    parse_command,
    parse_station_topic,
    parse_vtdb_topic,
    reply_payload,
    segment,
    vtdb_topic,
)
from evb.settings import ConfigError, load_bridge, load_station
from evb.vdp.wire import manager_id_from_text

UUID = "6e2bd6a4-3f2a-4a2b-8f0e-000000000001"


def vsi(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "manager_id": "labmgr",
        "type_id": 5,
        "type_version": 4,
        "format": "uuid",
        "uuid": UUID,
        "filters": ["10-52:54:00:00:00:01"],
    }
    doc.update(over)
    return {k: v for k, v in doc.items() if v is not None}


def cmd(**over: Any) -> bytes:
    doc: dict[str, Any] = {"request_id": "r-1", "mode": "assoc", "vsi": vsi()}
    doc.update(over)
    return json.dumps({k: v for k, v in doc.items() if v is not None}).encode()


def test_a_command_parses_into_a_vsi() -> None:
    c = parse_command(command_payload("r-1", "preassoc-rr", vsi(), "to"))
    assert (c.request_id, c.mode, c.hints) == ("r-1", "preassoc-rr", "to")
    assert c.vsi.type_id == 5 and c.vsi.type_version == 4
    assert c.vsi.manager_id == manager_id_from_text("labmgr")
    assert [(e.vid, e.mac) for e in c.vsi.entries] == [(10, bytes.fromhex("525400000001"))]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b"not json", ""),
        (b"[1, 2]", ""),
        (cmd(request_id=None), "request_id"),
        (cmd(request_id="a/b"), "request_id"),
        (cmd(request_id="x" * 129), "request_id"),
        (cmd(request_id=7), "request_id"),
        (cmd(mode="associate"), "mode"),
        (cmd(hints="sideways"), "hints"),
        (cmd(schema=2), "schema"),
        (cmd(colour="red"), "colour"),
        (cmd(vsi=None), "vsi"),
        (cmd(vsi="labmgr"), "vsi"),
        (cmd(vsi=vsi(uuid=None)), "vsi.uuid"),
        (cmd(vsi=vsi(type_id="5")), "vsi.type_id"),
        (cmd(vsi=vsi(type_id=True)), "vsi.type_id"),
        (cmd(vsi=vsi(type_id=1 << 24)), "vsi.type_id"),
        (cmd(vsi=vsi(type_version=256)), "vsi.type_version"),
        (cmd(vsi=vsi(manager_id="a" * 17)), "vsi.manager_id"),
        (cmd(vsi=vsi(uuid="not-a-uuid")), "vsi.uuid"),
        (cmd(vsi=vsi(filters="10")), "vsi.filters"),
        (cmd(vsi=vsi(filters=[])), "vsi.filters"),
        (cmd(vsi=vsi(filters=["70000"])), "vsi.filters"),
        (cmd(vsi=vsi(format="oid")), "vsi.format"),
        (cmd(vsi=vsi(colour="red")), "vsi.colour"),
    ],
)
def test_a_bad_command_names_the_field(payload: bytes, field: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse_command(payload)
    assert info.value.field == field
    assert info.value.to_json()["field"] == field
    assert info.value.to_json()["code"] == "E_BAD_REQUEST"


def test_the_digest_tells_commands_apart_but_not_key_order() -> None:
    a = parse_command(cmd())
    b = parse_command(json.dumps({"vsi": vsi(), "mode": "assoc", "request_id": "r-1"}).encode())
    c = parse_command(cmd(mode="preassoc"))
    assert a.digest == b.digest != c.digest


def test_request_log_answers_again_and_refuses_reuse() -> None:
    log = RequestLog(size=3)
    assert log.begin("a", "d1") == "new"
    assert log.begin("a", "d1") == "pending"
    assert log.begin("a", "d2") == "conflict"
    log.finish("a", b"answer")
    assert log.begin("a", "d1") == "done" and log.reply("a") == b"answer"
    for rid in "bcd":
        log.begin(rid, "d")
    assert len(log) == 3 and log.reply("a") is None and log.begin("a", "d1") == "new"  # the oldest forgotten
    log.finish("d", b"x")
    again = RequestLog()
    again.load(log.to_json())
    assert again.begin("d", "d") == "done" and again.reply("d") == b"x"
    assert again.begin("b", "d") == "new"  # unfinished commands are not persisted
    again.load("garbage")  # a damaged file changes nothing
    assert len(again) == 2


def test_reply_payloads() -> None:
    ok = json.loads(reply_payload("r", result={"mode": "assoc"}, at=0.0))
    assert ok == {"request_id": "r", "ok": True, "time": "1970-01-01T00:00:00.000Z", "result": {"mode": "assoc"}}
    bad = json.loads(reply_payload(None, error={"code": "E_X"}, duplicate=True, at=1.5))
    assert bad["ok"] is False and bad["error"] == {"code": "E_X"} and bad["duplicate"] is True


def test_topics() -> None:
    t = StationTopics("hv1", "eth0")
    assert t.cmd == "evb/v1/station/hv1/eth0/cmd"
    assert t.reply("r-1") == "evb/v1/station/hv1/eth0/reply/r-1"
    assert t.vsi(UUID) == f"evb/v1/station/hv1/eth0/vsi/{UUID}"
    parsed = parse_station_topic(t.reply("r-1"))
    assert parsed is not None and (parsed.host, parsed.ifname, parsed.kind, parsed.rest) == (
        "hv1",
        "eth0",
        "reply",
        "r-1",
    )
    assert parse_station_topic("evb/v2/station/a/b/cmd") is None
    for bad in ("", "a/b", "a+", "#"):
        with pytest.raises(PayloadError):
            segment(bad, "host")
    with pytest.raises(PayloadError):
        StationTopics("hv/1", "eth0")


def test_vtdb_topics_round_trip() -> None:
    mgr = manager_id_from_text("labmgr")
    assert vtdb_topic(mgr, 5, 4) == "evb/v1/vtdb/labmgr/5/4"
    assert parse_vtdb_topic("evb/v1/vtdb/labmgr/5/4") == (mgr, 5, 4)
    odd = manager_id_from_text("a/b")  # a name that cannot be a topic level: hex
    assert manager_segment(odd) == odd.hex()
    assert parse_vtdb_topic(vtdb_topic(odd, 1, 0))[0] == odd
    for topic, field in [
        ("evb/v1/vtdb/labmgr/5", "topic"),
        ("evb/v1/vtdb/labmgr/x/4", "topic.type_id"),
        ("evb/v1/vtdb/labmgr/5/256", "topic.version"),
        ("evb/v1/vtdb/" + "m" * 17 + "/5/4", "topic.manager_id"),
    ]:
        with pytest.raises(PayloadError) as info:
            parse_vtdb_topic(topic)
        assert info.value.field == field


def test_broker_urls() -> None:
    a = parse_broker_url("mqtt://broker")
    assert (a.host, a.port, a.tls, a.username) == ("broker", 1883, False, None)
    b = parse_broker_url("mqtts://hv1:s%40cret@10.0.0.1:9999")
    assert (b.host, b.port, b.tls, b.username, b.password) == ("10.0.0.1", 9999, True, "hv1", "s@cret")
    assert str(b) == "mqtts://hv1@10.0.0.1:9999"  # no password in logs
    assert parse_broker_url("mqtts://x").port == 8883
    for bad in ("http://x", "mqtt://", "mqtt://x:99999", "mqtt://x/topic"):
        with pytest.raises(BrokerUrlError):
            parse_broker_url(bad)


def test_password_file_and_username_override_the_url(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("secret\n")
    addr = MqttOptions(broker="mqtt://a:b@h", username="hv1", password_file=str(pw)).address()
    assert (addr.username, addr.password) == ("hv1", "secret")
    with pytest.raises(BrokerUrlError, match="password_file"):
        MqttOptions(broker="mqtt://h", password_file=str(tmp_path / "missing")).address()


def test_mqtt_settings(tmp_path: Path) -> None:
    conf = tmp_path / "station.toml"
    conf.write_text('[station]\niface = "eth0"\n[mqtt]\nbroker = "mqtt://b:1884"\nhost = "hv7"\nkeepalive = 30\n')
    s = load_station(conf)
    assert s.mqtt is not None and (s.mqtt.broker, s.mqtt.name, s.mqtt.keepalive) == ("mqtt://b:1884", "hv7", 30)
    s = load_station(conf, mqtt={"broker": "mqtt://other", "host": None})
    assert s.mqtt is not None and (s.mqtt.broker, s.mqtt.name) == ("mqtt://other", "hv7")
    assert load_station(None, iface="eth0").mqtt is None
    b = load_bridge(None, ports=["p0"], mqtt={"broker": "mqtt://b", "name": "tor1"})
    assert b.mqtt is not None and b.mqtt.name == "tor1"


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ('[mqtt]\nbroker = "http://x"\n', "mqtt.broker", 4),
        ('[mqtt]\nbrokr = "mqtt://x"\n', "mqtt.brokr", 4),
        ('[mqtt]\nusername = "u"\n', "mqtt.broker", None),
        ('[mqtt]\nbroker = "mqtt://x"\nkeepalive = 1\n', "mqtt.keepalive", 5),
        ('[mqtt]\nbroker = "mqtt://x"\nhost = "a/b"\n', "mqtt.host", None),
    ],
)
def test_bad_mqtt_settings_name_the_key(tmp_path: Path, text: str, key: str, line: int | None) -> None:
    conf = tmp_path / "station.toml"
    conf.write_text('[station]\niface = "eth0"\n' + text)
    with pytest.raises(ConfigError) as info:
        load_station(conf)
    assert (info.value.key, info.value.line) == (key, line)


def test_a_bad_mqtt_option_names_the_option() -> None:
    with pytest.raises(ConfigError) as info:
        load_station(None, iface="eth0", mqtt={"broker": "tcp://x"})
    assert info.value.key == "--mqtt"
