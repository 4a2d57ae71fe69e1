"""engine/ never imports Qt or gui/: it runs, and `queuecraft run` works, with Qt absent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter in which any import of Qt, qasync, pyqtgraph or gui fails.
BLOCK_QT = """
import sys, importlib.abc
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('PySide6', 'shiboken6', 'qasync', 'pyqtgraph', 'PyQt5', 'PyQt6'):
            raise ImportError('Qt is not available here: ' + name)
        return None
sys.meta_path.insert(0, Refuse())
"""


def run_without_qt(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_QT + code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_engine_module_imports_with_qt_absent() -> None:
    modules = sorted(p.stem for p in (ROOT / "engine").glob("*.py") if p.stem != "__init__")
    code = "import importlib\n" + "".join(f"importlib.import_module('engine.{m}')\n" for m in modules)
    code += "print('gui' in sys.modules, any(m.startswith('PySide6') for m in sys.modules))"
    result = run_without_qt(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False False"


def test_headless_run_command_works_with_qt_absent() -> None:
    code = (
        "from gui.launcher import main\n"
        "raise SystemExit(main(['run', 'topologies/ride-hailing.json', '--duration', '5', '--json']))\n"
    )
    result = run_without_qt(code)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["consumers"] and all(c["acked"] > 0 for c in report["consumers"])
