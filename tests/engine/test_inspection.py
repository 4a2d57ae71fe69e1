"""Inside a running broker: a queue's messages, one message's trace, and why each binding took it or not."""

from __future__ import annotations

import random

import pytest

from engine.explain import explain_headers, explain_topic
from engine.inspection import Tracer, body_preview, queue_messages
from engine.metrics import MessageTraces
from engine.model import Binding, Consumer, Exchange, Producer, Queue, Topology
from engine.routing import Binding as RouterBinding
from engine.routing import TopicRouter
from engine.sim import Simulation


def traced(topology: Topology) -> Simulation:
    sim = Simulation(topology)
    sim.flow.enabled = True
    sim.flow.traces.enabled = True
    return sim


def test_topic_explanations_say_which_words_each_part_took() -> None:
    assert explain_topic("order.*", "order.created") == (True, "'order' = 'order'; '*' takes 'created'")
    assert explain_topic("#.paid", "order.eu.paid").reason == "'#' takes 'order' 'eu'; 'paid' = 'paid'"
    assert explain_topic("a.#.b", "a.b").reason == "'a' = 'a'; '#' takes no words; 'b' = 'b'"
    assert explain_topic("order.*", "order.created.eu") == (
        False,
        "'order.*' needs exactly 2 words; 'order.created.eu' has 3",
    )
    assert explain_topic("order.paid", "order.created") == (
        False,
        "word 2 must be 'paid'; 'order.created' has 'created'",
    )
    assert explain_topic("#.paid", "order.created") == (
        False,
        "'order.created' has no word 'paid', which '#.paid' needs",
    )
    assert explain_topic("*", "").matched is False
    assert explain_topic("#", "").matched is True
    assert explain_topic("a..b", "a..b").matched is True


def test_topic_explanations_agree_with_the_router_on_random_patterns() -> None:
    rng = random.Random(11)
    words = ["a", "b", "", "*", "#"]
    for _ in range(3000):
        pattern = ".".join(rng.choice(words) for _ in range(rng.randint(0, 4))) if rng.random() > 0.05 else ""
        key = ".".join(rng.choice(["a", "b", ""]) for _ in range(rng.randint(0, 4)))
        router = TopicRouter()
        router.add(RouterBinding("/", "x", "q", "queue", pattern))
        assert explain_topic(pattern, key).matched == bool(router.match(key, None)), (pattern, key)


def test_header_explanations_name_each_pair() -> None:
    verdict = explain_headers({"x-match": "all", "format": "pdf", "type": "report"}, {"format": "pdf"})
    assert verdict == (False, "x-match all: format = 'pdf', type missing")
    verdict = explain_headers(
        {"x-match": "any", "format": "pdf", "type": "report"}, {"format": "zip", "type": "report"}
    )
    assert verdict == (True, "x-match any: format is 'zip', not 'pdf', type = 'report'")


def shop() -> Topology:
    return Topology(
        exchanges=[Exchange("orders", type="topic"), Exchange("dlx", type="fanout")],
        queues=[
            Queue("payments", arguments={"x-dead-letter-exchange": "dlx"}),
            Queue("audit"),
            Queue("dead"),
        ],
        bindings=[
            Binding("orders", "payments", routing_key="order.created"),
            Binding("orders", "audit", routing_key="#"),
            Binding("orders", "audit", routing_key="order.refunded"),
            Binding("dlx", "dead"),
        ],
        producers=[Producer("shop", "orders", routing_key="order.{created|paid}", rate=10)],
        consumers=[Consumer("payer", "payments", work_ms=50, failure_rate=1.0, on_failure="reject")],
    )


def test_a_trace_follows_every_copy_to_its_end_and_explains_the_bindings() -> None:
    sim = traced(shop())
    sim.run_for(2)
    tracer = Tracer(sim.broker)
    created = next(m for m in sim.broker.get_vhost("/").queues["dead"].ready if m.routing_key == "order.created")
    trace = tracer.trace(created.msg_id)
    assert trace is not None and trace.complete
    kinds = [hop.kind for hop in trace.hops]
    assert kinds[0] == "published"
    assert kinds.count("routed") >= 3  # payments, audit, and on from the dead-letter exchange
    assert "delivered" in kinds and "nacked" in kinds and "dead_lettered" in kinds
    times = [hop.time for hop in trace.hops]
    assert times == sorted(times)
    published = trace.hops[0]
    assert published.text == "shop published it to exchange orders with routing key 'order.created'"
    routed = next(hop for hop in trace.hops if hop.kind == "routed")
    checks = {check.label: check.verdict for check in routed.bindings}
    assert checks["'order.created'"].matched and checks["'#'"].matched
    assert not checks["'order.refunded'"].matched
    assert checks["'order.refunded'"].reason == "word 2 must be 'refunded'; 'order.created' has 'created'"
    dead = next(hop for hop in trace.hops if hop.kind == "dead_lettered")
    assert dead.text == "dead-lettered from queue payments (rejected) to exchange dlx"


def test_a_message_whose_trace_is_gone_is_pieced_together_from_what_it_carries() -> None:
    sim = traced(shop())
    sim.flow.traces = MessageTraces(capacity=40)  # events: a few messages' worth
    sim.flow.traces.enabled = True
    sim.run_for(3)
    oldest = sim.broker.get_vhost("/").queues["audit"].ready[0]
    assert sim.flow.traces.hops(oldest.msg_id) is None
    newest = sim.broker.get_vhost("/").queues["audit"].ready[-1]
    assert [e.kind for e in sim.flow.traces.hops(newest.msg_id) or []][:2] == ["published", "routed"]
    trace = Tracer(sim.broker).trace(oldest.msg_id)
    assert trace is not None and not trace.complete
    assert trace.hops[0].text.startswith("shop published it to exchange orders")
    assert any(hop.text.startswith("waiting in queue audit") for hop in trace.hops)


def test_a_queue_lists_ready_messages_in_delivery_order_then_those_consumers_hold() -> None:
    topology = shop()
    topology.consumers = [Consumer("slow", "audit", work_ms=10_000, prefetch=2)]
    sim = traced(topology)
    sim.run_for(1.05)
    queue = sim.broker.get_vhost("/").queues["audit"]
    listing = queue_messages(sim.broker, queue, limit=200)
    assert listing.unacked == 2 and listing.ready == queue.depth == 9
    ready = [row for row in listing.rows if row.state == "ready"]
    assert [row.position for row in ready] == list(range(1, 10))
    assert [row.msg_id for row in ready] == sorted(row.msg_id for row in ready)
    held = [row for row in listing.rows if row.state == "unacked"]
    assert len(held) == 2 and {row.consumer for row in held} == {"consumer:/:slow"}
    first = ready[0]
    assert first.routing_key in ("order.created", "order.paid") and first.exchange == "orders"
    assert first.age == pytest.approx(first.waiting) and first.age > 0
    assert first.size == 100 and first.body_preview == "x" * 64 + "…"
    assert len(queue_messages(sim.broker, queue, limit=4).rows) == 4


def test_body_previews_escape_what_cannot_be_shown() -> None:
    assert body_preview(b"hello\nworld\x00") == "hello\\nworld\\x00"
    assert body_preview(b"\xff\xfe") == "\\xff\\xfe"
    assert body_preview(b"a" * 100, limit=3) == "aaa…"
