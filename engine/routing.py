"""Routing tables: which bindings of an exchange match a message.

One router per exchange type. Topic routing walks a trie of binding-key words,
so its cost follows the routing key, not the number of bindings.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from .errors import precondition_failed
from .model import node_id


class Binding:
    """A binding of a source exchange to a queue or exchange, with its counter."""

    __slots__ = (
        "vhost",
        "source",
        "destination",
        "destination_type",
        "routing_key",
        "arguments",
        "node_id",
        "destination_node",
        "routed",
    )

    def __init__(
        self,
        vhost: str,
        source: str,
        destination: str,
        destination_type: str,
        routing_key: str,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        self.vhost = vhost
        self.source = source
        self.destination = destination
        self.destination_type = destination_type
        self.routing_key = routing_key
        self.arguments = dict(arguments or {})
        self.node_id = binding_id(vhost, source, destination_type, destination, routing_key, self.arguments)
        self.destination_node = node_id(destination_type, vhost, destination)
        self.routed = 0

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """RabbitMQ identifies a binding by all of its fields, arguments included."""
        return (
            self.source,
            self.destination_type,
            self.destination,
            self.routing_key,
            _canonical(self.arguments),
        )

    def __repr__(self) -> str:
        return f"<Binding {self.node_id}>"


def binding_id(
    vhost: str,
    source: str,
    destination_type: str,
    destination: str,
    routing_key: str,
    arguments: Mapping[str, Any] | None = None,
) -> str:
    # Each part escaped, so names and keys holding ':' or '>' cannot make two bindings one id.
    base = node_id(
        "binding", vhost, f"{_escape(source)}>{destination_type}:{_escape(destination)}:{_escape(routing_key)}"
    )
    if arguments:
        base += ":" + _escape(_canonical(arguments))
    return base


def _escape(text: str) -> str:
    return text.replace("%", "%25").replace(":", "%3A").replace(">", "%3E")


def binding_parts(binding_node: str) -> tuple[str, str, str]:
    """(source, destination, routing key), read back from a binding's id."""
    name = binding_node.split(":", 2)[2]
    source, _, rest = name.partition(">")
    parts = rest.split(":")
    destination = parts[1] if len(parts) > 1 else ""
    key = parts[2] if len(parts) > 2 else ""
    return _unescape(source), _unescape(destination), _unescape(key)


def _unescape(text: str) -> str:
    return text.replace("%3E", ">").replace("%3A", ":").replace("%25", "%")


def _canonical(arguments: Mapping[str, Any]) -> str:
    if not arguments:
        return ""
    return ",".join(f"{k}={arguments[k]!r}" for k in sorted(arguments))


class Router:
    """The bindings of one exchange and the rule that matches them."""

    def __init__(self) -> None:
        self.bindings: list[Binding] = []

    def add(self, binding: Binding) -> None:
        self.bindings.append(binding)

    def remove(self, binding: Binding) -> None:
        self.bindings.remove(binding)

    def match(self, routing_key: str, headers: Mapping[str, Any] | None) -> Sequence[Binding]:
        raise NotImplementedError

    def validate(self, routing_key: str, arguments: Mapping[str, Any]) -> None:
        """Refuse a binding this exchange type cannot hold (406)."""


class DirectRouter(Router):
    def __init__(self) -> None:
        super().__init__()
        self._by_key: dict[str, list[Binding]] = {}

    def add(self, binding: Binding) -> None:
        super().add(binding)
        self._by_key.setdefault(binding.routing_key, []).append(binding)

    def remove(self, binding: Binding) -> None:
        super().remove(binding)
        same_key = self._by_key[binding.routing_key]
        same_key.remove(binding)
        if not same_key:
            del self._by_key[binding.routing_key]

    def match(self, routing_key: str, headers: Mapping[str, Any] | None) -> Sequence[Binding]:
        return self._by_key.get(routing_key, ())


class FanoutRouter(Router):
    def match(self, routing_key: str, headers: Mapping[str, Any] | None) -> Sequence[Binding]:
        return self.bindings


