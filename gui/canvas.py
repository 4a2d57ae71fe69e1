"""The canvas: a scene drawn from the topology model, and the view that shows it."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainter, QPen, QPixmap, QWheelEvent
from PySide6.QtWidgets import QGraphicsScene, QGraphicsView, QWidget

from engine.model import (
    BUILTIN_EXCHANGES,
    Consumer,
    Exchange,
    Producer,
    Queue,
    Topology,
    display_name,
    expand_template,
    node_id,
    split_node_id,
)
from engine.queues import Queue as EngineQueue
from engine.routing import EXCHANGE_TYPES, binding_id
from engine.sim import COUNTERS, UNKNOWN_TYPE, Simulation

from .items import ConsumerItem, EdgeItem, ExchangeItem, NodeItem, ProducerItem, QueueItem, TokenLayer
from .style import CANVAS_BACKGROUND, CANVAS_GRID, MUTED_TEXT

P = {name: i for i, name in enumerate(COUNTERS["producer"])}
X = {name: i for i, name in enumerate(COUNTERS["exchange"])}
Q = {name: i for i, name in enumerate(COUNTERS["queue"])}
C = {name: i for i, name in enumerate(COUNTERS["consumer"])}


def _duration(ms: float) -> str:
    if ms >= 1000 and ms % 1000 == 0:
        return f"{ms / 1000:g} s"
    return f"{ms:g} ms"


def producer_detail(producer: Producer) -> str:
    detail = f"{producer.rate:g} msg/s"
    if producer.pattern == "poisson":
        detail += " · Poisson"
    return detail


def exchange_detail(exchange_type: str, internal: bool = False, arguments: dict | None = None) -> str:
    parts = [exchange_type]
    if exchange_type not in EXCHANGE_TYPES and exchange_type != UNKNOWN_TYPE:
        parts.append("not simulated")
    if internal:
        parts.append("internal")
    return " · ".join(parts)


def queue_detail(queue: Queue, effective: EngineQueue | None = None) -> str:
    """Type and limits; with the engine's queue, the limits its policy adds too."""
    args = queue.arguments
    parts = [queue.queue_type if queue.queue_type != "classic" else ("durable" if queue.durable else "transient")]
    if queue.queue_type == "stream":
        parts.append("not simulated")
    ttl = (
        effective.message_ttl * 1000
        if effective is not None and effective.message_ttl is not None
        else args.get("x-message-ttl")
    )
    if ttl is not None:
        parts.append(f"TTL {_duration(ttl)}")
    max_length = effective.max_length if effective is not None else args.get("x-max-length")
    if max_length is not None:
        parts.append(f"max {max_length}")
    if "x-max-priority" in args:
        parts.append(f"priority ≤{args['x-max-priority']}")
    if queue.auto_delete:
        parts.append("auto-delete")
    if effective is not None and effective.policy is not None:
        parts.append(f"policy {effective.policy.name}")
        if effective.policy.unsimulated_keys:
            parts.append(f"{', '.join(effective.policy.unsimulated_keys)} not simulated")
    return " · ".join(parts)


def consumer_detail(consumer: Consumer) -> str:
    if consumer.ack_mode == "auto":
        # Prefetch does not limit a consumer that takes its messages acked.
        return f"auto-ack · {_duration(consumer.work_ms)}"
    prefetch = "unlimited" if consumer.prefetch == 0 else str(consumer.prefetch)
    return f"prefetch {prefetch} · {_duration(consumer.work_ms)}"


def binding_label(exchange_type: str, routing_key: str, arguments: dict) -> str:
    if exchange_type == "fanout":
        return ""
    if exchange_type == "headers":
        match = arguments.get("x-match", "all")
        pairs = [f"{k}={v}" for k, v in arguments.items() if k != "x-match"]
        return f"{match}: " + ", ".join(pairs) if pairs else match
    return routing_key if routing_key else '""'


