"""Routing per exchange type: which queues a message reaches, each once."""

from __future__ import annotations

import random

import pytest

from engine.broker import Broker
from engine.errors import ChannelError
from engine.routing import Binding, TopicRouter, split_topic


def route(broker: Broker, exchange: str, routing_key: str, headers: dict | None = None) -> list[str]:
    channel = broker.connect("test").channel()
    properties = {"headers": headers} if headers is not None else None
    before = {q.name: q.stats.enqueued for q in broker.all_queues()}
    channel.basic_publish(exchange, routing_key, b"m", properties)
    return sorted(q.name for q in broker.all_queues() if q.stats.enqueued > before[q.name])


@pytest.fixture
def broker() -> Broker:
    return Broker()


def test_direct_exchange_routes_on_exact_key(broker: Broker) -> None:
    broker.exchange_declare("/", "x", "direct")
    for name, key in (("a", "red"), ("b", "red"), ("c", "blue")):
        broker.queue_declare("/", name)
        broker.bind("/", "x", name, "queue", key)
    assert route(broker, "x", "red") == ["a", "b"]
    assert route(broker, "x", "blue") == ["c"]
    assert route(broker, "x", "Red") == []
    assert broker.stats.unroutable == 1


def test_fanout_ignores_the_routing_key(broker: Broker) -> None:
    broker.exchange_declare("/", "x", "fanout")
    for name in ("a", "b", "c"):
        broker.queue_declare("/", name)
        broker.bind("/", "x", name, "queue", "ignored")
    assert route(broker, "x", "anything") == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("nyse.*", "nyse.tech", True),
        ("nyse.*", "nyse", False),
        ("nyse.*", "nyse.tech.ibm", False),
        ("*.tech", "nasdaq.tech", True),
        ("*.tech", "tech", False),
        ("#", "", True),
        ("#", "a.b.c", True),
        ("a.#", "a", True),
        ("a.#", "a.b.c", True),
        ("a.#.b", "a.b", True),
        ("a.#.b", "a.x.y.b", True),
        ("a.#.b", "a.x.y.c", False),
        ("#.b", "b", True),
        ("*", "", False),
        ("*", "a", True),
        ("", "", True),
        ("", "a", False),
        ("a.*.c", "a..c", True),
        ("a..c", "a..c", True),
        ("*.a", ".a", True),
        ("a.*", "a.", True),
        ("#.#", "x", True),
        ("a.#.#.b", "a.b", True),
        ("*.#.*", "a", False),
        ("*.#.*", "a.b", True),
    ],
)
def test_topic_patterns(broker: Broker, pattern: str, key: str, matches: bool) -> None:
    broker.exchange_declare("/", "t", "topic")
    broker.queue_declare("/", "q")
    broker.bind("/", "t", "q", "queue", pattern)
    assert route(broker, "t", key) == (["q"] if matches else [])


def test_topic_message_matching_several_bindings_is_enqueued_once(broker: Broker) -> None:
    broker.exchange_declare("/", "t", "topic")
    broker.queue_declare("/", "q")
    for pattern in ("order.*", "#", "order.created", "*.created"):
        broker.bind("/", "t", "q", "queue", pattern)
    assert route(broker, "t", "order.created") == ["q"]
    assert broker.lookup_queue("/", "q").depth == 1


def test_topic_unbind_stops_routing(broker: Broker) -> None:
    broker.exchange_declare("/", "t", "topic")
    broker.queue_declare("/", "q")
    broker.bind("/", "t", "q", "queue", "a.*")
    broker.unbind("/", "t", "q", "queue", "a.*")
    assert route(broker, "t", "a.b") == []


@pytest.mark.parametrize(
    ("arguments", "headers", "matches"),
    [
        ({"x-match": "all", "format": "pdf", "type": "report"}, {"format": "pdf", "type": "report"}, True),
        ({"x-match": "all", "format": "pdf", "type": "report"}, {"format": "pdf"}, False),
        ({"x-match": "any", "format": "pdf", "type": "report"}, {"format": "pdf"}, True),
        ({"x-match": "any", "format": "pdf"}, {"format": "zip"}, False),
        ({"format": "pdf"}, {"format": "pdf", "extra": 1}, True),
        ({"x-match": "all"}, {}, True),
        ({"x-match": "any"}, {"a": 1}, False),
        ({"x-match": "all", "n": 1}, {"n": 1.0}, True),
        ({"x-match": "all", "n": 1}, {"n": "1"}, False),
        ({"x-match": "all", "flag": True}, {"flag": 1}, False),
        ({"x-match": "all", "x-tag": "a"}, {"x-tag": "b"}, True),
        ({"x-match": "all-with-x", "x-tag": "a"}, {"x-tag": "b"}, False),
        ({"x-match": "any-with-x", "x-tag": "a"}, {"x-tag": "a"}, True),
    ],
)
def test_headers_matching(broker: Broker, arguments: dict, headers: dict, matches: bool) -> None:
    broker.exchange_declare("/", "h", "headers")
    broker.queue_declare("/", "q")
    broker.bind("/", "h", "q", "queue", "", arguments)
    assert route(broker, "h", "", headers) == (["q"] if matches else [])


def test_headers_binding_with_bad_x_match_is_refused(broker: Broker) -> None:
    broker.exchange_declare("/", "h", "headers")
    broker.queue_declare("/", "q")
    with pytest.raises(ChannelError) as raised:
        broker.bind("/", "h", "q", "queue", "", {"x-match": "most"})
    assert raised.value.reply_code == 406


