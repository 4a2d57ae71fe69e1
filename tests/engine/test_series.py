"""The numbers behind the plots: rates, levels, latency percentiles, windows and CSV."""

from __future__ import annotations

import csv
import io
import math
import random

import pytest

from engine.metrics import CounterHistory, LatencyRecorder
from engine.model import Binding, Consumer, Exchange, Producer, Queue, Topology
from engine.series import kind_of, series, to_csv, value_at
from engine.sim import TOTALS_ID, Simulation


def shop(**consumer) -> Topology:  # type: ignore[no-untyped-def]
    options = {"work_ms": 20, "prefetch": 1}
    options.update(consumer)
    return Topology(
        exchanges=[Exchange("orders", type="direct")],
        queues=[Queue("work")],
        bindings=[Binding("orders", "work", routing_key="job")],
        producers=[Producer("shop", "orders", routing_key="job", rate=20)],
        consumers=[Consumer("worker", "work", **options)],
    )


def running(topology: Topology, seconds: float, seed: int = 0) -> Simulation:
    sim = Simulation(topology, seed=seed)
    sim.broker.latency.enabled = True
    sim.run_for(seconds)
    return sim


def settled(values: list[float]) -> list[float]:
    return [v for v in values if not math.isnan(v)]


def test_latency_percentiles_come_within_the_bucket_resolution() -> None:
    recorder = LatencyRecorder(window=1)
    rng = random.Random(3)
    latencies = sorted(rng.uniform(0.010, 0.110) for _ in range(10_000))
    for seconds in latencies:
        recorder.record(seconds, "consumer:/:c", "queue:/:q")
    summary = recorder.roll()
    count, p50, p99 = summary["consumer:/:c"]
    assert count == 10_000
    assert p50 == pytest.approx(latencies[4999], rel=LatencyRecorder.GROWTH - 1)
    assert p99 == pytest.approx(latencies[9899], rel=LatencyRecorder.GROWTH - 1)
    assert summary[LatencyRecorder.TOTAL][0] == 10_000
    # A new interval with nothing settled: the window (one interval) is empty.
    assert recorder.roll() == {}


def test_rates_levels_and_latency_of_a_queue_and_its_consumer() -> None:
    sim = running(shop(), 30)
    queue = series(sim.history, "queue:/:work", window=None)
    publish = settled(queue.rates["enqueue"])[8:]
    assert sum(publish) / len(publish) == pytest.approx(20, rel=0.05)
    assert max(settled(queue.rates["nack"])) == 0
    # One message at a time, 20 ms of work each, arriving every 50 ms: nothing waits.
    assert max(settled(queue.levels["ready"])) <= 1
    p50 = settled(queue.latency["latency p50"])
    assert p50 and all(18 <= v <= 24 for v in p50)
    consumer = series(sim.history, "consumer:/:worker", window=None)
    assert settled(consumer.latency["latency p99"]) == pytest.approx(settled(queue.latency["latency p99"]), rel=0.01)


def test_a_slow_consumer_shows_as_growing_depth_and_latency() -> None:
    sim = running(shop(work_ms=80), 30)
    totals = series(sim.history, TOTALS_ID, window=None)
    ready = settled(totals.levels["ready"])
    assert ready[-1] > 100  # 20 in, 12.5 out a second
    p50 = settled(totals.latency["latency p50"])
    assert p50[-1] > 10 * p50[0]
    ack = settled(totals.rates["ack"])[8:]
    assert sum(ack) / len(ack) == pytest.approx(12.5, rel=0.05)


def test_nacks_and_redeliveries_are_counted_for_queue_consumer_and_totals() -> None:
    sim = running(shop(failure_rate=0.5, on_failure="requeue"), 20, seed=4)
    report = {q["name"]: q for q in sim.report()["queues"]}
    assert report["work"]["nacked"] > 0
    totals = series(sim.history, TOTALS_ID, window=None)
    consumer = series(sim.history, "consumer:/:worker", window=None)
    assert sum(settled(totals.rates["nack"])) > 0
    assert sum(settled(totals.rates["redeliver"])) > 0
    assert sum(settled(consumer.rates["nack"])) > 0
    final = sim.history.samples[-1].counters
    assert final["consumer:/:worker"][-2] == final["queue:/:work"][-1]  # nacked, both sides


def test_windows_pick_the_last_minute_five_minutes_or_the_whole_run_with_bounded_memory() -> None:
    sim = running(shop(), 3600)
    history = sim.history
    assert len(history.samples) <= 1201
    assert len(history.coarse) <= 720
    minute = history.window(60)
    assert minute[-1].time - minute[0].time == pytest.approx(60, abs=0.3)
    five = history.window(300)
    assert five[-1].time - five[0].time == pytest.approx(300, abs=0.3)
    whole = history.window(None)
    assert whole[0].time == 0
    assert whole[-1].time == history.samples[-1].time
    assert len(whole) <= 720 + 64
    times = [s.time for s in whole]
    assert times == sorted(times)
    # Rates over thinned samples are still true averages.
    rates = settled(series(history, "queue:/:work", None).rates["enqueue"])[2:]
    assert sum(rates) / len(rates) == pytest.approx(20, rel=0.02)


def test_a_short_run_shows_whole_run_at_full_resolution() -> None:
    sim = running(shop(), 10)
    assert len(sim.history.window(None)) == len(sim.history.samples)
    assert sim.history.window(60) == list(sim.history.samples)


def test_a_node_added_later_has_a_gap_before_it_existed() -> None:
    history = CounterHistory(lambda: {})
    readings = [{}, {}, {"queue:/:q": (0,) * 11}, {"queue:/:q": (5,) + (0,) * 10}]
    for time, reading in enumerate(readings):
        history._read = lambda r=reading: r  # type: ignore[misc]
        history.sample(float(time))
    result = series(history, "queue:/:q", None)
    assert math.isnan(result.rates["enqueue"][0]) and math.isnan(result.levels["ready"][1])
    assert result.rates["enqueue"][3] == 5.0


def test_csv_has_a_header_with_units_and_one_row_per_sample() -> None:
    sim = running(shop(), 5)
    result = series(sim.history, TOTALS_ID, None)
    rows = list(csv.reader(io.StringIO(to_csv(result))))
    assert rows[0][0] == "time (s)"
    assert "publish (msg/s)" in rows[0] and "ready (messages)" in rows[0] and "latency p99 (ms)" in rows[0]
    assert len(rows) == len(result.times) + 1
    assert float(rows[-1][0]) == pytest.approx(result.times[-1])
    assert all(len(row) == len(rows[0]) for row in rows)


def test_value_under_the_mouse_is_the_nearest_sample() -> None:
    sim = running(shop(), 5)
    result = series(sim.history, "producer:/:shop", None)
    time, values = value_at(result, 2.6)
    assert time == pytest.approx(2.5)
    assert set(values) == {"publish", "return"}
    assert kind_of(TOTALS_ID) == "totals" and kind_of("binding:/:x") == "binding"
