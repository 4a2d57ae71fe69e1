"""Editing operations on the model: what a person does on the canvas, refused with a reason when it makes no sense."""

from __future__ import annotations

import copy

import pytest

from engine.analysis import find_problems
from engine.edits import (
    EditRefused,
    add_node,
    connect,
    copy_fragment,
    edge_ids,
    field_problem,
    layout_all,
    paste_fragment,
    relations_between,
    remove_edges,
    remove_nodes,
    rename_node,
    update_binding,
    update_node,
)
from engine.model import Topology
from engine.sim import Simulation
from engine.topology_file import dumps, loads


def built() -> tuple[Topology, dict[str, str]]:
    t = Topology()
    ids = {
        "shop": add_node(t, "producer", "web-shop"),
        "orders": add_node(t, "exchange", "orders", exchange_type="topic"),
        "payments": add_node(t, "queue", "payments"),
        "worker": add_node(t, "consumer", "payment-worker"),
    }
    connect(t, ids["shop"], ids["orders"])
    connect(t, ids["orders"], ids["payments"])
    connect(t, ids["payments"], ids["worker"])
    return t, ids


def test_a_topology_built_by_edits_runs_and_saves() -> None:
    t, ids = built()
    update_node(t, ids["shop"], routing_key="order.{created|paid}", rate=5.0)
    edge = next(e for e in edge_ids(t) if e.startswith("binding:"))
    update_binding(t, edge, "order.created")
    sim = Simulation(t)
    sim.run_for(10)
    report = sim.report()
    assert report["consumers"][0]["acked"] == report["queues"][0]["enqueued"] > 10
    assert loads(dumps(t)) == t


@pytest.mark.parametrize(
    ("source", "target", "reason"),
    [
        ("worker", "orders", "a consumer only receives"),
        ("orders", "shop", "nothing connects into a producer"),
        ("orders", "worker", "consumers read from queues"),
        ("payments", "payments", "cannot connect to itself"),
        ("shop", "worker", "a producer publishes to an exchange"),
    ],
)
def test_connections_that_make_no_sense_are_refused_and_change_nothing(source: str, target: str, reason: str) -> None:
    t, ids = built()
    before = copy.deepcopy(t)
    with pytest.raises(EditRefused, match=reason):
        connect(t, ids[source], ids[target])
    assert t == before


def test_the_same_binding_twice_is_refused() -> None:
    t, ids = built()
    with pytest.raises(EditRefused, match="already"):
        connect(t, ids["orders"], ids["payments"])


def test_exchange_to_exchange_offers_binding_or_alternate() -> None:
    t, ids = built()
    spare = add_node(t, "exchange", "spare", exchange_type="fanout")
    assert relations_between(t, ids["orders"], spare) == ["binding", "alternate"]
    connect(t, ids["orders"], spare, "alternate")
    assert t.exchange("/", "orders").arguments == {"alternate-exchange": "spare"}
    dead = add_node(t, "exchange", "dlx", exchange_type="fanout")
    connect(t, ids["payments"], dead)
    assert t.queue("/", "payments").arguments["x-dead-letter-exchange"] == "dlx"


def test_a_producer_dropped_on_a_queue_publishes_to_it_by_name() -> None:
    t, ids = built()
    direct = add_node(t, "producer", "direct")
    connect(t, direct, ids["payments"])
    producer = next(p for p in t.producers if p.name == "direct")
    assert (producer.exchange, producer.routing_key) == ("", "payments")


def test_removing_a_node_removes_what_depends_on_it() -> None:
    t, ids = built()
    remove_nodes(t, [ids["orders"]])
    assert t.bindings == []
    assert t.producers[0].exchange is None
    assert ids["orders"] not in t.layout
    remove_nodes(t, [ids["payments"]])
    assert t.consumers[0].queue is None


def test_removing_edges() -> None:
    t, ids = built()
    remove_edges(t, edge_ids(t))
    assert t.bindings == [] and t.producers[0].exchange is None and t.consumers[0].queue is None


