"""Scoring on real Dask workers: a `dask scheduler` and `dask worker` processes started by the
test, as a new user starts them. The workers load the champion once however many partitions
ask at once, report their task runs to the flow's Prefect server and never start one of their
own, need no PROPENSITY_* settings, and leave no process behind; a worker lost mid-run
leaves the published scores whole. Without a lasting Prefect server the flow refuses Dask
before a score run opens."""

import contextvars
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import psutil
import pytest
from distributed import Client, LocalCluster
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import Engine, select, text

import flows.dask_workers
import service.partitions
from db.models import Customer, PropensityScoreStaging, ScoreRun
from flows.dask_workers import require_workers_ready
from flows.score import score
from service.partitions import cached_model, unload_models
from service.results import ScoreSummary
from service.settings import current_settings

# Every process the test cluster starts, and whatever those start, carries this variable.
CLUSTER_MARK = "TEST_DASK_CLUSTER_MARK"
START_TIMEOUT_S, RUN_TIMEOUT_S = 180, 300


# --- the champion, loaded by many partitions at once ----------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("kind", ["gbm", "logistic"])
def test_partitions_asking_at_once_load_the_champion_once(make_champion, kind, monkeypatch):
    """Two threads in skops' loader at once can fail in ast.literal_eval (a CPython bug):
    the threads of a Dask worker must wait for one load."""
    version_id = make_champion(kind)
    databases = current_settings().databases()
    loads = []

    def counted_load(version, signing_key):
        loads.append(threading.get_ident())
        return real_load(version, signing_key)

    real_load = service.partitions.load_model
    monkeypatch.setattr(service.partitions, "load_model", counted_load)
    unload_models()
    threads = 8
    start_together = threading.Barrier(threads)

    def load():
        start_together.wait()
        return cached_model(databases, version_id)

    try:
        with ThreadPoolExecutor(threads) as pool:
            loaded = [future.result() for future in [pool.submit(load) for _ in range(threads)]]
    finally:
        unload_models()
    assert len(loads) == 1
    assert all(model is loaded[0] for model in loaded)


# --- without a lasting Prefect server --------------------------------------------------------

