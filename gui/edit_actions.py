"""The Edit menu: undo and redo, delete, copy and paste, rename, align, layout, snapping.

Every action that changes the topology is one edit through the document (and so
one undo step); selection changes never are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QPointF
from PySide6.QtGui import QAction, QCursor, QKeySequence
from PySide6.QtWidgets import QApplication, QMenu

from engine.edits import (
    copy_fragment,
    edge_ids,
    layout_all,
    move_nodes,
    paste_fragment,
    remove_edges,
    remove_nodes,
)
from engine.model import node_id, split_node_id

from .scene import GRID

if TYPE_CHECKING:
    from .main_window import MainWindow


def _unique(sequences: list[QKeySequence]) -> list[QKeySequence]:
    seen: list[QKeySequence] = []
    for sequence in sequences:
        if not sequence.isEmpty() and sequence not in seen:
            seen.append(sequence)
    return seen


ALIGNMENTS = (
    ("left", "Align &Left"),
    ("center", "Align &Centres (vertical line)"),
    ("right", "Align &Right"),
    ("top", "Align &Top"),
    ("middle", "Align &Middles (horizontal line)"),
    ("bottom", "Align &Bottom"),
)


class EditActions(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        # text, where the mouse was (in the window), where it pasted (in the scene), how many times
        self._last_paste: tuple[str, tuple[int, int], tuple[int, int], int] = ("", (0, 0), (0, 0), 0)
        stack = window.document.undo_stack
        key = QKeySequence.StandardKey
        self.undo = stack.createUndoAction(self, "&Undo")
        self.undo.setShortcut(QKeySequence(key.Undo))
        self.redo = stack.createRedoAction(self, "&Redo")
        # Both spellings of redo, whatever the desktop's standard one is.
        self.redo.setShortcuts(
            _unique([*QKeySequence.keyBindings(key.Redo), QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        )
        # The menu says what will be undone; the toolbar button keeps its width.
        self.undo.setIconText("Undo")
        self.redo.setIconText("Redo")
        self.cut = window.make_action("Cu&t", self.cut_selection, key.Cut)
        self.copy = window.make_action("&Copy", self.copy_selection, key.Copy)
        self.paste = window.make_action("&Paste", self.paste_clipboard, key.Paste)
        self.duplicate = window.make_action("D&uplicate", self.duplicate_selection, "Ctrl+D")
        self.delete = window.make_action("&Delete", self.delete_selection, key.Delete)
        self.delete.setShortcuts([QKeySequence(key.Delete), QKeySequence("Backspace")])
        self.select_all = window.make_action("Select &All", self.select_everything, key.SelectAll)
        self.rename = window.make_action("Re&name…", self.rename_selection, "F2")
        self.layout = window.make_action(
            "Automatic &Layout", self.auto_layout, "Ctrl+L", "Lay the topology out in layers, left to right"
        )
        self.snap = window.make_action("&Snap to Grid", self.toggle_snap, "Ctrl+G")
        self.snap.setCheckable(True)
        self.align: dict[str, QAction] = {
            how: window.make_action(text, lambda checked=False, h=how: self.align_selection(h))
            for how, text in ALIGNMENTS
        }

    def fill_menu(self, menu: QMenu) -> None:
        for action in (self.undo, self.redo):
            menu.addAction(action)
        menu.addSeparator()
        for action in (self.cut, self.copy, self.paste, self.duplicate, self.delete):
            menu.addAction(action)
        menu.addSeparator()
        menu.addAction(self.select_all)
        menu.addAction(self.rename)
        menu.addSeparator()
        align_menu = menu.addMenu("Ali&gn")
        for action in self.align.values():
            align_menu.addAction(action)
        menu.addAction(self.layout)
        menu.addAction(self.snap)

    # -- selection helpers --------------------------------------------------------------------

    def _selected(self) -> tuple[list[str], list[str]]:
        """The selected nodes and bindings the document holds: what real clients brought is
        drawn, and selectable, but edits leave it alone (it is the broker's, not the file's)."""
        scene, listener = self.window.scene, self.window.listener
        nodes = [n for n in scene.selected_node_ids() if not listener.is_live(n)]
        edges = [e for e in scene.selected_edge_ids() if not listener.is_live(e)]
        if len(nodes) + len(edges) < len(scene.selected_node_ids()) + len(scene.selected_edge_ids()):
            self.window.statusBar().showMessage(
                "What real clients brought (LIVE) is the broker's, not the document's: edits leave it alone.", 6000
            )
        return nodes, edges

    def _removable_nodes(self, nodes: list[str]) -> list[str]:
        """Built-in exchanges are drawn but belong to the broker; they cannot be removed."""
        topology = self.window.document.topology
        declared = {x.id for x in topology.exchanges}
        return [n for n in nodes if not n.startswith("exchange:") or n in declared]

    # -- actions -------------------------------------------------------------------------------

    def delete_selection(self) -> None:
        nodes, edges = self._selected()
        nodes = self._removable_nodes(nodes)
        if not nodes and not edges:
            return
        present = set(edge_ids(self.window.document.topology))
        edges = [e for e in edges if e in present]

        def change(topology) -> None:  # type: ignore[no-untyped-def]
            remove_edges(topology, edges)
            remove_nodes(topology, nodes)

        count = len(nodes) + len(edges)
        self.window.apply_edit(f"Delete {count} item{'s' if count != 1 else ''}", change)

    def copy_selection(self) -> None:
        nodes = self._removable_nodes(self._selected()[0])
        if nodes:
            QApplication.clipboard().setText(copy_fragment(self.window.document.topology, nodes))

    def cut_selection(self) -> None:
        self.copy_selection()
        self.delete_selection()

    def paste_clipboard(self) -> None:
        """Paste around the mouse when it is over the canvas, else in the middle of what is shown;
        pasting again without moving steps each copy down and to the right."""
        text = QApplication.clipboard().text()
        view = self.window.view
        at = view.viewport().mapFromGlobal(QCursor.pos())
        if not view.viewport().rect().contains(at):
            at = view.viewport().rect().center()
        point = view.mapToScene(at)
        spot = (round(point.x()), round(point.y()))
        mouse = (at.x(), at.y())
        # The mouse has not moved (the view may have, by a pixel, as the scene grew): step aside
        # from the last copy.
        last_text, last_mouse, last_spot, last_repeat = self._last_paste
        repeat = last_repeat + 1 if (last_text, last_mouse) == (text, mouse) else 0
        if repeat:
            spot = last_spot
        step = GRID * repeat
        added: list[str] = []

        def change(topology) -> None:  # type: ignore[no-untyped-def]
            added.extend(paste_fragment(topology, text, centre=(spot[0] + step, spot[1] + step)))

        if self.window.apply_edit("Paste", change):
            self._last_paste = (text, mouse, spot, repeat)
            self.window.scene.select_only(added)

    def duplicate_selection(self) -> None:
        nodes = self._removable_nodes(self._selected()[0])
        if not nodes:
            return
        text = copy_fragment(self.window.document.topology, nodes)
        added: list[str] = []

        def change(topology) -> None:  # type: ignore[no-untyped-def]
            added.extend(paste_fragment(topology, text, (48.0, 48.0)))

        if self.window.apply_edit("Duplicate", change):
            self.window.scene.select_only(added)

    def select_everything(self) -> None:
        for item in self.window.scene.nodes.values():
            item.setSelected(True)

    def rename_selection(self) -> None:
        nodes = self._selected()[0]
        if len(nodes) == 1:
            item = self.window.scene.nodes[nodes[0]]
            if item.renamable and not item.live:
                self.window.view.start_rename(item)

    def align_selection(self, how: str) -> None:
        nodes = self._selected()[0]
        if len(nodes) < 2:
            self.window.statusBar().showMessage("Select two or more nodes to align them.", 4000)
            return
        layout = self.window.document.topology.layout
        points = {nid: layout.get(nid, (0.0, 0.0)) for nid in nodes}
        xs = [p[0] for p in points.values()]
        ys = [p[1] for p in points.values()]
        target = {
            "left": min(xs),
            "right": max(xs),
            "center": (min(xs) + max(xs)) / 2,
            "top": min(ys),
            "bottom": max(ys),
            "middle": (min(ys) + max(ys)) / 2,
        }[how]
        vertical_line = how in ("left", "right", "center")
        moved = {nid: (target, y) if vertical_line else (x, target) for nid, (x, y) in points.items()}
        self.window.apply_edit(f"Align {how}", lambda topology: move_nodes(topology, moved))

    def auto_layout(self) -> None:
        if self.window.apply_edit("Automatic layout", layout_all):
            self.window.view.fit(readable=True)

    def toggle_snap(self, checked: bool) -> None:
        self.window.scene.snap_grid = GRID if checked else 0
        self.window.settings.setValue("snap_to_grid", bool(checked))

    def place_new_node(self, kind: str, scene_pos: QPointF) -> None:
        """A node from the palette: named uniquely, placed where it was dropped, then named in place."""
        from engine.edits import add_node, unique_name

        spec_kind, _, exchange_type = kind.partition(":")
        grid = self.window.scene.snap_grid
        x, y = scene_pos.x(), scene_pos.y()
        if grid:
            x, y = round(x / grid) * grid, round(y / grid) * grid
        vhost = self._vhost_for_new_nodes()
        base = exchange_type if spec_kind == "exchange" else spec_kind
        name = unique_name(self.window.document.topology, spec_kind, vhost, base)
        new_id = node_id(spec_kind, vhost, name)
        created: list[str] = []

        def change(topology) -> None:  # type: ignore[no-untyped-def]
            created.append(
                add_node(
                    topology, spec_kind, name, vhost=vhost, position=(x, y), exchange_type=exchange_type or "direct"
                )
            )

        label = f"Add {exchange_type + ' ' if exchange_type else ''}{spec_kind}"
        if self.window.apply_edit(label, change, merge_key=f"add:{new_id}"):
            self.window.scene.select_only(created)
            item = self.window.scene.nodes.get(created[0])
            if item is not None:
                self.window.view.start_rename(item)

    def _vhost_for_new_nodes(self) -> str:
        """The vhost of the selected node, else of the topology's nodes, else '/'."""
        scene = self.window.scene
        selected = scene.selected_node_ids()
        if selected:
            return split_node_id(selected[0])[1]
        ids = self.window.document.topology.node_ids()
        return split_node_id(ids[0])[1] if ids else "/"
