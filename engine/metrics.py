"""Counting and sampling: a bounded ring of flow events and a history of counters.

The engine counts; readers (the GUI timer, the headless CLI) sample. Nothing
here grows with the number of messages.
"""

from __future__ import annotations

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


class FlowLog:
    """The most recent flow events in a fixed-size ring.

    Recording is off until a reader turns it on (``enabled``); readers ask for
    what came after the sequence number they last saw, and get at most the
    ring's capacity.
    """

    def __init__(self, capacity: int = 8192) -> None:
        self.capacity = capacity
        self.enabled = False
        self.count = 0
        self._ring: list[tuple[Any, ...] | None] = [None] * capacity

    def add(
        self, time: float, kind: str, source: str | None, target: str | None, message: Message, detail: str = ""
    ) -> None:
        count = self.count
        self._ring[count % self.capacity] = (
            count,
            time,
            kind,
            source,
            target,
            message.routing_key,
            message.msg_id,
            detail,
        )
        self.count = count + 1

    def since(self, seq: int, limit: int | None = None) -> list[FlowEvent]:
        """Events numbered ``seq`` and later, oldest first; at most ``limit`` of the newest."""
        start = max(seq, self.count - self.capacity)
        if limit is not None:
            start = max(start, self.count - limit)
        ring = self._ring
        capacity = self.capacity
        return [FlowEvent(*ring[i % capacity]) for i in range(start, self.count)]  # type: ignore[misc]

    def clear(self) -> None:
        self.count = 0
        self._ring = [None] * self.capacity


class Sample(NamedTuple):
    time: float
    counters: dict[str, tuple[int, ...]]


class CounterHistory:
    """Counters of every node sampled at a fixed virtual interval, for rates and plots.

    ``read`` returns ``{node_id: (counter, ...)}``; the history keeps the last
    ``keep`` samples.
    """

    def __init__(self, read: Callable[[], dict[str, tuple[int, ...]]], keep: int = 7200) -> None:
        self._read = read
        self.samples: deque[Sample] = deque(maxlen=keep)

    def sample(self, now: float) -> None:
        self.samples.append(Sample(now, self._read()))

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __len__(self) -> int:
        return len(self.samples)

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
        return tuple((a - b) / span for a, b in zip(now_values, then_values, strict=False))
