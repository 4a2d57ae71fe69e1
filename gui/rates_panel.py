"""Live plots (pyqtgraph) for the whole topology or the selected node: rates, depths, latency.

The numbers come from :mod:`engine.series` over the simulation's history; the
plots are redrawn at most ``REDRAW_EVERY`` seconds apart, whatever the message
rate or the speed, and only when the history has new samples.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from engine.model import display_name, split_node_id
from engine.remote import RemoteRun
from engine.routing import binding_parts
from engine.series import LATENCY, Series, kind_of, series, to_csv, value_at
from engine.sim import TOTALS_ID, Simulation

from .details import Q
from .style import MUTED_TEXT, TEXT, series_color

WINDOWS = (("last minute", 60.0), ("last 5 minutes", 300.0), ("whole run", None))

# Colour and dash of each series, the same wherever it appears.
STYLES: dict[str, tuple[str, Qt.PenStyle]] = {
    "publish": ("#1e88e5", Qt.PenStyle.SolidLine),
    "in": ("#1e88e5", Qt.PenStyle.SolidLine),
    "enqueue": ("#1e88e5", Qt.PenStyle.SolidLine),
    "route": ("#00897b", Qt.PenStyle.DashLine),
    "deliver": ("#fb8c00", Qt.PenStyle.SolidLine),
    "ack": ("#43a047", Qt.PenStyle.DashLine),
    "nack": ("#d81b60", Qt.PenStyle.SolidLine),
    "redeliver": ("#8e24aa", Qt.PenStyle.DotLine),
    "unroutable": ("#e53935", Qt.PenStyle.SolidLine),
    "return": ("#ef6c00", Qt.PenStyle.DotLine),
    "alternate": ("#ef6c00", Qt.PenStyle.DashLine),
    "drop": ("#455a64", Qt.PenStyle.SolidLine),
    "expire": ("#8d6e63", Qt.PenStyle.DashLine),
    "dead-letter": ("#c62828", Qt.PenStyle.DashDotLine),
    "ready": ("#1565c0", Qt.PenStyle.SolidLine),
    "unacked": ("#7e57c2", Qt.PenStyle.DashLine),
    "buffered": ("#90a4ae", Qt.PenStyle.DotLine),
    LATENCY[0]: ("#00897b", Qt.PenStyle.SolidLine),
    LATENCY[1]: ("#e53935", Qt.PenStyle.DashLine),
}


def _pen(name: str, width: float = 1.8) -> pg.QtGui.QPen:
    color, style = STYLES.get(name, ("#607d8b", Qt.PenStyle.SolidLine))
    return pg.mkPen(color, width=width, style=style)


def subject_title(subject: str) -> str:
    if subject == TOTALS_ID:
        return "Whole topology"
    kind, vhost, name = split_node_id(subject)
    if kind == "binding":
        source, destination, key = binding_parts(subject)
        return f"Binding {source} → {destination}" + (f" ({key})" if key else "")
    return f"{kind.capitalize()} {display_name(kind, name)}"


class CompactAxis(pg.AxisItem):
    """Tick numbers short enough for a narrow axis at any size: 950, 12k, 1.5M."""

    def tickStrings(self, values, scale, spacing):  # type: ignore[no-untyped-def]  # noqa: N802 - pyqtgraph's name
        return [compact_number(value * scale) for value in values]


def compact_number(value: float) -> str:
    size = abs(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if size >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}" if size < 10 else f"{value:.0f}"


class Chart:
    """One plot with its legend row above it."""

    LEGEND_ROWS = 3
    LABEL_CHARS = 18  # longer names are cut short in the legend (the values under the mouse say them whole)

    def __init__(
        self, graphics: pg.GraphicsLayoutWidget, col: int, title: str, unit: str, legend_columns: int = 3
    ) -> None:
        # The unit goes in the title: a rotated axis label costs more to draw than the whole curve.
        self.graphics = graphics
        self.title = graphics.addLabel(f"{title} ({unit})", row=0, col=col, size="10pt", color=TEXT)
        self.unit = unit
        self.legend = pg.LegendItem(labelTextSize="8pt", colCount=legend_columns)
        self.legend_entries = self.LEGEND_ROWS * legend_columns
        graphics.addItem(self.legend, row=1, col=col)
        self.plot: pg.PlotItem = graphics.addPlot(row=2, col=col, axisItems={"left": CompactAxis("left")})
        self.plot.setLabel("bottom", "simulated time (s)")
        self.plot.getAxis("left").setWidth(40)  # a fixed width: no relayout as the numbers grow
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setClipToView(True)
        self.plot.setDownsampling(auto=True, mode="peak")
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.cursor = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen("#90a4ae", width=1))
        self.cursor.hide()
        self.plot.addItem(self.cursor, ignoreBounds=True)
        self.markers: list[pg.InfiniteLine] = []
        self.empty = pg.TextItem("", color=MUTED_TEXT, anchor=(0.5, 0.5))
        self.plot.addItem(self.empty, ignoreBounds=True)

    def set_curves(
        self, names: list[str], labels: dict[str, str] | None = None, colors: dict[str, str] | None = None
    ) -> None:
        if list(self.curves) == names and not colors:
            return
        for curve in self.curves.values():
            self.plot.removeItem(curve)
        self.legend.clear()
        self.curves = {}
        # The legend has three rows: past what they hold, the rest are counted, not listed.
        listed = names if len(names) <= self.legend_entries else names[: self.legend_entries - 1]
        for name in names:
            pen = pg.mkPen(colors[name], width=1.8) if colors and name in colors else _pen(name)
            curve = self.plot.plot([], [], pen=pen, connect="finite")
            self.curves[name] = curve
            if name in listed:
                label = (labels or {}).get(name, name)
                if len(label) > self.LABEL_CHARS:
                    label = label[: self.LABEL_CHARS - 1] + "…"
                self.legend.addItem(curve, label)
        if len(listed) < len(names):
            self.legend.addItem(pg.PlotDataItem(pen=None), f"… and {len(names) - len(listed)} more")
        # The legend resizes itself to the top left corner of the layout, over the titles:
        # the layout puts it back in its row.
        self.graphics.ci.layout.invalidate()
        self.graphics.ci.layout.activate()

    def show_empty(self, text: str) -> None:
        self.empty.setText(text)
        self.empty.setVisible(bool(text))


class RatesPanel(QWidget):
    """Rates, levels and latency over a window of the run, for the whole topology or one node."""

    REDRAW_EVERY = 0.25  # wall seconds
    LEGEND_HEIGHT = 60  # three rows of legend above each plot
    MAX_QUEUE_CURVES = 16
    MAX_MARKERS = 40  # fault lines kept on each plot
    subject_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        pg.setConfigOptions(antialias=False, background="w", foreground="#37474f")
        self.subject = TOTALS_ID
        self.window: float | None = WINDOWS[0][1]
        self.sim: Simulation | None = None
        self.current: Series | None = None
        self.depths: dict[str, list[float]] = {}
        self._drawn_sample: float | None = None
        self._drawn_at = 0.0
        self._markers_drawn = 0
        self._pending_charts: list[int] = []
        self._times = np.zeros(0)

        self.subject_label = QLabel()
        self.subject_label.setStyleSheet(f"font-weight: bold; color: {TEXT};")
        self.window_box = QComboBox()
        for label, seconds in WINDOWS:
            self.window_box.addItem(label, seconds)
        self.window_box.currentIndexChanged.connect(self._window_chosen)
        self.whole_button = QPushButton("Whole topology")
        self.whole_button.setToolTip("Show the whole topology (or select a node to see its own numbers)")
        self.whole_button.clicked.connect(lambda: self.subject_changed.emit(TOTALS_ID))
        self.csv_button = QPushButton("Export CSV…")
        self.csv_button.setToolTip("The numbers shown, one row per sample, for a spreadsheet")
        self.csv_button.clicked.connect(lambda: self.export_csv())
        header = QHBoxLayout()
        header.setContentsMargins(6, 2, 6, 0)
        header.addWidget(self.subject_label, 1)
        header.addWidget(QLabel("Show"))
        header.addWidget(self.window_box)
        header.addWidget(self.whole_button)
        header.addWidget(self.csv_button)

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.rates_chart = Chart(self.graphics, 0, "Message rates", "msg/s")
        # Queue names are long, and p50 and p99 want room: two columns each, three for the rates' short words.
        self.levels_chart = Chart(self.graphics, 1, "Queue depth", "messages", legend_columns=2)
        self.latency_chart = Chart(self.graphics, 2, "End-to-end latency", "ms", legend_columns=2)
        for col in range(3):
            self.graphics.ci.layout.setColumnStretchFactor(col, 1)
        self.graphics.ci.layout.setRowMaximumHeight(1, self.LEGEND_HEIGHT)
        self.graphics.ci.layout.setRowMinimumHeight(1, self.LEGEND_HEIGHT)
        for chart in self.charts:
            chart.legend.setMaximumHeight(self.LEGEND_HEIGHT)
            chart.legend.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._mouse_proxy = pg.SignalProxy(self.graphics.scene().sigMouseMoved, rateLimit=30, slot=self._mouse_moved)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(0)
        layout.addLayout(header)
        layout.addWidget(self.graphics, 1)
        self._show_subject()

    @property
    def charts(self) -> tuple[Chart, Chart, Chart]:
        return self.rates_chart, self.levels_chart, self.latency_chart

    # -- what is shown -----------------------------------------------------------------------------

    @property
    def rate_curves(self) -> dict[str, pg.PlotDataItem]:
        return self.rates_chart.curves

    @property
    def depth_curves(self) -> dict[str, pg.PlotDataItem]:
        """The whole topology's depth curve per queue (empty while a node is shown)."""
        return self.levels_chart.curves if self.subject == TOTALS_ID else {}

    def set_subject(self, subject: str | None) -> None:
        """The node (or binding) to show; None or TOTALS_ID: the whole topology."""
        subject = subject or TOTALS_ID
        if subject == self.subject:
            return
        self.subject = subject
        self._show_subject()
        self.redraw()

    def _window_chosen(self, index: int) -> None:
        self.window = self.window_box.itemData(index)
        self._forget_markers()  # a longer window shows faults the shorter one had let go
        self.redraw()

    def _forget_markers(self) -> None:
        self._markers_drawn = 0
        for chart in self.charts:
            for marker in chart.markers:
                chart.plot.removeItem(marker)
            chart.markers = []

    def _show_subject(self) -> None:
        kind = kind_of(self.subject)
        self.subject_label.setText(subject_title(self.subject))
        self.whole_button.setEnabled(self.subject != TOTALS_ID)
        title = {"totals": "Queue depth", "queue": "In the queue", "consumer": "Held by the consumer"}.get(
            kind, "Held here"
        )
        self.levels_chart.title.setText(f"{title} (messages)")
        self._drawn_sample = None
        self.depths = {}
        self._set_curves()

    def _set_curves(self) -> None:
        kind = kind_of(self.subject)
        from engine.series import LATENCY_KINDS, LEVELS, RATES

        self.rates_chart.set_curves([name for name, _ in RATES.get(kind, ())])
        if kind == "totals":
            queues = self._queue_ids()
            shown = queues[: self.MAX_QUEUE_CURVES]
            labels = self._queue_labels(shown)
            colors = {qid: series_color(i) for i, qid in enumerate(shown)}
            self.levels_chart.set_curves(shown, labels, colors)
        else:
            self.levels_chart.set_curves([name for name, _ in LEVELS.get(kind, ())])
        self.latency_chart.set_curves(
            list(LATENCY) if kind in LATENCY_KINDS else [], {LATENCY[0]: "p50 (median)", LATENCY[1]: "p99"}
        )
        self.levels_chart.show_empty("" if self.levels_chart.curves else "nothing is held here")
        self.latency_chart.show_empty("" if kind in LATENCY_KINDS else "select a queue or consumer")

    def _queue_ids(self) -> list[str]:
        sim = self.sim
        if sim is None:
            return []
        return sim.queue_ids()

    @staticmethod
    def _queue_labels(queue_ids: list[str]) -> dict[str, str]:
        multi_vhost = len({split_node_id(q)[1] for q in queue_ids}) > 1
        labels = {}
        for qid in queue_ids:
            _, vhost, name = split_node_id(qid)
            labels[qid] = display_name("queue", name) + (f" [{vhost}]" if multi_vhost else "")
        return labels

    # -- following the simulation ------------------------------------------------------------------

    def reset(self, sim: Simulation | RemoteRun) -> None:
        self.sim = sim
        clock = "simulated time (s)" if isinstance(sim, Simulation) else "time on RabbitMQ (s)"
        for chart in self.charts:
            chart.plot.setLabel("bottom", clock)
        self._queues_seen = self._queue_ids()
        self._forget_markers()
        if self.subject != TOTALS_ID and self.subject not in sim.read_counters() and kind_of(self.subject) != "totals":
            self.subject = TOTALS_ID
        self._show_subject()
        self.redraw()

    def reset_if_queues_changed(self, sim: Simulation | None) -> None:
        """After an edit: new or removed queues get or lose their depth curve."""
        if sim is None:
            return
        self.sim = sim
        queues = self._queue_ids()
        if queues != getattr(self, "_queues_seen", None):
            self._queues_seen = queues
            self._set_curves()
            self._drawn_sample = None

    def update_from(self, sim: Simulation) -> None:
        """Once a frame: one chart's share of a redraw that is under way, or a new redraw when
        there is something new and the last one is not too recent. One chart a frame keeps
        each frame's share of the drawing small."""
        self.sim = sim
        if self._pending_charts:
            self._draw_chart(self._pending_charts.pop(0))
            return
        latest = sim.history.latest()
        if latest is None or latest.time == self._drawn_sample:
            return
        now = time.monotonic()
        if now - self._drawn_at < self.REDRAW_EVERY:
            return
        self._prepare()
        self._pending_charts = [1, 2]
        self._draw_chart(0)
        # The other two get their curves in the next frames; their time axes move now, with the
        # first's, or in a slow frame (a run at max speed) the three would show different times.
        for chart in self.charts[1:]:
            self._fit_x(chart, self._times)

    def redraw(self) -> None:
        """Everything at once (a new subject, a new window, a test)."""
        if self.sim is None:
            return
        self._prepare()
        self._pending_charts = []
        for index in range(3):
            self._draw_chart(index)

    def _prepare(self) -> None:
        sim = self.sim
        assert sim is not None
        self._drawn_at = time.monotonic()
        latest = sim.history.latest()
        self._drawn_sample = latest.time if latest is not None else None
        data = series(sim.history, self.subject, self.window)
        self.current = data
        self._times = np.asarray(data.times, dtype=float)
        if self.subject == TOTALS_ID:
            self.depths = {}
            samples = sim.history.window(self.window)
            depth = Q["depth"]
            for qid in self.levels_chart.curves:
                self.depths[qid] = [float(s.counters[qid][depth]) if qid in s.counters else math.nan for s in samples]

    def _draw_chart(self, index: int) -> None:
        data, times = self.current, self._times
        if data is None:
            return
        chart = self.charts[index]
        if chart is self.rates_chart:
            columns: dict[str, list[float]] = data.rates
        elif chart is self.levels_chart:
            columns = self.depths if self.subject == TOTALS_ID else data.levels
        else:
            columns = data.latency
        for name, curve in chart.curves.items():
            curve.setData(times, np.asarray(columns.get(name, []), dtype=float))
        self._fit_range(chart, times)
        if index == 0 and self.sim is not None:
            self._draw_markers(self.sim)

    def _fit_x(self, chart: Chart, times: np.ndarray) -> tuple[float, float]:
        end = float(times[-1]) if len(times) else 0.0
        span = self.window if self.window is not None else max(end, 10.0)
        start = max(0.0, end - span) if self.window is not None else 0.0
        end = max(end, start + min(span, 10.0))
        chart.plot.setXRange(start, end, padding=0.01)
        return start, end

    def _fit_range(self, chart: Chart, times: np.ndarray) -> None:
        start, end = self._fit_x(chart, times)
        peak = 0.0
        for curve in chart.curves.values():
            _, y = curve.getData()
            if y is not None and len(y):
                finite = y[np.isfinite(y)]
                if len(finite):
                    peak = max(peak, float(finite.max()))
        chart.plot.setYRange(0.0, max(peak * 1.12, 5.0), padding=0.03)
        chart.empty.setPos((start + end) / 2, max(peak * 1.12, 5.0) / 2)

    def _draw_markers(self, sim: Simulation) -> None:
        """A faint vertical line where each fault was played, labelled with its number in the
        Timeline panel's list of faults played (the values under the mouse name it in full)."""
        times = self._times
        start = float(times[-1]) - self.window if self.window is not None and len(times) else -math.inf
        first = max(self._markers_drawn, len(sim.fault_log) - self.MAX_MARKERS)
        for number, (when, _) in enumerate(sim.fault_log[first:], start=first):
            if when < start:
                continue
            for index, chart in enumerate(self.charts):
                marker = pg.InfiniteLine(
                    pos=when,
                    angle=90,
                    movable=False,
                    pen=pg.mkPen("#ef6c00", width=1, style=Qt.PenStyle.DashLine),
                    label=f"{number + 1}" if index == 0 else None,
                    # Labels sit left of their line (the newest faults are at the right edge) and
                    # at different heights when close together.
                    labelOpts={
                        "position": (0.92, 0.78, 0.64)[number % 3],
                        "anchors": [(1, 0.5), (1, 0.5)],
                        "color": "#e65100",
                        "fill": (255, 255, 255, 220),
                        "movable": False,
                    },
                )
                chart.plot.addItem(marker, ignoreBounds=True)
                chart.markers.append(marker)
        self._markers_drawn = len(sim.fault_log)
        # Bounded work per frame however many faults a run plays: lines out of view go, and at
        # most MAX_MARKERS stay.
        for chart in self.charts:
            keep = [m for m in chart.markers if m.value() >= start][-self.MAX_MARKERS :]
            if len(keep) != len(chart.markers):
                kept = set(map(id, keep))
                for marker in chart.markers:
                    if id(marker) not in kept:
                        chart.plot.removeItem(marker)
                chart.markers = keep

    # -- reading values ----------------------------------------------------------------------------

    def _mouse_moved(self, event) -> None:  # type: ignore[no-untyped-def]
        position = event[0]
        for chart in self.charts:
            inside = chart.plot.sceneBoundingRect().contains(position)
            chart.cursor.setVisible(inside)
            if not inside:
                continue
            point = chart.plot.vb.mapSceneToView(position)
            text = self.values_text(chart, point.x())
            if not text:
                QToolTip.hideText()
                continue
            chart.cursor.setPos(point.x())
            # A tooltip: it has a background of its own and is never cut off by the plot.
            where = self.graphics.mapToGlobal(self.graphics.mapFromScene(position))
            QToolTip.showText(where, text, self.graphics)

    def values_text(self, chart: Chart, time_: float) -> str:
        """The values of a chart's curves at the sample nearest ``time_``, one per line."""
        data = self.current
        if data is None:
            return ""
        found = value_at(data, time_)
        if found is None:
            return ""
        at, values = found
        lines = [f"t = {at:.2f} s"]
        if self.sim is not None:
            near = (self.window or max(at, 60.0)) / 60.0  # about a pixel or two of the plot
            for number, (when, text) in enumerate(self.sim.fault_log, start=1):
                if abs(when - at) <= near:
                    lines.append(f"fault {number} at {when:.1f} s: {text}")
        if chart is self.levels_chart and self.subject == TOTALS_ID:
            index = min(range(len(data.times)), key=lambda i: abs(data.times[i] - at))
            labels = self._queue_labels(list(self.depths))
            for qid, column in self.depths.items():
                lines.append(f"{labels[qid]}: {_number(column[index])}")
            return "\n".join(lines)
        for name in chart.curves:
            value = values.get(name, math.nan)
            unit = " ms" if chart is self.latency_chart else ("/s" if chart is self.rates_chart else "")
            lines.append(f"{name}: {_number(value)}{unit if not math.isnan(value) else ''}")
        return "\n".join(lines)

    def export_csv(self, path: str | Path | None = None) -> bool:
        sim = self.sim
        if sim is None:
            return False
        if path is None:
            name = subject_title(self.subject).lower().replace(" ", "-")
            chosen, _ = QFileDialog.getSaveFileName(self, "Export the numbers as CSV", f"{name}.csv", "CSV (*.csv)")
            if not chosen:
                return False
            path = chosen
        data = series(sim.history, self.subject, self.window)
        extra = None
        if self.subject == TOTALS_ID:
            # The whole topology's depth chart draws each queue: so does the file.
            samples = sim.history.window(self.window)
            depth = Q["depth"]
            labels = self._queue_labels(self._queue_ids())
            extra = [
                (
                    f"depth {labels[qid]}",
                    "messages",
                    [float(s.counters[qid][depth]) if qid in s.counters else math.nan for s in samples],
                )
                for qid in self._queue_ids()
            ]
        text = to_csv(data, extra)
        try:
            Path(path).write_text(text, encoding="utf-8")
        except OSError as exc:
            QMessageBox.warning(self, "Cannot export", f"{path}: {exc.strerror or exc}")
            return False
        return True

    def has_data(self) -> bool:
        return self.current is not None and len(self.current.times) > 1


def _number(value: float) -> str:
    if math.isnan(value):
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}"
