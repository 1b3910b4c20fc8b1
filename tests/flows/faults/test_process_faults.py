"""Processes that die or are told to stop, and scheduled runs that scale out: a `propensity
score` killed by SIGKILL or SIGTERM mid-run (real processes, killed by PID) publishes
nothing, leaves no staged rows and no child process behind, and the next run takes over its
lease within the lease's duration; the score deployment's entrypoint runs on Dask when the
settings say so."""

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pandas as pd
import psutil
import pytest
from distributed import Client, LocalCluster, get_task_stream
from prefect.settings import PREFECT_API_URL
from sqlalchemy import Engine, func, select, text, update

import flows.retrain
from cli.deployments import deployment_specs, entrypoint_flow
from db.engine import session_factory, transaction
from db.locks import LeaseLost, LockHeld, acquire_lock, release_lock
from db.models import ModelVersion, PropensityScoreStaging, ScoreRun, ServiceLock
from db.registry import current_champion
from db.timestamps import utc_now
from flows.retrain import promote_or_reject, retrain
from flows.score import score
from service.databases import Databases
from service.leases import exclusive, lease_duration
from service.registry import register
from service.results import ScoreSummary
from service.retraining import RetrainJob
from service.settings import Settings, current_settings

HEARTBEAT = timedelta(seconds=1)
LOG = logging.getLogger("propensity")
# A refused attempt (a flow run of its own) and the pause before the next.
ONE_ATTEMPT = timedelta(seconds=3)


def rows(engine: Engine, table) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(table))


def runs(engine: Engine) -> list[tuple[str, str | None]]:
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                select(ScoreRun.status, ScoreRun.error).order_by(ScoreRun.id)
            )
        ]


def current_scores(engine: Engine) -> pd.DataFrame:
    with engine.connect() as connection:
        scores = pd.read_sql(
            text("SELECT * FROM current_propensity_scores ORDER BY customer_id"), connection
        )
    return scores.drop(columns=["scored_at"])


@pytest.fixture
def score_command(champion, database_url, tmp_path) -> dict[str, str]:
    """The environment of `propensity score` on the `champion` database: partitions of ten
    customers (a run of about forty), a heartbeat of a second."""
    return os.environ | {
        "PROPENSITY_DATABASE_URL": database_url,
        "PROPENSITY_PARTITION_SIZE": "10",
        "PROPENSITY_LEASE_HEARTBEAT_SECONDS": str(HEARTBEAT.total_seconds()),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
    }


