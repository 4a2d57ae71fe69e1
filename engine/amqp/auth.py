"""Users and permissions, as RabbitMQ keeps them in its definitions.

A topology file's ``users`` carry the password hashes RabbitMQ writes
(``rabbit_password_hashing_sha256``, ``_sha512`` or ``_md5``: base64 of a 4-byte
salt followed by the hash of salt and password), and its ``permissions`` the
configure / write / read patterns per user and vhost. A file with no users has
RabbitMQ's default: guest/guest, allowed everything, from loopback only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import Any

from .. import errors

HASHES = {
    "rabbit_password_hashing_sha256": hashlib.sha256,
    "rabbit_password_hashing_sha512": hashlib.sha512,
    "rabbit_password_hashing_md5": hashlib.md5,
}
DEFAULT_HASHING = "rabbit_password_hashing_sha256"
DEFAULT_USER = "guest"


class UsersError(ValueError):
    """A ``users`` or ``permissions`` entry that cannot be used: where, and why."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")


def hash_password(password: str, hashing: str = DEFAULT_HASHING, salt: bytes | None = None) -> str:
    """A password hash as RabbitMQ writes it in its definitions."""
    salt = os.urandom(4) if salt is None else salt
    digest = HASHES[hashing](salt + password.encode()).digest()
    return base64.b64encode(salt + digest).decode()


@dataclass
class Permission:
    configure: re.Pattern[str]
    write: re.Pattern[str]
    read: re.Pattern[str]


@dataclass
class User:
    name: str
    password_hash: str  # empty: no password login
    hashing: str = DEFAULT_HASHING
    tags: list[str] = field(default_factory=list)
    permissions: dict[str, Permission] = field(default_factory=dict)  # by vhost
    loopback_only: bool = False

    def password_matches(self, password: str) -> bool:
        if not self.password_hash:
            return False
        try:
            decoded = base64.b64decode(self.password_hash, validate=True)
        except ValueError:
            return False
        salt, expected = decoded[:4], decoded[4:]
        actual = HASHES[self.hashing](salt + password.encode()).digest()
        return hmac.compare_digest(actual, expected)


def _pattern(value: Any, where: str) -> re.Pattern[str]:
    if not isinstance(value, str):
        raise UsersError(where, f"expected a regular expression as a string, got {value!r}")
    try:
        return re.compile(value)
    except re.error as exc:
        raise UsersError(where, f"not a regular expression: {exc}") from None


ALLOW_ALL = Permission(re.compile(".*"), re.compile(".*"), re.compile(".*"))


