"""Canvas items for nodes: one shape per kind.

Items are views: they draw what they are told (a title, a live status line, a
rate) and hold no truth about the topology.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPen, QPolygonF
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QGraphicsItem, QGraphicsSceneHoverEvent, QStyleOptionGraphicsItem, QWidget

from .style import KIND_COLORS, MUTED_TEXT, NODE_HEIGHT, NODE_WIDTH, TEXT, icon_path

if TYPE_CHECKING:
    from .edges import EdgeItem

_renderers: dict[str, QSvgRenderer] = {}


def _icon(kind: str) -> QSvgRenderer:
    renderer = _renderers.get(kind)
    if renderer is None:
        renderer = _renderers[kind] = QSvgRenderer(icon_path(kind))
    return renderer


def _font(point_size: float, bold: bool = False) -> QFont:
    font = QFont()
    font.setPointSizeF(point_size)
    font.setBold(bold)
    return font


TITLE_FONT = _font(9.5, bold=True)
MARK_FONT = _font(7.5, bold=True)
DETAIL_FONT = _font(8.0)
LABEL_FONT = _font(7.5)
LIVE_TAG = "LIVE"
LIVE_COLOR = "#00897b"


class NodeItem(QGraphicsItem):
    """A node on the canvas: outline, icon, title, a detail line and a live status line.

    It can be selected and dragged; its output port (the dot on its right edge,
    shown on hover) starts a connection. It reports moves to its scene, which
    keeps its edges attached; it never changes the model itself.
    """

    kind = "node"
    PORT_RADIUS = 7.0

    def __init__(self, node_id: str, title: str, detail: str = "") -> None:
        super().__init__()
        self.node_id = node_id
        self._title = title
        self._detail = detail
        self._status = ""
        self._dimmed = False
        self._vhost: str | None = None
        self._hovered = False
        self._problems: list[str] = []
        self._live = False
        self.renamable = True  # built-in exchanges, say, keep their names
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsMovable)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemSendsGeometryChanges)
        self.setAcceptHoverEvents(True)
        self.setZValue(2)
        # Tokens repaint the canvas every frame; a node is drawn again only when it changes.
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.edges: list[EdgeItem] = []
        self._update_tooltip()

    # -- geometry --------------------------------------------------------------------

    def boundingRect(self) -> QRectF:
        return QRectF(-NODE_WIDTH / 2 - 12, -NODE_HEIGHT / 2 - 12, NODE_WIDTH + 24, NODE_HEIGHT + 16)

    def outline(self) -> QPainterPath:
        path = QPainterPath()
        path.addRoundedRect(QRectF(-NODE_WIDTH / 2, -NODE_HEIGHT / 2, NODE_WIDTH, NODE_HEIGHT), 8, 8)
        return path

    def shape(self) -> QPainterPath:
        path = self.outline()
        if self.has_port:
            port = QPainterPath()
            port.addEllipse(QPointF(NODE_WIDTH / 2, 0), self.PORT_RADIUS + 2, self.PORT_RADIUS + 2)
            path = path.united(port)  # the whole dot, also where it overlaps the body
        return path

    def out_port(self) -> QPointF:
        return self.pos() + QPointF(NODE_WIDTH / 2, 0)

    def in_port(self) -> QPointF:
        return self.pos() + QPointF(-NODE_WIDTH / 2, 0)

    @property
    def has_port(self) -> bool:
        """Whether connections can start here (a consumer only receives; a live node is not the document's)."""
        return not self._live

    def on_port(self, scene_pos: QPointF) -> bool:
        """Whether a press at ``scene_pos`` grabs the output port."""
        if not self.has_port:
            return False
        port = self.out_port()
        return (scene_pos - port).manhattanLength() <= self.PORT_RADIUS * 2

    def itemChange(self, change: QGraphicsItem.GraphicsItemChange, value: Any) -> Any:
        if change == QGraphicsItem.GraphicsItemChange.ItemPositionChange:
            scene = self.scene()
            grid = getattr(scene, "snap_grid", 0) if scene is not None else 0
            if grid:
                return QPointF(round(value.x() / grid) * grid, round(value.y() / grid) * grid)
        elif change == QGraphicsItem.GraphicsItemChange.ItemPositionHasChanged:
            for edge in self.edges:
                edge.follow_nodes()
        return super().itemChange(change, value)

    def hoverEnterEvent(self, event: QGraphicsSceneHoverEvent) -> None:
        self._hovered = True
        self.update()
        super().hoverEnterEvent(event)

    def hoverLeaveEvent(self, event: QGraphicsSceneHoverEvent) -> None:
        self._hovered = False
        self.update()
        super().hoverLeaveEvent(event)

    # -- state -------------------------------------------------------------------------

    def set_title(self, title: str, detail: str) -> None:
        if (title, detail) != (self._title, self._detail):
            self._title, self._detail = title, detail
            self._update_tooltip()
            self.update()

    @property
    def title(self) -> str:
        return self._title

    @property
    def detail(self) -> str:
        return self._detail

    def set_vhost(self, vhost: str | None) -> None:
        """Several vhosts on one canvas: each node says which one it lives in."""
        if vhost != self._vhost:
            self._vhost = vhost
            self._update_tooltip()
            self.update()

    def set_problems(self, problems: list[str]) -> None:
        """A badge on the node for each problem the analysis found with it."""
        if problems != self._problems:
            self._problems = list(problems)
            self._update_tooltip()
            self.update()

    @property
    def problems(self) -> list[str]:
        return list(self._problems)

    def _update_tooltip(self) -> None:
        lines = [f"{self.kind}: {self._title}", self._detail]
        if self._vhost is not None:
            lines.append(f"vhost: {self._vhost}")
        lines += [f"⚠ {problem}" for problem in self._problems]
        self.setToolTip("\n".join(line for line in lines if line))

    def set_status(self, status: str) -> None:
        if status != self._status:
            self._status = status
            self.update()

    @property
    def status(self) -> str:
        return self._status

    def set_live(self, live: bool) -> None:
        """A real client, or something one declared: drawn dashed, tagged, not editable here."""
        if live != self._live:
            self._live = live
            self.update()

    @property
    def live(self) -> bool:
        return self._live

    def set_dimmed(self, dimmed: bool) -> None:
        """Drawn faded: something Queuecraft shows but does not simulate."""
        if dimmed != self._dimmed:
            self._dimmed = dimmed
            self.update()

    # -- painting ----------------------------------------------------------------------

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        fill, border, accent = KIND_COLORS[self.kind]
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        selected = self.isSelected()
        pen = QPen(QColor(accent if selected else border), 2.6 if selected else 1.4)
        if self._live:
            pen.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(pen)
        brush = QBrush(QColor(fill))
        if self._dimmed:
            brush = QBrush(QColor(fill).lighter(104), Qt.BrushStyle.BDiagPattern)
            painter.fillPath(self.outline(), QColor("#ffffff"))
        painter.setBrush(brush)
        painter.drawPath(self.outline())
        self.paint_decoration(painter, accent)
        left = -NODE_WIDTH / 2 + self.text_left()
        width = NODE_WIDTH / 2 - self.text_right() - left
        _icon(self.kind).render(painter, QRectF(-NODE_WIDTH / 2 + self.text_left() - 30, -NODE_HEIGHT / 2 + 9, 22, 22))
        self._text(painter, TITLE_FONT, TEXT, self._title, left, -NODE_HEIGHT / 2 + 6, width)
        self._text(painter, DETAIL_FONT, MUTED_TEXT, self._detail, left, -NODE_HEIGHT / 2 + 24, width)
        if self._status:
            self._text(
                painter, DETAIL_FONT, TEXT, self._status, -NODE_WIDTH / 2 + 12, -NODE_HEIGHT / 2 + 38, NODE_WIDTH - 24
            )
        if self._vhost is not None:
            self._paint_vhost_tag(painter, accent)
        if self._live:
            self._paint_live_tag(painter)
        if self._problems:
            self._paint_badge(painter)
        if self.has_port and (self._hovered or selected):
            painter.setPen(QPen(QColor("#ffffff"), 1.5))
            painter.setBrush(QColor(accent))
            painter.drawEllipse(QPointF(NODE_WIDTH / 2, 0), self.PORT_RADIUS - 1.5, self.PORT_RADIUS - 1.5)

    def _paint_vhost_tag(self, painter: QPainter, accent: str) -> None:
        metrics = QFontMetricsF(LABEL_FONT)
        text = metrics.elidedText(self._vhost or "", Qt.TextElideMode.ElideMiddle, 90)
        width = metrics.horizontalAdvance(text) + 10
        height = metrics.height() + 2
        tag = QRectF(NODE_WIDTH / 2 - width - 14, -NODE_HEIGHT / 2 - height / 2, width, height)
        painter.setPen(QPen(QColor(accent), 0.8))
        painter.setBrush(QColor("#ffffff"))
        painter.drawRoundedRect(tag, 4, 4)
        painter.setFont(LABEL_FONT)
        painter.setPen(QColor(accent))
        painter.drawText(tag, Qt.AlignmentFlag.AlignCenter, text)

    def _paint_live_tag(self, painter: QPainter) -> None:
        metrics = QFontMetricsF(MARK_FONT)
        width = metrics.horizontalAdvance(LIVE_TAG) + 10
        height = metrics.height() + 2
        tag = QRectF(-NODE_WIDTH / 2 + 14, -NODE_HEIGHT / 2 - height / 2, width, height)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(LIVE_COLOR))
        painter.drawRoundedRect(tag, 4, 4)
        painter.setFont(MARK_FONT)
        painter.setPen(QColor("#ffffff"))
        painter.drawText(tag, Qt.AlignmentFlag.AlignCenter, LIVE_TAG)

    def _paint_badge(self, painter: QPainter) -> None:
        centre = QPointF(-NODE_WIDTH / 2 + 2, -NODE_HEIGHT / 2 + 2)
        triangle = QPolygonF([centre + QPointF(0, -8), centre + QPointF(8, 6), centre + QPointF(-8, 6)])
        painter.setPen(QPen(QColor("#ffffff"), 1.2))
        painter.setBrush(QColor("#f57c00"))
        painter.drawPolygon(triangle)
        painter.setPen(QColor("#ffffff"))
        painter.setFont(LABEL_FONT)
        painter.drawText(QRectF(centre.x() - 4, centre.y() - 5, 8, 11), Qt.AlignmentFlag.AlignCenter, "!")

    def text_left(self) -> float:
        return 42.0

    def text_right(self) -> float:
        return 10.0

    def paint_decoration(self, painter: QPainter, accent: str) -> None:
        """Kind-specific drawing under the text (depth bar, busy light, ...)."""

    @staticmethod
    def _text(painter: QPainter, font: QFont, color: str, text: str, x: float, y: float, width: float) -> None:
        if not text:
            return
        metrics = QFontMetricsF(font)
        painter.setFont(font)
        painter.setPen(QColor(color))
        elided = metrics.elidedText(text, Qt.TextElideMode.ElideRight, width)
        painter.drawText(
            QRectF(x, y, width, metrics.height()), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, elided
        )


