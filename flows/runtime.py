"""How flow runs behave in this process: Prefect's flow-run heartbeats and the garbage
collector during scoring."""

import gc
from collections.abc import Iterator
from contextlib import contextmanager

from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings


def without_flow_heartbeats():
    """Flow runs inside this block send no heartbeats (an environment variable cannot say
    None). Stopping the heartbeat thread adds up to a second to the end of every flow run:
    it sleeps in 1 s steps."""
    return temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})


@contextmanager
def local_flow_runs() -> Iterator[None]:
    """Flows run in this process without heartbeats when no lasting Prefect server is set.

    Heartbeats let a server mark a run whose process died as crashed. Prefect's ephemeral
    server stops with this process, so none would ever be read.
    """
    if PREFECT_API_URL.value():
        yield
        return
    with without_flow_heartbeats():
        yield


@contextmanager
def collections_skip_what_is_alive() -> Iterator[None]:
    """Inside the block the garbage collector leaves alone what was alive at its start (the
    libraries, a loaded model): a full collection walks all of it while holding the GIL that
    every partition thread waits for. Afterwards they are collected as usual again, so
    nothing that dies later (an evicted model) is kept for good."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
