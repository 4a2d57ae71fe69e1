"""Mutated frames, fed straight into the listener's connection protocol: at least 100,000 of them.

Each client does a proper handshake and then sends frames built from a corpus of valid ones
(declares, binds, publishes with content, consumes, acks, qos, ...) with random damage: flipped
bits, bytes cut or added, lengths and channel numbers changed, frames cut short. Whatever arrives,
the connection may only answer with an AMQP error (closing itself or a channel); nothing may escape
the protocol, and afterwards the broker still serves a well-behaved client.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from pamqp import body as content_body
from pamqp import commands, frame, header

from engine.amqp.connection import AmqpConnection
from engine.amqp.server import AmqpServer
from engine.broker import Broker

from .raw import CAPABILITIES, PROTOCOL_HEADER

FRAMES = 100_000
SEED = 20261204


class MemoryTransport(asyncio.Transport):
    """A transport that keeps what the broker writes and remembers whether it hung up."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data: Any) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def handshake() -> bytes:
    return (
        PROTOCOL_HEADER
        + frame.marshal(commands.Connection.StartOk(client_properties=CAPABILITIES, response="\0guest\0guest"), 0)
        + frame.marshal(commands.Connection.TuneOk(channel_max=2047, frame_max=131072, heartbeat=0), 0)
        + frame.marshal(commands.Connection.Open(virtual_host="/"), 0)
        + frame.marshal(commands.Channel.Open(), 1)
    )


def corpus() -> list[bytes]:
    """Valid frames of most kinds a client sends, on channel 1 (a few on others)."""
    methods: list[tuple[int, Any]] = [
        (1, commands.Exchange.Declare(exchange="fx", exchange_type="topic")),
        (1, commands.Exchange.Declare(exchange="hx", exchange_type="headers", arguments={"a": 1})),
        (1, commands.Queue.Declare(queue="fq", arguments={"x-max-length": 5, "x-message-ttl": 1000})),
        (1, commands.Queue.Declare(queue="", exclusive=True)),
        (1, commands.Queue.Bind(queue="fq", exchange="fx", routing_key="a.*.#")),
        (1, commands.Queue.Bind(queue="fq", exchange="hx", arguments={"x-match": "any", "k": "v"})),
        (1, commands.Exchange.Bind(destination="hx", source="fx", routing_key="#")),
        (1, commands.Queue.Unbind(queue="fq", exchange="fx", routing_key="a.*.#")),
        (1, commands.Basic.Qos(prefetch_count=3)),
        (1, commands.Basic.Consume(queue="fq", consumer_tag="c1")),
        (1, commands.Basic.Get(queue="fq")),
        (1, commands.Basic.Ack(delivery_tag=1, multiple=True)),
        (1, commands.Basic.Nack(delivery_tag=0, multiple=True, requeue=True)),
        (1, commands.Basic.Reject(delivery_tag=2, requeue=False)),
        (1, commands.Basic.Recover(requeue=True)),
        (1, commands.Basic.Cancel(consumer_tag="c1")),
        (1, commands.Confirm.Select()),
        (1, commands.Queue.Purge(queue="fq")),
        (1, commands.Queue.Delete(queue="fq", if_unused=True)),
        (1, commands.Exchange.Delete(exchange="hx")),
        (2, commands.Channel.Open()),
        (2, commands.Channel.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0)),
        (1, commands.Channel.Flow(active=True)),
        (0, commands.Connection.Blocked(reason="x")),
    ]
    frames = [frame.marshal(method, channel) for channel, method in methods]
    body = b"hello, broker"
    props = commands.Basic.Properties(
        content_type="text/plain", headers={"k": "v", "n": 7}, priority=3, expiration="500", delivery_mode=2
    )
    frames.append(
        frame.marshal(commands.Basic.Publish(exchange="fx", routing_key="a.b.c", mandatory=True), 1)
        + frame.marshal(header.ContentHeader(0, len(body), props), 1)
        + frame.marshal(content_body.ContentBody(body), 1)
    )
    frames.append(
        frame.marshal(commands.Basic.Publish(exchange="", routing_key="fq"), 1)
        + frame.marshal(header.ContentHeader(0, 0, commands.Basic.Properties()), 1)
    )
    frames.append(b"\x08\x00\x00\x00\x00\x00\x00\xce")  # a heartbeat
    return frames


