"""Exports: one vhost's RabbitMQ definitions, and a runnable pika script.

``vhost_definitions`` gives what ``rabbitmqctl import_definitions`` accepts: the
vhost's exchanges, queues, bindings and policies, without Queuecraft's own key
(and, as RabbitMQ's own export does, without exclusive queues).

``pika_script`` writes a standalone Python program that declares the topology
on a RabbitMQ given by an AMQP URL and then runs its producers and consumers at
their configured rates and behaviours.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from .model import RABBIT_VERSION, Topology
from .topology_file import to_definitions


def vhost_definitions(topology: Topology, vhost: str) -> dict[str, Any]:
    definitions = to_definitions(topology)
    exclusive = {q.name for q in topology.queues if q.vhost == vhost and q.exclusive}

    def here(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [dict(e, vhost=vhost) for e in entries if e.get("vhost", vhost) == vhost]

    queues = [q for q in here(definitions.get("queues", [])) if q["name"] not in exclusive]
    bindings = [
        b
        for b in here(definitions.get("bindings", []))
        if not (b["destination_type"] == "queue" and b["destination"] in exclusive)
    ]
    vhost_entry = next((v for v in definitions.get("vhosts", []) if v.get("name") == vhost), {"name": vhost})
    return {
        "rabbit_version": definitions.get("rabbit_version", RABBIT_VERSION),
        "vhosts": [vhost_entry],
        "exchanges": here(definitions.get("exchanges", [])),
        "queues": queues,
        "bindings": bindings,
        "policies": here(definitions.get("policies", [])),
    }


def pika_script(topology: Topology, vhost: str) -> str:
    """A Python program (needs only pika) that builds and runs the topology of ``vhost``."""
    title = topology.title or "Queuecraft topology"
    spec: dict[str, Any] = {
        "title": title,
        "exchanges": [
            {
                "name": x.name,
                "type": x.type,
                "durable": x.durable,
                "auto_delete": x.auto_delete,
                "internal": x.internal,
                "arguments": x.arguments,
            }
            for x in topology.exchanges
            if x.vhost == vhost
        ],
        "queues": [
            {
                "name": q.name,
                "durable": q.durable,
                "auto_delete": q.auto_delete,
                "exclusive": q.exclusive,
                "arguments": q.arguments,
            }
            for q in topology.queues
            if q.vhost == vhost
        ],
        "bindings": [
            {
                "source": b.source,
                "destination": b.destination,
                "destination_type": b.destination_type,
                "routing_key": b.routing_key,
                "arguments": b.arguments,
            }
            for b in topology.bindings
            if b.vhost == vhost
        ],
        "policies": [
            {
                "name": p.name,
                "pattern": p.pattern,
                "apply-to": p.apply_to,
                "definition": p.definition,
                "priority": p.priority,
            }
            for p in topology.policies
            if p.vhost == vhost
        ],
        "producers": [
            {
                "name": p.name,
                "exchange": p.exchange,
                "routing_key": p.routing_key,
                "rate": p.rate,
                "pattern": p.pattern,
                "headers": p.headers,
                "body_size": p.body_size,
                "persistent": p.persistent,
                "mandatory": p.mandatory,
            }
            for p in topology.producers
            if p.vhost == vhost and p.exchange is not None
        ],
        "consumers": [
            {
                "name": c.name,
                "queue": c.queue,
                "prefetch": c.prefetch,
                "ack_mode": c.ack_mode,
                "work_ms": c.work_ms,
                "work_spread_ms": c.work_spread_ms,
                "failure_rate": c.failure_rate,
                "on_failure": c.on_failure,
                "restart_ms": c.restart_ms,
            }
            for c in topology.consumers
            if c.vhost == vhost and c.queue is not None
        ],
    }
    # The spec goes into a raw triple-quoted string: JSON never holds three quotes in a row.
    url = "amqp://guest:guest@localhost:5672/" + urllib.parse.quote(vhost, safe="")
    script = _SCRIPT.replace("@TITLE@", title.replace('"' * 3, "'" * 3)).replace("@URL@", url)
    return script.replace("@SPEC@", json.dumps(spec, indent=1, ensure_ascii=True))


_SCRIPT = r'''#!/usr/bin/env python3
"""@TITLE@ — exported by Queuecraft.

Declares the topology's exchanges, queues and bindings on a RabbitMQ, then runs
its producers and consumers there as pika clients, at their rates and with their
behaviours, and prints what they did. Needs Python 3.9+ and pika
(pip install pika).

    python this_script.py --url @URL@ --duration 30
    python this_script.py --url ... --declare-only      # just the topology
    python this_script.py --url ... --teardown          # delete what it declares

