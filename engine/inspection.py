"""Looking inside a running broker: the messages in a queue, and where one message went and why."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from .broker import Broker
from .explain import Verdict, explain_binding
from .message import Message
from .metrics import FlowEvent
from .model import display_name, node_id, split_node_id
from .queues import Queue

BODY_PREVIEW = 64  # bytes shown of a body


@dataclass
class MessageRow:
    """One message as a queue's list shows it."""

    position: int | None  # 1 is the next to be delivered; None while a consumer holds it
    state: str  # "ready" or "unacked"
    consumer: str | None  # node id of the consumer holding it
    msg_id: int
    exchange: str
    routing_key: str
    headers: dict[str, Any]
    properties: dict[str, Any]
    body_preview: str
    size: int
    age: float  # seconds since it was published
    waiting: float  # seconds since it entered this queue
    redelivered: bool
    priority: int


@dataclass
class QueueListing:
    rows: list[MessageRow]
    ready: int  # every ready message, listed or not
    unacked: int


def body_preview(body: bytes, limit: int = BODY_PREVIEW) -> str:
    """The start of a body as text: printable characters as they are, the rest escaped."""
    text = body[:limit].decode("utf-8", errors="backslashreplace")
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return shown + ("…" if len(body) > limit else "")


def _row(message: Message, position: int | None, consumer: str | None, now: float) -> MessageRow:
    properties = dict(message.properties or {})
    headers = properties.pop("headers", None) or {}
    return MessageRow(
        position=position,
        state="ready" if position is not None else "unacked",
        consumer=consumer,
        msg_id=message.msg_id,
        exchange=message.exchange,
        routing_key=message.routing_key,
        headers=dict(headers),
        properties=properties,
        body_preview=body_preview(message.body),
        size=len(message.body),
        age=now - message.published_at,
        waiting=now - message.enqueued_at,
        redelivered=message.redelivered,
        priority=message.priority,
    )


def queue_messages(broker: Broker, queue: Queue, limit: int = 200) -> QueueListing:
    """The first ``limit`` ready messages in delivery order, then those consumers hold; cost follows ``limit``."""
    now = broker.clock.now
    rows = [
        _row(message, position, None, now)
        for position, message in enumerate(itertools.islice(iter(queue.ready), limit), start=1)
    ]
    room = limit - len(rows)
    if room > 0 and queue.unacked:
        for connection in broker.connections:
            for channel in connection.channels.values():
                for entry in channel.unacked.values():
                    if entry.queue is queue:
                        consumer = entry.consumer.node_id if entry.consumer is not None else None
                        rows.append(_row(entry.message, None, consumer, now))
                        room -= 1
                        if room == 0:
                            return QueueListing(rows, queue.depth, queue.unacked)
    return QueueListing(rows, queue.depth, queue.unacked)


# Deliveries after which the message is settled at once: nothing will ack it.
_SETTLED_ON_DELIVERY = ("auto-ack", "basic.get, no ack")


def whereabouts(events: list[FlowEvent]) -> dict[str, tuple[str, str | None]]:
    """Where the copies of a message are after ``events`` (its trace, in order):
    ``{queue node: ("ready", None) | ("unacked", consumer node)}``; empty once every copy is settled."""
    places: dict[str, tuple[str, str | None]] = {}
    for event in events:
        kind = event.kind
        if kind == "routed":
            destination = event.detail if event.detail else event.target
            if destination is not None and destination.startswith("queue:"):
                places[destination] = ("ready", None)
        elif kind == "delivered" and event.source is not None:
            if event.detail in _SETTLED_ON_DELIVERY:
                places.pop(event.source, None)
            else:
                places[event.source] = ("unacked", event.target)
        elif kind == "acked" and event.target is not None:
            places.pop(event.target, None)
        elif kind == "nacked" and event.target is not None:
            if event.detail == "discard":
                places.pop(event.target, None)
            else:
                places[event.target] = ("ready", None)
        elif kind == "requeued" and event.source is not None:
            places[event.source] = ("ready", None)
        elif kind in ("expired", "dropped", "dead_lettered") and event.source is not None:
            places.pop(event.source, None)
    return places


def journey_over(events: list[FlowEvent]) -> bool:
    """True once a published message has met its end everywhere it went."""
    return bool(events) and not whereabouts(events)


