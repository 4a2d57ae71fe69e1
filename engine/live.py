"""Real clients as the canvas draws them: the document's topology with what clients brought.

A client connection that publishes is drawn as a producer, one that consumes as a
consumer, named by its ``connection_name`` (else its address); one that does both is
drawn as both. Exchanges, queues and bindings in the broker that the document does not
hold (declared by clients) are drawn too, marked as live. A client that left stays a
few seconds, fading, then goes; one that comes back under the same name takes its node
again.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

from .amqp.connection import AmqpConnection
from .broker import Broker
from .edits import model_binding_id
from .layout import complete_layout
from .model import Binding, Consumer, Exchange, Producer, Queue, Topology, is_builtin_exchange, node_id

FADE_SECONDS = 6.0
# Client-declared exchanges and queues drawn at most (besides those clients publish to or consume
# from): a client that declares thousands would otherwise cost the canvas seconds per redraw.
MAX_DECLARED_DRAWN = 40
MAX_USED_DRAWN = 100


@dataclass
class LiveClient:
    """What the inspector shows of one client connection."""

    name: str
    vhost: str
    user: str
    address: str
    product: str
    connected: bool
    publishes_to: dict[str, str]
    consumes_from: list[str]
    channels: int
    consumers: int
    unacked: int
    published: int
    heartbeat: int
    frame_max: int

    def rows(self) -> list[tuple[str, str]]:
        def exchange_text(name: str) -> str:
            return "(AMQP default)" if name == "" else name

        published = ", ".join(f"{exchange_text(x)} ({k or 'no key'})" for x, k in self.publishes_to.items())
        return [
            ("Connection", self.name),
            ("State", "connected" if self.connected else "disconnected"),
            ("Client", self.product or "unknown"),
            ("Address", self.address),
            ("User", self.user),
            ("Virtual host", self.vhost),
            ("Channels", str(self.channels)),
            ("Publishes to", published or "nothing yet"),
            ("Messages published", f"{self.published:,}"),
            ("Consumes from", ", ".join(self.consumes_from) or "nothing"),
            ("Consumers", str(self.consumers)),
            ("Unacked", f"{self.unacked:,}"),
            ("Heartbeat", f"{self.heartbeat} s" if self.heartbeat else "off"),
            ("Frame max", f"{self.frame_max:,} bytes"),
        ]


@dataclass
class LiveOverlay:
    topology: Topology  # the document's topology with the live nodes and bindings added, every node placed
    live_ids: set[str] = field(default_factory=set)  # nodes and bindings the document does not hold
    details: dict[str, str] = field(default_factory=dict)  # the detail line of each live node
    clients: dict[str, LiveClient] = field(default_factory=dict)  # by the client's producer and consumer node
    connections: dict[str, AmqpConnection] = field(default_factory=dict)  # the same nodes' connections, to read afresh
    extra_edges: list[tuple[str, str, str, str]] = field(default_factory=list)  # relation, source, target, label
    fading: dict[str, float] = field(default_factory=dict)  # node -> opacity, for clients that left
    not_drawn: int = 0  # client-declared exchanges and queues past MAX_DECLARED_DRAWN


def client_product(properties: dict[str, object]) -> str:
    product, version = properties.get("product"), properties.get("version")
    text = product.decode("utf-8", "replace") if isinstance(product, bytes) else str(product or "")
    if len(text) > 16:
        text = text.split()[0]
    if isinstance(version, bytes):
        version = version.decode("utf-8", "replace")
    return f"{text} {version}".strip() if isinstance(version, str) else text


def describe_client(connection: AmqpConnection) -> LiveClient:
    channels = list(connection.channels.values())
    return LiveClient(
        name=connection.name,
        vhost=connection.vhost,
        user=connection.username,
        address=connection.peer_text,
        product=client_product(connection.client_properties),
        connected=connection.state == "running",
        publishes_to=dict(connection.publishes_to),
        consumes_from=connection.consumed_queues(),
        channels=len(channels),
        consumers=sum(len(channel.engine.consumers) for channel in channels),
        unacked=connection.unacked,
        published=connection.published_count,
        heartbeat=connection.heartbeat,
        frame_max=connection.frame_max,
    )


def live_overlay(
    document: Topology,
    broker: Broker,
    clients: list[AmqpConnection],
    positions: dict[str, tuple[float, float]],
    now: float | None = None,
) -> LiveOverlay:
    """The document's topology with the broker's client-made entities and the clients themselves.

    ``positions`` holds where live nodes were put before; new ones are placed beside
    what they connect to and added to it, so nothing jumps from one call to the next.
    """
    now = time.monotonic() if now is None else now
    shown = copy.copy(document)
    shown.exchanges = list(document.exchanges)
    shown.queues = list(document.queues)
    shown.bindings = list(document.bindings)
    shown.producers = list(document.producers)
    shown.consumers = list(document.consumers)
    overlay = LiveOverlay(shown)
    used: set[str] = set()
    for connection in clients:
        used.update(node_id("exchange", connection.vhost, x) for x in connection.publishes_to)
        queues = connection.consumed_queues() if connection.state == "running" else connection.last_consumed
        used.update(node_id("queue", connection.vhost, q) for q in queues)
    _add_declared(overlay, document, broker, used)
    for connection in clients:
        _add_client(overlay, connection, now)
    shown.layout = {**positions, **document.layout}
    complete_layout(shown)
    for nid in overlay.live_ids:
        if nid in shown.layout and nid not in document.layout:
            positions[nid] = shown.layout[nid]
    return overlay


def _add_declared(overlay: LiveOverlay, document: Topology, broker: Broker, used: set[str]) -> None:
    shown = overlay.topology
    in_document = set(document.node_ids())
    drawn = drawn_used = 0

    def room_for(nid: str) -> bool:
        # Those clients use first, to a bound of their own: a client consuming from a thousand
        # queues draws a hundred of them.
        nonlocal drawn, drawn_used
        if nid in used and drawn_used < MAX_USED_DRAWN:
            drawn_used += 1
            return True
        if nid not in used and drawn < MAX_DECLARED_DRAWN:
            drawn += 1
            return True
        overlay.not_drawn += 1
        return False

    bindings = {model_binding_id(b) for b in document.bindings}
    for vhost in document.vhost_names():
        host = broker.vhosts.get(vhost)
        if host is None:
            continue
        for exchange in host.exchanges.values():
            if exchange.node_id in in_document or is_builtin_exchange(exchange.name):
                continue
            if not room_for(exchange.node_id):
                continue
            shown.exchanges.append(
                Exchange(
                    exchange.name,
                    vhost,
                    exchange.type,
                    exchange.durable,
                    exchange.auto_delete,
                    exchange.internal,
                    dict(exchange.arguments),
                )
            )
            overlay.live_ids.add(exchange.node_id)
            overlay.details[exchange.node_id] = f"{exchange.type} · from a client"
        for queue in host.queues.values():
            if queue.node_id in in_document:
                continue
            if not room_for(queue.node_id):
                continue
            shown.queues.append(
                Queue(
                    queue.name,
                    vhost,
                    queue.durable,
                    queue.auto_delete,
                    dict(queue.arguments),
                    exclusive=queue.exclusive_owner is not None,
                )
            )
            overlay.live_ids.add(queue.node_id)
            traits = [queue.queue_type]
            traits += [
                word for word, on in (("exclusive", queue.exclusive_owner), ("auto-delete", queue.auto_delete)) if on
            ]
            overlay.details[queue.node_id] = " · ".join([*traits, "from a client"])
        ends = in_document | overlay.live_ids
        for exchange in host.exchanges.values():
            if exchange.node_id not in ends and not is_builtin_exchange(exchange.name):
                continue
            for binding in exchange.router.bindings:
                if binding.node_id in bindings:
                    continue
                if node_id(binding.destination_type, vhost, binding.destination) not in ends:
                    continue
                shown.bindings.append(
                    Binding(
                        binding.source,
                        binding.destination,
                        vhost,
                        binding.destination_type,
                        binding.routing_key,
                        dict(binding.arguments),
                    )
                )
                overlay.live_ids.add(binding.node_id)


def _add_client(overlay: LiveOverlay, connection: AmqpConnection, now: float) -> None:
    opacity = 1.0
    if connection.closed_at is not None:
        opacity = 1.0 - (now - connection.closed_at) / FADE_SECONDS
        if opacity <= 0.0:
            return
    client = describe_client(connection)
    detail = " · ".join(part for part in (client.product, connection.peer or "") if part)
    if not client.connected:
        detail = "disconnected"
    shown, vhost = overlay.topology, connection.vhost
    if connection.published_count:
        targets = list(client.publishes_to.items())
        exchange, key = targets[0] if targets else (None, "")
        shown.producers.append(Producer(connection.name, exchange, vhost, routing_key=key, rate=0.0))
        nid = connection.producer_node
        for other, other_key in targets[1:]:
            target = node_id("exchange", vhost, other)
            overlay.extra_edges.append(("publishes", nid, target, other_key))
            if other == "" and other_key:
                overlay.extra_edges.append(("default", target, node_id("queue", vhost, other_key), other_key))
        _mark_client(overlay, nid, connection, client, detail, opacity)
    if connection.has_consumed:
        queues = client.consumes_from if client.connected else connection.last_consumed
        shown.consumers.append(Consumer(connection.name, queues[0] if queues else None, vhost))
        nid = connection.consumer_node
        for other in queues[1:]:
            overlay.extra_edges.append(("consumes", node_id("queue", vhost, other), nid, ""))
        _mark_client(overlay, nid, connection, client, detail, opacity)


def _mark_client(
    overlay: LiveOverlay, nid: str, connection: AmqpConnection, client: LiveClient, detail: str, opacity: float
) -> None:
    overlay.live_ids.add(nid)
    overlay.details[nid] = detail
    overlay.clients[nid] = client
    overlay.connections[nid] = connection
    if opacity < 1.0:
        overlay.fading[nid] = opacity