def test_renaming_updates_every_reference() -> None:
    t, ids = built()
    dlx = add_node(t, "exchange", "dlx", exchange_type="fanout")
    connect(t, ids["payments"], dlx)
    new = rename_node(t, ids["orders"], "order-events")
    assert new == "exchange:/:order-events"
    assert t.producers[0].exchange == "order-events"
    assert t.bindings[0].source == "order-events"
    assert new in t.layout and ids["orders"] not in t.layout
    rename_node(t, ids["payments"], "billing")
    assert t.consumers[0].queue == "billing" and t.bindings[0].destination == "billing"
    rename_node(t, dlx, "dead")
    assert t.queue("/", "billing").arguments["x-dead-letter-exchange"] == "dead"
    with pytest.raises(EditRefused, match="already a queue"):
        add_node(t, "queue", "billing")
    with pytest.raises(EditRefused, match="reserved"):
        rename_node(t, new, "amq.mine")


def test_fields_are_checked_as_typed() -> None:
    t, ids = built()
    assert field_problem(t, ids["shop"], "rate", -1) == "from 0 to 1,000,000"
    assert field_problem(t, ids["shop"], "routing_key", "order.{a|b") == "'{' is not closed"
    assert field_problem(t, ids["payments"], "max_length", "ten") is not None
    assert field_problem(t, ids["payments"], "dead_letter_routing_key", "k") is not None  # needs a dead-letter exchange
    assert field_problem(t, ids["worker"], "failure_rate", 1.5) == "from 0 to 1"
    assert field_problem(t, ids["payments"], "max_length", 100) is None
    with pytest.raises(EditRefused):
        update_node(t, ids["payments"], queue_type="quorum", durable=False)
    assert t.queue("/", "payments").arguments == {}


def test_copy_and_paste_gives_fresh_names_and_keeps_relations() -> None:
    t, ids = built()
    text = copy_fragment(t, [ids["orders"], ids["payments"], ids["worker"]])
    added = paste_fragment(t, text)
    assert len(added) == 3
    assert {x.name for x in t.exchanges} == {"orders", "orders-1"}
    copy_binding = next(b for b in t.bindings if b.source == "orders-1")
    assert copy_binding.destination == "payments-1"
    assert next(c for c in t.consumers if c.name == "payment-worker-1").queue == "payments-1"
    with pytest.raises(EditRefused):
        paste_fragment(t, "not json")


def test_auto_layout_places_every_node() -> None:
    t, _ = built()
    t.layout.clear()
    layout_all(t)
    assert set(t.layout) == set(t.node_ids())
    xs = [
        t.layout[n][0]
        for n in ("producer:/:web-shop", "exchange:/:orders", "queue:/:payments", "consumer:/:payment-worker")
    ]
    assert xs == sorted(xs)


def test_problems_name_their_node() -> None:
    t, ids = built()
    update_node(t, ids["shop"], routing_key="order.created")
    edge = next(e for e in edge_ids(t) if e.startswith("binding:"))
    update_binding(t, edge, "invoice.*")
    lonely = add_node(t, "queue", "lonely")
    idle = add_node(t, "consumer", "idle")
    dlx = add_node(t, "exchange", "dlx", exchange_type="fanout")
    connect(t, ids["payments"], dlx)
    connect(t, dlx, ids["payments"])
    found = {(p.node_id, p.code) for p in find_problems(t)}
    assert (lonely, "queue-unreached") in found
    assert (idle, "consumer-unconnected") in found
    assert (ids["payments"], "binding-never-matches") in found
    assert (ids["orders"], "unroutable-keys") in found
    assert any(code == "dead-letter-cycle" for _, code in found)
    producerless = add_node(t, "producer", "p2")
    assert (producerless, "producer-unconnected") in {(p.node_id, p.code) for p in find_problems(t)}


