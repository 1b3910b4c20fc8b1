"""Prefect servers the CLI starts: a lasting local one for `propensity serve` (schedules do
not run on the ephemeral one), and the temporary one of every other command, which must end
with the command however it ends."""

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
from prefect.server.api.server import SubprocessASGIServer, subprocess_server_logger
from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

HOST, PORT = "127.0.0.1", 4200


def wait_until_healthy(api_url: str, process: subprocess.Popen, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prefect server exited with code {process.returncode}")
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"prefect server did not answer at {api_url} within {timeout_s:.0f} s")


def server_log() -> Path:
    home = PREFECT_HOME.value()
    home.mkdir(parents=True, exist_ok=True)
    return home / "prefect-server.log"


@contextmanager
def local_prefect_server(log_path: Path | None = None) -> Iterator[str]:
    """Start `prefect server start` in the background for the duration of the block, its
    output appended to `log_path` (default: prefect-server.log in PREFECT_HOME, not the
    working directory, which may be a repository)."""
    api_url = f"http://{HOST}:{PORT}/api"
    log_path = log_path or server_log()
    prefect = Path(sys.executable).with_name("prefect")
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(prefect), "server", "start", "--host", HOST, "--port", str(PORT)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PREFECT_API_URL": ""},
            # Its own session: Ctrl+C reaches the runner first, which pauses the deployments
            # on the server before the server is stopped below.
            start_new_session=True,
        )
    try:
        wait_until_healthy(api_url, process)
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            yield api_url
    finally:
        process.terminate()
        process.wait(timeout=30)


# Runs in a process of its own: until its stdin closes, which happens when the command ends
# (exit, exception, SIGTERM or SIGKILL alike), then stops the server. A pidfd pins the
# server process, so a recycled process id is never signalled.
STOP_WHEN_STDIN_CLOSES = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
pid = int(sys.argv[1])
handle = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
sys.stdin.buffer.read()
try:
    if handle is None:
        os.kill(pid, signal.SIGTERM)
    else:
        signal.pidfd_send_signal(handle, signal.SIGTERM)
except ProcessLookupError:
    pass
"""


class TemporaryPrefectServer(SubprocessASGIServer):
    """Prefect's temporary server, stopped by a watchdog process when the command that started
    it ends (Prefect stops its own at exit, which SIGKILL - `kill -9`, the OOM killer - skips,
    leaving the server running forever), started early on a thread of its own and quietly."""

    _starting = threading.Lock()

    def start(self, timeout: int | None = None) -> None:
        # Prefect marks the server running before it answers: a second caller (the flow's
        # client, while the early start still waits) waits for the first start to finish.
        with self._starting, without_server_hint():
            super().start(timeout)

    def _run_uvicorn_command(self) -> subprocess.Popen:
        server = super()._run_uvicorn_command()
        # Only this process holds the pipe's write end: the kernel closes it at its end. Kept
        # on the server object so that the pipe stays open as long as this process lives.
        server.watchdog = subprocess.Popen(
            [sys.executable, "-I", "-c", STOP_WHEN_STDIN_CLOSES, str(server.pid)],
            stdin=subprocess.PIPE,
        )
        return server


@contextmanager
def without_server_hint() -> Iterator[None]:
    """Prefect logs where to read about dedicated servers each time it starts a temporary
    one: every command would print it."""
    level = subprocess_server_logger.level
    subprocess_server_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        subprocess_server_logger.setLevel(level)


def start_temporary_server_early() -> None:
    """When no lasting server is set, the temporary server Prefect starts for this process
    is a TemporaryPrefectServer: Prefect asks its port-keyed registry for the server of no
    port, which this registers (an existing entry, such as a test harness's server, is
    kept). It starts now, on a thread of its own: its seconds of start-up pass while the
    command loads its model and reads its data."""
    if PREFECT_API_URL.value():
        return
    server = TemporaryPrefectServer()
    if not isinstance(server, TemporaryPrefectServer):
        return

    def start() -> None:
        # A failed start is the flow client's to report: it starts the server again.
        with suppress(Exception):
            server.start()

    threading.Thread(target=start, name="prefect server", daemon=True).start()
