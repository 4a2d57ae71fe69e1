"""AMQP 0-9-1 errors, raised by the broker core as RabbitMQ would close a channel.

The reply text follows RabbitMQ's form, ``NOT_FOUND - no queue 'q' in vhost '/'``,
so what a user reads in Queuecraft is what the real broker would have said.
"""

from __future__ import annotations

REPLY_NAMES = {
    311: "CONTENT_TOO_LARGE",
    312: "NO_ROUTE",
    313: "NO_CONSUMERS",
    320: "CONNECTION_FORCED",
    402: "INVALID_PATH",
    403: "ACCESS_REFUSED",
    404: "NOT_FOUND",
    405: "RESOURCE_LOCKED",
    406: "PRECONDITION_FAILED",
    501: "FRAME_ERROR",
    502: "SYNTAX_ERROR",
    503: "COMMAND_INVALID",
    504: "CHANNEL_ERROR",
    505: "UNEXPECTED_FRAME",
    506: "RESOURCE_ERROR",
    530: "NOT_ALLOWED",
    540: "NOT_IMPLEMENTED",
    541: "INTERNAL_ERROR",
}


class AMQPError(Exception):
    """An error with an AMQP reply code; ``str()`` gives RabbitMQ's reply text."""

    connection_level = False
    # The method the error answers, as AMQP's close names it (0, 0: none in particular).
    class_id = 0
    method_id = 0

    def __init__(self, reply_code: int, detail: str) -> None:
        self.reply_code = reply_code
        self.detail = detail
        self.log_text: str | None = None  # what the broker's log says, when it says more than the client hears
        self.reply_text = f"{REPLY_NAMES.get(reply_code, 'ERROR')} - {detail}"
        super().__init__(self.reply_text)

    def about(self, method_index: int) -> AMQPError:
        """Say which method (pamqp's class << 16 | method index) the error answers, unless already said."""
        if not self.class_id and not self.method_id:
            self.class_id, self.method_id = method_index >> 16, method_index & 0xFFFF
        return self


class ChannelError(AMQPError):
    """Closes the channel; the connection and other channels carry on."""


class ConnectionError(AMQPError):  # noqa: A001 - AMQP's own name for the error class
    """Closes the whole connection."""

    connection_level = True


def not_found(detail: str) -> ChannelError:
    return ChannelError(404, detail)


def access_refused(detail: str) -> ChannelError:
    return ChannelError(403, detail)


def resource_locked(detail: str) -> ChannelError:
    return ChannelError(405, detail)


def precondition_failed(detail: str) -> ChannelError:
    return ChannelError(406, detail)


def not_allowed(detail: str) -> ConnectionError:
    return ConnectionError(530, detail)


def command_invalid(detail: str) -> ConnectionError:
    return ConnectionError(503, detail)


def resource_description(kind: str, name: str, vhost: str) -> str:
    """RabbitMQ's way of naming a resource: ``queue 'payments' in vhost '/'``."""
    return f"{kind} '{name}' in vhost '{vhost}'"
