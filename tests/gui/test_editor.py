"""The canvas as an editor, driven with the mouse and keyboard as a person would use it."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, QMimeData, QPoint, QPointF, Qt
from PySide6.QtGui import QContextMenuEvent, QDragEnterEvent, QDragMoveEvent, QDropEvent, QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QCheckBox, QComboBox, QFileDialog, QLineEdit, QMessageBox

from engine.model import Topology
from engine.topology_file import load
from gui.main_window import MainWindow
from gui.view import NODE_MIME

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def window(qtbot, qasync_loop, settings, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr("gui.file_actions.recovery_dir", lambda: tmp_path / "recovery")
    win = MainWindow(settings)
    # pytest-qt closes the window before fixtures tear down: leave nothing unsaved to ask about.
    qtbot.addWidget(win, before_close_func=lambda w: w.document.undo_stack.setClean())
    win.show()
    qtbot.waitExposed(win)
    win.document.new()
    win.view.resetTransform()
    win.view.centerOn(0, 0)
    yield win
    win.controller.pause()


# -- driving the mouse ---------------------------------------------------------------------------


def viewport_point(win: MainWindow, scene_x: float, scene_y: float) -> QPoint:
    return win.view.mapFromScene(QPointF(scene_x, scene_y))


def send_mouse(win: MainWindow, kind: QEvent.Type, at: QPoint, buttons: Qt.MouseButton) -> None:
    viewport = win.view.viewport()
    button = Qt.MouseButton.LeftButton if kind != QEvent.Type.MouseMove else Qt.MouseButton.NoButton
    event = QMouseEvent(
        kind, QPointF(at), QPointF(viewport.mapToGlobal(at)), button, buttons, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(viewport, event)


def drag(win: MainWindow, start: QPoint, end: QPoint, steps: int = 6) -> None:
    """Press the left button at ``start``, move with it held to ``end``, release."""
    held = Qt.MouseButton.LeftButton
    send_mouse(win, QEvent.Type.MouseButtonPress, start, held)
    for i in range(1, steps + 1):
        at = start + (end - start) * i / steps
        send_mouse(win, QEvent.Type.MouseMove, at, held)
    send_mouse(win, QEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton)


def drop_from_palette(win: MainWindow, kind: str, scene_x: float, scene_y: float, name: str) -> str:
    """Drag a palette entry onto the canvas, then type the node's name in the field that opens."""
    button = win.palette.buttons[kind]
    mime = QMimeData()
    mime.setData(NODE_MIME, button.kind.encode())  # what the palette button's drag carries
    at = QPointF(viewport_point(win, scene_x, scene_y))
    viewport = win.view.viewport()
    actions = Qt.DropAction.CopyAction
    for event in (
        QDragEnterEvent(at.toPoint(), actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier),
        QDragMoveEvent(at.toPoint(), actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier),
        QDropEvent(at, actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier),
    ):
        QApplication.sendEvent(viewport, event)
    editor = win.view.rename_editor
    assert editor is not None, "the new node's name field did not open"
    editor.field.selectAll()
    QTest.keyClicks(editor.field, name)
    QTest.keyClick(editor.field, Qt.Key.Key_Return)
    selected = win.scene.selected_node_ids()
    assert len(selected) == 1 and selected[0].endswith(":" + name), selected
    return selected[0]


def port(win: MainWindow, nid: str) -> QPoint:
    item = win.scene.nodes[nid]
    return win.view.mapFromScene(item.out_port())


def centre(win: MainWindow, nid: str) -> QPoint:
    return win.view.mapFromScene(win.scene.nodes[nid].pos())


def connect_by_mouse(win: MainWindow, source: str, target: str) -> None:
    drag(win, port(win, source), centre(win, target))


def click_node(win: MainWindow, nid: str) -> None:
    at = centre(win, nid) + QPoint(0, 18)  # below the title, clear of the port
    send_mouse(win, QEvent.Type.MouseButtonPress, at, Qt.MouseButton.LeftButton)
    send_mouse(win, QEvent.Type.MouseButtonRelease, at, Qt.MouseButton.NoButton)
    assert win.scene.selected_node_ids() == [nid]


