"""Counting and sampling: a bounded ring of flow events and a history of counters.

The engine counts; readers (the GUI timer, the headless CLI) sample. Nothing
here grows with the number of messages.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from .message import Message

FLOW_KINDS = (
    "published",  # producer -> exchange
    "routed",  # exchange -> binding (or queue, for the default exchange; or alternate exchange)
    "unroutable",  # at the exchange: no route, dropped
    "returned",  # at the exchange: no route, mandatory: back to the publisher (detail: reply)
    "delivered",  # queue -> consumer
    "acked",  # consumer -> queue
    "nacked",  # consumer -> queue (detail: "requeue" or "discard")
    "requeued",  # back in the queue, marked redelivered
    "expired",  # at the queue: TTL
    "dropped",  # at the queue: length limit (detail: the overflow rule) or delivery limit
    "dead_lettered",  # queue -> dead-letter exchange (detail: the reason)
)


class FlowEvent(NamedTuple):
    """One decision about one message: ``kind`` happened from ``source`` to ``target``."""

    seq: int
    time: float
    kind: str
    source: str | None
    target: str | None
    routing_key: str
    msg_id: int
    detail: str = ""


class MessageTraces:
    """The flow events of recent messages, chained by message id: their traces.

    All copies of a publish share its id, so a message's trace holds every queue it
    reached and every fate it met, dead-lettering included. The last ``capacity``
    events are kept in a ring, each pointing back to the previous event of the same
    message; a message whose first events have left the ring has no trace any more.
    Plain tuples in a ring cost the garbage collector nothing, however busy the run.
    Off until a reader turns it on (``enabled``).
    """

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self.enabled = False
        self._ring: list[tuple[Any, ...] | None] = [None] * capacity
        self._count = 0
        self._last: dict[int, int] = {}  # message id -> ring index of its latest event

    def record(self, entry: tuple[Any, ...]) -> None:
        msg_id = entry[6]
        index = self._count
        last = self._last
        self._ring[index % self.capacity] = (*entry, last.get(msg_id, -1))
        last[msg_id] = index
        self._count = index + 1
        if self._count % self.capacity == 0:
            oldest = self._count - self.capacity
            self._last = {m: i for m, i in last.items() if i >= oldest}

    def hops(self, msg_id: int) -> list[FlowEvent] | None:
        """The message's events in the order they happened; None when it is not (or no longer) kept whole."""
        index = self._last.get(msg_id)
        oldest = self._count - self.capacity
        if index is None or index < oldest:
            return None
        found = []
        ring = self._ring
        while index >= 0:
            if index < oldest:
                return None  # its first events are gone
            entry = ring[index % self.capacity]
            assert entry is not None
            found.append(FlowEvent(*entry[:8]))
            index = entry[8]
        found.reverse()
        return found

    def clear(self) -> None:
        self._ring = [None] * self.capacity
        self._count = 0
        self._last = {}


class FlowLog:
    """The most recent flow events in a fixed-size ring.

    Recording is off until a reader turns it on (``enabled``); readers ask for
    what came after the sequence number they last saw, and get at most the
    ring's capacity. With ``traces`` enabled, each event is also kept in its
    message's trace.
    """

    def __init__(self, capacity: int = 8192) -> None:
        self.capacity = capacity
        self.enabled = False
        self.count = 0
        self._ring: list[tuple[Any, ...] | None] = [None] * capacity
        self.traces = MessageTraces()

    def add(
        self, time: float, kind: str, source: str | None, target: str | None, message: Message, detail: str = ""
    ) -> None:
        count = self.count
        entry = (count, time, kind, source, target, message.routing_key, message.msg_id, detail)
        self._ring[count % self.capacity] = entry
        self.count = count + 1
        if self.traces.enabled:
            self.traces.record(entry)

    def record(
        self, time: float, kind: str, source: str | None, target: str | None, routing_key: str, msg_id: int
    ) -> None:
        """An event seen from outside the engine (a real broker's client), by its message's key and number."""
        count = self.count
        self._ring[count % self.capacity] = (count, time, kind, source, target, routing_key, msg_id, "")
        self.count = count + 1

    def since(self, seq: int, limit: int | None = None) -> list[FlowEvent]:
        """Events numbered ``seq`` and later, oldest first; at most ``limit`` of the newest."""
        start = max(seq, self.count - self.capacity)
        if limit is not None:
            start = max(start, self.count - limit)
        ring = self._ring
        capacity = self.capacity
        return [FlowEvent(*ring[i % capacity]) for i in range(start, self.count)]  # type: ignore[misc]

    def raw_since(self, seq: int, limit: int | None = None) -> list[tuple[Any, ...]]:
        """As ``since``, as plain tuples (seq, time, kind, source, target, routing_key, msg_id, detail)."""
        start = max(seq, self.count - self.capacity)
        if limit is not None:
            start = max(start, self.count - limit)
        ring = self._ring
        capacity = self.capacity
        return [ring[i % capacity] for i in range(start, self.count)]  # type: ignore[misc]

    def clear(self) -> None:
        self.count = 0
        self._ring = [None] * self.capacity
        self.traces.clear()


