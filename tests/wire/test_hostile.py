"""Hostile and broken clients, on the engine's listener and on the real RabbitMQ alike.

Each test sends something a well-behaved client never would and checks the broker
closes that connection (or channel) with the code and the method RabbitMQ names,
and that the broker still serves everyone else.
"""

from __future__ import annotations

import struct

import pytest
from pamqp import body as content_body
from pamqp import commands, frame, header, heartbeat

from .raw import PROTOCOL_HEADER, RawClient, method_frame, raw_frame

Basic = commands.Basic


def connected(address: tuple[str, int], **handshake: object) -> RawClient:
    client = RawClient(address)
    client.handshake(**handshake)  # type: ignore[arg-type]
    client.open_channel(1)
    return client


def still_serving(address: tuple[str, int]) -> None:
    """Another client connects and gets answers: one bad client harmed nobody else."""
    with connected(address) as other:
        other.round_trip(1)


@pytest.mark.parametrize("greeting", [b"AMQP\x00\x00\x08\x00", b"AMQP\x00\x00\x0a\x00", b"GET / HTTP/1.1\r\n\r\n"])
def test_a_wrong_protocol_header_is_answered_with_the_one_spoken_and_the_socket_closes(broker_address, greeting):
    with RawClient(broker_address) as client:
        client.send(greeting)
        client.read(2.0)
        assert client.frames and client.frames[0][1] == PROTOCOL_HEADER
        assert client.closed().reply_code is None
    still_serving(broker_address)


def test_the_amqp_0_9_header_is_taken_as_0_9_1(broker_address):
    with RawClient(broker_address) as client:
        client.send(b"AMQP\x01\x01\x00\x09")
        start = client.expect(commands.Connection.Start)
        assert (start.version_major, start.version_minor) == (0, 9)


def test_a_frame_larger_than_frame_max_is_a_frame_error(broker_address):
    with connected(broker_address, frame_max=4096) as client:
        client.method(1, Basic.Publish(exchange="", routing_key="nowhere"))
        client.send(frame.marshal(header.ContentHeader(0, 10000, Basic.Properties()), 1))
        client.send(frame.marshal(content_body.ContentBody(b"x" * 10000), 1))
        assert client.closed().reply_code == 501
    still_serving(broker_address)


@pytest.mark.parametrize(
    "stray",
    [
        frame.marshal(header.ContentHeader(0, 10, Basic.Properties()), 1),
        frame.marshal(content_body.ContentBody(b"abc"), 1),
    ],
    ids=["content-header", "content-body"],
)
def test_content_without_a_method_before_it_is_an_unexpected_frame(broker_address, stray):
    with connected(broker_address) as client:
        client.send(stray)
        closed = client.closed()
        assert closed.reply_code == 505
        assert "expected method frame" in closed.reply_text
    still_serving(broker_address)


def test_a_method_on_a_channel_never_opened_is_a_channel_error_naming_the_method(broker_address):
    with connected(broker_address) as client:
        client.method(5, commands.Queue.Declare(queue="zz"))
        closed = client.closed()
        assert (closed.reply_code, closed.class_id, closed.method_id) == (504, 50, 10)
        assert "expected 'channel.open'" in closed.reply_text


def test_a_bad_frame_end_marker_is_a_frame_error(broker_address):
    with connected(broker_address) as client:
        data = bytearray(frame.marshal(commands.Queue.Declare(queue="zz"), 1))
        data[-1] = 0
        client.send(bytes(data))
        assert client.closed().reply_code == 501


def test_a_channel_method_on_channel_zero_is_a_channel_error(broker_address):
    with connected(broker_address) as client:
        client.method(0, commands.Queue.Declare(queue="zz"))
        closed = client.closed()
        assert (closed.reply_code, closed.class_id, closed.method_id) == (504, 50, 10)


def test_a_heartbeat_on_a_channel_is_an_unexpected_frame(broker_address):
    with connected(broker_address) as client:
        client.send(raw_frame(8, 1, b""))
        assert client.closed().reply_code == 505


def test_truncated_method_arguments_are_a_frame_error_naming_the_method(broker_address):
    with connected(broker_address) as client:
        client.send(method_frame(1, 50, 10, b"\x00"))
        closed = client.closed()
        assert (closed.reply_code, closed.class_id, closed.method_id) == (501, 50, 10)


