"""All configuration in one place: environment variables with the prefix PROPENSITY_, read
once per process (or handed in), and the requests that override them for one run."""

import functools
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime, time
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from db.customers import ActiveRule
from db.source import EventSource
from llm_model.kinds import CellName
from llm_model.manifest import ModelConfig, TrainingPlan
from llm_model.metrics import MetricName
from llm_model.sequences import SequenceConfig
from service.databases import Databases
from service.pseudonyms import BY_ID, CustomerNames, process_key

MIN_KEY_LENGTH = 16


def default_work_dir() -> Path:
    """propensity/work in the user's cache directory (XDG_CACHE_HOME, else ~/.cache)."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "propensity" / "work"


def secret_bytes(value: SecretStr | None) -> bytes | None:
    return None if value is None else value.get_secret_value().encode()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PROPENSITY_", env_file=".env", extra="ignore")

    database_url: str = Field(
        "sqlite:///propensity.db", description="Where scores, models and own event tables live."
    )
    source_database_url: str | None = Field(
        None,
        description="Where events are read from (a replica, a warehouse); default: database_url.",
    )

    # Mapping of an existing events table or view, read in place instead of copied.
    source_table: str | None = Field(None, description="Existing events table/view; default: own.")
    source_schema: str | None = None
    source_customer_id_column: str = "customer_id"
    source_event_type_column: str = "event_type"
    source_occurred_at_column: str = "occurred_at"
    source_amount_column: str | None = "amount"

    active_rule: Literal["is_active", "recent_events"] = Field(
        "is_active",
        description="is_active: the customers.is_active flag; recent_events: an event within "
        "active_within_days of the scoring date.",
    )
    active_within_days: int = Field(365, gt=0)

    target_event: str = Field("purchase", description="The conversion event to predict.")
    horizon_days: int = Field(
        30, gt=0, description="Predict the target event within this many days."
    )
    n_snapshots: int = Field(4, ge=2, description="Labelled cutoffs: all but the newest train.")
    snapshot_stride_days: int = Field(30, gt=0)
    max_len: int = Field(50, gt=0, description="Most recent events per customer fed to the model.")
    lookback_days: int = Field(
        365,
        gt=0,
        description="Events older than this stay out of the event sequence; the static "
        "features use the whole history.",
    )
    cell: CellName = "gru"
    hybrid: bool = Field(
        True,
        description="Also train the recurrent model on top of gradient boosting's "
        "out-of-fold score (the gru_hybrid / lstm_hybrid contender).",
    )
    training_sample_size: int = Field(
        150_000,
        gt=0,
        description="Customers a retrain reads at most: a sample chosen in the database by a "
        "hash of the id, the same on every run; everyone when there are no more.",
    )
    units: int = Field(32, gt=0)
    epochs: int = Field(20, gt=0, description="Most epochs; early stopping usually ends sooner.")
    seed: int = 42
    selection_metric: MetricName = Field(
        "roc_auc", description="Picks the best contender on the holdout; ties by log loss."
    )
    promotion_tolerance: float = Field(
        0.005,
        ge=0,
        description="The best contender may trail the champion's holdout figure by this much.",
    )

    partition_size: int = Field(20_000, gt=0, description="Customers per scoring partition.")
    score_retention: int = Field(5, gt=0, description="Succeeded score runs kept (older pruned).")
    drift_psi_threshold: float = Field(
        0.2,
        gt=0,
        description="A static feature or the score whose population stability index against "
        "the champion's training reference exceeds this counts as drifted.",
    )
    lease_heartbeat_seconds: float = Field(
        30,
        gt=0,
        description="A running retrain or score renews its lease this often; a lease not "
        "renewed for 3.5 heartbeats belongs to a dead run and the next run takes it over.",
    )
    reason_codes: bool = Field(True, description="Store the top 3 reasons with every score.")
    task_runner: Literal["threads", "dask"] = Field(
        "threads", description="threads: this machine; dask: a Dask cluster (dask_address)."
    )
    dask_address: str | None = Field(
        None, description="Scheduler of an existing Dask cluster; None starts a local one."
    )

    schedules: dict[str, str] = Field(
        default_factory=dict,
        description='Cron overrides by deployment name, e.g. {"score": "30 6 * * *"}; '
        "the defaults are in deployments/prefect.yaml.",
    )
    reports_dir: str = Field("reports", description="Where model-card charts are written.")
    work_dir: Path = Field(
        default_factory=default_work_dir,
        description="The service's own directory for runs' temporary files (a retrain's "
        "training set, a backtest's scratch database): private to its user, each run's "
        "folder removed when the run ends, a killed run's by the next run.",
    )
    pseudonym_key: SecretStr | None = Field(
        None,
        description="Secret of the pseudonyms that name customers in Prefect artifacts: the "
        "first 12 hex digits of HMAC-SHA256 of the id. Unset: a random key per process, so a "
        "pseudonym links nothing across runs.",
    )
    name_customers_in_artifacts: bool = Field(
        False, description="Show customer ids in Prefect artifacts instead of pseudonyms."
    )
    signing_key: SecretStr | None = Field(
        None,
        description="Secret of the signature (HMAC-SHA256) each registered model carries; set, "
        "a model whose signature does not verify is never loaded.",
    )

    future_tolerance_minutes: int = Field(
        60, ge=0, description="Imported timestamps later than now + this are rejected."
    )
    import_chunk_rows: int = Field(200_000, gt=0)

    # Personal data: docs/operations.md#personal-data.
    suppression_key: SecretStr | None = Field(
        None,
        description="Secret of the keyed hash (HMAC-SHA256) the suppression list keeps of each "
        "erased customer's id: `propensity forget` needs it, and so do imports once a customer "
        "is erased. At least 16 characters; keep it like a password and never change it.",
    )
    event_retention_days: int | None = Field(
        None,
        gt=0,
        description="Events that occurred more than this many days ago are deleted by "
        "`propensity purge` and the retention deployment; unset keeps every event.",
    )

    @field_validator("suppression_key", "pseudonym_key", "signing_key")
    @classmethod
    def long_enough(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and len(key.get_secret_value()) < MIN_KEY_LENGTH:
            raise ValueError(
                f"at least {MIN_KEY_LENGTH} characters: a long random secret "
                "(e.g. `openssl rand -hex 32`)"
            )
        return key

    def suppression_secret(self) -> bytes | None:
        return secret_bytes(self.suppression_key)

    def artifact_names(self) -> CustomerNames:
        """How Prefect artifacts name customers: by pseudonym unless the settings opt in."""
        if self.name_customers_in_artifacts:
            return BY_ID
        return CustomerNames(secret_bytes(self.pseudonym_key) or process_key())

    def overridden(self, **values) -> "Settings":
        """These settings with the values given (None: keep the setting), checked again."""
        given = {name: value for name, value in values.items() if value is not None}
        return self.model_validate({**self.model_dump(), **given}) if given else self

    def for_run(self, request: "RunRequest") -> "Settings":
        """These settings with the ones `request` overrides for its run."""
        return self.overridden(**request.overrides())

    def active(self) -> ActiveRule:
        return ActiveRule(self.active_rule, self.active_within_days)

    def databases(self) -> Databases:
        return Databases(
            service_url=self.database_url,
            events_url=self.source_database_url or self.database_url,
            signing_key=secret_bytes(self.signing_key),
        )

    def training_plan(self) -> TrainingPlan:
        return TrainingPlan(
            sequence=SequenceConfig(
                max_len=self.max_len,
                target_event=self.target_event,
                horizon_days=self.horizon_days,
                lookback_days=self.lookback_days,
            ),
            network=ModelConfig(
                cell=self.cell, units=self.units, epochs=self.epochs, seed=self.seed
            ),
            n_snapshots=self.n_snapshots,
            # Widened to the horizon so no training label reaches the holdout's window.
            stride_days=max(self.snapshot_stride_days, self.horizon_days),
            hybrid=self.hybrid,
        )

    @cached_property
    def event_source(self) -> EventSource:
        return EventSource(
            table=self.source_table,
            schema=self.source_schema,
            customer_id=self.source_customer_id_column,
            event_type=self.source_event_type_column,
            occurred_at=self.source_occurred_at_column,
            amount=self.source_amount_column,
        )


DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


def end_of_a_date(value: object) -> object:
    """A date alone (`2026-10-31`, as text or a date) is the end of that day: every event of
    that day is in, as people (and the buy-till-you-die tools, with their observation period
    end) read "as of the 31st". A date and time stays as given."""
    if isinstance(value, str) and DATE_ONLY.fullmatch(value.strip()):
        value = date.fromisoformat(value.strip())
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, time.max)
    return value


def naive_utc(moment: datetime) -> datetime:
    """A time with an offset as the service keeps times: naive UTC."""
    return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)


# A data cutoff as a run is asked for it (UTC).
Cutoff = Annotated[datetime, BeforeValidator(end_of_a_date), AfterValidator(naive_utc)]


class RunRequest(BaseModel):
    """What one run is asked to do. Its fields named as settings override them for the run
    (None keeps the setting); the others say what to run. A flow's one parameter, so Prefect
    checks a deployment's or the CLI's values against these types."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def overrides(self) -> dict[str, object]:
        return {
            name: value
            for name, value in self.model_dump().items()
            if name in Settings.model_fields and value is not None
        }