def test_default_exchange_reaches_each_queue_by_its_name(broker: Broker) -> None:
    broker.queue_declare("/", "payments")
    broker.queue_declare("/", "shipping")
    assert route(broker, "", "payments") == ["payments"]
    assert route(broker, "", "nobody") == []


def test_default_exchange_cannot_be_bound(broker: Broker) -> None:
    broker.queue_declare("/", "q")
    with pytest.raises(ChannelError) as raised:
        broker.bind("/", "", "q", "queue", "q")
    assert raised.value.reply_code == 403


def test_exchange_to_exchange_bindings_and_cycles(broker: Broker) -> None:
    broker.exchange_declare("/", "front", "fanout")
    broker.exchange_declare("/", "orders", "topic")
    broker.exchange_declare("/", "audit", "fanout")
    broker.queue_declare("/", "paid")
    broker.queue_declare("/", "all")
    broker.bind("/", "front", "orders", "exchange")
    broker.bind("/", "front", "audit", "exchange")
    broker.bind("/", "orders", "paid", "queue", "order.paid")
    broker.bind("/", "audit", "all", "queue")
    broker.bind("/", "orders", "all", "queue", "#")
    broker.bind("/", "audit", "front", "exchange")  # a cycle back to the start
    assert route(broker, "front", "order.paid") == ["all", "paid"]
    assert broker.lookup_queue("/", "all").depth == 1


def test_alternate_exchange_takes_what_matches_nothing(broker: Broker) -> None:
    broker.exchange_declare("/", "unrouted", "fanout")
    broker.exchange_declare("/", "x", "direct", arguments={"alternate-exchange": "unrouted"})
    broker.queue_declare("/", "lost-and-found")
    broker.queue_declare("/", "known")
    broker.bind("/", "unrouted", "lost-and-found", "queue")
    broker.bind("/", "x", "known", "queue", "k")
    assert route(broker, "x", "k") == ["known"]
    assert route(broker, "x", "other") == ["lost-and-found"]
    assert broker.stats.unroutable == 0


def test_unroutable_messages_are_counted_and_returned_when_mandatory(broker: Broker) -> None:
    broker.exchange_declare("/", "x", "direct")
    channel = broker.connect("test").channel()
    returned = []
    channel.on_return = lambda code, text, message: returned.append((code, message.routing_key))
    channel.basic_publish("x", "nowhere", b"m")
    channel.basic_publish("x", "nowhere", b"m", mandatory=True)
    assert broker.stats.unroutable == 2
    assert returned == [(312, "nowhere")]


def test_dead_lettering_that_reaches_no_queue_drops_the_message(broker: Broker) -> None:
    broker.exchange_declare("/", "dlx", "fanout")  # no bindings
    broker.queue_declare("/", "work", arguments={"x-message-ttl": 100, "x-dead-letter-exchange": "dlx"})
    broker.queue_declare("/", "spare", arguments={"x-max-length": 1, "x-dead-letter-exchange": "dlx"})
    channel = broker.connect("app").channel()
    channel.basic_publish("", "work", b"m")
    for _ in range(3):
        channel.basic_publish("", "spare", b"m")
    broker.clock.run_for(1)
    assert broker.lookup_queue("/", "work").stats.expired == 1
    assert broker.lookup_queue("/", "spare").stats.dropped == 2


def test_decimal_header_values_match_only_decimals(broker: Broker) -> None:
    from decimal import Decimal

    broker.exchange_declare("/", "h", "headers")
    broker.queue_declare("/", "q")
    broker.bind("/", "h", "q", "queue", "", {"n": 1})
    assert route(broker, "h", "", {"n": Decimal("1")}) == []
    assert route(broker, "h", "", {"n": 1}) == ["q"]


def _reference_topic_match(pattern: list[str], key: list[str]) -> bool:
    """RabbitMQ's topic rule, plainly: '*' is exactly one word, '#' zero or more."""
    if not pattern:
        return not key
    head = pattern[0]
    if head == "#":
        return any(_reference_topic_match(pattern[1:], key[i:]) for i in range(len(key) + 1))
    return bool(key) and (head == "*" or head == key[0]) and _reference_topic_match(pattern[1:], key[1:])


@pytest.mark.parametrize("seed", range(40))
def test_topic_router_agrees_with_the_plain_rule_through_adds_and_removes(seed: int) -> None:
    rng = random.Random(seed)
    vocabulary = ["a", "b", "c", "", "*", "#"]

    def words(wild: bool) -> list[str]:
        choices = vocabulary if wild else vocabulary[:4]
        # Many patterns share their first two words, so groups outgrow the short list.
        head = rng.choice([["a", "b"], ["a", "c"], [rng.choice(choices), rng.choice(choices)]])
        return (head + [rng.choice(choices) for _ in range(rng.randrange(0, 4))])[: rng.randrange(0, 6)]

    router = TopicRouter()
    live: list[Binding] = []
    for n in range(rng.randrange(5, 60)):
        binding = Binding("/", "t", f"q{n}", "queue", ".".join(words(True)))
        router.add(binding)
        live.append(binding)
        if rng.random() < 0.3:
            gone = live.pop(rng.randrange(len(live)))
            router.remove(gone)
    for _ in range(200):
        key = ".".join(words(False))
        expected = {id(b) for b in live if _reference_topic_match(split_topic(b.routing_key), split_topic(key))}
        found = router.match_in_trie(key)
        assert {id(b) for b in found} == expected, (key, sorted(b.routing_key for b in found))
        assert len(found) == len(expected), f"a binding matched twice for {key!r}"
