"""Queue and exchange arguments: validation and equivalence as RabbitMQ 3.10 checks them.

Texts follow RabbitMQ's, for example ``invalid arg 'x-max-priority' for queue 'q'
in vhost '/': {max_value_exceeded,256}``.
"""

from __future__ import annotations

from typing import Any

from . import errors
from .errors import resource_description

QUEUE_TYPES = ("classic", "quorum", "stream")
OVERFLOW_RULES = ("drop-head", "reject-publish", "reject-publish-dlx")
MAX_PRIORITY = 255
MAX_TTL = 4294967295  # milliseconds, 2^32 - 1

# Arguments a redeclare must repeat exactly, by queue type (RabbitMQ compares only
# the arguments the queue's type knows; x-custom ones may differ).
_COMMON_EQUIVALENT = (
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-overflow",
    "x-single-active-consumer",
)
EQUIVALENT_QUEUE_ARGUMENTS = {
    "classic": (*_COMMON_EQUIVALENT, "x-max-priority", "x-queue-mode"),
    "quorum": (*_COMMON_EQUIVALENT, "x-delivery-limit", "x-max-in-memory-length", "x-max-in-memory-bytes"),
    "stream": ("x-max-length-bytes", "x-max-age"),
}
EQUIVALENT_EXCHANGE_ARGUMENTS = ("alternate-exchange",)