Policies cannot be set over AMQP; the script lists them so they can be set with
rabbitmqctl set_policy or the management UI.
"""

import argparse
import itertools
import json
import random
import re
import threading
import time

import pika

SPEC = json.loads(r"""@SPEC@""")


def declare(channel):
    for x in SPEC["exchanges"]:
        channel.exchange_declare(
            x["name"], x["type"], durable=x["durable"], auto_delete=x["auto_delete"], internal=x["internal"],
            arguments=x["arguments"] or None,
        )
    for q in SPEC["queues"]:
        if q["exclusive"]:
            continue  # an exclusive queue belongs to its consumer's connection, which declares it
        channel.queue_declare(
            q["name"], durable=q["durable"], auto_delete=q["auto_delete"], arguments=q["arguments"] or None
        )
    exclusive = {q["name"] for q in SPEC["queues"] if q["exclusive"]}
    for b in SPEC["bindings"]:
        if b["destination_type"] == "exchange":
            channel.exchange_bind(b["destination"], b["source"], b["routing_key"], arguments=b["arguments"] or None)
        elif b["destination"] not in exclusive:
            channel.queue_bind(b["destination"], b["source"], b["routing_key"], arguments=b["arguments"] or None)


def teardown(channel):
    for q in SPEC["queues"]:
        channel.queue_delete(q["name"])
    for x in SPEC["exchanges"]:
        channel.exchange_delete(x["name"])


class KeyTemplate:
    """order.{created|paid} picks one choice per message; {seq} counts up."""

    def __init__(self, template):
        self.parts = []
        pos = 0
        for match in re.finditer(r"\{([^{}]*)\}", template):
            self.parts.append(template[pos:match.start()])
            body = match.group(1)
            self.parts.append(None if body == "seq" else body.split("|"))
            pos = match.end()
        self.parts.append(template[pos:])
        self.seq = itertools.count(1)

    def draw(self, rng):
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            elif part is None:
                out.append(str(next(self.seq)))
            else:
                out.append(rng.choice(part))
        return "".join(out)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}

    def add(self, name, what, n=1):
        with self.lock:
            self.counts.setdefault(name, {}).setdefault(what, 0)
            self.counts[name][what] += n


def run_producer(params, spec, stop, stats):
    rng = random.Random(spec["name"])
    template = KeyTemplate(spec["routing_key"])
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    properties = pika.BasicProperties(
        headers=spec["headers"] or None, delivery_mode=2 if spec["persistent"] else None
    )
    body = b"x" * spec["body_size"]
    rate = spec["rate"]
    next_at = time.monotonic()
    try:
        while not stop.is_set() and rate > 0:
            interval = rng.expovariate(rate) if spec["pattern"] == "poisson" else 1.0 / rate
            next_at += interval
            channel.basic_publish(spec["exchange"], template.draw(rng), body, properties, mandatory=spec["mandatory"])
            stats.add(spec["name"], "published")
            delay = next_at - time.monotonic()
            if delay > 0:
                connection.sleep(delay)
            else:
                connection.process_data_events(time_limit=0)
    finally:
        if connection.is_open:
            connection.close()


def run_consumer(params, spec, stop, stats):
    rng = random.Random(spec["name"])
    while not stop.is_set():
        connection = pika.BlockingConnection(params)
        channel = connection.channel()
        queue = next((q for q in SPEC["queues"] if q["name"] == spec["queue"]), None)
        if queue is not None and queue["exclusive"]:
            channel.queue_declare(queue["name"], exclusive=True, arguments=queue["arguments"] or None)
        channel.basic_qos(prefetch_count=spec["prefetch"])
        crashed = []
        manual = spec["ack_mode"] == "manual"

        def on_message(ch, method, properties, body):
            stats.add(spec["name"], "delivered")
            work = max(spec["work_ms"] + (rng.random() * 2 - 1) * spec["work_spread_ms"], 0) / 1000.0
            if work:
                connection.sleep(work)
            if spec["failure_rate"] and rng.random() < spec["failure_rate"]:
                stats.add(spec["name"], "failed")
                if spec["on_failure"] == "crash":
                    crashed.append(True)
                    ch.stop_consuming()
                elif manual:
                    ch.basic_nack(method.delivery_tag, requeue=spec["on_failure"] == "requeue")
                return
            if manual:
                ch.basic_ack(method.delivery_tag)
            stats.add(spec["name"], "acked")

        channel.basic_consume(spec["queue"], on_message, auto_ack=not manual)
        while not stop.is_set() and not crashed:
            connection.process_data_events(time_limit=0.2)
        connection.close()  # unacked messages go back to the queue
        if crashed:
            stats.add(spec["name"], "crashes")
            stop.wait(spec["restart_ms"] / 1000.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="@URL@", help="the broker and vhost (default: %(default)s)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds to run producers and consumers")
    parser.add_argument("--declare-only", action="store_true")
    parser.add_argument("--teardown", action="store_true", help="delete the exchanges and queues it declares")
    args = parser.parse_args()
    params = pika.URLParameters(args.url)
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    if args.teardown:
        teardown(channel)
        connection.close()
        print("deleted", len(SPEC["queues"]), "queues and", len(SPEC["exchanges"]), "exchanges")
        return
    declare(channel)
    connection.close()
    for policy in SPEC["policies"]:
        print("policy not set over AMQP (use rabbitmqctl set_policy):", json.dumps(policy))
    print(
        "declared", len(SPEC["exchanges"]), "exchanges,", len(SPEC["queues"]), "queues,",
        len(SPEC["bindings"]), "bindings",
    )
    if args.declare_only:
        return
    stop = threading.Event()
    stats = Stats()
    threads = [
        threading.Thread(target=run_consumer, args=(params, c, stop, stats), daemon=True) for c in SPEC["consumers"]
    ]
    threads += [
        threading.Thread(target=run_producer, args=(params, p, stop, stats), daemon=True) for p in SPEC["producers"]
    ]
    for thread in threads:
        thread.start()
    try:
        stop.wait(args.duration)
    except KeyboardInterrupt:
        pass
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    print(json.dumps(stats.counts, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
'''