def _arrow_box(notch: float) -> QPainterPath:
    w, h = NODE_WIDTH / 2, NODE_HEIGHT / 2
    polygon = QPolygonF([QPointF(-w, -h), QPointF(w - notch, -h), QPointF(w, 0), QPointF(w - notch, h), QPointF(-w, h)])
    path = QPainterPath()
    path.addPolygon(polygon)
    path.closeSubpath()
    return path


class ProducerItem(NodeItem):
    kind = "producer"

    def outline(self) -> QPainterPath:
        return _arrow_box(16)

    def text_right(self) -> float:
        return 18.0


class ExchangeItem(NodeItem):
    kind = "exchange"

    def __init__(self, node_id: str, title: str, exchange_type: str) -> None:
        super().__init__(node_id, title, exchange_type)
        self.exchange_type = exchange_type

    def outline(self) -> QPainterPath:
        w, h, cut = NODE_WIDTH / 2, NODE_HEIGHT / 2, 16
        polygon = QPolygonF(
            [
                QPointF(-w + cut, -h),
                QPointF(w - cut, -h),
                QPointF(w, 0),
                QPointF(w - cut, h),
                QPointF(-w + cut, h),
                QPointF(-w, 0),
            ]
        )
        path = QPainterPath()
        path.addPolygon(polygon)
        path.closeSubpath()
        return path

    def text_left(self) -> float:
        return 50.0

    def text_right(self) -> float:
        return 18.0


