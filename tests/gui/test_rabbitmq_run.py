"""Run on RabbitMQ from the window: the open topology is declared on the RabbitMQ here, its
producers and consumers run there as real clients, the canvas and the graphs follow what those
clients measure, and stopping removes what was declared and gives the stage back to the
simulation."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from PySide6.QtWidgets import QDialog

from engine.model import Binding, Consumer, Exchange, Producer, Queue, Topology
from engine.sim import TOTALS_ID
from gui.main_window import MainWindow
from gui.rabbitmq_run import RunOnRabbitDialog
from tests.conformance.drivers import RabbitAdmin

from .conftest import run_for
from .test_live_clients import wait_for
from .test_watching import load

SHOP = Topology(
    exchanges=[Exchange("orders", type="topic")],
    queues=[Queue("billing"), Queue("archive", arguments={"x-max-length": 50})],
    bindings=[Binding("orders", "billing", routing_key="order.*"), Binding("orders", "archive", routing_key="#")],
    producers=[Producer("storefront", "orders", routing_key="order.{created|paid}", rate=25)],
    consumers=[Consumer("biller", "billing", prefetch=4, work_ms=20)],
)


@pytest.fixture
def vhost() -> Iterator[str]:
    admin = RabbitAdmin()
    name = f"qc-gui-{uuid.uuid4().hex[:8]}"
    admin.add_vhost(name)
    yield name
    admin.delete_vhost(name)


def queues_on_broker(vhost: str) -> set[str]:
    admin = RabbitAdmin()
    return {q["name"] for q in admin.request("GET", f"/queues/{admin.quote(vhost)}")}


@pytest.mark.rabbitmq
def test_the_topology_runs_on_rabbitmq_and_the_canvas_and_graphs_follow_its_clients(
    window: MainWindow, qasync_loop, vhost: str
) -> None:  # type: ignore[no-untyped-def]
    load(window, SHOP)
    window.controller.run()
    rabbit = window.rabbit
    rabbit.url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    rabbit.remove_after = True
    rabbit.start()
    assert not window.controller.running  # the simulation waits meanwhile
    wait_for(qasync_loop, lambda: rabbit.state == "running")
    assert {"billing", "archive"} <= queues_on_broker(vhost)
    assert not window.run_action.isEnabled() and not window.runs.step.isEnabled()
    assert rabbit.stop_action.isVisible() and rabbit.status.isVisible()
    run_for(qasync_loop, 2.5)
    window.on_frame()
    run = rabbit.run
    assert run is not None and window.rates.sim is run
    # The canvas shows what the real clients did: rates, sent counts, the archive filling to its limit.
    scene = window.scene
    assert "sent" in scene.nodes["producer:/:storefront"].status
    assert "/s" in scene.nodes["consumer:/:biller"].status
    archive = scene.nodes["queue:/:archive"]
    assert archive.status.startswith("ready ") and archive.depth_fill > 0  # x-max-length 50: the bar is to scale
    assert "on RabbitMQ" in window.time_label.text()
    assert window.rates.rates_chart.plot.getAxis("bottom").labelText == "time on RabbitMQ (s)"
    # Tokens travel the client's edges: published to the exchange, delivered to the consumer.
    assert window.animator.tokens_started > 20
    counters = run.read_counters()
    assert counters[TOTALS_ID][0] >= 40 and counters["consumer:/:biller"][1] > 20
    # The graphs plot the run; selecting a node plots it.
    scene.select_only(["queue:/:billing"])
    window.messages.refresh(force=True)
    assert "its messages are on the RabbitMQ this run uses" in window.messages.heading.text()
    # Listening meanwhile does not wake the simulation, which waits for the run to end.
    window.listener.port = 0
    window.listener.toggle.trigger()
    run_for(qasync_loop, 0.3)
    assert window.listener.listening and not window.controller.running
    window.listener.stop()
    scene.select_only(["consumer:/:biller"])
    assert window.rates.subject == "consumer:/:biller"
    published = counters[TOTALS_ID][0]
    rabbit.stop()
    wait_for(qasync_loop, lambda: rabbit.state == "idle")
    assert queues_on_broker(vhost) == set()  # exactly what was declared is gone
    assert window.rates.sim is window.controller.sim and window.run_action.isEnabled()
    message = window.statusBar().currentMessage()
    ended = re.search(r"RabbitMQ run over \([\d.]+ s, ([\d,]+) published", message)
    assert ended is not None and int(ended.group(1).replace(",", "")) >= published


def test_a_broker_that_refuses_is_said_and_the_simulation_keeps_the_stage(window: MainWindow, qasync_loop) -> None:  # type: ignore[no-untyped-def]
    load(window, SHOP)
    rabbit = window.rabbit
    rabbit.url = "amqp://guest:guest@127.0.0.1:1/%2F"  # nothing listens there
    rabbit.start()
    wait_for(qasync_loop, lambda: rabbit.state == "idle")
    assert "Could not run on amqp://guest:***@127.0.0.1:1/%2F" in window.statusBar().currentMessage()
    assert rabbit.run is None and window.run_action.isEnabled()
    assert window.rates.sim is window.controller.sim


def test_the_dialog_refuses_an_address_that_is_not_amqp(qtbot) -> None:  # type: ignore[no-untyped-def]
    dialog = RunOnRabbitDialog("localhost:5672", "", True)
    qtbot.addWidget(dialog)
    dialog._check()
    assert dialog.result() != QDialog.DialogCode.Accepted
    assert "must start with amqp://" in dialog.problem.text()
    dialog.url.setText("amqp://app@localhost:5672/%2F")
    dialog._check()
    assert "without a password" in dialog.problem.text()
    dialog.url.setText("amqp://guest:guest@localhost:5672/%2F")
    dialog.management.setText("localhost:15672")
    dialog._check()
    assert "http://" in dialog.problem.text()
    dialog.management.setText("http://localhost:15672")
    dialog._check()
    assert dialog.result() == QDialog.DialogCode.Accepted


@pytest.mark.rabbitmq
@pytest.mark.parametrize("after", [0.0, 0.05, 0.3])
def test_another_document_while_the_run_starts_ends_it_and_leaves_nothing_on_the_broker(
    window: MainWindow, qasync_loop, vhost: str, after: float
) -> None:  # type: ignore[no-untyped-def]
    load(window, SHOP)
    rabbit = window.rabbit
    rabbit.url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    rabbit.remove_after = True
    rabbit.start()
    run_for(qasync_loop, after)  # cut short before, during or after the declaring
    load(window, Topology(queues=[Queue("other")]))
    wait_for(qasync_loop, lambda: rabbit.state == "idle")
    run_for(qasync_loop, 0.3)
    assert rabbit.run is None and window.rates.sim is window.controller.sim
    assert [q.name for q in window.document.topology.queues] == ["other"]
    assert queues_on_broker(vhost) == set()
    exchanges = {x["name"] for x in RabbitAdmin().request("GET", f"/exchanges/{RabbitAdmin.quote(vhost)}")}
    assert "orders" not in exchanges


@pytest.mark.rabbitmq
@pytest.mark.parametrize("when", ["at once", "while declaring"])
def test_closing_the_window_while_the_run_starts_leaves_nothing_on_the_broker(
    window: MainWindow, qasync_loop, vhost: str, when: str
) -> None:  # type: ignore[no-untyped-def]
    load(window, SHOP)
    rabbit = window.rabbit
    rabbit.url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    rabbit.remove_after = True
    rabbit.start()
    if when == "while declaring":
        for _ in range(100):
            if rabbit._deploying is not None:
                break
            run_for(qasync_loop, 0.001)
        assert rabbit._deploying is not None
    assert rabbit.state == "starting"
    rabbit.close()  # as the window's close does
    assert rabbit.state == "idle"
    assert queues_on_broker(vhost) == set()
    assert "orders" not in {x["name"] for x in RabbitAdmin().request("GET", f"/exchanges/{RabbitAdmin.quote(vhost)}")}


def test_a_password_is_not_written_to_the_settings_unless_it_is_rabbitmqs_default_guest() -> None:
    from gui.rabbitmq_run import storable_url

    assert storable_url("amqp://app:S3cret@rabbit.example:5672/shop") == "amqp://app@rabbit.example:5672/shop"
    assert storable_url("amqp://guest:guest@localhost:5672/%2F") == "amqp://guest:guest@localhost:5672/%2F"
    assert storable_url("amqp://localhost/%2F") == "amqp://localhost/%2F"
