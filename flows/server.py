"""A local Prefect server for `propensity serve`: schedules do not run on the ephemeral one."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from prefect.settings import PREFECT_API_URL, temporary_settings

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


@contextmanager
def local_prefect_server(log_path: Path = Path("prefect-server.log")) -> Iterator[str]:
    """Start `prefect server start` in the background for the duration of the block."""
    api_url = f"http://{HOST}:{PORT}/api"
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