class RetrainRequest(RunRequest):
    as_of: Cutoff | None = Field(None, description="Data cutoff (UTC); default: latest event.")
    force_promote: bool = Field(False, description="Make the new model champion regardless.")
    horizon_days: int | None = Field(None, gt=0)
    cell: CellName | None = None
    epochs: int | None = Field(None, gt=0)
    n_snapshots: int | None = Field(None, ge=2)
    snapshot_stride_days: int | None = Field(None, gt=0)


class ScoreRequest(RunRequest):
    as_of: Cutoff | None = Field(None, description="Data cutoff (UTC); default: latest event.")
    partition_size: int | None = Field(None, gt=0)
    in_sample: bool = Field(
        False,
        description="Score at an as_of the champion's training labels reach, deliberately: "
        "the run is marked in sample and never judged as a forward result.",
    )


class BacktestRequest(RunRequest):
    start: Cutoff = Field(description="The first cutoff (UTC).")
    end: Cutoff = Field(description="No cutoff after this.")
    every_days: int = Field(gt=0, description="Days between cutoffs.")
    horizon_days: int | None = Field(None, gt=0)
    cell: CellName | None = None
    csv_path: str | None = Field(None, description="The table's CSV file.")
    database_path: str | None = Field(None, description="Keep the scratch database here.")


_handed_in: ContextVar[Settings | None] = ContextVar("propensity_settings", default=None)


@functools.cache
def environment_settings() -> Settings:
    """The settings of this process's environment (and .env), read once."""
    return Settings()


def current_settings() -> Settings:
    """The settings a run uses: those handed in by `using_settings` (the CLI, tests,
    benchmarks), else the environment's. A flow reads them once, as it starts, and hands
    what its tasks need down to them."""
    return _handed_in.get() or environment_settings()


@contextmanager
def using_settings(settings: Settings) -> Iterator[Settings]:
    """Inside the block, runs started in this thread (and the tasks they submit) use
    `settings`."""
    token = _handed_in.set(settings)
    try:
        yield settings
    finally:
        _handed_in.reset(token)