def mutate(data: bytes, rng: random.Random) -> bytes:
    damaged = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        how = rng.randrange(7)
        if how == 0 and damaged:  # flip a bit
            i = rng.randrange(len(damaged))
            damaged[i] ^= 1 << rng.randrange(8)
        elif how == 1 and damaged:  # a random byte
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        elif how == 2 and len(damaged) > 1:  # cut short
            del damaged[rng.randrange(1, len(damaged)) :]
        elif how == 3:  # bytes added
            i = rng.randrange(len(damaged) + 1)
            damaged[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
        elif how == 4 and len(damaged) >= 7:  # the payload size says something else
            damaged[3:7] = rng.randrange(2**32).to_bytes(4, "big")
        elif how == 5 and len(damaged) >= 3:  # another channel
            damaged[1:3] = rng.choice((0, 1, 2, 3, 2047, 2048, 65535)).to_bytes(2, "big")
        elif how == 6 and damaged:  # another frame type
            damaged[0] = rng.choice((1, 2, 3, 4, 8, 0, 9, 255))
    return bytes(damaged)


def test_a_hundred_thousand_mutated_frames_leave_the_listener_serving() -> None:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        broker = Broker()
        server = AmqpServer(broker)
        rng = random.Random(SEED)
        valid = corpus()
        sent = connections = closed_by_broker = 0
        while sent < FRAMES:
            transport = MemoryTransport()
            connection = AmqpConnection(server)
            connection.connection_made(transport)
            connection.data_received(handshake())
            assert connection.state == "running", bytes(transport.written)
            connections += 1
            for _ in range(rng.randrange(1, 60)):
                data = rng.choice(valid)
                if rng.random() < 0.8:
                    data = mutate(data, rng)
                sent += 1
                # In pieces of any size, as TCP may deliver them.
                while data:
                    cut = rng.randrange(1, len(data) + 1)
                    connection.data_received(data[:cut])  # an AMQP error is answered inside; nothing escapes
                    data = data[cut:]
                if transport.closed or connection.state in ("closing", "closed"):
                    closed_by_broker += 1
                    break
            connection.connection_lost(None)
        assert sent >= FRAMES
        assert not server.connections, "every client that went is forgotten"
        assert closed_by_broker > connections // 2, "most damage is noticed and the client shown the door"

        # A well-behaved client afterwards: declares, publishes, and gets its message back.
        transport = MemoryTransport()
        client = AmqpConnection(server)
        client.connection_made(transport)
        body = b"still here"
        client.data_received(
            handshake()
            + frame.marshal(commands.Queue.Declare(queue="after-the-storm"), 1)
            + frame.marshal(commands.Basic.Publish(exchange="", routing_key="after-the-storm"), 1)
            + frame.marshal(header.ContentHeader(0, len(body), commands.Basic.Properties()), 1)
            + frame.marshal(content_body.ContentBody(body), 1)
            + frame.marshal(commands.Basic.Get(queue="after-the-storm", no_ack=True), 1)
        )
        assert not transport.closed and client.state == "running"
        assert body in bytes(transport.written)
        assert broker.lookup_queue("/", "after-the-storm").depth == 0
    finally:
        for handle in list(getattr(loop, "_scheduled", [])):
            handle.cancel()
        loop.close()
        asyncio.set_event_loop(None)


@pytest.mark.parametrize("seed", range(3))
def test_damaged_handshakes_never_escape_the_protocol(seed: int) -> None:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        server = AmqpServer(Broker())
        rng = random.Random(seed)
        for _ in range(2000):
            transport = MemoryTransport()
            connection = AmqpConnection(server)
            connection.connection_made(transport)
            connection.data_received(mutate(handshake(), rng))
            connection.connection_lost(None)
        assert not server.connections
    finally:
        for handle in list(getattr(loop, "_scheduled", [])):
            handle.cancel()
        loop.close()
        asyncio.set_event_loop(None)
