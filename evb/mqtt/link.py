"""One agent's connection to the MQTT broker (asyncio, ``aiomqtt``), kept up whatever happens.

``MqttLink`` connects with a persistent session (fixed client id, clean session off: QoS 1
commands published while the agent was away are delivered when it returns), a last will
(retained ``offline`` on the presence topic) and, once connected, retained ``online``. When the
broker goes away (restart, network cut, keep-alive timeout) it reconnects with exponential
back-off (0.5 s doubling to 30 s, ±20 % jitter), subscribes again and calls ``on_connect`` so
that the owner can republish its retained state.

Publishing never blocks the caller and never fails: ``publish`` queues the message. While the
link is down, a retained message replaces the queued one of the same topic (only the last state
matters); other messages wait in order (at most ``max_queue``; beyond, the oldest are dropped
and counted). A QoS 1 publish the connection lost is sent again (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from evb.mqtt.options import MqttOptions
from evb.mqtt.schema import OFFLINE, ONLINE

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
MAX_INFLIGHT = 512  #: QoS 1 publishes awaiting their PUBACK at once


def make_client(
    options: MqttOptions,
    identifier: str,
    will: aiomqtt.Will | None = None,
    queue_type: type[asyncio.Queue[aiomqtt.Message]] | None = None,
    *,
    clean_session: bool = False,
) -> aiomqtt.Client:
    """An ``aiomqtt.Client`` for ``identifier``, by default with a persistent session (clean
    session off); ``MAX_INFLIGHT`` QoS 1 publishes may await their PUBACK at once (paho's
    default is 20). A bad CA file raises ``OSError``/``ssl.SSLError``."""
    addr = options.address()
    tls = ssl.create_default_context(cafile=options.ca_file) if addr.tls else None
    client = aiomqtt.Client(
        addr.host,
        addr.port,
        username=addr.username,
        password=addr.password,
        identifier=identifier,
        clean_session=clean_session,
        will=will,
        keepalive=options.keepalive,
        tls_context=tls,
        timeout=10.0,
        max_inflight_messages=MAX_INFLIGHT,
        queue_type=queue_type,
    )
    client.pending_calls_threshold = MAX_INFLIGHT  # (beyond it, aiomqtt warns on every publish)
    return client


@dataclass(slots=True)
class LinkCounters:
    connects: int = 0
    disconnects: int = 0
    received: int = 0
    published: int = 0
    dropped: int = 0  #: queued messages dropped while the link was down (queue full)
    handler_errors: int = 0
    last_error: str = ""
    history: list[str] = field(default_factory=list)


Handler = Callable[[str, bytes], Awaitable[None] | None]


class MqttLink:
    def __init__(
        self,
        options: MqttOptions,
        *,
        client_id: str,
        presence: str,
        subscriptions: list[tuple[str, int]],
        on_message: Handler,
        on_connect: Callable[[], None] | None = None,
        log: Any,
        max_queue: int = 100_000,
        own_retained: str | None = None,
        owned: Callable[[], Collection[str]] | None = None,
    ) -> None:
        self.options = options
        self.client_id = client_id
        self.presence = presence
        self.subscriptions = subscriptions
        self.on_message = on_message
        self.on_connect = on_connect
        self.log = log
        self.max_queue = max_queue
        self.counters = LinkCounters()
        self.connected = asyncio.Event()
        self._retained: OrderedDict[str, tuple[bytes, int]] = OrderedDict()
        self._queue: deque[tuple[str, bytes, int]] = deque()
        self._wake = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._inflight = 0
        #: a topic filter of this agent's own retained state: after each connect, retained
        #: messages there on topics ``owned()`` does not list (a crashed run's) are cleared
        self.own_retained = own_retained
        self.owned = owned
        self._stale: dict[str, bool] | None = None  #: topic → non-empty, while a sweep collects
        self._inbox: asyncio.Queue[aiomqtt.Message] | None = None

    # ------------------------------------------------------------------ API

    def start(self) -> None:
        self.options.address()  # a bad URL or password file fails here, before the loop
        self._task = asyncio.create_task(self._run(), name=f"mqtt-{self.client_id}")

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        if retain:
            self._retained.pop(topic, None)
            self._retained[topic] = (payload, qos)
        else:
            if len(self._queue) >= self.max_queue:
                self._queue.popleft()
                self.counters.dropped += 1
            self._queue.append((topic, payload, qos))
        self._wake.set()

    def pending(self) -> int:
        return len(self._retained) + len(self._queue)

    async def flushed(self, timeout: float = 5.0) -> bool:
        """Wait until the queue is empty and nothing is in flight (True) or ``timeout``."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while (self.pending() or self._inflight) and loop.time() < end:
            await asyncio.sleep(0.01)
        return not (self.pending() or self._inflight)

    async def close(self) -> None:
        """Say ``offline`` (retained), send what is queued (briefly), disconnect."""
        self._closing = True
        if self.connected.is_set():
            self.publish(self.presence, OFFLINE, retain=True)
            await self.flushed(2.0)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for task in list(self._tasks):
            task.cancel()

    def status(self) -> dict[str, Any]:
        c = self.counters
        return {
            "broker": str(self.options.address()),
            "client_id": self.client_id,
            "connected": self.connected.is_set(),
            "connects": c.connects,
            "disconnects": c.disconnects,
            "received": c.received,
            "published": c.published,
            "queued": self.pending(),
            "dropped": c.dropped,
            "handler_errors": c.handler_errors,
            "last_error": c.last_error,
        }

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        delay = BACKOFF_FIRST
        will = aiomqtt.Will(self.presence, OFFLINE, qos=1, retain=True)
        link = self

        class Inbox(asyncio.Queue[aiomqtt.Message]):
            """The client's queue of received messages, which the session drains in one go."""

            def __init__(self, maxsize: int = 0) -> None:
                super().__init__(maxsize)
                link._inbox = self

        while not self._closing:
            client = make_client(self.options, self.client_id, will, Inbox)
            try:
                async with client:
                    self._client = client
                    self.counters.connects += 1
                    delay = BACKOFF_FIRST
                    await self._session(client)
            except aiomqtt.MqttError as exc:
                self.counters.last_error = str(exc)
                if self.connected.is_set():
                    self.counters.disconnects += 1
                    self.log.warning("mqtt.disconnected", error=str(exc))
                else:
                    self.log.warning("mqtt.connect_failed", error=str(exc), retry_in=round(delay, 2))
            finally:
                self._client = None
                self.connected.clear()
            if self._closing:
                return
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(BACKOFF_MAX, delay * 2)

    async def _session(self, client: aiomqtt.Client) -> None:
        for topic, qos in self.subscriptions:
            await client.subscribe(topic, qos=qos)
        self.connected.set()
        self.log.info("mqtt.connected", broker=str(self.options.address()), client_id=self.client_id)
        self.publish(self.presence, ONLINE, retain=True)
        if self.on_connect is not None:
            self.on_connect()
        sender = asyncio.create_task(self._sender(client))
        sweep = None
        if self.own_retained is not None:
            sweep = asyncio.create_task(self._sweep(client, self.own_retained))
        try:
            async for first in client.messages:
                # the messages already received are handled in this same pass of the event
                # loop (aiomqtt's iterator takes one pass each): commands that arrive together
                # reach the port together and share ECPDUs, as a burst on the local API does
                await self._handle(first)
                inbox = self._inbox
                while inbox is not None and not inbox.empty():
                    await self._handle(inbox.get_nowait())
        finally:
            for task in (sender, sweep):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                        await task

    async def _handle(self, message: aiomqtt.Message) -> None:
        self.counters.received += 1
        payload = message.payload
        data = payload if isinstance(payload, bytes) else str(payload or "").encode()
        if self.own_retained is not None and message.topic.matches(self.own_retained):
            if self._stale is not None and message.retain:
                self._stale[str(message.topic)] = bool(data)
            return  # our own state, not for the handler
        try:
            result = self.on_message(str(message.topic), data)
            if result is not None:
                await result
        except Exception as exc:  # a handler's bug must not take the link down
            self.counters.handler_errors += 1
            self.log.exception("mqtt.handler_failed", topic=str(message.topic), error=str(exc))

    async def _sweep(self, client: aiomqtt.Client, pattern: str, settle: float = 1.0) -> None:
        """Clear retained messages under ``pattern`` this agent no longer owns (a crashed run's)."""
        self._stale = {}
        try:
            await client.subscribe(pattern, qos=1)
            await asyncio.sleep(settle)
            await client.unsubscribe(pattern)
            ours = self.owned() if self.owned is not None else self._stale.keys()
            stale = [t for t, full in self._stale.items() if full and t not in ours]
        finally:
            self._stale = None
        for topic in stale:
            if topic not in self._retained:  # a newer state is queued: it wins
                self.publish(topic, b"", retain=True)
        if stale:
            self.log.info("mqtt.stale_state_cleared", topics=len(stale))

    async def _sender(self, client: aiomqtt.Client) -> None:
        slots = asyncio.Semaphore(MAX_INFLIGHT)
        while True:
            while not (self._retained or self._queue):
                self._wake.clear()
                await self._wake.wait()
            if self._queue:
                topic, payload, qos = self._queue.popleft()
                retain = False
            else:
                topic, (payload, qos) = self._retained.popitem(last=False)
                retain = True
            await slots.acquire()
            self._inflight += 1
            task = asyncio.create_task(self._publish_one(client, slots, topic, payload, qos, retain))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _publish_one(
        self, client: aiomqtt.Client, slots: asyncio.Semaphore, topic: str, payload: bytes, qos: int, retain: bool
    ) -> None:
        try:
            await client.publish(topic, payload, qos=qos, retain=retain)
            self.counters.published += 1
        except aiomqtt.MqttError:  # the connection went: send it again on the next one
            if retain:
                self._retained.setdefault(topic, (payload, qos))
            else:
                self._queue.appendleft((topic, payload, qos))
        finally:
            self._inflight -= 1
            slots.release()
