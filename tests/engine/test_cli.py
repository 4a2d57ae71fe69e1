"""`queuecraft run FILE --duration SECONDS [--speed] [--json]`: the headless run and its report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "topologies"


def test_json_report_lists_every_node_with_its_counters(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(EXAMPLES / "ecommerce.json"), "--duration", "60", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {p["name"] for p in report["producers"]} == {"web-shop", "mobile-app"}
    for producer in report["producers"]:
        assert {"name", "vhost", "published"} <= set(producer)
    for exchange in report["exchanges"]:
        assert {"name", "vhost", "routed", "unroutable"} <= set(exchange)
    for queue in report["queues"]:
        assert {"name", "vhost", "enqueued", "delivered", "acked", "depth"} <= set(queue)
        assert queue["enqueued"] == queue["depth"] + queue["unacked"] + queue["acked"]
    for consumer in report["consumers"]:
        assert {"name", "vhost", "delivered", "acked"} <= set(consumer)
        assert consumer["acked"] > 0
    assert report["time"] == 60.0
    published = sum(p["published"] for p in report["producers"])
    assert published == report["totals"]["routed"] + report["totals"]["unroutable"]


def test_table_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(EXAMPLES / "stock-ticker.json"), "--duration", "10"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Simulated 10.0 s: published")
    for heading in ("Producers", "Exchanges", "Queues", "Consumers"):
        assert f"\n{heading}\n" in out or out.startswith(heading)
    assert "tech-analyst" in out


def test_paced_run_takes_wall_time_at_the_given_speed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(EXAMPLES / "ride-hailing.json"), "--duration", "4", "--speed", "20", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["time"] == pytest.approx(4.0)
    assert sum(c["acked"] for c in report["consumers"]) > 0


def test_bad_file_is_reported_with_its_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"queues": [{"name": 5}]}')
    assert main([str(broken), "--duration", "1"]) == 2
    err = capsys.readouterr().err
    assert "broken.json: $.queues[0].name: expected a string, got 5" in err


def test_bad_speed_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([str(EXAMPLES / "ecommerce.json"), "--speed", "fast"])
    assert "expected 'max' or a speed factor" in capsys.readouterr().err


def test_odd_names_and_a_closed_pipe_do_not_break_the_report(tmp_path: Path) -> None:
    import subprocess
    import sys

    odd = tmp_path / "odd.json"
    odd.write_text('{"queues": [{"name": "\\ud800 lone surrogate"}, {"name": "ordinary"}]}')
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", str(odd), "--duration", "1"], capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert b"\\ud800 lone surrogate" in result.stdout
    shell = f"{sys.executable} -m engine.cli {EXAMPLES / 'ecommerce.json'} --duration 5 --json | head -c 10"
    result = subprocess.run(["sh", "-c", shell], capture_output=True, timeout=60)
    assert result.returncode == 0 and b"Traceback" not in result.stderr


def test_a_lesson_timeline_plays_headless_and_every_message_is_accounted_for(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([str(EXAMPLES / "lesson-failures.json"), "--duration", "90", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [f["time"] for f in report["faults"]] == [10.0, 20.0, 30.0, 45.0, 60.0, 75.0]
    assert report["faults"][-1]["what"].startswith("restart the broker")
    work = next(q for q in report["queues"] if q["name"] == "work")
    assert work["lost"] > 0  # transient messages waiting at the restart
    placed = (
        work["depth"]
        + work["unacked"]
        + work["acked"]
        + work["expired"]
        + work["dropped"]
        + work["rejected"]
        + work["purged"]
        + work["lost"]
    )
    assert work["enqueued"] == placed
    assert main([str(EXAMPLES / "lesson-failures.json"), "--duration", "90"]) == 0
    assert "Faults played" in capsys.readouterr().out
