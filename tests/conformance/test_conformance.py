"""Every conformance scenario three ways: on the built-in engine in-process, through pika on the
real RabbitMQ, and through pika on the engine's own AMQP listener. All three must pass."""

from __future__ import annotations

import pytest

from engine.serve import BrokerThread

from .drivers import EngineDriver, ListenerDriver, PikaDriver
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


@pytest.fixture(scope="module")
def listener():  # type: ignore[no-untyped-def]
    with BrokerThread() as thread:
        yield ListenerDriver(thread)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_listener(scenario, listener: ListenerDriver) -> None:  # type: ignore[no-untyped-def]
    run_scenario(scenario, listener)
