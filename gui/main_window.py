"""The main window: the canvas over live plots, the palette, the inspector and the problems panel.

The window wires intent to edits: what the view reports (a drop, a drag between
nodes, nodes moved, a rename) becomes one edit of the document; the document's
changes flow back to the scene, the inspector, the problems panel and the
running simulation.
"""

from __future__ import annotations

import gc
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QPoint, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QLabel,
    QMainWindow,
    QMenu,
    QSizePolicy,
    QSplitter,
    QToolBar,
    QWidget,
)

from engine.edits import EditRefused, connect, move_nodes, relations_between, rename_node
from engine.model import Topology
from engine.remote import RemoteRun
from engine.sim import COUNTERS, TOTALS_ID, Simulation
from engine.topology_file import TopologyFileError

from .controller import SPEEDS, SimulationController, speed_label
from .document import Document
from .edit_actions import EditActions
from .fault_actions import FaultActions, TimelinePanel
from .file_actions import EXAMPLES, FileActions, example_files, example_title
from .flow_view import FlowAnimator
from .inspector import Inspector
from .listener import Listener
from .messages_panel import MessagesPanel
from .palette import Palette
from .problems_panel import ProblemsPanel
from .rabbitmq_run import RabbitRun
from .rates_panel import RatesPanel
from .run_actions import RunActions
from .scene import GRID, TopologyScene
from .style import icon_path
from .view import CanvasView

__all__ = ["MainWindow", "EXAMPLES", "example_files", "example_title"]

T = {name: i for i, name in enumerate(COUNTERS["totals"])}
RELATION_TEXT = {
    "binding": "Bind (messages flow on by binding key)",
    "alternate": "Set as alternate exchange (takes what matches no binding)",
}


PLOTTED_KINDS = ("producer", "exchange", "queue", "consumer", "binding")


