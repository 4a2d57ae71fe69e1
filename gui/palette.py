"""The palette: the kinds of node, dragged onto the canvas (or clicked) to create one."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, QPoint, QSize, Qt, Signal
from PySide6.QtGui import QDrag, QIcon, QMouseEvent, QPixmap
from PySide6.QtWidgets import QToolButton, QVBoxLayout, QWidget

from .style import icon_path
from .view import NODE_MIME

# (what a drop creates, the button's text)
ENTRIES = (
    ("producer", "Producer"),
    ("exchange:direct", "Direct exchange"),
    ("exchange:fanout", "Fanout exchange"),
    ("exchange:topic", "Topic exchange"),
    ("exchange:headers", "Headers exchange"),
    ("queue", "Queue"),
    ("consumer", "Consumer"),
)


class PaletteButton(QToolButton):
    """Drag it onto the canvas to place a node there; click it to place one in the middle."""

    def __init__(self, kind: str, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind = kind
        self.setText(text)
        self.setIcon(QIcon(icon_path(kind.split(":")[0])))
        self.setIconSize(QSize(20, 20))
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.setAutoRaise(True)
        self.setMinimumWidth(150)
        self.setToolTip(f"Drag onto the canvas to add a {text.lower()}")
        self._press: QPoint | None = None

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._press = event.position().toPoint()
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._press is not None and (event.position().toPoint() - self._press).manhattanLength() > 6:
            self._press = None
            self.setDown(False)
            drag = QDrag(self)
            mime = QMimeData()
            mime.setData(NODE_MIME, self.kind.encode())
            drag.setMimeData(mime)
            drag.setPixmap(self.icon().pixmap(28, 28) if not self.icon().isNull() else QPixmap())
            drag.exec(Qt.DropAction.CopyAction)
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._press = None
        super().mouseReleaseEvent(event)


class Palette(QWidget):
    add_requested = Signal(str)  # a click: add this kind where the view is looking

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(2)
        self.buttons: dict[str, PaletteButton] = {}
        for kind, text in ENTRIES:
            button = PaletteButton(kind, text)
            button.clicked.connect(lambda checked=False, k=kind: self.add_requested.emit(k))
            layout.addWidget(button)
            self.buttons[kind] = button
        layout.addStretch(1)