def start_score(environment: dict[str, str], folder: Path) -> subprocess.Popen:
    command = Path(sys.executable).with_name("propensity")
    return subprocess.Popen(
        [str(command), "score"],
        env=environment,
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for_staged_rows(engine: Engine, process: subprocess.Popen, timeout_s: float) -> None:
    """Until the run's first partition has staged its scores."""
    deadline = time.monotonic() + timeout_s
    while rows(engine, PropensityScoreStaging) == 0:
        assert process.poll() is None, f"propensity score ended first ({process.returncode})"
        assert time.monotonic() < deadline, "no partition staged its scores in time"
        time.sleep(0.02)


def score_once_the_lease_lapses(killed_at: float) -> tuple[ScoreSummary, float]:
    """Score until the killed run's lease no longer refuses it: the summary, and how long
    after the kill the successful attempt started."""
    while True:
        seconds_after_kill = time.monotonic() - killed_at
        try:
            return score(), seconds_after_kill
        except LockHeld:
            assert seconds_after_kill < 60, "the killed run's lease was never taken over"
            time.sleep(0.2)


def test_the_default_lease_lapses_within_two_minutes():
    default = timedelta(seconds=Settings(_env_file=None).lease_heartbeat_seconds)
    assert lease_duration(default) < timedelta(minutes=2)


def test_a_live_run_keeps_its_lease_however_long_it_runs(engine, database_url):
    sessions = session_factory(engine)
    heartbeat = timedelta(seconds=0.2)
    with exclusive("score", Databases(database_url, database_url), heartbeat, "a run", LOG):
        time.sleep(3 * lease_duration(heartbeat).total_seconds())
        with pytest.raises(LockHeld, match="another score is running"):
            acquire_lock(sessions, "score", "the next run", lease_duration(heartbeat))
    assert rows(engine, ServiceLock) == 0


def test_a_retrain_that_lost_its_lease_promotes_nothing(populated, trained_packages):
    """A retrain paused past its lease (a stalled host) while another took the lease over:
    its challenger stays a candidate and no champion appears."""
    job = RetrainJob.from_settings(current_settings())
    with transaction(populated) as session:
        version_id = register(session, trained_packages["gbm"]).id
    sessions = session_factory(populated)
    heartbeat = timedelta(seconds=0.2)
    with exclusive("retrain", job.databases, heartbeat, "a run", LOG) as lease:
        with sessions.begin() as session:
            session.execute(update(ServiceLock).values(expires_at=utc_now() - HEARTBEAT))
        acquire_lock(sessions, "retrain", "the next run", lease_duration(heartbeat))
        with pytest.raises(LeaseLost, match="the next run took it over"):
            promote_or_reject.fn(job, version_id, False, lease)
    with sessions() as session:
        assert session.get(ModelVersion, version_id).status == "candidate"
        assert current_champion(session) is None
    release_lock(sessions, "retrain", "the next run")


def take_over_once_held(sessions, job: str, holder: str, lease: timedelta) -> None:
    """As the next run would once the current holder of `job`'s lease stalls: wait until
    the lease is held, expire it by hand and take it over as `holder`. A heartbeat of the
    holder renewing it between the two is a refusal; then expire it again."""
    deadline = time.monotonic() + 120
    while True:
        assert time.monotonic() < deadline, f"the {job} lease was never taken over"
        with sessions.begin() as session:
            expired = session.execute(
                update(ServiceLock)
                .where(ServiceLock.name == job)
                .values(expires_at=utc_now() - HEARTBEAT)
            )
        if expired.rowcount == 0:  # not held yet
            time.sleep(0.02)
            continue
        try:
            acquire_lock(sessions, job, holder, lease)
            return
        except LockHeld:
            continue


def test_a_retrain_whose_lease_is_taken_over_mid_run_fails_and_promotes_nothing(
    populated, configure, monkeypatch
):
    """The real retrain flow, its lease renewed every 0.2 s, while the next run takes the
    lease over (as it would from a run stalled past its lease): the flow fails with
    LeaseLost, its challenger stays a candidate, no champion and no rejection are written,
    and the next run keeps the lease. Training waits until the takeover is done, so the
    takeover always falls mid-run, between acquiring the lease and promoting."""
    heartbeat = timedelta(seconds=0.2)
    configure(lease_heartbeat_seconds=heartbeat.total_seconds(), hybrid=False)
    sessions = session_factory(populated)
    taken_over, failures = threading.Event(), []

    def next_run() -> None:
        try:
            take_over_once_held(sessions, "retrain", "the next run", lease_duration(heartbeat))
            taken_over.set()
        except BaseException as error:
            failures.append(error)

    train = flows.retrain.train_packages

    def train_once_taken_over(*args, **kwargs):
        assert taken_over.wait(timeout=120), f"the next run never took over: {failures}"
        return train(*args, **kwargs)

    monkeypatch.setattr(flows.retrain, "train_packages", train_once_taken_over)
    taker = threading.Thread(target=next_run, name="the next run", daemon=True)
    taker.start()
    try:
        with pytest.raises(LeaseLost, match=r"this retrain lost its lease \(the next run took"):
            retrain()
    finally:
        taker.join(timeout=10)
    assert failures == []
    with sessions() as session:
        [version] = session.scalars(select(ModelVersion)).all()
        assert (version.status, version.status_reason) == ("candidate", None)
        assert current_champion(session) is None
        assert session.get(ServiceLock, "retrain").holder == "the next run"
    release_lock(sessions, "retrain", "the next run")


def test_a_killed_score_run_is_taken_over_within_its_lease_leaving_no_staged_rows(
    score_command, champion, prefect_harness, tmp_path
):
    process = start_score(score_command | {"PREFECT_API_URL": PREFECT_API_URL.value()}, tmp_path)
    try:
        wait_for_staged_rows(champion, process, timeout_s=240)
        os.kill(process.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        process.wait(timeout=30)
    finally:
        process.kill()
    assert [status for status, _ in runs(champion)] == ["running"]
    assert rows(champion, PropensityScoreStaging) > 0
    assert rows(champion, ServiceLock) == 1

    summary, seconds_after_kill = score_once_the_lease_lapses(killed_at)
    assert seconds_after_kill < (lease_duration(HEARTBEAT) + ONE_ATTEMPT).total_seconds()
    (killed_status, reason), (status, _) = runs(champion)
    assert (killed_status, status) == ("abandoned", "succeeded")
    assert reason.startswith("abandoned: found running by the next score run")
    assert rows(champion, PropensityScoreStaging) == 0
    assert rows(champion, ServiceLock) == 0
    assert len(current_scores(champion)) == summary.n_scored > 0


def signal_mid_run(
    environment: dict[str, str], folder: Path, engine: Engine, signum: int
) -> tuple[int, list[psutil.Process]]:
    """Start `propensity score` without PREFECT_API_URL, so that it starts Prefect's temporary
    server, a child process; send it `signum` once a partition has staged its scores. Its
    exit code, and its child processes still alive ten seconds later."""
    environment = environment | {
        "PREFECT_API_URL": "",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }
    process = start_score(environment, folder)
    children = []
    try:
        wait_for_staged_rows(engine, process, timeout_s=300)
        children = psutil.Process(process.pid).children(recursive=True)
        assert any("uvicorn" in " ".join(child.cmdline()) for child in children)
        os.kill(process.pid, signum)
        returncode = process.wait(timeout=120)
        _, alive = psutil.wait_procs(children, timeout=10)
    finally:
        process.kill()
        for child in children:
            if child.is_running():
                child.kill()
    return returncode, alive


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sigterm_fails_the_run_leaving_no_staged_rows_and_no_child_process(
    score_command, champion, tmp_path
):
    """Partitions finishing after the failure stage nothing."""
    returncode, alive = signal_mid_run(score_command, tmp_path, champion, signal.SIGTERM)
    assert alive == []
    assert returncode == 128 + signal.SIGTERM
    [(status, error)] = runs(champion)
    assert status == "failed"
    assert error.startswith("TerminationSignal")
    assert rows(champion, PropensityScoreStaging) == 0
    assert rows(champion, ServiceLock) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sigkill_leaves_no_prefect_server_behind(score_command, champion, tmp_path):
    """SIGKILL skips every exit handler, Prefect's stopping of its server among them."""
    returncode, alive = signal_mid_run(score_command, tmp_path, champion, signal.SIGKILL)
    assert returncode == -signal.SIGKILL
    assert alive == []
    assert [status for status, _ in runs(champion)] == ["running"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.usefixtures("champion")
def test_the_score_deployment_runs_on_dask_with_the_same_scores_as_on_threads(populated, configure):
    specs = {spec["name"]: spec for spec in deployment_specs()}
    scheduled_score = entrypoint_flow(specs["score"]["entrypoint"])
    scheduled_score()
    on_threads = current_scores(populated)

    with (
        LocalCluster(n_workers=1, threads_per_worker=2, dashboard_address=None) as cluster,
        Client(cluster) as client,
        get_task_stream(client) as tasks,
    ):
        configure(task_runner="dask", dask_address=cluster.scheduler_address)
        summary = scheduled_score()
    assert tasks.data, "no task ran on the Dask cluster"
    assert summary.n_scored == len(on_threads)
    pd.testing.assert_frame_equal(current_scores(populated), on_threads)
