"""Time series of a node (or the whole topology) from the counter history: what the plots and CSV show.

Rates are per simulated second, each averaged over the ``smoothing`` seconds
before its sample; levels (ready, unacked) are as sampled; latency is the
median and 99th percentile, in milliseconds, of the messages settled in the
second before the sample. A gap (a node that did not exist yet, a second with
no settled message) is NaN.
"""

from __future__ import annotations

import bisect
import csv
import io
import math
from typing import NamedTuple

from .metrics import CounterHistory, LatencyRecorder
from .model import split_node_id
from .sim import COUNTERS, TOTALS_ID

# kind: ((series name, counter), ...); the counter is one of COUNTERS[kind].
RATES: dict[str, tuple[tuple[str, str], ...]] = {
    "totals": (
        ("publish", "published"),
        ("route", "routed"),
        ("deliver", "delivered"),
        ("ack", "acked"),
        ("nack", "nacked"),
        ("redeliver", "redelivered"),
        ("unroutable", "unroutable"),
        ("drop", "dropped"),
        ("expire", "expired"),
    ),
    "producer": (("publish", "published"), ("return", "returned")),
    "exchange": (("in", "received"), ("route", "routed"), ("alternate", "alternated"), ("unroutable", "unroutable")),
    "binding": (("route", "routed"),),
    "queue": (
        ("enqueue", "enqueued"),
        ("deliver", "delivered"),
        ("ack", "acked"),
        ("nack", "nacked"),
        ("redeliver", "redelivered"),
        ("drop", "dropped"),
        ("expire", "expired"),
        ("dead-letter", "dead_lettered"),
    ),
    "consumer": (("deliver", "delivered"), ("ack", "acked"), ("nack", "nacked"), ("redeliver", "redelivered")),
}
LEVELS: dict[str, tuple[tuple[str, str], ...]] = {
    "totals": (("ready", "ready"), ("unacked", "unacked")),
    "queue": (("ready", "depth"), ("unacked", "unacked")),
    "consumer": (("unacked", "unacked"), ("buffered", "buffered")),
}
LATENCY_KINDS = ("totals", "queue", "consumer")
LATENCY = ("latency p50", "latency p99")
NAN = math.nan


class Series(NamedTuple):
    times: list[float]
    rates: dict[str, list[float]]  # msg/s
    levels: dict[str, list[float]]  # messages
    latency: dict[str, list[float]]  # ms

    def columns(self) -> list[tuple[str, str, list[float]]]:
        """(name, unit, values) of every column, in display order."""
        return [
            *((name, "msg/s", values) for name, values in self.rates.items()),
            *((name, "messages", values) for name, values in self.levels.items()),
            *((name, "ms", values) for name, values in self.latency.items()),
        ]


def kind_of(node_id: str) -> str:
    return "totals" if node_id == TOTALS_ID else split_node_id(node_id)[0]


def series(history: CounterHistory, node_id: str, window: float | None, smoothing: float = 1.0) -> Series:
    """The series of ``node_id`` (``TOTALS_ID``: the whole topology) over the last ``window`` seconds."""
    kind = kind_of(node_id)
    samples = history.window(window)
    index = {name: i for i, name in enumerate(COUNTERS.get(kind, ()))}
    rate_names = RATES.get(kind, ())
    level_names = LEVELS.get(kind, ())
    times = [s.time for s in samples]
    values = [s.counters.get(node_id) for s in samples]
    rates: dict[str, list[float]] = {name: [] for name, _ in rate_names}
    levels: dict[str, list[float]] = {name: [] for name, _ in level_names}
    back = 0
    for i, now in enumerate(values):
        while back + 1 < i and times[i] - times[back + 1] >= smoothing - 1e-9:
            back += 1
        then = values[back] if back < i else None
        span = times[i] - times[back]
        for name, counter in rate_names:
            column = index[counter]
            if now is None or span <= 0:
                rates[name].append(NAN)
            else:
                before = then[column] if then is not None else 0
                rates[name].append(max(now[column] - before, 0) / span)
        for name, counter in level_names:
            levels[name].append(float(now[index[counter]]) if now is not None else NAN)
    latency: dict[str, list[float]] = {}
    if kind in LATENCY_KINDS:
        key = LatencyRecorder.TOTAL if kind == "totals" else node_id
        p50, p99 = [], []
        for sample in samples:
            summary = sample.latency.get(key)
            p50.append(summary[1] * 1000 if summary else NAN)
            p99.append(summary[2] * 1000 if summary else NAN)
        latency = {LATENCY[0]: p50, LATENCY[1]: p99}
    return Series(times, rates, levels, latency)


def value_at(series_: Series, time: float) -> tuple[float, dict[str, float]] | None:
    """The sample nearest ``time``: its time and every column's value (for the values under the mouse)."""
    times = series_.times
    if not times:
        return None
    after = bisect.bisect_left(times, time)
    nearest = min((i for i in (after - 1, after) if 0 <= i < len(times)), key=lambda i: abs(times[i] - time))
    return times[nearest], {name: values[nearest] for name, _, values in series_.columns()}


def to_csv(series_: Series, extra: list[tuple[str, str, list[float]]] | None = None) -> str:
    """One row per sample: the simulated time, then every column with its unit in the header
    (``extra`` columns, one value per sample, after the series' own)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = series_.columns() + list(extra or [])
    writer.writerow(["time (s)", *(f"{name} ({unit})" for name, unit, _ in columns)])
    for i, time in enumerate(series_.times):
        row = [f"{time:.3f}"]
        for _, _, values in columns:
            value = values[i]
            row.append("" if math.isnan(value) else f"{value:.6g}")
        writer.writerow(row)
    return out.getvalue()