class TopologyScene(QGraphicsScene):
    """Nodes and edges for one topology; ``edge_for`` maps a flow event's (source, target) to its edge."""

    MARGIN = 90.0

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.nodes: dict[str, NodeItem] = {}
        self.edges: list[EdgeItem] = []
        self.edge_for: dict[tuple[str, str], EdgeItem] = {}
        self.topology: Topology | None = None
        self.tokens = TokenLayer()
        self.addItem(self.tokens)
        self.setBackgroundBrush(self._grid_brush())

    def show_topology(self, topology: Topology) -> None:
        self.topology = topology
        self.clear()
        self.nodes, self.edges, self.edge_for = {}, [], {}
        self.tokens = TokenLayer()
        self.addItem(self.tokens)
        exchange_types: dict[str, str] = {}
        for nid in topology.node_ids():
            item = self._node_item(topology, nid, exchange_types)
            x, y = topology.layout.get(nid, (0.0, 0.0))
            item.setPos(x, y)
            self.addItem(item)
            self.nodes[nid] = item
        self._add_edges(topology, exchange_types)
        self._spread_parallel_edges()
        self._route_around_nodes()
        bounds = self.itemsBoundingRect()
        self.tokens.set_area(bounds)
        self.setSceneRect(bounds.adjusted(-self.MARGIN, -self.MARGIN, self.MARGIN, self.MARGIN))

    def _node_item(self, topology: Topology, nid: str, exchange_types: dict[str, str]) -> NodeItem:
        kind, vhost, name = split_node_id(nid)
        title = display_name(kind, name)
        item: NodeItem
        if kind == "producer":
            producer = next(p for p in topology.producers if p.id == nid)
            item = ProducerItem(nid, title, producer_detail(producer))
        elif kind == "exchange":
            exchange: Exchange | None = topology.exchange(vhost, name)
            exchange_type = exchange.type if exchange else BUILTIN_EXCHANGES.get(name, UNKNOWN_TYPE)
            exchange_types[nid] = exchange_type
            if exchange is not None:
                detail = exchange_detail(exchange_type, exchange.internal)
            elif name in BUILTIN_EXCHANGES:
                detail = exchange_detail(exchange_type) + " · built in"
            else:
                detail = "not in the file · type unknown"
            item = ExchangeItem(nid, title, exchange_type)
            item.set_title(title, detail)
            item.set_dimmed(exchange_type not in EXCHANGE_TYPES)
        elif kind == "queue":
            queue = topology.queue(vhost, name)
            assert queue is not None
            item = QueueItem(nid, title, queue_detail(queue))
            item.set_dimmed(queue.queue_type == "stream")
        else:
            consumer = next(c for c in topology.consumers if c.id == nid)
            item = ConsumerItem(nid, title, consumer_detail(consumer))
        if len({split_node_id(n)[1] for n in topology.node_ids()}) > 1:
            item.set_vhost(vhost)
        return item

    def show_effective_settings(self, sim: Simulation) -> None:
        """Queue details as the engine applies them: arguments and policies together."""
        for nid, item in self.nodes.items():
            kind, vhost, name = split_node_id(nid)
            if kind != "queue":
                continue
            host = sim.broker.vhosts.get(vhost)
            queue = host.queues.get(name) if host is not None else None
            model = self.topology.queue(vhost, name) if self.topology is not None else None
            if queue is not None and model is not None:
                item.set_title(item.title, queue_detail(model, queue))

    def _edge(self, relation: str, source: str, target: str, key: tuple[str, str], label: str = "") -> None:
        if source not in self.nodes or target not in self.nodes:
            return
        edge = EdgeItem(relation, self.nodes[source], self.nodes[target], label)
        # The counter that measures this edge's traffic: (node or binding id, index).
        edge.rate_key = {
            "publishes": (source, P["published"]),
            "binding": (key[1], 0),
            "consumes": (target, C["delivered"]),
            "dead-letter": (source, Q["dead_lettered"]),
            "alternate": (source, X["unroutable"]),
            "default": (target, Q["enqueued"]),
        }[relation]
        self.addItem(edge)
        if edge.label_item is not None:
            self.addItem(edge.label_item)
        self.edges.append(edge)
        self.edge_for[key] = edge

    def _add_edges(self, topology: Topology, exchange_types: dict[str, str]) -> None:
        for producer in topology.producers:
            self._edge(
                "publishes",
                producer.id,
                producer.exchange_id,
                (producer.id, producer.exchange_id),
                producer.routing_key,
            )
        for binding in topology.bindings:
            bid = binding_id(
                binding.vhost,
                binding.source,
                binding.destination_type,
                binding.destination,
                binding.routing_key,
                binding.arguments,
            )
            label = binding_label(
                exchange_types.get(binding.source_id, "direct"), binding.routing_key, binding.arguments
            )
            self._edge("binding", binding.source_id, binding.destination_id, (binding.source_id, bid), label)
        for consumer in topology.consumers:
            self._edge("consumes", consumer.queue_id, consumer.id, (consumer.queue_id, consumer.id))
        for queue in topology.queues:
            dlx = queue.arguments.get("x-dead-letter-exchange")
            if isinstance(dlx, str):
                target = node_id("exchange", queue.vhost, dlx)
                dlrk = queue.arguments.get("x-dead-letter-routing-key")
                self._edge(
                    "dead-letter",
                    queue.id,
                    target,
                    (queue.id, target),
                    f"dead letters → {dlrk}" if dlrk else "dead letters",
                )
        for exchange in topology.exchanges:
            alternate = exchange.arguments.get("alternate-exchange")
            if isinstance(alternate, str):
                target = node_id("exchange", exchange.vhost, alternate)
                self._edge("alternate", exchange.id, target, (exchange.id, target), "alternate")
        # The default exchange reaches a queue by its name: draw the queues a producer names.
        for producer in topology.producers:
            if producer.exchange != "":
                continue
            for key in expand_template(producer.routing_key):
                target = node_id("queue", producer.vhost, key)
                source = producer.exchange_id
                if (source, target) not in self.edge_for:
                    self._edge("default", source, target, (source, target), key)

    def _route_around_nodes(self) -> None:
        """Edges that would pass behind an unrelated node detour above or below it."""
        boxes = [(item, item.sceneBoundingRect()) for item in self.nodes.values()]
        labels: list[QRectF] = []
        for edge in self.edges:
            obstacles = [box for item, box in boxes if item is not edge.source and item is not edge.target]
            edge.avoid(obstacles, labels)
            if edge.label_item is not None:
                labels.append(edge.label_item.sceneBoundingRect())

    def _spread_parallel_edges(self) -> None:
        """Edges between the same two nodes (two bindings, say) bow apart so each label shows."""
        pairs: dict[tuple[int, int], list[EdgeItem]] = {}
        for edge in self.edges:
            pairs.setdefault((id(edge.source), id(edge.target)), []).append(edge)
        for group in pairs.values():
            if len(group) < 2:
                continue
            for index, edge in enumerate(group):
                edge.lane = index - (len(group) - 1) / 2
                edge.update_path()

    @staticmethod
    def _grid_brush() -> QBrush:
        """A dotted grid, as a tiled pixmap: drawing it costs nothing per frame."""
        step = 24
        tile = QPixmap(step, step)
        tile.fill(QColor(CANVAS_BACKGROUND))
        painter = QPainter(tile)
        painter.setPen(QPen(QColor(CANVAS_GRID), 2.0))
        painter.drawPoint(QPointF(step / 2, step / 2))
        painter.end()
        return QBrush(tile)


