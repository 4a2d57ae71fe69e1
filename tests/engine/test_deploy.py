"""queuecraft deploy against the RabbitMQ here: what a topology declares arrives, policies go
through the management API (or are listed as not applied), teardown removes exactly it, undoing
one deploy keeps what was there before it, and a deploy the broker refuses part-way leaves
nothing of itself behind."""

from __future__ import annotations

import re
import urllib.parse
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pika
import pytest

from engine.deploy import DeployError, NoManagementAPI, _management_base, deploy, main, undeploy
from engine.model import Binding, Exchange, Policy, Queue, Topology
from tests.conformance.drivers import RabbitAdmin

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def vhost() -> Iterator[str]:
    admin = RabbitAdmin()
    name = f"qc-deploy-{uuid.uuid4().hex[:8]}"
    admin.add_vhost(name)
    yield name
    admin.delete_vhost(name)


def url(vhost: str) -> str:
    return f"amqp://guest:guest@127.0.0.1:5672/{vhost}"


def topology() -> Topology:
    return Topology(
        exchanges=[Exchange("orders", type="topic"), Exchange("audit", type="fanout"), Exchange("h", type="headers")],
        queues=[
            Queue("payments", arguments={"x-message-ttl": 60000}),
            Queue("audit-log", arguments={"x-queue-type": "quorum"}),
            Queue("eu"),
        ],
        bindings=[
            Binding("orders", "payments", routing_key="order.created"),
            Binding("orders", "audit", destination_type="exchange", routing_key="#"),
            Binding("audit", "audit-log"),
            Binding("h", "eu", arguments={"x-match": "any", "region": "eu"}),
        ],
        policies=[Policy("limits", "^payments$", apply_to="queues", definition={"max-length": 1000})],
    )


def test_deploy_declares_everything_and_teardown_removes_exactly_it(vhost: str) -> None:
    admin = RabbitAdmin()
    quoted = admin.quote(vhost)
    admin.request("PUT", f"/queues/{quoted}/bystander", {"durable": True})  # not the topology's: must stay

    report = deploy(topology(), url(vhost))
    assert sorted(report.exchanges) == ["audit", "h", "orders"]
    assert sorted(report.queues) == ["audit-log", "eu", "payments"]
    assert report.policies == ["limits"] and report.not_applied == []
    queues = {q["name"]: q for q in admin.request("GET", f"/queues/{quoted}")}
    assert queues["payments"]["arguments"] == {"x-message-ttl": 60000}
    assert queues["audit-log"]["arguments"] == {"x-queue-type": "quorum"}
    bindings = {
        (b["source"], b["destination"], b["routing_key"])
        for b in admin.request("GET", f"/bindings/{quoted}")
        if b["source"]
    }
    assert bindings == {
        ("orders", "payments", "order.created"),
        ("orders", "audit", "#"),
        ("audit", "audit-log", ""),
        ("h", "eu", ""),
    }
    assert admin.request("GET", f"/policies/{quoted}/limits")["definition"] == {"max-length": 1000}

    deploy(topology(), url(vhost), teardown=True)
    left = {q["name"] for q in admin.request("GET", f"/queues/{quoted}")}
    assert left == {"bystander"}
    exchanges = {x["name"] for x in admin.request("GET", f"/exchanges/{quoted}")}
    assert not exchanges & {"orders", "audit", "h"}
    assert admin.request("GET", f"/policies/{quoted}") == []


def test_policies_without_a_management_api_are_listed_as_not_applied(vhost: str) -> None:
    report = deploy(topology(), url(vhost), management="http://127.0.0.1:9")
    assert report.policies == [] and len(report.not_applied) == 1
    assert "policy limits: no management API at http://127.0.0.1:9" in report.not_applied[0]
    assert sorted(report.queues) == ["audit-log", "eu", "payments"]
    deploy(topology(), url(vhost), management="http://127.0.0.1:9", teardown=True)


def test_the_command_says_what_it_did_and_refuses_a_vhost_the_file_does_not_have(vhost: str, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["topologies/ecommerce.json", "--url", url(vhost)]) == 0
    out = capsys.readouterr().out
    assert f"Declared on vhost '{vhost}'" in out and "queues (3): payments, inventory, shipping" in out
    assert main(["topologies/ecommerce.json", "--url", url(vhost), "--teardown"]) == 0
    assert "Removed on vhost" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main([str(bad), "--url", url(vhost)]) == 2
    assert "bad.json" in capsys.readouterr().err
    two = Topology(queues=[Queue("a", vhost="one"), Queue("b", vhost="two")])
    with pytest.raises(ValueError, match=f"the URL names '{vhost}', which is not one of them"):
        deploy(two, url(vhost))


def publish(vhost: str, queue: str, count: int) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url(vhost)))
    channel = connection.channel()
    for i in range(count):
        channel.basic_publish("", queue, f"kept {i}".encode())
    connection.close()


