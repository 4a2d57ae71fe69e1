"""Edits apply to a running simulation at once; consumers fail the way they are told to."""

from __future__ import annotations

import copy

from engine.model import Binding, Consumer, Exchange, Producer, Queue, Topology
from engine.sim import Simulation


def shop() -> Topology:
    return Topology(
        exchanges=[Exchange("orders", type="topic"), Exchange("dlx", type="fanout")],
        queues=[Queue("payments", arguments={"x-dead-letter-exchange": "dlx"}), Queue("dead")],
        bindings=[Binding("orders", "payments", routing_key="order.*"), Binding("dlx", "dead")],
        producers=[Producer("shop", "orders", routing_key="order.created", rate=10)],
        consumers=[],
    )


def edited(sim: Simulation, change) -> Topology:  # type: ignore[no-untyped-def]
    topology = copy.deepcopy(sim.topology)
    change(topology)
    sim.sync(topology)
    return topology


def queue(sim: Simulation, name: str):  # type: ignore[no-untyped-def]
    return sim.broker.lookup_queue("/", name)


def test_a_consumer_added_while_running_starts_taking_messages() -> None:
    sim = Simulation(shop())
    sim.run_for(5)
    assert queue(sim, "payments").depth == 50
    edited(sim, lambda t: t.consumers.append(Consumer("worker", "payments", prefetch=10, work_ms=10)))
    sim.run_for(5)
    assert queue(sim, "payments").depth == 0
    assert sim.consumers["consumer:/:worker"].processed > 90
    assert sim.accounting_problems() == []


def test_a_deleted_binding_stops_routing_and_a_new_one_starts() -> None:
    sim = Simulation(shop())
    sim.run_for(3)
    edited(sim, lambda t: t.bindings.pop(0))
    sim.run_for(3)
    assert queue(sim, "payments").stats.enqueued == 30
    assert sim.broker.stats.unroutable == 30
    edited(sim, lambda t: t.bindings.append(Binding("orders", "payments", routing_key="#")))
    sim.run_for(2)
    assert queue(sim, "payments").stats.enqueued == 50


def test_a_new_rate_changes_the_traffic_and_messages_stay() -> None:
    sim = Simulation(shop())
    sim.run_for(2)
    edited(sim, lambda t: setattr(t.producers[0], "rate", 100.0))
    sim.run_for(2)
    assert 215 <= sim.producers["producer:/:shop"].published <= 221
    assert queue(sim, "payments").depth == sim.producers["producer:/:shop"].published


def test_a_new_limit_applies_to_what_the_queue_holds() -> None:
    sim = Simulation(shop())
    sim.run_for(5)
    edited(sim, lambda t: t.queues[0].arguments.update({"x-max-length": 10}))
    assert queue(sim, "payments").depth == 10
    assert queue(sim, "dead").depth == 40  # dropped from the head, dead-lettered as maxlen


def test_removing_nodes_and_unconnected_clients() -> None:
    sim = Simulation(shop())
    sim.run_for(1)

    def change(t: Topology) -> None:
        t.producers[0].exchange = None
        t.consumers.append(Consumer("idle", None))

    edited(sim, change)
    sim.run_for(2)
    assert sim.producers["producer:/:shop"].published == 10
    edited(sim, lambda t: t.queues.pop(0) and t.bindings.pop(0))
    assert "payments" not in sim.broker.get_vhost("/").queues
    sim.run_for(1)
    assert sim.accounting_problems() == []


def failing(action: str, rate: float = 0.5) -> Simulation:
    topology = shop()
    topology.consumers.append(
        Consumer("flaky", "payments", prefetch=5, work_ms=20, failure_rate=rate, on_failure=action, restart_ms=500)
    )
    sim = Simulation(topology, seed=4)
    sim.run_for(20)
    return sim


def test_failures_requeue_and_come_back_redelivered() -> None:
    sim = failing("requeue")
    payments = queue(sim, "payments")
    consumer = sim.consumers["consumer:/:flaky"]
    assert consumer.failed > 50
    assert payments.stats.requeued == consumer.failed
    assert payments.stats.redelivered > 50
    assert queue(sim, "dead").depth == 0
    assert sim.accounting_problems() == []


def test_failures_dead_letter() -> None:
    sim = failing("dead-letter")
    consumer = sim.consumers["consumer:/:flaky"]
    assert queue(sim, "dead").depth == consumer.failed > 50
    assert sim.accounting_problems() == []


def test_a_crash_returns_unacked_messages_and_the_consumer_comes_back() -> None:
    sim = failing("crash", rate=0.05)
    consumer = sim.consumers["consumer:/:flaky"]
    payments = queue(sim, "payments")
    assert consumer.crashes >= 2
    assert payments.stats.redelivered > 0
    assert consumer.acked > 100  # it came back each time
    assert sim.accounting_problems() == []
