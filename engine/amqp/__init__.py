"""The built-in broker on the wire: an AMQP 0-9-1 listener over the broker core."""

from .auth import UserBase, UsersError, hash_password
from .server import DEFAULT_PORT, AmqpServer

__all__ = ["DEFAULT_PORT", "AmqpServer", "UserBase", "UsersError", "hash_password"]
