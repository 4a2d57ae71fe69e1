"""The AMQP listener in the GUI: real clients connect to the running simulation and appear on the canvas.

Simulation > Listen for AMQP Clients opens the same listener ``queuecraft serve`` runs,
on the broker of the simulation shown. A client that publishes is drawn as a producer, one
that consumes as a consumer, with the exchanges, queues and bindings it declares; a client
that leaves fades out. Starting the simulation afresh (Reset, another file) closes the
clients' connections as a restarting RabbitMQ would; they may connect again.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QLabel, QMenu

from engine.amqp import DEFAULT_PORT, AmqpServer, UserBase, UsersError
from engine.edits import find_binding
from engine.live import LiveClient, LiveOverlay, describe_client, live_overlay
from engine.model import Binding, Exchange, Queue, Topology, split_node_id
from engine.serve import attach_listener

if TYPE_CHECKING:
    from .main_window import MainWindow

REBUILD_EVERY = 0.25  # seconds between redrawings of what clients changed, however busy they are


class Listener(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.host = "127.0.0.1"
        self.port = int(str(window.settings.value("listener_port", DEFAULT_PORT)))
        self.server: AmqpServer | None = None
        self.overlay: LiveOverlay | None = None
        self.positions: dict[str, tuple[float, float]] = {}  # where live nodes were put, or dragged
        self._changed = False
        self._rebuilt = 0.0
        self._inspected = 0.0
        self.toggle = window.make_action(
            "&Listen for AMQP Clients",
            self.set_listening,
            "Ctrl+Shift+L",
            f"Open an AMQP 0-9-1 listener on {self.host}:{self.port}: real clients (pika, ...) join the simulation",
        )
        self.toggle.setCheckable(True)
        self.toggle.setIconText("Listen")
        self.status = QLabel()
        self.status.setToolTip("Real AMQP clients connect here, with guest/guest or the file's users")
        self.status.hide()

    @property
    def listening(self) -> bool:
        return self.server is not None

    @property
    def url(self) -> str:
        address = self.server.address if self.server is not None else None
        host, port = address if address is not None else (self.host, self.port)
        return f"amqp://{host}:{port}"

    # -- opening and closing ----------------------------------------------------------------------

    def set_listening(self, on: bool) -> None:
        if on and self.server is None:
            self.start()
        elif not on and self.server is not None:
            self.stop()

    def start(self) -> None:
        sim = self.window.controller.sim
        if sim is None:
            self.toggle.setChecked(False)
            return
        topology = self.window.document.topology
        try:
            users = UserBase.from_definitions(topology.extra.get("users"), topology.extra.get("permissions"))
        except UsersError as exc:
            self._refused(f"Cannot listen: the file's users: {exc}")
            return
        server = AmqpServer(sim.broker, users)
        attach_listener(sim, server)
        for callbacks in (
            server.events.client_opened,
            server.events.client_changed,
            server.events.client_closed,
            server.events.topology_changed,
        ):
            callbacks.append(lambda connection: self._activity())
        self.server = server
        sim.broker.epoch = time.time() - sim.now  # x-death times are wall-clock times
        future = asyncio.ensure_future(server.start(self.host, self.port))
        future.add_done_callback(lambda done: self._started(server, done))

    def _started(self, server: AmqpServer, done: asyncio.Future[tuple[str, int]]) -> None:
        if self.server is not server:
            return
        error = done.exception()
        if error is not None:
            self.server = None
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            self._refused(f"Cannot listen on {self.host}:{self.port}: {reason}")
            return
        if not self.window.controller.running and not self.window.rabbit.active:
            self.window.controller.run()  # clients live in wall time: the clock runs with them
        self.status.show()
        self._show_status()
        self.window.statusBar().showMessage(f"Listening for AMQP clients on {self.url}", 15000)

    def _refused(self, message: str) -> None:
        self.toggle.setChecked(False)
        self.status.hide()
        self.window.statusBar().showMessage(message, 15000)

    def stop(self) -> None:
        server, self.server = self.server, None
        self.toggle.setChecked(False)
        self.status.hide()
        if server is None:
            return
        server.close()
        sim = self.window.controller.sim
        if sim is not None and server.read_counters in sim.counter_sources:
            sim.counter_sources.remove(server.read_counters)
        self.overlay = None
        self.window.sync_scene()
        self.window.statusBar().showMessage("The listener is closed; its clients were disconnected.", 8000)

    def simulation_replaced(self) -> None:
        """A new run: clients are disconnected (320, as a restarting broker does) and may come back."""
        server, sim = self.server, self.window.controller.sim
        if server is None or sim is None:
            return
        for connection in list(server.connections):
            connection.close(320, "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'")
        server.departed.clear()
        attach_listener(sim, server)
        sim.broker.epoch = time.time() - sim.now
        self.overlay = None
        self._changed = True

    def close(self) -> None:
        """The window closes: so does the listener, and its clients are told (320)."""
        if self.server is not None:
            self.server.close()
            self.server = None

    # -- what the canvas shows ------------------------------------------------------------------------

    def _activity(self) -> None:
        self._changed = True

    def shown(self, document: Topology) -> LiveOverlay | None:
        """The overlay for the canvas (None while not listening), built afresh from the broker."""
        server, sim = self.server, self.window.controller.sim
        if server is None or sim is None:
            return None
        self.overlay = live_overlay(document, sim.broker, server.clients(), self.positions)
        self._changed = False
        self._rebuilt = time.monotonic()
        return self.overlay

    def on_frame(self) -> None:
        """A few times a second at most: the canvas catches up with what clients did, fading ones fade."""
        if self.server is None:
            return
        now = time.monotonic()
        if now - self._rebuilt < REBUILD_EVERY:
            return
        fading = self.overlay is not None and bool(self.overlay.fading)
        if self._changed or fading:
            self.window.sync_scene()
        if now - self._inspected >= REBUILD_EVERY:
            self._inspected = now
            self.window.inspector.refresh_live()  # a selected client's counts, as they are now
        self._show_status()

    def _show_status(self) -> None:
        server = self.server
        if server is None:
            return
        count = len(server.open_clients())
        hidden = self.overlay.not_drawn if self.overlay is not None else 0
        more = f"  ·  {hidden:,} declared, not drawn" if hidden else ""
        if server.memory_alarm:
            more += "  ·  memory alarm: publishers blocked"
        self.status.setText(f"  {self.url}  ·  {count} client{'s' if count != 1 else ''}{more}  ")

    def moved(self, positions: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        """Live nodes dragged: kept here, not in the document. Returns the rest, the document's."""
        live = self.overlay.live_ids if self.overlay is not None else set()
        kept = {nid: pos for nid, pos in positions.items() if nid not in live}
        for nid, pos in positions.items():
            if nid in live:
                self.positions[nid] = pos
        return kept

    def name_clash(self, after: Topology) -> str | None:
        """A producer or consumer an edit brings in (or renames) under a connected client's name
        would be drawn as that client: refused while the client is there."""
        server = self.server
        if server is None:
            return None
        clients = {(c.vhost, c.name) for c in server.clients()}
        before = set(self.window.document.topology.node_ids())
        for node in [*after.producers, *after.consumers]:
            if node.id not in before and (node.vhost, node.name) in clients:
                return f"a connected client is named '{node.name}': name it otherwise while that client is here"
        return None

    def is_live(self, nid: str) -> bool:
        return self.overlay is not None and nid in self.overlay.live_ids

    # -- inspecting and acting on live things -------------------------------------------------------

    def describe(self, nid: str) -> tuple[str, list[tuple[str, str]]] | None:
        """A title and rows for the inspector, for a client or something a client declared."""
        overlay = self.overlay
        if overlay is None or nid not in overlay.live_ids:
            return None
        connection = overlay.connections.get(nid)
        client: LiveClient | None = describe_client(connection) if connection is not None else None
        kind = nid.split(":", 1)[0]
        if client is not None:
            role = "publishes" if kind == "producer" else "consumes"
            return f"Client: {client.name} ({role})", client.rows()
        entity = _entity(overlay.topology, nid)
        if isinstance(entity, Exchange):
            rows = [("Type", entity.type), ("Durable", _yes(entity.durable)), ("Auto-delete", _yes(entity.auto_delete))]
            rows += [("Internal", _yes(entity.internal)), *_arguments(entity.arguments)]
            return f"Exchange: {entity.name} (declared by a client)", rows
        if isinstance(entity, Queue):
            rows = [("Type", entity.queue_type), ("Durable", _yes(entity.durable))]
            rows += [("Auto-delete", _yes(entity.auto_delete)), ("Exclusive", _yes(entity.exclusive))]
            return f"Queue: {entity.name} (declared by a client)", [*rows, *_arguments(entity.arguments)]
        if isinstance(entity, Binding):
            rows = [("Source", entity.source or "(AMQP default)"), ("Destination", entity.destination)]
            rows += [("Routing key", entity.routing_key or "(none)"), *_arguments(entity.arguments)]
            return "Binding (declared by a client)", rows
        return None

    def fill_menu(self, menu: QMenu, selected: list[str]) -> None:
        """For one selected client: close its connection, as the management UI can."""
        overlay, server = self.overlay, self.server
        if overlay is None or server is None or len(selected) != 1:
            return
        client = overlay.clients.get(selected[0])
        if client is None or not client.connected:
            return
        menu.addSeparator()
        action = menu.addAction(f"Close Connection '{client.name}'")
        action.triggered.connect(lambda: self.close_client(client.name))

    def close_client(self, name: str) -> None:
        server = self.server
        if server is None:
            return
        for connection in server.open_clients():
            if connection.name == name:
                connection.close(320, "CONNECTION_FORCED - Closed via Queuecraft")
        self.window.statusBar().showMessage(f"Closed the connection of '{name}'.", 6000)


def _entity(topology: Topology, nid: str) -> Exchange | Queue | Binding | None:
    if nid.startswith("binding:"):
        return find_binding(topology, nid)
    kind, vhost, name = split_node_id(nid)
    if kind == "exchange":
        return topology.exchange(vhost, name)
    if kind == "queue":
        return topology.queue(vhost, name)
    return None


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _arguments(arguments: dict[str, object]) -> list[tuple[str, str]]:
    return [(key, str(value)) for key, value in arguments.items()]
