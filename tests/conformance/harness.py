"""Conformance scenarios as data, one runner, several drivers.

A scenario is a list of steps: AMQP operations (``exchange.declare``,
``basic.publish``, ``basic.ack``, ...), ``policy.set``, ``wait`` and
expectations (``expect.queue``, ``expect.deliveries``, ...). The runner plays the
steps through a :class:`Driver` and checks every expectation; the same scenario
must end the same way on the built-in engine and on a real RabbitMQ.

Step fields common to all operations:

- ``channel``: the channel to use (default ``"c1"``); ``connection`` the
  connection a new channel opens on (default ``"conn1"``).
- ``error``: the AMQP reply code the step must fail with (404, 406, 403, ...).
  A channel error closes that channel; the next step on it opens a new one.

Messages are matched on the fields a matcher lists: ``body``, ``routing_key``,
``exchange``, ``redelivered``, ``properties`` (each listed property equal),
``headers`` (each listed header equal), ``x-death`` (each entry's listed fields;
``time`` is never compared) and ``absent`` (properties that must not be set).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

SCENARIOS = Path(__file__).resolve().parent / "scenarios"

OPERATIONS = {
    "exchange.declare",
    "exchange.delete",
    "exchange.bind",
    "exchange.unbind",
    "queue.declare",
    "queue.bind",
    "queue.unbind",
    "queue.purge",
    "queue.delete",
    "policy.set",
    "policy.clear",
    "basic.qos",
    "basic.publish",
    "basic.get",
    "basic.consume",
    "basic.cancel",
    "basic.ack",
    "basic.nack",
    "basic.reject",
    "basic.recover",
    "confirm.select",
    "channel.close",
    "connection.close",
    "wait",
    "broker.restart",
    "expect.queue",
    "expect.depth",
    "expect.deliveries",
    "expect.returned",
    "expect.confirms",
    "expect.cancelled",
    "expect.exists",
}


@dataclass
class Scenario:
    file: str
    name: str
    doc: str
    steps: list[dict[str, Any]]
    note: str = ""

    @property
    def id(self) -> str:
        return f"{self.file}/{self.name}"


def load_scenarios(directory: Path = SCENARIOS) -> list[Scenario]:
    scenarios: list[Scenario] = []
    for path in sorted(directory.glob("*.json")):
        entries = json.loads(path.read_text(encoding="utf-8"))
        for entry in entries:
            scenario = Scenario(path.stem, entry["name"], entry.get("doc", ""), entry["steps"], entry.get("note", ""))
            for i, step in enumerate(scenario.steps):
                if step.get("op") not in OPERATIONS:
                    raise ValueError(f"{path.name}: {scenario.name}: step {i}: unknown op {step.get('op')!r}")
            scenarios.append(scenario)
    names = [s.id for s in scenarios]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"scenario names used twice: {sorted(duplicates)}")
    return scenarios


class StepError(Exception):
    """An operation refused by the broker: its AMQP reply code and text."""

    def __init__(self, reply_code: int, reply_text: str, connection_level: bool = False) -> None:
        super().__init__(f"{reply_code} {reply_text}")
        self.reply_code = reply_code
        self.reply_text = reply_text
        self.connection_level = connection_level


@dataclass
class Delivery:
    body: bytes
    routing_key: str
    exchange: str
    redelivered: bool
    properties: dict[str, Any]
    delivery_tag: int = 0
    channel: str = ""
    message_count: int | None = None  # basic.get-ok only


@dataclass
class Returned:
    body: bytes
    routing_key: str
    exchange: str
    reply_code: int
    reply_text: str
    properties: dict[str, Any] = field(default_factory=dict)


class Driver:
    """What the runner needs from a broker. Names of channels and consumers are the scenario's."""

    name = "driver"

    def open(self, scenario: Scenario) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def call(self, op: str, channel: str, connection: str, args: dict[str, Any]) -> Any:
        """Perform one AMQP operation; raise :class:`StepError` when the broker refuses it."""
        raise NotImplementedError

    def set_policy(self, name: str, pattern: str, definition: dict[str, Any], priority: int, apply_to: str) -> None:
        raise NotImplementedError

    def clear_policy(self, name: str) -> None:
        raise NotImplementedError

    def wait(self, seconds: float) -> None:
        raise NotImplementedError

    def restart_broker(self) -> None:
        """Stop the broker and start it again; clients' connections drop."""
        raise NotImplementedError

    def settle(self) -> None:
        """Let asynchronous effects (deliveries, returns, confirms) arrive."""

    def deliveries(self, consumer: str) -> list[Delivery]:
        raise NotImplementedError

    def cancelled(self, consumer: str) -> bool:
        raise NotImplementedError

    def returned(self, channel: str) -> list[Returned]:
        raise NotImplementedError

    def confirms(self, channel: str) -> list[bool]:
        raise NotImplementedError

    def drain(self, queue: str) -> list[Delivery]:
        """Every ready message of a queue, in order, taken with basic.get on a channel of its own."""
        raise NotImplementedError

    def depth(self, queue: str) -> tuple[int, int]:
        """(ready messages, consumers) from a passive declare."""
        raise NotImplementedError

    def exists(self, kind: str, name: str) -> bool:
        raise NotImplementedError


