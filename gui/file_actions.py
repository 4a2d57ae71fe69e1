"""The File menu: new, open, save, recent files, import and export, and the autosaved recovery file.

Nothing unsaved is lost without asking: New, Open and closing the window offer
to save a changed document first, and while it is changed a recovery copy is
written every few seconds, to be offered back after a crash.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QRectF, QSize, QStandardPaths, Qt, QTimer
from PySide6.QtGui import QImage, QKeySequence, QPainter
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import QFileDialog, QGraphicsItem, QGraphicsScene, QInputDialog, QMenu, QMessageBox

from engine.edits import EditRefused
from engine.export import pika_script, vhost_definitions
from engine.model import Topology
from engine.topology_file import TopologyFileError, dumps, load, loads

if TYPE_CHECKING:
    from .main_window import MainWindow

EXAMPLES = Path(__file__).resolve().parent.parent / "topologies"
FILE_FILTER = "Topology files (*.json);;All files (*)"
MAX_RECENT = 8
AUTOSAVE_MS = 15_000


def example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.json"))


def example_title(path: Path) -> str:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("queuecraft", {}).get("title") or path.stem
    except (OSError, ValueError, AttributeError):
        return path.stem


def recovery_dir() -> Path:
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base or Path.home() / ".queuecraft") / "recovery"


class FileActions(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        key = QKeySequence.StandardKey
        make = window.make_action
        self.new = make("&New", self.new_document, key.New, "Start an empty topology")
        self.open = make("&Open…", self.choose_and_open, key.Open, "Open a topology or RabbitMQ definitions file")
        self.import_definitions = make(
            "&Import Definitions…",
            self.choose_and_import,
            "Ctrl+I",
            "Add a RabbitMQ export (or one vhost's) to this topology",
        )
        self.save = make("&Save", self.save_document, key.Save, "Save the topology")
        self.save_as = make("Save &As…", self.save_document_as, key.SaveAs, "Save the topology to a new file")
        self.export_definitions = make("RabbitMQ &Definitions for a Vhost…", self.export_vhost_definitions)
        self.export_png = make("Canvas as &PNG…", lambda: self.export_canvas("png"))
        self.export_svg = make("Canvas as &SVG…", lambda: self.export_canvas("svg"))
        self.export_script = make("Python &Script (pika)…", self.export_pika_script)
        self.quit = make("&Quit", window.close, key.Quit)
        self.recovery = recovery_dir() / "recovery.json"
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setInterval(AUTOSAVE_MS)
        self.autosave_timer.timeout.connect(self.autosave)
        self.autosave_timer.start()

    def fill_menu(self, menu: QMenu) -> None:
        menu.addAction(self.new)
        menu.addAction(self.open)
        self.examples_menu = menu.addMenu("Open &Example")
        for path in example_files():
            self.examples_menu.addAction(example_title(path), lambda p=path: self.open_path(p))
        self.recent_menu = menu.addMenu("Open &Recent")
        self.rebuild_recent_menu()
        menu.addAction(self.import_definitions)
        menu.addSeparator()
        menu.addAction(self.save)
        menu.addAction(self.save_as)
        export = menu.addMenu("&Export")
        for action in (self.export_definitions, self.export_png, self.export_svg, self.export_script):
            export.addAction(action)
        menu.addSeparator()
        menu.addAction(self.quit)

    # -- unsaved work ------------------------------------------------------------------------

    def may_discard(self) -> bool:
        """True when the open document may be replaced: saved, or the person says so."""
        document = self.window.document
        if not document.dirty:
            return True
        answer = QMessageBox.question(
            self.window,
            "Unsaved changes",
            f"{document.display_name} has changes that are not saved. Save them first?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save,
        )
        if answer == QMessageBox.StandardButton.Save:
            return self.save_document()
        return answer == QMessageBox.StandardButton.Discard

    def autosave(self) -> None:
        """While the document has unsaved changes, keep a recovery copy of it."""
        document = self.window.document
        if not document.dirty:
            return
        try:
            self.recovery.parent.mkdir(parents=True, exist_ok=True)
            record = {
                "saved_at": time.time(),
                "path": str(document.path) if document.path else None,
                "topology": json.loads(dumps(document.topology)),
            }
            temporary = self.recovery.with_suffix(".tmp")
            temporary.write_text(json.dumps(record), encoding="utf-8")
            os.replace(temporary, self.recovery)
        except OSError as exc:
            self.window.statusBar().showMessage(f"Could not write the recovery file: {exc}", 6000)

    def forget_recovery(self) -> None:
        try:
            self.recovery.unlink()
        except FileNotFoundError:
            pass

    def recovered_work(self) -> tuple[Topology, Path | None, float] | None:
        """What a crash left behind, if anything readable."""
        try:
            record = json.loads(self.recovery.read_text(encoding="utf-8"))
            topology = loads(json.dumps(record["topology"]), str(self.recovery))
        except (OSError, ValueError, KeyError, TopologyFileError):
            return None
        path = Path(record["path"]) if record.get("path") else None
        return topology, path, float(record.get("saved_at", 0))

    def offer_recovery(self) -> bool:
        """After a crash: offer the unsaved work back. True when it was taken."""
        found = self.recovered_work()
        if found is None:
            return False
        topology, path, saved_at = found
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(saved_at))
        name = path.name if path else (topology.title or "an untitled topology")
        answer = QMessageBox.question(
            self.window,
            "Recover unsaved work?",
            f"Queuecraft closed before {name} was saved. Recover the changes autosaved at {when}?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.Yes,
        )
        if answer != QMessageBox.StandardButton.Yes:
            self.forget_recovery()
            return False
        self.window.document.adopt(topology, path, dirty=True)
        return True

    # -- documents ------------------------------------------------------------------------------

    def new_document(self) -> None:
        if self.may_discard():
            self.window.document.new()
            self.forget_recovery()

    def choose_and_open(self) -> None:
        if not self.may_discard():
            return
        document = self.window.document
        start = str(document.path.parent) if document.path else str(EXAMPLES)
        path, _ = QFileDialog.getOpenFileName(self.window, "Open topology", start, FILE_FILTER)
        if path:
            self.open_path(path, ask=False)

    def open_path(self, path: str | Path, ask: bool = True) -> bool:
        """Open a file; on an error say what and where, and leave the open document as it was."""
        if ask and not self.may_discard():
            return False
        try:
            self.window.document.open(path)
        except TopologyFileError as exc:
            QMessageBox.warning(self.window, "Cannot open topology", str(exc))
            self.window.statusBar().showMessage(f"Not opened: {exc}", 10000)
            return False
        self.forget_recovery()
        self.remember_recent(self.window.document.path)
        self.window.statusBar().showMessage(f"Opened {self.window.document.path}", 5000)
        return True

    def save_document(self) -> bool:
        document = self.window.document
        if document.path is None:
            return self.save_document_as()
        return self._save_to(document.path)

    def save_document_as(self) -> bool:
        document = self.window.document
        start = str(document.path) if document.path else str(Path.home() / "topology.json")
        path, _ = QFileDialog.getSaveFileName(self.window, "Save topology", start, FILE_FILTER)
        if not path:
            return False
        return self._save_to(Path(path))

    def _save_to(self, path: Path) -> bool:
        try:
            saved = self.window.document.save(path)
        except OSError as exc:
            QMessageBox.warning(self.window, "Cannot save topology", f"{path}: {exc.strerror or exc}")
            return False
        self.forget_recovery()
        self.remember_recent(saved)
        self.window.statusBar().showMessage(f"Saved {saved}", 5000)
        return True

    # -- import -----------------------------------------------------------------------------------

    def choose_and_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Import RabbitMQ definitions", str(Path.home()), FILE_FILTER)
        if path:
            self.import_path(path)

    def import_path(self, path: str | Path) -> bool:
        """Add a definitions file's vhosts, exchanges, queues, bindings and policies: one undoable step."""
        try:
            incoming = load(path, complete_layout=False)
        except TopologyFileError as exc:
            QMessageBox.warning(self.window, "Cannot import definitions", str(exc))
            return False
        from engine.layout import complete_layout

        def change(topology: Topology) -> None:
            clashes = [
                f"{kind} '{item.name}' in vhost '{item.vhost}'"
                for kind, mine, theirs in (
                    ("exchange", topology.exchanges, incoming.exchanges),
                    ("queue", topology.queues, incoming.queues),
                    ("policy", topology.policies, incoming.policies),
                    ("producer", topology.producers, incoming.producers),
                    ("consumer", topology.consumers, incoming.consumers),
                )
                for item in theirs
                if any(m.vhost == item.vhost and m.name == item.name for m in mine)
            ]
            if clashes:
                raise EditRefused(
                    "these are here already: " + ", ".join(clashes[:5]) + (" ..." if len(clashes) > 5 else "")
                )
            names = set(topology.vhost_names())
            topology.vhosts += [v for v in incoming.vhosts if v.name not in names]
            topology.exchanges += incoming.exchanges
            topology.queues += incoming.queues
            topology.bindings += incoming.bindings
            topology.policies += incoming.policies
            topology.producers += incoming.producers
            topology.consumers += incoming.consumers
            complete_layout(topology)

        if self.window.apply_edit(f"Import {Path(path).name}", change):
            self.window.statusBar().showMessage(f"Imported {path}", 5000)
            self.window.view.fit()
            return True
        return False

    # -- export -------------------------------------------------------------------------------------

    def _choose_vhost(self, purpose: str) -> str | None:
        topology = self.window.document.topology
        vhosts = sorted(set(topology.vhost_names()) | {e.vhost for e in (*topology.exchanges, *topology.queues)})
        if len(vhosts) <= 1:
            return vhosts[0] if vhosts else "/"
        vhost, chosen = QInputDialog.getItem(self.window, purpose, "Vhost:", vhosts, 0, False)
        return vhost if chosen else None

    def export_vhost_definitions(self) -> None:
        vhost = self._choose_vhost("Export definitions")
        if vhost is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self.window, "Export RabbitMQ definitions", str(Path.home() / "definitions.json"), FILE_FILTER
        )
        if path:
            self.write_text(
                Path(path), json.dumps(vhost_definitions(self.window.document.topology, vhost), indent=2) + "\n"
            )

    def export_pika_script(self) -> None:
        vhost = self._choose_vhost("Export a pika script")
        if vhost is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self.window, "Export a Python script", str(Path.home() / "topology_run.py"), "Python (*.py)"
        )
        if path:
            self.write_text(Path(path), pika_script(self.window.document.topology, vhost), executable=True)

    def write_text(self, path: Path, text: str, executable: bool = False) -> bool:
        try:
            path.write_text(text, encoding="utf-8")
            if executable:
                path.chmod(path.stat().st_mode | 0o111)
        except OSError as exc:
            QMessageBox.warning(self.window, "Cannot export", f"{path}: {exc.strerror or exc}")
            return False
        self.window.statusBar().showMessage(f"Exported {path}", 5000)
        return True

    def export_canvas(self, kind: str, path: str | Path | None = None) -> bool:
        if path is None:
            suffix = {"png": "PNG image (*.png)", "svg": "SVG drawing (*.svg)"}[kind]
            chosen, _ = QFileDialog.getSaveFileName(
                self.window, f"Export the canvas as {kind.upper()}", str(Path.home() / f"topology.{kind}"), suffix
            )
            if not chosen:
                return False
            path = chosen
        scene = self.window.scene
        scene.clearSelection()
        source = scene.itemsBoundingRect().adjusted(-24, -24, 24, 24)
        # Drawn afresh, not from the screen's cached pixmaps: an SVG keeps its text and a PNG is sharp.
        cached = [item for item in scene.items() if item.cacheMode() != QGraphicsItem.CacheMode.NoCache]
        modes = [item.cacheMode() for item in cached]
        for item in cached:
            item.setCacheMode(QGraphicsItem.CacheMode.NoCache)
        try:
            ok = self._render(kind, path, scene, source)
        finally:
            for item, mode in zip(cached, modes, strict=True):
                item.setCacheMode(mode)
        if not ok:
            QMessageBox.warning(self.window, "Cannot export", f"{path}: could not be written")
            return False
        self.window.statusBar().showMessage(f"Exported {path}", 5000)
        return True

    def _render(self, kind: str, path: str | Path, scene: QGraphicsScene, source: QRectF) -> bool:
        if kind == "png":
            scale = 2.0  # crisp on high-density screens and in documents
            image = QImage(
                QSize(int(source.width() * scale), int(source.height() * scale)), QImage.Format.Format_ARGB32
            )
            image.fill(Qt.GlobalColor.white)
            painter = QPainter(image)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            scene.render(painter, QRectF(image.rect()), source)
            painter.end()
            ok = image.save(str(path))
        else:
            generator = QSvgGenerator()
            generator.setFileName(str(path))
            generator.setSize(QSize(int(source.width()), int(source.height())))
            generator.setViewBox(QRectF(0, 0, source.width(), source.height()))
            generator.setTitle(self.window.document.display_name)
            painter = QPainter(generator)
            scene.render(painter, QRectF(0, 0, source.width(), source.height()), source)
            ok = painter.end()
        return bool(ok)

    # -- recent files -------------------------------------------------------------------------------

    def recent_files(self) -> list[str]:
        value = self.window.settings.value("recent_files", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def remember_recent(self, path: Path | None) -> None:
        if path is None or not self.window.remember_recent_files:
            return
        recent = [p for p in self.recent_files() if p != str(path)]
        recent.insert(0, str(path))
        self.window.settings.setValue("recent_files", recent[:MAX_RECENT])
        self.rebuild_recent_menu()

    def rebuild_recent_menu(self) -> None:
        if not hasattr(self, "recent_menu"):
            return
        self.recent_menu.clear()
        recent = self.recent_files()
        for path in recent:
            self.recent_menu.addAction(path, lambda p=path: self.open_path(p))
        self.recent_menu.setEnabled(bool(recent))
