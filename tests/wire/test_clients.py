"""Real client libraries against the engine's listener: pika's BlockingConnection and
SelectConnection, and aio-pika; each publishes, consumes and acks as an application would,
and the broker knows each client by its connection_name."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import aio_pika
import pika
import pytest
from pamqp import commands, frame

from engine.serve import BrokerThread

from .raw import PROTOCOL_HEADER


@pytest.fixture(scope="module")
def served() -> Iterator[BrokerThread]:
    with BrokerThread() as thread:
        yield thread


def client_names(thread: BrokerThread) -> list[str]:
    assert thread.served is not None
    return thread.call(lambda: sorted(c.name for c in thread.served.server.open_clients()))


def parameters(thread: BrokerThread, name: str) -> pika.ConnectionParameters:
    assert thread.address is not None
    host, port = thread.address
    return pika.ConnectionParameters(
        host, port, credentials=pika.PlainCredentials("guest", "guest"), client_properties={"connection_name": name}
    )


def test_blocking_connection_publishes_with_confirms_consumes_and_acks(served: BrokerThread) -> None:
    connection = pika.BlockingConnection(parameters(served, "blocking-app"))
    try:
        assert "blocking-app" in client_names(served)
        channel = connection.channel()
        channel.confirm_delivery()
        channel.exchange_declare("orders", "topic")
        channel.queue_declare("blocking-q")
        channel.queue_bind("blocking-q", "orders", "order.*")
        for n in range(5):
            channel.basic_publish("orders", "order.created", f"m{n}".encode(), mandatory=True)
        with pytest.raises(pika.exceptions.UnroutableError):
            channel.basic_publish("orders", "invoice.sent", b"nowhere", mandatory=True)
        channel.basic_qos(prefetch_count=2)
        got = []
        for method, _properties, body in channel.consume("blocking-q", inactivity_timeout=1.0):
            if method is None:
                break
            got.append(body)
            channel.basic_ack(method.delivery_tag)
            if len(got) == 5:
                break
        channel.cancel()
        assert got == [b"m0", b"m1", b"m2", b"m3", b"m4"]
        assert channel.queue_declare("blocking-q", passive=True).method.message_count == 0
    finally:
        connection.close()


def test_select_connection_runs_a_callback_program(served: BrokerThread) -> None:
    received: list[bytes] = []

    def on_open(connection: pika.SelectConnection) -> None:
        connection.channel(on_open_callback=on_channel)

    def on_channel(channel) -> None:  # type: ignore[no-untyped-def]
        channel.queue_declare("select-q", callback=lambda _frame: on_declared(channel))

    def on_declared(channel) -> None:  # type: ignore[no-untyped-def]
        channel.basic_consume("select-q", lambda ch, method, _props, body: on_message(ch, method, body))
        for n in range(3):
            channel.basic_publish("", "select-q", f"s{n}".encode())

    def on_message(channel, method, body: bytes) -> None:  # type: ignore[no-untyped-def]
        received.append(body)
        channel.basic_ack(method.delivery_tag)
        if len(received) == 3:
            channel.connection.close()

    connection = pika.SelectConnection(
        parameters(served, "select-app"),
        on_open_callback=on_open,
        on_close_callback=lambda _conn, _reason: connection.ioloop.stop(),
    )
    connection.ioloop.call_later(10, connection.ioloop.stop)
    connection.ioloop.start()
    connection.ioloop.close()
    assert received == [b"s0", b"s1", b"s2"]


def test_aio_pika_publishes_and_consumes(served: BrokerThread) -> None:
    assert served.address is not None
    host, port = served.address

    async def program() -> list[bytes]:
        connection = await aio_pika.connect(
            host=host, port=port, login="guest", password="guest", client_properties={"connection_name": "aio-app"}
        )
        async with connection:
            assert "aio-app" in client_names(served)
            channel = await connection.channel(publisher_confirms=True)
            await channel.set_qos(prefetch_count=10)
            exchange = await channel.declare_exchange("aio-fanout", aio_pika.ExchangeType.FANOUT)
            queue = await channel.declare_queue("aio-q", arguments={"x-max-length": 10})
            await queue.bind(exchange)
            for n in range(4):
                await exchange.publish(aio_pika.Message(f"a{n}".encode(), priority=1), routing_key="")
            got = []
            async with queue.iterator() as messages:
                async for message in messages:
                    async with message.process():
                        got.append(message.body)
                    if len(got) == 4:
                        break
            return got

    assert asyncio.run(asyncio.wait_for(program(), 20)) == [b"a0", b"a1", b"a2", b"a3"]


def test_a_client_that_stops_reading_is_disconnected_and_others_carry_on() -> None:
    with BrokerThread(write_buffer_high=64 * 1024, write_stall_timeout=1.0) as thread:
        assert thread.address is not None and thread.served is not None
        host, port = thread.address
        feeder = pika.BlockingConnection(
            pika.ConnectionParameters(host, port, credentials=pika.PlainCredentials("guest", "guest"))
        )
        channel = feeder.channel()
        channel.queue_declare("flood")
        body = b"x" * 10_000
        for _ in range(3000):  # 30 MB: more than the socket buffers between us hold
            channel.basic_publish("", "flood", body)
        # A consumer that never reads what it is sent.
        silent = socket.create_connection((host, port))
        silent.sendall(
            PROTOCOL_HEADER
            + frame.marshal(commands.Connection.StartOk(client_properties={}, response="\0guest\0guest"), 0)
            + frame.marshal(commands.Connection.TuneOk(channel_max=2047, frame_max=131072, heartbeat=0), 0)
            + frame.marshal(commands.Connection.Open(virtual_host="/"), 0)
            + frame.marshal(commands.Channel.Open(), 1)
            + frame.marshal(commands.Basic.Consume(queue="flood", no_ack=True), 1)
        )
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and len(thread.call(thread.served.server.open_clients)) < 2:
                time.sleep(0.05)
            assert len(thread.call(thread.served.server.open_clients)) == 2, "the silent consumer never got in"
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and len(thread.call(thread.served.server.open_clients)) > 1:
                # The feeder keeps working meanwhile: the broker serves it while the other stalls.
                channel.queue_declare("flood", passive=True)
                time.sleep(0.2)
            assert len(thread.call(thread.served.server.open_clients)) == 1, "the stalled client was not let go"
            assert channel.queue_declare("side", auto_delete=False).method.message_count == 0
        finally:
            silent.close()
            feeder.close()


def test_past_the_memory_watermark_publishers_are_blocked_and_told_while_consumers_go_on() -> None:
    """RabbitMQ's memory alarm: a publisher is no longer read from (and told connection.blocked)
    until the queues drain below the high watermark; a consumer is served meanwhile."""
    with BrokerThread(memory_high_watermark=2_000_000) as thread:
        assert thread.address is not None and thread.served is not None
        host, port = thread.address
        credentials = pika.PlainCredentials("guest", "guest")
        publisher = pika.BlockingConnection(pika.ConnectionParameters(host, port, credentials=credentials))
        told: list[str] = []
        publisher.add_on_connection_blocked_callback(lambda conn, method: told.append("blocked"))
        publisher.add_on_connection_unblocked_callback(lambda conn, method: told.append("unblocked"))
        channel = publisher.channel()
        channel.queue_declare("burst")
        body = b"x" * 10_000
        for _ in range(300):  # 3 MB
            channel.basic_publish("", "burst", body)
        server = thread.served.server
        deadline = time.monotonic() + 10
        while not server.memory_alarm:
            assert time.monotonic() < deadline, "no alarm"
            publisher.process_data_events(0.05)
        # It published before the alarm: as long as it only consumes, it goes on.
        method, _, _ = channel.basic_get("burst", auto_ack=True)
        assert method is not None and not told
        # The publisher is blocked when it publishes during the alarm, and told so.
        channel.basic_publish("", "burst", b"during")
        while "blocked" not in told:
            assert time.monotonic() < deadline, "never told it was blocked"
            publisher.process_data_events(0.1)
        # Blocked, what it sends waits: the queue does not grow.
        before = thread.call(lambda: thread.served.broker.vhosts["/"].queues["burst"].depth)  # type: ignore[union-attr]
        channel.basic_publish("", "burst", b"waiting")
        publisher.process_data_events(0.5)
        depth = thread.call(lambda: thread.served.broker.vhosts["/"].queues["burst"].depth)  # type: ignore[union-attr]
        assert depth == before
        # A consumer on another connection takes messages as ever; below the watermark, the alarm clears.
        consumer = pika.BlockingConnection(pika.ConnectionParameters(host, port, credentials=credentials))
        taken = 0
        for method, _, _ in consumer.channel().consume("burst", auto_ack=True, inactivity_timeout=2):
            if method is None:
                break
            taken += 1
        assert taken >= 100
        deadline = time.monotonic() + 10
        while "unblocked" not in told:
            assert time.monotonic() < deadline, "never told it was unblocked"
            publisher.process_data_events(0.1)
        assert not server.memory_alarm
        publisher.close()
        consumer.close()
