"""Edges between nodes, their key labels, and the tokens that travel along them."""

from __future__ import annotations

import math
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFontMetricsF, QPainter, QPainterPath, QPainterPathStroker, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from .items import LABEL_FONT, MARK_FONT, NodeItem
from .style import EDGE_STYLES, NODE_HEIGHT, NODE_WIDTH, TEXT


class EdgeItem(QGraphicsItem):
    """A relation drawn as a curve from one node's out port to another's in port.

    Its thickness follows the message rate on it, so the picture stays truthful
    when there are more messages than tokens can show.
    """

    SAMPLES = 24

    def __init__(self, relation: str, source: NodeItem, target: NodeItem, label: str = "", edge_id: str = "") -> None:
        super().__init__()
        self.edge_id = edge_id  # engine.edits' id for the relation ("" for drawn-only edges)
        self.relation = relation
        self.source = source
        self.target = target
        self.label = label
        self.rate = 0.0
        self.pulsing = False  # too busy for tokens: the token layer draws it flowing
        self.removed = False  # unbound by a fault while running
        self.live = False  # a real client's, or declared by one: not the document's
        self.rate_key: tuple[str, int] | None = None
        self.lane = 0.0  # parallel edges between the same two nodes bow apart by lane
        self.waypoints: list[QPointF] = []  # detours around nodes in the way
        self._width = 1.4
        self._path = QPainterPath()
        self._points: list[QPointF] = []
        self._lengths: list[float] = []
        self.label_item = EdgeLabelItem(self) if label else None
        self.setZValue(0)
        if edge_id:
            self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        source.edges.append(self)
        target.edges.append(self)
        self.update_path()

    def update_path(self) -> None:
        self.prepareGeometryChange()
        start, end = self.source.out_port(), self.target.in_port()
        path = QPainterPath(start)
        bow = self.lane * 26.0
        if end.x() > start.x() + 30 and self.waypoints:
            # Through each waypoint with a horizontal tangent: smooth S-curves around obstacles.
            previous = start
            for point in [*self.waypoints, end]:
                bend = max((point.x() - previous.x()) * 0.5, 20.0)
                path.cubicTo(previous + QPointF(bend, 0), point - QPointF(bend, 0), point)
                previous = point
        elif end.x() > start.x() + 30:
            bend = max((end.x() - start.x()) * 0.5, 40.0)
            path.cubicTo(start + QPointF(bend, bow), end - QPointF(bend, -bow), end)
        else:
            # A relation that runs backwards (a dead-letter exchange to the left, say)
            # swings below both nodes so it does not cut through them.
            drop = max(start.y(), end.y()) + NODE_HEIGHT * 1.1 + abs(bow)
            path.cubicTo(
                start + QPointF(90, 0), QPointF(start.x() + 90, drop), QPointF((start.x() + end.x()) / 2, drop)
            )
            path.cubicTo(QPointF(end.x() - 90, drop), end - QPointF(90, 0), end)
        self._path = path
        self._dense: list[QPointF] | None = None
        self._points = [path.pointAtPercent(i / self.SAMPLES) for i in range(self.SAMPLES + 1)]
        lengths = [0.0]
        for a, b in zip(self._points, self._points[1:], strict=False):
            lengths.append(lengths[-1] + math.hypot(b.x() - a.x(), b.y() - a.y()))
        self._lengths = lengths
        if self.label_item is not None:
            self.label_item.place()

    def follow_nodes(self) -> None:
        """A node at either end is being dragged: a plain curve until the drop settles the route."""
        self.waypoints = []
        self.update_path()

    def avoid(self, obstacles: list[QRectF], labels: list[QRectF] | None = None) -> None:
        """Detour above or below nodes the edge would otherwise pass behind; keep the label clear of both.

        Only nodes near the edge are looked at, so the cost follows what is around it, not
        the size of the topology.
        """
        self.waypoints = []
        self.update_path()
        start, end = self.source.out_port(), self.target.in_port()
        reach = self._path.boundingRect().adjusted(-60, -60, 60, 60)
        near = sorted((box for box in obstacles if box.intersects(reach)), key=lambda b: b.left())
        for _ in range(3 if end.x() > start.x() + 30 and near else 0):
            hit = next((box for box in near if self._crosses(box)), None)
            if hit is None:
                break
            margin = 16.0
            above = QPointF(hit.center().x(), hit.top() - margin)
            below = QPointF(hit.center().x(), hit.bottom() + margin)
            line_y = start.y() + (end.y() - start.y()) * (hit.center().x() - start.x()) / (end.x() - start.x())
            waypoint = above if abs(line_y - above.y()) <= abs(line_y - below.y()) else below
            self.waypoints = sorted([*self.waypoints, waypoint], key=lambda p: p.x())
            self.update_path()
        if self.label_item is not None:
            area = self._path.boundingRect().adjusted(-160, -60, 160, 60)
            self.label_item.place([box for box in [*obstacles, *(labels or [])] if box.intersects(area)])

    def _crosses(self, box: QRectF) -> bool:
        inner = box.adjusted(4, 4, -4, -4)
        if not inner.intersects(self._path.boundingRect()):
            return False
        return any(inner.contains(point) for point in self._dense_points())

    def _dense_points(self) -> list[QPointF]:
        if self._dense is None:
            self._dense = [self._path.pointAtPercent(i / 60) for i in range(61)]
        return self._dense

    def point_at(self, fraction: float) -> QPointF:
        """The point ``fraction`` of the way along the edge, by length."""
        lengths = self._lengths
        total = lengths[-1]
        if total <= 0:
            return self._points[0]
        goal = min(max(fraction, 0.0), 1.0) * total
        lo, hi = 0, len(lengths) - 1
        while lo < hi - 1:
            mid = (lo + hi) // 2
            if lengths[mid] < goal:
                lo = mid
            else:
                hi = mid
        span = lengths[hi] - lengths[lo]
        t = 0.0 if span <= 0 else (goal - lengths[lo]) / span
        a, b = self._points[lo], self._points[hi]
        return QPointF(a.x() + (b.x() - a.x()) * t, a.y() + (b.y() - a.y()) * t)

    def set_removed(self, removed: bool) -> None:
        """A binding a fault took away from the running broker: drawn faint until it is back."""
        if removed != self.removed:
            self.removed = removed
            self.update()
            if self.label_item is not None:
                self.label_item.update()

    def set_rate(self, rate: float) -> None:
        width = 1.4 + min(math.log2(1.0 + max(rate, 0.0)) * 0.7, 9.0)
        self.rate = rate
        if abs(width - self._width) > 0.15:
            self.prepareGeometryChange()
            self._width = width
            self.update()

    @property
    def width(self) -> float:
        return self._width

    def path(self) -> QPainterPath:
        return self._path

    def boundingRect(self) -> QRectF:
        margin = self._width + 8
        return self._path.boundingRect().adjusted(-margin, -margin, margin, margin)

    def shape(self) -> QPainterPath:
        stroker = QPainterPathStroker()
        stroker.setWidth(max(self._width, 8.0))
        return stroker.createStroke(self._path)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        color, dash = EDGE_STYLES[self.relation]
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if self.isSelected():
            glow = QPen(QColor("#ffb300"), self._width + 6)
            glow.setCapStyle(Qt.PenCapStyle.RoundCap)
            painter.setPen(glow)
            painter.drawPath(self._path)
        if self.removed:
            color, dash = "#cfd8dc", [2.0, 4.0]
        pen = QPen(QColor(color), self._width)
        pen.setCapStyle(Qt.PenCapStyle.FlatCap)
        if dash:
            pen.setDashPattern([d / max(self._width / 1.4, 1.0) for d in dash])
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(self._path)
        self._paint_arrow(painter, QColor(color))

    def _paint_arrow(self, painter: QPainter, color: QColor) -> None:
        tip = self._points[-1]
        back = self.point_at(1.0 - 12.0 / max(self._lengths[-1], 12.0))
        angle = math.atan2(tip.y() - back.y(), tip.x() - back.x())
        size = 7.0 + self._width
        left = QPointF(tip.x() - size * math.cos(angle - 0.45), tip.y() - size * math.sin(angle - 0.45))
        right = QPointF(tip.x() - size * math.cos(angle + 0.45), tip.y() - size * math.sin(angle + 0.45))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(color)
        painter.drawPolygon(QPolygonF([tip, left, right]))


