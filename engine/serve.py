"""The engine, headless, open to AMQP 0-9-1 clients (queuecraft serve [FILE] [--host H] [--port 5673]).

The topology's exchanges, queues, bindings and policies are declared, its
simulated producers and consumers run in real time (unless ``--no-simulation``),
and any AMQP 0-9-1 client can connect and take part. Users and permissions come
from the file's ``users`` and ``permissions``; with none, guest/guest from
loopback only, as RabbitMQ does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import threading
import time
from typing import Any

from .amqp import DEFAULT_PORT, AmqpServer, UserBase, UsersError
from .model import Topology
from .sim import PacedRunner, Simulation
from .topology_file import TopologyFileError, load


def attach_listener(sim: Simulation, server: AmqpServer) -> None:
    """The server's clients counted with the simulation's nodes, under names of their own."""
    server.broker = sim.broker
    server.reserved_names = lambda: [
        *(p.name for p in sim.topology.producers),
        *(c.name for c in sim.topology.consumers),
    ]
    if server.read_counters not in sim.counter_sources:
        sim.counter_sources.append(server.read_counters)


class ServedBroker:
    """A simulation on wall-clock time with the AMQP listener over its broker."""

    def __init__(self, topology: Topology, simulate: bool = True, users: UserBase | None = None, **limits: Any) -> None:
        if not simulate:
            topology.producers, topology.consumers, topology.timeline = [], [], []
        self.sim = Simulation(topology)
        self.broker = self.sim.broker
        if users is None:
            users = UserBase.from_definitions(topology.extra.get("users"), topology.extra.get("permissions"))
        self.server = AmqpServer(self.broker, users, **limits)
        attach_listener(self.sim, self.server)
        self.runner = PacedRunner(self.sim, speed=1.0)

    async def start(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> tuple[str, int]:
        address = await self.server.start(host, port)
        self.broker.epoch = time.time() - self.sim.clock.now  # x-death times are wall-clock times
        self.runner.start()
        return address

    async def stop(self) -> None:
        self.runner.pause()
        await self.server.stop()

    def close_clients(self, vhost: str | None = None, reason: str = "shutdown") -> None:
        """Close client connections (all, or a vhost's), as RabbitMQ does when it stops."""
        for connection in list(self.server.connections):
            if vhost is None or connection.vhost == vhost:
                connection.close(320, f"CONNECTION_FORCED - broker forced connection closure with reason '{reason}'")

    def restart(self) -> tuple[int, int]:
        """A node restart: clients are disconnected, then the broker goes down and comes back."""
        self.close_clients()
        return self.broker.restart()

    def delete_vhost(self, name: str) -> None:
        self.close_clients(name, reason="vhost deleted")
        self.broker.delete_vhost(name)


class BrokerThread:
    """A served broker on a loop of its own in a background thread (for tests and tools).

    ``call`` runs a function on that loop and returns its result, so the broker is
    only ever touched from its own thread.
    """

    def __init__(
        self, topology: Topology | None = None, host: str = "127.0.0.1", port: int = 0, **options: Any
    ) -> None:
        self._topology = topology or Topology()
        self._options = options
        self._host, self._port = host, port
        self.loop = asyncio.new_event_loop()
        self.served: ServedBroker | None = None
        self.address: tuple[str, int] | None = None
        self._thread = threading.Thread(target=self._run, name="queuecraft-broker", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def __enter__(self) -> BrokerThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def begin() -> None:
            self.served = ServedBroker(self._topology, **self._options)
            self.address = await self.served.start(self._host, self._port)

        try:
            self.loop.run_until_complete(begin())
        except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def call(self, function: Any, *args: Any) -> Any:
        async def run() -> Any:
            return function(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(30)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        if self.served is not None:
            asyncio.run_coroutine_threadsafe(self.served.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", help="topology file to serve (default: an empty broker with vhost '/')")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, loopback only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    parser.add_argument(
        "--no-simulation", action="store_true", help="declare the topology but do not run its simulated clients"
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")


def serve_command(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S"
    )
    try:
        topology = load(args.file) if args.file else Topology()
        users = UserBase.from_definitions(topology.extra.get("users"), topology.extra.get("permissions"))
    except TopologyFileError as exc:
        print(f"queuecraft: {exc}", file=sys.stderr)
        return 2
    except UsersError as exc:
        print(f"queuecraft: {args.file}: {exc}", file=sys.stderr)
        return 2
    if not 0 <= args.port <= 65535:
        print(f"queuecraft: --port must be between 0 and 65535, got {args.port}", file=sys.stderr)
        return 2
    served = ServedBroker(topology, simulate=not args.no_simulation, users=users)
    return asyncio.run(_serve(served, args.host, args.port, quiet=args.quiet))


async def _serve(served: ServedBroker, host: str, port: int, quiet: bool = False) -> int:
    try:
        address = await served.start(host, port)
    except OSError as exc:
        print(f"queuecraft: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if not quiet:
        print(f"Queuecraft broker listening on amqp://{address[0]}:{address[1]} (Ctrl+C stops it)", flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stopping.set)
    try:
        await stopping.wait()
    finally:
        await served.stop()
    if not quiet:
        print("Queuecraft broker stopped.", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="queuecraft serve", description=__doc__.splitlines()[0] if __doc__ else None)
    add_serve_arguments(parser)
    return serve_command(parser.parse_args(argv))
