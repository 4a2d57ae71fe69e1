"""Simulated producers and consumers, the virtual clock, and message accounting."""

from __future__ import annotations

import random

import pytest

from engine.clock import VirtualClock, cancel
from engine.model import Binding, Consumer, Exchange, Producer, Queue, Topology
from engine.sim import KeyTemplate, Simulation


def orders_topology(**consumer_options) -> Topology:  # type: ignore[no-untyped-def]
    return Topology(
        exchanges=[Exchange("orders", type="topic")],
        queues=[Queue("payments"), Queue("audit")],
        bindings=[
            Binding("orders", "payments", routing_key="order.created"),
            Binding("orders", "audit", routing_key="#"),
        ],
        producers=[Producer("shop", "orders", routing_key="order.{created|paid}", rate=50)],
        consumers=[
            Consumer("pay-1", "payments", **consumer_options),
            Consumer("pay-2", "payments", **consumer_options),
            Consumer("auditor", "audit", prefetch=50, work_ms=1),
        ],
    )


def test_virtual_clock_runs_events_in_time_order() -> None:
    clock = VirtualClock()
    seen = []
    clock.call_at(2.0, seen.append, "b")
    clock.call_at(1.0, seen.append, "a")
    cancel(clock.call_at(1.5, seen.append, "never"))
    clock.call_at(5.0, seen.append, "later")
    clock.run_until(3.0)
    assert seen == ["a", "b"]
    assert clock.now == 3.0


def test_steady_producer_publishes_at_its_rate() -> None:
    sim = Simulation(orders_topology(work_ms=1))
    sim.run_for(10)
    assert sim.report()["producers"][0]["published"] == pytest.approx(500, abs=1)


def test_poisson_producer_averages_its_rate() -> None:
    topology = orders_topology(work_ms=1)
    topology.producers[0].pattern = "poisson"
    sim = Simulation(topology, seed=7)
    sim.run_for(100)
    published = sim.report()["producers"][0]["published"]
    assert 4600 < published < 5400  # 5000 expected; sd about 71


def test_key_template_draws_every_choice() -> None:
    template = KeyTemplate("order.{created|paid|shipped}.{eu|us}")
    keys = {template.draw(random.Random(1)) for _ in range(1)}
    rng = random.Random(3)
    keys = {template.draw(rng) for _ in range(400)}
    assert keys == {f"order.{a}.{b}" for a in ("created", "paid", "shipped") for b in ("eu", "us")}
    assert KeyTemplate("plain.key").draw(rng) == "plain.key"
    numbered = KeyTemplate("job.{seq}")
    assert [numbered.draw(rng) for _ in range(3)] == ["job.1", "job.2", "job.3"]


def test_competing_consumers_share_the_queue() -> None:
    sim = Simulation(orders_topology(prefetch=1, work_ms=20))
    sim.run_for(20)
    consumers = {c["name"]: c for c in sim.report()["consumers"]}
    one, two = consumers["pay-1"]["acked"], consumers["pay-2"]["acked"]
    assert one > 0 and two > 0
    assert abs(one - two) <= 0.1 * (one + two)


def test_slow_consumer_makes_its_queue_grow_and_prefetch_caps_unacked() -> None:
    sim = Simulation(orders_topology(prefetch=3, work_ms=500))
    sim.run_for(30)
    payments = next(q for q in sim.report()["queues"] if q["name"] == "payments")
    # About 25 msg/s arrive, two consumers finish 4 msg/s between them.
    assert payments["depth"] > 500
    assert payments["unacked"] == 6
    assert sim.broker.lookup_queue("/", "payments").unacked == 6


def test_every_message_is_in_exactly_one_place_after_a_run() -> None:
    topology = orders_topology(prefetch=5, work_ms=80, work_spread_ms=60)
    topology.exchanges.append(Exchange("legacy", type="direct"))
    topology.producers.append(Producer("old-shop", "legacy", routing_key="order.created", rate=3))
    sim = Simulation(topology, seed=3)
    for _ in range(20):
        sim.run_for(0.73)
        assert sim.accounting_problems() == []
    report = sim.report()
    totals = report["totals"]
    assert totals["unroutable"] > 0
    assert totals["published"] == totals["routed"] + totals["unroutable"]
    for queue in report["queues"]:
        assert queue["enqueued"] == queue["depth"] + queue["unacked"] + queue["acked"]


def test_same_seed_same_run() -> None:
    def run(seed: int) -> dict:
        topology = orders_topology(prefetch=2, work_ms=40, work_spread_ms=30)
        topology.producers[0].pattern = "poisson"
        sim = Simulation(topology, seed=seed)
        sim.run_for(15)
        return sim.report()

    assert run(11) == run(11)
    assert run(11) != run(12)


def test_auto_ack_consumer_acks_on_delivery() -> None:
    sim = Simulation(orders_topology(prefetch=1, work_ms=200, ack_mode="auto"))
    sim.run_for(5)
    payments = sim.broker.lookup_queue("/", "payments")
    assert payments.unacked == 0
    assert payments.depth == 0
    assert payments.stats.acked == payments.stats.enqueued
