"""The window on each shipped example: tokens move, plots fill, controls and files behave."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QFileDialog, QMessageBox

from gui.main_window import MainWindow, example_files

from .conftest import run_for


@pytest.fixture
def window(qtbot, qasync_loop, settings):  # type: ignore[no-untyped-def]
    win = MainWindow(settings)
    qtbot.addWidget(win, before_close_func=lambda w: w.document.undo_stack.setClean())
    win.show()
    yield win
    win.controller.pause()
    win.close()


def distinct_colours(image: QImage, step: int = 7) -> int:
    colours = set()
    for y in range(0, image.height(), step):
        for x in range(0, image.width(), step):
            colours.add(image.pixel(x, y))
    return len(colours)


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.stem)
def test_example_runs_with_tokens_plots_and_a_picture(window: MainWindow, qasync_loop, path: Path) -> None:  # type: ignore[no-untyped-def]
    assert window.open_path(path)
    window.set_speed(2.0)
    window.controller.run()
    run_for(qasync_loop, 2.5)
    assert window.controller.time > 3.0
    assert window.animator.tokens_started > 0
    assert window.scene.tokens.tokens, "no tokens in flight"
    x, y = window.rates.rate_curves["publish"].getData()
    assert x is not None and len(x) > 5 and np.nanmax(y) > 0
    assert set(window.rates.depth_curves) == {q.id for q in window.document.topology.queues}
    for curve in window.rates.depth_curves.values():
        assert len(curve.getData()[0]) > 5
    image = window.grab().toImage()
    assert distinct_colours(image) > 40
    assert "published" in window.totals_label.text()
    # Every node of the model is drawn, and every consumer shows a live rate.
    assert set(window.scene.nodes) == set(window.document.topology.node_ids())
    for consumer in window.document.topology.consumers:
        assert "msg/s" in window.scene.nodes[consumer.id].status


def test_pause_stops_time_and_reset_starts_again(window: MainWindow, qasync_loop) -> None:  # type: ignore[no-untyped-def]
    window.open_path(example_files()[0])
    window.controller.run()
    run_for(qasync_loop, 0.5)
    window.controller.pause()
    paused_at = window.controller.time
    assert paused_at > 0
    run_for(qasync_loop, 0.3)
    assert window.controller.time == paused_at
    assert window.run_action.isEnabled() and not window.pause_action.isEnabled()
    window.controller.reset()
    assert window.controller.time == 0.0
    assert not window.controller.running


def test_speed_control_changes_simulated_time(window: MainWindow, qasync_loop) -> None:  # type: ignore[no-untyped-def]
    window.open_path(example_files()[0])
    window.speed_box.setCurrentIndex(window.speed_box.findText("10×"))
    window.controller.run()
    run_for(qasync_loop, 1.0)
    assert window.controller.time > 5.0


def test_bad_file_shows_an_error_and_keeps_the_open_document(window: MainWindow, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    window.open_path(example_files()[0])
    before = window.document.topology
    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text: shown.append(text))
    broken = tmp_path / "broken.json"
    broken.write_text('{"queues": [{"name": "q", "arguments": {"x-max-length": -1}}]}')
    assert not window.open_path(broken)
    assert shown and 'broken.json: $.queues[0].arguments["x-max-length"]' in shown[0]
    assert window.document.topology is before
    assert len(window.scene.nodes) == len(before.node_ids())


def test_save_as_writes_a_file_that_opens_again(window: MainWindow, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    window.open_path(example_files()[0])
    target = tmp_path / "copy.json"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    assert window.save_as()
    assert json.loads(target.read_text())["queuecraft"]["producers"]
    assert window.document.path == target.resolve()
    assert window.windowTitle().startswith("copy.json")
    assert window.recent_files()[0] == str(target.resolve())
    assert window.open_path(target)


def test_recent_files_menu_lists_opened_files(window: MainWindow) -> None:
    for path in example_files():
        window.open_path(path)
    recent = window.recent_files()
    assert recent[0] == str(example_files()[-1].resolve())
    assert len(recent) == len(example_files())
    assert [a.text() for a in window.recent_menu.actions()] == recent


def test_an_opened_topology_stays_whole_in_view_as_the_window_resizes(window: MainWindow, qtbot) -> None:  # type: ignore[no-untyped-def]
    window.resize(1440, 900)
    window.open_path(example_files()[0])

    def everything_visible() -> bool:
        shown = window.view.mapToScene(window.view.viewport().rect()).boundingRect()
        return shown.contains(window.scene.content_rect)

    qtbot.waitUntil(everything_visible)
    small_zoom = window.view.zoom
    window.resize(1800, 1000)
    qtbot.waitUntil(lambda: window.view.zoom > small_zoom * 1.1)
    assert everything_visible()
    # Once the person zooms in, a resize leaves their zoom alone.
    window.view.zoom_by(2.0)
    zoom = window.view.zoom
    window.resize(1300, 800)
    qtbot.wait(50)
    assert window.view.zoom == pytest.approx(zoom)
    assert not everything_visible()


@pytest.mark.parametrize("size", [(1280, 720), (1440, 900), (1920, 1080)])
def test_fitted_the_topology_leaves_the_legend_its_corner_and_the_legend_stays_there_when_the_canvas_scrolls(
    window: MainWindow, qtbot, size: tuple[int, int]
) -> None:  # type: ignore[no-untyped-def]
    window.resize(*size)
    window.open_path(example_files()[0])  # the e-commerce example, wide and short
    view = window.view
    legend = view.legend.geometry()

    def on_screen(nid: str):  # type: ignore[no-untyped-def]
        return view.mapFromScene(window.scene.nodes[nid].sceneBoundingRect()).boundingRect()

    def whole_and_clear() -> bool:
        shown = view.mapToScene(view.viewport().rect()).boundingRect()
        return shown.contains(window.scene.content_rect) and not any(
            on_screen(nid).intersects(legend) for nid in window.scene.nodes
        )

    qtbot.waitUntil(whole_and_clear)
    assert view.zoom >= view.READABLE_ZOOM
    # Scrolled (as when clients' nodes arrive and the scene grows), the legend keeps its corner.
    view.zoom_by(2.0)
    view.horizontalScrollBar().setValue(view.horizontalScrollBar().maximum())
    view.verticalScrollBar().setValue(view.verticalScrollBar().maximum())
    assert view.legend.geometry() == legend


def test_no_two_actions_share_a_shortcut(window: MainWindow) -> None:
    """A key bound twice does nothing at all in Qt ("ambiguous shortcut"): each must be one action's."""
    from PySide6.QtGui import QAction, QKeySequence

    owners: dict[str, list[str]] = {}
    for action in window.findChildren(QAction):
        for sequence in action.shortcuts():
            owners.setdefault(sequence.toString(QKeySequence.SequenceFormat.PortableText), []).append(
                action.text().replace("&", "")
            )
    shared = {key: names for key, names in owners.items() if len(set(names)) > 1}
    assert not shared
    assert "Automatic Layout" in owners["Ctrl+L"] and owners["Ctrl+Shift+L"] == ["Listen for AMQP Clients"]


