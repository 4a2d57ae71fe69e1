"""Brokers for the wire tests: the engine's own listener, and the real RabbitMQ (``rabbitmq`` marker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine.serve import BrokerThread

from ..conftest import RABBITMQ_HOST, RABBITMQ_PORT


@pytest.fixture(scope="module")
def served() -> Iterator[BrokerThread]:
    with BrokerThread() as thread:
        yield thread


@pytest.fixture(
    params=[
        pytest.param("listener"),
        pytest.param("rabbitmq", marks=pytest.mark.rabbitmq),
    ]
)
def broker_address(request: pytest.FixtureRequest) -> tuple[str, int]:
    """The same test on the engine's listener and on the real RabbitMQ: both must behave alike."""
    if request.param == "rabbitmq":
        return RABBITMQ_HOST, RABBITMQ_PORT
    thread: BrokerThread = request.getfixturevalue("served")
    assert thread.address is not None
    return thread.address
