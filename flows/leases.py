"""The lease a flow run holds while it retrains or scores, under its own flow run id."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from prefect import get_run_logger
from prefect.runtime import flow_run

from service.databases import Databases
from service.leases import Lease, exclusive


@contextmanager
def held_by_this_run(job: str, databases: Databases, heartbeat: timedelta) -> Iterator[Lease]:
    holder = f"flow run {flow_run.get_id() or uuid.uuid4()}"
    with exclusive(job, databases, heartbeat, holder, get_run_logger()) as lease:
        yield lease
