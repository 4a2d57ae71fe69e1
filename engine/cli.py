"""Headless runs: ``queuecraft run FILE --duration SECONDS [--speed max|FACTOR] [--json]`` on the
built-in engine, or ``--broker amqp://...`` on a real RabbitMQ, its clients measured from their side."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import sys
from typing import Any

from .deploy import DeployError, without_password
from .model import Topology
from .sim import PacedRunner, Simulation
from .topology_file import TopologyFileError, load


def parse_speed(text: str) -> float:
    if text.lower() in ("max", "inf", "fastest"):
        return math.inf
    try:
        value = float(text.rstrip("xX"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'max' or a speed factor such as 0.5 or 10, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"a speed factor must be above 0, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a duration of 0 seconds or more, got {text!r}")
    return value


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="topology file (Queuecraft or RabbitMQ definitions JSON)")
    parser.add_argument("--duration", type=positive_seconds, default=60.0, help="simulated seconds to run (default 60)")
    parser.add_argument(
        "--speed", type=parse_speed, default=None, help="'max' (default) or virtual seconds per wall second"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same run")
    parser.add_argument("--json", action="store_true", help="print the counters as JSON")
    parser.add_argument(
        "--broker",
        metavar="URL",
        help="run on this RabbitMQ instead (amqp://user:pass@host:5672/vhost): the topology is declared there, "
        "its producers and consumers run as pika clients for --duration wall seconds, then it is removed",
    )
    parser.add_argument("--management", metavar="URL", help="with --broker: the management API for policies")
    parser.add_argument("--keep", action="store_true", help="with --broker: leave the topology declared afterwards")


def run_command(args: argparse.Namespace) -> int:
    try:
        topology = load(args.file)
    except TopologyFileError as exc:
        print(f"queuecraft: {exc}", file=sys.stderr)
        return 2
    if args.broker:
        return _run_on_broker(topology, args)
    if args.management or args.keep:
        print("queuecraft run: --management and --keep go with --broker", file=sys.stderr)
        return 2
    speed = math.inf if args.speed is None else args.speed
    sim = Simulation(topology, seed=args.seed, sample_interval=None)
    if math.isinf(speed):
        sim.run_for(args.duration)
    else:
        asyncio.run(_run_paced(sim, args.duration, speed))
    report = sim.report()
    _print(json.dumps(report, indent=2) + "\n" if args.json else format_report(report))
    return 0


def _run_on_broker(topology: Topology, args: argparse.Namespace) -> int:
    if args.speed is not None:
        print("queuecraft run: --speed does not apply with --broker: a real broker runs in real time", file=sys.stderr)
        return 2
    from .remote import run_on_broker

    async def run_until_done_or_told() -> tuple[Any, Any, Any]:
        # Ctrl+C, a terminal hanging up or a kill: the run ends as at its end (the clients stop,
        # what it declared is removed, the report is printed), not with a traceback.
        interrupt = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(signum, interrupt.set)
        return await run_on_broker(
            topology, args.broker, args.duration, args.seed, args.management, args.keep, interrupt
        )

    try:
        run, declared, removed = asyncio.run(run_until_done_or_told())
    except ValueError as exc:
        print(f"queuecraft run: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a refused login, an unreachable host, a broker refusal: said plainly
        why = str(exc) or "no broker answered there"
        what = "" if isinstance(exc, DeployError) else f"{type(exc).__name__}: "
        print(f"queuecraft run: {without_password(args.broker)}: {what}{why}", file=sys.stderr)
        return 1
    report = run.report()
    if args.json:
        report["declared"] = declared.as_dict()
        report["removed"] = removed.as_dict() if removed is not None else None
        _print(json.dumps(report, indent=2) + "\n")
    else:
        after = removed.text("Removed afterwards") if removed is not None else "Left declared (--keep)."
        _print(declared.text("Declared") + "\n\n" + format_broker_report(report) + "\n" + after + "\n")
    left_behind = removed is not None and any(line.startswith("could not remove") for line in removed.not_applied)
    return 1 if left_behind else 0


def _print(text: str) -> None:
    try:
        # Names are whatever the file held; never let one stop the report.
        sys.stdout.buffer.write(text.encode("utf-8", errors="backslashreplace"))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, as command-line tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


async def _run_paced(sim: Simulation, duration: float, speed: float) -> None:
    runner = PacedRunner(sim, speed=speed)
    runner.stop_at = sim.now + duration
    runner.start()
    await runner.wait()


def _table(title: str, columns: list[str], rows: list[list[Any]], text_columns: int = 1) -> str:
    """A plain table: the first ``text_columns`` columns left-aligned, numbers right-aligned."""
    if not rows:
        return f"{title}: none\n\n"
    cells = [[str(c) for c in columns]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = [title]
    for n, row in enumerate(cells):
        padded = [
            v.ljust(w) if i < text_columns else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  " + "  ".join(padded).rstrip())
        if n == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _label(entry: dict[str, Any], multi_vhost: bool) -> str:
    name = entry["name"] or "(AMQP default)"
    return f"{entry['vhost']} {name}" if multi_vhost else name


def format_report(report: dict[str, Any]) -> str:
    vhosts = {e["vhost"] for kind in ("producers", "exchanges", "queues", "consumers") for e in report[kind]}
    multi = len(vhosts) > 1
    totals = report["totals"]
    out = [
        f"Simulated {report['time']:.1f} s: published {totals['published']}, routed {totals['routed']}, "
        f"unroutable {totals['unroutable']}, returned {totals['returned']}\n\n"
    ]
    out.append(
        _table(
            "Producers",
            ["name", "exchange", "published", "returned", "failed", "msg/s"],
            [
                [
                    _label(p, multi),
                    p["exchange"] or "(AMQP default)",
                    p["published"],
                    p["returned"],
                    p["failed"],
                    p["rate"],
                ]
                for p in report["producers"]
            ],
            text_columns=2,
        )
    )
    out.append(
        _table(
            "Exchanges",
            ["name", "type", "received", "routed", "alternate", "unroutable"],
            [
                [
                    _label(x, multi),
                    x["type"] + ("" if x["simulated"] else " (not simulated)"),
                    x["received"],
                    x["routed"],
                    x["alternated"],
                    x["unroutable"],
                ]
                for x in report["exchanges"]
            ],
            text_columns=2,
        )
    )
    out.append(
        _table(
            "Queues",
            [
                "name",
                "enqueued",
                "delivered",
                "acked",
                "depth",
                "unacked",
                "expired",
                "dropped",
                "refused",
                "dead-lettered",
                "lost",
            ],
            [
                [
                    _label(q, multi),
                    q["enqueued"],
                    q["delivered"],
                    q["acked"],
                    q["depth"],
                    q["unacked"],
                    q["expired"],
                    q["dropped"],
                    q["refused"],
                    q["dead_lettered"],
                    q["lost"],
                ]
                for q in report["queues"]
            ],
        )
    )
    out.append(
        _table(
            "Consumers",
            ["name", "queue", "delivered", "acked", "unacked", "processed", "msg/s"],
            [
                [_label(c, multi), c["queue"], c["delivered"], c["acked"], c["unacked"], c["processed"], c["rate"]]
                for c in report["consumers"]
            ],
            text_columns=2,
        )
    )
    if report.get("faults"):
        out.append(_table("Faults played", ["time (s)", "what"], [[f["time"], f["what"]] for f in report["faults"]], 2))
    unsimulated = [p for p in report.get("policies", []) if p["not_simulated"]]
    for policy in unsimulated:
        keys = ", ".join(policy["not_simulated"])
        out.append(f"Policy {policy['name']!r} (vhost {policy['vhost']}): not simulated: {keys}\n")
    return "".join(out)


def format_broker_report(report: dict[str, Any]) -> str:
    """A run on a real RabbitMQ, as its clients measured it."""
    published = sum(p["published"] for p in report["producers"])
    returned = sum(p["returned"] for p in report["producers"])
    out = [
        f"Ran {report['time']:.1f} s on RabbitMQ at {report['broker']}, vhost {report['vhost']} "
        f"(measured by the clients): published {published}, returned {returned}\n\n"
    ]
    out.append(
        _table(
            "Producers",
            ["name", "exchange", "published", "returned", "msg/s"],
            [
                [p["name"], p["exchange"] or "(AMQP default)", p["published"], p["returned"], p["rate"]]
                for p in report["producers"]
            ],
            text_columns=2,
        )
    )
    out.append(
        _table(
            "Queues (at the end)",
            ["name", "ready", "consumers"],
            [[q["name"], _missing(q["depth"]), _missing(q["consumers"])] for q in report["queues"]],
        )
    )
    out.append(
        _table(
            "Consumers",
            ["name", "queue", "delivered", "acked", "nacked", "redelivered", "crashes", "msg/s", "p50 ms", "p99 ms"],
            [
                [
                    c["name"],
                    c["queue"],
                    c["delivered"],
                    c["acked"],
                    c["nacked"],
                    c["redelivered"],
                    c["crashes"],
                    c["rate"],
                    _missing(c["latency_p50_ms"]),
                    _missing(c["latency_p99_ms"]),
                ]
                for c in report["consumers"]
            ],
            text_columns=2,
        )
    )
    for note in report["notes"]:
        out.append(f"Note: {note}\n")
    return "".join(out)


def _missing(value: Any) -> Any:
    return "-" if value is None else value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="queuecraft run", description="Run a topology headless on the built-in engine."
    )
    add_run_arguments(parser)
    return run_command(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