def split_topic(key: str) -> list[str]:
    """Words of a routing or binding key; the empty key has no words at all."""
    return key.split(".") if key else []


# A trie node is a dict: words to child nodes, and under the key None the bindings
# that end there. A node reached by the word '#' may take any number of further words.
_BINDINGS = None


class TopicRouter(Router):
    """Binding keys in a trie of words; ``*`` is one word, ``#`` zero or more.

    Matching walks the trie word by word with the set of nodes the key has
    reached so far, so its cost follows the key's words, not the number of
    bindings. Bindings whose first two words are plain words are found through
    one table keyed by those two words (``_by_prefix``): while only a few
    patterns share two first words (each with at most one ``#`` after them),
    each is one flat tuple matched word by word; past that, a trie of their
    own. With many bindings a key then costs a handful of trips to memory.
    Producers reuse a few keys, so the bindings each key matched are also kept
    in a bounded cache that any change of bindings empties.
    """

    CACHE_SIZE = 4096
    BUCKET = 8  # patterns under two first words kept flat, at most

    def __init__(self) -> None:
        super().__init__()
        self._root: dict[Any, Any] = {}
        # two first words -> one flat pattern (a tuple), a list of them, or a trie node (a dict)
        self._by_prefix: dict[str, Any] = {}
        self._cache: dict[str, list[Binding]] = {}

    def add(self, binding: Binding) -> None:
        self._cache.clear()
        super().add(binding)
        words = split_topic(binding.routing_key)
        if not _prefixed(words):
            _trie_insert(self._root, words, binding)
            return
        prefix = f"{words[0]}.{words[1]}"
        rest = tuple(sys.intern(w) for w in words[2:])
        entry = self._by_prefix.get(prefix)
        if isinstance(entry, dict):
            _trie_insert(entry, list(rest), binding)
            return
        patterns = [] if entry is None else [entry] if isinstance(entry, tuple) else entry
        for index, pattern in enumerate(patterns):
            if _pattern_rest(pattern) == rest:
                patterns[index] = (*pattern, binding)
                break
        else:
            patterns.append(_flat_pattern(rest, (binding,)))
        if len(patterns) > self.BUCKET or any(p[0] == -2 for p in patterns):
            node: dict[Any, Any] = {}
            for pattern in patterns:
                for held in _pattern_bindings(pattern):
                    _trie_insert(node, list(_pattern_rest(pattern)), held)
            self._by_prefix[prefix] = node
        else:
            self._by_prefix[prefix] = patterns[0] if len(patterns) == 1 else patterns

    def remove(self, binding: Binding) -> None:
        self._cache.clear()
        super().remove(binding)
        words = split_topic(binding.routing_key)
        if not _prefixed(words):
            _trie_remove(self._root, words, binding)
            return
        prefix = f"{words[0]}.{words[1]}"
        entry = self._by_prefix[prefix]
        rest = tuple(words[2:])
        if isinstance(entry, dict):
            _trie_remove(entry, list(rest), binding)
            if not entry:
                del self._by_prefix[prefix]
            return
        patterns = [entry] if isinstance(entry, tuple) else entry
        kept = []
        for pattern in patterns:
            if _pattern_rest(pattern) == rest:
                held = list(_pattern_bindings(pattern))
                held.remove(binding)
                if held:
                    kept.append(_flat_pattern(rest, tuple(held)))
            else:
                kept.append(pattern)
        if not kept:
            del self._by_prefix[prefix]
        else:
            self._by_prefix[prefix] = kept[0] if len(kept) == 1 else kept

    def match(self, routing_key: str, headers: Mapping[str, Any] | None) -> Sequence[Binding]:
        cache = self._cache
        found = cache.get(routing_key)
        if found is None:
            found = self.match_in_trie(routing_key)
            if len(cache) >= self.CACHE_SIZE:
                cache.clear()
            cache[routing_key] = found
        return found

    def match_in_trie(self, routing_key: str) -> list[Binding]:
        """The bindings a key matches, found by walking the trie (no cache)."""
        words = routing_key.split(".") if routing_key else []
        found = _walk(self._root, words, 0) if self._root else []
        if len(words) >= 2 and self._by_prefix:
            entry = self._by_prefix.get(f"{words[0]}.{words[1]}")
            if entry is None:
                return found
            if isinstance(entry, tuple):
                _match_flat(entry, words, found)
            elif isinstance(entry, list):
                for pattern in entry:
                    _match_flat(pattern, words, found)
            else:
                found += _walk(entry, words, 2)
        return found


