"""Real clients as the canvas sees them: a pika program that publishes becomes a producer node,
one that consumes a consumer node, named by its connection_name; what it declares joins the
drawing; its messages are counted under its nodes; when it leaves it fades; back under the
same name, it takes its node again with its counts carried on."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pika
import pytest

from engine.live import FADE_SECONDS, live_overlay
from engine.model import Binding, Consumer, Exchange, Producer, Queue, Topology
from engine.serve import BrokerThread

SHOP = Topology(
    exchanges=[Exchange("orders", type="topic")],
    queues=[Queue("billing")],
    bindings=[Binding("orders", "billing", routing_key="order.*")],
    producers=[Producer("storefront", "orders", routing_key="order.created", rate=0.0)],
    consumers=[Consumer("biller", "billing", work_ms=0.0)],
    layout={"exchange:/:orders": (300.0, 0.0), "queue:/:billing": (600.0, 0.0)},
)


@pytest.fixture
def served() -> Iterator[BrokerThread]:
    with BrokerThread(SHOP) as thread:
        yield thread


def connect(thread: BrokerThread, name: str | None) -> pika.BlockingConnection:
    assert thread.address is not None
    properties = {"connection_name": name} if name else {}
    return pika.BlockingConnection(
        pika.ConnectionParameters(*thread.address, client_properties=properties, heartbeat=0)
    )


def overlay(thread: BrokerThread, positions: dict | None = None, now: float | None = None):  # type: ignore[no-untyped-def]
    served = thread.served
    assert served is not None
    places = {} if positions is None else positions
    return thread.call(lambda: live_overlay(SHOP, served.broker, served.server.clients(), places, now))


def counters(thread: BrokerThread) -> dict[str, tuple[int, ...]]:
    assert thread.served is not None
    return thread.call(thread.served.sim.read_counters)


def wait_until(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_publishing_client_is_a_producer_drawn_to_the_exchanges_it_publishes_to(served: BrokerThread) -> None:
    connection = connect(served, "checkout-service")
    try:
        channel = connection.channel()
        for _ in range(3):
            channel.basic_publish("orders", "order.created", b"{}")
        channel.basic_publish("", "billing", b"direct to the queue")
        connection.process_data_events(0.2)
        seen = overlay(served)
        nid = "producer:/:checkout-service"
        assert nid in seen.live_ids and nid in seen.topology.node_ids()
        producer = next(p for p in seen.topology.producers if p.id == nid)
        assert (producer.exchange, producer.routing_key) == ("orders", "order.created")
        # Its second exchange, the default one, reaches the queue it named.
        assert ("publishes", nid, "exchange:/:", "billing") in seen.extra_edges
        assert ("default", "exchange:/:", "queue:/:billing", "billing") in seen.extra_edges
        assert seen.clients[nid].publishes_to == {"orders": "order.created", "": "billing"}
        assert "consumer:/:checkout-service" not in seen.topology.node_ids()  # it never consumed
        assert counters(served)[nid] == (4, 0)
        # The document's own nodes are not live, and the simulated producer keeps its node.
        assert "queue:/:billing" not in seen.live_ids and "producer:/:storefront" not in seen.live_ids
    finally:
        connection.close()


def test_a_consuming_client_is_a_consumer_with_counts_of_its_own(served: BrokerThread) -> None:
    publisher = connect(served, "publisher")
    worker = connect(served, "invoice-worker")
    try:
        channel = worker.channel()
        channel.queue_declare("invoices", durable=True, arguments={"x-max-length": 100})
        channel.queue_bind("invoices", "orders", "order.paid")
        channel.basic_qos(prefetch_count=10)
        got: list[bytes] = []
        channel.basic_consume("invoices", lambda ch, method, props, body: got.append(method.delivery_tag))
        out = publisher.channel()
        for _ in range(5):
            out.basic_publish("orders", "order.paid", b"x")
        publisher.process_data_events(0.1)
        wait_until(lambda: (worker.process_data_events(0.05), len(got) == 5)[1])
        channel.basic_ack(got[1], multiple=True)  # two acked, three held
        channel.basic_nack(got[2], requeue=False)
        worker.process_data_events(0.2)
        seen = overlay(served)
        nid = "consumer:/:invoice-worker"
        consumer = next(c for c in seen.topology.consumers if c.id == nid)
        assert consumer.queue == "invoices"
        # What it declared is drawn, as a client's: the queue and its binding.
        assert "queue:/:invoices" in seen.live_ids
        assert "x-max-length" in seen.topology.queue("/", "invoices").arguments  # type: ignore[union-attr]
        assert any(b.destination == "invoices" and b.routing_key == "order.paid" for b in seen.topology.bindings)
        assert seen.details["queue:/:invoices"] == "classic · from a client"
        # Counted as a simulated consumer is: delivered, acked, unacked, buffered, processed, nacked, redelivered.
        assert counters(served)[nid] == (5, 2, 2, 0, 2, 1, 0)
        assert seen.clients[nid].unacked == 2 and seen.clients[nid].consumes_from == ["invoices"]
        # Every live node has a place, beside what it connects to, clear of the document's nodes.
        placed = seen.topology.layout
        assert all(n in placed for n in seen.topology.node_ids())
        assert placed[nid] != placed["queue:/:billing"]
    finally:
        publisher.close()
        worker.close()


def test_a_client_without_a_name_is_known_by_its_address_and_never_takes_a_simulated_node(
    served: BrokerThread,
) -> None:
    anonymous = connect(served, None)
    impostor = connect(served, "storefront")  # the simulated producer's name
    try:
        anonymous.channel().basic_publish("orders", "order.x", b"")
        impostor.channel().basic_publish("orders", "order.y", b"")
        anonymous.process_data_events(0.2)
        impostor.process_data_events(0.2)
        names = {p.name for p in overlay(served).topology.producers}
        assert "storefront (2)" in names
        assert any(name.startswith("127.0.0.1:") for name in names)
    finally:
        anonymous.close()
        impostor.close()


def test_a_departed_client_fades_then_goes_and_one_coming_back_takes_its_node_again(served: BrokerThread) -> None:
    connection = connect(served, "nightly-job")
    channel = connection.channel()
    channel.queue_declare("", exclusive=True)
    channel.basic_consume("billing", lambda *args: None)
    for _ in range(2):
        channel.basic_publish("orders", "order.created", b"")
    connection.process_data_events(0.2)
    connection.close()
    wait_until(lambda: not any(c.name == "nightly-job" for c in served.served.server.open_clients()))  # type: ignore[union-attr]
    positions: dict = {}
    gone = overlay(served, positions)
    nid = "consumer:/:nightly-job"
    # Still drawn, fading, with the queue it consumed from; its exclusive queue went with it.
    assert 0.0 < gone.fading[nid] <= 1.0 and not gone.clients[nid].connected
    assert next(c for c in gone.topology.consumers if c.id == nid).queue == "billing"
    assert not any(q.exclusive for q in gone.topology.queues)
    later = overlay(served, positions, now=time.monotonic() + FADE_SECONDS)
    assert nid not in later.topology.node_ids() and "producer:/:nightly-job" not in later.topology.node_ids()
    # Back under the same name: the same node, the count carried on, no longer fading.
    again = connect(served, "nightly-job")
    try:
        again.channel().basic_publish("orders", "order.created", b"")
        again.process_data_events(0.2)
        back = overlay(served, positions)
        assert "producer:/:nightly-job" not in back.fading
        assert back.topology.layout["producer:/:nightly-job"] == gone.topology.layout["producer:/:nightly-job"]
        assert counters(served)["producer:/:nightly-job"] == (3, 0)
    finally:
        again.close()


def test_a_client_that_declares_hundreds_of_queues_has_a_bounded_drawing_with_the_ones_it_uses(
    served: BrokerThread,
) -> None:
    from engine.live import MAX_DECLARED_DRAWN

    connection = connect(served, "declarer")
    try:
        channel = connection.channel()
        many = MAX_DECLARED_DRAWN + 250
        for i in range(many):
            channel.queue_declare(f"many-{i}")
            channel.queue_bind(f"many-{i}", "orders", f"many.{i}")
        channel.basic_consume(f"many-{many - 1}", lambda *args: None, auto_ack=True)  # the last one declared
        wait_until(lambda: overlay(served).not_drawn == many - MAX_DECLARED_DRAWN - 1)
        shown = overlay(served)
        drawn = {q.name for q in shown.topology.queues} - {"billing"}
        assert len(drawn) == MAX_DECLARED_DRAWN + 1 and f"many-{many - 1}" in drawn
        # Every binding drawn has both its ends drawn.
        names = {q.name for q in shown.topology.queues} | {x.name for x in shown.topology.exchanges}
        assert all(b.destination in names for b in shown.topology.bindings)
        assert sum(1 for b in shown.topology.bindings if b.source == "orders") == MAX_DECLARED_DRAWN + 2
    finally:
        connection.close()


def test_the_queues_clients_consume_from_are_drawn_first_and_bounded_too(served: BrokerThread) -> None:
    from engine.live import MAX_USED_DRAWN

    connection = connect(served, "greedy")
    try:
        channel = connection.channel()
        many = MAX_USED_DRAWN + 30
        for i in range(many):
            channel.queue_declare(f"used-{i}")
            channel.basic_consume(f"used-{i}", lambda *args: None, auto_ack=True)
        wait_until(lambda: overlay(served).not_drawn == many - MAX_USED_DRAWN)
        drawn = {q.name for q in overlay(served).topology.queues} - {"billing"}
        assert len(drawn) == MAX_USED_DRAWN and drawn <= {f"used-{i}" for i in range(many)}
    finally:
        connection.close()
