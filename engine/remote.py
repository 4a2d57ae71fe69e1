"""A topology's simulated producers and consumers, run as pika clients on a real RabbitMQ.

Each producer is a connection publishing at its configured rate and pattern, with keys drawn
from its template, its headers, body size, persistence and mandatory flag; each consumer is a
connection consuming with its prefetch, working ``work_ms`` (± ``work_spread_ms``) a
message, acking or auto-acking, failing a share of its messages as configured (nack and
requeue, reject to dead letters, or crash and come back ``restart_ms`` later). Everything is
measured from the client side: what producers published and got returned, what consumers
were delivered, acked, nacked and held, and how long messages took from publish to ack;
queue depths come from passive declares every sample. The counters have the shape a
simulation's have, so the same graphs and reports read them.

All clients live on one asyncio loop (pika's asyncio adapter): no threads.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import pika
from pika.adapters.asyncio_connection import AsyncioConnection
from pika.channel import Channel as PikaChannel

from .deploy import DeployReport, amqp_table, check_url, deploy, source_vhost, undeploy, vhost_of
from .metrics import CounterHistory, FlowLog, LatencyRecorder
from .model import Consumer, Producer, Topology, node_id, split_node_id
from .sim import TOTALS_ID, KeyTemplate, _stable_seed

SENT_AT = "x-queuecraft-sent-at"  # a header with the publish time, for the latency a consumer sees
MESSAGE_ID = "queuecraft-"  # message_id prefix: the number a message's tokens share on the canvas
MAX_PER_TICK = 2000  # messages a producer publishes in one loop callback before it lets others run
TICK = 0.005


def _node(kind: str, vhost: str, name: str) -> str:
    return node_id(kind, vhost, name)


async def _open_connection(
    parameters: pika.ConnectionParameters, on_closed: Callable[[BaseException], None]
) -> AsyncioConnection:
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[AsyncioConnection] = loop.create_future()

    def on_open(connection: Any) -> None:
        if not opened.done():
            opened.set_result(connection)

    def on_open_error(connection: Any, error: BaseException) -> None:
        if not opened.done():
            opened.set_exception(ConnectionError(f"cannot connect: {error}"))

    def on_close(connection: Any, error: BaseException) -> None:
        if not opened.done():
            opened.set_exception(ConnectionError(f"connection closed while opening: {error}"))
        else:
            on_closed(error)

    AsyncioConnection(parameters, on_open, on_open_error, on_close, custom_ioloop=loop)
    return await opened


async def _open_channel(connection: AsyncioConnection) -> PikaChannel:
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[PikaChannel] = loop.create_future()

    def on_open(channel: PikaChannel) -> None:
        if not opened.done():
            opened.set_result(channel)

    connection.channel(on_open_callback=on_open)
    return await asyncio.wait_for(opened, 10)


class _Client:
    """One connection of the run, named for the management UI."""

    def __init__(self, run: RemoteRun, kind: str, name: str) -> None:
        self.run = run
        self.name = name
        self.node_id = _node(kind, run.source_vhost, name)
        self.connection: AsyncioConnection | None = None
        self.channel: PikaChannel | None = None
        self.last_error = ""
        self.closing = False

    def parameters(self) -> pika.URLParameters:
        parameters = pika.URLParameters(self.run.url)
        parameters.client_properties = {"connection_name": f"queuecraft {self.name}"}
        return parameters

    async def connect(self) -> None:
        self.connection = await _open_connection(self.parameters(), self._connection_closed)
        self.channel = await _open_channel(self.connection)
        self.channel.add_on_close_callback(self._channel_closed)

    def _connection_closed(self, error: BaseException) -> None:
        self.connection = self.channel = None
        if not self.closing:
            self.last_error = f"connection closed: {error}"
            self.run.note(f"{self.name}: {self.last_error}")

    def _channel_closed(self, channel: PikaChannel, reason: BaseException) -> None:
        if channel is self.channel:
            self.channel = None
            if not self.closing:
                self.last_error = f"channel closed: {reason}"
                self.run.note(f"{self.name}: {self.last_error}")

    def close(self) -> None:
        self.closing = True
        if self.connection is not None and self.connection.is_open:
            self.connection.close()


class RemoteProducer(_Client):
    def __init__(self, run: RemoteRun, model: Producer) -> None:
        super().__init__(run, "producer", model.name)
        self.model = model
        self.rng = random.Random(_stable_seed(run.seed, model.id))
        self.template = KeyTemplate(model.routing_key)
        self.exchange_id = None if model.exchange is None else _node("exchange", run.source_vhost, model.exchange)
        self.halted = False  # as a simulated producer's: no faults on a real broker
        self.body = b"x" * model.body_size
        self.headers = amqp_table(model.headers, f"producer '{model.name}': header")
        self.published = 0
        self.returned = 0
        self._next_at = 0.0
        self._handle: asyncio.TimerHandle | None = None

    async def connect(self) -> None:
        await super().connect()
        assert self.channel is not None
        self.channel.add_on_return_callback(self._on_return)

    def _on_return(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        self.returned += 1

    def start(self) -> None:
        if self.model.rate <= 0 or self.model.exchange is None:
            return
        loop = self.run.loop
        first = self.rng.expovariate(self.model.rate) if self.model.pattern == "poisson" else self.rng.random()
        self._next_at = (
            loop.time() + first / self.model.rate if self.model.pattern != "poisson" else loop.time() + first
        )
        self._handle = loop.call_at(self._next_at, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _interval(self) -> float:
        rate = self.model.rate
        return self.rng.expovariate(rate) if self.model.pattern == "poisson" else 1.0 / rate

    def _tick(self) -> None:
        loop = self.run.loop
        now = loop.time()
        sent = 0
        while self._next_at <= now and sent < MAX_PER_TICK:
            self.publish_one()
            self._next_at += self._interval()
            sent += 1
        if self._next_at < now - 1.0:
            self._next_at = now  # fell behind by more than a second: the rate is more than the client can do
        self._handle = loop.call_at(max(self._next_at, now + TICK if sent >= MAX_PER_TICK else 0), self._tick)

    def publish_one(self) -> None:
        channel, model = self.channel, self.model
        if channel is None or not channel.is_open or model.exchange is None:
            return
        headers = dict(self.headers)
        now = time.time()
        if self.run.measure_latency:
            headers[SENT_AT] = int(now * 1_000_000)
        run = self.run
        msg_id = run.next_msg_id()
        properties = pika.BasicProperties(
            headers=headers or None,
            delivery_mode=2 if model.persistent else None,
            timestamp=int(now),
            message_id=f"{MESSAGE_ID}{msg_id}",
        )
        routing_key = self.template.draw(self.rng)
        try:
            channel.basic_publish(model.exchange, routing_key, self.body, properties, mandatory=model.mandatory)
        except Exception as exc:  # noqa: BLE001 - a value the client cannot encode: said once, not raised per message
            self.last_error = f"cannot publish: {type(exc).__name__}: {exc}"
            self.run.note(f"{self.name}: {self.last_error}")
            self.stop()
            return
        self.published += 1
        run.flow.record(run.now, "published", self.node_id, self.exchange_id, routing_key, msg_id)

    def counters(self) -> tuple[int, ...]:
        return (self.published, self.returned)


class RemoteConsumer(_Client):
    def __init__(self, run: RemoteRun, model: Consumer) -> None:
        super().__init__(run, "consumer", model.name)
        self.model = model
        self.rng = random.Random(_stable_seed(run.seed, model.id))
        self.delivered = self.acked = self.processed = self.nacked = self.redelivered = 0
        self.failed = self.crashes = 0
        self.held: list[tuple[int, float | None, str, int]] = []  # delivered, not yet worked on
        self.queue_id = None if model.queue is None else _node("queue", run.source_vhost, model.queue)
        self.unacked = 0
        self.busy = False
        self.killed = False  # as a simulated consumer's: no faults on a real broker
        self.slowdown = 1.0
        self.fault_failure: tuple[float, str] | None = None
        self._generation = 0

    async def connect(self) -> None:
        await super().connect()
        self._subscribe()

    def _subscribe(self) -> None:
        channel, model = self.channel, self.model
        if channel is None or model.queue is None:
            return
        auto = model.ack_mode == "auto"
        channel.basic_qos(prefetch_count=model.prefetch)
        channel.basic_consume(model.queue, self._on_message, auto_ack=auto)

    def _on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        self.delivered += 1
        if method.redelivered:
            self.redelivered += 1
        sent_at = (properties.headers or {}).get(SENT_AT)
        sent = sent_at / 1_000_000 if isinstance(sent_at, int) else None
        message_id = properties.message_id or ""
        msg_id = int(message_id[len(MESSAGE_ID) :]) if message_id[len(MESSAGE_ID) :].isdigit() else 0
        key = method.routing_key
        run = self.run
        run.flow.record(run.now, "delivered", self.queue_id, self.node_id, key, msg_id)
        if self.model.ack_mode == "auto":
            self.acked += 1
            self._record_latency(sent)
        else:
            self.unacked += 1
        self.held.append((method.delivery_tag, sent, key, msg_id))
        if not self.busy:
            self._work_next()

    def _record_latency(self, sent: float | None) -> None:
        if sent is not None:
            self.run.record_latency(max(time.time() - sent, 0.0), self.node_id, self.model.queue or "")

    def _work_next(self) -> None:
        if not self.held:
            self.busy = False
            return
        self.busy = True
        tag, sent, key, msg_id = self.held.pop(0)
        model = self.model
        work = model.work_ms + ((self.rng.random() * 2 - 1) * model.work_spread_ms if model.work_spread_ms else 0.0)
        loop = self.run.loop
        loop.call_later(max(work, 0.0) / 1000.0, self._finish, tag, sent, key, msg_id, self._generation)

    def _finish(self, tag: int, sent: float | None, key: str, msg_id: int, generation: int) -> None:
        if generation != self._generation:
            return  # its channel is gone: the broker has the message back
        channel = self.channel
        self.processed += 1
        manual = self.model.ack_mode == "manual"
        if channel is None or not channel.is_open:
            self.busy = False
            return
        share = self.model.failure_rate
        if share and self.rng.random() < share:
            self.failed += 1
            action = self.model.on_failure
            if action == "crash":
                self.crash()
                return
            if manual:
                self.nacked += 1
                self.unacked -= 1
                if action == "requeue":
                    channel.basic_nack(tag, requeue=True)
                else:
                    channel.basic_reject(tag, requeue=False)
                self.run.flow.record(self.run.now, "nacked", self.node_id, self.queue_id, key, msg_id)
        elif manual:
            channel.basic_ack(tag)
            self.acked += 1
            self.unacked -= 1
            self._record_latency(sent)
            self.run.flow.record(self.run.now, "acked", self.node_id, self.queue_id, key, msg_id)
        self._work_next()

    def crash(self) -> None:
        """Close the channel (the broker takes back every unacked message); back after restart_ms."""
        self.crashes += 1
        self._generation += 1
        self.held.clear()
        self.unacked = 0
        self.busy = False
        channel, self.channel = self.channel, None
        if channel is not None and channel.is_open:
            channel.close()
        self.run.loop.call_later(self.model.restart_ms / 1000.0, self._come_back)

    def _come_back(self) -> None:
        async def reopen() -> None:
            if self.closing or self.connection is None or not self.connection.is_open:
                return
            self.channel = await _open_channel(self.connection)
            self.channel.add_on_close_callback(self._channel_closed)
            self._subscribe()

        self.run.spawn(reopen())

    def counters(self) -> tuple[int, ...]:
        return (
            self.delivered,
            self.acked,
            self.unacked,
            len(self.held),
            self.processed,
            self.nacked,
            self.redelivered,
        )


class QueueMonitor(_Client):
    """Reads each queue's depth and consumer count by passive declares, once a sample."""

    def __init__(self, run: RemoteRun, queues: list[str]) -> None:
        super().__init__(run, "consumer", "queue monitor")
        self.queues = queues
        self.depths: dict[str, tuple[int, int]] = {}
        self.missing: set[str] = set()
        self._waiting: dict[str, asyncio.Future[None]] = {}

    def poll(self) -> None:
        channel = self.channel
        if channel is None or not channel.is_open:
            if self.connection is not None and self.connection.is_open and not self.closing:
                self.run.spawn(self._reopen())
            return
        for name in self.queues:
            if name in self.missing:
                continue
            channel.queue_declare(name, passive=True, callback=lambda frame, name=name: self._declared(name, frame))

    async def _reopen(self) -> None:
        if self.connection is None:
            return
        self.channel = await _open_channel(self.connection)
        self.channel.add_on_close_callback(self._queue_gone)

    def _queue_gone(self, channel: PikaChannel, reason: BaseException) -> None:
        """A passive declare of a queue that is not there closes the channel (404): stop asking."""
        text = str(reason)
        for name in self.queues:
            if f"'{name}'" in text:
                self.missing.add(name)
                self.run.note(f"queue {name} is not on the broker: {text}")
        if channel is self.channel:
            self.channel = None

    async def connect(self) -> None:
        await super().connect()
        assert self.channel is not None
        self.channel.add_on_close_callback(self._queue_gone)

    def _declared(self, name: str, frame: Any) -> None:
        self.depths[name] = (frame.method.message_count, frame.method.consumer_count)
        waiting = self._waiting.pop(name, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    async def poll_now(self, timeout: float = 2.0) -> None:
        """Poll, and wait until every queue has answered (or ``timeout``)."""
        loop = asyncio.get_running_loop()
        self._waiting = {name: loop.create_future() for name in self.queues if name not in self.missing}
        self.poll()
        if self._waiting:
            await asyncio.wait(list(self._waiting.values()), timeout=timeout)


class RemoteRun:
    """Runs a topology's producers and consumers on the broker at ``url`` and measures them there."""

    def __init__(self, topology: Topology, url: str, seed: int = 0, sample_interval: float = 0.25) -> None:
        self.topology = topology
        check_url(url)
        self.url = url
        self.seed = seed
        self.source_vhost = source_vhost(topology, vhost_of(url))
        vhost = self.source_vhost
        self.producers = {p.id: RemoteProducer(self, p) for p in topology.producers if p.vhost == vhost}
        self.consumers = {c.id: RemoteConsumer(self, c) for c in topology.consumers if c.vhost == vhost}
        self.queue_names = [q.name for q in topology.queues if q.vhost == vhost]
        self.monitor = QueueMonitor(self, self.queue_names)
        headers_exchanges = [x for x in topology.exchanges if x.vhost == vhost and x.type == "headers"]
        # all-with-x and any-with-x bindings match x- headers too: the latency header would change routing.
        self.measure_latency = not any(
            str(b.arguments.get("x-match", "")).endswith("-with-x")
            for b in topology.bindings
            if b.vhost == vhost and any(b.source == x.name for x in headers_exchanges)
        )
        self.latency = LatencyRecorder(window=max(int(round(1.0 / sample_interval)), 1))  # the last second
        self.latency.enabled = True
        self.latency_whole_run = LatencyRecorder()
        self.sample_interval = sample_interval
        self.history = CounterHistory(self.read_counters, keep=int(300 / sample_interval) + 1)
        self.flow = FlowLog()
        self.flow.enabled = True
        self.fault_log: list[tuple[float, str]] = []  # no faults are played on a real broker
        self.unbound: set[str] = set()
        self._msg_ids = 0
        self.notes: list[str] = []
        clients_vhosts = {p.vhost for p in topology.producers} | {c.vhost for c in topology.consumers}
        elsewhere = sorted(clients_vhosts - {vhost})
        if elsewhere:
            names = ", ".join(f"'{v}'" for v in elsewhere)
            self.notes.append(
                f"the producers and consumers of vhost {names} did not run: the URL names '{vhost_of(url)}'"
            )
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self._sampler: asyncio.TimerHandle | None = None
        # Callbacks fire from the loop (under qasync, from Qt's own event processing, where no loop
        # is "running"): they use the loop the run started on.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def clients(self) -> list[_Client]:
        return [*self.producers.values(), *self.consumers.values(), self.monitor]

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "the run has not started"
        return self._loop

    def next_msg_id(self) -> int:
        self._msg_ids += 1
        return self._msg_ids

    def queue_ids(self) -> list[str]:
        return [_node("queue", self.source_vhost, name) for name in self.queue_names]

    def queue_limit(self, queue_id: str) -> int | None:
        """A queue's x-max-length as declared (a policy's is the broker's business)."""
        _, _, name = split_node_id(queue_id)
        queue = self.topology.queue(self.source_vhost, name)
        limit = queue.arguments.get("x-max-length") if queue is not None else None
        return limit if isinstance(limit, int) else None

    @property
    def now(self) -> float:
        if self.started_at is None:
            return 0.0
        end = self.stopped_at if self.stopped_at is not None else time.monotonic()
        return end - self.started_at

    def record_latency(self, seconds: float, consumer: str, queue: str) -> None:
        queue_id = _node("queue", self.source_vhost, queue)
        self.latency.record(seconds, consumer, queue_id)
        self.latency_whole_run.record(seconds, consumer, queue_id)

    def note(self, text: str) -> None:
        if len(self.notes) < 100 and text not in self.notes:
            self.notes.append(text)

    def spawn(self, coroutine: Any) -> None:
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        """Connect every client (consumers first, so nothing waits for them), then publish."""
        self._loop = asyncio.get_running_loop()
        for client in [self.monitor, *self.consumers.values(), *self.producers.values()]:
            await client.connect()
        self.started_at = time.monotonic()
        for producer in self.producers.values():
            producer.start()
        self._sample()

    def _sample(self) -> None:
        self.monitor.poll()
        self.history.sample(self.now, self.latency.roll())
        self._sampler = self.loop.call_later(self.sample_interval, self._sample)

    async def stop(self, drain: float = 1.0) -> None:
        """Stop publishing; give the consumers up to ``drain`` seconds to finish what they hold;
        take the queues' depths a last time; close every connection."""
        for producer in self.producers.values():
            producer.stop()
        waited = 0.0
        while waited < drain and any(c.held or c.busy for c in self.consumers.values()):
            await asyncio.sleep(0.02)
            waited += 0.02
        if self._sampler is not None:
            self._sampler.cancel()
        await self.monitor.poll_now()
        self.history.sample(self.now, self.latency.roll())
        self.stopped_at = time.monotonic()
        for client in self.clients:
            client.close()
        for _ in range(50):
            if all(c.connection is None or c.connection.is_closed for c in self.clients):
                break
            await asyncio.sleep(0.02)

    async def run_for(self, seconds: float, interrupt: asyncio.Event | None = None) -> None:
        """Run ``seconds``, or until ``interrupt`` is set (a signal, say): stopped as at the end."""
        try:
            await self.start()
            if interrupt is None:
                await asyncio.sleep(seconds)
            else:
                try:
                    await asyncio.wait_for(interrupt.wait(), seconds)
                    self.note(f"interrupted after {self.now:.1f} s of {seconds:g}")
                except TimeoutError:
                    pass
        finally:
            await self.stop()

    # -- reading, as a simulation is read ------------------------------------------------------------

    def read_counters(self) -> dict[str, tuple[int, ...]]:
        counters: dict[str, tuple[int, ...]] = {}
        vhost = self.source_vhost
        published_to: dict[str, list[int]] = {}
        producers, consumers = list(self.producers.values()), list(self.consumers.values())
        for producer in producers:
            counters[producer.node_id] = producer.counters()
            if producer.model.exchange is not None:
                entry = published_to.setdefault(producer.model.exchange, [0, 0])
                entry[0] += producer.published
                entry[1] += producer.returned
        for name, (received, returned) in published_to.items():
            # As the client sees it: what went in, and what came back unroutable (mandatory only).
            counters[_node("exchange", vhost, name)] = (received, received - returned, 0, returned)
        by_queue: dict[str, list[int]] = {}
        for consumer in consumers:
            values = consumer.counters()
            counters[consumer.node_id] = values
            if consumer.model.queue is not None:
                entry = by_queue.setdefault(consumer.model.queue, [0, 0, 0, 0, 0])
                entry[0] += consumer.delivered
                entry[1] += consumer.acked
                entry[2] += consumer.unacked + len(consumer.held)
                entry[3] += consumer.redelivered
                entry[4] += consumer.nacked
        ready = unacked = 0
        for name in self.queue_names:
            depth = self.monitor.depths.get(name, (0, 0))[0]
            delivered, acked, held, redelivered, nacked = by_queue.get(name, [0, 0, 0, 0, 0])
            counters[_node("queue", vhost, name)] = (0, delivered, acked, depth, held, redelivered, 0, 0, 0, 0, nacked)
            ready += depth
            unacked += held
        published = sum(p.published for p in producers)
        returned = sum(p.returned for p in producers)
        counters[TOTALS_ID] = (
            published,
            published - returned,
            returned,
            sum(c.delivered for c in consumers),
            sum(c.acked for c in consumers),
            ready,
            unacked,
            sum(c.nacked for c in consumers),
            sum(c.redelivered for c in consumers),
            0,
            0,
            returned,
            0,
        )
        return counters

    def report(self) -> dict[str, Any]:
        elapsed = max(self.now, 1e-9)
        latency = self.latency_whole_run.summary
        parameters = pika.URLParameters(self.url)
        return {
            "broker": f"{parameters.host}:{parameters.port}",
            "vhost": vhost_of(self.url),
            "time": self.now,
            "measured": "client side",
            "producers": [
                {
                    "name": p.name,
                    "exchange": p.model.exchange,
                    "published": p.published,
                    "returned": p.returned,
                    "rate": round(p.published / elapsed, 1),
                    "last_error": p.last_error,
                }
                for p in self.producers.values()
            ],
            "queues": [
                {
                    "name": name,
                    "depth": self.monitor.depths.get(name, (None, None))[0],
                    "consumers": self.monitor.depths.get(name, (None, None))[1],
                }
                for name in self.queue_names
            ],
            "consumers": [
                {
                    "name": c.name,
                    "queue": c.model.queue,
                    "delivered": c.delivered,
                    "acked": c.acked,
                    "nacked": c.nacked,
                    "redelivered": c.redelivered,
                    "unacked": c.unacked,
                    "crashes": c.crashes,
                    "rate": round(c.processed / elapsed, 1),
                    "latency_p50_ms": _ms(latency(c.node_id), 1),
                    "latency_p99_ms": _ms(latency(c.node_id), 2),
                    "last_error": c.last_error,
                }
                for c in self.consumers.values()
            ],
            "notes": list(self.notes),
        }


def _ms(summary: tuple[int, float, float] | None, index: int) -> float | None:
    return None if summary is None or not summary[0] else round(summary[index] * 1000, 1)


async def run_on_broker(
    topology: Topology,
    url: str,
    duration: float,
    seed: int = 0,
    management: str | None = None,
    keep: bool = False,
    interrupt: asyncio.Event | None = None,
) -> tuple[RemoteRun, DeployReport, DeployReport | None]:
    """Deploy the topology, run its clients for ``duration`` wall seconds, then (unless ``keep``)
    remove what it declared that was not there before. Deploying is blocking pika work: it runs off the loop."""
    loop = asyncio.get_running_loop()
    run = RemoteRun(topology, url, seed=seed)  # refuses a file whose vhosts do not fit the URL, before anything
    declared = await loop.run_in_executor(None, lambda: deploy(topology, url, management, replace_policies=False))
    removed = None
    try:
        await run.run_for(duration, interrupt)
    finally:
        if not keep:
            try:
                removed = await loop.run_in_executor(None, lambda: undeploy(declared, url, management))
            except Exception as exc:  # noqa: BLE001 - the broker went away: say what is left there
                removed = DeployReport(declared.vhost)
                why = f"{type(exc).__name__}: {str(exc) or 'no broker answered there'}"
                removed.not_applied.append(
                    f"could not remove what the run declared ({why}); left there: {declared.undo_text()}"
                )
    return run, declared, removed
