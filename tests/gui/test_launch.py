"""The `queuecraft` command: screenshots of a run, and plain words when Qt cannot start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PySide6.QtGui import QImage

from gui.platform_check import XCB_LIBRARIES, platform_problem

ROOT = Path(__file__).resolve().parents[2]


def test_screenshot_of_a_running_example(tmp_path: Path) -> None:
    out = tmp_path / "shot.png"
    result = subprocess.run(
        [sys.executable, "-m", "gui", "topologies/stock-ticker.json", "--screenshot", str(out), "--run-for", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert result.returncode == 0, result.stderr
    image = QImage(str(out))
    assert (image.width(), image.height()) == (1440, 900)
    colours = {image.pixel(x, y) for x in range(0, 1440, 9) for y in range(0, 900, 9)}
    assert len(colours) > 40


def test_launch_with_a_bad_file_says_why(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    result = subprocess.run(
        [sys.executable, "-m", "gui", str(broken), "--screenshot", str(tmp_path / "x.png")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert result.returncode == 2
    assert "broken.json: line 1, column 2: not valid JSON" in result.stderr


def test_missing_xcb_libraries_are_named_with_their_packages() -> None:
    absent = {"libxcb-icccm.so.4", "libxcb-keysyms.so.1"}
    message = platform_problem({"DISPLAY": ":0"}, loads=lambda name: name not in absent, system="linux")
    assert message is not None
    assert "libxcb-icccm.so.4  (Debian/Ubuntu package libxcb-icccm4)" in message
    assert "sudo apt install libxcb-icccm4 libxcb-keysyms1" in message
    assert "could not load the Qt platform plugin" not in message


def test_everything_present_is_no_problem() -> None:
    assert platform_problem({"DISPLAY": ":0"}, loads=lambda name: True, system="linux") is None
    assert platform_problem({}, loads=lambda name: False, system="darwin") is None


def test_offscreen_does_not_need_xcb() -> None:
    loads = lambda name: name not in XCB_LIBRARIES  # noqa: E731
    assert platform_problem({"QT_QPA_PLATFORM": "offscreen"}, loads=loads, system="linux") is None


def test_no_display_is_explained() -> None:
    message = platform_problem({}, loads=lambda name: True, system="linux")
    assert message is not None and "no display was found" in message
    assert "queuecraft run FILE" in message


def test_qt_bindings_keep_none_alive() -> None:
    """PySide6 6.12.0 under Python 3.11 dropped a reference to None on every void call
    and crashed the app after a few seconds of painting; the pinned range must not."""
    from PySide6.QtGui import QColor, QPainter, QPen

    image = QImage(8, 8, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    before = sys.getrefcount(None)
    for _ in range(2000):
        painter.setPen(QPen(QColor("#123456"), 1.0))
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    after = sys.getrefcount(None)
    painter.end()
    assert after - before > -100
