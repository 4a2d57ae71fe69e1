"""queuecraft run FILE --broker URL against the RabbitMQ here: the topology is declared, its
simulated producers and consumers run there as pika clients at their rates and with their
behaviours (work time, prefetch, failures that requeue, dead-letter or crash), measured from
the client side; afterwards exactly what was declared is removed."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pika
import pytest

from engine.cli import main
from engine.model import Binding, Consumer, Exchange, Producer, Queue, Topology
from engine.remote import run_on_broker
from engine.sim import TOTALS_ID
from engine.topology_file import save
from tests.conformance.drivers import RabbitAdmin

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def vhost() -> Iterator[str]:
    admin = RabbitAdmin()
    name = f"qc-run-{uuid.uuid4().hex[:8]}"
    admin.add_vhost(name)
    yield name
    admin.delete_vhost(name)


def url(vhost: str) -> str:
    return f"amqp://guest:guest@127.0.0.1:5672/{vhost}"


def shop() -> Topology:
    return Topology(
        exchanges=[Exchange("orders", type="topic"), Exchange("dead-letters", type="fanout")],
        queues=[
            Queue("payments"),
            Queue("flaky", arguments={"x-dead-letter-exchange": "dead-letters"}),
            Queue("parked"),
            Queue("backlog"),
        ],
        bindings=[
            Binding("orders", "payments", routing_key="order.created"),
            Binding("orders", "flaky", routing_key="order.*"),
            Binding("orders", "backlog", routing_key="order.#"),
            Binding("dead-letters", "parked"),
        ],
        producers=[Producer("web-shop", "orders", routing_key="order.created", rate=40)],
        consumers=[
            Consumer("payer", "payments", prefetch=5, work_ms=5),
            Consumer("rejecter", "flaky", prefetch=10, work_ms=0, failure_rate=1.0, on_failure="dead-letter"),
        ],
    )


def settled_depth(vhost: str, queue: str, expected: int) -> int:
    """A queue's depth once RabbitMQ has caught up (it settles other connections' work in its own time)."""
    connection = pika.BlockingConnection(pika.URLParameters(url(vhost)))
    try:
        channel = connection.channel()
        for _ in range(100):
            depth = channel.queue_declare(queue, passive=True).method.message_count
            if depth == expected:
                break
            connection.sleep(0.03)
        return int(depth)
    finally:
        connection.close()


def queue_names(vhost: str) -> dict[str, int]:
    admin = RabbitAdmin()
    return {q["name"]: q.get("messages", 0) for q in admin.request("GET", f"/queues/{admin.quote(vhost)}")}


def test_producers_and_consumers_run_on_rabbitmq_at_their_rates_and_with_their_behaviours(vhost: str) -> None:
    run, declared, removed = asyncio.run(run_on_broker(shop(), url(vhost), 2.5, keep=True))
    (producer,) = run.producers.values()
    payer, rejecter = run.consumers.values()
    # 40 msg/s for 2.5 s, steady.
    assert 90 <= producer.published <= 102
    # Every message reached the payer, who acked what it finished; none was lost on the way.
    assert payer.delivered >= producer.published - 5 and payer.acked >= payer.delivered - 5
    assert payer.nacked == 0 and payer.redelivered == 0
    # Every one the rejecter got went to the dead-letter exchange, and RabbitMQ parked it.
    assert rejecter.delivered >= producer.published - 10 and rejecter.nacked == rejecter.delivered
    assert rejecter.acked == 0
    assert settled_depth(vhost, "parked", rejecter.nacked) == rejecter.nacked
    # The queue nobody consumes held everything: its depth, as the clients polled it at the end.
    assert run.monitor.depths["backlog"][0] == settled_depth(vhost, "backlog", producer.published)
    assert run.monitor.depths["backlog"][0] == producer.published
    # Latency from publish to ack, as the payer saw it.
    report = run.report()
    payer_report = next(c for c in report["consumers"] if c["name"] == "payer")
    assert payer_report["latency_p50_ms"] is not None and 5 <= payer_report["latency_p50_ms"] < 1000
    # The counters have a simulation's shape: the same graphs read them.
    counters = run.read_counters()
    assert counters["producer:/:web-shop"][0] == producer.published  # the file's nodes, whatever vhost ran them
    assert counters[TOTALS_ID][0] == producer.published
    assert len(run.history) >= 8
    # Tokens for the canvas: each message published, delivered and settled, under one number.
    events = run.flow.since(0)
    published = {e.msg_id for e in events if e.kind == "published"}
    assert len(published) == producer.published
    delivered = [e for e in events if e.kind == "delivered" and e.target == "consumer:/:payer"]
    assert len(delivered) == payer.delivered and {e.msg_id for e in delivered} <= published
    assert all(e.source == "queue:/:payments" and e.routing_key == "order.created" for e in delivered)
    assert sum(1 for e in events if e.kind == "nacked") == rejecter.nacked
    assert sorted(declared.queues) == ["backlog", "flaky", "parked", "payments"]
    assert removed is None  # kept: still there
    assert {"payments", "flaky", "parked", "backlog"} <= set(queue_names(vhost))


def test_a_consumer_that_requeues_or_crashes_sees_redeliveries_and_teardown_removes_only_the_topology(
    vhost: str,
) -> None:
    admin = RabbitAdmin()
    admin.request("PUT", f"/queues/{admin.quote(vhost)}/bystander", {"durable": True})
    topology = Topology(
        queues=[Queue("work"), Queue("crashy")],
        producers=[
            Producer("feeder", "", routing_key="work", rate=20),
            Producer("crash-feeder", "", routing_key="crashy", rate=20),
        ],
        consumers=[
            Consumer("requeuer", "work", prefetch=1, work_ms=10, failure_rate=0.5, on_failure="requeue"),
            Consumer("crasher", "crashy", prefetch=3, work_ms=10, failure_rate=0.3, on_failure="crash", restart_ms=200),
        ],
    )
    run, _, removed = asyncio.run(run_on_broker(topology, url(vhost), 2.5))
    requeuer, crasher = run.consumers.values()
    assert requeuer.nacked > 3 and requeuer.redelivered > 3
    assert crasher.crashes >= 1 and crasher.redelivered >= 1
    assert crasher.delivered > crasher.crashes  # it came back after each crash and went on
    assert removed is not None and sorted(removed.queues) == ["crashy", "work"]
    assert set(queue_names(vhost)) == {"bystander"}


def test_the_command_prints_the_client_side_report_and_refuses_what_does_not_fit(vhost: str, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "shop.json"
    save(shop(), path)
    assert main([str(path), "--broker", url(vhost), "--duration", "1.5"]) == 0
    out = capsys.readouterr().out
    assert "Declared on vhost" in out and "measured by the clients" in out
    assert "web-shop" in out and "rejecter" in out and "Removed afterwards" in out
    assert set(queue_names(vhost)) == set()
    assert main([str(path), "--broker", url(vhost), "--duration", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["producers"][0]["published"] >= 30 and report["removed"]["queues"]
    # A real broker runs in real time; a wrong password is said without showing it.
    assert main([str(path), "--broker", url(vhost), "--speed", "10"]) == 2
    assert "--speed does not apply" in capsys.readouterr().err
    assert main([str(path), "--broker", f"amqp://guest:secret@127.0.0.1:5672/{vhost}", "--duration", "1"]) == 1
    err = capsys.readouterr().err
    assert "ACCESS_REFUSED" in err and "secret" not in err and "guest:***@" in err


def test_a_run_keeps_what_was_on_the_broker_before_it(vhost: str) -> None:
    admin = RabbitAdmin()
    admin.request("PUT", f"/queues/{admin.quote(vhost)}/backlog", {"durable": True})
    connection = pika.BlockingConnection(pika.URLParameters(url(vhost)))
    for i in range(4):
        connection.channel().basic_publish("", "backlog", f"before the run {i}".encode())
    connection.close()

    run, declared, removed = asyncio.run(run_on_broker(shop(), url(vhost), 1.0))
    assert declared.already_there == ["queue backlog (with 4 messages)"]
    assert removed is not None and sorted(removed.queues) == ["flaky", "parked", "payments"]
    (producer,) = run.producers.values()
    assert set(queue_names(vhost)) == {"backlog"}
    # Its messages from before the run are still there, with what the run sent it.
    assert settled_depth(vhost, "backlog", 4 + producer.published) == 4 + producer.published


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_ends_the_run_as_its_end_would_the_topology_removed_and_the_report_printed(
    vhost: str, tmp_path, signum: int
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "shop.json"
    save(shop(), path)
    command = [sys.executable, "-m", "engine.cli", str(path), "--broker", url(vhost), "--duration", "60"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while "payments" not in queue_names(vhost):
            assert time.monotonic() < deadline and process.poll() is None, process.stderr.read()  # type: ignore[union-attr]
            time.sleep(0.1)
        time.sleep(1.0)
        process.send_signal(signum)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert "interrupted after" in out and "Removed afterwards" in out
    assert set(queue_names(vhost)) == set()


def test_a_run_says_which_vhosts_clients_it_does_not_run() -> None:
    from engine.remote import RemoteRun

    two = Topology(
        queues=[Queue("a", vhost="one"), Queue("b", vhost="two")],
        producers=[Producer("p1", "", vhost="one", routing_key="a"), Producer("p2", "", vhost="two", routing_key="b")],
    )
    run = RemoteRun(two, "amqp://guest:guest@127.0.0.1:5672/one")
    assert list(run.producers) == ["producer:one:p1"]
    assert run.notes == ["the producers and consumers of vhost 'two' did not run: the URL names 'one'"]
