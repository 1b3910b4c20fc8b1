"""Fixtures the data-layer tests share: sample events, a mapped events table, a registered
model and published runs of it, and reading a table's rows back into a frame."""

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import Column, DateTime, Engine, Float, MetaData, String, Table, select

from db.drift import store_drift
from db.engine import make_engine, transaction
from db.event_import import event_keys, store_events
from db.registry import register_model
from db.scores import publish_score_run, stage_scores, start_score_run
from db.source import EventSource

T0 = datetime(2026, 1, 1)


@pytest.fixture
def table_frame(engine) -> Callable[..., pd.DataFrame]:
    """table_frame(Model, names, *where, order_by=None): those columns of the model's rows,
    as a frame with those names."""

    def read(model, names: Sequence[str], *where, order_by=None) -> pd.DataFrame:
        query = select(*(getattr(model, name) for name in names)).where(*where)
        if order_by is not None:
            query = query.order_by(order_by)
        with engine.connect() as connection:
            rows = connection.execute(query).all()
        return pd.DataFrame(rows, columns=list(names))

    return read


@pytest.fixture
def sample_events() -> pd.DataFrame:
    """Three customers' events from T0 + 1 day to T0 + 20 days."""
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b", "c", "c", "c"],
            "event_type": ["visit", "purchase", "visit", "visit", "visit", "purchase"],
            "occurred_at": [T0 + timedelta(days=d) for d in (1, 5, 2, 3, 10, 20)],
            "amount": [None, 10.5, None, None, None, 3.0],
        }
    ).astype({"occurred_at": "datetime64[us]", "amount": "float64"})
    return frame.assign(event_id=event_keys(frame))


@pytest.fixture
def loaded(engine, sample_events) -> Engine:
    """The migrated database with the sample events (and their customers) stored."""
    with transaction(engine) as session:
        store_events(session, sample_events)
    return engine


@pytest.fixture
def mapped() -> EventSource:
    """The warehouse's events table, mapped to the service's names."""
    return EventSource(
        table="web_events",
        customer_id="user_ref",
        occurred_at="ts",
        event_type="kind",
        amount="value",
    )


@pytest.fixture
def warehouse(database_url) -> Iterator[Engine]:
    """An existing events table with its own column names, in a database of its own."""
    engine = make_engine(database_url)
    table = Table(
        "web_events",
        MetaData(),
        Column("user_ref", String(64)),
        Column("ts", DateTime),
        Column("kind", String(32)),
        Column("value", Float),
    )
    table.create(engine)
    with engine.begin() as connection:
        connection.execute(
            table.insert(),
            [
                {"user_ref": "u2", "ts": T0, "kind": "view", "value": None},
                {"user_ref": "u1", "ts": T0 + timedelta(hours=1), "kind": "buy", "value": 4.0},
            ],
        )
    yield engine
    engine.dispose()


@pytest.fixture
def gbm_version(engine) -> int:
    """The id of a registered gbm model version (trained as of 2026-01-01, horizon 14 days),
    for score runs to refer to."""
    with transaction(engine) as session:
        return register_model(
            session,
            artifact=b"x",
            trained_as_of=datetime(2026, 1, 1),
            horizon_days=14,
            kind="gbm",
            config={"kind": "gbm"},
            metrics={},
        ).id


@pytest.fixture
def published_run(engine, gbm_version) -> Callable[..., int]:
    """published_run(as_of, psi=None): the id of a new succeeded run of `gbm_version` that
    scored one customer, with its drift rows (when given) stored as it was published."""

    def publish(as_of: datetime, psi: dict[str, float] | None = None) -> int:
        with transaction(engine) as session:
            run_id = start_score_run(session, as_of, gbm_version, None)
        with engine.begin() as connection:
            scores = pd.DataFrame({"customer_id": ["a"], "propensity": [0.5]})
            stage_scores(connection, run_id, scores)
        with transaction(engine) as session:
            publish_score_run(session, run_id, keep_succeeded=10)
            if psi is not None:
                store_drift(session, run_id, psi)
        return run_id

    return publish
