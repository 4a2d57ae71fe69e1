"""Queues: ready messages in order, consumers served in turn, limits and TTL."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .clock import cancel
from .message import Message
from .model import node_id

if TYPE_CHECKING:
    from .broker import Broker, Policy
    from .channel import ChannelConsumer


class QueueStats:
    __slots__ = (
        "enqueued",
        "delivered",
        "redelivered",
        "acked",
        "nacked",
        "requeued",
        "rejected",
        "expired",
        "dropped",
        "purged",
        "dead_lettered",
        "refused",
        "lost",
    )

    def __init__(self) -> None:
        self.enqueued = 0  # copies that entered the queue
        self.delivered = 0  # deliveries to consumers and basic.get (redeliveries included)
        self.redelivered = 0
        self.acked = 0
        self.nacked = 0  # nacks and rejects from clients, requeued or not
        self.requeued = 0
        self.rejected = 0  # nacked or rejected without requeue
        self.expired = 0
        self.dropped = 0  # pushed out by a length limit
        self.purged = 0
        self.dead_lettered = 0
        self.refused = 0  # publishes turned away by reject-publish
        self.lost = 0  # transient messages a broker restart took

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class FifoMessages(deque[Message]):
    """Ready messages in queue order."""

    __slots__ = ()

    def requeue(self, message: Message) -> None:
        _requeue(self, message)


class PriorityMessages:
    """Ready messages of a priority queue: highest priority first, FIFO within a priority."""

    __slots__ = ("levels", "size")

    def __init__(self, max_priority: int) -> None:
        self.levels: list[deque[Message]] = [deque() for _ in range(max_priority + 1)]
        self.size = 0

    def append(self, message: Message) -> None:
        self.levels[message.priority].append(message)
        self.size += 1

    def popleft(self) -> Message:
        for level in reversed(self.levels):
            if level:
                self.size -= 1
                return level.popleft()
        raise IndexError("pop from an empty queue")

    def __getitem__(self, index: int) -> Message:
        if index != 0:
            raise IndexError("only the head of a priority queue can be read")
        for level in reversed(self.levels):
            if level:
                return level[0]
        raise IndexError("empty queue")

    def __len__(self) -> int:
        return self.size

    def __bool__(self) -> bool:
        return self.size > 0

    def __iter__(self) -> Iterator[Message]:
        for level in reversed(self.levels):
            yield from level

    def clear(self) -> None:
        for level in self.levels:
            level.clear()
        self.size = 0

    def requeue(self, message: Message) -> None:
        _requeue(self.levels[message.priority], message)
        self.size += 1


class Queue:
    """A queue in a vhost: classic (FIFO or priority), or quorum.

    Consumers wait in lines by consumer priority (``_lines``) or in ``_blocked``
    while their prefetch is used up; a delivery sends the consumer to the back of
    its line, which is RabbitMQ's round-robin.
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
        self.queue_type = str(self.arguments.get("x-queue-type", "classic"))
        self.quorum = self.queue_type == "quorum"
        self.node_id = node_id("queue", vhost, name)
        self.stats = QueueStats()
        self.max_priority = _max_priority(arguments) if self.queue_type == "classic" else None
        self.ready: FifoMessages | PriorityMessages = (
            FifoMessages() if self.max_priority is None else PriorityMessages(self.max_priority)
        )
        self.ready_bytes = 0
        self.unacked = 0
        self.consumers: list[ChannelConsumer] = []
        self._lines: list[tuple[int, deque[ChannelConsumer]]] = []  # by consumer priority, highest first
        self.blocked: dict[ChannelConsumer, None] = {}  # in the order they were blocked
        self.single_active_consumer = bool(self.arguments.get("x-single-active-consumer", False))
        self.active_consumer: ChannelConsumer | None = None  # with single active consumer
        # Quorum queues: how many messages at the head are returns (served before the rest),
        # and the channels holding basic.get messages unsettled (each counts as a consumer).
        self._returns = 0
        self.get_holders: dict[Any, int] = {}
        self.lingering: dict[ChannelConsumer, None] = {}  # cancelled, still holding messages
        self._rejecting = False  # a quorum queue's reject-publish, once over its limit
        self._next_seq = 0
        self._dispatching = False
        self._expiry_timer: Any = None
        self._expiry_at: float | None = None
        self._lease_timer: Any = None
        self.deleted = False
        self.message_ttl: float | None = None
        self.expires: float | None = None
        self.max_length: int | None = None
        self.max_length_bytes: int | None = None
        self.overflow = "drop-head"
        self.dead_letter_exchange: str | None = None
        self.dead_letter_routing_key: str | None = None
        self.delivery_limit: int | None = None
        self.policy: Policy | None = None
        self.apply_settings()

    @property
    def simulated(self) -> bool:
        """Streams are drawn and hold messages, but their semantics are not simulated."""
        return self.queue_type != "stream"

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
        expires = lowest("expires")
        self.expires = None if expires is None else expires / 1000.0
        self.max_length = lowest("max-length")
        self.max_length_bytes = lowest("max-length-bytes")
        if self.quorum:
            # A quorum queue lets a policy's overflow win over the argument, and drops heads
            # where a classic queue would reject-publish-dlx (RabbitMQ 3.10).
            overflow = policy.get("overflow", args.get("x-overflow", "drop-head"))
            self.overflow = "drop-head" if overflow == "reject-publish-dlx" else overflow
        else:
            self.overflow = argument_first("overflow", "drop-head")
        self.dead_letter_exchange = argument_first("dead-letter-exchange")
        self.dead_letter_routing_key = argument_first("dead-letter-routing-key")
        self.delivery_limit = lowest("delivery-limit") if self.queue_type == "quorum" else None
        # No TTL, limits or priorities: messages without properties take the short path.
        self._plain = (
            self.message_ttl is None
            and self.max_length is None
            and self.max_length_bytes is None
            and self.max_priority is None
        )

    def policy_changed(self) -> None:
        """A policy came, went or changed: new limits apply to what the queue holds now."""
        self.apply_settings()
        if self.overflow == "drop-head":
            self._enforce_length_limit()
        self._expire_head()
        self._renew_lease()

    @property
    def depth(self) -> int:
        return len(self.ready)

    @property
    def consumer_count(self) -> int:
        """What queue.declare-ok reports: a quorum queue also counts each channel holding
        basic.get messages it has not settled, and each cancelled consumer still holding some."""
        return len(self.consumers) + len(self.get_holders) + len(self.lingering)

    def messages(self) -> Iterator[Message]:
        return iter(self.ready)

    # -- x-expires: the lease of an unused queue ------------------------------------

    def touch(self) -> None:
        """A declare or basic.get: the queue is in use; its lease starts again."""
        self._renew_lease()

    def _renew_lease(self) -> None:
        if self._lease_timer is not None:
            cancel(self._lease_timer)
            self._lease_timer = None
        if self.expires is not None and not self.consumers and not self.deleted:
            self._lease_timer = self.broker.clock.call_later(self.expires, self._lease_expired)

    def _lease_expired(self) -> None:
        self._lease_timer = None
        if not self.consumers and not self.deleted:
            self.broker.expire_queue(self)

    # -- enqueue ------------------------------------------------------------------

    def enqueue(self, message: Message) -> bool:
        """Take a routed message; False when the queue's overflow rule refuses it."""
        if self._plain and message.properties is None:
            message.enqueued_at = self.broker.clock.now
            message.seq = self._next_seq
            self._next_seq += 1
            message.expires_at = None
            self.stats.enqueued += 1
            if not self.ready and not self._dispatching:
                turn = self._next_consumer()
                if turn is not None:
                    self._deliver(turn[0], turn[1], message)
                    return True
            self.ready.append(message)
            self.ready_bytes += len(message.body)
            self.dispatch()
            return True
        if self.overflow != "drop-head" and self._refuses(message):
            self.stats.refused += 1
            self.broker.record_flow("dropped", self.node_id, None, message, self.overflow)
            if self.overflow == "reject-publish-dlx":
                self.broker.dead_letter(self, message, "maxlen")
            return False
        now = self.broker.clock.now
        message.enqueued_at = now
        if self.max_priority is not None:
            message.priority = _message_priority(message, self.max_priority)
        message.seq = self._next_seq
        self._next_seq += 1
        ttl = self.message_ttl
        expiration = _per_message_ttl(message)
        if expiration is not None and (ttl is None or expiration < ttl):
            ttl = expiration
        message.expires_at = None if ttl is None else now + ttl
        self.stats.enqueued += 1
        if not self.ready and not self._dispatching:
            # Straight to a consumer with room, if there is one: a message with
            # TTL 0, or a queue with max-length 0, still reaches a waiting consumer.
            turn = self._next_consumer()
            if turn is not None:
                self._deliver(turn[0], turn[1], message)
                return True
        if self.message_ttl == 0 and self.dead_letter_exchange is None and not self.quorum:
            # RabbitMQ drops it then and there, whatever waits ahead of it (queued before the TTL).
            self.stats.expired += 1
            self.broker.record_flow("expired", self.node_id, None, message, "ttl")
            return True
        self.ready.append(message)
        self.ready_bytes += len(message.body)
        self.dispatch()
        if self.ready:
            dropped = False
            if self.overflow == "drop-head":
                dropped = self._enforce_length_limit()
            elif self.quorum and self._over_limit():
                self._rejecting = True
            # As RabbitMQ: expiry is looked at (and the timer set for the head) only when the
            # publish pushed messages out or the queue held nothing else; a message that jumps
            # ahead by priority waits for the next look.
            if dropped or len(self.ready) == 1:
                self._expire_head()
        return True

    def _refuses(self, message: Message) -> bool:
        """reject-publish: a classic queue refuses a message that would take it past its limit;
        a quorum queue takes one past it, then refuses until it is back under 80 % of it."""
        if self.quorum:
            if self._rejecting and self._below_soft_limit():
                self._rejecting = False
            return self._rejecting
        if self.max_length is not None and len(self.ready) >= self.max_length:
            return True
        limit = self.max_length_bytes
        return limit is not None and self.ready_bytes + len(message.body) > limit

    def _over_limit(self) -> bool:
        return (self.max_length is not None and len(self.ready) > self.max_length) or (
            self.max_length_bytes is not None and self.ready_bytes > self.max_length_bytes
        )

    def _below_soft_limit(self) -> bool:
        return (self.max_length is None or len(self.ready) <= int(self.max_length * 0.8)) and (
            self.max_length_bytes is None or self.ready_bytes <= int(self.max_length_bytes * 0.8)
        )

    def _enforce_length_limit(self) -> bool:
        """Drop heads past the limits; True when any went."""
        max_length = self.max_length
        max_bytes = self.max_length_bytes
        if max_length is None and max_bytes is None:
            return False
        dropped = False
        while self.ready and (
            (max_length is not None and len(self.ready) > max_length)
            or (max_bytes is not None and self.ready_bytes > max_bytes)
        ):
            message = self._pop_ready()
            self.stats.dropped += 1
            self.broker.record_flow("dropped", self.node_id, None, message, "drop-head")
            self.broker.dead_letter(self, message, "maxlen")
            dropped = True
        self._schedule_expiry()
        return dropped

    def _pop_ready(self) -> Message:
        message = self.ready.popleft()
        self.ready_bytes -= len(message.body)
        if self._returns:
            self._returns -= 1
        return message

    # -- TTL ----------------------------------------------------------------------

    def _expire_head(self) -> None:
        """Drop expired messages at the head (a classic queue only expires its head) and set
        the timer for the new head: RabbitMQ's drop_expired_msgs."""
        self._drop_expired()
        self._schedule_expiry()

    def _drop_expired(self) -> None:
        ready = self.ready
        if ready:
            now = self.broker.clock.now
            while ready and ready[0].expires_at is not None and ready[0].expires_at <= now:
                message = self._pop_ready()
                self.stats.expired += 1
                self.broker.record_flow("expired", self.node_id, None, message, "ttl")
                self.broker.dead_letter(self, message, "expired")

    def _schedule_expiry(self) -> None:
        """Keep one timer, set for when the head message expires."""
        when = self.ready[0].expires_at if self.ready and not self.deleted else None
        if when == self._expiry_at:
            return
        if self._expiry_timer is not None:
            cancel(self._expiry_timer)
            self._expiry_timer = None
        self._expiry_at = when
        if when is not None:
            self._expiry_timer = self.broker.clock.call_at(when, self._on_expiry_timer)

    def _on_expiry_timer(self) -> None:
        self._expiry_timer = None
        self._expiry_at = None
        self._expire_head()

    # -- consumers ----------------------------------------------------------------

    def add_consumer(self, consumer: ChannelConsumer) -> None:
        self.consumers.append(consumer)
        if self.single_active_consumer and self.active_consumer is None:
            self.active_consumer = consumer
        if consumer.channel.suspended:
            self.blocked[consumer] = None
        else:
            self._line(consumer.priority).append(consumer)
        if self._lease_timer is not None:
            cancel(self._lease_timer)
            self._lease_timer = None
        self.dispatch()

    def remove_consumer(self, consumer: ChannelConsumer, dispatch: bool = True) -> None:
        """``dispatch=False`` when the consumer's channel is closing: its unacked messages go
        back before the next single active consumer takes over."""
        self.consumers.remove(consumer)
        self.blocked.pop(consumer, None)
        for _, line in self._lines:
            try:
                line.remove(consumer)
            except ValueError:
                continue
            break
        if consumer is self.active_consumer:
            self.active_consumer = self._next_active()
        if self.quorum and consumer.unacked:
            self.lingering[consumer] = None
        if not self.consumers:
            self._renew_lease()
        elif self.single_active_consumer and dispatch and self.quorum:
            # A classic queue of RabbitMQ 3.10 does not run itself when a cancel hands it
            # to the next consumer; its next event (a publish, an ack, a requeue) does.
            self.dispatch()

    def _next_active(self) -> ChannelConsumer | None:
        """Who takes over a single-active-consumer queue: a classic queue picks the waiting
        consumer of highest x-priority, a quorum queue the one waiting longest."""
        if not self.consumers:
            return None
        if self.quorum:
            return self.consumers[0]
        return max(self.consumers, key=lambda c: c.priority)

    def _line(self, priority: int) -> deque[ChannelConsumer]:
        for level, line in self._lines:
            if level == priority:
                return line
        new_line: deque[ChannelConsumer] = deque()
        self._lines.append((priority, new_line))
        self._lines.sort(key=lambda entry: -entry[0])
        return new_line

    def unblock(self, consumer: ChannelConsumer) -> None:
        """A consumer's prefetch has room again: put it back in line and dispatch."""
        if consumer in self.blocked and not consumer.channel.suspended:
            del self.blocked[consumer]
            self._line(consumer.priority).append(consumer)
        if self.ready:
            self.dispatch()

    def unblock_channel(self, channel: Any) -> None:
        """A channel-wide prefetch has room again: its blocked consumers line up in the order they were blocked."""
        if channel.suspended:
            return
        for consumer in [c for c in self.blocked if c.channel is channel]:
            del self.blocked[consumer]
            self._line(consumer.priority).append(consumer)
        if self.ready:
            self.dispatch()

    def hold(self, consumer: ChannelConsumer) -> None:
        """Take no more deliveries for ``consumer`` until ``unblock``: its channel is suspended."""
        if consumer in self.blocked:
            return
        for _, line in self._lines:
            try:
                line.remove(consumer)
            except ValueError:
                continue
            break
        self.blocked[consumer] = None

    def _next_consumer(self) -> tuple[ChannelConsumer, deque[ChannelConsumer]] | None:
        """The consumer whose turn it is: highest priority first, in turn within a priority."""
        if self.single_active_consumer:
            active = self.active_consumer
            if active is None or not active.has_capacity():
                return None
            return active, _NO_LINE
        for _, line in self._lines:
            while line:
                consumer = line[0]
                # ChannelConsumer.has_capacity, inlined: this runs for every delivery.
                if consumer.no_ack:
                    return consumer, line
                prefetch = consumer.prefetch
                if not prefetch or consumer.unacked < prefetch:
                    channel = consumer.channel
                    if not channel.global_prefetch or channel.unacked_count < channel.global_prefetch:
                        return consumer, line
                line.popleft()
                self.blocked[consumer] = None
        return None

    def _deliver(self, consumer: ChannelConsumer, line: deque[ChannelConsumer], message: Message) -> None:
        if line:
            line.rotate(-1)
        stats = self.stats
        stats.delivered += 1
        if message.redelivered:
            stats.redelivered += 1
        if self.quorum and message.delivery_count:
            _set_header(message, "x-delivery-count", message.delivery_count)
        consumer.channel.deliver(consumer, message, self)

    def dispatch(self) -> None:
        if self._dispatching or not self.ready:
            return
        self._dispatching = True
        ready = self.ready
        delivered = False
        try:
            now = self.broker.clock.now
            while ready:
                turn = self._next_consumer()
                if turn is None:
                    break
                # As RabbitMQ's fetch: take the head as it is, then drop what expired behind it.
                self._deliver(turn[0], turn[1], self._pop_ready())
                delivered = True
                if ready:
                    head = ready[0].expires_at
                    if head is not None and head <= now:
                        self._drop_expired()
        finally:
            self._dispatching = False
        if delivered:
            self._schedule_expiry()

    def get(self) -> Message | None:
        """basic.get: the head message, or None when the queue is empty."""
        self.touch()
        if not self.ready:
            return None
        message = self._pop_ready()
        self.stats.delivered += 1
        if message.redelivered:
            self.stats.redelivered += 1
        if self.queue_type == "quorum":
            # RabbitMQ 3.10 counts deliveries on basic.get from the first one.
            _set_header(message, "x-delivery-count", message.delivery_count)
        # Expired messages now at the head go before get-ok counts what is left.
        self._expire_head()
        return message

    def get_held(self, channel: Any) -> None:
        if self.quorum:
            self.get_holders[channel] = self.get_holders.get(channel, 0) + 1

    def get_settled(self, channel: Any) -> None:
        held = self.get_holders.get(channel)
        if held is not None:
            if held > 1:
                self.get_holders[channel] = held - 1
            else:
                del self.get_holders[channel]

    # -- settlement -----------------------------------------------------------------

    def settle_acked(self) -> None:
        self.unacked -= 1
        self.stats.acked += 1

    def settle_rejected(self, message: Message) -> None:
        self.unacked -= 1
        self.stats.rejected += 1
        self.broker.dead_letter(self, message, "rejected")

    def requeue(self, message: Message, returned: bool = False) -> None:
        """Back in the queue, marked redelivered; past a quorum queue's delivery limit, dead-lettered.

        A classic queue puts it back where it was. A quorum queue (RabbitMQ 3.10) serves what a
        departed consumer ``returned``, and anything requeued under a delivery limit, before the
        rest, in the order returned; without a limit a nack or recover puts it at the back."""
        self.unacked -= 1
        if self.deleted:
            return
        if self.quorum:
            message.delivery_count += 1
            if self.delivery_limit is not None and message.delivery_count > self.delivery_limit:
                self.stats.rejected += 1
                self.broker.record_flow("dropped", self.node_id, None, message, "delivery-limit")
                self.broker.dead_letter(self, message, "delivery_limit")
                return
        self.stats.requeued += 1
        message.redelivered = True
        if not self.quorum:
            self.ready.requeue(message)
            self.ready_bytes += len(message.body)
            self.broker.record_flow("requeued", self.node_id, None, message)
            if self.overflow == "drop-head":
                self._enforce_length_limit()
            self._expire_head()
            return
        if returned or self.delivery_limit is not None:
            assert isinstance(self.ready, FifoMessages)  # quorum queues have no priorities
            self.ready.insert(self._returns, message)
            self._returns += 1
        else:
            message.seq = self._next_seq
            self._next_seq += 1
            self.ready.append(message)
        self.ready_bytes += len(message.body)
        self.broker.record_flow("requeued", self.node_id, None, message)
        self._schedule_expiry()

    def requeued(self) -> None:
        """Messages came back: serve them; a quorum queue applies its length limit after that."""
        self.dispatch()
        if self.quorum and self.overflow == "drop-head" and self.ready:
            self._enforce_length_limit()

    def purge(self, why: str = "purged") -> int:
        count = len(self.ready)
        if count and self.broker.flow.enabled:
            for message in self.ready:
                self.broker.record_flow("dropped", self.node_id, None, message, why)
        self.ready.clear()
        self.ready_bytes = 0
        self._returns = 0
        self.stats.purged += count
        self._schedule_expiry()
        return count

    def recover_after_restart(self) -> int:
        """A durable queue after a broker restart: only persistent messages were on disk (a quorum
        queue keeps everything). Returns how many messages were lost."""
        if self.quorum:
            return 0
        kept = [m for m in self.ready if m.persistent]
        lost = len(self.ready) - len(kept)
        if not lost:
            return 0
        if self.broker.flow.enabled:
            for message in self.ready:
                if not message.persistent:
                    self.broker.record_flow("dropped", self.node_id, None, message, "broker restart")
        self.ready.clear()
        self.ready_bytes = 0
        for message in kept:
            self.ready.append(message)
            self.ready_bytes += message.size
        self.stats.lost += lost
        self._schedule_expiry()
        return lost

    def delete(self) -> int:
        count = self.purge("queue deleted")
        self.deleted = True
        for timer in (self._expiry_timer, self._lease_timer):
            cancel(timer)
        self._expiry_timer = self._lease_timer = None
        return count


_NO_LINE: deque[Any] = deque()


def _set_header(message: Message, name: str, value: Any) -> None:
    """Give this copy of a message a header, leaving the properties other copies share alone."""
    props = dict(message.properties or {})
    props["headers"] = {**(props.get("headers") or {}), name: value}
    message.properties = props


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


def _max_priority(arguments: dict[str, Any] | None) -> int | None:
    value = (arguments or {}).get("x-max-priority")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return min(value, 255)
    return None


def _message_priority(message: Message, max_priority: int) -> int:
    props = message.properties
    priority = props.get("priority") if props is not None else None
    if not isinstance(priority, int) or priority <= 0:
        return 0
    return min(priority, max_priority)


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
