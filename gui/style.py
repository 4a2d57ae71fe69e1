"""Colours, sizes and icons shared by the canvas and the panels."""

from __future__ import annotations

import zlib
from pathlib import Path

from PySide6.QtGui import QColor

ASSETS = Path(__file__).resolve().parent.parent / "assets"
ICONS = ASSETS / "icons"

NODE_WIDTH = 196.0
NODE_HEIGHT = 62.0

# Fill, border and accent per kind of node.
KIND_COLORS = {
    "producer": ("#e8f5e9", "#66bb6a", "#2e7d32"),
    "exchange": ("#fff3e0", "#ffa726", "#e65100"),
    "queue": ("#e3f2fd", "#42a5f5", "#1565c0"),
    "consumer": ("#f3e5f5", "#ab47bc", "#6a1b9a"),
}

EDGE_STYLES = {
    # relation: (colour, dash pattern or None)
    "publishes": ("#78909c", None),
    "binding": ("#546e7a", None),
    "default": ("#90a4ae", [4.0, 3.0]),
    "consumes": ("#7e57c2", None),
    "dead-letter": ("#c62828", [6.0, 4.0]),
    "alternate": ("#ef6c00", [2.0, 3.0]),
}

CANVAS_BACKGROUND = "#fafbfc"
CANVAS_GRID = "#eef1f4"
TEXT = "#263238"
MUTED_TEXT = "#607d8b"

# Token colours for routing keys: distinct, readable on the light canvas.
KEY_PALETTE = [
    "#1e88e5",
    "#e53935",
    "#43a047",
    "#fb8c00",
    "#8e24aa",
    "#00acc1",
    "#6d4c41",
    "#d81b60",
    "#3949ab",
    "#7cb342",
    "#f4511e",
    "#00897b",
]

SERIES_COLORS = {
    "publish": "#1e88e5",
    "deliver": "#fb8c00",
    "ack": "#43a047",
}


class KeyColors:
    """Token colours by routing key: the first keys seen get distinct colours."""

    def __init__(self) -> None:
        self._colors: dict[str, QColor] = {}

    def __call__(self, routing_key: str) -> QColor:
        color = self._colors.get(routing_key)
        if color is None:
            if len(self._colors) < len(KEY_PALETTE):
                color = QColor(KEY_PALETTE[len(self._colors)])
            else:
                color = QColor(KEY_PALETTE[zlib.crc32(routing_key.encode()) % len(KEY_PALETTE)])
            if len(self._colors) < 10000:
                self._colors[routing_key] = color
        return color

    def seen(self) -> dict[str, QColor]:
        return dict(self._colors)


def series_color(index: int) -> str:
    return KEY_PALETTE[index % len(KEY_PALETTE)]


def icon_path(name: str) -> str:
    return str(ICONS / f"{name}.svg")
