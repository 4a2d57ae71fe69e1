"""What a node's detail line and an edge's label say: plain text from the model."""

from __future__ import annotations

from engine.model import Consumer, Producer, Queue
from engine.queues import Queue as EngineQueue
from engine.routing import EXCHANGE_TYPES
from engine.sim import COUNTERS, UNKNOWN_TYPE

P = {name: i for i, name in enumerate(COUNTERS["producer"])}
X = {name: i for i, name in enumerate(COUNTERS["exchange"])}
Q = {name: i for i, name in enumerate(COUNTERS["queue"])}
C = {name: i for i, name in enumerate(COUNTERS["consumer"])}


def _duration(ms: float) -> str:
    if ms >= 1000 and ms % 1000 == 0:
        return f"{ms / 1000:g} s"
    return f"{ms:g} ms"


def producer_detail(producer: Producer) -> str:
    detail = f"{producer.rate:g} msg/s"
    if producer.pattern == "poisson":
        detail += " · Poisson"
    return detail


def exchange_detail(exchange_type: str, internal: bool = False, arguments: dict | None = None) -> str:
    parts = [exchange_type]
    if exchange_type not in EXCHANGE_TYPES and exchange_type != UNKNOWN_TYPE:
        parts.append("not simulated")
    if internal:
        parts.append("internal")
    return " · ".join(parts)


def queue_detail(queue: Queue, effective: EngineQueue | None = None) -> str:
    """Type and limits; with the engine's queue, the limits its policy adds too."""
    args = queue.arguments
    parts = [queue.queue_type if queue.queue_type != "classic" else ("durable" if queue.durable else "transient")]
    if queue.queue_type == "stream":
        parts.append("not simulated")
    ttl = (
        effective.message_ttl * 1000
        if effective is not None and effective.message_ttl is not None
        else args.get("x-message-ttl")
    )
    if ttl is not None:
        parts.append(f"TTL {_duration(ttl)}")
    max_length = effective.max_length if effective is not None else args.get("x-max-length")
    if max_length is not None:
        parts.append(f"max {max_length}")
    if "x-max-priority" in args:
        parts.append(f"priority ≤{args['x-max-priority']}")
    if queue.auto_delete:
        parts.append("auto-delete")
    if effective is not None and effective.policy is not None:
        parts.append(f"policy {effective.policy.name}")
        if effective.policy.unsimulated_keys:
            parts.append(f"{', '.join(effective.policy.unsimulated_keys)} not simulated")
    return " · ".join(parts)


def consumer_detail(consumer: Consumer) -> str:
    if consumer.ack_mode == "auto":
        # Prefetch does not limit a consumer that takes its messages acked.
        return f"auto-ack · {_duration(consumer.work_ms)}"
    prefetch = "unlimited" if consumer.prefetch == 0 else str(consumer.prefetch)
    return f"prefetch {prefetch} · {_duration(consumer.work_ms)}"


def binding_label(exchange_type: str, routing_key: str, arguments: dict) -> str:
    if exchange_type == "fanout":
        return ""
    if exchange_type == "headers":
        match = arguments.get("x-match", "all")
        pairs = [f"{k}={v}" for k, v in arguments.items() if k != "x-match"]
        return f"{match}: " + ", ".join(pairs) if pairs else match
    return routing_key if routing_key else '""'
