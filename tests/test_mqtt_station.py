"""The station agent's MQTT side (StationMqtt) with a stand-in agent: what it executes and answers.

No broker: the link is never started, its outgoing queue is read instead.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import structlog

from evb.control import ControlError, ErrorCode
from evb.mqtt.options import MqttOptions
from evb.mqtt.schema import command_payload
from evb.mqtt.station import StationMqtt

pytestmark = pytest.mark.asyncio

VSI = {
    "manager_id": "labmgr",
    "type_id": 5,
    "type_version": 4,
    "uuid": "6e2bd6a4-3f2a-4a2b-8f0e-000000000001",
    "filters": ["10-52:54:00:00:00:01"],
}


class FakeAgent:
    """What StationMqtt uses of a StationAgent; ``api_request`` waits until ``release`` is set."""

    def __init__(self, tmp: Path) -> None:
        self.settings = SimpleNamespace(iface="eth0", state=str(tmp / "state.json"))
        self.calls: list[dict[str, Any]] = []
        self.release = asyncio.Event()
        self.refuse = False
        self.port = None

    async def api_request(self, args: dict[str, Any], notify: Any) -> Any:
        self.calls.append(args)
        await self.release.wait()
        if self.refuse:
            raise ControlError(ErrorCode.REJECTED, "the bridge refused it", {"status": 5})
        return {"vsi": "labmgr/…", "mode": args["mode"]}


def make(tmp: Path) -> tuple[FakeAgent, StationMqtt]:
    agent = FakeAgent(tmp)
    mq = StationMqtt(agent, MqttOptions(broker="mqtt://127.0.0.1:9", name="hv1"), structlog.get_logger())  # type: ignore[arg-type]
    return agent, mq


def sent(mq: StationMqtt) -> list[tuple[str, dict[str, Any]]]:
    out = [(t, json.loads(p)) for t, p, _ in mq.link._queue]
    mq.link._queue.clear()
    return out


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_command_runs_once_and_its_duplicates_are_answered_again(tmp_path: Path) -> None:
    agent, mq = make(tmp_path)
    cmd = mq.topics.cmd
    assert cmd == "evb/v1/station/hv1/eth0/cmd"
    payload = command_payload("r1", "assoc", VSI)
    mq.on_message(cmd, payload)
    await settle()
    mq.on_message(cmd, payload)  # redelivered while it still runs
    await settle()
    assert len(agent.calls) == 1 and agent.calls[0]["wait"] is True and agent.calls[0]["mode"] == "assoc"
    agent.release.set()
    await settle()
    replies = sent(mq)
    assert [t for t, _ in replies] == [mq.topics.reply("r1")] * 2
    assert replies[0][1]["ok"] and "duplicate" not in replies[0][1]
    assert replies[1][1]["duplicate"] is True and replies[1][1]["result"] == replies[0][1]["result"]
    mq.on_message(cmd, payload)  # and after it ended
    assert sent(mq)[0][1]["duplicate"] is True
    assert len(agent.calls) == 1 and mq.counters["duplicates"] == 2
    # the log of answers survives a restart of the agent
    mq._save_requests()
    agent2, mq2 = make(tmp_path)
    mq2._load_requests()
    mq2.on_message(cmd, payload)
    await settle()
    assert agent2.calls == [] and sent(mq2)[0][1]["duplicate"] is True


async def test_a_refusal_is_an_error_reply(tmp_path: Path) -> None:
    agent, mq = make(tmp_path)
    agent.refuse = True
    agent.release.set()
    mq.on_message(mq.topics.cmd, command_payload("r2", "assoc", VSI))
    await settle()
    (topic, reply), *_ = sent(mq)
    assert topic == mq.topics.reply("r2") and reply["ok"] is False
    assert reply["error"] == {"code": "E_REJECTED", "message": "the bridge refused it", "data": {"status": 5}}


async def test_a_request_id_reused_for_another_command_is_refused(tmp_path: Path) -> None:
    agent, mq = make(tmp_path)
    agent.release.set()
    mq.on_message(mq.topics.cmd, command_payload("r3", "assoc", VSI))
    mq.on_message(mq.topics.cmd, command_payload("r3", "deassoc", VSI))
    await settle()
    errors = [r for _, r in sent(mq) if not r["ok"]]
    assert [e["error"]["code"] for e in errors] == ["E_CONFLICT"] and errors[0]["error"]["field"] == "request_id"
    assert len(agent.calls) == 1 and mq.counters["conflicts"] == 1


async def test_messages_on_topics_it_does_not_own_are_refused(tmp_path: Path) -> None:
    agent, mq = make(tmp_path)
    agent.release.set()
    for topic in ("evb/v1/station/hv2/eth0/cmd", "evb/v1/station/hv1/eth1/cmd", "evb/v1/station/hv1/eth0/cmdx"):
        mq.on_message(topic, command_payload("r4", "assoc", VSI))
    await settle()
    assert agent.calls == [] and sent(mq) == [] and mq.counters["foreign_topic"] == 3


async def test_malformed_payloads_are_answered_with_the_field(tmp_path: Path) -> None:
    agent, mq = make(tmp_path)
    mq.on_message(mq.topics.cmd, json.dumps({"request_id": "r5", "mode": "assoc", "vsi": {**VSI, "uuid": 7}}).encode())
    mq.on_message(mq.topics.cmd, b"{")
    await settle()
    (t1, r1), (t2, r2) = sent(mq)
    assert t1 == mq.topics.reply("r5") and r1["error"]["field"] == "vsi.uuid"
    assert t2 == mq.topics.error and r2["request_id"] is None and r2["error"]["code"] == "E_BAD_REQUEST"
    assert agent.calls == [] and mq.counters["malformed"] == 2
