"""Editing a topology: every change a person makes on the canvas, as a function of the model.

Each operation either changes the topology it is given or raises
:class:`EditRefused` with the reason in plain words, changing nothing. The GUI
wraps these in undo commands; tests and scripts call them directly.

Edges have ids too: ``publishes:<producer id>``, ``consumes:<consumer id>``,
``dead-letter:<queue id>``, ``alternate:<exchange id>`` and, for bindings, the
binding's own id (:func:`engine.routing.binding_id`).
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from .layout import complete_layout, layered_positions
from .model import (
    BUILTIN_EXCHANGES,
    FAILURE_ACTIONS,
    TIMELINE_ACTIONS,
    Binding,
    Consumer,
    Exchange,
    Producer,
    Queue,
    TimelineEvent,
    Topology,
    expand_template,
    node_id,
    split_node_id,
)
from .routing import EXCHANGE_TYPES, binding_id
from .topology_file import MAX_RATE, MAX_WORK_MS, TopologyFileError, _check_queue_arguments, _Reader, template_problem

NODE_KINDS = ("producer", "exchange", "queue", "consumer")
MAX_NAME_BYTES = 255  # AMQP short strings


class EditRefused(ValueError):
    """An edit that would make no sense; ``str()`` says why, for the person who tried."""


# -- ids ------------------------------------------------------------------------------------


def model_binding_id(binding: Binding) -> str:
    return binding_id(
        binding.vhost,
        binding.source,
        binding.destination_type,
        binding.destination,
        binding.routing_key,
        binding.arguments,
    )


def find_binding(topology: Topology, edge: str) -> Binding | None:
    return next((b for b in topology.bindings if model_binding_id(b) == edge), None)


def edge_ids(topology: Topology) -> list[str]:
    """Every edge a person can select and delete."""
    ids = [f"publishes:{p.id}" for p in topology.producers if p.exchange is not None]
    ids += [model_binding_id(b) for b in topology.bindings]
    ids += [f"consumes:{c.id}" for c in topology.consumers if c.queue is not None]
    ids += [f"dead-letter:{q.id}" for q in topology.queues if "x-dead-letter-exchange" in q.arguments]
    ids += [f"alternate:{x.id}" for x in topology.exchanges if "alternate-exchange" in x.arguments]
    return ids


def _collection(topology: Topology, kind: str) -> list[Any]:
    collections: dict[str, list[Any]] = {
        "producer": topology.producers,
        "exchange": topology.exchanges,
        "queue": topology.queues,
        "consumer": topology.consumers,
    }
    return collections.get(kind, [])


def entity(topology: Topology, nid: str) -> Producer | Exchange | Queue | Consumer | None:
    collection = _collection(topology, split_node_id(nid)[0])
    return next((e for e in collection if e.id == nid), None)


# -- names ----------------------------------------------------------------------------------


def name_problem(topology: Topology, kind: str, vhost: str, name: str, current: str | None = None) -> str | None:
    """Why ``name`` cannot name a ``kind`` in ``vhost`` (None when it can)."""
    if not name.strip():
        return "a name is needed"
    if len(name.encode()) > MAX_NAME_BYTES:
        return f"at most {MAX_NAME_BYTES} bytes (AMQP names are short strings)"
    if kind in ("exchange", "queue") and name.startswith("amq."):
        return "names starting with 'amq.' are reserved by RabbitMQ"
    if kind == "exchange" and name in BUILTIN_EXCHANGES:
        return f"'{name}' is built into every vhost"
    if name != current and entity(topology, node_id(kind, vhost, name)) is not None:
        return f"there is already a {kind} named '{name}' in vhost '{vhost}'"
    return None


def unique_name(topology: Topology, kind: str, vhost: str, base: str) -> str:
    base = re.sub(r"-\d+$", "", base) or kind
    for number in range(1, 100000):
        candidate = f"{base}-{number}"
        if name_problem(topology, kind, vhost, candidate) is None:
            return candidate
    raise EditRefused(f"no free name for a new {kind}")


# -- adding and removing ----------------------------------------------------------------------


def add_node(
    topology: Topology,
    kind: str,
    name: str | None = None,
    vhost: str = "/",
    position: tuple[float, float] = (0.0, 0.0),
    exchange_type: str = "direct",
) -> str:
    """A new node with sensible defaults; returns its id."""
    if kind not in NODE_KINDS:
        raise EditRefused(f"unknown kind of node '{kind}'")
    base = {"producer": "producer", "exchange": exchange_type, "queue": "queue", "consumer": "consumer"}[kind]
    name = unique_name(topology, kind, vhost, base) if name is None else name
    problem = name_problem(topology, kind, vhost, name)
    if problem:
        raise EditRefused(problem)
    if vhost not in topology.vhost_names():
        from .model import Vhost

        topology.vhosts.append(Vhost(vhost))
    if kind == "producer":
        topology.producers.append(Producer(name, None, vhost, routing_key="", rate=1.0))
    elif kind == "exchange":
        if exchange_type not in EXCHANGE_TYPES:
            raise EditRefused(f"unknown exchange type '{exchange_type}'")
        topology.exchanges.append(Exchange(name, vhost, exchange_type))
    elif kind == "queue":
        topology.queues.append(Queue(name, vhost))
    else:
        topology.consumers.append(Consumer(name, None, vhost))
    nid = node_id(kind, vhost, name)
    topology.layout[nid] = _position(*position)
    return nid


def remove_nodes(topology: Topology, ids: Iterable[str]) -> None:
    """Remove nodes and every relation that depends on them."""
    for nid in list(ids):
        kind, vhost, name = split_node_id(nid)
        if kind == "producer":
            topology.producers = [p for p in topology.producers if p.id != nid]
        elif kind == "consumer":
            topology.consumers = [c for c in topology.consumers if c.id != nid]
        elif kind == "exchange":
            topology.exchanges = [x for x in topology.exchanges if x.id != nid]
            topology.bindings = [
                b
                for b in topology.bindings
                if not (
                    b.vhost == vhost
                    and (b.source == name or (b.destination_type == "exchange" and b.destination == name))
                )
            ]
            for producer in topology.producers:
                if producer.vhost == vhost and producer.exchange == name:
                    producer.exchange = None
            for queue in topology.queues:
                if queue.vhost == vhost and queue.arguments.get("x-dead-letter-exchange") == name:
                    queue.arguments.pop("x-dead-letter-exchange")
                    queue.arguments.pop("x-dead-letter-routing-key", None)
            for exchange in topology.exchanges:
                if exchange.vhost == vhost and exchange.arguments.get("alternate-exchange") == name:
                    exchange.arguments.pop("alternate-exchange")
        elif kind == "queue":
            topology.queues = [q for q in topology.queues if q.id != nid]
            topology.bindings = [
                b
                for b in topology.bindings
                if not (b.vhost == vhost and b.destination_type == "queue" and b.destination == name)
            ]
            for consumer in topology.consumers:
                if consumer.vhost == vhost and consumer.queue == name:
                    consumer.queue = None
        # A timeline step about something that is gone can no longer play.
        topology.timeline = [e for e in topology.timeline if not _timeline_mentions(e, kind, vhost, name)]
        topology.layout.pop(nid, None)


def _timeline_mentions(event: TimelineEvent, kind: str, vhost: str, name: str) -> bool:
    if event.vhost != vhost:
        return False
    if TIMELINE_ACTIONS.get(event.action) == kind and event.node == name:
        return True
    return event.action in ("bind", "unbind") and event.destination_type == kind and event.destination == name


def remove_edges(topology: Topology, edges: Iterable[str]) -> None:
    for edge in list(edges):
        relation, _, target = edge.partition(":")
        if relation == "publishes":
            producer = entity(topology, target)
            if isinstance(producer, Producer):
                producer.exchange = None
        elif relation == "consumes":
            consumer = entity(topology, target)
            if isinstance(consumer, Consumer):
                consumer.queue = None
        elif relation == "dead-letter":
            queue = entity(topology, target)
            if isinstance(queue, Queue):
                queue.arguments.pop("x-dead-letter-exchange", None)
                queue.arguments.pop("x-dead-letter-routing-key", None)
        elif relation == "alternate":
            exchange = entity(topology, target)
            if isinstance(exchange, Exchange):
                exchange.arguments.pop("alternate-exchange", None)
        else:
            binding = find_binding(topology, edge)
            if binding is None:
                raise EditRefused("that binding is not there")
            topology.bindings.remove(binding)


# -- connecting ----------------------------------------------------------------------------


def relations_between(topology: Topology, source: str, target: str) -> list[str]:
    """The relations a drag from ``source`` to ``target`` can make; refused with the reason otherwise."""
    s_kind, s_vhost, s_name = split_node_id(source)
    t_kind, t_vhost, t_name = split_node_id(target)
    if source == target:
        raise EditRefused("a node cannot connect to itself")
    if s_vhost != t_vhost:
        raise EditRefused(f"'{s_name}' and '{t_name}' are in different vhosts ('{s_vhost}', '{t_vhost}')")
    if t_kind == "producer":
        raise EditRefused("nothing connects into a producer: it only publishes")
    if s_kind == "consumer":
        raise EditRefused("a consumer only receives: connect a queue to it instead")
    if s_kind == "producer":
        if t_kind == "exchange":
            if target in _internal(topology):
                raise EditRefused(f"'{t_name}' is internal: RabbitMQ refuses publishes to it")
            return ["publishes"]
        if t_kind == "queue":
            return ["publishes"]  # through the default exchange, by the queue's name
        raise EditRefused("a producer publishes to an exchange (or, by name, to a queue), not to a consumer")
    if s_kind == "exchange":
        if s_name == "":
            raise EditRefused("the default exchange cannot be bound: it reaches every queue by its name already")
        if t_kind == "queue":
            return ["binding"]
        if t_kind == "exchange":
            if t_name == "":
                raise EditRefused("nothing can be bound to the default exchange")
            if s_name in BUILTIN_EXCHANGES:
                return ["binding"]  # a built-in exchange takes no arguments, so no alternate either
            return ["binding", "alternate"]
        raise EditRefused(
            "consumers read from queues: bind the exchange to a queue, then connect the queue to the consumer"
        )
    if s_kind == "queue":
        if t_kind == "consumer":
            return ["consumes"]
        if t_kind == "exchange":
            if t_name == "":
                raise EditRefused("the default exchange cannot be a dead-letter exchange here; pick a named exchange")
            return ["dead-letter"]
        raise EditRefused("a queue does not feed another queue: dead-letter it through an exchange")
    raise EditRefused(f"cannot connect a {s_kind} to a {t_kind}")


def _internal(topology: Topology) -> set[str]:
    ids = {x.id for x in topology.exchanges if x.internal}
    return ids | {node_id("exchange", v, "amq.rabbitmq.trace") for v in topology.vhost_names()}


def default_binding_key(topology: Topology, source: str, destination: str) -> tuple[str, dict[str, Any]]:
    """A first binding key that routes something: the queue's name for direct, '#' for topic."""
    exchange = entity(topology, source)
    exchange_type = (
        exchange.type if isinstance(exchange, Exchange) else BUILTIN_EXCHANGES.get(split_node_id(source)[2], "direct")
    )
    destination_name = split_node_id(destination)[2]
    if exchange_type == "topic":
        return "#", {}
    if exchange_type == "headers":
        return "", {"x-match": "all"}
    if exchange_type == "fanout":
        return "", {}
    return destination_name, {}


