"""The canvas scene: items kept in step with the topology model.

:meth:`TopologyScene.sync` makes the items match a topology: nodes that stay
keep their item (and their selection), new nodes get one, gone ones lose it;
edges are drawn afresh. The scene reports what a person does (nodes moved, a
connection asked for) through signals; it never changes the model.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Signal
from PySide6.QtGui import QBrush, QColor, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QGraphicsItem, QGraphicsScene, QWidget

from engine.edits import model_binding_id
from engine.live import LiveOverlay
from engine.model import BUILTIN_EXCHANGES, Exchange, Topology, display_name, expand_template, node_id, split_node_id
from engine.routing import EXCHANGE_TYPES
from engine.sim import UNKNOWN_TYPE, Simulation

from .details import C, P, Q, X, binding_label, consumer_detail, exchange_detail, producer_detail, queue_detail
from .edges import EdgeItem, TokenLayer
from .items import NODE_CLASSES, ExchangeItem, NodeItem, QueueItem
from .style import CANVAS_BACKGROUND, CANVAS_GRID

GRID = 24


class TopologyScene(QGraphicsScene):
    """Nodes and edges for one topology; ``edge_for`` maps a flow event's (source, target) to its edge."""

    MARGIN = 90.0

    nodes_moved = Signal(dict)  # {node id: (x, y)} after a drag, once per drag

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.nodes: dict[str, NodeItem] = {}
        self.edges: list[EdgeItem] = []
        self.edge_for: dict[tuple[str, str], EdgeItem] = {}
        self.edge_by_id: dict[str, EdgeItem] = {}
        self.topology: Topology | None = None  # the document's
        self.live: LiveOverlay | None = None  # what real clients add, while the listener is open
        self.snap_grid = 0  # 0: free placement; else positions snap to this grid
        self.content_rect = QRectF()  # what the nodes and edges cover, without the scrolling margin
        self.tokens = TokenLayer()
        self.addItem(self.tokens)
        self.setBackgroundBrush(self._grid_brush())

    # -- following the model -----------------------------------------------------------------

    def show_topology(self, topology: Topology, live: LiveOverlay | None = None) -> None:
        """A different document: start from an empty scene."""
        for item in list(self.nodes.values()):
            self.removeItem(item)
        self.nodes = {}
        self.sync(topology, live)

    def sync(self, topology: Topology, live: LiveOverlay | None = None) -> None:
        """Items for ``topology``; with ``live``, for what real clients brought as well."""
        self.topology = topology
        self.live = live
        shown = live.topology if live is not None else topology
        live_ids = live.live_ids if live is not None else set()
        selected_edges = {e.edge_id for e in self.edges if e.isSelected() and e.edge_id}
        wanted = shown.node_ids()
        for nid in list(self.nodes):
            if nid not in wanted:
                self.removeItem(self.nodes.pop(nid))
        exchange_types = self._exchange_types(shown)
        several_vhosts = len({split_node_id(n)[1] for n in wanted}) > 1
        for nid in wanted:
            item = self.nodes.get(nid)
            kind, vhost, name = split_node_id(nid)
            title, detail = self._describe(shown, nid, exchange_types)
            if live is not None and nid in live.details:
                detail = live.details[nid]
            if item is None:
                item = NODE_CLASSES[kind](nid, title, detail)
                self.addItem(item)
                self.nodes[nid] = item
            else:
                item.set_title(title, detail)
            item.set_vhost(vhost if several_vhosts else None)
            item.set_live(nid in live_ids)
            item.setOpacity(live.fading.get(nid, 1.0) if live is not None else 1.0)
            if isinstance(item, ExchangeItem):
                item.set_dimmed(exchange_types.get(nid) not in EXCHANGE_TYPES)
                item.renamable = topology.exchange(vhost, name) is not None
            if isinstance(item, QueueItem):
                queue = shown.queue(vhost, name)
                item.set_dimmed(queue is not None and queue.queue_type == "stream")
            x, y = shown.layout.get(nid, (0.0, 0.0))
            if (item.pos().x(), item.pos().y()) != (x, y) and not item.isUnderMouse():
                item.setPos(x, y)
        self._rebuild_edges(shown, exchange_types)
        for edge_id in selected_edges:
            if edge_id in self.edge_by_id:
                self.edge_by_id[edge_id].setSelected(True)
        self.fit_scene_rect()

    def fit_scene_rect(self) -> None:
        bounds = QRectF()
        for item in [*self.nodes.values(), *self.edges]:
            bounds = bounds.united(item.sceneBoundingRect())
        if bounds.isEmpty():
            bounds = QRectF(-400, -250, 800, 500)
        self.tokens.set_area(bounds)
        self.content_rect = bounds
        rect = bounds.adjusted(-self.MARGIN, -self.MARGIN, self.MARGIN, self.MARGIN)
        # What a view shows stays inside the scene: otherwise Qt re-centres a scene smaller
        # than its view after every edit, and the canvas jumps under the mouse.
        for view in self.views():
            rect = rect.united(view.mapToScene(view.viewport().rect()).boundingRect())
        self.setSceneRect(rect)

    @staticmethod
    def _exchange_types(topology: Topology) -> dict[str, str]:
        types = {x.id: x.type for x in topology.exchanges}
        for nid in topology.implicit_exchange_ids():
            types[nid] = BUILTIN_EXCHANGES.get(split_node_id(nid)[2], UNKNOWN_TYPE)
        return types

    @staticmethod
    def _describe(topology: Topology, nid: str, exchange_types: dict[str, str]) -> tuple[str, str]:
        kind, vhost, name = split_node_id(nid)
        title = display_name(kind, name)
        if kind == "producer":
            producer = next(p for p in topology.producers if p.id == nid)
            return title, producer_detail(producer)
        if kind == "exchange":
            exchange: Exchange | None = topology.exchange(vhost, name)
            exchange_type = exchange_types.get(nid, UNKNOWN_TYPE)
            if exchange is not None:
                return title, exchange_detail(exchange_type, exchange.internal)
            if name in BUILTIN_EXCHANGES:
                return title, exchange_detail(exchange_type) + " · built in"
            return title, "not in the file · type unknown"
        if kind == "queue":
            queue = topology.queue(vhost, name)
            assert queue is not None
            return title, queue_detail(queue)
        consumer = next(c for c in topology.consumers if c.id == nid)
        return title, consumer_detail(consumer)

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

    def show_fault_state(self, sim: Simulation) -> None:
        """Killed consumers drawn faded; bindings a fault removed drawn as gone."""
        for nid, item in self.nodes.items():
            if item.kind == "consumer":
                consumer = sim.consumers.get(nid)
                item.set_dimmed(consumer is not None and consumer.killed)
        for edge in self.edges:
            edge.set_removed(edge.edge_id in sim.unbound)

    def show_problems(self, problems: dict[str, list[str]]) -> None:
        for nid, item in self.nodes.items():
            item.set_problems(problems.get(nid, []))

    # -- edges --------------------------------------------------------------------------------

    def _rebuild_edges(self, topology: Topology, exchange_types: dict[str, str]) -> None:
        for edge in self.edges:
            if edge.label_item is not None:
                self.removeItem(edge.label_item)
            self.removeItem(edge)
        for item in self.nodes.values():
            item.edges.clear()
        self.tokens.tokens.clear()
        self.edges, self.edge_for, self.edge_by_id = [], {}, {}
        self._add_edges(topology, exchange_types)
        if self.live is not None:
            for relation, source, target, label in self.live.extra_edges:
                if (source, target) not in self.edge_for:
                    self._edge(relation, source, target, (source, target), label)
        for edge in self.edges:
            live = edge.edge_id in self.live.live_ids if self.live is not None else False
            edge.setOpacity(min(edge.source.opacity(), edge.target.opacity()))
            if edge.label_item is not None:
                edge.label_item.setOpacity(edge.opacity())
            edge.live = live or edge.source.live or edge.target.live
        self._spread_parallel_edges()
        self._route_around_nodes()

    def _edge(
        self,
        relation: str,
        source: str | None,
        target: str | None,
        key: tuple[str, str],
        label: str = "",
        edge_id: str = "",
    ) -> None:
        if source not in self.nodes or target not in self.nodes:
            return
        assert source is not None and target is not None
        edge = EdgeItem(relation, self.nodes[source], self.nodes[target], label, edge_id)
        # The counter that measures this edge's traffic: (node or binding id, index).
        edge.rate_key = {
            "publishes": (source, P["published"]),
            "binding": (key[1], 0),
            "consumes": (target, C["delivered"]),
            "dead-letter": (source, Q["dead_lettered"]),
            "alternate": (source, X["alternated"]),
            "default": (target, Q["enqueued"]),
        }[relation]
        self.addItem(edge)
        if edge.label_item is not None:
            self.addItem(edge.label_item)
        self.edges.append(edge)
        self.edge_for[key] = edge
        if edge_id:
            self.edge_by_id[edge_id] = edge

    def _add_edges(self, topology: Topology, exchange_types: dict[str, str]) -> None:
        for producer in topology.producers:
            if producer.exchange_id is None:
                continue
            self._edge(
                "publishes",
                producer.id,
                producer.exchange_id,
                (producer.id, producer.exchange_id),
                producer.routing_key,
                f"publishes:{producer.id}",
            )
        for binding in topology.bindings:
            bid = model_binding_id(binding)
            label = binding_label(
                exchange_types.get(binding.source_id, "direct"), binding.routing_key, binding.arguments
            )
            self._edge("binding", binding.source_id, binding.destination_id, (binding.source_id, bid), label, bid)
        for consumer in topology.consumers:
            if consumer.queue_id is None:
                continue
            self._edge(
                "consumes",
                consumer.queue_id,
                consumer.id,
                (consumer.queue_id, consumer.id),
                edge_id=f"consumes:{consumer.id}",
            )
        for queue in topology.queues:
            dlx = queue.arguments.get("x-dead-letter-exchange")
            if isinstance(dlx, str):
                target = node_id("exchange", queue.vhost, dlx)
                dlrk = queue.arguments.get("x-dead-letter-routing-key")
                label = f"dead letters → {dlrk}" if dlrk else "dead letters"
                self._edge("dead-letter", queue.id, target, (queue.id, target), label, f"dead-letter:{queue.id}")
        for exchange in topology.exchanges:
            alternate = exchange.arguments.get("alternate-exchange")
            if isinstance(alternate, str):
                target = node_id("exchange", exchange.vhost, alternate)
                self._edge(
                    "alternate", exchange.id, target, (exchange.id, target), "alternate", f"alternate:{exchange.id}"
                )
        # The default exchange reaches a queue by its name: draw the queues a producer names.
        for producer in topology.producers:
            if producer.exchange != "" or producer.exchange_id is None:
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

    # -- what a person did ----------------------------------------------------------------------

    def selected_node_ids(self) -> list[str]:
        return [item.node_id for item in self.selectedItems() if isinstance(item, NodeItem)]

    def selected_edge_ids(self) -> list[str]:
        return [item.edge_id for item in self.selectedItems() if isinstance(item, EdgeItem) and item.edge_id]

    def select_only(self, ids: list[str]) -> None:
        self.clearSelection()
        for nid in ids:
            target: QGraphicsItem | None = self.nodes.get(nid) or self.edge_by_id.get(nid)
            if target is not None:
                target.setSelected(True)

    def node_at(self, scene_pos: QPointF) -> NodeItem | None:
        for item in self.items(scene_pos):
            if isinstance(item, NodeItem):
                return item
        return None

    @staticmethod
    def _grid_brush() -> QBrush:
        """A dotted grid, as a tiled pixmap: drawing it costs nothing per frame."""
        tile = QPixmap(GRID, GRID)
        tile.fill(QColor(CANVAS_BACKGROUND))
        painter = QPainter(tile)
        painter.setPen(QPen(QColor(CANVAS_GRID), 2.0))
        painter.drawPoint(QPointF(1, 1))  # on the snapping grid: node centres land on dots
        painter.end()
        return QBrush(tile)
