"""Runs the open topology on the built-in engine, paced to wall time inside the Qt event loop."""

from __future__ import annotations

import math

from PySide6.QtCore import QObject, Signal

from engine.errors import AMQPError
from engine.metrics import FlowEvent
from engine.model import Topology
from engine.sim import Follow, PacedRunner, Simulation

SPEEDS = [0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 100.0, math.inf]


def speed_label(speed: float) -> str:
    return "max" if math.isinf(speed) else f"{speed:g}×"


class SimulationController(QObject):
    """Owns the Simulation and its PacedRunner; Run, Pause, Reset and speed act here."""

    state_changed = Signal()
    simulation_replaced = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.sim: Simulation | None = None
        self.runner: PacedRunner | None = None
        self.speed = 1.0
        self.seed = 0
        self._topology: Topology | None = None

    @property
    def running(self) -> bool:
        return self.runner is not None and self.runner.running

    @property
    def time(self) -> float:
        return self.sim.now if self.sim is not None else 0.0

    def load(self, topology: Topology) -> None:
        self.pause()
        self._topology = topology
        self.sim = Simulation(topology, seed=self.seed)
        self.sim.flow.enabled = True
        self.sim.flow.traces.enabled = True  # so a message can be followed and explained
        self.sim.broker.latency.enabled = True
        self.runner = PacedRunner(self.sim, speed=self.speed)
        self.simulation_replaced.emit()
        self.state_changed.emit()

    def sync(self, topology: Topology) -> str | None:
        """The document was edited: the running simulation follows at once.

        Should the engine refuse to follow an edit, the simulation starts afresh
        from the edited topology instead; the reason is returned.
        """
        self._topology = topology
        if self.sim is None:
            return None
        try:
            self.sim.sync(topology)
        except AMQPError as exc:
            was_running = self.running
            self.load(topology)
            if was_running:
                self.run()
            return f"the simulation restarted: {exc}"
        return None

    def run(self) -> None:
        if self.runner is not None and not self.running:
            self.runner.start()
            self.state_changed.emit()

    def pause(self) -> None:
        if self.runner is not None and self.running:
            self.runner.pause()
            self.state_changed.emit()

    def reset(self) -> None:
        was_running = self.running
        if self._topology is not None:
            self.load(self._topology)
            if was_running:
                self.run()

    def step(self) -> list[FlowEvent]:
        """Pause, then run the engine until one event moves a message; the flow events it made."""
        self.pause()
        if self.sim is None:
            return []
        events = self.sim.step()
        self.state_changed.emit()
        return events

    def follow_next(self) -> Follow | None:
        """Follow the next message published, running until it has ended everywhere."""
        if self.sim is None:
            return None
        follow = self.sim.follow_next()
        self.run()
        return follow

    def set_speed(self, speed: float) -> None:
        self.speed = speed
        if self.runner is not None:
            self.runner.set_speed(speed)
        self.state_changed.emit()
