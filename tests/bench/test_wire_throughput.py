"""pika against the engine's own AMQP listener and against the RabbitMQ here, in the same run:
publish N messages, then consume them back with prefetch 1000, acking every 100.
Target: at least 1.0x RabbitMQ's rate, publishing and consuming, with the same client.

The reference is the real RabbitMQ on 127.0.0.1:5672 (skipped with a reason when it does not
answer); each side gets a fresh server-named exclusive queue, which goes with its connection.
The listener runs as ``queuecraft serve`` in a process of its own, as RabbitMQ does: in this
process it would share one interpreter lock with the client it is measured against."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pika
import pytest

from .conftest import report

MESSAGES = int(os.environ.get("QC_BENCH_WIRE_MESSAGES", "20000"))
BODY = b"x" * 100


def rabbitmq_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=2):
            return True
    except OSError:
        return False


def rates(host: str, port: int) -> tuple[float, float]:
    """(published per second, consumed per second) for one broker."""
    params = pika.ConnectionParameters(host, port, credentials=pika.PlainCredentials("guest", "guest"))
    connection = pika.BlockingConnection(params)
    try:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        started = time.perf_counter()
        for _ in range(MESSAGES):
            channel.basic_publish("", queue, BODY)
        # Published means the broker has them all: ask until it counts them.
        while channel.queue_declare(queue, passive=True).method.message_count < MESSAGES:
            time.sleep(0.001)
        published = MESSAGES / (time.perf_counter() - started)

        channel.basic_qos(prefetch_count=1000)
        got = 0
        started = time.perf_counter()
        for method, _properties, _body in channel.consume(queue, inactivity_timeout=10):
            assert method is not None, f"only {got} of {MESSAGES} messages came back"
            got += 1
            if got % 100 == 0 or got == MESSAGES:
                channel.basic_ack(method.delivery_tag, multiple=True)
            if got == MESSAGES:
                break
        consumed = MESSAGES / (time.perf_counter() - started)
        channel.cancel()
        return published, consumed
    finally:
        connection.close()


def test_pika_against_the_listener_and_against_rabbitmq() -> None:
    if not rabbitmq_answers():
        pytest.skip("the reference, RabbitMQ on 127.0.0.1:5672, does not answer")
    reference = max((rates("127.0.0.1", 5672) for _ in range(2)), key=sum)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from engine.serve import main; sys.exit(main())",
            "--port",
            str(port),
            "--quiet",
        ]
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "queuecraft serve did not start listening"
                time.sleep(0.1)
        engine = max((rates("127.0.0.1", port) for _ in range(2)), key=sum)
    finally:
        server.terminate()
        server.wait(10)
    report(
        f"pika, {MESSAGES:,} messages of {len(BODY)} bytes, prefetch 1000, acks every 100 (best of 2)",
        [
            ("RabbitMQ publish (reference)", f"{reference[0]:10,.0f} msg/s"),
            ("listener publish", f"{engine[0]:10,.0f} msg/s = {engine[0] / reference[0]:.2f}x"),
            ("RabbitMQ consume (reference)", f"{reference[1]:10,.0f} msg/s"),
            ("listener consume", f"{engine[1]:10,.0f} msg/s = {engine[1] / reference[1]:.2f}x"),
        ],
    )