def test_at_max_speed_the_three_plots_show_the_same_stretch_of_time(window: MainWindow, qasync_loop) -> None:  # type: ignore[no-untyped-def]
    """The plots are drawn one a frame; a slow frame must not leave them showing different times."""
    window.open_path(example_files()[0])
    window.set_speed(math.inf)
    window.controller.run()
    run_for(qasync_loop, 1.5)
    window.controller.pause()
    rates, sim = window.rates, window.controller.sim
    assert sim is not None and sim.now > 100
    for _ in range(20):  # until a redraw starts: the first plot drawn, the other two due
        rates._drawn_at = 0.0
        sim.history.sample(sim.now + 1.0, None)
        rates.update_from(sim)
        if rates._pending_charts == [1, 2]:
            break
    assert rates._pending_charts == [1, 2]
    spans = [chart.plot.viewRange()[0] for chart in rates.charts]
    assert spans[1] == pytest.approx(spans[0]) and spans[2] == pytest.approx(spans[0])


def test_a_relation_edge_says_which_node_and_field_hold_it(window: MainWindow) -> None:
    window.open_path(example_files()[0])
    window.inspector.show_selection(["consumes:consumer:/:payment-service"])
    form = window.inspector.scroll.widget()
    from PySide6.QtWidgets import QLabel

    said = " ".join(label.text() for label in form.findChildren(QLabel))
    assert "select consumer 'payment-service' and change its Consumes from" in said
