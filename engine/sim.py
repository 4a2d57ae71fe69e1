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
from collections.abc import Callable
from typing import Any

from .broker import Broker
from .channel import Channel, ChannelConsumer, Connection
from .clock import Timer, VirtualClock, cancel
from .errors import AMQPError
from .inspection import journey_over
from .message import PERSISTENT, Message
from .metrics import CounterHistory, FlowEvent, FlowLog
from .model import (
    TIMELINE_ACTIONS,
    Binding,
    Consumer,
    Producer,
    Queue,
    TimelineEvent,
    Topology,
    node_id,
    split_node_id,
)
from .routing import binding_id

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
        "nacked",
    ),
    "consumer": ("delivered", "acked", "unacked", "buffered", "processed", "nacked", "redelivered"),
    "totals": (
        "published",
        "routed",
        "unroutable",
        "delivered",
        "acked",
        "ready",
        "unacked",
        "nacked",
        "redelivered",
        "dropped",
        "expired",
        "returned",
        "dead_lettered",
    ),
}
TOTALS_ID = "totals:*:*"
UNKNOWN_TYPE = "unknown"  # an exchange a file's bindings name but do not declare


class FaultRefused(ValueError):
    """A fault that cannot be played: its consumer, producer or exchange is not there."""


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
    """Publishes at its model's rate; idle while it has no exchange or a rate of 0."""

    def __init__(self, sim: Simulation, model: Producer) -> None:
        self.sim = sim
        self.node_id = model.id
        self.rng = random.Random(_stable_seed(sim.seed, model.id))
        self.published = 0
        self.returned = 0
        self.failed = 0
        self.last_error = ""
        self.running = False
        self.halted = False  # stopped by a fault until started again
        self.rate_override: float | None = None  # a fault's rate, in place of the model's
        self._timer: Timer | None = None
        self._publish = sim.broker.publish
        self._call_later = sim.clock.call_later
        self._again = sim.clock.again
        self._steady_callback = self._steady_tick  # bound once: the tick runs for every message
        self.configure(model)

    def configure(self, model: Producer) -> None:
        """Take a new model (an edit while running): the next message follows it."""
        self.model = model
        self._vhost = model.vhost
        self.template = KeyTemplate(model.routing_key)
        self._body = b"x" * model.body_size
        props: dict[str, Any] = {}
        if model.headers:
            props["headers"] = dict(model.headers)
        if model.persistent:
            props["delivery_mode"] = PERSISTENT
        self._properties = props or None
        if self.running:
            self.start()

    @property
    def rate(self) -> float:
        return self.model.rate if self.rate_override is None else self.rate_override

    def start(self) -> None:
        self.stop()
        self.running = True
        model = self.model
        rate = self.rate
        if rate > 0 and model.exchange is not None and not self.halted:
            self._period = 1.0 / rate
            tick = self._steady_tick if model.pattern == "steady" else self._tick
            self._timer = self.sim.clock.call_later(self._interval(first=True), tick)

    def stop(self) -> None:
        self.running = False
        cancel(self._timer)
        self._timer = None

    def halt(self) -> None:
        """A fault: stop publishing until ``resume``."""
        self.halted = True
        cancel(self._timer)
        self._timer = None

    def resume(self) -> None:
        self.halted = False
        if self.running:
            self.start()

    def set_rate(self, rate: float | None) -> None:
        """A fault: publish at ``rate`` (None: the model's rate again)."""
        self.rate_override = rate
        if self.running:
            self.start()

    BURST_CHUNK = 200

    def burst(self, count: int) -> None:
        """A fault: ``count`` messages at once, published a few hundred to an engine event, all at
        this simulated moment, so a runner sharing a loop with a window can draw in between."""
        for _ in range(min(count, self.BURST_CHUNK)):
            self.publish_one()
        if count > self.BURST_CHUNK:
            self.sim.clock.call_later(0.0, self.burst, count - self.BURST_CHUNK)

    def _interval(self, first: bool = False) -> float:
        rate = self.rate
        if self.model.pattern == "poisson":
            return self.rng.expovariate(rate)
        if first:
            # Spread steady producers over their first period so they do not beat in step.
            return self.rng.random() / rate
        return self._period

    def _steady_tick(self) -> None:
        timer = self._timer  # the entry running now
        if timer is None:
            self._timer = self._call_later(self._period, self._steady_callback)
        else:
            self._again(timer, self._period)
        self.publish_one()

    def _tick(self) -> None:
        self._timer = self.sim.clock.call_later(self._interval(), self._tick)
        self.publish_one()

    def publish_one(self) -> None:
        model = self.model
        if model.exchange is None:
            return
        try:
            # Straight to the broker: a simulated producer has no use for the
            # channel's confirm bookkeeping, and this is the hottest path there is.
            keys = self.template.keys
            if keys is None:
                routing_key = self.template.draw(self.rng)
            elif len(keys) == 1:
                routing_key = keys[0]
            else:
                routing_key = keys[int(self.rng.random() * len(keys))]  # RoutingKeyTemplate.draw, inlined
            outcome = self._publish(
                self._vhost,
                model.exchange,
                routing_key,
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
    """Takes deliveries within its prefetch and works through them one at a time.

    A share of its messages may fail (``failure_rate``): nacked and requeued,
    rejected to the dead-letter exchange, or a crash, after which the consumer
    comes back ``restart_ms`` later on a new channel.
    """

    def __init__(self, sim: Simulation, model: Consumer) -> None:
        self.sim = sim
        self.node_id = model.id
        self.rng = random.Random(_stable_seed(sim.seed, model.id))
        self.buffer: deque[tuple[int, Message]] = deque()
        self.busy = False
        self.delivered = 0
        self.acked = 0  # as the broker counts: with auto-ack, on delivery
        self.processed = 0  # messages whose work is done (failed ones included)
        self.nacked = 0  # failures nacked or rejected
        self.redelivered = 0  # deliveries of messages delivered before
        self.failed = 0
        self.crashes = 0
        self.last_error = ""
        self.channel: Channel | None = None
        self.consumer_tag: str | None = None
        self.running = False
        self.killed = False  # by a fault: down until revived
        self.slowdown = 1.0  # a fault's factor on the work time
        self.fault_failure: tuple[float, str] | None = None  # a fault's failure share and action
        self._generation = 0  # bumped when the channel goes; stale work timers see it and stop
        self._restart: Timer | None = None
        self.configure(model)

    def configure(self, model: Consumer) -> None:
        """Take a new model; a new queue, prefetch or ack mode means a new subscription."""
        old = getattr(self, "model", None)
        self.model = model
        self._acks = model.ack_mode == "manual"
        self._update_instant()
        resubscribe = old is None or (old.queue, old.prefetch, old.ack_mode, old.vhost) != (
            model.queue,
            model.prefetch,
            model.ack_mode,
            model.vhost,
        )
        if self.running and resubscribe and not self.killed:
            self._unsubscribe()
            self._subscribe()

    def _update_instant(self) -> None:
        model = self.model
        self._instant = model.work_ms == 0 and model.work_spread_ms == 0 and not self.failure[0]
        self._set_acks_at_once()

    def _set_acks_at_once(self) -> None:
        channel = self.channel
        if channel is not None and self.consumer_tag in channel.consumers:
            consumer = channel.consumers[self.consumer_tag]
            consumer.acks_at_once = self._instant and self._acks and not self.buffer

    @property
    def failure(self) -> tuple[float, str]:
        """The share of messages that fail and what a failure does: a fault's, else the model's."""
        if self.fault_failure is not None:
            return self.fault_failure
        return self.model.failure_rate, self.model.on_failure

    def start(self) -> None:
        if self.running:
            return
        self.running = True
        if not self.killed:
            self._subscribe()

    def kill(self) -> None:
        """A fault: die now and stay down; the broker takes back every unacked message."""
        if self.killed:
            return
        self.killed = True
        self.crashes += 1
        cancel(self._restart)
        self._restart = None
        self._unsubscribe()

    def revive(self) -> None:
        """Come back after ``kill`` (or at once, after a crash)."""
        self.killed = False
        cancel(self._restart)
        self._restart = None
        if self.running and self.channel is None:
            self._subscribe()

    def slow_down(self, factor: float) -> None:
        self.slowdown = factor

    def fail(self, share: float, action: str | None = None) -> None:
        """A fault: a ``share`` of messages fail from now on (0: none); ``action`` defaults to the model's."""
        self.fault_failure = (share, action or self.model.on_failure)
        self._update_instant()

    def stop(self) -> None:
        """Close the channel: unacked messages go back to the queue, marked redelivered."""
        self.running = False
        cancel(self._restart)
        self._restart = None
        self._unsubscribe()

    def _subscribe(self) -> None:
        model = self.model
        if model.queue is None:
            return
        channel = self.sim.open_channel(model.vhost)
        try:
            channel.basic_qos(model.prefetch)
            self.consumer_tag = channel.basic_consume(
                model.queue,
                self._on_deliver,
                consumer_tag=f"qc-{model.name}",
                no_ack=model.ack_mode == "auto",
                node_id=self.node_id,
            )
        except AMQPError as exc:  # the queue went away, or is exclusive to another connection
            self.last_error = str(exc)
            channel.close()
            return
        self.channel = channel
        channel.on_cancel = self._on_cancel
        self._set_acks_at_once()

    def _unsubscribe(self) -> None:
        self._generation += 1
        self.buffer.clear()
        self.busy = False
        channel, self.channel = self.channel, None
        if channel is not None and not channel.closed:
            channel.close()

    def resubscribe(self) -> None:
        self._unsubscribe()
        self._subscribe()

    def _on_cancel(self, consumer_tag: str) -> None:
        """The broker cancelled the subscription (its queue was deleted)."""
        self._unsubscribe()

    def crash(self) -> None:
        """Die now: the broker takes back every unacked message; come back after ``restart_ms``."""
        self.crashes += 1
        self._unsubscribe()
        if self.running:
            cancel(self._restart)
            self._restart = self.sim.clock.call_later(self.model.restart_ms / 1000.0, self._come_back)

    def _come_back(self) -> None:
        self._restart = None
        if self.running and self.channel is None and not self.killed:
            self._subscribe()

    @property
    def unacked(self) -> int:
        return len(self.channel.unacked) if self.channel is not None else 0

    def _on_deliver(self, consumer: ChannelConsumer, delivery_tag: int, message: Message) -> None:
        self.delivered += 1
        if message.redelivered:
            self.redelivered += 1
        if consumer.acks_at_once:  # the channel has acked it already
            self.processed += 1
            self.acked += 1
            return
        if consumer.no_ack:
            self.acked += 1
        if self._instant and not self.busy:
            # _settle for a consumer with no work and no failures, inlined: the hottest path.
            self.processed += 1
            if self._acks:
                consumer.channel.basic_ack(delivery_tag)
                self.acked += 1
            return
        self.buffer.append((delivery_tag, message))
        if not self.busy:
            self._work_next()

    def _work_time(self) -> float:
        model = self.model
        work = model.work_ms
        if model.work_spread_ms:
            work += (self.rng.random() * 2 - 1) * model.work_spread_ms
        return max(work, 0.0) * self.slowdown / 1000.0

    def _work_next(self) -> None:
        if not self.buffer:
            self.busy = False
            return
        if self._instant and not self.busy:
            # No work to do: settle each message as it arrives, as a consumer that
            # acks in its callback does.
            self.busy = True
            while self.buffer and self.channel is not None:
                delivery_tag, _ = self.buffer.popleft()
                self._settle(delivery_tag)
            self.busy = False
            return
        self.busy = True
        delivery_tag, _ = self.buffer.popleft()
        self.sim.clock.call_later(self._work_time(), self._finish, delivery_tag, self._generation)

    def _settle(self, delivery_tag: int) -> None:
        self.processed += 1
        channel = self.channel
        if channel is None:
            return
        share, action = self.failure
        if share and self.rng.random() < share:
            self.failed += 1
            if action == "crash":
                self.crash()
            elif self._acks:
                self.nacked += 1
                if action == "requeue":
                    channel.basic_nack(delivery_tag, requeue=True)
                else:
                    channel.basic_reject(delivery_tag, requeue=False)
            return
        if self._acks:
            channel.basic_ack(delivery_tag)
            self.acked += 1

    def _finish(self, delivery_tag: int, generation: int) -> None:
        if generation != self._generation or self.channel is None:
            return  # the channel this message came on is gone; the broker has it back
        self._settle(delivery_tag)
        self._work_next()


class Simulation:
    def __init__(
        self,
        topology: Topology,
        seed: int = 0,
        sample_interval: float | None = 0.25,
        flow_capacity: int = 8192,
        history_seconds: float = 300.0,
    ) -> None:
        """``sample_interval`` None: no counter history (a headless run needs only the end).

        The history keeps ``history_seconds`` of samples as taken, and the whole run thinned.
        """
        self.topology = topology
        self.seed = seed
        self.clock = VirtualClock()
        self.flow = FlowLog(flow_capacity)
        self.broker = Broker(self.clock, self.flow)
        self.sample_interval = sample_interval
        interval = sample_interval or 0.25
        self.history = CounterHistory(
            self.read_counters,
            keep=int(history_seconds / interval) + 1,
            coarse_every=max(int(round(1.0 / interval)), 1),
        )
        # Latency percentiles over the last second, like the rates.
        self.broker.latency.recent = deque(maxlen=max(int(round(1.0 / interval)), 1))
        self.producers: dict[str, SimProducer] = {}
        self.consumers: dict[str, SimConsumer] = {}
        self.started = False
        self._sample_timer: Timer | None = None
        self._connections: dict[str, Connection] = {}
        self._timeline_timers: list[Timer] = []
        # Counters of nodes the simulation does not own (real clients on the wire), read with its own.
        self.counter_sources: list[Callable[[dict[str, tuple[int, ...]]], None]] = []
        # What faults did, and when: (time, description), for the plots' markers and the log.
        self.fault_log: list[tuple[float, str]] = []
        self.unbound: set[str] = set()  # binding node ids a fault removed from the running broker
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
            self._add_queue(q)
        for b in topology.bindings:
            broker.bind(b.vhost, b.source, b.destination, b.destination_type, b.routing_key, b.arguments)
        for producer in topology.producers:
            self.producers[producer.id] = SimProducer(self, producer)
        for consumer in topology.consumers:
            self.consumers[consumer.id] = SimConsumer(self, consumer)

    def _connection(self, vhost: str) -> Connection:
        connection = self._connections.get(vhost)
        if connection is None:
            connection = self._connections[vhost] = self.broker.connect(f"queuecraft-simulation {vhost}", vhost)
        return connection

    def open_channel(self, vhost: str) -> Channel:
        return self._connection(vhost).channel()

    def _add_queue(self, q: Queue) -> None:
        # An exclusive queue belongs to the simulation's connection in its vhost,
        # which its simulated consumers share.
        owner = self._connection(q.vhost) if q.exclusive else None
        self.broker.add_queue(q.vhost, q.name, q.durable, q.auto_delete, q.arguments, owner)

    # -- live edits ------------------------------------------------------------------------

    def sync(self, topology: Topology) -> None:
        """Make the running broker and clients match an edited topology, at once.

        What did not change keeps its messages, counters and timers: a consumer
        added while running starts taking messages, a deleted binding stops
        routing, a new rate changes the traffic from the next message on.
        """
        old, self.topology = self.topology, topology
        broker = self.broker
        for vhost in sorted({v.name for v in topology.vhosts} | {e.vhost for e in _entities(topology)}):
            broker.add_vhost(vhost)

        old_policies = {(p.vhost, p.name): p for p in old.policies}
        new_policies = {(p.vhost, p.name): p for p in topology.policies}
        for vhost, name in old_policies.keys() - new_policies.keys():
            broker.clear_policy(vhost, name)
        for policy_key, p in new_policies.items():
            if old_policies.get(policy_key) != p:
                broker.set_policy(p.vhost, p.name, p.pattern, p.definition, p.priority, p.apply_to)

        rebind: set[tuple[str, str]] = set()  # (vhost, name) of recreated exchanges and queues
        old_exchanges = {x.id: x for x in old.exchanges}
        new_exchanges = {x.id: x for x in topology.exchanges}
        for nid in old_exchanges.keys() - new_exchanges.keys():
            x = old_exchanges[nid]
            if x.vhost in broker.vhosts and x.name in broker.vhosts[x.vhost].exchanges:
                broker.exchange_delete(x.vhost, x.name)
        for nid, x in new_exchanges.items():
            before = old_exchanges.get(nid)
            host = broker.get_vhost(x.vhost)
            current = host.exchanges.get(x.name)
            shape = (x.type, x.durable, x.auto_delete, x.internal)
            if (
                current is not None
                and before is not None
                and shape != (before.type, before.durable, before.auto_delete, before.internal)
            ):
                broker.exchange_delete(x.vhost, x.name)
                current = None
            if current is None:
                broker.add_exchange(x.vhost, x.name, x.type, x.durable, x.auto_delete, x.internal, x.arguments)
                rebind.add((x.vhost, x.name))
            elif before is not None and before.arguments != x.arguments:
                current.arguments = dict(x.arguments)
                current.apply_settings()
        for nid in topology.undeclared_exchange_ids():
            _, vhost, name = split_node_id(nid)
            if name not in broker.get_vhost(vhost).exchanges:
                broker.add_exchange(vhost, name, UNKNOWN_TYPE, internal=True)

        old_queues = {q.id: q for q in old.queues}
        new_queues = {q.id: q for q in topology.queues}
        for nid in old_queues.keys() - new_queues.keys():
            q = old_queues[nid]
            broker.queue_delete(q.vhost, q.name)
        for nid, q in new_queues.items():
            old_queue = old_queues.get(nid)
            live = broker.get_vhost(q.vhost).queues.get(q.name)
            if live is not None and old_queue is not None and _needs_new_queue(old_queue, q):
                broker.queue_delete(q.vhost, q.name)
                live = None
            if live is None:
                self._add_queue(q)
                rebind.add((q.vhost, q.name))
            elif old_queue is not None and (old_queue.arguments, old_queue.durable, old_queue.auto_delete) != (
                q.arguments,
                q.durable,
                q.auto_delete,
            ):
                live.durable, live.auto_delete = q.durable, q.auto_delete
                live.arguments = dict(q.arguments)
                live.policy_changed()

        def key(b: Binding) -> tuple[str, str, str, str, str, str]:
            return (
                b.vhost,
                b.source,
                b.destination_type,
                b.destination,
                b.routing_key,
                repr(sorted(b.arguments.items())),
            )

        old_bindings = {key(b): b for b in old.bindings}
        new_bindings = {key(b): b for b in topology.bindings}
        for k in old_bindings.keys() - new_bindings.keys():
            b = old_bindings[k]
            broker.unbind(b.vhost, b.source, b.destination, b.destination_type, b.routing_key, b.arguments)
            self.unbound.discard(
                binding_id(b.vhost, b.source, b.destination_type, b.destination, b.routing_key, b.arguments)
            )
        for k, b in new_bindings.items():
            if k not in old_bindings or (b.vhost, b.source) in rebind or (b.vhost, b.destination) in rebind:
                made = broker.bind(b.vhost, b.source, b.destination, b.destination_type, b.routing_key, b.arguments)
                self.unbound.discard(made.node_id)

        old_producers = {p.id: p for p in old.producers}
        for nid in list(self.producers):
            if nid not in {p.id for p in topology.producers}:
                self.producers.pop(nid).stop()
        for producer in topology.producers:
            sim_producer = self.producers.get(producer.id)
            if sim_producer is None:
                sim_producer = self.producers[producer.id] = SimProducer(self, producer)
                if self.started:
                    sim_producer.start()
            elif old_producers.get(producer.id) != producer:
                sim_producer.configure(producer)

        old_consumers = {c.id: c for c in old.consumers}
        recreated = {(vhost, name) for vhost, name in rebind}
        for nid in list(self.consumers):
            if nid not in {c.id for c in topology.consumers}:
                self.consumers.pop(nid).stop()
        for consumer in topology.consumers:
            sim_consumer = self.consumers.get(consumer.id)
            if sim_consumer is None:
                sim_consumer = self.consumers[consumer.id] = SimConsumer(self, consumer)
                if self.started:
                    sim_consumer.start()
            elif old_consumers.get(consumer.id) != consumer:
                sim_consumer.configure(consumer)
            if sim_consumer.running and sim_consumer.channel is None and (consumer.vhost, consumer.queue) in recreated:
                if not sim_consumer.killed:
                    sim_consumer.resubscribe()  # its queue was made anew
        if self.started and old.timeline != topology.timeline:
            self._schedule_timeline()

    # -- faults and the timeline ----------------------------------------------------------

    def apply(self, event: TimelineEvent) -> str:
        """Play a fault now (by hand, or from the timeline); returns what happened, for the log.

        Raises FaultRefused, with the reason, when its target is not in the running topology.
        """
        action = event.action
        if action == "restart_broker":
            text = self.restart_broker()
            self.fault_log.append((self.clock.now, text))
            return text
        kind = TIMELINE_ACTIONS.get(action)
        if kind is None:
            raise FaultRefused(f"unknown action '{action}'")
        if kind == "consumer":
            consumer = self.consumers.get(node_id("consumer", event.vhost, event.node or ""))
            if consumer is None:
                raise FaultRefused(f"no consumer '{event.node}' in vhost '{event.vhost}' is running")
            if action == "kill":
                consumer.kill()
            elif action == "restart":
                consumer.revive()
            elif action == "slow":
                consumer.slow_down(event.factor if event.factor is not None else 1.0)
            elif action == "fail":
                consumer.fail(event.share or 0.0, event.on_failure)
        elif kind == "producer":
            producer = self.producers.get(node_id("producer", event.vhost, event.node or ""))
            if producer is None:
                raise FaultRefused(f"no producer '{event.node}' in vhost '{event.vhost}' is running")
            if action == "stop":
                producer.halt()
            elif action == "start":
                producer.resume()
            elif action == "burst":
                producer.burst(event.count or 0)
            elif action == "rate":
                producer.set_rate(event.rate)
        else:
            self._fault_binding(event)
        text = event.describe()
        self.fault_log.append((self.clock.now, text))
        return text

    def _fault_binding(self, event: TimelineEvent) -> None:
        host = self.broker.vhosts.get(event.vhost)
        if host is None or (event.node or "") not in host.exchanges:
            raise FaultRefused(f"no exchange '{event.node}' in vhost '{event.vhost}' is running")
        args = (event.vhost, event.node or "", event.destination or "", event.destination_type, event.routing_key)
        try:
            if event.action == "unbind":
                binding = self.broker.unbind(*args, event.arguments)
                if binding is not None:
                    self.unbound.add(binding.node_id)
            else:
                binding = self.broker.bind(*args, event.arguments)
                self.unbound.discard(binding.node_id)
        except AMQPError as exc:
            raise FaultRefused(str(exc)) from exc

    def _schedule_timeline(self, from_start: bool = False) -> None:
        """Schedule the timeline's steps still ahead (at the start, those at time zero too).

        After an edit mid-run, a step at this very moment is taken as played: it is
        one just recorded from a fault applied by hand.
        """
        for timer in self._timeline_timers:
            cancel(timer)
        now = self.clock.now
        self._timeline_timers = [
            self.clock.call_at(event.at, self._play, event)
            for event in sorted(self.topology.timeline, key=lambda e: e.at)
            if event.at > now or (from_start and event.at >= now)
        ]

    def _play(self, event: TimelineEvent) -> None:
        try:
            self.apply(event)
        except FaultRefused as exc:
            self.fault_log.append((self.clock.now, f"{event.describe()}: not played, {exc}"))

    def restart_broker(self) -> str:
        """The broker goes down and comes back: connections drop, non-durable queues and exchanges
        are gone, durable queues keep their persistent messages (quorum queues keep all). The
        applications reconnect and declare what they use again, as real ones do."""
        for consumer in self.consumers.values():
            if consumer.channel is not None:
                consumer.crash()
        gone_queues, lost = self.broker.restart()
        self._connections.clear()
        self._redeclare()
        self.unbound.clear()
        return f"restart the broker: {gone_queues} non-durable queue(s) and {lost:,} message(s) lost"

    def _redeclare(self) -> None:
        broker = self.broker
        topology = self.topology
        for x in topology.exchanges:
            if x.name not in broker.get_vhost(x.vhost).exchanges:
                broker.add_exchange(x.vhost, x.name, x.type, x.durable, x.auto_delete, x.internal, x.arguments)
        for q in topology.queues:
            if q.name not in broker.get_vhost(q.vhost).queues:
                self._add_queue(q)
        for b in topology.bindings:
            broker.bind(b.vhost, b.source, b.destination, b.destination_type, b.routing_key, b.arguments)

    # -- stepping -----------------------------------------------------------------------

    STEP_HORIZON = 60.0  # simulated seconds a step looks ahead for something to happen

    def step(self, limit: int = 100_000) -> list[FlowEvent]:
        """Run the engine's events one at a time until one of them moves a message.

        Returns the flow events that event made (a publish, say, is routed and
        delivered at once). Bookkeeping events, such as taking a sample, do not
        count as a step. Nothing happening within ``STEP_HORIZON`` seconds ends the
        step there, with no events.
        """
        self.start()
        flow = self.flow
        enabled, flow.enabled = flow.enabled, True
        before = flow.count
        clock = self.clock
        horizon = clock.now + self.STEP_HORIZON
        try:
            for _ in range(limit):
                when = clock.next_time()
                if when is None or when > horizon:
                    break
                clock.run_until(when, max_events=1)
                if flow.count > before:
                    break
        finally:
            flow.enabled = enabled
        return flow.since(before)

    def follow_next(self) -> Follow:
        """Follow the next message published: its trace is kept, and ``done`` says when it has ended."""
        self.flow.enabled = True
        self.flow.traces.enabled = True
        return Follow(self)

    def run_until_over(self, follow: Follow, limit: float = 3600.0) -> bool:
        """Run until the followed message has ended everywhere (or ``limit`` simulated seconds pass)."""
        self.start()
        deadline = self.clock.now + limit
        while not follow.done and self.clock.now < deadline:
            if not self.step():
                break
        return follow.done

    # -- running ------------------------------------------------------------------------

    def start(self) -> None:
        if self.started:
            return
        self.started = True
        for consumer in self.consumers.values():
            consumer.start()
        for producer in self.producers.values():
            producer.start()
        self._schedule_timeline(from_start=True)
        if self.sample_interval is None:
            return
        self._sample()

    def _sample(self) -> None:
        assert self.sample_interval is not None
        latency = self.broker.latency
        self.history.sample(self.clock.now, latency.roll() if latency.enabled else None)
        self._sample_timer = self.clock.call_later(self.sample_interval, self._sample)

    def run_for(self, seconds: float) -> None:
        self.start()
        self.clock.run_until(self.clock.now + seconds)

    @property
    def now(self) -> float:
        return self.clock.now

    # -- reading --------------------------------------------------------------------------

    def queue_ids(self) -> list[str]:
        """The queues the topology draws that the broker has, in the broker's order."""
        shown = set(self.topology.node_ids())
        return [queue.node_id for queue in self.broker.all_queues() if queue.node_id in shown]

    def queue_limit(self, queue_id: str) -> int | None:
        """A queue's length limit as the broker applies it (argument or policy), if any."""
        _, vhost, name = split_node_id(queue_id)
        host = self.broker.vhosts.get(vhost)
        queue = host.queues.get(name) if host is not None else None
        return queue.max_length if queue is not None else None

    def read_counters(self) -> dict[str, tuple[int, ...]]:
        counters: dict[str, tuple[int, ...]] = {}
        for producer in self.producers.values():
            counters[producer.node_id] = (producer.published, producer.returned)
        ready = unacked = delivered = acked = nacked = redelivered = dropped = expired = dead_lettered = 0
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
                s.nacked,
            )
            ready += queue.depth
            unacked += queue.unacked
            delivered += s.delivered
            acked += s.acked
            nacked += s.nacked
            redelivered += s.redelivered
            dropped += s.dropped
            expired += s.expired
            dead_lettered += s.dead_lettered
        for consumer in self.consumers.values():
            counters[consumer.node_id] = (
                consumer.delivered,
                consumer.acked,
                consumer.unacked,
                len(consumer.buffer),
                consumer.processed,
                consumer.nacked,
                consumer.redelivered,
            )
        b = self.broker.stats
        counters[TOTALS_ID] = (
            b.published,
            b.routed,
            b.unroutable,
            delivered,
            acked,
            ready,
            unacked,
            nacked,
            redelivered,
            dropped,
            expired,
            b.returned,
            dead_lettered,
        )
        for source in self.counter_sources:
            source(counters)
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
                "failed": c.failed,
                "crashes": c.crashes,
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
            "faults": [{"time": round(when, 3), "what": what} for when, what in self.fault_log],
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
            placed = queue.depth + queue.unacked + s.acked + s.expired + s.dropped + s.rejected + s.purged + s.lost
            if s.enqueued != placed:
                problems.append(
                    f"queue {queue.name!r}: enqueued {s.enqueued} != ready {queue.depth} + unacked {queue.unacked}"
                    f" + acked {s.acked} + expired {s.expired} + dropped {s.dropped} + rejected {s.rejected}"
                    f" + purged {s.purged} + lost {s.lost}"
                )
        consumer_unacked = sum(c.unacked for c in self.consumers.values())
        queue_unacked = sum(q.unacked for q in self.broker.all_queues())
        if consumer_unacked > queue_unacked:
            problems.append(f"consumers hold {consumer_unacked} unacked but queues count {queue_unacked}")
        return problems