def test_a_second_channel_open_is_a_channel_error(broker_address):
    with connected(broker_address) as client:
        client.method(1, commands.Channel.Open())
        closed = client.closed()
        assert (closed.reply_code, closed.class_id, closed.method_id) == (504, 20, 10)


def test_a_method_where_content_was_due_is_an_unexpected_frame_naming_the_publish(broker_address):
    with connected(broker_address) as client:
        client.method(1, Basic.Publish(exchange="", routing_key="x"))
        client.method(1, commands.Queue.Declare(queue="zz"))
        closed = client.closed()
        assert (closed.reply_code, closed.class_id, closed.method_id) == (505, 60, 40)
        assert "expected content header" in closed.reply_text


def test_a_body_longer_than_its_header_said_never_completes(broker_address):
    with connected(broker_address) as client:
        client.method(1, Basic.Publish(exchange="", routing_key="x"))
        client.send(frame.marshal(header.ContentHeader(0, 3, Basic.Properties()), 1))
        client.send(frame.marshal(content_body.ContentBody(b"abcdef"), 1))
        client.method(1, commands.Exchange.Declare(exchange="amq.direct", exchange_type="direct", passive=True))
        closed = client.closed()
        assert closed.reply_code == 505
        assert "expected content body" in closed.reply_text


def test_a_content_header_of_another_class_is_an_unexpected_frame(broker_address):
    with connected(broker_address) as client:
        client.method(1, Basic.Publish(exchange="", routing_key="x"))
        data = bytearray(frame.marshal(header.ContentHeader(0, 3, Basic.Properties()), 1))
        data[7:9] = struct.pack(">H", 50)
        client.send(bytes(data))
        closed = client.closed()
        assert (closed.reply_code, closed.class_id, closed.method_id) == (505, 60, 40)


@pytest.mark.parametrize(
    ("method", "with_content", "ids"),
    [
        (Basic.Deliver(consumer_tag="a", delivery_tag=1, exchange="", routing_key="x"), True, (60, 60)),
        (Basic.ConsumeOk(consumer_tag="a"), False, (60, 21)),
        (commands.Queue.DeclareOk(queue="q", message_count=0, consumer_count=0), False, (50, 11)),
    ],
    ids=["basic.deliver", "basic.consume-ok", "queue.declare-ok"],
)
def test_a_method_only_servers_send_is_an_invalid_command(broker_address, method, with_content, ids):
    with connected(broker_address) as client:
        client.method(1, method)
        if with_content:
            client.send(frame.marshal(header.ContentHeader(0, 0, Basic.Properties()), 1))
        closed = client.closed()
        assert (closed.reply_code, (closed.class_id, closed.method_id)) == (503, ids)


def test_an_unknown_frame_type_is_a_frame_error(broker_address):
    with connected(broker_address) as client:
        client.send(raw_frame(9, 1, b"ab"))
        assert client.closed().reply_code == 501


@pytest.mark.parametrize(
    ("send", "ids", "text"),
    [
        (lambda c: c.publish(1, "", "nowhere", b"hi", immediate=True), (60, 40), "immediate=true"),
        (lambda c: c.method(1, Basic.Qos(prefetch_size=10)), (60, 10), "prefetch_size"),
        (lambda c: c.method(1, commands.Channel.Flow(active=False)), (20, 20), "active=false"),
        (lambda c: c.method(1, Basic.Recover(requeue=False)), (60, 110), "requeue=false"),
    ],
    ids=["publish-immediate", "qos-prefetch-size", "channel-flow-off", "recover-without-requeue"],
)
def test_what_rabbitmq_does_not_implement_is_refused_as_not_implemented(broker_address, send, ids, text):
    with connected(broker_address) as client:
        send(client)
        closed = client.closed()
        assert (closed.reply_code, (closed.class_id, closed.method_id)) == (540, ids)
        assert text in closed.reply_text