class LatencyRecorder:
    """End-to-end latency, from publish to ack, per node: log-scale histograms per sample interval.

    The broker records each settled message against its consumer, its queue and
    ``"*"`` (the whole broker); at each sample the histograms of the last
    ``window`` intervals give each node's count, median and 99th percentile.
    Off until a reader turns it on (``enabled``).
    """

    FLOOR = 1e-4  # seconds: anything faster counts as this
    GROWTH = 1.04  # each bucket 4 % wider than the one before: percentiles within 4 %
    TOTAL = "*"

    def __init__(self, window: int = 4) -> None:
        self.enabled = False
        self.current: dict[str, dict[int, int]] = {}
        self.recent: deque[dict[str, dict[int, int]]] = deque(maxlen=max(window, 1))
        self._log_growth = math.log(self.GROWTH)

    def record(self, seconds: float, consumer: str | None, queue: str) -> None:
        bucket = int(math.log(seconds / self.FLOOR) / self._log_growth) if seconds > self.FLOOR else 0
        current = self.current
        for node in (consumer, queue, self.TOTAL):
            if node is None:
                continue
            histogram = current.get(node)
            if histogram is None:
                histogram = current[node] = {}
            histogram[bucket] = histogram.get(bucket, 0) + 1

    def roll(self) -> dict[str, tuple[int, float, float]]:
        """Close the interval: ``{node: (count, median, p99)}`` over the window, in seconds."""
        self.recent.append(self.current)
        self.current = {}
        merged: dict[str, dict[int, int]] = {}
        for interval in self.recent:
            for node, histogram in interval.items():
                into = merged.get(node)
                if into is None:
                    merged[node] = dict(histogram)
                    continue
                for bucket, count in histogram.items():
                    into[bucket] = into.get(bucket, 0) + count
        return {node: self._summary(histogram) for node, histogram in merged.items()}

    def clear(self) -> None:
        self.current = {}
        self.recent.clear()

    def summary(self, node: str) -> tuple[int, float, float] | None:
        """Count, median and p99 of what was recorded for ``node`` since the last roll."""
        histogram = self.current.get(node)
        return self._summary(histogram) if histogram else None

    def _summary(self, histogram: dict[int, int]) -> tuple[int, float, float]:
        total = sum(histogram.values())
        ranks = (math.ceil(total * 0.5), math.ceil(total * 0.99))
        found: list[float] = []
        seen = 0
        for bucket in sorted(histogram):
            seen += histogram[bucket]
            while len(found) < 2 and seen >= ranks[len(found)]:
                found.append(self.bucket_value(bucket))
        return total, found[0], found[1]

    def bucket_value(self, bucket: int) -> float:
        """The middle of a bucket, in seconds."""
        if bucket == 0:
            return self.FLOOR
        return self.FLOOR * self.GROWTH ** (bucket + 0.5)


class Sample(NamedTuple):
    time: float
    counters: dict[str, tuple[int, ...]]
    latency: dict[str, tuple[int, float, float]] = {}


class CounterHistory:
    """Counters of every node sampled at a fixed virtual interval, for rates and plots.

    ``read`` returns ``{node_id: (counter, ...)}``. The last ``keep`` samples are
    kept as taken (five minutes at the simulation's 0.25 s); a second, coarser
    series keeps the whole run in at most ``coarse_keep`` samples, thinning
    itself (every other sample, twice the interval) when it fills. Memory stays
    flat however long the run.
    """

    def __init__(
        self,
        read: Callable[[], dict[str, tuple[int, ...]]],
        keep: int = 1200,
        coarse_keep: int = 720,
        coarse_every: int = 4,
    ) -> None:
        self._read = read
        self.samples: deque[Sample] = deque(maxlen=keep)
        self.coarse: list[Sample] = []
        self.coarse_keep = max(coarse_keep, 4)
        self._coarse_every = max(coarse_every, 1)
        self._since_coarse = 0

    def sample(self, now: float, latency: dict[str, tuple[int, float, float]] | None = None) -> None:
        sample = Sample(now, self._read(), latency or {})
        self.samples.append(sample)
        self._since_coarse += 1
        if self._since_coarse >= self._coarse_every or not self.coarse:
            self._since_coarse = 0
            self.coarse.append(sample)
            if len(self.coarse) >= self.coarse_keep:
                self.coarse = self.coarse[::2]
                self._coarse_every *= 2

    def window(self, seconds: float | None) -> list[Sample]:
        """The samples of the last ``seconds`` of the run (None: all of it), oldest first."""
        samples = self.samples
        if not samples:
            return []
        newest = samples[-1].time
        if seconds is not None and newest - samples[0].time >= seconds - 1e-9:
            start = newest - seconds
            found = []
            for sample in reversed(samples):
                if sample.time < start - 1e-9:
                    break
                found.append(sample)
            found.reverse()
            return found
        if not self.coarse or samples[0] is self.coarse[0]:
            return list(samples)  # the fine series still holds the whole run
        last = self.coarse[-1].time
        return [*self.coarse, *(s for s in samples if s.time > last)]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __len__(self) -> int:
        return len(self.samples)

    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def rates(self, node_id: str, window: float = 1.0) -> tuple[float, ...] | None:
        """Per-second rate of each counter of a node over the last ``window`` seconds."""
        if len(self.samples) < 2:
            return None
        newest = self.samples[-1]
        oldest = newest
        for sample in reversed(self.samples):
            oldest = sample
            if newest.time - sample.time >= window:
                break
        span = newest.time - oldest.time
        now_values = newest.counters.get(node_id)
        then_values = oldest.counters.get(node_id)
        if span <= 0 or now_values is None:
            return None
        if then_values is None:
            then_values = (0,) * len(now_values)
        # Never below 0: a node the broker made again (a restart, an undone delete) counts from 0.
        return tuple(max((a - b) / span, 0.0) for a, b in zip(now_values, then_values, strict=False))