def connect(topology: Topology, source: str, target: str, relation: str | None = None) -> str:
    """Make the relation a drag from ``source`` to ``target`` asks for; returns the new edge's id."""
    allowed = relations_between(topology, source, target)
    relation = relation or allowed[0]
    if relation not in allowed:
        raise EditRefused(f"'{relation}' does not connect these two")
    _, vhost, s_name = split_node_id(source)
    t_kind, _, t_name = split_node_id(target)
    if relation == "publishes":
        producer = entity(topology, source)
        assert isinstance(producer, Producer)
        if t_kind == "queue":
            producer.exchange, producer.routing_key = "", t_name
            default = node_id("exchange", vhost, "")
            if default not in topology.layout and source in topology.layout and target in topology.layout:
                # The default exchange appears between the two, not wherever (0, 0) happens to be.
                (sx, sy), (tx, ty) = topology.layout[source], topology.layout[target]
                topology.layout[default] = ((sx + tx) / 2, (sy + ty) / 2)
        else:
            producer.exchange = t_name
        return f"publishes:{source}"
    if relation == "consumes":
        consumer = entity(topology, target)
        assert isinstance(consumer, Consumer)
        consumer.queue = s_name
        return f"consumes:{target}"
    if relation == "dead-letter":
        queue = entity(topology, source)
        assert isinstance(queue, Queue)
        trial = copy.deepcopy(queue)
        trial.arguments["x-dead-letter-exchange"] = t_name
        problem = _whole_problem(topology, trial)
        if problem:
            raise EditRefused(problem)
        queue.arguments["x-dead-letter-exchange"] = t_name
        return f"dead-letter:{source}"
    if relation == "alternate":
        exchange = entity(topology, source)
        if not isinstance(exchange, Exchange):
            raise EditRefused(f"'{s_name}' is built in; its alternate exchange cannot be set here")
        exchange.arguments["alternate-exchange"] = t_name
        return f"alternate:{source}"
    routing_key, arguments = default_binding_key(topology, source, target)
    binding = Binding(s_name, t_name, vhost, t_kind, routing_key, arguments)
    if any(model_binding_id(b) == model_binding_id(binding) for b in topology.bindings):
        shown = f" with key '{routing_key}'" if routing_key else ""
        raise EditRefused(f"'{s_name}' is already bound to '{t_name}'{shown}; edit that binding instead")
    topology.bindings.append(binding)
    return model_binding_id(binding)


