"""A score run's work as plain functions: the model it scores with, a partition's events,
customers and features. The score flow's tasks call these; the scoring benchmark times the
same code without Prefect."""

import functools
import gc
import operator
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import Engine

from db.customers import ActiveRule, active_customer_ids
from db.engine import transaction
from db.models import ModelVersion
from db.readers import read_events
from db.registry import require_champion
from db.source import CustomerRange, EventColumns, EventSource
from llm_model.drift import BinCounts
from llm_model.kinds import load_servable
from llm_model.sequences import Features, non_finite_inputs
from llm_model.servable import ServableModel
from service.databases import Databases
from service.pseudonyms import CustomerNames
from service.registry import ModelPackage
from service.settings import Settings

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
    lease_heartbeat: timedelta
    retention: int
    drift_threshold: float
    # How a run's errors and logs name customers: they reach Prefect and score_runs.error.
    names: CustomerNames

    @classmethod
    def from_settings(cls, settings: Settings) -> "ScoreJob":
        return cls(
            databases=settings.databases(),
            source=settings.event_source,
            rule=settings.active(),
            reason_codes=settings.reason_codes,
            lease_heartbeat=timedelta(seconds=settings.lease_heartbeat_seconds),
            retention=settings.score_retention,
            drift_threshold=settings.drift_psi_threshold,
            names=settings.artifact_names(),
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


@dataclass(frozen=True)
class PartitionResult:
    """A scored partition: its staged rows, and its customers per bin of the model's drift
    reference (None for a model without one). Small whatever the partition's size: the
    run's drift is measured from these summed, never from every customer's features."""

    staged: int
    bins: BinCounts | None


def drift_counts(
    model: ServableModel, features: Features, scores: pd.DataFrame
) -> BinCounts | None:
    reference = model.manifest.drift_reference
    if reference is None:
        return None
    return reference.counts(features.static, scores["propensity"].to_numpy())


def summed_bins(results: list[PartitionResult]) -> BinCounts | None:
    """The run's customers per bin; None when its model has no drift reference."""
    bins = [result.bins for result in results]
    return None if any(b is None for b in bins) else functools.reduce(operator.add, bins)


def load_model(version: ModelVersion, signing_key: bytes | None) -> ServableModel:
    """Rebuild a registered model of any kind; its bytes are checked against the recorded
    sha256 first and, given the signing key, its signature."""
    package = ModelPackage.of_version(version, signing_key)
    return load_servable(package.artifact, package.manifest)


# Models loaded in this process, by database and version; the lock guards loading.
MODELS_KEPT = 2
_models: dict[tuple[Databases, int], tuple[ServableModel, threading.Lock]] = {}
_loading = threading.Lock()


def cached_model(databases: Databases, version_id: int) -> tuple[ServableModel, threading.Lock]:
    """One model per process, loaded once: partitions on other threads (a Dask worker's)
    wait for the first load instead of loading it beside it, which skops' loader does not
    survive. The returned lock keeps partition threads from predicting at once."""
    key = (databases, version_id)
    with _loading:
        if key not in _models:
            if len(_models) >= MODELS_KEPT:
                del _models[next(iter(_models))]
            with transaction(databases.service()) as session:
                model = load_model(session.get(ModelVersion, version_id), databases.signing_key)
            _models[key] = (model, threading.Lock())
        return _models[key]


def load_champion(databases: Databases) -> None:
    """The champion, loaded into this process's models ahead of the score flow that will
    use it (NoChampion, or a corrupt artifact, fail here as they would there)."""
    with transaction(databases.service()) as session:
        version_id = require_champion(session).id
    cached_model(databases, version_id)


def unload_models() -> None:
    """Forget the models this process loaded; the next use loads them again."""
    with _loading:
        _models.clear()


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
    features = model.features(events, customer_ids, pd.Timestamp(plan.as_of))
    return require_finite(features, plan, job.names)


def require_finite(features: Features, plan: ScoreRunPlan, names: CustomerNames) -> Features:
    """Fail the partition, before it stages anything, counting the customers whose inputs
    the model would turn into NaN scores and naming the first ten as `names` do (by
    pseudonym unless the settings opt in). Only amounts can do that (times and counts
    cannot): ones too large for their sum, which a mapped source may hold, the own table
    not."""
    inputs, customers = non_finite_inputs(features)
    if len(customers):
        column = plan.columns.amount.name if plan.columns.amount is not None else "amount"
        shown = names.listed([str(c) for c in customers[:10]], more=len(customers) > 10)
        raise ValueError(
            f"model inputs {', '.join(inputs)} are not finite for {len(customers):,} "
            f"customer(s) ({shown}): their amounts in column {column!r} are too large"
        )
    return features
