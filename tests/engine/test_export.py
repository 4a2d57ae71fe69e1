"""Exports land on a real RabbitMQ: definitions it imports as they are, and a pika script that runs there."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pika
import pytest

from engine.export import pika_script, vhost_definitions
from engine.topology_file import load, save
from tests.conformance.drivers import RabbitAdmin

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.rabbitmq


def moved_to(vhost: str, name: str = "ecommerce.json"):  # type: ignore[no-untyped-def]
    """An example topology, living in ``vhost`` instead of '/'."""
    topology = load(ROOT / "topologies" / name)
    for entity in (*topology.exchanges, *topology.queues, *topology.bindings, *topology.producers, *topology.consumers):
        entity.vhost = vhost
    topology.vhosts = [type(topology.vhosts[0])(vhost)]
    topology.layout = {}
    return topology


@pytest.fixture
def vhost():  # type: ignore[no-untyped-def]
    admin = RabbitAdmin()
    name = f"qc-export-{uuid.uuid4().hex[:8]}"
    yield name
    admin.delete_vhost(name)


def passive_check(vhost: str, exchanges: list[str], queues: list[str]) -> None:
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", virtual_host=vhost))
    try:
        channel = connection.channel()
        for exchange in exchanges:
            channel.exchange_declare(exchange, passive=True)
        for queue in queues:
            channel.queue_declare(queue, passive=True)
    finally:
        connection.close()


def bindings_on_broker(vhost: str) -> set[tuple[str, str, str]]:
    found = RabbitAdmin().request("GET", f"/bindings/{RabbitAdmin.quote(vhost)}")
    return {(b["source"], b["destination"], b["routing_key"]) for b in found if b["source"]}


def import_definitions(path: Path) -> None:
    """rabbitmqctl import_definitions where the broker's CLI is here; the management API otherwise."""
    if shutil.which("rabbitmqctl"):
        # A copy anyone can read: the CLI runs as the broker's own user, not the test's.
        handle, readable = tempfile.mkstemp(suffix=".json", dir="/tmp")
        try:
            os.write(handle, path.read_bytes())
            os.close(handle)
            os.chmod(readable, 0o644)
            result = subprocess.run(
                ["rabbitmqctl", "import_definitions", readable], capture_output=True, text=True, timeout=120
            )
        finally:
            os.unlink(readable)
        assert result.returncode == 0, result.stderr + result.stdout
    else:
        RabbitAdmin().request("POST", "/definitions", json.loads(path.read_text()))


def test_exported_vhost_definitions_import_into_rabbitmq(vhost: str, tmp_path: Path) -> None:
    topology = moved_to(vhost)
    path = tmp_path / "definitions.json"
    path.write_text(json.dumps(vhost_definitions(topology, vhost)))
    import_definitions(path)
    admin = RabbitAdmin()
    admin.request("PUT", f"/permissions/{admin.quote(vhost)}/guest", {"configure": ".*", "write": ".*", "read": ".*"})
    passive_check(vhost, [x.name for x in topology.exchanges], [q.name for q in topology.queues])
    assert bindings_on_broker(vhost) == {(b.source, b.destination, b.routing_key) for b in topology.bindings}


def test_a_saved_queuecraft_file_imports_into_rabbitmq_as_it_is(vhost: str, tmp_path: Path) -> None:
    topology = moved_to(vhost, "stock-ticker.json")
    path = tmp_path / "ticker.json"
    save(topology, path)
    assert "queuecraft" in json.loads(path.read_text())
    import_definitions(path)
    admin = RabbitAdmin()
    admin.request("PUT", f"/permissions/{admin.quote(vhost)}/guest", {"configure": ".*", "write": ".*", "read": ".*"})
    passive_check(vhost, [x.name for x in topology.exchanges], [q.name for q in topology.queues])


def test_the_exported_pika_script_declares_the_topology_and_moves_messages(vhost: str, tmp_path: Path) -> None:
    admin = RabbitAdmin()
    admin.add_vhost(vhost)
    topology = moved_to(vhost)
    script = tmp_path / "run_topology.py"
    script.write_text(pika_script(topology, vhost))
    url = f"amqp://guest:guest@127.0.0.1:5672/{admin.quote(vhost)}"
    result = subprocess.run(
        [sys.executable, str(script), "--url", url, "--duration", "3"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    passive_check(vhost, [x.name for x in topology.exchanges], [q.name for q in topology.queues])
    assert bindings_on_broker(vhost) == {(b.source, b.destination, b.routing_key) for b in topology.bindings}
    counts = json.loads(result.stdout[result.stdout.index("{") :])
    assert counts["web-shop"]["published"] > 20
    for consumer in topology.consumers:
        assert counts[consumer.name]["acked"] > 0, consumer.name
    # Its default URL is the vhost it was exported for.
    usage = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert f"amqp://guest:guest@localhost:5672/{admin.quote(vhost)}" in usage.stdout.replace("\n", "")
    teardown = subprocess.run(
        [sys.executable, str(script), "--url", url, "--teardown"], capture_output=True, text=True, timeout=60
    )
    assert teardown.returncode == 0, teardown.stderr
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        passive_check(vhost, [], [topology.queues[0].name])
