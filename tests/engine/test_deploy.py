"""queuecraft deploy against the RabbitMQ here: what a topology declares arrives, policies go
through the management API (or are listed as not applied), and teardown removes exactly it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from engine.deploy import deploy, main
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
