"""The inspector: the selected node's or binding's properties, each checked as it is typed.

A value that cannot be used is shown with its reason under the field and is
never applied; a good one is applied when the field is left (Enter, Tab, a
choice made) as one undoable edit through the document.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from engine.edits import (
    QUEUE_ARGUMENTS,
    EditRefused,
    binding_problem,
    entity,
    field_problem,
    find_binding,
    update_binding,
    update_node,
)
from engine.model import BUILTIN_EXCHANGES, FAILURE_ACTIONS, Binding, Exchange, Queue, Topology, split_node_id
from engine.routing import EXCHANGE_TYPES

from .document import Document

NONE = "(none)"
DEFAULT_EXCHANGE = "(AMQP default)"


@dataclass
class Field:
    name: str
    label: str
    kind: str  # text, opt_text, int, opt_int, float, bool, choice, exchange, queue, headers
    choices: tuple[str, ...] = ()
    hint: str = ""


FIELDS: dict[str, list[Field]] = {
    "producer": [
        Field("name", "Name", "text"),
        Field("exchange", "Publishes to", "exchange"),
        Field("routing_key", "Routing key", "text", hint="a template: order.{created|paid} picks one per message"),
        Field("rate", "Rate (msg/s)", "float"),
        Field("pattern", "Pattern", "choice", ("steady", "poisson")),
        Field("headers", "Headers", "headers", hint="one per line: name = value"),
        Field("body_size", "Body size (bytes)", "int"),
        Field("persistent", "Persistent", "bool"),
        Field("mandatory", "Mandatory", "bool"),
    ],
    "exchange": [
        Field("name", "Name", "text"),
        Field("type", "Type", "choice", EXCHANGE_TYPES),
        Field("durable", "Durable", "bool"),
        Field("auto_delete", "Auto-delete", "bool"),
        Field("internal", "Internal", "bool"),
        Field("alternate_exchange", "Alternate exchange", "exchange"),
    ],
    "queue": [
        Field("name", "Name", "text"),
        Field("queue_type", "Type", "choice", ("classic", "quorum", "stream")),
        Field("durable", "Durable", "bool"),
        Field("exclusive", "Exclusive", "bool"),
        Field("auto_delete", "Auto-delete", "bool"),
        Field("message_ttl", "Message TTL (ms)", "opt_int"),
        Field("expires", "Expires (ms)", "opt_int"),
        Field("max_length", "Max length", "opt_int"),
        Field("max_length_bytes", "Max length (bytes)", "opt_int"),
        Field("overflow", "Overflow", "choice", ("drop-head", "reject-publish", "reject-publish-dlx")),
        Field("dead_letter_exchange", "Dead-letter exchange", "exchange"),
        Field("dead_letter_routing_key", "Dead-letter routing key", "opt_text"),
        Field("max_priority", "Max priority", "opt_int"),
        Field("single_active_consumer", "Single active consumer", "bool"),
        Field("delivery_limit", "Delivery limit (quorum)", "opt_int"),
    ],
    "consumer": [
        Field("name", "Name", "text"),
        Field("queue", "Consumes from", "queue"),
        Field("prefetch", "Prefetch", "int", hint="0: no limit"),
        Field("ack_mode", "Acknowledgement", "choice", ("manual", "auto")),
        Field("work_ms", "Work time (ms)", "float"),
        Field("work_spread_ms", "Spread (± ms)", "float"),
        Field("failure_rate", "Failure rate (0 to 1)", "float"),
        Field("on_failure", "On failure", "choice", FAILURE_ACTIONS),
        Field("restart_ms", "Restart after crash (ms)", "float"),
    ],
}


def parse_value(kind: str, text: str) -> Any:
    """A field's text as a value; raises ValueError with the reason."""
    text = text.strip()
    if kind in ("opt_int", "opt_text") and text == "":
        return None
    if kind in ("int", "opt_int"):
        try:
            return int(text)
        except ValueError:
            raise ValueError("a whole number is needed") from None
    if kind == "float":
        try:
            value = float(text)
        except ValueError:
            raise ValueError("a number is needed") from None
        return int(value) if value.is_integer() and "." not in text else value
    if kind == "headers":
        return parse_headers(text)
    return text