def update_binding(topology: Topology, edge: str, routing_key: str, arguments: dict[str, Any] | None = None) -> str:
    binding = find_binding(topology, edge)
    if binding is None:
        raise EditRefused("that binding is not there")
    problem = binding_problem(topology, binding, routing_key, arguments if arguments is not None else binding.arguments)
    if problem:
        raise EditRefused(problem)
    changed = Binding(
        binding.source,
        binding.destination,
        binding.vhost,
        binding.destination_type,
        routing_key,
        dict(arguments if arguments is not None else binding.arguments),
        binding.extra,
    )
    if changed != binding and any(model_binding_id(b) == model_binding_id(changed) for b in topology.bindings):
        raise EditRefused(f"'{binding.source}' is already bound to '{binding.destination}' that way")
    topology.bindings[topology.bindings.index(binding)] = changed
    return model_binding_id(changed)


def binding_problem(topology: Topology, binding: Binding, routing_key: str, arguments: dict[str, Any]) -> str | None:
    if len(routing_key.encode()) > MAX_NAME_BYTES:
        return f"a routing key is at most {MAX_NAME_BYTES} bytes"
    exchange = entity(topology, binding.source_id)
    exchange_type = exchange.type if isinstance(exchange, Exchange) else BUILTIN_EXCHANGES.get(binding.source)
    if exchange_type == "headers":
        match = arguments.get("x-match", "all")
        if match not in ("all", "any", "all-with-x", "any-with-x"):
            return "x-match is all, any, all-with-x or any-with-x"
    return _header_value_problem(arguments)


