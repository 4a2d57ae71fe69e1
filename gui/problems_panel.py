"""The problems panel: what the analysis finds wrong with the topology, one row per problem.

Clicking a row selects its node; each node with problems also wears a badge.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from engine.analysis import Problem, find_problems
from engine.model import display_name, split_node_id

from .document import Document


class ProblemsPanel(QWidget):
    node_chosen = Signal(str)
    problems_found = Signal(dict)  # {node id: [text, ...]}

    def __init__(self, document: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.problems: list[Problem] = []
        self.summary = QLabel()
        self.list = QListWidget()
        self.list.setWordWrap(True)
        self.list.itemClicked.connect(self._chosen)
        self.list.itemActivated.connect(self._chosen)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.summary)
        layout.addWidget(self.list, 1)
        # Edits come in bursts (a drag, typing); analyse once they settle.
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(150)
        self._timer.timeout.connect(self.analyse)
        document.changed.connect(self._timer.start)
        document.topology_replaced.connect(self.analyse)

    def analyse(self) -> None:
        self.problems = find_problems(self.document.topology)
        self.list.clear()
        by_node: dict[str, list[str]] = {}
        for problem in self.problems:
            kind, vhost, name = split_node_id(problem.node_id)
            item = QListWidgetItem(f"⚠  {display_name(kind, name)} ({kind}): {problem.text}")
            item.setData(Qt.ItemDataRole.UserRole, problem.node_id)
            item.setToolTip(problem.text)
            self.list.addItem(item)
            by_node.setdefault(problem.node_id, []).append(problem.text)
        count = len(self.problems)
        self.summary.setText("No problems found." if not count else f"{count} problem{'s' if count != 1 else ''}:")
        self.problems_found.emit(by_node)

    def _chosen(self, item: QListWidgetItem) -> None:
        self.node_chosen.emit(item.data(Qt.ItemDataRole.UserRole))
