"""Run the window on a 20-node topology at 10,000 msg/s offscreen and print what was measured, as JSON.

    python -m tests.bench.busy_gui [--minutes M] [--rate R]

A fresh interpreter, so nothing a test loaded before counts. The same window,
paused, is measured first: the frame intervals the timer gives with nothing to do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time

from engine.layout import complete_layout
from engine.model import Binding, Consumer, Exchange, Producer, Queue, Topology


def busy_topology(total_rate: float) -> Topology:
    """4 producers, 3 exchanges, 6 queues, 7 consumers: 20 nodes, every queue consumed (a steady state)."""
    share = total_rate / 4
    topology = Topology(
        exchanges=[
            Exchange("orders", type="topic"),
            Exchange("payments", type="direct"),
            Exchange("events", type="fanout"),
        ],
        queues=[Queue(n) for n in ("created", "all-orders", "eu-orders", "charges", "audit", "search")],
        bindings=[
            Binding("orders", "created", routing_key="order.created.*"),
            Binding("orders", "all-orders", routing_key="order.#"),
            Binding("orders", "eu-orders", routing_key="*.*.eu"),
            Binding("payments", "charges", routing_key="card"),
            Binding("payments", "charges", routing_key="wire"),
            Binding("events", "audit"),
            Binding("events", "search"),
        ],
        producers=[
            Producer("web", "orders", routing_key="order.{created|paid|shipped}.{eu|us}", rate=share),
            Producer(
                "mobile", "orders", routing_key="order.{created|paid}.{eu|us|apac}", rate=share, pattern="poisson"
            ),
            Producer("checkout", "payments", routing_key="{card|wire}", rate=share),
            Producer("tracker", "events", routing_key="page.view", rate=share),
        ],
        consumers=[
            Consumer("fulfil", "created", prefetch=200, work_ms=0),
            Consumer("warehouse", "all-orders", prefetch=200, work_ms=0),
            Consumer("eu-team", "eu-orders", prefetch=200, work_ms=0),
            Consumer("charger-1", "charges", prefetch=200, work_ms=0),
            Consumer("charger-2", "charges", prefetch=200, work_ms=0),
            Consumer("auditor", "audit", prefetch=200, work_ms=0),
            Consumer("indexer", "search", prefetch=200, work_ms=0, ack_mode="auto"),
        ],
    )
    complete_layout(topology)
    return topology


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * share), len(ordered) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=10_000.0)
    parser.add_argument("--frames-seconds", type=float, default=30.0)
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    import qasync
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from gui.app import collect_only_between_frames, settle_garbage_collector
    from gui.main_window import MainWindow

    app = QApplication(sys.argv[:1])
    collect_only_between_frames()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    settings = QSettings(os.path.join(os.environ.get("TMPDIR", "/tmp"), "qc-bench.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings, remember_recent_files=False)
    window.resize(1440, 900)
    window.show()
    topology = busy_topology(args.rate)
    topology.title = "benchmark"
    window.document.adopt(topology)
    settle_garbage_collector()
    result: dict[str, object] = {"nodes": len(topology.node_ids()), "rate": args.rate}

    async def measure() -> None:
        await asyncio.sleep(2.0)
        window.frame_intervals.clear()
        await asyncio.sleep(5.0)
        idle = list(window.frame_intervals)
        result["idle_median_ms"] = statistics.median(idle) * 1000
        result["idle_p99_ms"] = percentile(idle, 0.99) * 1000

        window.controller.run()
        await asyncio.sleep(5.0)  # queues, plots and the collector settle
        sim = window.controller.sim
        assert sim is not None
        window.frame_intervals.clear()
        published, wall = sim.broker.published_count, time.monotonic()
        await asyncio.sleep(args.frames_seconds)
        busy = list(window.frame_intervals)
        elapsed = time.monotonic() - wall
        result["frames"] = len(busy)
        result["busy_median_ms"] = statistics.median(busy) * 1000
        result["busy_p99_ms"] = percentile(busy, 0.99) * 1000
        result["published_per_wall_second"] = (sim.broker.published_count - published) / elapsed
        result["pulsing_edges"] = len(window.scene.tokens.pulsing)
        result["tokens_drawn"] = window.animator.tokens_started

        memory = []
        started = time.monotonic()
        end = started + args.minutes * 60
        while True:
            memory.append((round(time.monotonic() - started), round(rss_mb(), 1)))
            if time.monotonic() >= end:
                break
            await asyncio.sleep(min(30.0, max(end - time.monotonic(), 0.1)))
        result["rss_mb"] = memory
        result["simulated_seconds"] = sim.now
        result["accounting_problems"] = sim.accounting_problems()
        window.controller.pause()
        window.document.undo_stack.setClean()

    loop.run_until_complete(measure())
    print(json.dumps(result))
    window.close()


if __name__ == "__main__":
    main()
