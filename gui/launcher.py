"""The ``queuecraft`` command.

``queuecraft [FILE] [--screenshot OUT.png --run-for SECONDS]`` opens the window;
``queuecraft run FILE ...`` runs headless and never loads Qt.
"""

from __future__ import annotations

import argparse
import sys

from engine.cli import parse_speed, positive_seconds

# Commands that never load Qt: the module whose main() runs each.
HEADLESS_COMMANDS = {"run": "engine.cli", "serve": "engine.serve", "deploy": "engine.deploy"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="queuecraft",
        description="Draw a message topology, run it on a RabbitMQ-like engine and watch the messages move.",
        epilog="Headless: queuecraft run FILE --duration SECONDS [--speed max|FACTOR] [--json] [--broker amqp://...];"
        " queuecraft serve [FILE] [--host 127.0.0.1] [--port 5673];"
        " queuecraft deploy FILE --url amqp://... [--teardown]",
    )
    parser.add_argument("file", nargs="?", help="topology file to open (default: the e-commerce example)")
    parser.add_argument(
        "--screenshot", metavar="OUT.png", help="save a PNG of the window after --run-for seconds, then exit"
    )
    parser.add_argument(
        "--run-for",
        type=positive_seconds,
        default=None,
        metavar="SECONDS",
        help="wall-clock seconds to run before the screenshot (default 5)",
    )
    parser.add_argument(
        "--speed", type=parse_speed, default=1.0, help="simulated seconds per wall second, or 'max' (default 1)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same run")
    parser.add_argument("--paused", action="store_true", help="open without starting the simulation")
    return parser


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    if args_list and args_list[0] in HEADLESS_COMMANDS:
        import importlib

        command: int = importlib.import_module(HEADLESS_COMMANDS[args_list[0]]).main(args_list[1:])
        return command
    args = build_parser().parse_args(args_list)
    from .platform_check import platform_problem

    problem = platform_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    from .app import run_app

    return run_app(args)


if __name__ == "__main__":
    raise SystemExit(main())
