"""Injected time: a virtual clock made of a heap of timed events.

The broker and the simulated clients never read the wall clock. A
:class:`VirtualClock` jumps from one event to the next, so a simulation runs as
fast as the CPU allows; :class:`engine.sim.PacedRunner` advances the same clock in
step with wall time for the GUI.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any


class Timer:
    """A scheduled callback; :meth:`cancel` keeps it from running."""

    __slots__ = ("when", "callback", "args", "cancelled")

    def __init__(self, when: float, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class VirtualClock:
    """Simulated time in seconds, advanced only by running its events."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = 0

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> Timer:
        if when < self.now:
            when = self.now
        timer = Timer(when, callback, args)
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, timer))
        return timer

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        when = self.now + delay if delay > 0 else self.now
        timer = Timer(when, callback, args)
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, timer))
        return timer

    def next_time(self) -> float | None:
        """When the next live event is due, or None when nothing is scheduled."""
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pending(self) -> int:
        return sum(1 for _, _, timer in self._heap if not timer.cancelled)

    def run_until(self, until: float, max_events: int | None = None) -> int:
        """Run every event due at or before ``until`` and move ``now`` there.

        With ``max_events`` the run may stop early; ``now`` then stays at the
        last event run, so calling again resumes exactly where it stopped.
        Returns the number of events run.
        """
        heap = self._heap
        pop = heapq.heappop
        ran = 0
        while heap and heap[0][0] <= until:
            if max_events is not None and ran >= max_events:
                return ran
            when, _, timer = pop(heap)
            if timer.cancelled:
                continue
            self.now = when
            timer.callback(*timer.args)
            ran += 1
        if until > self.now:
            self.now = until
        return ran

    def run_for(self, duration: float, max_events: int | None = None) -> int:
        return self.run_until(self.now + duration, max_events)

    def run_pending(self) -> int:
        """Run everything due now (zero-delay follow-ups included) without advancing."""
        return self.run_until(self.now)
