"""The topology model: what a Queuecraft file holds, as plain data.

Broker objects (vhosts, exchanges, queues, bindings, policies) carry RabbitMQ's
own fields; simulated producers and consumers and the canvas layout are
Queuecraft's. Every object keeps the keys it does not know in ``extra`` so
that saving writes them back.

Nodes have stable ids of the form ``kind:vhost:name`` (``exchange:/:orders``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

DEFAULT_VHOST = "/"
RABBIT_VERSION = "3.10.8"  # the RabbitMQ whose behaviour the engine follows


def node_id(kind: str, vhost: str, name: str) -> str:
    """``exchange:/:orders``. A ':' (or '%') in the vhost is %-escaped so the id splits back."""
    if ":" in vhost or "%" in vhost:
        vhost = vhost.replace("%", "%25").replace(":", "%3A")
    return f"{kind}:{vhost}:{name}"


def split_node_id(nid: str) -> tuple[str, str, str]:
    """``exchange:/:orders`` -> ("exchange", "/", "orders"); names may hold ':'."""
    kind, vhost, name = nid.split(":", 2)
    if "%" in vhost:
        vhost = vhost.replace("%3A", ":").replace("%25", "%")
    return kind, vhost, name


@dataclass
class Vhost:
    name: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Exchange:
    name: str
    vhost: str = DEFAULT_VHOST
    type: str = "direct"
    durable: bool = True
    auto_delete: bool = False
    internal: bool = False
    arguments: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return node_id("exchange", self.vhost, self.name)


@dataclass
class Queue:
    name: str
    vhost: str = DEFAULT_VHOST
    durable: bool = True
    auto_delete: bool = False
    arguments: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    # Declared by its consumer's connection and gone with it. RabbitMQ's
    # definitions cannot hold such a queue, so only Queuecraft's section records it.
    exclusive: bool = False

    @property
    def id(self) -> str:
        return node_id("queue", self.vhost, self.name)

    @property
    def queue_type(self) -> str:
        return str(self.arguments.get("x-queue-type", "classic"))


@dataclass
class Binding:
    source: str
    destination: str
    vhost: str = DEFAULT_VHOST
    destination_type: str = "queue"
    routing_key: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def source_id(self) -> str:
        return node_id("exchange", self.vhost, self.source)

    @property
    def destination_id(self) -> str:
        return node_id(self.destination_type, self.vhost, self.destination)


@dataclass
class Policy:
    name: str
    pattern: str
    vhost: str = DEFAULT_VHOST
    apply_to: str = "all"
    definition: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Producer:
    """A simulated publisher: a rate of messages with keys drawn from a template.

    ``exchange`` is None while the producer is not connected to one.
    """

    name: str
    exchange: str | None
    vhost: str = DEFAULT_VHOST
    routing_key: str = ""
    rate: float = 1.0
    pattern: str = "steady"  # or "poisson"
    headers: dict[str, Any] = field(default_factory=dict)
    body_size: int = 100
    persistent: bool = False
    mandatory: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return node_id("producer", self.vhost, self.name)

    @property
    def exchange_id(self) -> str | None:
        return None if self.exchange is None else node_id("exchange", self.vhost, self.exchange)


FAILURE_ACTIONS = ("requeue", "dead-letter", "crash")


@dataclass
class Consumer:
    """A simulated consumer: takes messages within its prefetch, works, acks.

    A ``failure_rate`` of its messages fail: they are nacked and requeued,
    rejected (to the queue's dead-letter exchange, if it has one), or the
    consumer crashes (its channel closes, its unacked messages return to the
    queue) and comes back ``restart_ms`` later. ``queue`` is None while the
    consumer is not connected to one.
    """

    name: str
    queue: str | None
    vhost: str = DEFAULT_VHOST
    prefetch: int = 1
    work_ms: float = 100.0
    work_spread_ms: float = 0.0
    ack_mode: str = "manual"  # or "auto"
    failure_rate: float = 0.0
    on_failure: str = "requeue"  # one of FAILURE_ACTIONS
    restart_ms: float = 1000.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return node_id("consumer", self.vhost, self.name)

    @property
    def queue_id(self) -> str | None:
        return None if self.queue is None else node_id("queue", self.vhost, self.queue)


# What a timeline event can do, and the kind of node it acts on ("" for the broker itself).
TIMELINE_ACTIONS: dict[str, str] = {
    "kill": "consumer",  # the consumer dies: its unacked messages go back, redelivered; it stays down
    "restart": "consumer",  # a killed consumer comes back
    "slow": "consumer",  # its work takes ``factor`` times as long (1: its normal pace)
    "fail": "consumer",  # a ``share`` of its messages fail, handled by ``on_failure`` (share 0: none)
    "stop": "producer",
    "start": "producer",
    "burst": "producer",  # publishes ``count`` messages at once
    "rate": "producer",  # publishes at ``rate`` msg/s from now on
    "unbind": "exchange",  # removes a binding from the running broker
    "bind": "exchange",
    "restart_broker": "",  # non-durable queues and transient messages are gone
}


@dataclass
class TimelineEvent:
    """A fault or change the simulation plays by itself ``at`` seconds into a run, so a lesson replays."""

    at: float
    action: str  # one of TIMELINE_ACTIONS
    vhost: str = DEFAULT_VHOST
    node: str | None = None  # the consumer, producer or exchange it acts on, by name
    factor: float | None = None  # slow
    share: float | None = None  # fail
    on_failure: str | None = None  # fail: one of FAILURE_ACTIONS (default: the consumer's own)
    count: int | None = None  # burst
    rate: float | None = None  # rate
    destination: str | None = None  # bind, unbind
    destination_type: str = "queue"
    routing_key: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)

    @property
    def node_id(self) -> str | None:
        kind = TIMELINE_ACTIONS.get(self.action, "")
        return node_id(kind, self.vhost, self.node) if kind and self.node is not None else None

    def describe(self) -> str:
        a, n = self.action, self.node
        if a == "kill":
            return f"kill consumer {n}"
        if a == "restart":
            return f"restart consumer {n}"
        if a == "slow":
            return f"consumer {n} at normal pace" if self.factor == 1 else f"slow consumer {n} ×{self.factor:g}"
        if a == "fail":
            if not self.share:
                return f"consumer {n} stops failing"
            how = f", {self.on_failure}" if self.on_failure else ""
            return f"consumer {n} fails {self.share:.0%} of its messages{how}"
        if a == "stop":
            return f"stop producer {n}"
        if a == "start":
            return f"start producer {n}"
        if a == "burst":
            return f"burst of {self.count:,} messages from {n}"
        if a == "rate":
            return f"producer {n} back to its own rate" if self.rate is None else f"producer {n} at {self.rate:g} msg/s"
        if a in ("bind", "unbind"):
            key = f" '{self.routing_key}'" if self.routing_key else ""
            return f"{a} {n} → {self.destination}{key}"
        if a == "restart_broker":
            return "restart the broker"
        return a


@dataclass
class Topology:
    vhosts: list[Vhost] = field(default_factory=lambda: [Vhost(DEFAULT_VHOST)])
    exchanges: list[Exchange] = field(default_factory=list)
    queues: list[Queue] = field(default_factory=list)
    bindings: list[Binding] = field(default_factory=list)
    policies: list[Policy] = field(default_factory=list)
    producers: list[Producer] = field(default_factory=list)
    consumers: list[Consumer] = field(default_factory=list)
    timeline: list[TimelineEvent] = field(default_factory=list)
    layout: dict[str, tuple[float, float]] = field(default_factory=dict)
    title: str = ""
    description: str = ""
    # Keys of the file Queuecraft does not use (users, permissions, parameters, ...),
    # and of its own section, in the order they came. A new topology says which
    # RabbitMQ its definitions follow, as an export would.
    extra: dict[str, Any] = field(default_factory=lambda: {"rabbit_version": RABBIT_VERSION})
    queuecraft_extra: dict[str, Any] = field(default_factory=dict)
    # "cluster": entities carry a vhost field; "vhost": a one-vhost export without them.
    shape: str = "cluster"
    # The file's top-level keys in the order they came, so saving keeps that order.
    key_order: list[str] = field(default_factory=list, compare=False)

    def exchange(self, vhost: str, name: str) -> Exchange | None:
        return next((x for x in self.exchanges if x.vhost == vhost and x.name == name), None)

    def queue(self, vhost: str, name: str) -> Queue | None:
        return next((q for q in self.queues if q.vhost == vhost and q.name == name), None)

    def vhost_names(self) -> list[str]:
        return [v.name for v in self.vhosts]

    def node_ids(self) -> list[str]:
        """Every node the canvas draws, in a stable order."""
        ids = [p.id for p in self.producers]
        ids += [x.id for x in self.exchanges]
        ids += [x for x in self.implicit_exchange_ids() if x not in ids]
        ids += [q.id for q in self.queues]
        ids += [c.id for c in self.consumers]
        return ids

    def implicit_exchange_ids(self) -> list[str]:
        """Exchanges drawn though the file does not declare them: built-in ones (the
        default exchange, amq.*) that something uses, and undeclared ones bindings name
        (RabbitMQ's exports leave internal exchanges out)."""
        declared = {x.id for x in self.exchanges}
        wanted: list[str] = []
        for producer in self.producers:
            if producer.exchange_id is not None:
                wanted.append(producer.exchange_id)
        for binding in self.bindings:
            wanted.append(binding.source_id)
            if binding.destination_type == "exchange":
                wanted.append(binding.destination_id)
        result: list[str] = []
        for nid in wanted:
            _, vhost, name = split_node_id(nid)
            if nid not in declared and nid not in result:
                result.append(nid)
        return result

    def undeclared_exchange_ids(self) -> list[str]:
        """Exchanges bindings name that are neither declared nor built in."""
        return [nid for nid in self.implicit_exchange_ids() if not is_builtin_exchange(split_node_id(nid)[2])]


BUILTIN_EXCHANGES = {
    "": "direct",
    "amq.direct": "direct",
    "amq.fanout": "fanout",
    "amq.topic": "topic",
    "amq.headers": "headers",
    "amq.match": "headers",
    "amq.rabbitmq.trace": "topic",
}


def is_builtin_exchange(name: str) -> bool:
    return name in BUILTIN_EXCHANGES


def display_name(kind: str, name: str) -> str:
    if kind == "exchange" and name == "":
        return "(AMQP default)"
    return name


_TEMPLATE_PART = re.compile(r"\{([^{}]*)\}")


EXPANDED_KEYS = 512  # beyond this many keys, the widest choices stand for any value


def expand_template(template: str, limit: int = EXPANDED_KEYS) -> list[str]:
    """Every routing key a template can produce: ``a.{b|c}`` gives ``a.b`` and ``a.c``.

    ``{seq}`` (a running number) expands to ``*`` here, standing for any value; so
    does a part with many one-word choices when listing them all would give more
    than ``limit`` keys (a template of six ten-way choices is a million keys).
    """
    parts: list[str | list[str]] = []
    pos = 0
    for match in _TEMPLATE_PART.finditer(template):
        parts.append(template[pos : match.start()])
        parts.append(["*"] if match.group(1) == "seq" else match.group(1).split("|"))
        pos = match.end()
    parts.append(template[pos:])
    choices = [part for part in parts if isinstance(part, list)]

    def count() -> int:
        total = 1
        for part in choices:
            total *= len(part)
        return total

    for choice in sorted(choices, key=lambda c: (any("." in word for word in c), -len(c))):
        if count() <= limit:
            break
        choice[:] = ["*"]
    keys = [""]
    for piece in parts:
        if isinstance(piece, str):
            keys = [k + piece for k in keys]
        else:
            keys = [k + c for k in keys for c in piece]
            if len(keys) > limit:
                keys = keys[:limit]  # choices with dots in them: as many as the limit allows
    # A word that is only partly "any value" (order-{seq}) can be any word.
    words = [".".join("*" if "*" in w else w for w in key.split(".")) for key in keys]
    return list(dict.fromkeys(words))
