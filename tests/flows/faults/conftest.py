"""Fixtures of the fault matrix: the hostile values and broken surroundings a production
scheduler meets, on real databases and real flow runs."""

from collections.abc import Callable
from datetime import datetime, timedelta
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler
from sqlalchemy import Column, DateTime, Double, Engine, MetaData, String, Table

SOURCE_DAY = datetime(2026, 6, 1)
HUGE_AMOUNTS_SOURCE = {
    "source_table": "shop_events",
    "source_customer_id_column": "buyer",
    "source_occurred_at_column": "at",
    "source_event_type_column": "kind",
    "source_amount_column": "revenue",
    "active_rule": "recent_events",
}


@pytest.fixture
def huge_amounts_source(engine, configure) -> Engine:
    """The flows read a mapped events table in which customer `big` made two purchases whose
    amounts (1e308, 1.5e308) are floats, but whose sum is not; `small` bought for 12.5."""
    table = Table(
        "shop_events",
        MetaData(),
        Column("buyer", String(64)),
        Column("at", DateTime),
        Column("kind", String(32)),
        Column("revenue", Double),
    )
    table.create(engine)
    rows = [("big", 1e308), ("big", 1.5e308), ("small", 12.5)]
    with engine.begin() as connection:
        connection.execute(
            table.insert(),
            [
                {
                    "buyer": buyer,
                    "at": SOURCE_DAY + timedelta(hours=hour),
                    "kind": "purchase",
                    "revenue": revenue,
                }
                for hour, (buyer, revenue) in enumerate(rows)
            ],
        )
    configure(**HUGE_AMOUNTS_SOURCE)
    return engine


@pytest.fixture
def prefect_record(prefect_harness) -> Callable[[str], str]:
    """prefect_record(flow_run_id): what Prefect's API keeps of a flow run, as text: its logs
    (its task runs' too), tracebacks included, and its state message."""

    def read(flow_run_id: str) -> str:
        APILogHandler().flush()
        with get_client(sync_client=True) as client:
            logs = client.read_logs(
                LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(flow_run_id)]))
            )
            state = client.read_flow_run(UUID(flow_run_id)).state
        return "\n".join([*(log.message for log in logs), state.message or ""])

    return read
