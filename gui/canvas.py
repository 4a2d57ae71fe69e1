"""The canvas: a scene drawn from the topology model, and the view that shows it."""

from __future__ import annotations

from PySide6.QtCore import QPointF, Qt
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
from engine.routing import EXCHANGE_TYPES, binding_id
from engine.sim import COUNTERS

from .items import ConsumerItem, EdgeItem, ExchangeItem, NodeItem, ProducerItem, QueueItem, TokenLayer
from .style import CANVAS_BACKGROUND, CANVAS_GRID

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
    if exchange_type not in EXCHANGE_TYPES:
        parts.append("not simulated")
    if internal:
        parts.append("internal")
    return " · ".join(parts)


def queue_detail(queue: Queue) -> str:
    args = queue.arguments
    parts = [queue.queue_type if queue.queue_type != "classic" else ("durable" if queue.durable else "transient")]
    if "x-message-ttl" in args:
        parts.append(f"TTL {_duration(args['x-message-ttl'])}")
    if "x-max-length" in args:
        parts.append(f"max {args['x-max-length']}")
    if "x-max-priority" in args:
        parts.append(f"priority ≤{args['x-max-priority']}")
    if queue.auto_delete:
        parts.append("auto-delete")
    return " · ".join(parts)


def consumer_detail(consumer: Consumer) -> str:
    prefetch = "unlimited" if consumer.prefetch == 0 else str(consumer.prefetch)
    detail = f"prefetch {prefetch} · {_duration(consumer.work_ms)}"
    if consumer.ack_mode == "auto":
        detail += " · auto-ack"
    return detail


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
        self.tokens = TokenLayer()
        self.addItem(self.tokens)
        self.setBackgroundBrush(self._grid_brush())

    def show_topology(self, topology: Topology) -> None:
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
        bounds = self.itemsBoundingRect()
        self.tokens.set_area(bounds)
        self.setSceneRect(bounds.adjusted(-self.MARGIN, -self.MARGIN, self.MARGIN, self.MARGIN))

    def _node_item(self, topology: Topology, nid: str, exchange_types: dict[str, str]) -> NodeItem:
        kind, vhost, name = split_node_id(nid)
        multi_vhost = len(set(topology.vhost_names())) > 1
        title = display_name(kind, name)
        if multi_vhost:
            title = f"{title}  [{vhost}]"
        if kind == "producer":
            producer = next(p for p in topology.producers if p.id == nid)
            return ProducerItem(nid, title, producer_detail(producer))
        if kind == "exchange":
            exchange: Exchange | None = topology.exchange(vhost, name)
            exchange_type = exchange.type if exchange else BUILTIN_EXCHANGES.get(name, "direct")
            exchange_types[nid] = exchange_type
            detail = exchange_detail(exchange_type, exchange.internal if exchange else False)
            if exchange is None:
                detail += " · built in"
            item = ExchangeItem(nid, title, exchange_type)
            item.set_title(title, detail)
            item.set_dimmed(exchange_type not in EXCHANGE_TYPES)
            return item
        if kind == "queue":
            queue = topology.queue(vhost, name)
            assert queue is not None
            item = QueueItem(nid, title, queue_detail(queue))
            item.set_dimmed(queue.queue_type == "stream")
            return item
        consumer = next(c for c in topology.consumers if c.id == nid)
        return ConsumerItem(nid, title, consumer_detail(consumer))

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

    @property
    def zoom(self) -> float:
        return self.transform().m11()

    def wheelEvent(self, event: QWheelEvent) -> None:
        factor = 1.0015 ** event.angleDelta().y()
        new_zoom = min(max(self.zoom * factor, self.MIN_ZOOM), self.MAX_ZOOM)
        self.scale(new_zoom / self.zoom, new_zoom / self.zoom)

    def zoom_by(self, factor: float) -> None:
        new_zoom = min(max(self.zoom * factor, self.MIN_ZOOM), self.MAX_ZOOM)
        self.scale(new_zoom / self.zoom, new_zoom / self.zoom)

    def fit(self) -> None:
        """Show the whole topology, no larger than 1.15x."""
        rect = self.scene().sceneRect()
        if rect.isEmpty():
            return
        self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        if self.zoom > 1.15:
            self.scale(1.15 / self.zoom, 1.15 / self.zoom)
