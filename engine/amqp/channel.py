"""One AMQP channel on the wire: methods in, the engine's channel acts, frames out.

Each method a client sends is looked up in a table keyed by its pamqp class and
answered as RabbitMQ answers it; the broker core does the work and raises the
same errors RabbitMQ would (they close the channel, or the connection).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pamqp import commands
from pamqp.base import Frame as Method

from .. import errors
from ..channel import Channel, ChannelConsumer
from ..message import Message
from .codec import content_frames, encode_method, encode_properties

if TYPE_CHECKING:
    from .connection import AmqpConnection

Basic = commands.Basic
Queue = commands.Queue
Exchange = commands.Exchange

# Methods only a server sends: a client that sends one gets COMMAND_INVALID, as from RabbitMQ.
SERVER_METHODS = frozenset(
    {
        commands.Channel.OpenOk,
        commands.Channel.FlowOk,
        Exchange.DeclareOk,
        Exchange.DeleteOk,
        Exchange.BindOk,
        Exchange.UnbindOk,
        Queue.DeclareOk,
        Queue.BindOk,
        Queue.PurgeOk,
        Queue.DeleteOk,
        Queue.UnbindOk,
        Basic.QosOk,
        Basic.ConsumeOk,
        Basic.CancelOk,
        Basic.Return,
        Basic.Deliver,
        Basic.GetOk,
        Basic.GetEmpty,
        Basic.RecoverOk,
        commands.Tx.SelectOk,
        commands.Tx.CommitOk,
        commands.Tx.RollbackOk,
        commands.Confirm.SelectOk,
    }
)
CONTENT_METHODS = frozenset({Basic.Publish, Basic.Return, Basic.Deliver, Basic.GetOk})
DEFAULT_EXCHANGE = "amq.default"  # the default exchange's name in permission checks


class WireChannel:
    """A channel of a wire connection, over one engine :class:`Channel`."""

    def __init__(self, connection: AmqpConnection, number: int, engine: Channel) -> None:
        self.connection = connection
        self.number = number
        self.engine = engine
        self.closing = False  # we sent channel.close and wait for close-ok
        self.tx: list[Callable[[], None]] | None = None  # transactional: the publishes and settlements to commit
        self._held: list[bytes] | None = None  # frames kept back until a consume-ok has gone out
        engine.on_return = self._on_return
        engine.on_confirm = self._on_confirm
        engine.on_cancel = self._on_cancel

    # -- output -----------------------------------------------------------------------------------

    def send(self, method: Method) -> None:
        self._write(encode_method(self.number, method))

    def _write(self, data: bytes) -> None:
        if self._held is not None:
            self._held.append(data)
        else:
            self.connection.write(data)

    def _content(self, message: Message) -> bytes:
        encoded = message.encoded
        if encoded is None or encoded[0] is not message.properties:
            properties = encode_properties(message.properties)
            message.encoded = encoded = (message.properties, properties)
        return content_frames(self.number, message.body, encoded[1], self.connection.frame_max)

    def _on_deliver(self, consumer: ChannelConsumer, delivery_tag: int, message: Message) -> None:
        deliver = Basic.Deliver(consumer.tag, delivery_tag, message.redelivered, "", message.routing_key)
        deliver.exchange = message.exchange  # any name RabbitMQ accepts, past pamqp's stricter check
        self._write(encode_method(self.number, deliver) + self._content(message))
        self.connection.delivered(self)

    def _on_return(self, reply_code: int, reply_text: str, message: Message) -> None:
        returned = Basic.Return(reply_code, reply_text, "", message.routing_key)
        returned.exchange = message.exchange
        self._write(encode_method(self.number, returned) + self._content(message))

    def _on_confirm(self, sequence: int, ack: bool, multiple: bool) -> None:
        self.send(Basic.Ack(sequence, multiple) if ack else Basic.Nack(sequence, multiple, False))

    def _on_cancel(self, consumer_tag: str) -> None:
        if self.connection.capability("consumer_cancel_notify"):
            self.send(Basic.Cancel(consumer_tag, nowait=True))

    # -- input ------------------------------------------------------------------------------------

    def handle(self, method: Method) -> None:
        handler = HANDLERS.get(type(method))
        if handler is None:
            if type(method) in SERVER_METHODS:
                raise errors.command_invalid("unimplemented method")
            raise errors.ConnectionError(540, f"{method.name} is not implemented")
        handler(self, method)

    def publish(self, method: Any, properties: dict[str, Any] | None, encoded: bytes, body: bytes) -> None:
        """A basic.publish whose content has arrived."""
        if type(method) is not Basic.Publish:
            raise errors.command_invalid("unimplemented method")
        if method.immediate:
            raise errors.ConnectionError(540, "immediate=true")
        connection = self.connection
        connection.check_permission("write", "exchange", method.exchange or DEFAULT_EXCHANGE)
        if properties is not None:
            user_id = properties.get("user_id")
            if user_id is not None and user_id != connection.username:
                raise errors.precondition_failed(
                    f"user_id property set to '{user_id}' but authenticated user was '{connection.username}'"
                )

        def act() -> None:
            outcome = self.engine.basic_publish(
                method.exchange,
                method.routing_key,
                body,
                properties,
                mandatory=method.mandatory,
                origin=connection.producer_node,
                encoded=encoded,
            )
            connection.published(method.exchange, method.routing_key, outcome)

        if self.tx is not None:
            self.engine.broker.lookup_exchange(self.engine.vhost, method.exchange)
            self.tx.append(act)
        else:
            act()

    def close(self) -> None:
        self.engine.close()


def _exchange_declare(ch: WireChannel, m: Any) -> None:
    if not m.passive:
        ch.connection.check_permission("configure", "exchange", m.exchange)
    ch.engine.broker.exchange_declare(
        ch.engine.vhost,
        m.exchange,
        m.exchange_type,
        durable=m.durable,
        auto_delete=m.auto_delete,
        internal=m.internal,
        arguments=dict(m.arguments or {}),
        passive=m.passive,
    )
    ch.connection.topology_changed()
    if not m.nowait:
        ch.send(Exchange.DeclareOk())


def _exchange_delete(ch: WireChannel, m: Any) -> None:
    ch.connection.check_permission("configure", "exchange", m.exchange)
    ch.engine.exchange_delete(m.exchange, if_unused=m.if_unused)
    ch.connection.topology_changed()
    if not m.nowait:
        ch.send(Exchange.DeleteOk())


def _exchange_bind(ch: WireChannel, m: Any) -> None:
    ch.connection.check_permission("write", "exchange", m.destination)
    ch.connection.check_permission("read", "exchange", m.source)
    if isinstance(m, Exchange.Bind):
        ch.engine.exchange_bind(m.destination, m.source, m.routing_key, dict(m.arguments or {}))
        answer: Method = Exchange.BindOk()
    else:
        ch.engine.exchange_unbind(m.destination, m.source, m.routing_key, dict(m.arguments or {}))
        answer = Exchange.UnbindOk()
    ch.connection.topology_changed()
    if not m.nowait:
        ch.send(answer)


def _queue_declare(ch: WireChannel, m: Any) -> None:
    arguments = dict(m.arguments or {})
    if not m.passive and m.queue:
        ch.connection.check_permission("configure", "queue", m.queue)
        dead_letter_exchange = arguments.get("x-dead-letter-exchange")
        if isinstance(dead_letter_exchange, str):
            ch.connection.check_permission("write", "exchange", dead_letter_exchange or DEFAULT_EXCHANGE)
            ch.connection.check_permission("read", "queue", m.queue)
    queue = ch.engine.queue_declare(
        m.queue,
        exclusive=m.exclusive,
        passive=m.passive,
        durable=m.durable,
        auto_delete=m.auto_delete,
        arguments=arguments,
    )
    ch.connection.topology_changed()
    if not m.nowait:
        ch.send(Queue.DeclareOk(queue.name, queue.depth, queue.consumer_count))


def _queue_bind(ch: WireChannel, m: Any) -> None:
    name = ch.engine._queue_name(m.queue)  # noqa: SLF001 - the channel's last-declared-queue shortcut
    ch.connection.check_permission("write", "queue", name)
    ch.connection.check_permission("read", "exchange", m.exchange or DEFAULT_EXCHANGE)
    if isinstance(m, Queue.Bind):
        ch.engine.queue_bind(name, m.exchange, m.routing_key, dict(m.arguments or {}))
        ch.connection.topology_changed()
        if not m.nowait:
            ch.send(Queue.BindOk())
    else:
        ch.engine.queue_unbind(name, m.exchange, m.routing_key, dict(m.arguments or {}))
        ch.connection.topology_changed()
        ch.send(Queue.UnbindOk())


def _queue_purge(ch: WireChannel, m: Any) -> None:
    ch.connection.check_permission("read", "queue", ch.engine._queue_name(m.queue))  # noqa: SLF001
    count = ch.engine.queue_purge(m.queue)
    if not m.nowait:
        ch.send(Queue.PurgeOk(count))


def _queue_delete(ch: WireChannel, m: Any) -> None:
    ch.connection.check_permission("configure", "queue", ch.engine._queue_name(m.queue))  # noqa: SLF001
    count = ch.engine.queue_delete(m.queue, if_unused=m.if_unused, if_empty=m.if_empty)
    ch.connection.topology_changed()
    if not m.nowait:
        ch.send(Queue.DeleteOk(count))


def _basic_qos(ch: WireChannel, m: Any) -> None:
    if m.prefetch_size:
        raise errors.ConnectionError(540, f"prefetch_size!=0 ({m.prefetch_size})")
    ch.engine.basic_qos(m.prefetch_count, m.global_)
    ch.send(Basic.QosOk())


def _basic_consume(ch: WireChannel, m: Any) -> None:
    connection = ch.connection
    name = ch.engine._queue_name(m.queue)  # noqa: SLF001
    connection.check_permission("read", "queue", name)
    ch._held = []  # noqa: SLF001 - deliveries wait for the consume-ok
    try:
        tag = ch.engine.basic_consume(
            name,
            ch._on_deliver,  # noqa: SLF001
            consumer_tag=m.consumer_tag,
            no_ack=m.no_ack,
            exclusive=m.exclusive,
            arguments=dict(m.arguments or {}),
            node_id=connection.consumer_node,
        )
    except BaseException:
        ch._held = None  # noqa: SLF001
        raise
    held, ch._held = ch._held, None  # noqa: SLF001
    connection.consumer_added(ch.engine.consumers.get(tag))
    if not m.nowait:
        ch.send(Basic.ConsumeOk(tag))
    for frames in held:
        connection.write(frames)
    connection.consumers_changed()


def _basic_cancel(ch: WireChannel, m: Any) -> None:
    ch.engine.basic_cancel(m.consumer_tag)
    ch.connection.consumers_changed()
    if not m.nowait:
        ch.send(Basic.CancelOk(m.consumer_tag))


def _basic_get(ch: WireChannel, m: Any) -> None:
    ch.connection.check_permission("read", "queue", ch.engine._queue_name(m.queue))  # noqa: SLF001
    got = ch.engine.basic_get(m.queue, no_ack=m.no_ack)
    if got is None:
        ch.send(Basic.GetEmpty())
        return
    tag, message, remaining = got
    answer = Basic.GetOk(tag, message.redelivered, "", message.routing_key, remaining)
    answer.exchange = message.exchange
    ch._write(encode_method(ch.number, answer) + ch._content(message))  # noqa: SLF001
    ch.connection.delivered(ch)


def _settlement(ch: WireChannel, m: Any) -> None:
    engine = ch.engine
    if isinstance(m, Basic.Ack):
        act: Callable[[], None] = lambda: engine.basic_ack(m.delivery_tag, m.multiple)  # noqa: E731
    elif isinstance(m, Basic.Nack):
        act = lambda: engine.basic_nack(m.delivery_tag, m.multiple, m.requeue)  # noqa: E731
    else:
        act = lambda: engine.basic_reject(m.delivery_tag, m.requeue)  # noqa: E731
    if ch.tx is not None:
        ch.tx.append(act)
        return
    act()
    ch.connection.settled()


def _basic_recover(ch: WireChannel, m: Any) -> None:
    ch.engine.basic_recover(requeue=m.requeue)
    if isinstance(m, Basic.Recover):
        ch.send(Basic.RecoverOk())
    ch.connection.settled()


def _confirm_select(ch: WireChannel, m: Any) -> None:
    if ch.tx is not None:
        raise errors.precondition_failed("cannot switch from tx to confirm mode")
    ch.engine.confirm_select()
    if not m.nowait:
        ch.send(commands.Confirm.SelectOk())


def _tx_select(ch: WireChannel, m: Any) -> None:
    if ch.engine.confirm_mode:
        raise errors.precondition_failed("cannot switch from confirm to tx mode")
    if ch.tx is None:
        ch.tx = []
    ch.send(commands.Tx.SelectOk())


def _tx_commit(ch: WireChannel, m: Any) -> None:
    if ch.tx is None:
        raise errors.precondition_failed("channel is not transactional")
    pending, ch.tx = ch.tx, []
    for act in pending:
        act()
    ch.connection.settled()
    ch.send(commands.Tx.CommitOk())


def _tx_rollback(ch: WireChannel, m: Any) -> None:
    if ch.tx is None:
        raise errors.precondition_failed("channel is not transactional")
    ch.tx = []
    ch.send(commands.Tx.RollbackOk())


def _channel_flow(ch: WireChannel, m: Any) -> None:
    if not m.active:
        raise errors.ConnectionError(540, "active=false")
    ch.send(commands.Channel.FlowOk(active=True))


HANDLERS: dict[type, Callable[[WireChannel, Any], None]] = {
    Exchange.Declare: _exchange_declare,
    Exchange.Delete: _exchange_delete,
    Exchange.Bind: _exchange_bind,
    Exchange.Unbind: _exchange_bind,
    Queue.Declare: _queue_declare,
    Queue.Bind: _queue_bind,
    Queue.Unbind: _queue_bind,
    Queue.Purge: _queue_purge,
    Queue.Delete: _queue_delete,
    Basic.Qos: _basic_qos,
    Basic.Consume: _basic_consume,
    Basic.Cancel: _basic_cancel,
    Basic.Get: _basic_get,
    Basic.Ack: _settlement,
    Basic.Nack: _settlement,
    Basic.Reject: _settlement,
    Basic.Recover: _basic_recover,
    Basic.RecoverAsync: _basic_recover,
    commands.Confirm.Select: _confirm_select,
    commands.Tx.Select: _tx_select,
    commands.Tx.Commit: _tx_commit,
    commands.Tx.Rollback: _tx_rollback,
    commands.Channel.Flow: _channel_flow,
}