# -- renaming -------------------------------------------------------------------------------


def rename_node(topology: Topology, nid: str, new_name: str) -> str:
    """Rename a node and every reference to it; returns the new id."""
    kind, vhost, old = split_node_id(nid)
    if new_name == old:
        return nid
    problem = name_problem(topology, kind, vhost, new_name, current=old)
    if problem:
        raise EditRefused(problem)
    node = entity(topology, nid)
    if node is None:
        raise EditRefused(f"there is no {kind} '{old}' to rename")
    node.name = new_name
    new_id = node_id(kind, vhost, new_name)
    if kind == "exchange":
        for b in topology.bindings:
            if b.vhost == vhost:
                if b.source == old:
                    b.source = new_name
                if b.destination_type == "exchange" and b.destination == old:
                    b.destination = new_name
        for p in topology.producers:
            if p.vhost == vhost and p.exchange == old:
                p.exchange = new_name
        for q in topology.queues:
            if q.vhost == vhost and q.arguments.get("x-dead-letter-exchange") == old:
                q.arguments["x-dead-letter-exchange"] = new_name
        for x in topology.exchanges:
            if x.vhost == vhost and x.arguments.get("alternate-exchange") == old:
                x.arguments["alternate-exchange"] = new_name
    elif kind == "queue":
        for b in topology.bindings:
            if b.vhost == vhost and b.destination_type == "queue" and b.destination == old:
                b.destination = new_name
        for c in topology.consumers:
            if c.vhost == vhost and c.queue == old:
                c.queue = new_name
        for p in topology.producers:
            if p.vhost == vhost and p.exchange == "" and p.routing_key == old:
                p.routing_key = new_name
    for event in topology.timeline:
        if event.vhost != vhost:
            continue
        if TIMELINE_ACTIONS.get(event.action) == kind and event.node == old:
            event.node = new_name
        if event.action in ("bind", "unbind") and event.destination_type == kind and event.destination == old:
            event.destination = new_name
    if nid in topology.layout:
        topology.layout[new_id] = topology.layout.pop(nid)
    return new_id


