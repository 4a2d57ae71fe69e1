"""Connections, channels and consumers: the client-facing side of the broker core.

Simulated clients and (later) AMQP wire clients both act through a
:class:`Channel`, so both see the same prefetch, acknowledgement and
redelivery rules.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import count
from typing import TYPE_CHECKING, Any

from . import errors
from .arguments import amqp_type
from .message import Message
from .model import node_id as make_node_id

if TYPE_CHECKING:
    from .broker import Broker, PublishOutcome
    from .queues import Queue

DeliverCallback = Callable[["ChannelConsumer", int, Message], None]
ReturnCallback = Callable[[int, str, Message], None]
ConfirmCallback = Callable[[int, bool, bool], None]

_consumer_tags = count(1)


class ChannelConsumer:
    """One basic.consume: a queue, a prefetch window and a callback for deliveries."""

    __slots__ = (
        "channel",
        "tag",
        "queue",
        "no_ack",
        "exclusive",
        "priority",
        "prefetch",
        "unacked",
        "on_deliver",
        "node_id",
        "delivered",
        "acked",
        "nacked",
        "redelivered",
        "acks_at_once",
    )

    def __init__(
        self,
        channel: Channel,
        tag: str,
        queue: Queue,
        no_ack: bool,
        exclusive: bool,
        priority: int,
        prefetch: int,
        on_deliver: DeliverCallback,
        node_id: str,
    ) -> None:
        self.channel = channel
        self.tag = tag
        self.queue = queue
        self.no_ack = no_ack
        self.exclusive = exclusive
        self.priority = priority
        self.prefetch = prefetch
        self.unacked = 0
        self.on_deliver = on_deliver
        self.node_id = node_id
        self.delivered = 0
        self.acked = 0
        self.nacked = 0
        self.redelivered = 0
        # A simulated consumer with no work to do acks each delivery in its callback; the
        # channel settles it as it delivers instead, which is the same ack without the round.
        self.acks_at_once = False

    def has_capacity(self) -> bool:
        if self.channel.suspended:
            return False
        if self.no_ack:
            return True
        if self.prefetch and self.unacked >= self.prefetch:
            return False
        channel = self.channel
        return not channel.global_prefetch or channel.unacked_count < channel.global_prefetch


class Unacked:
    __slots__ = ("message", "queue", "consumer")

    def __init__(self, message: Message, queue: Queue, consumer: ChannelConsumer | None) -> None:
        self.message = message
        self.queue = queue
        self.consumer = consumer


class Connection:
    """A client connection to one vhost; exclusive queues belong to it."""

    def __init__(self, broker: Broker, name: str, vhost: str = "/") -> None:
        broker.get_vhost(vhost)
        self.broker = broker
        self.name = name
        self.vhost = vhost
        self.channels: dict[int, Channel] = {}
        self.closed = False

    def channel(self, number: int | None = None) -> Channel:
        if number is None:
            number = max(self.channels, default=0) + 1
        if number in self.channels:
            raise errors.command_invalid(f"second 'channel.open' seen on channel {number}")
        channel = Channel(self, number)
        self.channels[number] = channel
        return channel

    def close(self) -> None:
        if self.closed:
            return
        for channel in list(self.channels.values()):
            channel.close()
        self.closed = True
        self.broker.connection_closed(self)


class Channel:
    def __init__(self, connection: Connection, number: int) -> None:
        self.connection = connection
        self.broker = connection.broker
        self.flow = connection.broker.flow
        self.latency = connection.broker.latency
        self.vhost = connection.vhost
        self.number = number
        self.consumers: dict[str, ChannelConsumer] = {}
        self.unacked: dict[int, Unacked] = {}
        self.unacked_count = 0
        self._next_tag = 1
        self.prefetch_count = 0
        self.global_prefetch = 0
        self.confirm_mode = False
        self.publish_seq = 0
        self.on_return: ReturnCallback | None = None
        self.on_confirm: ConfirmCallback | None = None
        self.on_cancel: Callable[[str], None] | None = None  # the broker cancelled a consumer
        self.last_queue: str | None = None  # AMQP's shortcut: an empty queue name means this one
        self.closed = False
        self.suspended = False  # takes no deliveries: its client cannot take more now

    def suspend(self) -> None:
        """No deliveries to this channel's consumers until ``resume`` (a client that is not reading, say)."""
        if self.suspended:
            return
        self.suspended = True
        for consumer in self.consumers.values():
            consumer.queue.hold(consumer)

    def resume(self) -> None:
        if not self.suspended:
            return
        self.suspended = False
        for consumer in list(self.consumers.values()):
            consumer.queue.unblock(consumer)

    # -- topology -------------------------------------------------------------------

    def exchange_declare(self, exchange: str, exchange_type: str = "direct", **options: Any) -> None:
        self.broker.exchange_declare(self.vhost, exchange, exchange_type, **options)

    def exchange_delete(self, exchange: str, if_unused: bool = False) -> None:
        self.broker.exchange_delete(self.vhost, exchange, if_unused=if_unused)

    def queue_declare(self, queue: str = "", exclusive: bool = False, passive: bool = False, **options: Any) -> Queue:
        owner = self.connection if exclusive else None
        declared = self.broker.queue_declare(
            self.vhost, queue, exclusive_owner=owner, requester=self.connection, passive=passive, **options
        )
        if not passive:
            self.last_queue = declared.name
        return declared

    def _queue_name(self, queue: str) -> str:
        if queue:
            return queue
        if self.last_queue is None:
            raise errors.not_found("no previously declared queue")
        return self.last_queue

    def queue_delete(self, queue: str, if_unused: bool = False, if_empty: bool = False) -> int:
        return self.broker.queue_delete(
            self.vhost, self._queue_name(queue), if_unused=if_unused, if_empty=if_empty, requester=self.connection
        )

    def queue_purge(self, queue: str) -> int:
        return self.broker.queue_purge(self.vhost, self._queue_name(queue), requester=self.connection)

    def queue_bind(
        self, queue: str, exchange: str, routing_key: str = "", arguments: dict[str, Any] | None = None
    ) -> None:
        name = self._queue_name(queue)
        self.broker.bind(self.vhost, exchange, name, "queue", routing_key, arguments, requester=self.connection)

    def queue_unbind(
        self, queue: str, exchange: str, routing_key: str = "", arguments: dict[str, Any] | None = None
    ) -> None:
        name = self._queue_name(queue)
        self.broker.unbind(self.vhost, exchange, name, "queue", routing_key, arguments, requester=self.connection)

    def exchange_bind(
        self, destination: str, source: str, routing_key: str = "", arguments: dict[str, Any] | None = None
    ) -> None:
        self.broker.bind(self.vhost, source, destination, "exchange", routing_key, arguments)

    def exchange_unbind(
        self, destination: str, source: str, routing_key: str = "", arguments: dict[str, Any] | None = None
    ) -> None:
        self.broker.unbind(self.vhost, source, destination, "exchange", routing_key, arguments)

    # -- publishing -----------------------------------------------------------------

    def confirm_select(self) -> None:
        self.confirm_mode = True

    def basic_publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes = b"",
        properties: dict[str, Any] | None = None,
        mandatory: bool = False,
        origin: str | None = None,
        encoded: bytes | None = None,
    ) -> PublishOutcome:
        outcome = self.broker.publish(
            self.vhost, exchange, routing_key, properties, body, mandatory=mandatory, origin=origin, encoded=encoded
        )
        if outcome.returned and self.on_return is not None and outcome.message is not None:
            self.on_return(312, "NO_ROUTE", outcome.message)
        if self.confirm_mode:
            self.publish_seq += 1
            if self.on_confirm is not None:
                self.on_confirm(self.publish_seq, not outcome.refused, False)
        return outcome

    # -- consuming ------------------------------------------------------------------

    def basic_qos(self, prefetch_count: int, global_: bool = False) -> None:
        if global_:
            self.global_prefetch = prefetch_count
        else:
            # RabbitMQ: a per-consumer prefetch clears the channel-wide one.
            self.prefetch_count = prefetch_count
            self.global_prefetch = 0
        for queue in list({consumer.queue: None for consumer in self.consumers.values()}):
            queue.unblock_channel(self)

    def basic_consume(
        self,
        queue: str,
        on_deliver: DeliverCallback,
        consumer_tag: str = "",
        no_ack: bool = False,
        exclusive: bool = False,
        arguments: dict[str, Any] | None = None,
        node_id: str | None = None,
    ) -> str:
        target = self.broker.lookup_queue(self.vhost, self._queue_name(queue), requester=self.connection)
        if not consumer_tag:
            consumer_tag = f"amq.ctag-{next(_consumer_tags)}"
        if consumer_tag in self.consumers:
            raise errors.not_allowed(f"attempt to reuse consumer tag '{consumer_tag}'")
        if target.quorum:
            if self.global_prefetch:
                raise errors.ConnectionError(
                    540, f"queue '{target.name}' in vhost '{self.vhost}' does not support global qos"
                )
            exclusive = False  # RabbitMQ 3.10's quorum queues take no notice of it
        elif (exclusive and (target.consumers or target.single_active_consumer)) or any(
            c.exclusive for c in target.consumers
        ):
            raise errors.access_refused(f"queue '{queue}' in vhost '{self.vhost}' in exclusive use")
        priority = (arguments or {}).get("x-priority", 0)
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise errors.precondition_failed(
                f"invalid arg 'x-priority' for queue '{target.name}' in vhost '{self.vhost}': "
                f'"expected integer, got {amqp_type(priority)}"'
            )
        consumer = ChannelConsumer(
            self,
            consumer_tag,
            target,
            no_ack,
            exclusive,
            priority,
            self.prefetch_count,
            on_deliver,
            node_id or make_node_id("consumer", self.vhost, consumer_tag),
        )
        self.consumers[consumer_tag] = consumer
        target.add_consumer(consumer)
        return consumer_tag

    def basic_cancel(self, consumer_tag: str) -> None:
        consumer = self.consumers.pop(consumer_tag, None)
        if consumer is None:
            return
        consumer.queue.remove_consumer(consumer)
        self.broker.consumer_cancelled(consumer.queue)

    def deliver(self, consumer: ChannelConsumer, message: Message, queue: Queue) -> None:
        tag = self._next_tag
        self._next_tag = tag + 1
        consumer.delivered += 1
        if message.redelivered:
            consumer.redelivered += 1
        if self.flow.enabled:
            detail = "auto-ack" if consumer.no_ack else ""
            self.flow.add(self.broker.clock.now, "delivered", queue.node_id, consumer.node_id, message, detail)
        if consumer.no_ack or consumer.acks_at_once:
            consumer.acked += 1
            queue.stats.acked += 1
            if self.latency.enabled:
                self.latency.record(self.broker.clock.now - message.published_at, consumer.node_id, queue.node_id)
            if consumer.acks_at_once and self.flow.enabled:
                self.flow.add(self.broker.clock.now, "acked", consumer.node_id, queue.node_id, message)
        else:
            self.unacked[tag] = Unacked(message, queue, consumer)
            consumer.unacked += 1
            self.unacked_count += 1
            queue.unacked += 1
        consumer.on_deliver(consumer, tag, message)

    def basic_get(self, queue: str, no_ack: bool = False) -> tuple[int, Message, int] | None:
        target = self.broker.lookup_queue(self.vhost, self._queue_name(queue), requester=self.connection)
        if target.queue_type == "stream":
            raise errors.ConnectionError(
                540, f"basic.get not supported by stream queues queue '{target.name}' in vhost '{self.vhost}'"
            )
        if target.quorum and target.single_active_consumer:
            raise errors.resource_locked(
                f"cannot obtain access to locked queue '{target.name}' in vhost '{self.vhost}'. "
                "basic.get operations are not supported by quorum queues with single active consumer"
            )
        message = target.get()
        if message is None:
            return None
        tag = self._next_tag
        self._next_tag = tag + 1
        broker = self.broker
        if broker.flow.enabled:
            detail = "basic.get, no ack" if no_ack else "basic.get"
            broker.flow.add(broker.clock.now, "delivered", target.node_id, None, message, detail)
        if no_ack:
            target.stats.acked += 1
        else:
            self.unacked[tag] = Unacked(message, target, None)
            self.unacked_count += 1
            target.unacked += 1
            target.get_held(self)
        return tag, message, target.depth

    # -- settlement -----------------------------------------------------------------

    def _take(self, delivery_tag: int, multiple: bool) -> list[Unacked]:
        """The deliveries an ack, nack or reject settles.

        With ``multiple`` every outstanding tag up to and including
        ``delivery_tag`` (0: all of them); the tag itself must be outstanding,
        as RabbitMQ requires.
        """
        if multiple and delivery_tag == 0:
            entries = list(self.unacked.values())
            self.unacked.clear()
            return entries
        if delivery_tag not in self.unacked:
            raise errors.precondition_failed(f"unknown delivery tag {delivery_tag}")
        if not multiple:
            return [self.unacked.pop(delivery_tag)]
        tags = [tag for tag in self.unacked if tag <= delivery_tag]
        return [self.unacked.pop(tag) for tag in tags]

    def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        if not multiple:
            # The common case, one delivery, without building lists.
            entry = self.unacked.pop(delivery_tag, None)
            if entry is None:
                raise errors.precondition_failed(f"unknown delivery tag {delivery_tag}")
            queue = entry.queue
            queue.unacked -= 1
            queue.stats.acked += 1
            self.unacked_count -= 1
            consumer = entry.consumer
            if self.latency.enabled:
                self.latency.record(
                    self.broker.clock.now - entry.message.published_at,
                    consumer.node_id if consumer is not None else None,
                    queue.node_id,
                )
            if consumer is None:
                queue.get_settled(self)
                if self.flow.enabled:
                    self.flow.add(self.broker.clock.now, "acked", None, queue.node_id, entry.message, "basic.get")
                return
            consumer.unacked -= 1
            consumer.acked += 1
            if queue.lingering and not consumer.unacked:
                queue.lingering.pop(consumer, None)
            if self.flow.enabled:
                self.flow.add(self.broker.clock.now, "acked", consumer.node_id, queue.node_id, entry.message)
            if self.global_prefetch:
                self._release([entry])
            elif consumer.tag in self.consumers and (queue.ready or consumer in queue.blocked):
                queue.unblock(consumer)
            return
        entries = self._take(delivery_tag, multiple)
        broker = self.broker
        flow = broker.flow
        latency = broker.latency
        for entry in entries:
            entry.queue.settle_acked()
            consumer = entry.consumer
            if latency.enabled:
                latency.record(
                    broker.clock.now - entry.message.published_at,
                    consumer.node_id if consumer is not None else None,
                    entry.queue.node_id,
                )
            if consumer is not None:
                consumer.unacked -= 1
                consumer.acked += 1
                if entry.queue.lingering and not consumer.unacked:
                    entry.queue.lingering.pop(consumer, None)
            else:
                entry.queue.get_settled(self)
            if flow.enabled:
                source = consumer.node_id if consumer is not None else None
                flow.add(broker.clock.now, "acked", source, entry.queue.node_id, entry.message)
        self.unacked_count -= len(entries)
        self._release(entries)

    def basic_nack(self, delivery_tag: int, multiple: bool = False, requeue: bool = True) -> None:
        entries = self._take(delivery_tag, multiple)
        self._settle_negative(entries, requeue, by_client=True)

    def basic_reject(self, delivery_tag: int, requeue: bool = True) -> None:
        self._settle_negative(self._take(delivery_tag, False), requeue, by_client=True)

    def basic_recover(self, requeue: bool = True) -> None:
        if not requeue:
            raise errors.ConnectionError(540, "requeue=false")
        entries = list(self.unacked.values())
        self.unacked.clear()
        self._settle_negative(entries, True, why="recover")

    def _settle_negative(self, entries: list[Unacked], requeue: bool, by_client: bool = False, why: str = "") -> None:
        """Settle deliveries negatively: nacked or rejected by the client (``by_client``),
        or given back (``why``: the channel closed, the client asked to recover)."""
        broker = self.broker
        if requeue and len(entries) > 1:
            # A quorum queue takes them back consumer by consumer (by tag), each in delivery order.
            entries.sort(key=lambda e: e.consumer.tag if e.consumer is not None else "")
        returned = why == "channel closed"
        outermost = len(entries) > 1 and broker.hold_dead_letters()
        try:
            self._settle_each(entries, requeue, by_client, why, returned)
        finally:
            if outermost:
                broker.release_dead_letters()
        self.unacked_count -= len(entries)
        self._release(entries)
        if requeue:
            for queue in dict.fromkeys(entry.queue for entry in entries):
                queue.requeued()

    def _settle_each(self, entries: list[Unacked], requeue: bool, by_client: bool, why: str, returned: bool) -> None:
        broker = self.broker
        for entry in entries:
            consumer = entry.consumer
            if consumer is not None:
                consumer.unacked -= 1
            else:
                entry.queue.get_settled(self)
            if by_client:
                entry.queue.stats.nacked += 1
                if consumer is not None:
                    consumer.nacked += 1
            if broker.flow.enabled:
                node = consumer.node_id if consumer is not None else self.connection.name
                detail = ("requeue" if requeue else "discard") if by_client else why
                broker.flow.add(broker.clock.now, "nacked", node, entry.queue.node_id, entry.message, detail)
            if requeue:
                entry.queue.requeue(entry.message, returned)
            else:
                entry.queue.settle_rejected(entry.message)
            if consumer is not None and consumer.unacked == 0 and entry.queue.lingering:
                entry.queue.lingering.pop(consumer, None)

    def _release(self, entries: list[Unacked]) -> None:
        """Room in a prefetch window: let the affected consumers take more."""
        if self.global_prefetch:
            for queue in list({consumer.queue: None for consumer in self.consumers.values()}):
                queue.unblock_channel(self)
            return
        if len(entries) == 1:
            only = entries[0].consumer
            if only is not None and only.tag in self.consumers:
                only.queue.unblock(only)
            return
        for consumer in dict.fromkeys(entry.consumer for entry in entries if entry.consumer is not None):
            if consumer.tag in self.consumers:
                consumer.queue.unblock(consumer)

    # -- closing ----------------------------------------------------------------------

    def close(self) -> None:
        """Cancel every consumer and requeue every unacked message, as RabbitMQ does."""
        if self.closed:
            return
        cancelled = []
        for tag in list(self.consumers):
            consumer = self.consumers.pop(tag)
            consumer.queue.remove_consumer(consumer, dispatch=False)
            cancelled.append(consumer.queue)
        entries = list(self.unacked.values())
        self.unacked.clear()
        self._settle_negative(entries, True, why="channel closed")
        self.closed = True
        self.connection.channels.pop(self.number, None)
        for queue in dict.fromkeys(cancelled):
            queue.dispatch()
        for queue in cancelled:
            self.broker.consumer_cancelled(queue)
