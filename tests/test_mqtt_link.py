"""MqttLink's queue while the broker is away (no broker needed: nothing connects)."""

from __future__ import annotations

import asyncio

import pytest
import structlog

from evb.mqtt.link import MqttLink
from evb.mqtt.options import MqttOptions

pytestmark = pytest.mark.asyncio


def link(max_queue: int = 3, broker: str = "mqtt://127.0.0.1:9") -> MqttLink:
    return MqttLink(
        MqttOptions(broker=broker),
        client_id="t",
        presence="evb/v1/station/h/i/status",
        subscriptions=[],
        on_message=lambda topic, payload: None,
        log=structlog.get_logger(),
        max_queue=max_queue,
    )


async def test_retained_messages_keep_only_the_last_state_per_topic() -> None:
    lk = link()
    lk.publish("a", b"1", retain=True)
    lk.publish("b", b"1", retain=True)
    lk.publish("a", b"2", retain=True)
    assert lk.pending() == 2
    assert list(lk._retained.items()) == [("b", (b"1", 1)), ("a", (b"2", 1))]  # the newest last


async def test_other_messages_queue_in_order_and_the_oldest_go_first_when_full() -> None:
    lk = link(max_queue=3)
    for i in range(5):
        lk.publish("r", b"%d" % i)
    assert [p for _, p, _ in lk._queue] == [b"2", b"3", b"4"]
    assert lk.counters.dropped == 2
    assert lk.status()["queued"] == 3 and lk.status()["dropped"] == 2


async def test_an_unreachable_broker_is_retried_not_fatal() -> None:
    lk = link()
    lk.start()
    await asyncio.sleep(0.3)
    assert not lk.connected.is_set() and lk.counters.last_error  # refused, retrying
    lk.publish("x", b"kept")
    assert lk.pending() == 1
    await lk.close()
