"""The main window: canvas over live plots, file and run controls, totals in the status bar."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QToolBar,
    QWidget,
)

from engine.sim import COUNTERS, TOTALS_ID, Simulation
from engine.topology_file import TopologyFileError

from .canvas import CanvasView, TopologyScene
from .controller import SPEEDS, SimulationController, speed_label
from .document import Document
from .flow_view import FlowAnimator
from .rates_panel import RatesPanel
from .style import icon_path

EXAMPLES = Path(__file__).resolve().parent.parent / "topologies"
T = {name: i for i, name in enumerate(COUNTERS["totals"])}
FILE_FILTER = "Topology files (*.json);;All files (*)"
MAX_RECENT = 8


def example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.json"))


def example_title(path: Path) -> str:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("queuecraft", {}).get("title") or path.stem
    except (OSError, ValueError, AttributeError):
        return path.stem


class MainWindow(QMainWindow):
    FRAME_MS = 33

    closed = Signal()

    def __init__(self, settings: QSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or QSettings()
        self.document = Document(self)
        self.controller = SimulationController(self)
        self.scene = TopologyScene(self)
        self.view = CanvasView(self.scene)
        self.rates = RatesPanel()
        self.animator = FlowAnimator(self.scene)
        self._last_frame = time.monotonic()
        self.frame_intervals: list[float] = []

        self.setWindowIcon(QIcon(icon_path("queuecraft")))
        self.resize(1440, 900)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.view)
        splitter.addWidget(self.rates)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([560, 300])
        self.setCentralWidget(splitter)

        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self.totals_label = QLabel()
        # Room for eight-digit counters, so the label never clips while numbers grow.
        template = "   ".join(
            f"{name} 88,888,888" for name in ("published", "routed", "unroutable", "ready", "unacked", "acked")
        )
        self.totals_label.setMinimumWidth(self.totals_label.fontMetrics().horizontalAdvance(template) + 12)
        self.statusBar().addPermanentWidget(self.totals_label)

        self.document.topology_replaced.connect(self._on_topology_replaced)
        self.document.title_changed.connect(self._update_title)
        self.controller.simulation_replaced.connect(self._on_simulation_replaced)
        self.controller.state_changed.connect(self._update_run_actions)

        self.frame_timer = QTimer(self)
        self.frame_timer.setInterval(self.FRAME_MS)
        self.frame_timer.timeout.connect(self.on_frame)
        self.frame_timer.start()
        self._update_title()
        self._update_run_actions()

    # -- actions, menus, toolbar ---------------------------------------------------------------

    def _action(self, text: str, slot, shortcut: QKeySequence | str | None = None, tip: str = "") -> QAction:  # type: ignore[no-untyped-def]
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.triggered.connect(slot)
        return action

    def _build_actions(self) -> None:
        key = QKeySequence.StandardKey
        self.open_action = self._action(
            "&Open…", self.choose_and_open, key.Open, "Open a topology or RabbitMQ definitions file"
        )
        self.save_action = self._action("&Save", self.save, key.Save, "Save the topology")
        self.save_as_action = self._action("Save &As…", self.save_as, key.SaveAs, "Save the topology to a new file")
        self.quit_action = self._action("&Quit", self.close, key.Quit)
        self.run_action = self._action("&Run", self.controller.run, "F5", "Run the simulation")
        self.pause_action = self._action("&Pause", self.controller.pause, "F6", "Pause the simulation")
        self.reset_action = self._action(
            "R&eset", self.controller.reset, "Ctrl+R", "Start the simulation again from time zero"
        )
        self.fit_action = self._action("&Fit to Window", lambda: self.view.fit(), "Ctrl+0")
        self.zoom_in_action = self._action("Zoom &In", lambda: self.view.zoom_by(1.2), key.ZoomIn)
        self.zoom_out_action = self._action("Zoom &Out", lambda: self.view.zoom_by(1 / 1.2), key.ZoomOut)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self.open_action)
        self.examples_menu = file_menu.addMenu("Open &Example")
        for path in example_files():
            self.examples_menu.addAction(example_title(path), lambda p=path: self.open_path(p))
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self._rebuild_recent_menu()
        file_menu.addSeparator()
        file_menu.addAction(self.save_action)
        file_menu.addAction(self.save_as_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        sim_menu = self.menuBar().addMenu("&Simulation")
        for action in (self.run_action, self.pause_action, self.reset_action):
            sim_menu.addAction(action)
        view_menu = self.menuBar().addMenu("&View")
        for action in (self.fit_action, self.zoom_in_action, self.zoom_out_action):
            view_menu.addAction(action)

    def _build_toolbar(self) -> None:
        bar = QToolBar("Run")
        bar.setObjectName("run-toolbar")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.addToolBar(bar)
        bar.addAction(self.open_action)
        bar.addAction(self.save_action)
        bar.addSeparator()
        bar.addAction(self.run_action)
        bar.addAction(self.pause_action)
        bar.addAction(self.reset_action)
        bar.addSeparator()
        bar.addWidget(QLabel(" Speed "))
        self.speed_box = QComboBox()
        for speed in SPEEDS:
            self.speed_box.addItem(speed_label(speed), speed)
        self.speed_box.setCurrentIndex(SPEEDS.index(1.0))
        self.speed_box.setToolTip("Simulated seconds per wall-clock second")
        self.speed_box.currentIndexChanged.connect(lambda i: self.set_speed(self.speed_box.itemData(i)))
        bar.addWidget(self.speed_box)
        bar.addSeparator()
        self.time_label = QLabel()
        self.time_label.setMinimumWidth(150)
        self.time_label.setToolTip("Simulated time")
        bar.addWidget(self.time_label)
        spacer = QWidget()
        spacer.setSizePolicy(spacer.sizePolicy().horizontalPolicy().Expanding, spacer.sizePolicy().verticalPolicy())
        bar.addWidget(spacer)
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

    # -- files -------------------------------------------------------------------------------------

    def choose_and_open(self) -> None:
        start = str(self.document.path.parent) if self.document.path else str(EXAMPLES)
        path, _ = QFileDialog.getOpenFileName(self, "Open topology", start, FILE_FILTER)
        if path:
            self.open_path(path)

    def open_path(self, path: str | Path) -> bool:
        """Open a file; on an error say what and where, and leave the open document as it was."""
        try:
            self.document.open(path)
        except TopologyFileError as exc:
            QMessageBox.warning(self, "Cannot open topology", str(exc))
            self.statusBar().showMessage(f"Not opened: {exc}", 10000)
            return False
        self._remember_recent(self.document.path)
        self.statusBar().showMessage(f"Opened {self.document.path}", 5000)
        return True

    def open_path_quietly(self, path: str | Path, remember: bool = True) -> bool:
        """Open from the command line: errors go to stderr, not a dialog."""
        try:
            self.document.open(path)
        except TopologyFileError as exc:
            print(f"queuecraft: {exc}", file=sys.stderr)
            return False
        if remember:
            self._remember_recent(self.document.path)
        return True

    def save(self) -> bool:
        if self.document.path is None:
            return self.save_as()
        return self._save_to(self.document.path)

    def save_as(self) -> bool:
        start = str(self.document.path) if self.document.path else str(Path.home() / "topology.json")
        path, _ = QFileDialog.getSaveFileName(self, "Save topology", start, FILE_FILTER)
        if not path:
            return False
        return self._save_to(Path(path))

    def _save_to(self, path: Path) -> bool:
        try:
            saved = self.document.save(path)
        except OSError as exc:
            QMessageBox.warning(self, "Cannot save topology", f"{path}: {exc.strerror or exc}")
            return False
        self._remember_recent(saved)
        self.statusBar().showMessage(f"Saved {saved}", 5000)
        return True

    def recent_files(self) -> list[str]:
        value = self.settings.value("recent_files", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _remember_recent(self, path: Path | None) -> None:
        if path is None:
            return
        recent = [p for p in self.recent_files() if p != str(path)]
        recent.insert(0, str(path))
        self.settings.setValue("recent_files", recent[:MAX_RECENT])
        self._rebuild_recent_menu()

    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_files()
        for path in recent:
            self.recent_menu.addAction(path, lambda p=path: self.open_path(p))
        self.recent_menu.setEnabled(bool(recent))

    # -- reacting to the model -------------------------------------------------------------------

    def _on_topology_replaced(self) -> None:
        self.scene.show_topology(self.document.topology)
        self.controller.load(self.document.topology)
        QTimer.singleShot(0, lambda: self.view.fit(readable=True))

    def _on_simulation_replaced(self) -> None:
        sim = self.controller.sim
        assert sim is not None
        self.animator.reset(sim.flow)
        self.rates.reset(sim)
        self.scene.show_effective_settings(sim)
        self.on_frame()

    def _update_title(self) -> None:
        marker = "*" if self.document.dirty else ""
        self.setWindowTitle(f"{self.document.display_name}{marker} — Queuecraft")

    def _update_run_actions(self) -> None:
        running = self.controller.running
        loaded = self.controller.sim is not None
        self.run_action.setEnabled(loaded and not running)
        self.pause_action.setEnabled(running)
        self.reset_action.setEnabled(loaded)

    # -- per frame ----------------------------------------------------------------------------------

    def on_frame(self) -> None:
        now = time.monotonic()
        elapsed = min(now - self._last_frame, 0.25)
        self.frame_intervals.append(now - self._last_frame)
        if len(self.frame_intervals) > 600:
            del self.frame_intervals[:300]
        self._last_frame = now
        sim = self.controller.sim
        if sim is None:
            return
        counters = sim.read_counters()
        self.animator.advance(sim.flow, elapsed, self.controller.running)
        self.animator.show_counters(sim, counters)
        self.rates.update_from(sim)
        self._show_totals(sim, counters)

    def _show_totals(self, sim: Simulation, counters: dict[str, tuple[int, ...]]) -> None:
        state = "running" if self.controller.running else "paused"
        behind = " (engine behind)" if self.controller.runner is not None and self.controller.runner.behind else ""
        self.time_label.setText(f"  t = {sim.now:8.1f} s  {state}{behind}")
        totals = counters[TOTALS_ID]
        self.totals_label.setText(
            "published {:,}   routed {:,}   unroutable {:,}   ready {:,}   unacked {:,}   acked {:,}".format(
                totals[T["published"]],
                totals[T["routed"]],
                totals[T["unroutable"]],
                totals[T["ready"]],
                totals[T["unacked"]],
                totals[T["acked"]],
            )
        )

    def closeEvent(self, event: QCloseEvent) -> None:
        self.controller.pause()
        self.frame_timer.stop()
        super().closeEvent(event)
        self.closed.emit()