class EdgeLabelItem(QGraphicsItem):
    """An edge's routing or binding key, drawn above the tokens that pass under it."""

    MAX_WIDTH = 150.0

    def __init__(self, edge: EdgeItem) -> None:
        super().__init__()
        self.edge = edge
        self._rect = QRectF()
        self.setZValue(2.5)  # above tokens, and above a node it cannot avoid: a hidden key helps nobody
        self.setToolTip(edge.label)
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)

    def place(self, obstacles: list[QRectF] | None = None) -> None:
        """Sit just above the edge, clear of the tokens on it and of nodes."""
        if self.edge.relation in ("binding", "default"):
            fractions = (0.62, 0.74, 0.5, 0.84, 0.4, 0.3)
        else:
            fractions = (0.5, 0.62, 0.38, 0.75, 0.25, 0.85, 0.15)
        best, least = fractions[0], float("inf")
        for fraction in fractions:
            self._place_at(fraction)
            box = self.sceneBoundingRect()
            covered = sum(_area(box.intersected(other)) for other in obstacles or ())
            if covered == 0:
                return
            if covered < least:
                best, least = fraction, covered
        self._place_at(best)

    def _place_at(self, fraction: float) -> None:
        edge = self.edge
        metrics = QFontMetricsF(LABEL_FONT)
        span = abs(edge.target.in_port().x() - edge.source.out_port().x())
        limit = max(min(self.MAX_WIDTH, span - 28.0), 40.0)
        width = min(metrics.horizontalAdvance(edge.label), limit) + 10
        height = metrics.height() + 2
        at = edge.point_at(fraction)
        ahead = edge.point_at(min(fraction + 0.02, 1.0))
        dx, dy = ahead.x() - at.x(), ahead.y() - at.y()
        norm = math.hypot(dx, dy) or 1.0
        nx, ny = -dy / norm, dx / norm
        if ny > 0:
            nx, ny = -nx, -ny
        # Far enough along the normal that the label's box clears the line.
        reach = height / 2 + 3 + abs(nx) * (width / 2 - height / 2)
        self.prepareGeometryChange()
        self._rect = QRectF(-width / 2, -height / 2, width, height)
        self.setPos(at.x() + nx * reach, at.y() + ny * reach)

    @property
    def text(self) -> str:
        return self.edge.label

    def boundingRect(self) -> QRectF:
        return self._rect.adjusted(-1, -1, 1, 1)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        color, _ = EDGE_STYLES[self.edge.relation]
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(QColor(color), 0.8))
        painter.setBrush(QColor("#ffffff"))
        painter.drawRoundedRect(self._rect, 4, 4)
        painter.setFont(LABEL_FONT)
        painter.setPen(QColor(TEXT))
        metrics = QFontMetricsF(LABEL_FONT)
        text = metrics.elidedText(self.edge.label, Qt.TextElideMode.ElideMiddle, self._rect.width() - 8)
        if self.edge.removed:
            text = "unbound: " + text
            painter.setPen(QColor("#90a4ae"))
        painter.drawText(self._rect, Qt.AlignmentFlag.AlignCenter, text)


