"""Inside a queue and along one message's way: the queue's messages, live, and a message's trace.

The list shows at most ``LIMIT`` messages and is read again at most ``REFRESH_EVERY``
seconds apart while it is on screen, so its cost does not follow the queue's depth
or the message rate.
"""

from __future__ import annotations

import html
import json
import time
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from engine.inspection import MessageRow, Trace, Tracer, queue_messages, whereabouts
from engine.model import display_name, split_node_id
from engine.sim import Simulation

from .style import MUTED_TEXT, TEXT

COLUMNS = ("#", "routing key", "age", "↻")  # the rest of a message shows with its trace


def _age(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def _compact(values: dict[str, Any]) -> str:
    if not values:
        return ""
    return ", ".join(f"{k}={json.dumps(v, default=str, ensure_ascii=False)}" for k, v in values.items())


class MessagesPanel(QWidget):
    LIMIT = 200
    REFRESH_EVERY = 0.5
    message_chosen = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.sim: Simulation | None = None
        self.elsewhere = ""  # where the messages are when no simulation holds them
        self.queue_id: str | None = None
        self.msg_id: int | None = None
        self._refreshed = 0.0
        self.rows: list[MessageRow] = []
        self.heading = QLabel()
        self.heading.setWordWrap(True)
        self.heading.setStyleSheet(f"font-weight: bold; color: {TEXT}; padding: 2px;")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        for column, width in ((0, 44), (2, 64), (3, 26)):
            self.table.setColumnWidth(column, width)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 6)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.horizontalHeaderItem(3).setToolTip("redelivered")
        self.table.itemSelectionChanged.connect(self._row_chosen)
        self.trace_view = QTextBrowser()
        self.trace_view.setOpenLinks(False)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(self.trace_view)
        splitter.setSizes([150, 260])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.heading)
        layout.addWidget(splitter, 1)
        self.show_queue(None)

    # -- what to show ------------------------------------------------------------------------------

    def set_simulation(self, sim: Simulation | None, elsewhere: str = "") -> None:
        """The simulation whose queues are listed; none, with where the messages are instead
        (a run on a real RabbitMQ keeps them there)."""
        self.sim = sim
        self.elsewhere = elsewhere
        self.msg_id = None
        self.trace_view.clear()
        self.refresh(force=True)

    def show_queue(self, queue_id: str | None) -> None:
        self.queue_id = queue_id
        self.refresh(force=True)

    def show_trace(self, msg_id: int) -> None:
        self.msg_id = msg_id
        self._render_trace()

    # -- reading the engine ------------------------------------------------------------------------

    def refresh(self, force: bool = False) -> None:
        """Read the queue again (at most every ``REFRESH_EVERY`` seconds unless ``force``)."""
        now = time.monotonic()
        if not force and (now - self._refreshed < self.REFRESH_EVERY or not self.isVisible()):
            return
        self._refreshed = now
        queue = self._queue()
        if queue is None:
            self.rows = []
            self.table.setRowCount(0)
            if self.queue_id is None:
                self.heading.setText("Select a queue to see its messages; click a token or a message for its trace.")
            elif self.sim is None and self.elsewhere:
                name = display_name("queue", split_node_id(self.queue_id)[2])
                self.heading.setText(f"{name}: its messages are {self.elsewhere}, not listed here")
            else:
                self.heading.setText(f"{display_name('queue', split_node_id(self.queue_id)[2])}: not in the broker")
            return
        assert self.sim is not None
        listing = queue_messages(self.sim.broker, queue, self.LIMIT)
        self.rows = listing.rows
        shown = len(listing.rows)
        total = listing.ready + listing.unacked
        more = f" (the first {shown} shown)" if shown < total else ""
        self.heading.setText(
            f"Queue {queue.name}: {listing.ready:,} ready, {listing.unacked:,} held by consumers{more}"
        )
        chosen = self.msg_id
        self.table.blockSignals(True)
        self.table.clearSelection()
        self.table.setCurrentCell(-1, -1)  # the focus box follows the chosen message, or goes
        self.table.setRowCount(shown)
        for row, message in enumerate(listing.rows):
            position = str(message.position) if message.position is not None else "held"
            cells = (position, message.routing_key, _age(message.age), "↻" if message.redelivered else "")
            for column, text in enumerate(cells):
                item = self.table.item(row, column)
                if item is None:
                    item = QTableWidgetItem()
                    self.table.setItem(row, column, item)
                if item.text() != text:
                    item.setText(text)
                if column == 0:
                    item.setData(Qt.ItemDataRole.UserRole, message.msg_id)
                    tip = f"message #{message.msg_id}" + (
                        f", held by {split_node_id(message.consumer)[2]}" if message.consumer else ""
                    )
                    item.setToolTip(tip)
            if message.msg_id == chosen:
                self.table.selectRow(row)
                self.table.setCurrentCell(row, 0)
        self.table.blockSignals(False)
        if self.msg_id is not None:
            self._render_trace()

    def _queue(self):  # type: ignore[no-untyped-def]
        if self.sim is None or self.queue_id is None:
            return None
        _, vhost, name = split_node_id(self.queue_id)
        host = self.sim.broker.vhosts.get(vhost)
        return host.queues.get(name) if host is not None else None

    def _row_chosen(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return
        item = self.table.item(rows[0].row(), 0)
        if item is None:
            return
        msg_id = item.data(Qt.ItemDataRole.UserRole)
        if isinstance(msg_id, int):
            self.msg_id = msg_id
            self._render_trace()
            self.message_chosen.emit(msg_id)

    # -- the trace -----------------------------------------------------------------------------------

    def trace(self) -> Trace | None:
        if self.sim is None or self.msg_id is None:
            return None
        return Tracer(self.sim.broker).trace(self.msg_id)

    def _render_trace(self) -> None:
        trace = self.trace()
        if trace is None:
            self.trace_view.setHtml(
                f"<p style='color:{MUTED_TEXT}'>Message #{self.msg_id}: its journey is no longer kept "
                "(only the most recent messages' are) and it is in no queue.</p>"
            )
            return
        row = next((r for r in self.rows if r.msg_id == self.msg_id), None)
        self.trace_view.setHtml(message_html(row) + trace_html(trace, self.sim))


def message_html(row: MessageRow | None) -> str:
    """What the message carries (when it is in the queue shown)."""
    if row is None:
        return ""
    lines = [
        ("state", "ready, position " + str(row.position) if row.position is not None else "held by a consumer"),
        ("age", _age(row.age) + (f", {_age(row.waiting)} in this queue" if row.waiting != row.age else "")),
        ("redelivered", "yes" if row.redelivered else "no"),
        ("headers", _compact(row.headers) or "none"),
        ("properties", _compact(row.properties) or "none"),
        ("body", f"{row.size:,} bytes: {row.body_preview}" if row.size else "empty"),
    ]
    cells = "".join(
        f"<tr><td style='color:{MUTED_TEXT}' valign='top'>{name}</td><td>{html.escape(value)}</td></tr>"
        for name, value in lines
    )
    return f"<table cellspacing='0' cellpadding='1'>{cells}</table><hr/>"


def trace_html(trace: Trace, sim: Simulation | None) -> str:
    key = html.escape(trace.routing_key) if trace.routing_key else "(empty)"
    parts = [f"<p><b>Message #{trace.msg_id}</b> · routing key <code>{key}</code></p>"]
    if not trace.complete:
        parts.append(
            f"<p style='color:{MUTED_TEXT}'>Its earliest steps are no longer kept: "
            "this is what it carries and where it waits.</p>"
        )
    parts.append("<table cellspacing='0' cellpadding='2'>")
    for hop in trace.hops:
        parts.append(
            f"<tr><td style='color:{MUTED_TEXT}; white-space: nowrap' valign='top'>{hop.time:.3f} s</td>"
            f"<td>{html.escape(hop.text)}"
        )
        if hop.bindings:
            parts.append("<br/>")
            for check in hop.bindings:
                mark = "✔" if check.verdict.matched else "✘"
                color = "#2e7d32" if check.verdict.matched else "#b71c1c"
                destination = display_name(*split_node_id(check.destination)[::2])
                parts.append(
                    f"<span style='color:{color}'>{mark}</span> {html.escape(check.label)} → "
                    f"{html.escape(destination)}: <span style='color:{MUTED_TEXT}'>"
                    f"{html.escape(check.verdict.reason)}</span><br/>"
                )
        parts.append("</td></tr>")
    parts.append("</table>")
    if trace.complete and sim is not None:
        events = sim.flow.traces.hops(trace.msg_id) or []
        places = whereabouts(events)
        if places:
            where = []
            for queue, (state, consumer) in places.items():
                name = split_node_id(queue)[2]
                where.append(
                    f"ready in {html.escape(name)}"
                    if state == "ready"
                    else f"in {html.escape(name)}, held by {html.escape(split_node_id(consumer or 'x:y:?')[2])}"
                )
            parts.append(f"<p><b>Now:</b> {'; '.join(where)}</p>")
        else:
            parts.append("<p><b>Now:</b> gone: every copy has met its end.</p>")
    return "".join(parts)
