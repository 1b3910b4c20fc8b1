"""Score partitions on the workers of a Dask cluster, which report to the flow's Prefect server.

How a worker learns where Prefect is: prefect-dask's client serialises the flow process's
Prefect context with every task it submits (`prefect.context.serialize_context`: all of its
Prefect settings, PREFECT_API_URL among them), and the worker's task engine enters that
context (`hydrated_context`) before it opens a client. A task run on a worker therefore uses
the flow's PREFECT_API_URL whatever the worker's own environment says, and where the flow has
none (the CLI's runs against Prefect's temporary in-process server) each worker thread starts
a temporary server of its own: their ports race, task runs go to servers nobody reads, and the
servers outlive the workers. So:

- the flow process refuses task_runner=dask without PREFECT_API_URL, before a partition is
  submitted;
- tasks are submitted with Prefect's ephemeral mode forbidden in the settings they carry: a
  worker fails the task rather than start a server, should a URL ever be missing;
- every worker connected when the run starts must reach PREFECT_API_URL (a loopback URL
  does not travel to other hosts) and import the service's code.

A Dask WorkerPlugin is not the place for these: Prefect reads a worker's environment once, at
import, and the context each task carries overrides it anyway.
"""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self

import distributed
from prefect.context import SettingsContext, get_settings_context
from prefect.logging import get_logger
from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED
from prefect_dask import DaskTaskRunner

from service.workers import prefect_api_problem

NO_LASTING_PREFECT_SERVER = (
    "task_runner=dask needs a lasting Prefect server that the Dask workers reach: run "
    "`prefect server start --host <an address the workers reach>` (or `propensity serve`, "
    "whose server listens on 127.0.0.1, for workers on this host) and set "
    "PREFECT_API_URL=http://<that address>:4200/api; without it flows run on Prefect's "
    "temporary server inside this process, which workers elsewhere cannot use, and every "
    "worker would start one of its own"
)


def lasting_prefect_api_url() -> str:
    """The flow's PREFECT_API_URL; fails with one line when there is none."""
    api_url = PREFECT_API_URL.value()
    if not api_url:
        raise ValueError(NO_LASTING_PREFECT_SERVER)
    return api_url


class WorkersDaskRunner(DaskTaskRunner):
    """prefect-dask's runner for workers that report to the flow's lasting Prefect server."""

    def __enter__(self) -> Self:
        self.api_url = lasting_prefect_api_url()
        current = get_settings_context()
        # Computed once per run: deriving Prefect settings takes tens of milliseconds.
        self.workers_settings = current.settings.copy_with_update(
            updates={PREFECT_SERVER_EPHEMERAL_ENABLED: False}
        )
        self.profile = current.profile
        super().__enter__()
        try:
            # Connects to the cluster (or starts the local one), as the first submission would.
            require_workers_ready(self.client, self.api_url)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def submit(self, task, parameters, wait_for=None, dependencies=None):
        with self.settings_sent_to_workers():
            return super().submit(task, parameters, wait_for, dependencies)

    @contextmanager
    def settings_sent_to_workers(self) -> Iterator[None]:
        """The flow's Prefect settings, ephemeral mode forbidden, as the Prefect context that
        prefect-dask serialises into each task it submits."""
        with SettingsContext(profile=self.profile, settings=self.workers_settings):
            yield


def require_workers_ready(client: distributed.Client, api_url: str) -> None:
    """Fail with one line unless every worker connected now imports the service's code and
    reaches the flow's Prefect API; workers that join later are not asked."""
    try:
        problems: dict[str, Any] = client.run(prefect_api_problem, api_url)
    except (ImportError, AttributeError) as error:
        raise ValueError(
            f"the Dask workers cannot load the service's code ({error}): install propensity, "
            "the same version as here, in the workers' environment"
        ) from error
    if not problems:
        get_logger("propensity").warning(
            "no Dask worker is connected to the scheduler yet: partitions wait for one"
        )
    unreachable = {worker: problem for worker, problem in problems.items() if problem}
    if unreachable:
        named = "; ".join(f"{worker}: {problem}" for worker, problem in sorted(unreachable.items()))
        raise ValueError(
            f"Dask worker(s) cannot reach PREFECT_API_URL {api_url} ({named}): start the Prefect "
            "server on an address the workers reach and set PREFECT_API_URL to it"
        )
