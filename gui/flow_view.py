"""Per-frame animation: tokens for sampled flow events, edge widths and node status from counters.

Work per frame is bounded whatever the message rate: at most ``MAX_EVENTS``
events are read and ``MAX_TOKENS`` tokens drawn; beyond that, edge thickness
(driven by counters, not events) carries the picture.
"""

from __future__ import annotations

import math

from engine.metrics import CounterHistory, FlowLog
from engine.model import split_node_id
from engine.sim import Simulation

from .details import C, Q, X
from .edges import Token
from .items import ConsumerItem, QueueItem
from .scene import TopologyScene
from .style import KeyColors


def _rate_text(rate: float) -> str:
    if rate >= 100:
        return f"{rate:,.0f} msg/s"
    return f"{rate:.1f} msg/s"


def depth_scale(depth: int, limit: int | None, previous: int) -> int:
    """The full-bar value: the queue's length limit, or a round number above the depth seen."""
    if limit:
        return limit
    scale = max(previous, 20)
    while depth > scale:
        scale *= 5 if str(scale).startswith("2") else 2
    return scale


class FlowAnimator:
    MAX_EVENTS = 600
    MAX_TOKENS = 400

    def __init__(self, scene: TopologyScene) -> None:
        self.scene = scene
        self.last_seq = 0
        self.clock = 0.0  # display time: runs only while the simulation does
        self.travel = 0.55
        self.tokens_started = 0
        self.tokens_skipped = 0
        self._arrivals: dict[tuple[int, str], float] = {}
        self._depth_scales: dict[str, int] = {}
        self.key_colors = KeyColors()

    def reset(self, flow: FlowLog | None = None) -> None:
        self.last_seq = flow.count if flow is not None else 0
        self.scene.tokens.tokens.clear()
        self.scene.tokens.update()
        self._arrivals.clear()
        self._depth_scales.clear()
        self.key_colors = KeyColors()
        self.tokens_started = 0
        self.tokens_skipped = 0

    def set_speed(self, speed: float) -> None:
        if math.isinf(speed):
            self.travel = 0.3
        else:
            self.travel = min(max(0.55 / math.sqrt(speed), 0.3), 2.0)

    # -- tokens ------------------------------------------------------------------------------

    def advance(self, flow: FlowLog, elapsed: float, running: bool) -> None:
        """Move the display clock by ``elapsed`` wall seconds and start tokens for new events."""
        if running:
            self.clock += elapsed
        now = self.clock
        layer = self.scene.tokens
        layer.tokens = [t for t in layer.tokens if t.start + t.duration > now]
        events = flow.since(self.last_seq, self.MAX_EVENTS)
        skipped_by_ring = max(flow.count - self.last_seq - len(events), 0)
        self.tokens_skipped += skipped_by_ring
        self.last_seq = flow.count
        edge_for = self.scene.edge_for
        arrivals = self._arrivals
        tokens = layer.tokens
        travel = self.travel
        for event in events:
            edge = edge_for.get((event.source, event.target))  # type: ignore[arg-type]
            if edge is None:
                continue
            if len(tokens) >= self.MAX_TOKENS:
                self.tokens_skipped += 1
                continue
            start = max(now, arrivals.get((event.msg_id, edge.source.node_id), now))
            if start - now > 3 * travel:
                # The message's earlier hops are still queued for display; drawing this
                # one would trail far behind the engine. Let the edge width show it.
                self.tokens_skipped += 1
                continue
            tokens.append(Token(edge, start, travel, self.key_colors(event.routing_key)))
            arrivals[(event.msg_id, edge.target.node_id)] = start + travel
            self.tokens_started += 1
        if len(arrivals) > 4 * self.MAX_TOKENS:
            self._arrivals = {k: t for k, t in arrivals.items() if t > now}
        layer.now = now
        layer.update()

    # -- counters ------------------------------------------------------------------------------

    def show_counters(self, sim: Simulation, latest: dict[str, tuple[int, ...]]) -> None:
        """Node status lines and queue depth bars from the live counters; rates and edge widths from history."""
        history: CounterHistory = sim.history
        scene = self.scene
        for nid, item in scene.nodes.items():
            values = latest.get(nid)
            kind = item.kind
            if values is None:
                if kind == "consumer" and nid not in sim.consumers:
                    item.set_status("")
                continue
            rates = history.rates(nid, 2.0) or (0.0,) * len(values)
            if kind == "producer":
                item.set_status(f"{_rate_text(rates[0])} · {values[0]:,} sent")
            elif kind == "exchange":
                unroutable = values[X["unroutable"]]
                text = f"{_rate_text(rates[0])} in"
                if unroutable:
                    text += f" · {unroutable:,} unroutable"
                item.set_status(text)
            elif kind == "queue":
                assert isinstance(item, QueueItem)
                depth, unacked = values[Q["depth"]], values[Q["unacked"]]
                item.set_status(f"ready {depth:,} · unacked {unacked:,}")
                _, vhost, name = split_node_id(nid)
                queue = sim.broker.vhosts[vhost].queues.get(name)
                limit = queue.max_length if queue is not None else None
                scale = depth_scale(depth, limit, self._depth_scales.get(nid, 0))
                self._depth_scales[nid] = scale
                item.set_depth(depth, scale)
            elif kind == "consumer":
                assert isinstance(item, ConsumerItem)
                unacked = values[C["unacked"]]
                consumer = sim.consumers.get(nid)
                busy = consumer.busy if consumer is not None else unacked > 0
                item.set_busy(busy)
                item.set_status(f"{_rate_text(rates[C['processed']])} · unacked {unacked:,}")
        for edge in scene.edges:
            if edge.rate_key is None:
                continue
            nid, index = edge.rate_key
            rates = history.rates(nid, 2.0)
            edge.set_rate(rates[index] if rates else 0.0)
