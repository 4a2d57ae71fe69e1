"""Reading and writing topology files: a RabbitMQ definitions file plus one key.

A file exported from RabbitMQ (cluster-wide, or one vhost's) opens as it is; a
Queuecraft file is such a file with a ``queuecraft`` key that RabbitMQ ignores.
A file that cannot be read raises one :class:`TopologyFileError` naming the
file, the place in it (a JSON path) and what was expected; nothing is returned
half-read.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .arguments import REFUSED_BY_TYPE
from .broker import check_policy
from .errors import AMQPError
from .model import (
    BUILTIN_EXCHANGES,
    DEFAULT_VHOST,
    FAILURE_ACTIONS,
    TIMELINE_ACTIONS,
    Binding,
    Consumer,
    Exchange,
    Policy,
    Producer,
    Queue,
    TimelineEvent,
    Topology,
    Vhost,
    node_id,
)
from .routing import EXCHANGE_TYPES

FORMAT_VERSION = 1
MAX_RATE = 1_000_000.0  # messages a second from one simulated producer
MAX_WORK_MS = 86_400_000.0  # a day
MAX_COORDINATE = 10_000_000.0
MAX_MILLISECONDS = 4294967295  # RabbitMQ's limit for TTLs and expiry
MAX_TIMELINE_SECONDS = 10_000_000.0  # about four months of simulated time
MAX_BURST = 1_000_000
MAX_SLOWDOWN = 1000.0

POLICY_APPLY_TO = ("all", "queues", "exchanges", "classic_queues", "quorum_queues", "streams")
OVERFLOW_RULES = ("drop-head", "reject-publish", "reject-publish-dlx")
QUEUE_TYPES = ("classic", "quorum", "stream")
X_MATCH = ("all", "any", "all-with-x", "any-with-x")


class TopologyFileError(ValueError):
    """A file that cannot be read: which file, where in it, and what was expected."""

    def __init__(self, file: str, where: str, problem: str) -> None:
        self.file = file
        self.where = where
        self.problem = problem
        super().__init__(f"{file}: {where}: {problem}")


# -- JSON paths -------------------------------------------------------------------------

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _at(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _IDENTIFIER.match(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _Reader:
    """Reads plain JSON values out of objects, raising with the path on a mismatch."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, where: str, problem: str) -> TopologyFileError:
        return TopologyFileError(self.file, where, problem)

    def object(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected an object, got {_describe(value)}")
        return value

    def array(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list, got {_describe(value)}")
        return value

    def get(
        self,
        obj: dict[str, Any],
        where: str,
        key: str,
        check: Callable[[Any], bool],
        expected: str,
        default: Any = ...,
    ) -> Any:
        if key not in obj:
            if default is ...:
                raise self.fail(where, f'missing field "{key}" ({expected})')
            return default
        value = obj[key]
        if not check(value):
            raise self.fail(_at(where, key), f"expected {expected}, got {_describe(value)}")
        return value

    def string(self, obj: dict[str, Any], where: str, key: str, default: Any = ...) -> str:
        return self.get(obj, where, key, lambda v: isinstance(v, str), "a string", default)

    def boolean(self, obj: dict[str, Any], where: str, key: str, default: Any = ...) -> bool:
        return self.get(obj, where, key, lambda v: isinstance(v, bool), "true or false", default)

    def integer(
        self, obj: dict[str, Any], where: str, key: str, low: int = 0, high: int | None = None, default: Any = ...
    ) -> int:
        expected = f"a whole number from {low}" + (f" to {high}" if high is not None else " up")
        return self.get(
            obj, where, key, lambda v: _is_int(v) and v >= low and (high is None or v <= high), expected, default
        )

    def number(
        self, obj: dict[str, Any], where: str, key: str, low: float = 0.0, high: float = 1e9, default: Any = ...
    ) -> float:
        expected = f"a number from {low:,g} to {high:,.0f}"
        value = self.get(obj, where, key, lambda v: _is_number(v) and low <= v <= high, expected, default)
        return float(value)

    def choice(self, obj: dict[str, Any], where: str, key: str, choices: tuple[str, ...], default: Any = ...) -> str:
        expected = "one of " + ", ".join(f'"{c}"' for c in choices)
        return self.get(obj, where, key, lambda v: v in choices, expected, default)

    def table(self, obj: dict[str, Any], where: str, key: str) -> dict[str, Any]:
        value = obj.get(key, {})
        if value is None:
            return {}
        return dict(self.object(value, _at(where, key)))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _extra(obj: dict[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in known}


# -- argument checks shared by queue arguments and policy definitions --------------------


def _check_limits(reader: _Reader, values: dict[str, Any], where: str, prefix: str) -> None:
    """Check the queue limits RabbitMQ knows, named ``x-...`` in arguments, bare in policies."""
    whole: dict[str, tuple[int, int | None, str]] = {
        "message-ttl": (0, MAX_MILLISECONDS, "a whole number of milliseconds from 0 to 4294967295"),
        "expires": (1, MAX_MILLISECONDS, "a whole number of milliseconds from 1 to 4294967295"),
        "max-length": (0, None, "a whole number of messages from 0 up"),
        "max-length-bytes": (0, None, "a whole number of bytes from 0 up"),
        "delivery-limit": (0, None, "a whole number from 0 up"),
    }
    for name, (low, high, expected) in whole.items():
        key = prefix + name
        if key in values:
            value = values[key]
            if not (_is_int(value) and value >= low and (high is None or value <= high)):
                raise reader.fail(_at(where, key), f"expected {expected}, got {_describe(value)}")
    strings = ("dead-letter-exchange", "dead-letter-routing-key", "alternate-exchange")
    for name in strings:
        key = prefix + name
        if key in values and not isinstance(values[key], str):
            raise reader.fail(
                _at(where, key), f"expected an exchange name or key (a string), got {_describe(values[key])}"
            )
    key = prefix + "overflow"
    if key in values and values[key] not in OVERFLOW_RULES:
        raise reader.fail(
            _at(where, key),
            "expected one of " + ", ".join(f'"{c}"' for c in OVERFLOW_RULES) + f", got {_describe(values[key])}",
        )


def _check_queue_arguments(reader: _Reader, arguments: dict[str, Any], where: str) -> None:
    _check_limits(reader, arguments, where, "x-")
    if "x-dead-letter-routing-key" in arguments and "x-dead-letter-exchange" not in arguments:
        raise reader.fail(
            _at(where, "x-dead-letter-routing-key"),
            "expected an x-dead-letter-exchange beside it (RabbitMQ refuses a dead-letter routing key without one)",
        )
    queue_type = arguments.get("x-queue-type", "classic")
    for key in REFUSED_BY_TYPE.get(queue_type, ()) if isinstance(queue_type, str) else ():
        if key in arguments:
            raise reader.fail(_at(where, key), f"expected no {key} on a {queue_type} queue (RabbitMQ refuses it)")
    if "x-max-priority" in arguments:
        value = arguments["x-max-priority"]
        if not (_is_int(value) and 0 <= value <= 255):
            raise reader.fail(
                _at(where, "x-max-priority"), f"expected a whole number from 0 to 255, got {_describe(value)}"
            )
    if "x-queue-type" in arguments and arguments["x-queue-type"] not in QUEUE_TYPES:
        raise reader.fail(
            _at(where, "x-queue-type"),
            "expected one of "
            + ", ".join(f'"{t}"' for t in QUEUE_TYPES)
            + f", got {_describe(arguments['x-queue-type'])}",
        )
    if "x-single-active-consumer" in arguments and not isinstance(arguments["x-single-active-consumer"], bool):
        raise reader.fail(
            _at(where, "x-single-active-consumer"),
            f"expected true or false, got {_describe(arguments['x-single-active-consumer'])}",
        )


# -- reading ------------------------------------------------------------------------------


def load(path: str | os.PathLike[str], complete_layout: bool = True) -> Topology:
    """Read a topology file; raise :class:`TopologyFileError` if it cannot be read."""
    file = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise TopologyFileError(file, "file", f"cannot be read ({exc.strerror or exc})") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TopologyFileError(file, f"byte {exc.start}", "expected UTF-8 text (is this a JSON file?)") from exc
    return loads(text, file, complete_layout=complete_layout)


def _line_column(text: str, index: int) -> str:
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return f"line {line}, column {column}"


def _refuse_constant(name: str) -> Any:
    raise _NotJSON(f"{name} is not a number JSON allows", name)


class _NotJSON(ValueError):
    def __init__(self, problem: str, token: str) -> None:
        super().__init__(problem)
        self.token = token


def parse_json(text: str, file: str) -> Any:
    """JSON as RabbitMQ reads it: no NaN or Infinity; a bad document gets one error with its place."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise TopologyFileError(file, f"line {exc.lineno}, column {exc.colno}", f"not valid JSON ({exc.msg})") from exc
    except _NotJSON as exc:
        raise TopologyFileError(file, _line_column(text, max(text.find(exc.token), 0)), str(exc)) from exc
    except RecursionError as exc:
        raise TopologyFileError(file, "JSON text", "nested too deeply to be a topology") from exc
    except ValueError as exc:  # an integer too long to read
        match = re.search(r"\d{4000,}", text)
        where = _line_column(text, match.start()) if match else "JSON text"
        raise TopologyFileError(file, where, f"a number too long to read ({exc})") from exc


def loads(text: str, file: str = "<text>", complete_layout: bool = True) -> Topology:
    data = parse_json(text, file)
    topology = from_definitions(data, file)
    if complete_layout:
        from .layout import complete_layout as fill_layout

        fill_layout(topology)
    return topology


_TOP_KEYS = ("vhosts", "exchanges", "queues", "bindings", "policies", "queuecraft")


def from_definitions(data: Any, file: str = "<definitions>") -> Topology:
    reader = _Reader(file)
    top = reader.object(data, "$")

    def entities(key: str) -> list[Any]:
        value = top.get(key)
        return value if isinstance(value, list) else []

    cluster = "vhosts" in top or any(
        isinstance(entity, dict) and "vhost" in entity
        for key in ("exchanges", "queues", "bindings")
        for entity in entities(key)
    )
    topology = Topology(vhosts=[], shape="cluster" if cluster else "vhost")
    topology.extra = _extra(top, _TOP_KEYS)
    topology.key_order = list(top)
    # A one-vhost export (the management API's) names its vhost only on policies.
    policy_vhosts = {p.get("vhost") for p in entities("policies") if isinstance(p, dict)}
    only_vhost = DEFAULT_VHOST
    if len(policy_vhosts) == 1:
        named = policy_vhosts.pop()
        if isinstance(named, str):
            only_vhost = named

    def vhost_of(entity: dict[str, Any], where: str) -> str:
        if not cluster:
            return only_vhost
        return reader.string(entity, where, "vhost")

    for i, item in enumerate(reader.array(top.get("vhosts", []), "$.vhosts")):
        where = f"$.vhosts[{i}]"
        entity = reader.object(item, where)
        name = reader.string(entity, where, "name")
        if any(v.name == name for v in topology.vhosts):
            raise reader.fail(_at(where, "name"), f"vhost '{name}' is listed twice")
        topology.vhosts.append(Vhost(name, _extra(entity, ("name",))))
    if not topology.vhosts and not cluster:
        topology.vhosts.append(Vhost(only_vhost))

    exchanges: dict[tuple[str, str], str] = {}
    exchange_types: dict[tuple[str, str], str] = {}
    for i, item in enumerate(reader.array(top.get("exchanges", []), "$.exchanges")):
        where = f"$.exchanges[{i}]"
        entity = reader.object(item, where)
        name = reader.string(entity, where, "name")
        vhost = vhost_of(entity, where)
        if name == "" or name.startswith("amq."):
            raise reader.fail(
                _at(where, "name"),
                f"'{name}' is built into every vhost and cannot be declared; refer to it by name instead",
            )
        if (vhost, name) in exchanges:
            raise reader.fail(
                _at(where, "name"),
                f"exchange '{name}' in vhost '{vhost}' is already declared at {exchanges[vhost, name]}",
            )
        exchange_type = reader.string(entity, where, "type")
        if exchange_type not in EXCHANGE_TYPES and not exchange_type.startswith("x-"):
            raise reader.fail(
                _at(where, "type"),
                f"expected direct, fanout, topic, headers or a plugin's type (x-...), got {_describe(exchange_type)}",
            )
        exchange = Exchange(
            name=name,
            vhost=vhost,
            type=exchange_type,
            durable=reader.boolean(entity, where, "durable", True),
            auto_delete=reader.boolean(entity, where, "auto_delete", False),
            internal=reader.boolean(entity, where, "internal", False),
            arguments=reader.table(entity, where, "arguments"),
            extra=_extra(entity, ("name", "vhost", "type", "durable", "auto_delete", "internal", "arguments")),
        )
        if "alternate-exchange" in exchange.arguments and not isinstance(exchange.arguments["alternate-exchange"], str):
            raise reader.fail(
                _at(_at(where, "arguments"), "alternate-exchange"),
                f"expected an exchange name (a string), got {_describe(exchange.arguments['alternate-exchange'])}",
            )
        exchanges[vhost, name] = where
        exchange_types[vhost, name] = exchange.type
        topology.exchanges.append(exchange)

    queues: dict[tuple[str, str], str] = {}
    for i, item in enumerate(reader.array(top.get("queues", []), "$.queues")):
        where = f"$.queues[{i}]"
        entity = reader.object(item, where)
        name = reader.string(entity, where, "name")
        vhost = vhost_of(entity, where)
        if name == "":
            raise reader.fail(_at(where, "name"), "a queue in a definitions file needs a name")
        if (vhost, name) in queues:
            raise reader.fail(
                _at(where, "name"), f"queue '{name}' in vhost '{vhost}' is already declared at {queues[vhost, name]}"
            )
        queue = Queue(
            name=name,
            vhost=vhost,
            durable=reader.boolean(entity, where, "durable", True),
            auto_delete=reader.boolean(entity, where, "auto_delete", False),
            arguments=reader.table(entity, where, "arguments"),
            extra=_extra(entity, ("name", "vhost", "durable", "auto_delete", "arguments")),
        )
        _check_queue_arguments(reader, queue.arguments, _at(where, "arguments"))
        if queue.queue_type in ("quorum", "stream"):
            for flag, wanted in (("durable", True), ("auto_delete", False)):
                if getattr(queue, flag) != wanted:
                    raise reader.fail(
                        _at(where, flag),
                        f"expected {str(wanted).lower()}: a {queue.queue_type} queue is durable and not auto-delete",
                    )
        queues[vhost, name] = where
        topology.queues.append(queue)

    def exchange_known(vhost: str, name: str) -> bool:
        return (vhost, name) in exchanges or name in BUILTIN_EXCHANGES or (vhost, name) in referenced

    # RabbitMQ 3.10 leaves internal exchanges out of its exports but keeps their
    # bindings, so a binding may name an exchange the file does not declare; it is
    # drawn as such (type unknown) rather than refused.
    referenced: set[tuple[str, str]] = set()

    for i, item in enumerate(reader.array(top.get("bindings", []), "$.bindings")):
        where = f"$.bindings[{i}]"
        entity = reader.object(item, where)
        vhost = vhost_of(entity, where)
        source = reader.string(entity, where, "source")
        destination = reader.string(entity, where, "destination")
        destination_type = reader.choice(entity, where, "destination_type", ("queue", "exchange"))
        if source == "":
            raise reader.fail(
                _at(where, "source"), "the default exchange cannot be bound; it reaches every queue by its name already"
            )
        referenced.add((vhost, source))
        if destination_type == "queue" and (vhost, destination) not in queues:
            raise reader.fail(
                _at(where, "destination"), f"no queue named '{destination}' in vhost '{vhost}' is declared in $.queues"
            )
        if destination_type == "exchange":
            if destination == "":
                raise reader.fail(_at(where, "destination"), "the default exchange cannot be bound to")
            referenced.add((vhost, destination))
        binding = Binding(
            source=source,
            destination=destination,
            vhost=vhost,
            destination_type=destination_type,
            routing_key=reader.string(entity, where, "routing_key", ""),
            arguments=reader.table(entity, where, "arguments"),
            extra=_extra(entity, ("source", "vhost", "destination", "destination_type", "routing_key", "arguments")),
        )
        source_type = exchange_types.get((vhost, source), BUILTIN_EXCHANGES.get(source))
        x_match = binding.arguments.get("x-match")
        if source_type == "headers" and x_match is not None and x_match not in X_MATCH:
            raise reader.fail(
                _at(_at(where, "arguments"), "x-match"),
                "expected one of " + ", ".join(f'"{m}"' for m in X_MATCH) + f", got {_describe(x_match)}",
            )
        topology.bindings.append(binding)

    for i, item in enumerate(reader.array(top.get("policies", []), "$.policies")):
        where = f"$.policies[{i}]"
        entity = reader.object(item, where)
        pattern = reader.string(entity, where, "pattern")
        definition = dict(reader.object(entity.get("definition", {}), _at(where, "definition")))
        try:
            re.compile(pattern)
        except re.error as exc:
            raise reader.fail(_at(where, "pattern"), f"expected a regular expression ({exc})") from exc
        try:
            check_policy(pattern, {})
        except AMQPError as exc:
            raise reader.fail(_at(where, "pattern"), exc.detail) from exc
        _check_limits(reader, definition, _at(where, "definition"), "")
        topology.policies.append(
            Policy(
                name=reader.string(entity, where, "name"),
                pattern=pattern,
                vhost=reader.string(entity, where, "vhost", only_vhost) if not cluster else vhost_of(entity, where),
                apply_to=reader.choice(entity, where, "apply-to", POLICY_APPLY_TO, "all"),
                definition=definition,
                priority=reader.integer(entity, where, "priority", low=-(2**31), default=0),
                extra=_extra(entity, ("vhost", "name", "pattern", "apply-to", "definition", "priority")),
            )
        )

    if "queuecraft" in top:
        # In a one-vhost export everything lives in that vhost; so do producers and consumers.
        default_vhost = DEFAULT_VHOST if cluster else only_vhost
        _read_queuecraft(reader, top["queuecraft"], topology, exchange_known, queues, default_vhost)
    return topology


_QC_KEYS = ("format", "title", "description", "producers", "consumers", "exclusive_queues", "timeline", "layout")
_PRODUCER_KEYS = (
    "name",
    "vhost",
    "exchange",
    "routing_key",
    "rate",
    "pattern",
    "headers",
    "body_size",
    "persistent",
    "mandatory",
)
_CONSUMER_KEYS = (
    "name",
    "vhost",
    "queue",
    "prefetch",
    "work_ms",
    "work_spread_ms",
    "ack_mode",
    "failure_rate",
    "on_failure",
    "restart_ms",
)


def _read_queuecraft(
    reader: _Reader,
    value: Any,
    topology: Topology,
    exchange_known: Callable[[str, str], bool],
    queues: dict[tuple[str, str], str],
    default_vhost: str = DEFAULT_VHOST,
) -> None:
    where = "$.queuecraft"
    section = reader.object(value, where)
    version = reader.integer(section, where, "format", low=1)
    if version > FORMAT_VERSION:
        raise reader.fail(
            _at(where, "format"),
            f"expected format {FORMAT_VERSION} or older; this file was written by a newer Queuecraft",
        )
    topology.title = reader.string(section, where, "title", "")
    topology.description = reader.string(section, where, "description", "")
    topology.queuecraft_extra = _extra(section, _QC_KEYS)

    seen: dict[str, str] = {}
    for i, item in enumerate(reader.array(section.get("producers", []), _at(where, "producers"))):
        at = f"{where}.producers[{i}]"
        entity = reader.object(item, at)
        producer = Producer(
            name=reader.string(entity, at, "name"),
            vhost=reader.string(entity, at, "vhost", default_vhost),
            exchange=reader.get(
                entity, at, "exchange", lambda v: v is None or isinstance(v, str), "an exchange name or null", None
            ),
            routing_key=reader.string(entity, at, "routing_key", ""),
            rate=reader.number(entity, at, "rate", 0.0, MAX_RATE, 1.0),
            pattern=reader.choice(entity, at, "pattern", ("steady", "poisson"), "steady"),
            headers=reader.table(entity, at, "headers"),
            body_size=reader.integer(entity, at, "body_size", 0, 128 * 1024 * 1024, 100),
            persistent=reader.boolean(entity, at, "persistent", False),
            mandatory=reader.boolean(entity, at, "mandatory", False),
        )
        _refuse_unknown_keys(reader, entity, at, _PRODUCER_KEYS)
        declared = topology.exchange(producer.vhost, producer.exchange) if producer.exchange is not None else None
        if (declared is not None and declared.internal) or producer.exchange == "amq.rabbitmq.trace":
            raise reader.fail(
                _at(at, "exchange"),
                f"'{producer.exchange}' is an internal exchange; RabbitMQ refuses publishes to it (403)",
            )
        if producer.exchange is not None and not exchange_known(producer.vhost, producer.exchange):
            raise reader.fail(
                _at(at, "exchange"),
                f"no exchange named '{producer.exchange}' in vhost '{producer.vhost}' is declared in $.exchanges",
            )
        problem = template_problem(producer.routing_key)
        if problem:
            raise reader.fail(_at(at, "routing_key"), problem)
        if producer.id in seen:
            raise reader.fail(
                _at(at, "name"),
                f"producer '{producer.name}' in vhost '{producer.vhost}' is already at {seen[producer.id]}",
            )
        seen[producer.id] = at
        topology.producers.append(producer)

    for i, item in enumerate(reader.array(section.get("consumers", []), _at(where, "consumers"))):
        at = f"{where}.consumers[{i}]"
        entity = reader.object(item, at)
        consumer = Consumer(
            name=reader.string(entity, at, "name"),
            vhost=reader.string(entity, at, "vhost", default_vhost),
            queue=reader.get(
                entity, at, "queue", lambda v: v is None or isinstance(v, str), "a queue name or null", None
            ),
            prefetch=reader.integer(entity, at, "prefetch", 0, 65535, 1),
            work_ms=reader.number(entity, at, "work_ms", 0.0, MAX_WORK_MS, 100.0),
            work_spread_ms=reader.number(entity, at, "work_spread_ms", 0.0, MAX_WORK_MS, 0.0),
            ack_mode=reader.choice(entity, at, "ack_mode", ("manual", "auto"), "manual"),
            failure_rate=reader.number(entity, at, "failure_rate", 0.0, 1.0, 0.0),
            on_failure=reader.choice(entity, at, "on_failure", FAILURE_ACTIONS, "requeue"),
            restart_ms=reader.number(entity, at, "restart_ms", 0.0, MAX_WORK_MS, 1000.0),
        )
        _refuse_unknown_keys(reader, entity, at, _CONSUMER_KEYS)
        if consumer.queue is not None and (consumer.vhost, consumer.queue) not in queues:
            raise reader.fail(
                _at(at, "queue"),
                f"no queue named '{consumer.queue}' in vhost '{consumer.vhost}' is declared in $.queues",
            )
        if consumer.id in seen:
            raise reader.fail(
                _at(at, "name"),
                f"consumer '{consumer.name}' in vhost '{consumer.vhost}' is already at {seen[consumer.id]}",
            )
        seen[consumer.id] = at
        topology.consumers.append(consumer)

    for i, item in enumerate(reader.array(section.get("timeline", []), _at(where, "timeline"))):
        topology.timeline.append(_read_timeline_event(reader, item, f"{where}.timeline[{i}]", topology, default_vhost))

    for i, item in enumerate(reader.array(section.get("exclusive_queues", []), _at(where, "exclusive_queues"))):
        at = f"{where}.exclusive_queues[{i}]"
        queue = next((q for q in topology.queues if q.id == item), None) if isinstance(item, str) else None
        if queue is None:
            raise reader.fail(at, f"expected the id of a queue in $.queues (queue:vhost:name), got {_describe(item)}")
        queue.exclusive = True

    layout = reader.object(section.get("layout", {}), _at(where, "layout"))
    for key, position in layout.items():
        at = _at(_at(where, "layout"), key)
        if not (
            isinstance(position, list)
            and len(position) == 2
            and all(_is_number(v) and abs(v) <= MAX_COORDINATE for v in position)
        ):
            raise reader.fail(at, f"expected a position [x, y], got {_describe(position)}")
        topology.layout[key] = (float(position[0]), float(position[1]))


_TIMELINE_FIELDS: dict[str, tuple[str, ...]] = {
    "kill": ("consumer",),
    "restart": ("consumer",),
    "slow": ("consumer", "factor"),
    "fail": ("consumer", "share", "on_failure"),
    "stop": ("producer",),
    "start": ("producer",),
    "burst": ("producer", "count"),
    "rate": ("producer", "rate"),
    "unbind": ("exchange", "destination", "destination_type", "routing_key", "arguments"),
    "bind": ("exchange", "destination", "destination_type", "routing_key", "arguments"),
    "restart_broker": (),
}


def _read_timeline_event(reader: _Reader, item: Any, at: str, topology: Topology, default_vhost: str) -> TimelineEvent:
    entity = reader.object(item, at)
    action = reader.choice(entity, at, "action", tuple(TIMELINE_ACTIONS))
    _refuse_unknown_keys(reader, entity, at, ("at", "action", "vhost", *_TIMELINE_FIELDS[action]))
    event = TimelineEvent(
        at=reader.number(entity, at, "at", 0.0, MAX_TIMELINE_SECONDS),
        action=action,
        vhost=reader.string(entity, at, "vhost", default_vhost),
    )
    kind = TIMELINE_ACTIONS[action]
    if kind:
        event.node = reader.string(entity, at, kind)
        known = {
            "consumer": [c.name for c in topology.consumers if c.vhost == event.vhost],
            "producer": [p.name for p in topology.producers if p.vhost == event.vhost],
            "exchange": [x.name for x in topology.exchanges if x.vhost == event.vhost] + list(BUILTIN_EXCHANGES),
        }[kind]
        if event.node not in known:
            raise reader.fail(_at(at, kind), f"no {kind} named '{event.node}' in vhost '{event.vhost}' in this file")
    if action == "slow":
        event.factor = reader.number(entity, at, "factor", 0.01, MAX_SLOWDOWN)
    elif action == "fail":
        event.share = reader.number(entity, at, "share", 0.0, 1.0)
        event.on_failure = reader.get(
            entity,
            at,
            "on_failure",
            lambda v: v is None or v in FAILURE_ACTIONS,
            "one of " + ", ".join(f'"{c}"' for c in FAILURE_ACTIONS),
            None,
        )
    elif action == "burst":
        event.count = reader.integer(entity, at, "count", 1, MAX_BURST)
    elif action == "rate":
        event.rate = reader.number(entity, at, "rate", 0.0, MAX_RATE)
    elif action in ("bind", "unbind"):
        event.destination_type = reader.choice(entity, at, "destination_type", ("queue", "exchange"), "queue")
        event.destination = reader.string(entity, at, "destination")
        names: list[Any] = topology.queues if event.destination_type == "queue" else topology.exchanges
        builtin = event.destination_type == "exchange" and event.destination in BUILTIN_EXCHANGES
        if not builtin and not any(e.vhost == event.vhost and e.name == event.destination for e in names):
            raise reader.fail(
                _at(at, "destination"),
                f"no {event.destination_type} named '{event.destination}' in vhost '{event.vhost}' in this file",
            )
        event.routing_key = reader.string(entity, at, "routing_key", "")
        event.arguments = reader.table(entity, at, "arguments")
        # What the broker would refuse when the step plays is refused now, where it is written.
        if event.node == "" or (event.destination_type == "exchange" and event.destination == ""):
            where = _at(at, "exchange" if event.node == "" else "destination")
            raise reader.fail(where, "the default exchange cannot be bound or unbound")
        source_type = next(
            (x.type for x in topology.exchanges if x.vhost == event.vhost and x.name == event.node),
            BUILTIN_EXCHANGES.get(event.node or ""),
        )
        x_match = event.arguments.get("x-match")
        if source_type == "headers" and x_match is not None and x_match not in X_MATCH:
            raise reader.fail(
                _at(_at(at, "arguments"), "x-match"),
                "expected one of " + ", ".join(f'"{m}"' for m in X_MATCH) + f", got {_describe(x_match)}",
            )
    return event


def _timeline_entry(event: TimelineEvent) -> dict[str, Any]:
    entry: dict[str, Any] = {"at": event.at, "action": event.action}
    if event.vhost != DEFAULT_VHOST:
        entry["vhost"] = event.vhost
    kind = TIMELINE_ACTIONS[event.action]
    if kind:
        entry[kind] = event.node
    if event.action == "slow":
        entry["factor"] = event.factor
    elif event.action == "fail":
        entry["share"] = event.share
        if event.on_failure is not None:
            entry["on_failure"] = event.on_failure
    elif event.action == "burst":
        entry["count"] = event.count
    elif event.action == "rate":
        entry["rate"] = event.rate
    elif event.action in ("bind", "unbind"):
        entry.update(destination=event.destination, destination_type=event.destination_type)
        entry["routing_key"] = event.routing_key
        if event.arguments:
            entry["arguments"] = event.arguments
    return entry


def _refuse_unknown_keys(reader: _Reader, entity: dict[str, Any], where: str, known: tuple[str, ...]) -> None:
    """Queuecraft's own objects have no room for guesses: a misspelt field is an error, not a default."""
    for key in entity:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else f" (expected one of {', '.join(known)})"
            raise reader.fail(_at(where, key), f"unknown field{hint}")


def template_problem(template: str) -> str | None:
    """Why a routing-key template cannot be used, or None when it can."""
    depth = 0
    for ch in template:
        if ch == "{":
            depth += 1
            if depth > 1:
                return "expected a routing-key template; '{' cannot be nested"
        elif ch == "}":
            depth -= 1
            if depth < 0:
                return "expected a routing-key template; '}' has no matching '{'"
    if depth:
        return "expected a routing-key template; '{' is not closed"
    if "{}" in template:
        return "expected a routing-key template; '{}' has no choices (write {a|b})"
    return None


# -- writing ------------------------------------------------------------------------------


def to_definitions(topology: Topology) -> dict[str, Any]:
    """The file's JSON value; a one-vhost export is written back in its own shape (while it
    still has one vhost: gaining a second makes it a whole broker's)."""
    entities: list[Any] = [*topology.exchanges, *topology.queues, *topology.producers, *topology.consumers]
    used = {v.name for v in topology.vhosts} | {e.vhost for e in entities}
    cluster = topology.shape == "cluster" or len(used) > 1

    def with_vhost(entity: dict[str, Any], vhost: str, after: str) -> dict[str, Any]:
        if not cluster:
            return entity
        result: dict[str, Any] = {}
        for key, value in entity.items():
            result[key] = value
            if key == after:
                result["vhost"] = vhost
        return result

    sections: dict[str, Any] = {}
    if (cluster and (topology.vhosts or "vhosts" in topology.key_order)) or (not cluster and len(topology.vhosts) != 1):
        sections["vhosts"] = [{"name": v.name, **v.extra} for v in topology.vhosts]
    sections["exchanges"] = [
        with_vhost(
            {
                "name": x.name,
                "type": x.type,
                "durable": x.durable,
                "auto_delete": x.auto_delete,
                "internal": x.internal,
                "arguments": x.arguments,
                **x.extra,
            },
            x.vhost,
            "name",
        )
        for x in topology.exchanges
    ]
    sections["queues"] = [
        with_vhost(
            {
                "name": q.name,
                "durable": q.durable,
                "auto_delete": q.auto_delete,
                "arguments": q.arguments,
                **q.extra,
                # RabbitMQ 3.10's export repeats the queue type beside the arguments; keep them in step.
                **({"type": q.queue_type} if "type" in q.extra else {}),
            },
            q.vhost,
            "name",
        )
        for q in topology.queues
    ]
    sections["bindings"] = [
        with_vhost(
            {
                "source": b.source,
                "destination": b.destination,
                "destination_type": b.destination_type,
                "routing_key": b.routing_key,
                "arguments": b.arguments,
                **b.extra,
            },
            b.vhost,
            "source",
        )
        for b in topology.bindings
    ]
    sections["policies"] = [
        {
            "vhost": p.vhost,
            "name": p.name,
            "pattern": p.pattern,
            "apply-to": p.apply_to,
            "definition": p.definition,
            "priority": p.priority,
            **p.extra,
        }
        for p in topology.policies
    ]
    sections["queuecraft"] = _queuecraft_section(topology)

    values = dict(topology.extra)
    values.update(sections)
    order = topology.key_order or ["rabbit_version", *_TOP_KEYS]
    result = {key: values.pop(key) for key in order if key in values}
    result.update(values)
    return result


def _queuecraft_section(topology: Topology) -> dict[str, Any]:
    section: dict[str, Any] = {"format": FORMAT_VERSION}
    if topology.title:
        section["title"] = topology.title
    if topology.description:
        section["description"] = topology.description
    section["producers"] = [
        {
            "name": p.name,
            "vhost": p.vhost,
            "exchange": p.exchange,
            "routing_key": p.routing_key,
            "rate": p.rate,
            "pattern": p.pattern,
            "headers": p.headers,
            "body_size": p.body_size,
            "persistent": p.persistent,
            "mandatory": p.mandatory,
        }
        for p in topology.producers
    ]
    section["consumers"] = [_consumer_entry(c) for c in topology.consumers]
    exclusive = [q.id for q in topology.queues if q.exclusive]
    if exclusive:
        section["exclusive_queues"] = exclusive
    if topology.timeline:
        section["timeline"] = [_timeline_entry(e) for e in sorted(topology.timeline, key=lambda e: e.at)]
    section["layout"] = {nid: [round(x, 1), round(y, 1)] for nid, (x, y) in sorted(topology.layout.items())}
    section.update(topology.queuecraft_extra)
    return section


def _consumer_entry(c: Consumer) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": c.name,
        "vhost": c.vhost,
        "queue": c.queue,
        "prefetch": c.prefetch,
        "work_ms": c.work_ms,
        "work_spread_ms": c.work_spread_ms,
        "ack_mode": c.ack_mode,
    }
    if c.failure_rate or c.on_failure != "requeue" or c.restart_ms != 1000.0:
        entry.update(failure_rate=c.failure_rate, on_failure=c.on_failure, restart_ms=c.restart_ms)
    return entry


def file_problem(topology: Topology) -> str | None:
    """Why the topology, saved, would not open again (``where: what``), or None when it would."""
    try:
        text = dumps(topology)
    except (ValueError, TypeError) as exc:  # a value JSON cannot hold
        return str(exc)
    try:
        loads(text, "the topology", complete_layout=False)
    except TopologyFileError as exc:
        return f"{exc.where}: {exc.problem}"
    return None


def dumps(topology: Topology) -> str:
    return json.dumps(to_definitions(topology), indent=2, ensure_ascii=False) + "\n"


def save(topology: Topology, path: str | os.PathLike[str]) -> None:
    """Write atomically: a temporary file beside the target, then a rename."""
    target = Path(path)
    text = dumps(topology)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        if target.exists():
            os.chmod(temporary, target.stat().st_mode & 0o777)
        else:
            os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


__all__ = ["TopologyFileError", "load", "loads", "save", "dumps", "to_definitions", "from_definitions", "node_id"]