SEARCH_DEPTH = 10_000  # messages read from the head of each queue when looking for one


def find_message(broker: Broker, msg_id: int, queues: set[str] | None = None) -> list[tuple[Queue, Message]]:
    """Copies of a message still in a queue (ready or held by a consumer): in the queues named
    (node ids; all of them when None), among the first ``SEARCH_DEPTH`` ready messages of each,
    so that looking costs the same however deep the queues are."""
    found = []
    for queue in broker.all_queues():
        if queues is not None and queue.node_id not in queues:
            continue
        for message in itertools.islice(queue.ready, SEARCH_DEPTH):
            if message.msg_id == msg_id:
                found.append((queue, message))
    for connection in broker.connections:
        for channel in connection.channels.values():
            for entry in itertools.islice(channel.unacked.values(), SEARCH_DEPTH):
                if entry.message.msg_id == msg_id:
                    found.append((entry.queue, entry.message))
    return found


@dataclass
class BindingCheck:
    """One binding of an exchange a message passed, and whether it took the message."""

    label: str  # the binding key, or the header pairs
    destination: str  # node id
    verdict: Verdict


@dataclass
class Hop:
    time: float
    kind: str  # a FlowLog kind
    source: str | None
    target: str | None
    text: str
    bindings: list[BindingCheck] = field(default_factory=list)  # for a message leaving an exchange


@dataclass
class Trace:
    msg_id: int
    routing_key: str
    hops: list[Hop]
    complete: bool  # False when the early hops are no longer kept and were pieced together


def _name(nid: str | None) -> str:
    if nid is None:
        return "?"
    kind, _, name = split_node_id(nid)
    if kind == "binding":
        return name
    return display_name(kind, name)


def _label(exchange_type: str, routing_key: str, arguments: dict[str, Any]) -> str:
    if exchange_type == "fanout":
        return "(fanout)"
    if exchange_type == "headers":
        pairs = ", ".join(f"{k}={v!r}" for k, v in arguments.items() if k != "x-match")
        return f"x-match {arguments.get('x-match', 'all')}: {pairs}" if pairs else "headers"
    return f"'{routing_key}'"