# -- properties -------------------------------------------------------------------------------

QUEUE_ARGUMENTS = {
    "message_ttl": "x-message-ttl",
    "expires": "x-expires",
    "max_length": "x-max-length",
    "max_length_bytes": "x-max-length-bytes",
    "overflow": "x-overflow",
    "dead_letter_exchange": "x-dead-letter-exchange",
    "dead_letter_routing_key": "x-dead-letter-routing-key",
    "max_priority": "x-max-priority",
    "single_active_consumer": "x-single-active-consumer",
    "queue_type": "x-queue-type",
    "delivery_limit": "x-delivery-limit",
}


def _number_problem(value: Any, low: float, high: float, whole: bool = False) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "a number is needed"
    if whole and not isinstance(value, int):
        return "a whole number is needed"
    if not low <= value <= high:
        return f"from {low:,.10g} to {high:,.10g}"
    return None


def update_node(topology: Topology, nid: str, **changes: Any) -> str:
    """Change a node's properties (all or nothing); returns its id, which a new name changes."""
    node = entity(topology, nid)
    if node is None:
        raise EditRefused("that node is not there")
    trial = copy.deepcopy(node)
    name = changes.pop("name", None)
    for field, value in changes.items():
        problem = _apply(topology, trial, field, value)
        if problem:
            raise EditRefused(f"{field.replace('_', ' ')}: {problem}")
    problem = _whole_problem(topology, trial)
    if problem:
        raise EditRefused(problem)
    collection = _collection(topology, split_node_id(nid)[0])
    collection[collection.index(node)] = trial
    if name is not None:
        return rename_node(topology, nid, name)
    return nid


def field_problem(topology: Topology, nid: str, field: str, value: Any) -> str | None:
    """Why a value cannot go in a field, for an inspector to show as it is typed (None if it can)."""
    node = entity(topology, nid)
    if node is None:
        return "that node is not there"
    if field == "name":
        kind, vhost, name = split_node_id(nid)
        return name_problem(topology, kind, vhost, value, current=name)
    trial = copy.deepcopy(node)
    return _apply(topology, trial, field, value) or _whole_problem(topology, trial)


