"""The open document: one topology, the file it came from, and whether it has unsaved changes."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from engine.model import Topology
from engine.topology_file import load, save


class Document(QObject):
    topology_replaced = Signal()
    title_changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.topology = Topology()
        self.path: Path | None = None
        self.dirty = False

    @property
    def display_name(self) -> str:
        if self.path is not None:
            return self.path.name
        return self.topology.title or "Untitled"

    def open(self, path: str | Path) -> None:
        """Replace the topology with the file's; on any error the document stays as it was."""
        topology = load(path)
        self.topology = topology
        self.path = Path(path).resolve()
        self.dirty = False
        self.topology_replaced.emit()
        self.title_changed.emit()

    def save(self, path: str | Path | None = None) -> Path:
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("the document has no file yet; choose one with Save As")
        save(self.topology, target)
        self.path = target.resolve()
        self.dirty = False
        self.title_changed.emit()
        return self.path