def amqp_type(value: Any) -> str:
    """The AMQP field type a value travels as (what RabbitMQ names in its errors)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "signedint" if -(2**31) <= value < 2**31 else "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, bytearray):
        return "binary"
    if isinstance(value, str | bytes):
        return "longstr"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, list | tuple):
        return "array"
    if value is None:
        return "void"
    return type(value).__name__


def erlang_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _invalid(name: str, vhost: str, key: str, reason: str) -> errors.ChannelError:
    return errors.precondition_failed(f"invalid arg '{key}' for {resource_description('queue', name, vhost)}: {reason}")


def _non_negative_int(name: str, vhost: str, key: str, value: Any, maximum: int | None = None) -> None:
    if not _is_int(value):
        raise _invalid(name, vhost, key, f'"expected integer, got {amqp_type(value)}"')
    if value < 0:
        raise _invalid(name, vhost, key, f"{{value_negative,{value}}}")
    if maximum is not None and value > maximum:
        raise _invalid(name, vhost, key, f"{{value_too_large,{value},{maximum}}}")


def check_exchange_arguments(name: str, vhost: str, arguments: dict[str, Any]) -> None:
    """Refuse (406) the arguments RabbitMQ refuses on exchange.declare."""
    value = arguments.get("alternate-exchange")
    if "alternate-exchange" in arguments and not isinstance(value, str | bytes):
        what = resource_description("exchange", name, vhost)
        raise errors.precondition_failed(f"invalid type '{amqp_type(value)}' for arg 'alternate-exchange' in {what}")


def check_queue_arguments(name: str, vhost: str, arguments: dict[str, Any]) -> None:
    """Refuse (406) the arguments RabbitMQ refuses on queue.declare."""
    for key, value in arguments.items():
        if key == "x-message-ttl":
            _non_negative_int(name, vhost, key, value, MAX_TTL)
        elif key == "x-expires":
            _non_negative_int(name, vhost, key, value, MAX_TTL)
            if value == 0:
                raise _invalid(name, vhost, key, "{value_zero,0}")
        elif key in (
            "x-max-length",
            "x-max-length-bytes",
            "x-max-in-memory-length",
            "x-max-in-memory-bytes",
            "x-delivery-limit",
        ):
            _non_negative_int(name, vhost, key, value)
        elif key == "x-max-priority":
            _non_negative_int(name, vhost, key, value)
            if value > MAX_PRIORITY:
                raise _invalid(name, vhost, key, f"{{max_value_exceeded,{value}}}")
        elif key == "x-overflow":
            if not isinstance(value, str) or value not in OVERFLOW_RULES:
                raise _invalid(name, vhost, key, "invalid_overflow")
        elif key == "x-dead-letter-exchange":
            if not isinstance(value, str | bytes):
                raise _invalid(name, vhost, key, f"{{unacceptable_type,{amqp_type(value)}}}")
        elif key == "x-dead-letter-routing-key":
            if not isinstance(value, str | bytes):
                raise _invalid(name, vhost, key, f"{{unacceptable_type,{amqp_type(value)}}}")
            if "x-dead-letter-exchange" not in arguments:
                raise _invalid(name, vhost, key, "routing_key_but_no_dlx_defined")
        elif key == "x-queue-type":
            if value not in QUEUE_TYPES:
                raise _invalid(name, vhost, key, f"\"unsupported queue type '{erlang_text(value)}'\"")
        elif key == "x-single-active-consumer":
            if not isinstance(value, bool):
                raise _invalid(name, vhost, key, f"{{unacceptable_type,{amqp_type(value)}}}")
        elif key == "x-queue-mode":
            if value not in ("default", "lazy"):
                raise _invalid(name, vhost, key, f"{{unacceptable_value,{erlang_text(value)}}}")


def check_equivalent_arguments(
    what: str, current: dict[str, Any], received: dict[str, Any], keys: tuple[str, ...]
) -> None:
    """Refuse (406) a redeclare whose listed arguments differ from the declared ones."""
    for key in keys:
        have, want = current.get(key), received.get(key)
        if have == want and type(have) is type(want):
            continue
        if want is None:
            raise errors.precondition_failed(
                f"inequivalent arg '{key}' for {what}: received none but current is the value "
                f"'{erlang_text(have)}' of type '{amqp_type(have)}'"
            )
        if have is None:
            raise errors.precondition_failed(
                f"inequivalent arg '{key}' for {what}: received the value '{erlang_text(want)}' of type "
                f"'{amqp_type(want)}' but current is none"
            )
        raise errors.precondition_failed(
            f"inequivalent arg '{key}' for {what}: received '{erlang_text(want)}' but current is '{erlang_text(have)}'"
        )


def check_expiration(value: Any) -> None:
    """A per-message ``expiration`` must be a string of a non-negative whole number of milliseconds."""
    text = erlang_text(value)
    try:
        number = int(text)
    except ValueError:
        raise errors.precondition_failed(f"invalid expiration '{text}': no_integer") from None
    if number < 0:
        raise errors.precondition_failed(f"invalid expiration '{text}': {{value_negative,{number}}}")


# Arguments a queue type refuses on declare.
REFUSED_BY_TYPE = {
    "classic": (
        "x-delivery-limit",
        "x-max-in-memory-length",
        "x-max-in-memory-bytes",
        "x-max-age",
        "x-stream-max-segment-size-bytes",
        "x-queue-leader-locator",
        "x-initial-cluster-size",
    ),
    "quorum": (
        "x-max-priority",
        "x-queue-mode",
        "x-max-age",
        "x-stream-max-segment-size-bytes",
        "x-queue-master-locator",
    ),
    "stream": (
        "x-max-priority",
        "x-message-ttl",
        "x-delivery-limit",
        "x-dead-letter-exchange",
        "x-dead-letter-routing-key",
        "x-overflow",
        "x-max-length",
        "x-expires",
        "x-single-active-consumer",
        "x-queue-mode",
        "x-max-in-memory-length",
        "x-max-in-memory-bytes",
        "x-queue-master-locator",
    ),
}
TYPE_MODULES = {"classic": "rabbit_classic_queue", "quorum": "rabbit_quorum_queue", "stream": "rabbit_stream_queue"}


def check_queue_type(
    what: str, queue_type: str, durable: bool, auto_delete: bool, exclusive: bool, arguments: dict[str, Any]
) -> None:
    """Refuse (406) what a queue type cannot be: quorum queues and streams are durable and shared."""
    if queue_type in ("quorum", "stream"):
        # In RabbitMQ 3.10's order: auto-delete, then exclusive, then durable.
        if auto_delete:
            raise errors.precondition_failed(f"invalid property 'auto-delete' for {what}")
        if exclusive:
            raise errors.precondition_failed(f"invalid property 'exclusive-owner' for {what}")
        if not durable:
            raise errors.precondition_failed(f"invalid property 'non-durable' for {what}")
    for key in REFUSED_BY_TYPE.get(queue_type, ()):
        if key in arguments:
            raise errors.precondition_failed(f"invalid arg '{key}' for {what} of queue type {TYPE_MODULES[queue_type]}")