def test_an_unknown_exchange_type_closes_the_connection_as_an_invalid_command(broker_address):
    with connected(broker_address) as client:
        client.method(1, commands.Exchange.Declare(exchange="qc-bogus", exchange_type="bogus"))
        closed = client.closed()
        assert (closed.reply_code, closed.class_id, closed.method_id) == (503, 40, 10)
        assert "unknown exchange type 'bogus'" in closed.reply_text


def test_a_channel_error_closes_only_that_channel_and_it_ignores_all_but_close_ok(broker_address):
    with connected(broker_address) as client:
        client.open_channel(2)
        client.method(1, commands.Queue.Declare(queue="qc-no-such-queue", passive=True))
        closed = client.read(2.0, until=commands.Channel.Close)
        close = next(v for n, v in closed if n == 1 and isinstance(v, commands.Channel.Close))
        assert (close.reply_code, close.class_id, close.method_id) == (404, 50, 10)
        client.method(1, commands.Queue.Declare(queue="qc-other", passive=True))  # ignored: close-ok is due
        client.round_trip(2)
        client.method(1, commands.Channel.CloseOk())
        client.open_channel(1)
        client.round_trip(1)


def test_a_wrong_password_is_refused_with_access_refused_when_the_client_asks_to_hear_it(broker_address):
    with RawClient(broker_address) as client:
        client.send(PROTOCOL_HEADER)
        client.expect(commands.Connection.Start)
        client.method(
            0,
            commands.Connection.StartOk(
                client_properties={"capabilities": {"authentication_failure_close": True}},
                mechanism="PLAIN",
                response="\0guest\0wrong",
            ),
        )
        closed = client.closed()
        assert closed.reply_code == 403
        assert "ACCESS_REFUSED" in closed.reply_text


def test_the_log_says_whose_login_was_refused_and_the_client_hears_only_that_it_was(served, caplog) -> None:  # type: ignore[no-untyped-def]
    assert served.address is not None
    with caplog.at_level("WARNING", logger="queuecraft.amqp"), RawClient(served.address) as client:
        client.send(PROTOCOL_HEADER)
        client.expect(commands.Connection.Start)
        client.method(
            0,
            commands.Connection.StartOk(
                client_properties={"capabilities": {"authentication_failure_close": True}},
                mechanism="PLAIN",
                response="\0mallory\0wrong",
            ),
        )
        closed = client.closed()
    assert "mallory" not in closed.reply_text
    assert "PLAIN login refused: user 'mallory' - invalid credentials" in caplog.text


def test_a_wrong_password_only_closes_the_socket_for_a_client_that_did_not_ask(broker_address):
    with RawClient(broker_address) as client:
        client.send(PROTOCOL_HEADER)
        client.expect(commands.Connection.Start)
        client.method(
            0, commands.Connection.StartOk(client_properties={}, mechanism="PLAIN", response="\0guest\0wrong")
        )
        assert client.closed(seconds=6.0).reply_code is None


def test_an_unknown_mechanism_closes_the_socket(broker_address):
    with RawClient(broker_address) as client:
        client.send(PROTOCOL_HEADER)
        client.expect(commands.Connection.Start)
        client.method(0, commands.Connection.StartOk(client_properties=CAPS, mechanism="FOO", response="x"))
        assert client.closed(seconds=6.0).reply_code is None


CAPS = {"capabilities": {"authentication_failure_close": True}}


def test_a_vhost_that_does_not_exist_is_not_allowed(broker_address):
    with RawClient(broker_address) as client:
        client.send(PROTOCOL_HEADER)
        client.expect(commands.Connection.Start)
        client.method(
            0, commands.Connection.StartOk(client_properties=CAPS, mechanism="PLAIN", response="\0guest\0guest")
        )
        client.expect(commands.Connection.Tune)
        client.method(0, commands.Connection.TuneOk(channel_max=2047, frame_max=131072, heartbeat=0))
        client.method(0, commands.Connection.Open(virtual_host="qc-no-such-vhost"))
        closed = client.closed()
        assert (closed.reply_code, closed.class_id, closed.method_id) == (530, 10, 40)
        assert "vhost qc-no-such-vhost not found" in closed.reply_text