class QueueItem(NodeItem):
    kind = "queue"
    BAR_HEIGHT = 6.0

    def __init__(self, node_id: str, title: str, detail: str) -> None:
        super().__init__(node_id, title, detail)
        self._fill = 0.0
        self._over = False

    def outline(self) -> QPainterPath:
        path = QPainterPath()
        path.addRoundedRect(QRectF(-NODE_WIDTH / 2, -NODE_HEIGHT / 2, NODE_WIDTH, NODE_HEIGHT), 4, 4)
        return path

    def set_depth(self, depth: int, scale: int) -> None:
        """The depth bar shows ``depth`` out of ``scale`` (a limit, or a round number above it)."""
        fill = min(depth / scale, 1.0) if scale > 0 else 0.0
        over = scale > 0 and depth >= scale
        if (fill, over) != (self._fill, self._over):
            self._fill, self._over = fill, over
            self.update()

    @property
    def depth_fill(self) -> float:
        return self._fill

    def paint_decoration(self, painter: QPainter, accent: str) -> None:
        bar = QRectF(-NODE_WIDTH / 2 + 8, NODE_HEIGHT / 2 - self.BAR_HEIGHT - 4, NODE_WIDTH - 16, self.BAR_HEIGHT)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor("#ffffff"))
        painter.drawRoundedRect(bar, 2, 2)
        if self._fill > 0:
            filled = QRectF(bar.left(), bar.top(), max(bar.width() * self._fill, 2.0), bar.height())
            painter.setBrush(QColor("#e53935" if self._over else accent))
            painter.drawRoundedRect(filled, 2, 2)
        painter.setPen(QPen(QColor("#90caf9"), 0.8))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(bar, 2, 2)


class ConsumerItem(NodeItem):
    kind = "consumer"

    @property
    def has_port(self) -> bool:
        return False

    def __init__(self, node_id: str, title: str, detail: str) -> None:
        super().__init__(node_id, title, detail)
        self._busy = False

    def outline(self) -> QPainterPath:
        path = QPainterPath()
        path.addRoundedRect(QRectF(-NODE_WIDTH / 2, -NODE_HEIGHT / 2, NODE_WIDTH, NODE_HEIGHT), 16, 16)
        return path

    def set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.update()

    def text_right(self) -> float:
        return 22.0

    def paint_decoration(self, painter: QPainter, accent: str) -> None:
        painter.setPen(QPen(QColor("#ffffff"), 1.5))
        painter.setBrush(QColor("#43a047" if self._busy else "#b0bec5"))
        painter.drawEllipse(QPointF(NODE_WIDTH / 2 - 14, -NODE_HEIGHT / 2 + 14), 5, 5)


NODE_CLASSES = {"producer": ProducerItem, "exchange": ExchangeItem, "queue": QueueItem, "consumer": ConsumerItem}
