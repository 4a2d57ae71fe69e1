"""The open document: one topology, its file, and the undo stack every edit goes through.

An edit is a function of the model (from engine.edits) run on a copy of the
topology; the document keeps the copies from before and after as an undo
command. Undo, redo, the dirty flag and live edits of a running simulation all
follow from that one place.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from engine.edits import EditRefused
from engine.layout import complete_layout
from engine.model import Topology
from engine.topology_file import file_problem, load, save

T = TypeVar("T")


class EditCommand(QUndoCommand):
    """One edit: the topology before it and after it."""

    def __init__(self, document: Document, label: str, before: Topology, after: Topology, merge_key: str = "") -> None:
        super().__init__(label)
        self.document = document
        self.before = before
        self.after = after
        self.merge_key = merge_key

    def redo(self) -> None:
        self.document._replace(copy.deepcopy(self.after))

    def undo(self) -> None:
        self.document._replace(copy.deepcopy(self.before))

    def id(self) -> int:
        return 1 if self.merge_key else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        """Typing in one field again and again is one step, not one per keystroke."""
        if not isinstance(other, EditCommand) or not self.merge_key or other.merge_key != self.merge_key:
            return False
        self.after = other.after
        return True


class Document(QObject):
    topology_replaced = Signal()  # a different topology: opened, new
    changed = Signal()  # the same document, edited (or an edit undone or redone)
    title_changed = Signal()

    UNDO_LIMIT = 500

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.topology = Topology()
        self.path: Path | None = None
        self.undo_stack = QUndoStack(self)
        # A last word on an edit from outside the document (a connected client's name, say): why not, or None.
        self.edit_guard: Callable[[Topology], str | None] = lambda after: None
        self.undo_stack.setUndoLimit(self.UNDO_LIMIT)
        self.undo_stack.cleanChanged.connect(self._clean_changed)

    def _clean_changed(self, clean: bool) -> None:
        self.title_changed.emit()

    @property
    def dirty(self) -> bool:
        return not self.undo_stack.isClean()

    @property
    def display_name(self) -> str:
        if self.path is not None:
            return self.path.name
        return self.topology.title or "Untitled"

    # -- whole documents ---------------------------------------------------------------------

    def new(self) -> None:
        self._start(Topology(), None)

    def open(self, path: str | Path) -> None:
        """Replace the topology with the file's; on any error the document stays as it was."""
        topology = load(path)
        self._start(topology, Path(path).resolve())

    def adopt(self, topology: Topology, path: Path | None = None, dirty: bool = False) -> None:
        """Take a topology from elsewhere (a recovered autosave, say)."""
        complete_layout(topology)
        self._start(topology, path)
        if dirty:
            # A step to undo back to nothing, so the document counts as unsaved.
            self.undo_stack.push(EditCommand(self, "Recover unsaved work", Topology(), copy.deepcopy(topology)))

    def _start(self, topology: Topology, path: Path | None) -> None:
        self.undo_stack.clear()
        self.topology = topology
        self.path = path
        self.undo_stack.setClean()
        self.topology_replaced.emit()
        self.title_changed.emit()

    def save(self, path: str | Path | None = None) -> Path:
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("the document has no file yet; choose one with Save As")
        save(self.topology, target)
        self.path = target.resolve()
        self.undo_stack.setClean()
        self.title_changed.emit()
        return self.path

    # -- edits -------------------------------------------------------------------------------------

    def edit(self, label: str, change: Callable[[Topology], T], merge_key: str = "") -> T:
        """Apply ``change`` to a copy of the topology and push it as one undoable step.

        ``change`` raises :class:`EditRefused` to refuse: then nothing changes and
        nothing is pushed.
        """
        before = copy.deepcopy(self.topology)
        after = copy.deepcopy(before)
        result = change(after)
        complete_layout(after)  # a node the edit brought in (a built-in exchange, say) gets a place
        if after == before:
            return result
        # The last line of defence: no edit may leave a topology its own file could not hold.
        problem = file_problem(after)
        if problem is not None:
            raise EditRefused(f"the topology would not save as a file that opens again ({problem})")
        problem = self.edit_guard(after)
        if problem is not None:
            raise EditRefused(problem)
        self.undo_stack.push(EditCommand(self, label, before, after, merge_key))
        return result

    def try_edit(self, label: str, change: Callable[[Topology], Any], merge_key: str = "") -> str | None:
        """Like :meth:`edit`, returning the reason an edit was refused (None when it was made)."""
        try:
            self.edit(label, change, merge_key)
        except EditRefused as exc:
            return str(exc)
        return None

    def _replace(self, topology: Topology) -> None:
        self.topology = topology
        self.changed.emit()
