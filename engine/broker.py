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
from .arguments import (
    EQUIVALENT_EXCHANGE_ARGUMENTS,
    EQUIVALENT_QUEUE_ARGUMENTS,
    check_equivalent_arguments,
    check_exchange_arguments,
    check_expiration,
    check_queue_arguments,
    check_queue_type,
)
from .channel import Connection
from .clock import VirtualClock
from .errors import resource_description
from .message import LongLong, Message, Timestamp
from .metrics import FlowLog, LatencyRecorder
from .model import node_id
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
    __slots__ = ("received", "routed", "alternated", "unroutable")

    def __init__(self) -> None:
        self.received = 0  # messages that reached this exchange (published or via a binding)
        self.routed = 0  # ... and matched at least one of its bindings
        self.alternated = 0  # ... matched none and went on to the alternate exchange
        self.unroutable = 0  # ... matched none and had nowhere else to go

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
        self.node_id = node_id("exchange", vhost, name)
        self.router: Router = router_for(exchange_type)
        self.is_headers = exchange_type == "headers"
        self.stats = ExchangeStats()
        self.bound_here: list[Binding] = []  # bindings whose destination is this exchange
        self.exchange_bindings = 0  # of its own bindings, how many lead to exchanges
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


# Policy keys the engine acts on; any other (ha-mode, federation-upstream, ...) is kept
# and reported as not simulated.
SIMULATED_POLICY_KEYS = frozenset(
    {
        "message-ttl",
        "expires",
        "max-length",
        "max-length-bytes",
        "overflow",
        "dead-letter-exchange",
        "dead-letter-routing-key",
        "delivery-limit",
        "alternate-exchange",
    }
)


QUEUE_TYPE_TARGETS = {"classic_queues": "classic", "quorum_queues": "quorum", "streams": "stream"}

# A queue type passes over a whole policy that sets a key it cannot take (RabbitMQ 3.10's
# is_policy_applicable): the queue gets the next policy that matches instead.
_STREAM_ONLY_KEYS = frozenset({"max-age", "stream-max-segment-size-bytes"})
_MIRRORING_KEYS = frozenset(
    {"ha-mode", "ha-params", "ha-sync-mode", "ha-promote-on-shutdown", "ha-promote-on-failure", "ha-sync-batch-size"}
)
POLICY_KEYS_REFUSED_BY_TYPE = {
    "classic": _STREAM_ONLY_KEYS | {"delivery-limit", "dead-letter-strategy"},
    "quorum": _STREAM_ONLY_KEYS | _MIRRORING_KEYS | {"queue-mode", "queue-master-locator"},
}

# A group that repeats and is itself repeated, as in (a+)+ or (a|aa)*: Python's regex
# engine can take exponential time on such a pattern, so it is refused.
_NESTED_REPETITION = re.compile(
    r"\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)[+*{]|\((?:[^()\\]|\\.)*\|(?:[^()\\]|\\.)*\)[+*{]"
)


def applicable_policy(policies: Iterable[Policy], kind: str, name: str, queue_type: str = "classic") -> Policy | None:
    """The policy RabbitMQ applies to an exchange or queue: the highest priority of those that match."""
    best: Policy | None = None
    for policy in policies:
        if policy.applies_to(kind, name, queue_type) and (best is None or policy.priority > best.priority):
            best = policy
    return best


def check_policy(pattern: str, definition: dict[str, Any]) -> None:
    """Refuse (406) a policy the engine cannot apply: a bad pattern or a bad value."""
    if _NESTED_REPETITION.search(pattern):
        raise errors.precondition_failed(
            f"pattern '{pattern}' repeats a repeated group; Queuecraft refuses it "
            "because matching it can take exponential time"
        )
    try:
        re.compile(pattern)
    except re.error as exc:
        raise errors.precondition_failed(f"invalid pattern '{pattern}': {exc}") from exc
    for key, value in definition.items():
        problem = policy_value_problem(key, value)
        if problem:
            raise errors.precondition_failed(f"Validation failed\n\n{problem}")


