"""Benchmarks print their figures beside a reference measured in the same run; they assert no times."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_of(runs: int, measure: Callable[[], float]) -> float:
    """The best of several measurements (rates: the highest), to see past a noisy machine."""
    return max(measure() for _ in range(runs))


def report(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    print(f"\n{title}")
    for name, value in rows:
        print(f"  {name.ljust(width)}  {value}")


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started
