"""The drivers: the built-in engine in-process, and pika against a real RabbitMQ."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from typing import Any

from engine.broker import Broker
from engine.channel import Channel, ChannelConsumer, Connection
from engine.clock import VirtualClock
from engine.errors import AMQPError
from engine.message import PROPERTY_NAMES, Message
from engine.serve import BrokerThread, ServedBroker

from .harness import Delivery, Driver, Returned, Scenario, StepError

PROPERTY_FIELDS = PROPERTY_NAMES


def _body(text: str) -> bytes:
    return text.encode()


def _properties(args: dict[str, Any]) -> dict[str, Any] | None:
    props = dict(args.get("properties") or {})
    return props or None


class _Bookkeeping:
    """What both drivers record: deliveries per consumer, gets, returns, confirms, cancels."""

    def reset(self) -> None:
        self._deliveries: dict[str, list[Delivery]] = defaultdict(list)
        self._gets: dict[str, Delivery] = {}
        self._returns: dict[str, list[Returned]] = defaultdict(list)
        self._confirms: dict[str, list[bool]] = defaultdict(list)
        self._cancelled: set[str] = set()
        self._consumer_channel: dict[str, str] = {}

    def deliveries(self, consumer: str) -> list[Delivery]:
        return list(self._deliveries[consumer])

    def cancelled(self, consumer: str) -> bool:
        return consumer in self._cancelled

    def returned(self, channel: str) -> list[Returned]:
        return list(self._returns[channel])

    def confirms(self, channel: str) -> list[bool]:
        return list(self._confirms[channel])

    def _delivery_ref(self, ref: str) -> Delivery:
        kind, _, name = ref.partition(":")
        if kind == "get":
            return self._gets[name]
        consumer, _, index = ref.rpartition(":")
        return self._deliveries[consumer][int(index)]


# -- the built-in engine -------------------------------------------------------------------------


class EngineDriver(_Bookkeeping, Driver):
    name = "engine"
    VHOST = "/"

    def open(self, scenario: Scenario) -> None:
        self.reset()
        self.clock = VirtualClock()
        self.broker = Broker(self.clock)
        self.connections: dict[str, Connection] = {}
        self.channels: dict[str, Channel] = {}

    def close(self) -> None:
        for connection in list(self.connections.values()):
            connection.close()

    def _connection(self, name: str) -> Connection:
        connection = self.connections.get(name)
        if connection is None or connection.closed:
            connection = self.connections[name] = self.broker.connect(name, self.VHOST)
        return connection

    def _channel(self, name: str, connection: str) -> Channel:
        channel = self.channels.get(name)
        if channel is None or channel.closed or channel.connection.closed:
            channel = self._connection(connection).channel()
            channel.on_return = lambda code, text, message, n=name: self._returns[n].append(
                Returned(
                    message.body, message.routing_key, message.exchange, code, text, dict(message.properties or {})
                )
            )
            channel.on_confirm = lambda seq, ack, multiple, n=name: self._confirms[n].append(ack)
            channel.on_cancel = lambda tag: self._cancelled.add(tag)
            self.channels[name] = channel
        return channel

    def call(self, op: str, channel: str, connection: str, args: dict[str, Any]) -> Any:
        ch = self._channel(channel, connection)
        try:
            return self._dispatch(op, ch, channel, args)
        except AMQPError as exc:
            if exc.connection_level:
                ch.connection.close()
            else:
                ch.close()
            raise StepError(exc.reply_code, exc.reply_text, exc.connection_level) from None
        finally:
            self.clock.run_pending()

    def _record(self, consumer_name: str, channel_name: str):  # type: ignore[no-untyped-def]
        def on_deliver(consumer: ChannelConsumer, tag: int, message: Message) -> None:
            self._deliveries[consumer_name].append(
                Delivery(
                    message.body,
                    message.routing_key,
                    message.exchange,
                    message.redelivered,
                    dict(message.properties or {}),
                    tag,
                    channel_name,
                )
            )

        return on_deliver

    def _dispatch(self, op: str, ch: Channel, channel: str, args: dict[str, Any]) -> Any:
        if op == "exchange.declare":
            self.broker.exchange_declare(
                self.VHOST,
                args["exchange"],
                args.get("type", "direct"),
                durable=args.get("durable", True),
                auto_delete=args.get("auto_delete", False),
                internal=args.get("internal", False),
                arguments=args.get("arguments"),
                passive=args.get("passive", False),
            )
            return None
        if op == "exchange.delete":
            ch.exchange_delete(args["exchange"], if_unused=args.get("if_unused", False))
            return None
        if op == "exchange.bind":
            ch.exchange_bind(args["destination"], args["source"], args.get("routing_key", ""), args.get("arguments"))
            return None
        if op == "exchange.unbind":
            ch.exchange_unbind(args["destination"], args["source"], args.get("routing_key", ""), args.get("arguments"))
            return None
        if op == "queue.declare":
            queue = ch.queue_declare(
                args.get("queue", ""),
                exclusive=args.get("exclusive", False),
                durable=args.get("durable", True),
                auto_delete=args.get("auto_delete", False),
                arguments=args.get("arguments"),
                passive=args.get("passive", False),
            )
            return {"queue": queue.name, "message_count": queue.depth, "consumer_count": queue.consumer_count}
        if op == "queue.bind":
            ch.queue_bind(args["queue"], args["exchange"], args.get("routing_key", ""), args.get("arguments"))
            return None
        if op == "queue.unbind":
            ch.queue_unbind(args["queue"], args["exchange"], args.get("routing_key", ""), args.get("arguments"))
            return None
        if op == "queue.purge":
            return {"message_count": ch.queue_purge(args["queue"])}
        if op == "queue.delete":
            return {
                "message_count": ch.queue_delete(
                    args["queue"], if_unused=args.get("if_unused", False), if_empty=args.get("if_empty", False)
                )
            }
        if op == "basic.qos":
            ch.basic_qos(args.get("prefetch_count", 0), args.get("global", False))
            return None
        if op == "basic.publish":
            ch.basic_publish(
                args.get("exchange", ""),
                args.get("routing_key", ""),
                _body(args["body"]),
                _properties(args),
                mandatory=args.get("mandatory", False),
            )
            return None
        if op == "basic.get":
            got = ch.basic_get(args["queue"], no_ack=args.get("no_ack", False))
            if got is None:
                return None
            tag, message, remaining = got
            delivery = Delivery(
                message.body,
                message.routing_key,
                message.exchange,
                message.redelivered,
                dict(message.properties or {}),
                tag,
                channel,
                remaining,
            )
            if "as" in args:
                self._gets[args["as"]] = delivery
            return delivery
        if op == "basic.consume":
            name = args["consumer"]
            self._consumer_channel[name] = channel
            ch.basic_consume(
                args["queue"],
                self._record(name, channel),
                consumer_tag=name,
                no_ack=args.get("no_ack", False),
                exclusive=args.get("exclusive", False),
                arguments=args.get("arguments"),
            )
            return None
        if op == "basic.cancel":
            ch.basic_cancel(args["consumer"])
            return None
        if op in ("basic.ack", "basic.nack", "basic.reject"):
            tag = (
                self._delivery_ref(args["delivery"]).delivery_tag if "delivery" in args else args.get("delivery_tag", 0)
            )
            if op == "basic.ack":
                ch.basic_ack(tag, multiple=args.get("multiple", False))
            elif op == "basic.nack":
                ch.basic_nack(tag, multiple=args.get("multiple", False), requeue=args.get("requeue", True))
            else:
                ch.basic_reject(tag, requeue=args.get("requeue", True))
            return None
        if op == "basic.recover":
            ch.basic_recover(requeue=args.get("requeue", True))
            return None
        if op == "confirm.select":
            ch.confirm_select()
            return None
        if op == "channel.close":
            ch.close()
            return None
        if op == "connection.close":
            ch.connection.close()
            return None
        raise ValueError(f"the engine driver cannot do {op}")

    def set_policy(self, name: str, pattern: str, definition: dict[str, Any], priority: int, apply_to: str) -> None:
        self.broker.set_policy(self.VHOST, name, pattern, definition, priority, apply_to)

    def clear_policy(self, name: str) -> None:
        self.broker.clear_policy(self.VHOST, name)

    def wait(self, seconds: float) -> None:
        self.clock.run_until(self.clock.now + seconds)

    def restart_broker(self) -> None:
        self.broker.restart()

    def settle(self) -> None:
        self.clock.run_pending()

    def drain(self, queue: str) -> list[Delivery]:
        channel = self.broker.connect("inspector", self.VHOST).channel()
        try:
            found = []
            while (got := channel.basic_get(queue, no_ack=True)) is not None:
                _, message, _ = got
                found.append(
                    Delivery(
                        message.body,
                        message.routing_key,
                        message.exchange,
                        message.redelivered,
                        dict(message.properties or {}),
                    )
                )
            return found
        except AMQPError as exc:
            raise AssertionError(f"cannot drain queue {queue}: {exc}") from None
        finally:
            channel.connection.close()
            self.clock.run_pending()

    def depth(self, queue: str) -> tuple[int, int]:
        # A passive declare, as the pika driver does: on RabbitMQ it counts as use of the queue.
        try:
            found = self.broker.queue_declare(self.VHOST, queue, passive=True)
        except AMQPError as exc:
            raise AssertionError(f"queue {queue}: {exc}") from None
        return found.depth, found.consumer_count

    def exists(self, kind: str, name: str) -> bool:
        try:
            if kind == "queue":
                self.broker.queue_declare(self.VHOST, name, passive=True)
            else:
                self.broker.exchange_declare(self.VHOST, name, passive=True)
        except AMQPError as exc:
            if exc.reply_code == 404:
                return False
            raise
        return True


# -- pika against a real RabbitMQ ------------------------------------------------------------------


class RabbitAdmin:
    """The management HTTP API: vhosts, permissions and policies."""

    BASE = "http://127.0.0.1:15672/api"

    def __init__(self, base: str = BASE, user: str = "guest", password: str = "guest") -> None:
        self.base = base
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", self.auth)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
        return json.loads(text) if text else None

    @staticmethod
    def quote(name: str) -> str:
        return urllib.request.quote(name, safe="")

    def add_vhost(self, vhost: str) -> None:
        self.request("PUT", f"/vhosts/{self.quote(vhost)}", {})
        self.request("PUT", f"/permissions/{self.quote(vhost)}/guest", {"configure": ".*", "write": ".*", "read": ".*"})

    def delete_vhost(self, vhost: str) -> None:
        try:
            self.request("DELETE", f"/vhosts/{self.quote(vhost)}")
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise

    def set_policy(
        self, vhost: str, name: str, pattern: str, definition: dict[str, Any], priority: int, apply_to: str
    ) -> None:
        body = {"pattern": pattern, "definition": definition, "priority": priority, "apply-to": apply_to}
        self.request("PUT", f"/policies/{self.quote(vhost)}/{self.quote(name)}", body)

    def clear_policy(self, vhost: str, name: str) -> None:
        self.request("DELETE", f"/policies/{self.quote(vhost)}/{self.quote(name)}")


class PikaDriver(_Bookkeeping, Driver):
    """pika's BlockingConnection against a broker; each scenario in a vhost of its own."""

    name = "rabbitmq"
    QUIET = 0.06  # seconds without news before the broker counts as settled

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, admin: RabbitAdmin | None = None) -> None:
        # Another node than the usual one (to try a restart on a broker of one's own, say):
        # QUEUECRAFT_TEST_AMQP_PORT, QUEUECRAFT_TEST_MANAGEMENT_URL and QUEUECRAFT_TEST_NODE.
        self.host = host
        self.port = port or int(os.environ.get("QUEUECRAFT_TEST_AMQP_PORT", "5672"))
        self.admin = admin or RabbitAdmin(os.environ.get("QUEUECRAFT_TEST_MANAGEMENT_URL", RabbitAdmin.BASE))
        self.node = os.environ.get("QUEUECRAFT_TEST_NODE")

    def open(self, scenario: Scenario) -> None:
        self.reset()
        self.vhost = f"qc-conformance-{uuid.uuid4().hex[:10]}"
        self.admin.add_vhost(self.vhost)
        self.connections: dict[str, Any] = {}
        self.channels: dict[str, Any] = {}
        self._closed_reason: dict[str, tuple[int, str]] = {}
        self._news = time.monotonic()

    def close(self) -> None:
        for connection in self.connections.values():
            try:
                if connection.is_open:
                    connection.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
        self.admin.delete_vhost(self.vhost)

    def _params(self):  # type: ignore[no-untyped-def]
        import pika

        return pika.ConnectionParameters(
            self.host,
            self.port,
            self.vhost,
            pika.PlainCredentials("guest", "guest"),
            heartbeat=0,
            blocked_connection_timeout=10,
        )

    def _connection(self, name: str):  # type: ignore[no-untyped-def]
        import pika

        connection = self.connections.get(name)
        if connection is None or not connection.is_open:
            connection = self.connections[name] = pika.BlockingConnection(self._params())
        return connection

    def _channel(self, name: str, connection: str):  # type: ignore[no-untyped-def]
        channel = self.channels.get(name)
        if channel is None or not channel.is_open:
            channel = self._connection(connection).channel()
            # Deliveries, returns and cancels are recorded as their frames arrive. pika's
            # BlockingChannel would queue them for dispatch instead: a channel the broker
            # closes throws the queue away, and basic_cancel rejects (requeues) what it
            # holds, either of which would misreport what RabbitMQ did.
            impl = channel._impl
            impl.add_on_return_callback(
                lambda _ch, method, props, body, n=name: self._on_return(n, method, props, body)
            )
            impl.add_on_cancel_callback(lambda frame: self._cancelled.add(frame.method.consumer_tag))
            impl.add_on_close_callback(lambda _impl, reason, n=name: self._on_close(n, reason))
            channel._on_consumer_message_delivery = lambda _impl, method, props, body, n=name: self._arrived(
                n, method, props, body
            )
            channel.qc_confirming = False
            self.channels[name] = channel
        return channel

    def _arrived(self, channel_name: str, method: Any, props: Any, body: bytes) -> None:
        self._news = time.monotonic()
        self._deliveries[method.consumer_tag].append(
            Delivery(
                body,
                method.routing_key,
                method.exchange,
                method.redelivered,
                _pika_props(props),
                method.delivery_tag,
                channel_name,
            )
        )

    def _on_close(self, name: str, reason: Any) -> None:
        code = getattr(reason, "reply_code", 0)
        text = getattr(reason, "reply_text", str(reason))
        self._closed_reason[name] = (code, text)

    def _on_return(self, name: str, method: Any, props: Any, body: bytes) -> None:
        self._news = time.monotonic()
        self._returns[name].append(
            Returned(
                body, method.routing_key, method.exchange, method.reply_code, method.reply_text, _pika_props(props)
            )
        )

    def call(self, op: str, channel: str, connection: str, args: dict[str, Any]) -> Any:
        import pika.exceptions as pe

        ch = self._channel(channel, connection)
        try:
            result = self._dispatch(op, ch, channel, args)
            if op in (
                "basic.publish",
                "basic.ack",
                "basic.nack",
                "basic.reject",
                "basic.cancel",
                "basic.recover",
                "queue.unbind",
            ):
                self._sync(ch)
            return result
        except pe.ChannelClosedByBroker as exc:
            raise StepError(exc.reply_code, exc.reply_text) from None
        except pe.ConnectionClosedByBroker as exc:
            raise StepError(exc.reply_code, exc.reply_text, connection_level=True) from None
        except (pe.ChannelWrongStateError, pe.ChannelClosed) as exc:
            reason = self._closed_reason.get(channel)
            if reason:
                raise StepError(reason[0], reason[1]) from None
            raise AssertionError(f"channel {channel} is closed: {exc!r}") from None

    def _sync(self, ch: Any) -> None:
        """A round trip on the channel, so an asynchronous refusal (a bad ack, say) shows here."""
        ch.exchange_declare("amq.direct", "direct", passive=True)

    def _dispatch(self, op: str, ch: Any, channel: str, args: dict[str, Any]) -> Any:
        import pika
        import pika.exceptions as pe

        if op == "exchange.declare":
            ch.exchange_declare(
                args["exchange"],
                args.get("type", "direct"),
                passive=args.get("passive", False),
                durable=args.get("durable", True),
                auto_delete=args.get("auto_delete", False),
                internal=args.get("internal", False),
                arguments=args.get("arguments"),
            )
            return None
        if op == "exchange.delete":
            ch.exchange_delete(args["exchange"], if_unused=args.get("if_unused", False))
            return None
        if op == "exchange.bind":
            ch.exchange_bind(args["destination"], args["source"], args.get("routing_key", ""), args.get("arguments"))
            return None
        if op == "exchange.unbind":
            ch.exchange_unbind(args["destination"], args["source"], args.get("routing_key", ""), args.get("arguments"))
            return None
        if op == "queue.declare":
            frame = ch.queue_declare(
                args.get("queue", ""),
                passive=args.get("passive", False),
                durable=args.get("durable", True),
                exclusive=args.get("exclusive", False),
                auto_delete=args.get("auto_delete", False),
                arguments=args.get("arguments"),
            )
            return {
                "queue": frame.method.queue,
                "message_count": frame.method.message_count,
                "consumer_count": frame.method.consumer_count,
            }
        if op == "queue.bind":
            ch.queue_bind(args["queue"], args["exchange"], args.get("routing_key", ""), args.get("arguments"))
            return None
        if op == "queue.unbind":
            ch.queue_unbind(args["queue"], args["exchange"], args.get("routing_key", ""), args.get("arguments"))
            return None
        if op == "queue.purge":
            return {"message_count": ch.queue_purge(args["queue"]).method.message_count}
        if op == "queue.delete":
            frame = ch.queue_delete(
                args["queue"], if_unused=args.get("if_unused", False), if_empty=args.get("if_empty", False)
            )
            return {"message_count": frame.method.message_count}
        if op == "basic.qos":
            ch.basic_qos(prefetch_count=args.get("prefetch_count", 0), global_qos=args.get("global", False))
            return None
        if op == "basic.publish":
            props = pika.BasicProperties(**(args.get("properties") or {}))
            try:
                ch.basic_publish(
                    args.get("exchange", ""),
                    args.get("routing_key", ""),
                    _body(args["body"]),
                    props,
                    mandatory=args.get("mandatory", False),
                )
                if ch.qc_confirming:
                    self._confirms[channel].append(True)
            except pe.UnroutableError:
                # Returned and then acked: the return callback has recorded the message.
                self._confirms[channel].append(True)
            except pe.NackError:
                self._confirms[channel].append(False)
            return None
        if op == "basic.get":
            method, props, body = ch.basic_get(args["queue"], auto_ack=args.get("no_ack", False))
            if method is None:
                return None
            delivery = Delivery(
                body,
                method.routing_key,
                method.exchange,
                method.redelivered,
                _pika_props(props),
                method.delivery_tag,
                channel,
                method.message_count,
            )
            if "as" in args:
                self._gets[args["as"]] = delivery
            return delivery
        if op == "basic.consume":
            name = args["consumer"]
            self._consumer_channel[name] = channel
            ch.basic_consume(
                args["queue"],
                lambda *_: None,  # deliveries are recorded as they arrive (_arrived)
                auto_ack=args.get("no_ack", False),
                exclusive=args.get("exclusive", False),
                consumer_tag=name,
                arguments=args.get("arguments"),
            )
            return None
        if op == "basic.cancel":
            ch.basic_cancel(args["consumer"])
            return None
        if op in ("basic.ack", "basic.nack", "basic.reject"):
            tag = (
                self._delivery_ref(args["delivery"]).delivery_tag if "delivery" in args else args.get("delivery_tag", 0)
            )
            if op == "basic.ack":
                ch.basic_ack(tag, multiple=args.get("multiple", False))
            elif op == "basic.nack":
                ch.basic_nack(tag, multiple=args.get("multiple", False), requeue=args.get("requeue", True))
            else:
                ch.basic_reject(tag, requeue=args.get("requeue", True))
            return None
        if op == "basic.recover":
            ch.basic_recover(requeue=args.get("requeue", True))
            return None
        if op == "confirm.select":
            ch.confirm_delivery()
            ch.qc_confirming = True
            return None
        if op == "channel.close":
            ch.close()
            return None
        if op == "connection.close":
            ch.connection.close()
            return None
        raise ValueError(f"the pika driver cannot do {op}")

    def restart_broker(self) -> None:
        """rabbitmqctl stop_app and start_app, then wait until the broker takes connections again."""
        import pika

        self._restart_node()
        for connection in self.connections.values():
            try:
                connection.process_data_events(time_limit=0)  # notice the broker hung up
            except Exception:  # noqa: BLE001 - it did
                pass
            try:
                if connection.is_open:
                    connection.close()
            except Exception:  # noqa: BLE001 - closing what the restart broke
                pass
        self.connections, self.channels = {}, {}
        deadline = time.monotonic() + 60
        while True:
            try:
                pika.BlockingConnection(self._params()).close()
                return
            except pika.exceptions.AMQPConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def _restart_node(self) -> None:
        if shutil.which("rabbitmqctl") is None:
            # A broker reachable but not restartable from here (no CLI tools on this machine).
            if os.environ.get("CI"):
                raise AssertionError("restarting the broker needs rabbitmqctl, which is not on the PATH")
            import pytest

            pytest.skip("restarting the broker needs rabbitmqctl, which is not installed here")
        node = ["-n", self.node] if self.node else []
        for command in (["rabbitmqctl", *node, "stop_app"], ["rabbitmqctl", *node, "start_app"]):
            subprocess.run(command, check=True, capture_output=True, timeout=120)

    def set_policy(self, name: str, pattern: str, definition: dict[str, Any], priority: int, apply_to: str) -> None:
        self.admin.set_policy(self.vhost, name, pattern, definition, priority, apply_to)
        self.wait(0.15)  # queues pick policies up asynchronously

    def clear_policy(self, name: str) -> None:
        self.admin.clear_policy(self.vhost, name)
        self.wait(0.15)

    def _pump(self, seconds: float) -> None:
        for connection in list(self.connections.values()):
            if connection.is_open:
                try:
                    connection.process_data_events(time_limit=seconds)
                except Exception:  # noqa: BLE001 - a connection the broker closed
                    pass

    def wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._pump(min(left, 0.02))
            time.sleep(min(max(deadline - time.monotonic(), 0), 0.005))

    def settle(self) -> None:
        for channel in list(self.channels.values()):
            if channel.is_open:
                try:
                    self._sync(channel)
                except Exception:  # noqa: BLE001 - the channel closed meanwhile
                    pass
        deadline = time.monotonic() + 2.0
        self._news = time.monotonic()
        while time.monotonic() - self._news < self.QUIET and time.monotonic() < deadline:
            self._pump(0.01)

    def _inspector(self):  # type: ignore[no-untyped-def]
        import pika

        connection = pika.BlockingConnection(self._params())
        return connection, connection.channel()

    def drain(self, queue: str) -> list[Delivery]:
        import pika.exceptions as pe

        connection, channel = self._inspector()
        try:
            found = []
            while True:
                method, props, body = channel.basic_get(queue, auto_ack=True)
                if method is None:
                    return found
                found.append(
                    Delivery(body, method.routing_key, method.exchange, method.redelivered, _pika_props(props))
                )
        except pe.ChannelClosedByBroker as exc:
            raise AssertionError(f"cannot drain queue {queue}: {exc.reply_code} {exc.reply_text}") from None
        finally:
            if connection.is_open:
                connection.close()

    def depth(self, queue: str) -> tuple[int, int]:
        import pika.exceptions as pe

        connection, channel = self._inspector()
        try:
            frame = channel.queue_declare(queue, passive=True)
            return frame.method.message_count, frame.method.consumer_count
        except pe.ChannelClosedByBroker as exc:
            raise AssertionError(f"queue {queue}: {exc.reply_code} {exc.reply_text}") from None
        finally:
            if connection.is_open:
                connection.close()

    def exists(self, kind: str, name: str) -> bool:
        import pika.exceptions as pe

        connection, channel = self._inspector()
        try:
            if kind == "queue":
                channel.queue_declare(name, passive=True)
            else:
                channel.exchange_declare(name, passive=True)
            return True
        except pe.ChannelClosedByBroker as exc:
            if exc.reply_code == 404:
                return False
            raise
        finally:
            if connection.is_open:
                connection.close()