@pytest.mark.parametrize(
    ("channel_max", "frame_max"), [(2047, 100), (0, 131072)], ids=["frame-max-too-small", "unlimited-channels"]
)
def test_tune_ok_outside_the_limits_closes_the_socket(broker_address, channel_max, frame_max):
    with RawClient(broker_address) as client:
        client.send(PROTOCOL_HEADER)
        client.expect(commands.Connection.Start)
        client.method(
            0, commands.Connection.StartOk(client_properties=CAPS, mechanism="PLAIN", response="\0guest\0guest")
        )
        tune = client.expect(commands.Connection.Tune)
        assert (tune.channel_max, tune.frame_max, tune.heartbeat) == (2047, 131072, 60)
        client.method(0, commands.Connection.TuneOk(channel_max=channel_max, frame_max=frame_max, heartbeat=0))
        # RabbitMQ waits 3 s before it hangs up on a failed handshake.
        assert client.closed(seconds=6.0).reply_code is None


def test_a_client_that_stops_sending_heartbeats_is_disconnected(broker_address):
    with connected(broker_address, heartbeat=1) as client:
        closed = client.closed(seconds=8.0)
        assert closed.reply_code is None
        assert any(isinstance(value, heartbeat.Heartbeat) for _, value in client.frames)
    still_serving(broker_address)


def test_x_death_counts_travel_as_64_bit_integers_as_rabbitmq_writes_them(broker_address, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A Java client reads x-death's count as a Long: a 32-bit field ('I') would not cast."""
    import uuid

    import pika
    import pika.data

    kinds: list[str] = []
    decode_value = pika.data.decode_value

    def noting(encoded: bytes, offset: int):  # type: ignore[no-untyped-def]
        kinds.append(encoded[offset : offset + 1].decode())
        return decode_value(encoded, offset)

    monkeypatch.setattr(pika.data, "decode_value", noting)
    prefix = f"qc-xdeath-{uuid.uuid4().hex[:6]}"
    connection = pika.BlockingConnection(pika.ConnectionParameters(*broker_address))
    try:
        channel = connection.channel()
        channel.queue_declare(f"{prefix}-dead", auto_delete=True)
        arguments = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": f"{prefix}-dead"}
        channel.queue_declare(f"{prefix}-work", auto_delete=True, arguments=arguments)
        channel.basic_publish("", f"{prefix}-work", b"x")
        got = None
        for _ in range(50):
            got = channel.basic_get(f"{prefix}-work")[0]
            if got is not None:
                break
            connection.sleep(0.02)
        assert got is not None
        channel.basic_reject(got.delivery_tag, requeue=False)
        for _ in range(50):
            kinds.clear()
            method, properties, _ = channel.basic_get(f"{prefix}-dead", auto_ack=True)
            if method is not None:
                break
            connection.sleep(0.02)
        (death,) = properties.headers["x-death"]
        assert death["count"] == 1
        assert "l" in kinds and "I" not in kinds
        channel.queue_delete(f"{prefix}-work")
        channel.queue_delete(f"{prefix}-dead")
    finally:
        connection.close()


def test_a_line_break_in_a_client_given_name_cannot_forge_a_line_of_the_log(served, caplog) -> None:  # type: ignore[no-untyped-def]
    import pika

    assert served.address is not None
    with caplog.at_level("INFO", logger="queuecraft.amqp"):
        properties = {"connection_name": "app\n12:00:00 'admin' connected to vhost '/' as 'admin'"}
        connection = pika.BlockingConnection(pika.ConnectionParameters(*served.address, client_properties=properties))
        connection.close()
    assert "app\\x0a12:00:00 'admin' connected" in caplog.text
    assert "\n12:00:00" not in caplog.text


def test_channel_max_bounds_how_many_channels_are_open_not_their_numbers(broker_address) -> None:  # type: ignore[no-untyped-def]
    with RawClient(broker_address) as client:
        client.handshake(channel_max=3)
        for number in (1, 2048, 65535):  # any number, as long as no more than three are open
            client.open_channel(number)
        client.method(7, commands.Channel.Open())
        closed = client.closed()
        assert (closed.reply_code, closed.class_id, closed.method_id) == (530, 0, 0)
        assert (
            closed.reply_text
            == "NOT_ALLOWED - number of channels opened (3) has reached the negotiated channel_max (3)"
        )
