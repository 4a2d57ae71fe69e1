"""Per-frame animation: tokens for sampled flow events, edge widths and node status from counters.

Work per frame is bounded whatever the message rate: at most ``MAX_EVENTS``
events are read and ``MAX_TOKENS`` tokens drawn; beyond that, edge thickness
(driven by counters, not events) carries the picture.
"""

from __future__ import annotations

import math

from engine.metrics import CounterHistory, FlowLog
from engine.sim import Simulation

from .details import C, Q, X
from .edges import EdgeItem, FateMark, Token
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
    """Turns the engine's flow events into tokens, fate marks and pulses, a bounded amount per frame.

    Every message gets a token on every edge it travels while the edge carries at most
    ``TOKEN_RATE`` messages a (wall) second; a busier edge pulses instead, its thickness
    following the rate. At most ``MAX_EVENTS`` events are read a frame (the engine's
    ring holds no more) and ``MAX_TOKENS`` tokens drawn.
    """

    MAX_EVENTS = 8192
    MAX_TOKENS = 2500
    TOKEN_RATE = 150.0  # wall msg/s on one edge above which it pulses
    CALM_RATE = 100.0  # ... and below which it shows tokens again
    MARK_SECONDS = 1.1
    MARK_MERGE = 0.35  # fates at a node within this long show as one mark with a count

    def __init__(self, scene: TopologyScene) -> None:
        self.scene = scene
        self.last_seq = 0
        self.clock = 0.0  # display time: runs only while the simulation does (or a step plays out)
        self.hold_until = 0.0
        self.travel = 0.55
        self.speed = 1.0
        self.tokens_started = 0
        self.tokens_skipped = 0
        self.marks_started = 0
        self._arrivals: dict[tuple[int, str], float] = {}
        self._depth_scales: dict[str, int] = {}
        self._fresh_marks: dict[tuple[str, str], FateMark] = {}
        self.key_colors = KeyColors()

    def reset(self, flow: FlowLog | None = None) -> None:
        self.last_seq = flow.count if flow is not None else 0
        layer = self.scene.tokens
        layer.tokens.clear()
        layer.marks.clear()
        layer.pulsing.clear()
        layer.update()
        self._arrivals.clear()
        self._depth_scales.clear()
        self._fresh_marks.clear()
        self.key_colors = KeyColors()
        self.tokens_started = 0
        self.tokens_skipped = 0
        self.marks_started = 0

    def set_speed(self, speed: float) -> None:
        self.speed = speed
        if math.isinf(speed):
            self.travel = 0.3
        else:
            self.travel = min(max(0.55 / math.sqrt(speed), 0.3), 2.0)

    # -- tokens ------------------------------------------------------------------------------

    def hold_for_step(self) -> None:
        """While paused after a step, let its tokens finish their trip."""
        self.hold_until = self.clock + self.travel * 4

    def hold_for_message(self, msg_id: int) -> None:
        """While paused, play a message's tokens out to the end of its last hop."""
        layer = self.scene.tokens
        ends = [t.start + t.duration for t in layer.tokens if t.msg_id == msg_id]
        ends += [at for (mid, _), at in self._arrivals.items() if mid == msg_id]
        self.hold_until = max(self.hold_until, max(ends, default=self.clock) + 0.3)

    def advance(self, flow: FlowLog, elapsed: float, running: bool) -> None:
        """Move the display clock by ``elapsed`` wall seconds and draw what happened since last frame."""
        if running or self.clock < self.hold_until:
            self.clock += elapsed
        now = self.clock
        layer = self.scene.tokens
        layer.tokens = [t for t in layer.tokens if t.start + t.duration > now]
        layer.marks = [m for m in layer.marks if m.start + m.duration > now]
        events = flow.raw_since(self.last_seq, self.MAX_EVENTS)
        self.tokens_skipped += max(flow.count - self.last_seq - len(events), 0)
        self.last_seq = flow.count
        self._pick_pulsing_edges()
        for event in events:
            self._show(event, now)
        if len(self._arrivals) > 4 * self.MAX_TOKENS:
            self._arrivals = {k: t for k, t in self._arrivals.items() if t > now}
        if len(self._fresh_marks) > 256:
            self._fresh_marks = {k: m for k, m in self._fresh_marks.items() if m.start > now - self.MARK_MERGE}
        layer.now = now
        layer.update()

    def _pick_pulsing_edges(self) -> None:
        speed = 1e9 if math.isinf(self.speed) else self.speed
        pulsing = []
        for edge in self.scene.edges:
            wall_rate = edge.rate * speed
            if wall_rate > self.TOKEN_RATE or (edge.pulsing and wall_rate > self.CALM_RATE):
                edge.pulsing = True
                pulsing.append(edge)
            else:
                edge.pulsing = False
        self.scene.tokens.pulsing = pulsing

    def _show(self, event: tuple, now: float) -> None:  # type: ignore[type-arg]
        _, _, kind, source, target, key, msg_id, detail = event
        edge_for = self.scene.edge_for
        if kind in ("published", "routed", "delivered", "dead_lettered"):
            edge = edge_for.get((source, target))
            if edge is not None:
                self._token(edge, msg_id, key, now, ring=kind == "dead_lettered")
        elif kind == "nacked":
            edge = edge_for.get((target, source))  # back along the consumes edge
            if detail == "discard":
                self._mark(target, "rejected", msg_id, now, source)
            elif edge is not None:
                self._token(edge, msg_id, key, now, backwards=True, ring=True)
        elif kind == "returned":
            edge = edge_for.get((target, source))  # back along the publishes edge
            if edge is not None:
                self._token(edge, msg_id, key, now, backwards=True, ring=True)
            self._mark(target, "returned", msg_id, now, source)
        elif kind == "unroutable":
            self._mark(source, "unroutable", msg_id, now, source)
        elif kind == "expired":
            self._mark(source, "expired", msg_id, now, source)
        elif kind == "dropped":
            self._mark(source, "lost" if detail == "broker restart" else "dropped", msg_id, now, source)

    def _token(
        self, edge: EdgeItem, msg_id: int, key: str, now: float, backwards: bool = False, ring: bool = False
    ) -> None:
        if edge.pulsing:
            return
        tokens = self.scene.tokens.tokens
        if len(tokens) >= self.MAX_TOKENS:
            self.tokens_skipped += 1
            return
        travel = self.travel
        origin = edge.target.node_id if backwards else edge.source.node_id
        start = max(now, self._arrivals.get((msg_id, origin), now))
        if start - now > 3 * travel:
            # The message's earlier hops are still queued for display; drawing this one
            # would trail far behind the engine. The edge's width shows it.
            self.tokens_skipped += 1
            return
        tokens.append(Token(edge, start, travel, self.key_colors(key), msg_id, backwards, ring))
        destination = edge.source.node_id if backwards else edge.target.node_id
        self._arrivals[(msg_id, destination)] = start + travel
        self.tokens_started += 1

    def _mark(self, node_id: str | None, fate: str, msg_id: int, now: float, arrived_at: str | None) -> None:
        item = self.scene.nodes.get(node_id or "")
        if item is None:
            return
        start = max(now, self._arrivals.get((msg_id, arrived_at or ""), now))
        fresh = self._fresh_marks.get((item.node_id, fate))
        if fresh is not None and abs(fresh.start - start) < self.MARK_MERGE:
            fresh.count += 1
            return
        mark = FateMark(item, fate, start, self.MARK_SECONDS)
        self.scene.tokens.marks.append(mark)
        self._fresh_marks[(item.node_id, fate)] = mark
        self.marks_started += 1

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
                producer = sim.producers.get(nid)
                if producer is not None and producer.halted:
                    item.set_status(f"stopped · {values[0]:,} sent")
                else:
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
                limit = sim.queue_limit(nid)
                scale = depth_scale(depth, limit, self._depth_scales.get(nid, 0))
                self._depth_scales[nid] = scale
                item.set_depth(depth, scale)
            elif kind == "consumer":
                assert isinstance(item, ConsumerItem)
                unacked = values[C["unacked"]]
                consumer = sim.consumers.get(nid)
                busy = consumer.busy if consumer is not None else unacked > 0
                item.set_busy(busy)
                if consumer is not None and consumer.killed:
                    item.set_status("killed · its messages went back")
                    continue
                notes = []
                if consumer is not None and consumer.slowdown != 1.0:
                    notes.append(f"{consumer.slowdown:g}× slower")
                if consumer is not None and consumer.fault_failure is not None and consumer.fault_failure[0]:
                    notes.append(f"fails {consumer.fault_failure[0]:.0%}")
                if notes:
                    # A fault shows in place of the rate (two in place of the unacked count too):
                    # the node has room for one short line.
                    item.set_status(" · ".join(notes if len(notes) > 1 else [*notes, f"unacked {unacked:,}"]))
                else:
                    item.set_status(f"{_rate_text(rates[C['processed']])} · unacked {unacked:,}")
        for edge in scene.edges:
            if edge.rate_key is None:
                continue
            nid, index = edge.rate_key
            rates = history.rates(nid, 2.0)
            edge.set_rate(rates[index] if rates else 0.0)