class UserBase:
    """Who may connect, with which password, to which vhost, and do what there."""

    def __init__(self, users: dict[str, User], default_guest: bool) -> None:
        self.users = users
        self.default_guest = default_guest

    @classmethod
    def default(cls) -> UserBase:
        guest = User(DEFAULT_USER, hash_password("guest"), loopback_only=True)
        return cls({DEFAULT_USER: guest}, default_guest=True)

    @classmethod
    def from_definitions(cls, users: Any, permissions: Any) -> UserBase:
        """From a definitions file's ``users`` and ``permissions`` (None: RabbitMQ's default guest)."""
        if users is None:
            base = cls.default()
            return base
        if not isinstance(users, list):
            raise UsersError("$.users", f"expected a list of users, got {type(users).__name__}")
        found: dict[str, User] = {}
        for index, entry in enumerate(users):
            where = f"$.users[{index}]"
            if not isinstance(entry, dict):
                raise UsersError(where, "expected an object with name and password_hash")
            name = entry.get("name")
            if not isinstance(name, str) or not name:
                raise UsersError(f"{where}.name", f"expected a user name, got {name!r}")
            password_hash = entry.get("password_hash", "")
            if not isinstance(password_hash, str):
                raise UsersError(f"{where}.password_hash", f"expected base64 text, got {password_hash!r}")
            hashing = entry.get("hashing_algorithm", DEFAULT_HASHING)
            if hashing not in HASHES:
                raise UsersError(f"{where}.hashing_algorithm", f"expected one of {', '.join(HASHES)}, got {hashing!r}")
            if password_hash:
                try:
                    if len(base64.b64decode(password_hash, validate=True)) <= 4:
                        raise ValueError("too short")
                except ValueError:
                    raise UsersError(
                        f"{where}.password_hash", "not a RabbitMQ password hash (base64 of salt and hash)"
                    ) from None
            tags = entry.get("tags", [])
            if isinstance(tags, str):  # RabbitMQ 3.10 writes tags as one comma-separated string
                tags = [tag for tag in tags.split(",") if tag]
            if not isinstance(tags, list):
                raise UsersError(f"{where}.tags", f"expected a list of tags, got {tags!r}")
            found[name] = User(name, password_hash, hashing, [str(t) for t in tags], loopback_only=name == DEFAULT_USER)
        if permissions is None:
            permissions = []
        if not isinstance(permissions, list):
            raise UsersError("$.permissions", f"expected a list of permissions, got {type(permissions).__name__}")
        for index, entry in enumerate(permissions):
            where = f"$.permissions[{index}]"
            if not isinstance(entry, dict):
                raise UsersError(where, "expected an object with user, vhost, configure, write and read")
            user = found.get(entry.get("user"))  # type: ignore[arg-type]
            if user is None:
                raise UsersError(f"{where}.user", f"no user {entry.get('user')!r} in $.users")
            vhost = entry.get("vhost")
            if not isinstance(vhost, str):
                raise UsersError(f"{where}.vhost", f"expected a vhost name, got {vhost!r}")
            user.permissions[vhost] = Permission(
                _pattern(entry.get("configure"), f"{where}.configure"),
                _pattern(entry.get("write"), f"{where}.write"),
                _pattern(entry.get("read"), f"{where}.read"),
            )
        return cls(found, default_guest=False)

    def authenticate(self, mechanism: str, response: bytes, peer: str | None) -> User:
        """The user a connection.start-ok's response names, or ACCESS_REFUSED as RabbitMQ words it."""
        username, password = _credentials(mechanism, response)
        user = self.users.get(username)
        refused = errors.ConnectionError(
            403,
            f"Login was refused using authentication mechanism {mechanism}. For details see the broker logfile.",
        )
        if user is None or not user.password_matches(password):
            # The client is told only that; the log says who, as RabbitMQ's does.
            refused.log_text = f"{mechanism} login refused: user '{username}' - invalid credentials"
            raise refused
        if user.loopback_only and not is_loopback(peer):
            raise errors.ConnectionError(403, f"user '{username}' can only connect via localhost")
        return user

    def permission(self, user: User, vhost: str) -> Permission | None:
        if self.default_guest and user.name == DEFAULT_USER:
            return ALLOW_ALL
        return user.permissions.get(vhost)


def _credentials(mechanism: str, response: bytes) -> tuple[str, str]:
    if mechanism == "PLAIN":
        parts = response.split(b"\x00")
        if len(parts) != 3:
            raise errors.ConnectionError(403, "malformed PLAIN response")
        return parts[1].decode("utf-8", "replace"), parts[2].decode("utf-8", "replace")
    if mechanism == "AMQPLAIN":
        from .codec import decode_table

        try:
            table = decode_table(len(response).to_bytes(4, "big") + response)
        except (ValueError, IndexError, UnicodeDecodeError):
            raise errors.ConnectionError(403, "malformed AMQPLAIN response") from None
        login, password = table.get("LOGIN"), table.get("PASSWORD")
        if isinstance(login, bytes):
            login = login.decode("utf-8", "replace")
        if isinstance(password, bytes):
            password = password.decode("utf-8", "replace")
        if not isinstance(login, str) or not isinstance(password, str):
            raise errors.ConnectionError(403, "AMQPLAIN response without LOGIN and PASSWORD")
        return login, password
    raise errors.command_invalid(f"unknown authentication mechanism '{mechanism}'")


def is_loopback(peer: str | None) -> bool:
    if peer is None:
        return True  # an in-process client
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
