"""Faults as lessons: kill, slow and fail consumers, stop and burst producers, unbind, restart the broker;
a timeline that plays them by itself; stepping one event and following one message."""

from __future__ import annotations

import pytest

from engine import topology_file
from engine.inspection import whereabouts
from engine.model import Binding, Consumer, Exchange, Producer, Queue, TimelineEvent, Topology
from engine.sim import FaultRefused, Simulation
from engine.topology_file import TopologyFileError


def orders(**consumer) -> Topology:  # type: ignore[no-untyped-def]
    options = {"work_ms": 50, "prefetch": 5}
    options.update(consumer)
    return Topology(
        exchanges=[Exchange("orders", type="topic"), Exchange("dlx", type="fanout")],
        queues=[
            Queue("work", arguments={"x-dead-letter-exchange": "dlx"}),
            Queue("audit", durable=False),
            Queue("dead"),
        ],
        bindings=[
            Binding("orders", "work", routing_key="order.*"),
            Binding("orders", "audit", routing_key="#"),
            Binding("dlx", "dead"),
        ],
        producers=[Producer("shop", "orders", routing_key="order.created", rate=10)],
        consumers=[Consumer("worker", "work", **options), Consumer("auditor", "audit", work_ms=1)],
    )


def queue(sim: Simulation, name: str):  # type: ignore[no-untyped-def]
    return sim.broker.get_vhost("/").queues[name]


def test_a_killed_consumer_gives_its_messages_back_redelivered_and_stays_down_until_restarted() -> None:
    sim = Simulation(orders(work_ms=1000))
    sim.run_for(3)
    held = queue(sim, "work").unacked
    assert held == 5
    sim.apply(TimelineEvent(at=0, action="kill", node="worker"))
    work = queue(sim, "work")
    assert work.unacked == 0 and work.depth >= 5
    assert all(m.redelivered for m in list(work.ready)[:5])
    sim.run_for(10)
    assert work.unacked == 0, "a killed consumer stays down"
    sim.apply(TimelineEvent(at=0, action="restart", node="worker"))
    sim.run_for(2)
    assert sim.consumers["consumer:/:worker"].redelivered >= 5
    assert sim.accounting_problems() == []
    assert [text for _, text in sim.fault_log] == ["kill consumer worker", "restart consumer worker"]


def test_a_slowed_consumer_falls_behind_and_catches_up_at_normal_pace() -> None:
    sim = Simulation(orders(work_ms=20, prefetch=1))
    sim.run_for(10)
    assert queue(sim, "work").depth <= 1
    sim.apply(TimelineEvent(at=0, action="slow", node="worker", factor=10))  # 200 ms a message, 10 arrive a second
    sim.run_for(10)
    assert queue(sim, "work").depth > 40
    sim.apply(TimelineEvent(at=0, action="slow", node="worker", factor=1))
    sim.run_for(20)
    assert queue(sim, "work").depth <= 1


def test_failing_consumers_requeue_or_dead_letter_their_share() -> None:
    sim = Simulation(orders(work_ms=10, prefetch=1), seed=2)
    sim.apply(TimelineEvent(at=0, action="fail", node="worker", share=0.5, on_failure="dead-letter"))
    sim.run_for(20)
    dead = queue(sim, "dead").depth
    assert 60 < dead < 140  # half of about 200
    sim.apply(TimelineEvent(at=0, action="fail", node="worker", share=0.0))
    sim.run_for(10)
    assert queue(sim, "dead").depth == dead
    assert sim.accounting_problems() == []


def test_producers_stop_start_burst_and_change_rate() -> None:
    sim = Simulation(orders(work_ms=1))
    sim.run_for(2)
    shop = sim.producers["producer:/:shop"]
    sim.apply(TimelineEvent(at=0, action="stop", node="shop"))
    published = shop.published
    sim.run_for(5)
    assert shop.published == published
    sim.apply(TimelineEvent(at=0, action="burst", node="shop", count=500))
    at = sim.now
    sim.run_for(0)  # the burst is published in engine events of a few hundred, all at this moment
    assert sim.now == at and shop.published == published + 500
    assert queue(sim, "audit").depth + queue(sim, "audit").unacked > 400  # the queue buffers the burst
    sim.apply(TimelineEvent(at=0, action="start", node="shop"))
    sim.apply(TimelineEvent(at=0, action="rate", node="shop", rate=100))
    before = shop.published
    sim.run_for(5)
    assert shop.published - before == pytest.approx(500, abs=2)