def policy_value_problem(key: str, value: Any) -> str | None:
    whole = isinstance(value, int) and not isinstance(value, bool)
    if key in ("message-ttl", "max-length", "max-length-bytes", "delivery-limit") and not (whole and value >= 0):
        return f"{value!r} is not a valid {key} (a whole number from 0 up)"
    if key == "expires" and not (whole and value >= 1):
        return f"{value!r} is not a valid expires (a whole number of milliseconds from 1 up)"
    if key in ("dead-letter-exchange", "dead-letter-routing-key", "alternate-exchange") and not isinstance(value, str):
        return f"{value!r} is not a valid {key} (a name)"
    if key == "overflow" and value not in ("drop-head", "reject-publish", "reject-publish-dlx"):
        return f"{value!r} is not a valid overflow (drop-head, reject-publish or reject-publish-dlx)"
    return None


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

    @property
    def unsimulated_keys(self) -> list[str]:
        return sorted(key for key in self.definition if key not in SIMULATED_POLICY_KEYS)

    def applies_to(self, kind: str, name: str, queue_type: str = "classic") -> bool:
        apply_to = self.apply_to
        if apply_to == "all" or apply_to == kind + "s":
            pass
        elif kind == "queue" and apply_to in QUEUE_TYPE_TARGETS:
            # Newer brokers' apply-to values: only queues of that type.
            if QUEUE_TYPE_TARGETS[apply_to] != queue_type:
                return False
        else:
            return False
        if kind == "queue" and not POLICY_KEYS_REFUSED_BY_TYPE.get(queue_type, frozenset()).isdisjoint(self.definition):
            return False
        return self.regex.search(name) is not None


class VirtualHost:
    def __init__(self, name: str) -> None:
        self.name = name
        self.exchanges: dict[str, Exchange] = {}
        self.queues: dict[str, Queue] = {}
        self.policies: dict[str, Policy] = {}


class PublishOutcome:
    __slots__ = ("message", "returned", "refused")

    def __init__(self, message: Message | None, returned: bool, refused: bool) -> None:
        self.message = message  # set when returned, for the basic.return
        self.returned = returned  # mandatory and no route: basic.return
        self.refused = refused  # a queue refused it (reject-publish): confirm nack