def test_problems_of_a_headers_exchange_speak_of_headers() -> None:
    from engine.model import Binding, Consumer, Exchange, Producer, Queue

    t = Topology(
        exchanges=[Exchange("by-region", type="headers")],
        queues=[Queue("eu")],
        bindings=[Binding("by-region", "eu", arguments={"x-match": "all", "region": "eu"})],
        producers=[Producer("shop", "by-region", headers={"region": "us"})],
        consumers=[Consumer("worker", "eu")],
    )
    texts = {p.code: p.text for p in find_problems(t)}
    assert texts["unroutable-keys"] == (
        "no binding takes messages with headers {region: 'us'}: those messages are unroutable"
    )
    assert texts["binding-never-matches"] == (
        "the binding from 'by-region' (x-match all: region='eu') matches nothing the producers send there"
        " ({region: 'us'})"
    )


# -- what a breaker found: edits that must not leave a file that cannot be reopened -----------------


def reopens(t: Topology) -> Topology:
    return loads(dumps(t))


def test_pasting_several_nodes_gives_each_a_name_of_its_own() -> None:
    t = Topology()
    add_node(t, "queue", "q")
    add_node(t, "queue", "q-1")
    added = paste_fragment(t, copy_fragment(t, ["queue:/:q", "queue:/:q-1"]))
    names = [q.name for q in t.queues]
    assert len(names) == len(set(names)) == 4 and len(added) == 2
    reopens(t)


@pytest.mark.parametrize(
    "clipboard",
    [
        '{"format":"queuecraft-fragment-1","queues":[{"name":5}]}',
        '{"format":"queuecraft-fragment-1","queues":[{"name":"q","vhost":null}]}',
        '{"format":"queuecraft-fragment-1","queues":[{"name":"q","arguments":[1]}]}',
        '{"format":"queuecraft-fragment-1","queues":[{"name":"q"}],"layout":{"queue:/:q":[1e400,1]}}',
        "[" * 100_000,
        "just some text",
    ],
)
def test_pasting_what_is_not_a_fragment_is_refused(clipboard: str) -> None:
    t, _ = built()
    before = copy.deepcopy(t)
    with pytest.raises(EditRefused, match="no Queuecraft nodes"):
        paste_fragment(t, clipboard)
    assert t == before


def test_header_values_must_be_numbers_a_file_can_hold() -> None:
    t, ids = built()
    with pytest.raises(EditRefused, match="finite"):
        update_node(t, ids["shop"], headers={"a": float("nan")})
    x = add_node(t, "exchange", "by-region", exchange_type="headers")
    q = add_node(t, "queue", "eu")
    edge = connect(t, x, q)
    with pytest.raises(EditRefused, match="finite"):
        update_binding(t, edge, "", {"x-match": "all", "region": float("inf")})
    reopens(t)


def test_an_exchange_a_producer_publishes_to_cannot_turn_internal() -> None:
    t, ids = built()
    with pytest.raises(EditRefused, match="web-shop publishes to it"):
        update_node(t, ids["orders"], internal=True)


def test_a_stream_cannot_get_a_dead_letter_exchange_by_dragging_either() -> None:
    t, ids = built()
    update_node(t, ids["payments"], queue_type="stream")
    dlx = add_node(t, "exchange", "dlx", exchange_type="fanout")
    with pytest.raises(EditRefused, match="x-dead-letter-exchange"):
        connect(t, ids["payments"], dlx)
    reopens(t)


def test_removing_the_dead_letter_exchange_takes_its_routing_key_along() -> None:
    t, ids = built()
    dlx = add_node(t, "exchange", "dlx", exchange_type="fanout")
    connect(t, ids["payments"], dlx)
    update_node(t, ids["payments"], dead_letter_routing_key="dead")
    update_node(t, ids["payments"], dead_letter_exchange=None)
    queue = t.queue("/", "payments")
    assert queue is not None and not any(k.startswith("x-dead-letter") for k in queue.arguments)


def test_a_routing_key_template_gives_keys_of_at_most_255_bytes() -> None:
    t, ids = built()
    with pytest.raises(EditRefused, match="255 bytes"):
        update_node(t, ids["shop"], routing_key="k" * 300)
    assert field_problem(t, ids["shop"], "routing_key", "a.{b|" + "c" * 260 + "}")


