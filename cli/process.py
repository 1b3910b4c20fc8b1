"""How flow runs behave in the CLI's process: Prefect's flow-run heartbeats, where their log
lines go, and how a SIGTERM ends them. Only the commands that run flows import this (and
Prefect with it)."""

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager

# Imported for its side effect: Prefect configures its logging (the terminal handler that
# terminal_tracebacks adjusts) when prefect.main loads.
import prefect.main  # noqa: F401
from prefect.logging.handlers import PrefectConsoleHandler
from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

from cli.server import start_temporary_server_early
from service.settings import Settings, using_settings


@contextmanager
def flow_runs(settings: Settings, tracebacks: bool) -> Iterator[None]:
    """The flows a command runs inside this block run with `settings`, in this process,
    against the temporary Prefect server (started now, in the background) unless a lasting
    one is set; a SIGTERM unwinds them; their tracebacks reach the terminal only with
    `tracebacks` (a failed run's Prefect logs keep them either way)."""
    exit_on_sigterm()
    start_temporary_server_early()
    terminal_tracebacks(shown=tracebacks)
    with using_settings(settings), local_flow_runs():
        yield


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


def exit_on_sigterm() -> None:
    """SIGTERM ends this process as an exception would, unwinding it: a running score run is
    marked failed, leases are released, and the Prefect server this process started (stopped
    at exit) ends with it. The default action ends the process on the spot and leaves that
    server running. During a flow run Prefect's own handler comes first (the run is marked
    crashed), then hands the signal on to this one."""

    def leave(signum: int, _frame) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)


class WithoutTraceback(logging.Formatter):
    """Formats a record as `inner` does, leaving out its exception's traceback."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        # Every handler formats the same record: it gets its traceback back for the others.
        kept = record.exc_info, record.exc_text, record.stack_info
        record.exc_info = record.exc_text = record.stack_info = None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = kept


def terminal_tracebacks(shown: bool) -> None:
    """Whether Prefect's terminal handler prints the tracebacks of log records from now on.
    Its API handler sends them either way: a failed run's logs in Prefect keep them."""
    for handler in logging.getLogger().handlers:
        if not isinstance(handler, PrefectConsoleHandler):
            continue
        formatter = handler.formatter or logging.Formatter()
        if isinstance(formatter, WithoutTraceback):
            formatter = formatter.inner
        handler.setFormatter(formatter if shown else WithoutTraceback(formatter))
