"""Simulation > Run on RabbitMQ: the open topology's producers and consumers, run on a real broker.

The topology's exchanges, queues and bindings (and policies, through the management API) are
declared on the broker; its producers and consumers connect there as pika clients named
``queuecraft NAME`` and behave as configured; the canvas and the graphs show what those
clients measure, as they show a simulation. Stopping closes the clients and, unless asked
not to, removes exactly what was declared. The built-in simulation waits, paused, meanwhile.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import logging
import urllib.parse
from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from engine.deploy import DeployReport, deploy, undeploy, without_password
from engine.model import Topology
from engine.remote import RemoteRun

if TYPE_CHECKING:
    from .main_window import MainWindow

log = logging.getLogger("queuecraft.gui")
DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"


def storable_url(url: str) -> str:
    """A broker's (or its management API's) URL as the settings keep it: without its password,
    unless that is RabbitMQ's default guest (which only works from this machine anyway)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.password is None or parsed.password == "guest" or "@" not in parsed.netloc:
        return url
    host = parsed.netloc.rsplit("@", 1)[1]
    return parsed._replace(netloc=f"{parsed.username}@{host}").geturl()


class RunOnRabbitDialog(QDialog):
    """Where to run: the broker's AMQP URL, its management API, and whether to clean up after."""

    def __init__(self, url: str, management: str, remove_after: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Run on RabbitMQ")
        self.url = QLineEdit(url)
        self.url.setMinimumWidth(380)
        self.url.setToolTip("amqp://user:password@host:5672/vhost (%2F is the vhost '/')")
        self.management = QLineEdit(management)
        self.management.setPlaceholderText("http://HOST:15672 (for policies; optional)")
        self.remove_after = QCheckBox("Remove what was declared when the run stops")
        self.remove_after.setChecked(remove_after)
        about = QLabel(
            "The topology's exchanges, queues and bindings are declared on this broker, and its "
            "producers and consumers connect to it as real clients named 'queuecraft NAME'. "
            "The graphs show what those clients measure."
        )
        about.setWordWrap(True)
        self.problem = QLabel()
        self.problem.setStyleSheet("color: #c62828;")
        self.problem.setWordWrap(True)
        self.problem.hide()
        form = QFormLayout()
        form.addRow("AMQP URL", self.url)
        form.addRow("Management API", self.management)
        form.addRow("", self.remove_after)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Run")
        buttons.accepted.connect(self._check)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(about)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(buttons)

    def _check(self) -> None:
        url = self.url.text().strip()
        if not url.startswith(("amqp://", "amqps://")):
            self.problem.setText("The URL must start with amqp:// or amqps://, e.g. " + DEFAULT_URL)
            self.problem.show()
            return
        parsed = urllib.parse.urlparse(url)
        if parsed.username is not None and parsed.password is None:
            self.problem.setText(
                f"The URL names user '{parsed.username}' without a password (passwords are not kept between "
                "sessions): amqp://USER:PASSWORD@HOST:5672/VHOST"
            )
            self.problem.show()
            return
        management = self.management.text().strip()
        if management and not management.startswith(("http://", "https://")):
            self.problem.setText("The management API is an http:// or https:// address, e.g. http://localhost:15672")
            self.problem.show()
            return
        self.accept()


class RabbitRun:
    def __init__(self, window: MainWindow) -> None:
        self.window = window
        settings = window.settings
        self.url = str(settings.value("rabbitmq_url", DEFAULT_URL))
        self.management = str(settings.value("rabbitmq_management", ""))
        self.remove_after = bool(settings.value("rabbitmq_remove_after", True, type=bool))
        self.run: RemoteRun | None = None
        self.state = "idle"  # idle, starting, running, stopping
        self.declared: DeployReport | None = None
        self.topology: Topology | None = None
        self.start_action = window.make_action(
            "Run on Rabbit&MQ…",
            self.ask,
            tip="Declare this topology on a real RabbitMQ and run its producers and consumers there as clients",
        )
        self.stop_action = window.make_action(
            "Stop the RabbitMQ Run", self.stop, tip="Close the clients and remove what was declared"
        )
        self.stop_action.setIconText("Stop RabbitMQ Run")
        self.stop_action.setVisible(False)
        self.status = QLabel()
        self.status.hide()
        self._task: asyncio.Future[None] | None = None
        # While starting: the run being started, and the declaring, on a thread of its own.
        self._starting: RemoteRun | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="deploy")
        self._deploying: concurrent.futures.Future[DeployReport] | None = None
        self._abandoned = False

    @property
    def active(self) -> bool:
        """The canvas and the graphs show the RabbitMQ run (it is running, or ending)."""
        return self.run is not None

    def ask(self) -> None:
        dialog = RunOnRabbitDialog(self.url, self.management, self.remove_after, self.window)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        self.url = dialog.url.text().strip()
        self.management = dialog.management.text().strip()
        self.remove_after = dialog.remove_after.isChecked()
        settings = self.window.settings
        settings.setValue("rabbitmq_url", storable_url(self.url))
        settings.setValue("rabbitmq_management", storable_url(self.management))
        settings.setValue("rabbitmq_remove_after", self.remove_after)
        self.start()

    # -- starting and stopping ----------------------------------------------------------------------

    def start(self) -> None:
        if self.state != "idle":
            return
        self.window.controller.pause()
        self.state = "starting"
        self._abandoned = False
        self._deploying = None
        self.topology = copy.deepcopy(self.window.document.topology)
        self._show_state(f"Connecting to {without_password(self.url)}…")
        self._task = asyncio.ensure_future(self._start(self.topology))

    async def _start(self, topology: Topology) -> None:
        loop = asyncio.get_running_loop()
        url, management = self.url, self.management or None
        run: RemoteRun | None = None
        try:
            run = self._starting = RemoteRun(topology, url)
            self._deploying = self._executor.submit(deploy, topology, url, management, replace_policies=False)
            self.declared = await asyncio.wrap_future(self._deploying, loop=loop)
            await run.start()
        except asyncio.CancelledError:
            # Another document, or the window closing, while it started: what it did is undone.
            if not self._abandoned:
                await self._abandon(run)
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the broker or the network said, shown as said
            if run is not None:
                for client in run.clients:  # those that did connect go, before anything is removed
                    client.close()
            self.state = "idle"
            why = str(exc) or type(exc).__name__
            self._show_state("")
            self.window.statusBar().showMessage(f"Could not run on {without_password(url)}: {why}", 20000)
            if self.declared is not None and self.remove_after:
                await self._remove(self.declared)
            self.declared = None
            return
        finally:
            self._starting = None
        self.run = run
        self.state = "running"
        self.window.watch(run)
        self._show_state("")
        not_applied = self.declared.not_applied if self.declared is not None else []
        extra = f" ({len(not_applied)} policies not applied: see the log)" if not_applied else ""
        for line in not_applied:
            log.warning("%s", line)
        self.window.statusBar().showMessage(f"Running on RabbitMQ at {without_password(url)}{extra}", 10000)

    async def _abandon(self, run: RemoteRun | None) -> None:
        """A start cut short: its clients closed, and (unless the person said to keep it) what
        it declared removed, once the declaring has finished."""
        self._abandoned = True
        if run is not None:
            for client in run.clients:
                client.close()
        declared = self.declared
        if declared is None and self._deploying is not None:
            try:
                declared = await asyncio.wrap_future(self._deploying)
            except Exception:  # noqa: BLE001 - it failed: it removed what it had declared itself
                declared = None
        if declared is not None and self.remove_after:
            await asyncio.get_running_loop().run_in_executor(None, lambda: self._remove_now(declared))
        self.declared = None
        self.state = "idle"
        self._show_state("")

    def _abandon_now(self) -> None:
        """The same, blocking: the window is closing and the loop will not run again."""
        self._abandoned = True
        if self._starting is not None:
            for client in self._starting.clients:
                client.close()
        declared = self.declared
        if declared is None and self._deploying is not None:
            try:
                declared = self._deploying.result(timeout=60)
            except Exception:  # noqa: BLE001
                declared = None
        if declared is not None and self.remove_after:
            self._remove_now(declared)
        self.declared = None
        self.state = "idle"

    def _remove_now(self, declared: DeployReport) -> None:
        """Undo what a run declared, blocking; a failure is logged, not raised (nobody is left to tell)."""
        try:
            undeploy(declared, self.url, self.management or None)
        except Exception as exc:  # noqa: BLE001 - the window is closing, or the start was cut short
            log.warning("removing the topology from %s failed: %s", without_password(self.url), exc)

    def stop(self) -> None:
        if self.state == "starting" and self._task is not None:
            self._task.cancel()  # it undoes what it did
            self._show_state("")
            return
        if self.state != "running" or self.run is None:
            return
        self.state = "stopping"
        self._show_state("Stopping the RabbitMQ run…")
        self._task = asyncio.ensure_future(self._stop(self.run))

    async def _stop(self, run: RemoteRun) -> None:
        await run.stop()
        removed = ""
        if self.remove_after and self.declared is not None:
            removed = await self._remove(self.declared)
        self.run = None
        self.state = "idle"
        self.declared = None
        self.window.watch(self.window.controller.sim)
        self._show_state("")
        published = sum(p.published for p in run.producers.values())
        acked = sum(c.acked for c in run.consumers.values())
        self.window.statusBar().showMessage(
            f"RabbitMQ run over ({run.now:.1f} s, {published:,} published, {acked:,} acked){removed}", 20000
        )

    async def _remove(self, declared: DeployReport) -> str:
        url, management = self.url, self.management or None
        try:
            report = await asyncio.get_running_loop().run_in_executor(None, lambda: undeploy(declared, url, management))
        except Exception as exc:  # noqa: BLE001
            return f"; removing the topology failed: {exc}"
        removed = f"; the {len(report.queues) + len(report.exchanges)} exchanges and queues it declared removed"
        kept = f", {len(report.already_there)} that were there before kept" if report.already_there else ""
        trouble = f"; {'; '.join(report.not_applied)}" if report.not_applied else ""
        return removed + kept + trouble

    def close(self) -> None:
        """The window closes mid-run: the clients go, and what was declared is removed (blocking, once)."""
        if self.state == "starting":
            self._abandon_now()
            if self._task is not None:
                self._task.cancel()
            return
        run, declared = self.run, self.declared
        if run is None:
            return
        for client in run.clients:
            client.close()
        self.run = None
        if self.remove_after and declared is not None:
            self._remove_now(declared)

    # -- what the window shows ------------------------------------------------------------------------

    def _show_state(self, text: str) -> None:
        busy = self.state != "idle"
        self.start_action.setEnabled(not busy)
        self.stop_action.setVisible(busy)
        self.stop_action.setEnabled(self.state == "running")
        self.window.update_run_actions()
        if text:
            self.status.setText(f"  {text}  ")
            self.status.show()
        elif self.run is not None:
            self.on_frame()
            self.status.show()
        else:
            self.status.hide()

    def on_frame(self) -> None:
        run = self.run
        if run is not None:
            parsed = without_password(self.url).split("@")[-1]
            self.status.setText(f"  On RabbitMQ {parsed}  ")
