"""One client connection: the AMQP 0-9-1 handshake, frames, channels, heartbeats.

An asyncio protocol over the broker core. Whatever a client sends (a wrong
protocol header, a frame past frame_max, an unknown method, content with no
method before it, a channel never opened) closes that channel or this connection
with the reply code RabbitMQ would send; nothing it sends reaches another client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from pamqp import commands
from pamqp.base import Frame as Method

from .. import errors
from ..broker import PublishOutcome
from ..channel import ChannelConsumer, Connection
from ..model import node_id
from .auth import User
from .channel import CONTENT_METHODS, WireChannel
from .codec import (
    ACCEPTED_HEADERS,
    BASIC_CLASS,
    FRAME_BODY,
    FRAME_HEADER_TYPE,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    FRAME_MIN_SIZE,
    HEARTBEAT_FRAME,
    PROTOCOL_HEADER,
    FrameReader,
    decode_content_header,
    decode_method,
    encode_method,
)

if TYPE_CHECKING:
    from .server import AmqpServer

log = logging.getLogger("queuecraft.amqp")


class _OneLine(logging.Filter):
    """Clients name things (connections, queues, vhosts) with any characters: a line break in
    one must not forge a line of the log."""

    ESCAPES = {code: f"\\x{code:02x}" for code in [*range(32), 127] if code != 9}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in message):
            record.msg, record.args = message.translate(self.ESCAPES), None
        return True


log.addFilter(_OneLine())

C = commands.Connection
MAX_PUBLISH_TARGETS = 32  # exchanges a client is drawn publishing to; more are counted, not drawn
HANDSHAKE_TIMEOUT = 10.0  # seconds to finish the handshake, as RabbitMQ's handshake_timeout


class _Content:
    """A basic.publish waiting for its content header and body frames."""

    __slots__ = ("method", "properties", "encoded", "size", "parts", "received")

    def __init__(self, method: Method) -> None:
        self.method = method
        self.properties: dict[str, Any] | None = None
        self.encoded = b""
        self.size = -1  # until the content header says
        self.parts: list[bytes] = []
        self.received = 0


class AmqpConnection(asyncio.Protocol):
    def __init__(self, server: AmqpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.peer: str | None = None
        self.peer_text = "?"
        self.state = "header"  # header, start-ok, tune-ok, open, running, closing, closed
        self.reader = FrameReader(FRAME_MIN_SIZE)
        self.frame_max = FRAME_MIN_SIZE
        self.channel_max = server.channel_max
        self.heartbeat = 0
        self.client_properties: dict[str, Any] = {}
        self.user: User | None = None
        self.vhost = "/"
        self.engine: Connection | None = None
        self.channels: dict[int, WireChannel] = {}
        self._content: dict[int, _Content] = {}
        self.name = ""
        self.producer_node = ""
        self.consumer_node = ""
        self.opened_at = time.monotonic()
        self.last_received = time.monotonic()
        self._timers: list[asyncio.TimerHandle] = []
        self._writing_paused = False
        self._paused_since: float | None = None
        self.blocked = False  # by the server's memory alarm: not read from until it clears
        self._told_blocked = False
        self._unacked_held = False
        self.published_count = 0
        self.returned_count = 0
        self.publishes_to: dict[str, str] = {}  # exchange -> the last routing key published there
        self.consumers_seen: list[ChannelConsumer] = []  # consuming now, or still owed acks
        self.retired = [0, 0, 0, 0]  # delivered, acked, nacked, redelivered of consumers long gone
        self.has_consumed = False
        self.last_consumed: list[str] = []  # the queues it last consumed from (drawn once it has gone)
        self.closed_at: float | None = None
        self.bytes_in = 0

    # -- asyncio ----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.peer = str(peer[0])
            self.peer_text = f"{peer[0]}:{peer[1]}"
        transport.set_write_buffer_limits(high=self.server.write_buffer_high, low=self.server.write_buffer_high // 4)
        if not self.server.connection_opened(self):
            log.warning("refusing %s: %d connections already", self.peer_text, self.server.max_connections)
            transport.abort()
            return
        self._later(HANDSHAKE_TIMEOUT, self._handshake_timeout)

    def data_received(self, data: bytes) -> None:
        if self.state == "closed":
            return
        self.last_received = time.monotonic()
        self.bytes_in += len(data)
        try:
            if self.state == "header":
                data = self._protocol_header(data)
                if not data:
                    return
            self.reader.feed(data)
            for frame_type, channel, payload in self.reader.frames():
                if self.state == "closed":
                    return
                self._frame(frame_type, channel, payload)
        except errors.AMQPError as exc:
            self._connection_error(exc)
        finally:
            self.server.after_client_activity()

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()

    def pause_writing(self) -> None:
        """The client is not reading fast enough: no more deliveries, and no more reading, until it does."""
        self._writing_paused = True
        self._paused_since = time.monotonic()
        for channel in self.channels.values():
            channel.engine.suspend()
        if self.transport is not None:
            self.transport.pause_reading()
        self._later(self.server.write_stall_timeout, self._check_stalled)

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._paused_since = None
        if self.transport is not None and self.state != "closed" and not self.blocked:
            self.transport.resume_reading()
        if not self._unacked_held:
            for channel in list(self.channels.values()):
                channel.engine.resume()
        self.server.after_client_activity()

    # -- writing ------------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is not None and self.state != "closed":
            self.transport.write(data)

    def send(self, channel: int, method: Method) -> None:
        self.write(encode_method(channel, method))

    # -- the handshake ------------------------------------------------------------------------------

    def _protocol_header(self, data: bytes) -> bytes:
        self.reader.feed(data)
        if self.reader.buffered < 8:
            start = self.reader.peek(self.reader.buffered)
            if not any(header.startswith(start) for header in ACCEPTED_HEADERS):
                self._refuse_protocol()
            return b""
        header = self.reader.take(8)
        if header not in ACCEPTED_HEADERS:
            self._refuse_protocol()
            return b""
        self.state = "start-ok"
        self.send(
            0,
            C.Start(
                version_major=0,
                version_minor=9,
                server_properties=self.server.server_properties(),
                mechanisms="PLAIN AMQPLAIN",
                locales="en_US",
            ),
        )
        return self.reader.take(self.reader.buffered)

    def _refuse_protocol(self) -> None:
        """Not AMQP 0-9-1: answer with the header we speak and hang up, as RabbitMQ does."""
        log.info("%s: not AMQP 0-9-1, closing", self.peer_text)
        self.write(PROTOCOL_HEADER)
        self._close_transport()

    def _frame(self, frame_type: int, channel: int, payload: bytes) -> None:
        if self.state == "closing":
            if frame_type == FRAME_METHOD and channel == 0:
                method = decode_method(payload)
                if isinstance(method, C.CloseOk | C.Close):
                    if isinstance(method, C.Close):
                        self.send(0, C.CloseOk())
                    self._close_transport()
            return
        if frame_type == FRAME_HEARTBEAT:
            if channel != 0:
                raise errors.ConnectionError(
                    505, f"type {FRAME_HEARTBEAT} on channel {channel}: heartbeats go on channel 0"
                )
            return
        if self.state != "running":
            if frame_type != FRAME_METHOD or channel != 0:
                raise errors.ConnectionError(505, "expected a connection method during the handshake")
            self._handshake(decode_method(payload))
            return
        if channel == 0:
            if frame_type != FRAME_METHOD:
                raise errors.ConnectionError(
                    505, f"type {frame_type} on channel 0: only methods and heartbeats go there"
                )
            self._connection_method(decode_method(payload))
            return
        if frame_type == FRAME_METHOD:
            self._channel_method(channel, payload)
        elif frame_type == FRAME_HEADER_TYPE:
            self._content_header(channel, payload)
        elif frame_type == FRAME_BODY:
            self._content_body(channel, payload)
        else:
            raise errors.ConnectionError(501, f"type {frame_type}: unknown frame type")

    def _handshake(self, method: Method) -> None:
        if self.state == "start-ok" and isinstance(method, C.StartOk):
            self.client_properties = dict(method.client_properties or {})
            response = method.response if isinstance(method.response, bytes) else str(method.response).encode()
            try:
                self.user = self.server.users.authenticate(method.mechanism, response, self.peer)
            except errors.AMQPError as exc:
                log.warning("%s: %s", self.peer_text, exc.log_text or exc.reply_text)
                # Only a refused login is explained (to a client that asked); anything else hangs up.
                if exc.reply_code == 403 and self.capability("authentication_failure_close"):
                    self.send(0, C.Close(exc.reply_code, exc.reply_text[:255], 0, 0))
                self._close_transport()
                return
            self.state = "tune-ok"
            self.send(
                0,
                C.Tune(
                    channel_max=self.server.channel_max,
                    frame_max=self.server.frame_max,
                    heartbeat=self.server.heartbeat,
                ),
            )
            return
        if self.state == "tune-ok" and isinstance(method, C.TuneOk):
            limit = self.server
            channel_max = method.channel_max or 65535
            frame_max = method.frame_max or limit.frame_max
            if channel_max > limit.channel_max:
                why = f"channel_max = {method.channel_max} is higher than the maximum allowed ({limit.channel_max})"
            elif frame_max < FRAME_MIN_SIZE:
                why = f"frame_max = {method.frame_max} is lower than the minimum allowed value ({FRAME_MIN_SIZE})"
            elif frame_max > limit.frame_max:
                why = f"frame_max = {frame_max} is higher than the maximum allowed value ({limit.frame_max})"
            else:
                why = ""
            if why:
                self._abort(f"failed to negotiate connection parameters: negotiated {why}")
                return
            self.channel_max = channel_max
            self.frame_max = frame_max
            self.reader.frame_max = frame_max
            self.heartbeat = method.heartbeat
            self.state = "open"
            return
        if self.state == "open" and isinstance(method, C.Open):
            self._open(method.virtual_host)
            return
        if self.state == "start-ok" or self.state == "tune-ok":
            self._abort(f"unexpected {method.name} during the handshake")
            return
        raise errors.command_invalid(f"unexpected {method.name} in connection state {self.state}")

    def _open(self, vhost: str) -> None:
        assert self.user is not None
        broker = self.server.broker
        if vhost not in broker.vhosts:
            raise errors.not_allowed(f"vhost {vhost} not found").about(C.Open.index)
        if self.server.users.permission(self.user, vhost) is None:
            raise errors.not_allowed(f"access to vhost '{vhost}' refused for user '{self.user.name}'").about(
                C.Open.index
            )
        self.vhost = vhost
        name = self.client_properties.get("connection_name")
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        self.name = name if isinstance(name, str) and name else self.peer_text
        self.name = self.server.unique_client_name(self.name)
        self.producer_node = node_id("producer", vhost, self.name)
        self.consumer_node = node_id("consumer", vhost, self.name)
        self.engine = broker.connect(self.name, vhost)
        self.state = "running"
        self._cancel_timers()
        if self.heartbeat:
            self._later(self.heartbeat / 2, self._heartbeat_tick)
        self.send(0, C.OpenOk())
        log.info("%s: '%s' connected to vhost '%s' as '%s'", self.peer_text, self.name, vhost, self.user.name)
        self.server.client_opened(self)

    def _abort(self, why: str) -> None:
        """A handshake that cannot go on: RabbitMQ hangs up without a word."""
        log.warning("%s: %s", self.peer_text, why)
        self._close_transport()

    # -- running --------------------------------------------------------------------------------

    def _connection_method(self, method: Method) -> None:
        if isinstance(method, C.Close):
            self.send(0, C.CloseOk())
            self._close_transport()
            return
        if isinstance(method, C.CloseOk):
            self._close_transport()
            return
        if isinstance(method, C.Blocked | C.Unblocked | C.UpdateSecret):
            if isinstance(method, C.UpdateSecret):
                self.send(0, C.UpdateSecretOk())
            return
        raise errors.ConnectionError(504, f"unexpected method in connection state {self.state}").about(method.index)

    def _channel_method(self, number: int, payload: bytes) -> None:
        method = decode_method(payload)
        content = self._content.get(number)
        if content is not None:
            if content.size < 0:
                text = "expected content header for class 60, got non content header frame instead"
            else:
                text = "expected content body, got non content body frame instead"
            raise errors.ConnectionError(505, text).about(content.method.index)
        channel = self.channels.get(number)
        if channel is None:
            if isinstance(method, commands.Channel.Open):
                self._open_channel(number)
                return
            raise errors.ConnectionError(504, "expected 'channel.open'").about(method.index)
        if channel.closing:
            if isinstance(method, commands.Channel.CloseOk):
                self._forget_channel(number)
            elif isinstance(method, commands.Channel.Close):
                self.send(number, commands.Channel.CloseOk())
            return
        if isinstance(method, commands.Channel.Open):
            raise errors.ConnectionError(504, "second 'channel.open' seen").about(method.index)
        if isinstance(method, commands.Channel.Close):
            channel.close()
            self._forget_channel(number)
            self.send(number, commands.Channel.CloseOk())
            self.consumers_changed()
            return
        if isinstance(method, commands.Channel.CloseOk):
            return
        if type(method) in CONTENT_METHODS:
            self._content[number] = _Content(method)
            return
        try:
            channel.handle(method)
        except errors.AMQPError as exc:
            self._method_error(channel, method, exc)

    def _open_channel(self, number: int) -> None:
        # RabbitMQ bounds how many channels are open, not their numbers.
        if len(self.channels) >= self.channel_max:
            opened = len(self.channels)
            raise errors.not_allowed(
                f"number of channels opened ({opened}) has reached the negotiated channel_max ({self.channel_max})"
            )
        assert self.engine is not None
        engine = self.engine.channel(number)
        channel = WireChannel(self, number, engine)
        self.channels[number] = channel
        if self._writing_paused or self._unacked_held:
            engine.suspend()
        self.send(number, commands.Channel.OpenOk())

    def _forget_channel(self, number: int) -> None:
        self.channels.pop(number, None)
        self._content.pop(number, None)

    def _content_header(self, number: int, payload: bytes) -> None:
        content = self._content.get(number)
        if content is None or content.size >= 0:
            if content is None and number in self.channels and self.channels[number].closing:
                return
            raise errors.ConnectionError(505, "expected method frame, got non method frame instead")
        class_id, size, properties, encoded = decode_content_header(payload)
        if class_id != BASIC_CLASS:
            raise errors.ConnectionError(
                505, f"expected content header for class {BASIC_CLASS}, got one for class {class_id} instead"
            ).about(content.method.index)
        content.properties = properties
        content.encoded = encoded
        content.size = size
        if size > self.server.max_message_size:
            del self._content[number]
            self._method_error(
                self.channels[number],
                content.method,
                errors.precondition_failed(
                    f"message size {size} is larger than configured max size {self.server.max_message_size}"
                ),
            )
            return
        if size == 0:
            self._content_complete(number, content)

    def _content_body(self, number: int, payload: bytes) -> None:
        content = self._content.get(number)
        if content is None or content.size < 0:
            if content is None and number in self.channels and self.channels[number].closing:
                return
            raise errors.ConnectionError(505, "expected method frame, got non method frame instead")
        content.parts.append(payload)
        content.received += len(payload)
        if content.received == content.size:
            self._content_complete(number, content)

    def _content_complete(self, number: int, content: _Content) -> None:
        del self._content[number]
        channel = self.channels[number]
        body = content.parts[0] if len(content.parts) == 1 else b"".join(content.parts)
        try:
            channel.publish(content.method, content.properties, content.encoded, body)
        except errors.AMQPError as exc:
            self._method_error(channel, content.method, exc)
        if self.server.memory_alarm and not self.blocked:
            self.block()

    # -- the memory alarm ---------------------------------------------------------------------------

    def block(self) -> None:
        """As RabbitMQ under its memory alarm: a connection that publishes is no longer read from
        (what it sends waits in its socket), and is told so when it asked to be."""
        if self.state != "running" or self.blocked:
            return
        self.blocked = True
        if self.transport is not None:
            self.transport.pause_reading()
        if self.capability("connection.blocked"):
            self.send(0, C.Blocked(reason="low on memory"))
            self._told_blocked = True

    def unblock(self) -> None:
        if not self.blocked:
            return
        self.blocked = False
        self.last_received = time.monotonic()  # its heartbeats waited unread meanwhile
        if self.transport is not None and self.state != "closed" and not self._writing_paused:
            self.transport.resume_reading()
        if self._told_blocked and self.state == "running":
            self.send(0, C.Unblocked())
        self._told_blocked = False

    def _method_error(self, channel: WireChannel, method: Method, exc: errors.AMQPError) -> None:
        if exc.connection_level:
            raise exc.about(method.index)
        log.info("%s channel %d: %s", self.name, channel.number, exc.reply_text)
        channel.close()
        channel.closing = True
        self.send(
            channel.number,
            commands.Channel.Close(exc.reply_code, exc.reply_text[:255], method.index >> 16, method.index & 0xFFFF),
        )
        self.consumers_changed()

    def _connection_error(self, exc: errors.AMQPError) -> None:
        if self.state in ("closing", "closed"):
            return
        class_id, method_id = exc.class_id, exc.method_id
        log.warning("%s: closing: %s", self.name or self.peer_text, exc.reply_text)
        if self.state in ("header", "start-ok", "tune-ok"):
            self._close_transport()
            return
        self.send(0, C.Close(exc.reply_code, exc.reply_text[:255], class_id, method_id))
        self.state = "closing"
        self._release_engine()
        self._later(self.server.close_timeout, self._close_transport)

    # -- what the channels tell us ---------------------------------------------------------------

    def capability(self, name: str) -> bool:
        capabilities = self.client_properties.get("capabilities")
        return isinstance(capabilities, dict) and bool(capabilities.get(name))

    @property
    def username(self) -> str:
        return self.user.name if self.user is not None else ""

    def check_permission(self, kind: str, resource: str, name: str) -> None:
        assert self.user is not None
        permission = self.server.users.permission(self.user, self.vhost)
        pattern = getattr(permission, kind) if permission is not None else None
        if pattern is None or not pattern.match(name) or pattern.match(name).end() != len(name):  # type: ignore[union-attr]
            raise errors.access_refused(
                f"access to {resource} '{name}' in vhost '{self.vhost}' refused for user '{self.username}'"
            )

    def published(self, exchange: str, routing_key: str, outcome: PublishOutcome) -> None:
        self.published_count += 1
        if outcome.returned:
            self.returned_count += 1
        targets = self.publishes_to
        if targets.get(exchange) != routing_key and (exchange in targets or len(targets) < MAX_PUBLISH_TARGETS):
            first = exchange not in targets
            targets[exchange] = routing_key
            if first:
                self.server.client_changed(self)

    def consumer_added(self, consumer: ChannelConsumer | None) -> None:
        if consumer is not None:
            self.consumers_seen.append(consumer)
            self.has_consumed = True

    def producer_counters(self) -> tuple[int, int]:
        return (self.published_count, self.returned_count)

    def consumer_counters(self) -> tuple[int, ...]:
        """As a simulated consumer's: delivered, acked, unacked, buffered, processed, nacked, redelivered.

        A cancelled consumer counts on while it is owed acks; after that its figures join
        ``retired`` and it is let go, so the list stays as long as what is live.
        """
        retired = self.retired
        delivered, acked, nacked, redelivered = retired
        unacked = 0
        keep = []
        for consumer in self.consumers_seen:
            delivered += consumer.delivered
            acked += consumer.acked
            nacked += consumer.nacked
            redelivered += consumer.redelivered
            unacked += consumer.unacked
            if consumer.unacked or consumer.channel.consumers.get(consumer.tag) is consumer:
                keep.append(consumer)
            else:
                retired[0] += consumer.delivered
                retired[1] += consumer.acked
                retired[2] += consumer.nacked
                retired[3] += consumer.redelivered
        self.consumers_seen = keep
        return (delivered, acked, unacked, 0, acked, nacked, redelivered)

    def carry_on_from(self, earlier: AmqpConnection) -> None:
        self.published_count += earlier.published_count
        self.returned_count += earlier.returned_count
        delivered, acked, _, _, _, nacked, redelivered = earlier.consumer_counters()
        self.retired = [delivered, acked, nacked, redelivered]
        self.has_consumed = earlier.has_consumed

    def consumed_queues(self) -> list[str]:
        """The queues this client consumes from now, in the order it began."""
        names: dict[str, None] = {}
        for consumer in self.consumers_seen:
            if consumer.channel.consumers.get(consumer.tag) is consumer:
                names[consumer.queue.name] = None
        return list(names)

    def delivered(self, channel: WireChannel) -> None:
        limit = self.server.max_unacked_per_connection
        if limit and not self._unacked_held and self.unacked >= limit:
            self._unacked_held = True
            for each in self.channels.values():
                each.engine.suspend()

    def settled(self) -> None:
        if self._unacked_held and self.unacked < self.server.max_unacked_per_connection // 2:
            self._unacked_held = False
            if not self._writing_paused:
                for each in list(self.channels.values()):
                    each.engine.resume()

    @property
    def unacked(self) -> int:
        return sum(len(channel.engine.unacked) for channel in self.channels.values())

    def topology_changed(self) -> None:
        self.server.topology_changed(self)

    def consumers_changed(self) -> None:
        queues = self.consumed_queues()
        if queues:
            self.last_consumed = queues
        self.server.client_changed(self)

    # -- timers and closing -------------------------------------------------------------------------

    def _later(self, delay: float, callback: Any) -> None:
        loop = asyncio.get_event_loop()
        self._timers.append(loop.call_later(delay, callback))

    def _cancel_timers(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def _handshake_timeout(self) -> None:
        if self.state in ("header", "start-ok", "tune-ok", "open"):
            log.warning("%s: handshake not finished within %.0f s, closing", self.peer_text, HANDSHAKE_TIMEOUT)
            self._close_transport()

    def _heartbeat_tick(self) -> None:
        if self.state != "running":
            return
        unread = self._writing_paused or self.blocked  # not read from: its heartbeats wait in the socket
        if time.monotonic() - self.last_received > self.heartbeat * 2 and not unread:
            log.warning("%s: missed heartbeats from client, timeout: %d s", self.name, self.heartbeat)
            self._close_transport()
            return
        self.write(HEARTBEAT_FRAME)
        self._later(self.heartbeat / 2, self._heartbeat_tick)

    def _check_stalled(self) -> None:
        since = self._paused_since
        if since is not None and time.monotonic() - since >= self.server.write_stall_timeout:
            log.warning(
                "%s: not reading for %.0f s, closing", self.name or self.peer_text, self.server.write_stall_timeout
            )
            self._close_transport(abort=True)

    def close(
        self, reply_code: int = 320, reply_text: str = "CONNECTION_FORCED - broker forced connection closure"
    ) -> None:
        """The server closes this connection (the broker stops, the listener closes)."""
        if self.state == "running":
            self.send(0, C.Close(reply_code, reply_text, 0, 0))
            self.state = "closing"
            self._release_engine()
            self._later(self.server.close_timeout, self._close_transport)
        else:
            self._close_transport()

    def _release_engine(self) -> None:
        """Every channel closes: consumers go, unacked messages return to their queues."""
        for channel in list(self.channels.values()):
            channel.close()
        self.channels.clear()
        self._content.clear()
        if self.engine is not None:
            self.engine.close()
        self.server.client_changed(self)

    def _close_transport(self, abort: bool = False) -> None:
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()
        self._finish()

    def _finish(self) -> None:
        if self.state == "closed":
            return
        was_running = self.engine is not None
        self.state = "closed"
        self.closed_at = time.monotonic()
        self._cancel_timers()
        self._release_engine()
        self.server.connection_closed(self, was_running)
