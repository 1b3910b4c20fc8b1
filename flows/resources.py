"""Glue shared by the flows: engines from settings and models from the registry."""

import functools
import gc
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pandas as pd
from prefect.runtime import flow_run
from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from sqlalchemy import Engine

from db.engine import check_reachable, make_engine, session_factory, transaction
from db.event_import import event_keys, store_customers, store_events
from db.locks import acquire_lock, release_lock
from db.migrate import upgrade
from db.models import ModelVersion
from db.registry import verified_artifact
from db.source import event_time_span
from flows.settings import Settings
from llm_model.model import TrainedModel
from llm_model.synthetic import generate
from llm_model.training import resolve_as_of


@functools.lru_cache(maxsize=8)
def reachable_engine(url: str, migrate: bool) -> Engine:
    """One engine (and connection pool) per database per process."""
    engine = make_engine(url)
    check_reachable(engine)
    if migrate:
        with engine.begin() as connection:
            upgrade(connection)
    return engine


def service_engine(settings: Settings) -> Engine:
    """The database the service writes to, migrated to the current schema."""
    return reachable_engine(settings.database_url, migrate=True)


def events_engine(settings: Settings) -> Engine:
    return reachable_engine(settings.events_database_url, migrate=False)


@contextmanager
def exclusive(job: str) -> Iterator[None]:
    """Hold the database-level lock of `job` (e.g. "retrain") for the duration of the block."""
    settings = Settings()
    sessions = session_factory(service_engine(settings))
    holder = f"flow run {flow_run.get_id() or uuid.uuid4()}"
    acquire_lock(sessions, job, holder, timedelta(hours=settings.job_stale_hours))
    try:
        yield
    finally:
        release_lock(sessions, job, holder)


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
    libraries, a loaded model). A full collection walked ~700k such objects in 0.4 s,
    holding the GIL that every partition thread waits for. Afterwards they are collected
    as usual again, so nothing that dies later (an evicted model) is kept for good."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def load_model(version: ModelVersion) -> TrainedModel:
    """Rebuild a registered model; its bytes are checked against the recorded sha256 first."""
    return TrainedModel.from_artifact(verified_artifact(version), version.config["sidecar"])


def utc_now() -> pd.Timestamp:
    return pd.Timestamp(datetime.now(UTC).replace(tzinfo=None))


def data_cutoff(settings: Settings, requested: datetime | None) -> pd.Timestamp:
    """The as_of of a retrain or score run: as requested, or the latest event; checked
    against the event source (never in the future, never before the first event)."""
    with events_engine(settings).connect() as connection:
        span = event_time_span(connection, settings.event_source)
    if span is None:
        raise ValueError("no events in the source: import events first")
    return resolve_as_of(requested, pd.Timestamp(span[0]), pd.Timestamp(span[1]), utc_now())


def load_synthetic_events(engine: Engine, n_customers: int, seed: int) -> dict[str, int]:
    """Generate a synthetic population into the service's own tables; counts by event type."""
    with engine.begin() as connection:
        upgrade(connection)
    data = generate(n_customers, seed=seed)
    events = data.events.assign(event_id=event_keys(data.events))
    with transaction(engine) as session:
        store_customers(session, data.customers)
        store_events(session, events)
    return events["event_type"].value_counts().to_dict()