def test_undoing_a_deploy_keeps_what_was_there_before_it_and_puts_back_a_replaced_policy(vhost: str) -> None:
    admin = RabbitAdmin()
    quoted = admin.quote(vhost)
    # Before: the queue payments with 7 messages, the exchange orders bound to it, a policy 'limits'.
    admin.request("PUT", f"/queues/{quoted}/payments", {"durable": True, "arguments": {"x-message-ttl": 60000}})
    admin.request("PUT", f"/exchanges/{quoted}/orders", {"type": "topic", "durable": True})
    admin.request("POST", f"/bindings/{quoted}/e/orders/q/payments", {"routing_key": "order.created"})
    admin.set_policy(vhost, "limits", "^payments$", {"max-length": 5000}, 0, "queues")
    publish(vhost, "payments", 7)

    declared = deploy(topology(), url(vhost))
    assert set(declared.already_there) == {
        "exchange orders",
        "queue payments (with 7 messages)",
        "binding orders → payments 'order.created'",
    }
    assert sorted(declared.queues) == ["audit-log", "eu", "payments"]
    assert admin.request("GET", f"/policies/{quoted}/limits")["definition"] == {"max-length": 1000}

    removed = undeploy(declared, url(vhost))
    assert sorted(removed.queues) == ["audit-log", "eu"] and sorted(removed.exchanges) == ["audit", "h"]
    assert removed.policies == ["limits (put back as it was)"] and removed.not_applied == []
    queues = {q["name"]: q for q in admin.request("GET", f"/queues/{quoted}")}
    assert set(queues) == {"payments"}
    assert settled_messages(vhost, "payments") == 7
    exchanges = {x["name"] for x in admin.request("GET", f"/exchanges/{quoted}")}
    assert "orders" in exchanges and not exchanges & {"audit", "h"}
    bindings = {(b["source"], b["destination"], b["routing_key"]) for b in admin.request("GET", f"/bindings/{quoted}")}
    assert ("orders", "payments", "order.created") in bindings
    assert ("orders", "audit", "#") not in bindings
    assert admin.request("GET", f"/policies/{quoted}/limits")["definition"] == {"max-length": 5000}


def test_a_binding_the_deploy_added_between_two_that_were_there_goes_and_an_equal_policy_stays(vhost: str) -> None:
    admin = RabbitAdmin()
    quoted = admin.quote(vhost)
    admin.request("PUT", f"/queues/{quoted}/payments", {"durable": True, "arguments": {"x-message-ttl": 60000}})
    admin.request("PUT", f"/exchanges/{quoted}/orders", {"type": "topic", "durable": True})
    admin.set_policy(vhost, "limits", "^payments$", {"max-length": 1000}, 0, "queues")

    declared = deploy(topology(), url(vhost))
    assert "policy limits" in declared.already_there
    undeploy(declared, url(vhost))
    bindings = {(b["source"], b["destination"]) for b in admin.request("GET", f"/bindings/{quoted}")}
    assert ("orders", "payments") not in bindings
    assert admin.request("GET", f"/policies/{quoted}/limits")["definition"] == {"max-length": 1000}


def test_a_deploy_refused_part_way_removes_what_it_had_declared_and_says_so(vhost: str, capsys) -> None:  # type: ignore[no-untyped-def]
    admin = RabbitAdmin()
    quoted = admin.quote(vhost)
    # 'eu' is there already, but not durable: declaring it durable is refused (406), after the
    # exchanges, two queues and no binding yet.
    admin.request("PUT", f"/queues/{quoted}/eu", {"durable": False})
    with pytest.raises(DeployError) as refused:
        deploy(topology(), url(vhost))
    said = str(refused.value)
    assert "PRECONDITION_FAILED" in said and "inequivalent arg 'durable'" in said
    assert "removed again" in said and "queue payments" in said and "exchange orders" in said
    assert {q["name"] for q in admin.request("GET", f"/queues/{quoted}")} == {"eu"}
    exchanges = {x["name"] for x in admin.request("GET", f"/exchanges/{quoted}")}
    assert not exchanges & {"orders", "audit", "h"}
    assert admin.request("GET", f"/policies/{quoted}") == []

    assert (
        main(["topologies/ecommerce.json", "--url", f"amqp://guest:guest@127.0.0.1:5672/{urllib.parse.quote(vhost)}"])
        == 0
    )
    capsys.readouterr()
    assert main(["topologies/ecommerce.json", "--url", f"http://127.0.0.1:15672/{vhost}"]) == 2
    assert "not an AMQP URL" in capsys.readouterr().err


def settled_messages(vhost: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(url(vhost)))
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


