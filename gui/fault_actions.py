"""Faults, each one a lesson: by hand from a node's or a binding's context menu, and as a timeline
the topology file keeps, so the lesson replays by itself."""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.edits import find_binding
from engine.model import TimelineEvent, Topology, split_node_id
from engine.sim import FaultRefused

from .style import MUTED_TEXT

if TYPE_CHECKING:
    from .main_window import MainWindow

SLOWDOWNS = (2.0, 5.0, 10.0)
FAILURES = ((0.1, "requeue"), (0.3, "requeue"), (0.3, "dead-letter"), (0.1, "crash"))
BURSTS = (100, 1_000, 10_000)


class FaultActions(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.restart_broker = window.make_action(
            "Restart the &Broker",
            lambda: self.play(TimelineEvent(at=0, action="restart_broker")),
            tip="Non-durable queues and transient messages are lost; clients reconnect",
        )
        self.record = QAction("&Record Faults into the Timeline", self, checkable=True)
        self.record.setToolTip("Faults played by hand are also added to the topology's timeline, to replay")

    # -- playing ------------------------------------------------------------------------------

    def play(self, event: TimelineEvent) -> bool:
        """Apply a fault to the running simulation now (and record it when recording)."""
        window = self.window
        sim = window.controller.sim
        if sim is None:
            return False
        event = _at(event, sim.now)
        try:
            text = sim.apply(event)
        except FaultRefused as exc:
            window.statusBar().showMessage(f"Not played: {exc}", 8000)
            return False
        if self.record.isChecked():

            def add(topology: Topology) -> None:
                topology.timeline.append(event)

            window.apply_edit(f"Record: {event.describe()}", add)
        window.statusBar().showMessage(f"t = {sim.now:.2f} s: {text}", 8000)
        window.timeline.refresh()
        window.scene.show_fault_state(sim)
        return True

    # -- menus ----------------------------------------------------------------------------------

    def fill_menu(self, menu: QMenu, selected: list[str]) -> None:
        """The faults that make sense for one selected consumer, producer or binding."""
        sim = self.window.controller.sim
        if sim is None or len(selected) != 1:
            return
        subject = selected[0]
        kind = subject.split(":", 1)[0]
        if kind == "consumer":
            _, vhost, name = split_node_id(subject)
            consumer = sim.consumers.get(subject)
            if consumer is None:
                return
            menu.addSeparator()
            if consumer.killed:
                self._add(menu, "Restart Consumer", TimelineEvent(0, "restart", vhost, name))
            else:
                self._add(menu, "Kill Consumer", TimelineEvent(0, "kill", vhost, name))
            slow = menu.addMenu("Slow Down")
            for factor in SLOWDOWNS:
                self._add(slow, f"{factor:g}× slower", TimelineEvent(0, "slow", vhost, name, factor=factor))
            self._add(slow, "Normal Pace", TimelineEvent(0, "slow", vhost, name, factor=1.0))
            fail = menu.addMenu("Fail Messages")
            for share, action in FAILURES:
                what = {"requeue": "nack and requeue", "dead-letter": "reject to dead letters", "crash": "crash"}
                self._add(
                    fail,
                    f"{share:.0%}: {what[action]}",
                    TimelineEvent(0, "fail", vhost, name, share=share, on_failure=action),
                )
            self._add(fail, "Stop Failing", TimelineEvent(0, "fail", vhost, name, share=0.0))
        elif kind == "producer":
            _, vhost, name = split_node_id(subject)
            producer = sim.producers.get(subject)
            if producer is None:
                return
            menu.addSeparator()
            if producer.halted:
                self._add(menu, "Start Publishing", TimelineEvent(0, "start", vhost, name))
            else:
                self._add(menu, "Stop Publishing", TimelineEvent(0, "stop", vhost, name))
            burst = menu.addMenu("Burst")
            for count in BURSTS:
                self._add(burst, f"{count:,} messages at once", TimelineEvent(0, "burst", vhost, name, count=count))
            pace = menu.addMenu("Rate")
            for factor in (2.0, 10.0):
                rate = producer.model.rate * factor
                self._add(pace, f"{factor:g}× ({rate:g} msg/s)", TimelineEvent(0, "rate", vhost, name, rate=rate))
            normal = producer.model.rate
            self._add(pace, f"Normal ({normal:g} msg/s)", TimelineEvent(0, "rate", vhost, name, rate=normal))
        elif kind == "binding":
            binding = find_binding(self.window.document.topology, subject)
            if binding is None:
                return
            event = TimelineEvent(
                0,
                "unbind",
                binding.vhost,
                binding.source,
                destination=binding.destination,
                destination_type=binding.destination_type,
                routing_key=binding.routing_key,
                arguments=dict(binding.arguments),
            )
            menu.addSeparator()
            if subject in sim.unbound:
                event.action = "bind"
                self._add(menu, "Bind Again (while running)", event)
            else:
                self._add(menu, "Unbind While Running", event)

    def _add(self, menu: QMenu, text: str, event: TimelineEvent) -> None:
        action = menu.addAction(text)
        action.setToolTip(event.describe())
        action.triggered.connect(lambda checked=False, e=event: self.play(e))


def _at(event: TimelineEvent, now: float) -> TimelineEvent:
    moved = copy.copy(event)
    moved.arguments = dict(event.arguments)
    # Never later than now: a recorded step scheduled after now would play a second time.
    moved.at = math.floor(now * 1000) / 1000
    return moved


class TimelinePanel(QWidget):
    """The topology's timeline (replayed by every run) and what this run has played so far."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.steps = QListWidget()
        self.steps.setToolTip("Steps the topology file keeps: every run plays them at their time")
        self.played = QListWidget()
        self.played.setToolTip("What this run has played, by hand or from the timeline")
        self.remove = QPushButton("Remove Step")
        self.remove.clicked.connect(self._remove_selected)
        self.recording = QCheckBox("Record faults played by hand")
        self.recording.toggled.connect(window.faults.record.setChecked)
        window.faults.record.toggled.connect(self.recording.setChecked)
        hint = QLabel("Right-click a consumer, producer or binding while running to play a fault.")
        hint.setWordWrap(True)
        hint.setStyleSheet(f"color: {MUTED_TEXT}; font-size: 8pt;")
        buttons = QHBoxLayout()
        buttons.addWidget(self.recording, 1)
        buttons.addWidget(self.remove)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(QLabel("<b>Timeline</b> (kept in the file, replayed by every run)"))
        layout.addWidget(self.steps, 1)
        layout.addLayout(buttons)
        layout.addWidget(QLabel("<b>Played in this run</b>"))
        layout.addWidget(self.played, 1)
        layout.addWidget(hint)
        self._played_shown = -1
        self._step_times: list[tuple[float, str]] = []
        self._unticked = 0

    def refresh(self) -> None:
        self._fill_steps()
        self._played_shown = -1
        self.refresh_played()

    def _tick_steps(self) -> None:
        """Tick the steps whose time this run has passed (they are in time order): only those."""
        sim = self.window.controller.sim
        if sim is None:
            return
        while self._unticked < len(self._step_times):
            at, text = self._step_times[self._unticked]
            if not (at < sim.now or (sim.started and at <= sim.now)):
                break
            item = self.steps.item(self._unticked)
            if item is not None:
                item.setText(f"✓ {text}")
            self._unticked += 1

    def _fill_steps(self) -> None:
        """The file's steps, each ticked once this run has passed its time."""
        topology = self.window.document.topology
        sim = self.window.controller.sim
        now = sim.now if sim is not None else 0.0
        self.steps.clear()
        self._step_times = []
        self._unticked = 0
        for index, event in sorted(enumerate(topology.timeline), key=lambda pair: pair[1].at):
            done = event.at < now or (sim is not None and sim.started and event.at <= now)
            text = f"{event.at:8.2f} s   {event.describe()}"
            item = QListWidgetItem(("✓ " if done else "   ") + text)
            item.setData(Qt.ItemDataRole.UserRole, index)
            self.steps.addItem(item)
            self._step_times.append((event.at, text))
            if done:
                self._unticked = len(self._step_times)
        self.remove.setEnabled(bool(topology.timeline))

    def refresh_played(self) -> None:
        sim = self.window.controller.sim
        log = sim.fault_log if sim is not None else []
        if len(log) == self._played_shown:
            return
        if self._played_shown < 0 or len(log) < self._played_shown:
            self.played.clear()
            self._played_shown = 0
        else:
            self._tick_steps()
        # Only the new entries: a run playing thousands of faults costs the same each frame.
        for number, (when, text) in enumerate(log[self._played_shown :], start=self._played_shown + 1):
            self.played.addItem(f"{number:>3}.{when:8.2f} s   {text}")
        self._played_shown = len(log)
        self.played.scrollToBottom()

    def _remove_selected(self) -> None:
        item = self.steps.currentItem()
        if item is None:
            return
        index = item.data(Qt.ItemDataRole.UserRole)

        def remove(topology: Topology) -> None:
            del topology.timeline[index]

        self.window.apply_edit("Remove timeline step", remove)
