"""A score run's work as plain functions: the model it scores with, a partition's events,
customers and features. The score flow's tasks call these; the scoring benchmark times the
same code without Prefect."""

import functools
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import Engine

from db.customers import ActiveRule, active_customer_ids
from db.engine import transaction
from db.models import ModelVersion
from db.readers import read_events
from db.source import CustomerRange, EventColumns, EventSource
from flows.databases import Databases
from flows.registry import ModelPackage
from flows.settings import Settings
from llm_model.kinds import load_servable
from llm_model.sequences import Features
from llm_model.servable import ServableModel

# One partition predicting while the next reads and builds its features, or both reading
# while the model waits: two reads at once overlap their database servers' work.
PARTITIONS_AT_ONCE = 2


@dataclass(frozen=True)
class ScoreJob:
    """What the tasks of a score run need from the settings, resolved once per flow run."""

    databases: Databases
    source: EventSource
    rule: ActiveRule
    reason_codes: bool
    stale_after: timedelta
    retention: int

    @classmethod
    def from_settings(cls, settings: Settings) -> "ScoreJob":
        return cls(
            databases=settings.databases(),
            source=settings.event_source,
            rule=settings.active(),
            reason_codes=settings.reason_codes,
            stale_after=timedelta(hours=settings.job_stale_hours),
            retention=settings.score_retention,
        )

    def rule_engine(self) -> Engine:
        """is_active lives in the service's customers table; recent activity in the events."""
        return self.databases.events() if self.rule.reads_events else self.databases.service()


@dataclass(frozen=True)
class ScoreRunPlan:
    """An opened score run: its model, its data cutoff, the source's columns (resolved
    once for the run) and the customer key ranges of its partitions."""

    run_id: int
    as_of: datetime
    model_version_id: int
    columns: EventColumns
    ranges: list[CustomerRange]


def load_model(version: ModelVersion) -> ServableModel:
    """Rebuild a registered model of any kind; its bytes are checked against the recorded
    sha256 first."""
    package = ModelPackage.of_version(version)
    return load_servable(package.artifact, package.manifest)


@functools.lru_cache(maxsize=2)
def cached_model(databases: Databases, version_id: int) -> tuple[ServableModel, threading.Lock]:
    """One model per process; the lock keeps partition threads from predicting at once."""
    with transaction(databases.service()) as session:
        model = load_model(session.get(ModelVersion, version_id))
    return model, threading.Lock()


@functools.cache
def partitions_in_memory() -> threading.BoundedSemaphore:
    """Partitions that hold their data at once, per process; also bounds a multi-threaded
    Dask worker."""
    return threading.BoundedSemaphore(PARTITIONS_AT_ONCE)


def partition_events(
    job: ScoreJob, plan: ScoreRunPlan, customer_range: CustomerRange
) -> pd.DataFrame:
    """The range's events up to as_of, its whole history: the static features cover it all."""
    with job.databases.events().connect() as connection:
        return read_events(connection, plan.columns, plan.as_of, None, customer_range)


def partition_features(
    job: ScoreJob, plan: ScoreRunPlan, model: ServableModel, customer_range: CustomerRange
) -> Features:
    events = partition_events(job, plan, customer_range)
    if job.rule.reads_events:
        # The range's whole history, just read, answers the rule: no second scan of it.
        customer_ids = job.rule.ids_in(events, plan.as_of)
    else:
        with job.rule_engine().connect() as connection:
            active = job.rule.query(plan.columns, plan.as_of)
            customer_ids = active_customer_ids(connection, active, customer_range)
    return model.features(events, customer_ids, pd.Timestamp(plan.as_of))