def test_unbinding_while_running_stops_routing_and_binding_again_resumes_it() -> None:
    sim = Simulation(orders(work_ms=1))
    sim.run_for(2)
    unbind = TimelineEvent(at=0, action="unbind", node="orders", destination="work", routing_key="order.*")
    sim.apply(unbind)
    assert len(sim.unbound) == 1
    enqueued = queue(sim, "work").stats.enqueued
    sim.run_for(3)
    assert queue(sim, "work").stats.enqueued == enqueued
    sim.apply(TimelineEvent(at=0, action="bind", node="orders", destination="work", routing_key="order.*"))
    assert not sim.unbound
    sim.run_for(3)
    assert queue(sim, "work").stats.enqueued > enqueued


def test_a_fault_on_something_not_running_is_refused_with_the_reason() -> None:
    sim = Simulation(orders())
    with pytest.raises(FaultRefused, match="no consumer 'ghost'"):
        sim.apply(TimelineEvent(at=0, action="kill", node="ghost"))
    with pytest.raises(FaultRefused, match="no exchange 'nowhere'"):
        sim.apply(TimelineEvent(at=0, action="unbind", node="nowhere", destination="work"))
    assert sim.fault_log == []


def test_a_broker_restart_loses_non_durable_queues_and_transient_messages() -> None:
    topology = orders(work_ms=1000)
    topology.producers = [
        Producer("durable", "orders", routing_key="order.created", rate=10, persistent=True),
        Producer("transient", "orders", routing_key="order.paid", rate=10),
    ]
    topology.consumers = []
    sim = Simulation(topology)
    sim.run_for(2)
    assert queue(sim, "work").depth == 40 and queue(sim, "audit").depth == 40
    text = sim.apply(TimelineEvent(at=0, action="restart_broker"))
    work = queue(sim, "work")
    assert work.depth == 20 and all(m.persistent for m in work.ready)
    assert work.stats.lost == 20
    assert queue(sim, "audit").depth == 0  # redeclared by the application, empty
    assert "1 non-durable queue(s) and 60 message(s) lost" in text
    sim.run_for(1)
    assert queue(sim, "audit").depth == 20, "bindings are back: the audit queue fills again"
    assert sim.accounting_problems() == []


TIMELINE_FILE = """{
  "exchanges": [{"name": "orders", "vhost": "/", "type": "topic", "durable": true, "auto_delete": false,
                 "internal": false, "arguments": {}}],
  "queues": [{"name": "work", "vhost": "/", "durable": true, "auto_delete": false, "arguments": {}}],
  "bindings": [{"source": "orders", "vhost": "/", "destination": "work", "destination_type": "queue",
                "routing_key": "#", "arguments": {}}],
  "queuecraft": {
    "format": 1,
    "producers": [{"name": "shop", "exchange": "orders", "routing_key": "a", "rate": 10}],
    "consumers": [{"name": "worker", "queue": "work", "prefetch": 1, "work_ms": 50}],
    "timeline": [
      {"at": 10, "action": "kill", "consumer": "worker"},
      {"at": 20, "action": "restart", "consumer": "worker"},
      {"at": 5, "action": "burst", "producer": "shop", "count": 100}
    ]
  }
}"""


def test_a_timeline_in_the_file_plays_by_itself_and_replays_the_same() -> None:
    topology = topology_file.loads(TIMELINE_FILE)
    assert [e.action for e in topology.timeline] == ["kill", "restart", "burst"]
    again = topology_file.loads(topology_file.dumps(topology))
    assert sorted(again.timeline, key=lambda e: e.at) == sorted(topology.timeline, key=lambda e: e.at)

    def run() -> tuple[list[tuple[float, str]], int]:
        sim = Simulation(topology, seed=1)
        sim.run_for(9.9)
        assert queue(sim, "work").depth > 50  # the burst at 5 s is waiting
        sim.run_for(5)
        assert queue(sim, "work").unacked == 0  # killed at 10 s
        sim.run_for(30)
        return sim.fault_log, queue(sim, "work").stats.acked

    first = run()
    assert [(t, text) for t, text in first[0]] == [
        (5.0, "burst of 100 messages from shop"),
        (10.0, "kill consumer worker"),
        (20.0, "restart consumer worker"),
    ]
    assert run() == first


