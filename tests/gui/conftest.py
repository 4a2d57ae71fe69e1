"""Qt fixtures: an asyncio loop over the test's QApplication (qasync), closed before the app goes."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest
import qasync
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from gui.app import collect_only_between_frames


@pytest.fixture(autouse=True)
def collector_as_in_the_app() -> Iterator[None]:
    """The collector runs as the app runs it: between frames, and here after each test, once
    its widgets are closed."""
    collect_only_between_frames()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


@pytest.fixture
def qasync_loop(qapp: QApplication) -> Iterator[qasync.QEventLoop]:
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()
        asyncio.set_event_loop(None)


@pytest.fixture
def settings(tmp_path) -> QSettings:  # type: ignore[no-untyped-def]
    """Settings in a temporary file, so tests never touch the user's recent files."""
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


def run_for(loop: qasync.QEventLoop, seconds: float) -> None:
    """Let the Qt event loop (and the asyncio tasks in it) run for ``seconds`` of wall time."""
    loop.run_until_complete(asyncio.sleep(seconds))


@pytest.fixture
def window(qtbot, qasync_loop, settings, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """The main window as a user sees it, full size, its recovery files kept in the test's folder."""
    from gui.main_window import MainWindow

    monkeypatch.setattr("gui.file_actions.recovery_dir", lambda: tmp_path / "recovery")
    win = MainWindow(settings)
    qtbot.addWidget(win, before_close_func=lambda w: w.document.undo_stack.setClean())
    win.resize(1440, 900)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.controller.pause()
    if win.listener.listening:
        win.listener.stop()