def test_float_arguments_go_as_decimals_and_one_no_decimal_holds_is_refused_by_name_first(vhost: str) -> None:
    admin = RabbitAdmin()
    quoted = admin.quote(vhost)
    floats = Topology(
        exchanges=[Exchange("h", type="headers")],
        queues=[Queue("eu")],
        bindings=[Binding("h", "eu", arguments={"x-match": "all", "weight": 1.5})],
    )
    declared = deploy(floats, url(vhost))
    # Bound to 1.5, as a message with that header shows (the management API prints decimals its own way).
    connection = pika.BlockingConnection(pika.URLParameters(url(vhost)))
    channel = connection.channel()
    for weight in (Decimal("1.5"), Decimal("2.5")):
        channel.basic_publish("h", "", b"w", pika.BasicProperties(headers={"weight": weight}))
    connection.close()
    assert settled_messages(vhost, "eu") == 1
    undeploy(declared, url(vhost))
    floats.bindings[0].arguments["weight"] = 1e20
    with pytest.raises(ValueError, match=r"binding h → eu: argument 'weight' = 1e\+20"):
        deploy(floats, url(vhost))
    assert admin.request("GET", f"/queues/{quoted}") == []  # refused before anything was declared


def test_policies_need_a_management_api_named_for_a_broker_off_rabbitmqs_port_and_its_password_is_not_said(
    vhost: str,
) -> None:
    # Another AMQP port is another broker: its API is not guessed to be this host's 15672.
    with pytest.raises(DeployError):
        deploy(topology(), "amqp://guest:guest@127.0.0.1:9/" + vhost)
    with pytest.raises(NoManagementAPI, match="--management says where"):
        _management_base("amqp://guest:guest@127.0.0.1:5680/%2F", None)
    # A management URL may carry its own user; the reports never show its password.
    report = deploy(topology(), url(vhost), management="http://guest:S3cret@127.0.0.1:9")
    assert report.not_applied and not any("S3cret" in line for line in report.not_applied)
    assert "http://127.0.0.1:9" in report.not_applied[0]
    undeploy(report, url(vhost))
    report = deploy(topology(), url(vhost), management="http://guest:guest@127.0.0.1:15672")
    assert report.policies == ["limits"] and report.not_applied == []
    undeploy(report, url(vhost))


@pytest.mark.parametrize(
    ("bad", "said"),
    [
        ("http://127.0.0.1:5672/%2F", "not an AMQP URL"),
        ("amqp://guest@127.0.0.1/%2F", "user 'guest' without a password"),
        ("amqp://guest:pw@127.0.0.1:99999/%2F", "amqp://guest:***@127.0.0.1:99999/%2F: Port out of range"),
    ],
)
def test_a_url_pika_cannot_use_is_refused_saying_which_and_why(bad: str, said: str) -> None:
    with pytest.raises(ValueError, match=re.escape(said)):
        deploy(topology(), bad)


def test_a_binding_with_a_decimal_argument_that_was_there_stays(vhost: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url(vhost)))
    channel = connection.channel()
    channel.exchange_declare("h", "headers", durable=True)
    channel.queue_declare("eu", durable=True)
    channel.queue_bind("eu", "h", "", {"x-match": "all", "weight": Decimal("1.5")})
    connection.close()
    floats = Topology(
        exchanges=[Exchange("h", type="headers")],
        queues=[Queue("eu")],
        bindings=[Binding("h", "eu", arguments={"x-match": "all", "weight": 1.5})],
    )
    declared = deploy(floats, url(vhost))
    assert "binding h → eu" in declared.already_there
    undeploy(declared, url(vhost))
    connection = pika.BlockingConnection(pika.URLParameters(url(vhost)))
    channel = connection.channel()
    channel.basic_publish("h", "", b"w", pika.BasicProperties(headers={"weight": Decimal("1.5")}))
    connection.close()
    assert settled_messages(vhost, "eu") == 1  # still bound


def test_a_run_leaves_a_policy_of_the_same_name_as_it_is_and_keeps_bindings_of_the_brokers_own_exchanges(
    vhost: str,
) -> None:
    admin = RabbitAdmin()
    quoted = admin.quote(vhost)
    admin.set_policy(vhost, "limits", "^payments$", {"max-length": 5000}, 0, "queues")
    admin.request("PUT", f"/queues/{quoted}/eu", {"durable": True})
    admin.request("POST", f"/bindings/{quoted}/e/amq.topic/q/eu", {"routing_key": "eu.#"})
    with_builtin = topology()
    with_builtin.bindings.append(Binding("amq.topic", "eu", routing_key="eu.#"))
    declared = deploy(with_builtin, url(vhost), replace_policies=False)
    assert declared.not_applied == ["policy limits: one of that name is there with another definition; left as it is"]
    assert "binding amq.topic → eu 'eu.#'" in declared.already_there
    assert admin.request("GET", f"/policies/{quoted}/limits")["definition"] == {"max-length": 5000}
    undeploy(declared, url(vhost))
    assert admin.request("GET", f"/policies/{quoted}/limits")["definition"] == {"max-length": 5000}
    bindings = {(b["source"], b["destination"]) for b in admin.request("GET", f"/bindings/{quoted}")}
    assert ("amq.topic", "eu") in bindings
