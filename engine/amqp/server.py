"""The AMQP 0-9-1 listener: real clients connect to the built-in broker.

``AmqpServer`` accepts TCP connections on an asyncio loop and gives each an
:class:`AmqpConnection`; they all act on one broker core, so a pika program's
messages meet the simulated producers and consumers of the open topology.
Whoever runs the server (``queuecraft serve``, the GUI) hears of clients
coming, changing and going through :class:`ServerEvents`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from ..broker import Broker
from .auth import UserBase
from .connection import AmqpConnection

log = logging.getLogger("queuecraft.amqp")

DEFAULT_PORT = 5673
DEPARTED_KEPT = 64
PRODUCT = "Queuecraft"
RABBITMQ_COMPATIBLE = "3.10.8"


class ServerEvents:
    """What a server tells whoever runs it; each one is a list of callbacks."""

    def __init__(self) -> None:
        self.client_opened: list[Callable[[AmqpConnection], None]] = []
        self.client_changed: list[Callable[[AmqpConnection], None]] = []
        self.client_closed: list[Callable[[AmqpConnection], None]] = []
        self.topology_changed: list[Callable[[AmqpConnection], None]] = []

    @staticmethod
    def emit(callbacks: list[Callable[[AmqpConnection], None]], connection: AmqpConnection) -> None:
        for callback in list(callbacks):
            callback(connection)


MEMORY_CHECK_EVERY = 0.25  # seconds
MESSAGE_OVERHEAD = 250  # bytes the engine keeps for each queued message besides its body (benchmarked: 232)


def _size(count: int) -> str:
    return f"{count / 1e6:,.1f} MB" if count >= 100_000 else f"{count:,} bytes"


def default_memory_watermark() -> int:
    """0.4 of the machine's memory, RabbitMQ's default vm_memory_high_watermark (2 GB when unknown)."""
    try:
        return int(0.4 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 2 * 1024**3


class AmqpServer:
    """Accepts AMQP clients for ``broker``; every limit bounds what one client can take."""

    def __init__(
        self,
        broker: Broker,
        users: UserBase | None = None,
        *,
        frame_max: int = 131072,
        channel_max: int = 2047,
        heartbeat: int = 60,
        max_connections: int = 1000,
        max_unacked_per_connection: int = 100_000,
        max_message_size: int = 128 * 1024 * 1024,
        write_buffer_high: int = 4 * 1024 * 1024,
        write_stall_timeout: float = 60.0,
        close_timeout: float = 5.0,
        memory_high_watermark: int | None = None,
        on_activity: Callable[[], None] | None = None,
    ) -> None:
        self.broker = broker
        self.users = users or UserBase.default()
        self.frame_max = frame_max
        self.channel_max = channel_max
        self.heartbeat = heartbeat
        self.max_connections = max_connections
        self.max_unacked_per_connection = max_unacked_per_connection
        self.max_message_size = max_message_size
        self.write_buffer_high = write_buffer_high
        self.write_stall_timeout = write_stall_timeout
        self.close_timeout = close_timeout
        # Queued messages (bodies and what the engine keeps of each) past this block publishers,
        # as RabbitMQ's memory alarm does; by default 0.4 of the machine's memory, as RabbitMQ's.
        self.memory_high_watermark = (
            default_memory_watermark() if memory_high_watermark is None else memory_high_watermark
        )
        self.memory_alarm = False
        self._alarm_check: asyncio.TimerHandle | None = None
        self.on_activity = on_activity
        self.events = ServerEvents()
        self.connections: list[AmqpConnection] = []
        self.departed: deque[AmqpConnection] = deque(maxlen=DEPARTED_KEPT)  # the last clients to leave
        # Names a client may not take (the simulated producers' and consumers'): their nodes are taken.
        self.reserved_names: Callable[[], Iterable[str]] = lambda: ()
        self._server: asyncio.Server | None = None
        self.address: tuple[str, int] | None = None

    # -- listening --------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: AmqpConnection(self), host, port)
        sockname = self._server.sockets[0].getsockname()
        self.address = (str(sockname[0]), int(sockname[1]))
        log.debug("listening for AMQP 0-9-1 clients on %s:%d", *self.address)
        self._check_memory()
        return self.address

    @property
    def listening(self) -> bool:
        return self._server is not None

    def close(self) -> asyncio.Server | None:
        """Stop listening and close every client connection, as a stopping RabbitMQ does (320)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        if self._alarm_check is not None:
            self._alarm_check.cancel()
            self._alarm_check = None
        for connection in list(self.connections):
            connection.close()
        self.address = None
        return server

    async def stop(self) -> None:
        """``close``, then wait until the listening socket is closed."""
        server = self.close()
        if server is not None:
            await server.wait_closed()

    # -- what connections tell the server --------------------------------------------------------------

    def server_properties(self) -> dict[str, Any]:
        return {
            "product": PRODUCT,
            "version": RABBITMQ_COMPATIBLE,
            "platform": "Python asyncio",
            "information": "Queuecraft's built-in broker: behaves as RabbitMQ 3.10 does",
            "capabilities": {
                "publisher_confirms": True,
                "exchange_exchange_bindings": True,
                "basic.nack": True,
                "consumer_cancel_notify": True,
                "connection.blocked": True,
                "consumer_priorities": True,
                "authentication_failure_close": True,
                "per_consumer_qos": True,
                "direct_reply_to": False,
            },
        }

    # -- the memory alarm ---------------------------------------------------------------------------

    def queued_bytes(self) -> int:
        """What the broker's queues hold, as memory: bodies, and the engine's own keeping of each."""
        total = 0
        for host in self.broker.vhosts.values():
            for queue in host.queues.values():
                total += queue.ready_bytes + MESSAGE_OVERHEAD * queue.depth
        return total

    def _check_memory(self) -> None:
        queued = self.queued_bytes()
        over = queued > self.memory_high_watermark or self.memory_high_watermark == 0
        if over and not self.memory_alarm:
            self.memory_alarm = True
            log.warning(
                "memory alarm: %s queued, over the high watermark of %s: publishers are blocked",
                _size(queued),
                _size(self.memory_high_watermark),
            )
            # As RabbitMQ's: a connection is blocked when it next publishes, not before (one that
            # published once and now only consumes goes on consuming).
        elif not over and self.memory_alarm:
            self.memory_alarm = False
            log.warning("memory alarm cleared: %s queued; publishers go on", _size(queued))
            for connection in self.connections:
                connection.unblock()
        self._alarm_check = asyncio.get_running_loop().call_later(MEMORY_CHECK_EVERY, self._check_memory_safely)

    def _check_memory_safely(self) -> None:
        if self._server is not None:
            self._check_memory()

    def connection_opened(self, connection: AmqpConnection) -> bool:
        if len(self.connections) >= self.max_connections:
            return False
        self.connections.append(connection)
        return True

    def unique_client_name(self, name: str) -> str:
        taken = {c.name for c in self.connections if c.state in ("running", "closing")}
        taken.update(self.reserved_names())
        if name not in taken:
            return name
        number = 2
        while f"{name} ({number})" in taken:
            number += 1
        return f"{name} ({number})"

    def client_opened(self, connection: AmqpConnection) -> None:
        for earlier in list(self.departed):
            if earlier.name == connection.name and earlier.vhost == connection.vhost:
                # The same client back (a restarted service, say): one node, its counts carried on.
                self.departed.remove(earlier)
                connection.carry_on_from(earlier)
        ServerEvents.emit(self.events.client_opened, connection)

    def client_changed(self, connection: AmqpConnection) -> None:
        ServerEvents.emit(self.events.client_changed, connection)

    def topology_changed(self, connection: AmqpConnection) -> None:
        ServerEvents.emit(self.events.topology_changed, connection)

    def connection_closed(self, connection: AmqpConnection, was_open: bool) -> None:
        if connection in self.connections:
            self.connections.remove(connection)
        if was_open:
            self.departed.append(connection)
            log.info("'%s' disconnected", connection.name)
            ServerEvents.emit(self.events.client_closed, connection)

    def after_client_activity(self) -> None:
        """What a client did may have set off follow-ups due now (a TTL of 0, say): run them."""
        self.broker.clock.run_pending()
        if self.on_activity is not None:
            self.on_activity()

    def open_clients(self) -> list[AmqpConnection]:
        return [c for c in self.connections if c.state == "running"]

    def clients(self) -> list[AmqpConnection]:
        """Every client that got as far as opening its vhost: connected, closing, or recently gone."""
        seen = [c for c in self.connections if c.engine is not None]
        return [*seen, *(c for c in self.departed if c not in seen)]

    def read_counters(self, counters: dict[str, tuple[int, ...]]) -> None:
        """Each client's producer and consumer counters, keyed by its nodes as a simulated one's are."""
        for client in self.clients():
            if client.published_count:
                counters[client.producer_node] = client.producer_counters()
            if client.has_consumed:
                counters[client.consumer_node] = client.consumer_counters()
