"""Test set-up shared by every layer: Qt offscreen, and the real-broker marker.

Tests marked ``rabbitmq`` talk to the RabbitMQ on 127.0.0.1:5672. Locally they
skip when it does not answer; under CI (``CI=true``) they run anyway, so a
missing broker fails them instead of hiding behind a skip.
"""

from __future__ import annotations

import os
import socket

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

RABBITMQ_HOST = os.environ.get("QUEUECRAFT_RABBITMQ_HOST", "127.0.0.1")
RABBITMQ_PORT = int(os.environ.get("QUEUECRAFT_RABBITMQ_PORT", "5672"))


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def rabbitmq_answers() -> bool:
    try:
        with socket.create_connection((RABBITMQ_HOST, RABBITMQ_PORT), timeout=2):
            return True
    except OSError:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    marked = [item for item in items if item.get_closest_marker("rabbitmq")]
    if not marked or under_ci() or rabbitmq_answers():
        return
    skip = pytest.mark.skip(reason=f"no RabbitMQ answers on {RABBITMQ_HOST}:{RABBITMQ_PORT} (under CI this fails)")
    for item in marked:
        item.add_marker(skip)