def _entities(topology: Topology) -> list[Any]:
    return [
        *topology.exchanges,
        *topology.queues,
        *topology.bindings,
        *topology.policies,
        *topology.producers,
        *topology.consumers,
    ]


def _needs_new_queue(before: Queue, after: Queue) -> bool:
    """Some changes RabbitMQ could only make by deleting and redeclaring the queue."""
    return (
        before.queue_type != after.queue_type
        or before.arguments.get("x-max-priority") != after.arguments.get("x-max-priority")
        or before.exclusive != after.exclusive
        or before.arguments.get("x-single-active-consumer") != after.arguments.get("x-single-active-consumer")
    )


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 3) if seconds > 0 else 0.0


def _stable_seed(seed: int, name: str) -> int:
    return seed * 1_000_003 + zlib.crc32(name.encode())


class Follow:
    """One message followed from its publish until every copy of it has been settled."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.after = sim.broker.published_count
        self.msg_id: int | None = None

    @property
    def started(self) -> bool:
        if self.msg_id is None and self.sim.broker.published_count > self.after:
            self.msg_id = self.after + 1
        return self.msg_id is not None

    @property
    def events(self) -> list[FlowEvent]:
        if not self.started:
            return []
        assert self.msg_id is not None
        return self.sim.flow.traces.hops(self.msg_id) or []

    @property
    def done(self) -> bool:
        return self.started and journey_over(self.events)


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
        # Events due at the target itself run too: a stop at 0 s still plays what happens at 0 s.
        while clock.now < target or ((due := clock.next_time()) is not None and due <= target):
            step_to = target if not math.isinf(target) else clock.now + 0.05
            ran = clock.run_until(step_to, max_events=32)
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
