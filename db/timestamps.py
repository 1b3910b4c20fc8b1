"""Timestamps as the service keeps them: naive UTC.

Shared by the file import and the read path, which parse what files and databases hand over.
"""

from datetime import UTC, datetime

import pandas as pd

OFFSET_SUFFIX = r"(?:Z|[+-]\d{2}(?::?\d{2})?)$"


def parse_timestamps(values: pd.Series, timezone: str) -> pd.Series:
    """UTC-naive timestamps; values without an offset are read in `timezone`. NaT if unparseable."""
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = values if values.dt.tz is not None else values.dt.tz_localize(timezone)
        return stamps.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[us]")
    text = values.astype("str").str.strip()
    has_offset = text.str.contains(OFFSET_SUFFIX, regex=True)
    aware = _to_datetime(text[has_offset], utc=True)
    naive = _to_datetime(text[~has_offset], utc=False).dt.tz_localize(
        timezone, ambiguous="NaT", nonexistent="NaT"
    )
    parsed = pd.concat([aware.dt.tz_convert("UTC"), naive.dt.tz_convert("UTC")])
    return parsed.reindex(values.index).dt.tz_localize(None).astype("datetime64[us]")


def _to_datetime(text: pd.Series, utc: bool) -> pd.Series:
    # ISO 8601 parses fast; only the rest falls back to slow per-value format guessing.
    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=utc)
    retry = parsed.isna() & (text != "")
    if retry.any():
        parsed[retry] = pd.to_datetime(text[retry], format="mixed", errors="coerce", utc=utc)
    return parsed if utc else parsed.astype("datetime64[us]")


def naive_utc(moment: datetime) -> datetime:
    """An aware datetime as the naive UTC time the service keeps; a naive one is UTC already."""
    return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