class CanvasView(QGraphicsView):
    """Zoom with the wheel (towards the mouse), pan by dragging the background."""

    MIN_ZOOM, MAX_ZOOM = 0.2, 3.0

    def __init__(self, scene: TopologyScene, parent: QWidget | None = None) -> None:
        super().__init__(scene, parent)
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.BoundingRectViewportUpdate)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setFrameShape(QGraphicsView.Shape.NoFrame)

    EMPTY_HINT = (
        "This topology has no producers, exchanges, queues or consumers yet.\n"
        "Open a topology or your broker's exported definitions (File ▸ Open),\n"
        "or start from an example (File ▸ Open Example)."
    )

    @property
    def zoom(self) -> float:
        return self.transform().m11()

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        scene = self.scene()
        if isinstance(scene, TopologyScene) and scene.topology is not None and not scene.nodes:
            painter.save()
            painter.resetTransform()
            painter.setPen(QColor(MUTED_TEXT))
            font = painter.font()
            font.setPointSizeF(11)
            painter.setFont(font)
            painter.drawText(self.viewport().rect(), Qt.AlignmentFlag.AlignCenter, self.EMPTY_HINT)
            painter.restore()

    def wheelEvent(self, event: QWheelEvent) -> None:
        factor = 1.0015 ** event.angleDelta().y()
        new_zoom = min(max(self.zoom * factor, self.MIN_ZOOM), self.MAX_ZOOM)
        self.scale(new_zoom / self.zoom, new_zoom / self.zoom)

    def zoom_by(self, factor: float) -> None:
        new_zoom = min(max(self.zoom * factor, self.MIN_ZOOM), self.MAX_ZOOM)
        self.scale(new_zoom / self.zoom, new_zoom / self.zoom)

    READABLE_ZOOM = 0.72  # below this, node text is too small to read

    def fit(self, readable: bool = False) -> None:
        """Show the whole topology, no larger than 1.15x.

        With ``readable`` (as when a file opens) a big topology is shown at the
        smallest zoom whose text can still be read, around its middle, instead.
        """
        rect = self.scene().sceneRect()
        if rect.isEmpty():
            return
        self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        if self.zoom > 1.15:
            self.scale(1.15 / self.zoom, 1.15 / self.zoom)
        if readable and self.zoom < self.READABLE_ZOOM:
            self.scale(self.READABLE_ZOOM / self.zoom, self.READABLE_ZOOM / self.zoom)
            self.centerOn(rect.center())