def _apply(topology: Topology, node: Any, field: str, value: Any) -> str | None:
    if isinstance(node, Producer):
        if field == "exchange":
            if value is not None and value != "" and entity(topology, node_id("exchange", node.vhost, value)) is None:
                if value not in BUILTIN_EXCHANGES:
                    return f"no exchange '{value}' in vhost '{node.vhost}'"
            if value is not None and node_id("exchange", node.vhost, value) in _internal(topology):
                return f"'{value}' is internal: RabbitMQ refuses publishes to it"
        elif field == "routing_key":
            problem = template_problem(value) if isinstance(value, str) else "text is needed"
            if problem:
                return problem.replace("expected a routing-key template; ", "")
            longest = max((len(k.encode()) for k in expand_template(value)), default=0)
            if longest > 255:
                return f"a routing key is at most 255 bytes; this template gives keys of {longest}"
        elif field == "rate":
            if problem := _number_problem(value, 0, MAX_RATE):
                return problem
        elif field == "pattern":
            if value not in ("steady", "poisson"):
                return "steady or poisson"
        elif field == "headers":
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                return "name = value pairs are needed"
            if problem := _header_value_problem(value):
                return problem
        elif field == "body_size":
            if problem := _number_problem(value, 0, 128 * 1024 * 1024, whole=True):
                return problem
        elif field in ("persistent", "mandatory"):
            if not isinstance(value, bool):
                return "true or false"
        else:
            return f"a producer has no '{field}'"
        setattr(node, field, value)
        return None
    if isinstance(node, Consumer):
        limits = {
            "prefetch": (0, 65535, True),
            "work_ms": (0, MAX_WORK_MS, False),
            "work_spread_ms": (0, MAX_WORK_MS, False),
            "failure_rate": (0, 1, False),
            "restart_ms": (0, MAX_WORK_MS, False),
        }
        if field in limits:
            low, high, whole = limits[field]
            if problem := _number_problem(value, low, high, whole):
                return problem
        elif field == "ack_mode":
            if value not in ("manual", "auto"):
                return "manual or auto"
        elif field == "on_failure":
            if value not in FAILURE_ACTIONS:
                return ", ".join(FAILURE_ACTIONS)
        elif field == "queue":
            if value is not None and entity(topology, node_id("queue", node.vhost, value)) is None:
                return f"no queue '{value}' in vhost '{node.vhost}'"
        else:
            return f"a consumer has no '{field}'"
        setattr(node, field, value)
        return None
    if isinstance(node, Exchange):
        if field == "type":
            if value not in EXCHANGE_TYPES:
                return ", ".join(EXCHANGE_TYPES)
        elif field in ("durable", "auto_delete", "internal"):
            if not isinstance(value, bool):
                return "true or false"
            if field == "internal" and value:
                publishers = [p.name for p in topology.producers if p.vhost == node.vhost and p.exchange == node.name]
                if publishers:
                    return f"{publishers[0]} publishes to it, and RabbitMQ refuses publishes to an internal exchange"
        elif field == "alternate_exchange":
            if value in (None, ""):
                node.arguments.pop("alternate-exchange", None)
                return None
            if value == node.name:
                return "an exchange cannot be its own alternate"
            node.arguments["alternate-exchange"] = value
            return None
        else:
            return f"an exchange has no '{field}'"
        setattr(node, field, value)
        return None
    if isinstance(node, Queue):
        if field in ("durable", "auto_delete", "exclusive"):
            if not isinstance(value, bool):
                return "true or false"
            setattr(node, field, value)
            return None
        argument = QUEUE_ARGUMENTS.get(field)
        if argument is None:
            return f"a queue has no '{field}'"
        if value is None or value == "" or (field == "single_active_consumer" and value is False):
            node.arguments.pop(argument, None)
            if field == "queue_type":
                node.arguments.pop("x-delivery-limit", None)
            if field == "dead_letter_exchange":
                node.arguments.pop("x-dead-letter-routing-key", None)  # means nothing without one
        else:
            node.arguments[argument] = value
        return None
    return "that cannot be edited"