_WILD = ("*", "#")


def _prefixed(words: list[str]) -> bool:
    return len(words) >= 2 and words[0] not in _WILD and words[1] not in _WILD


# A flat pattern: (where its '#' is, or -1 for none, or -2 for more than one; how many words
# follow the two first ones; those words; then its bindings), all in one tuple.


def _flat_pattern(rest: tuple[str, ...], bindings: tuple[Binding, ...]) -> tuple[Any, ...]:
    hashes = rest.count("#")
    where = -1 if not hashes else rest.index("#") if hashes == 1 else -2
    return (where, len(rest), *rest, *bindings)


def _pattern_rest(pattern: tuple[Any, ...]) -> tuple[str, ...]:
    return pattern[2 : 2 + pattern[1]]


def _pattern_bindings(pattern: tuple[Any, ...]) -> tuple[Binding, ...]:
    return pattern[2 + pattern[1] :]


def _match_flat(pattern: tuple[Any, ...], words: list[str], found: list[Binding]) -> None:
    """Add the pattern's bindings to ``found`` when ``words[2:]`` match its rest."""
    hash_at, length = pattern[0], pattern[1]
    count = len(words) - 2
    if hash_at < 0:
        if count != length:
            return
        for i in range(length):
            want = pattern[2 + i]
            if want != "*" and want != words[2 + i]:
                return
    else:
        after = length - hash_at - 1
        if count < hash_at + after:
            return
        for i in range(hash_at):
            want = pattern[2 + i]
            if want != "*" and want != words[2 + i]:
                return
        tail = len(words) - after
        for i in range(after):
            want = pattern[3 + hash_at + i]
            if want != "*" and want != words[tail + i]:
                return
    found.extend(pattern[2 + length :])


def _trie_insert(node: dict[Any, Any], words: list[str], binding: Binding) -> None:
    for word in words:
        child = node.get(word)
        if child is None:
            child = node[word] = {}
        node = child
    node.setdefault(_BINDINGS, []).append(binding)


def _trie_remove(start: dict[Any, Any], words: list[str], binding: Binding) -> None:
    path = [start]
    for word in words:
        path.append(path[-1][word])
    ends = path[-1][_BINDINGS]
    ends.remove(binding)
    if not ends:
        del path[-1][_BINDINGS]
    for depth in range(len(words), 0, -1):
        if path[depth]:
            break
        del path[depth - 1][words[depth - 1]]


def _walk(start: dict[Any, Any], words: list[str], first: int) -> list[Binding]:
    """The bindings reached from ``start`` by ``words[first:]``.

    The frontier holds (node, reached-by-'#') pairs: a '#' node stays in it
    for every further word, and each node's '#' child joins it at once
    ('#' may match zero words).
    """
    frontier = _with_hash_children([(start, False)], False)
    for index in range(first, len(words)):
        word = words[index]
        reached: list[tuple[dict[Any, Any], bool]] = []
        swallowed = False
        for node, is_hash in frontier:
            child = node.get(word)
            if child is not None:
                reached.append((child, word == "#"))
            child = node.get("*")
            if child is not None:
                reached.append((child, False))
            if is_hash:
                reached.append((node, True))
                swallowed = True
        if not reached:
            return []
        frontier = _with_hash_children(reached, swallowed)
    found: list[Binding] = []
    for node, _ in frontier:
        ends = node.get(_BINDINGS)
        if ends:
            found.extend(ends)
    return found


