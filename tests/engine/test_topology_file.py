"""Topology files: RabbitMQ exports open as they are, round trips keep everything, bad files say where."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.model import Topology
from engine.sim import Simulation
from engine.topology_file import TopologyFileError, dumps, load, loads, save

DATA = Path(__file__).resolve().parents[1] / "data"
EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "topologies").glob("*.json"))
CLUSTER_EXPORT = DATA / "rabbitmq-3.10-export.json"
VHOST_EXPORT = DATA / "rabbitmq-3.10-vhost-export.json"


def test_cluster_wide_rabbitmq_export_opens_as_it_is() -> None:
    topology = load(CLUSTER_EXPORT)
    assert topology.shape == "cluster"
    assert sorted(v.name for v in topology.vhosts) == ["/", "shop"]
    assert {x.name for x in topology.exchanges} == {"orders", "orders.dlx", "events"}
    assert {q.name for q in topology.queues} == {"payments", "shipping", "dead-letters"}
    assert len(topology.bindings) == 5
    assert {p.name for p in topology.policies} == {"limit-payments", "ha-all"}
    # Built-in exchanges that bindings use are drawn too.
    assert "exchange:shop:amq.topic" in topology.node_ids()
    # No layout in the file: one is computed for every node.
    assert set(topology.layout) == set(topology.node_ids())


def test_one_vhost_export_opens_in_its_vhost() -> None:
    topology = load(VHOST_EXPORT)
    assert topology.shape == "vhost"
    assert {q.vhost for q in topology.queues} == {"shop"}
    assert {x.name for x in topology.exchanges} == {"orders", "orders.dlx", "events"}


@pytest.mark.parametrize("path", [CLUSTER_EXPORT, VHOST_EXPORT, *EXAMPLES], ids=lambda p: p.name)
def test_load_save_load_is_identical(path: Path, tmp_path: Path) -> None:
    first = load(path)
    saved = tmp_path / "saved.json"
    save(first, saved)
    second = load(saved)
    assert second == first
    assert dumps(second) == saved.read_text(encoding="utf-8")


def test_keys_queuecraft_does_not_use_are_kept(tmp_path: Path) -> None:
    original = json.loads(CLUSTER_EXPORT.read_text())
    original["queues"][0]["x-custom"] = {"kept": True}
    original["exchanges"][0]["owner-team"] = "payments"
    original["some_future_section"] = [1, 2, 3]
    source = tmp_path / "in.json"
    source.write_text(json.dumps(original))
    saved = tmp_path / "out.json"
    save(load(source), saved)
    written = json.loads(saved.read_text())
    for key in (
        "users",
        "permissions",
        "topic_permissions",
        "parameters",
        "global_parameters",
        "rabbit_version",
        "some_future_section",
    ):
        assert written[key] == original[key]
    assert written["queues"][0]["x-custom"] == {"kept": True}
    assert written["exchanges"][0]["owner-team"] == "payments"
    assert written["queues"][0]["type"] == original["queues"][0]["type"]
    assert list(written)[: len(original)] == list(original)


def test_one_vhost_export_is_saved_in_its_own_shape(tmp_path: Path) -> None:
    saved = tmp_path / "out.json"
    save(load(VHOST_EXPORT), saved)
    written = json.loads(saved.read_text())
    assert "vhosts" not in written
    assert all("vhost" not in q for q in written["queues"])
    assert all(p["vhost"] == "shop" for p in written["policies"])


def test_internal_exchanges_left_out_of_an_export_are_drawn_not_refused(tmp_path: Path) -> None:
    # RabbitMQ 3.10 exports bindings of internal exchanges but not the exchanges.
    path = DATA / "rabbitmq-3.10-internal-exchange-export.json"
    topology = load(path)
    assert "audit.in" not in {x.name for x in topology.exchanges}
    assert topology.undeclared_exchange_ids() == ["exchange:qc-probe:audit.in"]
    assert "exchange:qc-probe:audit.in" in topology.node_ids()
    saved = tmp_path / "saved.json"
    save(topology, saved)
    assert [x["name"] for x in json.loads(saved.read_text())["exchanges"]] == ["events"]
    sim = Simulation(topology)
    channel = sim.broker.connect("test", "qc-probe").channel()
    channel.basic_publish("events", "a.b", b"m")
    unknown = sim.broker.lookup_exchange("qc-probe", "audit.in")
    assert (unknown.stats.received, unknown.simulated) == (1, False)


def test_rabbitmq_export_runs_on_the_engine() -> None:
    sim = Simulation(load(CLUSTER_EXPORT))
    sim.run_for(1)
    channel = sim.broker.connect("test", "shop").channel()
    channel.basic_publish("orders", "order.created", b"{}")
    assert sim.broker.lookup_queue("shop", "payments").depth == 1
    payments = sim.broker.lookup_queue("shop", "payments")
    assert payments.max_length == 5000  # from the policy
    assert payments.dead_letter_exchange == "orders.dlx"


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "topology.json"
    target.write_text("old contents")
    save(Topology(), target)
    assert json.loads(target.read_text())["queuecraft"]["format"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["topology.json"]


def test_failed_save_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "topology.json"
    target.write_text("old contents")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("engine.topology_file.os.replace", broken_replace)
    with pytest.raises(OSError):
        save(Topology(), target)
    assert target.read_text() == "old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["topology.json"]


GOOD = {
    "vhosts": [{"name": "/"}],
    "exchanges": [
        {
            "name": "orders",
            "vhost": "/",
            "type": "topic",
            "durable": True,
            "auto_delete": False,
            "internal": False,
            "arguments": {},
        }
    ],
    "queues": [{"name": "payments", "vhost": "/", "durable": True, "auto_delete": False, "arguments": {}}],
    "bindings": [
        {
            "source": "orders",
            "vhost": "/",
            "destination": "payments",
            "destination_type": "queue",
            "routing_key": "order.*",
            "arguments": {},
        }
    ],
    "queuecraft": {
        "format": 1,
        "producers": [{"name": "shop", "exchange": "orders", "routing_key": "order.created", "rate": 5}],
        "consumers": [{"name": "worker", "queue": "payments", "prefetch": 10, "work_ms": 40}],
    },
}


def mutated(change) -> str:  # type: ignore[no-untyped-def]
    data = json.loads(json.dumps(GOOD))
    change(data)
    return json.dumps(data)


def test_the_good_file_loads() -> None:
    assert len(loads(json.dumps(GOOD), "good.json").producers) == 1


BAD_FILES = [
    ("not json", lambda: '{"queues": [', "bad.json: line 1, column 13: not valid JSON"),
    ("top is a list", lambda: "[]", "bad.json: $: expected an object, got a list"),
    (
        "queues not a list",
        lambda: mutated(lambda d: d.update(queues={})),
        "bad.json: $.queues: expected a list, got an object",
    ),
    (
        "queue without name",
        lambda: mutated(lambda d: d["queues"][0].pop("name")),
        'bad.json: $.queues[0]: missing field "name" (a string)',
    ),
    (
        "durable not a boolean",
        lambda: mutated(lambda d: d["queues"][0].update(durable="yes")),
        'bad.json: $.queues[0].durable: expected true or false, got "yes"',
    ),
    (
        "max length not a number",
        lambda: mutated(lambda d: d["queues"][0]["arguments"].update({"x-max-length": "ten"})),
        'bad.json: $.queues[0].arguments["x-max-length"]: expected a whole number of messages from 0 up, got "ten"',
    ),
    (
        "bad overflow",
        lambda: mutated(lambda d: d["queues"][0]["arguments"].update({"x-overflow": "drop-tail"})),
        'bad.json: $.queues[0].arguments["x-overflow"]: expected one of "drop-head", "reject-publish", "reject-publish-dlx", got "drop-tail"',
    ),
    (
        "binding to a missing queue",
        lambda: mutated(lambda d: d["bindings"][0].update(destination="refunds")),
        "bad.json: $.bindings[0].destination: no queue named 'refunds' in vhost '/' is declared in $.queues",
    ),
    (
        "duplicate queue",
        lambda: mutated(lambda d: d["queues"].append(dict(d["queues"][0]))),
        "bad.json: $.queues[1].name: queue 'payments' in vhost '/' is already declared at $.queues[0]",
    ),
    (
        "declaring the default exchange",
        lambda: mutated(lambda d: d["exchanges"].append({**d["exchanges"][0], "name": ""})),
        "bad.json: $.exchanges[1].name: '' is built into every vhost and cannot be declared",
    ),
    (
        "bad x-match",
        lambda: mutated(
            lambda d: (
                d["exchanges"].append({"name": "events", "vhost": "/", "type": "headers"}),
                d["bindings"].append(
                    {
                        "source": "events",
                        "vhost": "/",
                        "destination": "payments",
                        "destination_type": "queue",
                        "arguments": {"x-match": "most"},
                    }
                ),
            )
        ),
        'bad.json: $.bindings[1].arguments["x-match"]: expected one of "all", "any", "all-with-x", "any-with-x", got "most"',
    ),
    (
        "bad policy pattern",
        lambda: mutated(lambda d: d.update(policies=[{"vhost": "/", "name": "p", "pattern": "([", "definition": {}}])),
        "bad.json: $.policies[0].pattern: expected a regular expression",
    ),
    (
        "newer format",
        lambda: mutated(lambda d: d["queuecraft"].update(format=9)),
        "bad.json: $.queuecraft.format: expected format 1 or older",
    ),
    (
        "negative rate",
        lambda: mutated(lambda d: d["queuecraft"]["producers"][0].update(rate=-1)),
        "bad.json: $.queuecraft.producers[0].rate: expected a number from 0 to 1,000,000, got -1",
    ),
    (
        "producer to a missing exchange",
        lambda: mutated(lambda d: d["queuecraft"]["producers"][0].update(exchange="ordres")),
        "bad.json: $.queuecraft.producers[0].exchange: no exchange named 'ordres' in vhost '/' is declared in $.exchanges",
    ),
    (
        "unclosed template",
        lambda: mutated(lambda d: d["queuecraft"]["producers"][0].update(routing_key="order.{created|paid")),
        "bad.json: $.queuecraft.producers[0].routing_key: expected a routing-key template; '{' is not closed",
    ),
    (
        "consumer of a missing queue",
        lambda: mutated(lambda d: d["queuecraft"]["consumers"][0].update(queue="paymnets")),
        "bad.json: $.queuecraft.consumers[0].queue: no queue named 'paymnets' in vhost '/' is declared in $.queues",
    ),
    (
        "bad ack mode",
        lambda: mutated(lambda d: d["queuecraft"]["consumers"][0].update(ack_mode="sometimes")),
        'bad.json: $.queuecraft.consumers[0].ack_mode: expected one of "manual", "auto", got "sometimes"',
    ),
    (
        "prefetch too large",
        lambda: mutated(lambda d: d["queuecraft"]["consumers"][0].update(prefetch=70000)),
        "bad.json: $.queuecraft.consumers[0].prefetch: expected a whole number from 0 to 65535, got 70000",
    ),
    (
        "bad layout position",
        lambda: mutated(lambda d: d["queuecraft"].update(layout={"queue:/:payments": [1]})),
        'bad.json: $.queuecraft.layout["queue:/:payments"]: expected a position [x, y], got a list',
    ),
    (
        "queue missing its vhost in a cluster export",
        lambda: mutated(lambda d: d["queues"][0].pop("vhost")),
        'bad.json: $.queues[0]: missing field "vhost" (a string)',
    ),
]


@pytest.mark.parametrize(("text", "message"), [(t, m) for _, t, m in BAD_FILES], ids=[n for n, _, _ in BAD_FILES])
def test_bad_file_gets_one_clear_error(text, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TopologyFileError) as raised:
        loads(text(), "bad.json")
    assert str(raised.value).startswith(message)


def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(TopologyFileError, match="missing.json: file: cannot be read"):
        load(tmp_path / "missing.json")
    binary = tmp_path / "picture.json"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(TopologyFileError, match="picture.json: byte 0: expected UTF-8 text"):
        load(binary)


MORE_BAD_FILES = [
    (
        '{"queuecraft": {"format": 1, "layout": {"queue:/:q": [NaN, 0]}}}',
        "bad.json: line 1, column 55: NaN is not a number JSON allows",
    ),
    (
        '{"queues": [{"name": "q", "arguments": {"x-max-length": Infinity}}]}',
        "bad.json: line 1, column 57: Infinity is not a number JSON allows",
    ),
    (
        '{"queues": [{"name": "q", "arguments": {"x-max-length": 1' + "0" * 5000 + "}}]}",
        "bad.json: line 1, column 57: a number too long to read",
    ),
    ("[" * 50000 + "]" * 50000, "bad.json: JSON text: nested too deeply to be a topology"),
    (
        json.dumps({**GOOD, "queues": [{"name": "payments", "vhost": "/", "arguments": {"x-message-ttl": 10**400}}]}),
        'bad.json: $.queues[0].arguments["x-message-ttl"]: expected a whole number of milliseconds from 0 to 4294967295',
    ),
    (
        json.dumps(
            {**GOOD, "queuecraft": {"format": 1, "producers": [{"name": "p", "exchange": "orders", "rate": 1e300}]}}
        ),
        "bad.json: $.queuecraft.producers[0].rate: expected a number from 0 to 1,000,000",
    ),
    (
        json.dumps({**GOOD, "exchanges": [{"name": "orders", "vhost": "/", "type": "bogus"}]}),
        "bad.json: $.exchanges[0].type: expected direct, fanout, topic, headers or a plugin's type (x-...)",
    ),
    (
        json.dumps(
            {
                **GOOD,
                "exchanges": [{"name": "orders", "vhost": "/", "type": "topic", "internal": True}],
            }
        ),
        "bad.json: $.queuecraft.producers[0].exchange: 'orders' is an internal exchange; RabbitMQ refuses publishes to it (403)",
    ),
    (
        json.dumps(
            {
                **GOOD,
                "queuecraft": {
                    "format": 1,
                    "consumers": [{"name": "w", "queue": "payments", "prefech": 50}],
                },
            }
        ),
        'bad.json: $.queuecraft.consumers[0].prefech: unknown field (did you mean "prefetch"?)',
    ),
    (
        json.dumps({**GOOD, "policies": [{"vhost": "/", "name": "p", "pattern": "^(a+)+$", "definition": {}}]}),
        "bad.json: $.policies[0].pattern: pattern '^(a+)+$' repeats a repeated group",
    ),
    (
        json.dumps({**GOOD, "queues": [{"name": "payments", "vhost": "/", "arguments": {"x-delivery-limit": 3}}]}),
        'bad.json: $.queues[0].arguments["x-delivery-limit"]: expected no x-delivery-limit on a classic queue',
    ),
    (
        json.dumps(
            {
                **GOOD,
                "queues": [
                    {"name": "payments", "vhost": "/", "durable": False, "arguments": {"x-queue-type": "quorum"}}
                ],
            }
        ),
        "bad.json: $.queues[0].durable: expected true: a quorum queue is durable and not auto-delete",
    ),
]


@pytest.mark.parametrize(("text", "message"), MORE_BAD_FILES, ids=[m.split(": ", 2)[1][:40] for _, m in MORE_BAD_FILES])
def test_hostile_files_get_a_clear_error_not_a_traceback(text: str, message: str) -> None:
    with pytest.raises(TopologyFileError) as raised:
        loads(text, "bad.json")
    assert str(raised.value).startswith(message)


def test_vhost_names_with_colons_keep_their_nodes_apart() -> None:
    text = json.dumps(
        {
            "vhosts": [{"name": "a:b"}, {"name": "b"}],
            "queues": [{"name": "a", "vhost": "b:c"}, {"name": "c:a", "vhost": "b"}],
            "queuecraft": {
                "format": 1,
                "producers": [{"name": "p", "vhost": "a:b", "exchange": "", "routing_key": "q"}],
            },
        }
    )
    topology = loads(text, "colons.json")
    ids = topology.node_ids()
    assert len(ids) == len(set(ids)) == 4
    for nid in ids:
        assert nid in topology.layout
    sim = Simulation(topology)
    sim.run_for(2)
    assert sim.report()["producers"][0]["published"] == 2


def test_x_match_is_only_checked_on_headers_exchanges() -> None:
    data = json.loads(json.dumps(GOOD))
    data["bindings"][0]["arguments"] = {"x-match": "anything"}  # a topic exchange: RabbitMQ ignores it
    assert loads(json.dumps(data), "ok.json").bindings[0].arguments == {"x-match": "anything"}
