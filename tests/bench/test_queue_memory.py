"""1,000,000 queued messages of 100 bytes: process memory. Target: under 400 MB.

Measured in a fresh interpreter so nothing else the tests loaded counts; the
reference is the same interpreter with the engine imported and no messages. The figure is the
resident set while the messages are queued (VmRSS): a peak (ru_maxrss) would carry over the
high-water mark of the pytest process the interpreter was forked from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import report

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """
import sys
from engine.broker import Broker
count = int(sys.argv[1])
broker = Broker()
broker.queue_declare("/", "backlog")
channel = broker.connect("producer").channel()
body = b"x" * 100
for i in range(count):
    channel.basic_publish("", "backlog", bytes(body))  # a body of its own per message, as off the wire
assert broker.lookup_queue("/", "backlog").depth == count
with open("/proc/self/status") as status:
    print(next(line.split()[1] for line in status if line.startswith("VmRSS:")))
"""


def peak_rss_mb(count: int) -> float:
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(count)], cwd=ROOT, capture_output=True, text=True, check=True, timeout=600
    )
    return int(result.stdout.strip()) / 1024


def test_a_million_queued_messages_fit_in_memory() -> None:
    baseline = peak_rss_mb(0)
    loaded = peak_rss_mb(1_000_000)
    report(
        "Memory for 1,000,000 queued messages of 100 bytes (resident set of the process)",
        [
            ("engine imported, no messages (reference)", f"{baseline:7.1f} MB"),
            (
                "1,000,000 messages queued",
                f"{loaded:7.1f} MB  ({(loaded - baseline) * 1024 * 1024 / 1e6:.0f} bytes per message)",
            ),
        ],
    )