def set_field(win: MainWindow, name: str, value: str | bool) -> None:
    widget = win.inspector.widgets[name]
    if isinstance(widget, QCheckBox):
        if widget.isChecked() != value:
            widget.click()
    elif isinstance(widget, QComboBox):
        index = widget.findText(str(value))
        assert index >= 0, f"{name}: no choice {value!r}"
        widget.setCurrentIndex(index)
        widget.activated.emit(index)
    else:
        assert isinstance(widget, QLineEdit)
        widget.setFocus()
        widget.selectAll()
        QTest.keyClicks(widget, str(value))
        QTest.keyClick(widget, Qt.Key.Key_Return)
    assert win.inspector.problem_text(name) == "", f"{name}: {win.inspector.problem_text(name)}"


def select_edge(win: MainWindow, source: str, target: str) -> None:
    edge = next(e for e in win.scene.edges if e.source.node_id == source and e.target.node_id == target)
    win.scene.select_only([edge.edge_id])


# -- the tests ----------------------------------------------------------------------------------


def build_ecommerce(win: MainWindow) -> None:
    shop = drop_from_palette(win, "producer", -500, -60, "web-shop")
    app = drop_from_palette(win, "producer", -500, 60, "mobile-app")
    orders = drop_from_palette(win, "exchange:topic", -200, 0, "orders")
    queues = {
        name: drop_from_palette(win, "queue", 100, y, name)
        for name, y in (("payments", -120), ("inventory", 0), ("shipping", 120))
    }
    consumers = {
        name: drop_from_palette(win, "consumer", 400, y, name)
        for name, y in (("payment-service", -180), ("inventory-1", -60), ("inventory-2", 60), ("shipping-service", 180))
    }
    for producer in (shop, app):
        connect_by_mouse(win, producer, orders)
    for queue, key in (("payments", "order.created"), ("inventory", "order.*"), ("shipping", "order.paid")):
        connect_by_mouse(win, orders, queues[queue])
        select_edge(win, orders, queues[queue])
        set_field(win, "routing_key", key)
    for consumer, queue in (
        ("payment-service", "payments"),
        ("inventory-1", "inventory"),
        ("inventory-2", "inventory"),
        ("shipping-service", "shipping"),
    ):
        connect_by_mouse(win, queues[queue], consumers[consumer])

    click_node(win, shop)
    for name, value in (
        ("routing_key", "order.{created|paid|shipped}"),
        ("rate", "12"),
        ("body_size", "512"),
        ("persistent", True),
    ):
        set_field(win, name, value)
    click_node(win, app)
    for name, value in (
        ("routing_key", "order.{created|paid|shipped}"),
        ("rate", "6"),
        ("pattern", "poisson"),
        ("body_size", "384"),
        ("persistent", True),
    ):
        set_field(win, name, value)
    for consumer, prefetch, work, spread in (
        ("payment-service", "5", "120", "40"),
        ("inventory-1", "10", "90", "30"),
        ("inventory-2", "10", "90", "30"),
        ("shipping-service", "1", "150", "50"),
    ):
        click_node(win, consumers[consumer])
        set_field(win, "prefetch", prefetch)
        set_field(win, "work_ms", work)
        set_field(win, "work_spread_ms", spread)


def same_topology(a: Topology, b: Topology) -> None:
    """Equal as RabbitMQ and the simulation see them (order, layout and titles aside)."""

    def key(items):  # type: ignore[no-untyped-def]
        return sorted(items, key=repr)

    for part in ("exchanges", "queues", "bindings", "producers", "consumers"):
        assert key(getattr(a, part)) == key(getattr(b, part)), part


