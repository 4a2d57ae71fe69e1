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

# A scheduled event is the heap entry itself: [when, sequence, callback, args].
# Cancelling clears its callback; the entry is skipped when its time comes.
Timer = list


def cancel(timer: Timer | None) -> None:
    """Keep a scheduled callback from running (None is fine: nothing to cancel)."""
    if timer is not None:
        timer[2] = None


class VirtualClock:
    """Simulated time in seconds, advanced only by running its events."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self._heap: list[Timer] = []
        self._seq = 0

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> Timer:
        if when < self.now:
            when = self.now
        self._seq += 1
        timer = [when, self._seq, callback, args]
        heapq.heappush(self._heap, timer)
        return timer

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        self._seq += 1
        timer = [self.now + delay if delay > 0 else self.now, self._seq, callback, args]
        heapq.heappush(self._heap, timer)
        return timer

    def again(self, timer: Timer, delay: float) -> Timer:
        """Schedule a timer that has just run to run again ``delay`` later: the same entry, so
        a callback that cancels it later still can."""
        self._seq += 1
        timer[0] = self.now + delay if delay > 0 else self.now
        timer[1] = self._seq
        heapq.heappush(self._heap, timer)
        return timer

    def next_time(self) -> float | None:
        """When the next live event is due, or None when nothing is scheduled."""
        heap = self._heap
        while heap and heap[0][2] is None:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pending(self) -> int:
        return sum(1 for timer in self._heap if timer[2] is not None)

    def run_until(self, until: float, max_events: int | None = None) -> int:
        """Run every event due at or before ``until`` and move ``now`` there.

        With ``max_events`` the run may stop early; ``now`` then stays at the
        last event run, so calling again resumes exactly where it stopped.
        Returns the number of events run.
        """
        heap = self._heap
        pop = heapq.heappop
        limit = -1 if max_events is None else max_events
        ran = 0
        while heap and heap[0][0] <= until:
            if ran == limit:
                return ran
            when, _, callback, args = pop(heap)
            if callback is None:
                continue
            self.now = when
            callback(*args)
            ran += 1
        if until > self.now:
            self.now = until
        return ran

    def run_for(self, duration: float, max_events: int | None = None) -> int:
        return self.run_until(self.now + duration, max_events)

    def run_pending(self) -> int:
        """Run everything due now (zero-delay follow-ups included) without advancing."""
        return self.run_until(self.now)