def _area(rect: QRectF) -> float:
    return max(rect.width(), 0.0) * max(rect.height(), 0.0)


@dataclass(slots=True)
class Token:
    edge: EdgeItem
    start: float  # display seconds
    duration: float
    color: QColor
    msg_id: int = 0
    backwards: bool = False  # going back along the edge: a requeue, a return
    ring: bool = False  # drawn hollow-centred: a dead letter, a returned or requeued message


# What happened to messages that left no edge to travel: a pill at the node where it happened.
FATE_STYLES = {
    "unroutable": "#d32f2f",  # at the exchange
    "returned": "#ef6c00",  # at the producer
    "dropped": "#455a64",  # at the queue, from here on
    "expired": "#8d6e63",
    "rejected": "#ad1457",
    "lost": "#37474f",
}


@dataclass(slots=True)
class FateMark:
    node: NodeItem
    fate: str
    start: float
    duration: float
    count: int = 1


class TokenLayer(QGraphicsItem):
    """Every token in flight, every fate mark and every pulsing edge, painted by one item
    (one paint call per frame, not one item per message)."""

    RADIUS = 5.0

    def __init__(self) -> None:
        super().__init__()
        self.tokens: list[Token] = []
        self.marks: list[FateMark] = []
        self.pulsing: list[EdgeItem] = []  # edges too busy for tokens: a flowing stroke instead
        self.followed: int | None = None  # a message drawn larger, with a halo
        self.now = 0.0
        self._rect = QRectF()
        self.setZValue(1)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)

    def set_area(self, rect: QRectF) -> None:
        self.prepareGeometryChange()
        self._rect = QRectF(rect).adjusted(-40, -40, 40, 40)

    def boundingRect(self) -> QRectF:
        return self._rect

    def in_flight(self) -> int:
        now = self.now
        return sum(1 for t in self.tokens if t.start <= now)

    def position(self, token: Token) -> QPointF | None:
        progress = (self.now - token.start) / token.duration
        if progress < 0.0 or progress > 1.0:
            return None
        return token.edge.point_at(1.0 - progress if token.backwards else progress)

    def token_at(self, scene_pos: QPointF, reach: float = 9.0) -> Token | None:
        """The token drawn nearest ``scene_pos``, within ``reach``."""
        best, nearest = None, reach * reach
        for token in self.tokens:
            point = self.position(token)
            if point is None:
                continue
            d = (point.x() - scene_pos.x()) ** 2 + (point.y() - scene_pos.y()) ** 2
            if d <= nearest:
                best, nearest = token, d
        return best

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        self._paint_pulses(painter)
        now = self.now
        r = self.RADIUS
        outline = QPen(QColor("#ffffff"), 1.2)
        painter.setPen(outline)
        followed = None
        for token in self.tokens:
            point = self.position(token)
            if point is None:
                continue
            if token.msg_id == self.followed:
                followed = (point, token)
                continue
            if token.ring:
                painter.setPen(QPen(token.color, 2.4))
                painter.setBrush(QColor("#ffffff"))
                painter.drawEllipse(point, r - 0.6, r - 0.6)
                painter.setPen(outline)
            else:
                painter.setBrush(token.color)
                painter.drawEllipse(point, r, r)
        if followed is not None:
            point, token = followed
            painter.setPen(QPen(QColor("#ffb300"), 3.0))
            painter.setBrush(QColor(255, 179, 0, 60))
            painter.drawEllipse(point, r * 2.4, r * 2.4)
            painter.setPen(outline)
            painter.setBrush(token.color)
            painter.drawEllipse(point, r * 1.4, r * 1.4)
        self._paint_marks(painter, now)

    def _paint_pulses(self, painter: QPainter) -> None:
        for edge in self.pulsing:
            color, _ = EDGE_STYLES[edge.relation]
            pen = QPen(QColor(color).lighter(150), max(edge.width - 1.0, 2.0))
            pen.setCapStyle(Qt.PenCapStyle.FlatCap)
            pen.setDashPattern([2.0, 3.0])
            # The dashes flow from source to target; faster with more traffic, never a blur.
            speed = 6.0 + min(math.log2(1.0 + max(edge.rate, 0.0)), 14.0)
            pen.setDashOffset(-(self.now * speed) % 5.0)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawPath(edge.path())

    def _paint_marks(self, painter: QPainter, now: float) -> None:
        painter.setFont(MARK_FONT)
        metrics = QFontMetricsF(MARK_FONT)
        for mark in self.marks:
            progress = (now - mark.start) / mark.duration
            if progress < 0.0 or progress > 1.0:
                continue
            color = FATE_STYLES[mark.fate]
            text = mark.fate if mark.count == 1 else f"{mark.fate} ×{mark.count:,}"
            width = metrics.horizontalAdvance(text) + 10
            height = metrics.height() + 2
            node = mark.node.pos()
            # Under the node's right end, sinking as it fades.
            left = node.x() + NODE_WIDTH / 2 - width - 4
            top = node.y() + NODE_HEIGHT / 2 + 4 + progress * 12.0
            opacity = max(0.0, 1.0 - progress**3)
            fill = QColor(color)
            fill.setAlphaF(opacity * 0.92)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(fill)
            box = QRectF(left, top, width, height)
            painter.drawRoundedRect(box, height / 2, height / 2)
            ink = QColor("#ffffff")
            ink.setAlphaF(opacity)
            painter.setPen(ink)
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)