# -- matching ----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return value
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return int(value.timestamp())
    return value


def describe(message: Delivery | Returned) -> dict[str, Any]:
    result = {"body": _plain(message.body), "routing_key": message.routing_key, "exchange": message.exchange}
    if isinstance(message, Delivery):
        result["redelivered"] = message.redelivered
    else:
        result["reply_code"] = message.reply_code
    props = _plain(message.properties)
    if props:
        result["properties"] = props
    return result


def mismatch(expected: dict[str, Any], actual: Delivery | Returned) -> str | None:
    """Why ``actual`` does not match ``expected``, or None when it does."""
    props = _plain(actual.properties)
    headers = props.get("headers") or {}
    for key, want in expected.items():
        if key == "body":
            got: Any = _plain(actual.body)
        elif key in ("routing_key", "exchange", "redelivered", "reply_code", "reply_text"):
            got = getattr(actual, key)
        elif key == "properties":
            for name, value in want.items():
                if props.get(name) != value:
                    return f"property {name}: expected {value!r}, got {props.get(name)!r}"
            continue
        elif key == "headers":
            for name, value in want.items():
                if headers.get(name) != value:
                    return f"header {name}: expected {value!r}, got {headers.get(name)!r}"
            continue
        elif key == "absent":
            for name in want:
                if props.get(name) is not None:
                    return f"property {name}: expected to be absent, got {props[name]!r}"
            continue
        elif key == "x-death":
            deaths = headers.get("x-death")
            if want is None:
                if deaths is not None:
                    return f"expected no x-death header, got {deaths!r}"
                continue
            if not isinstance(deaths, list) or len(deaths) != len(want):
                return f"x-death: expected {len(want)} entries, got {deaths!r}"
            for i, (w, g) in enumerate(zip(want, deaths, strict=True)):
                for name, value in w.items():
                    if g.get(name) != value:
                        return f"x-death[{i}].{name}: expected {value!r}, got {g.get(name)!r}"
                if "time" in g and not isinstance(g["time"], int | float):
                    return f"x-death[{i}].time: expected a timestamp, got {g['time']!r}"
            continue
        else:
            raise ValueError(f"unknown matcher field {key!r}")
        if got != want:
            return f"{key}: expected {want!r}, got {got!r}"
    return None


def match_list(what: str, expected: list[dict[str, Any]], actual: list[Any]) -> None:
    if len(expected) != len(actual):
        raise AssertionError(
            f"{what}: expected {len(expected)} messages, got {len(actual)}: {[describe(m) for m in actual]}"
        )
    for i, (want, got) in enumerate(zip(expected, actual, strict=True)):
        problem = mismatch(want, got)
        if problem:
            raise AssertionError(f"{what}[{i}]: {problem}; message was {describe(got)}")


# -- the runner --------------------------------------------------------------------------------


def _bodies(step: dict[str, Any]) -> list[str]:
    if "bodies" in step:
        return [str(b) for b in step["bodies"]]
    return [str(step.get("body", ""))]


def run_scenario(scenario: Scenario, driver: Driver) -> None:
    driver.open(scenario)
    try:
        for index, step in enumerate(scenario.steps):
            try:
                _run_step(driver, step)
            except AssertionError as exc:
                raise AssertionError(f"{scenario.id}: step {index} {json.dumps(step)}: {exc}") from None
    finally:
        driver.close()


