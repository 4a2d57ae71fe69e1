"""The broker core: vhosts, exchanges, queues and bindings, and the publish path.

Synchronous and deterministic: every method changes state and returns, or
raises an :class:`engine.errors.AMQPError` carrying the reply code RabbitMQ
would close the channel with. Time comes from an injected clock.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator
from typing import Any

from . import errors
from .channel import Connection
from .clock import VirtualClock
from .errors import resource_description
from .message import Message
from .metrics import FlowLog
from .queues import Queue
from .routing import EXCHANGE_TYPES, Binding, Router, router_for

# Exchanges every vhost has from the start, as in RabbitMQ.
STANDARD_EXCHANGES = (
    ("", "direct", False),
    ("amq.direct", "direct", False),
    ("amq.fanout", "fanout", False),
    ("amq.topic", "topic", False),
    ("amq.headers", "headers", False),
    ("amq.match", "headers", False),
    ("amq.rabbitmq.trace", "topic", True),
)


class ExchangeStats:
    __slots__ = ("received", "routed", "unroutable")

    def __init__(self) -> None:
        self.received = 0  # messages that reached this exchange (published or via a binding)
        self.routed = 0  # ... and matched at least one of its bindings
        self.unroutable = 0  # ... and matched none

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class Exchange:
    def __init__(
        self,
        vhost: str,
        name: str,
        exchange_type: str,
        durable: bool = True,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> None:
        self.vhost = vhost
        self.name = name
        self.type = exchange_type
        self.durable = durable
        self.auto_delete = auto_delete
        self.internal = internal
        self.arguments = dict(arguments or {})
        self.node_id = f"exchange:{vhost}:{name}"
        self.router: Router = router_for(exchange_type)
        self.stats = ExchangeStats()
        self.bound_here: list[Binding] = []  # bindings whose destination is this exchange
        self.policy: Policy | None = None
        self.alternate_exchange: str | None = None
        self.apply_settings()

    @property
    def simulated(self) -> bool:
        return self.type in EXCHANGE_TYPES

    def apply_settings(self) -> None:
        alternate = self.arguments.get("alternate-exchange")
        if alternate is None and self.policy is not None:
            alternate = self.policy.definition.get("alternate-exchange")
        self.alternate_exchange = alternate


class Policy:
    def __init__(
        self,
        vhost: str,
        name: str,
        pattern: str,
        definition: dict[str, Any],
        priority: int = 0,
        apply_to: str = "all",
    ) -> None:
        self.vhost = vhost
        self.name = name
        self.pattern = pattern
        self.regex = re.compile(pattern)
        self.definition = dict(definition)
        self.priority = priority
        self.apply_to = apply_to

    def applies_to(self, kind: str, name: str) -> bool:
        if self.apply_to not in ("all", kind + "s"):
            return False
        return self.regex.search(name) is not None


class VirtualHost:
    def __init__(self, name: str) -> None:
        self.name = name
        self.exchanges: dict[str, Exchange] = {}
        self.queues: dict[str, Queue] = {}
        self.policies: dict[str, Policy] = {}


class PublishOutcome:
    __slots__ = ("message", "queues", "returned", "refused")

    def __init__(self, message: Message, queues: int, returned: bool, refused: bool) -> None:
        self.message = message
        self.queues = queues  # how many queues took a copy
        self.returned = returned  # mandatory and no route: basic.return
        self.refused = refused  # a queue refused it (reject-publish): confirm nack


class BrokerStats:
    __slots__ = ("published", "routed", "unroutable", "returned")

    def __init__(self) -> None:
        self.published = 0
        self.routed = 0
        self.unroutable = 0
        self.returned = 0


class Broker:
    def __init__(self, clock: VirtualClock | None = None, flow: FlowLog | None = None) -> None:
        self.clock = clock or VirtualClock()
        self.flow = flow or FlowLog()
        self.vhosts: dict[str, VirtualHost] = {}
        self.stats = BrokerStats()
        self.connections: list[Connection] = []
        self._msg_seq = 0
        self.add_vhost("/")

    # -- vhosts and connections ------------------------------------------------------

    def add_vhost(self, name: str) -> VirtualHost:
        vhost = self.vhosts.get(name)
        if vhost is not None:
            return vhost
        vhost = self.vhosts[name] = VirtualHost(name)
        for exchange_name, exchange_type, internal in STANDARD_EXCHANGES:
            vhost.exchanges[exchange_name] = Exchange(name, exchange_name, exchange_type, internal=internal)
        return vhost

    def get_vhost(self, name: str) -> VirtualHost:
        vhost = self.vhosts.get(name)
        if vhost is None:
            raise errors.not_allowed(f"vhost {name} not found")
        return vhost

    def connect(self, name: str, vhost: str = "/") -> Connection:
        connection = Connection(self, name, vhost)
        self.connections.append(connection)
        return connection

    def connection_closed(self, connection: Connection) -> None:
        if connection in self.connections:
            self.connections.remove(connection)
        for vhost in self.vhosts.values():
            for queue in list(vhost.queues.values()):
                if queue.exclusive_owner is connection:
                    self._delete_queue(vhost, queue)

    def queues_of_vhost(self, vhost: str) -> Iterable[Queue]:
        return self.get_vhost(vhost).queues.values()

    def all_queues(self) -> Iterator[Queue]:
        for vhost in self.vhosts.values():
            yield from vhost.queues.values()

    def all_exchanges(self) -> Iterator[Exchange]:
        for vhost in self.vhosts.values():
            yield from vhost.exchanges.values()

    # -- exchanges ------------------------------------------------------------------

    def exchange_declare(
        self,
        vhost: str,
        name: str,
        exchange_type: str = "direct",
        durable: bool = True,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: dict[str, Any] | None = None,
        passive: bool = False,
    ) -> Exchange:
        host = self.get_vhost(vhost)
        if name == "":
            raise errors.access_refused("operation not permitted on the default exchange")
        existing = host.exchanges.get(name)
        if passive:
            if existing is None:
                raise errors.not_found(f"no exchange '{name}' in vhost '{vhost}'")
            return existing
        if name.startswith("amq.") and existing is None:
            raise errors.access_refused(f"exchange name '{name}' contains reserved prefix 'amq.*'")
        arguments = dict(arguments or {})
        if existing is not None:
            what = resource_description("exchange", name, vhost)
            _check_equivalent(what, "type", exchange_type, existing.type)
            _check_equivalent(what, "durable", durable, existing.durable)
            _check_equivalent(what, "auto_delete", auto_delete, existing.auto_delete)
            _check_equivalent(what, "internal", internal, existing.internal)
            return existing
        if exchange_type not in EXCHANGE_TYPES:
            raise errors.command_invalid(f"unknown exchange type '{exchange_type}'")
        return self.add_exchange(vhost, name, exchange_type, durable, auto_delete, internal, arguments)

    def add_exchange(
        self,
        vhost: str,
        name: str,
        exchange_type: str,
        durable: bool = True,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> Exchange:
        """Create an exchange without AMQP's checks (topology files may hold plugin types)."""
        host = self.get_vhost(vhost)
        exchange = Exchange(vhost, name, exchange_type, durable, auto_delete, internal, arguments)
        exchange.policy = self._policy_for(host, "exchange", name)
        exchange.apply_settings()
        host.exchanges[name] = exchange
        return exchange

    def lookup_exchange(self, vhost: str, name: str) -> Exchange:
        exchange = self.get_vhost(vhost).exchanges.get(name)
        if exchange is None:
            raise errors.not_found(f"no exchange '{name}' in vhost '{vhost}'")
        return exchange

    def exchange_delete(self, vhost: str, name: str, if_unused: bool = False) -> None:
        host = self.get_vhost(vhost)
        if name == "":
            raise errors.access_refused("operation not permitted on the default exchange")
        if name.startswith("amq."):
            raise errors.access_refused(f"deletion of system exchange '{name}' in vhost '{vhost}' not allowed")
        exchange = host.exchanges.get(name)
        if exchange is None:
            return
        if if_unused and (exchange.router.bindings or exchange.bound_here):
            raise errors.precondition_failed(f"exchange '{name}' in vhost '{vhost}' in use")
        self._remove_exchange(host, exchange)

    def _remove_exchange(self, host: VirtualHost, exchange: Exchange) -> None:
        for binding in list(exchange.router.bindings):
            self._remove_binding(host, exchange, binding)
        for binding in list(exchange.bound_here):
            source = host.exchanges.get(binding.source)
            if source is not None:
                self._remove_binding(host, source, binding)
        del host.exchanges[exchange.name]

    # -- queues ---------------------------------------------------------------------

    def queue_declare(
        self,
        vhost: str,
        name: str = "",
        durable: bool = True,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
        passive: bool = False,
        exclusive_owner: Any = None,
        requester: Any = None,
    ) -> Queue:
        host = self.get_vhost(vhost)
        if passive:
            return self.lookup_queue(vhost, name, requester)
        if name == "":
            name = "amq.gen-" + secrets.token_urlsafe(16)[:22]
        elif name.startswith("amq."):
            raise errors.access_refused(f"queue name '{name}' contains reserved prefix 'amq.*'")
        arguments = dict(arguments or {})
        existing = host.queues.get(name)
        if existing is not None:
            self._check_exclusive_access(existing, requester)
            what = resource_description("queue", name, vhost)
            _check_equivalent(what, "durable", durable, existing.durable)
            _check_equivalent(what, "auto_delete", auto_delete, existing.auto_delete)
            _check_equivalent(what, "exclusive", exclusive_owner is not None, existing.exclusive_owner is not None)
            return existing
        return self.add_queue(vhost, name, durable, auto_delete, arguments, exclusive_owner)

    def add_queue(
        self,
        vhost: str,
        name: str,
        durable: bool = True,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
        exclusive_owner: Any = None,
    ) -> Queue:
        host = self.get_vhost(vhost)
        queue = Queue(self, vhost, name, durable, auto_delete, exclusive_owner, arguments)
        queue.policy = self._policy_for(host, "queue", name)
        queue.apply_settings()
        host.queues[name] = queue
        return queue

    def lookup_queue(self, vhost: str, name: str, requester: Any = None) -> Queue:
        queue = self.get_vhost(vhost).queues.get(name)
        if queue is None:
            raise errors.not_found(f"no queue '{name}' in vhost '{vhost}'")
        self._check_exclusive_access(queue, requester)
        return queue

    def _check_exclusive_access(self, queue: Queue, requester: Any) -> None:
        owner = queue.exclusive_owner
        if owner is not None and requester is not None and owner is not requester:
            raise errors.resource_locked(
                f"cannot obtain exclusive access to locked queue '{queue.name}' in vhost "
                f"'{queue.vhost}'. It could be originally declared on another connection or "
                "the exclusive property value does not match that of the original declaration."
            )

    def queue_delete(
        self,
        vhost: str,
        name: str,
        if_unused: bool = False,
        if_empty: bool = False,
        requester: Any = None,
    ) -> int:
        host = self.get_vhost(vhost)
        queue = host.queues.get(name)
        if queue is None:
            return 0
        self._check_exclusive_access(queue, requester)
        if if_unused and queue.consumers:
            raise errors.precondition_failed(f"queue '{name}' in vhost '{vhost}' in use")
        if if_empty and queue.depth:
            raise errors.precondition_failed(f"queue '{name}' in vhost '{vhost}' not empty")
        return self._delete_queue(host, queue)

    def _delete_queue(self, host: VirtualHost, queue: Queue) -> int:
        for consumer in list(queue.consumers):
            consumer.channel.consumers.pop(consumer.tag, None)
            queue.remove_consumer(consumer)
            if consumer.channel.on_cancel is not None:
                consumer.channel.on_cancel(consumer.tag)
        for exchange in host.exchanges.values():
            for binding in [
                b for b in exchange.router.bindings if b.destination_type == "queue" and b.destination == queue.name
            ]:
                self._remove_binding(host, exchange, binding)
        del host.queues[queue.name]
        return queue.delete()

    def queue_purge(self, vhost: str, name: str, requester: Any = None) -> int:
        return self.lookup_queue(vhost, name, requester).purge()

    def consumer_cancelled(self, queue: Queue) -> None:
        """An auto-delete queue goes when its last consumer does."""
        if queue.auto_delete and not queue.consumers and not queue.deleted:
            host = self.vhosts.get(queue.vhost)
            if host is not None and host.queues.get(queue.name) is queue:
                self._delete_queue(host, queue)

    # -- bindings -------------------------------------------------------------------

    def bind(
        self,
        vhost: str,
        source: str,
        destination: str,
        destination_type: str = "queue",
        routing_key: str = "",
        arguments: dict[str, Any] | None = None,
        requester: Any = None,
    ) -> Binding:
        host = self.get_vhost(vhost)
        if source == "" or (destination_type == "exchange" and destination == ""):
            raise errors.access_refused("operation not permitted on the default exchange")
        exchange = self.lookup_exchange(vhost, source)
        if destination_type == "queue":
            self.lookup_queue(vhost, destination, requester)
        else:
            self.lookup_exchange(vhost, destination)
        arguments = dict(arguments or {})
        binding = Binding(vhost, source, destination, destination_type, routing_key, arguments)
        for existing in exchange.router.bindings:
            if existing.key == binding.key:
                return existing
        exchange.router.validate(routing_key, arguments)
        exchange.router.add(binding)
        if destination_type == "exchange":
            host.exchanges[destination].bound_here.append(binding)
        return binding

    def unbind(
        self,
        vhost: str,
        source: str,
        destination: str,
        destination_type: str = "queue",
        routing_key: str = "",
        arguments: dict[str, Any] | None = None,
        requester: Any = None,
    ) -> None:
        host = self.get_vhost(vhost)
        if source == "" or (destination_type == "exchange" and destination == ""):
            raise errors.access_refused("operation not permitted on the default exchange")
        exchange = self.lookup_exchange(vhost, source)
        if destination_type == "queue":
            self.lookup_queue(vhost, destination, requester)
        else:
            self.lookup_exchange(vhost, destination)
        key = Binding(vhost, source, destination, destination_type, routing_key, arguments).key
        for binding in exchange.router.bindings:
            if binding.key == key:
                self._remove_binding(host, exchange, binding)
                return

    def _remove_binding(self, host: VirtualHost, exchange: Exchange, binding: Binding) -> None:
        exchange.router.remove(binding)
        if binding.destination_type == "exchange":
            target = host.exchanges.get(binding.destination)
            if target is not None and binding in target.bound_here:
                target.bound_here.remove(binding)

    def bindings(self, vhost: str) -> list[Binding]:
        return [b for x in self.get_vhost(vhost).exchanges.values() for b in x.router.bindings]

    # -- policies -------------------------------------------------------------------

    def set_policy(
        self,
        vhost: str,
        name: str,
        pattern: str,
        definition: dict[str, Any],
        priority: int = 0,
        apply_to: str = "all",
    ) -> Policy:
        host = self.get_vhost(vhost)
        try:
            policy = Policy(vhost, name, pattern, definition, priority, apply_to)
        except re.error as exc:
            raise errors.precondition_failed(f"invalid pattern '{pattern}': {exc}") from exc
        host.policies[name] = policy
        self._apply_policies(host)
        return policy

    def clear_policy(self, vhost: str, name: str) -> None:
        host = self.get_vhost(vhost)
        host.policies.pop(name, None)
        self._apply_policies(host)

    def _policy_for(self, host: VirtualHost, kind: str, name: str) -> Policy | None:
        best: Policy | None = None
        for policy in host.policies.values():
            if policy.applies_to(kind, name) and (best is None or policy.priority > best.priority):
                best = policy
        return best

    def _apply_policies(self, host: VirtualHost) -> None:
        for exchange in host.exchanges.values():
            exchange.policy = self._policy_for(host, "exchange", exchange.name)
            exchange.apply_settings()
        for queue in host.queues.values():
            queue.policy = self._policy_for(host, "queue", queue.name)
            queue.apply_settings()

    # -- publishing -------------------------------------------------------------------

    def publish(
        self,
        vhost: str,
        exchange: str,
        routing_key: str,
        properties: dict[str, Any] | None,
        body: bytes,
        mandatory: bool = False,
        origin: str | None = None,
    ) -> PublishOutcome:
        host = self.vhosts.get(vhost)
        if host is None:
            raise errors.not_allowed(f"vhost {vhost} not found")
        target = host.exchanges.get(exchange)
        if target is None:
            raise errors.not_found(f"no exchange '{exchange}' in vhost '{vhost}'")
        if target.internal:
            raise errors.access_refused(f"cannot publish to internal exchange '{exchange}' in vhost '{vhost}'")
        self._msg_seq += 1
        now = self.clock.now
        message = Message(self._msg_seq, exchange, routing_key, properties, body, now, origin)
        stats = self.stats
        stats.published += 1
        flow = self.flow
        if flow.enabled and origin is not None:
            flow.add(now, "published", origin, target.node_id, message)
        queues = self.route(host, target, message)
        if not queues:
            stats.unroutable += 1
            if mandatory:
                stats.returned += 1
            if flow.enabled:
                flow.add(now, "returned" if mandatory else "unroutable", target.node_id, origin, message)
            return PublishOutcome(message, 0, mandatory, False)
        stats.routed += 1
        refused = False
        taken = 0
        copies = [message]
        for _ in range(len(queues) - 1):
            copies.append(message.copy())
        for queue, copy in zip(queues, copies, strict=True):
            if queue.enqueue(copy):
                taken += 1
            else:
                refused = True
        return PublishOutcome(message, taken, False, refused)

    def route(self, host: VirtualHost, exchange: Exchange, message: Message) -> list[Queue]:
        """The queues a message reaches from ``exchange``, each once.

        Follows exchange-to-exchange bindings and alternate exchanges, each
        exchange visited at most once, as RabbitMQ's router does.
        """
        routing_key = message.routing_key
        flow = self.flow
        now = self.clock.now
        queues_by_name = host.queues
        if exchange.name == "":
            exchange.stats.received += 1
            queue = queues_by_name.get(routing_key)
            if queue is None:
                exchange.stats.unroutable += 1
                return []
            exchange.stats.routed += 1
            if flow.enabled:
                flow.add(now, "routed", exchange.node_id, queue.node_id, message)
            return [queue]
        found: list[Queue] = []
        found_names: set[str] = set()
        seen_exchanges = {exchange.name}
        worklist = [exchange]
        while worklist:
            current = worklist.pop(0)
            current.stats.received += 1
            headers = message.headers if current.type == "headers" else None
            matched = False
            for binding in current.router.match(routing_key, headers):
                matched = True
                binding.routed += 1
                if flow.enabled:
                    flow.add(now, "routed", current.node_id, binding.node_id, message)
                destination = binding.destination
                if binding.destination_type == "queue":
                    if destination not in found_names:
                        queue = queues_by_name.get(destination)
                        if queue is not None:
                            found_names.add(destination)
                            found.append(queue)
                elif destination not in seen_exchanges:
                    seen_exchanges.add(destination)
                    next_exchange = host.exchanges.get(destination)
                    if next_exchange is not None:
                        worklist.append(next_exchange)
            if matched:
                current.stats.routed += 1
                continue
            current.stats.unroutable += 1
            alternate = current.alternate_exchange
            if alternate is not None and alternate not in seen_exchanges:
                seen_exchanges.add(alternate)
                alternate_exchange = host.exchanges.get(alternate)
                if alternate_exchange is not None:
                    if flow.enabled:
                        flow.add(now, "routed", current.node_id, alternate_exchange.node_id, message)
                    worklist.append(alternate_exchange)
        return found

    # -- dead-lettering -----------------------------------------------------------------

    def dead_letter(self, queue: Queue, message: Message, reason: str) -> None:
        """Republish a message that left ``queue`` for ``reason`` to its dead-letter exchange."""
        exchange_name = queue.dead_letter_exchange
        if exchange_name is None:
            return
        host = self.vhosts.get(queue.vhost)
        if host is None:
            return
        exchange = host.exchanges.get(exchange_name)
        if exchange is None:
            return
        routing_key = queue.dead_letter_routing_key
        if routing_key is None:
            routing_key = message.routing_key
        dead = message.copy()
        dead.routing_key = routing_key
        dead.redelivered = False
        dead.properties = _with_death(message, queue, reason, self.epoch + self.clock.now)
        queue.stats.dead_lettered += 1
        now = self.clock.now
        if self.flow.enabled:
            self.flow.add(now, "dead_lettered", queue.node_id, exchange.node_id, dead)
        targets = self.route(host, exchange, dead)
        if reason != "rejected":
            targets = [t for t in targets if not _is_cycle(t.name, dead)]
        copies = [dead] + [dead.copy() for _ in range(len(targets) - 1)]
        for target, copy in zip(targets, copies, strict=True):
            target.enqueue(copy)

    epoch = 1_700_000_000.0  # wall time of virtual zero, for x-death timestamps

    def record_flow(self, kind: str, source: str | None, target: str | None, message: Message) -> None:
        if self.flow.enabled:
            self.flow.add(self.clock.now, kind, source, target, message)


