"""A backtest's plain parts: the cutoffs it replays (every `every_days` from its start to
its end, each kept only where the events can train and judge a model at it; no TensorFlow
here, the CLI checks a backtest's range before its flow starts) and its scratch database."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from db.customers import copy_customers
from db.migrate import upgrade
from db.source import EventSource, event_time_span, resolve_columns
from db.timestamps import utc_now
from llm_model.manifest import TrainingPlan
from service.databases import Databases, reachable_engine
from service.settings import BacktestRequest, Settings


@dataclass(frozen=True)
class WalkForward:
    """The usable cutoffs, oldest first, and a note for each one left out."""

    cutoffs: list[datetime]
    skipped: list[str]


def walk_forward(
    start: datetime,
    end: datetime,
    every_days: int,
    plan: TrainingPlan,
    span: tuple[datetime, datetime] | None,
) -> WalkForward:
    """The cutoffs between `start` and `end` that the events (first and last, `span`) cover:
    a retrain at a cutoff needs a training and a holdout snapshot at or after the first
    event, and its scores can only be judged once their horizon has passed by the last.
    A range that keeps none is a ValueError saying which cutoffs would do."""
    if start > end:
        raise ValueError(f"the backtest starts ({start:%Y-%m-%d}) after it ends ({end:%Y-%m-%d})")
    if every_days < 1:
        raise ValueError(f"cutoffs must be at least a day apart, not {every_days} days")
    if span is None:
        raise ValueError("no events in the source: import events first")
    first, last = span
    horizon = timedelta(days=plan.sequence.horizon_days)
    # Training needs the two newest snapshots (at cutoff - horizon, and a stride before it)
    # to hold customers: at or after the first event.
    earliest = first + horizon + timedelta(days=plan.stride_days)
    latest = last - horizon
    cutoffs, skipped = [], []
    for cutoff in pd.date_range(start, end, freq=f"{every_days}D").to_pydatetime():
        if cutoff < earliest:
            skipped.append(
                f"{cutoff:%Y-%m-%d} skipped: too little history to train (cutoffs from "
                f"{earliest:%Y-%m-%d} have a training and a holdout snapshot after the first "
                "event)"
            )
        elif cutoff > latest:
            skipped.append(
                f"{cutoff:%Y-%m-%d} skipped: its {plan.sequence.horizon_days}-day horizon ends "
                f"after the latest event ({last:%Y-%m-%d %H:%M}), so it cannot be judged"
            )
        else:
            cutoffs.append(cutoff)
    if not cutoffs:
        raise ValueError(
            f"no usable cutoff from {start:%Y-%m-%d} to {end:%Y-%m-%d} every {every_days} days: "
            f"a cutoff needs a training and a holdout snapshot after the first event and its "
            f"{plan.sequence.horizon_days}-day horizon ended by the latest, so it must fall "
            f"between {earliest:%Y-%m-%d %H:%M} and {latest:%Y-%m-%d %H:%M}"
        )
    return WalkForward(cutoffs, skipped)


def backtest_cutoffs(
    databases: Databases,
    source: EventSource,
    start: datetime,
    end: datetime,
    every_days: int,
    plan: TrainingPlan,
) -> WalkForward:
    """walk_forward over the source's events up to now (later ones are left out of every
    run, as data_cutoff leaves them)."""
    with databases.events().connect() as connection:
        span = event_time_span(connection, resolve_columns(connection, source), until=utc_now())
    return walk_forward(start, end, every_days, plan, span)


def scratch_settings(settings: Settings, database: Path, folder: Path) -> Settings:
    """The service's settings on a new SQLite database file, reading the same events, its
    reports in `folder`."""
    if database.exists():
        raise ValueError(f"{database} exists: a backtest starts from a new database")
    return settings.overridden(
        database_url=f"sqlite:///{database}",
        source_database_url=settings.databases().events_url,
        reports_dir=str(folder / "reports"),
    )


def prepare_scratch_database(production: Databases, scratch: Settings) -> int:
    """Migrate the new scratch database and, where the active rule reads the customers
    table, copy production's into it. The customers copied."""
    with reachable_engine(scratch.database_url).begin() as connection:
        upgrade(connection)
        if scratch.active().reads_events:
            return 0
        with production.service().connect() as source:
            return copy_customers(source, connection)


def default_csv_path(settings: Settings, request: BacktestRequest) -> Path:
    name = f"backtest-{request.start:%Y-%m-%d}-{request.end:%Y-%m-%d}.csv"
    return Path(settings.reports_dir) / name
