"""The canvas legend: which colour is which routing key, and what each mark and token style means."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetricsF, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QWidget

from .edges import FATE_STYLES
from .items import LABEL_FONT, MARK_FONT
from .style import MUTED_TEXT, TEXT


class FlowLegend(QWidget):
    """Painted in a corner of the canvas; it grows with the keys seen, up to ``MAX_KEYS`` of them."""

    MAX_KEYS = 8
    ROW = 15.0
    PAD = 8.0

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.keys: list[tuple[str, QColor]] = []
        self.more = 0
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self._resize()

    def set_keys(self, colors: dict[str, QColor]) -> None:
        keys = list(colors.items())
        shown = keys[: self.MAX_KEYS]
        more = len(keys) - len(shown)
        if [(k, c.name()) for k, c in shown] == [(k, c.name()) for k, c in self.keys] and more == self.more:
            return
        self.keys, self.more = shown, more
        self._resize()
        self.update()

    def _rows(self, keys: int | None = None) -> int:
        keys = len(self.keys) if keys is None else keys
        return 1 + max(keys, 1) + (1 if self.more else 0) + 1 + 3

    def reserved_height(self) -> float:
        """The height to keep free for it: it grows as keys are seen, four of them at least."""
        return max(self._rows(4) * self.ROW + 2 * self.PAD, float(self.height()))

    RING = "ring: dead-lettered, requeued or returned"
    STRIPES = "flowing stripes: too busy for tokens"

    def _resize(self) -> None:
        metrics = QFontMetricsF(LABEL_FONT)
        fixed = max(metrics.horizontalAdvance(text) for text in (self.RING, self.STRIPES))
        widest = max([metrics.horizontalAdvance(k or '"" (empty key)') for k, _ in self.keys] + [fixed])
        self.setFixedSize(QSize(int(min(widest, 260) + 2 * self.PAD + 18), int(self._rows() * self.ROW + 2 * self.PAD)))
        self.place()

    def place(self) -> None:
        """Top right of the canvas, where a left-to-right topology, shown whole, leaves most room."""
        parent = self.parentWidget()
        if parent is not None:
            self.move(max(parent.width() - self.width() - 8, 8), 8)

    def sizeHint(self) -> QSize:
        return self.size()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(QColor("#cfd8dc"), 1.0))
        painter.setBrush(QColor(255, 255, 255, 230))
        painter.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 6, 6)
        x, y = self.PAD, self.PAD
        width = self.width() - 2 * self.PAD
        metrics = QFontMetricsF(LABEL_FONT)
        painter.setFont(MARK_FONT)
        painter.setPen(QColor(TEXT))
        painter.drawText(QRectF(x, y, width, self.ROW), Qt.AlignmentFlag.AlignVCenter, "Tokens by routing key")
        y += self.ROW
        painter.setFont(LABEL_FONT)
        if not self.keys:
            painter.setPen(QColor(MUTED_TEXT))
            painter.drawText(QRectF(x, y, width, self.ROW), Qt.AlignmentFlag.AlignVCenter, "none yet")
            y += self.ROW
        for key, color in self.keys:
            self._dot(painter, QPointF(x + 5, y + self.ROW / 2), color)
            painter.setPen(QColor(TEXT))
            text = metrics.elidedText(key if key else '"" (empty key)', Qt.TextElideMode.ElideMiddle, width - 16)
            painter.drawText(QRectF(x + 14, y, width - 14, self.ROW), Qt.AlignmentFlag.AlignVCenter, text)
            y += self.ROW
        if self.more:
            painter.setPen(QColor(MUTED_TEXT))
            painter.drawText(
                QRectF(x + 14, y, width - 14, self.ROW), Qt.AlignmentFlag.AlignVCenter, f"and {self.more} more"
            )
            y += self.ROW
        # Token styles and fates.
        painter.setPen(QPen(QColor("#546e7a"), 2.2))
        painter.setBrush(QColor("#ffffff"))
        painter.drawEllipse(QPointF(x + 5, y + self.ROW / 2), 4.0, 4.0)
        painter.setPen(QColor(TEXT))
        painter.drawText(
            QRectF(x + 14, y, width - 14, self.ROW),
            Qt.AlignmentFlag.AlignVCenter,
            self.RING,
        )
        y += self.ROW
        pen = QPen(QColor("#90a4ae"), 3.0)
        pen.setDashPattern([2.0, 3.0])
        painter.setPen(pen)
        painter.drawLine(QPointF(x, y + self.ROW / 2), QPointF(x + 10, y + self.ROW / 2))
        painter.setPen(QColor(TEXT))
        painter.drawText(
            QRectF(x + 14, y, width - 14, self.ROW),
            Qt.AlignmentFlag.AlignVCenter,
            self.STRIPES,
        )
        y += self.ROW
        painter.setFont(MARK_FONT)
        left = x
        for fate, color in FATE_STYLES.items():
            text_width = QFontMetricsF(MARK_FONT).horizontalAdvance(fate) + 8
            if left + text_width > x + width:
                y += self.ROW
                left = x
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(color))
            box = QRectF(left, y + 1.5, text_width, self.ROW - 3)
            painter.drawRoundedRect(box, box.height() / 2, box.height() / 2)
            painter.setPen(QColor("#ffffff"))
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, fate)
            left += text_width + 4
        painter.end()

    @staticmethod
    def _dot(painter: QPainter, centre: QPointF, color: QColor) -> None:
        painter.setPen(QPen(QColor("#ffffff"), 1.0))
        painter.setBrush(color)
        painter.drawEllipse(centre, 4.5, 4.5)
