"""A raw AMQP client for tests: builds frames with pamqp, sends anything, reads what comes back."""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

from pamqp import body as content_body
from pamqp import commands, frame, header

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
CAPABILITIES = {
    "capabilities": {
        "authentication_failure_close": True,
        "consumer_cancel_notify": True,
        "publisher_confirms": True,
        "basic.nack": True,
    }
}


@dataclass
class Closed:
    """How the broker ended it: a connection.close (code, text, class, method), or the socket alone."""

    reply_code: int | None
    reply_text: str
    class_id: int = 0
    method_id: int = 0


class RawClient:
    def __init__(self, address: tuple[str, int], timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.buffer = b""
        self.frames: list[tuple[int, Any]] = []
        self.eof = False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sending ------------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def method(self, channel: int, method: Any) -> None:
        self.send(frame.marshal(method, channel))

    def publish(
        self, channel: int, exchange: str, routing_key: str, body: bytes = b"", properties: Any = None, **options: Any
    ) -> None:
        self.method(channel, commands.Basic.Publish(exchange=exchange, routing_key=routing_key, **options))
        self.send(frame.marshal(header.ContentHeader(0, len(body), properties or commands.Basic.Properties()), channel))
        if body:
            self.send(frame.marshal(content_body.ContentBody(body), channel))

    # -- reading ------------------------------------------------------------------------------------

    def read(self, seconds: float = 1.0, until: type | None = None) -> list[tuple[int, Any]]:
        """Frames that arrive within ``seconds`` (sooner, once a frame of type ``until`` has come)."""
        got: list[tuple[int, Any]] = []
        deadline = time.monotonic() + seconds
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                self.eof = True
                break
            if not data:
                self.eof = True
                break
            self.buffer += data
            while self.buffer:
                if self.buffer.startswith(b"AMQP"):
                    got.append((0, self.buffer[:8]))
                    self.buffer = self.buffer[8:]
                    continue
                try:
                    used, channel, value = frame.unmarshal(self.buffer)
                except Exception:  # noqa: BLE001 - a partial frame: wait for the rest
                    break
                self.buffer = self.buffer[used:]
                got.append((channel, value))
                if isinstance(value, commands.Connection.Close):
                    self.method(0, commands.Connection.CloseOk())
            if until is not None and any(isinstance(v, until) for _, v in got):
                break
        self.frames += got
        return got

    def expect(self, kind: type, seconds: float = 2.0) -> Any:
        for _, value in self.read(seconds, until=kind):
            if isinstance(value, kind):
                return value
        raise AssertionError(f"expected {kind.__name__}, got {[type(v).__name__ for _, v in self.frames]}")

    def closed(self, seconds: float = 3.0) -> Closed:
        """Read until the broker closes the connection; how it did."""
        deadline = time.monotonic() + seconds
        while not self.eof and time.monotonic() < deadline:
            self.read(deadline - time.monotonic())
        for _, value in self.frames:
            if isinstance(value, commands.Connection.Close):
                return Closed(value.reply_code, value.reply_text, value.class_id, value.method_id)
        if not self.eof:
            raise AssertionError(f"the broker did not close the connection within {seconds} s")
        return Closed(None, "")

    def channel_closed(self, channel: int, seconds: float = 2.0) -> Closed:
        for number, value in self.read(seconds, until=commands.Channel.Close):
            if number == channel and isinstance(value, commands.Channel.Close):
                self.method(channel, commands.Channel.CloseOk())
                return Closed(value.reply_code, value.reply_text, value.class_id, value.method_id)
        raise AssertionError(f"channel {channel} was not closed; got {[type(v).__name__ for _, v in self.frames]}")

    # -- the handshake ------------------------------------------------------------------------------

    def handshake(
        self,
        user: str = "guest",
        password: str = "guest",
        vhost: str = "/",
        heartbeat: int = 0,
        frame_max: int = 131072,
        channel_max: int = 2047,
    ) -> commands.Connection.Tune:
        self.send(PROTOCOL_HEADER)
        self.expect(commands.Connection.Start)
        self.method(
            0,
            commands.Connection.StartOk(
                client_properties=CAPABILITIES, mechanism="PLAIN", response=f"\0{user}\0{password}"
            ),
        )
        tune = self.expect(commands.Connection.Tune)
        self.method(0, commands.Connection.TuneOk(channel_max=channel_max, frame_max=frame_max, heartbeat=heartbeat))
        self.method(0, commands.Connection.Open(virtual_host=vhost))
        self.expect(commands.Connection.OpenOk)
        return tune

    def open_channel(self, number: int = 1) -> None:
        self.method(number, commands.Channel.Open())
        self.expect(commands.Channel.OpenOk)

    def round_trip(self, channel: int = 1) -> None:
        """A passive declare of amq.direct: answered once everything sent before it is handled."""
        self.method(channel, commands.Exchange.Declare(exchange="amq.direct", exchange_type="direct", passive=True))
        self.expect(commands.Exchange.DeclareOk)


def method_frame(channel: int, class_id: int, method_id: int, arguments: bytes = b"") -> bytes:
    payload = struct.pack(">HH", class_id, method_id) + arguments
    return struct.pack(">BHI", 1, channel, len(payload)) + payload + b"\xce"


def raw_frame(frame_type: int, channel: int, payload: bytes, end: bytes = b"\xce") -> bytes:
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + end