def _check_equivalent(what: str, field: str, received: Any, current: Any) -> None:
    if received != current:
        raise errors.precondition_failed(
            f"inequivalent arg '{field}' for {what}: received '{_erl(received)}' but current is '{_erl(current)}'"
        )


def _erl(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _with_death(message: Message, queue: Queue, reason: str, timestamp: float) -> dict[str, Any]:
    """New properties carrying the x-death history RabbitMQ writes on dead-lettering."""
    properties = dict(message.properties or {})
    headers = dict(properties.get("headers") or {})
    deaths = [dict(d) for d in headers.get("x-death") or []]
    routing_keys = [message.routing_key]
    for entry in deaths:
        if entry.get("queue") == queue.name and entry.get("reason") == reason:
            deaths.remove(entry)
            entry["count"] = entry.get("count", 1) + 1
            entry["time"] = int(timestamp)
            deaths.insert(0, entry)
            break
    else:
        entry = {
            "count": 1,
            "reason": reason,
            "queue": queue.name,
            "time": int(timestamp),
            "exchange": message.exchange,
            "routing-keys": routing_keys,
        }
        expiration = properties.get("expiration")
        if expiration is not None:
            entry["original-expiration"] = expiration
        deaths.insert(0, entry)
    if "x-first-death-reason" not in headers:
        headers["x-first-death-reason"] = reason
        headers["x-first-death-queue"] = queue.name
        headers["x-first-death-exchange"] = message.exchange
    headers["x-death"] = deaths
    properties["headers"] = headers
    properties.pop("expiration", None)
    return properties


def _is_cycle(queue_name: str, message: Message) -> bool:
    """A message dead-lettered back into a queue it died in, with no rejection between."""
    for entry in message.headers.get("x-death") or []:
        if entry.get("reason") == "rejected":
            return False
        if entry.get("queue") == queue_name:
            return True
    return False