def _header_value_problem(values: dict[str, Any]) -> str | None:
    """Header values JSON (and so a definitions file) can hold: no NaN or infinity, anywhere."""

    def bad(value: Any) -> bool:
        if isinstance(value, float):
            return not math.isfinite(value)
        if isinstance(value, dict):
            return any(bad(v) for v in value.values())
        if isinstance(value, list | tuple):
            return any(bad(v) for v in value)
        return False

    for name, value in values.items():
        if bad(value):
            return f"{name}: a number must be finite (no NaN or infinity)"
    return None


def _whole_problem(topology: Topology, node: Any) -> str | None:
    """Checks across fields (the queue's arguments together, say)."""
    if isinstance(node, Queue):
        reader = _Reader("queue")
        try:
            _check_queue_arguments(reader, node.arguments, "$")
        except TopologyFileError as exc:
            where = exc.where.replace('$["', "").replace('"]', "").replace("$.", "")
            return f"{where}: {exc.problem}"
        if node.queue_type in ("quorum", "stream") and (not node.durable or node.auto_delete or node.exclusive):
            return f"a {node.queue_type} queue is durable, shared and not auto-delete"
        if node.exclusive and node.queue_type != "classic":
            return "only classic queues can be exclusive"
    return None


# -- moving and laying out ----------------------------------------------------------------------


def _position(x: float, y: float) -> tuple[float, float]:
    """Positions as the file keeps them (to a tenth), so what is saved reopens the same."""
    return (round(float(x), 1), round(float(y), 1))


def move_nodes(topology: Topology, positions: dict[str, tuple[float, float]]) -> None:
    for nid, position in positions.items():
        topology.layout[nid] = _position(*position)


def layout_all(topology: Topology) -> None:
    """Automatic layout: layered, left to right, for every node."""
    topology.layout.clear()
    topology.layout.update(layered_positions(topology))


# -- copy and paste -----------------------------------------------------------------------------

FRAGMENT_FORMAT = "queuecraft-fragment-1"
_FRAGMENT_KINDS = {
    "exchanges": Exchange,
    "queues": Queue,
    "bindings": Binding,
    "producers": Producer,
    "consumers": Consumer,
}


def copy_fragment(topology: Topology, ids: Iterable[str]) -> str:
    """The chosen nodes and the relations among them, as JSON text for the clipboard."""
    chosen = set(ids)
    fragment: dict[str, Any] = {
        "format": FRAGMENT_FORMAT,
        "exchanges": [asdict(x) for x in topology.exchanges if x.id in chosen],
        "queues": [asdict(q) for q in topology.queues if q.id in chosen],
        "bindings": [asdict(b) for b in topology.bindings if b.source_id in chosen and b.destination_id in chosen],
        "producers": [asdict(p) for p in topology.producers if p.id in chosen],
        "consumers": [asdict(c) for c in topology.consumers if c.id in chosen],
        "layout": {nid: list(pos) for nid, pos in topology.layout.items() if nid in chosen},
    }
    return json.dumps(fragment)


