"""All configuration in one place: environment variables with the prefix PROPENSITY_."""

from functools import cached_property
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from db.customers import ActiveRule
from db.source import EventSource
from flows.databases import Databases
from llm_model.manifest import ModelConfig, TrainingPlan
from llm_model.sequences import SequenceConfig


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
    cell: Literal["gru", "lstm"] = "gru"
    hybrid: bool = Field(
        True,
        description="Also train the recurrent model on top of gradient boosting's "
        "out-of-fold score (the gru_hybrid / lstm_hybrid contender).",
    )
    units: int = Field(32, gt=0)
    epochs: int = Field(20, gt=0, description="Most epochs; early stopping usually ends sooner.")
    seed: int = 42
    selection_metric: Literal[
        "roc_auc", "pr_auc", "log_loss", "brier", "ece", "top_decile_lift"
    ] = Field("roc_auc", description="Picks the best contender on the holdout; ties by log loss.")
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

    future_tolerance_minutes: int = Field(
        60, ge=0, description="Imported timestamps later than now + this are rejected."
    )
    import_chunk_rows: int = Field(200_000, gt=0)

    def overridden(self, **values) -> "Settings":
        """These settings with the values given (None: keep the setting), checked again."""
        given = {name: value for name, value in values.items() if value is not None}
        return self.model_validate({**self.model_dump(), **given}) if given else self

    def active(self) -> ActiveRule:
        return ActiveRule(self.active_rule, self.active_within_days)

    def databases(self) -> Databases:
        return Databases(
            service_url=self.database_url,
            events_url=self.source_database_url or self.database_url,
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
