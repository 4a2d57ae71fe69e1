"""AMQP 0-9-1 frames in and out, on top of pamqp's codec.

pamqp knows every method's fields and types and how to encode and decode each
type; this module adds what a server needs around it: splitting a byte stream
into frames with the negotiated frame_max, refusing malformed frames with the
reply code RabbitMQ sends, and encoding methods without pamqp's client-side
name checks (RabbitMQ accepts any UTF-8 name, so a server must send them back).
"""

from __future__ import annotations

import datetime
import decimal
import struct
from collections.abc import Iterator
from typing import Any

from pamqp import commands, constants, decode, encode
from pamqp.base import Frame as Method
from pamqp.header import ContentHeader

from .. import errors
from ..message import LongLong, Timestamp

FRAME_HEADER = struct.Struct(">BHI")
FRAME_END = b"\xce"
METHOD_ID = struct.Struct(">HH")
CONTENT_HEADER = struct.Struct(">HHQ")
FRAME_TIMESTAMP = struct.Struct(">Q")
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
# RabbitMQ also takes the header of AMQP 0-9 (its methods are 0-9-1's) and answers in 0-9-1.
ACCEPTED_HEADERS = (PROTOCOL_HEADER, b"AMQP\x01\x01\x00\x09")

FRAME_METHOD = constants.FRAME_METHOD
FRAME_HEADER_TYPE = constants.FRAME_HEADER
FRAME_BODY = constants.FRAME_BODY
FRAME_HEARTBEAT = constants.FRAME_HEARTBEAT
FRAME_MIN_SIZE = constants.FRAME_MIN_SIZE
HEARTBEAT_FRAME = FRAME_HEADER.pack(FRAME_HEARTBEAT, 0, 0) + FRAME_END

BASIC_CLASS = commands.Basic.frame_id

PROPERTY_FIELDS = tuple(commands.Basic.Properties.__slots__)


class FrameError(errors.ConnectionError):
    """A frame that cannot be read: the connection closes with this code."""


def frame_error(detail: str) -> FrameError:
    return FrameError(501, detail)


class FrameReader:
    """Cuts a byte stream into frames: (type, channel, payload).

    ``frame_max`` is the largest frame the peer may send, header and end octet
    included (0: the protocol's minimum until tuning raises it).
    """

    def __init__(self, frame_max: int = FRAME_MIN_SIZE) -> None:
        self.frame_max = frame_max
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def take(self, count: int) -> bytes:
        taken = bytes(self._buffer[:count])
        del self._buffer[:count]
        return taken

    def peek(self, count: int) -> bytes:
        return bytes(self._buffer[:count])

    def frames(self) -> Iterator[tuple[int, int, bytes]]:
        """Every whole frame received so far, in order; a partial one stays for the next read.

        A malformed frame raises :class:`FrameError` once the frames before it are taken.
        """
        buffer = self._buffer
        offset = 0
        try:
            while len(buffer) - offset >= 8:
                frame_type, channel, length = FRAME_HEADER.unpack_from(buffer, offset)
                total = length + 8
                if total > self.frame_max:
                    raise frame_error(
                        f"type {frame_type}, frame of {length} octets: larger than frame_max "
                        f"({self.frame_max - 8} octets of payload)"
                    )
                if len(buffer) - offset < total:
                    break
                if buffer[offset + total - 1] != 0xCE:
                    raise frame_error(f"type {frame_type}: invalid frame end marker {buffer[offset + total - 1]}")
                payload = bytes(buffer[offset + 7 : offset + 7 + length])
                offset += total
                yield frame_type, channel, payload
        finally:
            del buffer[:offset]


def decode_method(payload: bytes) -> Method:
    if len(payload) < 4:
        raise frame_error("method frame shorter than its class and method ids")
    class_id, method_id = METHOD_ID.unpack_from(payload)
    kind: type[Method] | None = commands.INDEX_MAPPING.get((class_id << 16) | method_id)
    if kind is None:
        raise errors.ConnectionError(540, f"unknown method: class {class_id}, method {method_id}")
    method = kind.__new__(kind)
    try:
        method.unmarshal(payload[4:])
    except (struct.error, ValueError, TypeError, IndexError, UnicodeDecodeError) as exc:
        raise frame_error(f"cannot decode {kind.name}: {exc}").about(kind.index) from None
    return method


def decode_content_header(payload: bytes) -> tuple[int, int, dict[str, Any] | None, bytes]:
    """(class id, body size, properties as the engine keeps them, the properties' own bytes)."""
    if len(payload) < 14:
        raise frame_error("content header frame too short")
    class_id, _weight, body_size = CONTENT_HEADER.unpack_from(payload)
    raw = payload[12:]
    header = ContentHeader()
    try:
        offset, flags = header._get_flags(raw)  # noqa: SLF001 - pamqp's own flag reader
        header.properties.unmarshal(flags, raw[offset:])
    except (struct.error, ValueError, TypeError, IndexError, UnicodeDecodeError) as exc:
        raise frame_error(f"cannot decode content header: {exc}") from None
    return class_id, body_size, properties_dict(header.properties), raw


def properties_dict(properties: commands.Basic.Properties) -> dict[str, Any] | None:
    """pamqp's properties object as the engine keeps properties: only those set."""
    found: dict[str, Any] = {}
    for name in PROPERTY_FIELDS:
        value = getattr(properties, name, None)
        if value is None:
            continue
        if name == "timestamp" and isinstance(value, datetime.datetime):
            value = Timestamp(int(value.timestamp()))
        elif name == "headers":
            value = _plain_table(value)
        found[name] = value
    return found or None


