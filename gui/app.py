"""Starting the Qt application with the asyncio engine inside its event loop (qasync)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from pathlib import Path

import qasync
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from .main_window import EXAMPLES, MainWindow

DEFAULT_EXAMPLE = EXAMPLES / "ecommerce.json"


def collect_only_between_frames() -> None:
    """The collector runs between frames (``MainWindow.on_frame``), never on its own.

    Left to itself, it may run inside a Qt call that holds one of Qt's pooled
    signal-slot locks (a disconnect, say) and destroy a QObject whose destructor
    needs the same lock: the process hangs. Between frames no such lock is held.
    """
    gc.collect()
    gc.disable()


def settle_garbage_collector() -> None:
    """Keep the collector's pauses short while messages fly.

    Qt, pyqtgraph and the window are built once and live as long as the app: they
    are frozen out of the collector's full passes.
    """
    gc.collect()
    gc.freeze()


def run_app(args: argparse.Namespace) -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Queuecraft")
    app.setOrganizationName("Queuecraft")
    collect_only_between_frames()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    window = MainWindow(remember_recent_files=not args.screenshot)
    # The seed before the file: opening it builds the run.
    window.controller.seed = args.seed
    window.runs.seed_box.blockSignals(True)
    window.runs.seed_box.setValue(args.seed)
    window.runs.seed_box.blockSignals(False)
    recovered = not args.screenshot and window.files.offer_recovery()
    if not recovered:
        path = Path(args.file) if args.file else DEFAULT_EXAMPLE
        if not window.open_path_quietly(path, remember=not args.screenshot):
            return 2
    window.set_speed(args.speed)
    window.show()
    settle_garbage_collector()
    exit_code = 0

    def shoot() -> None:
        nonlocal exit_code
        window.on_frame()
        if not window.grab().save(args.screenshot):
            print(f"queuecraft: could not write {args.screenshot}", file=sys.stderr)
            exit_code = 1
        window.close()

    def start() -> None:
        # The run-for clock starts with the run, once the window is up.
        if not args.paused:
            window.controller.run()
        if args.screenshot:
            QTimer.singleShot(int((5.0 if args.run_for is None else args.run_for) * 1000), shoot)
        elif args.run_for is not None:
            QTimer.singleShot(int(args.run_for * 1000), window.close)

    QTimer.singleShot(0, start)
    closed = asyncio.Event()
    window.closed.connect(closed.set)
    with loop:
        loop.run_until_complete(closed.wait())
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    return exit_code
