"""Run controls beyond run and pause: step one event, follow one message to its end, the seed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QSpinBox

from engine.inspection import Tracer
from engine.metrics import FlowEvent
from engine.sim import Follow

if TYPE_CHECKING:
    from .main_window import MainWindow


class RunActions(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.following: Follow | None = None
        self._finishing = False  # the engine is done with the followed message; its tokens are not yet
        make = window.make_action
        self.step = make("&Step", self.step_event, "F7", "Pause and run until the next thing happens to a message")
        self.follow = make(
            "&Follow a Message",
            self.follow_message,
            "F8",
            "Run until the next message is published, follow it to its end, and show its journey",
        )
        self.seed_box = QSpinBox()
        self.seed_box.setRange(0, 999_999)
        self.seed_box.setToolTip("The random seed: the same seed gives the same run (Reset to start over with it)")
        self.seed_box.valueChanged.connect(self._seed_changed)

    def _seed_changed(self, seed: int) -> None:
        controller = self.window.controller
        if controller.seed != seed:
            controller.seed = seed
            self.window.reset_simulation()

    def step_event(self) -> None:
        self.following = None
        self._finishing = False
        events = self.window.controller.step()
        self.window.animator.hold_for_step()
        self.window.statusBar().showMessage(self.describe(events), 15000)

    def describe(self, events: list[FlowEvent]) -> str:
        sim = self.window.controller.sim
        if not events or sim is None:
            return "Nothing happened to any message in the next minute of simulated time."
        tracer = Tracer(sim.broker)
        texts = [f"message #{event.msg_id}: {tracer.describe(event)}" for event in events[:4]]
        more = f" (and {len(events) - 4} more)" if len(events) > 4 else ""
        return f"t = {events[0].time:.3f} s: " + "; ".join(texts) + more

    def follow_message(self) -> None:
        self.following = self.window.controller.follow_next()
        self._finishing = False
        self.window.statusBar().showMessage("Following the next message published…")

    def on_frame(self) -> None:
        """Once a frame: show the followed message, and stop when its journey is over."""
        follow = self.following
        layer = self.window.scene.tokens
        if follow is None:
            layer.followed = None
            return
        if not follow.started:
            return
        layer.followed = follow.msg_id
        assert follow.msg_id is not None
        if self._finishing:
            # Paused: the display plays the followed message's last hops out, then lets go of it.
            if self.window.animator.clock >= self.window.animator.hold_until:
                self.following = None
                self._finishing = False
            return
        if follow.done:
            self.window.controller.pause()
            self.window.animator.hold_for_message(follow.msg_id)
            self._finishing = True
            self.window.show_message_trace(follow.msg_id)
            self.window.statusBar().showMessage(
                f"Message #{follow.msg_id} has met its end everywhere it went: its journey is in the Messages panel.",
                15000,
            )
        elif not self.window.statusBar().currentMessage():
            self.window.statusBar().showMessage(f"Following message #{follow.msg_id}…")
