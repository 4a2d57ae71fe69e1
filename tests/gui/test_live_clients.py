"""Real clients on the canvas: with the listener open, a pika program joins the running
simulation; its connection appears as a producer and a consumer named by its connection_name,
with what it declares, tokens on its edges and its rates, inspectable; it fades when it
leaves; none of it touches the document."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pika

from engine.edits import rename_node
from engine.model import Binding, Consumer, Exchange, Producer, Queue, Topology
from gui.main_window import MainWindow

from .conftest import run_for
from .test_watching import load

SHOP = Topology(
    exchanges=[Exchange("orders", type="topic")],
    queues=[Queue("billing")],
    bindings=[Binding("orders", "billing", routing_key="order.*")],
    producers=[Producer("storefront", "orders", routing_key="order.created", rate=5)],
    consumers=[Consumer("biller", "billing", work_ms=50)],
)


class Client(threading.Thread):
    """A pika program in a thread of its own: declares, publishes and consumes until told to stop."""

    def __init__(self, port: int, name: str, body: Callable[[pika.BlockingConnection, threading.Event], None]) -> None:
        super().__init__(daemon=True)
        self.port, self.name_, self.body = port, name, body
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.connected = threading.Event()

    def run(self) -> None:
        try:
            parameters = pika.ConnectionParameters(
                "127.0.0.1", self.port, client_properties={"connection_name": self.name_}, heartbeat=0
            )
            connection = pika.BlockingConnection(parameters)
            self.connected.set()
            self.body(connection, self.stop)
            if connection.is_open:
                connection.close()
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            self.error = exc
            self.connected.set()


def checkout(connection: pika.BlockingConnection, stop: threading.Event) -> None:
    channel = connection.channel()
    channel.queue_declare("invoices", arguments={"x-max-length": 1000})
    channel.queue_bind("invoices", "orders", "order.*")
    channel.basic_qos(prefetch_count=5)
    channel.basic_consume("invoices", lambda ch, method, props, body: ch.basic_ack(method.delivery_tag))
    while not stop.is_set():
        channel.basic_publish("orders", "order.paid", b'{"total": 12}')
        connection.process_data_events(0.05)


def start_listening(window: MainWindow, qasync_loop) -> int:  # type: ignore[no-untyped-def]
    window.listener.port = 0  # any free port
    window.listener.toggle.trigger()
    run_for(qasync_loop, 0.2)
    assert window.listener.listening and window.listener.server is not None
    address = window.listener.server.address
    assert address is not None
    return address[1]


def wait_for(qasync_loop, condition: Callable[[], bool], seconds: float = 8.0) -> None:  # type: ignore[no-untyped-def]
    waited = 0.0
    while not condition():
        assert waited < seconds, "timed out"
        run_for(qasync_loop, 0.1)
        waited += 0.1


def inspected(window: MainWindow, label: str) -> int | str:
    """A row of the inspector's form for a live client, a number where it is one."""
    for row, text in window.inspector._live_values:
        if row == label:
            value = text.text()
            return int(value.replace(",", "")) if value.replace(",", "").isdigit() else value
    raise AssertionError(f"no row {label!r} in the inspector")


def counters_now(window: MainWindow) -> dict[str, tuple[int, ...]]:
    sim = window.controller.sim
    assert sim is not None
    return sim.read_counters()


