"""Glue shared by the flows: engines from settings and models from the registry."""

from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import Engine

from db.engine import check_reachable, make_engine, transaction
from db.event_import import event_keys, store_customers, store_events
from db.migrate import upgrade
from db.models import ModelVersion
from db.registry import verified_artifact
from flows.settings import Settings
from llm_model.model import TrainedModel
from llm_model.synthetic import generate


def service_engine(settings: Settings) -> Engine:
    engine = make_engine(settings.database_url)
    check_reachable(engine)
    return engine


def events_engine(settings: Settings) -> Engine:
    engine = make_engine(settings.events_database_url)
    check_reachable(engine)
    return engine


def load_model(version: ModelVersion) -> TrainedModel:
    """Rebuild a registered model; its bytes are checked against the recorded sha256 first."""
    return TrainedModel.from_artifact(verified_artifact(version), version.config["sidecar"])


def utc_now() -> pd.Timestamp:
    return pd.Timestamp(datetime.now(UTC).replace(tzinfo=None))


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