def _with_hash_children(
    nodes: list[tuple[dict[Any, Any], bool]], may_repeat: bool
) -> list[tuple[dict[Any, Any], bool]]:
    """The nodes, plus every '#' child reachable from them by '#' swallowing zero words; each once."""
    result = nodes
    index = 0
    while index < len(result):
        hash_child = result[index][0].get("#")
        if hash_child is not None:
            if result is nodes:
                result = list(nodes)
            result.append((hash_child, True))
        index += 1
    if (may_repeat or result is not nodes) and len(result) > 1:
        unique = {id(node): (node, is_hash) for node, is_hash in result}
        if len(unique) != len(result):
            result = list(unique.values())
    return result


X_MATCH_KINDS = ("all", "any", "all-with-x", "any-with-x")


class HeadersRouter(Router):
    def validate(self, routing_key: str, arguments: Mapping[str, Any]) -> None:
        kind = arguments.get("x-match")
        if kind is None:
            return
        if not isinstance(kind, str | bytes):
            raise precondition_failed(
                f"Invalid x-match field type {_amqp_type(kind)} (value {kind!r}); expected longstr"
            )
        if _as_text(kind) not in X_MATCH_KINDS:
            raise precondition_failed(
                f"Invalid x-match field value {_as_text(kind)!r}; expected all, any, all-with-x, or any-with-x"
            )

    def match(self, routing_key: str, headers: Mapping[str, Any] | None) -> list[Binding]:
        data = headers or {}
        return [binding for binding in self.bindings if headers_match(binding.arguments, data)]


def headers_match(arguments: Mapping[str, Any], headers: Mapping[str, Any]) -> bool:
    """RabbitMQ's headers-exchange rule for one binding."""
    kind = _as_text(arguments.get("x-match", "all"))
    if kind not in X_MATCH_KINDS:
        kind = "all"
    match_any = kind.startswith("any")
    with_x = kind.endswith("-with-x")
    all_matched = True
    any_matched = False
    for key, wanted in arguments.items():
        if key == "x-match" or (not with_x and key.startswith("x-")):
            continue
        if key not in headers:
            all_matched = False
        elif wanted is None or values_equal(wanted, headers[key]) or _both_empty(wanted, headers[key]):
            any_matched = True
        else:
            all_matched = False
    return any_matched if match_any else all_matched


def _both_empty(a: Any, b: Any) -> bool:
    """At the top level RabbitMQ compares a header's value without its type tag, and an empty
    table and an empty array are both Erlang's ``[]``; nested, the tags differ."""
    empty = (Mapping, list, tuple)
    return isinstance(a, empty) and isinstance(b, empty) and not a and not b


def values_equal(a: Any, b: Any) -> bool:
    """Equality of two AMQP field values as Erlang's ``==`` sees them.

    Numbers compare by value whatever their width (1 equals 1.0); booleans are
    atoms, equal only to booleans; strings compare as bytes.
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        # AMQP decimals are a type of their own in RabbitMQ; they equal only decimals.
        return isinstance(a, Decimal) and isinstance(b, Decimal) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, str | bytes) and isinstance(b, str | bytes):
        return _as_bytes(a) == _as_bytes(b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, datetime) and isinstance(b, datetime):
        return a == b
    return type(a) is type(b) and a == b


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _as_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def _amqp_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, Mapping):
        return "table"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


ROUTERS: dict[str, type[Router]] = {
    "direct": DirectRouter,
    "fanout": FanoutRouter,
    "topic": TopicRouter,
    "headers": HeadersRouter,
}

EXCHANGE_TYPES = tuple(ROUTERS)  # the types the engine simulates


class UnsupportedRouter(Router):
    """An exchange type from a plugin (x-delayed-message, ...): kept, drawn, not simulated."""

    def match(self, routing_key: str, headers: Mapping[str, Any] | None) -> Sequence[Binding]:
        return ()


def router_for(exchange_type: str) -> Router:
    return ROUTERS.get(exchange_type, UnsupportedRouter)()
