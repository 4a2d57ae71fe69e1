"""A message as the broker holds it: one small object per queue it sits in."""

from __future__ import annotations

from typing import Any

# The AMQP 0-9-1 basic properties, by the names pika uses.
PROPERTY_NAMES = (
    "content_type",
    "content_encoding",
    "headers",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
    "cluster_id",
)

PERSISTENT = 2


class Timestamp(int):
    """Seconds since the epoch that travel as an AMQP timestamp (x-death's ``time``, say),
    not as a plain integer."""

    __slots__ = ()


class LongLong(int):
    """An integer that travels as a signed 64-bit field ('l') whatever its size, as RabbitMQ
    writes x-death's ``count``: a 32-bit one breaks clients that read it as a long."""

    __slots__ = ()


class Message:
    """One copy of a published message, in one queue (or on its way to one).

    ``properties`` is None or a dict of the basic properties that were set; copies
    of the same publish share the dict and the body until one of them changes
    (dead-lettering writes new headers into a fresh dict).
    """

    __slots__ = (
        "msg_id",
        "exchange",
        "routing_key",
        "properties",
        "body",
        "published_at",
        "enqueued_at",
        "seq",
        "expires_at",
        "redelivered",
        "delivery_count",
        "origin",
        "priority",
        "encoded",
        "bcc",
    )

    def __init__(
        self,
        msg_id: int,
        exchange: str,
        routing_key: str,
        properties: dict[str, Any] | None,
        body: bytes,
        published_at: float,
        origin: str | None = None,
        encoded: tuple[dict[str, Any] | None, bytes] | None = None,
    ) -> None:
        self.msg_id = msg_id
        self.exchange = exchange
        self.routing_key = routing_key
        self.properties = properties
        self.body = body
        self.published_at = published_at
        self.enqueued_at = published_at
        self.seq = 0
        self.expires_at: float | None = None
        self.redelivered = False
        self.delivery_count = 0
        self.origin = origin
        self.priority = 0
        # The properties as they travel on the wire, and the dict they encode: valid while
        # ``properties`` is still that dict (dead-lettering, say, gives it a new one).
        self.encoded = encoded
        # BCC keys route the message (and its dead-lettered copies) but leave its headers.
        self.bcc: tuple[str, ...] = ()

    def copy(self) -> Message:
        twin = Message.__new__(Message)
        twin.msg_id = self.msg_id
        twin.exchange = self.exchange
        twin.routing_key = self.routing_key
        twin.properties = self.properties
        twin.body = self.body
        twin.published_at = self.published_at
        twin.enqueued_at = self.enqueued_at
        twin.seq = self.seq
        twin.expires_at = self.expires_at
        twin.redelivered = self.redelivered
        twin.delivery_count = self.delivery_count
        twin.origin = self.origin
        twin.priority = self.priority
        twin.encoded = self.encoded
        twin.bcc = self.bcc
        return twin

    @property
    def size(self) -> int:
        return len(self.body)

    @property
    def headers(self) -> dict[str, Any]:
        props = self.properties
        if props is None:
            return {}
        return props.get("headers") or {}

    @property
    def persistent(self) -> bool:
        props = self.properties
        return props is not None and props.get("delivery_mode") == PERSISTENT

    def __repr__(self) -> str:
        return f"<Message #{self.msg_id} {self.exchange!r}/{self.routing_key!r} {len(self.body)}B>"