def test_a_pika_client_appears_as_producer_and_consumer_with_its_queue_and_fades_when_it_leaves(
    window: MainWindow, qasync_loop, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("engine.live.FADE_SECONDS", 1.5)
    load(window, SHOP)
    port = start_listening(window, qasync_loop)
    assert window.controller.running  # the clock runs with the clients
    assert f"127.0.0.1:{port}" in window.listener.status.text()
    client = Client(port, "checkout-service", checkout)
    client.start()
    producer, consumer = "producer:/:checkout-service", "consumer:/:checkout-service"
    scene = window.scene
    try:
        wait_for(qasync_loop, lambda: producer in scene.nodes and consumer in scene.nodes)
        run_for(qasync_loop, 1.5)
        assert client.error is None
        # Drawn as a client's: dashed and tagged, beside the document's own nodes.
        assert scene.nodes[producer].live and scene.nodes[consumer].live
        assert scene.nodes["queue:/:invoices"].live and not scene.nodes["queue:/:billing"].live
        assert scene.nodes["queue:/:invoices"].detail == "classic · from a client"
        assert scene.nodes[producer].detail.endswith("· 127.0.0.1")
        assert (producer, "exchange:/:orders") in scene.edge_for
        assert ("queue:/:invoices", consumer) in scene.edge_for
        # Its traffic is drawn and counted as a simulated client's is.
        window.on_frame()
        assert "sent" in scene.nodes[producer].status and "/s" in scene.nodes[producer].status
        assert "unacked" in scene.nodes[consumer].status
        edge = scene.edge_for[(producer, "exchange:/:orders")]
        assert edge.rate > 0
        # The simulated consumer shares the orders with it: its billing queue gets the client's orders too.
        counters = window.controller.sim.read_counters()
        assert counters[producer][0] > 10 and counters[consumer][1] > 10
        # Inspected, it says who it is; the plots follow it.
        scene.select_only([producer])
        assert window.inspector.title.text() == "Client: checkout-service (publishes)"
        assert window.rates.subject == producer
        first = inspected(window, "Messages published")
        # The inspector follows the client as it goes on, as the node does.
        wait_for(qasync_loop, lambda: inspected(window, "Messages published") > first + 5)
        assert inspected(window, "State") == "connected"
        scene.select_only(["queue:/:invoices"])
        assert "declared by a client" in window.inspector.title.text()
        # Dragging a client's node moves it without touching the document.
        window._on_nodes_moved({producer: (-500.0, 300.0)})
        assert window.listener.positions[producer] == (-500.0, 300.0)
        # Edits leave what clients brought alone: aligned with everything, deleted, it stays the broker's.
        window.edits.select_everything()
        window.edits.align_selection("left")
        assert not {producer, consumer, "queue:/:invoices"} & set(window.document.topology.layout)
        window.document.undo_stack.undo()
        scene.select_only([producer, "queue:/:invoices"])
        window.edits.delete_selection()
        window.edits.duplicate_selection()
        assert not window.document.dirty and "edits leave it alone" in window.statusBar().currentMessage()
        assert producer in scene.nodes and "queue:/:invoices" in scene.nodes
        # Nor can a binding be drawn to or from it: it would put into the document what is not in it.
        verdict = window._connection_verdict("exchange:/:orders", "queue:/:invoices")
        assert isinstance(verdict, str) and "cannot be connected" in verdict
        assert isinstance(window._connection_verdict("queue:/:billing", consumer), str)
        # A document node may not take a connected client's name: it would be drawn as the client.
        taken = lambda topology: rename_node(topology, "producer:/:storefront", "checkout-service")  # noqa: E731
        assert not window.apply_edit("Rename", taken)
        assert "a connected client is named 'checkout-service'" in window.statusBar().currentMessage()
        assert [p.name for p in window.document.topology.producers] == ["storefront"]
        scene.select_only([producer])
    finally:
        client.stop.set()
        client.join(10)
    assert client.error is None
    wait_for(qasync_loop, lambda: not window.listener.server.open_clients())  # type: ignore[union-attr]
    wait_for(qasync_loop, lambda: scene.nodes.get(producer) is not None and scene.nodes[producer].opacity() < 1.0)
    assert scene.nodes[producer].detail == "disconnected"
    wait_for(qasync_loop, lambda: inspected(window, "State") == "disconnected")
    published = counters_now(window)[producer][0]
    assert inspected(window, "Messages published") == published
    wait_for(qasync_loop, lambda: producer not in scene.nodes and consumer not in scene.nodes)
    assert not window.inspector.title.text().startswith("Client:")  # it went: so did its form
    assert not window.document.dirty
    assert [q.name for q in window.document.topology.queues] == ["billing"]
    assert not any(nid in window.document.topology.layout for nid in (producer, consumer))


def test_reset_disconnects_clients_as_a_restarting_broker_does_and_closing_the_listener_clears_them(
    window: MainWindow, qasync_loop
) -> None:  # type: ignore[no-untyped-def]
    load(window, SHOP)
    port = start_listening(window, qasync_loop)
    closed: list[BaseException] = []

    def wait_until_closed(connection: pika.BlockingConnection, stop: threading.Event) -> None:
        channel = connection.channel()
        channel.basic_consume("billing", lambda ch, method, props, body: None, auto_ack=True)
        try:
            while not stop.is_set():
                connection.process_data_events(0.05)
        except pika.exceptions.ConnectionClosedByBroker as exc:
            closed.append(exc)

    client = Client(port, "watcher", wait_until_closed)
    client.start()
    wait_for(qasync_loop, lambda: "consumer:/:watcher" in window.scene.nodes)
    window.reset_simulation()
    wait_for(qasync_loop, lambda: bool(closed))
    assert closed[0].reply_code == 320  # type: ignore[attr-defined]
    client.stop.set()
    client.join(10)
    # The listener stays open on the new run: another client connects and is drawn.
    again = Client(port, "again", lambda c, stop: (c.channel().basic_publish("orders", "order.x", b""), stop.wait(5)))
    again.start()
    wait_for(qasync_loop, lambda: "producer:/:again" in window.scene.nodes)
    window.listener.toggle.trigger()  # closed
    run_for(qasync_loop, 0.3)
    again.stop.set()
    again.join(10)
    run_for(qasync_loop, 0.3)  # the connections finish closing
    assert not window.listener.listening
    assert not any(item.live for item in window.scene.nodes.values())
    assert "producer:/:again" not in window.scene.nodes


def test_a_port_in_use_is_refused_with_the_reason_and_the_toggle_goes_back(window: MainWindow, qasync_loop) -> None:  # type: ignore[no-untyped-def]
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        window.listener.port = taken.getsockname()[1]
        window.listener.toggle.trigger()
        run_for(qasync_loop, 0.3)
        assert not window.listener.listening and not window.listener.toggle.isChecked()
        assert "Cannot listen on 127.0.0.1" in window.statusBar().currentMessage()
    finally:
        taken.close()


def test_hostile_clients_are_closed_while_the_window_the_simulation_and_a_good_client_carry_on(
    window: MainWindow, qasync_loop
) -> None:  # type: ignore[no-untyped-def]
    from pamqp import body as content_body
    from pamqp import commands, frame, header

    from tests.wire.raw import PROTOCOL_HEADER, RawClient, raw_frame

    load(window, SHOP)
    port = start_listening(window, qasync_loop)
    address = ("127.0.0.1", port)
    good = Client(port, "steady-app", checkout)
    good.start()
    wait_for(qasync_loop, lambda: "producer:/:steady-app" in window.scene.nodes)
    outcomes: dict[str, object] = {}

    def attack() -> None:
        with RawClient(address) as wrong_header:
            wrong_header.send(b"GET / HTTP/1.1\r\n\r\n")
            wrong_header.read(2.0)
            outcomes["wrong header"] = (wrong_header.frames[0][1], wrong_header.closed().reply_code)
        with RawClient(address) as unknown_frame:
            unknown_frame.handshake()
            unknown_frame.open_channel(1)
            unknown_frame.send(raw_frame(9, 1, b"ab"))
            outcomes["unknown frame type"] = unknown_frame.closed().reply_code
        with RawClient(address) as too_big:
            too_big.handshake(frame_max=4096)
            too_big.open_channel(1)
            too_big.method(1, commands.Basic.Publish(exchange="orders", routing_key="order.x"))
            too_big.send(frame.marshal(header.ContentHeader(0, 10000, commands.Basic.Properties()), 1))
            too_big.send(frame.marshal(content_body.ContentBody(b"x" * 10000), 1))
            outcomes["frame too large"] = too_big.closed().reply_code
        with RawClient(address) as stray:
            stray.handshake()
            stray.open_channel(1)
            stray.send(frame.marshal(content_body.ContentBody(b"abc"), 1))
            outcomes["content without a method"] = stray.closed().reply_code

    attacker = threading.Thread(target=attack, daemon=True)
    sim = window.controller.sim
    before = (sim.now, len(window.frame_intervals), sim.read_counters()["producer:/:steady-app"][0])
    attacker.start()
    while attacker.is_alive():
        run_for(qasync_loop, 0.1)
    run_for(qasync_loop, 0.5)
    good.stop.set()
    good.join(10)
    run_for(qasync_loop, 0.3)
    assert outcomes == {
        "wrong header": (PROTOCOL_HEADER, None),
        "unknown frame type": 501,
        "frame too large": 501,
        "content without a method": 505,
    }
    # Nobody else noticed: the good client went on publishing, the run and the frames went on.
    assert good.error is None
    assert sim.read_counters()["producer:/:steady-app"][0] > before[2] + 10
    assert sim.now > before[0] + 0.5 and len(window.frame_intervals) > before[1] + 20
    assert window.controller.running and window.listener.listening
