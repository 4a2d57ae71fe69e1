"""Every conformance scenario, on the built-in engine and on the real RabbitMQ: both must pass."""

from __future__ import annotations

import pytest

from .drivers import EngineDriver, PikaDriver
from .harness import load_scenarios, run_scenario

SCENARIOS = load_scenarios()
IDS = [s.id for s in SCENARIOS]


def test_there_are_enough_scenarios() -> None:
    assert len(SCENARIOS) >= 80


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_engine(scenario) -> None:  # type: ignore[no-untyped-def]
    run_scenario(scenario, EngineDriver())


@pytest.fixture(scope="module")
def rabbitmq() -> PikaDriver:
    return PikaDriver()


@pytest.mark.rabbitmq
@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_rabbitmq(scenario, rabbitmq: PikaDriver) -> None:  # type: ignore[no-untyped-def]
    run_scenario(scenario, rabbitmq)
