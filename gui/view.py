"""The canvas view: zoom, pan, rubber-band selection, dragging nodes and connections, drops.

Mouse work is done by small interactions; the view reports intent through
signals (nodes moved, a connection asked for, a node dropped from the palette,
a rename asked for) and the window turns intent into edits of the document.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QContextMenuEvent,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPen,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QGraphicsPathItem,
    QGraphicsView,
    QLabel,
    QLineEdit,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from .edges import EdgeLabelItem
from .items import NodeItem
from .legend import FlowLegend
from .scene import TopologyScene
from .style import MUTED_TEXT, NODE_HEIGHT, NODE_WIDTH

NODE_MIME = "application/x-queuecraft-node"  # palette drags carry "kind" or "exchange:<type>"

# What the window answers when asked whether two nodes can be connected:
# the relations possible, or the reason they cannot.
ConnectionCheck = Callable[[str, str], "list[str] | str"]


class ConnectInteraction:
    """Dragging from a node's port: a rubber line that turns green over a node it can connect to
    and red, with the reason beside the mouse, over one it cannot."""

    def __init__(self, view: CanvasView, source: NodeItem) -> None:
        self.view = view
        self.source = source
        self.target: NodeItem | None = None
        self.verdict: list[str] | str = ""
        self.line = QGraphicsPathItem()
        self.line.setZValue(5)
        view.scene().addItem(self.line)
        self.hint = QLabel(view.viewport())
        self.hint.setWordWrap(True)
        self.hint.setMaximumWidth(300)
        self.hint.setStyleSheet(
            "background: #fff8f7; color: #b71c1c; border: 1px solid #e57373; border-radius: 4px; padding: 4px 6px;"
        )
        self.hint.hide()

    def move(self, scene_pos: QPointF) -> None:
        target = self.view.topology_scene.node_at(scene_pos)
        if target is self.source:
            target = None
        self.target = target
        start = self.source.out_port()
        end = target.in_port() if target is not None else scene_pos
        path = QPainterPath(start)
        bend = max(abs(end.x() - start.x()) * 0.5, 40.0)
        path.cubicTo(start + QPointF(bend, 0), end - QPointF(bend, 0), end)
        self.line.setPath(path)
        if target is None:
            self.verdict = ""
            self.line.setPen(QPen(QColor("#607d8b"), 2, Qt.PenStyle.DashLine))
            self.hint.hide()
            return
        self.verdict = self.view.connection_check(self.source.node_id, target.node_id)
        if isinstance(self.verdict, str):
            self.line.setPen(QPen(QColor("#e53935"), 2.5, Qt.PenStyle.DashLine))
            self._show_hint(self.verdict, self.view.mapFromScene(scene_pos))
        else:
            self.line.setPen(QPen(QColor("#43a047"), 2.5))
            self.hint.hide()

    def _show_hint(self, text: str, at: QPoint) -> None:
        """The reason beside the mouse, kept inside the view."""
        self.hint.setText(text)
        self.hint.adjustSize()
        area = self.view.viewport().rect()
        x = at.x() + 16
        if x + self.hint.width() > area.right() - 4:
            x = at.x() - 16 - self.hint.width()
        y = min(at.y() + 14, area.bottom() - self.hint.height() - 4)
        self.hint.move(max(x, 4), max(y, 4))
        self.hint.show()
        self.hint.raise_()

    def finish(self, scene_pos: QPointF, global_pos: QPoint) -> None:
        self.move(scene_pos)
        target, verdict = self.target, self.verdict
        self.cancel()
        if target is None:
            return
        if isinstance(verdict, str):
            # Refused: say why where the mouse is, and change nothing.
            QToolTip.showText(global_pos, verdict, self.view)
            self.view.connection_refused.emit(verdict)
            return
        self.view.connection_requested.emit(self.source.node_id, target.node_id, verdict, global_pos)

    def cancel(self) -> None:
        self.view.scene().removeItem(self.line)
        self.hint.hide()
        self.hint.deleteLater()
        self.view.interaction = None


class InlineRename(QWidget):
    """A name field over a node's title: Enter renames, Escape leaves it as it was.

    A name that cannot be used keeps the field open with the reason under it.
    """

    def __init__(self, view: CanvasView, node: NodeItem) -> None:
        super().__init__(view.viewport())
        self.view = view
        self.node_id = node.node_id
        self.field = QLineEdit(node.title)
        self.field.selectAll()
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: #c62828; background: #ffffff; padding: 1px 3px;")
        self.problem.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(1)
        layout.addWidget(self.field)
        layout.addWidget(self.problem)
        # Over the title, where the node draws it (its indent depends on the kind's shape).
        left = -NODE_WIDTH / 2 + node.text_left() - 4
        top_left = view.mapFromScene(node.pos() + QPointF(left, -NODE_HEIGHT / 2 + 3))
        self.move(top_left)
        self.setFixedWidth(max(int((NODE_WIDTH / 2 - node.text_right() - left) * view.zoom), 160))
        self.field.returnPressed.connect(self._commit)
        self.field.installEventFilter(self)
        self.show()
        self.field.setFocus()

    def _commit(self) -> None:
        problem = self.view.rename_requested_check(self.node_id, self.field.text())
        if problem:
            self.problem.setText(problem)
            self.problem.show()
            self.adjustSize()
            return
        self.close_editor()

    def show_problem(self, text: str) -> None:
        self.problem.setText(text)
        self.problem.show()
        self.adjustSize()

    def eventFilter(self, watched, event) -> bool:  # type: ignore[no-untyped-def]
        if event.type() == event.Type.KeyPress and event.key() == Qt.Key.Key_Escape:
            self.close_editor()
            return True
        if event.type() == event.Type.FocusOut and not self.problem.isVisible():
            self.close_editor()
        return False

    def close_editor(self) -> None:
        if self.view.rename_editor is self:
            self.view.rename_editor = None
        typing = self.field.hasFocus()
        self.hide()
        self.deleteLater()
        if typing:
            self.view.setFocus()  # so Delete, Ctrl+Z and friends act on the canvas again


class CanvasView(QGraphicsView):
    """Zoom with the wheel (towards the mouse); drag the background to select with a rubber band,
    with the middle button (or Space held) to pan; drag nodes to move them and from a node's port
    to connect it."""

    MIN_ZOOM, MAX_ZOOM = 0.2, 3.0
    FIT_PADDING = 24.0
    READABLE_ZOOM = 0.55  # below this, node text is too small to read
    FIT_MAX_ZOOM = 1.15  # a fit never enlarges a small topology past this
    EMPTY_HINT = (
        "This topology is empty.\n"
        "Drag producers, exchanges, queues and consumers here from the palette,\n"
        "then drag from a node's dot to another node to connect them.\n"
        "Or open a topology or your broker's exported definitions (File ▸ Open)."
    )

    connection_requested = Signal(str, str, list, QPoint)  # source, target, relations, global position
    connection_refused = Signal(str)
    node_dropped = Signal(str, QPointF)  # palette kind, scene position
    context_requested = Signal(QPoint)  # global position; selection already set
    token_clicked = Signal(int)  # a message in flight, by id

    def __init__(self, scene: TopologyScene, parent: QWidget | None = None) -> None:
        super().__init__(scene, parent)
        self.topology_scene = scene
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setDragMode(QGraphicsView.DragMode.RubberBandDrag)
        self.setRubberBandSelectionMode(Qt.ItemSelectionMode.IntersectsItemShape)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.BoundingRectViewportUpdate)
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        self.setAcceptDrops(True)
        self.connection_check: ConnectionCheck = lambda source, target: "connections are not set up"
        self.rename_requested_check: Callable[[str, str], str | None] = lambda node_id, name: None
        self.interaction: ConnectInteraction | None = None
        self.rename_editor: InlineRename | None = None
        self._pan_from: QPoint | None = None
        self._space_held = False
        self._drag_start: dict[str, tuple[float, float]] = {}
        # While the person has not zoomed or panned since the last fit, a resize fits again.
        self._fitted: bool | None = None  # None: not fitted; else the ``readable`` of the last fit
        self.legend = FlowLegend(self.viewport())
        self._place_legend()
        # Scroll bars that come and go would change the viewport's size, so the fit, so the
        # scene's rect, so the scroll bars again: they stay.
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        for bar in (self.horizontalScrollBar(), self.verticalScrollBar()):
            bar.actionTriggered.connect(self._forget_fit)

    @property
    def zoom(self) -> float:
        return self.transform().m11()

    # -- painting --------------------------------------------------------------------------------

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        scene = self.topology_scene
        if scene.topology is not None and not scene.nodes:
            painter.save()
            painter.resetTransform()
            painter.setPen(QColor(MUTED_TEXT))
            font = painter.font()
            font.setPointSizeF(11)
            painter.setFont(font)
            painter.drawText(self.viewport().rect(), Qt.AlignmentFlag.AlignCenter, self.EMPTY_HINT)
            painter.restore()

    # -- zoom and fit ------------------------------------------------------------------------------

    def wheelEvent(self, event: QWheelEvent) -> None:
        self.zoom_by(1.0015 ** event.angleDelta().y())

    def zoom_by(self, factor: float) -> None:
        self._fitted = None
        new_zoom = min(max(self.zoom * factor, self.MIN_ZOOM), self.MAX_ZOOM)
        self.scale(new_zoom / self.zoom, new_zoom / self.zoom)

    def fit(self, readable: bool = False) -> None:
        """Show the whole topology, no larger than 1.15x, clear of the legend where there is room.

        With ``readable`` (as when a file opens) a big topology is shown at the
        smallest zoom whose text can still be read, around its middle, instead.
        """
        rect = self.topology_scene.content_rect.adjusted(
            -self.FIT_PADDING, -self.FIT_PADDING, self.FIT_PADDING, self.FIT_PADDING
        )
        if rect.isEmpty():
            return
        self._fitted = readable
        rect = self._clear_of_legend(rect)
        scene_rect = self.topology_scene.sceneRect()
        if not scene_rect.contains(rect):
            self.topology_scene.setSceneRect(scene_rect.united(rect))
        self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        if self.zoom > self.FIT_MAX_ZOOM:
            self.scale(self.FIT_MAX_ZOOM / self.zoom, self.FIT_MAX_ZOOM / self.zoom)
        if readable and self.zoom < self.READABLE_ZOOM:
            self.scale(self.READABLE_ZOOM / self.zoom, self.READABLE_ZOOM / self.zoom)
            # Too wide to show whole: show where the messages start, the left edge, mid-height.
            shown = self.mapToScene(self.viewport().rect()).boundingRect()
            self.centerOn(rect.left() + shown.width() / 2, rect.center().y())

    def _clear_of_legend(self, rect: QRectF) -> QRectF:
        """``rect`` grown by a band, right or above, where the legend sits: fitted, the topology
        leaves the legend's corner free. The band that costs the least zoom wins; none, when
        either would shrink the topology below readable and without it it would not."""
        legend, viewport = self.legend, self.viewport().rect()
        if not legend.isVisible() or rect.width() <= 0 or rect.height() <= 0:
            return rect
        width, height = viewport.width(), viewport.height()
        band_w, band_h = legend.width() + 16.0, legend.reserved_height() + 16.0

        def zoom(w: float, h: float) -> float:
            return min(max(w, 1.0) / rect.width(), max(h, 1.0) / rect.height())

        beside, below, plain = zoom(width - band_w, height), zoom(width, height - band_h), zoom(width, height)
        best = max(beside, below)
        if best < self.READABLE_ZOOM <= plain:
            return rect
        if beside >= below:
            return rect.adjusted(0, 0, band_w / min(beside, self.FIT_MAX_ZOOM), 0)
        return rect.adjusted(0, -band_h / min(below, self.FIT_MAX_ZOOM), 0, 0)

    def _forget_fit(self, *_: object) -> None:
        self._fitted = None

    def forget_fit(self) -> None:
        """The person is working on the canvas: stop following the window's size."""
        self._fitted = None

    def _place_legend(self) -> None:
        self.legend.place()

    def scrollContentsBy(self, dx: int, dy: int) -> None:
        # Qt scrolls the viewport's child widgets with the scene: the legend stays in its corner.
        super().scrollContentsBy(dx, dy)
        self._place_legend()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._place_legend()
        if self._fitted is not None:
            self.fit(self._fitted)

    # -- mouse -------------------------------------------------------------------------------------

    def mousePressEvent(self, event: QMouseEvent) -> None:
        scene_pos = self.mapToScene(event.position().toPoint())
        if event.button() == Qt.MouseButton.MiddleButton or (
            event.button() == Qt.MouseButton.LeftButton and self._space_held
        ):
            self._pan_from = event.position().toPoint()
            self._fitted = None
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            return
        if event.button() == Qt.MouseButton.LeftButton:
            node = self.topology_scene.node_at(scene_pos)
            if node is not None and node.on_port(scene_pos):
                self.interaction = ConnectInteraction(self, node)
                self.interaction.move(scene_pos)
                return
            label = next((i for i in self.topology_scene.items(scene_pos) if isinstance(i, EdgeLabelItem)), None)
            if label is not None and node is None and label.edge.edge_id:
                # A key label is drawn over the tokens: a click on it means its edge, however busy.
                if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
                    label.edge.setSelected(not label.edge.isSelected())
                else:
                    self.topology_scene.select_only([label.edge.edge_id])
                return
            token = self.topology_scene.tokens.token_at(scene_pos, reach=8.0 / max(self.zoom, 0.2))
            if token is not None and node is None:
                self.token_clicked.emit(token.msg_id)
                return
        super().mousePressEvent(event)
        if event.button() == Qt.MouseButton.LeftButton:
            self._drag_start = {
                nid: (item.pos().x(), item.pos().y())
                for nid, item in self.topology_scene.nodes.items()
                if item.isSelected()
            }

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._pan_from is not None:
            delta = event.position().toPoint() - self._pan_from
            self._pan_from = event.position().toPoint()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - delta.x())
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - delta.y())
            return
        if self.interaction is not None:
            self.interaction.move(self.mapToScene(event.position().toPoint()))
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._pan_from is not None:
            self._pan_from = None
            self.viewport().unsetCursor()
            return
        if self.interaction is not None:
            self.interaction.finish(self.mapToScene(event.position().toPoint()), event.globalPosition().toPoint())
            return
        super().mouseReleaseEvent(event)
        if event.button() == Qt.MouseButton.LeftButton and self._drag_start:
            moved = {}
            for nid, start in self._drag_start.items():
                item = self.topology_scene.nodes.get(nid)
                if item is not None and (item.pos().x(), item.pos().y()) != start:
                    moved[nid] = (item.pos().x(), item.pos().y())
            self._drag_start = {}
            if moved:
                self.topology_scene.nodes_moved.emit(moved)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        node = self.topology_scene.node_at(self.mapToScene(event.position().toPoint()))
        if node is not None and node.renamable and not node.live:
            self.start_rename(node)
            return
        super().mouseDoubleClickEvent(event)

    def start_rename(self, node: NodeItem) -> None:
        if self.rename_editor is not None:
            self.rename_editor.close_editor()
        self.rename_editor = InlineRename(self, node)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        item = self.itemAt(event.pos())
        while item is not None and not item.flags() & item.GraphicsItemFlag.ItemIsSelectable:
            item = item.parentItem()
        if item is not None and not item.isSelected():
            self.scene().clearSelection()
            item.setSelected(True)
        self.context_requested.emit(event.globalPos())

    # -- keys --------------------------------------------------------------------------------------

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape and self.interaction is not None:
            self.interaction.cancel()
            return
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_held = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_held = False
            self.viewport().unsetCursor()
            return
        super().keyReleaseEvent(event)

    # -- drops from the palette ----------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasFormat(NODE_MIME):
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if event.mimeData().hasFormat(NODE_MIME):
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        if not event.mimeData().hasFormat(NODE_MIME):
            super().dropEvent(event)
            return
        kind = bytes(event.mimeData().data(NODE_MIME).data()).decode()
        self.node_dropped.emit(kind, self.mapToScene(event.position().toPoint()))
        event.acceptProposedAction()