def _pika_props(props: Any) -> dict[str, Any]:
    if props is None:
        return {}
    return {name: getattr(props, name) for name in PROPERTY_FIELDS if getattr(props, name, None) is not None}


# -- pika against the engine's own AMQP listener ---------------------------------------------------


class EngineAdmin:
    """What the pika driver asks of RabbitMQ's management API, done on a served engine in its thread."""

    def __init__(self, thread: BrokerThread) -> None:
        self.thread = thread

    @property
    def served(self) -> ServedBroker:
        assert self.thread.served is not None
        return self.thread.served

    def add_vhost(self, vhost: str) -> None:
        self.thread.call(self.served.broker.add_vhost, vhost)

    def delete_vhost(self, vhost: str) -> None:
        if vhost in self.thread.call(lambda: set(self.served.broker.vhosts)):
            self.thread.call(self.served.delete_vhost, vhost)

    def set_policy(
        self, vhost: str, name: str, pattern: str, definition: dict[str, Any], priority: int, apply_to: str
    ) -> None:
        self.thread.call(self.served.broker.set_policy, vhost, name, pattern, definition, priority, apply_to)

    def clear_policy(self, vhost: str, name: str) -> None:
        self.thread.call(self.served.broker.clear_policy, vhost, name)


class ListenerDriver(PikaDriver):
    """pika against ``queuecraft serve``'s listener, each scenario in a vhost of its own."""

    name = "listener"

    def __init__(self, thread: BrokerThread) -> None:
        assert thread.address is not None
        super().__init__(thread.address[0], thread.address[1], EngineAdmin(thread))
        self.thread = thread

    def _restart_node(self) -> None:
        assert self.thread.served is not None
        self.thread.call(self.thread.served.restart)