def _plain_table(table: dict[str, Any]) -> dict[str, Any]:
    return {key: _plain_value(value) for key, value in table.items()}


def _plain_value(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return Timestamp(int(value.timestamp()))
    if isinstance(value, dict):
        return _plain_table(value)
    if isinstance(value, list):
        return [_plain_value(item) for item in value]
    return value


def encode_method(channel: int, method: Method) -> bytes:
    """A method frame, fields encoded by pamqp's types (its client-side name checks skipped)."""
    parts = [METHOD_ID.pack(method.index >> 16, method.index & 0xFFFF)]
    bits = -1
    bit_count = 0
    for name in method.__slots__:
        kind = method.amqp_type(name)
        value = getattr(method, name, None)
        if kind == "bit":
            if bits < 0 or bit_count == 8:
                if bits >= 0:
                    parts.append(encode.octet(bits))
                bits, bit_count = 0, 0
            if value:
                bits |= 1 << bit_count
            bit_count += 1
            continue
        if bits >= 0:
            parts.append(encode.octet(bits))
            bits, bit_count = -1, 0
        parts.append(_encode_field(value, kind))
    if bits >= 0:
        parts.append(encode.octet(bits))
    payload = b"".join(parts)
    return FRAME_HEADER.pack(FRAME_METHOD, channel, len(payload)) + payload + FRAME_END


def _encode_field(value: Any, kind: str) -> bytes:
    if value is None:
        value = {"shortstr": "", "longstr": "", "table": {}}.get(kind, 0)
    if kind == "table":
        return encode_table(value)
    return encode.by_type(value, kind)


def encode_table(table: dict[str, Any]) -> bytes:
    """A field table with the types RabbitMQ and pika use: integers as signed 32 or 64 bits,
    floats as doubles, bytes as long strings, :class:`Timestamp` as a timestamp."""
    encoded = b"".join(encode.short_string(str(key)) + _table_value(value) for key, value in table.items())
    return encode.long_uint(len(encoded)) + encoded


def _table_value(value: Any) -> bytes:
    if isinstance(value, bool):
        return b"t" + encode.boolean(value)
    if isinstance(value, Timestamp):
        return b"T" + FRAME_TIMESTAMP.pack(int(value))
    if isinstance(value, LongLong):
        return b"l" + encode.long_long_int(value)
    if isinstance(value, int):
        return b"I" + encode.long_int(value) if -(2**31) <= value < 2**31 else b"l" + encode.long_long_int(value)
    if isinstance(value, float):
        return b"d" + encode.double(value)
    if isinstance(value, str):
        return b"S" + encode.long_string(value)
    if isinstance(value, bytes):
        return b"S" + encode.long_uint(len(value)) + value
    if isinstance(value, bytearray):
        return b"x" + encode.byte_array(value)
    if isinstance(value, dict):
        return b"F" + encode_table(value)
    if isinstance(value, list | tuple):
        items = b"".join(_table_value(item) for item in value)
        return b"A" + encode.long_uint(len(items)) + items
    if isinstance(value, datetime.datetime):
        return b"T" + FRAME_TIMESTAMP.pack(int(value.timestamp()))
    if value is None:
        return b"V"
    if isinstance(value, decimal.Decimal):
        return b"D" + encode.decimal(value)
    raise TypeError(f"a header value of type {type(value).__name__} cannot travel in AMQP")


def encode_properties(properties: dict[str, Any] | None) -> bytes:
    """The property flags and values of a content header, from the engine's properties."""
    flags = 0
    parts = []
    if properties:
        spec = commands.Basic.Properties
        for name in PROPERTY_FIELDS:
            if name not in properties:
                continue
            value = properties[name]
            if value is None:
                continue
            kind = spec.amqp_type(name)
            if kind == "table":
                encoded = encode_table(value)
            elif kind == "timestamp":
                encoded = _timestamp(value)
            else:
                encoded = encode.by_type(value, kind)
            flags |= spec.flags[name]
            parts.append(encoded)
    return struct.pack(">H", flags) + b"".join(parts)


def _timestamp(value: Any) -> bytes:
    if isinstance(value, datetime.datetime):
        value = value.timestamp()
    return FRAME_TIMESTAMP.pack(int(value))


def content_frames(channel: int, body: bytes, properties_bytes: bytes, frame_max: int) -> bytes:
    """A content header and as many body frames as the body needs within frame_max."""
    header_payload = CONTENT_HEADER.pack(BASIC_CLASS, 0, len(body)) + properties_bytes
    parts = [FRAME_HEADER.pack(FRAME_HEADER_TYPE, channel, len(header_payload)), header_payload, FRAME_END]
    if body:
        room = frame_max - 8
        if len(body) <= room:
            parts += [FRAME_HEADER.pack(FRAME_BODY, channel, len(body)), body, FRAME_END]
        else:
            for start in range(0, len(body), room):
                piece = body[start : start + room]
                parts += [FRAME_HEADER.pack(FRAME_BODY, channel, len(piece)), piece, FRAME_END]
    return b"".join(parts)


def decode_table(data: bytes) -> dict[str, Any]:
    """A field table on its own (the response of AMQPLAIN)."""
    _, table = decode.field_table(data)
    return _plain_table(table)