# The outcome of nearly every publish, shared rather than made anew each time.
ROUTED = PublishOutcome(None, False, False)
UNROUTED = PublishOutcome(None, False, False)


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
        self.latency = LatencyRecorder()
        self.vhosts: dict[str, VirtualHost] = {}
        self.stats = BrokerStats()
        self.connections: list[Connection] = []
        # Dead letters waiting while one publish reaches all its queues (see _enqueue_all).
        self._held_dead_letters: list[tuple[Queue, Message, str]] | None = None
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

    def delete_vhost(self, name: str) -> None:
        """Delete a vhost and everything in it; its connections close first."""
        host = self.vhosts.get(name)
        if host is None:
            raise errors.not_found(f"no vhost '{name}'")
        for connection in [c for c in self.connections if c.vhost == name]:
            connection.close()
        for queue in list(host.queues.values()):
            self._delete_queue(host, queue)
        del self.vhosts[name]

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
        check_exchange_arguments(name, vhost, arguments)
        if existing is not None:
            what = resource_description("exchange", name, vhost)
            _check_equivalent(what, "type", exchange_type, existing.type)
            _check_equivalent(what, "durable", durable, existing.durable)
            _check_equivalent(what, "auto_delete", auto_delete, existing.auto_delete)
            _check_equivalent(what, "internal", internal, existing.internal)
            check_equivalent_arguments(what, existing.arguments, arguments, EQUIVALENT_EXCHANGE_ARGUMENTS)
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
        if if_unused and exchange.router.bindings:
            raise errors.precondition_failed(f"exchange '{name}' in vhost '{vhost}' in use")
        self._remove_exchange(host, exchange)

    def _remove_exchange(self, host: VirtualHost, exchange: Exchange) -> None:
        for binding in list(exchange.router.bindings):
            self._remove_binding(host, exchange, binding, cascade=False)
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
            queue = self.lookup_queue(vhost, name, requester)
            queue.touch()
            return queue
        if name == "":
            name = "amq.gen-" + secrets.token_urlsafe(16)[:22]
        elif name.startswith("amq."):
            raise errors.access_refused(f"queue name '{name}' contains reserved prefix 'amq.*'")
        arguments = dict(arguments or {})
        check_queue_arguments(name, vhost, arguments)
        if exclusive_owner is not None:
            durable = False  # RabbitMQ never keeps an exclusive queue across restarts
        what = resource_description("queue", name, vhost)
        existing = host.queues.get(name)
        if existing is not None:
            # Exclusivity must match exactly (owner for owner) before anything else is compared.
            if existing.exclusive_owner is not exclusive_owner:
                raise _locked(existing)
            _check_equivalent(what, "durable", durable, existing.durable)
            _check_equivalent(what, "auto_delete", auto_delete, existing.auto_delete)
            if arguments.get("x-queue-type", "classic") != existing.queue_type:
                check_equivalent_arguments(what, existing.arguments, arguments, ("x-queue-type",))
            check_equivalent_arguments(
                what, existing.arguments, arguments, EQUIVALENT_QUEUE_ARGUMENTS[existing.queue_type]
            )
            existing.touch()
            return existing
        check_queue_type(
            what, arguments.get("x-queue-type", "classic"), durable, auto_delete, exclusive_owner is not None, arguments
        )
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
        queue.policy = self._policy_for(host, "queue", name, queue.queue_type)
        queue.apply_settings()
        host.queues[name] = queue
        queue.touch()
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
            raise _locked(queue)

    def expire_queue(self, queue: Queue) -> None:
        """x-expires: the queue went unused for its whole lease."""
        host = self.vhosts.get(queue.vhost)
        if host is not None and host.queues.get(queue.name) is queue:
            self._delete_queue(host, queue)

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
        if queue.quorum and (if_unused or if_empty):
            flag = "if-unused" if if_unused else "if-empty"
            raise errors.ConnectionError(
                540,
                f"cannot delete queue '{name}' in vhost '{vhost}'. queue.delete operations with {flag} "
                "flag set are not supported by quorum queues",
            )
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
        for exchange in list(host.exchanges.values()):
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
        # RabbitMQ checks that both ends exist (404) and the arguments (406) before the
        # exclusive lock of another connection's queue (405).
        queue = self.lookup_queue(vhost, destination) if destination_type == "queue" else None
        if queue is None:
            self.lookup_exchange(vhost, destination)
        exchange = self.lookup_exchange(vhost, source)
        arguments = dict(arguments or {})
        exchange.router.validate(routing_key, arguments)
        if queue is not None:
            self._check_exclusive_access(queue, requester)
        binding = Binding(vhost, source, destination, destination_type, routing_key, arguments)
        for existing in exchange.router.bindings:
            if existing.key == binding.key:
                return existing
        exchange.router.add(binding)
        if destination_type == "exchange":
            host.exchanges[destination].bound_here.append(binding)
            exchange.exchange_bindings += 1
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
    ) -> Binding | None:
        """Remove a binding; the one removed, or None when there was none (which is no error)."""
        host = self.get_vhost(vhost)
        if source == "" or (destination_type == "exchange" and destination == ""):
            raise errors.access_refused("operation not permitted on the default exchange")
        # RabbitMQ 3.10 answers unbind-ok when the binding (or either end) does not
        # exist; only a binding that is there is checked against exclusivity.
        exchange = host.exchanges.get(source)
        if exchange is None:
            return None
        key = Binding(vhost, source, destination, destination_type, routing_key, arguments).key
        for binding in exchange.router.bindings:
            if binding.key == key:
                if destination_type == "queue":
                    self.lookup_queue(vhost, destination, requester)
                self._remove_binding(host, exchange, binding)
                return binding
        return None

    def _remove_binding(self, host: VirtualHost, exchange: Exchange, binding: Binding, cascade: bool = True) -> None:
        exchange.router.remove(binding)
        if (
            cascade
            and exchange.auto_delete
            and not exchange.router.bindings
            and host.exchanges.get(exchange.name) is exchange
        ):
            # An auto-delete exchange goes when its last binding does (not before its first).
            self._remove_exchange(host, exchange)
        if binding.destination_type == "exchange":
            exchange.exchange_bindings -= 1
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
        check_policy(pattern, definition)
        policy = Policy(vhost, name, pattern, definition, priority, apply_to)
        host.policies[name] = policy
        self._apply_policies(host)
        return policy

    def clear_policy(self, vhost: str, name: str) -> None:
        host = self.get_vhost(vhost)
        host.policies.pop(name, None)
        self._apply_policies(host)

    def _policy_for(self, host: VirtualHost, kind: str, name: str, queue_type: str = "classic") -> Policy | None:
        return applicable_policy(host.policies.values(), kind, name, queue_type)

    def _apply_policies(self, host: VirtualHost) -> None:
        for exchange in host.exchanges.values():
            exchange.policy = self._policy_for(host, "exchange", exchange.name)
            exchange.apply_settings()
        for queue in list(host.queues.values()):
            policy = self._policy_for(host, "queue", queue.name, queue.queue_type)
            if policy is not queue.policy or queue.policy is not None:
                queue.policy = policy
                queue.policy_changed()

    # -- publishing -------------------------------------------------------------------

    def restart(self) -> tuple[int, int]:
        """Go down and come back, as a RabbitMQ node restart does: every connection drops (their
        unacked messages go back to their queues, redelivered), non-durable and exclusive queues
        and non-durable exchanges are gone, durable classic queues keep only their persistent
        messages, quorum queues keep everything. Returns (queues lost, messages lost)."""
        for connection in list(self.connections):
            connection.close()
        queues_lost = messages_lost = 0
        for queue in list(self.all_queues()):
            if not queue.durable or queue.exclusive_owner is not None:
                queues_lost += 1
                messages_lost += queue.depth
                self.queue_delete(queue.vhost, queue.name)
            else:
                messages_lost += queue.recover_after_restart()
        for exchange in list(self.all_exchanges()):
            if not exchange.durable and exchange.name != "" and not exchange.name.startswith("amq."):
                self.exchange_delete(exchange.vhost, exchange.name)
        return queues_lost, messages_lost

    @property
    def published_count(self) -> int:
        """Messages published so far; message ids count up from 1."""
        return self.stats.published

    def publish(
        self,
        vhost: str,
        exchange: str,
        routing_key: str,
        properties: dict[str, Any] | None,
        body: bytes,
        mandatory: bool = False,
        origin: str | None = None,
        encoded: bytes | None = None,
    ) -> PublishOutcome:
        """Route a message; ``encoded`` is its properties as they came off the wire, if they did."""
        host = self.vhosts.get(vhost)
        if host is None:
            raise errors.not_allowed(f"vhost {vhost} not found")
        target = host.exchanges.get(exchange)
        if target is None:
            raise errors.not_found(f"no exchange '{exchange}' in vhost '{vhost}'")
        if target.internal:
            raise errors.access_refused(f"cannot publish to internal exchange '{exchange}' in vhost '{vhost}'")
        routing_keys = None
        bcc: tuple[str, ...] = ()
        if properties is not None:
            if "expiration" in properties:
                check_expiration(properties["expiration"])
            mode = properties.get("delivery_mode")
            if mode is not None and mode not in (1, 2):
                raise errors.precondition_failed(f"invalid message: {{delivery_mode_unknown,{mode}}}")
            headers = properties.get("headers")
            if headers and ("CC" in headers or "BCC" in headers):
                routing_keys = [routing_key, *_key_list(headers.get("CC")), *_key_list(headers.get("BCC"))]
                if "BCC" in headers:
                    # BCC routes the message but is never seen by consumers.
                    bcc = tuple(_key_list(headers.get("BCC")))
                    properties = {**properties, "headers": {k: v for k, v in headers.items() if k != "BCC"}}
                    encoded = None
        stats = self.stats
        stats.published = msg_id = stats.published + 1
        now = self.clock.now
        message = Message(
            msg_id,
            exchange,
            routing_key,
            properties,
            body,
            now,
            origin,
            None if encoded is None else (properties, encoded),
        )
        if bcc:
            message.bcc = bcc
        flow = self.flow
        if flow.enabled and origin is not None:
            flow.add(now, "published", origin, target.node_id, message)
        queues = self.route(host, target, message, routing_keys)
        if not queues:
            stats.unroutable += 1
            if mandatory:
                stats.returned += 1
            if flow.enabled:
                if mandatory:
                    flow.add(now, "returned", target.node_id, origin, message, "312 NO_ROUTE")
                else:
                    flow.add(now, "unroutable", target.node_id, None, message)
            return PublishOutcome(message, True, False) if mandatory else UNROUTED
        stats.routed += 1
        if len(queues) == 1:
            return ROUTED if queues[0].enqueue(message) else PublishOutcome(None, False, True)
        return PublishOutcome(None, False, True) if self._enqueue_all(queues, message) else ROUTED

    def _enqueue_all(self, queues: list[Queue], message: Message) -> bool:
        """Give each queue a copy; True when one of them refused it. The dead letters this
        causes (a length limit pushing out a head, say) are sent once every queue has its
        copy, as in RabbitMQ, where the queues hear of the publish before of its fallout."""
        copies = [message] + [message.copy() for _ in range(len(queues) - 1)]
        outermost = self.hold_dead_letters()
        refused = False
        try:
            for queue, copy in zip(queues, copies, strict=True):
                if not queue.enqueue(copy):
                    refused = True
        finally:
            if outermost:
                self.release_dead_letters()
        return refused

    def hold_dead_letters(self) -> bool:
        """Keep dead letters back until ``release_dead_letters``; True for the outermost hold.

        What one operation sets off (a publish reaching several queues, a nack of several
        messages) happens breadth first, as in RabbitMQ: every queue hears of the operation
        before the dead letters it causes travel on, and those before the ones they cause."""
        if self._held_dead_letters is not None:
            return False
        self._held_dead_letters = []
        return True

    def release_dead_letters(self) -> None:
        held = self._held_dead_letters
        assert held is not None
        try:
            index = 0
            while index < len(held):
                self._dead_letter_now(*held[index])
                index += 1
        finally:
            self._held_dead_letters = None

    def route(
        self, host: VirtualHost, exchange: Exchange, message: Message, routing_keys: list[str] | None = None
    ) -> list[Queue]:
        """The queues a message reaches from ``exchange``, each once.

        Follows exchange-to-exchange bindings and alternate exchanges, each
        exchange visited at most once, as RabbitMQ's router does. A message with
        CC or BCC headers is routed by each of its ``routing_keys``.
        """
        if routing_keys is not None:
            return self._route_keys(host, exchange, message, routing_keys)
        routing_key = message.routing_key
        flow = self.flow
        if exchange.name == "":
            exchange.stats.received += 1
            queue = host.queues.get(routing_key)
            if queue is None:
                exchange.stats.unroutable += 1
                return []
            exchange.stats.routed += 1
            if flow.enabled:
                flow.add(self.clock.now, "routed", exchange.node_id, queue.node_id, message)
            return [queue]
        if not exchange.exchange_bindings:
            # The common case: one exchange whose bindings all lead to queues.
            matched = exchange.router.match(routing_key, message.headers if exchange.is_headers else None)
            if matched:
                stats = exchange.stats
                stats.received += 1
                stats.routed += 1
                if len(matched) == 1:
                    binding = matched[0]  # type: ignore[index]
                    binding.routed += 1
                    if flow.enabled:
                        flow.add(
                            self.clock.now,
                            "routed",
                            exchange.node_id,
                            binding.node_id,
                            message,
                            binding.destination_node,
                        )
                    queue = host.queues.get(binding.destination)
                    return [queue] if queue is not None else []
                now = self.clock.now
                queues_by_name = host.queues
                found = []
                seen: set[str] = set()
                for binding in matched:
                    binding.routed += 1
                    if flow.enabled:
                        flow.add(now, "routed", exchange.node_id, binding.node_id, message, binding.destination_node)
                    if binding.destination not in seen:
                        seen.add(binding.destination)
                        queue = queues_by_name.get(binding.destination)
                        if queue is not None:
                            found.append(queue)
                return found
        return self._route_keys(host, exchange, message, [routing_key])

    def _route_keys(
        self, host: VirtualHost, exchange: Exchange, message: Message, routing_keys: list[str]
    ) -> list[Queue]:
        flow = self.flow
        now = self.clock.now
        queues_by_name = host.queues
        found: list[Queue] = []
        found_names: set[str] = set()
        if exchange.name == "":
            exchange.stats.received += 1
            for key in routing_keys:
                queue = queues_by_name.get(key)
                if queue is not None and key not in found_names:
                    found_names.add(key)
                    found.append(queue)
                    if flow.enabled:
                        flow.add(now, "routed", exchange.node_id, queue.node_id, message)
            if found:
                exchange.stats.routed += 1
            else:
                exchange.stats.unroutable += 1
            return found
        seen_exchanges = {exchange.name}
        worklist = [exchange]
        while worklist:
            current = worklist.pop(0)
            current.stats.received += 1
            matched = False
            for binding in _matches(current, routing_keys, message):
                matched = True
                binding.routed += 1
                if flow.enabled:
                    flow.add(now, "routed", current.node_id, binding.node_id, message, binding.destination_node)
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
            alternate = current.alternate_exchange
            alternate_exchange = host.exchanges.get(alternate) if alternate is not None else None
            if alternate_exchange is not None and alternate not in seen_exchanges:
                seen_exchanges.add(alternate_exchange.name)
                current.stats.alternated += 1
                if flow.enabled:
                    flow.add(now, "routed", current.node_id, alternate_exchange.node_id, message)
                worklist.append(alternate_exchange)
            else:
                current.stats.unroutable += 1
        return found

    # -- dead-lettering -----------------------------------------------------------------

    def dead_letter(self, queue: Queue, message: Message, reason: str) -> None:
        """Republish a message that left ``queue`` for ``reason`` to its dead-letter exchange.

        A dead-letter exchange that does not exist drops the message silently, as
        RabbitMQ does; so does a cycle back into a queue the message already died
        in, unless a rejection happened on the way.
        """
        if self._held_dead_letters is not None:
            self._held_dead_letters.append((queue, message, reason))
            return
        self._dead_letter_now(queue, message, reason)

    def _dead_letter_now(self, queue: Queue, message: Message, reason: str) -> None:
        exchange_name = queue.dead_letter_exchange
        if exchange_name is None:
            return
        host = self.vhosts.get(queue.vhost)
        if host is None:
            return
        exchange = host.exchanges.get(exchange_name)
        if exchange is None:
            return
        original_keys = [message.routing_key, *_key_list(message.headers.get("CC"))]
        dead_routing_key = queue.dead_letter_routing_key
        dead = message.copy()
        dead.exchange = exchange_name
        dead.redelivered = False
        dead.delivery_count = 0
        dead.properties = _with_death(message, queue, reason, original_keys, self.epoch + self.clock.now)
        if dead_routing_key is not None:
            dead.routing_key = dead_routing_key
            routing_keys = [dead_routing_key]
            dead.properties["headers"].pop("CC", None)
        else:
            # The dead-lettered copy is routed by its BCC keys too, though x-death lists only the others.
            routing_keys = original_keys + list(message.bcc) if message.bcc else original_keys
        queue.stats.dead_lettered += 1
        if self.flow.enabled:
            self.flow.add(self.clock.now, "dead_lettered", queue.node_id, exchange.node_id, dead, reason)
        targets = self._route_keys(host, exchange, dead, routing_keys)
        if reason != "rejected":
            cycles = [t for t in targets if _is_cycle(t.name, dead)]
            if cycles:
                targets = [t for t in targets if t not in cycles]
                for target in cycles:
                    self.record_flow("dropped", target.node_id, None, dead, "dead-letter cycle")
        if not targets:
            return
        if len(targets) == 1:
            targets[0].enqueue(dead)
        else:
            self._enqueue_all(targets, dead)

    epoch = 1_700_000_000.0  # wall time of virtual zero, for x-death timestamps

    def record_flow(
        self, kind: str, source: str | None, target: str | None, message: Message, detail: str = ""
    ) -> None:
        if self.flow.enabled:
            self.flow.add(self.clock.now, kind, source, target, message, detail)