NEEDS_A_LASTING_SERVER = r"^task_runner=dask needs a lasting Prefect server .* set PREFECT_API_URL="


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_dask_without_a_prefect_server_fails_before_a_score_run_opens(gbm_champion, configure):
    configure(task_runner="dask", dask_address="tcp://127.0.0.1:9")
    # As the CLI runs flows: on Prefect's temporary server (the harness's stands in for it).
    with (
        temporary_settings(restore_defaults={PREFECT_API_URL}),
        pytest.raises(ValueError, match=NEEDS_A_LASTING_SERVER),
    ):
        score()
    with gbm_champion.connect() as connection:
        assert connection.scalar(select(ScoreRun.id)) is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_cli_refuses_dask_without_a_prefect_server_in_one_line(engine, database_url, tmp_path):
    environment = os.environ | {
        "PROPENSITY_DATABASE_URL": database_url,
        "PROPENSITY_TASK_RUNNER": "dask",
        "PROPENSITY_DASK_ADDRESS": "tcp://scheduler.example:8786",
        "PREFECT_API_URL": "",
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
    }
    command = Path(sys.executable).with_name("propensity")
    result = subprocess.run(
        [str(command), "score"],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    [line] = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert re.match(NEEDS_A_LASTING_SERVER, line.removeprefix("error: "))
    assert "temporary server" not in result.stdout  # no Prefect server was started


@pytest.mark.usefixtures("prefect_harness")
def test_every_worker_must_reach_the_flows_prefect_server():
    with (
        LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        require_workers_ready(client, PREFECT_API_URL.value())
        (worker,) = cluster.scheduler_info["workers"]
        unreachable = "http://127.0.0.1:9/api"
        with pytest.raises(ValueError) as refused:
            require_workers_ready(client, unreachable)
    assert f"cannot reach PREFECT_API_URL {unreachable} ({worker}: ConnectError" in str(
        refused.value
    )


# --- a real cluster ------------------------------------------------------------------------


def prefect_servers(processes: list[psutil.Process]) -> list[str]:
    servers = []
    for process in processes:
        try:
            command = " ".join(process.cmdline())
        except psutil.Error:
            continue
        if "prefect.server.api.server" in command or "uvicorn" in command:
            servers.append(command)
    return servers


def marked_processes(mark: str) -> list[psutil.Process]:
    """Processes alive with this test cluster's mark in their environment."""
    found = []
    for process in psutil.process_iter():
        try:
            alive = process.is_running() and process.status() != psutil.STATUS_ZOMBIE
            if alive and process.environ().get(CLUSTER_MARK) == mark:
                found.append(process)
        except psutil.Error:
            continue
    return found


def stop(processes: list[subprocess.Popen], grace_s: float = 30) -> None:
    """SIGTERM, as an operator stops a worker; SIGKILL for any still alive after grace_s (a
    worker ends once the partitions it runs have)."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


@dataclass
class DaskCluster:
    """A `dask scheduler` and `dask worker` processes (no nanny: one process a worker), as
    subprocesses of the test in `folder`, their output in a log file each."""

    folder: Path
    environment: dict[str, str]
    scheduler: subprocess.Popen | None = None
    workers: list[subprocess.Popen] = field(default_factory=list)

    @property
    def mark(self) -> str:
        return self.environment[CLUSTER_MARK]

    @property
    def scheduler_file(self) -> Path:
        return self.folder / "scheduler.json"

    @property
    def address(self) -> str:
        return json.loads(self.scheduler_file.read_text())["address"]

    def start_scheduler(self, allowed_failures: int | None = None) -> str:
        """Its address. A task fails (KilledWorker) once `allowed_failures` + 1 workers died
        while running it; Dask's default allows 3."""
        config = {}
        if allowed_failures is not None:
            config = {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": str(allowed_failures)}
        options = ["--port", "0", "--no-dashboard"]
        self.scheduler = self.dask("scheduler", "scheduler", options, config)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.scheduler_file.exists():
            assert self.scheduler.poll() is None, "dask scheduler exited"
            assert time.monotonic() < deadline, "dask scheduler did not start"
            time.sleep(0.1)
        return self.address

    def start_workers(self, preloads: list[Path | None]) -> list[subprocess.Popen]:
        """New workers of two threads, one per entry of `preloads` (a `--preload` module or
        None), started side by side; returned once all have joined."""
        new = []
        for preload in preloads:
            name = f"worker-{len(self.workers) + len(new) + 1}"
            options = ["--nthreads", "2", "--no-nanny", "--no-dashboard", "--name", name]
            if preload is not None:
                options += ["--preload", str(preload)]
            new.append(self.dask("worker", name, options))
        self.workers += new
        alive = [worker for worker in self.workers if worker.poll() is None]
        with Client(self.address, timeout=START_TIMEOUT_S) as client:
            client.wait_for_workers(len(alive), timeout=START_TIMEOUT_S)
        return new

    def dask(
        self, role: str, name: str, options: list[str], config: dict[str, str] | None = None
    ) -> subprocess.Popen:
        """`dask <role>`, its output in <name>.log."""
        arguments = [*options, "--host", "127.0.0.1", "--scheduler-file", str(self.scheduler_file)]
        with (self.folder / f"{name}.log").open("ab") as output:
            return subprocess.Popen(
                [str(Path(sys.executable).with_name("dask")), role, *arguments],
                env=self.environment | (config or {}),
                cwd=self.folder,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def logs(self, workers: list[subprocess.Popen]) -> str:
        return "".join(
            (self.folder / f"worker-{self.workers.index(worker) + 1}.log").read_text()
            for worker in workers
        )

    def stop_workers(self) -> None:
        stop(self.workers)

    def stop(self, grace_s: float = 30) -> None:
        stop([*self.workers, *([self.scheduler] if self.scheduler else [])], grace_s)
        for process in marked_processes(self.mark):
            process.kill()


def worker_environment(folder: Path) -> dict[str, str]:
    """What a worker's host gives it: PREFECT_API_URL of the flow's Prefect server, and no
    PROPENSITY_* setting but an invalid one, which any read of the settings would fail on (a
    worker's tasks take theirs from the flow)."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PROPENSITY_", "PREFECT_", "TF_"))
    }
    return environment | {
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "PREFECT_HOME": str(folder / "prefect-home"),
        "PROPENSITY_PARTITION_SIZE": "0",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        CLUSTER_MARK: uuid.uuid4().hex,
    }


@pytest.fixture
def dask_cluster(prefect_harness, tmp_path) -> Iterator[DaskCluster]:
    """A cluster to start; everything it started is killed after the test."""
    folder = tmp_path / "dask"
    folder.mkdir()
    cluster = DaskCluster(folder, worker_environment(folder))
    try:
        yield cluster
    finally:
        cluster.stop(grace_s=10)


def with_timeout(run: Callable[[], ScoreSummary], timeout_s: float) -> ScoreSummary:
    """`run()` in this context, given up on after timeout_s (the cluster is killed after)."""
    context = contextvars.copy_context()
    pool = ThreadPoolExecutor(1)
    try:
        return pool.submit(context.run, run).result(timeout=timeout_s)
    finally:
        pool.shutdown(wait=False)


def active_customers(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        query = select(Customer.customer_id).where(Customer.is_active.is_(True))
        return sorted(connection.scalars(query))


def published_customers(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        query = text("SELECT customer_id FROM current_propensity_scores")
        return sorted(connection.scalars(query))


def staged_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return len(connection.execute(select(PropensityScoreStaging.customer_id)).all())


def workers_children(cluster: DaskCluster) -> list[psutil.Process]:
    children = []
    for worker in cluster.workers:
        if worker.poll() is None:
            children += psutil.Process(worker.pid).children(recursive=True)
    return children


def flow_run_of(engine: Engine, score_run_id: int) -> str:
    with engine.connect() as connection:
        status, flow_run_id = connection.execute(
            select(ScoreRun.status, ScoreRun.flow_run_id).where(ScoreRun.id == score_run_id)
        ).one()
    assert status == "succeeded"
    return flow_run_id


def task_runs_on_the_prefect_server(flow_run_id: str, timeout_s: float = 30) -> set[str]:
    """The tasks of the flow run's task runs on the flow's Prefect server, once all of them
    completed (the server records task runs from events, a moment after they happen)."""
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            task_runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)]))
            )
            done = task_runs and all(run.state and run.state.is_completed() for run in task_runs)
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert done, [(run.name, run.state_name) for run in task_runs]
    return {run.name.rsplit("-", 1)[0] for run in task_runs}


# 400 customers, about four partitions: both workers' two threads take one beside the warm-up.
PARTITION_SIZE = 100


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_three_runs_on_fresh_workers_publish_every_active_customer_leaving_no_process(
    populated, make_champion, configure, dask_cluster
):
    make_champion("gbm")  # skops: the loader that failed on a worker's threads
    address = dask_cluster.start_scheduler()
    configure(task_runner="dask", dask_address=address, partition_size=PARTITION_SIZE)
    test_process = psutil.Process()
    children_before = set(test_process.children(recursive=True))
    expected = active_customers(populated)

    flow_runs = []
    for _ in range(3):
        workers = dask_cluster.start_workers([None, None])
        summary = with_timeout(score, RUN_TIMEOUT_S)
        assert summary.n_scored == len(expected)
        assert published_customers(populated) == expected
        assert staged_rows(populated) == 0
        assert prefect_servers(workers_children(dask_cluster)) == []
        dask_cluster.stop_workers()
        assert "Task run 'score_partition-" in dask_cluster.logs(workers)
        flow_runs.append(flow_run_of(populated, summary.score_run_id))

    # A rerun for the same cutoff and model replaces the earlier run: only the flow runs stay.
    for flow_run_id in flow_runs:
        assert task_runs_on_the_prefect_server(flow_run_id) >= {"warm_up_model", "score_partition"}
    dask_cluster.stop()
    assert marked_processes(dask_cluster.mark) == []
    assert set(test_process.children(recursive=True)) <= children_before


# A `dask worker --preload` module: the worker dies as soon as a partition of its has staged
# its scores (committed), before it reports them, as a host lost mid-run; it leaves a note
# of the rows it staged.
DIES_AFTER_STAGING = """
import os
import re
import signal
from pathlib import Path

import service.partitions


def die(_model, _features, scores):
    Path("died-after-staging").write_text(str(len(scores)))
    os.kill(os.getpid(), signal.SIGKILL)


# Called right after the partition's staging transaction commits.
service.partitions.drift_counts = die
"""


def published_scores(engine: Engine) -> list[tuple]:
    with engine.connect() as connection:
        query = text(
            "SELECT customer_id, propensity, score_run_id FROM propensity_scores "
            "JOIN score_runs ON score_runs.id = score_run_id WHERE status = 'succeeded' "
            "ORDER BY customer_id"
        )
        return [tuple(row) for row in connection.execute(query)]


def run_statuses(engine: Engine) -> list[tuple[str, str | None]]:
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                select(ScoreRun.status, ScoreRun.error).order_by(ScoreRun.id)
            )
        ]


def score_losing_a_worker(
    cluster: DaskCluster, configure, allowed_failures: int | None
) -> ScoreSummary | Exception:
    """A score run on two workers of which one dies after staging a partition: its summary,
    or the error it failed with."""
    address = cluster.start_scheduler(allowed_failures)
    preload = cluster.folder / "dies_after_staging.py"
    preload.write_text(DIES_AFTER_STAGING)
    doomed, _healthy = cluster.start_workers([preload, None])
    configure(task_runner="dask", dask_address=address)
    try:
        outcome = with_timeout(score, RUN_TIMEOUT_S)
    except Exception as error:
        outcome = error
    assert doomed.wait(timeout=30) == -signal.SIGKILL
    assert int((cluster.folder / "died-after-staging").read_text()) > 0
    return outcome


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_partition_whose_worker_died_runs_again_on_another_replacing_what_it_staged(
    populated, make_champion, configure, dask_cluster
):
    """Dask reruns the tasks of a lost worker elsewhere (its default allows 3 losses)."""
    make_champion("gbm")
    configure(partition_size=PARTITION_SIZE)
    summary = score_losing_a_worker(dask_cluster, configure, allowed_failures=None)
    assert isinstance(summary, ScoreSummary), summary
    assert summary.n_scored == len(active_customers(populated))
    assert published_customers(populated) == active_customers(populated)
    assert staged_rows(populated) == 0


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_partition_that_kills_its_worker_fails_the_run_leaving_the_published_scores(
    populated, make_champion, configure, dask_cluster
):
    """A partition that kills every worker it lands on (one too big for their memory) ends
    as KilledWorker once Dask stops rerunning it: here at the first loss."""
    make_champion("gbm")
    configure(partition_size=PARTITION_SIZE)
    score()  # on threads, in this process: the scores published before
    before = published_scores(populated)
    error = score_losing_a_worker(dask_cluster, configure, allowed_failures=0)
    assert type(error).__name__ == "KilledWorker", error
    assert published_scores(populated) == before
    (_, _), (status, message) = run_statuses(populated)
    assert status == "failed"
    assert message.startswith("KilledWorker")
    assert staged_rows(populated) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_past_the_flows_check_a_worker_refuses_to_start_a_prefect_server(
    gbm_champion, configure, dask_cluster, monkeypatch
):
    """Defence in depth: the settings a task carries forbid Prefect's temporary server, so
    a flow without PREFECT_API_URL that got past its check fails its partitions instead of
    starting a server on every worker. The worker's own PREFECT_API_URL does not count: the
    flow's settings travel with each task."""
    address = dask_cluster.start_scheduler()
    dask_cluster.start_workers([None])
    api_url = PREFECT_API_URL.value()
    monkeypatch.setattr(flows.dask_workers, "lasting_prefect_api_url", lambda: api_url)
    configure(task_runner="dask", dask_address=address, partition_size=PARTITION_SIZE)
    with (
        temporary_settings(restore_defaults={PREFECT_API_URL}),
        pytest.raises(ValueError, match="No Prefect API URL provided"),
    ):
        with_timeout(score, RUN_TIMEOUT_S)
    assert prefect_servers(workers_children(dask_cluster)) == []
    [(status, _)] = run_statuses(gbm_champion)
    assert status == "failed"
