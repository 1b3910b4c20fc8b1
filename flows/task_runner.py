"""The task runner of the score flow, chosen from the settings when a flow run starts.

A deployment's entrypoint (`flows/score.py:score`, and the score subflow of
`retrain-and-score`) is the flow object itself, imported by a work-pool worker or by
`propensity serve`: a runner fixed when the flow was defined would ignore
PROPENSITY_TASK_RUNNER there. So the flow's runner takes the settings the run takes
(`current_settings`) as each run starts, the same for the CLI and for scheduled runs.

On a Dask worker the runner is entered again for every task (Prefect rebuilds the flow run's
context there) but never used: nothing on a worker submits tasks. It must not read the
worker's environment there: a worker needs no PROPENSITY_* settings, its tasks get theirs as
parameters.
"""

import sys
from typing import Any, Self

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from service.partitions import PARTITIONS_AT_ONCE
from service.settings import Settings, current_settings


def configured_runner(settings: Settings) -> TaskRunner:
    """A Dask runner (on the cluster at PROPENSITY_DASK_ADDRESS, else a local one) or a
    thread pool in this process."""
    if settings.task_runner == "dask":
        # Dask loads only for runs that ask for it.
        from flows.dask_workers import WorkersDaskRunner

        if settings.dask_address:
            return WorkersDaskRunner(address=settings.dask_address)
        return WorkersDaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 1})
    return partition_threads()


def require_runner_prerequisites(settings: Settings) -> None:
    """Fail with one line, before a flow starts, where the configured runner cannot work:
    task_runner=dask without a lasting Prefect server (PREFECT_API_URL)."""
    if settings.task_runner == "dask":
        from flows.dask_workers import lasting_prefect_api_url

        lasting_prefect_api_url()


def on_dask_worker() -> bool:
    """Whether this thread runs a task on a Dask worker (never so where Dask is not loaded)."""
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return False
    try:
        distributed.get_worker()
    except ValueError:
        return False
    return True


def partition_threads() -> ThreadPoolTaskRunner:
    """A thread pool in this process, PARTITIONS_AT_ONCE wide."""
    # Prefect's default pool starts a thread per partition; every thread that allocates keeps
    # a malloc arena of its own, so peak memory grew with the number of partitions.
    return ThreadPoolTaskRunner(max_workers=PARTITIONS_AT_ONCE)


class SettingsTaskRunner(TaskRunner):
    """Hands a flow run's tasks to the runner `configured_runner` picks as the run starts."""

    def __init__(self) -> None:
        super().__init__()
        self.runner: TaskRunner | None = None

    def duplicate(self) -> Self:
        return type(self)()

    def __enter__(self) -> Self:
        super().__enter__()
        runner = partition_threads() if on_dask_worker() else configured_runner(current_settings())
        self.runner = runner.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        runner, self.runner = self.runner, None
        try:
            runner.__exit__(*exc_info)
        finally:
            super().__exit__(*exc_info)

    def submit(self, task, parameters, wait_for=None, dependencies=None):
        return self.runner.submit(task, parameters, wait_for, dependencies)