class Tracer:
    """Describes a message's journey from its trace (or, when that is gone, from what it carries)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def trace(self, msg_id: int) -> Trace | None:
        events = self.broker.flow.traces.hops(msg_id)
        copies = find_message(self.broker, msg_id, None if events is None else set(whereabouts(events)))
        if events is None:
            if not copies:
                return None
            return self._pieced_together(msg_id, copies)
        message = copies[0][1] if copies else None
        headers = message.headers if message is not None else {}
        routing_key = events[0].routing_key
        checked: set[str] = set()
        hops = [self._hop(event, headers, checked) for event in events]
        return Trace(msg_id, routing_key, hops, complete=events[0].kind == "published" or events[0].kind == "routed")

    def _hop(self, event: FlowEvent, headers: dict[str, Any], checked: set[str]) -> Hop:
        """One hop; the first hop out of an exchange carries the check of each of its bindings
        (a message an exchange routes to several queues is checked once, not once a queue)."""
        kind, source, target = event.kind, event.source, event.target
        text = self._describe(event)
        hop = Hop(event.time, kind, source, target, text)
        if kind in ("routed", "unroutable", "returned") and source is not None and source.startswith("exchange:"):
            where = f"{source}\0{event.routing_key}"
            if where not in checked:
                checked.add(where)
                hop.bindings = self.binding_checks(source, event.routing_key, headers)
        return hop

    def describe(self, event: FlowEvent) -> str:
        """One flow event in words."""
        return self._describe(event)

    def _describe(self, event: FlowEvent) -> str:
        kind, source, target, detail = event.kind, event.source, event.target, event.detail
        key = f"'{event.routing_key}'" if event.routing_key else "the empty key"
        if kind == "published":
            return f"{_name(source)} published it to exchange {_name(target)} with routing key {key}"
        if kind == "routed":
            assert source is not None and target is not None
            target_kind = split_node_id(target)[0]
            if target_kind == "binding":
                destination = self._binding_destination(target)
                return f"exchange {_name(source)} routed it to {destination}"
            if target_kind == "exchange":
                return f"no binding of {_name(source)} matched: on to its alternate exchange {_name(target)}"
            return f"the default exchange routed it to queue {_name(target)}, named by the key"
        if kind == "unroutable":
            return f"no binding of exchange {_name(source)} matched: unroutable, dropped"
        if kind == "returned":
            return f"no binding of exchange {_name(source)} matched: returned to {_name(target)} ({detail})"
        if kind == "delivered":
            return f"queue {_name(source)} delivered it to {_name(target)}"
        if kind == "acked":
            return f"{_name(source)} acknowledged it"
        if kind == "nacked":
            if detail in ("requeue", "discard"):
                what = "and asked for it to be requeued" if detail == "requeue" else "without requeue"
                return f"{_name(source)} rejected it {what}"
            return f"{_name(source)} gave it back ({detail})"
        if kind == "requeued":
            return f"back in queue {_name(source)}, marked redelivered"
        if kind == "expired":
            return f"expired in queue {_name(source)} (its TTL ran out)"
        if kind == "dropped":
            reason = {
                "drop-head": "the queue was full and dropped its oldest message (drop-head)",
                "reject-publish": "the queue was full and refused it (reject-publish)",
                "reject-publish-dlx": "the queue was full and refused it (reject-publish-dlx)",
                "delivery-limit": "it was delivered more times than the queue's delivery limit",
            }.get(detail, detail)
            return f"dropped by queue {_name(source)}: {reason}"
        if kind == "dead_lettered":
            return f"dead-lettered from queue {_name(source)} ({detail}) to exchange {_name(target)}"
        return f"{kind} {_name(source)} → {_name(target)}"

    def _binding_destination(self, binding_node: str) -> str:
        binding = self._binding(binding_node)
        if binding is None:
            return "a binding removed since"
        kind = "queue" if binding.destination_type == "queue" else "exchange"
        return f"{kind} {binding.destination}"

    def _binding(self, binding_node: str) -> Any:
        _, vhost, _ = split_node_id(binding_node)
        host = self.broker.vhosts.get(vhost)
        if host is None:
            return None
        for exchange in host.exchanges.values():
            for binding in exchange.router.bindings:
                if binding.node_id == binding_node:
                    return binding
        return None

    def binding_checks(self, exchange_node: str, routing_key: str, headers: dict[str, Any]) -> list[BindingCheck]:
        """Every binding of the exchange, as it stands now, against the message."""
        _, vhost, name = split_node_id(exchange_node)
        host = self.broker.vhosts.get(vhost)
        exchange = host.exchanges.get(name) if host is not None else None
        if exchange is None:
            return []
        checks = []
        for binding in exchange.router.bindings:
            verdict = explain_binding(exchange.type, binding.routing_key, binding.arguments, routing_key, headers)
            destination = node_id(binding.destination_type, binding.vhost, binding.destination)
            checks.append(
                BindingCheck(_label(exchange.type, binding.routing_key, binding.arguments), destination, verdict)
            )
        return checks

    def _pieced_together(self, msg_id: int, copies: list[tuple[Queue, Message]]) -> Trace:
        """What a message still in a queue tells about itself, when its trace is no longer kept."""
        queue, message = copies[0]
        hops = []
        exchange_node = node_id("exchange", queue.vhost, message.exchange)
        if message.origin is not None:
            hops.append(
                Hop(
                    message.published_at,
                    "published",
                    message.origin,
                    exchange_node,
                    f"{_name(message.origin)} published it to exchange {display_name('exchange', message.exchange)}"
                    f" with routing key '{message.routing_key}'",
                )
            )
        for death in reversed(message.headers.get("x-death") or []):
            hops.append(
                Hop(
                    message.published_at,
                    "dead_lettered",
                    node_id("queue", queue.vhost, str(death.get("queue"))),
                    None,
                    f"dead-lettered from queue {death.get('queue')} ({death.get('reason')}), "
                    f"{death.get('count', 1)} time(s)",
                )
            )
        for q, copy in copies:
            hops.append(
                Hop(
                    copy.enqueued_at,
                    "routed",
                    exchange_node,
                    q.node_id,
                    f"waiting in queue {q.name}" + (", redelivered" if copy.redelivered else ""),
                    self.binding_checks(exchange_node, copy.routing_key, copy.headers),
                )
            )
        return Trace(msg_id, message.routing_key, hops, complete=False)