def paste_fragment(
    topology: Topology,
    text: str,
    offset: tuple[float, float] = (40.0, 40.0),
    centre: tuple[float, float] | None = None,
) -> list[str]:
    """Add copied nodes, under fresh names where names are taken; returns the new node ids.

    They land ``offset`` from where they were copied, or, with ``centre``, around
    that point. Relations among the copied nodes come along; relations to nodes
    that were not copied are kept when those nodes are here, and dropped otherwise.
    """
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != FRAGMENT_FORMAT:
            raise ValueError("not a fragment")
        part = {key: [cls(**item) for item in data.get(key, [])] for key, cls in _FRAGMENT_KINDS.items()}
        layout = {nid: (float(x), float(y)) for nid, (x, y) in data.get("layout", {}).items()}
        if not all(math.isfinite(v) for xy in layout.values() for v in xy):
            raise ValueError("positions must be finite")
        for items in part.values():
            for item in items:
                if not isinstance(getattr(item, "name", ""), str) or not isinstance(item.vhost, str):
                    raise ValueError("names and vhosts are text")
                for table in ("arguments", "headers", "extra"):
                    if not isinstance(getattr(item, table, {}), dict):
                        raise ValueError(f"{table} must be a table")
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise EditRefused("the clipboard holds no Queuecraft nodes") from exc
    if centre is not None and layout:
        xs = [x for x, _ in layout.values()]
        ys = [y for _, y in layout.values()]
        offset = (centre[0] - (min(xs) + max(xs)) / 2, centre[1] - (min(ys) + max(ys)) / 2)
    renamed: dict[str, str] = {}  # old node id -> new name
    added: list[str] = []

    taken: set[tuple[str, str, str]] = set()  # names this paste has given out already

    def fresh(kind: str, item: Any) -> None:
        old_id = item.id
        if name_problem(topology, kind, item.vhost, item.name) is not None or (kind, item.vhost, item.name) in taken:
            base, number = item.name, 1
            while True:
                candidate = unique_name(topology, kind, item.vhost, base if number == 1 else f"{base}-{number}")
                if (kind, item.vhost, candidate) not in taken:
                    break
                number += 1
            item.name = candidate
        taken.add((kind, item.vhost, item.name))
        renamed[old_id] = item.name
        x, y = layout.get(old_id, (0.0, 0.0))
        topology.layout[item.id] = _position(x + offset[0], y + offset[1])
        added.append(item.id)

    def target(kind: str, vhost: str, name: str | None) -> str | None:
        """A reference after the paste: to the pasted copy, or to what is already here, or to nothing."""
        if name is None:
            return None
        old = node_id(kind, vhost, name)
        if old in renamed:
            return renamed[old]
        if entity(topology, old) is not None or (kind == "exchange" and name in BUILTIN_EXCHANGES):
            return name
        return None

    for kind, key in (
        ("exchange", "exchanges"),
        ("queue", "queues"),
        ("producer", "producers"),
        ("consumer", "consumers"),
    ):
        for item in part[key]:
            fresh(kind, item)
    for x in part["exchanges"]:
        alternate = target("exchange", x.vhost, x.arguments.get("alternate-exchange"))
        if "alternate-exchange" in x.arguments:
            if alternate is None:
                x.arguments.pop("alternate-exchange")
            else:
                x.arguments["alternate-exchange"] = alternate
        topology.exchanges.append(x)
    for q in part["queues"]:
        dlx = target("exchange", q.vhost, q.arguments.get("x-dead-letter-exchange"))
        if "x-dead-letter-exchange" in q.arguments:
            if dlx is None:
                q.arguments.pop("x-dead-letter-exchange")
                q.arguments.pop("x-dead-letter-routing-key", None)
            else:
                q.arguments["x-dead-letter-exchange"] = dlx
        topology.queues.append(q)
    for b in part["bindings"]:
        b.source = renamed.get(node_id("exchange", b.vhost, b.source), b.source)
        b.destination = renamed.get(node_id(b.destination_type, b.vhost, b.destination), b.destination)
        topology.bindings.append(b)
    for p in part["producers"]:
        p.exchange = target("exchange", p.vhost, p.exchange)
        topology.producers.append(p)
    for c in part["consumers"]:
        c.queue = target("queue", c.vhost, c.queue)
        topology.consumers.append(c)
    for vhost in {split_node_id(n)[1] for n in added}:
        if vhost not in topology.vhost_names():
            from .model import Vhost

            topology.vhosts.append(Vhost(vhost))
    complete_layout(topology)
    return added