def _locked(queue: Queue) -> errors.ChannelError:
    return errors.resource_locked(
        f"cannot obtain exclusive access to locked queue '{queue.name}' in vhost "
        f"'{queue.vhost}'. It could be originally declared on another connection or "
        "the exclusive property value does not match that of the original declaration."
    )


def _key_list(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [v.decode() if isinstance(v, bytes) else str(v) for v in value]
    return []


def _matches(exchange: Exchange, routing_keys: list[str], message: Message) -> list[Binding]:
    """The exchange's bindings that match any of the keys (each binding once)."""
    router = exchange.router
    if exchange.type == "headers":
        return list(router.match("", message.headers))
    if exchange.type == "fanout" or len(routing_keys) == 1:
        return list(router.match(routing_keys[0], None))
    found: list[Binding] = []
    for key in routing_keys:
        for binding in router.match(key, None):
            if binding not in found:
                found.append(binding)
    return found


def _check_equivalent(what: str, field: str, received: Any, current: Any) -> None:
    if received != current:
        raise errors.precondition_failed(
            f"inequivalent arg '{field}' for {what}: received '{_erl(received)}' but current is '{_erl(current)}'"
        )


def _erl(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _with_death(
    message: Message, queue: Queue, reason: str, routing_keys: list[str], timestamp: float
) -> dict[str, Any]:
    """New properties carrying the x-death history RabbitMQ writes on dead-lettering.

    Entries are newest first, one per (queue, reason); a repeat death moves its
    entry to the front and counts it.
    """
    properties = dict(message.properties or {})
    headers = dict(properties.get("headers") or {})
    headers.pop("x-delivery-count", None)
    deaths = [dict(d) for d in headers.get("x-death") or []]
    for entry in deaths:
        if entry.get("queue") == queue.name and entry.get("reason") == reason:
            deaths.remove(entry)
            entry["count"] = LongLong(entry.get("count", 1) + 1)
            entry["time"] = Timestamp(int(timestamp))
            deaths.insert(0, entry)
            break
    else:
        entry = {
            "count": LongLong(1),
            "reason": reason,
            "queue": queue.name,
            "time": Timestamp(int(timestamp)),
            "exchange": message.exchange,
            "routing-keys": list(routing_keys),
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
