"""The event source as a run reads it: its columns, resolved once per run, and the run's data
cutoff."""

import logging
from datetime import datetime

from db.source import (
    EventColumns,
    EventSource,
    count_events_after,
    event_time_span,
    resolve_columns,
)
from db.timestamps import utc_now
from service.databases import Databases

Logger = logging.Logger | logging.LoggerAdapter


def source_columns(databases: Databases, source: EventSource) -> EventColumns:
    """The mapped columns, checked against the database before any work."""
    with databases.events().connect() as connection:
        return resolve_columns(connection, source)


def resolve_as_of(
    requested: datetime | None, first_event: datetime, last_event: datetime, now: datetime
) -> datetime:
    """The data cutoff: as requested, or the latest event time; never in the future, never
    before the first event."""
    as_of = requested if requested is not None else last_event
    if as_of > now:
        raise ValueError(f"as_of {as_of} is in the future (now is {now:%Y-%m-%d %H:%M} UTC)")
    if as_of < first_event:
        raise ValueError(f"as_of {as_of} is before the first event ({first_event})")
    return as_of


def data_cutoff(
    databases: Databases, columns: EventColumns, requested: datetime | None, logger: Logger
) -> datetime:
    """The as_of of a retrain or score run: as requested, or the latest event not later than
    now; checked against the event source (never in the future, never before the first
    event). Events stamped after now (a clock ahead somewhere) are left out with a warning:
    one of them must not hold back every run until the clock passes it."""
    now = utc_now()
    with databases.events().connect() as connection:
        span = event_time_span(connection, columns, until=now)
        later = count_events_after(connection, columns, now)
    if later:
        logger.warning(
            "%s event(s) stamped later than now (%s UTC) are left out of this run",
            f"{later:,}",
            f"{now:%Y-%m-%d %H:%M}",
        )
    if span is None:
        raise ValueError(
            f"no events in the source up to now ({later:,} stamped later)"
            if later
            else "no events in the source: import events first"
        )
    first, last = span
    return resolve_as_of(requested, first, last, now)
