"""Every decision the engine makes is a flow event the GUI can show and explain."""

from __future__ import annotations

import pytest

from engine.broker import Broker
from engine.errors import ChannelError
from engine.metrics import FLOW_KINDS


@pytest.fixture
def broker() -> Broker:
    broker = Broker()
    broker.flow.enabled = True
    broker.exchange_declare("/", "orders", "topic")
    broker.exchange_declare("/", "dlx", "fanout")
    broker.exchange_declare("/", "spare", "fanout")
    broker.exchange_declare("/", "with-ae", "direct", arguments={"alternate-exchange": "spare"})
    broker.queue_declare("/", "dead")
    broker.bind("/", "dlx", "dead")
    broker.queue_declare("/", "spare-q")
    broker.bind("/", "spare", "spare-q")
    return broker


def events(broker: Broker, since: int = 0) -> list[tuple[str, str | None, str | None, str]]:
    return [(e.kind, e.source, e.target, e.detail) for e in broker.flow.since(since)]


def test_publish_route_deliver_ack(broker: Broker) -> None:
    broker.queue_declare("/", "work")
    binding = broker.bind("/", "orders", "work", "queue", "order.*")
    channel = broker.connect("app").channel()
    tag = []
    channel.basic_consume("work", lambda consumer, t, m: tag.append(t), node_id="consumer:/:worker")
    channel.basic_publish("orders", "order.created", b"m", origin="producer:/:shop")
    channel.basic_ack(tag[0])
    assert events(broker) == [
        ("published", "producer:/:shop", "exchange:/:orders", ""),
        ("routed", "exchange:/:orders", binding.node_id, "queue:/:work"),
        ("delivered", "queue:/:work", "consumer:/:worker", ""),
        ("acked", "consumer:/:worker", "queue:/:work", ""),
    ]


def test_unroutable_returned_and_alternate(broker: Broker) -> None:
    channel = broker.connect("app").channel()
    channel.basic_publish("orders", "nobody.listens", b"m", origin="producer:/:shop")
    channel.basic_publish("orders", "nobody.listens", b"m", mandatory=True, origin="producer:/:shop")
    channel.basic_publish("with-ae", "k", b"m", origin="producer:/:shop")
    kinds = [(kind, detail) for kind, _, _, detail in events(broker) if kind != "published"]
    assert kinds[:2] == [("unroutable", ""), ("returned", "312 NO_ROUTE")]
    assert ("routed", "exchange:/:with-ae", "exchange:/:spare", "") in events(broker)


def test_nack_requeue_and_discard_to_the_dead_letter_exchange(broker: Broker) -> None:
    broker.queue_declare("/", "work", arguments={"x-dead-letter-exchange": "dlx"})
    channel = broker.connect("app").channel()
    channel.basic_publish("", "work", b"m")
    tag, _, _ = channel.basic_get("work")  # type: ignore[misc]
    start = broker.flow.count
    channel.basic_nack(tag, requeue=True)
    tag, _, _ = channel.basic_get("work")  # type: ignore[misc]
    channel.basic_reject(tag, requeue=False)
    kinds = [(kind, detail) for kind, _, _, detail in events(broker, start)]
    assert kinds == [
        ("nacked", "requeue"),
        ("requeued", ""),
        ("delivered", "basic.get"),
        ("nacked", "discard"),
        ("dead_lettered", "rejected"),
        ("routed", "queue:/:dead"),
    ]


def test_expired_and_dropped(broker: Broker) -> None:
    broker.queue_declare("/", "short", arguments={"x-message-ttl": 100, "x-dead-letter-exchange": "dlx"})
    broker.queue_declare("/", "tiny", arguments={"x-max-length": 1})
    broker.queue_declare("/", "strict", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    channel = broker.connect("app").channel()
    channel.basic_publish("", "short", b"m")
    broker.clock.run_for(0.2)
    for queue in ("tiny", "tiny", "strict", "strict"):
        channel.basic_publish("", queue, b"m")
    found = [
        (kind, source, detail)
        for kind, source, _, detail in events(broker)
        if kind in ("expired", "dropped", "dead_lettered")
    ]
    assert found == [
        ("expired", "queue:/:short", "ttl"),
        ("dead_lettered", "queue:/:short", "expired"),
        ("dropped", "queue:/:tiny", "drop-head"),
        ("dropped", "queue:/:strict", "reject-publish"),
    ]


def test_every_kind_is_named() -> None:
    assert set(FLOW_KINDS) == {
        "published", "routed", "unroutable", "returned", "delivered", "acked",
        "nacked", "requeued", "expired", "dropped", "dead_lettered",
    }  # fmt: skip


def test_vhosts_are_separate_namespaces() -> None:
    broker = Broker()
    broker.add_vhost("staging")
    broker.queue_declare("/", "orders")
    broker.queue_declare("staging", "orders", arguments={"x-max-length": 1})
    prod = broker.connect("prod", "/").channel()
    stage = broker.connect("stage", "staging").channel()
    for _ in range(3):
        prod.basic_publish("", "orders", b"m")
        stage.basic_publish("", "orders", b"m")
    assert broker.lookup_queue("/", "orders").depth == 3
    assert broker.lookup_queue("staging", "orders").depth == 1
    prod.exchange_declare("only-in-prod", "direct")
    prod.exchange_declare("only-in-prod", "direct", passive=True)
    with pytest.raises(ChannelError) as raised:
        stage.exchange_declare("only-in-prod", "direct", passive=True)
    assert raised.value.reply_code == 404
