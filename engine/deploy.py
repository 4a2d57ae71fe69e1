"""``queuecraft deploy FILE --url amqp://...``: the topology, declared on a real RabbitMQ.

Exchanges, queues and bindings go through AMQP (pika); policies through the management
HTTP API when the broker has it (on port 15672 of the same host, with the same user, unless
``--management`` says otherwise), else they are listed as not applied. The vhost is the URL's;
a file with several vhosts deploys the one named the same. ``--teardown`` removes exactly what
the topology declares (bindings, queues, exchanges, policies) and nothing else.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .export import vhost_definitions
from .model import BUILTIN_EXCHANGES, Topology
from .topology_file import TopologyFileError, load


class DeployError(Exception):
    """A deploy the broker refused part-way: what it had declared is removed again, and said."""


@dataclass
class DeployReport:
    vhost: str
    exchanges: list[str] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)
    bindings: list[str] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)
    already_there: list[str] = field(default_factory=list)  # "queue payments", ...: left as they were by undeploy
    not_applied: list[str] = field(default_factory=list)  # policies, with why
    # what undeploy() does, in the order it was declared: ("exchange" | "queue", name),
    # ("binding", definition) or ("policy", (name, the policy it replaced or None))
    undo: list[tuple[str, Any]] = field(default_factory=list, repr=False)

    def text(self, verb: str) -> str:
        lines = [f"{verb} on vhost '{self.vhost}':"]
        for what, names in (
            ("exchanges", self.exchanges),
            ("queues", self.queues),
            ("bindings", self.bindings),
            ("policies", self.policies),
        ):
            lines.append(f"  {what} ({len(names)}): {', '.join(names) if names else '-'}")
        if self.already_there:
            lines.append(
                f"  already there, kept as they were ({len(self.already_there)}): {', '.join(self.already_there)}"
            )
        for entry in self.not_applied:
            lines.append(f"  not applied: {entry}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "undo"}

    def undo_text(self) -> str:
        """What undeploy would remove, one item after another."""
        return ", ".join(_step_text(kind, what) for kind, what in self.undo)


def _step_text(kind: str, what: Any) -> str:
    return f"{kind} {binding_text(what) if kind == 'binding' else what}"


def without_password(url: str) -> str:
    parsed = urllib.parse.urlparse(url)
    if parsed.password is None:
        return url
    return parsed._replace(netloc=parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)).geturl()


def amqp_table(value: Any, where: str) -> Any:
    """Values as pika can send them in a table: floats as decimals (pika's tables have no
    float), refused by name when even a decimal cannot hold them."""
    if isinstance(value, dict):
        return {
            key: amqp_table(item, f"{where} '{key}'" if where.endswith(("header", "argument")) else where)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [amqp_table(item, where) for item in value]
    if isinstance(value, float):
        decimal = Decimal(repr(value))
        exponent = decimal.as_tuple().exponent
        places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
        if (
            not (value == value and abs(value) != float("inf"))
            or places > 255
            or abs(int(decimal.scaleb(places))) >= 2**31
        ):
            raise ValueError(f"{where} = {value!r}: pika can send a float only as a decimal of at most 9 digits")
        return decimal
    return value


def check_url(url: str) -> None:
    """Refuse, saying which URL and why, what pika could not connect with."""
    import pika

    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("amqp", "amqps"):
        raise ValueError(
            f"'{parsed.scheme or url}' is not an AMQP URL: it starts amqp:// or amqps://, "
            "as amqp://guest:guest@localhost:5672/%2F"
        )
    if parsed.username is not None and parsed.password is None:
        raise ValueError(f"{url}: user '{parsed.username}' without a password (amqp://USER:PASSWORD@HOST...)")
    try:
        pika.URLParameters(url)
    except Exception as exc:  # noqa: BLE001 - pika says it in many ways (ValueError, SyntaxError, ...)
        raise ValueError(
            f"{without_password(url)}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None


def vhost_of(url: str) -> str:
    path = urllib.parse.urlparse(url).path
    return urllib.parse.unquote(path[1:]) if len(path) > 1 else "/"


def _management_base(url: str, management: str | None) -> tuple[str, str]:
    """The management API's base URL (without credentials) and a Basic authorization header value:
    the management URL's own user, else the AMQP URL's. Unless told, the API is looked for on
    port 15672 of the AMQP host, and only when the AMQP port is RabbitMQ's own (5672 or 5671):
    a broker elsewhere has its API elsewhere, or none."""
    parsed = urllib.parse.urlparse(url)
    user = urllib.parse.unquote(parsed.username or "guest")
    password = urllib.parse.unquote(parsed.password or "guest")
    if management:
        given = urllib.parse.urlparse(management)
        if given.username is not None:
            user, password = urllib.parse.unquote(given.username), urllib.parse.unquote(given.password or "")
        netloc = given.hostname or ""
        if given.port is not None:
            netloc += f":{given.port}"
        base = given._replace(netloc=netloc).geturl()
    elif (parsed.port or (5671 if parsed.scheme == "amqps" else 5672)) in (5672, 5671):
        base = f"http://{parsed.hostname or 'localhost'}:15672"
    else:
        raise NoManagementAPI(f"AMQP port {parsed.port} is not RabbitMQ's own: --management says where its API is")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return base.rstrip("/"), f"Basic {token}"


class NoManagementAPI(Exception):
    """No management API to put policies through."""


def _http(base: str, auth: str, method: str, path: str, body: Any = None) -> Any:
    """The management API's answer to one request, decoded (None when it has no body)."""
    request = urllib.request.Request(
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": auth, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        text = answer.read()
    return json.loads(text) if text else None


def source_vhost(topology: Topology, vhost: str) -> str:
    """The file's vhost that goes to the URL's ``vhost``: the same name, or the file's only one."""
    vhosts = {q.vhost for q in topology.queues} | {x.vhost for x in topology.exchanges}
    source = vhost if vhost in vhosts or not vhosts else next(iter(vhosts)) if len(vhosts) == 1 else None
    if source is None:
        raise ValueError(f"the file has vhosts {sorted(vhosts)}; the URL names '{vhost}', which is not one of them")
    return source


def _definitions(topology: Topology, vhost: str) -> dict[str, Any]:
    """The vhost's definitions, their arguments as pika sends them (refused here, by name, before
    anything is declared, when it cannot)."""
    definitions = vhost_definitions(topology, source_vhost(topology, vhost))
    for kind in ("exchanges", "queues"):
        for entity in definitions[kind]:
            if entity.get("arguments"):
                entity["arguments"] = amqp_table(entity["arguments"], f"{kind[:-1]} '{entity['name']}': argument")
    for b in definitions["bindings"]:
        if b.get("arguments"):
            b["arguments"] = amqp_table(b["arguments"], f"binding {binding_text(b)}: argument")
    return definitions


def binding_text(b: dict[str, Any]) -> str:
    key = f" '{b['routing_key']}'" if b.get("routing_key") else ""
    return f"{b['source']} → {b['destination']}{key}"


def _binding(channel: Any, b: dict[str, Any], unbind: bool) -> None:
    """Bind (or unbind) one binding of a definitions file, to a queue or an exchange."""
    to_queue = b["destination_type"] == "queue"
    if unbind:
        call = channel.queue_unbind if to_queue else channel.exchange_unbind
    else:
        call = channel.queue_bind if to_queue else channel.exchange_bind
    call(b["destination"], b["source"], b.get("routing_key", ""), b.get("arguments"))


def deploy(
    topology: Topology,
    url: str,
    management: str | None = None,
    teardown: bool = False,
    replace_policies: bool = True,
) -> DeployReport:
    """Declare the topology on the broker at ``url``, noting what was already there (undeploy keeps
    that as it was). When the broker refuses part of it, what had been declared is removed again
    and DeployError says both. ``teardown`` instead removes everything the topology declares.
    Without ``replace_policies`` (a run, which should change nothing it did not bring) a policy of
    the same name already there is left as it is, and listed as not applied."""
    import pika

    check_url(url)
    vhost = vhost_of(url)
    definitions = _definitions(topology, vhost)
    if teardown:
        return _remove_all(definitions, vhost, url, management)
    report = DeployReport(vhost)
    try:
        connection = pika.BlockingConnection(pika.URLParameters(url))
    except Exception as exc:
        raise DeployError(f"{type(exc).__name__}: {str(exc) or 'no broker answered there'}") from exc
    try:
        _declare(connection, definitions, report, _binding_lookup(vhost, url, management))
        _policies(definitions["policies"], vhost, url, management, report, replace_policies)
    except Exception as exc:
        if connection.is_open:
            connection.close()
        refused = f"{type(exc).__name__}: {exc}"
        raise DeployError(f"{refused}; {_roll_back(report, url, management)}") from exc
    if connection.is_open:
        connection.close()
    return report


def _declare(
    connection: Any,
    definitions: dict[str, Any],
    report: DeployReport,
    binding_exists: Callable[[dict[str, Any]], bool | None],
) -> None:
    exchanges = [x for x in definitions["exchanges"] if x["name"] and x["name"] not in BUILTIN_EXCHANGES]
    probe = _Probe(connection)
    channel = connection.channel()
    # The broker's own exchanges (amq.*, the default) are there before anything: bindings to and
    # from them may be too.
    found: set[tuple[str, str]] = {("exchange", name) for name in BUILTIN_EXCHANGES}
    for x in exchanges:
        there = probe.exists("exchange", x["name"])
        channel.exchange_declare(
            x["name"],
            x.get("type", "direct"),
            durable=x.get("durable", True),
            auto_delete=x.get("auto_delete", False),
            internal=x.get("internal", False),
            arguments=x.get("arguments") or None,
        )
        report.exchanges.append(x["name"])
        _note(report, "exchange", x["name"], there, found)
    for q in definitions["queues"]:
        there = probe.exists("queue", q["name"])
        waiting = probe.messages
        channel.queue_declare(
            q["name"],
            durable=q.get("durable", True),
            auto_delete=q.get("auto_delete", False),
            arguments=q.get("arguments") or None,
        )
        report.queues.append(q["name"])
        _note(report, "queue", q["name"], there, found)
        if there and waiting:
            # Kept afterwards, but the run's consumers will take its messages like any others.
            report.already_there[-1] += f" (with {waiting:,} message{'s' if waiting != 1 else ''})"
    for b in definitions["bindings"]:
        ends = {("exchange", b["source"]), (b["destination_type"], b["destination"])}
        # A binding is new when one of its ends is; between two that were there, only the
        # management API can tell, and without it the binding is kept afterwards, to be safe.
        bound = binding_exists(b) if ends <= found else False
        _binding(channel, b, unbind=False)
        report.bindings.append(binding_text(b))
        if bound is False:
            report.undo.append(("binding", b))
        else:
            maybe = "" if bound else " (perhaps: no management API to tell)"
            report.already_there.append(f"binding {binding_text(b)}{maybe}")


def _same_arguments(listed: dict[str, Any], ours: dict[str, Any]) -> bool:
    """Binding arguments as the management API lists them against ours. It prints a decimal its
    own way (1.5 as "1.15"), so a decimal is taken as equal: keeping a binding is the safe side."""
    if set(listed) != set(ours):
        return False
    return all(isinstance(value, Decimal) or listed[key] == value for key, value in ours.items())


def _binding_lookup(vhost: str, url: str, management: str | None) -> Callable[[dict[str, Any]], bool | None]:
    """Whether a binding exists, as the management API says (None: no API to ask)."""
    try:
        base, auth = _management_base(url, management)
    except NoManagementAPI:
        return lambda b: None
    quoted = urllib.parse.quote(vhost, safe="")

    def exists(b: dict[str, Any]) -> bool | None:
        kind = "q" if b["destination_type"] == "queue" else "e"
        source, destination = (urllib.parse.quote(b[end], safe="") for end in ("source", "destination"))
        try:
            listed = _http(base, auth, "GET", f"/api/bindings/{quoted}/e/{source}/{kind}/{destination}")
        except (urllib.error.URLError, OSError):
            return None
        key, arguments = b.get("routing_key", ""), b.get("arguments") or {}
        return any(x.get("routing_key") == key and _same_arguments(x.get("arguments") or {}, arguments) for x in listed)

    return exists


def _note(report: DeployReport, kind: str, name: str, there: bool, found: set[tuple[str, str]]) -> None:
    if there:
        report.already_there.append(f"{kind} {name}")
        found.add((kind, name))
    else:
        report.undo.append((kind, name))


class _Probe:
    """Asks whether an exchange or a queue exists (a passive declare) on a channel of its own,
    which the broker closes when the answer is no."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.channel: Any = None
        self.messages = 0  # in the queue last asked about

    def exists(self, kind: str, name: str) -> bool:
        import pika.exceptions

        if self.channel is None or not self.channel.is_open:
            self.channel = self.connection.channel()
        try:
            self.messages = 0
            if kind == "queue":
                self.messages = self.channel.queue_declare(name, passive=True).method.message_count
            else:
                self.channel.exchange_declare(name, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            self.channel = None
            if exc.reply_code == 404:
                return False
            raise
        return True


def undeploy(declared: DeployReport, url: str, management: str | None = None) -> DeployReport:
    """Undo one deploy: remove what it declared that was not there before, and put back the
    policies it replaced. What could not be removed is listed as not applied."""
    import pika
    import pika.exceptions

    report = DeployReport(declared.vhost, already_there=list(declared.already_there))
    steps = list(reversed(declared.undo))
    amqp_steps = [step for step in steps if step[0] != "policy"]
    policy_steps = [step for step in steps if step[0] == "policy"]
    if policy_steps:
        base, auth = _management_base(url, management)  # it put them there: it is known
        for _, (name, previous) in policy_steps:
            path = _policy_path(declared.vhost, name)
            try:
                if previous is None:
                    _http(base, auth, "DELETE", path)
                    report.policies.append(name)
                else:
                    _http(base, auth, "PUT", path, previous)
                    report.policies.append(f"{name} (put back as it was)")
            except (urllib.error.URLError, OSError) as exc:
                report.not_applied.append(f"policy {name} not removed: {getattr(exc, 'reason', exc)}")
    if not amqp_steps:
        return report
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        for kind, what in amqp_steps:
            if not channel.is_open:
                channel = connection.channel()
            try:
                if kind == "binding":
                    _binding(channel, what, unbind=True)
                    report.bindings.append(binding_text(what))
                elif kind == "queue":
                    channel.queue_delete(what)
                    report.queues.append(what)
                else:
                    channel.exchange_delete(what)
                    report.exchanges.append(what)
            except pika.exceptions.ChannelClosedByBroker as exc:
                report.not_applied.append(f"{_step_text(kind, what)} not removed: {exc.reply_text}")
    finally:
        if connection.is_open:
            connection.close()
    return report


def _roll_back(report: DeployReport, url: str, management: str | None) -> str:
    """Undo a deploy that failed part-way, and say what that took."""
    if not report.undo:
        return "nothing had been declared"
    try:
        undone = undeploy(report, url, management)
    except Exception as exc:  # noqa: BLE001 - the broker went away too: say what may be left
        left = report.undo_text()
        return f"removing what had been declared failed too ({type(exc).__name__}: {exc}); left there: {left}"
    removed = [f"exchange {n}" for n in undone.exchanges] + [f"queue {n}" for n in undone.queues]
    removed += [f"policy {n}" for n in undone.policies]
    said = f"what had been declared is removed again ({', '.join(removed) or 'bindings only'})"
    return said + "".join(f"; {entry}" for entry in undone.not_applied)


def _remove_all(definitions: dict[str, Any], vhost: str, url: str, management: str | None) -> DeployReport:
    import pika

    report = DeployReport(vhost)
    exchanges = [x for x in definitions["exchanges"] if x["name"] and x["name"] not in BUILTIN_EXCHANGES]
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        for b in definitions["bindings"]:
            _binding(channel, b, unbind=True)
            report.bindings.append(binding_text(b))
        for q in definitions["queues"]:
            channel.queue_delete(q["name"])
            report.queues.append(q["name"])
        for x in exchanges:
            channel.exchange_delete(x["name"])
            report.exchanges.append(x["name"])
    finally:
        if connection.is_open:
            connection.close()
    try:
        base, auth = _management_base(url, management)
    except NoManagementAPI as exc:
        report.not_applied += [f"policy {policy['name']}: {exc}" for policy in definitions["policies"]]
        return report
    for policy in definitions["policies"]:
        try:
            _http(base, auth, "DELETE", _policy_path(vhost, policy["name"]))
            report.policies.append(policy["name"])
        except OSError as exc:
            report.not_applied.append(_policy_trouble(policy["name"], exc, base))
    return report


def _policies(
    policies: list[dict[str, Any]],
    vhost: str,
    url: str,
    management: str | None,
    report: DeployReport,
    replace: bool = True,
) -> None:
    """Put each policy through the management API, remembering the one it replaces."""
    if not policies:
        return
    try:
        base, auth = _management_base(url, management)
    except NoManagementAPI as exc:
        report.not_applied += [f"policy {policy['name']}: {exc}" for policy in policies]
        return
    for policy in policies:
        path = _policy_path(vhost, policy["name"])
        body = {
            "pattern": policy["pattern"],
            "definition": policy.get("definition", {}),
            "priority": policy.get("priority", 0),
            "apply-to": policy.get("apply-to", "all"),
        }
        try:
            previous = _existing_policy(base, auth, path)
            if previous is not None and previous != body and not replace:
                report.not_applied.append(
                    f"policy {policy['name']}: one of that name is there with another definition; left as it is"
                )
                continue
            if previous != body:
                _http(base, auth, "PUT", path, body)
        except OSError as exc:
            report.not_applied.append(_policy_trouble(policy["name"], exc, base))
            continue
        report.policies.append(policy["name"])
        if previous == body:
            report.already_there.append(f"policy {policy['name']}")
        else:
            report.undo.append(("policy", (policy["name"], previous)))


def _policy_path(vhost: str, name: str) -> str:
    return f"/api/policies/{urllib.parse.quote(vhost, safe='')}/{urllib.parse.quote(name, safe='')}"


def _policy_trouble(name: str, exc: OSError, base: str) -> str:
    """Why a policy could not be put or removed: what the management API answered, or that none did."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"policy {name}: the management API answered {exc.code} {exc.reason}"
    return f"policy {name}: no management API at {base} ({getattr(exc, 'reason', exc)})"


def _existing_policy(base: str, auth: str, path: str) -> dict[str, Any] | None:
    try:
        found = _http(base, auth, "GET", path)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise
    return {key: found.get(key) for key in ("pattern", "definition", "priority", "apply-to")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="queuecraft deploy",
        description="Declare a topology's exchanges, queues, bindings and policies on RabbitMQ.",
    )
    parser.add_argument("file", help="topology file")
    parser.add_argument("--url", required=True, help="AMQP URL, e.g. amqp://guest:guest@localhost:5672/%%2F")
    parser.add_argument("--management", help="management API base URL (default: http://HOST:15672)")
    parser.add_argument("--teardown", action="store_true", help="remove exactly what the topology declares")
    args = parser.parse_args(argv)
    try:
        topology = load(args.file)
    except TopologyFileError as exc:
        print(f"queuecraft: {exc}", file=sys.stderr)
        return 2
    try:
        report = deploy(topology, args.url, args.management, args.teardown)
    except ValueError as exc:
        print(f"queuecraft deploy: {exc}", file=sys.stderr)
        return 2
    except DeployError as exc:
        print(f"queuecraft deploy: {without_password(args.url)}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - a broker refusal or a connection failure, said plainly
        print(f"queuecraft deploy: {without_password(args.url)}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(report.text("Removed" if args.teardown else "Declared"))
    return 0
