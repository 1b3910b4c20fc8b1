"""Glue shared by the flows: engines from settings and models from the registry."""

from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import Engine

from db.engine import check_reachable, make_engine
from db.models import ModelVersion
from db.registry import verified_artifact
from flows.settings import Settings
from llm_model.model import TrainedModel


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