def _run_step(driver: Driver, step: dict[str, Any]) -> None:
    op = step["op"]
    channel = step.get("channel", "c1")
    connection = step.get("connection", "conn1")
    expected_error = step.get("error")
    args = {k: v for k, v in step.items() if k not in ("op", "channel", "connection", "error", "expect")}
    if op == "wait":
        driver.wait(step["ms"] / 1000.0)
        return
    if op == "broker.restart":
        driver.restart_broker()
        return
    if op.startswith("expect."):
        driver.settle()
        _check(driver, op, step)
        return
    try:
        if op == "policy.set":
            driver.set_policy(
                step["name"],
                step["pattern"],
                step.get("definition", {}),
                step.get("priority", 0),
                step.get("apply_to", "all"),
            )
            result = None
        elif op == "policy.clear":
            driver.clear_policy(step["name"])
            result = None
        elif op == "basic.publish":
            result = None
            for body in _bodies(step):
                driver.call(op, channel, connection, {**args, "body": body})
        else:
            result = driver.call(op, channel, connection, args)
    except StepError as exc:
        if expected_error is None:
            raise AssertionError(f"unexpected error {exc.reply_code}: {exc.reply_text}") from None
        if exc.reply_code != expected_error:
            raise AssertionError(f"expected error {expected_error}, got {exc.reply_code}: {exc.reply_text}") from None
        if "error_text" in step and step["error_text"] not in exc.reply_text:
            raise AssertionError(
                f"expected error text containing {step['error_text']!r}, got {exc.reply_text!r}"
            ) from None
        return
    if expected_error is not None:
        raise AssertionError(f"expected error {expected_error}, but the step succeeded")
    for key, want in (step.get("expect") or {}).items():
        got = result.get(key) if isinstance(result, dict) else None
        if key == "name_prefix":
            got = (result or {}).get("queue", "")
            if not str(got).startswith(want):
                raise AssertionError(f"queue name {got!r} does not start with {want!r}")
            continue
        if key == "empty":
            if (result is None) != want:
                raise AssertionError(f"basic.get: expected {'empty' if want else 'a message'}, got {result!r}")
            continue
        if key == "message":
            if not isinstance(result, Delivery):
                raise AssertionError(f"basic.get: expected a message, got {result!r}")
            problem = mismatch(want, result)
            if problem:
                raise AssertionError(f"basic.get: {problem}; message was {describe(result)}")
            continue
        if key == "message_count" and isinstance(result, Delivery):
            got = result.message_count
        if got != want:
            raise AssertionError(f"{op}: expected {key} {want!r}, got {got!r}")


def _check(driver: Driver, op: str, step: dict[str, Any]) -> None:
    if op == "expect.queue":
        match_list(f"queue {step['queue']}", step["messages"], driver.drain(step["queue"]))
    elif op == "expect.depth":
        ready, consumers = driver.depth(step["queue"])
        if "messages" in step and ready != step["messages"]:
            raise AssertionError(f"queue {step['queue']}: expected {step['messages']} ready messages, got {ready}")
        if "consumers" in step and consumers != step["consumers"]:
            raise AssertionError(f"queue {step['queue']}: expected {step['consumers']} consumers, got {consumers}")
    elif op == "expect.deliveries":
        match_list(f"deliveries to {step['consumer']}", step["messages"], driver.deliveries(step["consumer"]))
    elif op == "expect.returned":
        match_list("returned", step["messages"], driver.returned(step.get("channel", "c1")))
    elif op == "expect.confirms":
        got = driver.confirms(step.get("channel", "c1"))
        if got != step["confirms"]:
            raise AssertionError(f"confirms: expected {step['confirms']}, got {got}")
    elif op == "expect.cancelled":
        got_cancelled = driver.cancelled(step["consumer"])
        if got_cancelled != step.get("cancelled", True):
            raise AssertionError(
                f"consumer {step['consumer']}: expected cancelled={step.get('cancelled', True)}, got {got_cancelled}"
            )
    elif op == "expect.exists":
        kind = "queue" if "queue" in step else "exchange"
        got_exists = driver.exists(kind, step[kind])
        if got_exists != step.get("exists", True):
            raise AssertionError(f"{kind} {step[kind]}: expected exists={step.get('exists', True)}, got {got_exists}")