@pytest.mark.parametrize(
    ("entry", "where", "problem"),
    [
        ('{"at": 1, "action": "explode"}', "$.queuecraft.timeline[0].action", "expected one of"),
        (
            '{"at": 1, "action": "kill", "consumer": "nobody"}',
            "$.queuecraft.timeline[0].consumer",
            "no consumer named 'nobody'",
        ),
        (
            '{"at": -1, "action": "kill", "consumer": "worker"}',
            "$.queuecraft.timeline[0].at",
            "expected a number from 0",
        ),
        ('{"at": 1, "action": "kill", "producer": "shop"}', "$.queuecraft.timeline[0].producer", "unknown field"),
        ('{"at": 1, "action": "slow", "consumer": "worker"}', "$.queuecraft.timeline[0]", 'missing field "factor"'),
        ('{"at": 1, "action": "burst", "producer": "shop", "count": 0}', "$.queuecraft.timeline[0].count", "from 1"),
        (
            '{"at": 1, "action": "unbind", "exchange": "orders", "destination": "gone"}',
            "$.queuecraft.timeline[0].destination",
            "no queue named 'gone'",
        ),
    ],
)
def test_a_bad_timeline_entry_is_refused_with_its_place(entry: str, where: str, problem: str) -> None:
    text = TIMELINE_FILE.replace('{"at": 10, "action": "kill", "consumer": "worker"}', entry)
    with pytest.raises(TopologyFileError) as caught:
        topology_file.loads(text, "lesson.json")
    assert caught.value.where == where
    assert problem in caught.value.problem


def test_step_runs_one_event_that_moves_a_message() -> None:
    sim = Simulation(orders(work_ms=50))
    kinds = [e.kind for e in sim.step()]
    assert kinds[0] == "published" and "routed" in kinds and "delivered" in kinds
    before = sim.clock.now
    events = sim.step()
    assert events and sim.clock.now >= before
    assert all(e.time == sim.clock.now for e in events)


def test_following_a_message_ends_when_every_copy_is_settled() -> None:
    sim = Simulation(orders(work_ms=300))
    sim.run_for(0.5)
    follow = sim.follow_next()
    assert not follow.done
    assert sim.run_until_over(follow)
    kinds = [e.kind for e in follow.events]
    assert kinds[0] == "published"
    assert kinds.count("acked") == 2  # the work copy and the audit copy
    assert whereabouts(follow.events) == {}


def test_a_followed_message_that_dead_letters_is_followed_into_the_dead_letter_queue() -> None:
    topology = orders(work_ms=10, failure_rate=1.0, on_failure="dead-letter")
    topology.consumers.append(Consumer("undertaker", "dead", work_ms=10))
    sim = Simulation(topology)
    follow = sim.follow_next()
    sim.step()
    events = follow.events
    assert whereabouts(events) == {
        "queue:/:work": ("unacked", "consumer:/:worker"),
        "queue:/:audit": ("unacked", "consumer:/:auditor"),
    }
    assert sim.run_until_over(follow)
    kinds = [e.kind for e in follow.events]
    assert "dead_lettered" in kinds
    assert any(e.kind == "acked" and e.target == "queue:/:dead" for e in follow.events)


def test_renaming_or_removing_a_node_carries_its_timeline_steps_along() -> None:
    from engine.edits import remove_nodes, rename_node

    topology = topology_file.loads(TIMELINE_FILE)
    rename_node(topology, "consumer:/:worker", "picker")
    assert [e.node for e in topology.timeline if e.action in ("kill", "restart")] == ["picker", "picker"]
    remove_nodes(topology, ["consumer:/:picker"])
    assert [e.action for e in topology.timeline] == ["burst"]
    topology_file.loads(topology_file.dumps(topology))  # still a file that opens


def test_a_step_added_mid_run_plays_when_its_time_comes() -> None:
    import copy

    topology = orders(work_ms=1)
    sim = Simulation(topology)
    sim.run_for(5)
    later = copy.deepcopy(topology)
    later.timeline.append(TimelineEvent(at=8, action="stop", node="shop"))
    later.timeline.append(TimelineEvent(at=5, action="burst", node="shop", count=10))  # this moment: as played
    sim.sync(later)
    sim.run_for(5)
    assert [text for _, text in sim.fault_log] == ["stop producer shop"]
