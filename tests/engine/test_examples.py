"""Every shipped topology loads and runs headless, with traffic reaching every consumer."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.sim import Simulation
from engine.topology_file import load

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "topologies").glob("*.json"))


def test_examples_are_shipped() -> None:
    names = {path.stem for path in EXAMPLES}
    assert {"ecommerce", "stock-ticker", "ride-hailing"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_with_traffic_to_every_consumer(path: Path) -> None:
    topology = load(path)
    assert topology.producers and topology.consumers
    sim = Simulation(topology)
    sim.run_for(10)
    report = sim.report()
    for consumer in report["consumers"]:
        assert consumer["acked"] > 0, f"{consumer['name']} received nothing"
    assert sim.accounting_problems() == []
    assert all(node in topology.layout for node in topology.node_ids())
