"""Topic routing cost with 100,000 bindings against 10 bindings. Target: at most 2x.

The trie is walked for every key (the per-exchange cache of recent keys is bypassed).
Both sides route the same number of distinct keys, each matching exactly one binding,
so only the number of bindings differs."""

from __future__ import annotations

import random

from engine.routing import Binding, TopicRouter

from .conftest import report, timed

LOOKUPS = 200_000


DISTINCT_KEYS = 100_000
REGIONS = ("eu", "us", "ap")


def build(bindings: int) -> tuple[TopicRouter, list[str]]:
    router = TopicRouter()
    for i in range(bindings):
        region = REGIONS[i % 3]
        pattern = f"tenant{i}.{region}.*.created" if i % 2 else f"tenant{i}.{region}.#"
        router.add(Binding("/", "t", f"q{i}", "queue", pattern))
    keys = []
    for j in range(DISTINCT_KEYS):
        i = j % bindings
        keys.append(f"tenant{i}.{REGIONS[i % 3]}.order{j}.created")
    random.Random(1).shuffle(keys)
    return router, keys


def cost_per_lookup(router: TopicRouter, keys: list[str]) -> float:
    match = router.match_in_trie
    sample = [keys[i % len(keys)] for i in range(LOOKUPS)]

    def run() -> None:
        for key in sample:
            match(key)

    return min(timed(run) for _ in range(3)) / LOOKUPS


def test_routing_cost_does_not_grow_with_bindings() -> None:
    small_router, small_keys = build(10)
    large_router, large_keys = build(100_000)
    assert len(small_router.match_in_trie(small_keys[0])) == 1
    assert len(large_router.match_in_trie(large_keys[0])) == 1
    small = cost_per_lookup(small_router, small_keys)
    large = cost_per_lookup(large_router, large_keys)
    report(
        "Topic routing (trie walk per key, cache bypassed; best of 3)",
        [
            ("10 bindings (reference)", f"{small * 1e6:6.2f} us per message"),
            ("100,000 bindings", f"{large * 1e6:6.2f} us per message  = {large / small:.2f}x reference"),
        ],
    )
