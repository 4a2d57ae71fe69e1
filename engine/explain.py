"""Why a binding matches a message, or why not: the words of a topic pattern against the words of a
routing key, a headers binding's pairs against the message's headers, in plain sentences."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple

from .routing import X_MATCH_KINDS, headers_match, split_topic, values_equal


class Verdict(NamedTuple):
    matched: bool
    reason: str


def _quote(words: list[str] | tuple[str, ...]) -> str:
    return " ".join(f"'{w}'" for w in words) if words else "no words"


def topic_alignment(pattern: str, key: str) -> list[tuple[str, tuple[str, ...]]] | None:
    """How the key's words line up under the pattern's words (``*`` one, ``#`` any number); None if they cannot."""
    return _align(tuple(split_topic(pattern)), tuple(split_topic(key)))


@lru_cache(maxsize=4096)
def _align(pattern: tuple[str, ...], words: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]] | None:
    if not pattern:
        return [] if not words else None
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        # Take as few words as possible first: the explanation reads most naturally.
        for taken in range(len(words) + 1):
            tail = _align(rest, words[taken:])
            if tail is not None:
                return [(head, words[:taken]), *tail]
        return None
    if not words:
        return None
    if head != "*" and head != words[0]:
        return None
    tail = _align(rest, words[1:])
    return None if tail is None else [(head, words[:1]), *tail]


def explain_topic(pattern: str, key: str) -> Verdict:
    alignment = topic_alignment(pattern, key)
    shown_key = f"'{key}'" if key else "the empty key"
    if alignment is not None:
        if not alignment:
            return Verdict(True, f"{shown_key} and the empty pattern both have no words")
        parts = []
        for word, taken in alignment:
            if word == "#":
                parts.append(f"'#' takes {_quote(taken)}" if taken else "'#' takes no words")
            elif word == "*":
                parts.append(f"'*' takes '{taken[0]}'")
            else:
                parts.append(f"'{word}' = '{taken[0]}'")
        return Verdict(True, "; ".join(parts))
    words = split_topic(key)
    pattern_words = split_topic(pattern)
    if "#" not in pattern_words:
        if len(pattern_words) != len(words):
            return Verdict(
                False,
                f"'{pattern}' needs exactly {len(pattern_words)} word{'s' * (len(pattern_words) != 1)}; "
                f"{shown_key} has {len(words)}",
            )
        for position, (wanted, word) in enumerate(zip(pattern_words, words, strict=True), start=1):
            if wanted != "*" and wanted != word:
                return Verdict(False, f"word {position} must be '{wanted}'; {shown_key} has '{word}'")
    literals = [w for w in pattern_words if w not in ("*", "#")]
    missing = [w for w in literals if w not in words]
    if missing:
        return Verdict(False, f"{shown_key} has no word '{missing[0]}', which '{pattern}' needs")
    fixed = sum(1 for w in pattern_words if w != "#")
    if len(words) < fixed:
        return Verdict(False, f"'{pattern}' needs at least {fixed} words; {shown_key} has {len(words)}")
    return Verdict(False, f"the words of {shown_key} cannot line up with '{pattern}' in that order")


def explain_direct(binding_key: str, key: str) -> Verdict:
    if binding_key == key:
        return Verdict(True, f"the key equals the binding key '{binding_key}'")
    return Verdict(False, f"the key '{key}' is not the binding key '{binding_key}'")


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return repr(value) if not isinstance(value, str) else f"'{value}'"


def explain_headers(arguments: Mapping[str, Any], headers: Mapping[str, Any]) -> Verdict:
    """Each pair of the binding against the message's headers, under its x-match rule."""
    kind = arguments.get("x-match", "all")
    if isinstance(kind, bytes):
        kind = kind.decode(errors="replace")
    kind = kind if kind in X_MATCH_KINDS else "all"
    with_x = str(kind).endswith("-with-x")
    parts = []
    for name, wanted in arguments.items():
        if name == "x-match" or (not with_x and name.startswith("x-")):
            continue
        if name not in headers:
            parts.append(f"{name} missing")
        elif wanted is None:
            parts.append(f"{name} present")
        elif values_equal(wanted, headers[name]):
            parts.append(f"{name} = {_show(wanted)}")
        else:
            parts.append(f"{name} is {_show(headers[name])}, not {_show(wanted)}")
    matched = headers_match(arguments, headers)
    if not parts:
        return Verdict(matched, f"x-match {kind} with no headers to compare")
    return Verdict(matched, f"x-match {kind}: " + ", ".join(parts))


def explain_binding(
    exchange_type: str, routing_key: str, arguments: Mapping[str, Any], message_key: str, headers: Mapping[str, Any]
) -> Verdict:
    """Whether a binding of an exchange of ``exchange_type`` takes a message, and why."""
    if exchange_type == "fanout":
        return Verdict(True, "a fanout exchange gives every binding a copy")
    if exchange_type == "direct":
        return explain_direct(routing_key, message_key)
    if exchange_type == "topic":
        return explain_topic(routing_key, message_key)
    if exchange_type == "headers":
        return explain_headers(arguments, headers)
    return Verdict(False, f"'{exchange_type}' exchanges are not simulated")