def parse_headers(text: str) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if "=" not in line:
            raise ValueError(f"line {number}: write name = value")
        name, _, raw = line.partition("=")
        name, raw = name.strip(), raw.strip()
        if not name:
            raise ValueError(f"line {number}: a name is needed before '='")
        headers[name] = _typed(raw)
    return headers


def _typed(raw: str) -> Any:
    if raw in ("true", "false"):
        return raw == "true"
    for convert in (int, float):
        try:
            return convert(raw)
        except ValueError:
            pass
    return raw


def format_headers(headers: dict[str, Any]) -> str:
    def shown(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return "\n".join(f"{name} = {shown(value)}" for name, value in headers.items())


def current_value(topology: Topology, nid: str, field: str) -> Any:
    node = entity(topology, nid)
    if isinstance(node, Queue) and field in QUEUE_ARGUMENTS:
        value = node.arguments.get(QUEUE_ARGUMENTS[field])
        if field == "queue_type":
            return value or "classic"
        if field == "overflow":
            return value or "drop-head"
        if field == "single_active_consumer":
            return bool(value)
        return value
    if isinstance(node, Exchange) and field == "alternate_exchange":
        return node.arguments.get("alternate-exchange")
    return getattr(node, field)


class Inspector(QWidget):
    """Properties of the one selected node or binding."""

    selection_renamed = Signal(str)  # the selected node has a new id (it was renamed)
    TYPING_PAUSE_MS = 600

    def __init__(self, document: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.subject: str | None = None  # node id or binding edge id
        # A title and rows for something the document does not hold (a real client), else None.
        self.describe_live: Callable[[str], tuple[str, list[tuple[str, str]]] | None] = lambda nid: None
        self.widgets: dict[str, QWidget] = {}
        self.problems: dict[str, QLabel] = {}
        self._live_values: list[tuple[str, QLabel]] = []  # the rows of a live form, to update in place
        self.title = QLabel()
        self.title.setStyleSheet("font-weight: bold; font-size: 11pt; padding: 4px 2px;")
        self.title.setWordWrap(True)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.title)
        layout.addWidget(self.scroll, 1)
        # Multi-line fields apply shortly after typing stops (and at once when they lose focus).
        self._pending: Callable[[], None] | None = None
        self._pending_timer = QTimer(self)
        self._pending_timer.setSingleShot(True)
        self._pending_timer.setInterval(self.TYPING_PAUSE_MS)
        self._pending_timer.timeout.connect(self.apply_pending)
        self.show_selection([])
        document.changed.connect(self.refresh)
        document.topology_replaced.connect(lambda: self.show_selection([]))

    # -- which form -----------------------------------------------------------------------------

    def show_selection(self, ids: list[str]) -> None:
        self.subject = ids[0] if len(ids) == 1 else None
        form = QWidget()
        self.widgets, self.problems = {}, {}
        self._live_values = []
        if not ids:
            # Nothing selected: what the topology is about, when its file says.
            topology = self.document.topology
            self.title.setText(topology.title or "Nothing selected")
            about = f"{topology.description}\n\n" if topology.description else ""
            self._message(form, about + "Select a node or a binding to see and change its properties.")
        elif len(ids) > 1:
            self.title.setText(f"{len(ids)} items selected")
            self._message(form, "Select one item to change its properties; Delete removes all of them.")
        elif self.subject is not None and (live := self.describe_live(self.subject)) is not None:
            self._live_form(form, *live)
        elif self.subject is not None and self.subject.startswith("binding:"):
            self._binding_form(form, self.subject)
        elif self.subject is not None and ":" in self.subject and split_node_id(self.subject)[0] in FIELDS:
            self._node_form(form, self.subject)
        else:
            self.title.setText("Relation")
            self._message(form, _relation_text(self.subject or ""))
        # The old form may be handling one of its own events (a field losing focus
        # applies an edit that changes the selection): let it go once that is over.
        old = self.scroll.takeWidget()
        self.scroll.setWidget(form)
        if old is not None:
            old.hide()
            old.deleteLater()

    def _live_form(self, form: QWidget, title: str, rows: list[tuple[str, str]]) -> None:
        """A real client, or what one declared: shown as it is, changed only by the client."""
        self.title.setText(title)
        layout = QFormLayout(form)
        self._live_values = []
        for label, value in rows:
            text = QLabel(value)
            text.setWordWrap(True)
            text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            layout.addRow(label, text)
            self._live_values.append((label, text))
        note = QLabel("Not part of the document: this lives in the broker while the client keeps it.")
        note.setWordWrap(True)
        note.setStyleSheet("color: #607d8b;")
        layout.addRow(note)

    def refresh_live(self) -> None:
        """A selected client or client-made entity as it is now (its counts move, it may leave)."""
        if self.subject is None or not self._live_values:
            return
        live = self.describe_live(self.subject)
        if live is None:
            self.show_selection([])
            return
        title, rows = live
        if [label for label, _ in rows] != [label for label, _ in self._live_values]:
            self.show_selection([self.subject])
            return
        self.title.setText(title)
        for (_, value), (_, text) in zip(rows, self._live_values, strict=True):
            if text.text() != value:
                text.setText(value)

    @staticmethod
    def _message(form: QWidget, text: str) -> None:
        label = QLabel(text)
        label.setWordWrap(True)
        label.setStyleSheet("color: #607d8b;")
        layout = QVBoxLayout(form)
        layout.addWidget(label)
        layout.addStretch(1)

    def _node_form(self, form: QWidget, nid: str) -> None:
        kind, vhost, name = split_node_id(nid)
        topology = self.document.topology
        node = entity(topology, nid)
        if node is None:
            self.title.setText(f"{kind.capitalize()} (built in)")
            self._message(form, "Built-in exchanges cannot be changed.")
            return
        self.title.setText(f"{kind.capitalize()}: {name}")
        layout = QFormLayout(form)
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for field in FIELDS[kind]:
            widget = self._widget(field, vhost)
            problem = QLabel()
            problem.setWordWrap(True)
            problem.setStyleSheet("color: #c62828; font-size: 8pt;")
            problem.hide()
            cell = QWidget()
            cell.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)  # no share of spare height
            cell_layout = QVBoxLayout(cell)
            cell_layout.setContentsMargins(0, 0, 0, 0)
            cell_layout.setSpacing(1)
            cell_layout.addWidget(widget)
            cell_layout.addWidget(problem)
            if field.hint:
                hint = QLabel(field.hint)
                hint.setWordWrap(True)
                hint.setStyleSheet("color: #78909c; font-size: 8pt;")
                cell_layout.addWidget(hint)
            layout.addRow(field.label, cell)
            self.widgets[field.name] = widget
            self.problems[field.name] = problem
        self.refresh()

    def _binding_form(self, form: QWidget, edge: str) -> None:
        binding = find_binding(self.document.topology, edge)
        if binding is None:
            self.title.setText("Binding")
            self._message(form, "This binding is gone.")
            return
        self.title.setText(f"Binding: {binding.source} → {binding.destination}")
        layout = QFormLayout(form)
        exchange_type = self._exchange_type(binding)
        key = QLineEdit(binding.routing_key)
        key.setObjectName("routing_key")
        key.setEnabled(exchange_type not in ("fanout", "headers"))
        key.textEdited.connect(lambda text: self._check_binding(key.text(), None))
        key.editingFinished.connect(lambda: self._commit_binding(key.text(), None))
        self.widgets["routing_key"] = key
        layout.addRow("Binding key", self._with_problem(key, "routing_key"))
        if exchange_type == "headers":
            arguments = QPlainTextEdit(format_headers(binding.arguments))
            arguments.setObjectName("arguments")
            arguments.setFixedHeight(90)
            arguments.textChanged.connect(lambda: self._typed_arguments(arguments.toPlainText()))
            arguments.installEventFilter(self)
            self.widgets["arguments"] = arguments
            layout.addRow("Arguments", self._with_problem(arguments, "arguments"))
            note = QLabel("x-match = all (every header equal) or any (one); other lines are the headers to match.")
            note.setWordWrap(True)
            note.setStyleSheet("color: #78909c; font-size: 8pt;")
            layout.addRow("", note)
        elif exchange_type == "fanout":
            note = QLabel("A fanout exchange ignores binding keys.")
            note.setStyleSheet("color: #78909c;")
            layout.addRow("", note)

    def _with_problem(self, widget: QWidget, name: str) -> QWidget:
        cell = QWidget()
        cell.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        cell_layout = QVBoxLayout(cell)
        cell_layout.setContentsMargins(0, 0, 0, 0)
        cell_layout.setSpacing(1)
        cell_layout.addWidget(widget)
        problem = QLabel()
        problem.setStyleSheet("color: #c62828; font-size: 8pt;")
        problem.setWordWrap(True)
        problem.hide()
        cell_layout.addWidget(problem)
        self.problems[name] = problem
        return cell

    def _exchange_type(self, binding: Binding) -> str:
        exchange = self.document.topology.exchange(binding.vhost, binding.source)
        return exchange.type if exchange is not None else BUILTIN_EXCHANGES.get(binding.source, "direct")

    def _widget(self, field: Field, vhost: str) -> QWidget:
        widget: QWidget
        if field.kind == "bool":
            box = QCheckBox()
            box.toggled.connect(lambda checked, f=field: self._commit(f, checked))
            widget = box
        elif field.kind in ("choice", "exchange", "queue"):
            combo = QComboBox()
            for value, label in self._choices(field, vhost):
                combo.addItem(label, value)
            combo.activated.connect(lambda index, f=field, c=combo: self._commit(f, c.itemData(index)))
            widget = combo
        elif field.kind == "headers":
            text = QPlainTextEdit()
            text.setFixedHeight(70)
            text.textChanged.connect(lambda f=field, t=text: self._typed(f, t.toPlainText()))
            text.installEventFilter(self)
            widget = text
        else:
            line = QLineEdit()
            line.textEdited.connect(lambda value, f=field: self._check(f, value))
            line.editingFinished.connect(lambda f=field, w=line: self._commit_text(f, w.text()))
            widget = line
        widget.setObjectName(field.name)
        widget.setMinimumWidth(60)  # the dock, not the field, decides the width
        return widget

    def _choices(self, field: Field, vhost: str) -> list[tuple[Any, str]]:
        topology = self.document.topology
        if field.kind == "choice":
            return [(choice, choice) for choice in field.choices]
        if field.kind == "exchange":
            choices: list[tuple[Any, str]] = [(None, NONE)]
            if field.name == "exchange":
                choices.append(("", DEFAULT_EXCHANGE))
            names = sorted({x.name for x in topology.exchanges if x.vhost == vhost})
            names += sorted(
                split_node_id(nid)[2]
                for nid in topology.implicit_exchange_ids()
                if split_node_id(nid)[1] == vhost and split_node_id(nid)[2] not in ("", *names)
            )
            return choices + [(name, name) for name in names]
        return [(None, NONE)] + [(q.name, q.name) for q in topology.queues if q.vhost == vhost]

    # -- values in, edits out -------------------------------------------------------------------

    def refresh(self) -> None:
        """Show the model's values (after an edit, undo or redo), leaving alone the field being typed in."""
        if self.subject is None or self.subject.startswith("binding:"):
            if self.subject is not None and find_binding(self.document.topology, self.subject) is None:
                self.show_selection([])
            return
        topology = self.document.topology
        if entity(topology, self.subject) is None:
            self.show_selection([])
            return
        kind, vhost, _ = split_node_id(self.subject)
        for field in FIELDS.get(kind, []):
            widget = self.widgets.get(field.name)
            if widget is None or widget.hasFocus():
                continue
            value = current_value(topology, self.subject, field.name)
            widget.blockSignals(True)
            if isinstance(widget, QCheckBox):
                widget.setChecked(bool(value))
            elif isinstance(widget, QComboBox):
                if field.kind in ("exchange", "queue"):
                    widget.clear()
                    for choice, label in self._choices(field, vhost):
                        widget.addItem(label, choice)
                index = widget.findData(value)
                widget.setCurrentIndex(max(index, 0))
            elif isinstance(widget, QPlainTextEdit):
                widget.setPlainText(format_headers(value or {}))
            elif isinstance(widget, QLineEdit):
                widget.setText("" if value is None else str(value))
            widget.blockSignals(False)
            self._show_problem(field.name, None)

    def _check(self, field: Field, text: str) -> Any:
        """The field's value, or None after showing why the text cannot be used."""
        try:
            value = parse_value(field.kind, text)
        except ValueError as exc:
            self._show_problem(field.name, str(exc))
            return _INVALID
        if self.subject is None:
            return _INVALID
        problem = field_problem(self.document.topology, self.subject, field.name, value)
        self._show_problem(field.name, problem)
        return _INVALID if problem else value

    def _typed(self, field: Field, text: str) -> None:
        value = self._check(field, text)
        subject = self.subject
        if value is _INVALID or subject is None:
            self._cancel_pending()
            return
        self._schedule(lambda: self._commit(field, value, subject))

    def _typed_arguments(self, text: str) -> None:
        checked = self._check_binding(None, text)
        subject = self.subject
        if checked is None or subject is None:
            self._cancel_pending()
            return
        self._schedule(lambda: self._commit_binding(None, text, subject))

    def _schedule(self, commit: Callable[[], None]) -> None:
        self._pending = commit
        self._pending_timer.start()

    def _cancel_pending(self) -> None:
        self._pending = None
        self._pending_timer.stop()

    def apply_pending(self) -> None:
        """Apply what was typed in a multi-line field and not applied yet."""
        commit, self._pending = self._pending, None
        self._pending_timer.stop()
        if commit is not None:
            commit()

    def _commit_text(self, field: Field, text: str) -> None:
        value = self._check(field, text)
        if value is not _INVALID:
            self._commit(field, value)

    def _commit(self, field: Field, value: Any, subject: str | None = None) -> None:
        """Apply a field's value to ``subject`` (the selection when it was typed; by default, now)."""
        subject = subject or self.subject
        if subject is None or value is _INVALID:
            return
        if entity(self.document.topology, subject) is None:
            return
        if current_value(self.document.topology, subject, field.name) == value:
            return
        shown = self.subject == subject
        result: dict[str, str] = {}

        def change(topology: Topology) -> None:
            result["id"] = update_node(topology, subject, **{field.name: value})
            if shown:
                # Follow a rename before the document says it changed, so the form stays.
                self.subject = result["id"]

        try:
            self.document.edit(f"Change {field.label.lower()}", change, merge_key=f"{subject}:{field.name}")
        except EditRefused as exc:
            if shown:
                self.subject = subject
                self.refresh_field_later(field)  # a refused tick or choice goes back...
                self._show_problem(field.name, str(exc))  # ...and says why
            return
        if shown:
            self._show_problem(field.name, None)
            if result.get("id") and result["id"] != subject:
                self.selection_renamed.emit(result["id"])

    def refresh_field_later(self, field: Field) -> None:
        """A refused choice or tick goes back to what the model says."""
        widget = self.widgets.get(field.name)
        if isinstance(widget, QCheckBox | QComboBox):
            subject = self.subject
            focus = widget.hasFocus()
            if focus:
                widget.clearFocus()
            self.refresh()
            self.subject = subject

    def _check_binding(self, key: str | None, arguments_text: str | None) -> tuple[str, dict[str, Any]] | None:
        binding = find_binding(self.document.topology, self.subject or "")
        if binding is None:
            return None
        routing_key = key if key is not None else self._text("routing_key", binding.routing_key)
        try:
            arguments = parse_headers(arguments_text) if arguments_text is not None else self._arguments(binding)
        except ValueError as exc:
            self._show_problem("arguments", str(exc))
            return None
        problem = binding_problem(self.document.topology, binding, routing_key, arguments)
        self._show_problem("arguments" if arguments_text is not None else "routing_key", problem)
        return None if problem else (routing_key, arguments)

    def _text(self, name: str, default: str) -> str:
        widget = self.widgets.get(name)
        return widget.text() if isinstance(widget, QLineEdit) else default

    def _arguments(self, binding: Binding) -> dict[str, Any]:
        widget = self.widgets.get("arguments")
        if isinstance(widget, QPlainTextEdit):
            return parse_headers(widget.toPlainText())
        return binding.arguments

    def _commit_binding(self, key: str | None, arguments_text: str | None, edge: str | None = None) -> None:
        edge = edge or self.subject
        shown = edge is not None and edge == self.subject
        if edge is None:
            return
        binding = find_binding(self.document.topology, edge)
        if binding is None:
            return
        if shown:
            checked = self._check_binding(key, arguments_text)
        else:
            try:
                arguments = parse_headers(arguments_text) if arguments_text is not None else binding.arguments
            except ValueError:
                return
            routing_key = key if key is not None else binding.routing_key
            if binding_problem(self.document.topology, binding, routing_key, arguments):
                return
            checked = (routing_key, arguments)
        if checked is None or (binding.routing_key, binding.arguments) == checked:
            return
        result: dict[str, str] = {}

        def change(topology: Topology) -> None:
            result["id"] = update_binding(topology, edge, checked[0], checked[1])
            if shown:
                self.subject = result["id"]

        try:
            self.document.edit("Change binding", change)
        except EditRefused as exc:
            if shown:
                self.subject = edge
                self._show_problem("routing_key", str(exc))
            return
        if shown:
            self.selection_renamed.emit(result["id"])

    def eventFilter(self, watched, event) -> bool:  # type: ignore[no-untyped-def]
        """Multi-line fields apply when they lose focus."""
        if event.type() == event.Type.FocusOut and isinstance(watched, QPlainTextEdit):
            # Apply after this event is over: the edit may rebuild the form this field is in.
            QTimer.singleShot(0, self.apply_pending)
        return False

    def _show_problem(self, name: str, problem: str | None) -> None:
        label = self.problems.get(name)
        widget = self.widgets.get(name)
        if label is None:
            return
        if problem:
            label.setText(problem)
            label.show()
        else:
            label.hide()
        if widget is not None:
            widget.setStyleSheet(
                "border: 1px solid #e53935;" if problem and isinstance(widget, QLineEdit | QPlainTextEdit) else ""
            )

    def problem_text(self, name: str) -> str:
        label = self.problems.get(name)
        return label.text() if label is not None and not label.isHidden() else ""


_INVALID: Any = object()  # a field's text that cannot be used


_RELATIONS = {
    "publishes": ("producer", "Publishes to", "Where a producer publishes"),
    "consumes": ("consumer", "Consumes from", "The queue a consumer takes from"),
    "dead-letter": ("queue", "Dead-letter exchange", "Where a queue's dead letters go"),
    "alternate": ("exchange", "Alternate exchange", "Where an exchange sends what it cannot route"),
}


def _relation_text(edge_id: str) -> str:
    """Which node holds a relation drawn as an edge, and under which field."""
    relation, _, nid = edge_id.partition(":")
    if relation not in _RELATIONS or ":" not in nid:
        return "This relation is set on one of the nodes it joins; select that node to change it."
    kind, field, what = _RELATIONS[relation]
    name = split_node_id(nid)[2] or "(AMQP default)"
    return f"{what} is set on the {kind} itself: select {kind} '{name}' and change its {field}."
