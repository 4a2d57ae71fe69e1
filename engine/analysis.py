"""Problems a topology has before it runs: what can never happen, or will only pile up.

The analysis follows what the simulated producers can send: the routing keys
their templates can give (``{seq}`` stands for any one word) and their headers,
through bindings, exchange-to-exchange bindings, alternate exchanges and
dead-letter exchanges. Clients from outside (real AMQP clients) are not known
here, so "nothing reaches this queue" means "no simulated producer's messages".
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import networkx as nx

from .broker import Policy as BrokerPolicy
from .broker import applicable_policy
from .layout import topology_graph
from .model import BUILTIN_EXCHANGES, Binding, Exchange, Queue, Topology, expand_template, node_id
from .routing import headers_match, split_topic

ANY_WORD = "\0any"  # a word a {seq} part can be: it matches whatever a pattern wants there


@dataclass(frozen=True)
class Problem:
    node_id: str  # the node (or edge) to select
    code: str
    text: str


@dataclass(frozen=True)
class Traffic:
    routing_key: tuple[str, ...]  # the words; ANY_WORD where a template varies freely
    headers: tuple[tuple[str, object], ...]


def _key_words(key: str) -> tuple[str, ...]:
    return tuple(ANY_WORD if word == "*" else word for word in split_topic(key))


def topic_matches(pattern: str, words: tuple[str, ...]) -> bool:
    """Whether a binding pattern can match a key whose ANY_WORD words may be anything."""
    parts = split_topic(pattern)

    @functools.cache
    def match(i: int, j: int) -> bool:
        if i == len(parts):
            return j == len(words)
        if parts[i] == "#":
            return any(match(i + 1, k) for k in range(j, len(words) + 1))
        if j == len(words):
            return False
        return (parts[i] == "*" or words[j] == ANY_WORD or parts[i] == words[j]) and match(i + 1, j + 1)

    return match(0, 0)


def binding_matches(exchange_type: str, binding: Binding, traffic: Traffic) -> bool:
    if exchange_type == "fanout":
        return True
    if exchange_type == "topic":
        return topic_matches(binding.routing_key, traffic.routing_key)
    if exchange_type == "direct":
        words = traffic.routing_key
        if ANY_WORD not in words:
            return ".".join(words) == binding.routing_key
        parts = split_topic(binding.routing_key)
        return len(parts) == len(words) and all(w in (ANY_WORD, p) for p, w in zip(parts, words, strict=True))
    if exchange_type == "headers":
        return headers_match(binding.arguments, dict(traffic.headers))
    return False


def _exchange_type(topology: Topology, vhost: str, name: str) -> str | None:
    exchange = topology.exchange(vhost, name)
    if exchange is not None:
        return exchange.type
    return BUILTIN_EXCHANGES.get(name)


def find_problems(topology: Topology) -> list[Problem]:
    problems: list[Problem] = []
    arriving: dict[str, set[Traffic]] = {}  # exchange id -> what reaches it
    reached: set[str] = set()  # queue ids
    matched_bindings: set[int] = set()

    def send(vhost: str, exchange: str, traffic: Traffic, seen: frozenset[str]) -> None:
        xid = node_id("exchange", vhost, exchange)
        if xid in seen:
            return
        if traffic in arriving.setdefault(xid, set()):
            return
        arriving[xid].add(traffic)
        if exchange == "":
            qid = node_id("queue", vhost, ".".join(traffic.routing_key))
            if topology.queue(vhost, ".".join(traffic.routing_key)) is not None:
                reach(qid, traffic)
            return
        exchange_type = _exchange_type(topology, vhost, exchange)
        if exchange_type is None:
            return
        hit = False
        for binding in topology.bindings:
            if binding.vhost != vhost or binding.source != exchange:
                continue
            if binding_matches(exchange_type, binding, traffic):
                hit = True
                matched_bindings.add(id(binding))
                if binding.destination_type == "queue":
                    reach(binding.destination_id, traffic)
                else:
                    send(vhost, binding.destination, traffic, seen | {xid})
        declared = topology.exchange(vhost, exchange)
        alternate = declared.arguments.get("alternate-exchange") if declared is not None else None
        if not hit and isinstance(alternate, str):
            send(vhost, alternate, traffic, seen | {xid})

    def reach(qid: str, traffic: Traffic) -> None:
        if qid in reached:
            return
        reached.add(qid)
        queue = next(q for q in topology.queues if q.id == qid)
        dlx = queue.arguments.get("x-dead-letter-exchange")
        if isinstance(dlx, str):
            dlrk = queue.arguments.get("x-dead-letter-routing-key")
            dead = Traffic(_key_words(dlrk), traffic.headers) if isinstance(dlrk, str) else traffic
            send(queue.vhost, dlx, dead, frozenset())

    for producer in topology.producers:
        if producer.exchange is None:
            problems.append(
                Problem(producer.id, "producer-unconnected", "publishes nowhere: connect it to an exchange")
            )
            continue
        headers = tuple(sorted(producer.headers.items()))
        for key in expand_template(producer.routing_key):
            send(producer.vhost, producer.exchange, Traffic(_key_words(key), headers), frozenset())

    for consumer in topology.consumers:
        if consumer.queue is None:
            problems.append(Problem(consumer.id, "consumer-unconnected", "consumes nothing: connect a queue to it"))

    for exchange in topology.exchanges:
        own = [b for b in topology.bindings if b.vhost == exchange.vhost and b.source == exchange.name]
        if not own and "alternate-exchange" not in exchange.arguments:
            problems.append(
                Problem(exchange.id, "exchange-unbound", "has no bindings: every message it receives is unroutable")
            )
        shown = _shown_headers if exchange.type == "headers" else _shown
        lost = sorted({shown(t) for t in arriving.get(exchange.id, ()) if not _routes(topology, exchange, own, t)})
        if own and lost:
            if exchange.type == "headers":
                what = "messages with headers"
            else:
                what = "the routing key" if len(lost) == 1 else "the routing keys"
            problems.append(
                Problem(
                    exchange.id,
                    "unroutable-keys",
                    f"no binding takes {what} {_list(lost)}: those messages are unroutable",
                )
            )

    consumed = {c.queue_id for c in topology.consumers if c.queue_id is not None}
    # Without simulated producers in a vhost (an imported broker, say) there is no traffic to follow.
    producing = {p.vhost for p in topology.producers if p.exchange is not None}
    for queue in topology.queues:
        if queue.vhost not in producing:
            continue
        if queue.id not in reached:
            problems.append(
                Problem(queue.id, "queue-unreached", "no route reaches it from any producer: it stays empty")
            )
        elif queue.id not in consumed:
            limited = any(k in queue.arguments for k in ("x-message-ttl", "x-max-length", "x-max-length-bytes"))
            limited = limited or any(
                k in _policy_of(topology, queue) for k in ("message-ttl", "max-length", "max-length-bytes")
            )
            text = (
                "no consumer: messages wait until they expire or are dropped"
                if limited
                else "no consumer: it only grows"
            )
            problems.append(Problem(queue.id, "queue-unconsumed", text))

    for binding in topology.bindings:
        if id(binding) in matched_bindings or binding.source_id not in arriving:
            continue
        by_headers = _exchange_type(topology, binding.vhost, binding.source) == "headers"
        sent = sorted({(_shown_headers if by_headers else _shown)(t) for t in arriving[binding.source_id]})
        if by_headers:
            pairs = ", ".join(f"{k}={v!r}" for k, v in binding.arguments.items() if k != "x-match")
            what = f"x-match {binding.arguments.get('x-match', 'all')}: {pairs}" if pairs else "no header pairs"
        else:
            what = f"key '{binding.routing_key}'"
        problems.append(
            Problem(
                binding.destination_id,
                "binding-never-matches",
                f"the binding from '{binding.source}' ({what}) matches nothing "
                f"the producers send there ({_list(sent)})",
            )
        )

    problems.extend(_dead_letter_cycles(topology))
    return problems


def _routes(topology: Topology, exchange: Exchange, own: list[Binding], traffic: Traffic) -> bool:
    if "alternate-exchange" in exchange.arguments:
        return True
    return any(binding_matches(exchange.type, b, traffic) for b in own)


def _shown(traffic: Traffic) -> str:
    return "'" + ".".join("*" if w == ANY_WORD else w for w in traffic.routing_key) + "'"


def _shown_headers(traffic: Traffic) -> str:
    if not traffic.headers:
        return "{} (none)"
    return "{" + ", ".join(f"{k}: {v!r}" for k, v in traffic.headers) + "}"


def _list(items: list[str], limit: int = 4) -> str:
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f" and {len(items) - limit} more"


def _dead_letter_cycles(topology: Topology) -> list[Problem]:
    """Cycles a message can go round by dead-lettering alone (RabbitMQ drops it on the way round)."""
    graph = topology_graph(topology)
    loops = nx.DiGraph()
    loops.add_edges_from(
        (a, b) for a, b, relation in graph.edges(data="relation") if relation in ("dead-letter", "binding", "alternate")
    )
    problems = []
    seen: set[frozenset[str]] = set()
    for cycle in nx.simple_cycles(loops):
        if not any(
            graph.edges[a, b].get("relation") == "dead-letter"
            for a, b in zip(cycle, cycle[1:] + cycle[:1], strict=True)
        ):
            continue
        key = frozenset(cycle)
        if key in seen:
            continue
        seen.add(key)
        queues = [n for n in cycle if n.startswith("queue:")]
        path = " → ".join(n.split(":", 2)[2] for n in [*cycle, cycle[0]])
        problems.append(
            Problem(
                queues[0] if queues else cycle[0],
                "dead-letter-cycle",
                f"dead-letter cycle {path}: RabbitMQ drops a message that would go round it without a rejection",
            )
        )
        if len(problems) >= 20:
            break
    return problems


def _policy_of(topology: Topology, queue: Queue) -> dict[str, Any]:
    """The definition of the policy the broker would apply to a queue (empty: none)."""
    rules = []
    for p in topology.policies:
        if p.vhost == queue.vhost:
            try:
                rules.append(BrokerPolicy(p.vhost, p.name, p.pattern, p.definition, p.priority, p.apply_to))
            except re.error:
                continue  # said elsewhere: a pattern the broker refuses applies to nothing
    applied = applicable_policy(rules, "queue", queue.name, queue.queue_type)
    return applied.definition if applied is not None else {}
