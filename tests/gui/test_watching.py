"""Watching a run: every message drawn at low rates, pulses at high ones, fates marked where they
happen, plots that follow the selection, stepping, following a message, and a queue's messages."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from engine.model import Binding, Consumer, Exchange, Producer, Queue, Topology
from engine.sim import TOTALS_ID
from gui.main_window import MainWindow

from .conftest import run_for


def fates() -> Topology:
    return Topology(
        exchanges=[Exchange("orders", type="topic"), Exchange("dead-letters", type="fanout")],
        queues=[
            Queue("payments", arguments={"x-message-ttl": 300, "x-dead-letter-exchange": "dead-letters"}),
            Queue("audit", arguments={"x-max-length": 2}),
            Queue("parked"),
        ],
        bindings=[
            Binding("orders", "payments", routing_key="order.created"),
            Binding("orders", "audit", routing_key="order.*"),
            Binding("dead-letters", "parked"),
        ],
        producers=[
            Producer("shop", "orders", routing_key="order.{created|paid|lost.key}", rate=20),
            Producer("strict", "orders", routing_key="invoice.sent", rate=2, mandatory=True),
        ],
        consumers=[
            Consumer("payer", "payments", prefetch=1, work_ms=400),
            Consumer("auditor", "audit", prefetch=1, work_ms=500),
        ],
    )


def load(window: MainWindow, topology: Topology) -> None:
    window.document.adopt(topology)


def test_at_a_low_rate_every_message_gets_a_token_on_every_edge_it_travels(window: MainWindow, qasync_loop) -> None:  # type: ignore[no-untyped-def]
    topology = fates()
    topology.producers = [Producer("shop", "orders", routing_key="order.{created|paid}", rate=50)]
    load(window, topology)
    window.controller.run()
    run_for(qasync_loop, 2.0)
    flow = window.controller.sim.flow
    drawn_kinds = {"published", "routed", "delivered", "dead_lettered"}
    window.controller.pause()
    window.on_frame()  # the animation has read every event there is
    events = [e for e in flow.since(0) if e.kind in drawn_kinds and (e.source, e.target) in window.scene.edge_for]
    assert len(events) > 150
    assert window.animator.tokens_skipped == 0
    assert window.animator.tokens_started == len(events)
    assert not window.scene.tokens.pulsing


def test_fates_are_marked_at_their_node_and_dead_letters_ride_the_dead_letter_edge(
    window: MainWindow, qasync_loop
) -> None:  # type: ignore[no-untyped-def]
    load(window, fates())
    marked: dict[str, set[str]] = {}
    rings = set()
    window.controller.run()
    for _ in range(40):
        run_for(qasync_loop, 0.1)
        for mark in window.scene.tokens.marks:
            marked.setdefault(mark.fate, set()).add(mark.node.node_id)
        rings |= {t.edge.relation for t in window.scene.tokens.tokens if t.ring}
    assert marked["unroutable"] == {"exchange:/:orders"}
    assert marked["returned"] == {"producer:/:strict"}
    assert marked["dropped"] == {"queue:/:audit"}
    assert marked["expired"] == {"queue:/:payments"}
    assert "dead-letter" in rings and "publishes" in rings  # dead letters onward, returns back


def test_a_busy_edge_pulses_instead_of_drawing_tokens_and_frames_stay_bounded(window: MainWindow, qasync_loop) -> None:  # type: ignore[no-untyped-def]
    topology = fates()
    topology.producers = [Producer("firehose", "orders", routing_key="order.created", rate=5000)]
    topology.consumers = [Consumer("payer", "payments", prefetch=500, work_ms=0)]
    load(window, topology)
    window.controller.run()
    run_for(qasync_loop, 3.0)
    pulsing = {(e.source.node_id, e.target.node_id) for e in window.scene.tokens.pulsing}
    assert ("producer:/:firehose", "exchange:/:orders") in pulsing
    assert len(window.scene.tokens.tokens) <= window.animator.MAX_TOKENS
    assert all(not t.edge.pulsing for t in window.scene.tokens.tokens)


def test_the_plots_follow_the_selection_show_values_and_export_csv(
    window: MainWindow, qasync_loop, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    load(window, fates())
    window.controller.run()
    run_for(qasync_loop, 2.5)
    rates = window.rates
    assert rates.subject == TOTALS_ID and "publish" in rates.rate_curves
    window.scene.select_only(["queue:/:payments"])
    assert rates.subject == "queue:/:payments"
    assert set(rates.rate_curves) >= {"enqueue", "deliver", "expire", "dead-letter"}
    assert set(rates.levels_chart.curves) == {"ready", "unacked"}
    run_for(qasync_loop, 1.0)
    _, p50 = rates.latency_chart.curves["latency p50"].getData()
    assert p50 is not None and any(v > 0 for v in p50 if not math.isnan(v))
    text = rates.values_text(rates.rates_chart, 1.5)
    assert text.startswith("t = 1.50 s") and "enqueue:" in text
    target = tmp_path / "payments.csv"
    assert rates.export_csv(target)
    rows = list(csv.reader(target.read_text().splitlines()))
    assert rows[0][:2] == ["time (s)", "enqueue (msg/s)"] and len(rows) > 8
    window.scene.clearSelection()
    assert rates.subject == TOTALS_ID


def test_step_runs_one_event_and_says_what_happened(window: MainWindow, qasync_loop) -> None:  # type: ignore[no-untyped-def]
    load(window, fates())
    window.runs.step_event()
    assert not window.controller.running
    message = window.statusBar().currentMessage()
    assert "published it to exchange orders" in message, message
    before = window.controller.time
    window.runs.step_event()
    assert window.controller.time >= before
    run_for(qasync_loop, 0.3)
    assert window.animator.tokens_started > 0, "a step's messages are drawn even while paused"


def test_follow_a_message_runs_until_its_journey_ends_then_shows_it(window: MainWindow, qasync_loop) -> None:  # type: ignore[no-untyped-def]
    load(window, fates())
    window.set_speed(5.0)
    window.runs.follow_message()
    for _ in range(50):
        run_for(qasync_loop, 0.1)
        if window.runs.following is None:
            break
    assert window.runs.following is None and not window.controller.running
    assert not window.scene.tokens.tokens or all(
        t.start + t.duration <= window.animator.clock for t in window.scene.tokens.tokens if t.msg_id == 1
    ), "the followed message's tokens play to the end of their last hop before it is let go"
    html = window.messages.trace_view.toPlainText()
    assert "published it to exchange orders" in html
    assert "gone: every copy has met its end" in html
    assert window.messages_dock.isVisible()


def test_a_queue_lists_its_messages_and_a_row_shows_its_trace(window: MainWindow, qasync_loop) -> None:  # type: ignore[no-untyped-def]
    topology = fates()
    topology.consumers = []
    topology.queues[0].arguments = {}
    load(window, topology)
    window.controller.run()
    run_for(qasync_loop, 1.0)
    window.scene.select_only(["queue:/:payments"])
    window.messages_dock.raise_()
    window.messages.refresh(force=True)
    rows = window.messages.rows
    assert len(rows) >= 3 and [r.position for r in rows] == list(range(1, len(rows) + 1))
    assert window.messages.table.item(0, 1).text() == "order.created"
    window.messages.table.selectRow(1)
    text = window.messages.trace_view.toPlainText()
    assert f"Message #{rows[1].msg_id}" in text
    assert "'order.created' → payments" in text


def menu_action(window: MainWindow, *path: str):  # type: ignore[no-untyped-def]
    menu = window.context_menu()
    for name in path[:-1]:
        menu = next(a.menu() for a in menu.actions() if a.menu() is not None and a.text() == name)
    return next(a for a in menu.actions() if a.text() == path[-1])


def test_faults_from_the_context_menu_act_on_the_run_and_can_be_recorded(window: MainWindow, qasync_loop) -> None:  # type: ignore[no-untyped-def]
    topology = fates()
    topology.consumers = [Consumer("payer", "payments", prefetch=3, work_ms=2000)]
    topology.queues[0].arguments = {}
    load(window, topology)
    window.controller.run()
    run_for(qasync_loop, 1.5)
    sim = window.controller.sim
    window.scene.select_only(["consumer:/:payer"])
    menu_action(window, "Kill Consumer").trigger()
    payments = sim.broker.get_vhost("/").queues["payments"]
    assert payments.unacked == 0 and sim.consumers["consumer:/:payer"].killed
    window.on_frame()
    run_for(qasync_loop, 0.3)
    assert window.scene.nodes["consumer:/:payer"].status.startswith("killed")
    assert menu_action(window, "Restart Consumer")  # the menu now offers the way back

    window.faults.record.setChecked(True)
    menu_action(window, "Restart Consumer").trigger()
    assert not sim.consumers["consumer:/:payer"].killed
    assert [e.action for e in window.document.topology.timeline] == ["restart"]
    assert window.timeline.steps.count() == 1
    assert [text for _, text in sim.fault_log] == ["kill consumer payer", "restart consumer payer"]
    run_for(qasync_loop, 0.5)
    assert len(sim.fault_log) == 2, "a recorded fault is not played a second time by the timeline"
    window.document.undo_stack.undo()
    assert window.document.topology.timeline == []

    binding = next(
        e.edge_id for e in window.scene.edges if e.edge_id.startswith("binding:") and "payments" in e.edge_id
    )
    window.scene.select_only([binding])
    menu_action(window, "Unbind While Running").trigger()
    window.on_frame()
    run_for(qasync_loop, 0.3)
    assert window.scene.edge_by_id[binding].removed
    enqueued = payments.stats.enqueued
    run_for(qasync_loop, 1.0)
    assert payments.stats.enqueued == enqueued


def test_a_producers_faults_play_once_when_recorded(window: MainWindow, qasync_loop) -> None:  # type: ignore[no-untyped-def]
    load(window, fates())
    window.controller.run()
    run_for(qasync_loop, 0.5)
    sim = window.controller.sim
    shop = sim.producers["producer:/:shop"]
    window.scene.select_only(["producer:/:shop"])
    window.faults.record.setChecked(True)
    before = shop.published
    menu_action(window, "Burst", "100 messages at once").trigger()
    run_for(qasync_loop, 0.5)
    assert 100 <= shop.published - before < 130, "the burst is played once, not again from the timeline"
    menu_action(window, "Rate", "10× (200 msg/s)").trigger()
    menu_action(window, "Rate", "Normal (20 msg/s)").trigger()
    assert shop.model.rate == 20 and [e.action for e in window.document.topology.timeline] == ["burst", "rate", "rate"]
    assert window.document.topology.timeline[-1].rate == 20


def test_the_export_button_writes_every_curve_shown(
    window: MainWindow, qasync_loop, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    load(window, fates())
    window.controller.run()
    run_for(qasync_loop, 2.0)
    target = tmp_path / "whole.csv"
    monkeypatch.setattr("gui.rates_panel.QFileDialog.getSaveFileName", lambda *a, **k: (str(target), "CSV (*.csv)"))
    window.rates.csv_button.click()
    header = next(csv.reader(target.read_text().splitlines()))
    assert "publish (msg/s)" in header
    assert {"depth payments (messages)", "depth audit (messages)", "depth parked (messages)"} <= set(header)


def test_a_timeline_in_the_file_plays_with_markers_on_the_plots(window: MainWindow, qasync_loop) -> None:  # type: ignore[no-untyped-def]
    from engine.model import TimelineEvent

    topology = fates()
    topology.timeline = [
        TimelineEvent(at=0.5, action="burst", node="shop", count=50),
        TimelineEvent(at=1.0, action="kill", node="payer"),
    ]
    load(window, topology)
    assert window.timeline.steps.count() == 2
    window.set_speed(2.0)
    window.controller.run()
    run_for(qasync_loop, 1.5)
    sim = window.controller.sim
    assert [text for _, text in sim.fault_log] == ["burst of 50 messages from shop", "kill consumer payer"]
    window.rates.redraw()
    assert len(window.rates.rates_chart.markers) == 2
    assert window.timeline.played.count() == 2


def test_restarting_the_broker_loses_transient_messages_and_says_so(window: MainWindow, qasync_loop) -> None:  # type: ignore[no-untyped-def]
    topology = fates()
    topology.consumers = []
    topology.queues = [Queue("payments")]
    topology.bindings = [Binding("orders", "payments", routing_key="order.created")]
    load(window, topology)
    window.controller.run()
    run_for(qasync_loop, 1.0)
    payments = window.controller.sim.broker.get_vhost("/").queues["payments"]
    waiting = payments.depth
    assert waiting > 0
    window.faults.restart_broker.trigger()
    assert f"{waiting} message(s) lost" in window.statusBar().currentMessage()
    assert payments.depth == 0 and payments.stats.lost == waiting  # the producers' messages are transient


def test_faults_older_than_the_last_minute_come_back_on_the_plots_shown_for_the_whole_run(
    window: MainWindow, qasync_loop
) -> None:  # type: ignore[no-untyped-def]
    import math

    from engine.model import TimelineEvent

    topology = fates()
    topology.timeline = [TimelineEvent(at=0.5, action="burst", node="shop", count=5)]
    load(window, topology)
    window.set_speed(math.inf)
    window.controller.run()
    wait_until = 0
    while window.controller.sim.now < 90 and wait_until < 100:
        run_for(qasync_loop, 0.1)
        wait_until += 1
    window.controller.pause()
    rates = window.rates
    rates.redraw()
    assert rates.rates_chart.markers == []  # a minute ago and more: out of the last minute's view
    whole = next(i for i in range(rates.window_box.count()) if rates.window_box.itemData(i) is None)
    rates.window_box.setCurrentIndex(whole)
    assert len(rates.rates_chart.markers) == 1
