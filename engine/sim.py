"""Simulation: a topology's broker objects plus its simulated producers and consumers.

``Simulation`` runs on a :class:`~engine.clock.VirtualClock`: headless and in
tests as fast as the CPU allows (``run_for``), in the GUI through a
:class:`PacedRunner` that maps virtual time to wall time at a chosen speed.
Same topology, same seed: same run.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import re
import zlib
from collections import deque
from typing import Any

from .broker import Broker
from .channel import Channel, ChannelConsumer, Connection
from .clock import Timer, VirtualClock, cancel
from .errors import AMQPError
from .message import PERSISTENT, Message
from .metrics import CounterHistory, FlowLog
from .model import Consumer, Producer, Topology, split_node_id

# The counters kept for each kind of node, in the order history samples hold them.
COUNTERS: dict[str, tuple[str, ...]] = {
    "producer": ("published", "returned"),
    "exchange": ("received", "routed", "alternated", "unroutable"),
    "binding": ("routed",),
    "queue": (
        "enqueued",
        "delivered",
        "acked",
        "depth",
        "unacked",
        "redelivered",
        "expired",
        "dropped",
        "dead_lettered",
        "rejected",
    ),
    "consumer": ("delivered", "acked", "unacked", "buffered", "processed"),
    "totals": ("published", "routed", "unroutable", "delivered", "acked", "ready", "unacked"),
}
TOTALS_ID = "totals:*:*"
UNKNOWN_TYPE = "unknown"  # an exchange a file's bindings name but do not declare


class KeyTemplate:
    """Routing keys drawn from ``order.{created|paid|shipped}``; ``{seq}`` counts up.

    Every key a template can give is listed once up front (when there are not
    too many), so drawing one is a single random pick.
    """

    _PART = re.compile(r"\{([^{}]*)\}")
    MAX_LISTED = 4096

    def __init__(self, template: str) -> None:
        self.template = template
        self._parts: list[str | list[str] | None] = []
        pos = 0
        for match in self._PART.finditer(template):
            if match.start() > pos:
                self._parts.append(template[pos : match.start()])
            body = match.group(1)
            self._parts.append(None if body == "seq" else body.split("|"))
            pos = match.end()
        if pos < len(template):
            self._parts.append(template[pos:])
        self._seq = itertools.count(1)
        self.keys: list[str] | None = None
        if all(part is not None for part in self._parts):
            count = 1
            for part in self._parts:
                if isinstance(part, list):
                    count *= len(part)
            if count <= self.MAX_LISTED:
                keys = [""]
                for part in self._parts:
                    choices: list[str] = [part] if isinstance(part, str) else list(part or ())
                    keys = [k + c for k in keys for c in choices]
                self.keys = keys

    def draw(self, rng: random.Random) -> str:
        keys = self.keys
        if keys is not None:
            return keys[0] if len(keys) == 1 else keys[int(rng.random() * len(keys))]
        pieces = []
        for part in self._parts:
            if isinstance(part, str):
                pieces.append(part)
            elif part is None:
                pieces.append(str(next(self._seq)))
            else:
                pieces.append(part[int(rng.random() * len(part))])
        return "".join(pieces)


class SimProducer:
    def __init__(self, sim: Simulation, model: Producer, channel: Channel) -> None:
        self.sim = sim
        self.model = model
        self.node_id = model.id
        self.channel = channel
        self.rng = random.Random(_stable_seed(sim.seed, model.id))
        self.template = KeyTemplate(model.routing_key)
        self.published = 0
        self.returned = 0
        self.failed = 0
        self.last_error = ""
        self._timer: Timer | None = None
        self._body = b"x" * model.body_size
        props: dict[str, Any] = {}
        if model.headers:
            props["headers"] = dict(model.headers)
        if model.persistent:
            props["delivery_mode"] = PERSISTENT
        self._properties = props or None
        self._publish = sim.broker.publish
        self._vhost = model.vhost

    def start(self) -> None:
        self.stop()
        if self.model.rate > 0:
            self._period = 1.0 / self.model.rate
            self._call_later = self.sim.clock.call_later
            self._steady_callback = self._steady_tick  # bound once: the tick runs for every message
            tick = self._steady_tick if self.model.pattern == "steady" else self._tick
            self._timer = self.sim.clock.call_later(self._interval(first=True), tick)

    def stop(self) -> None:
        if self._timer is not None:
            cancel(self._timer)
            self._timer = None

    def _interval(self, first: bool = False) -> float:
        rate = self.model.rate
        if self.model.pattern == "poisson":
            return self.rng.expovariate(rate)
        if first:
            # Spread steady producers over their first period so they do not beat in step.
            return self.rng.random() / rate
        return self._period

    def _steady_tick(self) -> None:
        self._timer = self._call_later(self._period, self._steady_callback)
        self.publish_one()

    def _tick(self) -> None:
        self._timer = self.sim.clock.call_later(self._interval(), self._tick)
        self.publish_one()

    def publish_one(self) -> None:
        model = self.model
        try:
            # Straight to the broker: a simulated producer has no use for the
            # channel's confirm bookkeeping, and this is the hottest path there is.
            outcome = self._publish(
                self._vhost,
                model.exchange,
                self.template.draw(self.rng),
                self._properties,
                self._body,
                model.mandatory,
                self.node_id,
            )
        except AMQPError as exc:  # the exchange went away, say
            self.failed += 1
            self.last_error = str(exc)
            return
        self.published += 1
        if outcome.returned:
            self.returned += 1


class SimConsumer:
    """Takes deliveries within its prefetch and works through them one at a time."""

    def __init__(self, sim: Simulation, model: Consumer, channel: Channel) -> None:
        self.sim = sim
        self.model = model
        self.node_id = model.id
        self.channel = channel
        self.rng = random.Random(_stable_seed(sim.seed, model.id))
        self.buffer: deque[tuple[int, Message]] = deque()
        self.busy = False
        self.delivered = 0
        self.acked = 0  # as the broker counts: with auto-ack, on delivery
        self.processed = 0  # messages whose work is done
        self.consumer_tag: str | None = None
        self._instant = model.work_ms == 0 and model.work_spread_ms == 0
        self._acks = model.ack_mode == "manual"

    def start(self) -> None:
        model = self.model
        self.channel.basic_qos(model.prefetch)
        self.consumer_tag = self.channel.basic_consume(
            model.queue,
            self._on_deliver,
            consumer_tag=f"qc-{model.name}",
            no_ack=model.ack_mode == "auto",
            node_id=self.node_id,
        )

    @property
    def unacked(self) -> int:
        return len(self.channel.unacked)

    def _on_deliver(self, consumer: ChannelConsumer, delivery_tag: int, message: Message) -> None:
        self.delivered += 1
        if consumer.no_ack:
            self.acked += 1
        if self._instant and not self.busy:
            self._settle(delivery_tag)
            return
        self.buffer.append((delivery_tag, message))
        if not self.busy:
            self._work_next()

    def _work_time(self) -> float:
        model = self.model
        work = model.work_ms
        if model.work_spread_ms:
            work += (self.rng.random() * 2 - 1) * model.work_spread_ms
        return max(work, 0.0) / 1000.0

    def _work_next(self) -> None:
        if not self.buffer:
            self.busy = False
            return
        if self._instant and not self.busy:
            # No work to do: settle each message as it arrives, as a consumer that
            # acks in its callback does.
            self.busy = True
            while self.buffer and not self.channel.closed:
                delivery_tag, _ = self.buffer.popleft()
                self._settle(delivery_tag)
            self.busy = False
            return
        self.busy = True
        delivery_tag, _ = self.buffer.popleft()
        self.sim.clock.call_later(self._work_time(), self._finish, delivery_tag)

    def _settle(self, delivery_tag: int) -> None:
        if self._acks:
            self.channel.basic_ack(delivery_tag)
            self.acked += 1
        self.processed += 1

    def _finish(self, delivery_tag: int) -> None:
        if self.channel.closed:
            return
        self._settle(delivery_tag)
        self._work_next()


class Simulation:
    def __init__(
        self,
        topology: Topology,
        seed: int = 0,
        sample_interval: float | None = 0.25,
        flow_capacity: int = 8192,
        history: int = 256,
    ) -> None:
        """``sample_interval`` None: no counter history (a headless run needs only the end)."""
        self.topology = topology
        self.seed = seed
        self.clock = VirtualClock()
        self.flow = FlowLog(flow_capacity)
        self.broker = Broker(self.clock, self.flow)
        self.sample_interval = sample_interval
        self.history = CounterHistory(self.read_counters, keep=history)
        self.producers: dict[str, SimProducer] = {}
        self.consumers: dict[str, SimConsumer] = {}
        self.started = False
        self._sample_timer: Timer | None = None
        self._connections: dict[str, Connection] = {}
        self._declare(topology)

    # -- building the broker from the model --------------------------------------------

    def _declare(self, topology: Topology) -> None:
        broker = self.broker
        vhosts = {v.name for v in topology.vhosts}
        entity: Any
        for entity in (
            *topology.exchanges,
            *topology.queues,
            *topology.bindings,
            *topology.policies,
            *topology.producers,
            *topology.consumers,
        ):
            vhosts.add(entity.vhost)
        for vhost in sorted(vhosts):
            broker.add_vhost(vhost)
        for policy in topology.policies:
            broker.set_policy(
                policy.vhost, policy.name, policy.pattern, policy.definition, policy.priority, policy.apply_to
            )
        for x in topology.exchanges:
            broker.add_exchange(x.vhost, x.name, x.type, x.durable, x.auto_delete, x.internal, x.arguments)
        for nid in topology.undeclared_exchange_ids():
            _, vhost, name = split_node_id(nid)
            broker.add_exchange(vhost, name, UNKNOWN_TYPE, internal=True)
        for q in topology.queues:
            broker.add_queue(q.vhost, q.name, q.durable, q.auto_delete, q.arguments)
        for b in topology.bindings:
            broker.bind(b.vhost, b.source, b.destination, b.destination_type, b.routing_key, b.arguments)
        for producer in topology.producers:
            self.producers[producer.id] = SimProducer(self, producer, self._open_channel(producer.vhost))
        for consumer in topology.consumers:
            self.consumers[consumer.id] = SimConsumer(self, consumer, self._open_channel(consumer.vhost))

    def _open_channel(self, vhost: str) -> Channel:
        connection = self._connections.get(vhost)
        if connection is None:
            connection = self._connections[vhost] = self.broker.connect(f"queuecraft-simulation {vhost}", vhost)
        return connection.channel()

    # -- running ------------------------------------------------------------------------

    def start(self) -> None:
        if self.started:
            return
        self.started = True
        for consumer in self.consumers.values():
            consumer.start()
        for producer in self.producers.values():
            producer.start()
        if self.sample_interval is None:
            return
        self.history.sample(self.clock.now)
        self._sample_timer = self.clock.call_later(self.sample_interval, self._sample)

    def _sample(self) -> None:
        assert self.sample_interval is not None
        self.history.sample(self.clock.now)
        self._sample_timer = self.clock.call_later(self.sample_interval, self._sample)

    def run_for(self, seconds: float) -> None:
        self.start()
        self.clock.run_until(self.clock.now + seconds)

    @property
    def now(self) -> float:
        return self.clock.now

    # -- reading --------------------------------------------------------------------------

    def read_counters(self) -> dict[str, tuple[int, ...]]:
        counters: dict[str, tuple[int, ...]] = {}
        for producer in self.producers.values():
            counters[producer.node_id] = (producer.published, producer.returned)
        ready = unacked = delivered = acked = 0
        for exchange in self.broker.all_exchanges():
            stats = exchange.stats
            counters[exchange.node_id] = (stats.received, stats.routed, stats.alternated, stats.unroutable)
            for binding in exchange.router.bindings:
                counters[binding.node_id] = (binding.routed,)
        for queue in self.broker.all_queues():
            s = queue.stats
            counters[queue.node_id] = (
                s.enqueued,
                s.delivered,
                s.acked,
                queue.depth,
                queue.unacked,
                s.redelivered,
                s.expired,
                s.dropped,
                s.dead_lettered,
                s.rejected,
            )
            ready += queue.depth
            unacked += queue.unacked
            delivered += s.delivered
            acked += s.acked
        for consumer in self.consumers.values():
            counters[consumer.node_id] = (
                consumer.delivered,
                consumer.acked,
                consumer.unacked,
                len(consumer.buffer),
                consumer.processed,
            )
        b = self.broker.stats
        counters[TOTALS_ID] = (b.published, b.routed, b.unroutable, delivered, acked, ready, unacked)
        return counters

    def report(self) -> dict[str, Any]:
        """Counters of every producer, exchange, queue and consumer (what ``--json`` prints)."""
        now = self.clock.now
        producers = [
            {
                "name": p.model.name,
                "vhost": p.model.vhost,
                "exchange": p.model.exchange,
                "published": p.published,
                "returned": p.returned,
                "failed": p.failed,
                "last_error": p.last_error,
                "rate": _rate(p.published, now),
            }
            for p in self.producers.values()
        ]
        shown = set(self.topology.node_ids())
        exchanges = []
        for x in self.broker.all_exchanges():
            if x.node_id not in shown:
                continue
            exchanges.append(
                {
                    "name": x.name,
                    "vhost": x.vhost,
                    "type": x.type,
                    "simulated": x.simulated,
                    **x.stats.as_dict(),
                    "bindings": [
                        {
                            "destination": b.destination,
                            "destination_type": b.destination_type,
                            "routing_key": b.routing_key,
                            "routed": b.routed,
                        }
                        for b in x.router.bindings
                    ],
                }
            )
        queues = []
        for q in self.broker.all_queues():
            entry = {"name": q.name, "vhost": q.vhost, "depth": q.depth, "unacked": q.unacked}
            entry.update(q.stats.as_dict())
            queues.append(entry)
        consumers = [
            {
                "name": c.model.name,
                "vhost": c.model.vhost,
                "queue": c.model.queue,
                "delivered": c.delivered,
                "acked": c.acked,
                "unacked": c.unacked,
                "processed": c.processed,
                "buffered": len(c.buffer),
                "rate": _rate(c.processed, now),
            }
            for c in self.consumers.values()
        ]
        policies = []
        for vhost in self.broker.vhosts.values():
            for policy in vhost.policies.values():
                policies.append(
                    {
                        "name": policy.name,
                        "vhost": policy.vhost,
                        "pattern": policy.pattern,
                        "apply_to": policy.apply_to,
                        "queues": sorted(q.name for q in vhost.queues.values() if q.policy is policy),
                        "exchanges": sorted(x.name for x in vhost.exchanges.values() if x.policy is policy),
                        "not_simulated": policy.unsimulated_keys,
                    }
                )
        b = self.broker.stats
        return {
            "time": now,
            "policies": policies,
            "totals": {
                "published": b.published,
                "routed": b.routed,
                "unroutable": b.unroutable,
                "returned": b.returned,
            },
            "producers": producers,
            "exchanges": exchanges,
            "queues": queues,
            "consumers": consumers,
        }

    def accounting_problems(self) -> list[str]:
        """Where the counters do not show every message in exactly one place (empty when sound).

        Each publish is routed or unroutable; each copy a queue took is ready,
        unacked, acked, or gone by a counted fate (expired, dropped, rejected, purged).
        """
        problems = []
        b = self.broker.stats
        if b.published != b.routed + b.unroutable:
            problems.append(f"published {b.published} != routed {b.routed} + unroutable {b.unroutable}")
        for queue in self.broker.all_queues():
            s = queue.stats
            placed = queue.depth + queue.unacked + s.acked + s.expired + s.dropped + s.rejected + s.purged
            if s.enqueued != placed:
                problems.append(
                    f"queue {queue.name!r}: enqueued {s.enqueued} != ready {queue.depth} + unacked {queue.unacked}"
                    f" + acked {s.acked} + expired {s.expired} + dropped {s.dropped} + rejected {s.rejected}"
                    f" + purged {s.purged}"
                )
        consumer_unacked = sum(c.unacked for c in self.consumers.values())
        queue_unacked = sum(q.unacked for q in self.broker.all_queues())
        if consumer_unacked > queue_unacked:
            problems.append(f"consumers hold {consumer_unacked} unacked but queues count {queue_unacked}")
        return problems


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 3) if seconds > 0 else 0.0


def _stable_seed(seed: int, name: str) -> int:
    return seed * 1_000_003 + zlib.crc32(name.encode())


class PacedRunner:
    """Advances a simulation's clock in step with wall time, on an asyncio loop.

    ``speed`` is virtual seconds per wall second (``math.inf`` for as fast as
    possible). Each step runs at most ``budget`` seconds of events and then
    yields to the loop for ``tick`` seconds, so the loop, and a GUI sharing it,
    never stalls; when the engine cannot keep up at the chosen speed the runner
    falls behind (``behind`` is set) instead of freezing.

    Steps are plain loop callbacks, not a task, so they need no running
    coroutine context (qasync may fire them from Qt's own event processing).
    """

    def __init__(self, sim: Simulation, speed: float = 1.0, tick: float = 0.008, budget: float = 0.008) -> None:
        self.sim = sim
        self.speed = speed
        self.tick = tick
        self.budget = budget
        self.behind = False
        self.stop_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.Handle | None = None
        self._finished: asyncio.Future[None] | None = None
        self._anchor: tuple[float, float] | None = None

    @property
    def running(self) -> bool:
        return self._handle is not None

    def start(self) -> None:
        if self.running:
            return
        self.sim.start()
        self._anchor = None
        self._loop = asyncio.get_event_loop()
        if self._finished is None or self._finished.done():
            self._finished = self._loop.create_future()
        self._handle = self._loop.call_soon(self._step)

    def pause(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def set_speed(self, speed: float) -> None:
        self.speed = speed
        self._anchor = None

    async def wait(self) -> None:
        """Until ``stop_at`` is reached."""
        if self._finished is not None:
            await self._finished

    def _step(self) -> None:
        loop = self._loop
        assert loop is not None
        clock = self.sim.clock
        started = loop.time()
        deadline = started + self.budget
        if self._anchor is None:
            self._anchor = (started, clock.now)
        if math.isinf(self.speed):
            target = math.inf
        else:
            wall0, virtual0 = self._anchor
            target = virtual0 + (started - wall0) * self.speed
        if self.stop_at is not None:
            target = min(target, self.stop_at)
        while clock.now < target:
            step_to = target if not math.isinf(target) else clock.now + 0.05
            ran = clock.run_until(step_to, max_events=256)
            if loop.time() >= deadline:
                if ran and clock.now < target and not math.isinf(target):
                    self.behind = True
                    self._anchor = (loop.time(), clock.now)
                break
        else:
            self.behind = False
        if self.stop_at is not None and clock.now >= self.stop_at:
            self._handle = None
            if self._finished is not None and not self._finished.done():
                self._finished.set_result(None)
            return
        self._handle = loop.call_later(self.tick, self._step)
