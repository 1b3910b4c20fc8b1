from datetime import UTC, datetime, timedelta, timezone

import pandas as pd

from db.timestamps import naive_utc, parse_timestamps


def test_text_with_an_offset_is_converted_and_text_without_one_is_read_in_the_timezone():
    values = pd.Series(
        ["2026-07-01T12:00:00Z", "2026-07-01 14:00:00+02:00", "2026-07-01 12:00", " 07/01/2026 "]
    )
    parsed = parse_timestamps(values, "Europe/Berlin")
    assert str(parsed.dtype) == "datetime64[us]"
    assert parsed.tolist() == [
        pd.Timestamp("2026-07-01 12:00"),
        pd.Timestamp("2026-07-01 12:00"),
        pd.Timestamp("2026-07-01 10:00"),
        pd.Timestamp("2026-06-30 22:00"),
    ]


def test_unparseable_empty_and_nonexistent_local_times_become_nat():
    # 02:30 does not exist in Berlin on the night clocks go forward.
    values = pd.Series(["not a date", "", "2026-03-29 02:30"], index=[5, 6, 7])
    parsed = parse_timestamps(values, "Europe/Berlin")
    assert parsed.index.tolist() == [5, 6, 7]
    assert parsed.isna().all()


def test_datetime_columns_naive_and_aware():
    naive = pd.Series(pd.to_datetime(["2026-01-01 12:00"]))
    aware = naive.dt.tz_localize("America/New_York")
    assert parse_timestamps(naive, "UTC").tolist() == [pd.Timestamp("2026-01-01 12:00")]
    assert parse_timestamps(naive, "Asia/Tokyo").tolist() == [pd.Timestamp("2026-01-01 03:00")]
    assert parse_timestamps(aware, "Asia/Tokyo").tolist() == [pd.Timestamp("2026-01-01 17:00")]


def test_naive_utc():
    moment = datetime(2026, 1, 1, 12)
    assert naive_utc(moment) is moment
    assert naive_utc(moment.replace(tzinfo=UTC)) == moment
    assert naive_utc(datetime(2026, 1, 1, 21, tzinfo=timezone(timedelta(hours=9)))) == moment
