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
from dataclasses import dataclass, field
from typing import Any

from .export import vhost_definitions
from .model import BUILTIN_EXCHANGES, Topology
from .topology_file import TopologyFileError, load


@dataclass
class DeployReport:
    vhost: str
    exchanges: list[str] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)
    bindings: list[str] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)
    not_applied: list[str] = field(default_factory=list)  # policies, with why

    def text(self, verb: str) -> str:
        lines = [f"{verb} on vhost '{self.vhost}':"]
        for what, names in (
            ("exchanges", self.exchanges),
            ("queues", self.queues),
            ("bindings", self.bindings),
            ("policies", self.policies),
        ):
            lines.append(f"  {what} ({len(names)}): {', '.join(names) if names else '-'}")
        for entry in self.not_applied:
            lines.append(f"  not applied: {entry}")
        return "\n".join(lines)


def vhost_of(url: str) -> str:
    path = urllib.parse.urlparse(url).path
    return urllib.parse.unquote(path[1:]) if len(path) > 1 else "/"


def _management_base(url: str, management: str | None) -> tuple[str, str]:
    """The management API's base URL and a Basic authorization header value."""
    parsed = urllib.parse.urlparse(url)
    user = urllib.parse.unquote(parsed.username or "guest")
    password = urllib.parse.unquote(parsed.password or "guest")
    base = management or f"http://{parsed.hostname or 'localhost'}:15672"
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return base.rstrip("/"), f"Basic {token}"


def _http(base: str, auth: str, method: str, path: str, body: Any = None) -> None:
    request = urllib.request.Request(
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": auth, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def source_vhost(topology: Topology, vhost: str) -> str:
    """The file's vhost that goes to the URL's ``vhost``: the same name, or the file's only one."""
    vhosts = {q.vhost for q in topology.queues} | {x.vhost for x in topology.exchanges}
    source = vhost if vhost in vhosts or not vhosts else next(iter(vhosts)) if len(vhosts) == 1 else None
    if source is None:
        raise ValueError(f"the file has vhosts {sorted(vhosts)}; the URL names '{vhost}', which is not one of them")
    return source


def _definitions(topology: Topology, vhost: str) -> dict[str, Any]:
    return vhost_definitions(topology, source_vhost(topology, vhost))


def _binding_text(b: dict[str, Any]) -> str:
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


def deploy(topology: Topology, url: str, management: str | None = None, teardown: bool = False) -> DeployReport:
    import pika

    vhost = vhost_of(url)
    definitions = _definitions(topology, vhost)
    report = DeployReport(vhost)
    exchanges = [x for x in definitions["exchanges"] if x["name"] and x["name"] not in BUILTIN_EXCHANGES]
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        if teardown:
            for b in definitions["bindings"]:
                _binding(channel, b, unbind=True)
                report.bindings.append(_binding_text(b))
            for q in definitions["queues"]:
                channel.queue_delete(q["name"])
                report.queues.append(q["name"])
            for x in exchanges:
                channel.exchange_delete(x["name"])
                report.exchanges.append(x["name"])
        else:
            for x in exchanges:
                channel.exchange_declare(
                    x["name"],
                    x.get("type", "direct"),
                    durable=x.get("durable", True),
                    auto_delete=x.get("auto_delete", False),
                    internal=x.get("internal", False),
                    arguments=x.get("arguments") or None,
                )
                report.exchanges.append(x["name"])
            for q in definitions["queues"]:
                channel.queue_declare(
                    q["name"],
                    durable=q.get("durable", True),
                    auto_delete=q.get("auto_delete", False),
                    arguments=q.get("arguments") or None,
                )
                report.queues.append(q["name"])
            for b in definitions["bindings"]:
                _binding(channel, b, unbind=False)
                report.bindings.append(_binding_text(b))
    finally:
        if connection.is_open:
            connection.close()
    _policies(definitions["policies"], vhost, url, management, teardown, report)
    return report


def _policies(
    policies: list[dict[str, Any]], vhost: str, url: str, management: str | None, teardown: bool, report: DeployReport
) -> None:
    if not policies:
        return
    base, auth = _management_base(url, management)
    quoted = urllib.parse.quote(vhost, safe="")
    for policy in policies:
        path = f"/api/policies/{quoted}/{urllib.parse.quote(policy['name'], safe='')}"
        try:
            if teardown:
                _http(base, auth, "DELETE", path)
            else:
                body = {
                    "pattern": policy["pattern"],
                    "definition": policy.get("definition", {}),
                    "priority": policy.get("priority", 0),
                    "apply-to": policy.get("apply-to", "all"),
                }
                _http(base, auth, "PUT", path, body)
            report.policies.append(policy["name"])
        except urllib.error.HTTPError as exc:
            report.not_applied.append(f"policy {policy['name']}: the management API answered {exc.code} {exc.reason}")
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            report.not_applied.append(f"policy {policy['name']}: no management API at {base} ({reason})")


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
    except Exception as exc:  # noqa: BLE001 - a broker refusal or a connection failure, said plainly
        print(f"queuecraft deploy: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(report.text("Removed" if args.teardown else "Declared"))
    return 0
