"""Competing consumers: round-robin within prefetch, acks, requeues and closing."""

from __future__ import annotations

from engine.broker import Broker
from engine.channel import Channel, ChannelConsumer
from engine.message import Message


class Recorder:
    def __init__(self) -> None:
        self.deliveries: list[tuple[int, Message]] = []

    def __call__(self, consumer: ChannelConsumer, tag: int, message: Message) -> None:
        self.deliveries.append((tag, message))

    @property
    def bodies(self) -> list[bytes]:
        return [m.body for _, m in self.deliveries]


def setup(prefetches: list[int]) -> tuple[Broker, Channel, list[tuple[Channel, Recorder]]]:
    broker = Broker()
    broker.queue_declare("/", "work")
    connection = broker.connect("consumers")
    consumers = []
    for prefetch in prefetches:
        channel = connection.channel()
        channel.basic_qos(prefetch)
        recorder = Recorder()
        channel.basic_consume("work", recorder)
        consumers.append((channel, recorder))
    return broker, broker.connect("producer").channel(), consumers


def publish(channel: Channel, count: int) -> None:
    for i in range(count):
        channel.basic_publish("", "work", str(i).encode())


def test_round_robin_between_consumers() -> None:
    _, producer, consumers = setup([0, 0, 0])
    publish(producer, 9)
    assert [r.bodies for _, r in consumers] == [
        [b"0", b"3", b"6"],
        [b"1", b"4", b"7"],
        [b"2", b"5", b"8"],
    ]


def test_prefetch_limits_unacked_per_consumer() -> None:
    broker, producer, consumers = setup([2, 1])
    publish(producer, 10)
    assert [len(r.deliveries) for _, r in consumers] == [2, 1]
    assert broker.lookup_queue("/", "work").depth == 7
    channel, recorder = consumers[1]
    channel.basic_ack(recorder.deliveries[0][0])
    assert len(recorder.deliveries) == 2
    assert broker.lookup_queue("/", "work").depth == 6


def test_multiple_ack_settles_everything_up_to_the_tag() -> None:
    broker, producer, consumers = setup([5])
    publish(producer, 5)
    channel, recorder = consumers[0]
    channel.basic_ack(recorder.deliveries[2][0], multiple=True)
    queue = broker.lookup_queue("/", "work")
    assert (queue.stats.acked, queue.unacked) == (3, 2)


def test_nack_with_requeue_puts_the_message_back_at_its_place_marked_redelivered() -> None:
    broker, producer, consumers = setup([1])
    publish(producer, 3)
    channel, recorder = consumers[0]
    first_tag, first = recorder.deliveries[0]
    assert not first.redelivered
    channel.basic_nack(first_tag, requeue=True)
    tag, again = recorder.deliveries[1]
    assert again.body == b"0" and again.redelivered
    assert [m.body for m in broker.lookup_queue("/", "work").messages()] == [b"1", b"2"]


def test_closing_a_channel_returns_its_unacked_messages_in_order() -> None:
    broker, producer, consumers = setup([3, 0])
    (first_channel, first), (second_channel, second) = consumers
    second_channel.basic_cancel(next(iter(second_channel.consumers)))
    publish(producer, 5)
    assert first.bodies == [b"0", b"1", b"2"]
    first_channel.close()
    queue = broker.lookup_queue("/", "work")
    assert [(m.body, m.redelivered) for m in queue.messages()] == [
        (b"0", True),
        (b"1", True),
        (b"2", True),
        (b"3", False),
        (b"4", False),
    ]
    assert queue.unacked == 0


def test_unknown_delivery_tag_is_a_precondition_failure() -> None:
    import pytest

    from engine.errors import ChannelError

    _, _, consumers = setup([1])
    channel, _ = consumers[0]
    with pytest.raises(ChannelError) as raised:
        channel.basic_ack(99)
    assert raised.value.reply_code == 406
    assert "unknown delivery tag 99" in str(raised.value)


def test_reusing_a_live_consumer_tag_closes_the_connection() -> None:
    import pytest

    from engine.errors import AMQPError

    broker, _, consumers = setup([1])
    channel, recorder = consumers[0]
    tag = next(iter(channel.consumers))
    with pytest.raises(AMQPError) as raised:
        channel.basic_consume("work", recorder, consumer_tag=tag)
    assert raised.value.reply_code == 530 and raised.value.connection_level
    assert f"attempt to reuse consumer tag '{tag}'" in str(raised.value)
