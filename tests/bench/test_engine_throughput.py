"""End-to-end throughput: publish, route through a topic exchange to 10 queues, deliver to
10 consumers, ack; in virtual time. Reference: a bare asyncio.Queue producer-to-consumer loop,
measured in the same run. Target: at least 0.2x the reference."""

from __future__ import annotations

import asyncio

from engine.model import Binding, Consumer, Exchange, Producer, Queue, Topology
from engine.sim import Simulation

from .conftest import best_of, report, timed

RATE = 100_000  # messages a second of virtual time; far more than the engine can do in real time
SECONDS = 1.0


def topology(fan_out: bool) -> Topology:
    """One producer, a topic exchange, 10 queues each with a consumer that acks at once.

    One to one: each message matches one queue's binding; fan out: every queue's.
    """
    return Topology(
        exchanges=[Exchange("orders", type="topic")],
        queues=[Queue(f"q{i}") for i in range(10)],
        bindings=[Binding("orders", f"q{i}", routing_key="order.#" if fan_out else f"order.{i}.*") for i in range(10)],
        producers=[Producer("shop", "orders", routing_key="order.{0|1|2|3|4|5|6|7|8|9}.created", rate=RATE)],
        consumers=[Consumer(f"worker-{i}", f"q{i}", prefetch=100, work_ms=0) for i in range(10)],
    )


def engine_rates(fan_out: bool) -> tuple[float, float]:
    sim = Simulation(topology(fan_out))
    sim.start()
    elapsed = timed(lambda: sim.run_for(SECONDS))
    published = sim.broker.stats.published
    acked = sum(q.stats.acked for q in sim.broker.all_queues())
    assert sim.accounting_problems() == []
    return published / elapsed, acked / elapsed


def asyncio_queue_rate(count: int = 300_000) -> float:
    async def main() -> float:
        queue: asyncio.Queue[int] = asyncio.Queue()

        async def producer() -> None:
            for i in range(count):
                await queue.put(i)

        async def consumer() -> None:
            for _ in range(count):
                await queue.get()
                queue.task_done()

        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.gather(producer(), consumer())
        return count / (loop.time() - started)

    return asyncio.run(main())


def test_end_to_end_throughput() -> None:
    reference = best_of(3, asyncio_queue_rate)
    one_to_one = max((engine_rates(False) for _ in range(3)), key=lambda r: r[1])
    fan_out = max((engine_rates(True) for _ in range(3)), key=lambda r: r[1])
    report(
        "End-to-end throughput (virtual time; best of 3)",
        [
            ("asyncio.Queue producer -> consumer (reference)", f"{reference:12,.0f} msg/s"),
            (
                "engine, each message to 1 of 10 queues",
                f"{one_to_one[1]:12,.0f} msg/s  = {one_to_one[1] / reference:.2f}x reference",
            ),
            (
                "engine, each message to all 10 queues: deliveries",
                f"{fan_out[1]:12,.0f} msg/s  = {fan_out[1] / reference:.2f}x reference",
            ),
            ("  ... publishes", f"{fan_out[0]:12,.0f} msg/s"),
        ],
    )