class MainWindow(QMainWindow):
    FRAME_MS = 16
    COUNTERS_EVERY = 0.2  # seconds between updates of node status lines and edge widths

    closed = Signal()

    def __init__(self, settings: QSettings | None = None, remember_recent_files: bool = True) -> None:
        super().__init__()
        self.settings = settings or QSettings()
        self.remember_recent_files = remember_recent_files
        self.document = Document(self)
        self.controller = SimulationController(self)
        self.scene = TopologyScene(self)
        self.view = CanvasView(self.scene)
        self.rates = RatesPanel()
        self.animator = FlowAnimator(self.scene)
        self._last_frame = time.monotonic()
        self._legend_updated = 0.0
        self._counters_shown = 0.0
        self._frames = 0
        self.frame_intervals: deque[float] = deque(maxlen=4000)  # the last minute or so

        self.setWindowIcon(QIcon(icon_path("queuecraft")))
        self.resize(1440, 900)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.view)
        splitter.addWidget(self.rates)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([560, 300])
        self.setCentralWidget(splitter)

        self.palette = Palette()
        self.inspector = Inspector(self.document)
        self.problems = ProblemsPanel(self.document)
        self.palette_dock = self._dock("Palette", self.palette, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.inspector_dock = self._dock("Inspector", self.inspector, Qt.DockWidgetArea.RightDockWidgetArea)
        self.problems_dock = self._dock("Problems", self.problems, Qt.DockWidgetArea.RightDockWidgetArea)
        self.resizeDocks([self.palette_dock], [170], Qt.Orientation.Horizontal)
        self.resizeDocks([self.inspector_dock], [330], Qt.Orientation.Horizontal)
        self.resizeDocks([self.inspector_dock, self.problems_dock], [470, 370], Qt.Orientation.Vertical)

        self.messages = MessagesPanel()
        self.messages_dock = self._dock("Messages", self.messages, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.problems_dock, self.messages_dock)
        self.problems_dock.raise_()

        self.files = FileActions(self)
        self.edits = EditActions(self)
        self._build_run_actions()
        self.runs = RunActions(self)
        self.faults = FaultActions(self)
        self.listener = Listener(self)
        self.inspector.describe_live = self.listener.describe
        self.document.edit_guard = self.listener.name_clash
        self.rabbit = RabbitRun(self)
        self.timeline = TimelinePanel(self)
        self.timeline_dock = self._dock("Timeline", self.timeline, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.messages_dock, self.timeline_dock)
        self.problems_dock.raise_()
        self._build_menus()
        self._build_toolbar()
        self.totals_label = QLabel()
        self.statusBar().addPermanentWidget(self.rabbit.status)
        self.statusBar().addPermanentWidget(self.listener.status)
        self.statusBar().addPermanentWidget(self.totals_label)
        # A message longer than the bar has room for is there whole under the mouse.
        bar = self.statusBar()
        bar.messageChanged.connect(lambda text: bar.setToolTip(text))

        self.document.topology_replaced.connect(self._on_topology_replaced)
        self.document.changed.connect(self._on_document_changed)
        self.document.title_changed.connect(self._update_title)
        self.controller.simulation_replaced.connect(self._on_simulation_replaced)
        self.controller.state_changed.connect(self.update_run_actions)
        self.scene.selectionChanged.connect(self._on_selection_changed)
        self.scene.nodes_moved.connect(self._on_nodes_moved)
        self.view.connection_check = self._connection_verdict
        self.view.connection_requested.connect(self._on_connection_requested)
        self.view.connection_refused.connect(
            lambda reason: self.statusBar().showMessage(f"Not connected: {reason}", 6000)
        )
        self.view.node_dropped.connect(self.edits.place_new_node)
        self.view.rename_requested_check = self._rename_from_view
        self.view.context_requested.connect(self._show_context_menu)
        self.view.token_clicked.connect(self.show_message_trace)
        self.palette.add_requested.connect(
            lambda kind: self.edits.place_new_node(kind, self.view.mapToScene(self.view.viewport().rect().center()))
        )
        self.inspector.selection_renamed.connect(lambda nid: self.scene.select_only([nid]))
        self.rates.subject_changed.connect(lambda subject: self.scene.clearSelection())
        self.problems.problems_found.connect(self.scene.show_problems)
        self.problems.node_chosen.connect(self._reveal)
        snap = bool(self.settings.value("snap_to_grid", False, type=bool))
        self.edits.snap.setChecked(snap)
        self.scene.snap_grid = GRID if snap else 0

        self.frame_timer = QTimer(self)
        self.frame_timer.setInterval(self.FRAME_MS)
        self.frame_timer.timeout.connect(self.on_frame)
        self.frame_timer.start()
        self._on_topology_replaced()
        self._update_title()
        self.update_run_actions()

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.lower())
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.addDockWidget(area, dock)
        return dock

    # -- actions, menus, toolbar ---------------------------------------------------------------

    def make_action(
        self,
        text: str,
        slot: Callable[..., Any],
        shortcut: QKeySequence | QKeySequence.StandardKey | str | None = None,
        tip: str = "",
    ) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        # triggered carries a 'checked' flag; only checkable actions want it.
        action.triggered.connect(lambda checked=False: slot(checked) if action.isCheckable() else slot())
        return action

    def _build_run_actions(self) -> None:
        key = QKeySequence.StandardKey
        self.run_action = self.make_action("&Run", self.controller.run, "F5", "Run the simulation")
        self.pause_action = self.make_action("&Pause", self.controller.pause, "F6", "Pause the simulation")
        self.reset_action = self.make_action(
            "R&eset", self.reset_simulation, "Ctrl+R", "Start the simulation again from time zero"
        )
        self.fit_action = self.make_action("&Fit to Window", lambda: self.view.fit(), "Ctrl+0")
        self.zoom_in_action = self.make_action("Zoom &In", lambda: self.view.zoom_by(1.2), key.ZoomIn)
        self.zoom_in_action.setShortcuts([*QKeySequence.keyBindings(key.ZoomIn), QKeySequence("Ctrl+=")])
        self.zoom_out_action = self.make_action("Zoom &Out", lambda: self.view.zoom_by(1 / 1.2), key.ZoomOut)

    def _build_menus(self) -> None:
        self.files.fill_menu(self.menuBar().addMenu("&File"))
        self.edits.fill_menu(self.menuBar().addMenu("&Edit"))
        sim_menu = self.menuBar().addMenu("&Simulation")
        for action in (self.run_action, self.pause_action, self.runs.step, self.runs.follow, self.reset_action):
            sim_menu.addAction(action)
        sim_menu.addSeparator()
        sim_menu.addAction(self.listener.toggle)
        sim_menu.addAction(self.rabbit.start_action)
        sim_menu.addAction(self.rabbit.stop_action)
        sim_menu.addSeparator()
        sim_menu.addAction(self.faults.restart_broker)
        sim_menu.addAction(self.faults.record)
        view_menu = self.menuBar().addMenu("&View")
        for action in (self.fit_action, self.zoom_in_action, self.zoom_out_action):
            view_menu.addAction(action)
        view_menu.addSeparator()
        self.legend_action = QAction("Show &Legend", self, checkable=True)
        self.legend_action.setChecked(bool(self.settings.value("show_legend", True, type=bool)))
        self.legend_action.toggled.connect(self._show_legend)
        self._show_legend(self.legend_action.isChecked())
        view_menu.addAction(self.legend_action)
        view_menu.addSeparator()
        for dock in (
            self.palette_dock,
            self.inspector_dock,
            self.problems_dock,
            self.messages_dock,
            self.timeline_dock,
        ):
            view_menu.addAction(dock.toggleViewAction())

    def show_message_trace(self, msg_id: int) -> None:
        self.messages_dock.show()
        self.messages_dock.raise_()
        self.messages.show_trace(msg_id)

    def _show_legend(self, shown: bool) -> None:
        self.view.legend.setVisible(shown)
        self.settings.setValue("show_legend", shown)

    def _build_toolbar(self) -> None:
        bar = QToolBar("Main")
        bar.setObjectName("main-toolbar")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.addToolBar(bar)
        for action in (self.files.new, self.files.open, self.files.save):
            bar.addAction(action)
        bar.addSeparator()
        bar.addAction(self.edits.undo)
        bar.addAction(self.edits.redo)
        bar.addSeparator()
        for action in (self.run_action, self.pause_action, self.runs.step, self.runs.follow, self.reset_action):
            bar.addAction(action)
        bar.addSeparator()
        bar.addWidget(QLabel(" Speed "))
        self.speed_box = QComboBox()
        for speed in SPEEDS:
            self.speed_box.addItem(speed_label(speed), speed)
        self.speed_box.setCurrentIndex(SPEEDS.index(1.0))
        self.speed_box.setToolTip("Simulated seconds per wall-clock second")
        self.speed_box.currentIndexChanged.connect(lambda i: self.set_speed(self.speed_box.itemData(i)))
        bar.addWidget(self.speed_box)
        bar.addWidget(QLabel("  Seed "))
        bar.addWidget(self.runs.seed_box)
        bar.addSeparator()
        self.time_label = QLabel()
        self.time_label.setMinimumWidth(190)
        self.time_label.setToolTip("Simulated time")
        bar.addWidget(self.time_label)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        bar.addWidget(spacer)
        bar.addAction(self.rabbit.stop_action)
        bar.addAction(self.listener.toggle)
        bar.addSeparator()
        bar.addAction(self.edits.layout)
        bar.addAction(self.fit_action)

    def set_speed(self, speed: float) -> None:
        self.controller.set_speed(speed)
        self.animator.set_speed(speed)
        index = self.speed_box.findData(speed)
        if index < 0:
            # A speed from the command line that the box does not list: add it in order.
            index = sum(1 for i in range(self.speed_box.count()) if self.speed_box.itemData(i) < speed)
            self.speed_box.insertItem(index, speed_label(speed), speed)
        if self.speed_box.currentIndex() != index:
            self.speed_box.setCurrentIndex(index)

    def reset_simulation(self) -> None:
        was_running = self.controller.running
        self.controller.load(self.document.topology)
        if was_running:
            self.controller.run()

    # -- files (kept here for callers that open by path) -----------------------------------------

    def open_path(self, path: str | Path) -> bool:
        return self.files.open_path(path)

    def open_path_quietly(self, path: str | Path, remember: bool = True) -> bool:
        """Open from the command line: errors go to stderr, not a dialog."""
        try:
            self.document.open(path)
        except TopologyFileError as exc:
            print(f"queuecraft: {exc}", file=sys.stderr)
            return False
        if remember:
            self.files.remember_recent(self.document.path)
        return True

    def save_as(self) -> bool:
        return self.files.save_document_as()

    def recent_files(self) -> list[str]:
        return self.files.recent_files()

    @property
    def recent_menu(self) -> QMenu:
        return self.files.recent_menu

    # -- edits --------------------------------------------------------------------------------------

    def apply_edit(self, label: str, change: Callable[[Topology], Any], merge_key: str = "") -> bool:
        """One edit of the document; a refusal is shown, and changes nothing."""
        refused = self.document.try_edit(label, change, merge_key)
        if refused:
            self.statusBar().showMessage(f"{label}: {refused}", 8000)
            return False
        return True

    def _connection_verdict(self, source: str, target: str) -> list[str] | str:
        if self.listener.is_live(source) or self.listener.is_live(target):
            return "what real clients brought (LIVE) is the broker's, not the document's: it cannot be connected"
        try:
            return relations_between(self.document.topology, source, target)
        except EditRefused as exc:
            return str(exc)

    def _on_connection_requested(self, source: str, target: str, relations: list[str], where: QPoint) -> None:
        relation = relations[0]
        if len(relations) > 1:
            menu = QMenu(self)
            for option in relations:
                menu.addAction(RELATION_TEXT.get(option, option)).setData(option)
            chosen = menu.exec(where)
            if chosen is None:
                return
            relation = chosen.data()
        created: list[str] = []
        if self.apply_edit("Connect", lambda topology: created.append(connect(topology, source, target, relation))):
            self.scene.select_only(created)

    def _on_nodes_moved(self, moved: dict[str, tuple[float, float]]) -> None:
        moved = self.listener.moved(moved)
        count = len(moved)
        if not count:
            return
        self.apply_edit(f"Move {count} node{'s' if count != 1 else ''}", lambda topology: move_nodes(topology, moved))

    def _rename_from_view(self, node_id: str, name: str) -> str | None:
        """The inline name field's Enter: rename, or say why not (the field stays open)."""
        renamed: list[str] = []
        # Naming a node just dropped from the palette is part of adding it: one undo step.
        top = self.document.undo_stack.command(self.document.undo_stack.index() - 1)
        merge_key = f"add:{node_id}" if getattr(top, "merge_key", "") == f"add:{node_id}" else ""
        refused = self.document.try_edit(
            "Rename", lambda topology: renamed.append(rename_node(topology, node_id, name.strip())), merge_key
        )
        if refused:
            return refused
        if renamed:
            self.scene.select_only(renamed)
        return None

    def context_menu(self) -> QMenu:
        """What a right click offers: actions on the selection, or on the canvas."""
        menu = QMenu(self)
        edits = self.edits
        if self.scene.selectedItems():
            for action in (edits.rename, edits.duplicate, edits.copy, edits.cut, edits.delete):
                menu.addAction(action)
            if len(self.scene.selected_node_ids()) > 1:
                align = menu.addMenu("&Align")
                for action in edits.align.values():
                    align.addAction(action)
            selected = [*self.scene.selected_node_ids(), *self.scene.selected_edge_ids()]
            self.faults.fill_menu(menu, selected)
            self.listener.fill_menu(menu, selected)
        else:
            menu.addAction(edits.paste)
            menu.addAction(edits.select_all)
            menu.addAction(edits.layout)
        return menu

    def _show_context_menu(self, where: QPoint) -> None:
        self.context_menu().exec(where)

    def _reveal(self, node_id: str) -> None:
        self.scene.select_only([node_id])
        item = self.scene.nodes.get(node_id) or self.scene.edge_by_id.get(node_id)
        if item is not None:
            self.view.centerOn(item)

    # -- reacting to the model -------------------------------------------------------------------

    def sync_scene(self) -> None:
        """The canvas shows the document, and what real clients brought while the listener is open."""
        topology = self.document.topology
        self.scene.sync(topology, self.listener.shown(topology))

    def _on_topology_replaced(self) -> None:
        self.rabbit.stop()  # another document: a RabbitMQ run of the last one ends
        self.scene.show_topology(self.document.topology)
        self.controller.load(self.document.topology)
        QTimer.singleShot(0, lambda: self.view.fit(readable=True))

    def _on_document_changed(self) -> None:
        topology = self.document.topology
        self.view.forget_fit()
        self.timeline.refresh()
        self.sync_scene()
        trouble = self.controller.sync(topology)
        if trouble:
            self.statusBar().showMessage(trouble, 8000)
        elif self.rabbit.active:
            self.statusBar().showMessage(
                "The edit applies to the simulation; the RabbitMQ run goes on with the topology it started with.", 8000
            )
        self.rates.reset_if_queues_changed(self.controller.sim)
        if self.controller.sim is not None:
            self.scene.show_effective_settings(self.controller.sim)

    def _on_selection_changed(self) -> None:
        selected = [*self.scene.selected_node_ids(), *self.scene.selected_edge_ids()]
        self.inspector.show_selection(selected)
        # The plots follow one selected node or binding; anything else shows the whole topology.
        subject = selected[0] if len(selected) == 1 else None
        if subject is not None and subject.split(":", 1)[0] not in PLOTTED_KINDS:
            subject = None
        self.rates.set_subject(subject)
        queues = [nid for nid in selected if nid.startswith("queue:")]
        if len(selected) == 1 and queues:
            self.messages.show_queue(queues[0])
            # Clicking a queue lists its messages: bring them forward, unless the problems
            # behind that tab are what the user is working through.
            if self.problems.list.count() == 0 or not self.problems.list.hasFocus():
                self.messages_dock.raise_()

    def _on_simulation_replaced(self) -> None:
        self.listener.simulation_replaced()
        if not self.rabbit.active:
            self.watch(self.controller.sim)

    def watch(self, run: Simulation | RemoteRun | None) -> None:
        """The canvas, the graphs and the panels follow this run: the simulation's, or one on RabbitMQ."""
        if run is None:
            return
        self.animator.reset(run.flow)
        self.rates.reset(run)
        if isinstance(run, Simulation):
            self.messages.set_simulation(run)
        else:
            self.messages.set_simulation(None, "on the RabbitMQ this run uses (its management UI lists them)")
        self.runs.following = None
        self.timeline.refresh()
        if isinstance(run, Simulation):
            self.scene.show_effective_settings(run)
        self.update_run_actions()
        self.on_frame()

    def _update_title(self) -> None:
        marker = "*" if self.document.dirty else ""
        self.setWindowTitle(f"{self.document.display_name}{marker} — Queuecraft")

    def update_run_actions(self) -> None:
        running = self.controller.running
        loaded = self.controller.sim is not None and self.rabbit.state == "idle"  # else RabbitMQ has the stage
        self.run_action.setEnabled(loaded and not running)
        self.pause_action.setEnabled(loaded and running)
        self.reset_action.setEnabled(loaded)
        for action in (self.runs.step, self.runs.follow):
            action.setEnabled(loaded)
        self.speed_box.setEnabled(loaded)
        self.runs.seed_box.setEnabled(loaded)

    # -- per frame ----------------------------------------------------------------------------------

    def on_frame(self) -> None:
        self._collect_garbage()
        now = time.monotonic()
        elapsed = min(now - self._last_frame, 0.25)
        self.frame_intervals.append(now - self._last_frame)
        self._last_frame = now
        remote = self.rabbit.run
        sim: Simulation | RemoteRun | None = remote if remote is not None else self.controller.sim
        if sim is None:
            return
        self.animator.advance(sim.flow, elapsed, remote is not None or self.controller.running)
        if remote is None:
            self.runs.on_frame()
        if now - self._counters_shown < self.COUNTERS_EVERY:
            return
        self.listener.on_frame()
        self.rabbit.on_frame()
        if remote is None:
            self.messages.refresh()
            self.timeline.refresh_played()
        self.scene.show_fault_state(sim)
        self._counters_shown = now
        counters = sim.read_counters()
        if now - self._legend_updated > 0.5:
            self._legend_updated = now
            self.view.legend.set_keys(self.animator.key_colors.seen())
        self.animator.show_counters(sim, counters)
        self.rates.update_from(sim)
        self._show_totals(sim, counters)

    def _collect_garbage(self) -> None:
        """A little of the collector's work every frame, instead of a long pause now and then.

        The engine makes and drops thousands of small objects a second; most are freed as they
        go, so the collector's own counters hardly move while its youngest generation fills up
        with survivors. Collecting it every frame keeps each collection small.
        """
        self._frames += 1
        if self._frames % 1800 == 0:
            gc.collect(2)
        elif self._frames % 30 == 0:
            gc.collect(1)
        else:
            gc.collect(0)

    def _show_totals(self, sim: Simulation | RemoteRun, counters: dict[str, tuple[int, ...]]) -> None:
        if isinstance(sim, RemoteRun):
            self.time_label.setText(f"  t = {sim.now:8.1f} s  on RabbitMQ")
        else:
            state = "running" if self.controller.running else "paused"
            runner = self.controller.runner
            behind = " (engine behind)" if runner is not None and runner.behind else ""
            self.time_label.setText(f"  t = {sim.now:8.1f} s  {state}{behind}")
        totals = counters[TOTALS_ID]
        text = "published {:,}   routed {:,}   unroutable {:,}   ready {:,}   unacked {:,}   acked {:,}".format(
            totals[T["published"]],
            totals[T["routed"]],
            totals[T["unroutable"]],
            totals[T["ready"]],
            totals[T["unacked"]],
            totals[T["acked"]],
        )
        if text != self.totals_label.text():
            self.totals_label.setText(text)
            # As wide as the numbers need, in steps, so it does not jitter as they grow, and no
            # wider: the rest of the bar is for messages (Step's explanation, say).
            width = self.totals_label.fontMetrics().horizontalAdvance(text) + 12
            if width > self.totals_label.minimumWidth() or width < self.totals_label.minimumWidth() - 120:
                self.totals_label.setMinimumWidth(-(-width // 60) * 60)

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.files.may_discard():
            event.ignore()
            return
        self.files.forget_recovery()
        self.listener.close()
        self.rabbit.close()
        self.controller.pause()
        self.frame_timer.stop()
        super().closeEvent(event)
        self.closed.emit()