def test_bindings_whose_names_hold_colons_keep_ids_of_their_own() -> None:
    t = Topology()
    x = add_node(t, "exchange", "x")
    q1 = add_node(t, "queue", "q")
    q2 = add_node(t, "queue", "q:k")
    first = update_binding(t, connect(t, x, q2), "")
    second = update_binding(t, connect(t, x, q1), "k:")
    assert first != second
    remove_edges(t, [second])
    assert [(b.destination, b.routing_key) for b in t.bindings] == [("q:k", "")]


def test_a_built_in_exchange_is_not_offered_an_alternate() -> None:
    t = Topology()
    x = add_node(t, "exchange", "orders")
    assert relations_between(t, "exchange:/:amq.topic", x) == ["binding"]


def test_a_one_vhost_export_that_gains_a_vhost_saves_as_a_whole_broker() -> None:
    from pathlib import Path

    from engine.topology_file import load

    t = load(Path(__file__).resolve().parents[1] / "data" / "rabbitmq-3.10-vhost-export.json")
    assert t.shape == "vhost"
    add_node(t, "queue", "elsewhere", vhost="other")
    again = reopens(t)
    assert {q.vhost for q in again.queues} == {q.vhost for q in t.queues}


def test_problems_are_found_quickly_however_wild_the_keys() -> None:
    t, ids = built()
    update_binding(t, next(e for e in edge_ids(t) if e.startswith("binding:")), "#." * 12 + "z")
    update_node(t, ids["shop"], routing_key="a." * 40 + "b")
    codes = {p.code for p in find_problems(t)}  # exponential backtracking would never finish
    assert "unroutable-keys" in codes
    update_node(t, ids["shop"], routing_key="{0|1|2|3|4|5|6|7|8|9}" * 7)
    assert find_problems(t) is not None


def test_a_queue_nobody_consumes_only_grows_unless_its_arguments_or_a_policy_bound_it() -> None:
    from engine.model import Binding, Exchange, Policy, Producer, Queue

    topology = Topology(
        exchanges=[Exchange("in", type="fanout")],
        queues=[Queue("pdf"), Queue("csv"), Queue("log", arguments={"x-max-length": 10})],
        bindings=[Binding("in", "pdf"), Binding("in", "csv"), Binding("in", "log")],
        producers=[Producer("web", "in")],
        policies=[Policy("ttl", "^pdf$", apply_to="queues", definition={"message-ttl": 60000})],
    )
    said = {p.node_id: p.text for p in find_problems(topology) if p.code == "queue-unconsumed"}
    assert said["queue:/:csv"] == "no consumer: it only grows"
    assert said["queue:/:pdf"] == said["queue:/:log"] == "no consumer: messages wait until they expire or are dropped"


def test_nodes_connected_to_nothing_are_placed_in_a_block_under_the_drawing_not_one_long_column() -> None:
    from engine.layout import COLUMN_GAP, ROW_GAP, complete_layout
    from engine.model import Binding, Exchange, Producer, Queue

    topology = Topology(
        exchanges=[Exchange("in", type="fanout")],
        queues=[Queue("work")],
        bindings=[Binding("in", "work")],
        producers=[Producer("web", "in")],
    )
    complete_layout(topology)
    bottom = max(y for _, y in topology.layout.values())
    topology.queues += [Queue(f"loose-{i}") for i in range(30)]
    placed = complete_layout(topology)
    assert len(placed) == 30
    spots = [topology.layout[nid] for nid in placed]
    assert len(set(spots)) == 30  # no two on one spot
    assert all(y > bottom for _, y in spots)  # under what was drawn
    rows = {y for _, y in spots}
    assert len(rows) <= 4 and max(y for _, y in spots) - min(y for _, y in spots) <= 3 * ROW_GAP
    assert max(x for x, _ in spots) - min(x for x, _ in spots) >= 6 * COLUMN_GAP
