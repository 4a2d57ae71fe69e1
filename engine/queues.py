"""Queues: ready messages in order, consumers served in turn, limits and TTL."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .message import Message

if TYPE_CHECKING:
    from .broker import Broker, Policy
    from .channel import ChannelConsumer


class QueueStats:
    __slots__ = (
        "enqueued",
        "delivered",
        "redelivered",
        "acked",
        "requeued",
        "rejected",
        "expired",
        "dropped",
        "purged",
        "dead_lettered",
        "refused",
    )

    def __init__(self) -> None:
        self.enqueued = 0  # copies that entered the queue
        self.delivered = 0  # deliveries to consumers and basic.get (redeliveries included)
        self.redelivered = 0
        self.acked = 0
        self.requeued = 0
        self.rejected = 0  # nacked or rejected without requeue
        self.expired = 0
        self.dropped = 0  # pushed out by a length limit
        self.purged = 0
        self.dead_lettered = 0
        self.refused = 0  # publishes turned away by reject-publish

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class Queue:
    """A classic queue in a vhost.

    Consumers wait in ``_active`` (by consumer priority, then in turn) or in
    ``_blocked`` while their prefetch is used up; a delivery sends the consumer to
    the back of its line, which is RabbitMQ's round-robin.
    """

    def __init__(
        self,
        broker: Broker,
        vhost: str,
        name: str,
        durable: bool = True,
        auto_delete: bool = False,
        exclusive_owner: Any = None,
        arguments: dict[str, Any] | None = None,
    ) -> None:
        self.broker = broker
        self.vhost = vhost
        self.name = name
        self.durable = durable
        self.auto_delete = auto_delete
        self.exclusive_owner = exclusive_owner
        self.arguments = dict(arguments or {})
        self.node_id = f"queue:{vhost}:{name}"
        self.stats = QueueStats()
        self.ready: deque[Message] = deque()
        self.ready_bytes = 0
        self.unacked = 0
        self.consumers: list[ChannelConsumer] = []
        self._active: deque[ChannelConsumer] = deque()
        self._blocked: set[ChannelConsumer] = set()
        self._next_seq = 0
        self._dispatching = False
        self._expiry_timer: Any = None
        self.deleted = False
        self.message_ttl: float | None = None
        self.max_length: int | None = None
        self.max_length_bytes: int | None = None
        self.overflow = "drop-head"
        self.dead_letter_exchange: str | None = None
        self.dead_letter_routing_key: str | None = None
        self.policy: Policy | None = None
        self.apply_settings()

    # -- settings ---------------------------------------------------------------

    def apply_settings(self) -> None:
        """Derive the effective limits from the arguments and the applied policy.

        Where both set a limit, the lower wins; where both name a dead-letter
        target or overflow rule, the argument wins (RabbitMQ's resolution).
        """
        args = self.arguments
        policy = self.policy.definition if self.policy is not None else {}

        def lowest(name: str) -> Any:
            values = [v for v in (args.get("x-" + name), policy.get(name)) if v is not None]
            return min(values) if values else None

        def argument_first(name: str, default: Any = None) -> Any:
            value = args.get("x-" + name)
            return policy.get(name, default) if value is None else value

        ttl = lowest("message-ttl")
        self.message_ttl = None if ttl is None else ttl / 1000.0
        self.max_length = lowest("max-length")
        self.max_length_bytes = lowest("max-length-bytes")
        self.overflow = argument_first("overflow", "drop-head")
        self.dead_letter_exchange = argument_first("dead-letter-exchange")
        self.dead_letter_routing_key = argument_first("dead-letter-routing-key")

    @property
    def depth(self) -> int:
        return len(self.ready)

    def messages(self) -> Iterator[Message]:
        return iter(self.ready)

    # -- enqueue ------------------------------------------------------------------

    def enqueue(self, message: Message) -> bool:
        """Take a routed message; False when the queue's overflow rule refuses it."""
        if self.overflow != "drop-head" and self._would_overflow(message):
            self.stats.refused += 1
            if self.overflow == "reject-publish-dlx":
                self.broker.dead_letter(self, message, "maxlen")
            return False
        now = self.broker.clock.now
        message.enqueued_at = now
        message.seq = self._next_seq
        self._next_seq += 1
        ttl = self.message_ttl
        expiration = _per_message_ttl(message)
        if expiration is not None and (ttl is None or expiration < ttl):
            ttl = expiration
        message.expires_at = None if ttl is None else now + ttl
        self.stats.enqueued += 1
        self.ready.append(message)
        self.ready_bytes += len(message.body)
        self.dispatch()
        if self.ready:
            self._enforce_length_limit()
            self._expire_head()
        return True

    def _would_overflow(self, message: Message) -> bool:
        if self.max_length is not None and len(self.ready) >= self.max_length:
            return True
        limit = self.max_length_bytes
        return limit is not None and self.ready_bytes + len(message.body) > limit

    def _enforce_length_limit(self) -> None:
        max_length = self.max_length
        max_bytes = self.max_length_bytes
        while self.ready and (
            (max_length is not None and len(self.ready) > max_length)
            or (max_bytes is not None and self.ready_bytes > max_bytes)
        ):
            message = self._pop_ready()
            self.stats.dropped += 1
            self.broker.record_flow("dropped", self.node_id, None, message)
            self.broker.dead_letter(self, message, "maxlen")

    def _pop_ready(self) -> Message:
        message = self.ready.popleft()
        self.ready_bytes -= len(message.body)
        return message

    # -- TTL ----------------------------------------------------------------------

    def _expire_head(self) -> None:
        """Drop expired messages at the head; a classic queue only expires its head."""
        ready = self.ready
        if not ready:
            return
        now = self.broker.clock.now
        while ready and ready[0].expires_at is not None and ready[0].expires_at <= now:
            message = self._pop_ready()
            self.stats.expired += 1
            self.broker.record_flow("expired", self.node_id, None, message)
            self.broker.dead_letter(self, message, "expired")
        self._schedule_expiry()

    def _schedule_expiry(self) -> None:
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
            self._expiry_timer = None
        if self.ready and self.ready[0].expires_at is not None and not self.deleted:
            self._expiry_timer = self.broker.clock.call_at(self.ready[0].expires_at, self._on_expiry_timer)

    def _on_expiry_timer(self) -> None:
        self._expiry_timer = None
        self._expire_head()

    # -- consumers ----------------------------------------------------------------

    def add_consumer(self, consumer: ChannelConsumer) -> None:
        self.consumers.append(consumer)
        self._active.append(consumer)
        self.dispatch()

    def remove_consumer(self, consumer: ChannelConsumer) -> None:
        self.consumers.remove(consumer)
        self._blocked.discard(consumer)
        try:
            self._active.remove(consumer)
        except ValueError:
            pass

    def unblock(self, consumer: ChannelConsumer) -> None:
        """A consumer's prefetch has room again: put it back in line and dispatch."""
        if consumer in self._blocked:
            self._blocked.discard(consumer)
            self._active.append(consumer)
        self.dispatch()

    def dispatch(self) -> None:
        if self._dispatching:
            return
        self._dispatching = True
        try:
            ready = self.ready
            active = self._active
            now = self.broker.clock.now
            while ready and active:
                consumer = active[0]
                if not consumer.has_capacity():
                    active.popleft()
                    self._blocked.add(consumer)
                    continue
                message = ready[0]
                if message.expires_at is not None and message.expires_at <= now:
                    self._expire_head()
                    continue
                self._pop_ready()
                active.rotate(-1)
                self.stats.delivered += 1
                if message.redelivered:
                    self.stats.redelivered += 1
                consumer.channel.deliver(consumer, message, self)
        finally:
            self._dispatching = False
        if ready:
            self._schedule_expiry()

    def get(self) -> Message | None:
        """basic.get: the head message, or None when the queue is empty."""
        self._expire_head()
        if not self.ready:
            return None
        message = self._pop_ready()
        self.stats.delivered += 1
        if message.redelivered:
            self.stats.redelivered += 1
        self._schedule_expiry()
        return message

    # -- settlement -----------------------------------------------------------------

    def settle_acked(self) -> None:
        self.unacked -= 1
        self.stats.acked += 1

    def settle_rejected(self, message: Message) -> None:
        self.unacked -= 1
        self.stats.rejected += 1
        self.broker.dead_letter(self, message, "rejected")

    def requeue(self, message: Message) -> None:
        self.unacked -= 1
        self.stats.requeued += 1
        if self.deleted:
            return
        message.redelivered = True
        _requeue(self.ready, message)
        self.ready_bytes += len(message.body)
        self.broker.record_flow("requeued", self.node_id, None, message)

    def purge(self) -> int:
        count = len(self.ready)
        self.ready.clear()
        self.ready_bytes = 0
        self.stats.purged += count
        self._schedule_expiry()
        return count

    def delete(self) -> int:
        count = self.purge()
        self.deleted = True
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
            self._expiry_timer = None
        return count


def _requeue(ready: deque[Message], message: Message) -> None:
    position = message.seq
    if not ready or position < ready[0].seq:
        ready.appendleft(message)
        return
    for index, other in enumerate(ready):
        if other.seq > position:
            ready.insert(index, message)
            return
    ready.append(message)


def _per_message_ttl(message: Message) -> float | None:
    props = message.properties
    if props is None:
        return None
    expiration = props.get("expiration")
    if expiration is None:
        return None
    try:
        return int(expiration) / 1000.0
    except (TypeError, ValueError):
        return None