def test_build_the_ecommerce_example_by_mouse_save_reopen_undo_redo(
    window: MainWindow, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    build_ecommerce(window)
    built = copy.deepcopy(window.document.topology)
    same_topology(built, load(ROOT / "topologies" / "ecommerce.json"))
    assert window.windowTitle().startswith("Untitled*")

    target = tmp_path / "built.json"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    assert window.files.save_document()
    assert not window.document.dirty
    reopened = load(target)
    same_topology(reopened, built)
    assert reopened.layout == built.layout

    stack = window.document.undo_stack
    steps = stack.count()
    assert steps > 30  # a step for each node (named as it was dropped), connection and field set
    while stack.canUndo():
        stack.undo()
    assert window.document.topology == Topology()
    assert window.scene.nodes == {}
    while stack.canRedo():
        stack.redo()
    assert window.document.topology == built
    assert set(window.scene.nodes) == set(built.node_ids())


def test_the_built_topology_runs_while_being_edited(window: MainWindow, qasync_loop) -> None:  # type: ignore[no-untyped-def]
    from .conftest import run_for

    shop = drop_from_palette(window, "producer", -300, 0, "shop")
    orders = drop_from_palette(window, "exchange:fanout", 0, 0, "orders")
    work = drop_from_palette(window, "queue", 300, 0, "work")
    connect_by_mouse(window, shop, orders)
    connect_by_mouse(window, orders, work)
    click_node(window, shop)
    set_field(window, "rate", "50")
    window.set_speed(10.0)
    window.controller.run()
    run_for(qasync_loop, 0.5)
    sim = window.controller.sim
    queue = sim.broker.lookup_queue("/", "work")
    assert queue.depth > 20
    # A consumer added while running starts taking messages at once.
    worker = drop_from_palette(window, "consumer", 600, 0, "worker")
    connect_by_mouse(window, work, worker)
    click_node(window, worker)
    set_field(window, "work_ms", "0")
    run_for(qasync_loop, 0.5)
    assert queue.depth == 0 and sim.consumers[worker].acked > 20
    # A binding deleted stops routing.
    select_edge(window, orders, work)
    window.edits.delete.trigger()
    enqueued = queue.stats.enqueued
    run_for(qasync_loop, 0.3)
    assert queue.stats.enqueued == enqueued
    assert sim.broker.stats.unroutable > 0
    assert sim.accounting_problems() == []


def test_refused_connections_change_nothing_and_say_why(window: MainWindow) -> None:
    producer = drop_from_palette(window, "producer", -300, 0, "shop")
    exchange = drop_from_palette(window, "exchange:direct", 0, 0, "orders")
    queue = drop_from_palette(window, "queue", 300, -100, "jobs")
    consumer = drop_from_palette(window, "consumer", 300, 100, "worker")
    before = copy.deepcopy(window.document.topology)
    steps = window.document.undo_stack.count()
    messages: list[str] = []
    window.view.connection_refused.connect(messages.append)
    for source, target in ((exchange, consumer), (queue, queue), (producer, consumer), (queue, producer)):
        connect_by_mouse(window, source, target)
    assert window.document.topology == before
    assert window.document.undo_stack.count() == steps
    assert messages == [
        "consumers read from queues: bind the exchange to a queue, then connect the queue to the consumer",
        "a producer publishes to an exchange (or, by name, to a queue), not to a consumer",
        "nothing connects into a producer: it only publishes",
    ]


def test_moving_nodes_is_one_undo_step_and_snaps_to_the_grid(window: MainWindow) -> None:
    a = drop_from_palette(window, "queue", 0, 0, "a")
    b = drop_from_palette(window, "queue", 0, 120, "b")
    window.edits.snap.setChecked(True)
    window.edits.toggle_snap(True)
    window.scene.select_only([a, b])
    steps = window.document.undo_stack.count()
    drag(window, centre(window, a) + QPoint(0, 18), centre(window, a) + QPoint(131, 57))
    assert window.document.undo_stack.count() == steps + 1
    ax, ay = window.document.topology.layout[a]
    bx, by = window.document.topology.layout[b]
    assert (ax % 24, ay % 24, bx % 24, by % 24) == (0, 0, 0, 0)
    assert ax > 100 and by - ay == 120
    window.document.undo_stack.undo()
    assert window.document.topology.layout[a] == (0.0, 0.0)


def test_invalid_values_are_shown_and_never_applied(window: MainWindow) -> None:
    queue = drop_from_palette(window, "queue", 0, 0, "orders")
    click_node(window, queue)
    field = window.inspector.widgets["max_length"]
    assert isinstance(field, QLineEdit)
    field.setFocus()
    QTest.keyClicks(field, "ten")
    QTest.keyClick(field, Qt.Key.Key_Return)
    assert window.inspector.problem_text("max_length") == "a whole number is needed"
    assert window.document.topology.queue("/", "orders").arguments == {}
    field.clear()
    QTest.keyClicks(field, "-5")
    assert "from 0 up" in window.inspector.problem_text("max_length")
    rename = window.view.rename_editor
    assert rename is None
    window.edits.rename.trigger()
    editor = window.view.rename_editor
    assert editor is not None
    editor.field.selectAll()
    QTest.keyClicks(editor.field, "amq.orders")
    QTest.keyClick(editor.field, Qt.Key.Key_Return)
    assert "reserved" in editor.problem.text()
    assert window.document.topology.queue("/", "orders") is not None


def test_copy_paste_duplicate_delete_and_align(window: MainWindow) -> None:
    x = drop_from_palette(window, "exchange:topic", 0, 0, "events")
    q = drop_from_palette(window, "queue", 240, 30, "audit")
    connect_by_mouse(window, x, q)
    window.scene.select_only([x, q])
    window.edits.duplicate.trigger()
    topology = window.document.topology
    assert {e.name for e in topology.exchanges} == {"events", "events-1"}
    assert any(b.source == "events-1" and b.destination == "audit-1" for b in topology.bindings)
    window.scene.select_only([x, q])
    window.edits.copy.trigger()
    window.edits.paste.trigger()
    assert len(window.document.topology.queues) == 3
    window.scene.select_only([x, q])
    window.edits.align["top"].trigger()
    layout = window.document.topology.layout
    assert layout[x][1] == layout[q][1]
    window.scene.select_only([x])
    window.edits.delete.trigger()
    assert window.document.topology.exchange("/", "events") is None
    assert not any(b.source == "events" for b in window.document.topology.bindings)


def test_problems_panel_rows_select_their_node(window: MainWindow) -> None:
    producer = drop_from_palette(window, "producer", 0, 0, "lonely")
    window.problems.analyse()
    texts = [window.problems.list.item(i).text() for i in range(window.problems.list.count())]
    assert any("publishes nowhere" in text for text in texts)
    assert window.scene.nodes[producer].problems
    window.scene.clearSelection()
    window.problems.list.itemClicked.emit(window.problems.list.item(0))
    assert window.scene.selected_node_ids() == [producer]


def test_unsaved_work_is_not_lost(window: MainWindow, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    drop_from_palette(window, "queue", 0, 0, "precious")
    asked: list[str] = []
    monkeypatch.setattr(
        QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.Cancel
    )
    window.files.new.trigger()
    assert asked and "not saved" in asked[0]
    assert window.document.topology.queue("/", "precious") is not None
    window.files.autosave()
    recovered = window.files.recovered_work()
    assert recovered is not None and recovered[0].queue("/", "precious") is not None


def test_exports(window: MainWindow, tmp_path: Path) -> None:
    from PySide6.QtGui import QImage

    assert window.files.open_path(ROOT / "topologies" / "stock-ticker.json")
    png, svg = tmp_path / "canvas.png", tmp_path / "canvas.svg"
    assert window.files.export_canvas("png", png)
    assert window.files.export_canvas("svg", svg)
    image = QImage(str(png))
    assert image.width() > 1000 and image.height() > 300
    assert "<svg" in svg.read_text() and "nyse-board" in svg.read_text()


def test_context_menu_offers_the_selection_actions(window: MainWindow) -> None:
    queue = drop_from_palette(window, "queue", 0, 0, "jobs")
    window.scene.clearSelection()
    assert "&Paste" in [a.text() for a in window.context_menu().actions()]
    shown: list[list[str]] = []
    window.view.context_requested.disconnect()
    window.view.context_requested.connect(
        lambda where: shown.append([a.text() for a in window.context_menu().actions()])
    )
    at = centre(window, queue)
    window.view.contextMenuEvent(QContextMenuEvent(QContextMenuEvent.Reason.Mouse, at, window.view.mapToGlobal(at)))
    assert window.scene.selected_node_ids() == [queue]
    assert shown and "&Delete" in shown[0] and "Re&name…" in shown[0]


def type_lines(widget, lines: list[str]) -> None:  # type: ignore[no-untyped-def]
    for index, line in enumerate(lines):
        if index:
            QTest.keyClick(widget, Qt.Key.Key_Return)
        QTest.keyClicks(widget, line)


def test_header_arguments_typed_then_clicking_away_apply_without_crashing(window: MainWindow, qtbot) -> None:  # type: ignore[no-untyped-def]
    exchange = drop_from_palette(window, "exchange:headers", -150, 0, "by-region")
    queue = drop_from_palette(window, "queue", 150, 0, "eu-orders")
    connect_by_mouse(window, exchange, queue)
    select_edge(window, exchange, queue)
    arguments = window.inspector.widgets["arguments"]
    arguments.setFocus()
    arguments.selectAll()
    type_lines(arguments, ["x-match = any", "region = eu"])
    # Clicking the empty canvas takes the focus away: the arguments apply, and the form
    # they were typed in is rebuilt for the binding's new identity.
    empty = viewport_point(window, 0, 200)
    send_mouse(window, QEvent.Type.MouseButtonPress, empty, Qt.MouseButton.LeftButton)
    send_mouse(window, QEvent.Type.MouseButtonRelease, empty, Qt.MouseButton.NoButton)
    qtbot.waitUntil(lambda: window.document.topology.bindings[0].arguments == {"x-match": "any", "region": "eu"})

    # Typed, then a click on something that never takes the focus: applied once typing stops.
    select_edge(window, exchange, queue)
    arguments = window.inspector.widgets["arguments"]
    arguments.setFocus()
    arguments.selectAll()
    type_lines(arguments, ["x-match = all", "region = us"])
    window.palette.buttons["queue"].click()
    qtbot.waitUntil(lambda: window.document.topology.bindings[0].arguments == {"x-match": "all", "region": "us"})
    assert window.document.undo_stack.count() == 6  # two named nodes, a binding, two changes, the palette queue


def test_renaming_in_the_inspector_keeps_the_form_and_the_selection(window: MainWindow) -> None:
    queue = drop_from_palette(window, "queue", 0, 0, "first")
    click_node(window, queue)
    set_field(window, "name", "second")
    assert window.scene.selected_node_ids() == ["queue:/:second"]
    assert window.inspector.subject == "queue:/:second"
    assert window.inspector.title.text() == "Queue: second"


def test_the_canvas_stays_put_while_nodes_are_dropped_and_moved(window: MainWindow) -> None:
    window.resize(1200, 800)
    window.document.new()
    first = drop_from_palette(window, "queue", 0, 0, "first")
    where = centre(window, first)
    for i, name in enumerate(("second", "third", "fourth")):
        drop_from_palette(window, "consumer", 600 + 300 * i, 400 + 200 * i, name)
        assert centre(window, first) == where, "the view moved under the mouse"
    start = centre(window, first) + QPoint(0, 18)
    drag(window, start, start + QPoint(250, 0))
    assert centre(window, first) == where + QPoint(250, 0)


def test_the_whole_dot_starts_a_connection(window: MainWindow) -> None:
    queue = drop_from_palette(window, "queue", 0, 0, "jobs")
    consumer = drop_from_palette(window, "consumer", 300, 0, "worker")
    inner_half = port(window, queue) - QPoint(4, 0)  # over the node's body
    drag(window, inner_half, centre(window, consumer))
    assert window.document.topology.consumers[0].queue == "jobs"


def test_after_naming_a_node_the_keyboard_acts_on_the_canvas(window: MainWindow) -> None:
    queue = drop_from_palette(window, "queue", 0, 0, "jobs")
    assert window.view.hasFocus()
    QTest.keyClick(window.view, Qt.Key.Key_Delete)
    assert queue not in window.scene.nodes
    QTest.keyClick(window.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert queue in window.scene.nodes
    QTest.keyClick(window.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.scene.nodes == {}, "adding and naming the node is one step"
    QTest.keyClick(window.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert list(window.scene.nodes) == [queue]


def test_a_producer_publishing_straight_to_a_queue_shows_the_default_exchange_between_them(window: MainWindow) -> None:
    producer = drop_from_palette(window, "producer", -300, 100, "shop")
    queue = drop_from_palette(window, "queue", 300, 100, "jobs")
    connect_by_mouse(window, producer, queue)
    default = window.scene.nodes["exchange:/:"]
    assert (default.pos().x(), default.pos().y()) == pytest.approx((0, 100), abs=1)


def test_pasting_lands_at_the_mouse_and_repeats_step_aside(window: MainWindow, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    queue = drop_from_palette(window, "queue", 0, 0, "jobs")
    click_node(window, queue)
    window.edits.copy_selection()
    target = window.view.viewport().mapToGlobal(viewport_point(window, 300, 200))
    monkeypatch.setattr("gui.edit_actions.QCursor.pos", lambda: target)
    window.edits.paste_clipboard()
    window.edits.paste_clipboard()
    layout = window.document.topology.layout
    assert layout["queue:/:jobs-1"] == pytest.approx((300, 200), abs=1)
    assert layout["queue:/:jobs-2"] == pytest.approx((324, 224), abs=1)


def test_no_edit_can_leave_a_topology_that_would_not_open_again(window: MainWindow) -> None:
    from engine.model import Exchange, Producer

    def sneaky(topology: Topology) -> None:
        topology.exchanges.append(Exchange("hidden", internal=True))
        topology.producers.append(Producer("shop", "hidden"))

    refused = window.document.try_edit("Sneak", sneaky)
    assert refused is not None and "would not save as a file that opens again" in refused
    assert "internal exchange" in refused
    assert window.document.topology == Topology() and not window.document.undo_stack.canUndo()


def test_a_refused_tick_goes_back_and_says_why(window: MainWindow) -> None:
    producer = drop_from_palette(window, "producer", -200, 0, "shop")
    exchange = drop_from_palette(window, "exchange:fanout", 100, 0, "orders")
    connect_by_mouse(window, producer, exchange)
    click_node(window, exchange)
    box = window.inspector.widgets["internal"]
    assert isinstance(box, QCheckBox)
    box.click()
    assert not box.isChecked()
    assert "shop publishes to it" in window.inspector.problem_text("internal")
    assert window.document.topology.exchanges[0].internal is False


def test_a_click_on_a_busy_bindings_key_selects_the_binding_not_a_token_under_it(
    window: MainWindow, qasync_loop
) -> None:  # type: ignore[no-untyped-def]
    from gui.main_window import example_files

    from .conftest import run_for

    window.open_path(example_files()[0])  # the e-commerce example: order.* carries every order
    window.set_speed(5.0)
    window.controller.run()
    run_for(qasync_loop, 1.5)
    window.controller.pause()
    (edge,) = [e for e in window.scene.edges if e.label == "order.*"]
    assert edge.label_item is not None
    at = window.view.mapFromScene(edge.label_item.sceneBoundingRect().center())
    send_mouse(window, QEvent.Type.MouseButtonPress, at, Qt.MouseButton.LeftButton)
    send_mouse(window, QEvent.Type.MouseButtonRelease, at, Qt.MouseButton.NoButton)
    assert window.scene.selected_edge_ids() == [edge.edge_id]
    assert window.inspector.title.text().startswith("Binding")
