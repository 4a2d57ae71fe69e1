"""Live plots (pyqtgraph): publish, deliver and ack rates, and the depth of each queue.

Samples come from the simulation's counter history; each frame appends only the
samples that are new into preallocated arrays and hands views to ``setData``.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

from engine.model import display_name, split_node_id
from engine.sim import COUNTERS, TOTALS_ID, Simulation

from .details import Q
from .style import SERIES_COLORS, series_color

T = {name: i for i, name in enumerate(COUNTERS["totals"])}
RATE_SERIES = (("publish", "published"), ("deliver", "delivered"), ("ack", "acked"))


class SeriesBuffer:
    """A growing window of samples: times plus named columns, oldest dropped past ``capacity``."""

    def __init__(self, columns: list[str], capacity: int = 4096) -> None:
        self.capacity = capacity
        self.columns = list(columns)
        self.times = np.zeros(capacity)
        self.values = np.zeros((len(columns), capacity))
        self.size = 0

    def append(self, time: float, row: list[float]) -> None:
        if self.size == self.capacity:
            keep = self.capacity // 2
            self.times[:keep] = self.times[self.size - keep : self.size]
            self.values[:, :keep] = self.values[:, self.size - keep : self.size]
            self.size = keep
        self.times[self.size] = time
        self.values[:, self.size] = row
        self.size += 1

    def column(self, index: int) -> np.ndarray:
        return self.values[index, : self.size]

    @property
    def time(self) -> np.ndarray:
        return self.times[: self.size]


class RatesPanel(QWidget):
    WINDOW = 120.0  # simulated seconds shown
    RATE_WINDOW = 1.0  # rates averaged over this many simulated seconds

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        pg.setConfigOptions(antialias=True, background="w", foreground="#37474f")
        self.graphics = pg.GraphicsLayoutWidget()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.graphics)
        # Legends sit in a row of their own above the plots, never on top of the data.
        self.rates_legend = pg.LegendItem(labelTextSize="8pt", colCount=3)
        self.depth_legend = pg.LegendItem(labelTextSize="8pt", colCount=4)
        for col, title in enumerate(("Message rates", "Queue depth")):
            self.graphics.addLabel(title, row=0, col=col, size="11pt", color="#37474f")
        self.graphics.addItem(self.rates_legend, row=1, col=0)
        self.graphics.addItem(self.depth_legend, row=1, col=1)
        self.rates_plot = self._plot("Message rates", "msg/s", col=0)
        self.depth_plot = self._plot("Queue depth", "messages ready", col=1)
        for col in (0, 1):
            self.graphics.ci.layout.setColumnStretchFactor(col, 1)
        styles = {"publish": Qt.PenStyle.SolidLine, "deliver": Qt.PenStyle.SolidLine, "ack": Qt.PenStyle.DashLine}
        self.rate_curves = {
            name: self.rates_plot.plot([], [], pen=pg.mkPen(SERIES_COLORS[name], width=2, style=styles[name]))
            for name, _ in RATE_SERIES
        }
        for name, curve in self.rate_curves.items():
            self.rates_legend.addItem(curve, name)
        self._fit_legend_row()
        self.depth_curves: dict[str, pg.PlotDataItem] = {}
        self._queue_ids: list[str] = []
        self._last_time = -1.0
        self._cumulative = SeriesBuffer([counter for _, counter in RATE_SERIES])
        self.rates = SeriesBuffer([name for name, _ in RATE_SERIES])
        self.depths = SeriesBuffer([])

    MAX_LEGEND_ROWS = 2
    MAX_LEGEND_ENTRIES = 16

    def _fit_legend_row(self) -> None:
        """At most two rows of legend: the depth legend widens into more columns instead."""
        entries = len(self.depth_legend.items)
        columns = max(4, -(-entries // self.MAX_LEGEND_ROWS))
        self.depth_legend.setColumnCount(columns)
        rows = max(1, -(-entries // columns))
        height = rows * 20 + 2
        for legend in (self.rates_legend, self.depth_legend):
            legend.setMaximumHeight(height)
            legend.setMinimumWidth(0)
            legend.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.graphics.ci.layout.setRowMaximumHeight(1, height)
        self.graphics.ci.layout.setRowMinimumHeight(1, height)

    def _plot(self, title: str, unit: str, col: int) -> pg.PlotItem:
        plot = self.graphics.addPlot(row=2, col=col)
        plot.setLabel("bottom", "simulated time", units="s")
        plot.setLabel("left", unit)
        plot.showGrid(x=True, y=True, alpha=0.15)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.setClipToView(True)
        plot.setDownsampling(auto=True, mode="peak")
        return plot

    def reset(self, sim: Simulation) -> None:
        for curve in self.depth_curves.values():
            self.depth_plot.removeItem(curve)
        self.depth_legend.clear()
        self.depth_curves = {}
        self._queue_ids = [
            queue.node_id for queue in sim.broker.all_queues() if queue.node_id in set(sim.topology.node_ids())
        ]
        multi_vhost = len({split_node_id(q)[1] for q in self._queue_ids}) > 1
        for index, qid in enumerate(self._queue_ids):
            _, vhost, name = split_node_id(qid)
            label = display_name("queue", name) + (f" [{vhost}]" if multi_vhost else "")
            self.depth_curves[qid] = self.depth_plot.plot([], [], pen=pg.mkPen(series_color(index), width=2))
            if index < self.MAX_LEGEND_ENTRIES - 1 or len(self._queue_ids) == self.MAX_LEGEND_ENTRIES:
                self.depth_legend.addItem(self.depth_curves[qid], label)
        hidden = len(self._queue_ids) - len(self.depth_legend.items)
        if hidden > 0:
            self.depth_legend.addItem(pg.PlotDataItem(pen=None), f"+{hidden} more")
        self._fit_legend_row()
        self._last_time = -1.0
        self._cumulative = SeriesBuffer([counter for _, counter in RATE_SERIES])
        self.rates = SeriesBuffer([name for name, _ in RATE_SERIES])
        self.depths = SeriesBuffer(self._queue_ids)
        for curve in self.rate_curves.values():
            curve.setData([], [])
        self.update_from(sim)

    def reset_if_queues_changed(self, sim: Simulation | None) -> None:
        """After an edit: new or removed queues get or lose their depth curve."""
        if sim is None:
            return
        shown = set(sim.topology.node_ids())
        queues = [queue.node_id for queue in sim.broker.all_queues() if queue.node_id in shown]
        if queues != self._queue_ids:
            self.reset(sim)

    def update_from(self, sim: Simulation) -> None:
        samples = sim.history.samples
        new = [s for s in _newer(samples, self._last_time)]
        if not new:
            return
        lag = max(int(round(self.RATE_WINDOW / sim.sample_interval)), 1)
        for sample in new:
            totals = sample.counters.get(TOTALS_ID)
            if totals is None:
                continue
            self._cumulative.append(sample.time, [totals[T[counter]] for _, counter in RATE_SERIES])
            size = self._cumulative.size
            back = max(size - 1 - lag, 0)
            span = sample.time - self._cumulative.times[back]
            row = []
            for i in range(len(RATE_SERIES)):
                values = self._cumulative.values[i]
                row.append((values[size - 1] - values[back]) / span if span > 0 else 0.0)
            self.rates.append(sample.time, row)
            self.depths.append(sample.time, [sample.counters.get(q, (0,) * 4)[Q["depth"]] for q in self._queue_ids])
            self._last_time = sample.time
        for index, (name, _) in enumerate(RATE_SERIES):
            self.rate_curves[name].setData(self.rates.time, self.rates.column(index))
        for index, qid in enumerate(self._queue_ids):
            self.depth_curves[qid].setData(self.depths.time, self.depths.column(index))
        end = max(self._last_time, 10.0)
        start = max(0.0, end - self.WINDOW)
        visible = self.rates.time >= start
        for plot, buffer, floor in ((self.rates_plot, self.rates, 5.0), (self.depth_plot, self.depths, 5.0)):
            plot.setXRange(start, end, padding=0.01)
            peak = (
                float(buffer.values[:, : buffer.size][:, visible].max())
                if buffer.values.shape[0] and visible.any()
                else 0.0
            )
            plot.setYRange(0.0, max(peak * 1.12, floor), padding=0.03)

    def has_data(self) -> bool:
        return self.rates.size > 1


def _newer(samples, after: float):  # type: ignore[no-untyped-def]
    """Samples later than ``after``, read from the end so the cost follows what is new."""
    found = []
    for sample in reversed(samples):
        if sample.time <= after:
            break
        found.append(sample)
    found.reverse()
    return found
